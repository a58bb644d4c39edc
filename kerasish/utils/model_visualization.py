"""`keras.utils.model_to_dot` and `keras.utils.plot_model` (Keras 3.15).

The graph is drawn from the same internals Keras 3 reads: a functional
model's `_operations`, each layer's `_inbound_nodes`, the model's `_nodes`
keys and each KerasTensor's `_keras_history`. Node ids are `str(id(layer))`,
labels are Keras's HTML tables, so `model_to_dot(model).to_string()` equals
Keras's for the same model up to those ids.

pydot (or its older forks pydot_ng / pydotplus, tried in that order as Keras
does) is an optional dependency, imported only when these functions run;
`plot_model` also needs Graphviz's `dot` program to render the file.
"""

from __future__ import annotations

import os
import sys

from kerasish.utils import io_utils
from kerasish.utils import tree

_NOT_BUILT = (
    "This model has not yet been built. Build the model first by calling `build()` or by calling "
    "the model on a batch of data."
)
_PYDOT_TO_DOT = "You must install pydot (`pip install pydot`) for model_to_dot to work."
_PYDOT_PLOT = "You must install pydot (`pip install pydot`) for `plot_model` to work."
_GRAPHVIZ_PLOT = (
    "You must install graphviz (see instructions at https://graphviz.gitlab.io/download/) for `plot_model` to work."
)
# Keras prints (instead of raising) its missing-package messages inside a
# notebook, detected by this module being loaded
_IPYTHON_MARKER = "IPython.core.magics.namespace"


def _pydot():
    """pydot, else pydot_ng, else pydotplus (Keras's order), else None."""
    for name in ("pydot", "pydot_ng", "pydotplus"):
        try:
            return __import__(name)
        except ImportError:
            continue
    return None


def _graphviz_works(pydot) -> bool:
    """Whether Graphviz can render: Keras's check, an empty graph through `dot`."""
    errors = (OSError,) + tuple(
        getattr(pydot, name) for name in ("PydotException", "InvocationException") if hasattr(pydot, name)
    )
    try:
        pydot.Dot.create(pydot.Dot())
        return True
    except errors:
        return False


def _check_kwargs(kwargs: dict) -> None:
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")


def _model_kinds():
    from kerasish.models.functional import Functional
    from kerasish.models.sequential import Sequential

    return Functional, Sequential


# ------------------------------------------------------------------ labels
def _activation_name(activation) -> str:
    if hasattr(activation, "name"):
        return activation.name
    if hasattr(activation, "__name__"):
        return activation.__name__
    return str(activation)


def _class_name(layer) -> str:
    """The class name Keras would show: a recorded `keras.ops` call (or a
    `x + y` on KerasTensors) as its Keras 3 operation class (`Add`, `Relu`),
    a user `keras.Operation` as its own class."""
    from kerasish.models.torch_op_layer import TorchOpLambda

    if not isinstance(layer, TorchOpLambda):
        return type(layer).__name__
    wrapped = layer.__dict__.get("operation")
    if wrapped is not None:
        return type(wrapped).__name__
    op = layer.__dict__.get("op")
    if op is not None:
        from kerasish.ops.keras_op_classes import KERAS_OP_CLASSES

        entry = KERAS_OP_CLASSES.get(op)
        return entry[1] if entry is not None else type(layer).__name__
    from kerasish.models.functional_config import _TORCH_TO_KERAS_OPS
    from kerasish.models.torch_op_layer import function_name

    return _TORCH_TO_KERAS_OPS.get(function_name(layer.function), type(layer).__name__)


def _format_shape(shape) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, dict):
        text = ", ".join(f"{k}: {v}" for k, v in shape.items())
    else:
        text = f"{shape}"
    return text.replace("}", "").replace("{", "")


def _first_call(layer, which: str):
    """What Keras 3's `layer.input` / `layer.output` return: a functional
    model's own inputs/outputs; for any other layer (a Sequential included)
    the tensors of its *first* call, one tensor or a flat list. Keras 2's
    (and kerasish's) `layer.input` refuses a shared layer instead."""
    Functional, _ = _model_kinds()
    if isinstance(layer, Functional):
        return getattr(layer, which)
    nodes = layer.__dict__.get("_inbound_nodes")
    if not nodes:
        raise AttributeError(f"The layer {layer.name} has never been called and thus has no defined {which}.")
    values = nodes[0].input_tensors if which == "input" else nodes[0].outputs
    return values[0] if len(values) == 1 else list(values)


