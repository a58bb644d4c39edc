"""Containers that make the layers and variables a Layer holds in attributes
visible to torch (`parameters()`, `state_dict`, `.to()`) and to Keras
(`weights`), as Keras tracks them: under any attribute name (private ones
too), in lists, tuples, dicts (any keys) and namedtuples nested at will, and
through later mutation (append, `d[k] = layer`, pop, del)."""

from __future__ import annotations

import itertools

import collections

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

from kerasish.layers import torch_parent_mode
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


class _Slots(nn.Module):
    """The torch-side mirror of a container attribute (a list, tuple, dict or
    namedtuple, nested at will): its layers and variables registered under
    the container's keys ("0", "1", a dict key), nested containers as nested
    mirrors, so `state_dict` keys read `blocks.0.1.kernel`, `heads.3.bias`.
    Anything else in the container (strings, flags, numbers) is skipped."""

    def _apply(self, fn, recurse=True):
        from kerasish.variables import rewrap_like

        old = dict(self._buffers)
        super()._apply(fn, recurse)
        for key, buf in self._buffers.items():
            self._buffers[key] = rewrap_like(buf, old.get(key))
        return self


def _items(value):
    if isinstance(value, dict):
        return value.items()
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple: its field names
        return zip(value._fields, value)
    return enumerate(value)


def _slot_key(key, taken) -> str:
    text = str(key).replace(".", "_") or "_"
    out, i = text, 1
    while out in taken:
        out = f"{text}_{i}"
        i += 1
    return out


def _is_container(value) -> bool:
    return isinstance(value, (list, tuple, dict)) and not isinstance(value, nn.Module)


def build_mirror(value, training: bool):
    """A `_Slots` module registering the layers (torch modules) and
    variables found in the container `value`, or None when it holds none."""
    slots = None
    taken = set()
    for key, item in _items(value):
        if isinstance(item, nn.Module):
            child = item
        elif isinstance(item, Variable):
            child = None
        elif _is_container(item):
            child = build_mirror(item, training)
            if child is None:
                continue
        else:
            continue
        if slots is None:
            slots = _Slots()
            slots.training = training  # follow the layer, not torch's default
        slot = _slot_key(key, taken)
        taken.add(slot)
        if child is not None:
            slots.add_module(slot, child)
        elif isinstance(item, nn.Parameter):
            slots.register_parameter(slot, item)
        else:
            slots.register_buffer(slot, item)
    return slots


_TRACK_SEQ = itertools.count()

# Bumped whenever the submodules of a kerasish layer change: an attribute set to a module or away from
# one, a tracked container mutated, a Sequential edited (`model.head = Dense(5)`, `pop()`, `add()`). The
# trainer's cached weight lists carry the number they were made at, so a layer replaced or added between
# two training steps is seen at the next one.
_STRUCTURE = [0]


def structure_changed() -> None:
    _STRUCTURE[0] += 1


def structure_version() -> int:
    return _STRUCTURE[0]


def note_tracked(value) -> None:
    """Stamps each module in `value` (a module, or a container of them, nested at will) with when it was
    first tracked by a layer. Keras orders a layer's sublayers, hence its `weights` and `get_weights`, by
    that moment (its `_layers` list grows as attributes are set and tracked lists are appended to), not
    by attribute: `self.encoders = []; self.projectors = []` then appending to each in turn interleaves
    them. The stamp travels with the module (deepcopy, pickle), so copies keep the order."""
    if isinstance(value, nn.Module):
        if "_keras_track_seq" not in value.__dict__:
            value.__dict__["_keras_track_seq"] = next(_TRACK_SEQ)
        return
    if isinstance(value, (list, tuple, dict)):
        for _, item in _items(value):
            note_tracked(item)


def keras_child_order(children: list) -> list:
    """`children` in Keras's tracking order when every one of them carries a stamp (see `note_tracked`),
    else unchanged. (A stamp is the first tracking anywhere: a sublayer shared with, and tracked earlier
    by, another layer sorts by that earlier moment, where Keras would use this layer's own append order.)"""
    seqs = [c.__dict__.get("_keras_track_seq") for c in children]
    if len(children) < 2 or any(q is None for q in seqs):
        return children
    return [c for _, c in sorted(zip(seqs, children), key=lambda pair: pair[0])]


