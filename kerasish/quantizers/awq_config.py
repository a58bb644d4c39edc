"""`keras.quantizers.AWQConfig`: the settings of activation-aware weight
quantization (`model.quantize("awq", config=AWQConfig(...))`)."""

from __future__ import annotations

from kerasish.quantizers.quantization_config import QuantizationConfig


class AWQConfig(QuantizationConfig):
    """AWQ settings (4-bit weights only, as Keras).

    Args:
        dataset, tokenizer: Calibration data, as for `GPTQConfig`.
        weight_bits: Must be 4. Defaults to 4.
        num_samples: Calibration windows. Defaults to 128.
        sequence_length: Tokens per window. Defaults to 512.
        group_size: Input features per scale group; -1 for per-channel.
            Defaults to 128.
        num_grid_points: Steps of the per-channel scale search. Defaults to 20.
        quantization_layer_structure: As for `GPTQConfig`.
    """

    def __init__(self, dataset, tokenizer, *, weight_bits=4, num_samples=128, sequence_length=512, group_size=128,
                 num_grid_points=20, quantization_layer_structure=None):
        super().__init__()
        if weight_bits != 4:
            raise ValueError(f"AWQ only supports 4-bit quantization. Received weight_bits={weight_bits}.")
        if num_samples <= 0:
            raise ValueError("num_samples must be a positive integer.")
        if sequence_length <= 0:
            raise ValueError("sequence_length must be a positive integer.")
        if group_size < -1 or group_size == 0:
            raise ValueError(
                f"Invalid group_size. Supported values are -1 (per-channel) or a positive integer, but got {group_size}."
            )
        if num_grid_points <= 0:
            raise ValueError("num_grid_points must be a positive integer.")
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.weight_bits = weight_bits
        self.num_samples = num_samples
        self.sequence_length = sequence_length
        self.group_size = group_size
        self.num_grid_points = num_grid_points
        self.quantization_layer_structure = quantization_layer_structure

    @property
    def mode(self):
        return "awq"

    def dtype_policy_string(self):
        return f"awq/{self.weight_bits}/{self.group_size}"

    def get_config(self):
        return {
            "dataset": None, "tokenizer": None, "weight_bits": self.weight_bits, "num_samples": self.num_samples,
            "sequence_length": self.sequence_length, "group_size": self.group_size,
            "num_grid_points": self.num_grid_points,
            "quantization_layer_structure": self.quantization_layer_structure,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
