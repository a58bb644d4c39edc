"""`keras.Operation` (the base class of user-defined ops) and
`keras.Function` (a callable symbolic graph)."""

from __future__ import annotations

import inspect

from kerasish.backend import remat as remat_lib
from kerasish.backend.keras_tensor import KerasTensor
from kerasish.models.torch_op_layer import TorchOpLambda
from kerasish.models.torch_op_layer import op_output_spec
from kerasish.utils import naming
from kerasish.utils import tree


def _symbolic(args, kwargs) -> bool:
    return tree.any_symbolic(list(args)) or tree.any_symbolic(dict(kwargs))


class _OperationNode(TorchOpLambda):
    """The graph node of an `Operation` called on KerasTensors: a functional
    model runs `op.call` at that place. One per Operation (its calls are this
    node's inbound nodes); it saves as the Operation itself, as Keras does."""

    def __init__(self, op):
        super().__init__(op.call, name=op.name)
        self.__dict__["operation"] = op

    def compute_output_spec(self, *args, **kwargs):
        return self.operation.compute_output_spec(*args, **kwargs)

    def get_config(self) -> dict:
        return self.operation.get_config()

    def keras_serialize(self) -> dict:
        """Keras 3's entry: the Operation's class, config and registered name (no build config)."""
        from kerasish.saving.serialization_lib import serialize_keras_object

        return serialize_keras_object(self.operation)

    def get_build_config(self):
        return None


# what Keras's auto-config keeps (constructor values it can write as JSON)
_AUTO_CONFIG_TYPES = (str, int, float, bool, type(None))


class Operation:
    """Base class of an operation (`keras.Operation`).

    A subclass implements `call(*args, **kwargs)` on torch tensors and,
    optionally, `compute_output_spec(*args, **kwargs)` returning
    `keras.KerasTensor`s. Called on tensors, the operation runs `call`;
    called on KerasTensors, it returns `compute_output_spec`'s outputs and
    records a node, so a functional model built on them runs `call` there.
    Without `compute_output_spec`, the output spec is found by running
    `call` on meta tensors.

    >>> class Scale(keras.Operation):
    ...     def __init__(self, factor, name=None):
    ...         super().__init__(name=name)
    ...         self.factor = factor
    ...     def call(self, x):
    ...         return x * self.factor
    ...     def compute_output_spec(self, x):
    ...         return keras.KerasTensor(x.shape, x.dtype)

    Args:
        name: A string without "/". Defaults to the snake-case class name,
            made unique.
    """

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        # kept for the automatic `get_config` (Keras 3's auto-config)
        obj.__dict__["_init_call_args"] = (args, kwargs)
        return obj

    def __init__(self, name=None):
        if name is None:
            name = naming.auto_name(type(self).__name__)
        if not isinstance(name, str) or "/" in name:
            raise ValueError(
                "Argument `name` must be a string and cannot contain character `/`. "
                f"Received: name={name} (of type {type(name)})"
            )
        self.name = name
        self._inbound_nodes = []
        self._outbound_nodes = []
        self._remat_mode = remat_lib.get_current_remat_mode()

    def __call__(self, *args, **kwargs):
        if _symbolic(args, kwargs):
            return self.symbolic_call(*args, **kwargs)
        if self._remat_mode is not None and self._remat_mode.mode in ("full", "larger_than"):
            if self._remat_mode.mode == "full" or self._output_size(args, kwargs) > \
                    self._remat_mode.output_size_threshold:
                return remat_lib.remat(self.call)(*args, **kwargs)
        return self.call(*args, **kwargs)

    def _output_size(self, args, kwargs):
        import math

        import torch

        def spec_of(x):
            return KerasTensor(tuple(x.shape), dtype=x.dtype) if isinstance(x, torch.Tensor) else x

        spec = self.compute_output_spec(*tree.map_structure(spec_of, list(args)),
                                        **{k: spec_of(v) for k, v in kwargs.items()})
        return sum(math.prod(d or 1 for d in t.shape) for t in tree.flatten(spec) if isinstance(t, KerasTensor))

    def symbolic_call(self, *args, **kwargs):
        """The outputs on KerasTensors, recorded as a graph node."""
        from kerasish.models.node import Node
        from kerasish.models.symbolic_ops import _fresh_outputs

        outputs = self.compute_output_spec(*args, **kwargs)
        flat = tree.flatten(outputs)
        if not flat or not all(isinstance(t, KerasTensor) for t in flat):
            return outputs
        outputs = _fresh_outputs(outputs, [list(args), kwargs])
        Node(self._graph_node(), list(args), kwargs, outputs)
        return outputs

    def _graph_node(self) -> _OperationNode:
        node_layer = self.__dict__.get("_node_layer")
        if node_layer is None:
            node_layer = self.__dict__["_node_layer"] = _OperationNode(self)
        return node_layer

    @property
    def _inbound_nodes(self) -> list:
        """The graph nodes of this operation's symbolic calls (Keras's `_inbound_nodes`)."""
        node_layer = self.__dict__.get("_node_layer")
        return [] if node_layer is None else node_layer._inbound_nodes

    @_inbound_nodes.setter
    def _inbound_nodes(self, value) -> None:
        pass  # (set by the constructor; the graph node keeps the nodes)

    def call(self, *args, **kwargs):
        raise NotImplementedError(f"Operation {type(self).__name__} must implement `call()`.")

    def compute_output_spec(self, *args, **kwargs):
        try:
            return op_output_spec(self.call, args, kwargs)
        except Exception as e:
            raise type(e)(
                f"Could not automatically infer the output shape / dtype of '{self.name}' (of type "
                f"{type(self).__name__}). Either the `{type(self).__name__}.call()` method is incorrect, or you "
                f"need to implement the `{type(self).__name__}.compute_output_spec() / compute_output_shape()` "
                f"method. Error encountered:\n\n{e}"
            ) from e

    def get_config(self):
        """`{"name": ...}`; a subclass that does not override `get_config` gets
        its constructor arguments too when they are plain JSON values
        (strings, numbers, booleans, None, lists and dicts of them), as in
        Keras 3; otherwise it must implement `get_config` to be saved.

        Raises:
            NotImplementedError: the subclass relies on the automatic config
                but was built with other values (Keras's error).
        """
        config = {"name": self.name}
        if type(self).get_config is not Operation.get_config:
            return config  # a subclass's own get_config calls this for the name
        if type(self) is Operation:
            return config
        extra = _auto_config(self)
        if extra is None:
            raise NotImplementedError(
                f"Object {type(self).__name__} was created by passing non-serializable argument values in "
                "`__init__()`, and therefore the object must override `get_config()` in order to be "
                "serializable. Please implement `get_config()`."
            )
        config.update(extra)
        params = inspect.signature(type(self).__init__).parameters
        if "name" not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            config.pop("name")  # `name` cannot go back into this __init__
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<Operation name={self.name}>"