def sync_mirror(owner, name) -> None:
    """(Re)registers the mirror of the container attribute `owner.<name>`
    in `owner._modules[name]`, or removes it when the container holds no
    layer or variable any more."""
    d = owner.__dict__
    # (while deepcopy/pickle rebuild the owner, its modules come with it)
    if "_modules" not in d or name not in d:
        return
    modules = d["_modules"]
    note_tracked(d[name])
    structure_changed()
    slots = build_mirror(d[name], bool(d.get("training", False)))
    if slots is not None:
        modules[name] = slots
    elif isinstance(modules.get(name), _Slots):
        del modules[name]


class _TrackedMixin:
    """Mutations of a container attribute (and of the containers nested in
    it) re-register its layers and variables with torch."""

    def _changed(self):
        owner = self.__dict__.get("_owner")
        if owner is not None:
            sync_mirror(owner, self.__dict__["_name"])

    def _wrap(self, value):
        owner = self.__dict__.get("_owner")
        return wrap(value, owner, self.__dict__.get("_name")) if owner is not None else value


class TrackedList(_TrackedMixin, list):
    """A Python list set as a Layer attribute. Layers and variables put into
    it at any time (`self.blocks = []` then `self.blocks.append(Dense(4))`, as
    Keras code often does), also inside nested lists, tuples and dicts, are
    registered with torch, so they are in `parameters()`, `state_dict()`,
    `weights` and move with `.to()`; removing them unregisters them."""

    def __init__(self, items=(), owner=None, name=None):
        self._owner = owner
        self._name = name
        if owner is not None:
            items = [wrap(v, owner, name) for v in items]
        super().__init__(items)

    def append(self, value):
        list.append(self, self._wrap(value))
        self._changed()

    def extend(self, values):
        list.extend(self, [self._wrap(v) for v in values])
        self._changed()

    def insert(self, index, value):
        list.insert(self, index, self._wrap(value))
        self._changed()

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            value = [self._wrap(v) for v in value]
        else:
            value = self._wrap(value)
        list.__setitem__(self, index, value)
        self._changed()

    def __iadd__(self, values):
        self.extend(values)
        return self


def _list_mutator(name):
    method = getattr(list, name)

    def wrapped(self, *args, **kwargs):
        out = method(self, *args, **kwargs)
        self._changed()
        return out

    wrapped.__name__ = name
    return wrapped


for _name in ("pop", "remove", "clear", "sort", "reverse", "__delitem__"):
    setattr(TrackedList, _name, _list_mutator(_name))


class TrackedDict(_TrackedMixin, dict):
    """A Python dict set as a Layer attribute: its layers and variables, under
    any keys (ints too) and nested in any containers, are registered with
    torch under `name.<key>`; later insertions and removals follow."""

    def __init__(self, items=(), owner=None, name=None):
        self._owner = owner
        self._name = name
        items = dict(items)
        if owner is not None:
            items = {k: wrap(v, owner, name) for k, v in items.items()}
        super().__init__(items)

    def __setitem__(self, key, value):
        super().__setitem__(key, self._wrap(value))
        self._changed()

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            super().__setitem__(key, self._wrap(value))
        self._changed()

    def __ior__(self, other):
        self.update(other)
        return self


def _dict_mutator(name):
    def wrapped(self, *args, **kwargs):
        # (through the MRO: an OrderedDict's own bookkeeping runs too)
        out = getattr(super(TrackedDict, self), name)(*args, **kwargs)
        self._changed()
        return out

    wrapped.__name__ = name
    return wrapped


for _name in ("pop", "popitem", "clear", "__delitem__"):
    setattr(TrackedDict, _name, _dict_mutator(_name))


class TrackedOrderedDict(TrackedDict, collections.OrderedDict):
    """`TrackedDict` for an `OrderedDict` attribute (keeps its class)."""


