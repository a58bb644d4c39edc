"""The optimizer update under `torch.compile(fullgraph=True)`: no graph
break on `int(iterations)` (the step number is traced as a tensor), no
recompile per step, and the same numbers as the eager update."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.testing import CompileCounter

import kerasish as keras

FULLGRAPH = ["sgd", "adam", "adamw", "rmsprop", "adagrad", "adamax", "lion", "adadelta", "nadam", "muon",
             "schedulefreeadamw"]


def _setup(name, **kwargs):
    torch.manual_seed(0)
    ws = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(4))]
    cls = type(keras.optimizers.get(name))
    opt = cls(learning_rate=0.01, **kwargs)
    opt.build(ws)
    return opt, ws


def _grads(step, ws):
    g = torch.Generator().manual_seed(step)
    return [torch.randn(w.shape, generator=g) for w in ws]


@pytest.mark.parametrize("name", FULLGRAPH)
def test_update_compiles_without_graph_break(name):
    opt, ws = _setup(name)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(lambda g: opt.apply(g, ws))(_grads(0, ws))
    assert explanation.graph_break_count == 0, [str(b.reason)[:200] for b in explanation.break_reasons]


@pytest.mark.parametrize("name", FULLGRAPH)
@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.01, "clipnorm": 1.0}])
def test_compiled_update_equals_eager_and_compiles_once(name, kwargs):
    opt, ws = _setup(name, **kwargs)
    ref_ws = [torch.nn.Parameter(w.detach().clone()) for w in ws]
    ref = type(opt).from_config(opt.get_config())
    ref.build(ref_ws)
    torch._dynamo.reset()
    counter = CompileCounter()
    step = torch.compile(lambda g: opt.apply(g, ws), backend=counter, fullgraph=True)
    for i in range(5):
        step(_grads(i, ws))
        ref.apply(_grads(i, ref_ws), ref_ws)
    assert counter.frame_count == 1  # one graph for every step number
    assert int(opt.iterations) == int(ref.iterations) == 5
    for w, r in zip(ws, ref_ws):
        # the traced bias correction is float32 (eager: float64 Python maths)
        torch.testing.assert_close(w.detach(), r.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_adam_under_inductor_equals_eager():
    opt, ws = _setup("adam")
    ref_ws = [torch.nn.Parameter(w.detach().clone()) for w in ws]
    ref = keras.optimizers.Adam(learning_rate=0.01)
    ref.build(ref_ws)
    torch._dynamo.reset()
    step = torch.compile(lambda g: opt.apply(g, ws), fullgraph=True)
    for i in range(3):
        step(_grads(i, ws))
        ref.apply(_grads(i, ref_ws), ref_ws)
    for w, r in zip(ws, ref_ws):
        torch.testing.assert_close(w.detach(), r.detach(), rtol=1e-5, atol=1e-6)
