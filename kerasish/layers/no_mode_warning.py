"""One warning for a model trained in Keras's "no mode set" state.

A kerasish layer starts, as a Keras layer does, with no training mode: a call
that nobody gave `training=` (no argument, no outer call passing one, no
`train()` / `eval()` on the layer) uses its `call` signature's default, which
for Dropout and BatchNormalization is inference (Dropout off,
BatchNormalization on its moving statistics, never updating them). Real
Keras 3 on torch does the same, without a word, and it ignores `model.train()`
altogether. A torch module starts in training mode, so a torch user's loop
over a standalone kerasish model (`loss = loss_fn(model(x), y);
loss.backward(); opt.step()`, also Keras's own "training loop in torch"
guide, which calls `model(inputs)`) trains with Dropout off and
BatchNormalization frozen.

The warning fires once per process, when both signs of training are there:

1. a backward pass went through a layer called in that state whose
   inference differs from its training: a Dropout-family layer (rate > 0), a
   trainable BatchNormalization, an RNN (and Bidirectional) with dropout or
   recurrent_dropout, MultiHeadAttention or Attention with dropout (classes
   with `_no_mode_watch`, instances whose `_no_mode_matters()`); a hook on
   the layer's input, sampled (see `watch`), and
2. an optimizer then steps: a torch optimizer (torch's global step pre-hook,
   installed when 1. first happens) or a Keras optimizer's `apply` / `step`.

It never fires inside `fit` / `evaluate` / `predict` / `*_on_batch` (their
own calls pass `training=`; a layer a custom `train_step` calls directly gets
its call default, as in Keras, a GAN generator's for instance), when
`training=` is passed, when a mode is set (`model.train()` / `model.eval()`,
a kerasish model inside a user's torch module), under `torch.compile`, or for
backward passes that no optimizer step follows (saliency maps, adversarial
examples: gradients of the inputs of a model run in inference on purpose).
Not seen: such a layer applied directly to the model's inputs (no backward
pass reaches inputs that need no gradient; inputs that need one, as for a
saliency map, are the user's tensors and get no hook).
"""

from __future__ import annotations

import contextlib
import threading
import warnings
import weakref

import torch
from torch.optim import optimizer as _torch_optimizer

# [armed]: False once the warning was given (nothing is watched after that)
WATCHING = [True]
# the name and class of a layer a backward pass went through in the "no mode" state since the last step
_PENDING = []
class _Local(threading.local):
    depth = 0  # fit / evaluate / predict calls in progress in this thread (a class default: a missing
    # attribute of a threading.local costs ~0.5 us to look up)


_LOCAL = _Local()
_SEEN = [None]  # a weak reference to the last tensor looked at (one per forward pass)
_COUNT = [0]  # forward passes looked at
_EVERY = 16  # of which the first of every _EVERY is hooked
_STEP_HOOK = []  # the handle of torch's global optimizer step pre-hook, while installed


@contextlib.contextmanager
def keras_loop():
    """Around fit / evaluate / predict: their steps and the layers their `train_step` calls are Keras's."""
    depth = _LOCAL.depth
    _LOCAL.depth = depth + 1
    _PENDING.clear()  # (a backward pass before it is no sign of the steps it takes)
    try:
        yield
    finally:
        _LOCAL.depth = depth


def watch(layer, x) -> None:
    """Called by the layer pipeline for a Dropout / BatchNormalization call that resolved to its
    signature's default (inference) with no mode anywhere: hooks `x` so that a backward pass through
    it records the layer. Sampled, to keep a Keras user's `model(x)` predictions under grad mode
    cheap: one tensor per forward pass (while the last one seen is alive, the forward pass in
    progress, no other is looked at) and a hook on the first forward pass of every `_EVERY` (a hook
    costs a few microseconds; so the warning comes at the latest `_EVERY` forward passes into a torch
    loop that starts after such predictions, at once in one that does not). Nothing once the warning
    was given."""
    if isinstance(x, (list, tuple)) and x:  # (Attention's [query, value]: the query)
        x = x[0]
    try:
        if not x.requires_grad:
            return
    except AttributeError:  # (not a tensor)
        return
    # (under torch.compile nothing else is read: the warning's state would be guards, its changes recompiles)
    if torch.compiler.is_compiling() or not torch.is_grad_enabled() or not WATCHING[0] or _PENDING:
        return
    seen = _SEEN[0]
    if seen is not None and seen() is not None:
        return
    if _LOCAL.depth or not layer._no_mode_matters():
        return
    _SEEN[0] = weakref.ref(x)
    count = _COUNT[0]
    _COUNT[0] = count + 1
    if count % _EVERY:
        return
    name, cls = layer.name, type(layer).__name__

    def _seen(*_):
        if WATCHING[0] and not _PENDING:
            _PENDING.append((name, cls))
            _install_step_hook()
        return None

    node = x.grad_fn
    if node is not None:  # (a pre-hook on the node that made `x`: a third of a tensor hook's cost)
        node.register_prehook(_seen)
    # (a leaf: the user's own tensor, an input made to need a gradient, as for a saliency map: not
    # hooked, a hook would stay on it)


def _install_step_hook() -> None:
    if not _STEP_HOOK:
        _STEP_HOOK.append(_torch_optimizer.register_optimizer_step_pre_hook(_torch_step))


def _torch_step(optimizer, args, kwargs):
    on_step()
    return None


def _user_stacklevel() -> int:
    """The stack level of the first caller outside kerasish and torch (the user's `step()` line)."""
    import os
    import sys

    level, frame = 1, sys._getframe(1)
    roots = (os.path.dirname(os.path.dirname(__file__)), os.path.dirname(torch.__file__))
    while frame is not None and frame.f_code.co_filename.startswith(roots):
        level += 1
        frame = frame.f_back
    return level


def on_step() -> None:
    """An optimizer is about to update weights: warn if a backward pass since the last step went
    through a layer running in the "no mode" state (outside Keras's own loops)."""
    if not _PENDING:
        return
    pending = _PENDING[0]
    _PENDING.clear()
    if _LOCAL.depth or not WATCHING[0]:
        return
    WATCHING[0] = False
    if _STEP_HOOK:
        _STEP_HOOK.pop().remove()
    name, cls = pending
    warnings.warn(
        f"kerasish: an optimizer step follows a backward pass through {cls} '{name}', which was called with no "
        "training mode set and no `training=` argument. As in Keras, such a call runs in inference mode "
        "(Dropout off, BatchNormalization on its moving statistics, which it does not update), whereas a torch "
        "module starts in training mode. To train, call `model.train()` once (and `model.eval()` for "
        "inference), or pass `model(x, training=True)`; if inference mode is intended, pass `training=False` "
        "or call `model.eval()`. (Shown once.)",
        UserWarning,
        stacklevel=_user_stacklevel(),
    )


def reset() -> None:
    """Arms the warning again (tests)."""
    WATCHING[0] = True
    _PENDING.clear()
    _SEEN[0] = None
    _COUNT[0] = 0
    if _STEP_HOOK:
        _STEP_HOOK.pop().remove()
