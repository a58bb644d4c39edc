"""The loss and metric containers `compile()` builds (Keras 3's
`CompileLoss` / `CompileMetrics`).

Both are resolved lazily on the first batch, when the shapes of `y_true`
and `y_pred` are known: `"accuracy"`/`"acc"` become `BinaryAccuracy`,
`SparseCategoricalAccuracy` or `CategoricalAccuracy` and `"crossentropy"`/
`"ce"` the matching crossentropy, from the shapes, as Keras 3 does.

Outputs may be a single tensor, a list/tuple or a dict; losses, loss weights
and metrics may then be given per output as lists (in output order) or dicts
(by output name). Multi-output losses are tracked per output as
`"<output>_loss"` metrics.
"""

from __future__ import annotations

import torch

from kerasish import losses as losses_module
from kerasish import metrics as metrics_module
from kerasish.losses.loss import expand_target_to_prediction
from kerasish.metrics.metric import Metric
from kerasish.metrics.reduction_metrics import Mean
from kerasish.metrics.reduction_metrics import MeanMetricWrapper
from kerasish.utils import naming

_ACCURACY = ("accuracy", "acc")
_CROSSENTROPY = ("crossentropy", "ce")


def _shape(t):
    return tuple(t.shape) if hasattr(t, "shape") else tuple(torch.as_tensor(t).shape)


def is_binary_or_sparse_categorical(y_true, y_pred):
    """Keras 3's shape rule: binary when `y_pred` has a last dim of 1;
    sparse when `y_true` has a lower rank (or a last dim of 1 while
    `y_pred`'s is > 1)."""
    ts, ps = _shape(y_true), _shape(y_pred)
    t_last = ts[-1] if ts else 1
    p_last = ps[-1] if ps else 1
    is_binary = p_last == 1
    is_sparse = len(ts) < len(ps) or (t_last == 1 and p_last > 1)
    return is_binary, is_sparse


def _object_name(obj) -> str:
    """The name Keras 3 gives a compiled metric or loss object
    (`keras.src.utils.naming.get_object_name`): its `name`, else its function
    or class name in snake case (`def PSNR` logs as "psnr")."""
    if hasattr(obj, "name") and isinstance(obj.name, str):
        return obj.name
    if hasattr(obj, "__name__"):
        return naming.to_snake_case(obj.__name__)
    return naming.to_snake_case(type(obj).__name__)


def check_identifier(identifier, kind: str) -> None:
    """Validates a loss/metric name at `compile()` time (Keras only finds
    out on the first batch); ValueError naming it."""
    if not isinstance(identifier, str):
        return
    low = identifier.lower()
    if low in _CROSSENTROPY or (kind == "metric" and low in _ACCURACY):
        return
    if kind == "loss":
        losses_module.get(identifier)
    else:
        metrics_module.get(identifier)


def get_metric(identifier, y_true, y_pred) -> Metric:
    if identifier is None:
        raise ValueError("Expected metric, received `None`")
    low = str(identifier).lower() if isinstance(identifier, str) else None
    if low in _ACCURACY or low in _CROSSENTROPY:
        is_binary, is_sparse = is_binary_or_sparse_categorical(y_true, y_pred)
        if low in _ACCURACY:
            cls = (metrics_module.BinaryAccuracy if is_binary else
                   metrics_module.SparseCategoricalAccuracy if is_sparse else metrics_module.CategoricalAccuracy)
        else:
            cls = (metrics_module.BinaryCrossentropy if is_binary else
                   metrics_module.SparseCategoricalCrossentropy if is_sparse else
                   metrics_module.CategoricalCrossentropy)
        metric = cls(name=identifier)
    else:
        metric = metrics_module.get(identifier)
    name = identifier if isinstance(identifier, str) else _object_name(metric)
    if not isinstance(metric, Metric):
        metric = MeanMetricWrapper(metric, name=name)
    metric.name = name
    return metric


