"""MobileNetV3Small / MobileNetV3Large (Keras 3's
`keras.applications.mobilenet_v3`).

Reference: [Searching for MobileNetV3](https://arxiv.org/pdf/1905.02244.pdf) (ICCV 2019).
"""

from __future__ import annotations

import warnings

from kerasish import layers
from kerasish.applications import _common
from kerasish.applications import _weights
from kerasish.applications import imagenet_utils
from kerasish.applications.mobilenet_v2 import _make_divisible
from kerasish.backend.keras_tensor import is_keras_tensor

BASE_WEIGHT_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"
WEIGHTS_HASHES = {
    "large_224_0.75_float": ("765b44a33ad4005b3ac83185abf1d0eb", "40af19a13ebea4e2ee0c676887f69a2e"),
    "large_224_1.0_float": ("59e551e166be033d707958cf9e29a6a7", "07fb09a5933dd0c8eaafa16978110389"),
    "large_minimalistic_224_1.0_float": ("675e7b876c45c57e9e63e6d90a36599c", "ec5221f64a2f6d1ef965a614bdae7973"),
    "small_224_0.75_float": ("cb65d4e5be93758266aa0a7f2c6708b7", "ebdb5cc8e0b497cd13a7c275d475c819"),
    "small_224_1.0_float": ("8768d4c2e7dee89b9d02b2d03d65d862", "d3e8ec802a04aa4fc771ee12a9a9b836"),
    "small_minimalistic_224_1.0_float": ("99cd97fb2fcdad2bf028eb838de69e37", "cde8136e733e811080d9fcd8a252f7e4"),
}
_WEIGHTS_ERROR = (
    "The `weights` argument should be either `None` (random initialization), `imagenet` (pre-training on "
    "ImageNet), or the path to the weights file to be loaded.  Received weights={weights}"
)
_CLASSES_ERROR = (
    'If using `weights="imagenet"` with `include_top` as true, `classes` should be 1000.  Received classes={classes}'
)
BN_MOMENTUM = 0.999
BN_EPSILON = 1e-3


def _depth(v, divisor=8, min_value=None):
    """`v` rounded to a multiple of 8 (TF-slim's rule, as MobileNetV2)."""
    return _make_divisible(v, divisor, min_value)


def relu(x):
    return layers.ReLU()(x)


def hard_sigmoid(x):
    # relu6(x + 3) / 6 as symbolic ops, as Keras writes it (an `add` and a `multiply` op in the graph)
    return layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)


def hard_swish(x):
    return layers.Activation("hard_swish")(x)


def _check_input_tensor(input_shape, input_tensor, channels_last):
    if not is_keras_tensor(input_tensor):
        raise ValueError("input_tensor specified: ", input_tensor, "is not a keras tensor")
    if channels_last:
        if input_tensor.shape[2] != input_shape[1]:
            raise ValueError(
                f"input_shape[1] must equal input_tensor.shape[2].  Received input_shape={input_shape}, "
                f"input_tensor.shape={input_tensor.shape}"
            )
    elif input_tensor.shape[1] != input_shape[1]:
        raise ValueError(
            "When backend.image_data_format()=channels_first, input_shape[1] must equal input_tensor.shape[1].  "
            f"Received input_shape={input_shape}, input_tensor.shape={input_tensor.shape}"
        )


