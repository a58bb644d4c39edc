"""Helpers shared by the normalization layers: axis arguments and the
gamma/beta weight pair that most of them carry."""

from __future__ import annotations

import torch

from kerasish import constraints
from kerasish import initializers
from kerasish import regularizers

# Keras's `backend.epsilon()`: the fuzz factor Keras adds to the masked
# moment denominators of BatchNormalization.
KERAS_BACKEND_EPSILON = 1e-7


def check_axis_arg(layer_name: str, axis):
    """An int, or a list of ints (tuples become lists, as Keras stores them).
    TypeError for anything else."""
    if isinstance(axis, (list, tuple)) and all(isinstance(a, int) and not isinstance(a, bool) for a in axis):
        if not axis:
            raise ValueError(f"`{layer_name}`: `axis` must name at least one axis. Received: axis={axis!r}")
        return list(axis)
    if isinstance(axis, int) and not isinstance(axis, bool):
        return axis
    raise TypeError(
        f"`{layer_name}`: expected an int or a list/tuple of ints for the argument 'axis'. Received: axis={axis!r}"
    )


def canonical_axes(layer_name: str, axis, input_shape) -> list[int]:
    """`axis` (int or list) as sorted non-negative axes of `input_shape`;
    ValueError (Keras's message) when an axis is out of range."""
    rank = len(input_shape)
    axes = axis if isinstance(axis, list) else [axis]
    for a in axes:
        if a >= rank or a < -rank:
            raise ValueError(
                f"`{layer_name}`: axis {a} is out of bounds for input shape {tuple(input_shape)}. Received: axis={axis}"
            )
    out = sorted({a % rank for a in axes})
    if len(out) != len(axes):
        raise ValueError(f"`{layer_name}`: duplicate axes. Received: axis={axis}")
    return out


class GammaBetaMixin:
    """Stores the initializers/regularizers/constraints of `gamma` and `beta`
    and writes them into the config exactly as Keras 3 does."""

    _float_inputs = True  # integer inputs are cast to the compute dtype

    def _set_gamma_beta_args(
        self,
        beta_initializer,
        gamma_initializer,
        beta_regularizer,
        gamma_regularizer,
        beta_constraint,
        gamma_constraint,
    ) -> None:
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)

    def _gamma_beta_config(self) -> dict:
        return {
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }

    def _add_gamma_beta(self, shape, gamma: bool, beta: bool) -> None:
        """Creates `gamma` then `beta` (Keras's order), or sets them to None."""
        self.gamma = None
        self.beta = None
        if gamma:
            self.gamma = self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                trainable=True,
                autocast=False,
            )
        if beta:
            self.beta = self.add_weight(
                shape=shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                trainable=True,
                autocast=False,
            )


def as_float32(t):
    """Half-precision tensors go to float32 (normalization statistics overflow
    in float16/bfloat16, so Keras computes them in float32); others unchanged."""
    if t is not None and t.dtype in (torch.float16, torch.bfloat16):
        return t.float()
    return t
