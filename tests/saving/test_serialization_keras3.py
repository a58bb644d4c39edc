"""`keras.saving.serialize_keras_object` / `deserialize_keras_object` as
Keras 3's public functions: the same configs as Keras for plain values,
containers, NumPy arrays, tensors, bytes, slices, `...`, layers (with their
`build_config`), compiled models (with their `compile_config`), schedules,
dtype policies and functions; configs move both ways; the documented
custom-layer pattern (`from_config` calling `deserialize_keras_object` on a
nested layer's config) saves and loads; Python lambdas need
`safe_mode=False`, also inside a nested `from_config`; non-modeling names
are refused. kerasish's `deserialize_keras_object` had Keras 2's signature
(no `safe_mode`) and could not find `Dense` in a config without
`custom_objects`."""

import numpy as np
import pytest
import torch

import kerasish as keras

OBJECTS = {
    "int": lambda k: 3,
    "tuple": lambda k: (1, 2, (3, 4)),
    "dict": lambda k: {"a": (1, 2), "b": [None, "x"]},
    "numpy": lambda k: np.arange(4, dtype="float32").reshape(2, 2),
    "numpy-scalar": lambda k: np.float32(2.5),
    "bytes": lambda k: b"abc",
    "slice": lambda k: slice(1, None, 2),
    "ellipsis": lambda k: ...,
    "tensor": lambda k: k.ops.arange(3, dtype="int32"),
    "dense": lambda k: k.layers.Dense(3, activation="relu", name="d"),
    "built-dense": lambda k: _built(k.layers.Dense(3, name="d"), (None, 4)),
    "schedule": lambda k: k.optimizers.schedules.CosineDecay(0.1, 100, alpha=0.1),
    "initializer": lambda k: k.initializers.GlorotUniform(seed=3),
    "metric": lambda k: k.metrics.Mean(name="m"),
    "policy": lambda k: k.dtype_policies.DTypePolicy("mixed_float16"),
    "loss-fn": lambda k: k.losses.mean_squared_error,
    "activation-fn": lambda k: k.activations.gelu,
    "keras-tensor": lambda k: k.KerasTensor((None, 3), dtype="float16"),
}


def _built(layer, shape):
    layer.build(shape)
    return layer


@pytest.mark.parametrize("name", list(OBJECTS))
def test_configs_equal_keras_and_move_both_ways(keras_ref, name):
    ours = keras.saving.serialize_keras_object(OBJECTS[name](keras))
    ref = keras_ref.saving.serialize_keras_object(OBJECTS[name](keras_ref))
    assert ours == ref
    back_ours = keras.saving.deserialize_keras_object(ref)
    back_ref = keras_ref.saving.deserialize_keras_object(ours)
    assert keras.saving.serialize_keras_object(back_ours) == keras_ref.saving.serialize_keras_object(back_ref)
    if name == "tensor":
        assert isinstance(back_ours, torch.Tensor) and back_ours.dtype == torch.int32
    if name == "built-dense":
        assert back_ours.built and back_ours.kernel.shape == (4, 3)


def test_compiled_model_keeps_its_compile_config(keras_ref):
    configs = []
    for k in (keras, keras_ref):
        model = k.Sequential([k.Input((3,)), k.layers.Dense(2, name="out")], name="net")
        # (named: Keras numbers unnamed optimizers per session, "sgd_1", ...)
        model.compile(optimizer=k.optimizers.SGD(name="sgd"), loss="mse", metrics=["mae"])
        configs.append(k.saving.serialize_keras_object(model))
    ours, ref = (dict(c["compile_config"]) for c in configs)
    # Keras on torch names its backend subclass's module (keras.src.backend.torch.optimizers.torch_sgd);
    # kerasish writes the public keras.optimizers, which Keras reads too
    ours_opt, ref_opt = ours.pop("optimizer")["config"], ref.pop("optimizer")["config"]
    assert ours_opt.pop("learning_rate") == pytest.approx(ref_opt.pop("learning_rate"))  # Keras: a float32 value
    assert ours_opt == ref_opt
    assert ours == ref
    restored = keras.saving.deserialize_keras_object(configs[1])
    assert restored.compiled and restored.loss == "mse"
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")
    assert set(restored.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "mae"}


