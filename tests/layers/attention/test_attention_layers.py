"""Attention layers: harness, parity with Keras 3 (outputs, scores, masks,
weights layout, configs) and argument errors."""

import numpy as np
import pytest
import torch

import kerasish as keras
from tests.layer_harness import run_layer_test
from tests.parity import assert_close
from tests.parity import to_numpy

RS = np.random.RandomState(0)
Q = RS.randn(2, 4, 6).astype("float32")
V = RS.randn(2, 5, 6).astype("float32")
QMASK = np.array([[1, 1, 0, 1], [1, 0, 0, 0]], bool)
VMASK = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], bool)  # a fully-masked row too
AMASK = RS.rand(2, 4, 5) > 0.3


def _t(x):
    return torch.tensor(x) if isinstance(x, np.ndarray) else x


def _config_equal(ours, theirs):
    a, b = ours.get_config(), theirs.get_config()
    a.pop("name")
    b.pop("name")  # Keras's name counters are global
    assert a == b, {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}


# ------------------------------------------------------------- MultiHeadAttention
@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_heads": 2, "key_dim": 3},
        {"num_heads": 2, "key_dim": 3, "value_dim": 4, "output_shape": 5, "use_bias": False},
    ],
)
def test_mha_harness(kwargs):
    value = torch.randn(2, 5, 6)
    out_dim = 5 if "output_shape" in kwargs else 6
    run_layer_test(
        keras.layers.MultiHeadAttention,
        kwargs,
        input_shape=(2, 4, 6),
        call_kwargs={"value": value},
        expected_output_shape=(2, 4, out_dim),
        expected_num_trainable_weights=8 if kwargs.get("use_bias", True) else 4,
        expected_num_non_trainable_weights=0,
    )


def test_mha_harness_scores_training():
    run_layer_test(
        keras.layers.MultiHeadAttention,
        {"num_heads": 2, "key_dim": 3, "dropout": 0.2},
        input_shape=(2, 4, 6),
        call_kwargs={"value": torch.randn(2, 4, 6), "return_attention_scores": True},
        expected_output_shape=((2, 4, 6), (2, 2, 4, 4)),
        training=True,
    )


def _mha_pair(keras_ref, kwargs, q=Q, v=V):
    theirs = keras_ref.layers.MultiHeadAttention(**kwargs)
    ours = keras.layers.MultiHeadAttention(**kwargs)
    theirs(q, v)
    ours(_t(q), _t(v))
    # same paths below the layer name (Keras's name counters are global)
    assert [w.path.split("/", 1)[1] for w in ours.weights] == [w.path.split("/", 1)[1] for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    return ours, theirs


CALLS = [
    {},
    {"use_causal_mask": True},
    {"attention_mask": AMASK},
    {"value_mask": VMASK},
    {"value_mask": VMASK, "use_causal_mask": True},
    {"return_attention_scores": True},
    {"return_attention_scores": True, "value_mask": VMASK, "attention_mask": AMASK},
]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_heads": 2, "key_dim": 3},
        {"num_heads": 3, "key_dim": 2, "value_dim": 4, "output_shape": (2, 3), "use_bias": False},
        {"num_heads": 2, "key_dim": 3, "use_gate": True, "sliding_window": 2},
        {"num_heads": 2, "key_dim": 3, "dropout": 0.5},  # inference: Keras's explicit-softmax path
    ],
)
def test_mha_parity(keras_ref, kwargs):
    ours, theirs = _mha_pair(keras_ref, kwargs)
    for call in CALLS:
        a = ours(_t(Q), _t(V), **{k: _t(v) for k, v in call.items()})
        b = theirs(Q, V, **call)
        assert_close(a, b)
    _config_equal(ours, theirs)


def test_mha_key_and_query_mask_parity(keras_ref):
    k = RS.randn(2, 5, 3).astype("float32")
    ours, theirs = _mha_pair(keras_ref, {"num_heads": 2, "key_dim": 3})
    theirs_k = keras_ref.layers.MultiHeadAttention(num_heads=2, key_dim=3)
    ours_k = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3)
    theirs_k(Q, V, key=k)
    ours_k(_t(Q), _t(V), key=_t(k))
    ours_k.set_weights(theirs_k.get_weights())
    assert_close(ours_k(_t(Q), _t(V), key=_t(k), key_mask=_t(VMASK)), theirs_k(Q, V, key=k, key_mask=VMASK))
    # query mask from the query's `_keras_mask`, propagated to the output
    q_ours, q_theirs = torch.tensor(Q), torch.tensor(Q)
    q_ours._keras_mask = torch.tensor(QMASK)
    q_theirs._keras_mask = torch.tensor(QMASK)
    out = ours(q_ours, _t(V))
    assert_close(out, theirs(q_theirs, V))
    np.testing.assert_array_equal(to_numpy(out._keras_mask), QMASK)