def MobileNetV3(stack_fn, last_point_ch, input_shape=None, alpha=1.0, model_type="large", minimalistic=False,
                include_top=True, weights="imagenet", input_tensor=None, classes=1000, pooling=None,
                dropout_rate=0.2, classifier_activation="softmax", include_preprocessing=True, name=None):
    """The MobileNetV3 builder around `stack_fn(x, kernel, activation, se_ratio)`."""
    _common.check_weights_and_classes(weights, include_top, classes, weights_error=_WEIGHTS_ERROR,
                                      classes_error=_CLASSES_ERROR)
    channels_last = _common.channels_last()
    if input_shape is not None and input_tensor is not None:
        _check_input_tensor(input_shape, input_tensor, channels_last)
    if input_shape is None and input_tensor is not None and is_keras_tensor(input_tensor):
        # Keras's order: (cols, rows) -- the same for the square inputs it is meant for
        if channels_last:
            input_shape = (input_tensor.shape[2], input_tensor.shape[1], 3)
        else:
            input_shape = (3, input_tensor.shape[3], input_tensor.shape[2])
    if input_shape is None and input_tensor is None:
        input_shape = (None, None, 3) if channels_last else (3, None, None)
    rows, cols = (input_shape[0], input_shape[1]) if channels_last else (input_shape[1], input_shape[2])
    if rows and cols and (rows < 32 or cols < 32):
        raise ValueError(f"Input size must be at least 32x32; Received `input_shape={input_shape}`")
    if weights == "imagenet":
        if (not minimalistic and alpha not in [0.75, 1.0]) or (minimalistic and alpha != 1.0):
            raise ValueError(
                "If imagenet weights are being loaded, alpha can be one of `0.75`, `1.0` for non minimalistic or "
                "`1.0` for minimalistic only."
            )
        if rows != cols or rows != 224:
            warnings.warn(
                "`input_shape` is undefined or non-square, or `rows` is not 224. Weights for input shape "
                "(224, 224) will be loaded as the default.",
                stacklevel=2,
            )

    img_input = _common.image_input(input_tensor, input_shape)
    channel_axis = -1 if channels_last else 1
    if minimalistic:
        kernel, activation, se_ratio = 3, relu, None
    else:
        kernel, activation, se_ratio = 5, hard_swish, 0.25

    x = img_input
    if include_preprocessing:
        x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0)(x)
    x = layers.Conv2D(16, kernel_size=3, strides=(2, 2), padding="same", use_bias=False, name="conv")(x)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="conv_bn")(x)
    x = activation(x)
    x = stack_fn(x, kernel, activation, se_ratio)

    last_conv_ch = _depth(x.shape[channel_axis] * 6)
    if alpha > 1.0:  # only a wider network widens the last layers
        last_point_ch = _depth(last_point_ch * alpha)
    x = layers.Conv2D(last_conv_ch, kernel_size=1, padding="same", use_bias=False, name="conv_1")(x)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="conv_1_bn")(x)
    x = activation(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = layers.Conv2D(last_point_ch, kernel_size=1, padding="same", use_bias=True, name="conv_2")(x)
        x = activation(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate)(x)
        x = layers.Conv2D(classes, kernel_size=1, padding="same", name="logits")(x)
        x = layers.Flatten()(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Activation(activation=classifier_activation, name="predictions")(x)
    else:
        x = _common.pooling_head(x, pooling, avg_name="avg_pool", max_name="max_pool")

    model = _common.make_model(input_tensor, img_input, x, name)
    if weights == "imagenet":
        model_name = "{}{}_224_{}_float".format(model_type, "_minimalistic" if minimalistic else "", str(alpha))
        if include_top:
            file_name, file_hash = f"weights_mobilenet_v3_{model_name}.h5", WEIGHTS_HASHES[model_name][0]
        else:
            file_name, file_hash = f"weights_mobilenet_v3_{model_name}_no_top_v2.h5", WEIGHTS_HASHES[model_name][1]
        _weights.load_application_weights(model, weights, file_name, BASE_WEIGHT_PATH + file_name, file_hash)
    elif weights is not None:
        model.load_weights(weights)
    return model


def _se_block(inputs, filters, se_ratio, prefix):
    """Squeeze-and-excite: global pool, 1x1 reduce + ReLU, 1x1 expand + hard sigmoid, scale."""
    x = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}squeeze_excite_avg_pool")(inputs)
    x = layers.Conv2D(_depth(filters * se_ratio), kernel_size=1, padding="same",
                      name=f"{prefix}squeeze_excite_conv")(x)
    x = layers.ReLU(name=f"{prefix}squeeze_excite_relu")(x)
    x = layers.Conv2D(filters, kernel_size=1, padding="same", name=f"{prefix}squeeze_excite_conv_1")(x)
    x = hard_sigmoid(x)
    return layers.Multiply(name=f"{prefix}squeeze_excite_mul")([inputs, x])


def _inverted_res_block(x, expansion, filters, kernel_size, stride, se_ratio, activation, block_id):
    channel_axis = -1 if _common.channels_last() else 1
    shortcut = x
    prefix = "expanded_conv_"
    infilters = x.shape[channel_axis]
    if block_id:
        prefix = f"expanded_conv_{block_id}_"
        x = layers.Conv2D(_depth(infilters * expansion), kernel_size=1, padding="same", use_bias=False,
                          name=f"{prefix}expand")(x)
        x = layers.BatchNormalization(axis=channel_axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                      name=f"{prefix}expand_bn")(x)
        x = activation(x)
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size),
                                 name=f"{prefix}depthwise_pad")(x)
    x = layers.DepthwiseConv2D(kernel_size, strides=stride, padding="same" if stride == 1 else "valid",
                               use_bias=False, name=f"{prefix}depthwise")(x)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                  name=f"{prefix}depthwise_bn")(x)
    x = activation(x)
    if se_ratio:
        x = _se_block(x, _depth(infilters * expansion), se_ratio, prefix)
    x = layers.Conv2D(filters, kernel_size=1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                  name=f"{prefix}project_bn")(x)
    if stride == 1 and infilters == filters:
        x = layers.Add(name=f"{prefix}add")([shortcut, x])
    return x


