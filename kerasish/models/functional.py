"""`Functional`: a model defined as a graph of layers, `keras.Model(inputs, outputs)`.

The graph is walked once at construction (Keras 3's ordering of operations, so
`weights`, `get_weights()` and configs line up with Keras) and compiled into a
flat execution plan (`kerasish.models.graph`). A call feeds the inputs into a
list of slots and runs the plan: one loop of layer calls, nothing else.
Every layer is registered as a submodule under its name, so `state_dict()`
keys read `dense_1.kernel`.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import torch

from kerasish.backend import dtypes
from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers.input_layer import Input
from kerasish.layers.input_layer import InputLayer
from kerasish.layers import layer_moves
from kerasish.layers import weight_substitution
from kerasish.layers.layer import Layer
from kerasish.models import graph
from kerasish.models.shape_mismatch import warn_incompatible_shape
from kerasish.models.model import Model
from kerasish.models.node import KerasHistory
from kerasish.models.node import Node
from kerasish.models.torch_op_layer import TorchOpLambda
from kerasish.utils import naming
from kerasish.utils import tree


def _module_key(model, layer) -> str:
    """The torch submodule key of a layer in a model.

    An explicitly named layer is keyed by its name. An auto-named one is keyed
    by its snake_case class name made unique *within the model* (`dense`,
    `dense_1`, ...), as Keras 3 names layers in weight files, so the
    state_dict keys of a model do not depend on how many layers the process
    created before it (two copies of a model load each other's state_dict).
    """
    if layer.__dict__.get("_auto_named", False):
        base = naming.to_snake_case(type(layer).__name__) or "layer"
        key, i = base, 0
        while key in model._modules or hasattr(model, key):
            i += 1
            key = f"{base}_{i}"
        return key
    key = layer.name.replace(".", "_") or "layer"
    while (hasattr(model, key) and key not in model._modules) or (
        key in model._modules and model._modules[key] is not None
    ):
        key += "_"
    return key


def _flatten_sorted(x) -> list:
    """Flattens like Keras 3's `tree.flatten`: a plain dict's values in sorted
    key order (so `model.inputs`/`outputs`, `output_names` and the layer
    order, hence `get_weights()`, match Keras for dict inputs/outputs)."""
    if type(x) is dict:
        return [t for k in sorted(x) for t in _flatten_sorted(x[k])]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _flatten_sorted(v)]
    return [x]


def is_input_keras_tensor(x) -> bool:
    history = x._keras_history
    if history is None:
        return False
    return history.operation._inbound_nodes[history.node_index].is_input


class Functional(Model):
    """A `Model` defined as a directed graph of layers (`keras.Model(inputs, outputs)`).

    Args:
        inputs: The input KerasTensor(s) (from `keras.Input`, or intermediate
            tensors of another graph): a tensor, a list, or a dict by name.
        outputs: The output KerasTensor(s): a tensor, a list or a dict.
        name: Model name. Defaults to "functional" (made unique).
        trainable: Whether the model's weights are trainable. Defaults to True.

    Calling the model on tensors runs the layers in topological order. Inputs
    are checked against the `Input` shapes (ValueError naming the model and
    the input), converted from NumPy and cast to the `Input` dtype when it
    is floating.

    Example:
        >>> inputs = keras.Input(shape=(8,))
        >>> x = keras.layers.Dense(16, activation="relu")(inputs)
        >>> outputs = keras.layers.Dense(1)(x)
        >>> model = keras.Model(inputs, outputs)
        >>> model(torch.ones(2, 8)).shape
        torch.Size([2, 1])
    """

    _keras_module = "keras.src.models.functional"  # as Keras 3 serializes it

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        if isinstance(inputs, dict):
            for k, v in inputs.items():
                if isinstance(v, KerasTensor) and k != v.name:
                    warnings.warn(
                        "When providing `inputs` as a dict, all keys in the dict must match the names of "
                        f"the corresponding tensors. Received key '{k}' mapping to value {v} which has name "
                        f"'{v.name}'. Change the tensor name to '{k}' (via `Input(..., name='{k}')`)",
                        stacklevel=2,
                    )
        for what, value in (("inputs", inputs), ("outputs", outputs)):
            flat = tree.flatten(value)
            if not flat:
                raise ValueError(f"`{what}` argument cannot be empty. Received:\ninputs={inputs}\noutputs={outputs}")
            for x in flat:
                if not isinstance(x, KerasTensor):
                    raise ValueError(
                        f"All `{what}` values must be KerasTensors. Received: {what}={value} including "
                        f"invalid value {x} of type {type(x)}"
                    )
        for x in tree.flatten(inputs):
            if x._keras_history is None:
                raise ValueError(
                    f"Model inputs must come from `keras.Input` (or be outputs of layers). Received: {x}, "
                    "a KerasTensor that no layer produced."
                )
        if not all(is_input_keras_tensor(t) for t in tree.flatten(inputs)):
            inputs, outputs = clone_graph_nodes(inputs, outputs)
        Layer.__init__(self, name=name, autocast=False, **kwargs)
        d = self.__dict__
        d["_inputs_struct"] = tree.map_structure(lambda x: x, inputs)
        d["_outputs_struct"] = tree.map_structure(lambda x: x, outputs)
        d["_inputs"] = _flatten_sorted(inputs)
        d["_outputs"] = _flatten_sorted(outputs)
        keys, nodes_by_depth, operations = graph.map_graph(d["_inputs"], d["_outputs"])
        d["_nodes"] = keys
        d["_nodes_by_depth"] = nodes_by_depth
        d["_operations"] = operations
        for op in operations:
            if not isinstance(op, (InputLayer, TorchOpLambda)) and op not in self._modules.values():
                self.add_module(_module_key(self, op), op)
        d["_aux"] = []
        for op in operations:  # symbolic losses/metrics added on the layers
            for t in op.__dict__.get("_symbolic_losses", ()):
                if graph_computable(d["_inputs"], [t]):
                    d["_aux"].append(("loss", t, None))
            for t, metric in op.__dict__.get("_symbolic_metrics", ()):
                if graph_computable(d["_inputs"], [t]):
                    d["_aux"].append(("metric", t, metric))
        self._compile()
        self.built = True
        d["output_names"] = [x._keras_history.operation.name for x in d["_outputs"]]
        if trainable is not None and not trainable:
            self.trainable = False

    # ------------------------------------------- torch-style child surgery
    # `model.head = Dense(10)` (torchvision's `model.fc = ...`, PEFT's
    # `setattr(parent, name, new)`) on a layer of the graph: the graph calls
    # the layers it was built with, so the new one would be registered but
    # never called, and the old one called but gone from `parameters()`.
    # Refused, naming the Keras way to edit a graph.
    def _set_attribute(self, name, value):
        old = self._graph_layer_under(name)
        if old is not None and value is not old:
            self._refuse_surgery(name, old, f"Received: {name}={value!r} (of type {type(value)})")
        return super()._set_attribute(name, value)

    def __delattr__(self, name):
        old = self._graph_layer_under(name)
        if old is not None:
            self._refuse_surgery(name, old, f"Received: del model.{name}")
        return super().__delattr__(name)

    def add_module(self, name, module):
        old = self._graph_layer_under(name)
        if old is not None and module is not old:
            self._refuse_surgery(name, old, f"Received: add_module({name!r}, {module!r})")
        return super().add_module(name, module)

    def _graph_layer_under(self, name):
        """The layer of the built graph registered under the torch key `name`, or None."""
        d = self.__dict__
        operations = d.get("_operations")
        old = d["_modules"].get(name) if operations else None
        if old is None or not any(op is old for op in operations):
            return None
        # (only its own key: not a second name the user gave it)
        return old if next(k for k, m in d["_modules"].items() if m is old) == name else None

    def _refuse_surgery(self, name, old, received):
        raise ValueError(
            f"`{name}` is layer '{old.name}' of the graph of functional model '{self.name}', which calls "
            "the layers it was built with: a layer of it cannot be replaced or removed. Build a new model "
            "from the graph's tensors instead, e.g. `keras.Model(model.inputs, new_head(model.layers[-2]."
            "output))`, or `keras.models.clone_model(model, clone_function=...)`. " + received
        )

    def __getstate__(self):
        state = super().__getstate__()
        # the plan holds the nodes' functions, some of which pickle cannot
        # name (a `keras.ops` node's undecorated op): compiled again on loading
        state.pop("_steps", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_steps" not in self.__dict__ and "_nodes_by_depth" in self.__dict__:
            self._compile()

    def _apply(self, fn, recurse=True):
        """`.double()`, `.half()`, `.to(dtype)`: the floating inputs are cast
        to the dtype the move gives (as a floating buffer of the model would
        be), not to the `Input` dtype any more: a float64 input to a model
        moved by `.double()` was cast to float32 first and lost its precision,
        silently. The `Input` object (which other models may share) keeps
        its dtype; this model's config reports the moved one, so that the
        model a saved file gives back casts as this one does."""
        out = super()._apply(fn, recurse)
        d = self.__dict__
        casts = dict(d.get("_input_casts", {}))
        for _, i, torch_dtype, *_ in d.get("_input_checks", ()):
            if torch_dtype is not None and torch_dtype.is_floating_point:
                moved = layer_moves.dtype_after(fn, torch_dtype)
                if moved != torch_dtype and moved.is_floating_point:
                    casts[i] = moved
        if casts != d.get("_input_casts", {}):
            d["_input_casts"] = casts
            self._compile()
        return out

    def _input_cast_dtype(self, x) -> str:
        """The dtype this model casts its input `x` (one of `self.inputs`) to:
        the `Input` dtype, or the one a `.double()` / `.half()` / `.to(dtype)`
        moved it to (for configs and clones, which must compute the same)."""
        casts = self.__dict__.get("_input_casts")
        if casts:
            for i, ref in enumerate(self._inputs):
                if ref is x and i in casts:
                    return dtypes.standardize_dtype(casts[i])
        return x.dtype

    # --------------------------------------------------------- compilation
    def _compile(self):
        """Builds the execution plan, the input checks and the output packing."""
        d = self.__dict__
        aux_tensors = [t for _, t, _ in d["_aux"]]
        nodes = graph.execution_order(d["_nodes_by_depth"])
        if aux_tensors:
            seen = {id(n) for n in nodes}
            extra, _ = graph.build_map(d["_inputs"], aux_tensors)
            nodes += [n for n in extra if not n.is_input and id(n) not in seen]
        n_slots, input_slots, steps, slot_of = graph.compile_plan(d["_inputs"], nodes, d["_outputs"] + aux_tensors)
        d["_n_slots"] = n_slots
        d["_steps"] = steps
        d["_aux_slots"] = tuple((kind, slot_of[id(t)], metric) for kind, t, metric in d["_aux"])
        checks = []
        for i, (x, slot) in enumerate(zip(d["_inputs"], input_slots)):
            # a "string" input stays a NumPy object array (torch has no strings)
            torch_dtype = None if x.dtype == dtypes.STRING else dtypes.to_torch_dtype(x.dtype)
            torch_dtype = d.get("_input_casts", {}).get(i, torch_dtype)  # (moved by `.double()`...)
            fixed = tuple((axis, size) for axis, size in enumerate(x.shape) if axis > 0 and size is not None)
            layer = x._keras_history.operation
            optional = isinstance(layer, InputLayer) and layer.optional
            checks.append((slot, i, torch_dtype, len(x.shape), fixed, optional))
        d["_input_checks"] = tuple(checks)
        d["_string_inputs"] = any(check[2] is None for check in checks)
        struct = d["_inputs_struct"]
        if isinstance(struct, KerasTensor) or (isinstance(struct, (list, tuple)) and len(struct) == 1):
            d["_input_mode"] = "single"
        elif isinstance(struct, dict):
            d["_input_mode"] = "dict"
            d["_input_keys"] = tuple(sorted(struct))  # the order of d["_inputs"]
        else:
            d["_input_mode"] = "list"
        outputs = d["_outputs_struct"]
        if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
            outputs = outputs[0]  # Keras unpacks single-output lists
        d["_output_slot"] = slot_of[id(outputs)] if isinstance(outputs, KerasTensor) else None
        d["_output_template"] = tree.map_structure(lambda x: graph.Slot(slot_of[id(x)]), outputs)

    def _add_symbolic_aux(self, kind, tensor, metric):
        if not graph_computable(self._inputs, [tensor]):
            raise ValueError(
                f"The symbolic {kind} tensor {tensor} added to model '{self.name}' cannot be traced back to "
                "the model's inputs. Pass a tensor computed from the model's inputs, or a zero-argument "
                "callable for losses that depend on weights only."
            )
        self.__dict__["_aux"].append((kind, tensor, metric))
        self._compile()

    # ---------------------------------------------------------------- call
    def _flat_inputs(self, inputs) -> list:
        d = self.__dict__
        mode = d["_input_mode"]
        if mode == "single":
            if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
                inputs = inputs[0]
            elif isinstance(inputs, dict):
                name = d["_inputs"][0].name
                if name not in inputs:
                    self._raise_structure(inputs)
                inputs = inputs[name]
            return [inputs]
        n = len(d["_inputs"])
        if mode == "dict":
            if isinstance(inputs, dict):
                try:
                    flat = tree.flatten([inputs[k] for k in d["_input_keys"]])
                except KeyError:
                    self._raise_structure(inputs)
            elif isinstance(inputs, (list, tuple)):
                flat = tree.flatten(list(inputs))
            else:
                self._raise_structure(inputs)
        elif isinstance(inputs, dict):
            names = [x.name for x in d["_inputs"]]
            if not all(name in inputs for name in names):
                self._raise_structure(inputs)
            flat = [inputs[name] for name in names]
        elif isinstance(inputs, (list, tuple)):
            flat = tree.flatten(list(inputs))
        else:
            self._raise_structure(inputs)
        if len(flat) != n:
            self._raise_structure(inputs)
        return flat

    def _raise_structure(self, inputs):
        expected = tree.map_structure(lambda x: x.name, self._inputs_struct)
        received = tree.map_structure(lambda x: f"Tensor(shape={tuple(x.shape)})" if hasattr(x, "shape") else x, inputs)
        raise ValueError(
            f"The structure of `inputs` doesn't match the expected structure of model '{self.name}'.\n"
            f"Expected: {expected}\nReceived: inputs={received}"
        )

    def _check_input(self, x, check):
        slot, i, torch_dtype, ndim, fixed, optional = check
        if torch_dtype is None:
            return self._check_string_input(x, i, ndim, fixed, optional)
        if type(x) is not torch.Tensor and not isinstance(x, torch.Tensor):
            if x is None:
                if optional:
                    return None
                raise ValueError(
                    f"The input '{self._inputs[i].name}' is not optional, but None was passed. Please provide "
                    "a valid tensor."
                )
            x = torch.as_tensor(np.asarray(x) if not isinstance(x, np.ndarray) else x, device=self._device_hint)
        if x.dtype is not torch_dtype and (x.is_floating_point() or torch_dtype.is_floating_point):
            if x.dtype != torch.bool and torch_dtype != torch.bool:
                mask = x.__dict__.get("_keras_mask") if x.__dict__ else None
                x = x.to(torch_dtype)
                if mask is not None:
                    x._keras_mask = mask
        if x.ndim != ndim:
            x = self._adjust_rank(x, i, ndim)
        for axis, size in fixed:
            if x.shape[axis] != size:
                warn_incompatible_shape(self, self._inputs[i], x)
                break
        return x

    def _check_string_input(self, x, i, ndim, fixed, optional):
        """A value for a `dtype="string"` input: a NumPy object array of str
        (bytes decoded as UTF-8), rank-adjusted like tensor inputs."""
        from kerasish.layers.preprocessing.host_inputs import is_string_array
        from kerasish.layers.preprocessing.host_inputs import to_host_array

        if x is None:
            if optional:
                return None
            raise ValueError(
                f"The input '{self._inputs[i].name}' is not optional, but None was passed. Please provide "
                "a valid tensor."
            )
        arr = to_host_array(x)
        if not is_string_array(arr):
            raise TypeError(
                f"Input {i} with name '{self._inputs[i].name}' of model '{self.name}' has dtype \"string\": "
                f"expected str values (a NumPy str/object array or a list of str). Received: values of dtype "
                f"{getattr(x, 'dtype', type(x).__name__)}"
            )
        if arr.ndim != ndim:
            ref = self._inputs[i].shape
            if arr.ndim == ndim + 1 and arr.shape[-1] == 1:
                arr = arr.reshape(arr.shape[:-1])
            elif arr.ndim == ndim - 1 and ref and ref[-1] == 1:
                arr = arr.reshape(arr.shape + (1,))
            else:
                self._raise_shape(arr, i)
        for axis, size in fixed:
            if arr.shape[axis] != size:
                self._raise_shape(arr, i)
        return arr

    def _adjust_rank(self, x, i, ndim):
        ref = self._inputs[i].shape
        if x.ndim == ndim + 1 and x.shape[-1] == 1:
            return x.squeeze(-1)
        if x.ndim == ndim - 1 and ref and ref[-1] == 1:
            return x.unsqueeze(-1)
        self._raise_shape(x, i)

    def _raise_shape(self, x, i):
        ref = self._inputs[i]
        expected = (None, *ref.shape[1:]) if ref.shape else ref.shape
        raise ValueError(
            f"Input {i} with name '{ref.name}' of layer '{self.name}' is incompatible with the layer: "
            f"expected shape={expected}, found shape={tuple(x.shape)}"
        )

    def call(self, inputs, training=None, **kwargs):
        """Runs the graph on `inputs` (structured like the model's inputs)."""
        d = self.__dict__
        values = [None] * d["_n_slots"]
        flat = self._flat_inputs(inputs)
        mask = kwargs.get("mask")
        masks = tree.flatten(mask) if mask is not None else None
        checks = d["_input_checks"]
        if "_substituted_dtype" in d:  # called with weights of another dtype: see `weight_substitution`
            checks = [(c[0], c[1], weight_substitution.input_dtype(d, c[2]) if c[2] is not None else None, *c[3:])
                      for c in checks]
        for j, check in enumerate(checks):
            x = self._check_input(flat[j], check)
            if masks is not None and masks[j] is not None:
                x._keras_mask = masks[j]
            values[check[0]] = x
        graph.run_plan(d["_steps"], values)
        if d["_aux_slots"]:
            d["_aux_called"] = True
            for kind, slot, metric in d["_aux_slots"]:
                if kind == "loss":
                    self.add_loss(values[slot])
                else:
                    metric.update_state(values[slot])
        slot = d["_output_slot"]
        if slot is not None:
            return values[slot]
        return graph.fill(d["_output_template"], values)

    def build(self, input_shape=None):
        self.built = True

    # ------------------------------------------------------ symbolic side
    def compute_output_spec(self, inputs, training=None, mask=None, **kwargs):
        flat = self._flat_inputs(inputs)
        if all(isinstance(x, KerasTensor) and x.shape == ref.shape for x, ref in zip(flat, self._inputs)):
            return self._fresh_outputs()
        from kerasish.models.torch_op_layer import op_output_spec

        values = [None] * self._n_slots
        for (slot, *_), x in zip(self._input_checks, flat):
            values[slot] = x
        for kind, fn, a, kw, out, _ in self._steps:
            if kind == graph.ONE:
                args, kws = (values[a],), {}
            elif kind == graph.LIST:
                args, kws = ([values[i] for i in a],), {}
            else:
                args, kws = graph.fill(a, values), graph.fill(kw, values)
            y = fn.compute_output_spec(*args, **kws) if isinstance(fn, Layer) else op_output_spec(fn, args, kws)
            if type(out) is int:
                values[out] = y
            else:
                for i, t in zip(out, tree.flatten(y)):
                    values[i] = t
        return graph.fill(self._output_template, values)

    def _fresh_outputs(self):
        def fresh(x):
            return KerasTensor(x.shape, dtype=x.dtype, sparse=x.sparse)

        outputs = self._outputs_struct
        if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
            outputs = outputs[0]
        return tree.map_structure(fresh, outputs)

    def compute_output_shape(self, input_shape):
        shapes = tree.to_shape_tuples(input_shape)
        if isinstance(shapes, tuple) and all(s is None or isinstance(s, int) for s in shapes):
            shapes = [shapes]
        flat_shapes = shapes if isinstance(shapes, list) else tree.flatten(shapes)
        if isinstance(shapes, dict):
            flat_shapes = [shapes[x.name] for x in self._inputs]
        kts = [KerasTensor(s, dtype=ref.dtype) for s, ref in zip(flat_shapes, self._inputs)]
        spec = self.compute_output_spec(kts if len(kts) > 1 else kts[0])
        return tree.map_structure(lambda t: t.shape, spec)

    # ------------------------------------------------------------ structure
    @property
    def layers(self) -> list:
        """The model's layers in graph order (InputLayers included, torch ops not)."""
        return [op for op in self.__dict__["_operations"] if not isinstance(op, TorchOpLambda)]

    @layers.setter
    def layers(self, _):
        raise AttributeError(
            "`Model.layers` attribute is reserved and should not be used. Please use another name."
        )

    @property
    def operations(self) -> list:
        """The graph's layers and operations in execution order (a user `keras.Operation` as itself)."""
        return [op.__dict__.get("operation", op) for op in self.__dict__["_operations"]]

    @property
    def inputs(self) -> list:
        return self.__dict__["_inputs"]

    @property
    def outputs(self) -> list:
        return self.__dict__["_outputs"]

    @property
    def input(self):
        return self.__dict__["_inputs_struct"]

    @property
    def output(self):
        return self.__dict__["_outputs_struct"]

    @property
    def input_shape(self):
        shapes = tree.map_structure(lambda x: x.shape, self._inputs_struct)
        return shapes[0] if isinstance(shapes, list) and len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = tree.map_structure(lambda x: x.shape, self._outputs_struct)
        return shapes[0] if isinstance(shapes, list) and len(shapes) == 1 else shapes

    def extra_repr(self) -> str:
        shapes = [x.shape for x in self.__dict__["_inputs"]], [x.shape for x in self.__dict__["_outputs"]]
        return f"name={self.name!r}, inputs={shapes[0]}, outputs={shapes[1]}"

    # --------------------------------------------------------------- config
    def get_config(self) -> dict:
        """Keras 3's functional config: `name`, `trainable`, `layers` (each
        with its `inbound_nodes`), `input_layers`, `output_layers`."""
        if not functional_like_constructor(type(self)):
            return Model.get_config(self)
        from kerasish.models.functional_config import functional_config

        return functional_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # `Model.from_config`'s rule, as in Keras (Functional has no override
        # there): a functional config revives a functional-like class as a graph;
        # a subclass with its own constructor (`MyModel(**kwargs)` building its
        # graph in `__init__`) is `cls(**config)`
        return Model.from_config.__func__(cls, config, custom_objects=custom_objects)


def graph_computable(inputs, tensors) -> bool:
    """Whether `tensors` can be computed from `inputs` alone."""
    ordered, _ = graph.build_map(inputs, tensors)
    ok = {id(x) for x in tree.flatten(inputs)}
    for node in ordered:
        if not node.is_input and all(id(x) in ok for x in node.input_tensors):
            ok.update(id(x) for x in node.outputs)
    return all(id(t) in ok for t in tensors)


def functional_like_constructor(cls) -> bool:
    """Whether `cls(inputs, outputs, name=..., trainable=...)` (or `*args,
    **kwargs`) is the constructor, read from the class's own `__init__` (not
    from the wrapper `Layer.__init_subclass__` puts around it, whose `*args,
    **kwargs` made every functional subclass look functional-like)."""
    init = cls.__init__
    if getattr(init, "_kerasish_init_wrapper", False):
        init = init.__wrapped__
    spec = inspect.getfullargspec(init)
    args = spec.args[1:]
    if args[:2] == ["inputs", "outputs"] and set(args[2:]) <= {"name", "trainable"}:
        return True
    return spec.varargs is not None and spec.varkw is not None


def clone_graph_nodes(inputs, outputs):
    """Makes a graph from intermediate tensors usable as model inputs: each
    intermediate input gets a fresh `Input`, and the nodes between inputs and
    outputs are re-created on copies of their tensors (the original graph is
    left untouched; layers are shared)."""
    nodes, _ = graph.build_map(inputs, outputs)
    kt_map, op_map = {}, {}

    def clone_kt(x):
        if not isinstance(x, KerasTensor):
            return x
        if id(x) not in kt_map:
            kt_map[id(x)] = KerasTensor(x.shape, dtype=x.dtype, sparse=x.sparse, name=f"{x.name}_clone")
        return kt_map[id(x)]

    new_inputs = []
    for x in tree.flatten(inputs):
        if is_input_keras_tensor(x):
            kt_map[id(x)] = x
            new_inputs.append(x)
        else:
            new = Input(batch_shape=x.shape, dtype=x.dtype, sparse=x.sparse, name=f"{x.name}CLONE")
            kt_map[id(x)] = new
            op_map[id(x._keras_history.operation)] = new._keras_history.operation
            new_inputs.append(new)
    new_outputs = []
    for x in tree.flatten(outputs):
        copy = KerasTensor(x.shape, dtype=x.dtype, sparse=x.sparse, name=f"{x.name}_clone")
        copy._keras_history = x._keras_history
        kt_map[id(x)] = copy
        new_outputs.append(copy)
    for node in nodes:
        op = op_map.get(id(node.operation), node.operation)
        if node.is_input or isinstance(op, InputLayer):
            continue
        outs = tree.map_structure(clone_kt, node.outputs_structure)
        Node(op, tree.map_structure(clone_kt, list(node.call_args)), tree.map_structure(clone_kt, node.call_kwargs), outs)
    return _pack_like(inputs, new_inputs), _pack_like(outputs, new_outputs)


def _pack_like(structure, flat):
    it = iter(flat)
    return tree.map_structure(lambda _: next(it), structure)


__all__ = ["Functional", "KerasHistory"]