def test_nested_layer_pattern_of_the_serialization_guide(tmp_path):
    """A custom layer whose `get_config` serializes a layer it holds and whose
    `from_config` deserializes it (the Keras 3 guide's pattern), through
    `.keras` save and load and through the public functions."""

    @keras.saving.register_keras_serializable(package="serial_test")
    class Scaled(keras.layers.Layer):
        def __init__(self, inner, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.inner, self.factor = inner, factor

        def call(self, x):
            return self.inner(x) * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor,
                    "inner": keras.saving.serialize_keras_object(self.inner)}

        @classmethod
        def from_config(cls, config):
            config["inner"] = keras.saving.deserialize_keras_object(config["inner"])
            return cls(**config)

    model = keras.Sequential([keras.Input((3,)), Scaled(keras.layers.Dense(2, name="inner_dense"), name="scaled")])
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    layer = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model.layers[0]))
    assert isinstance(layer.inner, keras.layers.Dense) and layer.inner.name == "inner_dense"


def test_lambdas_need_safe_mode_off_also_when_nested():
    with pytest.warns(UserWarning, match="includes a `lambda`"):
        blob = keras.saving.serialize_keras_object({"fn": lambda v: v + 1})
    with pytest.raises(ValueError, match="deserialization of a Python lambda"):
        keras.saving.deserialize_keras_object(blob)
    assert keras.saving.deserialize_keras_object(blob, safe_mode=False)["fn"](1) == 2
    lam = keras.layers.Lambda(lambda v: v * 3, name="lam")
    wrapped = keras.saving.serialize_keras_object(keras.Sequential([keras.Input((2,)), lam]))
    with pytest.raises(ValueError, match="Python lambda"):
        keras.saving.deserialize_keras_object(wrapped)
    model = keras.saving.deserialize_keras_object(wrapped, safe_mode=False)
    np.testing.assert_allclose(model.predict(np.ones((1, 2), "float32"), verbose=0), 3.0)


def test_names_and_modules_that_are_not_models_are_refused(keras_ref):
    for lib in (keras, keras_ref):
        with pytest.raises(ValueError, match="not a modeling function"):
            lib.saving.deserialize_keras_object(
                {"module": "keras.saving", "class_name": "function", "config": "load_model",
                 "registered_name": None})
    with pytest.raises(TypeError, match="Could not locate class 'Popen'"):
        keras.saving.deserialize_keras_object({"module": "subprocess", "class_name": "Popen",
                                               "config": {"args": ["true"]}, "registered_name": None})
    with pytest.raises(TypeError, match="Could not locate class 'NoSuchLayer'"):
        keras.saving.deserialize_keras_object({"module": "keras.layers", "class_name": "NoSuchLayer",
                                               "config": {}, "registered_name": None})


def test_custom_objects_and_registered_names():
    def twice(x):
        return x * 2

    config = keras.saving.serialize_keras_object(twice)
    assert config == {"module": "builtins", "class_name": "function", "config": "twice",
                      "registered_name": "function"}
    assert keras.saving.deserialize_keras_object(config, custom_objects={"twice": twice}) is twice
    with keras.saving.custom_object_scope({"twice": twice}):
        assert keras.saving.deserialize_keras_object(config) is twice
    assert keras.saving.deserialize_keras_object("twice", custom_objects={"twice": twice}) is twice


def test_load_model_custom_objects_reach_the_compile_config(tmp_path):
    """`load_model(path, custom_objects={...})` with an unregistered custom loss
    and metric: Keras keeps the custom objects in scope while it compiles the
    model from its `compile_config`; kerasish loaded such a model uncompiled
    (with a warning)."""

    def my_loss(y_true, y_pred):
        return keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=-1)

    def my_metric(y_true, y_pred):
        return keras.ops.max(keras.ops.abs(y_true - y_pred), axis=-1)

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=my_loss, metrics=[my_metric])
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")
    model.fit(x, y, verbose=0)
    model.save(tmp_path / "m.keras")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restored = keras.saving.load_model(tmp_path / "m.keras",
                                           custom_objects={"my_loss": my_loss, "my_metric": my_metric})
    assert restored.compiled
    assert restored.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(x, y, verbose=0, return_dict=True)