def _output_dtype(layer):
    """`layer.output` mapped to dtypes, None when the layer has no symbolic
    call (a subclassed model)."""
    try:
        return tree.map_structure(lambda x: x.dtype, _first_call(layer, "output"))
    except (ValueError, AttributeError):
        return None


def _cell(text: str, bgcolor: str = "white", color: str | None = None) -> str:
    font = f'<font point-size="14" color="{color}">' if color else '<font point-size="14">'
    return f'<td bgcolor="{bgcolor}">{font}{text}</font></td>'


def _layer_label(layer, show_layer_names, show_layer_activations, show_dtype, show_shapes, show_trainable) -> str:
    """The node's HTML-like table: name (class), activation, shapes, dtype, trainability."""
    class_name = _class_name(layer)
    width = int(show_dtype) + int(show_trainable) + (2 if show_shapes else 0)
    colspan = max(1, width)
    title = f"<b>{layer.name}</b> ({class_name})" if show_layer_names else f"<b>{class_name}</b>"
    rows = [f'<tr><td colspan="{colspan}" bgcolor="black"><font point-size="16" color="white">{title}</font></td></tr>']
    activation = getattr(layer, "activation", None)
    if show_layer_activations and activation is not None:
        rows.append(
            f'<tr><td bgcolor="white" colspan="{colspan}"><font point-size="14">'
            f"Activation: <b>{_activation_name(activation)}</b></font></td></tr>"
        )
    cells = []
    if show_shapes:
        input_shape = output_shape = None
        try:  # as Keras: no output shape either when the input has none
            input_shape = tree.map_structure(lambda x: x.shape, _first_call(layer, "input"))
            output_shape = tree.map_structure(lambda x: x.shape, _first_call(layer, "output"))
        except (ValueError, AttributeError):
            pass
        if class_name != "InputLayer":
            cells.append(_cell(f"Input shape: <b>{_format_shape(input_shape)}</b>"))
        cells.append(_cell(f"Output shape: <b>{_format_shape(output_shape)}</b>"))
    if show_dtype:
        dtype = _output_dtype(layer)
        cells.append(_cell(f"Output dtype: <b>{dtype or '?'}</b>"))
    if show_trainable and hasattr(layer, "trainable") and layer.weights:
        if layer.trainable:
            cells.append(_cell("<b>Trainable</b>", "forestgreen", "white"))
        else:
            cells.append(_cell("<b>Non-trainable</b>", "firebrick", "white"))
    if cells:
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return '<<table border="0" cellborder="1" bgcolor="black" cellpadding="10">' + "".join(rows) + "</table>>"


def _add_node(pydot, dot, layer, options: dict) -> None:
    node = pydot.Node(str(id(layer)), label=_layer_label(layer, **options))
    node.set("fontname", "Helvetica")
    node.set("border", "0")
    node.set("margin", "0")
    dot.add_node(node)


def _add_edge(pydot, dot, source, destination) -> None:
    src, dst = str(id(source)), str(id(destination))
    if not dot.get_edge(src, dst):
        edge = pydot.Edge(src, dst)
        edge.set("penwidth", "2")
        dot.add_edge(edge)


# ------------------------------------------------------------------- graph
def _inner_source(source, output_index):
    """A nested model as an edge's source: the layer inside it (at any depth)
    that produces its output number `output_index`."""
    Functional, Sequential = _model_kinds()
    while isinstance(source, (Functional, Sequential)):
        history = source.outputs[output_index]._keras_history
        source, output_index = history.operation, history.tensor_index
    return source


def _inner_destination(destination, input_index):
    """A nested model as an edge's destination: its InputLayer number
    `input_index` (functional) or its first layer (Sequential), at any depth."""
    Functional, Sequential = _model_kinds()
    while isinstance(destination, (Functional, Sequential)):
        if isinstance(destination, Functional):
            destination = destination.inputs[input_index]._keras_history.operation
        else:
            destination = destination.layers[0]
    return destination


