"""InceptionResNetV2 (`keras.applications.inception_resnet_v2`), built as Keras 3.15 builds it.

Reference: [Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning](https://arxiv.org/abs/1602.07261) (AAAI 2017).
Inputs are preprocessed with `preprocess_input` ("tf" mode: [-1, 1]).
Input at least 75x75.
"""

from __future__ import annotations

from kerasish import layers
from kerasish.applications import _common
from kerasish.applications import imagenet_utils
from kerasish.applications._weights import resolve_weights
from kerasish.applications.efficientnet import _check_weights, _image_input, _load_weights, _model_inputs
from kerasish.backend import config as _config
from kerasish.layers.layer import Layer
from kerasish.models.functional import Functional

__all__ = ["InceptionResNetV2", "preprocess_input", "decode_predictions"]

BASE_WEIGHT_URL = "https://storage.googleapis.com/tensorflow/keras-applications/inception_resnet_v2/"
_WEIGHT_FILES = {  # include_top -> (file, md5)
    True: ("inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5", "e693bd0210a403b3192acc6073ad2e96"),
    False: ("inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5", "d19885ff4a710c122648d3b5c3b684e4"),
}


_channel_axis = _common.channel_axis


def conv2d_bn(x, filters, kernel_size, strides=1, padding="same", activation="relu", use_bias=False, name=None):
    """Conv2D, then (without a bias) BatchNormalization with no scale, then the activation."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias, name=name)(x)
    if not use_bias:
        x = layers.BatchNormalization(axis=_channel_axis(), scale=False,
                                      name=None if name is None else f"{name}_bn")(x)
    if activation is not None:
        x = layers.Activation(activation, name=None if name is None else f"{name}_ac")(x)
    return x


class CustomScaleLayer(Layer):
    """`inputs[0] + inputs[1] * scale`: the scaled residual sum of an Inception-ResNet block."""

    _keras_module = "keras.src.applications.inception_resnet_v2"  # configs name Keras's module

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        return inputs[0] + inputs[1] * self.scale

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale})
        return config


# block type -> branches, each a list of (filters, kernel) convs from the block input
_BLOCK_BRANCHES = {
    "block35": [[(32, 1)], [(32, 1), (32, 3)], [(32, 1), (48, 3), (64, 3)]],
    "block17": [[(192, 1)], [(128, 1), (160, [1, 7]), (192, [7, 1])]],
    "block8": [[(192, 1)], [(192, 1), (224, [1, 3]), (256, [3, 1])]],
}


def inception_resnet_block(x, scale, block_type, block_idx, activation="relu"):
    """Branches concatenated, a 1x1 conv back to the input width, `x + scale * up`, activation."""
    if block_type not in _BLOCK_BRANCHES:
        raise ValueError(
            'Unknown Inception-ResNet block type. Expects "block35", "block17" or "block8", '
            f"but got: {block_type}"
        )
    branches = []
    for branch in _BLOCK_BRANCHES[block_type]:
        y = x
        for filters, kernel in branch:
            y = conv2d_bn(y, filters, kernel)
        branches.append(y)
    block_name = f"{block_type}_{block_idx}"
    channel_axis = _channel_axis()
    mixed = layers.Concatenate(axis=channel_axis, name=f"{block_name}_mixed")(branches)
    up = conv2d_bn(mixed, x.shape[channel_axis], 1, activation=None, use_bias=True, name=f"{block_name}_conv")
    x = CustomScaleLayer(scale)([x, up])
    if activation is not None:
        x = layers.Activation(activation, name=f"{block_name}_ac")(x)
    return x


def InceptionResNetV2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                      classes=1000, classifier_activation="softmax", name="inception_resnet_v2"):
    """Instantiates the Inception-ResNet v2 architecture (Keras's `keras.applications.InceptionResNetV2`).

    Call `keras.applications.inception_resnet_v2.preprocess_input` on the inputs first.

    Args:
        include_top: Whether to include the classifier (GlobalAveragePooling2D,
            Dense "predictions"). Defaults to True.
        weights: None, "imagenet" (Keras's file, read from the Keras cache;
            kerasish does not download) or the path of a weights file.
            Defaults to "imagenet".
        input_tensor: Optional Keras tensor to use as the image input.
        input_shape: Optional shape tuple, only with `include_top=False`
            (3 channels, at least 75x75). Defaults to (299, 299, 3) with a top.
        pooling: None, "avg" or "max" for a headless model.
        classes: Number of classes (1000 with ImageNet weights and a top).
        classifier_activation: Activation of "predictions"; None for logits.
            Pretrained weights allow only None or "softmax".
        name: The model's name. Defaults to "inception_resnet_v2".

    Returns:
        A functional `keras.Model`.
    """
    _check_weights(weights, include_top, classes,
                   message='If using `weights="imagenet"` with `include_top=True`, `classes` should be 1000. '
                           f"Received classes={classes}")
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=299, min_size=75, data_format=_config.image_data_format(),
        require_flatten=include_top, weights=weights,
    )
    weights_path = weights
    if weights == "imagenet":  # resolved before building: a missing file fails at once
        fname, file_hash = _WEIGHT_FILES[bool(include_top)]
        weights_path = resolve_weights(weights, fname, BASE_WEIGHT_URL + fname, file_hash=file_hash)
    img_input = _image_input(input_tensor, input_shape)
    channel_axis = _channel_axis()

    # stem
    x = conv2d_bn(img_input, 32, 3, strides=2, padding="valid")
    x = conv2d_bn(x, 32, 3, padding="valid")
    x = conv2d_bn(x, 64, 3)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = conv2d_bn(x, 80, 1, padding="valid")
    x = conv2d_bn(x, 192, 3, padding="valid")
    x = layers.MaxPooling2D(3, strides=2)(x)

    # mixed 5b (Inception-A)
    branch_0 = conv2d_bn(x, 96, 1)
    branch_1 = conv2d_bn(conv2d_bn(x, 48, 1), 64, 5)
    branch_2 = conv2d_bn(conv2d_bn(conv2d_bn(x, 64, 1), 96, 3), 96, 3)
    branch_pool = conv2d_bn(layers.AveragePooling2D(3, strides=1, padding="same")(x), 64, 1)
    x = layers.Concatenate(axis=channel_axis, name="mixed_5b")([branch_0, branch_1, branch_2, branch_pool])
    for block_idx in range(1, 11):
        x = inception_resnet_block(x, scale=0.17, block_type="block35", block_idx=block_idx)

    # mixed 6a (Reduction-A)
    branch_0 = conv2d_bn(x, 384, 3, strides=2, padding="valid")
    branch_1 = conv2d_bn(conv2d_bn(conv2d_bn(x, 256, 1), 256, 3), 384, 3, strides=2, padding="valid")
    branch_pool = layers.MaxPooling2D(3, strides=2, padding="valid")(x)
    x = layers.Concatenate(axis=channel_axis, name="mixed_6a")([branch_0, branch_1, branch_pool])
    for block_idx in range(1, 21):
        x = inception_resnet_block(x, scale=0.1, block_type="block17", block_idx=block_idx)

    # mixed 7a (Reduction-B)
    branch_0 = conv2d_bn(conv2d_bn(x, 256, 1), 384, 3, strides=2, padding="valid")
    branch_1 = conv2d_bn(conv2d_bn(x, 256, 1), 288, 3, strides=2, padding="valid")
    branch_2 = conv2d_bn(conv2d_bn(conv2d_bn(x, 256, 1), 288, 3), 320, 3, strides=2, padding="valid")
    branch_pool = layers.MaxPooling2D(3, strides=2, padding="valid")(x)
    x = layers.Concatenate(axis=channel_axis, name="mixed_7a")([branch_0, branch_1, branch_2, branch_pool])
    for block_idx in range(1, 10):
        x = inception_resnet_block(x, scale=0.2, block_type="block8", block_idx=block_idx)
    x = inception_resnet_block(x, scale=1.0, activation=None, block_type="block8", block_idx=10)

    x = conv2d_bn(x, 1536, 1, name="conv_7b")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D()(x)

    model = Functional(_model_inputs(input_tensor, img_input), x, name=name)
    return _load_weights(model, weights_path, None, None)


def preprocess_input(x, data_format=None):
    """ImageNet "tf" preprocessing: pixels scaled to [-1, 1]."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions (`imagenet_utils.decode_predictions`)."""
    return imagenet_utils.decode_predictions(preds, top=top)
