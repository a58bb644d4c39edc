"""MobileNet (v1) (Keras 3's `keras.applications.mobilenet`).

Reference: [MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications](
https://arxiv.org/abs/1704.04861).
"""

from __future__ import annotations

import warnings

from kerasish import layers
from kerasish.applications import _common
from kerasish.applications import _weights
from kerasish.applications import imagenet_utils

BASE_WEIGHT_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
_WEIGHTS_ERROR = (
    "The `weights` argument should be either `None` (random initialization), 'imagenet' (pre-training on "
    "ImageNet), or the path to the weights file to be loaded. Received weights={weights}"
)
_IMAGENET_SIZES = (128, 160, 192, 224)
# (pointwise filters, strides) of the 13 depthwise-separable blocks
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
           (512, 1), (1024, 2), (1024, 1))


def MobileNet(input_shape=None, alpha=1.0, depth_multiplier=1, dropout=1e-3, include_top=True, weights="imagenet",
              input_tensor=None, pooling=None, classes=1000, classifier_activation="softmax", name=None):
    """Instantiates the MobileNet architecture.

    Call `kerasish.applications.mobilenet.preprocess_input` on the inputs ("tf" mode: [-1, 1]).

    Args:
        input_shape: optional shape tuple, only with `include_top=False` (else `(224, 224, 3)`); at least 32x32.
        alpha: width multiplier: < 1 shrinks, > 1 widens every layer's filters. ImageNet weights exist for
            0.25, 0.50, 0.75 and 1.0. Defaults to 1.0.
        depth_multiplier: depthwise convolution channel multiplier (1 with ImageNet weights). Defaults to 1.
        dropout: dropout rate of the top. Defaults to 0.001.
        include_top: whether to include the classifier top (a 1x1 convolution).
        weights: `None` (random initialization), `"imagenet"` (Keras's ImageNet file, read from Keras's cache
            `$KERAS_HOME/models`, never downloaded by kerasish), or the path to a weights file.
        input_tensor: optional KerasTensor (output of `keras.Input()`) to use as image input.
        pooling: with `include_top=False`: None (4D output), "avg" or "max" (global pooling, 2D output).
        classes: number of classes, only with `include_top=True` and no `weights`. Defaults to 1000.
        classifier_activation: activation of the top layer (None for logits); with pretrained weights only
            None or "softmax".
        name: the name of the model. Defaults to `mobilenet_{alpha:0.2f}_{rows}`.

    Returns:
        A functional `Model`.
    """
    _common.check_weights_and_classes(weights, include_top, classes, weights_error=_WEIGHTS_ERROR)
    channels_last = _common.channels_last()
    if input_shape is None:
        default_size = 224
    else:
        rows, cols = (input_shape[0], input_shape[1]) if channels_last else (input_shape[1], input_shape[2])
        default_size = rows if rows == cols and rows in _IMAGENET_SIZES else 224
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=default_size, min_size=32, data_format=_common._config.image_data_format(),
        require_flatten=include_top, weights=weights,
    )
    rows, cols = (input_shape[0], input_shape[1]) if channels_last else (input_shape[1], input_shape[2])

    if weights == "imagenet":
        if depth_multiplier != 1:
            raise ValueError(
                f"If imagenet weights are being loaded, depth multiplier must be 1.  Received depth_multiplier="
                f"{depth_multiplier}"
            )
        if alpha not in [0.25, 0.50, 0.75, 1.0]:
            raise ValueError(
                "If imagenet weights are being loaded, alpha can be one of`0.25`, `0.50`, `0.75` or `1.0` only.  "
                f"Received alpha={alpha}"
            )
        if rows != cols or rows not in _IMAGENET_SIZES:
            rows = 224
            warnings.warn(
                "`input_shape` is undefined or non-square, or `rows` is not in [128, 160, 192, 224]. Weights for "
                "input shape (224, 224) will be loaded as the default.",
                stacklevel=2,
            )

    img_input = _common.image_input(input_tensor, input_shape)
    x = _conv_block(img_input, 32, alpha, strides=(2, 2))
    for block_id, (filters, stride) in enumerate(_BLOCKS, start=1):
        x = _depthwise_conv_block(x, filters, alpha, depth_multiplier, strides=(stride, stride), block_id=block_id)

    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Conv2D(classes, (1, 1), padding="same", name="conv_preds")(x)
        x = layers.Reshape((classes,), name="reshape_2")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Activation(activation=classifier_activation, name="predictions")(x)
    else:
        x = _common.pooling_head(x, pooling)

    if name is None:
        name = f"mobilenet_{alpha:0.2f}_{rows}"
    model = _common.make_model(input_tensor, img_input, x, name)
    if weights == "imagenet":
        alpha_text = {1.0: "1_0", 0.75: "7_5", 0.50: "5_0"}.get(alpha, "2_5")
        suffix = "" if include_top else "_no_top"
        model_name = f"mobilenet_{alpha_text}_{int(rows)}_tf{suffix}.h5"
        _weights.load_application_weights(model, weights, model_name, BASE_WEIGHT_PATH + model_name)
    elif weights is not None:
        model.load_weights(weights)
    return model


def _conv_block(inputs, filters, alpha, kernel=(3, 3), strides=(1, 1)):
    """The first convolution + BatchNormalization + ReLU6."""
    channel_axis = -1 if _common.channels_last() else 1
    filters = int(filters * alpha)
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, strides=strides, name="conv1")(inputs)
    x = layers.BatchNormalization(axis=channel_axis, name="conv1_bn")(x)
    return layers.ReLU(6.0, name="conv1_relu")(x)


def _depthwise_conv_block(inputs, pointwise_conv_filters, alpha, depth_multiplier=1, strides=(1, 1), block_id=1):
    """Depthwise 3x3 (+BN+ReLU6), then pointwise 1x1 (+BN+ReLU6). A strided
    block pads bottom/right by one and convolves "valid" (TensorFlow's "same")."""
    channel_axis = -1 if _common.channels_last() else 1
    pointwise_conv_filters = int(pointwise_conv_filters * alpha)
    x = inputs
    if strides != (1, 1):
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
    x = layers.DepthwiseConv2D((3, 3), padding="same" if strides == (1, 1) else "valid",
                               depth_multiplier=depth_multiplier, strides=strides, use_bias=False,
                               name=f"conv_dw_{block_id}")(x)
    x = layers.BatchNormalization(axis=channel_axis, name=f"conv_dw_{block_id}_bn")(x)
    x = layers.ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
    x = layers.Conv2D(pointwise_conv_filters, (1, 1), padding="same", use_bias=False, strides=(1, 1),
                      name=f"conv_pw_{block_id}")(x)
    x = layers.BatchNormalization(axis=channel_axis, name=f"conv_pw_{block_id}_bn")(x)
    return layers.ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)


def preprocess_input(x, data_format=None):
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


preprocess_input.__doc__ = imagenet_utils.PREPROCESS_INPUT_DOC.format(
    mode="", ret=imagenet_utils.PREPROCESS_INPUT_RET_DOC_TF, error=imagenet_utils.PREPROCESS_INPUT_ERROR_DOC
)
decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
