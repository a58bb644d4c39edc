"""`keras.utils.conv_utils` (multi-backend Keras 2.0-2.4, `keras` 2.6-2.12): the
argument helpers Keras 2 custom convolution layers call.

`from keras.utils import conv_utils` then `conv_utils.normalize_tuple(
kernel_size, 2, "kernel_size")` in a custom layer's `__init__`, and
`conv_utils.conv_output_length(...)` in its `compute_output_shape`. These
follow Keras 2's definitions (Keras 3 keeps them only privately)."""

from __future__ import annotations

__all__ = ["conv_input_length", "conv_output_length", "normalize_data_format", "normalize_padding",
           "normalize_tuple"]


def normalize_tuple(value, n: int, name: str) -> tuple:
    """`value` as a tuple of `n` integers: an int is repeated `n` times.

    Raises:
        ValueError: `value` is neither an int nor an iterable of `n` ints
            (the message names `name`).
    """
    if isinstance(value, int):
        return (value,) * n
    try:
        value_tuple = tuple(value)
    except TypeError:
        raise ValueError(f"The `{name}` argument must be a tuple of {n} integers. Received: {value}") from None
    if len(value_tuple) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in value_tuple):
        raise ValueError(f"The `{name}` argument must be a tuple of {n} integers. Received: {value}")
    return value_tuple


def normalize_padding(value) -> str:
    """`"valid"`, `"same"` or `"causal"`, case-insensitively (ValueError otherwise)."""
    padding = value.lower() if isinstance(value, str) else value
    if padding not in {"valid", "same", "causal"}:
        raise ValueError(f"The `padding` argument must be one of 'valid', 'same' (or 'causal', only for `Conv1D`). "
                         f"Received: {value}")
    return padding


def normalize_data_format(value) -> str:
    """`"channels_first"` or `"channels_last"`; None gives `keras.backend.image_data_format()`."""
    if value is None:
        from kerasish.backend import image_data_format

        value = image_data_format()
    data_format = value.lower() if isinstance(value, str) else value
    if data_format not in {"channels_first", "channels_last"}:
        raise ValueError(f"The `data_format` argument must be one of 'channels_first', 'channels_last'. "
                         f"Received: {value}")
    return data_format


def conv_output_length(input_length, filter_size: int, padding: str, stride: int, dilation: int = 1):
    """The output length of a convolution over `input_length` steps (None stays None).

    `padding` is "same", "causal", "valid" or "full"; the kernel spans
    `(filter_size - 1) * dilation + 1` steps.
    """
    if input_length is None:
        return None
    if padding not in {"same", "causal", "valid", "full"}:
        raise ValueError(f"The `padding` argument must be one of 'same', 'causal', 'valid', 'full'. "
                         f"Received: {padding}")
    span = (filter_size - 1) * dilation + 1
    if padding in ("same", "causal"):
        length = input_length
    elif padding == "valid":
        length = input_length - span + 1
    else:
        length = input_length + span - 1
    return (length + stride - 1) // stride


def conv_input_length(output_length, filter_size: int, padding: str, stride: int):
    """The input length a convolution needs for `output_length` steps (None stays None)."""
    if output_length is None:
        return None
    if padding not in {"same", "valid", "full"}:
        raise ValueError(f"The `padding` argument must be one of 'same', 'valid', 'full'. Received: {padding}")
    pad = {"same": filter_size // 2, "valid": 0, "full": filter_size - 1}[padding]
    return (output_length - 1) * stride - 2 * pad + filter_size


def __getattr__(name):
    if name == "convert_kernel":
        from kerasish.utils.keras2_modules import removed_name_error

        raise removed_name_error("`keras.utils.conv_utils.convert_kernel` is a Keras 2 name with no kerasish "
                                 "(Keras 3) counterpart: it flipped Theano-era kernels, which kerasish never needs; "
                                 "`np.flip(kernel, axis=tuple(range(kernel.ndim - 2)))` does the same.",
                                 __name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
