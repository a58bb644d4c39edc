"""Functional model configs in Keras 3's layout, both ways.

    {"name": ..., "trainable": ...,
     "layers": [{"module", "class_name", "config", "registered_name",
                 "build_config", "name", "inbound_nodes": [{"args", "kwargs"}]}],
     "input_layers": [name, node_index, tensor_index] (or a structure of them),
     "output_layers": ...}

KerasTensors inside node arguments are written as
`{"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history"}}`.
Keras 2's node lists (`[[layer_name, node_index, tensor_index, kwargs], ...]`)
are read too. Only kerasish classes and registered custom objects are ever
instantiated; no code from a config is run.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from kerasish.backend import dtypes
from kerasish.backend.keras_tensor import KerasTensor
from kerasish.models import graph
from kerasish.utils import tree


# ----------------------------------------------------------- class lookup
def module_objects() -> dict:
    """Classes a model config may name: kerasish layers and models."""
    import kerasish.layers as layers_module
    from kerasish.layers.input_layer import InputLayer
    from kerasish.models.functional import Functional
    from kerasish.models.model import Model
    from kerasish.models.sequential import Sequential
    from kerasish.models.torch_op_layer import TorchOpLambda

    from kerasish.layers.preprocessing import feature_space

    objs = {k: v for k, v in vars(layers_module).items() if inspect.isclass(v)}
    # FeatureSpace and its helpers (Keras writes them in `.keras` files)
    objs.update({c.__name__: c for c in (feature_space.FeatureSpace, feature_space.Feature, feature_space.Cross,
                                         feature_space.TFDIdentity, feature_space.TFDConcat)})
    objs.update(
        Functional=Functional, Model=Model, Sequential=Sequential, InputLayer=InputLayer, TorchOpLambda=TorchOpLambda
    )
    from kerasish.distillation import Distiller

    objs["Distiller"] = Distiller
    return objs


# Keras 3 records `keras.ops` calls on KerasTensors as graph operations
# (`{"module": "keras.src.ops.numpy", "class_name": "NotEqual"}`); e.g. every
# `Embedding(mask_zero=True)` feeding a layer that takes a mask writes a
# `NotEqual` node. These ops take only tensors/scalars and have no config
# beyond their name, so they map 1:1 to the torch function.
_KERAS_OPS = {
    "NotEqual": "torch.not_equal", "Equal": "torch.eq", "Greater": "torch.greater",
    "GreaterEqual": "torch.greater_equal", "Less": "torch.less", "LessEqual": "torch.less_equal",
    "Add": "torch.add", "Subtract": "torch.subtract", "Multiply": "torch.multiply",
    "Divide": "torch.true_divide", "LogicalAnd": "torch.logical_and", "LogicalOr": "torch.logical_or",
    "LogicalNot": "torch.logical_not", "Negative": "torch.negative", "Abs": "torch.abs",
    "Exp": "torch.exp", "Log": "torch.log", "Sqrt": "torch.sqrt", "Square": "torch.square",
    "Tanh": "torch.tanh", "Sigmoid": "torch.sigmoid", "Absolute": "torch.abs",
}
# and back, so a model loaded from Keras saves in a form Keras reads again
_TORCH_TO_KERAS_OPS = {fn: name for name, fn in _KERAS_OPS.items() if name not in ("Sigmoid", "Abs")}
_TORCH_TO_KERAS_OPS.update({
    f"torch.Tensor.__{dunder}__": name for dunder, name in (
        ("add", "Add"), ("radd", "Add"), ("sub", "Subtract"), ("mul", "Multiply"), ("rmul", "Multiply"),
        ("truediv", "Divide"), ("neg", "Negative"), ("ne", "NotEqual"), ("eq", "Equal"),
        ("gt", "Greater"), ("ge", "GreaterEqual"), ("lt", "Less"), ("le", "LessEqual"),
    )
})


def _keras_op_config(config):
    """A Keras 3 `keras.src.ops` operation config as a TorchOpLambda config,
    or the config unchanged."""
    module = config.get("module")
    if not (isinstance(module, str) and module.startswith("keras.src.ops.")):
        return config
    function = _KERAS_OPS.get(config.get("class_name"))
    inner = config.get("config") or {}
    if function is None or set(inner) - {"name"}:
        return config
    return {**config, "module": None, "class_name": "TorchOpLambda", "registered_name": None,
            "config": {"name": inner.get("name", config.get("name")), "function": function}}


def _kerasish_op_layer(config):
    """A `keras.src.ops` operation entry as a kerasish op layer, or None."""
    module = config.get("module")
    if not (isinstance(module, str) and module.startswith("keras.src.ops.")):
        return None
    from kerasish.ops.operation import KerasOpLayer

    return KerasOpLayer.from_keras_config(module, config.get("class_name"), config.get("config"))


def deserialize_layer(config, custom_objects=None):
    """A layer or model from its serialized config (Keras 3 or Keras 2 form)."""
    from kerasish.saving import CustomObjectScope
    from kerasish.saving import deserialize_keras_object

    if isinstance(config, dict):
        op_layer = _kerasish_op_layer(config)
        if op_layer is not None:
            return op_layer
        config = _keras_op_config(config)
    with CustomObjectScope(custom_objects or {}):
        layer = deserialize_keras_object(
            config, module_objects=module_objects(), custom_objects=custom_objects, printable_module_name="layer"
        )
    build_config = config.get("build_config") if isinstance(config, dict) else None
    if build_config and hasattr(layer, "built") and not layer.built:
        layer.build_from_config(build_config)
    return layer


# ---------------------------------------------------------- node values
def serialize_value(x):
    """A constant call argument in Keras 3's config form."""
    if x is None or isinstance(x, (str, bool, int, float)):
        return x
    if isinstance(x, torch.Size):
        return tuple(x)
    if isinstance(x, list):
        return [serialize_value(v) for v in x]
    if isinstance(x, tuple):
        return tuple(serialize_value(v) for v in x)
    if isinstance(x, dict):
        return {k: serialize_value(v) for k, v in x.items()}
    if isinstance(x, slice):
        return {
            "class_name": "__slice__",
            "config": {"start": serialize_value(x.start), "stop": serialize_value(x.stop), "step": serialize_value(x.step)},
        }
    if x is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if isinstance(x, torch.dtype):
        return {"class_name": "__torch_dtype__", "config": {"name": dtypes.standardize_dtype(x)}}
    if isinstance(x, torch.Tensor):
        return {
            "class_name": "__tensor__",
            "config": {"value": x.detach().cpu().tolist(), "dtype": dtypes.standardize_dtype(x.dtype)},
        }
    if isinstance(x, np.ndarray):
        if x.ndim == 0:
            return x.item()
        return {"class_name": "__numpy__", "config": {"value": x.tolist(), "dtype": str(x.dtype)}}
    if isinstance(x, np.generic):
        return x.item()
    from kerasish.saving import serialize_keras_object

    return serialize_keras_object(x)