def get_loss(identifier, y_true, y_pred):
    if identifier is None:
        return None
    if isinstance(identifier, str) and identifier.lower() in _CROSSENTROPY:
        is_binary, is_sparse = is_binary_or_sparse_categorical(y_true, y_pred)
        fn = (losses_module.binary_crossentropy if is_binary else
              losses_module.sparse_categorical_crossentropy if is_sparse else losses_module.categorical_crossentropy)
    else:
        fn = losses_module.get(identifier)
    if not isinstance(fn, losses_module.Loss):
        name = identifier if isinstance(identifier, str) else _object_name(fn)
        fn = losses_module.LossFunctionWrapper(fn, name=name)
    return fn


def _unique_labels(labels):
    """Per-output loss labels made unique as tf.keras 2 uniquifies output
    names ("model", "model_1", ...). Two outputs of one nested model (a GAN's
    `combined = Model(z, discriminator(generator(z)))`) share a name; Keras 3
    keeps both and the second tracker's value is logged for both."""
    seen, counts, out = set(), {}, []
    for label in labels:
        proposal = label
        while proposal in seen:
            counts[label] = counts.get(label, 0) + 1
            proposal = f"{label}_{counts[label]}"
        seen.add(proposal)
        out.append(proposal)
    return out


def _flat_outputs(y, output_names):
    """`(names, values)` of a model output structure; names may be None."""
    if isinstance(y, dict):
        keys = list(output_names) if output_names and set(output_names) == set(y) else list(y)
        return keys, [y[k] for k in keys]
    if isinstance(y, (list, tuple)):
        names = list(output_names) if output_names and len(output_names) == len(y) else [None] * len(y)
        return names, list(y)
    return [output_names[0] if output_names and len(output_names) == 1 else None], [y]


def _align_targets(y_true, names, num_outputs, what="y_true"):
    """Targets as a list aligned with the flat outputs."""
    if num_outputs == 1:
        if isinstance(y_true, dict) and len(y_true) == 1:
            return list(y_true.values())
        if isinstance(y_true, (list, tuple)) and len(y_true) == 1:
            return [y_true[0]]
        return [y_true]
    if isinstance(y_true, dict):
        missing = [n for n in names if n not in y_true]
        if missing:
            raise ValueError(
                f"{what} is missing entries for the model outputs {missing}. Received keys: {list(y_true)}"
            )
        return [y_true[n] for n in names]
    if isinstance(y_true, (list, tuple)) and len(y_true) == num_outputs:
        return list(y_true)
    raise ValueError(
        f"y_true and y_pred have different structures. The model has {num_outputs} outputs; received "
        f"{what} of type {type(y_true).__name__}"
        + (f" with {len(y_true)} entries" if isinstance(y_true, (list, tuple)) else "")
    )


def _targets_for_defined_losses(y_true, loss, num_outputs):
    """Keras 3: a loss list with `None` entries (`loss=[fn, None]`) may get
    targets for the outputs that have a loss only, in order (one `y` for a
    two-output model); those outputs get them, the others None. None where
    `y_true` does not fit that pattern."""
    if not isinstance(loss, (list, tuple)) or len(loss) != num_outputs or isinstance(y_true, dict):
        return None
    defined = [i for i, fn in enumerate(loss) if fn is not None]
    values = list(y_true) if isinstance(y_true, (list, tuple)) else [y_true]
    if len(values) != len(defined) or len(defined) == num_outputs:
        return None
    targets = [None] * num_outputs
    for i, value in zip(defined, values):
        targets[i] = value
    return targets


def _per_output(spec, names, num_outputs, argument):
    """Spreads a loss/metric/weight spec over the outputs (list or dict)."""
    if isinstance(spec, dict):
        unknown = [k for k in spec if k not in names]
        if unknown:
            raise ValueError(
                f"Invalid `{argument}`: keys {unknown} are not output names of the model {names}. "
                f"Received: {argument}={spec}"
            )
        return [spec.get(n) for n in names]
    if isinstance(spec, (list, tuple)):
        if len(spec) != num_outputs:
            raise ValueError(
                f"Invalid `{argument}`: expected a list of {num_outputs} entries (one per output) or a dict "
                f"keyed by output name. Received: {argument}={spec}"
            )
        return list(spec)
    return [spec] * num_outputs


