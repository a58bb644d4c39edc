"""`Model.export(filepath, format=...)`: Keras 3's export on torch's own
exporters.

- `format="torch"`: a `torch.export.ExportedProgram` saved with
  `torch.export.save` (a `.pt2` file; `torch.export.load(path).module()`
  runs it). Extra keyword arguments go to `torch.export.export` (`strict`,
  `dynamic_shapes`, ...); non-strict by default, as Keras.
- `format="onnx"`: `torch.onnx.export(..., dynamo=True)` (needs the `onnx`
  and `onnxscript` packages, imported only here); `opset_version` as in
  Keras. Input names are the model's input names.

Unlike Keras on torch, dims that are `None` in the input signature (the
batch, variable sequence lengths) are exported as dynamic
(`torch.export.Dim.AUTO`: a dim the model needs fixed stays fixed, with a
warning) in both formats; the sample inputs use 2 for them, since torch
specializes dims of size 1. Recurrent layers export their time loop as one
`scan` (see `kerasish/layers/rnn/rnn_scan.py`), so their time axis stays
dynamic too. Formats that need TensorFlow ("tf_saved_model", and "litert" /
"openvino", which need their own toolchains) raise a ValueError: kerasish
never depends on TensorFlow.
"""

from __future__ import annotations

import inspect
import os
import warnings

import torch

FORMATS = ("tf_saved_model", "onnx", "openvino", "litert", "torch")
_SAMPLE_SIZE_FOR_NONE = 2


def _specs(model, input_signature) -> list:
    """Flat list of `(shape, dtype, name)` for the model's inputs."""
    from kerasish.layers.input_spec import InputSpec

    if input_signature is None:
        try:
            inputs = model.inputs
        except (AttributeError, ValueError):
            inputs = None
        if not inputs:
            raise ValueError(
                "The model provided has no known inputs (it was never built on a `keras.Input`). Pass "
                "`input_signature=` (a `keras.InputSpec`, a tensor, or a list of them)."
            )
        signature = list(inputs)
    elif isinstance(input_signature, (list, tuple)):
        signature = list(input_signature)
    else:
        signature = [input_signature]
    out = []
    for i, spec in enumerate(signature):
        if isinstance(spec, torch.Tensor):
            out.append(((None,) + tuple(spec.shape[1:]), spec.dtype, None))
        elif isinstance(spec, InputSpec) or hasattr(spec, "shape"):
            shape = getattr(spec, "shape", None)
            if shape is None:
                raise ValueError(f"The `shape` and `dtype` must be provided. Received: x={spec}")
            from kerasish.backend.dtypes import to_torch_dtype

            dtype = getattr(spec, "dtype", None) or "float32"
            if input_signature is None and hasattr(model, "_input_cast_dtype"):
                dtype = model._input_cast_dtype(spec)  # (a functional model moved by `.double()`: float64)
            out.append((tuple(shape), to_torch_dtype(dtype) if not isinstance(dtype, torch.dtype) else dtype,
                        getattr(spec, "name", None)))
        else:
            raise TypeError(
                f"Unsupported x={spec} of the type ({type(spec)}). Supported types are: `keras.InputSpec`, "
                "`keras.KerasTensor` and backend tensor."
            )
    return out


def _sample(shape, dtype, device) -> torch.Tensor:
    shape = tuple(_SAMPLE_SIZE_FOR_NONE if s is None else int(s) for s in shape)
    if dtype.is_floating_point:
        return torch.randn(shape, dtype=dtype, device=device)
    return torch.ones(shape, dtype=dtype, device=device)  # ids/indices: 1 is valid for any vocabulary


def _auto_dynamic(specs):
    """`dynamic_shapes` marking every `None` dim `Dim.AUTO`, or None."""
    dims = [{i: torch.export.Dim.AUTO for i, s in enumerate(shape) if s is None} for shape, _, _ in specs]
    if not any(dims):
        return None
    return tuple(d or None for d in dims)


class _Single(torch.nn.Module):
    """`model(x)` with a fixed signature (a Keras model's `forward` takes
    `*args`, which `dynamic_shapes` would have to nest)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


class _Positional(torch.nn.Module):
    """Calls a multi-input model with its inputs as one list, as Keras models take them."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *inputs):
        return self.model(list(inputs))


def _dynamic_shapes(module, specs):
    dims = _auto_dynamic(specs)
    if dims is None or isinstance(module, _Single):
        return dims
    return (dims,)  # `forward(*inputs)`: one varargs parameter holding every input


def _is_fixed(program, size) -> bool:
    """A concrete size, or a symbol whose range was narrowed to one value."""
    from torch.fx.experimental.symbolic_shapes import is_concrete_int

    if isinstance(size, int) or is_concrete_int(size):
        return True
    bounds = program.range_constraints.get(size.node.expr)
    return bounds is not None and bounds.lower == bounds.upper


