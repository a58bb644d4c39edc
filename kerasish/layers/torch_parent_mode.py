"""kerasish layers inside a user's torch module follow torch's mode convention.

A kerasish layer starts in Keras's "no mode set" state: until `train()` /
`eval()` set a mode, a call that nobody gave `training=` uses the `call`
signature's default (Dropout off, BatchNormalization on its moving
statistics), as a Keras layer does. A torch module starts in training mode.
The two meet when a kerasish layer or model becomes a submodule of a torch
module the user writes (`class Net(nn.Module)`, a `LightningModule`,
`nn.Sequential(...)` / `nn.ModuleList` / `nn.ModuleDict`): that code is torch
code, and the torch tools around it rely on torch's default. PyTorch
Lightning (2.2 and later) no longer calls `model.train()` when `fit` starts:
it keeps the modes the modules have, so a kerasish model in a
`LightningModule` trained with Dropout off and BatchNormalization frozen.

So, as a fresh torch submodule would be, a kerasish layer registered under
such a parent is put in training mode (`layer.train()`), unless a mode was
already set on it. `parent.eval()` / `parent.train()` then work as for any
torch module. Not affected: kerasish layers inside kerasish layers and models
(Keras's rule), and torch's wrappers that hold a model as itself
(`torch.compile`'s OptimizedModule, DDP / DataParallel / FSDP,
`AveragedModel`, `fx.GraphModule`, ...): every parent class defined in a
`torch.*` module except the `torch.nn` containers.
"""

from __future__ import annotations

import contextlib
import functools
import threading

from torch import nn

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@functools.lru_cache(maxsize=None)
def _is_user_torch_parent(cls) -> bool:
    """Decided once per parent class: a torch container, or a class defined outside torch and kerasish
    that is no kerasish layer (a user's Keras layer or model keeps Keras's rule)."""
    from kerasish.layers.layer import Layer

    if issubclass(cls, Layer):
        return False
    module = cls.__module__ or ""
    if issubclass(cls, _CONTAINERS) and module.startswith("torch.nn.modules"):
        return True
    return not (module == "torch" or module.startswith(("torch.", "kerasish")))


_LOCAL = threading.local()


@contextlib.contextmanager
def kerasish_containers():
    """Inside, torch containers are kerasish's own (a layer's list of sublayers becoming an
    `nn.ModuleList`): registering layers in them changes no mode."""
    depth = getattr(_LOCAL, "depth", 0)
    _LOCAL.depth = depth + 1
    try:
        yield
    finally:
        _LOCAL.depth = depth


def _on_register(parent, name, child):
    from kerasish.layers.layer import Layer

    if (not isinstance(child, Layer) or child.__dict__.get("_training_set") or parent is None
            or getattr(_LOCAL, "depth", 0) or not _is_user_torch_parent(type(parent))):
        return None
    if isinstance(parent, _CONTAINERS):
        # a torch container follows its own mode: a fresh one (the user's) is training; the ones a
        # kerasish layer makes of its lists take the layer's mode
        if parent.training:
            child.train()
    else:
        child.train()  # (as a fresh torch module is, whatever mode its parent is in)
    return None


def install() -> None:
    register = getattr(nn.modules.module, "register_module_module_registration_hook", None)
    if register is not None and not getattr(install, "_done", False):
        register(_on_register)
        install._done = True