def MobileNetV3Small(input_shape=None, alpha=1.0, minimalistic=False, include_top=True, weights="imagenet",
                     input_tensor=None, classes=1000, pooling=None, dropout_rate=0.2,
                     classifier_activation="softmax", include_preprocessing=True, name="MobileNetV3Small"):
    def stack_fn(x, kernel, activation, se_ratio):
        def depth(d):
            return _depth(d * alpha)

        x = _inverted_res_block(x, 1, depth(16), 3, 2, se_ratio, relu, 0)
        x = _inverted_res_block(x, 72.0 / 16, depth(24), 3, 2, None, relu, 1)
        x = _inverted_res_block(x, 88.0 / 24, depth(24), 3, 1, None, relu, 2)
        for block_id, (expansion, filters, stride) in enumerate(
            ((4, 40, 2), (6, 40, 1), (6, 40, 1), (3, 48, 1), (3, 48, 1), (6, 96, 2), (6, 96, 1), (6, 96, 1)),
            start=3,
        ):
            x = _inverted_res_block(x, expansion, depth(filters), kernel, stride, se_ratio, activation, block_id)
        return x

    return MobileNetV3(stack_fn, 1024, input_shape, alpha, "small", minimalistic, include_top, weights,
                       input_tensor, classes, pooling, dropout_rate, classifier_activation, include_preprocessing,
                       name=name)


def MobileNetV3Large(input_shape=None, alpha=1.0, minimalistic=False, include_top=True, weights="imagenet",
                     input_tensor=None, classes=1000, pooling=None, dropout_rate=0.2,
                     classifier_activation="softmax", include_preprocessing=True, name="MobileNetV3Large"):
    def stack_fn(x, kernel, activation, se_ratio):
        def depth(d):
            return _depth(d * alpha)

        x = _inverted_res_block(x, 1, depth(16), 3, 1, None, relu, 0)
        x = _inverted_res_block(x, 4, depth(24), 3, 2, None, relu, 1)
        x = _inverted_res_block(x, 3, depth(24), 3, 1, None, relu, 2)
        x = _inverted_res_block(x, 3, depth(40), kernel, 2, se_ratio, relu, 3)
        x = _inverted_res_block(x, 3, depth(40), kernel, 1, se_ratio, relu, 4)
        x = _inverted_res_block(x, 3, depth(40), kernel, 1, se_ratio, relu, 5)
        x = _inverted_res_block(x, 6, depth(80), 3, 2, None, activation, 6)
        x = _inverted_res_block(x, 2.5, depth(80), 3, 1, None, activation, 7)
        x = _inverted_res_block(x, 2.3, depth(80), 3, 1, None, activation, 8)
        x = _inverted_res_block(x, 2.3, depth(80), 3, 1, None, activation, 9)
        x = _inverted_res_block(x, 6, depth(112), 3, 1, se_ratio, activation, 10)
        x = _inverted_res_block(x, 6, depth(112), 3, 1, se_ratio, activation, 11)
        x = _inverted_res_block(x, 6, depth(160), kernel, 2, se_ratio, activation, 12)
        x = _inverted_res_block(x, 6, depth(160), kernel, 1, se_ratio, activation, 13)
        x = _inverted_res_block(x, 6, depth(160), kernel, 1, se_ratio, activation, 14)
        return x

    return MobileNetV3(stack_fn, 1280, input_shape, alpha, "large", minimalistic, include_top, weights,
                       input_tensor, classes, pooling, dropout_rate, classifier_activation, include_preprocessing,
                       name=name)


_DOC = """Instantiates the {name} architecture.

    The model includes its own input preprocessing (a `Rescaling` layer to [-1, 1]) unless
    `include_preprocessing=False`: pass pixels in [0, 255]
    (`kerasish.applications.mobilenet_v3.preprocess_input` is the identity).

    Args:
        input_shape: optional shape tuple (default `(None, None, 3)`); at least 32x32. Given with
            `input_tensor`, their widths must agree.
        alpha: width multiplier. ImageNet weights exist for 0.75 and 1.0 (1.0 when minimalistic).
            Defaults to 1.0.
        minimalistic: no squeeze-and-excite, hard-swish or 5x5 convolutions (ReLU and 3x3 only).
            Defaults to False.
        include_top: whether to include the classifier top.
        weights: `None` (random initialization), `"imagenet"` (Keras's ImageNet file, read from Keras's cache
            `$KERAS_HOME/models`, never downloaded by kerasish), or the path to a weights file.
        input_tensor: optional KerasTensor (output of `keras.Input()`) to use as image input.
        classes: number of classes, only with `include_top=True` and no `weights`. Defaults to 1000.
        pooling: with `include_top=False`: None (4D output), "avg" or "max" (global pooling, 2D output).
        dropout_rate: dropout before the logits (0 for none). Defaults to 0.2.
        classifier_activation: activation of the top layer (None for logits); with pretrained weights only
            None or "softmax".
        include_preprocessing: whether the model rescales its [0, 255] inputs itself. Defaults to True.
        name: the name of the model. Defaults to "{name}".

    Returns:
        A functional `Model`.
    """
MobileNetV3Small.__doc__ = _DOC.format(name="MobileNetV3Small")
MobileNetV3Large.__doc__ = _DOC.format(name="MobileNetV3Large")


def preprocess_input(x, data_format=None):
    """The identity: MobileNetV3 models rescale their inputs themselves
    (`include_preprocessing=True`). Kept for API consistency with Keras.

    Args:
        x: A floating point NumPy array or tensor.
        data_format: Unused. Defaults to None.

    Returns:
        `x`, unchanged.
    """
    return x


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
