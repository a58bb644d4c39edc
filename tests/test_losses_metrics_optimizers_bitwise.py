"""Losses, metrics and optimizers against Keras 3 (torch backend), bit for bit
where kerasish follows Keras's formula and op order, and with a stated ulp
bound where it keeps a faster torch kernel on purpose.

- Adam/AdamW: the step size `alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`
  in float32 with torch's 0-d float32 roundings, as Keras computes it (it was
  computed in float64 from Python floats: up to ~230 ulp off after 5 steps).
  The second-moment update stays `addcmul` (Keras rounds `g * g` first; its
  order costs a temporary list, +2% on an MLP training step), so the weights
  may be an ulp or two off now and then: bounded at 2 ulp here. RMSprop keeps
  `addcmul` for the same reason; `clipnorm`/`global_clipnorm` keep torch's
  fused `_foreach_norm` (Keras's `sqrt(sum(g * g))` needs a temporary copy of
  the gradients: +4.8% / +1.6% of an MLP training step); the EMA keeps
  `add_(alpha=)`, which fuses what Keras rounds twice.
- `1 - weight_decay * lr` and the EMA's `1 - ema_momentum` in float32, as
  Keras computes them from its float32 tensors (they were float64).
- Focal and generalized crossentropies: a number exponent goes through
  torch's general `pow` as `keras.ops.power` sends it (the scalar fast path,
  `x * x` for 2, was 1-2 ulp off, forward and backward);
- `label_smoothing` of the categorical crossentropies: `ls / num_classes` in
  float32 as torch's `__rtruediv__` computes it (float64 was up to 32 ulp off).
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


ULP_CASES = [  # (name, kwargs, max ulp): kept torch kernels, see the module docstring
    ("Adam", {}, 2),
    ("Adam", {"amsgrad": True}, 2),
    ("Adam", {"learning_rate": 0.01, "beta_2": 0.99}, 2),
    ("AdamW", {}, 2),
    ("AdamW", {"weight_decay": 0.1, "amsgrad": True}, 2),
    ("RMSprop", {}, 1),
    ("RMSprop", {"momentum": 0.9, "centered": True}, 4),
    ("Adafactor", {}, 1),
    ("Adam", {"clipnorm": 1.0}, 2),
    ("Adam", {"global_clipnorm": 1.0}, 2),
    ("Adam", {"use_ema": True}, 2),
    ("SGD", {"use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": 3}, 6),
    # float32 schedule/bias corrections now (were float64: 74 / 8 / 234 ulp on the sweep);
    # the rest is the `addcmul`-style fused updates and Muon's Newton-Schulz matmuls
    ("Nadam", {}, 2),
    ("Lamb", {}, 1),
    ("Muon", {}, 6),
    ("Adagrad", {}, 1),
    # float32 scalars (`1 - beta_1` is 0.100000024 in Keras): 24-94 ulp before
    ("ScheduleFreeAdamW", {}, 2),
    ("ScheduleFreeAdamW", {"warmup_steps": 3}, 2),
]


@pytest.mark.parametrize("name,kwargs,maxulp", ULP_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(ULP_CASES)])
def test_optimizer_within_ulps_of_keras(keras_ref, name, kwargs, maxulp):
    want = _run_optimizer(keras_ref, name, kwargs)
    got = _run_optimizer(kerasish, name, kwargs)
    np.testing.assert_array_max_ulp(got, want, maxulp=maxulp)


BITWISE_OPTIMIZER_CASES = [
    # `1 - weight_decay * lr` in float32 (was float64, rounded once: differs for larger lr * wd)
    ("SGD", {"learning_rate": 0.1775585510895973, "weight_decay": 0.3}),
    ("SGD", {"learning_rate": 0.45160948098812503, "weight_decay": 0.01, "momentum": 0.9}),
    # the power through torch's general `pow` (a 0.5 exponent took the sqrt fast path) and
    # `l2 + beta / (2 lr)` in float32: up to ~340 ulp off before
    ("Ftrl", {}),
    ("Ftrl", {"l1_regularization_strength": 0.01, "l2_regularization_strength": 0.01,
              "l2_shrinkage_regularization_strength": 0.01, "beta": 0.1}),
    # `1 - beta_1**t` in float32 (was float64: 4 ulp)
    ("Adamax", {}),
    # already equal, pinned
    ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("Adadelta", {}),
    ("Lion", {}),
    ("Adam", {"clipvalue": 0.1}),
    ("Adam", {"gradient_accumulation_steps": 2}),
]


@pytest.mark.parametrize(
    "name,kwargs", BITWISE_OPTIMIZER_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BITWISE_OPTIMIZER_CASES)]
)
def test_optimizer_equals_keras_bitwise(keras_ref, name, kwargs):
    np.testing.assert_array_equal(_run_optimizer(kerasish, name, kwargs), _run_optimizer(keras_ref, name, kwargs))


# ------------------------------------------------------------------ losses
B, C = 16, 7
LOGITS = (RNG.standard_normal((B, C)) * 2).astype("float32")
PROBS = (np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)).astype("float32")
ONE_HOT = np.eye(C, dtype="float32")[RNG.integers(0, C, B)]
SPARSE = RNG.integers(0, C, B)
BIN_T = (RNG.random((B, C)) > 0.5).astype("float32")
BIN_P = (1 / (1 + np.exp(-LOGITS))).astype("float32")
SAMPLE_W = RNG.random(B).astype("float32")

LOSS_CASES = [
    # a Python-number exponent took torch's scalar `pow` fast path (x * x for 2): 1-2 ulp
    ("BinaryFocalCrossentropy", BIN_T, BIN_P, {}),
    ("BinaryFocalCrossentropy", BIN_T, LOGITS, {"from_logits": True, "apply_class_balancing": True, "gamma": 3.0}),
    ("CategoricalFocalCrossentropy", ONE_HOT, PROBS, {"gamma": 1.5}),
    ("CategoricalGeneralizedCrossEntropy", SPARSE, PROBS, {}),
    ("CategoricalGeneralizedCrossEntropy", SPARSE, PROBS, {"q": 0.3}),
    # `ls / num_classes` was a float64 division: up to 32 ulp
    ("CategoricalCrossentropy", ONE_HOT, LOGITS, {"from_logits": True, "label_smoothing": 0.1}),
    ("CategoricalCrossentropy", ONE_HOT, PROBS, {"label_smoothing": 0.3}),
    ("CategoricalFocalCrossentropy", ONE_HOT, PROBS, {"label_smoothing": 0.2}),
    # already equal, pinned
    ("BinaryCrossentropy", BIN_T, BIN_P, {"label_smoothing": 0.1}),
    ("BinaryCrossentropy", BIN_T, LOGITS, {"from_logits": True}),
    ("SparseCategoricalCrossentropy", SPARSE, LOGITS, {"from_logits": True}),
    ("SparseCategoricalCrossentropy", SPARSE, PROBS, {}),
    ("Huber", LOGITS[::-1].copy(), LOGITS, {"delta": 0.5}),
    ("LogCosh", LOGITS[::-1].copy(), LOGITS, {}),
    ("KLDivergence", PROBS[::-1].copy(), PROBS, {}),
    ("CosineSimilarity", LOGITS[::-1].copy(), LOGITS, {}),
]


def _loss_and_grad(lib, name, y_true, y_pred, kwargs, reduction, sample_weight):
    loss = getattr(lib.losses, name)(reduction=reduction, **kwargs)
    pred = torch.tensor(y_pred, requires_grad=True)
    args = (torch.tensor(y_true), pred) + (() if sample_weight is None else (torch.tensor(sample_weight),))
    out = loss(*args)
    scale = torch.linspace(0.5, 1.5, out.numel()).reshape(out.shape)
    (grad,) = torch.autograd.grad((out * scale).sum(), [pred])
    return out.detach().numpy(), grad.numpy()


@pytest.mark.parametrize("reduction,weighted", [("sum_over_batch_size", False), ("none", True), ("sum", True)])
@pytest.mark.parametrize("name,y_true,y_pred,kwargs", LOSS_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(LOSS_CASES)])
def test_loss_equals_keras_bitwise(keras_ref, name, y_true, y_pred, kwargs, reduction, weighted):
    sample_weight = SAMPLE_W if weighted else None
    want = _loss_and_grad(keras_ref, name, y_true, y_pred, kwargs, reduction, sample_weight)
    got = _loss_and_grad(kerasish, name, y_true, y_pred, kwargs, reduction, sample_weight)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


# ------------------------------------------------------------------ metrics (all matched; pinned)
REG_T, REG_P = LOGITS[::-1].copy(), LOGITS
METRIC_CASES = [
    ("AUC", BIN_T, BIN_P, {}),
    ("AUC", BIN_T, BIN_P, {"curve": "PR", "num_thresholds": 50, "summation_method": "minoring"}),
    ("AUC", BIN_T, LOGITS, {"from_logits": True, "multi_label": True}),
    ("Precision", BIN_T, BIN_P, {"thresholds": [0.3, 0.5, 0.7]}),
    ("Recall", BIN_T, BIN_P, {"top_k": 2}),
    ("MeanIoU", SPARSE, RNG.integers(0, C, B), {"num_classes": C}),
    ("R2Score", REG_T, REG_P, {"class_aggregation": "variance_weighted_average"}),
    ("F1Score", ONE_HOT, PROBS, {"average": "macro", "threshold": 0.3}),
    ("FBetaScore", ONE_HOT, PROBS, {"beta": 2.0, "average": "weighted"}),
    ("CategoricalAccuracy", ONE_HOT, PROBS, {}),
    ("SparseTopKCategoricalAccuracy", SPARSE, PROBS, {"k": 3}),
    ("PearsonCorrelation", REG_T, REG_P, {}),
]


def _metric_result(lib, name, y_true, y_pred, kwargs, sample_weight):
    metric = getattr(lib.metrics, name)(**kwargs)
    for sl in (slice(0, 5), slice(5, 11), slice(11, None)):
        weight = None if sample_weight is None else torch.tensor(sample_weight[sl])
        metric.update_state(torch.tensor(y_true[sl]), torch.tensor(y_pred[sl]), sample_weight=weight)
    return np.asarray(metric.result())


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name,y_true,y_pred,kwargs", METRIC_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(METRIC_CASES)])
def test_metric_equals_keras_bitwise(keras_ref, name, y_true, y_pred, kwargs, weighted):
    sample_weight = SAMPLE_W if weighted else None
    want = _metric_result(keras_ref, name, y_true, y_pred, kwargs, sample_weight)
    got = _metric_result(kerasish, name, y_true, y_pred, kwargs, sample_weight)
    np.testing.assert_array_equal(got, want)