def _warn_specialized(program, specs) -> None:
    """Warns when a `None` dim of the signature came out fixed (the model's
    code needed a concrete size there, e.g. a Python branch on it):
    the artifact then accepts only the sample size, 2."""
    if program is None:
        return
    user = set(program.graph_signature.user_inputs)
    nodes = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in user]
    for j, ((shape, _, name), node) in enumerate(zip(specs, nodes)):
        val = node.meta.get("val")
        fixed = [i for i, s in enumerate(shape) if s is None and val is not None and _is_fixed(program, val.shape[i])]
        if fixed:
            warnings.warn(
                f"Input {name or j}: dim(s) {fixed}, `None` in the input signature, were exported with the fixed "
                f"size {_SAMPLE_SIZE_FOR_NONE} because the model's computation depends on them. Pass an "
                "`input_signature` with the size to serve.",
                stacklevel=3,
            )


def export_model(model, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
    """See `Model.export`."""
    if format not in FORMATS:
        raise ValueError(f"Unrecognized format={format}. Supported formats are: {list(FORMATS)}.")
    if format == "tf_saved_model":
        raise ValueError(
            'format="tf_saved_model" needs TensorFlow, which kerasish never depends on. Export with '
            'format="onnx" (ONNX Runtime, TensorRT, ...) or format="torch" (a torch.export `.pt2` program).'
        )
    if format in ("openvino", "litert"):
        raise ValueError(
            f'format="{format}" is not supported by kerasish. Export with format="onnx" (which OpenVINO and '
            'LiteRT converters read) or format="torch".'
        )
    if not getattr(model, "built", True):
        raise ValueError("The model provided has not yet been built. It must be built before export.")
    specs = _specs(model, input_signature)
    device = next(iter(model.parameters()), torch.empty(0)).device
    args = tuple(_sample(shape, dtype, device) for shape, dtype, _ in specs)
    module = _Single(model) if len(args) == 1 else _Positional(model)
    was_training = model.training
    model.eval()
    try:
        if format == "torch":
            return _export_torch(module, filepath, args, specs, verbose, kwargs)
        return _export_onnx(module, filepath, args, specs, verbose, kwargs)
    finally:
        model.train(was_training)


def _export_torch(module, filepath, args, specs, verbose, kwargs):
    filepath = os.fspath(filepath)
    if not filepath.endswith(".pt2"):
        raise ValueError(f"The PyTorch export requires the filepath to end with '.pt2'. Got: {filepath}")
    allowed = {n for n in inspect.signature(torch.export.export).parameters if n not in {"mod", "args", "kwargs"}}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(
            f'Unsupported arguments for `format="torch"`: {", ".join(unknown)}. Supported arguments are: '
            f'{", ".join(sorted(allowed))}.'
        )
    kwargs = dict(kwargs)
    kwargs.setdefault("strict", False)
    if "dynamic_shapes" not in kwargs:
        kwargs["dynamic_shapes"] = _dynamic_shapes(module, specs)
    program = torch.export.export(module, args, **kwargs)
    _warn_specialized(program, specs)
    _contiguous_state(program)
    torch.export.save(program, filepath)
    if verbose is None or verbose:
        print(f"Saved PyTorch ExportedProgram at '{filepath}'.")
    return filepath


def _contiguous_state(program) -> None:
    """Gives the program contiguous copies of its strided weights (LSTM's
    kernels are stored as transposed views, see `store_transposed`), so that
    `torch.export.save` writes each as a whole tensor: it groups weights by
    storage and, for a view that does not cover its storage in order, warns
    "No complete tensor found in the group!" and saves the storage instead.
    The model keeps its own weights; the program computes the same values
    (its ops take any strides)."""
    state = program.state_dict
    for name, value in list(state.items()):
        if isinstance(value, torch.Tensor) and not value.is_contiguous():
            copy = torch.Tensor.detach(value).contiguous()
            if isinstance(value, torch.nn.Parameter):
                copy = torch.nn.Parameter(copy, requires_grad=value.requires_grad)
            state[name] = copy


def _export_onnx(module, filepath, args, specs, verbose, kwargs):
    for name in ("onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError as e:
            raise ImportError(
                f'Model.export(format="onnx") needs the `{name}` package (pip install onnx onnxscript).'
            ) from e
    filepath = os.fspath(filepath)
    opset_version = kwargs.pop("opset_version", None)
    if kwargs:
        raise ValueError(f'Unsupported arguments for `format="onnx"`: {", ".join(sorted(kwargs))}.')
    names = [name or f"input_{i}" for i, (_, _, name) in enumerate(specs)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, args, dynamo=True, input_names=names, opset_version=opset_version,
                                    dynamic_shapes=_dynamic_shapes(module, specs), verbose=False)
    _warn_specialized(getattr(program, "exported_program", None), specs)
    program.save(filepath)
    if verbose is None or verbose:
        print(f"Saved artifact at '{filepath}'.")
    return filepath
