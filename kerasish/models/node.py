"""`Node`: one call of a layer on KerasTensors, an edge set of the functional
graph (Keras 3's `keras.src.ops.node`).

A layer called twice on symbolic tensors gets two nodes (`layer._inbound_nodes`);
each output KerasTensor carries a `KerasHistory(operation, node_index,
tensor_index)` pointing back at the node that produced it.
"""

from __future__ import annotations

import collections

from kerasish.backend.keras_tensor import KerasTensor
from kerasish.utils import tree


class KerasHistory(collections.namedtuple("KerasHistory", ["operation", "node_index", "tensor_index"])):
    """Where a KerasTensor comes from: `operation._inbound_nodes[node_index]`
    produced it as its output number `tensor_index`."""

    __slots__ = ()

    @property
    def layer(self):
        """Keras 2 name of `operation`."""
        return self.operation


def _flatten_as_keras(x) -> list:
    """Keras 3's `tree.flatten` order: a plain dict's values (the call's
    keyword arguments too) in sorted key order. The order of a node's input
    tensors decides the graph walk, hence `model.layers`, `model.weights` and
    `get_weights()` of a model whose layers take tensors by keyword (Deep
    Learning with Python's `TransformerDecoder(target=, source=,
    source_mask=)`), and what `layer.input` lists."""
    if type(x) is dict:
        try:
            keys = sorted(x)
        except TypeError:  # keys that do not sort: Keras's tree refuses them, keep their order
            keys = list(x)
        return [t for k in keys for t in _flatten_as_keras(x[k])]
    if isinstance(x, (list, tuple, dict)):
        return tree.flatten(type(x)(_flatten_as_keras(v) for v in (x.values() if isinstance(x, dict) else x)))
    return [x]


def _keras_tensors(structure) -> list:
    return [x for x in _flatten_as_keras(structure) if isinstance(x, KerasTensor)]


class Node:
    """Records `operation(*call_args, **call_kwargs) -> outputs` on KerasTensors.

    Args:
        operation: The layer that was called.
        call_args: Positional arguments of the call (KerasTensors and constants).
        call_kwargs: Keyword arguments of the call.
        outputs: The output KerasTensor(s).
    """

    def __init__(self, operation, call_args=(), call_kwargs=None, outputs=None):
        self.operation = operation
        self.call_args = tuple(call_args)
        self.call_kwargs = dict(call_kwargs or {})
        self.input_tensors = _keras_tensors([list(self.call_args), self.call_kwargs])
        self.outputs = [] if outputs is None else tree.flatten(outputs)
        self.outputs_structure = outputs
        for x in self.outputs:
            if not isinstance(x, KerasTensor):
                raise ValueError(
                    f"All operation outputs must be tensors. Operation {operation.name} returned a "
                    f"non-tensor. Non-tensor received: {x}"
                )
        record = all(x.record_history for x in self.input_tensors)
        nodes = operation.__dict__["_inbound_nodes"]
        nodes.append(self)
        if record:
            node_index = len(nodes) - 1
            for i, tensor in enumerate(self.outputs):
                tensor._keras_history = KerasHistory(operation, node_index, i)
        self.is_input = not self.input_tensors

    def __repr__(self):
        return f"<Node operation={self.operation.name}, id={id(self)}>"

    @property
    def layer(self):
        return self.operation

    @property
    def output_tensors(self) -> list:
        return self.outputs

    @property
    def input_tensors_structure(self):
        """What `layer.input` returns: the input KerasTensor, or the list of them."""
        return self.input_tensors[0] if len(self.input_tensors) == 1 else list(self.input_tensors)

    @property
    def output_tensors_structure(self):
        """What `layer.output` returns: the output KerasTensor, or the list of them."""
        return self.outputs[0] if len(self.outputs) == 1 else list(self.outputs)

    @property
    def parent_nodes(self) -> list:
        """The nodes whose outputs this node consumes directly."""
        out = []
        for kt in self.input_tensors:
            history = kt._keras_history
            if history is not None:
                out.append(history.operation.__dict__["_inbound_nodes"][history.node_index])
        return out


def is_keras_tensor(x) -> bool:
    return isinstance(x, KerasTensor)
