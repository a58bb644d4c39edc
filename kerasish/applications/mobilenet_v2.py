"""MobileNetV2 (Keras 3's `keras.applications.mobilenet_v2`).

Reference: [MobileNetV2: Inverted Residuals and Linear Bottlenecks](https://arxiv.org/abs/1801.04381)
(CVPR 2018).
"""

from __future__ import annotations

import warnings

from kerasish import layers
from kerasish.applications import _common
from kerasish.applications import _weights
from kerasish.applications import imagenet_utils
from kerasish.backend.keras_tensor import is_keras_tensor

BASE_WEIGHT_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
_WEIGHTS_ERROR = (
    "The `weights` argument should be either `None` (random initialization), `imagenet` (pre-training on "
    "ImageNet), or the path to the weights file to be loaded.  Received `weights={weights}`"
)
_CLASSES_ERROR = (
    'If using `weights="imagenet"` with `include_top` as true, `classes` should be 1000. '
    "Received `classes={classes}`"
)
_IMAGENET_SIZES = (96, 128, 160, 192, 224)
# MobileNetV2's BatchNormalization: momentum 0.999 (TF-slim's decay), epsilon 1e-3
BN_MOMENTUM = 0.999
BN_EPSILON = 1e-3
# (filters, stride, expansion) of the 17 inverted residual blocks
_BLOCKS = ((16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6),
           (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6),
           (320, 1, 6))


def _rows_cols(shape, channels_last, offset=0):
    return (shape[offset], shape[offset + 1]) if channels_last else (shape[offset + 1], shape[offset + 2])


def _default_size(input_shape, input_tensor, channels_last):
    """224, or the input's square size when ImageNet weights exist for it."""
    if input_shape is not None and input_tensor is not None:
        if not is_keras_tensor(input_tensor):
            raise ValueError(f"input_tensor is not a Keras tensor; Received `input_tensor={input_tensor}`")
        if channels_last:
            if input_tensor.shape[2] != input_shape[1]:
                raise ValueError(
                    "input_tensor.shape[2] must equal input_shape[1]; Received `input_tensor.shape="
                    f"{input_tensor.shape}`, `input_shape={input_shape}`"
                )
        elif input_tensor.shape[1] != input_shape[1]:
            raise ValueError(
                "input_shape[1] must equal shape(input_tensor)[1] when `image_data_format` is `channels_first`; "
                f"Received `input_tensor.shape={input_tensor.shape}`, `input_shape={input_shape}`"
            )
    if input_shape is None and input_tensor is not None:
        if not is_keras_tensor(input_tensor):
            return 224
        rows, cols = _rows_cols(input_tensor.shape, channels_last, offset=1)
    elif input_shape is None:
        return 224
    else:
        rows, cols = _rows_cols(input_shape, channels_last)
    return rows if rows == cols and rows in _IMAGENET_SIZES else 224