def test_mha_takes_the_masks_off_its_inputs_as_keras(keras_ref):
    """Keras 3's MultiHeadAttention.call removes the Keras masks from its query,
    value and key tensors and puts the query's on its output: in eager code a
    residual `Add()([x, attention(x, x)])` then carries no mask, and a masked
    pooling after it averages over every step. kerasish kept the masks on the
    inputs (the pooling masked: other numbers than Keras's)."""
    ours, theirs = _mha_pair(keras_ref, {"num_heads": 2, "key_dim": 3}, Q, Q)
    outs = {}
    for lib, layer, q in ((keras, ours, torch.tensor(Q)), (keras_ref, theirs, torch.tensor(Q))):
        q._keras_mask = torch.tensor(QMASK)
        a = layer(q, q, use_causal_mask=True)
        assert getattr(q, "_keras_mask", None) is None, lib.__name__
        np.testing.assert_array_equal(to_numpy(a._keras_mask), QMASK)
        r = lib.layers.Add()([q, a])
        assert getattr(r, "_keras_mask", None) is None, lib.__name__
        outs[lib.__name__] = lib.layers.GlobalAveragePooling1D()(r)
    assert_close(outs["kerasish"], outs["keras"])
    # a key other than the value loses its mask too; the layer's output keeps the query's
    k = torch.tensor(V)
    k._keras_mask = torch.tensor(VMASK)
    v = torch.tensor(V)
    out = ours(torch.tensor(Q), v, key=k)
    assert getattr(k, "_keras_mask", None) is None and not hasattr(out, "_keras_mask")


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_mha_explicit_query_mask_follows_keras(keras_ref, dropout):
    """Keras 3 reads the query mask from the query tensor only: an explicit
    `query_mask=` is ignored (keras.io's Transformer decoder passes one on
    plain tensors). kerasish does the same, and says so once."""
    ours, theirs = _mha_pair(keras_ref, {"num_heads": 2, "key_dim": 3, "dropout": dropout})
    with pytest.warns(UserWarning, match="`query_mask` is ignored"):
        out = ours(_t(Q), _t(V), query_mask=_t(QMASK), value_mask=_t(VMASK))
    assert_close(out, theirs(Q, V, query_mask=QMASK, value_mask=VMASK))
    # a query that carries a Keras mask: that mask is used
    q_ours, q_theirs = torch.tensor(Q), torch.tensor(Q)
    q_ours._keras_mask = torch.tensor(QMASK)
    q_theirs._keras_mask = torch.tensor(QMASK)
    assert_close(ours(q_ours, _t(V), query_mask=_t(~QMASK)), theirs(q_theirs, V, query_mask=~QMASK))

@pytest.mark.parametrize("axes", [None, (2,), (1, 2)])
def test_mha_attention_axes_parity(keras_ref, axes):
    x = RS.randn(2, 3, 4, 6).astype("float32")
    ours, theirs = _mha_pair(keras_ref, {"num_heads": 2, "key_dim": 3, "attention_axes": axes}, x, x)
    assert_close(ours(_t(x), _t(x), return_attention_scores=True), theirs(x, x, return_attention_scores=True))
    assert_close(ours(_t(x), _t(x)), theirs(x, x))
    _config_equal(ours, theirs)


def test_mha_explicit_build_and_state_dict(keras_ref):
    layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3)
    layer.build((None, 4, 6), (None, 5, 6))
    ref = keras_ref.layers.MultiHeadAttention(num_heads=2, key_dim=3)
    ref.build((None, 4, 6), (None, 5, 6))
    assert [tuple(w.shape) for w in layer.get_weights()] == [tuple(w.shape) for w in ref.get_weights()] == [
        (6, 2, 3), (2, 3)] * 3 + [(2, 3, 6), (6,)]
    assert [w.path.split("/", 1)[1] for w in layer.weights] == [w.path.split("/", 1)[1] for w in ref.weights]
    assert list(layer.state_dict())[:2] == ["query.kernel", "query.bias"]
    assert layer.compute_output_shape((None, 4, 6), (None, 5, 6)) == tuple(
        ref.compute_output_shape((None, 4, 6), (None, 5, 6))) == (None, 4, 6)


