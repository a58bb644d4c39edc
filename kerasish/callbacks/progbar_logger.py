"""`keras.utils.Progbar` and `keras.callbacks.ProgbarLogger`: Keras 3's
progress bar

    10/10 ━━━━━━━━━━━━━━━━━━━━ 0s 3ms/step - accuracy: 0.9000 - loss: 0.1234

Batch logs may arrive as tensors or as a zero-argument function producing
them: they are read (which waits for the device) only when the bar is
actually redrawn, at most every `interval` seconds, and at the end.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time

import numpy as np

from kerasish.callbacks.callback import Callback


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _print(message: str) -> None:
    from kerasish.utils.io_utils import print_msg

    print_msg(message, line_break=False)  # stdout, or logging when interactive logging is off


def _to_float(v):
    try:
        if hasattr(v, "detach"):
            v = v.detach().cpu()
            return float(v) if v.numel() == 1 else v.numpy()
        return float(v)
    except (TypeError, ValueError):
        return v


def materialize_logs(logs) -> dict:
    """A flat, sorted dict of Python floats from tensor logs, nested dicts or
    a zero-argument function returning them (Keras's `pythonify_logs`)."""
    if callable(logs):
        logs = logs()
    result = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            result.update(materialize_logs(value))
        else:
            result[key] = _to_float(value)
    return result


def _items_in_order(logs) -> list:
    """`(name, value)` pairs of a dict of logs in the dict's own order (nested
    dicts flattened in place): Keras's ProgbarLogger shows an epoch's logs as
    `list(logs.items())`, unsorted, so the entries that callbacks add to them
    (`learning_rate`) come last."""
    items = []
    for key, value in logs.items():
        if isinstance(value, dict):
            items.extend(_items_in_order(value))
        else:
            items.append((key, _to_float(value)))
    return items


class Progbar:
    """Displays a progress bar.

    Args:
        target: Total number of steps, or None if unknown.
        width: Bar width in characters. Defaults to 20.
        verbose: 0 (silent), 1 (bar), 2 (one line at the end).
        interval: Minimum seconds between redraws. Defaults to 0.05.
        stateful_metrics: Names displayed as-is (not averaged over steps).
        stateless_metrics: Names averaged over steps (pass one of the two).
        unit_name: "step" or "sample".
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 stateless_metrics=None, unit_name="step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError("Only one of `stateful_metrics` or `stateless_metrics` can be provided.")
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        if stateful_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = set(stateful_metrics), None
        elif stateless_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = None, set(stateless_metrics)
        else:
            self.stateful_metrics, self.stateless_metrics = set(), None
        # A terminal or notebook redraws one line in place. Anything else (a log
        # file, a pipe, CI) gets one line per bar, written when it finishes:
        # Keras's own test here (`"posix" in sys.modules`, always true on Linux)
        # would fill log files with carriage-return redraws.
        self._dynamic_display = (
            (hasattr(sys.stdout, "isatty") and sys.stdout.isatty())
            or "ipykernel" in sys.modules or "PYCHARM_HOSTED" in os.environ
        )
        self._seen_so_far = 0
        self._values = {}
        self._values_order = []
        self._start = time.time()
        self._last_update = 0
        self._time_after_first_step = None
        self._prev_total_width = 0

    def _is_stateless(self, k):
        if self.stateful_metrics is not None:
            return k not in self.stateful_metrics
        return k in self.stateless_metrics

    def update(self, current, values=None, finalize=None):
        """Updates the bar to step `current`.

        Args:
            current: Index of the current step (1-based).
            values: List of `(name, value)` pairs, a dict, or a function
                returning a dict (read only when the bar is redrawn).
            finalize: Whether this is the last update. Defaults to
                `current >= target`.
        """
        if finalize is None:
            finalize = False if self.target is None else current >= self.target
        now = time.time()
        time_per_unit = self._estimate_step_duration(current, now)
        redraw = (
            self.verbose == 1
            and (finalize or (self._dynamic_display and now - self._last_update >= self.interval))
        ) or (self.verbose == 2 and finalize)
        lazy = callable(values) or isinstance(values, dict)
        if redraw or not lazy:
            if callable(values):  # a step's lazy logs: Keras's `pythonify_logs` (sorted)
                values = list(materialize_logs(values).items())
            elif lazy:
                values = _items_in_order(values)
            for k, v in values or []:
                if k not in self._values_order:
                    self._values_order.append(k)
                if self._is_stateless(k):
                    if finalize:
                        self._values[k] = [v, 1]
                    else:
                        base = max(current - self._seen_so_far, 1)
                        if k not in self._values:
                            self._values[k] = [v * base, base]
                        else:
                            self._values[k][0] += v * base
                            self._values[k][1] += base
                else:
                    self._values[k] = [v, 1]
        self._seen_so_far = current
        if not redraw:
            return
        if self.verbose == 1:
            self._draw_bar(current, now, time_per_unit, finalize)
        else:
            self._draw_line(current, now, time_per_unit)
        self._last_update = now

    def _metrics_text(self) -> str:
        info = ""
        for k in self._values_order:
            info += f" - {k}:"
            entry = self._values[k]
            value, count = entry
            if not isinstance(value, float):
                value = np.mean(value)
            avg = value / max(1, count)
            info += f" {avg:.4f}" if abs(avg) > 1e-3 else f" {avg:.4e}"
        return info

    def _draw_bar(self, current, now, time_per_unit, finalize):
        message = ("\b" * self._prev_total_width + "\r") if self._dynamic_display else ""
        special = 0
        if self.target is not None and self.target > 0:
            digits = int(math.log10(self.target)) + 1
            bar = f"\x1b[1m{current:{digits}d}/{self.target}\x1b[0m "
            special += 8
            width = int(self.width * float(current) / self.target)
            if width > 0:
                bar += f"\33[32m{'━' * width}\x1b[0m"
                special += 9
            bar += f"\33[37m{'━' * (self.width - width)}\x1b[0m"
            special += 9
        else:
            bar = f"{current:7d}/Unknown"
        message += bar
        if self.target is not None and self.target > 0 and not finalize:
            eta = time_per_unit * (self.target - current)
            if eta > 3600:
                eta_text = f"{int(eta // 3600)}:{int((eta % 3600) // 60):02d}:{int(eta % 60):02d}"
            elif eta > 60:
                eta_text = f"{int(eta // 60)}:{int(eta % 60):02d}"
            else:
                eta_text = f"{int(eta)}s"
            info = f" \x1b[1m{eta_text}\x1b[0m"
        else:
            info = f" \x1b[1m{now - self._start:.0f}s\x1b[0m"
        special += 8
        info += self._format_time(time_per_unit) + self._metrics_text()
        message += info
        total_width = len(bar) + len(info) - special
        if self._prev_total_width > total_width:
            message += " " * (self._prev_total_width - total_width)
        if finalize:
            message += "\n"
        if not self._dynamic_display:  # a log file: no colours, no redraw padding
            message = _ANSI.sub("", message).rstrip(" ")
            message = message if message.endswith("\n") else message + "\n"
        _print(message)
        self._prev_total_width = total_width

    def _draw_line(self, current, now, time_per_unit):
        if self.target is None or self.target <= 0:
            return
        digits = int(math.log10(self.target)) + 1
        info = f"{current:{digits}d}/{self.target} - {now - self._start:.0f}s -{self._format_time(time_per_unit)}"
        _print(info + self._metrics_text() + "\n")

    def add(self, n, values=None):
        self.update(self._seen_so_far + n, values)

    def _format_time(self, time_per_unit):
        if time_per_unit >= 1 or time_per_unit == 0:
            return f" {time_per_unit:.0f}s/{self.unit_name}"
        if time_per_unit >= 1e-3:
            return f" {time_per_unit * 1e3:.0f}ms/{self.unit_name}"
        return f" {time_per_unit * 1e6:.0f}us/{self.unit_name}"

    def _estimate_step_duration(self, current, now):
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            per = (now - self._time_after_first_step) / (current - 1)
        else:
            per = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per


class ProgbarLogger(Callback):
    """Prints metrics to stdout (the bar `fit(verbose=1)` shows).

    verbose=1 draws the bar, 2 prints one line per epoch, 0 is silent.
    Metric values are displayed as the model reports them (running means).
    """

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            _print(f"Epoch {epoch + 1}/{self.epochs}\n")

    def on_train_batch_end(self, batch, logs=None):
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update_progbar(batch, None)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize_progbar(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs=None):
        self._finalize_progbar(logs)

    def _reset_progbar(self):
        self.seen = 0
        self.progbar = None

    def _maybe_init_progbar(self):
        if self.progbar is None:
            self.progbar = Progbar(target=self.target, verbose=self.verbose, unit_name="step",
                                   stateless_metrics=set())

    def _update_progbar(self, batch, logs=None):
        self._maybe_init_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, logs if logs is not None else {}, finalize=False)

    def _finalize_progbar(self, logs):
        self._maybe_init_progbar()
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.update(self.target, logs if logs is not None else {}, finalize=True)
