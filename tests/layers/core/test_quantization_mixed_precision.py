"""Quantized Dense / EinsumDense / Embedding under bfloat16 policies vs real
Keras 3: the float scales are autocast to the compute dtype as in Keras."""

import numpy as np
import pytest
import torch


def _np(x):
    return x.detach().float().cpu().numpy()


def _make(lib, kind, policy):
    if kind == "Dense":
        layer, shape = lib.layers.Dense(8, dtype=policy), (None, 16)
    elif kind == "EinsumDense":
        layer, shape = lib.layers.EinsumDense("abc,cd->abd", (3, 8), bias_axes="d", dtype=policy), (None, 3, 16)
    else:
        layer, shape = lib.layers.Embedding(12, 8, dtype=policy), None
    layer.build(shape)
    return layer


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "bfloat16"])
@pytest.mark.parametrize(("kind", "mode"), [
    (kind, mode) for kind in ("Dense", "EinsumDense", "Embedding") for mode in ("int8", "int4", "float8")
    if (kind, mode) != ("Embedding", "float8")  # (Keras has no float8 Embedding)
])
def test_quantized_layers_under_bfloat16_policies_match_keras(keras_ref, kind, mode, policy):
    import kerasish
    rng = np.random.default_rng(0)
    ref = _make(keras_ref, kind, policy)
    weights = [rng.standard_normal(tuple(w.shape)).astype("float32") for w in ref.get_weights()]
    ours = _make(kerasish, kind, policy)
    x = rng.integers(0, 12, (4, 3)) if kind == "Embedding" else rng.standard_normal((4, 3, 16)).astype("float32")
    if kind == "Dense":
        x = x[:, 0]
    outs = []
    for lib, layer in ((keras_ref, ref), (kerasish, ours)):
        layer.set_weights(weights)
        layer.quantize(mode)
        y = layer(x if lib is keras_ref else torch.tensor(x))
        outs.append((layer.dtype_policy.name, str(y.dtype), _np(y)))
    assert outs[1][:2] == outs[0][:2]
    np.testing.assert_array_equal(outs[1][2], outs[0][2])