def MobileNetV2(input_shape=None, alpha=1.0, include_top=True, weights="imagenet", input_tensor=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None):
    """Instantiates the MobileNetV2 architecture.

    Call `kerasish.applications.mobilenet_v2.preprocess_input` on the inputs ("tf" mode: [-1, 1]).

    Args:
        input_shape: optional shape tuple (with `include_top=True`, default `(224, 224, 3)`); at least 32x32.
            Given with `input_tensor`, their widths must agree.
        alpha: width multiplier of every block's filters (the last convolution grows only when > 1).
            ImageNet weights exist for 0.35, 0.50, 0.75, 1.0, 1.3 and 1.4. Defaults to 1.0.
        include_top: whether to include the fully-connected layer at the top of the network.
        weights: `None` (random initialization), `"imagenet"` (Keras's ImageNet file, read from Keras's cache
            `$KERAS_HOME/models`, never downloaded by kerasish), or the path to a weights file.
        input_tensor: optional KerasTensor (output of `keras.Input()`) to use as image input.
        pooling: with `include_top=False`: None (4D output), "avg" or "max" (global pooling, 2D output).
        classes: number of classes, only with `include_top=True` and no `weights`. Defaults to 1000.
        classifier_activation: activation of the top layer (None for logits); with pretrained weights only
            None or "softmax".
        name: the name of the model. Defaults to `mobilenetv2_{alpha:0.2f}_{rows}`.

    Returns:
        A functional `Model`.
    """
    _common.check_weights_and_classes(weights, include_top, classes, weights_error=_WEIGHTS_ERROR,
                                      classes_error=_CLASSES_ERROR)
    channels_last = _common.channels_last()
    default_size = _default_size(input_shape, input_tensor, channels_last)
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=default_size, min_size=32, data_format=_common._config.image_data_format(),
        require_flatten=include_top, weights=weights,
    )
    rows, cols = _rows_cols(input_shape, channels_last)
    if weights == "imagenet":
        if alpha not in [0.35, 0.50, 0.75, 1.0, 1.3, 1.4]:
            raise ValueError(
                "If imagenet weights are being loaded, alpha must be one of `0.35`, `0.50`, `0.75`, `1.0`, `1.3` "
                f"or `1.4` only; Received `alpha={alpha}`"
            )
        if rows != cols or rows not in _IMAGENET_SIZES:
            rows = 224
            warnings.warn(
                "`input_shape` is undefined or non-square, or `rows` is not in [96, 128, 160, 192, 224]. Weights "
                "for input shape (224, 224) will be loaded as the default.",
                stacklevel=2,
            )

    img_input = _common.image_input(input_tensor, input_shape)
    channel_axis = -1 if channels_last else 1

    x = layers.Conv2D(_make_divisible(32 * alpha, 8), kernel_size=3, strides=(2, 2), padding="same", use_bias=False,
                      name="Conv1")(img_input)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="bn_Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
        x = _inverted_res_block(x, filters=filters, alpha=alpha, stride=stride, expansion=expansion,
                                block_id=block_id)
    # no alpha on the last convolution unless it widens the network (the paper)
    last_block_filters = _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = layers.Conv2D(last_block_filters, kernel_size=1, use_bias=False, name="Conv_1")(x)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="Conv_1_bn")(x)
    x = layers.ReLU(6.0, name="out_relu")(x)

    if include_top:
        x = _common.dense_top(x, classes, classifier_activation, weights)
    else:
        x = _common.pooling_head(x, pooling)

    if name is None:
        name = f"mobilenetv2_{alpha:0.2f}_{rows}"
    model = _common.make_model(input_tensor, img_input, x, name)
    if weights == "imagenet":
        suffix = "" if include_top else "_no_top"
        model_name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}{suffix}.h5"
        _weights.load_application_weights(model, weights, model_name, BASE_WEIGHT_PATH + model_name)
    elif weights is not None:
        model.load_weights(weights)
    return model


def _inverted_res_block(inputs, expansion, stride, alpha, filters, block_id):
    """Expand (1x1, not in block 0), depthwise 3x3, project (1x1, linear);
    a residual Add when the shape is kept."""
    channel_axis = -1 if _common.channels_last() else 1
    in_channels = inputs.shape[channel_axis]
    pointwise_filters = _make_divisible(int(filters * alpha), 8)
    x = inputs
    prefix = f"block_{block_id}_"
    if block_id:
        x = layers.Conv2D(expansion * in_channels, kernel_size=1, padding="same", use_bias=False, activation=None,
                          name=f"{prefix}expand")(x)
        x = layers.BatchNormalization(axis=channel_axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                      name=f"{prefix}expand_BN")(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3), name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(kernel_size=3, strides=stride, activation=None, use_bias=False,
                               padding="same" if stride == 1 else "valid", name=f"{prefix}depthwise")(x)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                  name=f"{prefix}depthwise_BN")(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = layers.Conv2D(pointwise_filters, kernel_size=1, padding="same", use_bias=False, activation=None,
                      name=f"{prefix}project")(x)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                  name=f"{prefix}project_BN")(x)
    if in_channels == pointwise_filters and stride == 1:
        return layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def _make_divisible(v, divisor, min_value=None):
    """`v` rounded to a multiple of `divisor` (at least `min_value`), never
    more than 10% below `v` (TF-slim's rule)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def preprocess_input(x, data_format=None):
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


preprocess_input.__doc__ = imagenet_utils.PREPROCESS_INPUT_DOC.format(
    mode="", ret=imagenet_utils.PREPROCESS_INPUT_RET_DOC_TF, error=imagenet_utils.PREPROCESS_INPUT_ERROR_DOC
)
decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