def _has_trackable(value) -> bool:
    """Whether a container is empty (to be filled later) or holds a layer
    or a variable at any depth."""
    if isinstance(value, (nn.Module, Variable)):
        return True
    if _is_container(value):
        if not value and not isinstance(value, tuple):
            return True
        items = value.values() if isinstance(value, dict) else value
        return any(isinstance(v, (nn.Module, Variable)) or (_is_container(v) and _has_trackable(v)) for v in items)
    return False


def wrap(value, owner, name):
    """Keras's attribute tracking: lists and dicts (also inside tuples and
    other containers) become tracked containers that report their mutations
    to `owner`, so its torch mirror of attribute `name` stays in sync.

    Unlike Keras, a non-empty container of plain values only (`[None, None]`,
    a padding list, an options dict) stays a plain one: torch.compile traces
    plain lists without graph breaks, and there is nothing to track."""
    if not _has_trackable(value):
        return value
    if isinstance(value, _TrackedMixin) and value.__dict__.get("_owner") is owner and value.__dict__.get("_name") == name:
        return value
    if type(value) is list or isinstance(value, TrackedList):
        return TrackedList(value, owner, name)
    if isinstance(value, collections.OrderedDict) and type(value) in (collections.OrderedDict, TrackedOrderedDict):
        return TrackedOrderedDict(value, owner, name)
    if type(value) is dict or isinstance(value, TrackedDict):
        return TrackedDict(value, owner, name)
    if isinstance(value, tuple) and not isinstance(value, nn.Module):
        items = [wrap(v, owner, name) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return value


def track_container(value, owner=None, name=None):
    """The value to store for `owner.<name> = value` (a list, tuple or dict).

    A non-empty list/tuple of layers (torch modules) becomes an
    `nn.ModuleList`, a dict of them with string keys an `nn.ModuleDict`, a
    list of variables a `VariableList`, a dict of Parameters with string keys
    an `nn.ParameterDict` (torch's own containers, set as the attribute).
    Anything else is kept a Python container (lists and dicts become tracked
    ones) and its layers and variables, at any depth, are registered through
    a mirror module in `owner._modules[name]` (call `sync_mirror`)."""
    container = value
    if isinstance(value, (list, tuple)) and value and type(value) in (list, tuple, TrackedList):
        if all(isinstance(v, nn.Module) for v in value):
            with torch_parent_mode.kerasish_containers():
                container = nn.ModuleList(value)
        elif all(isinstance(v, Variable) for v in value):
            container = VariableList(value)
    elif isinstance(value, dict) and value and type(value) in (dict, TrackedDict) and all(isinstance(k, str) and "." not in k and k for k in value):
        if all(isinstance(v, nn.Module) for v in value.values()):
            with torch_parent_mode.kerasish_containers():
                container = nn.ModuleDict(value)
        elif all(isinstance(v, nn.Parameter) for v in value.values()):
            container = nn.ParameterDict(value)
    if container is not value:
        # torch containers start in training mode; a layer's follow the layer
        # (Keras layers start in inference mode)
        container.training = bool(getattr(owner, "training", False))
        return container
    if owner is None:
        return value
    return wrap(value, owner, name)


def is_weight_holder(module) -> bool:
    """Modules whose variables count as their owner's own (Keras order:
    a layer's own variables, then its sublayers')."""
    return isinstance(module, (_Slots, VariableList, nn.ParameterDict))


def split_holders(module):
    """(`module` and the weight holders below it, the other child modules),
    each list in registration order."""
    holders, children = [module], []
    stack = [c for c in module._modules.values() if c is not None][::-1]
    while stack:
        child = stack.pop()
        if is_weight_holder(child):
            holders.append(child)
            stack.extend(c for c in list(child._modules.values())[::-1] if c is not None)
        else:
            children.append(child)
    return holders, children


def own_weights(module: nn.Module) -> list[torch.Tensor]:
    """Parameters then persistent buffers registered directly on `module`
    (uninitialized parameters of an unbuilt layer are not weights yet)."""
    out = [p for p in module._parameters.values() if p is not None and not isinstance(p, UninitializedParameter)]
    skip = module._non_persistent_buffers_set
    out.extend(b for k, b in module._buffers.items() if b is not None and k not in skip)
    return out