def _serialize_node(node, own_nodes):
    if not node.input_tensors:
        return None

    def one(x):
        if isinstance(x, KerasTensor):
            op, node_index, tensor_index = x._keras_history
            skipped = sum(1 for i in range(node_index) if graph.node_key(op, i) not in own_nodes)
            return {
                "class_name": "__keras_tensor__",
                "config": {"shape": x.shape, "dtype": x.dtype, "keras_history": [op.name, node_index - skipped, tensor_index]},
            }
        if isinstance(x, list):
            return [one(v) for v in x]
        if isinstance(x, tuple):
            return tuple(one(v) for v in x)
        if isinstance(x, dict):
            return {k: one(v) for k, v in x.items()}
        return serialize_value(x)

    kwargs = {k: one(v) for k, v in node.call_kwargs.items() if k != "mask"}
    kwargs.update(_resolved_call_context(node))
    if "mask" in node.call_kwargs:
        kwargs["mask"] = one(node.call_kwargs["mask"])
    return {"args": tuple(one(a) for a in node.call_args), "kwargs": kwargs}


def _resolved_call_context(node) -> dict:
    """The call arguments Keras 3 resolves and records in a symbolic layer
    call though the user did not pass them: `training` (its `call` default
    when not None) and `mask` (the input's mask, None when it has none) for
    a layer whose `call` takes them and that got one tensor argument.
    Written into configs so they read as Keras's; on loading, `training` is
    dropped again (the model's training mode decides, as in Keras 3)."""
    from kerasish.layers.layer import Layer
    from kerasish.models.torch_op_layer import TorchOpLambda

    op = node.operation
    if not isinstance(op, Layer) or isinstance(op, TorchOpLambda) or type(op).__module__.startswith("kerasish.ops"):
        return {}
    out = {}
    if op._call_has_training and "training" not in node.call_kwargs:
        default = op._call_training_default  # (read once per class by Layer.__init_subclass__)
        if default is not None:
            out["training"] = default
    tensor_args = [a for a in node.call_args if any(isinstance(t, KerasTensor) for t in tree.flatten(a))]
    tensor_args += [v for k, v in node.call_kwargs.items() if any(isinstance(t, KerasTensor) for t in tree.flatten(v))]
    if (
        op._call_has_mask
        and getattr(op, "_symbolic_mask_kwarg", True)
        and "mask" not in node.call_kwargs
        and len(tensor_args) == 1
    ):
        out["mask"] = tree.map_structure(lambda _: None, tensor_args[0])
    return out


