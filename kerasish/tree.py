"""`keras.tree`: utilities for nested structures, with Keras 3's semantics.

Keras 3 on its torch backend walks structures with `torch.utils._pytree`, and
so does this module, so what counts as a node is exactly what Keras sees:
lists, tuples, namedtuples, dicts (visited in sorted key order),
`OrderedDict` and `defaultdict` (sorted too, except `OrderedDict`, which keeps
its own order), `deque` and `torch.Size`. Everything else, `None`, strings,
tensors and KerasTensors included, is a leaf.

The layer pipeline keeps its own insertion-ordered helpers in
`kerasish.utils.tree` (the per-call hot path); this module is the public API
users call (`keras.tree.flatten`, `keras.tree.map_structure`, ...).
"""

from __future__ import annotations

import warnings
from collections import defaultdict

from torch.utils import _pytree as _pt

__all__ = [
    "MAP_TO_NONE",
    "assert_same_paths",
    "assert_same_structure",
    "flatten",
    "flatten_with_path",
    "is_nested",
    "lists_to_tuples",
    "map_shape_structure",
    "map_structure",
    "map_structure_up_to",
    "pack_sequence_as",
    "traverse",
]


class MAP_TO_NONE:
    """Returned by a `traverse` function to replace a sub-tree with `None`."""


def _is_leaf(x) -> bool:
    return _pt._get_node_type(x) not in _pt.SUPPORTED_NODES


def is_nested(structure) -> bool:
    """Whether `structure` is a sequence, mapping or namedtuple (not a leaf).

    >>> keras.tree.is_nested({"foo": 42})
    True
    """
    return not _is_leaf(structure)


def _children(structure):
    """The direct children of a node and the spec to rebuild it."""
    return _pt.tree_flatten(structure, is_leaf=lambda x: x is not structure)


def _sorted_dicts(structure):
    """`structure` with every plain dict / defaultdict re-keyed in sorted key
    order (the order Keras flattens them in); `OrderedDict` keeps its order."""
    if type(structure) is dict:
        structure = {k: structure[k] for k in sorted(structure)}
    elif type(structure) is defaultdict:
        structure = defaultdict(structure.default_factory, {k: structure[k] for k in sorted(structure)})
    if _is_leaf(structure):
        return structure
    children, spec = _children(structure)
    return _pt.tree_unflatten([_sorted_dicts(c) for c in children], spec)


def traverse(func, structure, top_down=True):
    """Applies `func` to every sub-structure, depth first.

    Top down (default), a non-`None` result replaces the sub-tree and stops the
    descent; bottom up, children are traversed first and a non-`None` result
    replaces the (already traversed) sub-tree. Return `MAP_TO_NONE` to put
    `None` in the output.

    Args:
        func: called on each sub-structure.
        structure: the structure to traverse.
        top_down: parents before children when `True`. Defaults to `True`.

    Returns:
        The traversed structure.
    """
    if not callable(func):
        raise TypeError(f"`func` must be callable. Received: func={func!r}")

    def walk(node):
        node = _sorted_top(node)

        def descend():
            if _is_leaf(node):
                return node
            children, spec = _children(node)
            return _pt.tree_unflatten([walk(c) for c in children], spec)

        if top_down:
            result = func(node)
            if result is None:
                return descend()
        else:
            node = descend()
            result = func(node)
            if result is None:
                return node
        return None if result is MAP_TO_NONE else result

    return walk(structure)


def _sorted_top(node):
    if type(node) is dict:
        return {k: node[k] for k in sorted(node)}
    if type(node) is defaultdict:
        return defaultdict(node.default_factory, {k: node[k] for k in sorted(node)})
    return node


def flatten(structure) -> list:
    """The leaves of `structure` as a list (dict values by sorted key).

    >>> keras.tree.flatten({100: "world!", 6: "Hello"})
    ['Hello', 'world!']
    >>> keras.tree.flatten(None)
    [None]
    """
    if _is_leaf(structure):
        return [structure]
    return _pt.tree_leaves(_sorted_dicts(structure))


def flatten_with_path(structure) -> list:
    """`(path, leaf)` pairs; a path is the tuple of indices and keys leading to
    the leaf.

    As in Keras on torch, a namedtuple field's path entry is its position in
    the sorted list of the field names seen in the structure.

    >>> keras.tree.flatten_with_path([{"foo": 42}])
    [((0, 'foo'), 42)]
    """
    pairs, _ = _pt.tree_flatten_with_path(_sorted_dicts(structure))
    field_names = sorted({k.name for keys, _ in pairs for k in keys if isinstance(k, _pt.GetAttrKey)})
    field_index = {name: i for i, name in enumerate(field_names)}
    out = []
    for keys, leaf in pairs:
        path = []
        for k in keys:
            if isinstance(k, _pt.SequenceKey):
                path.append(k.idx)
            elif isinstance(k, _pt.MappingKey):
                path.append(k.key)
            elif isinstance(k, _pt.GetAttrKey):
                path.append(field_index[k.name])
        out.append((tuple(path), leaf))
    return out


