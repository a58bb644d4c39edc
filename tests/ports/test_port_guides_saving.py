"""keras.io developer guides "Save, serialize, and export models"
(guides/serialization_and_saving.py) and "Customizing Saving and
Serialization" (guides/customizing_saving_and_serialization.py), shrunk, run
with real Keras 3 (torch backend) and kerasish. Each framework registers the
guide's custom objects under the same names; every `.keras` file is loaded by
the framework that wrote it AND by the other one, and predictions, weights and
restored attributes are compared: a registered function and layer, a
subclassed model with `get_config`, `clone_model`, `.weights.h5`,
`to_json`/`model_from_json`, `save_own_variables`/`load_own_variables`,
`get_build_config`/`build_from_config`, `save_assets`/`load_assets`, and
configs holding layer objects (`keras.layers.serialize` / `deserialize`, a
`from_config` that deserializes its sublayers).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest

import kerasish as keras
from tests.ports.test_port_programs import assert_same

X = np.random.default_rng(0).random((8, 10)).astype("float32")
Y = np.random.default_rng(1).random((8, 1)).astype("float32")


@pytest.fixture(autouse=True)
def _fresh_keras_names(keras_ref):
    keras_ref.utils.clear_session()


def _np(x):
    return np.asarray(x.detach().cpu()) if hasattr(x, "detach") else np.asarray(x)


def _guide_objects(K):
    """The guides' custom objects, registered with framework `K`."""
    ops = K.ops
    objects = {}

    @K.saving.register_keras_serializable(package="my_package", name="custom_fn")
    def custom_fn(x):
        return x**2

    @K.saving.register_keras_serializable(package="my_package")
    class CustomLayer(K.layers.Layer):
        def __init__(self, factor, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return custom_fn(x) * self.factor

        def get_config(self):
            config = super().get_config()
            config.update({"factor": self.factor})
            return config

    @K.saving.register_keras_serializable(package="my_package")
    class CustomModel(K.Model):
        def __init__(self, hidden_units, **kwargs):
            super().__init__(**kwargs)
            self.hidden_units = hidden_units
            self.dense_layers = [K.layers.Dense(u) for u in hidden_units]

        def call(self, inputs):
            x = inputs
            for layer in self.dense_layers:
                x = layer(x)
            return x

        def get_config(self):
            return {"hidden_units": self.hidden_units}

        @classmethod
        def from_config(cls, config):
            return cls(**config)

    @K.saving.register_keras_serializable(package="my_custom_package")
    class LayerWithCustomVariable(K.layers.Dense):
        def __init__(self, units, **kwargs):
            super().__init__(units, **kwargs)
            self.my_variable = K.Variable(np.arange(units, dtype="float32"), name="my_variable", dtype="float32")

        def save_own_variables(self, store):
            super().save_own_variables(store)
            store["variables"] = self.my_variable.numpy()

        def load_own_variables(self, store):
            self.my_variable.assign(store["variables"])
            for i, v in enumerate(self.weights):
                v.assign(store[f"{i}"])

        def call(self, inputs):
            return super().call(inputs) + self.my_variable

    @K.saving.register_keras_serializable(package="my_custom_package")
    class LayerWithCustomBuild(K.layers.Layer):
        def __init__(self, units=32, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

        def get_config(self):
            return dict(units=self.units, **super().get_config())

        def build(self, input_shape, layer_init):
            super().build(input_shape)
            self._input_shape = input_shape
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer=layer_init, trainable=True)
            self.b = self.add_weight(shape=(self.units,), initializer=layer_init, trainable=True)
            self.layer_init = layer_init

        def get_build_config(self):
            return {"layer_init": self.layer_init, "input_shape": self._input_shape}

        def build_from_config(self, config):
            self.build(config["input_shape"], config["layer_init"])

    @K.saving.register_keras_serializable(package="my_custom_package")
    class LayerWithCustomAssets(K.layers.Dense):
        def __init__(self, vocab=None, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.vocab = vocab

        def save_assets(self, inner_path):
            with open(os.path.join(inner_path, "vocabulary.txt"), "w") as f:
                f.write(self.vocab)

        def load_assets(self, inner_path):
            with open(os.path.join(inner_path, "vocabulary.txt")) as f:
                self.vocab = f.read().replace("<unk>", "little")

    @K.saving.register_keras_serializable(package="MyLayers", name="KernelMult")
    class MyDense(K.layers.Layer):
        def __init__(self, units, *, kernel_regularizer=None, kernel_initializer=None, nested_model=None, **kwargs):
            super().__init__(**kwargs)
            self.hidden_units = units
            self.kernel_regularizer = kernel_regularizer
            self.kernel_initializer = kernel_initializer
            self.nested_model = nested_model

        def get_config(self):
            config = super().get_config()
            config.update({"units": self.hidden_units, "kernel_regularizer": self.kernel_regularizer,
                           "kernel_initializer": self.kernel_initializer, "nested_model": self.nested_model})
            return config

        def build(self, input_shape):
            self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.hidden_units),
                                          regularizer=self.kernel_regularizer, initializer=self.kernel_initializer)

        def call(self, inputs):
            return ops.matmul(inputs, self.kernel)

    @K.saving.register_keras_serializable(package="ComplexModels")
    class ComplexModel(K.layers.Layer):
        def __init__(self, first_layer, second_layer=None, **kwargs):
            super().__init__(**kwargs)
            self.first_layer = first_layer
            self.second_layer = second_layer if second_layer is not None else K.layers.Dense(8)

        def get_config(self):
            config = super().get_config()
            config.update({"first_layer": self.first_layer, "second_layer": self.second_layer})
            return config

        @classmethod
        def from_config(cls, config):
            config["first_layer"] = K.layers.deserialize(config["first_layer"])
            config["second_layer"] = K.layers.deserialize(config["second_layer"])
            return cls(**config)

        def call(self, inputs):
            return self.first_layer(self.second_layer(inputs))

    objects.update(locals())
    return objects


