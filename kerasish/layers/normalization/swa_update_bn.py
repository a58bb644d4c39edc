"""`torch.optim.swa_utils.update_bn` on kerasish `BatchNormalization`.

`update_bn(loader, model)` recomputes the batch-norm statistics of an SWA
model: for every module that is a `torch.nn.modules.batchnorm._BatchNorm` it
calls `reset_running_stats()`, sets `momentum = None` (torch's cumulative
average: the k-th batch enters with weight 1/k, so the result is the plain mean
of the batch statistics), runs the data through the model in training mode,
then puts each `momentum` back. kerasish's BatchNormalization is not a
`_BatchNorm` (it must not be: `SyncBatchNorm.convert_sync_batchnorm`, functorch's
`replace_all_batch_norm_modules_` and other torch helpers would then replace or
rewire it with torch's channels-first, torch-momentum semantics), so update_bn
would skip it and leave stale statistics, silently.

What is done instead: when a BatchNormalization is listed by a module walk
that update_bn itself runs (`model.modules()` called from update_bn's code:
a few frame reads per walked BatchNormalization), the walk
yields a `_BatchNorm` view of the layer. update_bn then drives the layer
through that view: `reset_running_stats()` resets `moving_mean` to 0 and
`moving_variance` to 1, `momentum = None` switches the layer to the cumulative
average, reading `momentum` gives torch's convention (`1 - keras_momentum`), and
writing it back restores the layer's Keras momentum exactly.

The statistics are Keras's: the mean of the batch means and of the *biased*
batch variances (what Keras's BatchNormalization tracks); torch's BatchNorm
tracks unbiased ones (larger by n/(n-1) for batches of n values per channel).
"""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

_MAX_DEPTH = 32  # module nesting (plus update_bn's own two frames) searched for update_bn


_CODE = []  # update_bn's code object, looked up once (module walks ask on every walked BatchNormalization)


def _update_bn_code():
    """The code of update_bn's own body (torch wraps it in `@torch.no_grad()`, whose wrapper's code is
    shared by every function so decorated); None until torch.optim.swa_utils is imported."""
    if _CODE:
        return _CODE[0]
    swa = sys.modules.get("torch.optim.swa_utils")
    fn = getattr(swa, "update_bn", None)
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    code = getattr(fn, "__code__", None)
    if code is not None:
        _CODE.append(code)
    return code


_WALK_FRAMES = frozenset({"named_modules", "modules"})


def called_from_update_bn() -> bool:
    """Whether the module walk now listing a layer was started by `torch.optim.swa_utils.update_bn`:
    up the stack past the `named_modules` / `modules` frames of the walk, the next frame is update_bn's
    (a few frame reads; any other walk, e.g. `parameters()`, stops at its own caller)."""
    code = _update_bn_code()
    if code is None:
        return False
    frame = sys._getframe(2)
    for _ in range(_MAX_DEPTH):
        if frame is None:
            return False
        if frame.f_code is code:
            return True
        if frame.f_code.co_name not in _WALK_FRAMES:
            return False
        frame = frame.f_back
    return False


class BatchNormUpdateView(_BatchNorm):
    """The `_BatchNorm` face a kerasish BatchNormalization shows update_bn (see the module docstring).
    Not a submodule of anything, holds no tensors: every call goes to the layer."""

    def __init__(self, layer):
        nn.Module.__init__(self)
        object.__setattr__(self, "_layer", layer)

    def reset_running_stats(self) -> None:
        self._layer.reset_running_stats()

    @property
    def momentum(self):
        return self._layer.torch_momentum

    @momentum.setter
    def momentum(self, value) -> None:
        self._layer.torch_momentum = value

    def forward(self, *args, **kwargs):
        return self._layer(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"view of {self._layer.name!r}"


@torch.no_grad()
def reset_running_stats(layer) -> None:
    """torch's `reset_running_stats()`: moving mean 0, moving variance 1 (renorm's statistics too)."""
    for name, value in (("moving_mean", 0.0), ("moving_variance", 1.0), ("renorm_mean", 0.0),
                        ("renorm_stddev", 1.0), ("moving_stddev", 1.0)):
        weight = getattr(layer, name, None)
        if isinstance(weight, torch.Tensor):
            weight.fill_(value)
    if layer.__dict__.get("_cumulative_batches") is not None:
        layer._cumulative_batches = 0
