"""Dense.quantize / Model.quantize / LoRA vs real Keras 3 (torch backend):
the same variables, outputs, gradients, configs, files and training."""

import warnings

import numpy as np
import pytest
import torch

import kerasish
from kerasish import quantizers as q

CONFIGS = {
    "int8": lambda lib: None,
    "int8_weight_only": lambda lib: lib.quantizers.Int8QuantizationConfig(activation_quantizer=None),
    "int4": lambda lib: None,
    "int4_per_channel": lambda lib: lib.quantizers.Int4QuantizationConfig(block_size=-1),
    "int4_block_6": lambda lib: lib.quantizers.Int4QuantizationConfig(block_size=6),
    "float8": lambda lib: None,
}


def _mode(case):
    return case.split("_")[0]


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _weights(rng, din=16, units=8):
    return [rng.standard_normal((din, units)).astype("float32") * 0.5, rng.standard_normal(units).astype("float32")]


def _dense(lib, weights, case, units=8, **kwargs):
    layer = lib.layers.Dense(units, **kwargs)
    layer.build((None, weights[0].shape[0]))
    layer.set_weights(weights)
    layer.quantize(_mode(case), config=CONFIGS[case](lib))
    return layer


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_quantized_dense_matches_keras(keras_ref, case):
    rng = np.random.default_rng(1)
    weights = _weights(rng, din=20, units=7)  # odd units: int4 packing pads; 20 rows: a partial group
    ref = _dense(keras_ref, weights, case, units=7, activation="relu")
    ours = _dense(kerasish, weights, case, units=7, activation="relu")
    assert ours.dtype_policy.name == ref.dtype_policy.name
    assert ours.quantization_mode == ref.quantization_mode == _mode(case)
    expected = [(v.name, v.dtype, tuple(v.shape)) for v in ref.weights]
    assert [(v.name, str(v.dtype).replace("torch.", ""), tuple(v.shape)) for v in ours.weights] == expected
    for r, o in zip(ref.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(_np(o), r)
    x = rng.standard_normal((6, 20)).astype("float32")
    xk = keras_ref.ops.convert_to_tensor(x)
    xk.requires_grad_(True)
    yk = ref(xk)
    yk.sum().backward()
    xo = torch.tensor(x, requires_grad=True)
    yo = ours(xo)
    yo.sum().backward()
    np.testing.assert_array_equal(_np(yo), keras_ref.ops.convert_to_numpy(yk))
    np.testing.assert_allclose(_np(xo.grad), _np(xk.grad), rtol=1e-6, atol=1e-6)
    rc, oc = ref.get_config(), ours.get_config()
    assert oc["dtype"] == keras_ref.dtype_policies.serialize(ref.dtype_policy)
    assert oc["quantization_config"] == rc["quantization_config"]
    clone = kerasish.layers.Dense.from_config(oc)
    assert clone.dtype_policy == ours.dtype_policy and type(clone.quantization_config) is type(ours.quantization_config)


def _model(lib, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    model = lib.Sequential([lib.Input((16,)), lib.layers.Dense(8, activation="relu"), lib.layers.Dense(3)])
    model.set_weights(_weights(rng, 16, 8) + _weights(rng, 8, 3))
    return model


@pytest.mark.parametrize("mode", ["int8", "int4", "float8"])
def test_quantized_files_move_both_ways(keras_ref, tmp_path, mode):
    x = np.random.default_rng(2).standard_normal((5, 16)).astype("float32")
    ref = _model(keras_ref)
    with pytest.warns(UserWarning, match="InputLayer"):
        ref.quantize(mode)
    expected = keras_ref.ops.convert_to_numpy(ref.predict(x, verbose=0))
    # .keras, Keras -> kerasish -> Keras
    ref.save(tmp_path / "ref.keras")
    ours = kerasish.saving.load_model(tmp_path / "ref.keras")
    assert [layer.dtype_policy.name for layer in ours.layers] == [layer.dtype_policy.name for layer in ref.layers]
    np.testing.assert_array_equal(np.asarray(ours.predict(x, verbose=0)), expected)
    ours.save(tmp_path / "ours.keras")
    back = keras_ref.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_array_equal(keras_ref.ops.convert_to_numpy(back.predict(x, verbose=0)), expected)
    # .weights.h5 both ways, into models quantized on each side
    ref.save_weights(tmp_path / "ref.weights.h5")
    fresh = _model(kerasish, rng_seed=5)
    fresh.quantize(mode)
    fresh.load_weights(tmp_path / "ref.weights.h5")
    np.testing.assert_array_equal(np.asarray(fresh.predict(x, verbose=0)), expected)
    fresh.save_weights(tmp_path / "ours.weights.h5")
    other = _model(keras_ref, rng_seed=5)
    other.quantize(mode)
    other.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_array_equal(keras_ref.ops.convert_to_numpy(other.predict(x, verbose=0)), expected)


def _quantize_quietly(model, mode):
    import warnings

    with warnings.catch_warnings():  # Keras warns that its InputLayer has no `quantize`
        warnings.simplefilter("ignore")
        model.quantize(mode)


def _set_lora(model, lib):
    for i, layer in enumerate(model.layers):
        layer.enable_lora(2)
        r = np.random.default_rng(10 + i)
        layer.lora_kernel_a.assign(r.standard_normal(tuple(layer.lora_kernel_a.shape)).astype("float32") * 0.1)
        layer.lora_kernel_b.assign(r.standard_normal(tuple(layer.lora_kernel_b.shape)).astype("float32") * 0.1)


@pytest.mark.parametrize(("mode", "lora"), [("float8", False), ("int8", True), ("int4", True), (None, True)])
def test_training_matches_keras(keras_ref, mode, lora):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((32, 16)).astype("float32"), rng.standard_normal((32, 3)).astype("float32")
    histories, weights, names = [], [], []
    for lib in (keras_ref, kerasish):
        model = _model(lib)
        if mode:
            _quantize_quietly(model, mode)
        if lora:
            _set_lora(model, lib)
        model.compile(optimizer=lib.optimizers.SGD(0.05), loss="mse")
        histories.append(model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False).history["loss"])
        weights.append([np.asarray(_np(w)) for w in model.get_weights()])
        names.append([w.name for w in model.trainable_weights])
    assert names[1] == names[0]
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-6)
    assert len(weights[0]) == len(weights[1])
    for r, o in zip(*weights):
        np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-6)
    if mode == "float8":  # the scales and amax histories were overwritten with their updates
        assert np.any(weights[1][3] != 0) and np.any(weights[1][7] != 0)


