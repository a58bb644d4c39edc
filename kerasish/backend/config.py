"""Global settings Keras keeps in `keras.config` (image data format, epsilon,
unsafe deserialization)."""

from __future__ import annotations

_image_data_format = "channels_last"
_epsilon = 1e-7
_unsafe_deserialization = False


def image_data_format() -> str:
    """The default `data_format` of image layers: "channels_last" unless set."""
    return _image_data_format


def set_image_data_format(data_format: str) -> None:
    global _image_data_format
    value = str(data_format).lower()
    if value not in ("channels_first", "channels_last"):
        raise ValueError(
            "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
            f"Received: data_format={data_format}"
        )
    _image_data_format = value


def epsilon() -> float:
    """The fuzz factor Keras uses in numeric expressions (1e-7)."""
    return _epsilon


def set_epsilon(value: float) -> None:
    global _epsilon
    _epsilon = float(value)


def enable_unsafe_deserialization() -> None:
    """Allows loading Lambda bytecode from configs (never on by default)."""
    global _unsafe_deserialization
    _unsafe_deserialization = True


def is_unsafe_deserialization_enabled() -> bool:
    return _unsafe_deserialization