def _node_key(layer, node_index) -> str:
    from kerasish.models.graph import node_key

    return node_key(layer, node_index)


def _add_edges(pydot, dot, model, layers, expand_nested: bool) -> None:
    """Edges from each layer's inbound nodes (those of `model`'s graph) to the
    layers that produced their input tensors."""
    Functional, _ = _model_kinds()
    own_nodes = model.__dict__.get("_nodes") if isinstance(model, Functional) else None
    for layer in layers:
        for node_index, node in enumerate(layer.__dict__.get("_inbound_nodes", ())):
            if own_nodes is not None and _node_key(layer, node_index) not in own_nodes:
                continue
            for input_index, tensor in enumerate(node.input_tensors):
                history = tensor._keras_history
                if history is None or history.operation is None:
                    continue
                producer = history.operation._inbound_nodes[history.node_index].operation
                if not expand_nested:
                    _add_edge(pydot, dot, producer, layer)
                    continue
                source = _inner_source(producer, history.tensor_index)
                _add_edge(pydot, dot, source, _inner_destination(layer, input_index))


def _new_graph(pydot, model, rankdir, dpi, subgraph, splines):
    """The top-level `Dot` with Keras's graph attributes, or a dashed cluster."""
    if subgraph:
        dot = pydot.Cluster(style="dashed", graph_name=model.name)
        dot.set("label", model.name)
        dot.set("labeljust", "l")
    else:
        dot = pydot.Dot()
        dot.set("rankdir", rankdir)
        dot.set("concentrate", True)
        dot.set("dpi", dpi)
        dot.set("splines", splines)
        dot.set_node_defaults(shape="record")
    return dot


def model_to_dot(
    model,
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    subgraph: bool = False,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
    splines: str = "ortho",
    **kwargs,
):
    """Converts a model to a pydot graph (`keras.utils.model_to_dot`).

    Args:
        model: A built kerasish model (Sequential, functional, or subclassed,
            which is drawn as a single box).
        show_shapes: Whether to show each layer's input and output shapes.
            Defaults to `False`.
        show_dtype: Whether to show each layer's output dtype. Defaults to `False`.
        show_layer_names: Whether to show layer names. Defaults to `True`.
        rankdir: Graphviz `rankdir`: `"TB"` (vertical) or `"LR"` (horizontal).
            Defaults to `"TB"`.
        expand_nested: Whether to draw nested functional and Sequential models
            as dashed clusters of their layers. Defaults to `False`.
        dpi: Image resolution in dots per inch. Defaults to `200`.
        subgraph: Whether to return a `pydot.Cluster` (used for nested models)
            instead of a `pydot.Dot`. Defaults to `False`.
        show_layer_activations: Whether to show the activation of layers that
            have an `activation` attribute. Defaults to `False`.
        show_trainable: Whether to show whether each layer with weights is
            trainable. Defaults to `False`.
        splines: Graphviz `splines` (how edges are drawn). Defaults to `"ortho"`.

    Returns:
        A `pydot.Dot` (or a `pydot.Cluster` with `subgraph=True`). Its nodes are
        named `str(id(layer))`, as in Keras.

    Raises:
        ValueError: If the model is not built, for `layer_range` (no longer
            supported, as in Keras 3) and for unknown keyword arguments.
        ImportError: If pydot is not installed.

    Example:
        >>> dot = keras.utils.model_to_dot(model, show_shapes=True)
        >>> print(dot.to_string())
    """
    if not model.built:
        raise ValueError(_NOT_BUILT)
    pydot = _pydot()
    if pydot is None:
        raise ImportError(_PYDOT_TO_DOT)
    dot = _new_graph(pydot, model, rankdir, dpi, subgraph, splines)
    _check_kwargs(kwargs)
    options = {
        "show_layer_names": show_layer_names,
        "show_layer_activations": show_layer_activations,
        "show_dtype": show_dtype,
        "show_shapes": show_shapes,
        "show_trainable": show_trainable,
    }
    Functional, Sequential = _model_kinds()
    if isinstance(model, Sequential):
        layers = model.layers
    elif isinstance(model, Functional):
        layers = model.__dict__["_operations"]
    else:  # a subclassed model is one box
        _add_node(pydot, dot, model, options)
        return dot

    for layer in layers:
        if expand_nested and isinstance(layer, (Functional, Sequential)):
            # Keras passes neither dpi nor splines down (a cluster has neither)
            dot.add_subgraph(
                model_to_dot(
                    layer,
                    show_shapes=show_shapes,
                    show_dtype=show_dtype,
                    show_layer_names=show_layer_names,
                    rankdir=rankdir,
                    expand_nested=expand_nested,
                    subgraph=True,
                    show_layer_activations=show_layer_activations,
                    show_trainable=show_trainable,
                )
            )
        else:
            _add_node(pydot, dot, layer, options)

    if isinstance(model, Sequential):
        if not expand_nested:
            for first, second in zip(layers, layers[1:]):
                _add_edge(pydot, dot, first, second)
            return dot
        # the edge into the first layer comes from outside (the InputLayer is
        # not drawn for a Sequential): start at the second layer
        layers = model.layers[1:]
    _add_edges(pydot, dot, model, layers, expand_nested)
    return dot


