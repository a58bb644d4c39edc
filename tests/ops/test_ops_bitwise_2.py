"""Ops that now equal Keras 3's (torch backend) bit for bit:

- `hard_sigmoid` / `hard_silu` / `hard_swish`: torch's fused `hardsigmoid` /
  `hardswish` (`x / 6 + 0.5` composed was up to ~1e3 ulp off near 0);
- `std`: torch's fused `std` (`sqrt(var)` was an ulp off);
- `layer_normalization` over several trailing axes: torch's `layer_norm`
  (mean/var composed were a few ulp off); `rms_scaling=True`: Keras's
  variance scaling (it was a true RMS norm);
- `average_pool` with "same" padding even on both sides: torch's pooling with
  `count_include_pad=False` (dividing two poolings was an ulp off);
- `image.map_coordinates`: each tap's weights multiplied together before the
  value, Keras's order (up to ~30 ulp off), hence `image.affine_transform`
  and `image.perspective_transform`;
- `image.scale_and_translate` with the Lanczos kernels:
  `r sin(pi x) sin(pi x / r) / (pi x)**2` as Keras/JAX evaluate it
  (`sinc(x) sinc(x / r)` was up to ~100 ulp off);
- `associative_scan`: JAX's odd/even recursion, which Keras follows;
- `istft(center=False)`: TF's/Keras's overlap-add (it raised).

`binary_crossentropy` on probabilities stays composed on purpose (checked
against the maths below). Inputs are random normal (and probabilities) of a
size where the old formulas did round differently; the comparison is
`np.testing.assert_array_equal`, no tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish.ops as kops

RNG = np.random.default_rng(7)


def normal(*shape, scale=3.0):
    return torch.tensor((RNG.standard_normal(shape) * scale).astype("float32"))


N = normal(32, 65)
N2 = normal(32, 65)
P = torch.sigmoid(N)
Q = torch.sigmoid(N2)
# 0 and 1 targets and outputs at and beyond the clip
P_EDGE = torch.tensor([[0.0, 1.0, 1e-9, 1 - 1e-9, 0.5, 0.3]], dtype=torch.float32)
T_EDGE = torch.tensor([[0.0, 1.0, 0.0, 1.0, 1.0, 0.7]], dtype=torch.float32)
X3 = normal(4, 9, 11)

CASES = [
    ("hard_sigmoid", (N,), {}),
    ("hard_silu", (N,), {}),
    ("hard_swish", (N,), {}),
    ("hard_sigmoid", (torch.tensor([-3.0, -2.999, 0.0, 1e-8, 2.999, 3.0, float("nan")]),), {}),
    ("hard_silu", (torch.tensor([-3.0, -2.999, 0.0, 1e-8, 2.999, 3.0, float("nan")]),), {}),
    ("std", (N,), {}),
    ("std", (N,), {"axis": 0}),
    ("std", (N,), {"axis": -1, "keepdims": True}),
    ("std", (X3,), {"axis": (0, 2)}),
    ("layer_normalization", (X3,), {"axis": (1, 2)}),
    ("layer_normalization", (X3,), {"axis": [-2, -1]}),
    ("layer_normalization", (X3, normal(9, 11), normal(9, 11)), {"axis": (1, 2), "epsilon": 1e-5}),
    ("layer_normalization", (N, normal(65), normal(65)), {"axis": -1}),
    ("average_pool", (normal(2, 7, 7, 3), 3), {"strides": 2, "padding": "same"}),
    ("average_pool", (normal(2, 8, 8, 3), 3), {"strides": 1, "padding": "same"}),
    ("average_pool", (normal(2, 10, 3), 3), {"strides": 3, "padding": "same"}),
    ("average_pool", (normal(1, 5, 7, 7, 2), 3), {"strides": 2, "padding": "same"}),
    ("average_pool", (normal(2, 3, 9, 9), 5), {"strides": 2, "padding": "same", "data_format": "channels_first"}),
]


@pytest.mark.parametrize("name,args,kwargs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_op_equals_keras_bitwise(keras_ref, name, args, kwargs):
    expected = keras_ref.ops.convert_to_numpy(getattr(keras_ref.ops, name)(*args, **kwargs))
    got = getattr(kops, name)(*args, **kwargs)
    assert isinstance(got, torch.Tensor)
    assert got.numpy().dtype == expected.dtype
    np.testing.assert_array_equal(got.numpy(), expected)


IMG = torch.tensor(RNG.uniform(0, 1, (2, 17, 19, 3)).astype("float32"))
TRANSFORMS = torch.tensor([[1.1, 0.2, -1.0, -0.1, 0.9, 0.5, 0.0, 0.0],
                           [0.8, -0.3, 2.0, 0.2, 1.2, -1.5, 0.0, 0.0]], dtype=torch.float32)
IMAGE_CASES = (
    [("map_coordinates", (normal(5, 6), normal(2, 3, 4, scale=3.0) + 2.5, order),
      {"fill_mode": mode, "fill_value": 0.5})
     for order in (0, 1) for mode in ("constant", "nearest", "wrap", "mirror", "reflect")]
    + [("affine_transform", (IMG, TRANSFORMS), {"interpolation": interp, "fill_mode": mode})
       for interp in ("nearest", "bilinear") for mode in ("constant", "nearest", "wrap", "reflect")]
    + [("scale_and_translate", (IMG, (2, 29, 7, 3), torch.tensor([29 / 17, 7 / 19]), torch.tensor([0.5, -0.25]),
                                (1, 2), method), {"antialias": aa})
       for method in ("linear", "cubic", "lanczos3", "lanczos5") for aa in (True, False)]
    + [("perspective_transform", (IMG, torch.tensor([[0, 0], [18, 0], [0, 16], [18, 16]], dtype=torch.float32),
                                  torch.tensor([[1, 0.5], [17, 1], [0, 16], [18.5, 15]], dtype=torch.float32)), {})]
)


def _copies(args):
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


@pytest.mark.parametrize("name,args,kwargs", IMAGE_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(IMAGE_CASES)])
def test_image_op_equals_keras_bitwise(keras_ref, name, args, kwargs):
    # each gets its own copies: Keras's affine_transform writes into its transform
    expected = keras_ref.ops.convert_to_numpy(getattr(keras_ref.ops.image, name)(*_copies(args), **kwargs))
    got = getattr(kops.image, name)(*_copies(args), **kwargs)
    assert got.numpy().dtype == expected.dtype
    np.testing.assert_array_equal(got.numpy(), expected)


def test_binary_crossentropy_stays_composed_and_matches_the_maths():
    # deliberately not Keras's fused torch kernel (a scalar loop on CPU, 4-5x
    # slower; glibc's log there differs from torch's vectorized log by an ulp
    # in ~5% of values): checked against the formula in float64 instead
    target = torch.cat([Q.flatten(), T_EDGE.flatten()]).requires_grad_(True)
    probs = torch.cat([P.flatten(), P_EDGE.flatten()])
    out = kops.binary_crossentropy(target, probs)
    p = probs.clamp(1e-7, 1 - 1e-7).double()  # the float32 clip, as the op's
    t = target.detach().double()
    ref = -(t * torch.log(p) + (1 - t) * torch.log1p(-p))
    np.testing.assert_allclose(out.detach().numpy(), ref.numpy(), rtol=2e-6, atol=1e-6)
    out.sum().backward()  # the target gets a gradient, log(1 - p) - log(p)
    np.testing.assert_allclose(target.grad.numpy(), (torch.log1p(-p) - torch.log(p)).numpy(), rtol=1e-5, atol=1e-5)


def test_layer_normalization_over_leading_axes_is_still_the_maths():
    # axes that are not the trailing ones: Keras's torch backend hands them to
    # F.layer_norm as if they were (wrong shape); kerasish normalizes over them
    x = normal(6, 5, 4).double()
    out = kops.layer_normalization(x, axis=(0, 1), epsilon=1e-3).numpy()
    xn = x.numpy()
    mean = xn.mean(axis=(0, 1), keepdims=True)
    var = xn.var(axis=(0, 1), keepdims=True)
    np.testing.assert_allclose(out, (xn - mean) / np.sqrt(var + 1e-3), rtol=1e-10, atol=1e-12)


def test_average_pool_with_uneven_same_padding_leaves_the_padding_out():
    # TF's rule (and kerasish's AveragePooling layers): the mean of the real
    # values under the window. Keras 3.15's torch backend pads by replicating
    # the border here instead, so the reference is NumPy.
    x = normal(2, 9, 3)
    out = kops.average_pool(x, 4, strides=2, padding="same").numpy()
    xn = x.numpy().astype("float64")
    # length 9, window 4, stride 2: 5 outputs, total padding 3 = 1 before, 2 after
    ref = np.stack([xn[:, max(0, 2 * i - 1):min(9, 2 * i - 1 + 4)].mean(axis=1) for i in range(5)], axis=1)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


SCAN_FNS = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "max": torch.maximum}


@pytest.mark.parametrize("n", [1, 2, 5, 8, 33])
@pytest.mark.parametrize("axis,reverse", [(0, False), (1, True), (-1, False)])
@pytest.mark.parametrize("fn", sorted(SCAN_FNS))
def test_associative_scan_equals_keras_bitwise(keras_ref, n, axis, reverse, fn):
    x = normal(3, n, 2) if axis == 1 else (normal(n, 3) if axis == 0 else normal(2, n))
    got = kops.associative_scan(SCAN_FNS[fn], x, reverse=reverse, axis=axis)
    expected = keras_ref.ops.associative_scan(SCAN_FNS[fn], x.clone(), reverse=reverse, axis=axis)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_associative_scan_of_a_structure_equals_keras_bitwise(keras_ref):
    # the first-order linear recurrence h_t = a_t h_{t-1} + b_t as a scan of pairs
    a, b = normal(11, 3, scale=0.5), normal(11, 3)

    def fn(p, q):
        return (p[0] * q[0], p[1] * q[0] + q[1])

    got = kops.associative_scan(fn, (a, b))
    expected = keras_ref.ops.associative_scan(fn, (a.clone(), b.clone()))
    assert isinstance(got, tuple)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g.numpy(), e.numpy())
    h, ref = torch.zeros(3, dtype=torch.float64), []
    for t in range(11):
        h = a[t].double() * h + b[t].double()
        ref.append(h)
    np.testing.assert_allclose(got[1].numpy(), torch.stack(ref).numpy(), rtol=1e-5, atol=1e-5)


def test_associative_scan_keeps_the_dtype_and_negative_zeros():
    # Keras's torch backend returns float32 and 0.0 here (it interleaves by adding zeros)
    ints = torch.arange(1, 8, dtype=torch.int32)
    out = kops.associative_scan(lambda a, b: a + b, ints)
    assert out.dtype == torch.int32
    np.testing.assert_array_equal(out.numpy(), np.cumsum(np.arange(1, 8)))
    zeros = torch.tensor([-0.0, -0.0, -0.0, -0.0])
    assert bool(torch.signbit(kops.associative_scan(lambda a, b: a + b, zeros)).all())


@pytest.mark.parametrize("sequence_length,stride,fft_length,window,length", [
    (64, 16, 64, "hann", None), (64, 16, 64, "hann", 400), (60, 16, 64, "hamming", None),
    (64, 16, 128, "hann", None), (32, 8, 32, "hann", 300), (64, 16, 64, None, None)])
def test_istft_without_centering_equals_keras(keras_ref, sequence_length, stride, fft_length, window, length):
    # torch.istft refuses center=False (the uncentred window envelope is zero at
    # the ends; kerasish raised torch's RuntimeError); TF's/Keras's overlap-add
    # with a constant window normalization instead
    x = normal(2, 3, 400, scale=1.0)
    spec = kops.stft(x, sequence_length, stride, fft_length, window=window, center=False)
    got = kops.istft(spec, sequence_length, stride, fft_length, length=length, window=window, center=False)
    expected = keras_ref.ops.istft(spec, sequence_length, stride, fft_length, length=length, window=window,
                                   center=False)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
    if window is not None:
        # away from the ends (where the frames' windows do not overlap fully) the signal comes back
        n = got.shape[-1]
        np.testing.assert_allclose(got[..., fft_length:n - fft_length].numpy(),
                                   x[..., fft_length:n - fft_length].numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis,gamma_shape", [(-1, (6,)), (-1, None), ((1, 2), (7, 6)), (1, (7,))])
def test_layer_normalization_rms_scaling_is_keras_s_variance_scaling(keras_ref, axis, gamma_shape):
    # Keras's deprecated option scales by rsqrt(variance + eps) (its warning says
    # so); kerasish's op computed a true RMS normalization instead (up to 1.3 off)
    x = normal(4, 7, 6, scale=1.0) + 0.5
    gamma = None if gamma_shape is None else normal(*gamma_shape)
    with pytest.warns(UserWarning, match="rms_scaling=True"):
        got = kops.layer_normalization(x, gamma, axis=axis, rms_scaling=True)
    with pytest.warns(UserWarning, match="rms_scaling=True"):
        expected = keras_ref.ops.layer_normalization(x, gamma, axis=axis, rms_scaling=True)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
    xn = x.double().numpy()
    ref = xn / np.sqrt(xn.var(axis=axis, keepdims=True) + 1e-7)  # keras.backend.epsilon()
    if gamma is not None:
        shape = [1, 1, 1]
        for a in (axis if isinstance(axis, tuple) else (axis,)):
            shape[a] = x.shape[a]
        ref = ref * gamma.double().numpy().reshape(shape)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-5)
