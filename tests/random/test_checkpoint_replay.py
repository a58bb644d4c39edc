"""Seeded random layers under `torch.utils.checkpoint`.

Checkpointing runs a region's forward again in the backward pass. torch
restores its global RNG for that, which covers unseeded layers; a seeded
layer (or any layer after `keras.utils.set_random_seed`) draws from its
`SeedGenerator`, whose counter has moved on, so the recomputation would draw
another mask and the gradient would silently be wrong. kerasish records the
draws of a non-reentrant checkpoint's forward and replays them. Reference:
the same block (same seeds, same weights) run without checkpointing.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.checkpoint import checkpoint

import kerasish
from kerasish import layers as L


class _Block(kerasish.layers.Layer):
    def __init__(self, seed):
        super().__init__()
        self.drop = L.Dropout(0.3, seed=seed)
        self.spatial = L.SpatialDropout1D(0.3, seed=seed + 1)
        self.noise = L.GaussianNoise(0.2, seed=seed + 2)
        self.gdrop = L.GaussianDropout(0.2, seed=seed + 3)
        self.lstm = L.LSTM(6, dropout=0.3, recurrent_dropout=0.3, seed=seed + 4, return_sequences=True)
        self.mha = L.MultiHeadAttention(2, 3, dropout=0.3, seed=seed + 5)
        self.custom = seed + 6

    def build(self, input_shape):
        self.gen = kerasish.random.SeedGenerator(self.custom)

    def call(self, x, training=None):
        x = self.gdrop(self.noise(self.spatial(self.drop(x, training=training), training=training),
                                  training=training), training=training)
        x = self.lstm(x, training=training)
        x = self.mha(x, x, training=training)
        return kerasish.random.dropout(x, 0.25, seed=self.gen)  # a user's own seeded draw


def _pair(seed=11):
    torch.manual_seed(0)
    a, b = _Block(seed), _Block(seed)
    x = torch.randn(3, 5, 4)
    with torch.no_grad():
        a(x), b(x)  # build (inference: no draws)
    b.set_weights(a.get_weights())
    return a, b


def _counters(block):
    gens = [block.drop.seed_generator, block.spatial.seed_generator, block.noise.seed_generator,
            block.gdrop.seed_generator, block.gen]
    return [g.state.tolist() for g in gens]


def test_checkpointed_block_equals_the_plain_block():
    plain, ckpt = _pair()
    x = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1))
    xp, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
    for _ in range(2):  # two steps: the counters advance once per step, not twice
        out_p = plain(xp, training=True)
        out_c = checkpoint(lambda t: ckpt(t, training=True), xc, use_reentrant=False)
        torch.testing.assert_close(out_c, out_p, rtol=0, atol=0)
        (out_p * torch.arange(6.0)).sum().backward()
        (out_c * torch.arange(6.0)).sum().backward()
        torch.testing.assert_close(xc.grad, xp.grad, rtol=0, atol=0)
        for wp, wc in zip(plain.trainable_weights, ckpt.trainable_weights):
            torch.testing.assert_close(wc.grad, wp.grad, rtol=0, atol=0)
        assert _counters(ckpt) == _counters(plain)
    assert any(c[1] == 2 for c in _counters(ckpt))


def test_retain_graph_second_backward_replays_the_same_draws():
    _, ckpt = _pair()
    x = torch.randn(3, 5, 4, requires_grad=True)
    out = checkpoint(lambda t: ckpt(t, training=True), x, use_reentrant=False)
    out.sum().backward(retain_graph=True)
    first = x.grad.clone()
    x.grad = None
    out.sum().backward()
    torch.testing.assert_close(x.grad, first, rtol=0, atol=0)


def test_a_layer_shared_by_two_checkpoint_regions():
    """One seeded Dropout called in two checkpointed regions: each recomputation gets its own forward's mask."""
    drop_p, drop_c = L.Dropout(0.5, seed=5), L.Dropout(0.5, seed=5)
    x = torch.randn(4, 32)
    xp, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
    yp = drop_p(drop_p(xp, training=True) * 3.0, training=True)
    mid = checkpoint(lambda t: drop_c(t, training=True) * 3.0, xc, use_reentrant=False)
    yc = checkpoint(lambda t: drop_c(t, training=True), mid, use_reentrant=False)
    torch.testing.assert_close(yc, yp, rtol=0, atol=0)
    yp.sum().backward()
    yc.sum().backward()
    torch.testing.assert_close(xc.grad, xp.grad, rtol=0, atol=0)


def test_after_set_random_seed_unseeded_noise_shape_dropout_replays():
    kerasish.utils.set_random_seed(7)
    layer = L.Dropout(0.5, noise_shape=(None, 1, 8))  # seed=None: Keras-exact SeedGenerator draws
    x = torch.randn(2, 4, 8, requires_grad=True)
    out = checkpoint(lambda t: layer(t, training=True), x, use_reentrant=False)
    out.sum().backward()
    torch.testing.assert_close(x.grad, (out != 0).to(x.dtype) * 2.0, rtol=0, atol=0)


def test_reentrant_checkpoint_of_a_seeded_layer_is_refused_in_the_backward():
    layer = L.GaussianNoise(0.5, seed=2)
    x = torch.randn(4, 8, requires_grad=True)
    out = checkpoint(lambda t: layer(t, training=True), x, use_reentrant=True)
    with pytest.raises(RuntimeError, match=r"use_reentrant=True.*use_reentrant=False"):
        out.sum().backward()
    # unseeded: torch restores its global RNG, the reentrant variant is right
    free = L.GaussianDropout(0.5)
    x.grad = None
    out = checkpoint(lambda t: free(t, training=True), x, use_reentrant=True)
    out.sum().backward()
    torch.testing.assert_close(x.grad, out.detach() / x.detach(), rtol=1e-6, atol=1e-6)
