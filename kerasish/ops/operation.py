"""How a `kerasish.ops` function runs on symbolic tensors.

Every public op is decorated with `keras_op`. On torch tensors (and NumPy
arrays, Python scalars) the decorated function is the plain torch code; the
only per-call cost is one scan of the positional and keyword arguments for a
`KerasTensor`. When a KerasTensor is present the call is recorded as a node
of the functional graph, held by a `KerasOpLayer` whose config mirrors the
Keras 3 operation class (`keras.src.ops.numpy.Sum` with `axis`/`keepdims`),
so a model using ops saves a config that real Keras reads, and loads the
configs Keras writes.
"""

from __future__ import annotations

import functools
import inspect

import torch

from kerasish.backend.keras_tensor import KerasTensor
from kerasish.models.torch_op_layer import TorchOpLambda
from kerasish.ops.keras_op_classes import KERAS_OP_CLASSES
from kerasish.utils import naming
from kerasish.utils import tree

# public function name -> undecorated function (filled by `keras_op`)
OPS: dict = {}
# public function name -> the public (decorated) op
PUBLIC: dict = {}
# (keras module, class name) -> public function name, for loading configs
_BY_CLASS: dict = {}


def _is_symbolic(value) -> bool:
    if isinstance(value, KerasTensor):
        return True
    if type(value) in (list, tuple):
        for v in value:
            if isinstance(v, KerasTensor) or (type(v) in (list, tuple) and _is_symbolic(v)):
                return True
    return False


def keras_op(fn=None, *, name=None):
    """Registers `fn` as the kerasish op `name` (default: `fn.__name__`)
    and makes it record a graph node when given KerasTensors."""
    if fn is None:
        return functools.partial(keras_op, name=name)
    op_name = name or fn.__name__
    OPS[op_name] = fn
    entry = KERAS_OP_CLASSES.get(op_name)
    if entry is not None:
        _BY_CLASS.setdefault((entry[0], entry[1]), op_name)
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def op(*args, **kwargs):
        for a in args:
            if _is_symbolic(a):
                return symbolic_call(op_name, fn, signature, args, kwargs)
        for a in kwargs.values():
            if _is_symbolic(a):
                return symbolic_call(op_name, fn, signature, args, kwargs)
        return fn(*args, **kwargs)

    op.__wrapped_op__ = fn
    PUBLIC[op_name] = op
    return op