class CompileLoss:
    """The compiled loss: weighted sum of the per-output losses.

    Args:
        loss: A loss identifier, or a list/dict of them for multi-output models.
        loss_weights: A float, or a list/dict of floats.
        output_names: The model's output names, for dict specs.
    """

    def __init__(self, loss, loss_weights=None, output_names=None):
        if loss_weights is not None and not isinstance(loss_weights, (list, tuple, dict, float, int)):
            raise ValueError(
                "Expected `loss_weights` argument to be a float (single output case) or a list, tuple, or dict "
                f"(multiple output case). Received instead: loss_weights={loss_weights} of type "
                f"{type(loss_weights)}"
            )
        for identifier in _iter_leaves(loss):
            check_identifier(identifier, "loss")
        self._user_loss = loss
        self._user_loss_weights = loss_weights
        self.output_names = output_names
        self.built = False
        self.metrics: list[Mean] = []
        self._entries = []  # (index, loss_fn, weight)
        self._names = None
        self._num_outputs = None

    def _targets(self, y_true, names, n):
        try:
            return _align_targets(y_true, names, n)
        except ValueError:
            targets = _targets_for_defined_losses(y_true, self._user_loss, n)
            if targets is None:
                raise
            return targets

    def build(self, y_true, y_pred):
        names, preds = _flat_outputs(y_pred, self.output_names)
        n = len(preds)
        targets = self._targets(y_true, names, n)
        loss = self._user_loss
        weights = self._user_loss_weights
        if n == 1:
            if isinstance(loss, dict):
                loss = list(loss.values())
            if isinstance(loss, (list, tuple)):
                if len(loss) != 1:
                    raise ValueError(f"The model has a single output but `loss` has {len(loss)} entries: {loss}")
                loss = loss[0]
            if isinstance(weights, dict):
                weights = list(weights.values())
            if isinstance(weights, (list, tuple)):
                weights = weights[0] if weights else None
            per_loss, per_weight = [loss], [weights]
        else:
            per_loss = _per_output(loss, names, n, "loss")
            per_weight = _per_output(weights, names, n, "loss_weights") if weights is not None else [None] * n
        self._entries = []
        for i, (ident, w) in enumerate(zip(per_loss, per_weight)):
            fn = get_loss(ident, targets[i], preds[i])
            if fn is not None:
                self._entries.append((i, fn, None if w is None else float(w)))
        if isinstance(loss, dict) and isinstance(y_pred, dict) and n > 1:
            # Keras walks a loss dict in its own key order when the outputs
            # are a dict too (per-output loss trackers, logs, sum order)
            order = {k: j for j, k in enumerate(loss)}
            self._entries.sort(key=lambda e: order[names[e[0]]])
        if len(self._entries) > 1:
            self.metrics = []
            labels = _unique_labels([names[i] if names[i] is not None else fn.name for i, fn, _ in self._entries])
            for (i, fn, _), label in zip(self._entries, labels):
                with naming.name_scope("compile_loss"):  # Keras builds them in CompileLoss's scope
                    tracker = Mean(name=f"{label}_loss")  # (variable paths "compile_loss/<output>_loss/total")
                device = getattr(preds[i], "device", None)
                if device is not None and device.type != "cpu":
                    tracker.to(device)
                self.metrics.append(tracker)
        self._names = names
        self._num_outputs = n
        self.built = True

    def __call__(self, y_true, y_pred, sample_weight=None):
        if not self.built:
            self.build(y_true, y_pred)
        n = self._num_outputs
        if n == 1 and isinstance(y_pred, torch.Tensor):
            (_, fn, w), = self._entries
            if isinstance(y_true, (list, tuple)) and len(y_true) == 1:
                y_true = y_true[0]
            elif isinstance(y_true, dict) and len(y_true) == 1:
                y_true = next(iter(y_true.values()))
            value = fn(y_true, y_pred, sample_weight)  # (`call_loss`, inlined: once per step)
            return value if w is None else value * w
        _, preds = _flat_outputs(y_pred, self._names)
        targets = self._targets(y_true, self._names, n)
        if sample_weight is not None and isinstance(sample_weight, (list, tuple, dict)):
            weights = _align_targets(sample_weight, self._names, n, "sample_weight")
        else:
            weights = [sample_weight] * n
        total = None
        trackers = self.metrics if self.metrics else [None] * len(self._entries)
        for (i, fn, w), tracker in zip(self._entries, trackers):
            value = call_loss(fn, targets[i], preds[i], weights[i])
            if tracker is not None:
                tracker._update_scalar(value, preds[i].shape[0] if preds[i].ndim else 1)
            if w is not None:
                value = value * w
            total = value if total is None else total + value
        return total


