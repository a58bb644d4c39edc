"""Confusion-matrix metrics (Keras 3): `TruePositives`, `FalsePositives`,
`TrueNegatives`, `FalseNegatives`, `Precision`, `Recall` and `AUC`.

The counting follows Keras's `metrics_utils.update_confusion_matrix_variables`:
a prediction is positive when `y_pred > threshold`; evenly spaced thresholds
(AUC's default) use the O(N + T) bucket algorithm (a scatter-add into
threshold buckets then a reversed cumulative sum), others compare every
prediction with every threshold.
"""

from __future__ import annotations

import numpy as np
import torch

from kerasish.backend.promotion import as_tensor
from kerasish.losses.loss import squeeze_or_expand_to_same_rank
from kerasish.metrics.metric import Metric

NEG_INF = -1e10  # Keras's threshold for top_k metrics
_EPSILON = 1e-7  # keras.backend.epsilon()

TP, FP, TN, FN = "tp", "fp", "tn", "fn"


def _to_list(x):
    if isinstance(x, (list, tuple)):
        return list(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return [x]


def parse_init_thresholds(thresholds, default_threshold=0.5):
    if thresholds is not None:
        bad = [t for t in _to_list(thresholds) if t is None or t < 0 or t > 1]
        if bad:
            raise ValueError(f"Threshold values must be in [0, 1]. Received: {bad}")
    return _to_list(default_threshold if thresholds is None else thresholds)


def is_evenly_distributed_thresholds(thresholds) -> bool:
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(n, dtype=np.float32) / (n - 1)
    return bool(np.allclose(thresholds, even, atol=_EPSILON))


def _filter_top_k(x, k):
    idx = torch.topk(x, k, dim=-1).indices
    mask = torch.zeros_like(x).scatter_(-1, idx, 1.0)
    return x * mask + NEG_INF * (1 - mask)


def _divide_no_nan(x, y):
    safe = torch.where(y == 0, torch.ones_like(y), y)
    return torch.where(y == 0, torch.zeros_like(x), x / safe)


def _bucket_counts(values, buckets, num_thresholds):
    """Keras's `segment_sum` on torch: out-of-range bucket ids are dropped."""
    out = torch.zeros(num_thresholds + 1, dtype=values.dtype, device=values.device)
    buckets = torch.where((buckets >= 0) & (buckets < num_thresholds), buckets, num_thresholds)
    out.index_add_(0, buckets, values)
    return out[:-1]


def _update_evenly(variables, y_true, y_pred, thresholds, sample_weight, label_weights, multi_label, with_epsilon):
    num_thresholds = len(thresholds)
    dtype = y_pred.dtype
    weights = torch.ones((), dtype=dtype, device=y_pred.device)
    if sample_weight is not None:
        weights = torch.broadcast_to(sample_weight.to(dtype), y_pred.shape)
    if label_weights is not None:
        weights = weights * torch.broadcast_to(label_weights.to(dtype).unsqueeze(0), y_pred.shape)
    weights = torch.broadcast_to(weights, y_pred.shape)
    y_pred = torch.clamp(y_pred, 0.0, 1.0)
    y_true = y_true.bool().to(dtype)
    if not multi_label:
        y_true, y_pred, weights = y_true.reshape(-1), y_pred.reshape(-1), weights.reshape(-1)
    true_labels = y_true * weights
    false_labels = (1.0 - y_true) * weights
    buckets = torch.ceil(y_pred * (num_thresholds - 1)) - 1
    if with_epsilon:
        buckets = torch.relu(buckets)
    buckets = buckets.to(torch.int64)
    if multi_label:
        cols = [
            (_bucket_counts(true_labels[:, j], buckets[:, j], num_thresholds),
             _bucket_counts(false_labels[:, j], buckets[:, j], num_thresholds))
            for j in range(y_pred.shape[1])
        ]
        tp_b = torch.stack([c[0] for c in cols], dim=1)
        fp_b = torch.stack([c[1] for c in cols], dim=1)
        tp = torch.flip(torch.cumsum(torch.flip(tp_b, [0]), 0), [0])
        fp = torch.flip(torch.cumsum(torch.flip(fp_b, [0]), 0), [0])
        total_true, total_false = true_labels.sum(0), false_labels.sum(0)
    else:
        tp = torch.flip(torch.cumsum(torch.flip(_bucket_counts(true_labels, buckets, num_thresholds), [0]), 0), [0])
        fp = torch.flip(torch.cumsum(torch.flip(_bucket_counts(false_labels, buckets, num_thresholds), [0]), 0), [0])
        total_true, total_false = true_labels.sum(), false_labels.sum()
    with torch.no_grad():
        if TP in variables:
            variables[TP].add_(tp)
        if FP in variables:
            variables[FP].add_(fp)
        if TN in variables:
            variables[TN].add_(total_false - fp)
        if FN in variables:
            variables[FN].add_(total_true - tp)


def update_confusion_matrix_variables(
    variables, y_true, y_pred, thresholds, top_k=None, class_id=None, sample_weight=None,
    multi_label=False, label_weights=None, thresholds_distributed_evenly=False,
):
    """Adds the (weighted) TP/FP/TN/FN counts at each threshold to
    `variables` (a dict with keys "tp", "fp", "tn", "fn")."""
    var = next(iter(variables.values()))
    dtype, device = var.dtype, var.device
    y_pred = as_tensor(y_pred).detach().to(device=device, dtype=dtype)
    y_true = as_tensor(y_true).to(device=device, dtype=dtype)
    with_epsilon = thresholds_distributed_evenly and (thresholds[0] < 0.0 or thresholds[-1] > 1.0)
    y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
    if sample_weight is not None:
        sample_weight = as_tensor(sample_weight).to(device=device, dtype=dtype).unsqueeze(-1)
        _, sample_weight = squeeze_or_expand_to_same_rank(y_true, sample_weight, expand_rank_1=False)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim == 1:
            raise ValueError(
                "When class_id is provided, y_pred must be a 2D array with shape (num_samples, num_classes), "
                f"found shape: {tuple(y_pred.shape)}"
            )
        y_true = y_true[..., class_id, None]
        y_pred = y_pred[..., class_id, None]
    if label_weights is not None:
        label_weights = as_tensor(label_weights).to(device=device, dtype=dtype)
    if thresholds_distributed_evenly:
        return _update_evenly(
            variables, y_true, y_pred, thresholds, sample_weight, label_weights, multi_label, with_epsilon
        )
    thr = torch.as_tensor(np.asarray(thresholds), dtype=dtype, device=device)
    if multi_label:
        preds = y_pred.unsqueeze(0)  # (1, N, L)
        labels = y_true.bool().unsqueeze(0)
        thr = thr.reshape(-1, 1, 1)
    else:
        preds = y_pred.reshape(1, -1)
        labels = y_true.bool().reshape(1, -1)
        thr = thr.reshape(-1, 1)
    pred_pos = preds > thr
    weights = None
    if sample_weight is not None:
        weights = torch.broadcast_to(sample_weight, y_pred.shape).reshape(preds.shape)
    if label_weights is not None and not multi_label:
        lw = torch.broadcast_to(label_weights.unsqueeze(0), y_pred.shape).reshape(preds.shape)
        weights = lw if weights is None else weights * lw

    def count(label, pred):
        both = label & pred
        if weights is not None:
            return torch.where(both, weights, torch.zeros((), dtype=dtype, device=device)).sum(1)
        return both.to(dtype).sum(1)

    with torch.no_grad():
        if TP in variables:
            variables[TP].add_(count(labels, pred_pos))
        if FN in variables:
            variables[FN].add_(count(labels, ~pred_pos))
        if FP in variables:
            variables[FP].add_(count(~labels, pred_pos))
        if TN in variables:
            variables[TN].add_(count(~labels, ~pred_pos))


class _ConfusionMatrixConditionCount(Metric):
    def __init__(self, confusion_matrix_cond, thresholds=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.__dict__["_cond"] = confusion_matrix_cond
        self.__dict__["init_thresholds"] = thresholds
        self.__dict__["thresholds"] = parse_init_thresholds(thresholds, default_threshold=0.5)
        self.__dict__["_evenly"] = is_evenly_distributed_thresholds(self.thresholds)
        self.accumulator = self.add_variable(shape=(len(self.thresholds),), initializer="zeros", name="accumulator")

    def update_state(self, y_true, y_pred, sample_weight=None):
        update_confusion_matrix_variables(
            {self._cond: self.accumulator}, y_true, y_pred, self.thresholds,
            thresholds_distributed_evenly=self._evenly, sample_weight=sample_weight,
        )

    def result(self):
        acc = self.accumulator.detach()
        return acc[0].clone() if len(self.thresholds) == 1 else acc.clone()

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionMatrixConditionCount):
    """The (weighted) number of true positives at each threshold.

    Args:
        thresholds: A float or list of floats in [0, 1]; a prediction is
            positive when it is `> threshold`. Defaults to 0.5.
    """

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(TP, thresholds=thresholds, name=name, dtype=dtype)


class FalsePositives(_ConfusionMatrixConditionCount):
    """The (weighted) number of false positives at each threshold."""

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(FP, thresholds=thresholds, name=name, dtype=dtype)


class TrueNegatives(_ConfusionMatrixConditionCount):
    """The (weighted) number of true negatives at each threshold."""

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(TN, thresholds=thresholds, name=name, dtype=dtype)


class FalseNegatives(_ConfusionMatrixConditionCount):
    """The (weighted) number of false negatives at each threshold."""

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(FN, thresholds=thresholds, name=name, dtype=dtype)


class _PrecisionRecallBase(Metric):
    _other = FP

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        d = self.__dict__
        d["_direction"] = "up"
        d["init_thresholds"] = thresholds
        d["top_k"] = top_k
        d["class_id"] = class_id
        d["thresholds"] = parse_init_thresholds(thresholds, default_threshold=0.5 if top_k is None else NEG_INF)
        d["_evenly"] = is_evenly_distributed_thresholds(self.thresholds)
        n = len(self.thresholds)
        self.true_positives = self.add_variable(shape=(n,), initializer="zeros", name="true_positives")
        other_name = "false_positives" if self._other == FP else "false_negatives"
        setattr(self, other_name, self.add_variable(shape=(n,), initializer="zeros", name=other_name))
        d["_other_name"] = other_name

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulates the counts. `y_pred` are probabilities; `sample_weight`
        weighs each sample."""
        update_confusion_matrix_variables(
            {TP: self.true_positives, self._other: getattr(self, self._other_name)},
            y_true, y_pred, self.thresholds, thresholds_distributed_evenly=self._evenly,
            top_k=self.top_k, class_id=self.class_id, sample_weight=sample_weight,
        )

    def result(self):
        tp = self.true_positives.detach()
        res = _divide_no_nan(tp, tp + getattr(self, self._other_name).detach())
        return res[0] if len(self.thresholds) == 1 else res

    def get_config(self):
        return {
            **super().get_config(),
            "thresholds": self.init_thresholds, "top_k": self.top_k, "class_id": self.class_id,
        }


class Precision(_PrecisionRecallBase):
    """`true_positives / (true_positives + false_positives)`.

    Args:
        thresholds: Float or list of floats in [0, 1]; a prediction counts
            as positive when `> threshold`. Defaults to 0.5 (or, with
            `top_k`, to "any of the top k").
        top_k: Only the top-k predictions of each sample count as positive.
        class_id: Only this class (last axis) is evaluated.

    Example:
        >>> m = keras.metrics.Precision()
        >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
        >>> round(float(m.result()), 4)
        0.6667
    """

    _other = FP


class Recall(_PrecisionRecallBase):
    """`true_positives / (true_positives + false_negatives)`.

    Args: as `Precision`.
    """

    _other = FN


class AUC(Metric):
    """Approximate area under the ROC or PR curve (Keras 3's Riemann sums over
    `num_thresholds` thresholds).

    Args:
        num_thresholds: Number of thresholds. Defaults to 200.
        curve: "ROC" (default), "PR" or "PRGAIN".
        summation_method: "interpolation" (default; for PR the
            Davis & Goadrich interpolation), "minoring" or "majoring".
        thresholds: Explicit thresholds (overrides `num_thresholds`).
        multi_label: One curve per label, then averaged. Defaults to False.
        num_labels: Number of labels when `multi_label=True` (else inferred).
        label_weights: Per-label weights.
        from_logits: Apply a sigmoid to `y_pred` first. Defaults to False.

    Example:
        >>> m = keras.metrics.AUC(num_thresholds=3)
        >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
        >>> float(m.result())
        0.75
    """

    def __init__(
        self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
        thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False,
    ):
        curves = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
        methods = {"interpolation": "interpolation", "majoring": "majoring", "minoring": "minoring"}
        c = getattr(curve, "value", curve)
        if not isinstance(c, str) or c.lower() not in curves or c not in (c.lower(), c.upper()):
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]')
        s = getattr(summation_method, "value", summation_method)
        if not isinstance(s, str) or s.lower() not in methods or s not in (s.lower(), s.capitalize()):
            raise ValueError(
                f'Invalid AUC summation method value: "{summation_method}". '
                'Expected values are ["interpolation", "majoring", "minoring"]'
            )
        super().__init__(name=name, dtype=dtype)
        d = self.__dict__
        d["_direction"] = "up"
        d["_init_from_thresholds"] = thresholds is not None
        if thresholds is not None:
            d["num_thresholds"] = len(thresholds) + 2
            thresholds = sorted(thresholds)
            d["_evenly"] = is_evenly_distributed_thresholds(np.array([0.0, *thresholds, 1.0]))
        else:
            if num_thresholds <= 1:
                raise ValueError(
                    f"Argument `num_thresholds` must be an integer > 1. Received: num_thresholds={num_thresholds}"
                )
            d["num_thresholds"] = num_thresholds
            thresholds = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            d["_evenly"] = True
        d["_thresholds"] = np.array([0.0 - _EPSILON, *thresholds, 1.0 + _EPSILON])
        d["curve"] = curves[c.lower()]
        d["summation_method"] = methods[s.lower()]
        d["multi_label"] = multi_label
        d["num_labels"] = num_labels
        d["label_weights"] = None if label_weights is None else torch.as_tensor(label_weights, dtype=torch.float32)
        d["_from_logits"] = from_logits
        d["_built"] = False
        if multi_label:
            if num_labels:
                self._build([None, num_labels])
        else:
            if num_labels:
                raise ValueError("`num_labels` is needed only when `multi_label` is True.")
            self._build(None)

    @property
    def thresholds(self):
        return list(self._thresholds)

    def _build(self, shape):
        if self.multi_label:
            if len(shape) != 2:
                raise ValueError(
                    f"`y_pred` must have rank 2 when `multi_label=True`. Found rank {len(shape)}. "
                    f"Full shape received for `y_pred`: {shape}"
                )
            self.__dict__["_num_labels"] = shape[1]
            var_shape = (self.num_thresholds, shape[1])
        else:
            var_shape = (self.num_thresholds,)
        for name in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            setattr(self, name, self.add_variable(shape=var_shape, initializer="zeros", name=name))
        self.__dict__["_built"] = True

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulates the confusion counts at every threshold."""
        if not isinstance(y_pred, torch.Tensor):
            y_pred = as_tensor(y_pred if isinstance(y_pred, (list, tuple)) else np.asarray(y_pred))
        if not self._built:
            self._build(tuple(y_pred.shape))
        if self._from_logits:
            y_pred = torch.sigmoid(y_pred.float())
        update_confusion_matrix_variables(
            {TP: self.true_positives, TN: self.true_negatives, FP: self.false_positives, FN: self.false_negatives},
            y_true, y_pred, self._thresholds, thresholds_distributed_evenly=self._evenly,
            sample_weight=sample_weight, multi_label=self.multi_label,
            label_weights=None if self.multi_label else self.label_weights,
        )

    def _by_label(self, terms):
        if not self.multi_label:
            return terms.sum()
        by_label = terms.sum(0)
        if self.label_weights is None:
            return by_label.mean()
        lw = self.label_weights.to(by_label.device)
        return _divide_no_nan((by_label * lw).sum(), lw.sum())

    def interpolate_pr_auc(self):
        """PR-AUC with Davis & Goadrich (2006) interpolation, as Keras."""
        n = self.num_thresholds
        tp, fp, fn = self.true_positives.detach(), self.false_positives.detach(), self.false_negatives.detach()
        dtp = tp[: n - 1] - tp[1:]
        p = tp + fp
        dp = p[: n - 1] - p[1:]
        prec_slope = _divide_no_nan(dtp, torch.clamp(dp, min=0))
        intercept = tp[1:] - prec_slope * p[1:]
        safe_p_ratio = torch.where(
            (p[: n - 1] > 0) & (p[1:] > 0), _divide_no_nan(p[: n - 1], torch.clamp(p[1:], min=0)), torch.ones_like(p[1:])
        )
        increments = _divide_no_nan(
            prec_slope * (dtp + intercept * torch.log(safe_p_ratio)), torch.clamp(tp[1:] + fn[1:], min=0)
        )
        return self._by_label(increments)

    def result(self):
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self.interpolate_pr_auc()
        n = self.num_thresholds
        tp, fp = self.true_positives.detach(), self.false_positives.detach()
        tn, fn = self.true_negatives.detach(), self.false_negatives.detach()
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:  # PRGAIN
            scale = _divide_no_nan(tp + fn, tn + fp)
            recall_gain = 1.0 - scale * _divide_no_nan(fn, tp)
            precision_gain = 1.0 - scale * _divide_no_nan(fp, tp)
            recall_gain = torch.where(tp == 0, torch.zeros_like(recall_gain), recall_gain)
            precision_gain = torch.where(tp == 0, torch.ones_like(precision_gain), precision_gain)
            x, y = torch.clamp(recall_gain, min=0.0), precision_gain
        if self.summation_method == "interpolation":
            heights = (y[: n - 1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[: n - 1], y[1:])
        else:
            heights = torch.maximum(y[: n - 1], y[1:])
        return self._by_label((x[: n - 1] - x[1:]) * heights)

    def reset_state(self):
        if self._built:
            for name in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
                getattr(self, name).zero_()  # (on the variable: a StatelessScope collects it)

    def get_config(self):
        lw = self.label_weights
        config = {
            **super().get_config(),
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if lw is None else lw.tolist(),
            "from_logits": self._from_logits,
        }
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config
