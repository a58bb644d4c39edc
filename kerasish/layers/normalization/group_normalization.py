"""`GroupNormalization`, on `F.group_norm` for channels-first data and a
no-copy grouped view for channels-last data."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer
from kerasish.layers.normalization.base_normalization import GammaBetaMixin
from kerasish.layers.normalization.base_normalization import as_float32
from kerasish.layers.normalization.base_normalization import canonical_axes
from kerasish.utils.argument_validation import check_number


class GroupNormalization(GammaBetaMixin, Layer):
    """Group normalization (Wu and He, 2018): the channels are split into
    `groups`; each group of each example is normalized over its channels and
    all other non-batch axes, then scaled by `gamma` and shifted by `beta`
    (per channel).

    `groups=-1` is instance normalization (`groups` becomes the channel count
    at build, as in Keras). Statistics run in float32. Channels-first input
    (`axis=1`) uses `F.group_norm`; channels-last input is viewed as
    `(batch, ..., groups, channels // groups)` (no copy) and normalized with
    Keras's formula and op order (variance as `E[x^2] - E[x]^2`), so its
    numbers are Keras's bit for bit; `F.group_norm`'s differ by a few ulp.

    Args:
        groups: Number of groups; must divide the channel count. Defaults to 32.
        axis: Integer, the channel axis. Defaults to -1.
        epsilon: Small float added to the variance. Defaults to 1e-3.
        center: Whether to add `beta`. Defaults to True.
        scale: Whether to multiply by `gamma`. Defaults to True.
        beta_initializer, gamma_initializer: Defaults to zeros, ones.
        beta_regularizer, gamma_regularizer, beta_constraint,
            gamma_constraint: Optional. Defaults to None.

    Input shape: arbitrary (rank >= 2). Output shape: same as input.

    Example:
        >>> gn = keras.layers.GroupNormalization(groups=2)
        >>> y = gn(torch.randn(2, 5, 5, 4))
    """

    def __init__(
        self,
        groups=32,
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
        if not isinstance(groups, int) or isinstance(groups, bool) or (groups <= 0 and groups != -1):
            raise ValueError(
                "Received an invalid value for argument `groups`, expected a positive integer "
                f"(or `-1` for instance normalization). Received: groups={groups}"
            )
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"`GroupNormalization`: expected an integer `axis`. Received: axis={axis!r}")
        kwargs["autocast"] = False  # Keras: inputs are not cast, stats run in float32
        super().__init__(**kwargs)
        self.supports_masking = True
        self.groups = groups
        self.axis = axis
        self.epsilon = check_number(epsilon, "epsilon", "GroupNormalization", 0.0)
        self.center = center
        self.scale = scale
        self._set_gamma_beta_args(
            beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint
        )

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return tuple(n for n, on in (("gamma", self.scale), ("beta", self.center)) if on)

    def build(self, input_shape):
        axis = canonical_axes("GroupNormalization", self.axis, input_shape)[0]
        dim = input_shape[axis]
        if dim is None:
            raise ValueError(
                f"Axis {self.axis} of input tensor should have a defined dimension but the layer received "
                f"an input with shape {tuple(input_shape)}."
            )
        if self.groups == -1:
            self.groups = dim
        if dim < self.groups:
            raise ValueError(f"Number of groups ({self.groups}) cannot be more than the number of channels ({dim}).")
        if dim % self.groups != 0:
            raise ValueError(f"Number of groups ({self.groups}) must be a multiple of the number of channels ({dim}).")
        self.input_spec = InputSpec(ndim=len(input_shape), axes={self.axis: dim})
        self._add_gamma_beta((dim,), self.scale, self.center)
        self._set_rank(len(input_shape), axis, dim)
        if self.__dict__.pop("_rank_unknown", False):
            # built from a state_dict: the rank is the first call's
            self.input_spec = InputSpec(min_ndim=2, axes={self.axis: dim})
            self._rank = None

    def _set_rank(self, rank, axis, dim):
        self._rank = rank
        self._caxis = axis
        self._torch_native = axis == 1
        # grouped view: the channel axis split into (groups, dim // groups)
        self._group_dims = tuple(i for i in range(1, rank + 1) if i != axis)
        bshape = [1] * (rank + 1)
        bshape[axis], bshape[axis + 1] = self.groups, dim // self.groups
        self._bshape = tuple(bshape)
        self._split = (self.groups, dim // self.groups)

    def _infer_build_shape(self, weight_shapes):
        shape = weight_shapes.get("gamma") or weight_shapes.get("beta")
        if shape is None or self.axis != -1:
            return None
        self._rank_unknown = True  # the weights do not tell the input rank
        return (None, shape[0])

    def call(self, inputs):
        x = as_float32(inputs)
        if self._rank is None:
            self._set_rank(x.dim(), x.dim() - 1, self._split[0] * self._split[1])
        gamma = as_float32(self.gamma)
        beta = as_float32(self.beta)
        if self._torch_native:
            if x.dtype is torch.float64:  # F.group_norm needs one dtype; Keras promotes to float64 here
                gamma = gamma.double() if gamma is not None else None
                beta = beta.double() if beta is not None else None
            out = F.group_norm(x, self.groups, gamma, beta, self.epsilon)
        else:
            a = self._caxis
            xg = x.unflatten(a, self._split)
            # Keras's moments (`E[x^2] - E[x]^2`) and op order, so the numbers are Keras's
            mean = torch.mean(xg, dim=self._group_dims, keepdim=True)
            var = torch.mean(torch.square(xg), dim=self._group_dims, keepdim=True) - torch.square(mean)
            inv = torch.rsqrt(var + self.epsilon)
            if gamma is not None:
                inv = inv * gamma.view(self._bshape)
            shift = -mean * inv
            if beta is not None:
                shift = shift + beta.view(self._bshape)
            out = (xg * inv + shift).flatten(a, a + 1)
        return out.to(self._compute_torch_dtype)

    def compute_output_shape(self, input_shape):
        canonical_axes("GroupNormalization", self.axis, input_shape)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "groups": self.groups,
                "axis": self.axis,
                "epsilon": self.epsilon,
                "center": self.center,
                "scale": self.scale,
            }
        )
        config.update(self._gamma_beta_config())
        return config
