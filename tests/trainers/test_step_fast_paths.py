"""The per-step shortcuts of `fit` (issue #10's overhead goals) keep the
general path's behaviour: shuffled array batches are the rows of torch's
permutation, an instance-level `compute_loss` still wins over the default,
and the loss/metric logs match a NumPy reference of the same steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.trainers import data_adapters


def _batches(x, y, sample_weight=None, bs=5, seed=3):
    adapter = data_adapters.get_data_adapter(x, y, sample_weight=sample_weight, batch_size=bs, shuffle=True)
    torch.manual_seed(seed)
    return [b for _, b in data_adapters.EpochIterator(adapter)]


@pytest.mark.parametrize("kind", ["tensors", "numpy", "with_none_and_strings"])
def test_shuffled_batches_are_the_rows_of_torch_randperm(kind):
    n, bs, seed = 23, 5, 3
    x = np.arange(n * 2, dtype="float32").reshape(n, 2)
    y = np.arange(n, dtype="int64")
    torch.manual_seed(seed)
    perm = torch.randperm(n).numpy()  # the reference: the same draw the adapter makes
    if kind == "tensors":  # the single-device all-tensor shortcut
        got = _batches(torch.from_numpy(x), torch.from_numpy(y), bs=bs, seed=seed)
    elif kind == "numpy":  # converted to tensors up front: also the shortcut
        got = _batches(x, y, bs=bs, seed=seed)
    else:  # a string leaf (kept as NumPy) takes the general per-leaf path
        names = np.array([f"s{i}" for i in range(n)])
        got = _batches({"a": x, "s": names}, y, bs=bs, seed=seed)
    assert len(got) == -(-n // bs)
    for i, batch in enumerate(got):
        rows = perm[i * bs:(i + 1) * bs]
        bx, by = batch[0], batch[1]
        if kind == "with_none_and_strings":
            np.testing.assert_array_equal(bx["a"].numpy(), x[rows])
            np.testing.assert_array_equal(np.asarray(bx["s"]), names[rows])
        else:
            assert isinstance(bx, torch.Tensor)
            np.testing.assert_array_equal(bx.numpy(), x[rows])
        np.testing.assert_array_equal(by.numpy(), y[rows])


def test_shuffled_batches_carry_sample_weights_with_their_rows():
    n, bs = 11, 4
    x = torch.arange(n, dtype=torch.float32)[:, None]
    y = torch.arange(n) * 10
    sw = torch.arange(n, dtype=torch.float32) / 100
    for bx, by, bsw in _batches(x, y, sw, bs=bs):
        np.testing.assert_array_equal(by.numpy(), bx[:, 0].numpy().astype("int64") * 10)
        np.testing.assert_allclose(bsw.numpy(), bx[:, 0].numpy() / 100)


def test_instance_compute_loss_override_is_used_by_fit():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    seen = []

    def compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
        seen.append(training)
        return torch.mean(torch.abs(y_pred - y))  # not the compiled mse

    model.compute_loss = compute_loss
    x = np.ones((4, 3), "float32")
    y = np.zeros((4, 2), "float32")
    with torch.no_grad():
        expected = float(torch.mean(torch.abs(model(torch.from_numpy(x)))))
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert seen == [True]
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-6)


def test_fit_loss_log_matches_a_numpy_reference_of_the_same_steps():
    """Two SGD steps on a linear model with the default step (torch
    optimizer, no metrics): the logged loss is the sample-weighted mean of
    the per-batch losses, computed here in NumPy from the maths."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3)).astype("float32")
    y = rng.integers(0, 2, size=6)
    dense = keras.layers.Dense(2)
    model = keras.Sequential([keras.Input((3,)), dense])
    w = rng.normal(size=(3, 2)).astype("float32")
    dense.set_weights([w, np.zeros(2, "float32")])
    model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)

    def ce_and_grad(w, b, xb, yb):
        z = xb.astype("float64") @ w + b
        z = z - z.max(1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        loss = -np.log(p[np.arange(len(yb)), yb]).mean()
        g = p.copy()
        g[np.arange(len(yb)), yb] -= 1
        g /= len(yb)
        return loss, xb.T @ g, g.sum(0)

    wr, br = w.astype("float64"), np.zeros(2)
    losses, sizes = [], []
    for start in (0, 4):
        xb, yb = x[start:start + 4], y[start:start + 4]
        loss, gw, gb = ce_and_grad(wr, br, xb, yb)
        wr, br = wr - 0.5 * gw, br - 0.5 * gb
        losses.append(loss)
        sizes.append(len(yb))
    expected = np.average(losses, weights=sizes)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(dense.get_weights()[0], wr, rtol=1e-5, atol=1e-6)
