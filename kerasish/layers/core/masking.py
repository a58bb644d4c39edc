"""`Masking`: masks the timesteps whose features all equal `mask_value`."""

from __future__ import annotations

import torch

from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers.layer import Layer


class Masking(Layer):
    """Masks a sequence by using a mask value to skip timesteps.

    A timestep `inputs[i, t, :]` is masked when all its features equal
    `mask_value`: its output is zeroed and the output mask (`inputs[..., :]
    != mask_value` reduced with `any` over the last axis) is False there, so
    downstream layers that support masking (RNNs, ...) skip it.

    Args:
        mask_value: The value marking padding. Defaults to `0.0`.

    Input shape: `(batch_size, ..., features)`. Output shape: the same; the
    mask has shape `(batch_size, ...)`.

    Example:
        >>> x = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
        >>> keras.layers.Masking()(x)._keras_mask
        tensor([[ True, False]])
    """

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, dict) and mask_value.get("config", None):
            from kerasish.saving import deserialize_keras_object

            mask_value = deserialize_keras_object(mask_value)
        self.mask_value = mask_value
        self.supports_masking = True
        self.built = True

    def compute_mask(self, inputs, mask=None):
        if isinstance(inputs, KerasTensor):  # graph nodes, as Keras's `ops.any(ops.not_equal(...))`
            from kerasish import ops

            return ops.any(ops.not_equal(inputs, self.mask_value), axis=-1)
        return torch.any(inputs != self.mask_value, dim=-1)

    def call(self, inputs):
        keep = torch.any(inputs != self.mask_value, dim=-1, keepdim=True)
        return torch.where(keep, inputs, torch.zeros((), dtype=inputs.dtype, device=inputs.device))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["mask_value"] = self.mask_value
        return config
