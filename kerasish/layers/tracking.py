"""Containers that make lists of variables or layers set as Layer attributes
visible to torch (`state_dict`, `.to()`) and to Keras (`weights`)."""

from __future__ import annotations

import torch
from torch import nn

from kerasish.variables import Variable


class VariableList(nn.Module):
    """A list of Keras variables registered under "0", "1", ... (trainable ones
    as parameters, the others as buffers). Behaves like a read/append list."""

    def __init__(self, values=()):
        super().__init__()
        self._keys: list[str] = []
        for value in values:
            self.append(value)

    def append(self, value) -> None:
        key = str(len(self._keys))
        if isinstance(value, nn.Parameter):
            self.register_parameter(key, value)
        else:
            self.register_buffer(key, value)
        self._keys.append(key)

    def _get(self, key):
        if key in self._parameters:
            return self._parameters[key]
        return self._buffers[key]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._get(k) for k in self._keys[index]]
        return self._get(self._keys[index])

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self):
        return (self._get(k) for k in self._keys)

    def _apply(self, fn, recurse=True):
        from kerasish.variables import rewrap_like

        old = dict(self._buffers)
        super()._apply(fn, recurse)
        for key, buf in self._buffers.items():
            self._buffers[key] = rewrap_like(buf, old.get(key))
        return self


class _ListSlots(nn.Module):
    """The torch-side mirror of a `TrackedList`: its layers and variables
    registered under "0", "1", ... (so state_dict keys read `blocks.0.kernel`)."""


def _new_slots(owner):
    slots = _ListSlots()
    slots.training = owner.training  # follow the layer, not torch's default
    return slots


class TrackedList(list):
    """A Python list set as a Layer attribute. Layers and variables put into
    it at any time (`self.blocks = []` then `self.blocks.append(Dense(4))`, as
    Keras code often does) are registered with torch, so they are in
    `parameters()`, `state_dict()`, `weights` and move with `.to()`."""

    def __init__(self, items=(), owner=None, name=None):
        super().__init__(items)
        self._owner = owner
        self._name = name
        self._sync()

    def _sync(self):
        owner = self.__dict__.get("_owner")
        # (while deepcopy/pickle rebuild the owner, its modules come with it)
        if owner is None or "_modules" not in owner.__dict__:
            return
        slots = None
        for i, item in enumerate(self):
            if isinstance(item, nn.Module):
                slots = slots or _new_slots(owner)
                slots.add_module(str(i), item)
            elif isinstance(item, Variable):
                slots = slots or _new_slots(owner)
                if isinstance(item, nn.Parameter):
                    slots.register_parameter(str(i), item)
                else:
                    slots.register_buffer(str(i), item)
        modules = owner.__dict__["_modules"]
        if slots is not None:
            modules[self._name] = slots
        elif isinstance(modules.get(self._name), _ListSlots):
            del modules[self._name]


def _mutator(name):
    method = getattr(list, name)

    def wrapped(self, *args, **kwargs):
        out = method(self, *args, **kwargs)
        self._sync()
        return self if name == "__iadd__" else out

    wrapped.__name__ = name
    return wrapped


for _name in ("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
              "__setitem__", "__delitem__", "__iadd__"):
    setattr(TrackedList, _name, _mutator(_name))


def track_container(value, owner=None, name=None):
    """Wraps a non-empty list/tuple/dict of layers (modules) or of variables so
    torch registers its contents; any other list becomes a `TrackedList`
    (registering what is appended later). Anything else is returned unchanged."""
    if type(value) is list and not (value and all(isinstance(v, (nn.Module, Variable)) for v in value)):
        return TrackedList(value, owner, name) if owner is not None else value
    container = value
    if isinstance(value, (list, tuple)) and value and not isinstance(value, nn.Module):
        if all(isinstance(v, nn.Module) for v in value):
            container = nn.ModuleList(value)
        elif all(isinstance(v, Variable) for v in value):
            container = VariableList(value)
    elif isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        if all(isinstance(v, nn.Module) for v in value.values()):
            container = nn.ModuleDict(value)
        elif all(isinstance(v, nn.Parameter) for v in value.values()):
            container = nn.ParameterDict(value)
    if container is not value:
        # torch containers start in training mode; a layer's follow the layer
        # (Keras layers start in inference mode)
        container.training = bool(getattr(owner, "training", False))
    return container


def own_weights(module: nn.Module) -> list[torch.Tensor]:
    """Parameters then persistent buffers registered directly on `module`."""
    out = [p for p in module._parameters.values() if p is not None]
    skip = module._non_persistent_buffers_set
    out.extend(b for k, b in module._buffers.items() if b is not None and k not in skip)
    return out
