"""Global settings Keras keeps in `keras.config` (image data format, epsilon,
unsafe deserialization, flash attention, traceback filtering, debugging caps
on fit)."""

from __future__ import annotations

import os

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


# --- flash attention -------------------------------------------------------
# Keras keeps `None` ("let the backend decide") until disable/enable is called.
_flash_attention = None


def enable_flash_attention() -> None:
    """Lets attention layers use the flash kernel again (the default).

    As in Keras this resets the setting to `None`, "let the backend decide":
    torch's `F.scaled_dot_product_attention` then picks its fastest kernel
    (flash on CUDA when dtype, head size and mask allow; its CPU flash kernel
    on CPU).
    """
    global _flash_attention
    _flash_attention = None


def disable_flash_attention() -> None:
    """Keeps attention layers created from now on off the flash kernel.

    `MultiHeadAttention` / `GroupedQueryAttention` built while disabled (and
    not given `flash_attention=True`) run `F.scaled_dot_product_attention`
    under `torch.nn.attention.sdpa_kernel` with every backend but
    `FLASH_ATTENTION` allowed: memory-efficient, cuDNN or math on CUDA, the
    math kernel on CPU. As in Keras, a layer reads the setting when it is
    created.
    """
    global _flash_attention
    _flash_attention = False


def is_flash_attention_enabled():
    """`False` after `disable_flash_attention()`, otherwise `None` (Keras's
    "enabled, backend decides"); `True` is never returned, as in Keras."""
    return _flash_attention


def sdpa_backends(flash_attention):
    """The `sdpa_kernel` backends a layer's `flash_attention` setting allows
    (`None`: torch decides, no restriction)."""
    if flash_attention is None:
        return None
    from torch.nn.attention import SDPBackend

    if flash_attention:
        return [SDPBackend.FLASH_ATTENTION]
    return [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH]


# --- traceback filtering ----------------------------------------------------
_traceback_filtering = True


def enable_traceback_filtering() -> None:
    """Turns Keras's traceback-filtering flag on (its default).

    kerasish does not filter tracebacks: the flag exists so programs that set
    or read it run unchanged; tracebacks are always shown in full.
    """
    global _traceback_filtering
    _traceback_filtering = True


def disable_traceback_filtering() -> None:
    """Turns the traceback-filtering flag off. kerasish never filters
    tracebacks, so this changes only what `is_traceback_filtering_enabled`
    returns."""
    global _traceback_filtering
    _traceback_filtering = False


def is_traceback_filtering_enabled() -> bool:
    """The flag set by enable/disable_traceback_filtering (`True` by default,
    as in Keras). kerasish shows full tracebacks whatever its value."""
    return _traceback_filtering


# --- debugging caps on fit ---------------------------------------------------
# Keras reads these environment variables once, at import.
_max_epochs = int(os.environ["KERAS_MAX_EPOCHS"]) if "KERAS_MAX_EPOCHS" in os.environ else None
_max_steps_per_epoch = (
    int(os.environ["KERAS_MAX_STEPS_PER_EPOCH"]) if "KERAS_MAX_STEPS_PER_EPOCH" in os.environ else None
)


def set_max_epochs(max_epochs) -> None:
    """Caps the `epochs` of every `fit` (a debugging aid; `None` removes the
    cap). Also read from the `KERAS_MAX_EPOCHS` environment variable at
    import. `fit` warns "Limiting epochs to N" when it applies the cap."""
    global _max_epochs
    _max_epochs = max_epochs


def set_max_steps_per_epoch(max_steps_per_epoch) -> None:
    """Caps the batches per epoch of `fit`, `evaluate` and `predict` (and
    fit's validation), as Keras's epoch iterator does; `None` removes the cap.
    Also read from `KERAS_MAX_STEPS_PER_EPOCH` at import. As in Keras the cap
    stands in for `steps_per_epoch`, so arrays given without `batch_size` are
    batched by `ceil(n / cap)`."""
    global _max_steps_per_epoch
    _max_steps_per_epoch = max_steps_per_epoch


def max_epochs():
    """The epoch cap set by `set_max_epochs` / `KERAS_MAX_EPOCHS`, or `None`."""
    return _max_epochs


def max_steps_per_epoch():
    """The steps cap set by `set_max_steps_per_epoch` /
    `KERAS_MAX_STEPS_PER_EPOCH`, or `None`."""
    return _max_steps_per_epoch
