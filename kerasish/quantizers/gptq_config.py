"""`keras.quantizers.GPTQConfig`: the settings of GPTQ post-training
quantization (`model.quantize("gptq", config=GPTQConfig(...))`)."""

from __future__ import annotations

from kerasish.quantizers.quantization_config import QuantizationConfig


class GPTQConfig(QuantizationConfig):
    """GPTQ settings.

    Args:
        dataset: Calibration data: an iterable of strings (tokenized with
            `tokenizer`) or of token-id arrays.
        tokenizer: An object with `tokenize(str)` (required, as in Keras,
            even for token-id data).
        weight_bits: 2, 3, 4 or 8. Defaults to 4 (packed two per byte).
        num_samples: Calibration windows. Defaults to 128.
        per_channel: Defaults to `True`.
        sequence_length: Tokens per calibration window. Defaults to 512.
        hessian_damping: Fraction of the mean Hessian diagonal added to it,
            in `[0, 1]`. Defaults to 0.01.
        group_size: Input features per scale group; -1 for one group.
            Defaults to 128.
        symmetric: Defaults to `False`.
        activation_order: Quantize columns by decreasing Hessian diagonal.
            Defaults to `False`.
        quantization_layer_structure: `{"pre_block_layers": [...],
            "sequential_blocks": [...]}`; defaults to the model's
            `get_quantization_layer_structure("gptq")`.
    """

    def __init__(self, dataset, tokenizer, *, weight_bits=4, num_samples=128, per_channel=True, sequence_length=512,
                 hessian_damping=0.01, group_size=128, symmetric=False, activation_order=False,
                 quantization_layer_structure=None):
        super().__init__()
        if weight_bits not in [2, 3, 4, 8]:
            raise ValueError(f"Unsupported weight_bits {weight_bits}. Supported values are 2, 3, 4, and 8.")
        if num_samples <= 0:
            raise ValueError("num_samples must be a positive integer.")
        if sequence_length <= 0:
            raise ValueError("sequence_length must be a positive integer.")
        if hessian_damping < 0 or hessian_damping > 1:
            raise ValueError("hessian_damping must be between 0 and 1.")
        if group_size < -1 or group_size == 0:
            raise ValueError(
                f"Invalid group_size. Supported values are -1 (whole-tensor) or a positive integer, but got {group_size}."
            )
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.num_samples = num_samples
        self.per_channel = per_channel
        self.sequence_length = sequence_length
        self.hessian_damping = hessian_damping
        self.weight_bits = weight_bits
        self.group_size = group_size
        self.symmetric = symmetric
        self.activation_order = activation_order
        self.quantization_layer_structure = quantization_layer_structure

    def get_config(self):
        return {
            "dataset": None, "tokenizer": None, "weight_bits": self.weight_bits, "num_samples": self.num_samples,
            "per_channel": self.per_channel, "sequence_length": self.sequence_length,
            "hessian_damping": self.hessian_damping, "group_size": self.group_size, "symmetric": self.symmetric,
            "activation_order": self.activation_order,
            "quantization_layer_structure": self.quantization_layer_structure,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def mode(self):
        return "gptq"

    def dtype_policy_string(self):
        return f"gptq/{self.weight_bits}/{self.group_size}"
