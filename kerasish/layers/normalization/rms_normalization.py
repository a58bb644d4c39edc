"""`RMSNormalization`, on `F.rms_norm` when the axes are the trailing ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer
from kerasish.layers.normalization.base_normalization import as_float32
from kerasish.layers.normalization.base_normalization import canonical_axes
from kerasish.layers.normalization.base_normalization import check_axis_arg
from kerasish.utils.argument_validation import check_number


class RMSNormalization(Layer):
    """Root Mean Square normalization (Zhang and Sennrich, 2019):
    `x * rsqrt(mean(square(x), axis) + epsilon) * scale`.

    Computed in float32 and cast back to the input dtype (Keras behaviour).
    Trailing axes run on `F.rms_norm`, other axes on a fused expression.

    Args:
        axis: Integer or list of integers, the axes to normalize over.
            Defaults to -1. Stored as a sorted list after `build` (Keras).
        epsilon: Small float added to the mean square. Defaults to 1e-6.

    Input shape: arbitrary. Output shape: same as input.

    Example:
        >>> y = keras.layers.RMSNormalization()(torch.randn(2, 5, 8))
    """

    _float_inputs = True  # integer inputs are cast to the compute dtype

    def __init__(self, axis=-1, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.axis = check_axis_arg("RMSNormalization", axis)
        self.epsilon = check_number(epsilon, "epsilon", "RMSNormalization", 0.0)

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return ("scale",)

    def build(self, input_shape):
        axes = canonical_axes("RMSNormalization", self.axis, input_shape)
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        shape = tuple(input_shape[a] for a in axes)
        self.scale = self.add_weight(name="scale", shape=shape, initializer="ones")
        rank = len(input_shape)
        # the weights fix the normalized sizes (counted from the end: any leading rank works)
        self.input_spec = InputSpec(axes={a - rank: input_shape[a] for a in axes})
        self._norm_dims = tuple(axes)
        self._trailing = axes == list(range(rank - len(axes), rank))
        self._normalized_shape = shape
        bshape = [1] * rank
        for a in axes:
            bshape[a] = input_shape[a]
        self._bshape = tuple(bshape)

    def _infer_build_shape(self, weight_shapes):
        shape = weight_shapes.get("scale")
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if shape is None or any(a >= 0 for a in axes):
            return None
        out = [None] * (max(-a for a in axes) + 1)
        for a, n in zip(sorted(axes), shape):
            out[a] = n
        return tuple(out)

    def call(self, x):
        dtype = x.dtype
        x = as_float32(x)
        scale = self.scale.to(x.dtype)
        if self._trailing:
            out = F.rms_norm(x, self._normalized_shape, scale, self.epsilon)
        else:
            rrms = torch.rsqrt(x.square().mean(dim=self._norm_dims, keepdim=True) + self.epsilon)
            out = x * rrms * scale.view(self._bshape)
        return out.to(dtype)

    def compute_output_shape(self, input_shape):
        canonical_axes("RMSNormalization", self.axis, input_shape)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config
