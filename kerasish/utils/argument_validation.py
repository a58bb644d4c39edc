"""Keras's argument validation helpers, shared by every layer family."""

from __future__ import annotations

import numbers

from kerasish.backend import config


def as_int(value):
    """`value` as a Python int when it is an integer of any kind (NumPy's
    `np.int64` included: Keras 2 programs size layers with
    `np.max(y) + 1`, which tf.keras accepts and Keras 3 rejects), else
    `value` unchanged for the caller's own check. Bools stay bools."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        return int(value)
    return value



def standardize_tuple(value, n: int, name: str, allow_zero: bool = False) -> tuple:
    """An int or an iterable of `n` ints -> a tuple of `n` ints (Keras's
    `standardize_tuple`: ValueError naming the argument otherwise)."""
    error_msg = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={value}"
    if isinstance(value, bool):
        raise ValueError(error_msg)
    if isinstance(value, int):
        value_tuple = (value,) * n
    else:
        try:
            value_tuple = tuple(value)
        except TypeError:
            raise ValueError(error_msg) from None
        if len(value_tuple) != n:
            raise ValueError(error_msg)
        for single in value_tuple:
            if isinstance(single, bool) or not isinstance(single, int):
                try:
                    if int(single) != single:
                        raise ValueError
                except (ValueError, TypeError):
                    raise ValueError(
                        f"{error_msg}including element {single} of type {type(single)}"
                    ) from None
        value_tuple = tuple(int(v) for v in value_tuple)
    bad = {v for v in value_tuple if (v < 0 if allow_zero else v <= 0)}
    if bad:
        req = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{error_msg}, including values {bad} that do not satisfy `value {req}`")
    return value_tuple



def standardize_data_format(data_format) -> str:
    """None -> the global image data format ("channels_last" unless set
    with `keras.config.set_image_data_format`); ValueError otherwise."""
    if data_format is None:
        return config.image_data_format()
    value = str(data_format).lower()
    if value not in {"channels_first", "channels_last"}:
        raise ValueError(
            "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
            f"Received: data_format={data_format}"
        )
    return value


def check_axis_type(value, arg: str, layer: str, allow_list: bool = True) -> None:
    """TypeError unless `value` is an int (or, with `allow_list`, a non-empty
    list/tuple of ints); bools are not axes."""
    items = value if allow_list and isinstance(value, (list, tuple)) else (value,)
    if not items or not all(isinstance(a, int) and not isinstance(a, bool) for a in items):
        expected = "an integer or a list of integers" if allow_list else "an integer"
        raise TypeError(f"`{layer}`: `{arg}` must be {expected}. Received: {arg}={value!r}")


def check_axis_range(value, arg: str, rank: int, layer_name: str, shape) -> None:
    """ValueError unless every axis in `value` lies in [-rank, rank)."""
    items = value if isinstance(value, (list, tuple)) else (value,)
    for a in items:
        if not -rank <= a < rank:
            raise ValueError(
                f"Layer '{layer_name}': `{arg}` is out of range for inputs of rank {rank} (shape {tuple(shape)}); "
                f"expected values in [{-rank}, {rank - 1}]. Received: {arg}={value!r}"
            )


def check_number(value, arg: str, layer: str, minimum=None, maximum=None) -> float:
    """`value` as a float: TypeError unless a real number (not a bool or a
    string), ValueError outside [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{layer}`: `{arg}` must be a number. Received: {arg}={value!r} (of type {type(value).__name__})")
    value = float(value)
    if (minimum is not None and not value >= minimum) or (maximum is not None and not value <= maximum):
        low = "-inf" if minimum is None else minimum
        high = "inf" if maximum is None else maximum
        raise ValueError(f"`{layer}`: `{arg}` must be in [{low}, {high}]. Received: {arg}={value!r}")
    return value
