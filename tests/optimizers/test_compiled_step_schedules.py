"""A compiled optimizer step with learning-rate schedules, EMA, clipping,
weight decay and gradient accumulation: one graph (no graph break, no
recompile as the step number and the scheduled rate change), and Keras 3's
numbers at every step.

The reference is real Keras 3 on its torch backend, fed the same initial
weights and the same gradients. Before: the schedule's value was read with
`float()`, EMA's, gradient accumulation's and Keras 2 decay's decisions
with `int(iterations)`, each a graph break, and the Python values read there
made dynamo recompile the rest of the step for every new value."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._dynamo.testing import CompileCounter

import kerasish as keras

STEPS = 7  # past the warmup (3 steps), both piecewise boundaries (2, 4) and two EMA overwrites (every 3)
SHAPES = [(3, 4), (4,)]


def _schedule(lib, name):
    s = lib.optimizers.schedules
    return {
        "exponential_staircase": lambda: s.ExponentialDecay(0.1, 2, 0.5, staircase=True),
        "piecewise": lambda: s.PiecewiseConstantDecay([2, 4], [0.1, 0.05, 0.01]),
        "cosine_warmup": lambda: s.CosineDecay(0.0, 5, alpha=0.1, warmup_target=0.1, warmup_steps=3),
        "cosine": lambda: s.CosineDecay(0.1, 5),
        "restarts": lambda: s.CosineDecayRestarts(0.1, 2),
        "polynomial": lambda: s.PolynomialDecay(0.1, 5, end_learning_rate=0.01, power=2.0),
        "inverse_time": lambda: s.InverseTimeDecay(0.1, 2, 0.5),
        "constant": lambda: 0.05,
    }[name]()


# name -> (optimizer class name, schedule, extra arguments)
CASES = {
    "adam_exponential_staircase": ("Adam", "exponential_staircase", {}),
    "sgd_nesterov_piecewise": ("SGD", "piecewise", {"momentum": 0.9, "nesterov": True}),
    "adamw_cosine_warmup": ("AdamW", "cosine_warmup", {"weight_decay": 0.05}),
    "rmsprop_restarts_clipnorm": ("RMSprop", "restarts", {"clipnorm": 0.5, "momentum": 0.5}),
    "adam_polynomial_ema_global_clipnorm": ("Adam", "polynomial", {"use_ema": True, "ema_overwrite_frequency": 3,
                                                                    "global_clipnorm": 0.5}),
    "lion_inverse_time_ema": ("Lion", "inverse_time", {"use_ema": True}),
    "nadam_cosine_weight_decay": ("Nadam", "cosine", {"weight_decay": 0.01}),
    "adamax_piecewise": ("Adamax", "piecewise", {}),
    "adagrad_constant_ema": ("Adagrad", "constant", {"use_ema": True, "ema_overwrite_frequency": 3}),
    "adam_accumulate_ema": ("Adam", "exponential_staircase", {"gradient_accumulation_steps": 2, "use_ema": True}),
    "nadam_accumulate_clipnorm": ("Nadam", "constant", {"gradient_accumulation_steps": 3, "clipnorm": 0.5}),
}


def _optimizer(lib, case):
    cls, schedule, kw = CASES[case]
    return getattr(lib.optimizers, cls)(learning_rate=_schedule(lib, schedule), **kw)


def _initial(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype("float32") for s in SHAPES]


def _grads(step):
    rng = np.random.default_rng(100 + step)
    return [rng.normal(size=s).astype("float32") for s in SHAPES]


def _keras_run(keras_ref, case):
    """Keras's weights after each step."""
    variables = [keras_ref.Variable(w) for w in _initial()]
    opt = _optimizer(keras_ref, case)
    opt.build(variables)
    out = []
    for i in range(STEPS):
        opt.apply([torch.from_numpy(g) for g in _grads(i)], variables)
        out.append([keras_ref.ops.convert_to_numpy(v.value).copy() for v in variables])
    return out


