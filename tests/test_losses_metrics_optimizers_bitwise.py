"""Losses, metrics and optimizers against Keras 3 (torch backend), bit for bit
where kerasish follows Keras's formula and op order, and with a stated ulp
bound where it keeps a faster torch kernel on purpose.

- Adam/AdamW: the step size `alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`
  in float32 with torch's 0-d float32 roundings, as Keras computes it (it was
  computed in float64 from Python floats: up to ~230 ulp off after 5 steps).
  The second-moment update stays `addcmul` (Keras rounds `g * g` first; its
  order costs a temporary list, +2% on a fit step), so the weights may be an
  ulp or two off now and then: bounded at 2 ulp here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish
from kerasish.optimizers.optimizer import _adam_alpha

RNG = np.random.default_rng(11)
SHAPES = [(5, 7), (7,), (3, 4, 6), (300,)]
INIT = [RNG.standard_normal(s).astype("float32") for s in SHAPES]
GRADS = [[RNG.standard_normal(s).astype("float32") for s in SHAPES] for _ in range(6)]


def _keras_alpha(lr, beta_1, beta_2, step):
    """The maths of Keras's torch Adam step size: every operand a 0-d float32
    tensor, every operation rounded in float32."""
    f32 = torch.float32
    t = torch.tensor(step, dtype=f32)
    b1p = torch.pow(torch.tensor(beta_1, dtype=f32), t)
    b2p = torch.pow(torch.tensor(beta_2, dtype=f32), t)
    return (torch.tensor(lr, dtype=f32) * torch.sqrt(1 - b2p) / (1 - b1p)).item()


@pytest.mark.parametrize("lr,beta_1,beta_2", [(1e-3, 0.9, 0.999), (3e-4, 0.9, 0.98), (0.01, 0.5, 0.9)])
def test_adam_step_size_is_float32_as_keras(lr, beta_1, beta_2):
    steps = list(range(1, 3001, 7)) + [10_000, 20_001]
    got = np.array([_adam_alpha(lr, beta_1, beta_2, float(s)) for s in steps], np.float32)
    want = np.array([_keras_alpha(lr, beta_1, beta_2, float(s)) for s in steps], np.float32)
    np.testing.assert_array_equal(got, want)


def _run_optimizer(lib, name, kwargs):
    opt = getattr(lib.optimizers, name)(**kwargs)
    variables = [lib.Variable(v.copy(), name=f"v{i}") for i, v in enumerate(INIT)]
    for grads in GRADS:
        opt.apply([torch.tensor(g) for g in grads], variables)
    if kwargs.get("use_ema"):
        opt.finalize_variable_values(variables)
    return np.concatenate([np.asarray(v.numpy()).ravel() for v in variables])


ADAM_CASES = [
    ("Adam", {}),
    ("Adam", {"amsgrad": True}),
    ("Adam", {"learning_rate": 0.01, "beta_2": 0.99}),
    ("AdamW", {}),
    ("AdamW", {"weight_decay": 0.1, "amsgrad": True}),
]


@pytest.mark.parametrize("name,kwargs", ADAM_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ADAM_CASES)])
def test_adam_family_within_2_ulp_of_keras(keras_ref, name, kwargs):
    want = _run_optimizer(keras_ref, name, kwargs)
    got = _run_optimizer(kerasish, name, kwargs)
    np.testing.assert_array_max_ulp(got, want, maxulp=2)