def _set_drawn(model):
    model.set_weights([np.random.default_rng(i).normal(0, 0.3, w.shape).astype("float32")
                       for i, w in enumerate(model.get_weights())])
    return model


def _write_both(keras_ref, tmp_path, build):
    """`build(K, objects)` -> model, for each framework; returns {writer: (model, path)}."""
    out = {}
    for K in (keras_ref, keras):
        model = build(K, _guide_objects(K))
        path = str(tmp_path / f"{K.__name__}.keras")
        model.save(path)
        out[K.__name__] = (model, path)
    return out


def _load_everywhere(keras_ref, files):
    """Each file loaded by each framework: {(writer, reader): model}."""
    loaded = {}
    for reader in (keras_ref, keras):
        _guide_objects(reader)  # registered in the reader
        for writer, (_, path) in files.items():
            loaded[(writer, reader.__name__)] = reader.saving.load_model(path)
    return loaded


def test_registered_function_layer_and_subclassed_model(keras_ref, tmp_path):
    def build(K, objects):
        inputs = K.Input((10,))
        x = objects["CustomLayer"](0.5)(inputs)
        outputs = objects["CustomModel"]([6, 1])(x)
        model = _set_drawn(K.Model(inputs, outputs))
        model.compile(optimizer="adam", loss="mse")
        model.fit(X, Y, epochs=1, verbose=0, shuffle=False)
        return model

    files = _write_both(keras_ref, tmp_path, build)
    ref_model, our_model = files["keras"][0], files["kerasish"][0]
    expected = _np(ref_model.predict(X, verbose=0))
    assert_same(our_model.predict(X, verbose=0), expected)
    for (writer, reader), model in _load_everywhere(keras_ref, files).items():
        assert_same(_np(model.predict(X, verbose=0)), expected)
        # the compiled state travels: both continue training from the same optimizer step
        assert int(_np(model.optimizer.iterations)) == 1, (writer, reader)