def _moved_input_dtype(model, input_layer):
    """The dtype a model moved by `.double()` / `.half()` / `.to(dtype)` casts
    this `Input` to (see `Functional._apply`), or None: the config says what
    the model computes, so a saved and loaded model casts as the saved one."""
    if not model.__dict__.get("_input_casts"):
        return None
    for x in model._inputs:
        if x._keras_history.operation is input_layer:
            return model._input_cast_dtype(x)
    return None


def functional_config(model) -> dict:
    """`model.get_config()` of a functional model (Keras 3 layout)."""
    from kerasish.layers.input_layer import InputLayer
    from kerasish.models.functional import Functional
    from kerasish.saving import serialize_keras_object

    own = model._nodes
    reindex = {}
    for op in model._operations:
        kept = 1 if isinstance(op, Functional) else 0  # Keras counts a nested model's own graph as node 0
        for i in range(len(op._inbound_nodes)):
            key = graph.node_key(op, i)
            if key in own:
                reindex[key] = kept
                kept += 1
    layer_configs = []
    for op in model._operations:
        nodes = []
        for i, node in enumerate(op._inbound_nodes):
            if graph.node_key(op, i) in own:
                data = _serialize_node(node, own)
                if data is not None:
                    nodes.append(data)
        layer_config = op.keras_serialize() if hasattr(op, "keras_serialize") else serialize_keras_object(op)
        function = layer_config.get("config", {}).get("function")
        # only a TorchOpLambda's `function` is a plain name; a Lambda's is a
        # `__lambda__` / `function` config dict
        keras_op = _TORCH_TO_KERAS_OPS.get(function) if isinstance(function, str) else None
        if keras_op is not None and layer_config.get("class_name") == "TorchOpLambda":
            layer_config = {"module": "keras.src.ops.numpy", "class_name": keras_op,
                            "config": {"name": op.name}, "registered_name": keras_op}
        if isinstance(op, InputLayer):
            moved = _moved_input_dtype(model, op)
            if moved is not None:
                layer_config["config"] = dict(layer_config["config"], dtype=moved)
        else:
            build_config = op.get_build_config()
            if build_config is not None:
                layer_config["build_config"] = build_config
        layer_config["name"] = op.name
        layer_config["inbound_nodes"] = nodes
        layer_configs.append(layer_config)

    def tensor_config(t):
        op, node_index, tensor_index = t._keras_history
        return [op.name, reindex[graph.node_key(op, node_index)], tensor_index]

    return {
        "name": model.name,
        "trainable": model.trainable,
        "layers": layer_configs,
        "input_layers": tree.map_structure(tensor_config, model._inputs_struct),
        "output_layers": tree.map_structure(tensor_config, model._outputs_struct),
    }


# -------------------------------------------------------------- reading
def _history_tensor(history, created):
    name, node_index, tensor_index = history[0], history[1], history[2]
    layer = created.get(name)
    if layer is None:
        raise ValueError(f"Invalid Functional model configuration. Unknown layer: {name}")
    if len(layer._inbound_nodes) <= node_index:
        raise IndexError(f"Layer node index out of bounds: layer {name} has no node {node_index} yet.")
    return layer._inbound_nodes[node_index].outputs[tensor_index]


def deserialize_value(x, created):
    """Inverse of `serialize_value`, with KerasTensor references resolved
    against the layers created so far (IndexError: node not made yet)."""
    if isinstance(x, list):
        return [deserialize_value(v, created) for v in x]
    if isinstance(x, tuple):
        return tuple(deserialize_value(v, created) for v in x)
    if not isinstance(x, dict):
        return x
    name = x.get("class_name")
    inner = x.get("config") or {}
    if name == "__keras_tensor__":
        return _history_tensor(inner["keras_history"], created)
    if name == "__slice__":
        return slice(*(deserialize_value(inner.get(k), created) for k in ("start", "stop", "step")))
    if name == "__ellipsis__":
        return Ellipsis
    if name == "__torch_dtype__":
        return dtypes.to_torch_dtype(inner["name"])
    if name == "__tensor__":
        return torch.tensor(inner["value"], dtype=dtypes.to_torch_dtype(inner["dtype"]))
    if name == "__numpy__":
        return np.array(inner["value"], dtype=inner["dtype"])
    if name == "__tuple__":
        return tuple(deserialize_value(v, created) for v in inner["value"])
    if name is not None and "config" in x:
        return deserialize_layer(x)
    return {k: deserialize_value(v, created) for k, v in x.items()}


