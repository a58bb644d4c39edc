"""`LayerNormalization`, on `F.layer_norm` when the axes are the trailing ones."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer
from kerasish.layers.normalization.base_normalization import GammaBetaMixin
from kerasish.layers.normalization.base_normalization import as_float32
from kerasish.layers.normalization.base_normalization import canonical_axes
from kerasish.layers.normalization.base_normalization import check_axis_arg
from kerasish.utils.argument_validation import check_number


class LayerNormalization(GammaBetaMixin, Layer):
    """Layer normalization (Ba et al., 2016): each example is normalized over
    `axis`, then scaled by `gamma` and shifted by `beta` (both spanning `axis`).

    Statistics are computed in float32 (half-precision inputs included) and the
    output is cast to the layer's compute dtype, as in Keras. Trailing axes run
    on `F.layer_norm`; any other set of axes (e.g. `axis=1` on 3D input, which
    crashes Keras 3's torch backend) uses an equivalent fused expression with
    Keras 2's definition.

    Args:
        axis: Integer or list of integers, the axes to normalize over.
            Defaults to -1. After `build` it is stored as a sorted list
            (Keras behaviour, visible in `get_config()`).
        epsilon: Small float added to the variance. Defaults to 1e-3.
        center: Whether to add `beta`. Defaults to True.
        scale: Whether to multiply by `gamma`. Defaults to True.
        rms_scaling: Deprecated Keras option: scale by `rsqrt(variance + eps)`
            without centering. Defaults to False.
        beta_initializer, gamma_initializer: Defaults to zeros, ones.
        beta_regularizer, gamma_regularizer, beta_constraint,
            gamma_constraint: Optional. Defaults to None.

    Input shape: arbitrary. Output shape: same as input.

    Example:
        >>> ln = keras.layers.LayerNormalization()
        >>> y = ln(torch.randn(2, 5, 8))
    """

    def __init__(
        self,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        rms_scaling = kwargs.pop("rms_scaling", False)
        if rms_scaling:
            warnings.warn(
                "You passed `rms_scaling=True`, which is deprecated. This argument incorrectly scales the "
                "input by the variance, not the root mean square. To correctly use RMS Normalization, "
                "please use `keras.layers.RMSNormalization` instead.",
                stacklevel=2,
            )
        kwargs["autocast"] = False  # Keras: inputs are not cast, stats run in float32
        super().__init__(**kwargs)
        self.axis = check_axis_arg("LayerNormalization", axis)
        self.epsilon = check_number(epsilon, "epsilon", "LayerNormalization", 0.0)
        self.center = center
        self.scale = scale
        self.rms_scaling = rms_scaling
        self._set_gamma_beta_args(
            beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint
        )
        self.supports_masking = True

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        gamma = self.scale or self.rms_scaling
        beta = self.center and not self.rms_scaling
        return tuple(n for n, on in (("gamma", gamma), ("beta", beta)) if on)

    def build(self, input_shape):
        axes = canonical_axes("LayerNormalization", self.axis, input_shape)
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        shape = tuple(input_shape[a] for a in axes)
        self._add_gamma_beta(shape, self.scale or self.rms_scaling, self.center and not self.rms_scaling)
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
        shape = weight_shapes.get("gamma") or weight_shapes.get("beta")
        if shape is None:
            return None
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if any(a >= 0 for a in axes):
            return None
        rank = max(-a for a in axes) + 1
        out = [None] * rank
        for a, n in zip(sorted(axes), shape):
            out[a] = n
        return tuple(out)

    def call(self, inputs):
        x = as_float32(inputs)
        # the weights read from the registry (no `__getattr__`: they are never autocast, see `build`)
        params = self.__dict__["_parameters"]
        gamma = as_float32(params["gamma"] if "gamma" in params else self.gamma)  # (scale=False: None)
        beta = as_float32(params["beta"] if "beta" in params else self.beta)
        eps = self.epsilon
        # Keras computes in the input's dtype (float32 at least), the weights cast to it: float64
        # weights given float32 inputs too (`.double()`; F.layer_norm would refuse the mix)
        if gamma is not None and gamma.dtype is not x.dtype:
            gamma = gamma.to(x.dtype)
        if beta is not None and beta.dtype is not x.dtype:
            beta = beta.to(x.dtype)
        if self.rms_scaling:
            var = torch.var(x, dim=self._norm_dims, correction=0, keepdim=True)
            out = x * torch.rsqrt(var + eps)
            if gamma is not None:
                out = out * gamma.view(self._bshape)
        elif self._trailing:
            out = F.layer_norm(x, self._normalized_shape, gamma, beta, eps)
        else:
            var, mean = torch.var_mean(x, dim=self._norm_dims, correction=0, keepdim=True)
            inv = torch.rsqrt(var + eps)
            if gamma is not None:
                inv = inv * gamma.view(self._bshape)
            shift = -mean * inv
            if beta is not None:
                shift = shift + beta.view(self._bshape)
            out = torch.addcmul(shift, x, inv)
        dtype = self._compute_torch_dtype
        return out if out.dtype is dtype else out.to(dtype)

    def compute_output_shape(self, input_shape):
        canonical_axes("LayerNormalization", self.axis, input_shape)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "epsilon": self.epsilon,
                "center": self.center,
                "scale": self.scale,
                "rms_scaling": self.rms_scaling,
            }
        )
        config.update(self._gamma_beta_config())
        return config
