"""Argument helpers shared by the reshaping, regularization and preprocessing
layers: Keras's `data_format` and integer-tuple validation, same messages."""

from __future__ import annotations


def image_data_format() -> str:
    """The global image data format (`keras.config.image_data_format()`);
    "channels_last" unless kerasish's backend defines another."""
    from kerasish import backend

    getter = getattr(backend, "image_data_format", None)
    return getter() if getter is not None else "channels_last"


def standardize_data_format(data_format) -> str:
    """Keras's `standardize_data_format`: None -> the global default."""
    if data_format is None:
        return image_data_format()
    data_format = str(data_format).lower()
    if data_format not in {"channels_first", "channels_last"}:
        raise ValueError(
            "The `data_format` argument must be one of "
            "{'channels_first', 'channels_last'}. "
            f"Received: data_format={data_format}"
        )
    return data_format


def standardize_tuple(value, n: int, name: str, allow_zero: bool = False) -> tuple:
    """Keras's `argument_validation.standardize_tuple`: an int or an iterable
    of `n` ints -> a tuple of `n` ints (> 0, or >= 0 with `allow_zero`)."""
    error_msg = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={value}"
    if isinstance(value, int):
        value_tuple = (value,) * n
    else:
        try:
            value_tuple = tuple(value)
        except TypeError:
            raise ValueError(error_msg) from None
        if len(value_tuple) != n:
            raise ValueError(error_msg)
        for single_value in value_tuple:
            try:
                int(single_value)
            except (ValueError, TypeError):
                error_msg += f"including element {single_value} of type {type(single_value)}"
                raise ValueError(error_msg) from None
    if allow_zero:
        bad = {v for v in value_tuple if v < 0}
        req = ">= 0"
    else:
        bad = {v for v in value_tuple if v <= 0}
        req = "> 0"
    if bad:
        error_msg += f", including values {bad} that do not satisfy `value {req}`"
        raise ValueError(error_msg)
    return value_tuple


def standardize_pairs(value, n: int, arg: str, layer: str) -> tuple:
    """`padding` / `cropping` of the 2D and 3D layers: an int, a tuple of `n`
    ints (symmetric) or a tuple of `n` pairs -> `n` (before, after) pairs."""
    ordinals = ("1st", "2nd", "3rd")
    if isinstance(value, int):
        if value < 0 and arg == "cropping":
            raise ValueError(f"`cropping` cannot be negative. Received: cropping={value}.")
        return ((value, value),) * n
    if hasattr(value, "__len__"):
        if len(value) != n:
            if n == 2:
                raise ValueError(f"`{arg}` should have two elements. Received: {arg}={value}.")
            raise ValueError(f"`{arg}` should have {n} elements. Received: {value}.")
        return tuple(
            standardize_tuple(v, 2, f"{ordinals[i]} entry of {arg}", allow_zero=True) for i, v in enumerate(value)
        )
    raise ValueError(
        f"`{arg}` of `{layer}` should be either an int, a tuple of {n} ints or a tuple of {n} tuples "
        f"of 2 ints. Received: {arg}={value}."
    )