def test_clone_weights_file_and_json(keras_ref, tmp_path):
    results = []
    for K in (keras_ref, keras):
        objects = _guide_objects(K)
        inputs = K.Input((10,), name="digits")
        x = K.layers.Dense(4, activation="relu", name="dense_1")(inputs)
        x = objects["CustomLayer"](2.0)(x)
        outputs = K.layers.Dense(1, name="predictions")(x)
        model = _set_drawn(K.Model(inputs, outputs))
        clone = K.models.clone_model(model)
        clone.set_weights(model.get_weights())
        path = str(tmp_path / f"{K.__name__}.weights.h5")
        model.save_weights(path)
        from_json = K.models.model_from_json(model.to_json())
        results.append((model, clone, path, from_json))
    (ref, ref_clone, ref_path, ref_json), (ours, our_clone, our_path, our_json) = results
    expected = _np(ref(X))
    assert_same(ours(X), expected)
    assert_same(our_clone(X), _np(ref_clone(X)))
    # weights files cross over: each framework loads the other's
    ref_json.load_weights(our_path)
    our_json.load_weights(ref_path)
    assert_same(_np(ref_json(X)), expected)
    assert_same(our_json(X), expected)
    assert [layer.name for layer in our_json.layers] == [layer.name for layer in ref_json.layers]


def test_save_own_variables(keras_ref, tmp_path):
    """The guide's `LayerWithCustomVariable` (a Dense subclass) calls
    `super().save_own_variables(store)`, which kerasish's Layer lacked
    (AttributeError). Keras 3.15's own Dense writes only kernel and bias there,
    while the guide's loader assigns `store["0"], ...` in `self.weights` order
    (my_variable first), so Keras cannot reload its own file of this layer
    ("The shape of the target variable ... must match"). kerasish writes the
    layer's own variables in `weights` order, so its file reloads in kerasish
    and in Keras."""

    def build_variables(K, objects):
        model = K.Sequential([K.Input((10,)), objects["LayerWithCustomVariable"](3)])
        model = _set_drawn(model)
        model.compile(optimizer="adam", loss="mean_squared_error")
        model.fit(X, np.repeat(Y, 3, axis=1), epochs=1, verbose=0, shuffle=False)
        model.layers[0].my_variable.assign(np.array([5.0, 6.0, 7.0], "float32"))
        return model

    files = _write_both(keras_ref, tmp_path, build_variables)
    expected = _np(files["keras"][0](X))
    assert_same(files["kerasish"][0](X), expected)
    written_by_us = {"kerasish": files.pop("kerasish")}
    for key, restored in _load_everywhere(keras_ref, written_by_us).items():
        np.testing.assert_array_equal(_np(restored.layers[0].my_variable), [5.0, 6.0, 7.0], err_msg=str(key))
        assert_same(_np(restored(X)), expected)
    with pytest.raises(ValueError, match="must match"):
        _load_everywhere(keras_ref, files)  # Keras's own file, read by Keras first


def test_layer_default_own_variables_hooks(keras_ref):
    """Layer's default `save_own_variables` / `load_own_variables` write and
    read the layer's own variables (not its sublayers'), as Keras's."""
    stores = []
    for K in (keras_ref, keras):
        class Block(K.layers.Layer):
            def __init__(self):
                super().__init__()
                self.inner = K.layers.Dense(2)

            def build(self, input_shape):
                self.scale = self.add_weight(shape=(3,), initializer="ones", name="scale")
                self.count = self.add_weight(shape=(), initializer="zeros", name="count", trainable=False)
                self.inner.build(input_shape)

            def call(self, x):
                return self.inner(x * self.scale)

        layer = Block()
        layer.build((None, 3))
        store = {}
        layer.save_own_variables(store)
        stores.append({k: _np(v).tolist() for k, v in store.items()})
        layer.load_own_variables({"0": np.full((3,), 2.0, "float32"), "1": np.array(4.0, "float32")})
        stores.append([_np(layer.scale).tolist(), float(_np(layer.count))])
        with pytest.raises(ValueError, match="expected 2 variables, but received 1"):
            layer.load_own_variables({"0": np.ones((3,), "float32")})
    assert stores[2:] == stores[:2]
    assert stores[0] == {"0": [1.0, 1.0, 1.0], "1": 0.0}


def test_get_build_config_and_build_from_config(keras_ref, tmp_path):
    def build_custom_build(K, objects):
        layer = objects["LayerWithCustomBuild"](units=4)
        layer.build(input_shape=(10,), layer_init="random_normal")
        model = K.Sequential([layer, K.layers.Dense(1, activation="sigmoid")])
        model(X)
        return _set_drawn(model)

    files = _write_both(keras_ref, tmp_path, build_custom_build)
    expected = _np(files["keras"][0](X))
    assert_same(files["kerasish"][0](X), expected)
    for key, restored in _load_everywhere(keras_ref, files).items():
        assert restored.layers[0].layer_init == "random_normal", key
        assert restored.built, key
        assert_same(_np(restored(X)), expected)


