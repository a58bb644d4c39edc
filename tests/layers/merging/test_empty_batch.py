"""Merging and attention layers on an empty (0-row) batch, against real
Keras 3 (torch backend): the same output shapes, or a Keras-type error where
Keras raises one. An empty last batch is ordinary in a data pipeline; `Dot`
used to raise torch's "cannot reshape tensor of 0 elements"."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish

# (layer name, constructor kwargs, input shapes, call kwargs given as shapes of boolean masks)
_MERGE = [
    ("Add", {}, [(0, 4), (0, 4)]),
    ("Add", {}, [(0, 3, 4), (0, 3, 4), (0, 3, 4)]),
    ("Subtract", {}, [(0, 4), (0, 4)]),
    ("Multiply", {}, [(0, 4), (0, 4)]),
    ("Average", {}, [(0, 4), (0, 4)]),
    ("Maximum", {}, [(0, 4), (0, 4)]),
    ("Minimum", {}, [(0, 2, 4), (0, 2, 4)]),
    ("Concatenate", {}, [(0, 4), (0, 3)]),
    ("Concatenate", {"axis": 1}, [(0, 2, 4), (0, 3, 4)]),
    ("Dot", {"axes": 1}, [(0, 4), (0, 4)]),
    ("Dot", {"axes": 1, "normalize": True}, [(0, 4), (0, 4)]),
    ("Dot", {"axes": (2, 2)}, [(0, 3, 4), (0, 5, 4)]),
    ("Dot", {"axes": (1, 1)}, [(0, 3, 4), (0, 3, 5)]),
    ("Dot", {"axes": -1}, [(0, 3, 4), (0, 3, 4)]),
    ("Dot", {"axes": (1, 2)}, [(0, 3, 4, 2), (0, 5, 3)]),
]

_ATTENTION = [
    ("Attention", {}, [(0, 3, 4), (0, 5, 4)], {}),
    ("Attention", {"use_scale": True, "score_mode": "concat"}, [(0, 3, 4), (0, 5, 4)], {}),
    ("Attention", {}, [(0, 3, 4), (0, 5, 4), (0, 5, 4)], {"mask": [(0, 3), (0, 5)], "return_attention_scores": True}),
    ("AdditiveAttention", {}, [(0, 3, 4), (0, 5, 4)], {"mask": [(0, 3), (0, 5)]}),
]

_MHA = [
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 3}, [(0, 3, 4), (0, 5, 4)], {}),
    (
        "MultiHeadAttention",
        {"num_heads": 2, "key_dim": 3, "output_shape": (2, 3)},
        [(0, 3, 4), (0, 5, 6), (0, 5, 2)],
        {"attention_mask": (0, 3, 5), "return_attention_scores": True},
    ),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 2, "attention_axes": (1, 2)}, [(0, 2, 3, 4), (0, 2, 3, 4)], {}),
    (
        "GroupQueryAttention",
        {"head_dim": 3, "num_query_heads": 4, "num_key_value_heads": 2},
        [(0, 3, 4), (0, 5, 4)],
        {"return_attention_scores": True},
    ),
]


def _arrays(shapes):
    rng = np.random.default_rng(0)
    return [rng.normal(size=s).astype("float32") for s in shapes]


def _masks(spec):
    if isinstance(spec, list):
        return [np.ones(s, dtype=bool) for s in spec]
    return np.ones(spec, dtype=bool)


def _shapes(out):
    if isinstance(out, (list, tuple)):
        return [tuple(o.shape) for o in out]
    return tuple(out.shape)


def _run(module, to_tensor, name, kwargs, inputs, call_kwargs, as_list):
    layer = getattr(module.layers, name)(**kwargs)
    tensors = [to_tensor(a) for a in inputs]
    call = {k: (to_tensor_tree(v, to_tensor) if not isinstance(v, bool) else v) for k, v in call_kwargs.items()}
    try:
        out = layer(tensors, **call) if as_list else layer(*tensors, **call)
    except Exception as e:  # noqa: BLE001 - the error type is what is compared
        return e
    return _shapes(out)


def to_tensor_tree(value, to_tensor):
    return [to_tensor(v) for v in value] if isinstance(value, list) else to_tensor(value)


def _compare(keras_ref, name, kwargs, shapes, call_kwargs, as_list):
    inputs = _arrays(shapes)
    call_kwargs = {k: (v if isinstance(v, bool) else _masks(v)) for k, v in call_kwargs.items()}
    expected = _run(keras_ref, keras_ref.ops.convert_to_tensor, name, kwargs, inputs, call_kwargs, as_list)
    got = _run(kerasish, torch.as_tensor, name, kwargs, inputs, call_kwargs, as_list)
    if isinstance(expected, Exception) and not isinstance(expected, (ValueError, TypeError)):
        # Keras's own torch backend crashes (torch's "cannot reshape tensor of
        # 0 elements" in `Dot` over a 4-D input): the reference is then Keras's
        # shape on a 1-row batch with the batch axis emptied
        one_row = [np.ones((1, *s[1:]), dtype="float32") for s in shapes]
        one = _run(keras_ref, keras_ref.ops.convert_to_tensor, name, kwargs, one_row, call_kwargs, as_list)
        assert not isinstance(one, Exception), one
        expected = [(0, *s[1:]) for s in one] if isinstance(one, list) else (0, *one[1:])
    if isinstance(expected, Exception):
        # Keras refuses: kerasish must refuse with a Keras-type error, not a torch one
        assert isinstance(got, (ValueError, TypeError)), f"Keras raised {expected!r}; kerasish gave {got!r}"
        return
    assert not isinstance(got, Exception), f"Keras gives {expected}; kerasish raised {got!r}"
    assert got == expected


@pytest.mark.parametrize("name, kwargs, shapes", _MERGE, ids=[f"{c[0]}-{i}" for i, c in enumerate(_MERGE)])
def test_merging_layers_on_an_empty_batch(keras_ref, name, kwargs, shapes):
    _compare(keras_ref, name, kwargs, shapes, {}, as_list=True)


@pytest.mark.parametrize(
    "name, kwargs, shapes, call_kwargs", _ATTENTION, ids=[f"{c[0]}-{i}" for i, c in enumerate(_ATTENTION)]
)
def test_attention_layers_on_an_empty_batch(keras_ref, name, kwargs, shapes, call_kwargs):
    _compare(keras_ref, name, kwargs, shapes, call_kwargs, as_list=True)


@pytest.mark.parametrize("name, kwargs, shapes, call_kwargs", _MHA, ids=[f"{c[0]}-{i}" for i, c in enumerate(_MHA)])
def test_multi_head_attention_layers_on_an_empty_batch(keras_ref, name, kwargs, shapes, call_kwargs):
    _compare(keras_ref, name, kwargs, shapes, call_kwargs, as_list=False)


def test_dot_built_on_data_then_empty_batch_matches_numpy():
    """A layer that already ran on data, then an empty last batch; the
    non-empty values are the batched dot products (NumPy einsum)."""
    a, b = _arrays([(3, 4, 2)]), _arrays([(3, 5, 2)])
    layer = kerasish.layers.Dot(axes=(2, 2))
    out = layer([torch.as_tensor(a[0]), torch.as_tensor(b[0] * 0.5)])
    np.testing.assert_allclose(out.numpy(), np.einsum("bik,bjk->bij", a[0], b[0] * 0.5), rtol=1e-5, atol=1e-6)
    empty = layer([torch.zeros(0, 4, 2), torch.zeros(0, 5, 2)])
    assert empty.shape == (0, 4, 5)