def map_structure(func, *structures, none_is_leaf=True):
    """Calls `func` on the matching leaves of `structures`; returns the results
    in the layout of the first.

    Args:
        func: takes one argument per structure.
        *structures: structures of the same layout.
        none_is_leaf: when `False`, `None` leaves are kept as `None` and not
            passed to `func`. Defaults to `True`.

    Raises:
        ValueError: the structures do not match, or none was given.
    """
    if not structures:
        raise ValueError("Must provide at least one structure")
    if not callable(func):
        raise TypeError(f"`func` must be callable. Received: func={func!r}")
    if len(structures) == 1 and _is_leaf(structures[0]):
        if structures[0] is None and not none_is_leaf:
            return None
        return func(structures[0])
    call = func
    if not none_is_leaf:
        def call(*leaves):
            if leaves[0] is None:
                if any(v is not None for v in leaves):
                    raise ValueError(
                        "Structure mismatch: some arguments are None, others are not. "
                        f"Received arguments: {leaves}."
                    )
                return None
            return func(*leaves)
    return _pt.tree_map(call, *structures)


def map_structure_up_to(shallow_structure, func, *structures):
    """`map_structure` down to the leaves of `shallow_structure` only: deeper
    parts of `structures` reach `func` whole.

    >>> keras.tree.map_structure_up_to([None, None], len, [[1, 1], [2, 2]])
    [2, 2]
    """
    if not structures:
        raise ValueError("Must provide at least one structure")

    def call(shallow_leaf, *leaves):
        if not _is_leaf(shallow_leaf):
            raise ValueError("Structures don't have the same nested structure.")
        return func(*leaves)

    return _pt.tree_map(call, shallow_structure, *structures)


def assert_same_structure(a, b, check_types=None):
    """Raises `ValueError` unless `a` and `b` nest the same way (same node
    types, same lengths, same dict keys).

    `check_types` is deprecated in Keras 3 and has no effect (a
    `DeprecationWarning` says so when it is given).
    """
    if check_types is not None:
        hint = ("" if check_types else " For a looser check, use `keras.tree.assert_same_paths()`, which considers "
                "`list`, `tuple`, `namedtuple` and `deque` as matching")
        warnings.warn("The `check_types` argument is deprecated and no longer has any effect" +
                      (", please remove." if check_types else "." + hint), DeprecationWarning, stacklevel=2)

    def check(x, y):
        if not _is_leaf(x) or not _is_leaf(y):
            raise ValueError("Structures don't have the same nested structure.")

    _pt.tree_map(check, a, b)


def assert_same_paths(a, b):
    """Raises `ValueError` unless `a` and `b` have the same leaf paths (node
    types are ignored: a list matches a tuple)."""
    a_paths = {p for p, _ in flatten_with_path(a)}
    b_paths = {p for p, _ in flatten_with_path(b)}
    if a_paths != b_paths:
        msg = "`a` and `b` don't have the same paths."
        if a_paths - b_paths:
            msg += f"\nPaths in `a` missing in `b`:\n{a_paths - b_paths}"
        if b_paths - a_paths:
            msg += f"\nPaths in `b` missing in `a`:\n{b_paths - a_paths}"
        raise ValueError(msg)


def pack_sequence_as(structure, flat_sequence):
    """Puts the leaves of `flat_sequence` into the layout of `structure`
    (dicts filled in sorted key order, the inverse of `flatten`).

    Raises:
        ValueError: `flat_sequence` has the wrong number of leaves.
    """
    _, spec = _pt.tree_flatten(_sorted_dicts(structure))
    return _pt.tree_unflatten(flat_sequence, spec)


def lists_to_tuples(structure):
    """`structure` with every list turned into a tuple."""
    return traverse(lambda x: tuple(x) if isinstance(x, list) else None, structure, top_down=False)


def map_shape_structure(func, structure):
    """`map_structure` that treats tuples and lists of ints and `None`s as
    leaves (shapes) and passes them to `func` whole."""

    def is_shape(x):
        return isinstance(x, (list, tuple)) and all(isinstance(d, (int, type(None))) for d in x)

    return _pt.tree_map(func, _sorted_dicts(structure), is_leaf=is_shape)
