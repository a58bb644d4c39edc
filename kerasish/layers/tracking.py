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


def track_container(value):
    """Wraps a non-empty list/tuple/dict of layers (modules) or of variables so
    torch registers its contents. Anything else is returned unchanged."""
    if isinstance(value, (list, tuple)) and value and not isinstance(value, nn.Module):
        if all(isinstance(v, nn.Module) for v in value):
            return nn.ModuleList(value)
        if all(isinstance(v, Variable) for v in value):
            return VariableList(value)
    elif isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        if all(isinstance(v, nn.Module) for v in value.values()):
            return nn.ModuleDict(value)
        if all(isinstance(v, nn.Parameter) for v in value.values()):
            return nn.ParameterDict(value)
    return value


def own_weights(module: nn.Module) -> list[torch.Tensor]:
    """Parameters then persistent buffers registered directly on `module`."""
    out = [p for p in module._parameters.values() if p is not None]
    skip = module._non_persistent_buffers_set
    out.extend(b for k, b in module._buffers.items() if b is not None and k not in skip)
    return out
