"""Max/average pooling (1D/2D/3D) and global pooling: the shared harness,
parity with real Keras 3, "same" average pooling against a NumPy reference
written from TF's definition (padding excluded from the mean; Keras 3's torch
backend counts it, a known bug), masks, configs and argument errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from layer_harness import run_layer_test
from parity import assert_close

import kerasish as keras

L = keras.layers


def _x(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _shape(rank, n, c, data_format, batch=2):
    spatial = (n,) * rank if isinstance(n, int) else tuple(n)
    return (batch, *spatial, c) if data_format == "channels_last" else (batch, c, *spatial)


def _norm(value):
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def tf_pool_reference(x, pool_size, strides, padding, mode, data_format):
    """TF's pooling definition in NumPy: "same" pads (total) =
    max(0, (ceil(n / s) - 1) * s + k - n), extra pixel at the end; a window
    covers only the valid elements (max of them / mean of them)."""
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    spatial = x.shape[1:-1]
    if padding == "valid":
        outs = [(n - k) // s + 1 for n, k, s in zip(spatial, pool_size, strides)]
        lefts = [0] * len(spatial)
    else:
        outs = [-(-n // s) for n, s in zip(spatial, strides)]
        lefts = [max(0, (o - 1) * s + k - n) // 2 for o, n, k, s in zip(outs, spatial, pool_size, strides)]
    out = np.zeros((x.shape[0], *outs, x.shape[-1]), np.float64)
    for idx in itertools.product(*[range(o) for o in outs]):
        window = tuple(
            slice(max(0, i * s - left), min(n, i * s - left + k))
            for i, s, left, n, k in zip(idx, strides, lefts, spatial, pool_size)
        )
        w = x[(slice(None), *window, slice(None))].reshape(x.shape[0], -1, x.shape[-1])
        out[(slice(None), *idx, slice(None))] = w.max(1) if mode == "max" else w.mean(1)
    return np.moveaxis(out, -1, 1) if data_format == "channels_first" else out


# ------------------------------------------------------------------ harness
HARNESS_CASES = [
    (L.MaxPooling1D, {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 3), (2, 4, 3)),
    (L.MaxPooling2D, {}, (2, 4, 5, 3), (2, 2, 2, 3)),
    (L.MaxPooling2D, {"pool_size": 2, "strides": 1, "padding": "same", "data_format": "channels_first"}, (2, 3, 4, 4), (2, 3, 4, 4)),
    (L.MaxPooling3D, {"padding": "same"}, (2, 3, 3, 3, 2), (2, 2, 2, 2, 2)),
    (L.AveragePooling1D, {"pool_size": 2, "data_format": "channels_first"}, (2, 3, 6), (2, 3, 3)),
    (L.AveragePooling2D, {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 5, 6, 3), (2, 3, 3, 3)),
    (L.AveragePooling3D, {"pool_size": 2, "padding": "same", "data_format": "channels_first"}, (2, 2, 3, 3, 3), (2, 2, 2, 2, 2)),
    (L.GlobalMaxPooling1D, {}, (2, 5, 3), (2, 3)),
    (L.GlobalMaxPooling2D, {"keepdims": True}, (2, 4, 4, 3), (2, 1, 1, 3)),
    (L.GlobalMaxPooling3D, {"data_format": "channels_first"}, (2, 3, 2, 2, 2), (2, 3)),
    (L.GlobalAveragePooling1D, {"keepdims": True, "data_format": "channels_first"}, (2, 3, 5), (2, 3, 1)),
    (L.GlobalAveragePooling2D, {}, (2, 4, 4, 3), (2, 3)),
    (L.GlobalAveragePooling3D, {"keepdims": True}, (2, 2, 2, 2, 3), (2, 1, 1, 1, 3)),
]


@pytest.mark.parametrize("cls,kwargs,in_shape,out_shape", HARNESS_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_run_layer_test(cls, kwargs, in_shape, out_shape):
    # Keras 3 averages 'same' windows over the padding too (Keras 2 did not):
    # kerasish keeps Keras 2's rule, checked in test_same_average_excludes_padding
    keras_avg_same = cls.__name__.startswith("AveragePooling") and kwargs.get("padding") == "same"
    layer = run_layer_test(
        cls,
        kwargs,
        keras_parity=not keras_avg_same,
        input_shape=in_shape,
        expected_output_shape=out_shape,
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
    )
    assert layer.built  # built at construction, as in Keras


# ------------------------------------------------------------------ parity
POOL_GRID = [
    (rank, df, pad, k, s, n)
    for rank, df, pad in itertools.product((1, 2, 3), ("channels_last", "channels_first"), ("valid", "same"))
    for k, s, n in ((2, None, 5), (3, 2, 6), (2, 1, 5), (3, 1, 4), (1, 3, 5), (4, 3, 7))
    if rank < 3 or n < 7
]


@pytest.mark.parametrize("rank,data_format,padding,k,s,n", POOL_GRID)
def test_pooling_against_tf_reference(rank, data_format, padding, k, s, n):
    x = _x(_shape(rank, n, 2, data_format))
    for mode, cls in (("max", getattr(L, f"MaxPooling{rank}D")), ("average", getattr(L, f"AveragePooling{rank}D"))):
        layer = cls(pool_size=k, strides=s, padding=padding, data_format=data_format)
        y = layer(x)
        want = tf_pool_reference(x.numpy(), layer.pool_size, layer.strides, padding, mode, data_format)
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-6)
        assert tuple(layer.compute_output_shape(tuple(x.shape))) == tuple(y.shape)


@pytest.mark.parametrize("rank,data_format,padding,k,s,n", [c for c in POOL_GRID if c[1] == "channels_last" or c[3] == 3])
def test_pooling_keras_parity(keras_ref, rank, data_format, padding, k, s, n):
    x = _x(_shape(rank, n, 2, data_format))
    kwargs = {"pool_size": k, "strides": s, "padding": padding, "data_format": data_format}
    names = [f"MaxPooling{rank}D"]
    if padding == "valid":  # Keras 3's torch backend counts padding in "same" averages
        names.append(f"AveragePooling{rank}D")
    for name in names:
        theirs = getattr(keras_ref.layers, name)(**kwargs)(x.numpy())
        assert_close(getattr(L, name)(**kwargs)(x), theirs)


def test_same_average_excludes_padding():
    x = torch.ones(1, 3, 3, 1)
    y = L.AveragePooling2D(2, strides=2, padding="same")(x)
    want = tf_pool_reference(x.numpy(), (2, 2), (2, 2), "same", "average", "channels_last")
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6)
    torch.testing.assert_close(y, torch.ones(1, 2, 2, 1))  # counting the zeros would give 0.5 / 0.25
    x = torch.arange(1.0, 6.0).reshape(1, 5, 1)  # not constant: a wrong divisor shows at the edges
    y = L.AveragePooling1D(4, strides=1, padding="same")(x)
    want = tf_pool_reference(x.numpy(), (4,), (1,), "same", "average", "channels_last")
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("pool,strides", [((12, 12, 12), (12, 1, 1)), ((6, 2, 8), (1, 2, 3)), ((5, 5, 5), (2, 2, 2))])
def test_same_average_3d_window_larger_than_the_input(data_format, pool, strides):
    """torch's avg_pool3d refuses a window larger than the input even where "same" padding covers it
    (Keras returns a result); kerasish pads explicitly and averages the valid elements (TF's "same")."""
    shape = (2, 4, 5, 3, 2) if data_format == "channels_last" else (2, 2, 4, 5, 3)
    x = torch.from_numpy(np.random.default_rng(3).random(shape).astype("float32"))
    layer = L.AveragePooling3D(pool, strides=strides, padding="same", data_format=data_format)
    y = layer(x)
    want = tf_pool_reference(x.numpy(), pool, strides, "same", "average", data_format)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6, atol=1e-7)
    assert tuple(y.shape) == tuple(layer.compute_output_shape(tuple(x.shape)))


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_keras_parity(keras_ref, rank, data_format, keepdims):
    x = _x(_shape(rank, 3, 4, data_format))
    for kind in ("Max", "Average"):
        name = f"Global{kind}Pooling{rank}D"
        kwargs = {"data_format": data_format, "keepdims": keepdims}
        theirs = getattr(keras_ref.layers, name)(**kwargs)(x.numpy())
        ours = getattr(L, name)(**kwargs)
        y = ours(x)
        assert_close(y, theirs)
        assert tuple(ours.compute_output_shape(tuple(x.shape))) == tuple(y.shape)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_masked_global_average_pooling1d(keras_ref, data_format):
    x = _x(_shape(1, 5, 3, data_format))
    mask = torch.tensor([[True, True, False, True, False], [True, False, False, False, False]])
    theirs = keras_ref.layers.GlobalAveragePooling1D(data_format=data_format)(x.numpy(), mask=mask.numpy())
    ours = L.GlobalAveragePooling1D(data_format=data_format)
    y = ours(x, mask=mask)
    assert_close(y, theirs)
    xs = x if data_format == "channels_last" else x.transpose(1, 2)
    torch.testing.assert_close(y[1], xs[1, 0])
    assert getattr(y, "_keras_mask", None) is None
    # a mask attached by an upstream layer is used too
    emb_in = x.clone()
    emb_in._keras_mask = mask
    torch.testing.assert_close(ours(emb_in), y)


