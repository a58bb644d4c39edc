"""`PReLU`: parametric ReLU with a learned slope per (unshared) position."""

from __future__ import annotations

import torch.nn.functional as F

from kerasish import constraints
from kerasish import initializers
from kerasish import regularizers
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer


class PReLU(Layer):
    """Parametric Rectified Linear Unit activation layer.

    `f(x) = alpha * x` for `x < 0`, `x` for `x >= 0`, where `alpha` is a
    learned array with the input's shape (batch axis excluded).

    Args:
        alpha_initializer: Initializer for the weights. Defaults to `"Zeros"`.
        alpha_regularizer: Regularizer for the weights. Defaults to `None`.
        alpha_constraint: Constraint for the weights. Defaults to `None`.
        shared_axes: Axes (1-based, batch excluded) along which `alpha` is
            shared, e.g. `[1, 2]` for one slope per channel of an
            `(batch, height, width, channels)` input. Defaults to `None`.

    Input shape: arbitrary, rank fixed at build. Output shape: same.

    Unlike `torch.nn.PReLU` (one slope per channel on axis 1), the slope has
    Keras's shape `input_shape[1:]` with 1s on the shared axes.

    Example:
        >>> layer = keras.layers.PReLU(shared_axes=[1])
        >>> layer(torch.ones(2, 5, 3)).shape
        torch.Size([2, 5, 3])
    """

    _float_inputs = True  # integer/bool inputs are cast to the compute dtype (torch's kernels take floats)

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        elif not isinstance(shared_axes, (list, tuple)):
            self.shared_axes = [shared_axes]
        else:
            self.shared_axes = list(shared_axes)

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return ("alpha",)

    def build(self, input_shape):
        param_shape = list(input_shape[1:])
        for i in self.shared_axes or ():
            param_shape[i - 1] = 1
        self.alpha = self.add_weight(
            shape=param_shape,
            name="alpha",
            initializer=self.alpha_initializer,
            regularizer=self.alpha_regularizer,
            constraint=self.alpha_constraint,
        )
        # alpha fixes every non-shared, non-batch axis (Keras checks only with shared_axes)
        shared = self.shared_axes or ()
        axes = {i: input_shape[i] for i in range(1, len(input_shape)) if i not in shared}
        self.input_spec = InputSpec(ndim=len(input_shape), axes=axes)

    def _infer_build_shape(self, weight_shapes):
        alpha = weight_shapes.get("alpha")
        return None if alpha is None else (None, *alpha)

    def call(self, inputs):
        # Keras: relu(x) - alpha * relu(-x)
        return F.relu(inputs) - self.alpha * F.relu(-inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": constraints.serialize(self.alpha_constraint),
                "shared_axes": self.shared_axes,
            }
        )
        return config
