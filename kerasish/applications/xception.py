"""Xception (Keras 3's `keras.applications.xception`).

Reference: [Xception: Deep Learning with Depthwise Separable Convolutions](https://arxiv.org/abs/1610.02357)
(CVPR 2017).
"""

from __future__ import annotations

from kerasish import layers
from kerasish.applications import _common
from kerasish.applications import _weights
from kerasish.applications import imagenet_utils

WEIGHTS_PATH = (
    "https://storage.googleapis.com/tensorflow/keras-applications/xception/"
    "xception_weights_tf_dim_ordering_tf_kernels.h5"
)
WEIGHTS_PATH_NO_TOP = (
    "https://storage.googleapis.com/tensorflow/keras-applications/xception/"
    "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
_FILES = (
    ("xception_weights_tf_dim_ordering_tf_kernels.h5", WEIGHTS_PATH, "0a58e3b7378bc2990ea3b43d5981f1f6"),
    ("xception_weights_tf_dim_ordering_tf_kernels_notop.h5", WEIGHTS_PATH_NO_TOP, "b0042744bf5b25fce3cb969f33bebb97"),
)
# Keras's Xception message has no "Received" part
_WEIGHTS_ERROR = (
    "The `weights` argument should be either `None` (random initialization), 'imagenet' (pre-training on "
    "ImageNet), or the path to the weights file to be loaded."
)


def _sep_bn(x, filters, name, channel_axis):
    x = layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False, name=name)(x)
    return layers.BatchNormalization(axis=channel_axis, name=f"{name}_bn")(x)


def _strided_residual(x, filters, channel_axis):
    # unnamed in Keras: conv2d, batch_normalization, ... by creation order
    residual = layers.Conv2D(filters, (1, 1), strides=(2, 2), padding="same", use_bias=False)(x)
    return layers.BatchNormalization(axis=channel_axis)(residual)


def Xception(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="xception"):
    """Instantiates the Xception architecture.

    Reference: [Xception](https://arxiv.org/abs/1610.02357). The default input size is 299x299 (at least
    71x71). Call `kerasish.applications.xception.preprocess_input` on the inputs ("tf" mode: [-1, 1]).

    Args:
        include_top: whether to include the fully-connected layer at the top of the network.
        weights: `None` (random initialization), `"imagenet"` (Keras's ImageNet file, read from Keras's cache
            `$KERAS_HOME/models`, never downloaded by kerasish), or the path to a weights file.
        input_tensor: optional KerasTensor (output of `keras.Input()`) to use as image input.
        input_shape: optional shape tuple, only with `include_top=False` (else `(299, 299, 3)`).
        pooling: with `include_top=False`: None (4D output), "avg" or "max" (global pooling, 2D output).
        classes: number of classes, only with `include_top=True` and no `weights`. Defaults to 1000.
        classifier_activation: activation of the top layer (None for logits); with pretrained weights only
            None or "softmax".
        name: the name of the model.

    Returns:
        A functional `Model`.
    """
    _common.check_weights_and_classes(weights, include_top, classes, weights_error=_WEIGHTS_ERROR)
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=299, min_size=71, data_format=_common._config.image_data_format(),
        require_flatten=include_top, weights=weights,
    )
    img_input = _common.image_input(input_tensor, input_shape)
    ca = -1 if _common.channels_last() else 1

    x = layers.Conv2D(32, (3, 3), strides=(2, 2), use_bias=False, name="block1_conv1")(img_input)
    x = layers.BatchNormalization(axis=ca, name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(64, (3, 3), use_bias=False, name="block1_conv2")(x)
    x = layers.BatchNormalization(axis=ca, name="block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)

    # entry flow: blocks 2-4, each halving the size with a 1x1 strided residual
    for block, filters in ((2, 128), (3, 256), (4, 728)):
        residual = _strided_residual(x, filters, ca)
        if block > 2:
            x = layers.Activation("relu", name=f"block{block}_sepconv1_act")(x)
        x = _sep_bn(x, filters, f"block{block}_sepconv1", ca)
        x = layers.Activation("relu", name=f"block{block}_sepconv2_act")(x)
        x = _sep_bn(x, filters, f"block{block}_sepconv2", ca)
        x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"block{block}_pool")(x)
        x = layers.add([x, residual])

    # middle flow: blocks 5-12
    for i in range(8):
        residual = x
        prefix = f"block{i + 5}"
        for j in (1, 2, 3):
            x = layers.Activation("relu", name=f"{prefix}_sepconv{j}_act")(x)
            x = _sep_bn(x, 728, f"{prefix}_sepconv{j}", ca)
        x = layers.add([x, residual])

    # exit flow
    residual = _strided_residual(x, 1024, ca)
    x = layers.Activation("relu", name="block13_sepconv1_act")(x)
    x = _sep_bn(x, 728, "block13_sepconv1", ca)
    x = layers.Activation("relu", name="block13_sepconv2_act")(x)
    x = _sep_bn(x, 1024, "block13_sepconv2", ca)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name="block13_pool")(x)
    x = layers.add([x, residual])

    x = _sep_bn(x, 1536, "block14_sepconv1", ca)
    x = layers.Activation("relu", name="block14_sepconv1_act")(x)
    x = _sep_bn(x, 2048, "block14_sepconv2", ca)
    x = layers.Activation("relu", name="block14_sepconv2_act")(x)

    if include_top:
        x = _common.dense_top(x, classes, classifier_activation, weights, pool_name="avg_pool")
    else:
        x = _common.pooling_head(x, pooling)
    model = _common.make_model(input_tensor, img_input, x, name)
    file_name, origin, file_hash = _FILES[0 if include_top else 1]
    _weights.load_application_weights(model, weights, file_name, origin, file_hash)
    return model


def preprocess_input(x, data_format=None):
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


preprocess_input.__doc__ = imagenet_utils.PREPROCESS_INPUT_DOC.format(
    mode="", ret=imagenet_utils.PREPROCESS_INPUT_RET_DOC_TF, error=imagenet_utils.PREPROCESS_INPUT_ERROR_DOC
)
decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
