"""GroupQueryAttention: harness, Keras parity (weights copied from Keras) for
masks, causal and sliding-window attention, gates, scores and key != value,
config equality, bad arguments."""

import numpy as np
import pytest
import torch

import kerasish as keras
from layer_harness import run_layer_test
from parity import assert_close

RS = np.random.RandomState(7)
Q = RS.randn(2, 4, 6).astype("float32")
V = RS.randn(2, 5, 6).astype("float32")
K = RS.randn(2, 5, 6).astype("float32")
AMASK = RS.rand(2, 4, 5) > 0.3


def _t(x):
    return torch.as_tensor(x)


def _pair(keras_ref, kwargs, key=None):
    theirs = keras_ref.layers.GroupQueryAttention(**kwargs)
    ours = keras.layers.GroupQueryAttention(**kwargs)
    theirs(Q, V, key=key)
    ours(_t(Q), _t(V), key=None if key is None else _t(key))
    assert [w.path.split("/", 1)[1] for w in ours.weights] == [w.path.split("/", 1)[1] for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    return ours, theirs


@pytest.mark.parametrize("kwargs,n_weights", [
    ({"head_dim": 3, "num_query_heads": 4, "num_key_value_heads": 2}, 8),
    ({"head_dim": 2, "num_query_heads": 3, "num_key_value_heads": 1, "use_bias": False, "use_gate": True}, 5),
])
def test_gqa_harness(kwargs, n_weights):
    run_layer_test(keras.layers.GroupQueryAttention, kwargs, input_shape=(2, 4, 6),
                   call_kwargs={"value": torch.randn(2, 5, 6)}, expected_output_shape=(2, 4, 6),
                   expected_num_trainable_weights=n_weights, expected_num_non_trainable_weights=0)


def test_gqa_harness_scores_training():
    run_layer_test(keras.layers.GroupQueryAttention, {"head_dim": 3, "num_query_heads": 4, "num_key_value_heads": 2,
                                                      "dropout": 0.2},
                   input_shape=(2, 4, 6), call_kwargs={"value": torch.randn(2, 4, 6), "return_attention_scores": True},
                   expected_output_shape=((2, 4, 6), (2, 4, 4, 4)), training=True)


KWARGS = [
    {"head_dim": 3, "num_query_heads": 4, "num_key_value_heads": 2},
    {"head_dim": 2, "num_query_heads": 6, "num_key_value_heads": 1, "use_gate": True},
    {"head_dim": 4, "num_query_heads": 2, "num_key_value_heads": 2, "use_bias": False},
    {"head_dim": 3, "num_query_heads": 4, "num_key_value_heads": 2, "sliding_window": 2},
]
CALLS = [{}, {"use_causal_mask": True}, {"attention_mask": AMASK}, {"return_attention_scores": True},
         {"attention_mask": AMASK, "use_causal_mask": True, "return_attention_scores": True}]


@pytest.mark.parametrize("kwargs", KWARGS)
def test_gqa_parity(keras_ref, kwargs):
    ours, theirs = _pair(keras_ref, kwargs)
    for call in CALLS:
        ours_call = {k: (_t(v) if isinstance(v, np.ndarray) else v) for k, v in call.items()}
        assert_close(ours(_t(Q), _t(V), **ours_call), theirs(Q, V, **call))
    got, want = ours.get_config(), theirs.get_config()
    got.pop("name"), want.pop("name")
    assert got == want
    clone = keras.layers.GroupQueryAttention.from_config(ours.get_config())
    clone(_t(Q), _t(V))
    clone.set_weights(ours.get_weights())
    assert_close(clone(_t(Q), _t(V)), theirs(Q, V))


def test_gqa_key_and_masks_parity(keras_ref):
    kwargs = {"head_dim": 3, "num_query_heads": 4, "num_key_value_heads": 2}
    ours, theirs = _pair(keras_ref, kwargs, key=K)
    assert_close(ours(_t(Q), _t(V), key=_t(K)), theirs(Q, V, key=K))
    qm = np.array([[1, 1, 1, 0], [1, 0, 1, 1]], bool)
    vm = np.array([[1, 1, 0, 1, 1], [1, 1, 1, 1, 0]], bool)
    assert_close(ours(_t(Q), _t(V), query_mask=_t(qm), value_mask=_t(vm)),
                 theirs(Q, V, query_mask=qm, value_mask=vm))


def test_gqa_sharing_is_keras_repeat(keras_ref):
    """Query head i uses key/value head i // (num_query_heads // num_kv_heads):
    a GQA with duplicated kv kernels equals MultiHeadAttention with those heads."""
    gqa = keras.layers.GroupQueryAttention(head_dim=3, num_query_heads=4, num_key_value_heads=2)
    mha = keras.layers.MultiHeadAttention(num_heads=4, key_dim=3)
    gqa(_t(Q), _t(V)), mha(_t(Q), _t(V))
    weights = gqa.get_weights()  # q kernel, q bias, k kernel, k bias, v kernel, v bias, out kernel, out bias
    expanded = [w if i not in (2, 3, 4, 5) else np.repeat(w, 2, axis=-2) for i, w in enumerate(weights)]
    mha.set_weights(expanded)
    assert_close(gqa(_t(Q), _t(V)), mha(_t(Q), _t(V)))
    # and real Keras 3's GroupQueryAttention, same weights
    ref = keras_ref.layers.GroupQueryAttention(head_dim=3, num_query_heads=4, num_key_value_heads=2)
    ref(_t(Q), _t(V))
    ref.set_weights(weights)
    assert_close(gqa(_t(Q), _t(V)), ref(_t(Q), _t(V)))


def test_gqa_bad_args():
    with pytest.raises(ValueError, match="divisible"):
        keras.layers.GroupQueryAttention(head_dim=2, num_query_heads=3, num_key_value_heads=2)
    with pytest.raises(ValueError, match="sliding_window"):
        keras.layers.GroupQueryAttention(head_dim=2, num_query_heads=2, num_key_value_heads=1, sliding_window=0)
    with pytest.raises(ValueError, match="head_dim"):
        keras.layers.GroupQueryAttention(head_dim=0, num_query_heads=2, num_key_value_heads=1)
    layer = keras.layers.GroupQueryAttention(head_dim=2, num_query_heads=2, num_key_value_heads=1)
    with pytest.raises(ValueError, match="last dimension"):
        layer(torch.rand(2, 3, 4), torch.rand(2, 3, 5))
