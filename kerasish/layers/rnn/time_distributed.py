"""`TimeDistributed`: applies a layer to every temporal slice of an input."""

from __future__ import annotations

from kerasish.layers.layer import Layer
from kerasish.layers.rnn.stacked_rnn_cells import deserialize_layer
from kerasish.utils import tree


class TimeDistributed(Layer):
    """Applies `layer` to every temporal slice (axis 1) of the input.

    The batch and time axes are merged, `layer` runs once on
    `(batch * timesteps, ...)`, and the result is reshaped back: one call of
    the inner layer instead of Keras's loop over time steps. Same numbers,
    except for layers whose result depends on the whole batch (a
    `BatchNormalization` in training sees all time steps at once, where
    Keras updates its statistics once per step).

    Args:
        layer: A `keras.layers.Layer` instance.

    Call arguments:
        inputs: `(batch, timesteps, ...)`, at least 3-D.
        training: Passed to the inner layer.
        mask: `(batch, timesteps, ...)` mask, passed (reshaped) to the inner
            layer when it takes one; passed through to the output.

    Output shape: `(batch, timesteps, *layer_output_shape[1:])`.

    Example:
        >>> layer = keras.layers.TimeDistributed(keras.layers.LSTM(4))
        >>> layer(torch.randn(2, 3, 5, 6)).shape
        torch.Size([2, 3, 4])
    """

    _keras_module = "keras.layers"

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Please initialize `TimeDistributed` layer with a `keras.layers.Layer` instance. Received: {layer}"
            )
        super().__init__(**kwargs)
        self.layer = layer
        self.supports_masking = True

    @staticmethod
    def _child_input_shape(input_shape):
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 3:
            raise ValueError(
                "`TimeDistributed` Layer should be passed an `input_shape` with at least 3 dimensions, "
                f"received: {input_shape}"
            )
        return (input_shape[0], *input_shape[2:])

    def build(self, input_shape):
        child = self._child_input_shape(tuple(input_shape))
        if not self.layer.built:
            self.layer.build(child)

    def compute_output_shape(self, input_shape):
        child = self.layer.compute_output_shape(self._child_input_shape(tuple(input_shape)))
        return (child[0], input_shape[1], *child[1:])

    def call(self, inputs, training=None, mask=None):
        if inputs.ndim < 3:
            raise ValueError(
                "`TimeDistributed` Layer should be passed an `input_shape` with at least 3 dimensions, "
                f"received: {tuple(inputs.shape)}"
            )
        batch, steps = inputs.shape[0], inputs.shape[1]
        kwargs = {}
        if mask is not None:
            if mask.ndim < 2:
                raise ValueError(
                    "The `mask` passed to the `TimeDistributed` layer must be at least 2D (e.g., "
                    f"`(batch_size, timesteps)`), but it has {mask.ndim} dimension(s) with shape {tuple(mask.shape)}."
                )
            if tuple(mask.shape[:2]) != (batch, steps):
                raise ValueError(
                    f"The `mask` passed to the `TimeDistributed` layer has a shape {tuple(mask.shape)} that is "
                    f"incompatible with the input shape {tuple(inputs.shape)}. The first two dimensions of the "
                    "mask (batch size and timesteps) must match the input's first two dimensions. Expected mask "
                    f"shape prefix: ({batch}, {steps})."
                )
            if self.layer._call_has_mask:
                kwargs["mask"] = mask.reshape(batch * steps, *mask.shape[2:])
        if self.layer._call_has_training:
            kwargs["training"] = training
        outputs = self.layer(inputs.reshape(batch * steps, *inputs.shape[2:]), **kwargs)
        return tree.map_structure(lambda y: y.reshape(batch, steps, *y.shape[1:]), outputs)

    def get_config(self) -> dict:
        from kerasish.saving import serialize_keras_object

        return {**super().get_config(), "layer": serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = deserialize_layer(config.pop("layer"))
        return cls(layer, **config)