@pytest.mark.parametrize("via", ["apply", "step"])
@pytest.mark.parametrize("case", list(CASES))
def test_compiled_step_is_one_graph_with_keras_numbers(case, via, keras_ref):
    weights = [torch.nn.Parameter(torch.from_numpy(w)) for w in _initial()]
    opt = _optimizer(keras, case)
    opt.build(weights)
    torch._dynamo.reset()
    counter = CompileCounter()
    if via == "apply":  # a user's step function calling `apply`
        compiled = torch.compile(lambda grads: opt.apply(grads, weights), backend=counter, fullgraph=True)
    else:  # a torch training loop: `.grad` set by backward, then `torch.compile(opt.step)`
        compiled = torch.compile(opt.step, backend=counter, fullgraph=True)
    eager = (lambda grads: opt.apply(grads, weights)) if via == "apply" else opt.step
    want = _keras_run(keras_ref, case)
    for i in range(STEPS):
        grads = [torch.from_numpy(g) for g in _grads(i)]
        run = eager if i == 0 else compiled  # the first step eager, as in fit(jit_compile=True)
        if via == "apply":
            run(grads)
        else:
            for w, g in zip(weights, grads):
                w.grad = g
            run()
        for w, k in zip(weights, want[i]):
            np.testing.assert_allclose(w.detach().numpy(), k, rtol=1e-5, atol=1e-6, err_msg=f"step {i + 1}")
    assert counter.frame_count == 1, counter.frame_count  # one graph for every step number and rate
    assert int(opt.iterations) == STEPS // (CASES[case][2].get("gradient_accumulation_steps") or 1)


@pytest.mark.parametrize("case", ["adam_polynomial_ema_global_clipnorm", "adamw_cosine_warmup"])
def test_no_graph_break_reported(case):
    weights = [torch.nn.Parameter(torch.from_numpy(w)) for w in _initial()]
    opt = _optimizer(keras, case)
    opt.build(weights)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(lambda g: opt.apply(g, weights))([torch.from_numpy(g) for g in _grads(0)])
    assert explanation.graph_break_count == 0, [str(b.reason)[:200] for b in explanation.break_reasons]
    assert explanation.graph_count == 1


def test_keras2_decay_compiles_once_and_equals_eager():
    """Keras 2's time-based `decay` (no Keras 3 reference: Keras 3 ignores it)."""
    weights = [torch.nn.Parameter(torch.from_numpy(w)) for w in _initial()]
    ref_weights = [torch.nn.Parameter(torch.from_numpy(w)) for w in _initial()]
    opt, ref = (keras.optimizers.SGD(learning_rate=0.1, decay=0.5) for _ in range(2))
    opt.build(weights)
    ref.build(ref_weights)
    torch._dynamo.reset()
    counter = CompileCounter()
    compiled = torch.compile(opt.apply, backend=counter, fullgraph=True)
    for i in range(STEPS):
        compiled([torch.from_numpy(g) for g in _grads(i)], weights)
        ref.apply([torch.from_numpy(g) for g in _grads(i)], ref_weights)
        for w, r in zip(weights, ref_weights):
            torch.testing.assert_close(w.detach(), r.detach(), rtol=1e-6, atol=1e-7)
    assert counter.frame_count == 1


def test_fit_jit_compile_with_a_schedule_does_not_recompile_per_step(monkeypatch):
    """3 epochs of 5 steps with a warmup schedule, EMA, weight decay and
    global clipping: a fixed number of graphs (before: 2 more per step), and
    the eager fit's numbers."""
    from kerasish.trainers import trainer as trainer_mod

    counter = CompileCounter()
    monkeypatch.setattr(trainer_mod, "_compile_backend", lambda: counter)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype("float32"), rng.normal(size=(40, 1)).astype("float32")
    results = []
    for jit in (True, False):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
        s = keras.optimizers.schedules.CosineDecay(0.0, 10, warmup_target=0.05, warmup_steps=4)
        opt = keras.optimizers.AdamW(learning_rate=s, weight_decay=0.01, global_clipnorm=1.0, use_ema=True,
                                     ema_overwrite_frequency=4)
        model.compile(optimizer=opt, loss="mse", jit_compile=jit)
        torch._dynamo.reset()
        history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
        results.append((history.history["loss"], model.get_weights()))
        if jit:
            frames = counter.frame_count
    # the forward+backward graph and the optimizer update (fit's own `loss.backward()` splits them)
    assert frames <= 2, frames
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
