"""`TorchOpLambda`: a torch function applied to KerasTensors, recorded as a
step of the functional graph (Keras 2 called these `TFOpLambda` layers;
Keras 3 records `keras.ops` calls as operations).

`torch.abs(torch.mean(x))` on a symbolic `x` creates two such layers. The
function is kept by its public torch name (`"torch.abs"`,
`"torch.nn.functional.relu"`, `"torch.Tensor.__add__"`), so a model config
can name it; `from_config` only resolves names inside torch's own public
namespaces and never imports or runs anything else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers import call_context as ctx
from kerasish.layers.layer import Layer
from kerasish.utils import naming
from kerasish.utils import tree

# The only places a config may name a function from.
_NAMESPACES = {
    "torch": torch,
    "torch.nn.functional": F,
    "torch.linalg": torch.linalg,
    "torch.special": torch.special,
    "torch.fft": torch.fft,
    "torch.Tensor": torch.Tensor,
}
_NAME_CACHE: dict = {}
# `1 + x` arrives as `Tensor.__radd__(x, 1)`; its op is still called "add".
_REFLECTED = frozenset(
    {"radd", "rsub", "rmul", "rtruediv", "rfloordiv", "rpow", "rmatmul", "rmod", "rand", "ror", "rxor", "rdiv"}
)
_PROBE_SIZES = (83, 89)  # as in kerasish.layers.shape_inference
_FALLBACK_SIZES = (3, 5)


def function_name(fn) -> str | None:
    """The public torch name of `fn` (`"torch.abs"`), or None if it lives
    outside torch's public namespaces."""
    key = id(fn)
    if key in _NAME_CACHE:
        return _NAME_CACHE[key][1]
    name = None
    short = getattr(fn, "__name__", None)
    for prefix, namespace in _NAMESPACES.items():
        if short is not None and getattr(namespace, short, None) is fn:
            name = f"{prefix}.{short}"
            break
    if name is None:
        for prefix, namespace in _NAMESPACES.items():
            for attr in dir(namespace):
                if getattr(namespace, attr, None) is fn:
                    name = f"{prefix}.{attr}"
                    break
            if name is not None:
                break
    _NAME_CACHE[key] = (fn, name)  # keep fn alive so the id stays valid
    return name


_OPERATOR_DUNDERS = frozenset(
    f"__{n}__"
    for n in (
        "add radd sub rsub mul rmul truediv rtruediv floordiv rfloordiv pow rpow matmul rmatmul mod rmod "
        "and rand or ror xor rxor lt le gt ge eq ne neg pos abs invert getitem"
    ).split()
)
# Torch functions that touch files, global state or random seeds: never
# reachable from a config.
_DENIED = frozenset({"load", "save", "from_file", "manual_seed", "seed", "initial_seed", "use_deterministic_algorithms"})
_PY_MODULES = frozenset({"torch.functional", "torch.nn.functional", "torch._tensor", "torch.linalg", "torch.special", "torch.fft"})


def resolve_function(name: str):
    """Inverse of `function_name`, restricted to torch's public tensor
    functions (no file, global-state or seed functions, no private names)."""
    namespace, attr = None, None
    if isinstance(name, str) and "." in name:
        prefix, attr = name.rsplit(".", 1)
        namespace = _NAMESPACES.get(prefix)
    fn = None
    if namespace is not None and attr not in _DENIED and not attr.startswith("set_"):
        if not attr.startswith("_") or (namespace is torch.Tensor and attr in _OPERATOR_DUNDERS):
            fn = getattr(namespace, attr, None)
    if fn is not None and not (
        type(fn).__name__ in ("builtin_function_or_method", "method_descriptor", "wrapper_descriptor")
        or getattr(fn, "__module__", None) in _PY_MODULES
    ):
        fn = None
    if fn is None or not callable(fn) or isinstance(fn, type):
        raise ValueError(
            f"Unknown torch function: {name!r}. Only public tensor functions of torch, "
            "torch.nn.functional, torch.linalg, torch.special, torch.fft and torch.Tensor methods "
            "can be deserialized."
        )
    return fn


def _op_short_name(fn) -> str:
    name = getattr(fn, "__name__", "op").strip("_") or "op"
    if name in _REFLECTED:
        name = name[1:]
    return name


