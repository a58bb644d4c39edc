"""`keras.utils.get_source_inputs`: the Input tensors a symbolic tensor depends on."""

from __future__ import annotations


def get_source_inputs(tensor) -> list:
    """Returns the list of input KerasTensors needed to compute `tensor`.

    Follows the graph recorded by functional calls (`_keras_history`) back to
    the input nodes, in order of first appearance, without duplicates. A
    tensor with no history is returned as is (Keras's behaviour).

    Args:
        tensor: A KerasTensor (or any object; see above).
    """
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return tensor
    operation, node_index = history.operation, history.node_index
    nodes = operation.__dict__.get("_inbound_nodes") if operation is not None else None
    if not nodes:
        return [tensor]
    node = nodes[node_index]
    if node.is_input:
        return list(node.output_tensors)
    found = []
    for x in node.input_tensors:
        for source in get_source_inputs(x):
            if all(source is not f for f in found):
                found.append(source)
    return found
