"""`ReversibleEmbedding` against real Keras 3: same weights, same outputs in
both directions, same config, `.keras` files readable both ways."""

import numpy as np
import pytest
import torch

import kerasish as keras
from layer_harness import run_layer_test
from parity import assert_close
from parity import build_pair

L = keras.layers
TOL = {"rtol": 1e-5, "atol": 1e-6}


@pytest.mark.parametrize("tie_weights", [True, False])
def test_harness(tie_weights):
    run_layer_test(
        L.ReversibleEmbedding, {"input_dim": 10, "output_dim": 4, "tie_weights": tie_weights},
        input_shape=(2, 3), input_dtype="int64", expected_output_shape=(2, 3, 4),
        expected_num_trainable_weights=1 if tie_weights else 2, check_output_shape_inference=False,
        check_backward=tie_weights,  # untied: each direction uses one of the two tables
    )
    run_layer_test(
        L.ReversibleEmbedding, {"input_dim": 10, "output_dim": 4, "tie_weights": tie_weights, "logit_soft_cap": 3.0},
        input_shape=(2, 3, 4), call_kwargs={"reverse": True}, expected_output_shape=(2, 3, 10),
        expected_num_trainable_weights=1 if tie_weights else 2, check_output_shape_inference=False,
        check_backward=tie_weights,  # untied: each direction uses one of the two tables
    )
    layer = L.ReversibleEmbedding(10, 4)
    assert layer.compute_output_shape((None, 3, 4), reverse=True) == (None, 3, 10)
    assert layer.compute_output_shape((None, 3)) == (None, 3, 4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tie_weights": True},
        {"tie_weights": False, "mask_zero": True},
        {"tie_weights": True, "logit_soft_cap": 2.0, "reverse_dtype": "float64"},
    ],
)
def test_parity_both_directions(keras_ref, kwargs):
    kwargs = {"input_dim": 12, "output_dim": 5, **kwargs}
    ids = torch.tensor([[1, 0, 4, 11], [9, 3, 0, 2]])
    ours, theirs, our_out, their_out = build_pair(keras_ref, "ReversibleEmbedding", kwargs, ids)
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
    assert_close(our_out, their_out, **TOL)
    if kwargs.get("mask_zero"):
        np.testing.assert_array_equal(our_out._keras_mask.numpy(), their_out._keras_mask.cpu().numpy())
    h = np.random.default_rng(0).normal(size=(2, 4, 5)).astype("float32")
    rev = ours(torch.as_tensor(h), reverse=True)
    assert rev.shape == (2, 4, 12) and getattr(rev, "_keras_mask", None) is None
    expected = keras_ref.ops.convert_to_numpy(theirs(h, reverse=True))
    assert rev.dtype == (torch.float64 if kwargs.get("reverse_dtype") else torch.float32)
    np.testing.assert_allclose(rev.detach().numpy(), expected, **TOL)
    a, b = ours.get_config(), theirs.get_config()
    assert {**a, "name": None} == {**b, "name": None}
    clone = L.ReversibleEmbedding.from_config(a)
    clone.build()
    clone.set_weights(ours.get_weights())
    assert_close(clone(torch.as_tensor(h), reverse=True), rev, **TOL)


def test_tied_projection_is_the_transposed_table():
    layer = L.ReversibleEmbedding(6, 3)
    h = layer(torch.tensor([[2, 5]]))
    logits = layer(h, reverse=True)
    torch.testing.assert_close(logits, h @ layer.embeddings.detach().t())
    logits.sum().backward()
    assert layer.embeddings.grad is not None


def test_functional_and_saving_round_trip(keras_ref, tmp_path):
    def build(lib):
        inp = lib.Input((4,), dtype="int32")
        emb = lib.layers.ReversibleEmbedding(12, 5, tie_weights=False, logit_soft_cap=4.0)
        return lib.Model(inp, emb(lib.layers.Dense(5)(emb(inp)), reverse=True))

    ours = build(keras)
    assert ours.output_shape == (None, 4, 12)
    ids = np.array([[1, 2, 3, 0], [11, 5, 6, 7]], dtype="int32")
    ours.save(tmp_path / "q.keras")
    theirs = keras_ref.saving.load_model(tmp_path / "q.keras")
    expected = ours(torch.as_tensor(ids)).detach().numpy()
    np.testing.assert_allclose(keras_ref.ops.convert_to_numpy(theirs(ids)), expected, **TOL)
    again = keras.saving.load_model(tmp_path / "q.keras")
    np.testing.assert_allclose(again(torch.as_tensor(ids)).detach().numpy(), expected, **TOL)
    k = build(keras_ref)
    k.save(tmp_path / "k.keras")
    q = keras.saving.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(q(torch.as_tensor(ids)).detach().numpy(), keras_ref.ops.convert_to_numpy(k(ids)), **TOL)


def test_errors():
    with pytest.raises(ValueError, match=r"`logit_soft_cap`.*Received: logit_soft_cap=-1"):
        L.ReversibleEmbedding(5, 2, logit_soft_cap=-1)
    with pytest.raises(ValueError, match=r"`input_dim`.*Received: input_dim=0"):
        L.ReversibleEmbedding(0, 2)
    layer = L.ReversibleEmbedding(5, 2)
    with pytest.raises(ValueError, match=r"'reversible_embedding'.*output_dim=2.*\(3, 4\)"):
        layer(torch.zeros(3, 4), reverse=True)
