"""State shared by nested layer calls, kept as module globals (cheap to read,
and torch.compile traces them without graph breaks).

- `CALL_STACK`: the resolved `training` value of every layer call in progress;
  an inner call with no explicit `training=` inherits the innermost one.
- `LOSS_LAYERS`: the layers holding tensor losses from `add_loss`; the next
  outermost call clears them, so each outermost call starts from fresh losses
  without walking the layer tree. (No call counter: torch.compile would
  specialize on it and recompile on every call.)
- `BUILD_DEVICE`: the device of the inputs while a layer builds on its first
  call, so that weights are created next to the data.
"""

from __future__ import annotations

CALL_STACK: list = []
LOSS_LAYERS: list = []
BUILD_DEVICE: list = [None]
# True while shapes are being inferred (meta-device runs): `add_loss` and
# `add_metric` record nothing then.
SYMBOLIC: list = [False]


def in_call() -> bool:
    return bool(CALL_STACK)


def current_training():
    return CALL_STACK[-1] if CALL_STACK else None


def clear_call_losses() -> None:
    for layer in LOSS_LAYERS:
        layer.__dict__["_losses"] = []
    LOSS_LAYERS.clear()
