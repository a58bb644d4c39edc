"""The functional graph: walking KerasTensor histories into ordered nodes and
operations (Keras 3's ordering, so weights and configs line up with Keras),
and compiling them once into a flat execution plan.

The plan is a list of steps `(kind, fn, args, kwargs, out, free)` over a
list of value slots: running a functional model is one Python loop over it,
with no graph walking, dict building or signature inspection per call.
"""

from __future__ import annotations

import collections

from kerasish.backend.keras_tensor import KerasTensor
from kerasish.utils import tree


def node_key(operation, node_index) -> str:
    return f"{id(operation)}_ib-{node_index}"


def _node_of(tensor):
    history = tensor._keras_history
    if history is None:
        return None
    return history.operation.__dict__["_inbound_nodes"][history.node_index]


def build_map(inputs, outputs):
    """Nodes reachable backwards from `outputs` (stopping at `inputs`),
    topologically sorted from inputs to outputs (depth-first), and each
    operation's first traversal index."""
    input_ids = {id(x) for x in tree.flatten(inputs)}
    finished, in_progress = set(), set()
    ordered, op_indices = [], {}

    def visit(tensor):
        node = _node_of(tensor)
        if node is None or id(node) in finished:
            return
        if not node.is_input and id(tensor) in input_ids:
            finished.add(id(node))
            return
        if id(node) in in_progress:
            raise ValueError(f"Tensor {tensor} from operation '{node.operation.name}' is part of a cycle.")
        op_indices.setdefault(node.operation, len(op_indices))
        in_progress.add(id(node))
        if not node.is_input:
            for x in node.input_tensors:
                visit(x)
        finished.add(id(node))
        in_progress.discard(id(node))
        ordered.append(node)

    for output in tree.flatten(outputs):
        visit(output)
    return ordered, op_indices


def map_graph(inputs, outputs):
    """Validates the graph from `inputs` to `outputs`.

    Returns `(node_keys, nodes_by_depth, operations)`: the keys of the nodes
    that belong to the graph, nodes grouped by depth (0 = outputs), and the
    operations ordered from inputs to outputs as Keras orders them.
    """
    flat_inputs = tree.flatten(inputs)
    ordered, op_indices = build_map(flat_inputs, outputs)
    in_graph = {id(n) for n in ordered}
    keys = {node_key(n.operation, n.operation._inbound_nodes.index(n)) for n in ordered}
    node_depth, op_depth = {}, {}
    nodes_by_id = {}
    for node in reversed(ordered):
        nodes_by_id[id(node)] = node
        depth = max(node_depth.setdefault(id(node), 0), op_depth.get(node.operation, 0))
        op_depth[node.operation] = depth
        node_depth[id(node)] = depth
        for parent in node.parent_nodes:
            if id(parent) in in_graph:
                node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for x in flat_inputs:  # inputs not connected to the outputs
        node = _node_of(x)
        if node is not None and node.operation not in op_depth and node.is_input:
            op_depth[node.operation] = 0
            op_indices[node.operation] = -1
            node_depth[id(node)] = 0
            nodes_by_id[id(node)] = node
            keys.add(node_key(node.operation, x._keras_history.node_index))
    nodes_by_depth = collections.defaultdict(list)
    for nid, depth in node_depth.items():
        nodes_by_depth[depth].append(nodes_by_id[nid])
    ops_by_depth = collections.defaultdict(list)
    for op, depth in op_depth.items():
        ops_by_depth[depth].append(op)
    operations = []
    for depth in sorted(ops_by_depth, reverse=True):
        operations.extend(sorted(ops_by_depth[depth], key=lambda op: op_indices[op]))
    # every tensor a node consumes must be computable from the inputs
    computable = {id(x) for x in flat_inputs}
    done = []
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            for x in node.input_tensors:
                if id(x) not in computable:
                    raise ValueError(
                        f"Graph disconnected: cannot find parent for tensor {x} at operation "
                        f"'{node.operation.name}'. The following previous operations were accessed "
                        f"without issue: {done}"
                    )
                done.append(node.operation.name)
            computable.update(id(x) for x in node.outputs)
    names = [op.name for op in operations]
    for name in names:
        if names.count(name) != 1:
            raise ValueError(
                f'The name "{name}" is used {names.count(name)} times in the model. All operation names '
                "should be unique."
            )
    return keys, dict(nodes_by_depth), operations


