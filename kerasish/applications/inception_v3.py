"""InceptionV3 (Keras 3's `keras.applications.inception_v3`).

Reference: [Rethinking the Inception Architecture for Computer Vision](http://arxiv.org/abs/1512.00567)
(CVPR 2016).
"""

from __future__ import annotations

from kerasish import layers
from kerasish.applications import _common
from kerasish.applications import _weights
from kerasish.applications import imagenet_utils

WEIGHTS_PATH = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
    "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
)
WEIGHTS_PATH_NO_TOP = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
_FILES = (
    ("inception_v3_weights_tf_dim_ordering_tf_kernels.h5", WEIGHTS_PATH, "9a0d58056eeedaa3f26cb7ebd46da564"),
    ("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", WEIGHTS_PATH_NO_TOP,
     "bcbd6486424b2319ff4ef7d526e38f63"),
)
_WEIGHTS_ERROR = (
    "The `weights` argument should be either `None` (random initialization), `imagenet` (pre-training on "
    "ImageNet), or the path to the weights file to be loaded; Received: weights={weights}"
)
_CLASSES_ERROR = (
    'If using `weights="imagenet"` with `include_top=True`, `classes` should be 1000. Received classes={classes}'
)


def conv2d_bn(x, filters, num_row, num_col, padding="same", strides=(1, 1), name=None):
    """Conv2D (no bias) + BatchNormalization (no scale) + ReLU; unnamed
    layers get Keras's automatic names, as in Keras."""
    bn_name = None if name is None else f"{name}_bn"
    conv_name = None if name is None else f"{name}_conv"
    bn_axis = 3 if _common.channels_last() else 1
    x = layers.Conv2D(filters, (num_row, num_col), strides=strides, padding=padding, use_bias=False,
                      name=conv_name)(x)
    x = layers.BatchNormalization(axis=bn_axis, scale=False, name=bn_name)(x)
    return layers.Activation("relu", name=name)(x)


def _avg_pool_branch(x, filters):
    branch = layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same")(x)
    return conv2d_bn(branch, filters, 1, 1)


def _block_35(x, pool_filters, name, axis):
    """mixed0-2: 1x1, 5x5, double 3x3 and pool branches (35x35 grid)."""
    b1 = conv2d_bn(x, 64, 1, 1)
    b5 = conv2d_bn(conv2d_bn(x, 48, 1, 1), 64, 5, 5)
    b3 = conv2d_bn(conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3)
    bp = _avg_pool_branch(x, pool_filters)
    return layers.concatenate([b1, b5, b3, bp], axis=axis, name=name)


def _block_17(x, filters_7, name, axis):
    """mixed4-7: factorized 7x7 branches (17x17 grid)."""
    b1 = conv2d_bn(x, 192, 1, 1)
    b7 = conv2d_bn(x, filters_7, 1, 1)
    b7 = conv2d_bn(b7, filters_7, 1, 7)
    b7 = conv2d_bn(b7, 192, 7, 1)
    bd = conv2d_bn(x, filters_7, 1, 1)
    bd = conv2d_bn(bd, filters_7, 7, 1)
    bd = conv2d_bn(bd, filters_7, 1, 7)
    bd = conv2d_bn(bd, filters_7, 7, 1)
    bd = conv2d_bn(bd, 192, 1, 7)
    bp = _avg_pool_branch(x, 192)
    return layers.concatenate([b1, b7, bd, bp], axis=axis, name=name)


def _block_8(x, i, axis):
    """mixed9-10: expanded filter bank (8x8 grid)."""
    b1 = conv2d_bn(x, 320, 1, 1)
    b3 = conv2d_bn(x, 384, 1, 1)
    b3 = layers.concatenate([conv2d_bn(b3, 384, 1, 3), conv2d_bn(b3, 384, 3, 1)], axis=axis, name=f"mixed9_{i}")
    bd = conv2d_bn(x, 448, 1, 1)
    bd = conv2d_bn(bd, 384, 3, 3)
    bd = layers.concatenate([conv2d_bn(bd, 384, 1, 3), conv2d_bn(bd, 384, 3, 1)], axis=axis)
    bp = _avg_pool_branch(x, 192)
    return layers.concatenate([b1, b3, bd, bp], axis=axis, name=f"mixed{9 + i}")


def InceptionV3(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="inception_v3"):
    """Instantiates the Inception v3 architecture.

    The default input size is 299x299 (at least 75x75). Call
    `kerasish.applications.inception_v3.preprocess_input` on the inputs ("tf" mode: [-1, 1]).

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
    _common.check_weights_and_classes(weights, include_top, classes, weights_error=_WEIGHTS_ERROR,
                                      classes_error=_CLASSES_ERROR)
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=299, min_size=75, data_format=_common._config.image_data_format(),
        require_flatten=include_top, weights=weights,
    )
    img_input = _common.image_input(input_tensor, input_shape)
    axis = 3 if _common.channels_last() else 1

    x = conv2d_bn(img_input, 32, 3, 3, strides=(2, 2), padding="valid")
    x = conv2d_bn(x, 32, 3, 3, padding="valid")
    x = conv2d_bn(x, 64, 3, 3)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = conv2d_bn(x, 80, 1, 1, padding="valid")
    x = conv2d_bn(x, 192, 3, 3, padding="valid")
    x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)

    x = _block_35(x, 32, "mixed0", axis)
    x = _block_35(x, 64, "mixed1", axis)
    x = _block_35(x, 64, "mixed2", axis)

    # mixed3: grid reduction 35 -> 17
    b3 = conv2d_bn(x, 384, 3, 3, strides=(2, 2), padding="valid")
    bd = conv2d_bn(x, 64, 1, 1)
    bd = conv2d_bn(bd, 96, 3, 3)
    bd = conv2d_bn(bd, 96, 3, 3, strides=(2, 2), padding="valid")
    bp = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = layers.concatenate([b3, bd, bp], axis=axis, name="mixed3")

    x = _block_17(x, 128, "mixed4", axis)
    for i in range(2):
        x = _block_17(x, 160, f"mixed{5 + i}", axis)
    x = _block_17(x, 192, "mixed7", axis)

    # mixed8: grid reduction 17 -> 8
    b3 = conv2d_bn(x, 192, 1, 1)
    b3 = conv2d_bn(b3, 320, 3, 3, strides=(2, 2), padding="valid")
    b7 = conv2d_bn(x, 192, 1, 1)
    b7 = conv2d_bn(b7, 192, 1, 7)
    b7 = conv2d_bn(b7, 192, 7, 1)
    b7 = conv2d_bn(b7, 192, 3, 3, strides=(2, 2), padding="valid")
    bp = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = layers.concatenate([b3, b7, bp], axis=axis, name="mixed8")

    for i in range(2):
        x = _block_8(x, i, axis)

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
