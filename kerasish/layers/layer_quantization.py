"""The quantization API every Layer has (`quantize`, `quantization_mode`),
as in Keras 3: layers that Keras quantizes (`Dense`, `EinsumDense`,
`Embedding`) override `quantize`; the others raise `NotImplementedError`.

torch's eager-mode quantization (`torch.ao.quantization.quantize_dynamic`,
`prepare` / `convert`) swaps modules by their torch type (`nn.Linear`,
`nn.LSTM`, ...), so it leaves kerasish layers in float, silently: the model
it returns runs, and nothing says that the Dense layers were not quantized.
Its first pass, `propagate_qconfig_`, walks every module with
`named_children()`; when that walk reaches a kerasish layer whose torch
counterpart the user asked to quantize, the layer warns and names the
supported way (`layer.quantize("int8")` / `model.quantize("int8")`, Keras's
API) or says that kerasish has no quantized version of it."""

from __future__ import annotations

import sys
import warnings

import torch

# torch module types that torch.ao.quantization quantizes -> the kerasish class names that do the same
# work, and whether kerasish's own `quantize()` quantizes them
_TORCH_TWINS = {
    "Linear": (("Dense", "EinsumDense"), True),
    "Embedding": (("Embedding",), True),
    "EmbeddingBag": (("Embedding",), True),
    "LSTM": (("LSTM",), False),
    "LSTMCell": (("LSTMCell",), False),
    "GRU": (("GRU",), False),
    "GRUCell": (("GRUCell",), False),
    "RNNCell": (("SimpleRNN", "SimpleRNNCell"), False),
    "Conv1d": (("Conv1D",), False),
    "Conv2d": (("Conv2D",), False),
    "Conv3d": (("Conv3D",), False),
}


def _warn_if_torch_quantization_skips(layer, frame) -> None:
    """Warns when `frame` is torch's `_propagate_qconfig_helper` asking for the children of `layer`
    and the quantization it prepares covers `layer`'s torch counterpart."""
    quantize = sys.modules.get("torch.ao.quantization.quantize")
    helper = getattr(quantize, "_propagate_qconfig_helper", None)
    if frame is None or helper is None or frame.f_code is not helper.__code__:
        return
    qconfig_dict = frame.f_locals.get("qconfig_dict") or {}
    names = {type(layer).__name__, *(c.__name__ for c in type(layer).__mro__)}
    for key, qconfig in qconfig_dict.items():
        if not isinstance(key, type) or qconfig is None or key.__module__.split(".")[0] != "torch":
            continue
        twins, supported = _TORCH_TWINS.get(key.__name__, ((), False))
        if not names.intersection(twins):
            continue
        how = (
            "Quantize them with Keras's API instead: `layer.quantize(\"int8\")` or `model.quantize(\"int8\")`."
            if supported else "kerasish has no quantized version of them."
        )
        warnings.warn(
            f"torch.ao.quantization swaps `torch.nn.{key.__name__}` modules only: kerasish "
            f"{type(layer).__name__} layers (here '{layer.name}') stay in float. {how}",
            UserWarning,
            stacklevel=4,
        )
        return


class LayerQuantizationMixin:
    # kerasish's own quantizable layers (Dense, EinsumDense, Embedding, the attention layers)
    # branch on their quantization mode inside `call`; any other layer under a quantized dtype
    # policy is called through `quantized_call`, as Keras's `Layer.__call__` does
    _quantizes_in_call = False

    def named_children(self):
        """torch's walk (see the module docstring for what torch's quantization walk is told)."""
        if not torch.compiler.is_compiling():  # dynamo cannot trace a frame read; torch's walk runs eagerly
            _warn_if_torch_quantization_skips(self, sys._getframe(1))
        return super().named_children()

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

    def quantized_build(self, input_shape, mode):
        raise self._not_implemented_error(self.quantized_build)

    def quantized_call(self, *args, **kwargs):
        """What a call runs instead of `call` when the layer's dtype policy is
        quantized: the mode's hook (`_int8_call`, `_int4_call`, `_float8_call`,
        `_gptq_call`, `_awq_call`), which a quantization-compatible layer
        implements (Keras's "Writing quantization-compatible layers" guide)."""
        mode = self.quantization_mode
        hook = {"int8": "_int8_call", "int4": "_int4_call", "float8": "_float8_call",
                "gptq": "_gptq_call", "awq": "_awq_call"}.get(mode)
        if hook is None:
            raise self._quantization_mode_error(mode)
        return getattr(self, hook)(*args, **kwargs)

    def _int8_call(self, *args, **kwargs):
        raise self._not_implemented_error(self._int8_call)

    def _int4_call(self, *args, **kwargs):
        raise self._not_implemented_error(self._int4_call)

    def _float8_call(self, *args, **kwargs):
        raise self._not_implemented_error(self._float8_call)

    def _gptq_call(self, *args, **kwargs):
        raise self._not_implemented_error(self._gptq_call)

    def _awq_call(self, *args, **kwargs):
        raise self._not_implemented_error(self._awq_call)

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