def _fix_index(args):
    # after a JSON round trip an index tuple `x[:, 0]` comes back as a list
    if len(args) == 2 and isinstance(args[1], list) and any(
        isinstance(i, (slice, type(None), type(Ellipsis))) for i in args[1]
    ):
        return (args[0], tuple(args[1]))
    return args


class TorchOpLambda(Layer):
    """Wraps a torch function applied to KerasTensors (see module docstring).

    Args:
        function: The torch function, or its public name ("torch.abs").
        name: Layer name. Defaults to the function's short name ("abs").
    """

    def __init__(self, function, name=None, **kwargs):
        if isinstance(function, str):
            function = resolve_function(function)
        if not callable(function):
            raise TypeError(f"`function` must be callable. Received: function={function!r}")
        kwargs.pop("autocast", None)
        super().__init__(name=name or naming.auto_name(_op_short_name(function)), autocast=False, **kwargs)
        self.__dict__["function"] = function
        self.__dict__["_is_getitem"] = getattr(function, "__name__", "") == "__getitem__"
        self.built = True

    def call(self, *args, **kwargs):
        # the Layer pipeline adds `training`; a torch function never wants it
        # unless the recorded call passed it explicitly (handled by the graph)
        kwargs.pop("training", None)
        if self._is_getitem:
            args = _fix_index(args)
        return self.function(*args, **kwargs)

    def compute_output_spec(self, *args, **kwargs):
        if self._is_getitem:
            args = _fix_index(args)
        return op_output_spec(self.function, args, kwargs)

    def get_config(self) -> dict:
        name = function_name(self.function)
        if name is None:
            raise NotImplementedError(
                f"The function {self.function!r} used in the model is not a public torch function, so "
                "it cannot be serialized. Wrap it in a custom layer (or a `Lambda` layer) instead."
            )
        return {"name": self.name, "trainable": self.trainable, "dtype": None, "function": name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("dtype", None)
        config.pop("trainable", None)
        return cls(**config)


def _materialize(x, size, device):
    if isinstance(x, KerasTensor):
        from kerasish.backend import dtypes

        shape = tuple(size if d is None else d for d in x.shape)
        return torch.zeros(shape, dtype=dtypes.to_torch_dtype(x.dtype), device=device)
    if isinstance(x, torch.Tensor) and device == "meta" and x.device.type != "meta":
        return x.to("meta")
    return x


def _merge(a, b):
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor):
            raise TypeError("The op returned different kinds of values for different input sizes.")
        return KerasTensor(tuple(x if x == y else None for x, y in zip(a.shape, b.shape)), dtype=a.dtype)
    if isinstance(a, (list, tuple)) and not isinstance(a, torch.Size):
        return type(a)(_merge(x, y) for x, y in zip(a, b)) if type(a) in (list, tuple) else tuple(
            _merge(x, y) for x, y in zip(a, b)
        )
    if isinstance(a, dict):
        return {k: _merge(a[k], b[k]) for k in a}
    if a != b:
        raise TypeError(
            "This op returns a Python value that depends on an unknown (None) dimension of a "
            f"KerasTensor ({a!r} vs {b!r} for two probe sizes), which a graph cannot hold."
        )
    return a


def op_output_spec(fn, args, kwargs):
    """Output KerasTensor(s) of `fn(*args, **kwargs)`, found by running it on
    the meta device (or, failing that, on small CPU zeros) at two sizes for
    each unknown dimension."""
    errors = []
    for device, sizes in (("meta", _PROBE_SIZES), ("cpu", _FALLBACK_SIZES)):
        try:
            outs = []
            previous_symbolic = ctx.state().symbolic
            ctx.state().symbolic = True
            try:
                with torch.no_grad():
                    for size in sizes:
                        def one(x, size=size, device=device):
                            return _materialize(x, size, device)

                        outs.append(fn(*tree.map_structure(one, list(args)), **tree.map_structure(one, dict(kwargs))))
            finally:
                ctx.state().symbolic = previous_symbolic
            return _merge(outs[0], outs[1])
        except TypeError as e:
            if "probe sizes" in str(e):
                raise
            errors.append(e)
        except Exception as e:  # no meta kernel, data-dependent shapes...
            errors.append(e)
    raise errors[-1]