def plot_model(
    model,
    to_file: str = "model.png",
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = False,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
    splines: str = "ortho",
    **kwargs,
):
    """Draws a model to an image file with Graphviz (`keras.utils.plot_model`).

    The file format is the extension of `to_file` (`"model.svg"` -> svg,
    `"model.pdf"` -> pdf, `"model.dot"` -> the dot source), png when it has
    none. Needs pydot and Graphviz's `dot` program. Inside IPython (a
    notebook) a missing pydot or Graphviz prints Keras's message and returns
    None instead of raising, as Keras does.

    Args:
        model: A built kerasish model.
        to_file: The image file to write. Defaults to `"model.png"`.
        show_shapes, show_dtype, rankdir, expand_nested, dpi,
        show_layer_activations, show_trainable, splines: As in `model_to_dot`.
        show_layer_names: Whether to show layer names. Defaults to `False`
            (Keras 3's default here, unlike `model_to_dot`).

    Returns:
        An `IPython.display.Image` of the file when IPython is installed and
        can show the format (png, jpeg, gif, webp), else None. (Keras 3.15
        raises IPython's `ValueError` for svg, dot, ... after writing the
        file; kerasish returns None.)

    Raises:
        ValueError: If the model is not built, for `layer_range` and for
            unknown keyword arguments.
        ImportError: If pydot or Graphviz is missing (outside IPython).

    Example:
        >>> keras.utils.plot_model(model, "model.png", show_shapes=True)
    """
    if not model.built:
        raise ValueError(_NOT_BUILT)
    pydot = _pydot()
    for missing, message in (
        (pydot is None, _PYDOT_PLOT),
        (pydot is not None and not _graphviz_works(pydot), _GRAPHVIZ_PLOT),
    ):
        if missing:
            if _IPYTHON_MARKER in sys.modules:
                io_utils.print_msg(message)
                return None
            raise ImportError(message)
    _check_kwargs(kwargs)
    dot = model_to_dot(
        model,
        show_shapes=show_shapes,
        show_dtype=show_dtype,
        show_layer_names=show_layer_names,
        rankdir=rankdir,
        expand_nested=expand_nested,
        dpi=dpi,
        show_layer_activations=show_layer_activations,
        show_trainable=show_trainable,
        splines=splines,
    )
    to_file = str(to_file)
    extension = os.path.splitext(to_file)[1][1:] or "png"
    dot.write(to_file, format=extension)
    if extension == "pdf":
        return None
    try:
        from IPython import display
    except ImportError:
        return None
    try:
        return display.Image(filename=to_file)
    except ValueError:
        # IPython shows only png/jpeg/gif/webp; Keras 3.15 raises its "Cannot
        # embed the 'svg' image format" here, after writing the file
        return None


__all__ = ["model_to_dot", "plot_model"]
