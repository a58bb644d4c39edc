"""`fit(jit_compile=True)` on batches whose sequence length changes every
step: dims that keep varying are marked dynamic, so the step compiles a
bounded number of graphs instead of hitting dynamo's recompile limit (8)
and silently falling back to eager mode."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch._dynamo.testing import CompileCounter

import kerasish as keras
from kerasish.trainers import trainer as trainer_mod

LENGTHS = list(range(3, 15))  # 12 different sequence lengths


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(20, 8),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(1),
    ])


def _batches():
    rng = np.random.default_rng(0)
    return [(rng.integers(0, 20, size=(4, n)), rng.normal(size=(4, 1)).astype("float32")) for n in LENGTHS]


def _fit(model, jit, epochs=2):
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", jit_compile=jit)
    data = _batches()
    return model.fit(torch.utils.data.DataLoader(data, batch_size=None), epochs=epochs, verbose=0)


def test_varying_lengths_compile_a_bounded_number_of_graphs(monkeypatch):
    counter = CompileCounter()
    monkeypatch.setattr(trainer_mod, "_compile_backend", lambda: counter)
    torch._dynamo.reset()
    model = _model()
    twin = copy.deepcopy(model)
    history = _fit(model, jit=True)
    # one eager (building) step, then: 2 static lengths, then one graph with a dynamic length
    # (before: one graph per length until the recompile limit, 8, then eager)
    assert counter.frame_count <= 4, counter.frame_count
    eager = _fit(twin, jit=False)
    np.testing.assert_allclose(history.history["loss"], eager.history["loss"], rtol=1e-5)


def test_a_smaller_last_batch_keeps_static_graphs(monkeypatch):
    counter = CompileCounter()
    monkeypatch.setattr(trainer_mod, "_compile_backend", lambda: counter)
    torch._dynamo.reset()
    marked = []
    real = torch._dynamo.maybe_mark_dynamic
    monkeypatch.setattr(torch._dynamo, "maybe_mark_dynamic", lambda t, d: marked.append(d) or real(t, d))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    x = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    model.fit(x, x[:, :2], batch_size=4, epochs=3, shuffle=False, verbose=0)
    assert marked == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_varying_lengths_under_inductor_equal_eager():
    torch._dynamo.reset()
    model = _model()
    twin = copy.deepcopy(model)
    history = _fit(model, jit=True, epochs=1)
    eager = _fit(twin, jit=False, epochs=1)
    np.testing.assert_allclose(history.history["loss"], eager.history["loss"], rtol=1e-5)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
