"""`Wrapper`: the base of layers that wrap another layer."""

from __future__ import annotations

from kerasish.layers.layer import Layer


class Wrapper(Layer):
    """Abstract wrapper base class (`keras.layers.Wrapper`).

    Wrappers take another layer and augment it (`SpectralNormalization`
    here). The wrapped layer is a registered submodule (`wrapper.layer`), so
    its weights, `state_dict` entries (`layer.kernel`, ...) and torch mode
    follow the wrapper's. This class only stores and builds the layer and
    serializes it; subclasses implement `call`.

    Args:
        layer: The `keras.layers.Layer` instance to wrap.

    Example:
        >>> class Doubled(keras.layers.Wrapper):
        ...     def call(self, x):
        ...         return 2 * self.layer(x)
        >>> Doubled(keras.layers.Dense(3))(torch.rand(2, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Layer {layer} supplied to Wrapper isn't a supported layer type. Please ensure wrapped layer is "
                "a valid Keras layer."
            )
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
            self.layer.built = True

    def call(self, inputs, *args, **kwargs):
        return self.layer(inputs, *args, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        from kerasish.saving import serialize_keras_object

        return {**super().get_config(), "layer": serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from kerasish.layers import deserialize

        config = dict(config)
        layer = deserialize(config.pop("layer"), custom_objects=custom_objects)
        return cls(layer, **config)
