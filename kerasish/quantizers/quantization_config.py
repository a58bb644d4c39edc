"""Quantization configs (`keras.quantizers.*QuantizationConfig`): which
quantizers `layer.quantize(mode, config=...)` uses for weights and inputs."""

from __future__ import annotations

from kerasish.saving import serialization_lib

QUANTIZATION_MODES = ("int8", "float8", "int4", "gptq", "awq")


def _quantizer_from(config):
    from kerasish import quantizers

    return quantizers.deserialize(config) if config is not None else None


class QuantizationConfig:
    """Base class of quantization configs.

    Args:
        weight_quantizer: Quantizer for weights (`None`: the layer's default).
        activation_quantizer: Quantizer for the layer's inputs (`None`: the
            inputs stay in float).
    """

    _keras_module = "keras.quantizers"

    def __init__(self, weight_quantizer=None, activation_quantizer=None):
        self.weight_quantizer = weight_quantizer
        self.activation_quantizer = activation_quantizer

    @property
    def mode(self):
        raise NotImplementedError(
            "Subclasses must implement this property. Do not instantiate QuantizationConfig directly."
        )

    def get_config(self):
        return {
            "weight_quantizer": serialization_lib.serialize_keras_object(self.weight_quantizer),
            "activation_quantizer": serialization_lib.serialize_keras_object(self.activation_quantizer),
        }

    @classmethod
    def from_config(cls, config):
        return cls(
            weight_quantizer=_quantizer_from(config.get("weight_quantizer")),
            activation_quantizer=_quantizer_from(config.get("activation_quantizer")),
        )

    @staticmethod
    def weight_quantizer_or_default(config, default):
        if config is not None and config.weight_quantizer is not None:
            return config.weight_quantizer
        return default

    @staticmethod
    def activation_quantizer_or_default(config, default):
        if config is not None:
            return config.activation_quantizer
        return default


class Int8QuantizationConfig(QuantizationConfig):
    """Int8 quantization: int8 weights (per output channel) and, by
    default, int8 inputs (`AbsMaxQuantizer` over the last axis).

    Args:
        weight_quantizer: Defaults to `None` (`AbsMaxQuantizer(axis=0)`).
        activation_quantizer: Defaults to `"default"` (`AbsMaxQuantizer()`);
            `None` keeps the inputs in float (weight-only quantization).
    """

    def __init__(self, weight_quantizer=None, activation_quantizer="default"):
        from kerasish.quantizers.quantizers import AbsMaxQuantizer

        if isinstance(activation_quantizer, str) and activation_quantizer == "default":
            activation_quantizer = AbsMaxQuantizer()
        super().__init__(weight_quantizer, activation_quantizer)
        if self.weight_quantizer is not None and self.weight_quantizer.output_dtype != "int8":
            raise ValueError(
                "Int8QuantizationConfig requires a weight_quantizer with output_dtype='int8'. "
                f"Received: output_dtype={self.weight_quantizer.output_dtype}"
            )

    @property
    def mode(self):
        return "int8"


