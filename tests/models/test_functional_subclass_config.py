"""The "functional subclassing" pattern Keras recommends for sharing models
(keras.io recipe "Packaging Keras models for wide distribution"): a
`keras.Model` subclass that builds its graph in `__init__(self, **kwargs)` and
calls `super().__init__(inputs=..., outputs=..., **kwargs)`. Its config is the
base one (name, trainable, dtype) and `from_config` re-runs the constructor, as
in real Keras 3; a `.keras` file of it loads in both frameworks.

kerasish wrapped every subclass `__init__` in a `*args, **kwargs` function,
which made any such class look functional-like: its config was the graph
config and loading it failed ("got multiple values for keyword argument
'inputs'")."""

from __future__ import annotations

import numpy as np
import pytest

import kerasish


def _classes(keras):
    class TinyModel(keras.Model):
        def __init__(self, **kwargs):
            inputs = keras.layers.Input(shape=(None, None, 1), dtype="uint8")
            y = keras.layers.Rescaling(1 / 255.0)(inputs)
            y = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(y)
            y = keras.layers.GlobalAveragePooling2D()(y)
            outputs = keras.layers.Dense(2, activation="softmax", name="head")(y)
            super().__init__(inputs=inputs, outputs=outputs, **kwargs)

    class WithArgs(keras.Model):  # a constructor with its own argument and get_config
        def __init__(self, units=2, **kwargs):
            inputs = keras.Input(shape=(3,))
            outputs = keras.layers.Dense(units, name="head")(inputs)
            super().__init__(inputs=inputs, outputs=outputs, **kwargs)
            self.units = units

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    class GraphArgs(keras.Model):  # functional-like: revived from the graph
        def __init__(self, inputs, outputs, name=None, trainable=True):
            super().__init__(inputs=inputs, outputs=outputs, name=name, trainable=trainable)

    return TinyModel, WithArgs, GraphArgs


def test_config_is_the_base_config_and_from_config_reruns_init(keras_ref):
    (ref_cls, ref_args, _), (our_cls, our_args, _) = _classes(keras_ref), _classes(kerasish)
    ref, ours = ref_cls(name="tiny"), our_cls(name="tiny")
    expected = {"name": "tiny", "trainable": True, "dtype": ref.get_config()["dtype"]}
    assert ours.get_config() == ref.get_config() == expected
    again = our_cls.from_config(ours.get_config())
    assert type(again) is our_cls and again.name == "tiny"
    assert [type(layer).__name__ for layer in again.layers] == [type(layer).__name__ for layer in ours.layers]
    ref_w, our_w = ref_args(units=4), our_args(units=4)
    assert our_w.get_config()["units"] == ref_w.get_config()["units"] == 4
    revived = our_args.from_config(our_w.get_config())
    assert revived.output_shape == ref_args.from_config(ref_w.get_config()).output_shape == (None, 4)


def test_functional_like_subclass_keeps_the_graph_config(keras_ref):
    _, _, graph_cls = _classes(kerasish)
    inputs = kerasish.Input(shape=(3,))
    model = graph_cls(inputs, kerasish.layers.Dense(2)(inputs), name="g")
    config = model.get_config()
    assert {"layers", "input_layers", "output_layers"} <= set(config)
    again = graph_cls.from_config(config)
    assert type(again) is graph_cls and again.output_shape == (None, 2)


@pytest.mark.parametrize("writer", ["keras", "kerasish"])
def test_keras_file_round_trip_both_ways(keras_ref, tmp_path, writer):
    (ref_cls, _, _), (our_cls, _, _) = _classes(keras_ref), _classes(kerasish)
    ref, ours = ref_cls(), our_cls()
    ours.set_weights(ref.get_weights())
    x = np.random.default_rng(0).integers(0, 256, (4, 5, 7, 1)).astype("uint8")  # (any image size)
    expected = ref.predict(x, verbose=0)
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "tiny.keras")
    (ref if writer == "keras" else ours).save(path)
    for keras, cls in ((keras_ref, ref_cls), (kerasish, our_cls)):
        loaded = keras.models.load_model(path, custom_objects={"TinyModel": cls})
        assert type(loaded) is cls
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded.predict(x, verbose=0)), expected,
                                   rtol=1e-5, atol=1e-6)


def test_user_subclasses_of_kerasish_bases_serialize_with_their_own_module(keras_ref):
    """The Keras module kerasish writes for its own Functional / Metric is not
    inherited by a user's subclass: Keras writes the user's module and the
    class name as the registered name (how `custom_objects` finds it)."""

    def make(keras):
        class MyMean(keras.metrics.Mean):
            pass

        TinyModel = _classes(keras)[0]
        return TinyModel(), MyMean(name="m")

    for ref_obj, our_obj in zip(make(keras_ref), make(kerasish)):
        ref = keras_ref.saving.serialize_keras_object(ref_obj)
        ours = kerasish.saving.serialize_keras_object(our_obj)
        assert ours["module"] == ref["module"] == __name__
        assert ours["class_name"] == ref["class_name"]
        assert ours["registered_name"] == ref["registered_name"] == ref["class_name"]
