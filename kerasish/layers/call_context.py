"""State shared by nested layer calls, kept as module globals (cheap to read,
and torch.compile traces them without graph breaks).

- `CALL_STACK`: the resolved `training` value of every layer call in progress;
  an inner call with no explicit `training=` inherits the innermost one.
- `CALL_GENERATION`: bumped at every outermost call; losses recorded by
  `add_loss` belong to the generation they were added in, so each outermost
  call starts from fresh losses without walking the layer tree.
- `BUILD_DEVICE`: the device of the inputs while a layer builds on its first
  call, so that weights are created next to the data.
"""

from __future__ import annotations

CALL_STACK: list = []
CALL_GENERATION: list = [0]
BUILD_DEVICE: list = [None]
# True while shapes are being inferred (meta-device runs): `add_loss` and
# `add_metric` record nothing then.
SYMBOLIC: list = [False]


def in_call() -> bool:
    return bool(CALL_STACK)


def current_training():
    return CALL_STACK[-1] if CALL_STACK else None