def test_mha_compile_with_masks():
    layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3)
    q, v = torch.tensor(Q), torch.tensor(V)
    expected = layer(q, v, value_mask=torch.tensor(VMASK), use_causal_mask=True)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(layer)(q, v, value_mask=torch.tensor(VMASK), use_causal_mask=True)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    assert_close(compiled(q, v, value_mask=torch.tensor(VMASK), use_causal_mask=True), expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_heads": 0, "key_dim": 2}, "num_heads"),
        ({"num_heads": 2, "key_dim": 0}, "key_dim"),
        ({"num_heads": 2, "key_dim": -1}, "key_dim"),
        ({"num_heads": 2, "key_dim": 2, "value_dim": 0}, "value_dim"),
        ({"num_heads": 2, "key_dim": 2, "attention_axes": "x"}, "attention_axes"),
        ({"num_heads": 2, "key_dim": 2, "sliding_window": 0}, "sliding_window"),
        ({"num_heads": 2, "key_dim": 2, "flash_attention": True, "dropout": 0.1}, "flash attention"),
    ],
)
def test_mha_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras.layers.MultiHeadAttention(**kwargs)


def test_mha_bad_key_shape():
    layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=2)
    with pytest.raises(ValueError, match="value` and `key"):
        layer.build((None, 4, 6), (None, 5, 6), (None, 3, 6))


# ------------------------------------------------------- Attention / Additive
@pytest.mark.parametrize(
    "cls, kwargs, n_weights",
    [
        (keras.layers.Attention, {}, 0),
        (keras.layers.Attention, {"use_scale": True, "score_mode": "concat"}, 2),
        (keras.layers.AdditiveAttention, {}, 1),
    ],
)
def test_attention_harness(cls, kwargs, n_weights):
    run_layer_test(
        cls,
        kwargs,
        input_shape=[(2, 4, 6), (2, 5, 6)],
        expected_output_shape=(2, 4, 6),
        expected_num_trainable_weights=n_weights,
    )


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("Attention", {}),
        ("Attention", {"use_scale": True}),
        ("Attention", {"use_scale": True, "score_mode": "concat"}),
        ("Attention", {"dropout": 0.3}),
        ("AdditiveAttention", {}),
        ("AdditiveAttention", {"use_scale": False}),
    ],
)
def test_attention_parity(keras_ref, name, kwargs):
    k = RS.randn(2, 5, 6).astype("float32")
    theirs = getattr(keras_ref.layers, name)(**kwargs)
    ours = getattr(keras.layers, name)(**kwargs)
    theirs([Q, V, k])
    ours([_t(Q), _t(V), _t(k)])
    weights = [w + 0.3 for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    calls = [
        {},
        {"use_causal_mask": True},
        {"mask": [QMASK, VMASK]},
        {"mask": [None, VMASK], "use_causal_mask": True},
        {"return_attention_scores": True, "mask": [QMASK, VMASK]},
        {"return_attention_scores": True, "use_causal_mask": True},
    ]
    for call in calls:
        ours_call = dict(call)
        if "mask" in call:
            ours_call["mask"] = [_t(m) for m in call["mask"]]
        assert_close(ours([_t(Q), _t(V), _t(k)], **ours_call), theirs([Q, V, k], **call))
    assert_close(ours([_t(Q), _t(V)]), theirs([Q, V]))
    _config_equal(ours, theirs)


def test_attention_output_mask_and_errors():
    layer = keras.layers.Attention()
    q = torch.tensor(Q)
    q._keras_mask = torch.tensor(QMASK)
    out = layer([q, torch.tensor(V)])
    np.testing.assert_array_equal(to_numpy(out._keras_mask), QMASK)
    with pytest.raises(ValueError, match="score_mode"):
        keras.layers.Attention(score_mode="bad")
    with pytest.raises(ValueError, match="list of inputs"):
        keras.layers.Attention()(torch.tensor(Q))
    with pytest.raises(ValueError, match="length 2 or 3"):
        keras.layers.Attention()([torch.tensor(Q)])
