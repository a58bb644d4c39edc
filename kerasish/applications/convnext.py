"""ConvNeXt Tiny/Small/Base/Large/XLarge (`keras.applications.convnext`), built as Keras 3.15.

Reference: [A ConvNet for the 2020s](https://arxiv.org/abs/2201.03545) (CVPR 2022).

Preprocessing is inside the model (`include_preprocessing=True`: a
Normalization with the ImageNet mean/variance in [0, 255] units), so
`preprocess_input` is a pass-through. channels_last only, as in Keras. The
stem and the downsampling blocks are nested `Sequential` models and each
residual sum is a `+` on symbolic tensors, as in Keras, so layer names,
weight paths and configs match Keras's.
"""

from __future__ import annotations

import numpy as np
import torch

from kerasish import initializers, layers
from kerasish.applications import imagenet_utils
from kerasish.applications._weights import resolve_weights
from kerasish.applications.efficientnet import _check_weights, _image_input, _load_weights
from kerasish.backend import config as _config
from kerasish.backend import get_uid
from kerasish.layers.layer import Layer
from kerasish.models import Sequential
from kerasish.models.functional import Functional
from kerasish.utils.graph_utils import get_source_inputs

__all__ = [
    "ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge",
    "preprocess_input", "decode_predictions",
]

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/convnext/"

# (top, notop) sha256 of Keras's weight files.
WEIGHTS_HASHES = {
    "convnext_tiny": ("8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff",
                      "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
    "convnext_small": ("ce1277d8f1ee5a0ef0e171469089c18f5233860ceaf9b168049cb9263fd7483c",
                       "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab"),
    "convnext_base": ("52cbb006d3dadd03f6e095a8ca1aca47aecdd75acb4bc74bce1f5c695d0086e6",
                      "40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45"),
    "convnext_large": ("070c5ed9ed289581e477741d3b34beffa920db8cf590899d6d2c67fba2a198a6",
                       "96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd"),
    "convnext_xlarge": ("c1f5ccab661354fc3a79a10fa99af82f0fbf10ec65cb894a3ae0815f17a889ee",
                        "de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05"),
}

MODEL_CONFIGS = {
    "tiny": {"depths": [3, 3, 9, 3], "projection_dims": [96, 192, 384, 768], "default_size": 224},
    "small": {"depths": [3, 3, 27, 3], "projection_dims": [96, 192, 384, 768], "default_size": 224},
    "base": {"depths": [3, 3, 27, 3], "projection_dims": [128, 256, 512, 1024], "default_size": 224},
    "large": {"depths": [3, 3, 27, 3], "projection_dims": [192, 384, 768, 1536], "default_size": 224},
    "xlarge": {"depths": [3, 3, 27, 3], "projection_dims": [256, 512, 1024, 2048], "default_size": 224},
}

# LayerNormalization epsilon of every ConvNeXt norm (the paper's 1e-6).
_LN_EPSILON = 1e-6


class StochasticDepth(Layer):
    """Drops the whole residual branch of a sample with probability `drop_path_rate`
    in training (survivors scaled by 1 / keep probability); identity otherwise.

    Args:
        drop_path_rate: Probability of dropping a sample's branch, in [0, 1].
    """

    # configs name Keras's module, as Keras writes it; `from_config` finds the class there
    _keras_module = "keras.src.applications.convnext"

    def __init__(self, drop_path_rate, **kwargs):
        super().__init__(**kwargs)
        self.drop_path_rate = drop_path_rate

    def call(self, x, training=None):
        if not training:
            return x
        keep_prob = 1 - self.drop_path_rate
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = torch.floor(keep_prob + torch.rand(shape, dtype=x.dtype, device=x.device))
        return (x / keep_prob) * mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"drop_path_rate": self.drop_path_rate})
        return config


class LayerScale(Layer):
    """Multiplies the input by a learned per-channel scale `gamma`, initialised to
    `init_values` ([CaiT](https://arxiv.org/abs/2103.17239)).

    Args:
        init_values: Initial value of the scale.
        projection_dim: Number of channels (size of `gamma`).
    """

    _keras_module = "keras.src.applications.convnext"

    def __init__(self, init_values, projection_dim, **kwargs):
        super().__init__(**kwargs)
        self.init_values = init_values
        self.projection_dim = projection_dim

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(self.projection_dim,),
                                     initializer=initializers.Constant(self.init_values), trainable=True)

    def call(self, x):
        return x * self.gamma

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"init_values": self.init_values, "projection_dim": self.projection_dim})
        return config


