"""`Pipeline`."""

from __future__ import annotations

import torch

from kerasish.layers.layer import Layer
from kerasish.utils import tree


class Pipeline(Layer):
    """Applies a list of layers in sequence (`keras.layers.Pipeline`).

    Meant for preprocessing: unlike `Sequential` it is a plain layer (not a
    model), calls each layer with this call's `training` flag when the layer
    takes one, and passes masks along. The layers are registered submodules
    (`pipeline_layers.0...` in `state_dict`).

    Args:
        layers: A list of layers.
        name: Optional name.

    Example:
        >>> augment = keras.layers.Pipeline([
        ...     keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1)])
        >>> y = augment(torch.rand(2, 16, 16, 3), training=True)
    """

    def __init__(self, layers, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        layers = list(layers)
        for layer in layers:
            if not isinstance(layer, Layer):
                raise ValueError(f"`Pipeline` expects a list of layers. Received an item of type {type(layer)}: {layer}")
        # a registered ModuleList: the layers' weights, state_dict entries and torch mode follow the pipeline's
        self.pipeline_layers = torch.nn.ModuleList(layers).train(False)  # Keras layers start in inference mode
        self.built = True

    @property
    def layers(self):
        return list(self.pipeline_layers)

    def call(self, inputs, training=True, mask=None):
        outputs = inputs
        for layer in self.pipeline_layers:
            kwargs = {}
            if layer._call_has_mask:
                kwargs["mask"] = mask
            if layer._call_has_training and training is not None:
                kwargs["training"] = training
            outputs = layer(inputs, **kwargs)
            inputs = outputs
            mask = tree.map_structure(lambda t: getattr(t, "_keras_mask", None), outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        for layer in self.pipeline_layers:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    def get_config(self):
        from kerasish.saving import serialize_keras_object

        return {"layers": [serialize_keras_object(layer) for layer in self.pipeline_layers], "name": self.name}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from kerasish.layers import deserialize

        layers = config.get("layers")
        if not isinstance(layers, (list, tuple)):
            raise ValueError(
                "`Pipeline` config must contain a `layers` key mapping to a list of serialized layers. "
                f"Received config with layers={layers}."
            )
        config = dict(config)
        config["layers"] = [deserialize(x, custom_objects=custom_objects) for x in layers]
        return cls(**config)
