"""keras.quantizers functions and classes vs real Keras 3 (torch backend):
bit-exact where Keras is deterministic."""

import numpy as np
import pytest
import torch

import kerasish
from kerasish import quantizers as q


def _np(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _knp(keras, x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("axis", [0, -1, (0, 1)])
@pytest.mark.parametrize("to_numpy", [False, True])
@pytest.mark.parametrize("value_range", [(-127, 127), (-8, 7)])
def test_abs_max_quantize_is_bit_exact(keras_ref, rng, axis, to_numpy, value_range):
    x = (rng.standard_normal((33, 17)) * 3).astype("float32")
    kv, ks = keras_ref.quantizers.abs_max_quantize(x, axis, value_range=value_range, to_numpy=to_numpy)
    ov, os_ = q.abs_max_quantize(torch.tensor(x), axis, value_range=value_range, to_numpy=to_numpy)
    assert ov.dtype == torch.int8 and os_.dtype == torch.float32
    np.testing.assert_array_equal(_np(ov), _knp(keras_ref, kv))
    np.testing.assert_array_equal(_np(os_), _knp(keras_ref, ks))


@pytest.mark.parametrize("to_numpy", [False, True])
@pytest.mark.parametrize(("shape", "block"), [((64, 8), 16), ((50, 6), 16), ((7, 3), 128)])
def test_grouped_with_zero_point_is_bit_exact(keras_ref, rng, to_numpy, shape, block):
    x = rng.standard_normal(shape).astype("float32")
    x[:, 0] = 0.5  # a constant column: the tensor path widens its range
    ref = keras_ref.quantizers.abs_max_quantize_grouped_with_zero_point(x, block_size=block, to_numpy=to_numpy)
    got = q.abs_max_quantize_grouped_with_zero_point(torch.tensor(x), block_size=block, to_numpy=to_numpy)
    for r, g in zip(ref, got):
        assert str(g.dtype).split(".")[-1] == keras_ref.backend.standardize_dtype(r.dtype)
        np.testing.assert_array_equal(_np(g), _knp(keras_ref, r))


def test_abs_max_quantizer_class_and_config(keras_ref, rng):
    x = rng.standard_normal((6, 5)).astype("float32")
    for kwargs in ({}, {"axis": 0}, {"axis": (0,), "value_range": (-8, 7), "epsilon": 1e-3}):
        ref, ours = keras_ref.quantizers.AbsMaxQuantizer(**kwargs), q.AbsMaxQuantizer(**kwargs)
        assert ours.get_config() == ref.get_config()
        for r, g in zip(ref(x), ours(torch.tensor(x))):
            np.testing.assert_array_equal(_np(g), _knp(keras_ref, r))
        assert q.serialize(ours) == keras_ref.quantizers.serialize(ref)
        back = q.deserialize(keras_ref.quantizers.serialize(ref))
        assert isinstance(back, q.AbsMaxQuantizer) and back.get_config() == ref.get_config()
    with pytest.raises(ValueError, match="value_range"):
        q.AbsMaxQuantizer(value_range=(-200, 127))
    assert isinstance(q.get("AbsMaxQuantizer"), q.AbsMaxQuantizer)
    assert q.get(None) is None
    with pytest.raises(ValueError, match="Could not interpret quantizer identifier"):
        q.get(3)
    assert kerasish.Quantizer is q.Quantizer
    base = q.Quantizer()
    assert base(5) == 5 and base.output_dtype == "int8"
    with pytest.raises(NotImplementedError):
        base.get_config()


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize(("shape", "axis"), [((5, 3), 0), ((4, 7), -1), ((3, 5, 2), 1), ((6, 2), 0)])
def test_pack_unpack_int4_are_bit_exact(keras_ref, rng, dtype, shape, axis):
    low, high = (-8, 8) if dtype == "int8" else (0, 16)
    x = rng.integers(low, high, size=shape).astype(dtype)
    kp, kshape, kn = keras_ref.quantizers.pack_int4(x, axis=axis, dtype=dtype)
    op, oshape, on = q.pack_int4(torch.tensor(x), axis=axis, dtype=dtype)
    assert (oshape, on) == (tuple(kshape), kn)
    np.testing.assert_array_equal(_np(op), _knp(keras_ref, kp))
    ku = keras_ref.quantizers.unpack_int4(kp, kn, axis=axis, dtype=dtype)
    ou = q.unpack_int4(op, on, axis=axis, dtype=dtype)
    np.testing.assert_array_equal(_np(ou), _knp(keras_ref, ku))
    np.testing.assert_array_equal(_np(ou), x)


def test_pack_int4_errors_match_keras(keras_ref):
    x = np.zeros((2, 2), "int32")
    for lib in (keras_ref.quantizers, q):
        with pytest.raises(TypeError, match="Expected int8 tensor for packing"):
            lib.pack_int4(x if lib is keras_ref.quantizers else torch.tensor(x))
        with pytest.raises(ValueError, match="Expected dtype to be 'int8' or 'uint8'"):
            lib.pack_int4(np.zeros((2, 2), "int8"), dtype="int16")


@pytest.mark.parametrize("axis", [None, -1])
@pytest.mark.parametrize("narrow_range", [False, True])
@pytest.mark.parametrize("num_bits", [8, 4])
def test_fake_quant_values_and_gradients(keras_ref, rng, axis, narrow_range, num_bits):
    x = (rng.standard_normal((4, 6)) * 2).astype("float32")
    if axis is None:
        lo, hi = np.float32(-1.3), np.float32(1.7)
    else:
        lo = rng.uniform(-2, -0.5, 6).astype("float32")
        hi = rng.uniform(0.5, 2, 6).astype("float32")
    up = rng.standard_normal((4, 6)).astype("float32")

    def run(fn, tensors):
        xt, lt, ht = (torch.tensor(np.asarray(t), requires_grad=True) for t in tensors)
        y = fn(xt, lt, ht, num_bits=num_bits, narrow_range=narrow_range, axis=axis)
        (y * torch.tensor(up)).sum().backward()
        return [_np(y)] + [_np(t.grad) for t in (xt, lt, ht)]

    ref = run(keras_ref.quantizers.fake_quant_with_min_max_vars, (x, lo, hi))
    got = run(q.fake_quant_with_min_max_vars, (x, lo, hi))
    for r, g in zip(ref, got):
        np.testing.assert_array_equal(g, r)
    assert np.any(ref[2] != 0) and np.any(ref[1] == 0)  # clipping happened: the test exercises all paths


def test_float8_helpers_are_bit_exact(keras_ref, rng):
    kq = keras_ref.quantizers
    x = (rng.standard_normal((8, 5)) * 300).astype("float32")
    for qd in ("float8_e4m3fn", "float8_e5m2"):
        for scale in (1.0, 0.37):
            r = kq.quantize_and_dequantize(x, np.float32(scale), qd, "float32")
            g = q.quantize_and_dequantize(torch.tensor(x), torch.tensor(scale), qd, "float32")
            np.testing.assert_array_equal(_np(g), _knp(keras_ref, r))
    hist = rng.uniform(0, 5, 7).astype("float32")
    r = kq.compute_float8_amax_history(x, hist)
    g = q.compute_float8_amax_history(torch.tensor(x), torch.tensor(hist))
    np.testing.assert_array_equal(_np(g), _knp(keras_ref, r))
    for amax in (3.5, 0.0, np.inf):
        for margin in (0, 2):
            r = kq.compute_float8_scale(np.float32(amax), np.float32(0.25), np.float32(448.0), margin)
            g = q.compute_float8_scale(torch.tensor(amax, dtype=torch.float32), torch.tensor(0.25), torch.tensor(448.0), margin)
            np.testing.assert_array_equal(_np(g), _knp(keras_ref, r))


def test_quantization_configs_match_keras(keras_ref):
    kq = keras_ref.quantizers
    pairs = [
        (kq.Int8QuantizationConfig(), q.Int8QuantizationConfig()),
        (kq.Int8QuantizationConfig(activation_quantizer=None), q.Int8QuantizationConfig(activation_quantizer=None)),
        (kq.Int4QuantizationConfig(), q.Int4QuantizationConfig()),
        (kq.Int4QuantizationConfig(block_size=-1, weight_quantizer=kq.AbsMaxQuantizer(axis=0, value_range=(-8, 7))),
         q.Int4QuantizationConfig(block_size=-1, weight_quantizer=q.AbsMaxQuantizer(axis=0, value_range=(-8, 7)))),
        (kq.Float8QuantizationConfig(), q.Float8QuantizationConfig()),
    ]
    for ref, ours in pairs:
        assert ours.mode == ref.mode
        assert q.serialize(ours) == kq.serialize(ref)
        back = q.deserialize(kq.serialize(ref))
        assert type(back).__name__ == type(ref).__name__ and q.serialize(back) == kq.serialize(ref)
        assert kq.serialize(kq.deserialize(q.serialize(ours))) == kq.serialize(ref)
    for lib in (kq, q):
        with pytest.raises(ValueError, match="block_size must be None, -1, or a positive integer"):
            lib.Int4QuantizationConfig(block_size=0)
        with pytest.raises(ValueError, match="does not support custom quantizers"):
            lib.Int4QuantizationConfig(weight_quantizer=lib.AbsMaxQuantizer(value_range=(-8, 7)))
        with pytest.raises(ValueError, match="value_range=\\(-8, 7\\)"):
            lib.Int4QuantizationConfig(block_size=-1, weight_quantizer=lib.AbsMaxQuantizer())
        with pytest.raises(NotImplementedError):
            lib.QuantizationConfig().mode  # noqa: B018