def _split(op_name, signature, args, kwargs):
    """The call's arguments as (graph call args, graph call kwargs, config),
    split as the Keras operation class splits them."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()  # Keras's op configs list every argument
    values = dict(bound.arguments)
    entry = KERAS_OP_CLASSES.get(op_name)
    call_params = entry[2] if entry is not None else tuple(
        p.name for p in signature.parameters.values() if p.default is inspect.Parameter.empty
    )
    call_args, call_kwargs = [], {}
    for p in call_params:
        if p == "**":
            for key in [k for k, param in signature.parameters.items() if param.kind is param.VAR_KEYWORD]:
                call_kwargs.update(values.pop(key, {}))
        elif p.startswith("*"):
            call_args.extend(values.pop(p[1:], ()))
        elif p.endswith("="):
            if p[:-1] in values:
                call_kwargs[p[:-1]] = values.pop(p[:-1])
        elif p in values:
            call_args.append(values.pop(p))
        else:
            call_args.append(signature.parameters[p].default)
    for key, param in signature.parameters.items():
        if param.kind is param.VAR_KEYWORD and key in values:
            values.update(values.pop(key))
    return call_args, call_kwargs, values


def symbolic_call(op_name, fn, signature, args, kwargs):
    """Records `fn(*args, **kwargs)` on KerasTensors as a graph node."""
    from kerasish.models.node import Node
    from kerasish.models.symbolic_ops import _fresh_outputs

    from kerasish.models.symbolic_ops import _refuse_captured_parameters

    _refuse_captured_parameters(fn, args, kwargs)
    call_args, call_kwargs, config = _split(op_name, signature, args, kwargs)
    layer = KerasOpLayer(op_name, config)
    try:
        outputs = layer.compute_output_spec(*call_args, **call_kwargs)
    except (RuntimeError, IndexError) as e:  # torch's shape errors, said as Keras says them
        shapes = [getattr(a, "shape", a) for a in tree.flatten(call_args)]
        raise ValueError(
            f"Invalid arguments for op `{op_name}` on symbolic inputs with shapes {shapes} and "
            f"arguments {config}: {e}"
        ) from e
    flat = tree.flatten(outputs)
    if not flat or not all(isinstance(t, KerasTensor) for t in flat):
        return outputs
    outputs = _fresh_outputs(outputs, [call_args, call_kwargs])
    Node(layer, call_args, call_kwargs, outputs)
    return outputs


class KerasOpLayer(TorchOpLambda):
    """A `kerasish.ops` call in a functional graph (Keras 3's `Operation`).

    Args:
        op: The public op name ("sum", "image.resize").
        op_config: The op's non-tensor arguments (`{"axis": -1}`).
        name: Node name. Defaults to the snake-case name of the Keras
            operation class, made unique, as Keras 3 names it
            (`ops.abs` -> "absolute", `ops.swish` -> "silu").
    """

    def __init__(self, op, op_config=None, name=None, **kwargs):
        if op not in OPS:
            raise ValueError(f"Unknown kerasish op: {op!r}.")
        fn = OPS[op]
        op_config = dict(op_config or {})
        entry = KERAS_OP_CLASSES.get(op)
        prefix = entry[1] if entry is not None else op.rsplit(".", 1)[-1]
        super().__init__(fn, name=name or naming.auto_name(prefix), **kwargs)
        self.__dict__["op"] = op
        self.__dict__["op_config"] = op_config
        self.__dict__["function"] = _node_function(op, op_config)

    def __getstate__(self):
        # the undecorated op function cannot be pickled by name (its module
        # attribute is the decorated op): rebuilt from `op` and `op_config`
        state = super().__getstate__()
        state.pop("function", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__["function"] = _node_function(self.op, self.op_config)

    def get_config(self) -> dict:
        return {"name": self.name, **self.op_config}

    def keras_serialize(self) -> dict:
        """The layer entry Keras 3 writes for this operation."""
        entry = KERAS_OP_CLASSES.get(self.op)
        if entry is None:
            raise NotImplementedError(f"The op {self.op!r} has no Keras operation class to save it as.")
        config = {"name": self.name, **{k: _jsonable(v) for k, v in self.op_config.items()}}
        return {"module": f"keras.src.ops.{entry[0]}", "class_name": entry[1], "config": config,
                "registered_name": entry[1]}

    @classmethod
    def from_keras_config(cls, module, class_name, config):
        """The layer for a Keras 3 operation entry, or None if unknown."""
        op = _BY_CLASS.get((module.rsplit(".", 1)[-1], class_name))
        if op is None:
            return None
        config = dict(config or {})
        name = config.pop("name", None)
        params = inspect.signature(OPS[op]).parameters
        for key in list(config):
            if key not in params:
                config.pop(key)  # e.g. a Keras-only `sparse=False`
        return cls(op, config, name=name)


def _node_function(op, op_config):
    """What a graph node of the op `op` runs, its configuration bound."""
    return _graph_get_item if op == "get_item" else _bind_config(OPS[op], op_config)


def _graph_get_item(x, key):
    """`x[key]` in a graph: Keras's `GetItem` reads a list key as a tuple (a
    saved tuple key comes back from JSON as a list), so `x[[0, 2]]` is
    `x[0, 2]` there, unlike eager `ops.get_item`."""
    if isinstance(key, list):
        key = tuple(key)
    return x[key] if type(x) is torch.Tensor else OPS["get_item"](x, key)


def _bind_config(fn, config):
    """`fn` with its configuration arguments fixed. Configuration that comes
    before a `*args` parameter (`einsum(subscripts, *operands)`) is passed
    positionally, the rest by keyword."""
    if not config:
        return fn
    params = inspect.signature(fn).parameters.values()
    if not any(p.kind is p.VAR_POSITIONAL for p in params):
        return functools.partial(fn, **config)
    lead = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not all(name in config for name in lead):
        return functools.partial(fn, **config)
    first = [config[name] for name in lead]
    rest = {k: v for k, v in config.items() if k not in lead}
    return functools.partial(fn, *first, **rest)


def _jsonable(v):
    import torch

    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, torch.dtype):
        from kerasish.backend import dtypes

        return dtypes.standardize_dtype(v)
    return v

