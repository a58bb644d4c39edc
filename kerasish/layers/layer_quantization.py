"""The quantization API every Layer has (`quantize`, `quantization_mode`),
as in Keras 3: layers that Keras quantizes (`Dense`, `EinsumDense`,
`Embedding`) override `quantize`; the others raise `NotImplementedError`."""

from __future__ import annotations


class LayerQuantizationMixin:
    @property
    def quantization_mode(self):
        """The quantization mode of this layer, `None` if not quantized.

        With a `DTypePolicyMap` as dtype, the entry for the layer's name is
        used (Keras looks up the layer's `path`, which for a top-level layer
        is its name; kerasish does not track nested name-scope paths)."""
        policy = self._dtype_policy
        from kerasish.dtype_policies import DTypePolicyMap

        if isinstance(policy, DTypePolicyMap):
            policy = policy[self.name]
        return policy.quantization_mode

    def quantize(self, mode=None, config=None, type_check=True):
        raise self._not_implemented_error(self.quantize)

    def _check_quantize_args(self, mode, compute_dtype):
        from kerasish.quantizers.quantization_config import QUANTIZATION_MODES

        if not self.built:
            raise ValueError(
                f"Cannot quantize a layer that isn't yet built. Layer '{self.name}' (of type "
                f"'{type(self).__name__}') is not built yet."
            )
        if self.__dict__.get("_is_quantized", False):
            raise ValueError(
                f"Layer '{self.name}' is already quantized with dtype_policy='{self.dtype_policy.name}'. "
                f"Received: mode={mode}"
            )
        if mode not in QUANTIZATION_MODES:
            raise ValueError(f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. Received: mode={mode}")
        if mode == "int8" and compute_dtype == "float16":
            raise ValueError(
                f"Quantization mode='{mode}' doesn't work well with compute_dtype='float16'. Consider loading "
                "model/layer with another dtype policy such as 'mixed_bfloat16' or 'mixed_float16' before "
                "calling `quantize()`."
            )

    def _not_implemented_error(self, attr, msg=None):
        if callable(attr):
            attr_name, attr_type = attr.__name__, "method"
        else:
            attr_name, attr_type = str(attr), "attribute"
        msg = f" {msg}" if msg is not None else ""
        return NotImplementedError(
            f"Layer {type(self).__name__} does not have a `{attr_name}` {attr_type} implemented.{msg}"
        )

    def _quantization_mode_error(self, mode):
        from kerasish.quantizers.quantization_config import QUANTIZATION_MODES

        return NotImplementedError(
            f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. Received: quantization_mode={mode}"
        )
