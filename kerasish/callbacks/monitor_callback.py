"""Shared base of callbacks that watch a metric (`EarlyStopping`,
`ModelCheckpoint`, `ReduceLROnPlateau`) and optimizer learning-rate helpers."""

from __future__ import annotations

import operator
import warnings

from kerasish.callbacks.callback import Callback


def get_learning_rate(optimizer) -> float:
    """The learning rate of a kerasish or plain torch optimizer, as a float."""
    if hasattr(optimizer, "learning_rate"):
        return float(optimizer.learning_rate)
    if hasattr(optimizer, "param_groups") and optimizer.param_groups:
        return float(optimizer.param_groups[0]["lr"])
    raise ValueError('Optimizer must have a "learning_rate" attribute.')


def set_learning_rate(optimizer, value: float) -> None:
    """Sets the learning rate of a kerasish optimizer or of every param group
    of a plain torch optimizer."""
    if hasattr(optimizer, "learning_rate"):
        optimizer.learning_rate = value
    elif hasattr(optimizer, "param_groups"):
        for group in optimizer.param_groups:
            group["lr"] = value
    else:
        raise ValueError('Optimizer must have a "learning_rate" attribute.')


class MonitorCallback(Callback):
    """Base for callbacks that compare a monitored value with its best.

    Args:
        monitor: Name of the log entry to watch. Defaults to "val_loss".
        mode: "min", "max" or "auto" (from the metric's direction; losses
            are minimized; as in Keras 2, a name containing "acc" that is no
            compiled metric, e.g. "val_acc", is maximized). Defaults to "auto".
        baseline: Initial best value. Defaults to None.
        min_delta: Smallest change that counts as an improvement.
    """

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = operator.lt
        elif self.mode == "max":
            self.monitor_op = operator.gt
        else:
            name = self.monitor.removeprefix("val_")
            if name == "loss":
                self.monitor_op = operator.lt
            for m in _compiled_metrics(self.model):
                if m.name == name:
                    direction = m.__dict__.get("_direction")
                    if direction is not None:
                        self.monitor_op = operator.gt if direction == "up" else operator.lt
            if self.monitor_op is None and ("acc" in self.monitor or self.monitor.startswith("fmeasure")):
                # Keras 2's "auto" rule, kept so that Keras 2 programs monitoring
                # "val_acc" run (Keras 3 raises below for names it cannot resolve).
                self.monitor_op = operator.gt
            if self.monitor_op is None:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor}, but Keras isn't able to "
                    "automatically determine whether that metric should be maximized or minimized. Pass "
                    "`mode='max'` in order to monitor based on the highest metric value, or pass `mode='min'` "
                    "in order to use the lowest value."
                )
        if self.monitor_op is operator.lt:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value, reference_value) -> bool:
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))


def _compiled_metrics(model) -> list:
    out = []
    for m in getattr(model, "metrics", None) or []:
        sub = getattr(m, "metrics", None)
        if isinstance(sub, list) and type(m).__name__ in ("CompileMetrics", "MetricsList"):
            out.extend(sub)
        else:
            out.append(m)
    return out