def test_save_assets(keras_ref, tmp_path):
    def build(K, objects):
        layer = objects["LayerWithCustomAssets"](vocab="Mary had a <unk> lamb.", units=5)
        model = K.Sequential([K.Input((10,)), layer])
        model(X)
        return _set_drawn(model)

    files = _write_both(keras_ref, tmp_path, build)
    for key, restored in _load_everywhere(keras_ref, files).items():
        assert restored.layers[0].vocab == "Mary had a little lamb.", key


def _placeholder_batch(config, depth=0):
    """A config with the batch size of each nested `build_config`'s input
    shape made None: a sublayer built by the symbolic call of a functional
    model records the placeholder batch size its framework probed with
    (Keras 83, kerasish 13), a number with no meaning."""
    if isinstance(config, dict):
        out = {k: _placeholder_batch(v, depth + 1) for k, v in config.items()}
        shape = out.get("build_config", {}).get("input_shape") if depth > 3 else None
        if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], int):
            out["build_config"] = {**out["build_config"], "input_shape": type(shape)((None, *shape[1:]))}
        return out
    if isinstance(config, (list, tuple)):
        return type(config)(_placeholder_batch(v, depth + 1) for v in config)
    return config


def test_configs_holding_layer_objects(keras_ref):
    """A layer given to a custom layer and returned as is by its `get_config`
    is serialized inside the config, as Keras does. kerasish left the live
    object there, so the guide's `from_config` (`keras.layers.deserialize(
    config["first_layer"])`) raised "Could not interpret serialized layer"."""
    results = []
    for K in (keras_ref, keras):
        objects = _guide_objects(K)
        layer = objects["MyDense"](units=4, kernel_regularizer="l1", kernel_initializer="ones")
        layer3 = objects["MyDense"](units=6, nested_model=layer)
        config = K.layers.serialize(layer3)
        new_layer = K.layers.deserialize(copy.deepcopy(config))

        inputs = K.Input((5,))
        model = K.Model(inputs, objects["ComplexModel"](first_layer=layer)(inputs))
        model_config = model.get_config()
        new_model = K.Model.from_config(copy.deepcopy(model_config))
        new_model.set_weights(_set_drawn(model).get_weights())
        x = np.random.default_rng(2).random((3, 5)).astype("float32")
        results.append({
            "config": config,
            "new_layer": (new_layer.hidden_units, dict(new_layer.nested_model)),
            "model_config": model_config,
            "layers": [layer.name for layer in new_model.layers],
            "out": (_np(model(x)), _np(new_model(x))),
            "losses": len(new_model.losses),
        })
    ref, ours = results
    assert ours["config"] == ref["config"]
    assert ours["new_layer"] == ref["new_layer"]
    # the nested layers' `build_config`s are there in both (serialize_keras_object records them)
    assert "build_config" in ours["model_config"]["layers"][1]["config"]["first_layer"]
    assert _placeholder_batch(ours["model_config"]) == _placeholder_batch(ref["model_config"])
    assert ours["layers"] == ref["layers"]
    assert_same(ours["out"], ref["out"])
    assert ours["losses"] == ref["losses"] == 1  # the l1 regularizer of the rebuilt first layer


def test_model_with_layer_objects_in_config_saved_and_loaded(keras_ref, tmp_path):
    def build(K, objects):
        layer = objects["MyDense"](units=4, kernel_regularizer="l1", kernel_initializer="ones")
        inputs = K.Input((5,))
        model = K.Model(inputs, objects["ComplexModel"](first_layer=layer)(inputs))
        return _set_drawn(model)

    files = _write_both(keras_ref, tmp_path, build)
    x = np.random.default_rng(3).random((3, 5)).astype("float32")
    expected = _np(files["keras"][0](x))
    assert_same(files["kerasish"][0](x), expected)
    for key, restored in _load_everywhere(keras_ref, files).items():
        assert_same(_np(restored(x)), expected)
        assert len(restored.losses) == 1, key