@pytest.mark.parametrize("mode", ["int8", "int4", None])
def test_lora_is_merged_into_saved_files_like_keras(keras_ref, tmp_path, mode):
    import h5py

    files = []
    for lib in (keras_ref, kerasish):
        model = _model(lib)
        if mode:
            _quantize_quietly(model, mode)
        _set_lora(model, lib)
        path = tmp_path / f"{lib.__name__}.weights.h5"
        model.save_weights(path)
        files.append(path)

    def read(path):
        out = {}
        with h5py.File(path) as f:
            f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return out

    ref, ours = read(files[0]), read(files[1])
    assert sorted(ours) == sorted(ref)
    for key in ref:
        np.testing.assert_allclose(ours[key], ref[key], rtol=1e-6, atol=1e-6, err_msg=key)
    # loading a merged file into a LoRA layer zeroes the LoRA factors (as Keras)
    model = _model(kerasish, rng_seed=7)
    if mode:
        model.quantize(mode)
    _set_lora(model, kerasish)
    model.load_weights(files[0])
    assert all(not layer.lora_kernel_a.detach().any() for layer in model.layers)


def test_lora_rank_config_round_trip(keras_ref):
    ref = keras_ref.layers.Dense(4, lora_rank=3, lora_alpha=6)
    ref.build((None, 5))
    ours = kerasish.layers.Dense(4, lora_rank=3, lora_alpha=6)
    ours.build((None, 5))
    assert [w.name for w in ours.trainable_weights] == [w.name for w in ref.trainable_weights]
    assert (ours.lora_rank, ours.lora_alpha) == (ref.lora_rank, ref.lora_alpha)
    rc, oc = ref.get_config(), ours.get_config()
    assert (oc["lora_rank"], oc["lora_alpha"]) == (rc["lora_rank"], rc["lora_alpha"])
    assert not ours._kernel.requires_grad  # the stored kernel is frozen (`kernel` is computed)