# ------------------------------------------------------------------ configs
CONFIG_CASES = [
    ("MaxPooling1D", {}),
    ("MaxPooling2D", {"pool_size": (2, 3), "strides": 1, "padding": "same"}),
    ("MaxPooling3D", {"data_format": "channels_first"}),
    ("AveragePooling1D", {"pool_size": 3}),
    ("AveragePooling2D", {"pool_size": 2, "strides": (1, 2), "padding": "same"}),
    ("AveragePooling3D", {"pool_size": 2}),
    ("GlobalMaxPooling1D", {"keepdims": True}),
    ("GlobalMaxPooling2D", {"data_format": "channels_first"}),
    ("GlobalMaxPooling3D", {}),
    ("GlobalAveragePooling1D", {}),
    ("GlobalAveragePooling2D", {"keepdims": True}),
    ("GlobalAveragePooling3D", {"data_format": "channels_first"}),
]


@pytest.mark.parametrize("name,kwargs", CONFIG_CASES)
def test_config_matches_keras(keras_ref, name, kwargs):
    theirs = getattr(keras_ref.layers, name)(name="layer", **kwargs).get_config()
    layer = getattr(L, name)(name="layer", **kwargs)
    ours = layer.get_config()
    assert _norm(ours) == _norm(theirs)
    assert type(layer).from_config(ours).get_config() == ours


def test_aliases(keras_ref):
    for name in ("MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
                 "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
                 "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D"):
        assert getattr(L, name).__name__ == getattr(keras_ref.layers, name).__name__


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: L.MaxPooling2D((2, 2, 2)), "pool_size"),
        (lambda: L.MaxPooling1D(0), "pool_size"),
        (lambda: L.AveragePooling2D(2, strides=(1, 1, 1)), "strides"),
        (lambda: L.AveragePooling2D(2, padding="causal"), "padding"),
        (lambda: L.MaxPooling3D(data_format="nchw"), "data_format"),
        (lambda: L.GlobalAveragePooling2D(data_format="nchw"), "data_format"),
    ],
)
def test_bad_arguments(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_bad_inputs():
    with pytest.raises(ValueError, match="ndim"):
        L.MaxPooling2D()(_x((2, 4, 3)))
    with pytest.raises(ValueError, match="ndim"):
        L.AveragePooling1D(2)(_x((2, 4, 4, 3)))
    with pytest.raises(ValueError, match="ndim"):
        L.GlobalMaxPooling2D()(_x((2, 4, 3)))
    with pytest.raises(ValueError, match="zero or negative"):
        L.MaxPooling2D(3).compute_output_shape((2, 2, 2, 3))
