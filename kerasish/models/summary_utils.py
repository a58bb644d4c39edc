"""`model.summary()`: Keras 3's summary table, drawn in plain text.

Keras renders the table with `rich`; kerasish draws the same box-drawing
table itself (no extra dependency): the same columns, widths, word wrapping
("…" for words wider than their column) and parameter totals with their size
in bytes.
"""

from __future__ import annotations

import math
import re
import shutil

from kerasish.backend import dtypes

_UNITS = ["B", "KB", "MB", "GB", "TB", "PB"]


def count_params(weights) -> int:
    unique = {id(w): w for w in weights}.values()
    return int(sum(math.prod(w.shape) for w in unique))


def weight_memory_size(weights) -> float:
    """Bytes taken by `weights` (each counted once)."""
    unique = {id(w): w for w in weights}.values()
    bits = 0
    for w in unique:
        bits += math.prod(w.shape) * dtypes.to_torch_dtype(dtypes.standardize_dtype(w.dtype)).itemsize * 8
    return bits / 8


def readable_memory_size(size: float) -> str:
    for unit in _UNITS:
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} {_UNITS[-1]}"


# ------------------------------------------------------------ table drawing
def _ratio_reduce(total, ratios, maximums, values):
    # shrinks `values` by `total` in proportion to `ratios` (rich's column collapse)
    ratios = [r if m else 0 for r, m in zip(ratios, maximums)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return list(values)
    remaining, out = total, []
    for ratio, maximum, value in zip(ratios, maximums, values):
        if ratio and total_ratio > 0:
            cut = min(maximum, round(ratio * remaining / total_ratio))
            out.append(value - cut)
            remaining -= cut
            total_ratio -= ratio
        else:
            out.append(value)
    return out


def _ratio_distribute(total, ratios):
    total_ratio, remaining, out = sum(ratios), total, []
    for ratio in ratios:
        share = math.ceil(ratio * remaining / total_ratio) if total_ratio > 0 else remaining
        out.append(share)
        total_ratio -= ratio
        remaining -= share
    return out


def _wrap(text: str, width: int) -> list:
    """Greedy word wrap; a word wider than the column ends with "…"."""
    lines, line = [], ""
    for word in re.findall(r"\s*\S+\s*", text):
        if line and len(line + word.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += word
    lines.append(line.rstrip())
    return [ln if len(ln) <= width else ln[: max(width - 1, 0)] + "…" for ln in lines]


def _justify(text: str, width: int, how: str) -> str:
    pad = width - len(text)
    if how == "right":
        return " " * pad + text
    if how == "center":
        return " " * (pad // 2) + text + " " * (pad - pad // 2)
    return text + " " * pad


def _render_table(header, rows, widths, alignment) -> list:
    def border(left, fill, mid, right):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def row_lines(cells, sep, bottom=False):
        wrapped = [_wrap(str(c), w) for c, w in zip(cells, widths)]
        height = max(len(c) for c in wrapped)
        if bottom:  # header cells sit on the last line, as rich draws them
            wrapped = [[""] * (height - len(c)) + c for c in wrapped]
        out = []
        for i in range(height):
            parts = [
                " " + _justify(c[i] if i < len(c) else "", w, a) + " " for c, w, a in zip(wrapped, widths, alignment)
            ]
            out.append(sep + sep.join(parts) + sep)
        return out

    lines = [border("┏", "━", "┳", "┓")]
    lines += row_lines(header, "┃", bottom=True)
    lines.append(border("┡", "━", "╇", "┩"))
    for i, row in enumerate(rows):
        if i:
            lines.append(border("├", "─", "┼", "┤"))
        lines += row_lines(row, "│")
    lines.append(border("└", "─", "┴", "┘"))
    return lines


# ---------------------------------------------------------------- fields
def _format_shape(shape) -> str:
    return f"({', '.join(str(d) for d in shape)})"


def format_layer_shape(layer) -> str:
    nodes = layer.__dict__.get("_inbound_nodes") or []
    if nodes:
        shapes = [_format_shape(t.shape) for t in nodes[-1].outputs]
        return shapes[0] if len(shapes) == 1 else str(shapes).replace("'", "")
    build_shape = layer.__dict__.get("_build_input_shape")
    if not layer.built or build_shape is None or not _declares_output_shape(layer):
        return "?"
    try:
        out = layer.compute_output_shape(build_shape)
    except Exception:
        return "?"
    is_shape = isinstance(out, tuple) and all(d is None or isinstance(d, int) for d in out)
    if is_shape:
        return _format_shape(out)
    flat = [_format_shape(s) for s in _flat_shapes(out)]
    return flat[0] if len(flat) == 1 else str(flat).replace("'", "")


def _declares_output_shape(layer) -> bool:
    """Whether Keras would know this layer's output shape outside a graph:
    its class (or a built-in layer it extends) has `compute_output_shape`.
    A custom layer or subclassed model that does not define it shows "?" in
    Keras's summary (Keras's base `compute_output_shape` raises), though
    kerasish could infer it on the meta device."""
    from kerasish.layers.layer import Layer
    from kerasish.layers.layer_graph import LayerGraphMixin
    from kerasish.models.model import Model

    for klass in type(layer).__mro__:
        if klass in (Layer, Model, LayerGraphMixin):
            return False
        if "compute_output_shape" in vars(klass) or klass.__module__.startswith("kerasish."):
            return True
    return False


def _flat_shapes(x) -> list:
    if isinstance(x, tuple) and all(d is None or isinstance(d, int) for d in x):
        return [x]
    if isinstance(x, dict):
        x = list(x.values())
    return [s for v in x for s in _flat_shapes(v)]


def _layer_index_range(layers, layer_range):
    if layer_range is None:
        return 0, len(layers)
    if len(layer_range) != 2:
        raise ValueError(
            "layer_range must be a list or tuple of length 2. Received: "
            f"layer_range = {layer_range} of length {len(layer_range)}"
        )
    if not isinstance(layer_range[0], str) or not isinstance(layer_range[1], str):
        raise ValueError(f"layer_range should contain string type only. Received: {layer_range}")
    lower = [i for i, layer in enumerate(layers) if re.match(layer_range[0], layer.name)]
    upper = [i for i, layer in enumerate(layers) if re.match(layer_range[1], layer.name)]
    if not lower or not upper:
        raise ValueError(f"Passed layer_names do not match the layer names in the model. Received: {layer_range}")
    if min(lower) > max(upper):
        return min(upper), max(lower) + 1
    return min(lower), max(upper) + 1


def _is_sequential_like(model) -> bool:
    nodes = []
    for depth_nodes in model._nodes_by_depth.values():
        if len(depth_nodes) > 1 or (len(depth_nodes) == 1 and len(depth_nodes[0].input_tensors) > 1):
            return False
        nodes += depth_nodes
    node_ids = {id(n) for n in nodes}
    for layer in model.layers:
        if sum(1 for n in layer._inbound_nodes if id(n) in node_ids) > 1:
            return False
    return True


def summary_text(model, line_length=None, positions=None, expand_nested=False, show_trainable=False, layer_range=None):
    """The summary of `model` as a string (what `print_summary` prints)."""
    from kerasish.models.functional import Functional
    from kerasish.models.sequential import Sequential

    relevant = None
    if isinstance(model, Functional) and not isinstance(model, Sequential):
        layers = model._operations
        sequential_like = _is_sequential_like(model)
        relevant = {id(n) for nodes in model._nodes_by_depth.values() for n in nodes}
    else:
        layers = model.layers
        sequential_like = True
    if sequential_like:
        default_length, positions = 88, positions or [0.45, 0.80, 1.0]
        header, alignment = ["Layer (type)", "Output Shape", "Param #"], ["left", "left", "right"]
    else:
        default_length, positions = 108, positions or [0.3, 0.56, 0.74, 1.0]
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        alignment = ["left", "left", "right", "left"]
    if len(positions) < len(header):
        # Keras 3.15 fails here with an IndexError; name the argument instead
        # (extra entries are accepted, as Keras does).
        raise ValueError(
            f"`positions` must give the end of each of the {len(header)} columns of this summary "
            f"({', '.join(header)}), before the `show_trainable` column. "
            f"Received: positions={list(positions)}"
        )
    if show_trainable:
        default_length += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        alignment.append("center")
    if line_length is None:
        line_length = min(default_length, shutil.get_terminal_size().columns - 4)
    relative = positions[-1] <= 1
    widths, current = [], 0
    for pos in positions:
        end = int(pos * line_length) if relative else int(pos)
        if end - current < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(end - current)
        current = end
    widths = widths[: len(header)]  # Keras sizes every entry but draws one column per header
    cells = [w + 2 for w in widths]  # with the one-space padding each side
    available = line_length - (len(widths) + 1)
    if sum(cells) > available:
        cells = _ratio_reduce(sum(cells) - available, [1] * len(cells), cells, cells)
    elif sum(cells) < available:
        cells = [c + extra for c, extra in zip(cells, _ratio_distribute(available - sum(cells), cells))]
    widths = [max(c - 2, 1) for c in cells]

    def connections(layer):
        parts = []
        for node in layer._inbound_nodes:
            if relevant is not None and id(node) not in relevant:
                continue
            for kt in node.input_tensors:
                history = kt._keras_history
                parts.append(f"{history.operation.name}[{history.node_index}][{history.tensor_index}]")
        return ", ".join(parts) or "-"

    def fields(layer, prefix):
        if not layer.built:
            params = "0 (unbuilt)"
        else:
            params = f"{layer.count_params():,}"
        row = [f"{prefix}{layer.name} ({_class_name(layer)})", format_layer_shape(layer), params]
        if not sequential_like:
            row.append(connections(layer))
        if show_trainable:
            row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        return row

    def rows_for(layer, level=0):
        prefix = "   " * level + "└ " if level else ""
        out = [fields(layer, prefix)]
        nested = getattr(layer, "layers", None) if expand_nested else None
        if nested:
            for sub in nested:
                out += rows_for(sub, level + 1)
        return out

    start, stop = _layer_index_range(layers, layer_range)
    rows = [row for layer in layers[start:stop] for row in rows_for(layer)]
    lines = [f'Model: "{model.name}"']
    lines += _render_table(header, rows, widths, alignment)
    trainable = model.trainable_weights
    non_trainable = model.non_trainable_weights
    t_count, n_count = count_params(trainable), count_params(non_trainable)
    t_size, n_size = weight_memory_size(trainable), weight_memory_size(non_trainable)
    optimizer = getattr(model, "optimizer", None) if getattr(model, "compiled", False) else None
    o_vars = list(getattr(optimizer, "variables", [])) if optimizer is not None and getattr(optimizer, "built", False) else None
    o_count = count_params(o_vars) if o_vars is not None else 0
    o_size = weight_memory_size(o_vars) if o_vars is not None else 0
    lines.append(f" Total params: {t_count + n_count + o_count:,} ({readable_memory_size(t_size + n_size + o_size)})")
    lines.append(f" Trainable params: {t_count:,} ({readable_memory_size(t_size)})")
    lines.append(f" Non-trainable params: {n_count:,} ({readable_memory_size(n_size)})")
    if o_vars is not None:
        lines.append(f" Optimizer params: {o_count:,} ({readable_memory_size(o_size)})")
    # Keras's console crops what does not fit the terminal
    columns = shutil.get_terminal_size().columns
    return "\n".join(line[:columns] for line in lines) + "\n"


def print_summary(
    model, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False, layer_range=None
):
    """Prints `model`'s summary; `print_fn` (if given) receives the whole
    text at once, as in Keras 3."""
    text = summary_text(
        model,
        line_length=line_length,
        positions=positions,
        expand_nested=expand_nested,
        show_trainable=show_trainable,
        layer_range=layer_range,
    )
    if print_fn is None:
        print(text, end="")
    else:
        print_fn(text)


__all__ = ["count_params", "print_summary", "readable_memory_size", "summary_text"]


def _class_name(layer) -> str:
    """The class name Keras prints: a `kerasish.ops` node shows its Keras 3
    operation class (`NotEqual`, `Any`), as Keras's own op nodes do."""
    op = layer.__dict__.get("op") if type(layer).__name__ == "KerasOpLayer" else None
    if op is not None:
        from kerasish.ops.keras_op_classes import KERAS_OP_CLASSES

        entry = KERAS_OP_CLASSES.get(op)
        if entry is not None:
            return entry[1]
    return type(layer).__name__