def _auto_config(op) -> dict | None:
    """The constructor arguments (defaults included, `name` left out) when every value is a plain JSON
    value, else None (Keras's rule)."""
    args, kwargs = op.__dict__.get("_init_call_args", ((), {}))
    sig = inspect.signature(type(op).__init__)
    try:
        bound = sig.bind(None, *args, **kwargs)
    except TypeError:
        return None
    params = list(sig.parameters.values())[1:]
    if any(p.kind == p.POSITIONAL_ONLY for p in params):
        return None
    bound.apply_defaults()
    out = {}
    for key, value in list(bound.arguments.items())[1:]:
        kind = sig.parameters[key].kind
        if kind == inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind == inspect.Parameter.VAR_POSITIONAL:
            if value:
                return None
        else:
            out[key] = value
    out.pop("name", None)
    try:
        leaves = tree.flatten(out)
    except TypeError:
        return None
    if not all(isinstance(v, _AUTO_CONFIG_TYPES) for v in leaves):
        return None
    return out


class Function(Operation):
    """A callable graph from `inputs` to `outputs` KerasTensors
    (`keras.Function`).

    >>> x = keras.Input((3,))
    >>> y = keras.ops.sum(keras.ops.square(x), axis=-1)
    >>> f = keras.Function(inputs=x, outputs=y)
    >>> f(np.ones((2, 3)))   # tensor([3., 3.])

    It runs the ops and layers recorded between them (the layers keep their
    weights: a `Function` over layers computes with their current values).
    Called with KerasTensors it returns new KerasTensors of the output
    structure. Unlike a `Model` it is not a layer: no weights tracking, no
    training.

    Args:
        inputs: A KerasTensor, or a list / dict of them.
        outputs: A KerasTensor, or a nested structure of them.
        name: Optional name.
    """

    def __init__(self, inputs, outputs, name=None):
        super().__init__(name=name)
        from kerasish.models.functional import Functional

        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self._graph = Functional(inputs, outputs, name=self.name + "_graph")

    @property
    def inputs(self):
        return tree.flatten(self._inputs_struct)

    @property
    def outputs(self):
        return tree.flatten(self._outputs_struct)

    @property
    def operations(self):
        """The layers and ops of the graph, in execution order."""
        return list(self._graph.layers)

    def call(self, inputs):
        return self._graph(inputs)

    def compute_output_spec(self, inputs):
        return self._graph.compute_output_spec(inputs)

    def compute_output_shape(self, input_shape):
        from kerasish import tree as public_tree

        spec = self.compute_output_spec(public_tree.map_shape_structure(lambda s: KerasTensor(s), input_shape))
        return tree.map_structure(lambda t: t.shape, spec)

    def get_config(self):
        return None