def _deserialize_node(node_data, created):
    if not node_data:
        return [], {}
    if isinstance(node_data, list):  # Keras 2: [[layer_name, node_index, tensor_index, kwargs], ...]
        tensors, kwargs = [], {}
        for entry in node_data:
            if len(entry) not in (3, 4):
                raise ValueError("Cannot deserialize the model (invalid config data?)")
            tensors.append(_history_tensor(entry, created))
            if len(entry) == 4:
                kwargs = deserialize_value(entry[3], created)
        return [tensors[0] if len(tensors) == 1 else tensors], kwargs
    args = deserialize_value(list(node_data.get("args", ())), created)
    kwargs = deserialize_value(dict(node_data.get("kwargs", {})), created)
    # Keras 3 records the training flag it resolved while building the graph
    # (Dropout: False, random augmentation: True) and overrides it at run
    # time with the model's: dropped here, so the model's mode decides (kept,
    # it would switch Dropout off in `fit` for good). A recorded `"mask": null`
    # stays None in the node, as Keras 3 replays it (its `Layer.__call__`
    # fills the mask in for that call only, as the call has keyword
    # arguments): at run time the mask the input tensor carries then is used
    # (`functional_from_config` keeps the symbolic call from recording one).
    kwargs.pop("training", None)
    return args, kwargs


def functional_from_config(cls, config, custom_objects=None):
    """Rebuilds a functional model: creates every layer, then replays the
    layer calls recorded in `inbound_nodes` in dependency order."""
    from kerasish.models import symbolic_ops
    from kerasish.models.functional import Functional
    from kerasish.models.torch_op_layer import TorchOpLambda
    from kerasish.saving import CustomObjectScope

    config = dict(config)
    layer_configs = config.pop("layers")
    input_layers = config.pop("input_layers")
    output_layers = config.pop("output_layers")
    name = config.pop("name", None)
    trainable = config.pop("trainable", None)
    created, order, pending = {}, [], {}
    with CustomObjectScope(custom_objects or {}):
        for layer_data in layer_configs:
            layer = deserialize_layer(layer_data, custom_objects=custom_objects)
            layer_name = layer_data.get("name") or layer.name
            created[layer_name] = layer
            order.append(layer)
            pending[id(layer)] = list(layer_data.get("inbound_nodes", []))
        while any(pending.values()):
            progressed = False
            for layer in order:
                queue = pending[id(layer)]
                while queue:
                    try:
                        args, kwargs = _deserialize_node(queue[0], created)
                    except IndexError:
                        break
                    no_mask = "mask" in kwargs and not any(m is not None for m in tree.flatten(kwargs["mask"]))
                    if no_mask and not getattr(layer, "_call_has_mask", False):
                        del kwargs["mask"]  # (a model whose `call` takes no `mask=`: its layers read the masks)
                        no_mask = False
                    if isinstance(layer, TorchOpLambda):
                        symbolic_ops.symbolic_layer_call(layer, args, kwargs)
                    elif no_mask:
                        with symbolic_ops.recorded_without_mask(layer):
                            layer(*args, **kwargs)
                    else:
                        layer(*args, **kwargs)
                    queue.pop(0)
                    progressed = True
            if not progressed:
                raise ValueError(
                    "Invalid Functional model configuration. The graph of the Functional model either has "
                    "loops or disconnected nodes. The following nodes failed to be resolved: "
                    f"{ {layer.name: pending[id(layer)] for layer in order if pending[id(layer)]} }"
                )

    def get_tensor(layer_name, node_index, tensor_index):
        layer = created.get(layer_name)
        if layer is None:
            raise ValueError(f"Invalid Functional model configuration. Unknown layer: {layer_name}")
        if isinstance(layer, Functional):
            node_index -= 1  # see `functional_config`
        return layer._inbound_nodes[node_index].outputs[tensor_index]

    def map_tensors(t):
        if isinstance(t, (list, tuple)) and len(t) in (3, 4) and isinstance(t[0], str) and isinstance(t[1], int):
            return get_tensor(t[0], t[1], t[2])
        if isinstance(t, dict):
            return {k: map_tensors(v) for k, v in t.items()}
        if not isinstance(t, (list, tuple)):
            raise ValueError(
                "Invalid Functional model configuration: `input_layers` / `output_layers` hold "
                f"[layer_name, node_index, tensor_index] references, lists or dicts of them. Received: {t!r}")
        return [map_tensors(v) for v in t]

    inputs = map_tensors(input_layers)
    outputs = map_tensors(output_layers)
    from kerasish.models.model import Model

    if cls is Model:
        cls = Functional
    return cls(inputs=inputs, outputs=outputs, name=name, trainable=trainable, **config)
