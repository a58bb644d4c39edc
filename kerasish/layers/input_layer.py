"""`keras.Input` and `keras.layers.InputLayer`: the entry points of a
functional graph."""

from __future__ import annotations

import warnings

from kerasish.backend import dtypes
from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers.layer import Layer


def standardize_shape(shape) -> tuple:
    """A shape tuple of ints and Nones (Keras's `standardize_shape`)."""
    if shape is None:
        raise ValueError("Undefined shapes are not supported.")
    if not hasattr(shape, "__iter__") or isinstance(shape, str):
        raise ValueError(f"Cannot convert '{shape}' to a shape.")
    out = []
    for dim in shape:
        if dim is None:
            out.append(None)
            continue
        if hasattr(dim, "__index__"):
            dim = dim.__index__()
        if not isinstance(dim, int):
            raise ValueError(
                f"Cannot convert '{shape}' to a shape. Found invalid dimension '{dim}' of type '{type(dim)}'."
            )
        if dim < 0:
            raise ValueError(f"Cannot convert '{shape}' to a shape. Negative dimensions are not allowed.")
        out.append(dim)
    return tuple(out)


class InputLayer(Layer):
    """The layer behind `keras.Input`: it has no weights and produces the
    symbolic input tensor of a functional model.

    Args:
        shape: Shape tuple without the batch dimension (None for unknown
            dimensions). Keras 2's `input_shape` is accepted.
        batch_size: Optional static batch size.
        dtype: Dtype of the expected input. Defaults to "float32".
        sparse: Whether the input is a sparse tensor. Defaults to False.
        ragged: Not supported (PyTorch has no ragged tensors).
        batch_shape: Full shape including the batch dimension; exclusive
            with `shape`/`batch_size`. Keras 2's `batch_input_shape` is
            accepted.
        input_tensor: An existing KerasTensor to wrap.
        optional: Whether the input may be None. Defaults to False.
        name: Layer name. Defaults to "input_layer" (made unique).

    Example:
        >>> layer = keras.layers.InputLayer(shape=(8,))
        >>> layer.output.shape
        (None, 8)
    """

    _keras_module = "keras.layers"

    def __init__(
        self,
        shape=None,
        batch_size=None,
        dtype=None,
        sparse=None,
        ragged=None,
        batch_shape=None,
        input_tensor=None,
        optional=False,
        name=None,
        **kwargs,
    ):
        if "input_shape" in kwargs:
            warnings.warn("Argument `input_shape` is deprecated. Use `shape` instead.", stacklevel=2)
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        kwargs.pop("trainable", None)
        unknown = {k: v for k, v in kwargs.items()}
        if unknown:
            raise ValueError(f"Unrecognized keyword arguments passed to InputLayer: {unknown}")
        super().__init__(name=name)
        if ragged:
            raise ValueError("`ragged=True` is not supported with the torch backend (PyTorch has no ragged tensors).")
        if input_tensor is not None:
            if not isinstance(input_tensor, KerasTensor):
                raise ValueError(
                    "Argument `input_tensor` must be a KerasTensor. Received invalid type: "
                    f"input_tensor={input_tensor} (of type {type(input_tensor)})"
                )
            if batch_size is not None and (not input_tensor.shape or input_tensor.shape[0] != batch_size):
                raise ValueError(
                    "When providing the `input_tensor` argument, you cannot provide an incompatible "
                    "`batch_size` argument."
                )
            if shape is not None and tuple(shape) != tuple(input_tensor.shape[1:]):
                raise ValueError(
                    "When providing the `input_tensor` argument, you cannot provide an incompatible "
                    "`shape` argument."
                )
            if batch_shape is not None and tuple(batch_shape) != tuple(input_tensor.shape):
                raise ValueError(
                    "When providing the `input_tensor` argument, you cannot provide an incompatible "
                    "`batch_shape` argument."
                )
            if dtype is not None and dtypes.standardize_dtype(dtype) != input_tensor.dtype:
                raise ValueError(
                    "When providing the `input_tensor` argument, you cannot provide an incompatible "
                    "`dtype` argument."
                )
            if sparse is not None and bool(sparse) != input_tensor.sparse:
                raise ValueError(
                    "When providing the `input_tensor` argument, you cannot provide an incompatible "
                    "`sparse` argument."
                )
            batch_shape = input_tensor.shape
            dtype = input_tensor.dtype
            sparse = input_tensor.sparse
        else:
            if shape is not None and batch_shape is not None:
                raise ValueError("You cannot pass both `shape` and `batch_shape` at the same time.")
            if batch_size is not None and batch_shape is not None:
                raise ValueError("You cannot pass both `batch_size` and `batch_shape` at the same time.")
            if shape is None and batch_shape is None:
                raise ValueError("You must pass a `shape` argument.")
            if shape is not None:
                batch_shape = (batch_size, *standardize_shape(shape))
        d = self.__dict__
        d["_batch_shape"] = standardize_shape(batch_shape)
        d["_input_dtype"] = dtypes.standardize_dtype(dtype)
        d["sparse"] = bool(sparse)
        d["ragged"] = False
        d["optional"] = bool(optional)
        if input_tensor is None:
            input_tensor = KerasTensor(d["_batch_shape"], dtype=d["_input_dtype"], sparse=d["sparse"], name=self.name)
        d["_input_tensor"] = input_tensor
        from kerasish.models.node import Node

        Node(self, (), {}, outputs=input_tensor)
        self.built = True

    def call(self, inputs=None):
        return inputs

    @property
    def batch_shape(self) -> tuple:
        return self.__dict__["_batch_shape"]

    @property
    def dtype(self) -> str:
        """The dtype of the input (not a weight dtype: InputLayer has none)."""
        return self.__dict__["_input_dtype"]

    def get_config(self) -> dict:
        return {
            "batch_shape": self.batch_shape,
            "dtype": self.dtype,
            "sparse": self.sparse,
            "ragged": self.ragged,
            "name": self.name,
            "optional": self.optional,
        }


def Input(
    shape=None,
    batch_size=None,
    dtype=None,
    sparse=None,
    ragged=None,
    batch_shape=None,
    name=None,
    tensor=None,
    optional=False,
) -> KerasTensor:
    """Creates a symbolic input tensor (`keras.Input`) for a functional model.

    Args:
        shape: Shape tuple without the batch dimension; None for unknown
            dimensions, e.g. `(None, 16)` for variable-length sequences.
        batch_size: Optional static batch size.
        dtype: Dtype of the expected input. Defaults to "float32".
        sparse: Whether the input is sparse. Defaults to False.
        ragged: Not supported (PyTorch has no ragged tensors).
        batch_shape: Shape including the batch dimension.
        name: Name of the input (and of its InputLayer). Dict inputs of a
            model are matched by this name.
        tensor: An existing KerasTensor to wrap.
        optional: Whether None may be passed for this input.

    Returns:
        A `KerasTensor` of shape `(batch_size, *shape)`.

    Example:
        >>> x = keras.Input(shape=(32,))
        >>> y = keras.layers.Dense(16, activation="softmax")(x)
        >>> model = keras.Model(x, y)
    """
    layer = InputLayer(
        shape=shape,
        batch_size=batch_size,
        dtype=dtype,
        sparse=sparse,
        ragged=ragged,
        batch_shape=batch_shape,
        name=name,
        input_tensor=tensor,
        optional=optional,
    )
    return layer.output
