"""`InputSpec`: the rank, dtype and shape a layer accepts, checked on every call."""

from __future__ import annotations

from kerasish.backend import dtypes


class InputSpec:
    """Specifies the rank, dtype and shape of every input to a layer.

    Args:
        dtype: expected dtype name, or None.
        shape: expected shape tuple (None for free dimensions), or None.
        ndim: expected rank, or None.
        max_ndim: maximum rank, or None.
        min_ndim: minimum rank, or None.
        axes: dict mapping axes (may be negative) to their expected size.
        allow_last_axis_squeeze: if True, a last axis of size 1 may be
            missing or extra.
        name: the expected input name, for dict inputs.
        optional: whether the input may be None.

    Example:
        >>> class MyLayer(keras.layers.Layer):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.input_spec = keras.InputSpec(ndim=2, axes={-1: 4})
    """

    def __init__(
        self,
        dtype=None,
        shape=None,
        ndim=None,
        max_ndim=None,
        min_ndim=None,
        axes=None,
        allow_last_axis_squeeze=False,
        name=None,
        optional=False,
    ):
        self.dtype = dtypes.standardize_dtype(dtype) if dtype is not None else None
        if shape is not None:
            self.ndim = len(shape)
            self.shape = tuple(shape)
        else:
            self.ndim = ndim
            self.shape = None
        self.max_ndim = max_ndim
        self.min_ndim = min_ndim
        self.name = name
        self.optional = optional
        self.allow_last_axis_squeeze = allow_last_axis_squeeze
        try:
            axes = axes or {}
            self.axes = {int(k): axes[k] for k in axes}
        except (ValueError, TypeError):
            raise TypeError(f"Argument `axes` must be a dict with integer keys. Received: axes={axes}") from None
        if self.axes and (self.ndim is not None or self.max_ndim is not None):
            max_dim = (self.ndim if self.ndim is not None else self.max_ndim) - 1
            max_axis = max(self.axes)
            if max_axis > max_dim:
                raise ValueError(f"Axis {max_axis} is greater than the maximum allowed value: {max_dim}")

    def __repr__(self):
        parts = [
            f"dtype={self.dtype}" if self.dtype else "",
            f"shape={self.shape}" if self.shape else "",
            f"ndim={self.ndim}" if self.ndim else "",
            f"max_ndim={self.max_ndim}" if self.max_ndim else "",
            f"min_ndim={self.min_ndim}" if self.min_ndim else "",
            f"axes={self.axes}" if self.axes else "",
        ]
        return f"InputSpec({', '.join(p for p in parts if p)})"

    def get_config(self) -> dict:
        return {
            "dtype": self.dtype,
            "shape": self.shape,
            "ndim": self.ndim,
            "max_ndim": self.max_ndim,
            "min_ndim": self.min_ndim,
            "axes": self.axes,
            "optional": self.optional,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _flatten(x):
    if isinstance(x, (list, tuple)):
        out = []
        for item in x:
            out.extend(_flatten(item))
        return out
    if isinstance(x, dict):
        out = []
        for key in x:
            out.extend(_flatten(x[key]))
        return out
    return [x]


def assert_input_compatibility(input_spec, inputs, layer_name: str) -> None:
    """Raises `ValueError` when `inputs` do not meet `input_spec`."""
    if not input_spec:
        return
    specs = _flatten(input_spec)
    if isinstance(inputs, dict):
        names = [spec.name for spec in specs]
        if all(names):
            ordered = []
            for name in names:
                if name not in inputs:
                    raise ValueError(
                        f'Missing data for input "{name}". You passed a data dictionary with keys '
                        f"{list(inputs.keys())}. Expected the following keys: {names}"
                    )
                ordered.append(inputs[name])
            inputs = ordered
    flat = _flatten(inputs)
    if len(flat) != len(specs):
        raise ValueError(
            f'Layer "{layer_name}" expects {len(specs)} input(s), but it received '
            f"{len(flat)} input tensors. Inputs received: {inputs}"
        )
    for index, (x, spec) in enumerate(zip(flat, specs)):
        if spec is None:
            continue
        if x is None and spec.optional:
            continue
        if not hasattr(x, "shape"):
            raise ValueError(
                f"Inputs to a layer should be tensors. Got '{x}' (of type {type(x)}) "
                f"as input for layer '{layer_name}'."
            )
        shape = tuple(x.shape)
        ndim = len(shape)
        where = f"Input {index} of layer '{layer_name}' is incompatible with the layer:"
        if spec.ndim is not None and not spec.allow_last_axis_squeeze and ndim != spec.ndim:
            raise ValueError(f"{where} expected ndim={spec.ndim}, found ndim={ndim}. Full shape received: {shape}")
        if spec.max_ndim is not None and ndim > spec.max_ndim:
            raise ValueError(f"{where} expected max_ndim={spec.max_ndim}, found ndim={ndim}")
        if spec.min_ndim is not None and ndim < spec.min_ndim:
            raise ValueError(f"{where} expected min_ndim={spec.min_ndim}, found ndim={ndim}. Full shape received: {shape}")
        if spec.dtype is not None:
            found = dtypes.standardize_dtype(x.dtype)
            if found != spec.dtype:
                raise ValueError(f"{where} expected dtype={spec.dtype}, found dtype={found}")
        if spec.axes:
            for axis, value in spec.axes.items():
                if value is None:
                    continue
                if not -ndim <= axis < ndim or shape[axis] not in (value, None):
                    raise ValueError(
                        f"{where} expected axis {axis} of input shape to have value {value}, "
                        f"but received input with shape {shape}"
                    )
        if spec.shape is not None:
            spec_shape = spec.shape
            if spec.allow_last_axis_squeeze:
                if shape and shape[-1] == 1:
                    shape = shape[:-1]
                if spec_shape and spec_shape[-1] == 1:
                    spec_shape = spec_shape[:-1]
            if len(shape) != len(spec_shape) or any(
                s is not None and d is not None and s != d for s, d in zip(spec_shape, shape)
            ):
                raise ValueError(f"{where} expected shape={spec.shape}, found shape={shape}")
