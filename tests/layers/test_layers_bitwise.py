"""Layers against Keras 3 (torch backend), bit for bit: the same float32 CPU
inputs, random weights set on the Keras layer and copied in with
`set_weights(get_weights())`, then the
forward output and the gradients of `sum(y * w)` (a fixed random `w`) with
respect to the input and to each trainable weight, compared with
`np.testing.assert_array_equal` (no tolerance).

What these pin:

- `Softmax(axis=k)` (and `activations.softmax`) for `k` other than the last
  axis: torch's softmax over that axis, as Keras calls it (moving the axis last
  rounded differently: an ulp in the output, up to ~180 ulp in the gradient);
- `GroupNormalization` on channels-last data: Keras's moments
  (`E[x^2] - E[x]^2`) and op order (a two-pass variance and `addcmul` were up
  to ~7000 ulp off near zero);
- `Conv2D`/`Conv3D`/`DepthwiseConv1D/2D`/`SeparableConv2D`/`Conv*DTranspose`
  gradients: a
  bias that needs a gradient is added after the convolution as Keras adds it
  (torch's fused bias gradient sums in another order: up to ~300 ulp; the
  fused bias stays where no gradient is wanted: same values, faster);
- `Attention(use_scale=True)`: the learned scale multiplies the scores, as
  Keras does (folded into the query for SDPA it was up to ~30 ulp off);
- layers that already matched (Dense, EinsumDense, Embedding, the
  normalizations, pooling, attention forward and backward ...), so that a
  faster rewrite that changes their numbers is noticed.

Deliberate differences (a fused torch kernel kept for speed) are compared with
an explicit ulp bound in `test_fused_kernels_stay_close`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish

RNG = np.random.default_rng(3)


def _normal(*shape):
    return RNG.standard_normal(shape).astype("float32")


def _weights_of(layer):
    return [v.value if not isinstance(v, torch.Tensor) else v for v in layer.trainable_weights]


def _run(lib, name, kwargs, inputs, call_kwargs, weights, training, mask_arg):
    layer = getattr(lib.layers, name)(**kwargs)
    xs = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    args = (xs,) if mask_arg == "list" else tuple(xs)
    with torch.no_grad():
        layer(*args, **call_kwargs)
    if weights is None:
        # random weights (Keras's initial ones are often 0 and 1, which hide rounding differences)
        draw = np.random.default_rng(5)
        weights = []
        for var, value in zip(layer.weights, layer.get_weights()):
            if value.dtype.kind == "f":
                value = (draw.standard_normal(value.shape) * 0.5).astype(value.dtype)
                if "variance" in var.name:
                    value = np.abs(value) + 0.5
            weights.append(value)
        layer.set_weights(weights)
    else:
        layer.set_weights(weights)
    y = layer(*args, training=training, **call_kwargs)
    w = torch.tensor(np.random.default_rng(1).standard_normal(tuple(y.shape)).astype("float32"))
    wrt = [x for x in xs if x.requires_grad] + _weights_of(layer)
    grads = torch.autograd.grad((y * w).sum(), wrt, allow_unused=True)
    return weights, [y.detach().numpy()] + [None if g is None else g.numpy() for g in grads]


def _compare(keras_ref, name, kwargs, inputs, call_kwargs=None, training=False, mask_arg=None):
    call_kwargs = call_kwargs or {}
    weights, want = _run(keras_ref, name, kwargs, inputs, call_kwargs, None, training, mask_arg)
    _, got = _run(kerasish, name, kwargs, inputs, call_kwargs, weights, training, mask_arg)
    assert len(got) == len(want)
    return got, want


CASES = [
    ("Softmax", {"axis": 1}, [_normal(4, 7, 33)], {}),
    ("Softmax", {"axis": 0}, [_normal(6, 5)], {}),
    ("Softmax", {}, [_normal(4, 7, 33)], {"mask": torch.tensor(RNG.random((4, 7, 33)) > 0.3)}),
    ("Activation", {"activation": "softmax"}, [_normal(4, 9)], {}),
    ("GroupNormalization", {"groups": 4}, [_normal(4, 7, 12)], {}),
    ("GroupNormalization", {"groups": 3, "epsilon": 1e-5}, [_normal(4, 5, 5, 12)], {}),
    ("GroupNormalization", {"groups": -1, "center": False}, [_normal(4, 5, 5, 12)], {}),
    ("Dense", {"units": 23, "use_bias": False}, [_normal(4, 37)], {}),
    ("Dense", {"units": 23, "activation": "relu", "use_bias": False}, [_normal(2, 5, 37)], {}),
    ("EinsumDense", {"equation": "abc,cde->abde", "output_shape": (None, 4, 6), "bias_axes": "de"},
     [_normal(2, 5, 37)], {}),
    ("Embedding", {"input_dim": 20, "output_dim": 8, "mask_zero": True}, [RNG.integers(0, 20, (4, 9))], {}),
    ("LayerNormalization", {}, [_normal(4, 7, 33)], {}),
    ("LayerNormalization", {"axis": (1, 2), "epsilon": 1e-5}, [_normal(4, 7, 33)], {}),
    ("RMSNormalization", {}, [_normal(4, 7, 33)], {}),
    ("UnitNormalization", {}, [_normal(4, 33)], {}),
    ("MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, [_normal(2, 9, 9, 5)], {}),
    ("AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, [_normal(2, 9, 9, 5)], {}),
    ("GlobalAveragePooling1D", {}, [_normal(2, 17, 5)], {"mask": torch.tensor(np.arange(17) < np.array([[12], [17]]))}),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 8}, [_normal(2, 5, 16), _normal(2, 7, 16)], {}),
    ("Attention", {"score_mode": "concat"}, "list2", {}),
    # a learned scale multiplies the scores as Keras does (folded into the query for SDPA: ~30 ulp)
    ("Attention", {"use_scale": True}, "list2", {}),
    ("AdditiveAttention", {}, "list2", {}),
    ("PReLU", {}, [_normal(4, 33)], {}),
    ("Conv2D", {"filters": 7, "kernel_size": 3, "use_bias": False}, [_normal(2, 9, 9, 5)], {}),
    # a trainable bias is added after the convolution, as Keras adds it (torch's fused bias
    # gradient summed in another order: up to ~300 ulp)
    ("Conv2D", {"filters": 7, "kernel_size": 3}, [_normal(2, 9, 9, 5)], {}),
    ("Conv2D", {"filters": 7, "kernel_size": 3, "padding": "same", "strides": 2, "activation": "relu"},
     [_normal(2, 9, 9, 5)], {}),
    ("Conv2D", {"filters": 4, "kernel_size": 3, "groups": 2, "dilation_rate": 2}, [_normal(2, 9, 9, 6)], {}),
    ("Conv2D", {"filters": 7, "kernel_size": 3, "data_format": "channels_first"}, [_normal(2, 5, 9, 9)], {}),
    ("Conv3D", {"filters": 4, "kernel_size": 3, "padding": "same"}, [_normal(2, 5, 5, 5, 3)], {}),
    ("DepthwiseConv1D", {"kernel_size": 3}, [_normal(2, 17, 5)], {}),
    ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2, "padding": "same", "strides": 2},
     [_normal(2, 9, 9, 5)], {}),
    ("SeparableConv2D", {"filters": 7, "kernel_size": 3, "padding": "same", "depth_multiplier": 2},
     [_normal(2, 9, 9, 5)], {}),
    ("Conv2DTranspose", {"filters": 7, "kernel_size": 3, "strides": 2, "padding": "same"}, [_normal(2, 6, 6, 5)], {}),
    ("Conv3DTranspose", {"filters": 4, "kernel_size": 3, "strides": 2}, [_normal(2, 4, 4, 4, 3)], {}),
    ("Conv1DTranspose", {"filters": 7, "kernel_size": 3, "strides": 2, "padding": "same"}, [_normal(2, 9, 5)], {}),
]


@pytest.mark.parametrize("name,kwargs,inputs,call_kwargs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_layer_equals_keras_bitwise(keras_ref, name, kwargs, inputs, call_kwargs):
    mask_arg = None
    if inputs == "list2":
        inputs, mask_arg = [_normal(2, 5, 8), _normal(2, 7, 8)], "list"
    got, want = _compare(keras_ref, name, kwargs, inputs, call_kwargs, mask_arg=mask_arg)
    for i, (g, w) in enumerate(zip(got, want)):
        if w is None:
            assert g is None, f"output/gradient {i}"
            continue
        np.testing.assert_array_equal(g, w, err_msg=f"{name}: output/gradient {i}")


def test_activation_softmax_on_inner_axis_bitwise(keras_ref):
    x = torch.tensor(_normal(3, 11, 4))
    for axis in (0, 1, -2):
        want = keras_ref.activations.softmax(x, axis=axis).numpy()
        np.testing.assert_array_equal(kerasish.activations.softmax(x, axis=axis).numpy(), want)


def _max_ulp(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    spacing = np.spacing(np.maximum(np.abs(got), np.abs(want)).astype(np.float32)).astype(np.float64)
    return float((np.abs(got - want) / spacing).max())


# (name, kwargs, inputs, training, max ulp, atol): layers that keep a faster torch kernel on
# purpose; the bounds are what the sweep measured, with the reason
FUSED_CASES = [
    # Dense adds its bias inside torch's `addmm` (Keras: matmul, then add): an ulp apart in about
    # 2 of 3 shapes; the separate add costs +1.6-2.2% on big layers, up to +10% forward on small ones
    ("Dense", {"units": 23}, (10, 37), False, None, 2e-6),
    ("Dense", {"units": 23, "activation": "relu"}, (2, 5, 37), False, None, 2e-6),
    # rank 1 runs through the 2-D channels-last kernel (Keras copies to N-C-L for conv1d: ~30% slower)
    ("Conv1D", {"filters": 7, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (2, 17, 5), False, None, 1e-5),
    ("SeparableConv1D", {"filters": 7, "kernel_size": 3}, (2, 17, 5), False, None, 1e-5),
    # the transposed conv runs on the channels-last view (Keras copies to NCHW first: ~35% slower);
    # the kernels can round the forward differently (gradients equal here)
    ("Conv2DTranspose", {"filters": 7, "kernel_size": 3}, (2, 6, 6, 5), False, None, 1e-5),
    # torch's fused batch-norm kernels (Keras composes ~8 ops and takes E[x^2] - E[x]^2)
    ("BatchNormalization", {}, (4, 5, 5, 6), True, None, 1e-5),
    ("BatchNormalization", {"axis": 1, "momentum": 0.9, "epsilon": 1e-5}, (4, 6, 5, 5), False, None, 1e-5),
    # cuDNN-style fused RNN kernels (Keras on CPU loops over time steps in Python)
    ("LSTM", {"units": 7, "return_sequences": True}, (3, 6, 5), False, None, 1e-5),
    ("GRU", {"units": 7}, (3, 6, 5), False, None, 1e-5),
    ("SimpleRNN", {"units": 7}, (3, 6, 5), False, None, 1e-5),
    # F.group_norm on channels-first data (3-5x faster than Keras's composition)
    ("GroupNormalization", {"groups": 3, "axis": 1}, (4, 12, 5, 5), False, None, 1e-5),
    # F.mish (one kernel) for Keras's x * tanh(softplus(x))
    ("Activation", {"activation": "mish"}, (4, 33), False, 1, 1e-6),
]


@pytest.mark.parametrize("name,kwargs,shape,training,maxulp,atol", FUSED_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(FUSED_CASES)])
def test_fused_kernels_stay_close(keras_ref, name, kwargs, shape, training, maxulp, atol):
    got, want = _compare(keras_ref, name, kwargs, [_normal(*shape)], training=training)
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=atol, err_msg=f"{name}: output/gradient {i}")
        if maxulp is not None and i == 0:
            assert _max_ulp(g, w) <= maxulp
