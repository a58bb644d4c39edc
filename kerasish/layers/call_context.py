"""The state of the layer calls in progress, one copy per thread
(`call_context.state()`, or `LOCAL.state` on the per-call path).

Everything here belongs to a call, never to the process: a thread training a
model and another one running inference (or building a model) at the same
time each see their own training mode, losses, build device, name scope and
weight casts. The state lives in a `threading.local` subclass rather than in
`contextvars`: `torch.compile` traces attribute reads of a `threading.local`
(and guards on them per thread) with no graph break, while `ContextVar.get`
is a graph break. Layer calls never span an `await`, so asyncio tasks in one
thread share a state that is balanced (empty call stack) at every switch.

One `threading.local` read gives the thread's `_CallState` (a plain
`__slots__` object, so that the per-call path pays one thread-local lookup,
not one per field). Its attributes:

- `stack`: the resolved `training` value of every layer call in progress; an
  inner call with no explicit `training=` inherits the innermost one.
- `entry`: `id()` of the layer whose call pushed the bottom of `stack` (an
  id, so that a deleted model is not kept alive). While `stack` is empty no
  one is below a call: a loss added then belongs to its own layer.
- `losses`: `{id(layer): [weakref(layer), entry id, [tensors]]}` for the
  `add_loss` tensors of this thread's calls. A layer's tensors are dropped
  when an outermost call of the layer itself or of a layer containing it
  starts (Keras 3 clears a layer's losses, sublayers included, at the start
  of its own outermost call only); calling an unrelated layer keeps them.
  They are also dropped when the layer is garbage collected.
- `build_device`: the device of the inputs while a layer builds on its first
  call, so that weights are created next to the data.
- `symbolic`: True while shapes are being inferred (meta-device runs):
  `add_loss` and `add_metric` record nothing then.
- `scope`: the names of the layers being called or built, so that weights
  know their Keras path (`"outer/dense/kernel"`).
- `casts`: `{layer: dtype}` for the mixed-precision layers whose call is in
  progress: their float weights read as `dtype` (see `Layer.__getattr__`).
- `cast_cache`: `{(id(layer), name, grad mode): tensor}`, each weight cast
  once per outermost call (an RNN cell called 40 times in a time loop casts
  its kernel once).
- `device`: the torch device of the innermost `keras.device(...)` scope
  (weights and variables created inside go there), or None.
- `stateless`: the innermost active `keras.StatelessScope`, or None.
- `remat`: the stack of open `keras.RematScope`s (layers created inside
  record the innermost one).
- `dirty`: True when `losses` or `cast_cache` may hold something, so that an
  outermost call with nothing to drop reads one flag.
"""

from __future__ import annotations

import threading
import weakref

import torch


class _CallState:
    """One thread's call state (see the module docstring)."""

    __slots__ = ("stack", "entry", "losses", "build_device", "symbolic", "scope", "casts", "cast_cache", "dirty",
                 "device", "stateless", "remat", "substituted")

    def __init__(self):
        self.stack = []
        self.entry = None
        self.losses = {}
        self.build_device = None
        self.symbolic = False
        self.scope = []
        self.casts = {}
        self.cast_cache = {}
        self.dirty = False
        self.device = None
        self.stateless = None
        self.remat = []
        # (variable dtype, dtype) of the calls in progress of models given weights of another
        # dtype (`functional_call`): their layers without weights compute in it (`weight_substitution`)
        self.substituted = []


class _ThreadState(threading.local):
    def __init__(self):
        self.state = _CallState()


LOCAL = _ThreadState()


def state() -> _CallState:
    """This thread's call state."""
    return LOCAL.state


def in_call() -> bool:
    return bool(LOCAL.state.stack)


def current_training():
    stack = LOCAL.state.stack
    return stack[-1] if stack else None


def in_backward() -> bool:
    """Whether this code runs inside torch's backward pass. A layer called
    there is `torch.utils.checkpoint` recomputing a forward already done (both
    `use_reentrant=False` and `True`): the recomputation must repeat that
    forward's numbers (its training mode) and none of its side effects (its
    `add_loss` tensors, `add_metric` updates, moving statistics). Always False
    while torch.compile traces (its own recomputation is side-effect free)."""
    return not torch.compiler.is_compiling() and torch._C._current_graph_task_id() != -1


def in_reentrant_checkpoint() -> bool:
    """Whether a caller up the stack is the forward of
    `torch.utils.checkpoint(..., use_reentrant=True)`, which runs the
    checkpointed function under `no_grad`. Walks the Python frames: call it
    only where grad mode is off, never on the per-call path."""
    import sys

    from torch.utils.checkpoint import CheckpointFunction

    code = CheckpointFunction.forward.__code__
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def begin_outermost(layer) -> None:
    """Runs when `layer`'s call starts with no other call in progress (in this
    thread): drops the loss tensors that this call replaces and the weight
    casts of the previous call. Callers check `dirty` first, so that a call
    with nothing to drop pays nothing."""
    state = LOCAL.state
    state.cast_cache.clear()
    losses = state.losses
    if not losses:
        state.dirty = False
        return
    if in_backward():
        return  # a checkpoint's recomputation: the losses of the forward it repeats stay
    state.dirty = False
    own = id(layer)
    below = None
    for key, held in list(losses.items()):
        if key == own or held[1] == own:
            del losses[key]
            continue
        if below is None:
            below = {id(m) for m in layer._flatten_layers(include_self=False)}
        if key in below:
            del losses[key]
    state.dirty = bool(losses)


def record_loss(layer, loss) -> None:
    """Keeps `loss` (a tensor added by `layer.add_loss` during a call); a
    checkpoint's recomputation adds nothing (its forward added it already)."""
    if in_backward():
        return
    state = LOCAL.state
    key = id(layer)
    entry = state.entry if state.stack else key
    # a layer that never added a loss has none to drop: its hot leaf calls skip `begin_outermost`
    # (and, under torch.compile, the guards on this thread's call state)
    layer.__dict__["_added_losses"] = True
    losses = state.losses
    state.dirty = True
    held = losses.get(key)
    if held is None:
        losses[key] = [_dropper(layer, losses, key), entry, [loss]]
        return
    held[1] = entry
    held[2].append(loss)


def _dropper(layer, losses, key):
    """A weak reference to `layer` that drops its entry when it is collected."""

    def drop(ref):
        held = losses.get(key)
        if held is not None and held[0] is ref:
            del losses[key]

    return weakref.ref(layer, drop)


def call_losses(layer) -> list:
    """The loss tensors `layer` added during this thread's latest call."""
    held = LOCAL.state.losses.get(id(layer))
    return list(held[2]) if held is not None else []


def reset() -> None:
    """Forgets this thread's call state (`keras.utils.clear_session()`)."""
    LOCAL.state = _CallState()
