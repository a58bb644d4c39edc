"""`Model.quantize`: quantize every leaf layer that supports it."""

from __future__ import annotations

import re
import warnings


def should_quantize_layer(layer, filters) -> bool:
    """Keras's filter rule: a regex (or list of regexes) searched in the
    layer's name, or a callable on the layer; None lets every layer through."""
    if filters is None:
        return True
    if isinstance(filters, str):
        return bool(re.search(filters, layer.name))
    if isinstance(filters, (list, tuple)):
        return any(re.search(pattern, layer.name) for pattern in filters)
    if callable(filters):
        return filters(layer)
    return True


def quantize_model(model, mode, config, filters, **kwargs) -> None:
    type_check = kwargs.pop("type_check", True)
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments passed to {type(model).__name__}: {kwargs}")
    if filters is not None and not isinstance(filters, (str, list, tuple)) and not callable(filters):
        raise ValueError(
            f"The `filters` argument must be a regex string, a list of regex strings, or a callable. Received: "
            f"{type(filters)}"
        )
    for layer in model._flatten_layers():
        if not should_quantize_layer(layer, filters):
            continue
        if len(list(layer._flatten_layers())) == 1:
            try:
                layer.quantize(mode, type_check=type_check, config=config)
            except NotImplementedError as e:
                warnings.warn(str(e), stacklevel=3)
            except AttributeError:
                pass
    calibrated = mode if mode in ("gptq", "awq") else getattr(config, "mode", None)
    if calibrated in ("gptq", "awq"):
        from kerasish.quantizers import gptq_core

        structure = config.quantization_layer_structure if config is not None else None
        if structure is None:
            structure = model.get_quantization_layer_structure(calibrated)
        if structure is None:
            raise ValueError(
                f"For mode='{calibrated}', a valid quantization structure must be provided either via "
                "`config.quantization_layer_structure` or by overriding `model.get_quantization_layer_structure(mode)`. "
                "The structure should be a dictionary with keys 'pre_block_layers' and 'sequential_blocks'."
            )
        if calibrated == "gptq":
            gptq_core.gptq_quantize(config, structure, filters=filters)
        else:
            gptq_core.awq_quantize(config, structure, filters=filters)
