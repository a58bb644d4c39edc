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
    return "/".join([*ctx.state().scope, name])


class name_scope:
    """Pushes `name` on the path stack while building a layer."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        ctx.state().scope.append(self.name)

    def __exit__(self, *exc):
        ctx.state().scope.pop()