def test_loading_an_unregistered_class_needs_custom_objects(keras_ref, tmp_path):
    """The guide: a class neither registered nor passed in `custom_objects`
    cannot be loaded. Keras 3 raises TypeError ("Could not locate class");
    kerasish raised ValueError ("Unknown layer", Keras 2's type): its error is
    now both, so either `except` clause catches it."""
    for K in (keras_ref, keras):
        objects = _guide_objects(K)

        class Unregistered(K.layers.Layer):
            def call(self, x):
                return x

        inputs = K.Input((3,))
        model = K.Model(inputs, Unregistered()(objects["CustomLayer"](2.0)(inputs)))
        path = str(tmp_path / f"{K.__name__}_unregistered.keras")
        model.save(path)
        with pytest.raises(TypeError, match="Could not locate class 'Unregistered'"):
            K.saving.load_model(path)
        restored = K.saving.load_model(path, custom_objects={"Unregistered": Unregistered})
        assert [type(layer).__name__ for layer in restored.layers] == ["InputLayer", "CustomLayer", "Unregistered"]
        with K.saving.custom_object_scope({"Unregistered": Unregistered}):
            restored = K.saving.load_model(path)
        assert_same(_np(restored(np.ones((1, 3), "float32"))), np.full((1, 3), 2.0, "float32"))
    with pytest.raises(ValueError, match="Unknown layer: 'Unregistered'"):
        keras.saving.load_model(str(tmp_path / "kerasish_unregistered.keras"))


def test_registered_function_as_an_activation_config(keras_ref):
    configs = []
    for K in (keras_ref, keras):
        custom_fn = _guide_objects(K)["custom_fn"]
        config = K.layers.Dense(2, activation=custom_fn).get_config()
        configs.append(config["activation"])
        assert K.layers.Dense.from_config(config).activation is custom_fn
    # Keras writes the module of a function's class ("builtins"), not the function's
    assert configs[1] == configs[0] == {"module": "builtins", "class_name": "function",
                                        "config": "my_package>custom_fn", "registered_name": "function"}


def test_keras_file_compiled_with_loss_and_metric_functions(keras_ref, tmp_path):
    """Keras writes a loss/metric given as a function
    (`compile(loss=keras.losses.mean_squared_error)`) as
    `{"module": "builtins", "class_name": "function", "config": name}`;
    kerasish could not read that form ("Unknown loss function: 'function'") and
    loaded the model uncompiled, with a warning."""
    x, y = np.ones((4, 3), "float32"), np.ones((4, 2), "float32")
    model = keras_ref.Sequential([keras_ref.Input((3,)), keras_ref.layers.Dense(2)])
    model.compile(optimizer="adam", loss=keras_ref.losses.mean_squared_error,
                  metrics=[keras_ref.metrics.mean_absolute_error])
    model.fit(x, y, verbose=0)
    path = str(tmp_path / "function_loss.keras")
    model.save(path)
    ours = keras.saving.load_model(path)
    assert ours.compiled
    assert_same(ours.evaluate(x, y, verbose=0, return_dict=True), model.evaluate(x, y, verbose=0, return_dict=True))
    form = {"module": "builtins", "class_name": "function", "config": "mean_squared_error",
            "registered_name": "function"}
    assert keras.saving.deserialize_keras_object(form) is keras.losses.mean_squared_error
    assert keras.losses.get(form) is keras.losses.mean_squared_error
    with pytest.raises(TypeError, match="Could not locate function 'nope'"):
        keras.saving.deserialize_keras_object({**form, "config": "nope"})


def test_functions_serialize_in_keras_form(keras_ref):
    """`serialize_keras_object(fn)` (and `keras.losses.serialize(fn)`) give
    Keras 3's dict, not the bare name kerasish returned."""
    results = []
    for K in (keras_ref, keras):
        custom_fn = _guide_objects(K)["custom_fn"]
        results.append([
            K.saving.serialize_keras_object(custom_fn),
            K.saving.serialize_keras_object(K.losses.mean_squared_error),
            K.losses.serialize(K.losses.mean_squared_error),
            K.saving.deserialize_keras_object(K.saving.serialize_keras_object(custom_fn)) is custom_fn,
        ])
    assert results[1] == results[0]
    assert results[1][1] == {"module": "builtins", "class_name": "function", "config": "mean_squared_error",
                             "registered_name": "function"}
