"""`keras.quantizers`: quantizer functions, quantizers and quantization configs.

GPTQ and AWQ are implemented for `Dense` layers (not `EinsumDense`).
"""

from __future__ import annotations

import inspect
import re

from kerasish.quantizers.awq_config import AWQConfig
from kerasish.quantizers.gptq_config import GPTQConfig
from kerasish.quantizers.quantization_config import Float8QuantizationConfig
from kerasish.quantizers.quantization_config import Int4QuantizationConfig
from kerasish.quantizers.quantization_config import Int8QuantizationConfig
from kerasish.quantizers.quantization_config import QuantizationConfig
from kerasish.quantizers.quantizers import AbsMaxQuantizer
from kerasish.quantizers.quantizers import Quantizer
from kerasish.quantizers.quantizers import abs_max_quantize
from kerasish.quantizers.quantizers import abs_max_quantize_grouped_with_zero_point
from kerasish.quantizers.quantizers import compute_float8_amax_history
from kerasish.quantizers.quantizers import compute_float8_scale
from kerasish.quantizers.quantizers import fake_quant_with_min_max_vars
from kerasish.quantizers.quantizers import pack_int4
from kerasish.quantizers.quantizers import quantize_and_dequantize
from kerasish.quantizers.quantizers import unpack_int4
from kerasish.saving import serialization_lib

_CLASSES = (
    Quantizer, AbsMaxQuantizer, QuantizationConfig, Int8QuantizationConfig, Int4QuantizationConfig,
    Float8QuantizationConfig, GPTQConfig, AWQConfig,
)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


ALL_OBJECTS_DICT = {cls.__name__: cls for cls in _CLASSES}
ALL_OBJECTS_DICT.update({_snake(cls.__name__): cls for cls in _CLASSES})


def serialize(quantizer):
    """The Keras config dict of a quantizer or quantization config."""
    return serialization_lib.serialize_keras_object(quantizer)


def deserialize(config, custom_objects=None):
    """A quantizer (or quantization config) from `serialize`'s output."""
    return serialization_lib.deserialize_keras_object(
        config, module_objects=ALL_OBJECTS_DICT, custom_objects=custom_objects, printable_module_name="quantizer"
    )


def get(identifier, **kwargs):
    """A quantizer from `None`, a config dict, a class name (instantiated
    with `**kwargs`) or a quantizer instance / callable."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = ALL_OBJECTS_DICT.get(identifier, None)
    else:
        obj = identifier
    if callable(obj):
        return obj(**kwargs) if inspect.isclass(obj) else obj
    raise ValueError(f"Could not interpret quantizer identifier: {identifier}")


__all__ = [
    "AWQConfig", "AbsMaxQuantizer", "Float8QuantizationConfig", "GPTQConfig", "Int4QuantizationConfig", "Int8QuantizationConfig",
    "QuantizationConfig", "Quantizer", "abs_max_quantize", "abs_max_quantize_grouped_with_zero_point",
    "compute_float8_amax_history", "compute_float8_scale", "deserialize", "fake_quant_with_min_max_vars", "get",
    "pack_int4", "quantize_and_dequantize", "serialize", "unpack_int4",
]