def execution_order(nodes_by_depth) -> list:
    """Nodes in the order Keras runs them: deepest (closest to inputs) first."""
    out = []
    for depth in sorted(nodes_by_depth, reverse=True):
        out.extend(n for n in nodes_by_depth[depth] if not n.is_input)
    return out


# ------------------------------------------------------------------ the plan
class Slot:
    """Placeholder for a computed value inside an argument template."""

    __slots__ = ("i",)

    def __init__(self, i: int):
        self.i = i

    def __repr__(self):
        return f"Slot({self.i})"


def fill(template, values):
    """Replaces the `Slot`s of an argument template by their values."""
    t = type(template)
    if t is Slot:
        return values[template.i]
    if t is list:
        return [fill(v, values) for v in template]
    if t is tuple:
        return tuple(fill(v, values) for v in template)
    if t is dict:
        return {k: fill(v, values) for k, v in template.items()}
    return template


def _has_slot(template) -> bool:
    return any(type(v) is Slot for v in tree.flatten(template))


# step kinds
ONE = 0  # fn(values[a])
LIST = 1  # fn([values[i] for i in a])
GENERAL = 2  # fn(*fill(a), **fill(kw))


def compile_plan(input_tensors, nodes, extra_tensors=()):
    """Compiles `nodes` (already in execution order) into steps.

    Returns `(n_slots, input_slots, steps, slot_of)` where `slot_of` maps
    `id(KerasTensor)` to its slot; `extra_tensors` are kept alive to the end
    (outputs, losses, metrics)."""
    from kerasish.models.torch_op_layer import TorchOpLambda
    from kerasish.models.torch_op_layer import _fix_index

    slot_of = {}

    def new_slot(kt):
        slot_of[id(kt)] = len(slot_of)
        return slot_of[id(kt)]

    input_slots = [slot_of[id(x)] if id(x) in slot_of else new_slot(x) for x in input_tensors]

    def to_template(x):
        if isinstance(x, KerasTensor):
            if id(x) not in slot_of:
                raise ValueError(f"Graph disconnected: the tensor {x} is not computable from the model inputs.")
            return Slot(slot_of[id(x)])
        return x

    raw_steps, uses = [], collections.defaultdict(int)
    for index, node in enumerate(nodes):
        op = node.operation
        args, kwargs = node.call_args, node.call_kwargs
        if isinstance(op, TorchOpLambda):
            fn = op.function
            if op._is_getitem:
                args = _fix_index(args)
        else:
            fn = op
        for x in node.input_tensors:
            if id(x) in slot_of:
                uses[slot_of[id(x)]] = index
        if len(args) == 1 and not kwargs and isinstance(args[0], KerasTensor):
            kind, a, kw = ONE, to_template(args[0]).i, None
        elif (
            len(args) == 1 and not kwargs and type(args[0]) is list and args[0]
            and all(isinstance(x, KerasTensor) for x in args[0])
        ):
            kind, a, kw = LIST, tuple(to_template(x).i for x in args[0]), None
        else:
            kind = GENERAL
            a = tree.map_structure(to_template, list(args))
            kw = tree.map_structure(to_template, dict(kwargs))
        outs = node.outputs
        if len(outs) == 1 and node.outputs_structure is outs[0]:
            out = new_slot(outs[0])
        else:
            out = tuple(new_slot(x) for x in outs)
        raw_steps.append((kind, fn, a, kw, out))
    keep = {slot_of[id(x)] for x in extra_tensors if id(x) in slot_of}
    free_at = collections.defaultdict(list)
    for slot, last in uses.items():
        if slot not in keep:
            free_at[last].append(slot)
    steps = [(*step, tuple(free_at.get(i, ()))) for i, step in enumerate(raw_steps)]
    return len(slot_of), input_slots, steps, slot_of


def run_plan(steps, values):
    """Runs compiled steps over `values` (a list with the inputs filled in)."""
    for kind, fn, a, kw, out, free in steps:
        if kind == ONE:
            y = fn(values[a])
        elif kind == LIST:
            y = fn([values[i] for i in a])
        else:
            y = fn(*fill(a, values), **fill(kw, values))
        if type(out) is int:
            values[out] = y
        else:
            for i, t in zip(out, tree.flatten(y)):
                values[i] = t
        for i in free:
            values[i] = None
    return values
