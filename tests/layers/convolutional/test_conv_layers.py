"""Conv1D/2D/3D, their transposes, depthwise and separable convolutions:
the shared harness, parity with real Keras 3 (same weights in, same outputs
out) over padding / strides / dilation / groups / data formats, configs and
argument errors."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from layer_harness import run_layer_test
from parity import assert_keras_parity

import kerasish as keras

L = keras.layers


def _shape(rank, n, c, data_format, batch=2):
    spatial = (n,) * rank if isinstance(n, int) else tuple(n)
    return (batch, *spatial, c) if data_format == "channels_last" else (batch, c, *spatial)


def _x(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _norm(value):
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, float):  # Keras keeps regularizer factors as float32
        return float(np.float32(value))
    return value


def _parity(keras_ref, name, kwargs, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = assert_keras_parity(keras_ref, name, kwargs, x)
    assert tuple(ours.compute_output_shape(tuple(x.shape))) == tuple(ours(x).shape)
    return ours, theirs


# ------------------------------------------------------------------ harness
HARNESS_CASES = [
    (L.Conv1D, {"filters": 3, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (2, 7, 4), (2, 7, 3), 2),
    (L.Conv1D, {"filters": 4, "kernel_size": 2, "strides": 2, "padding": "same", "groups": 2, "data_format": "channels_first"}, (2, 4, 7), (2, 4, 4), 2),
    (L.Conv2D, {"filters": 3, "kernel_size": 2, "strides": 2, "padding": "same", "activation": "relu"}, (2, 5, 5, 4), (2, 3, 3, 3), 2),
    (L.Conv2D, {"filters": 4, "kernel_size": (2, 3), "groups": 2, "use_bias": False, "data_format": "channels_first"}, (2, 4, 5, 6), (2, 4, 4, 4), 1),
    (L.Conv3D, {"filters": 2, "kernel_size": 2, "padding": "same"}, (2, 3, 4, 3, 2), (2, 3, 4, 3, 2), 2),
    (L.Conv3D, {"filters": 2, "kernel_size": 2, "strides": 2, "data_format": "channels_first"}, (2, 2, 4, 4, 4), (2, 2, 2, 2, 2), 2),
    (L.Conv1DTranspose, {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 5, 4), (2, 10, 3), 2),
    (L.Conv2DTranspose, {"filters": 3, "kernel_size": 3, "strides": 2, "output_padding": 1}, (2, 3, 3, 4), (2, 8, 8, 3), 2),
    (L.Conv2DTranspose, {"filters": 2, "kernel_size": 2, "data_format": "channels_first", "use_bias": False}, (2, 3, 3, 3), (2, 2, 4, 4), 1),
    (L.Conv3DTranspose, {"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same"}, (2, 2, 2, 2, 3), (2, 4, 4, 4, 2), 2),
    (L.DepthwiseConv1D, {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"}, (2, 6, 3), (2, 6, 6), 2),
    (L.DepthwiseConv2D, {"kernel_size": 3, "strides": 2}, (2, 7, 7, 3), (2, 3, 3, 3), 2),
    (L.DepthwiseConv2D, {"kernel_size": 2, "depth_multiplier": 2, "data_format": "channels_first"}, (2, 3, 5, 5), (2, 6, 4, 4), 2),
    (L.SeparableConv1D, {"filters": 4, "kernel_size": 3, "depth_multiplier": 2}, (2, 6, 3), (2, 4, 4), 3),
    (L.SeparableConv2D, {"filters": 4, "kernel_size": 2, "padding": "same", "strides": 2}, (2, 5, 5, 3), (2, 3, 3, 4), 3),
    (L.SeparableConv2D, {"filters": 4, "kernel_size": 2, "use_bias": False, "data_format": "channels_first"}, (2, 3, 5, 5), (2, 4, 4, 4), 2),
]


@pytest.mark.parametrize("cls,kwargs,in_shape,out_shape,n_weights", HARNESS_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_run_layer_test(cls, kwargs, in_shape, out_shape, n_weights):
    run_layer_test(
        cls,
        kwargs,
        input_shape=in_shape,
        expected_output_shape=out_shape,
        expected_num_trainable_weights=n_weights,
        expected_num_non_trainable_weights=0,
    )


# ------------------------------------------------------------------ parity
CONV_GRID = [
    (rank, df, pad, k, s, d)
    for rank, df, pad, (k, s, d) in itertools.product(
        (1, 2), ("channels_last", "channels_first"), ("valid", "same"), ((2, 1, 1), (3, 2, 1), (2, 3, 1), (2, 1, 2))
    )
]


@pytest.mark.parametrize("rank,data_format,padding,k,s,d", CONV_GRID)
def test_conv_parity_grid(keras_ref, rank, data_format, padding, k, s, d):
    x = _x(_shape(rank, 7, 4, data_format))
    kwargs = {"filters": 4, "kernel_size": k, "strides": s, "dilation_rate": d, "padding": padding, "data_format": data_format}
    _parity(keras_ref, f"Conv{rank}D", kwargs, x)
    _parity(keras_ref, f"Conv{rank}D", dict(kwargs, groups=2), x)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("dilation", [1, 2])
def test_conv1d_causal_parity(keras_ref, data_format, dilation):
    x = _x(_shape(1, 9, 3, data_format))
    kwargs = {"filters": 2, "kernel_size": 3, "padding": "causal", "dilation_rate": dilation, "data_format": data_format}
    ours, _ = _parity(keras_ref, "Conv1D", kwargs, x)
    # causality: changing the future does not change the past
    y = ours(x)
    x2 = x.clone()
    t = 4 if data_format == "channels_last" else slice(None)
    if data_format == "channels_last":
        x2[:, 5:] += 1.0
        torch.testing.assert_close(ours(x2)[:, :5], y[:, :5])
    else:
        x2[:, t, 5:] += 1.0
        torch.testing.assert_close(ours(x2)[:, :, :5], y[:, :, :5])


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv3d_parity(keras_ref, data_format, padding):
    x = _x(_shape(3, (4, 5, 4), 4, data_format))
    for kwargs in (
        {"filters": 2, "kernel_size": (2, 3, 2), "strides": (2, 1, 2)},
        {"filters": 4, "kernel_size": 2, "dilation_rate": (1, 2, 1), "groups": 2, "activation": "tanh"},
    ):
        _parity(keras_ref, "Conv3D", dict(kwargs, padding=padding, data_format=data_format), x)


TRANSPOSE_GRID = [
    (rank, "channels_last" if i % 2 else "channels_first", pad, k, s, d, op)
    for rank, pad in itertools.product((1, 2), ("valid", "same"))
    for i, (k, s, d, op) in enumerate(
        ((1, 1, 1, None), (2, 2, 1, None), (3, 2, 1, None), (3, 2, 1, 1), (4, 3, 1, 2), (3, 3, 1, 0), (3, 1, 2, None), (2, 1, 1, 0))
    )
]


@pytest.mark.parametrize("rank,data_format,padding,k,s,d,op", TRANSPOSE_GRID)
def test_conv_transpose_parity_grid(keras_ref, rank, data_format, padding, k, s, d, op):
    x = _x(_shape(rank, 4, 3, data_format))
    kwargs = {"filters": 2, "kernel_size": k, "strides": s, "dilation_rate": d, "padding": padding,
              "output_padding": op, "data_format": data_format}
    _parity(keras_ref, f"Conv{rank}DTranspose", kwargs, x)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv3d_transpose_parity(keras_ref, data_format):
    x = _x(_shape(3, (3, 2, 3), 2, data_format))
    for kwargs in (
        {"filters": 2, "kernel_size": (2, 3, 2), "strides": (2, 1, 3), "padding": "same", "output_padding": (1, 0, 2)},
        {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "valid", "activation": "relu"},
    ):
        _parity(keras_ref, "Conv3DTranspose", dict(kwargs, data_format=data_format), x)


DEPTHWISE_GRID = [
    (rank, df, pad, ksd, 1 + i % 2)
    for rank, df, pad in itertools.product((1, 2), ("channels_last", "channels_first"), ("valid", "same"))
    for i, ksd in enumerate(((3, 1, 1), (2, 2, 1), (3, 1, 2)))
]


@pytest.mark.parametrize("rank,data_format,padding,ksd,dm", DEPTHWISE_GRID)
def test_depthwise_and_separable_parity(keras_ref, rank, data_format, padding, ksd, dm):
    k, s, d = ksd
    x = _x(_shape(rank, 6, 3, data_format))
    common = {"kernel_size": k, "strides": s, "dilation_rate": d, "padding": padding, "data_format": data_format, "depth_multiplier": dm}
    _parity(keras_ref, f"DepthwiseConv{rank}D", common, x)
    _parity(keras_ref, f"SeparableConv{rank}D", dict(common, filters=4), x)


def test_weights_layout_and_order_match_keras(keras_ref):
    cases = [
        ("Conv2D", {"filters": 6, "kernel_size": (2, 3), "groups": 2}, (1, 5, 5, 4)),
        ("Conv1DTranspose", {"filters": 5, "kernel_size": 3}, (1, 5, 4)),
        ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 3}, (1, 5, 5, 4)),
        ("SeparableConv1D", {"filters": 5, "kernel_size": 3, "depth_multiplier": 2}, (1, 5, 4)),
    ]
    for name, kwargs, shape in cases:
        theirs = getattr(keras_ref.layers, name)(**kwargs)
        theirs.build(shape)
        ours = getattr(L, name)(**kwargs)
        ours.build(shape)
        assert [w.path.split("/")[-1] for w in ours.weights] == [w.path.split("/")[-1] for w in theirs.weights]
        assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
        # state_dict is the Keras layout too (one source of truth)
        assert [tuple(v.shape) for v in ours.state_dict().values()] == [tuple(w.shape) for w in theirs.weights]


def test_kernel_is_single_source_of_truth():
    layer = L.Conv2D(2, 3)
    x = _x((1, 5, 5, 2))
    layer(x)
    with torch.no_grad():
        layer.kernel.zero_()
        layer.bias.fill_(1.5)
    torch.testing.assert_close(layer(x), torch.full((1, 3, 3, 2), 1.5))
    assert [n for n, _ in layer.named_parameters()] == ["kernel", "bias"]


def test_channels_last_output_is_a_view_in_channels_last_memory():
    layer = L.Conv2D(4, 3, padding="same")
    y = layer(_x((2, 6, 6, 3)))
    assert y.is_contiguous()  # NHWC contiguous: torch ran its channels-last kernel
    y1 = L.Conv1D(4, 3)(_x((2, 6, 3)))
    assert y1.is_contiguous()


# ------------------------------------------------------------------ configs
CONFIG_CASES = [
    ("Conv1D", {"filters": 2, "kernel_size": 3, "padding": "causal", "activation": "relu",
                "kernel_regularizer": "l2", "bias_constraint": "non_neg"}),
    ("Conv2D", {"filters": 4, "kernel_size": (2, 3), "strides": 2, "groups": 2, "data_format": "channels_first"}),
    ("Conv3D", {"filters": 2, "kernel_size": 2, "kernel_initializer": "he_normal"}),
    ("Conv1DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1}),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "padding": "same"}),
    ("Conv3DTranspose", {"filters": 2, "kernel_size": 3, "dilation_rate": 2}),
    ("DepthwiseConv1D", {"kernel_size": 3, "depth_multiplier": 2}),
    ("DepthwiseConv2D", {"kernel_size": 3, "depthwise_regularizer": "l1", "activation": "sigmoid"}),
    ("SeparableConv1D", {"filters": 3, "kernel_size": 3, "pointwise_initializer": "ones"}),
    ("SeparableConv2D", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}),
]


@pytest.mark.parametrize("name,kwargs", CONFIG_CASES)
def test_config_matches_keras(keras_ref, name, kwargs):
    theirs = getattr(keras_ref.layers, name)(name="layer", **kwargs).get_config()
    ours_layer = getattr(L, name)(name="layer", **kwargs)
    ours = ours_layer.get_config()
    assert _norm(ours) == _norm(theirs)
    clone = type(ours_layer).from_config(ours)
    assert clone.get_config() == ours


def test_aliases():
    assert L.Convolution2D is L.Conv2D and L.Convolution1D is L.Conv1D and L.Convolution3D is L.Conv3D
    assert L.Convolution2DTranspose is L.Conv2DTranspose
    assert L.SeparableConvolution2D is L.SeparableConv2D and L.SeparableConvolution1D is L.SeparableConv1D


def test_load_state_dict_into_unbuilt_layers():
    for layer, x in (
        (L.Conv2D(4, 3, groups=2), _x((1, 5, 5, 4))),
        (L.Conv1DTranspose(2, 3, data_format="channels_first"), _x((1, 3, 5))),
        (L.DepthwiseConv2D(3, depth_multiplier=2), _x((1, 5, 5, 3))),
        (L.SeparableConv1D(2, 3), _x((1, 5, 3))),
    ):
        layer(x)
        fresh = type(layer).from_config(layer.get_config())
        fresh.load_state_dict(layer.state_dict())
        torch.testing.assert_close(fresh(x), layer(x))


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: L.Conv2D(4, (3, 3, 3)), "kernel_size"),
        (lambda: L.Conv1D(4, (2, 2)), "kernel_size"),
        (lambda: L.Conv2D(4, 0), "kernel_size"),
        (lambda: L.Conv2D(-1, 3), "filters"),
        (lambda: L.Conv2D(0, 3), "filters"),
        (lambda: L.Conv2D(5, 3, groups=2), "filters must be evenly divisible"),
        (lambda: L.Conv2D(4, 3, groups=0), "groups"),
        (lambda: L.Conv2D(4, 3, strides=(1, 2, 1)), "strides"),
        (lambda: L.Conv2D(4, 3, padding="causal"), "padding"),
        (lambda: L.Conv2D(4, 3, padding="full"), "padding"),
        (lambda: L.Conv2D(4, 3, data_format="nhwc"), "data_format"),
        (lambda: L.Conv2D(4, 3, strides=2, dilation_rate=2), "dilation_rate"),
        (lambda: L.Conv2DTranspose(4, 3, strides=2, output_padding=2), "output_padding"),
        (lambda: L.Conv2DTranspose(-2, 3), "filters"),
        (lambda: L.Conv2DTranspose(2, 3, padding="causal"), "padding"),
        (lambda: L.DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier"),
        (lambda: L.SeparableConv2D(0, 3), "filters"),
        (lambda: L.SeparableConv2D(2, (3, 3, 3)), "kernel_size"),
    ],
)
def test_bad_arguments(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_keras_agrees_on_bad_argument_types(keras_ref):
    for name, args, kwargs in (
        ("Conv2D", (4, (3, 3, 3)), {}),
        ("Conv2D", (-1, 3), {}),
        ("Conv2D", (5, 3), {"groups": 2}),
        ("Conv2DTranspose", (4, 3), {"strides": 2, "output_padding": 2}),
        ("DepthwiseConv2D", (3,), {"depth_multiplier": 0}),
    ):
        with pytest.raises(ValueError):
            getattr(keras_ref.layers, name)(*args, **kwargs)
        with pytest.raises(ValueError):
            getattr(L, name)(*args, **kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="evenly divisible"):
        L.Conv2D(4, 3, groups=2)(_x((1, 5, 5, 3)))
    with pytest.raises(ValueError, match="ndim"):
        L.Conv2D(4, 3)(_x((1, 5, 3)))
    with pytest.raises(ValueError, match="ndim"):
        L.Conv1D(4, 3)(_x((1, 5, 5, 3)))
    with pytest.raises(ValueError, match="ndim"):
        L.DepthwiseConv2D(3)(_x((5, 3)))
    with pytest.raises(ValueError, match="zero or negative"):
        L.Conv2D(4, 5)(_x((1, 3, 3, 2)))
    layer = L.Conv2D(4, 3)
    layer(_x((1, 5, 5, 2)))
    with pytest.raises(ValueError):
        layer(_x((1, 5, 5, 3)))  # channel axis fixed at build


def test_mixed_precision_outputs_match_float32(keras_ref):
    x = _x((2, 6, 6, 3))
    ref = L.Conv2D(4, 3, padding="same")
    y = ref(x)
    half = L.Conv2D(4, 3, padding="same", dtype="mixed_bfloat16")
    half(x)
    half.set_weights(ref.get_weights())
    out = half(x)
    assert out.dtype == torch.bfloat16
    np.testing.assert_allclose(out.float().detach().numpy(), y.detach().numpy(), atol=5e-2, rtol=5e-2)
    # real Keras 3 under the same policy and weights: the same bfloat16 result
    keras_half = keras_ref.layers.Conv2D(4, 3, padding="same", dtype="mixed_bfloat16")
    keras_half(x.numpy())
    keras_half.set_weights(ref.get_weights())
    theirs = keras_half(x.numpy())
    assert theirs.dtype == torch.bfloat16
    np.testing.assert_allclose(out.float().detach().numpy(), theirs.detach().float().cpu().numpy(), atol=2e-2, rtol=2e-2)