def ConvNeXtBlock(projection_dim, drop_path_rate=0.0, layer_scale_init_value=1e-6, name=None):
    """Depthwise 7x7 conv, LayerNorm, Dense 4x (GELU), Dense back, LayerScale,
    stochastic depth (a linear Activation when the rate is 0), residual `+`."""
    if name is None:
        name = f"prestem{get_uid('prestem')}"

    def apply(inputs):
        x = layers.Conv2D(filters=projection_dim, kernel_size=7, padding="same", groups=projection_dim,
                          name=f"{name}_depthwise_conv")(inputs)
        x = layers.LayerNormalization(epsilon=_LN_EPSILON, name=f"{name}_layernorm")(x)
        x = layers.Dense(4 * projection_dim, name=f"{name}_pointwise_conv_1")(x)
        x = layers.Activation("gelu", name=f"{name}_gelu")(x)
        x = layers.Dense(projection_dim, name=f"{name}_pointwise_conv_2")(x)
        if layer_scale_init_value is not None:
            x = LayerScale(layer_scale_init_value, projection_dim, name=f"{name}_layer_scale")(x)
        if drop_path_rate:
            last = StochasticDepth(drop_path_rate, name=f"{name}_stochastic_depth")
        else:
            last = layers.Activation("linear", name=f"{name}_identity")
        return inputs + last(x)

    return apply


def PreStem(name=None):
    """Normalizes [0, 255] inputs with the ImageNet-1k mean and std."""
    if name is None:
        name = f"prestem{get_uid('prestem')}"

    def apply(x):
        return layers.Normalization(
            mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
            variance=[(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2],
            name=f"{name}_prestem_normalization",
        )(x)

    return apply


def Head(num_classes=1000, classifier_activation=None, name=None):
    """Global average pooling, LayerNorm, Dense classifier."""
    if name is None:
        name = str(get_uid("head"))

    def apply(x):
        x = layers.GlobalAveragePooling2D(name=f"{name}_head_gap")(x)
        x = layers.LayerNormalization(epsilon=_LN_EPSILON, name=f"{name}_head_layernorm")(x)
        return layers.Dense(num_classes, activation=classifier_activation, name=f"{name}_head_dense")(x)

    return apply


def ConvNeXt(depths, projection_dims, drop_path_rate=0.0, layer_scale_init_value=1e-6, default_size=224,
             name="convnext", include_preprocessing=True, include_top=True, weights=None, input_tensor=None,
             input_shape=None, pooling=None, classes=1000, classifier_activation="softmax", weights_name=None):
    """Builds a ConvNeXt from its stage depths and widths (Keras's `ConvNeXt`).

    `drop_path_rate` is the largest stochastic-depth rate, spread linearly over
    the blocks; `layer_scale_init_value=None` leaves LayerScale out.
    """
    if _config.image_data_format() == "channels_first":
        raise ValueError(
            "ConvNeXt does not support the `channels_first` image data format. Switch to `channels_last` by "
            "editing your local config file at ~/.keras/keras.json"
        )
    _check_weights(weights, include_top, classes,
                   message='If using `weights="imagenet"` with `include_top=True`, `classes` should be 1000. '
                           f"Received classes={classes}")
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=default_size, min_size=32, data_format=_config.image_data_format(),
        require_flatten=include_top, weights=weights,
    )
    img_input = _image_input(input_tensor, input_shape)
    if input_tensor is not None:
        inputs = get_source_inputs(input_tensor)[0]
        x = input_tensor
    else:
        inputs = x = img_input

    if include_preprocessing:
        channel_axis = 3 if _config.image_data_format() == "channels_last" else 1
        if input_shape[channel_axis - 1] == 3:
            x = PreStem(name=name)(x)

    stem = Sequential([
        layers.Conv2D(projection_dims[0], kernel_size=4, strides=4, name=f"{name}_stem_conv"),
        layers.LayerNormalization(epsilon=_LN_EPSILON, name=f"{name}_stem_layernorm"),
    ], name=f"{name}_stem")
    downsample_layers = [stem]
    for i in range(3):
        downsample_layers.append(Sequential([
            layers.LayerNormalization(epsilon=_LN_EPSILON, name=f"{name}_downsampling_layernorm_{i}"),
            layers.Conv2D(projection_dims[i + 1], kernel_size=2, strides=2, name=f"{name}_downsampling_conv_{i}"),
        ], name=f"{name}_downsampling_block_{i}"))

    # stochastic depth rates spread linearly over all blocks (the original code's schedule)
    depth_drop_rates = [float(r) for r in np.linspace(0.0, drop_path_rate, sum(depths))]
    cur = 0
    for i in range(4):
        x = downsample_layers[i](x)
        for j in range(depths[i]):
            x = ConvNeXtBlock(projection_dim=projection_dims[i], drop_path_rate=depth_drop_rates[cur + j],
                              layer_scale_init_value=layer_scale_init_value, name=f"{name}_stage_{i}_block_{j}")(x)
        cur += depths[i]

    if include_top:
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = Head(num_classes=classes, classifier_activation=classifier_activation, name=name)(x)
    else:
        if pooling == "avg":
            x = layers.GlobalAveragePooling2D()(x)
        elif pooling == "max":
            x = layers.GlobalMaxPooling2D()(x)
        x = layers.LayerNormalization(epsilon=_LN_EPSILON)(x)

    model = Functional(inputs=inputs, outputs=x, name=name)

    if weights == "imagenet":
        expected = MODEL_CONFIGS[weights_name.split("convnext_")[-1]]
        if depths != expected["depths"] or projection_dims != expected["projection_dims"]:
            raise ValueError(
                f"Architecture configuration does not match {weights_name} variant. When using pre-trained "
                "weights, the model architecture must match the pre-trained configuration exactly. Expected "
                f"depths: {expected['depths']}, got: {depths}. Expected projection_dims: "
                f"{expected['projection_dims']}, got: {projection_dims}."
            )
        if weights_name not in name:
            raise ValueError(
                f'Model name "{name}" does not match weights variant "{weights_name}". When using imagenet '
                f'weights, model name must contain the weights variant (e.g., "convnext_'
                f'{weights_name.split("convnext_")[-1]}").'
            )
        suffix, file_hash = (".h5", WEIGHTS_HASHES[weights_name][0]) if include_top else (
            "_notop.h5", WEIGHTS_HASHES[weights_name][1])
        path = resolve_weights(weights, name + suffix, BASE_WEIGHTS_PATH + name + suffix, file_hash=file_hash)
        model.load_weights(path)
        return model
    return _load_weights(model, weights, None, None)