def call_loss(fn, y_true, y_pred, sample_weight=None):
    """`fn(y_true, y_pred, sample_weight)` (`Loss.__call__` has the fast
    path for the common unweighted, unmasked mean)."""
    return fn(y_true, y_pred, sample_weight)


def _iter_leaves(spec):
    if isinstance(spec, dict):
        for v in spec.values():
            yield from _iter_leaves(v)
    elif isinstance(spec, (list, tuple)):
        for v in spec:
            yield from _iter_leaves(v)
    elif spec is not None:
        yield spec


class MetricsList(Metric):
    """The metrics of one output."""

    def __init__(self, metrics, name="metrics_list", output_name=None):
        super().__init__(name=name)
        self.__dict__["metrics_"] = list(metrics)
        self.__dict__["output_name"] = output_name

    @property
    def metrics(self):
        return self.__dict__["metrics_"]

    def update_state(self, y_true, y_pred, sample_weight=None):
        # a (batch,) target for a (batch, 1) prediction reaches the metrics as (batch, 1), as in tf.keras 2, so a
        # user Metric's update_state does not broadcast the pair to (batch, batch) (`expand_target_to_prediction`)
        y_true = expand_target_to_prediction(y_true, y_pred)
        for m in self.metrics:
            m.update_state(y_true, y_pred, sample_weight=sample_weight)

    def reset_state(self):
        for m in self.metrics:
            m.reset_state()

    def result(self):
        return {m.name: m.result() for m in self.metrics}


