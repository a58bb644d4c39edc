"""Layer and weight names the way Keras makes them: snake_case of the class
name, uniquified per process (`dense`, `dense_1`, ...) until `clear_session()`."""

from __future__ import annotations

import collections
import re
import threading

from kerasish.layers import call_context as ctx

_name_uids: collections.defaultdict[str, int] = collections.defaultdict(int)
# threads building layers at once must not hand out the same name twice
_uid_lock = threading.Lock()


def to_snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def uniquify(name: str) -> str:
    """`name` the first time, then `name_1`, `name_2`, ..."""
    with _uid_lock:
        count = _name_uids[name]
        _name_uids[name] = count + 1
    return name if count == 0 else f"{name}_{count}"


def auto_name(prefix: str) -> str:
    return uniquify(to_snake_case(prefix))


def reset_uids() -> None:
    with _uid_lock:
        _name_uids.clear()


# The names of the layers being called or built (per thread, in
# `call_context.state().scope`), so that weights know their Keras path
# ("outer/dense/kernel") from where they were created.


def current_path(name: str) -> str:
    """`name` under the open scopes. Entries are layer names (strings, the
    per-call path) or public `NameScope`s, whose `override_parent` replaces
    everything opened before them."""
    scope = ctx.state().scope
    parts = []
    for entry in scope:
        if type(entry) is str:
            parts.append(entry)
        else:
            if entry.override_parent is not None:
                parts = [p for p in entry.override_parent.split("/") if p]
            parts.append(entry.name)
    parts.append(name)
    return "/".join(parts)


class NameScope:
    """`keras.name_scope`: a sub-namespace for the paths of the variables
    (and layer weights) created inside.

    >>> with keras.name_scope("block"):
    ...     v = keras.Variable(1.0, name="w")
    >>> v.path
    'block/w'

    Args:
        name: The scope's name: a string without "/".
        caller: Optional object opening the scope (a layer).
        deduplicate: When `True` (default) and the innermost open scope has
            the same `name` and the same `caller`, no new level is opened;
            and a `caller` with a `_parent_path` reopens its scope under that
            path.
        override_parent: An absolute path that replaces the scopes opened
            before this one.
    """

    __slots__ = ("name", "caller", "deduplicate", "override_parent", "_pushed")

    def __init__(self, name, caller=None, deduplicate=True, override_parent=None):
        if not isinstance(name, str) or "/" in name:
            raise ValueError(
                "Argument `name` must be a string and cannot contain character `/`. "
                f"Received: name={name}"
            )
        self.name = name
        self.caller = caller
        self.deduplicate = deduplicate
        if override_parent is None and deduplicate and getattr(caller, "_parent_path", None) is not None:
            override_parent = caller._parent_path
        self.override_parent = override_parent
        self._pushed = False

    def __enter__(self):
        scope = ctx.state().scope
        if self.deduplicate and scope and self.caller is not None:
            top = scope[-1]
            if type(top) is NameScope and top.caller is self.caller and top.name == self.name:
                return self
        scope.append(self)
        self._pushed = True
        return self

    def __exit__(self, *exc):
        if self._pushed:
            self._pushed = False
            ctx.state().scope.pop()


class _CallScope:
    """A layer's entry on the path stack while it runs: its name under the path it was first called
    in (Keras 3's `Layer._parent_path`), whatever the path of a later call. A sublayer first built in
    a later call (one the symbolic call never reached, a branch) then gets the path Keras gives it:
    "message_passing/layer_normalization/gamma", not "functional/message_passing/..."."""

    __slots__ = ("name", "override_parent")

    def __init__(self, name: str, override_parent: str):
        self.name = name
        self.override_parent = override_parent


def call_scope(layer) -> _CallScope:
    """The layer's `_CallScope`, made at its first call (or after a rename) from the open scopes."""
    d = layer.__dict__
    entry = d.get("_call_scope")
    if entry is not None:
        parent = entry.override_parent
    else:
        parent = current_path("").rstrip("/")
    entry = d["_call_scope"] = _CallScope(d["name"], parent)
    return entry


class name_scope:
    """Pushes `name` on the path stack while building a layer."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        ctx.state().scope.append(self.name)

    def __exit__(self, *exc):
        ctx.state().scope.pop()
