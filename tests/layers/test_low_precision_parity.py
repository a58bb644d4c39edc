"""Layers under low-precision dtype policies against Keras 3 (torch backend, CPU).

For each policy (`mixed_bfloat16`, `mixed_float16`, `bfloat16`, `float16`)
the same layer is built in Keras and in kerasish, Keras's weights are
randomised and copied in with `set_weights`, and the two are compared on
the same float32 inputs: the output dtype, every variable's dtype, the
forward values and the gradients of `sum(y * w)` with respect to the input
and each trainable weight.

- `BITWISE`: layers equal to Keras bit for bit under every policy (dtype of
  every variable and output, values and gradients), including layers
  Keras runs in float32 inside (LayerNormalization, GroupNormalization,
  RMSNormalization, Softmax with a mask).
- `CLOSE`: layers that keep a faster (and more accurate) torch kernel,
  compared with an explicit bound in units of the low dtype's last place:
  the fused RNN kernels (Keras on CPU loops over time steps), SDPA in
  `Attention` (fused, accumulating in float32; Keras rounds the scores and
  the softmax to the low dtype), Dense's bias inside `addmm`, the
  channels-last transposed convolution.

Also (float32): BatchNormalization's masked moments and outputs, and the
seeded dropout masks of the recurrent layers (Keras draws a layer's seeded
masks on every call, inference too).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish

POLICIES = ("mixed_bfloat16", "mixed_float16", "bfloat16", "float16")
LOW = {"mixed_bfloat16": torch.bfloat16, "bfloat16": torch.bfloat16,
       "mixed_float16": torch.float16, "float16": torch.float16}


def _normal(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype("float32")


def _ulp(got, want, dtype):
    """Largest distance of two tensors in units of `dtype`'s last place (eps times the larger
    magnitude: within a factor 2 of the exact spacing)."""
    got, want = got.detach().double(), want.detach().double()
    finfo = torch.finfo(dtype)
    spacing = torch.clamp(torch.maximum(got.abs(), want.abs()), min=finfo.smallest_normal) * finfo.eps
    return float(((got - want).abs() / spacing).max()) if got.numel() else 0.0


def _run(lib, name, kwargs, policy, inputs, call_kwargs, weights, training):
    layer = getattr(lib.layers, name)(dtype=policy, **kwargs)
    xs = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    args = (xs,) if name == "Attention" else tuple(xs)
    with torch.no_grad():
        layer(*args, **call_kwargs)
    if weights is None:
        draw = np.random.default_rng(5)
        weights = []
        for var, value in zip(layer.weights, layer.get_weights()):
            if value.dtype.kind == "f":
                value = (draw.standard_normal(value.shape) * 0.5).astype(value.dtype)
                if "variance" in var.name:
                    value = np.abs(value) + 0.5
            weights.append(value)
    layer.set_weights(weights)
    y = layer(*args, training=training, **call_kwargs)
    w = torch.tensor(np.random.default_rng(1).standard_normal(tuple(y.shape)).astype("float32"))
    wrt = [x for x in xs if x.requires_grad] + [v if isinstance(v, torch.Tensor) else v.value
                                                 for v in layer.trainable_weights]
    grads = torch.autograd.grad((y.float() * w).sum(), wrt, allow_unused=True)
    dtypes = [str(v.dtype).replace("torch.", "") for v in layer.weights]
    return weights, layer, y.detach(), [g for g in grads], dtypes


def _compare(keras_ref, name, kwargs, policy, inputs, call_kwargs=None, training=False):
    call_kwargs = call_kwargs or {}
    weights, klayer, ky, kg, kd = _run(keras_ref, name, kwargs, policy, inputs, call_kwargs, None, training)
    _, qlayer, qy, qg, qd = _run(kerasish, name, kwargs, policy, inputs, call_kwargs, weights, training)
    assert qy.dtype == ky.dtype, (name, policy, qy.dtype, ky.dtype)
    assert qd == kd, (name, policy, qd, kd)
    assert [g is None for g in qg] == [g is None for g in kg]
    for a, b in zip(qg, kg):
        if a is not None:
            assert a.dtype == b.dtype, (name, policy, a.dtype, b.dtype)
    return (klayer, ky, kg), (qlayer, qy, qg)


RNG = np.random.default_rng(7)

# (name, kwargs, input shapes (or "int"), call kwargs, training)
BITWISE = [
    ("Dense", {"units": 5, "activation": "relu", "use_bias": False}, [(3, 7)], {}, False),
    ("EinsumDense", {"equation": "ab,bc->ac", "output_shape": 5}, [(3, 7)], {}, False),
    ("Conv2D", {"filters": 4, "kernel_size": 3}, [(2, 7, 7, 3)], {}, False),
    ("DepthwiseConv2D", {"kernel_size": 3}, [(2, 7, 7, 3)], {}, False),
    ("SeparableConv2D", {"filters": 4, "kernel_size": 3}, [(2, 7, 7, 3)], {}, False),
    ("MaxPooling2D", {}, [(2, 6, 6, 3)], {}, False),
    ("AveragePooling1D", {"pool_size": 2}, [(2, 8, 3)], {}, False),
    ("GlobalAveragePooling2D", {}, [(2, 6, 6, 3)], {}, False),
    ("LayerNormalization", {}, [(3, 9)], {}, False),
    ("GroupNormalization", {"groups": 2}, [(2, 5, 4)], {}, False),
    ("RMSNormalization", {}, [(3, 9)], {}, False),
    ("Embedding", {"input_dim": 10, "output_dim": 4}, "int", {}, False),
    ("Softmax", {}, [(3, 9)], {"mask": torch.tensor(RNG.random((3, 9)) > 0.3)}, False),
    ("Activation", {"activation": "gelu"}, [(3, 9)], {}, False),
    ("Activation", {"activation": "log_softmax"}, [(3, 9)], {}, False),
    ("PReLU", {}, [(3, 9)], {}, False),
    ("Dropout", {"rate": 0.5}, [(3, 9)], {}, False),
]
# bfloat16 only: Attention on the CPU runs Keras's matmul, softmax, matmul (SDPA was ~1 ulp off in
# the output, up to ~190 in the gradients)
BITWISE_BF16 = [("Attention", {}, [(2, 4, 6), (2, 5, 6)], {}, False),
                ("Attention", {}, [(2, 4, 6), (2, 5, 6)], {"mask": [None, torch.tensor(RNG.random((2, 5)) > 0.3)]}, False),
                ("Attention", {"use_scale": False}, [(2, 4, 6), (2, 5, 6)], {"use_causal_mask": True}, False)]


def _inputs(spec, rng):
    if spec == "int":
        return [rng.integers(0, 10, (3, 4)).astype("int32")]
    return [_normal(rng, s, 2.0) for s in spec]


@pytest.mark.parametrize("policy", POLICIES)
def test_layers_equal_keras_bitwise_under_low_precision_policies(keras_ref, policy):
    for name, kwargs, spec, call_kwargs, training in BITWISE + (BITWISE_BF16 if "bfloat16" in policy else []):
        rng = np.random.default_rng(0)
        (klayer, ky, kg), (qlayer, qy, qg) = _compare(keras_ref, name, kwargs, policy, _inputs(spec, rng),
                                                      call_kwargs, training)
        torch.testing.assert_close(qy, ky, rtol=0, atol=0, msg=f"{name} {policy}: output")
        for i, (a, b) in enumerate(zip(qg, kg)):
            if a is not None:
                torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"{name} {policy}: gradient {i}")
        if training:  # the moving statistics, float32 variables updated from float32 moments
            for a, b in zip(qlayer.get_weights(), klayer.get_weights()):
                np.testing.assert_array_equal(a, b, err_msg=f"{name} {policy}: moving statistics")


# (name, kwargs, input shapes, policies, max ulp of the output in the low dtype, max ulp of a gradient)
CLOSE = [  # bounds: about twice the measured distance
    # fused RNN kernels (one kernel for the sequence; Keras loops over time steps on the CPU)
    # (Keras cannot build them under "bfloat16"/"float16" on the CPU: its orthogonal initializer
    # needs a QR that torch has only in float32/float64; kerasish's initializes in float32)
    ("LSTM", {"units": 4, "return_sequences": True}, [(2, 5, 3)], ("mixed_bfloat16", "mixed_float16"), 64, 512),
    ("GRU", {"units": 4}, [(2, 5, 3)], ("mixed_bfloat16", "mixed_float16"), 64, 128),
    ("SimpleRNN", {"units": 4}, [(2, 5, 3)], ("mixed_bfloat16", "mixed_float16"), 1, 16),
    # float16: SDPA (fused, float32 accumulation; bfloat16 on the CPU takes Keras's formula, below)
    ("Attention", {}, [(2, 4, 6), (2, 5, 6)], ("mixed_float16", "float16"), 2, 256),
    # the projections' biases inside `addmm` (F.linear), as Dense: bit for bit without biases or
    # with the bias added after the product (checked); zero biases (Keras's initial ones) hide it
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 3}, [(2, 4, 6), (2, 5, 6)], POLICIES, 80, 2048),
    # torch's fused batch-norm kernels (float32 inside, as Keras); gradients a float32 ulp or so apart
    ("BatchNormalization", {}, [(6, 5)], POLICIES, 1, 1),
    ("BatchNormalization", {"momentum": 0.9, "training": True}, [(2, 4, 4, 3)], POLICIES, 1, 1),
    # the transposed convolution on the channels-last view (Keras copies to NCHW first)
    ("Conv2DTranspose", {"filters": 4, "kernel_size": 3, "strides": 2}, [(2, 5, 5, 3)], POLICIES, 32, 1),
    # float16: epsilon**2 (1e-24) underflows, so kerasish normalizes in float32 (an ulp from Keras's
    # float16 maths, whose gradient overflows to inf/NaN for a slice of norm ~1e-3; kerasish's is finite)
    ("UnitNormalization", {}, [(3, 9)], POLICIES, 1, 4),
    # the bias added inside `addmm` (rounded once; Keras rounds the product, then the sum)
    ("Dense", {"units": 5}, [(16, 7)], POLICIES, 2, 1),
]


@pytest.mark.parametrize("name,kwargs,spec,policies,max_out,max_grad", CLOSE, ids=[c[0] for c in CLOSE])
def test_fused_kernels_stay_close_under_low_precision(keras_ref, name, kwargs, spec, policies, max_out, max_grad):
    kwargs = dict(kwargs)
    training = kwargs.pop("training", False)
    for policy in policies:
        rng = np.random.default_rng(0)
        (_, ky, kg), (_, qy, qg) = _compare(keras_ref, name, kwargs, policy, _inputs(spec, rng) if name != "Dense"
                                            else [_normal(rng, spec[0], 30.0)], training=training)
        low = LOW[policy]
        assert _ulp(qy, ky, low) <= max_out, (name, policy, _ulp(qy, ky, low))
        for a, b in zip(qg, kg):
            if a is not None:
                assert _ulp(a, b, low) <= max_grad, (name, policy, _ulp(a, b, low))


@pytest.mark.parametrize("policy", ("float32", "mixed_bfloat16", "float16"))
def test_masked_batch_normalization_equals_keras_bitwise(keras_ref, policy):
    """Masked moments and Keras's output formula `(x - mean) * (rsqrt(var + eps) * gamma) + beta`
    (the fused `addcmul` was an ulp off), gradients and moving statistics; channels last and first;
    renorm with and without a mask (Keras's E[x^2] - E[x]^2 moments: the two-pass variance was
    up to ~1000 ulp off near zero)."""
    rng = np.random.default_rng(1)
    for kwargs, shape, masked in (({}, (4, 6, 3), True), ({"axis": 1, "momentum": 0.9}, (4, 6, 3), True),
                                  ({"renorm": True}, (3, 5, 2), True), ({"renorm": True}, (8, 5, 5, 4), False)):
        x = _normal(rng, shape, 3.0) + 5.0
        mask = torch.tensor(rng.random(shape[:-1]) > 0.4) if masked else None
        k, q = keras_ref.layers.BatchNormalization(dtype=policy, **kwargs), kerasish.layers.BatchNormalization(
            dtype=policy, **kwargs)
        k.build(shape)
        q.build(shape)
        weights = [np.abs(_normal(rng, w.shape, 0.5)) + 0.5 for w in k.get_weights()]
        k.set_weights(weights)
        q.set_weights(weights)
        kx, qx = torch.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ky, qy = k(kx, mask=mask, training=True), q(qx, mask=mask, training=True)
        torch.testing.assert_close(qy, ky, rtol=0, atol=0)
        w = torch.tensor(_normal(rng, shape))
        kg = torch.autograd.grad((ky.float() * w).sum(), [kx] + [v.value for v in k.trainable_weights])
        qg = torch.autograd.grad((qy.float() * w).sum(), [qx] + list(q.trainable_weights))
        for a, b in zip(qg, kg):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        for a, b in zip(q.get_weights(), k.get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name,kwargs", [("LSTM", {"dropout": 0.3, "recurrent_dropout": 0.4}),
                                         ("GRU", {"recurrent_dropout": 0.3}),
                                         ("SimpleRNN", {"dropout": 0.3, "return_sequences": True})])
def test_seeded_rnn_dropout_masks_follow_keras_after_inference_calls(keras_ref, name, kwargs):
    """Keras draws a seeded RNN layer's masks on every call, inference included, so the masks of a
    training step depend on the inference calls (predict, validation) before it. kerasish advanced
    its counter only in training: the same seed gave other masks after the first inference call."""
    x = _normal(np.random.default_rng(0), (3, 5, 4))
    k = getattr(keras_ref.layers, name)(6, seed=1, **kwargs)
    q = getattr(kerasish.layers, name)(6, seed=1, **kwargs)
    k.build(x.shape)
    q.build(x.shape)
    q.set_weights(k.get_weights())
    for training in (False, True, False, False, True):
        ky, qy = k(x, training=training), q(torch.tensor(x), training=training)
        assert q.cell.seed_generator.state.tolist() == k.cell.seed_generator.state.value.tolist()
        # the fused/looped kernels round differently; a different mask is off by ~0.1-1
        torch.testing.assert_close(qy, ky, rtol=1e-5, atol=1e-6)