class CompileMetrics(Metric):
    """The compiled metrics (`metrics` unweighted, `weighted_metrics` with
    the sample weights); `result()` is a dict `{name: value}`.

    It appears in `model.metrics` as one entry named "compile_metrics"
    (Keras 3 behaviour); its `metrics` property lists the resolved metrics.
    """

    def __init__(self, metrics, weighted_metrics, name="compile_metric", output_names=None):
        super().__init__(name=name)
        if metrics and not isinstance(metrics, (list, tuple, dict)):
            raise ValueError(
                "Expected `metrics` argument to be a list, tuple, or dict. "
                f"Received instead: metrics={metrics} of type {type(metrics)}"
            )
        if weighted_metrics and not isinstance(weighted_metrics, (list, tuple, dict)):
            raise ValueError(
                "Expected `weighted_metrics` argument to be a list, tuple, or dict. "
                f"Received instead: weighted_metrics={weighted_metrics} of type {type(weighted_metrics)}"
            )
        for identifier in list(_iter_leaves(metrics)) + list(_iter_leaves(weighted_metrics)):
            check_identifier(identifier, "metric")
        d = self.__dict__
        d["name"] = "compile_metrics"
        d["_user_metrics"] = metrics
        d["_user_weighted_metrics"] = weighted_metrics
        d["output_names"] = output_names
        d["_flat_metrics"] = []
        d["_flat_weighted_metrics"] = []
        d["_names"] = None
        self.built = False

    @property
    def metrics(self) -> list:
        out = []
        for mls in self._flat_metrics + self._flat_weighted_metrics:
            if mls is not None:
                out.extend(mls.metrics)
        return out

    @property
    def variables(self):
        return [v for m in self.metrics for v in m.variables]

    def _build_set(self, spec, names, targets, preds):
        n = len(preds)
        if not spec:
            return [None] * n
        if n == 1:
            flat = list(_iter_leaves(spec))
            return [MetricsList([get_metric(m, targets[0], preds[0]) for m in flat])]
        per = _per_output(spec, names, n, "metrics")
        out = []
        for i, s in enumerate(per):
            if s is None:
                out.append(None)
                continue
            s = s if isinstance(s, (list, tuple)) else [s]
            out.append(MetricsList([get_metric(m, targets[i], preds[i]) for m in s], output_name=names[i]))
        return out

    def build(self, y_true, y_pred):
        names, preds = _flat_outputs(y_pred, self.output_names)
        targets = _align_targets(y_true, names, len(preds))
        d = self.__dict__
        d["_names"] = names
        # the metrics named by strings are made outside this container's name scope, as in Keras (whose
        # metrics are not layers): their variables' paths are "mean_absolute_error/total", not
        # "compile_metrics/mean_absolute_error/total"
        from kerasish.layers import call_context

        state = call_context.state()
        enclosing, state.scope = state.scope, []
        try:
            d["_flat_metrics"] = self._build_set(self._user_metrics, names, targets, preds)
            d["_flat_weighted_metrics"] = self._build_set(self._user_weighted_metrics, names, targets, preds)
        finally:
            state.scope = enclosing
        self.built = True
        device = getattr(preds[0], "device", None)
        if device is not None and device.type != "cpu":
            for m in self.metrics:  # state next to the predictions (no per-step copies)
                m.to(device)
                m.__dict__["_device_hint"] = device

    def update_state(self, y_true, y_pred, sample_weight=None):
        if not self.built:
            self.build(y_true, y_pred)
        names, preds = _flat_outputs(y_pred, self._names)
        n = len(preds)
        targets = _align_targets(y_true, names, n)
        for mls, yt, yp in zip(self._flat_metrics, targets, preds):
            if mls is not None:
                mls.update_state(yt, yp)
        if sample_weight is not None and isinstance(sample_weight, (list, tuple, dict)) and n > 1:
            weights = _align_targets(sample_weight, names, n, "sample_weight")
        else:
            weights = [sample_weight] * n
        for mls, yt, yp, sw in zip(self._flat_weighted_metrics, targets, preds, weights):
            if mls is not None:
                mls.update_state(yt, yp, sw)

    def reset_state(self):
        for m in self.metrics:
            m.reset_state()

    def result(self) -> dict:
        results, counters = {}, {}
        for mls in self._flat_metrics:
            if mls is None:
                continue
            for m in mls.metrics:
                name = f"{mls.output_name}_{m.name}" if mls.output_name else m.name
                if name in counters:
                    counters[name] += 1
                    name = f"{name}_{counters[name] - 1}"
                else:
                    counters[name] = 1
                results[name] = m.result()
        for mls in self._flat_weighted_metrics:
            if mls is None:
                continue
            for m in mls.metrics:
                name = f"{mls.output_name}_{m.name}" if mls.output_name else m.name
                if name in counters:
                    name = f"weighted_{m.name}"
                    if mls.output_name:
                        name = f"{mls.output_name}_{name}"
                    if name in counters:
                        counters[name] += 1
                        name = f"{name}_{counters[name] - 1}"
                    else:
                        counters[name] = 1
                else:
                    counters[name] = 1
                results[name] = m.result()
        return results

    def _apply(self, fn, recurse=True):
        for m in self.metrics:
            m._apply(fn, recurse)
        return self