_DOC = """Instantiates the {name} architecture (Keras's `keras.applications.{name}`).

    Feed float or uint8 pixels in [0, 255]: with `include_preprocessing=True`
    the model normalizes them itself.

    Args:
        include_top: Whether to include the head (pooling, LayerNorm, Dense).
            Defaults to True.
        include_preprocessing: Whether to include the ImageNet Normalization
            layer (for 3-channel inputs). Defaults to True.
        weights: None, "imagenet" (Keras's file, read from the Keras cache;
            kerasish does not download) or the path of a weights file.
            Defaults to "imagenet".
        input_tensor: Optional Keras tensor to use as the image input.
        input_shape: Optional shape tuple, only with `include_top=False`.
        pooling: None, "avg" or "max" for a headless model (a LayerNorm
            follows, as in Keras).
        classes: Number of classes (1000 with ImageNet weights and a top).
        classifier_activation: Activation of the head's Dense; None for
            logits. Pretrained weights allow only None or "softmax".
        name: The model's name. Defaults to "{lname}".

    Returns:
        A functional `keras.Model`.
"""


def _variant(size):
    model_name = f"convnext_{size}"

    def builder(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None,
                input_shape=None, pooling=None, classes=1000, classifier_activation="softmax", name=model_name):
        cfg = MODEL_CONFIGS[size]
        return ConvNeXt(
            weights_name=model_name, depths=cfg["depths"], projection_dims=cfg["projection_dims"],
            drop_path_rate=0.0, layer_scale_init_value=1e-6, default_size=cfg["default_size"], name=name,
            include_top=include_top, include_preprocessing=include_preprocessing, weights=weights,
            input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
            classifier_activation=classifier_activation,
        )

    builder.__name__ = builder.__qualname__ = "ConvNeXt" + {"xlarge": "XLarge"}.get(size, size.capitalize())
    builder.__doc__ = _DOC.format(name=builder.__name__, lname=model_name)
    return builder


ConvNeXtTiny = _variant("tiny")
ConvNeXtSmall = _variant("small")
ConvNeXtBase = _variant("base")
ConvNeXtLarge = _variant("large")
ConvNeXtXLarge = _variant("xlarge")


def preprocess_input(x, data_format=None):
    """A pass-through, kept for compatibility: ConvNeXt preprocesses inside the model."""
    return x


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions (`imagenet_utils.decode_predictions`)."""
    return imagenet_utils.decode_predictions(preds, top=top)
