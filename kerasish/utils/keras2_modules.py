"""The module paths of multi-backend Keras 2.0-2.4 and of `keras` 2.6-2.12.

Old books, blog posts and Q&A answers import Keras's internal modules:
`from keras.layers.core import Dense, Dropout`, `from keras.layers.recurrent
import LSTM`, `from keras.utils.np_utils import to_categorical`, `from
keras.engine.topology import Layer`. Multi-backend Keras (2.0-2.4, the
keras-team/keras tags) had all of these; the `keras` package that was
tf.keras's source (2.6-2.12) kept most of them as its own source files;
tf.keras's public API (`tensorflow.keras`, tf-keras 2.21) never exported them,
and Keras 3 dropped them.

kerasish keeps each such module as a small alias module whose public names
are the kerasish objects of the same name (the same classes as
`keras.layers.*`, so configs and saved files are unchanged). Names Keras 3
removed, and Keras 2 internals with no Keras 3 counterpart, raise an error
that says what to use instead (`removed_name_error`): an ImportError in a
`from ... import` statement (where Python would replace an AttributeError's
message with its own "cannot import name"), an AttributeError for `getattr`
and `hasattr` (which then answers False).

Each alias module calls `install(globals(), aliases, removed)`: `aliases`
maps a name to `"module:attribute"` (resolved on first use and cached in the
module), `removed` maps a name to the sentence telling what to do instead.
"""

from __future__ import annotations

import dis
import importlib
import importlib.util
import sys

__all__ = ["install", "layer_aliases", "removed_name_error"]

_IMPORT_FROM = dis.opmap["IMPORT_FROM"]


def removed_name_error(message: str, module_name: str, name: str, depth: int = 2) -> Exception:
    """The error for a removed `name` of `module_name`, made in a module `__getattr__` (`depth` 2:
    called from it; 3: from a helper it calls): an ImportError when the code asking is a
    `from module import name` statement (CPython: its frame's current instruction is IMPORT_FROM, and
    Python would print "cannot import name" instead of an AttributeError's message), else an
    AttributeError."""
    try:
        frame = sys._getframe(depth)
        from_import = frame.f_code.co_code[frame.f_lasti] == _IMPORT_FROM
    except (AttributeError, IndexError, ValueError):  # not CPython, or no such frame
        from_import = False
    if from_import:
        return ImportError(message, name=module_name)
    return AttributeError(message, name=name)


def layer_aliases(*names: str) -> dict[str, str]:
    """`{name: "kerasish.layers:name"}` for Keras 2 layer modules whose names are `keras.layers` names."""
    return {name: f"kerasish.layers:{name}" for name in names}


def install(namespace: dict, aliases: dict[str, str], removed: dict[str, str] | None = None) -> None:
    """Gives the module whose `globals()` is `namespace` a `__getattr__` / `__dir__` serving
    `aliases` (name -> "module:attribute") and raising a clear ImportError for `removed`
    (name -> what to use instead)."""
    removed = dict(removed or {})
    module_name = namespace["__name__"]
    keras2_path = "keras" + module_name[len("kerasish"):]
    previous = namespace.get("__getattr__")

    def __getattr__(name: str):
        target = aliases.get(name)
        if target is not None:
            module, attribute = target.split(":")
            value = getattr(importlib.import_module(module), attribute)
            namespace[name] = value
            return value
        if name in removed:
            raise removed_name_error(f"`{keras2_path}.{name}` is a Keras 2 name with no kerasish (Keras 3) "
                                     f"counterpart: {removed[name]}.", module_name, name)
        if previous is not None:
            return previous(name)
        if ("__path__" in namespace and not name.startswith("_")
                and importlib.util.find_spec(f"{module_name}.{name}") is not None):
            # a submodule (`keras.engine.topology`), reachable as an attribute as Keras 2's were
            value = importlib.import_module(f"{module_name}.{name}")
            namespace[name] = value
            return value
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(aliases))

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__
    namespace["_KERAS2_NAMES"] = tuple(sorted(aliases))  # what the tests check
    namespace["_KERAS2_REMOVED"] = tuple(sorted(removed))