def test_quantize_errors_match_keras(keras_ref):
    for lib in (keras_ref, kerasish):
        unbuilt = lib.layers.Dense(3)
        with pytest.raises(ValueError, match="Cannot quantize a layer that isn't yet built"):
            unbuilt.quantize("int8")
        layer = lib.layers.Dense(3)
        layer.build((None, 4))
        with pytest.raises(ValueError, match="Invalid quantization mode"):
            layer.quantize("int3")
        with pytest.raises(ValueError, match="Contradictory arguments"):
            layer.quantize("int8", config=lib.quantizers.Int4QuantizationConfig())
        with pytest.raises(ValueError, match="For GPTQ, you must pass a `GPTQConfig`"):
            layer.quantize("gptq")
        layer.quantize("int8")
        with pytest.raises(ValueError, match="is already quantized"):
            layer.quantize("int8")
        half = lib.layers.Dense(3, dtype="float16")
        half.build((None, 4))
        with pytest.raises(ValueError, match="doesn't work well with compute_dtype='float16'"):
            half.quantize("int8")

        class MyDense(lib.layers.Dense):
            pass

        sub = MyDense(3)
        sub.build((None, 4))
        with pytest.raises(NotImplementedError, match="does not have a `quantize` method"):
            sub.quantize("int8")
        sub.quantize("int8", type_check=False)
        assert sub.quantization_mode == "int8"
        with pytest.raises(NotImplementedError, match="does not have a `quantize` method"):
            lib.layers.Dropout(0.1).quantize("int8")


def test_model_quantize_filters_and_policy_setter(keras_ref):
    modes = []
    for lib in (keras_ref, kerasish):
        model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, name="a"), lib.layers.Dense(3, name="b"),
                                lib.layers.Dense(2, name="c")])
        model.quantize("int8", filters=r"^a$")
        model.quantize("int4", filters=["^b$"])
        model.quantize("float8", filters=lambda layer: layer.name == "c")
        modes.append([layer.dtype_policy.name for layer in model.layers])
        layer = lib.layers.Dense(2)
        layer.build((None, 3))
        layer.dtype_policy = "int8_from_float32"  # a quantized policy on a built layer quantizes it
        assert layer.quantization_mode == "int8"
        assert str(layer.kernel.dtype).endswith("int8")
    assert modes[1] == modes[0] == ["int8_from_float32", "int4/128_from_float32", "float8_from_float32"]
    with pytest.raises(ValueError, match="filters"):
        _model(kerasish).quantize("int8", filters=3)
    with pytest.raises(ValueError, match="For GPTQ, you must pass a `GPTQConfig`"):
        _model(kerasish).quantize("gptq")
    with pytest.raises(ValueError, match="For AWQ, you must pass an `AWQConfig`"):
        _model(kerasish).quantize("awq")


def test_custom_int8_quantizers_match_keras(keras_ref):
    rng = np.random.default_rng(4)
    weights = _weights(rng)
    x = rng.standard_normal((3, 16)).astype("float32")
    results = []
    for lib in (keras_ref, kerasish):
        config = lib.quantizers.Int8QuantizationConfig(
            weight_quantizer=lib.quantizers.AbsMaxQuantizer(axis=0, value_range=(-100, 100)),
            activation_quantizer=lib.quantizers.AbsMaxQuantizer(value_range=(-50, 50)))
        layer = lib.layers.Dense(8)
        layer.build((None, 16))
        layer.set_weights(weights)
        layer.quantize(config=config)
        y = layer(x if lib is keras_ref else torch.tensor(x))
        results.append([np.asarray(_np(w)) for w in layer.get_weights()] + [_np(y)])
    for r, o in zip(*results):
        np.testing.assert_array_equal(o, r)
    assert isinstance(q.get("int8_quantization_config"), q.Int8QuantizationConfig)


def test_nested_quantized_variables_carry_the_outer_path(keras_ref):
    paths = []
    for lib in (keras_ref, kerasish):
        inputs = lib.Input((4,))
        inner = lib.Sequential([lib.layers.Dense(3, name="dense")], name="inner")
        model = lib.Model(inputs, inner(inputs))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.quantize("float8")
        paths.append([w.path for w in model.weights])
    assert paths[1] == paths[0]
    assert "inner/dense/outputs_grad_scale" in paths[1]