class Int4QuantizationConfig(QuantizationConfig):
    """Int4 quantization: weights packed two per byte.

    Args:
        weight_quantizer: Only for per-channel mode (`block_size` None or
            -1); must have `value_range=(-8, 7)`.
        activation_quantizer: Defaults to `"default"`, which for int4 means
            `None` (weight-only).
        block_size: Rows of the kernel per group for sub-channel
            (asymmetric, with zero points) quantization; `None` or `-1` for
            one symmetric scale per output channel. Defaults to `128`.
    """

    def __init__(self, weight_quantizer=None, activation_quantizer="default", block_size=128):
        if isinstance(activation_quantizer, str) and activation_quantizer == "default":
            activation_quantizer = None
        super().__init__(weight_quantizer, activation_quantizer)
        if block_size is not None and block_size != -1 and block_size <= 0:
            raise ValueError(f"block_size must be None, -1, or a positive integer. Received: block_size={block_size}")
        self.block_size = block_size
        sub_channel = block_size is not None and block_size > 0
        if sub_channel and (self.weight_quantizer is not None or self.activation_quantizer is not None):
            raise ValueError(
                "Int4 sub-channel quantization (block_size > 0) does not support custom quantizers. Either set "
                "block_size to None or -1 for per-channel quantization, or remove the custom quantizer "
                f"arguments. Received: block_size={block_size}"
            )
        if self.weight_quantizer is not None:
            if tuple(self.weight_quantizer.value_range) != (-8, 7):
                raise ValueError(
                    "Int4QuantizationConfig requires a weight_quantizer with value_range=(-8, 7). "
                    f"Received: value_range={self.weight_quantizer.value_range}"
                )
            if self.weight_quantizer.output_dtype != "int8":
                raise ValueError(
                    "Int4QuantizationConfig requires a weight_quantizer with output_dtype='int8'. "
                    f"Received: output_dtype={self.weight_quantizer.output_dtype}"
                )

    @property
    def mode(self):
        return "int4"

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}

    @classmethod
    def from_config(cls, config):
        return cls(
            weight_quantizer=_quantizer_from(config.get("weight_quantizer")),
            activation_quantizer=_quantizer_from(config.get("activation_quantizer")),
            block_size=config.get("block_size", None),  # older files: per-channel
        )


class Float8QuantizationConfig(QuantizationConfig):
    """Float8 (FP8 mixed-precision training); takes no custom quantizers."""

    def __init__(self):
        super().__init__(None, None)

    @property
    def mode(self):
        return "float8"

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls()


def _validate_mode(mode):
    if mode is not None and mode not in QUANTIZATION_MODES:
        raise ValueError(f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. Received: mode={mode}")


def validate_and_resolve_config(mode, config):
    """The config `quantize(mode, config)` runs with: the mode's default
    config when none is given; contradictions are `ValueError`s."""
    if isinstance(config, str):
        mode, config = config, None
    _validate_mode(mode)
    if config is None:
        defaults = {"int8": Int8QuantizationConfig, "int4": Int4QuantizationConfig, "float8": Float8QuantizationConfig}
        if mode in defaults:
            config = defaults[mode]()
        elif mode == "gptq":
            raise ValueError("For GPTQ, you must pass a `GPTQConfig` object in the `config` argument.")
        elif mode == "awq":
            raise ValueError("For AWQ, you must pass an `AWQConfig` object in the `config` argument.")
        else:
            raise ValueError("You must provide either `mode` or `config` to `quantize`.")
    elif not isinstance(config, QuantizationConfig):
        raise ValueError(
            "Argument `config` must be an instance of `QuantizationConfig`. "
            f"Received: config={config} (of type {type(config)})"
        )
    if mode is not None and config.mode != mode:
        raise ValueError(f"Contradictory arguments: mode='{mode}' but config.mode='{config.mode}'")
    _validate_mode(config.mode)
    if config.mode == "gptq":
        from kerasish.quantizers.gptq_config import GPTQConfig

        if not isinstance(config, GPTQConfig):
            raise ValueError(
                f"Mode 'gptq' requires a valid `config` argument of type `GPTQConfig`. Received: {type(config)}"
            )
    if config.mode == "awq":
        from kerasish.quantizers.awq_config import AWQConfig

        if not isinstance(config, AWQConfig):
            raise ValueError(f"Mode 'awq' requires a valid `config` argument of type `AWQConfig`. Received: {type(config)}")
    return config


def get_block_size_for_layer(layer, config):
    """The int4 block size: from an `Int4QuantizationConfig`, else from the
    layer's `Int4DTypePolicy` (a loaded model); `None` means per-channel."""
    from kerasish.dtype_policies import DTypePolicyMap
    from kerasish.dtype_policies import Int4DTypePolicy

    if config is not None and isinstance(config, Int4QuantizationConfig):
        return config.block_size
    policy = layer.dtype_policy
    if isinstance(policy, DTypePolicyMap):
        policy = policy[layer.path]
    if isinstance(policy, Int4DTypePolicy):
        return None if policy.block_size == -1 else policy.block_size
    return None
