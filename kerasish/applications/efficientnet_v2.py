"""EfficientNetV2 B0-B3, S, M, L (`keras.applications.efficientnet_v2`), built as Keras 3.15.

Reference: [EfficientNetV2: Smaller Models and Faster Training](https://arxiv.org/abs/2104.00298)
(ICML 2021).

Preprocessing is inside the model (`include_preprocessing=True`): the B
variants scale to [0, 1] and normalize with the ImageNet mean/variance, S/M/L
rescale to [-1, 1); `preprocess_input` is a pass-through, as in Keras.

Keras quirk kept on purpose: the residual blocks' stochastic depth is a
`Dropout` whose *rate* is what Keras calls `survival_probability`
(`drop_connect_rate * b / blocks`, 0 for the first block, so that block has
no Dropout layer); the layer names, configs and weight files depend on it.
"""

from __future__ import annotations

import copy
import math

from kerasish import initializers, layers
from kerasish.applications import imagenet_utils
from kerasish.applications._weights import resolve_weights
from kerasish.applications._weights import weights_argument_is_valid
from kerasish.applications.efficientnet import (
    CONV_KERNEL_INITIALIZER, DENSE_KERNEL_INITIALIZER, _channel_axis, _image_input, _load_weights, _model_inputs,
)
from kerasish.backend import config as _config
from kerasish.models.functional import Functional

__all__ = [
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
    "EfficientNetV2S", "EfficientNetV2M", "EfficientNetV2L", "preprocess_input", "decode_predictions",
]

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/"

# (top, notop) md5 of Keras's weight files.
WEIGHTS_HASHES = {
    "b0": ("21ecbf6da12460d5c40bb2f29ceb2188", "893217f2bb855e2983157299931e43ff"),
    "b1": ("069f0534ff22adf035c89e2d9547a9dc", "0e80663031ca32d657f9caa404b6ec37"),
    "b2": ("424e49f28180edbde1e94797771950a7", "1dfe2e7a5d45b6632553a8961ea609eb"),
    "b3": ("1f1fc43bd98a6e4fd8fdfd551e02c7a0", "f6abf7b5849ac99a89b50dd3fd532856"),
    "-s": ("e1d88a8495beba45748fedd0cecbe016", "af0682fb74e8c54910f2d4393339c070"),
    "-m": ("a3bf6aa3276309f4fc6a34aa114c95cd", "1b8dc055df72dde80d614482840fe342"),
    "-l": ("27e6d408b53c7ebc868fefa357689935", "b0b66b5c863aef5b46e8608fe1711615"),
}

_KEYS = ("kernel_size", "num_repeat", "input_filters", "output_filters", "expand_ratio", "se_ratio", "strides",
         "conv_type")


def _stages(*rows):
    """Stage dicts from rows of (kernel, repeats, in, out, expand, se, stride, conv type: 1 fused, 0 MBConv)."""
    return [dict(zip(_KEYS, row)) for row in rows]


_B_STAGES = _stages(
    (3, 1, 32, 16, 1, 0, 1, 1), (3, 2, 16, 32, 4, 0, 2, 1), (3, 2, 32, 48, 4, 0, 2, 1),
    (3, 3, 48, 96, 4, 0.25, 2, 0), (3, 5, 96, 112, 6, 0.25, 1, 0), (3, 8, 112, 192, 6, 0.25, 2, 0),
)
DEFAULT_BLOCKS_ARGS = {
    "efficientnetv2-s": _stages(
        (3, 2, 24, 24, 1, 0.0, 1, 1), (3, 4, 24, 48, 4, 0.0, 2, 1), (3, 4, 48, 64, 4, 0, 2, 1),
        (3, 6, 64, 128, 4, 0.25, 2, 0), (3, 9, 128, 160, 6, 0.25, 1, 0), (3, 15, 160, 256, 6, 0.25, 2, 0),
    ),
    "efficientnetv2-m": _stages(
        (3, 3, 24, 24, 1, 0, 1, 1), (3, 5, 24, 48, 4, 0, 2, 1), (3, 5, 48, 80, 4, 0, 2, 1),
        (3, 7, 80, 160, 4, 0.25, 2, 0), (3, 14, 160, 176, 6, 0.25, 1, 0), (3, 18, 176, 304, 6, 0.25, 2, 0),
        (3, 5, 304, 512, 6, 0.25, 1, 0),
    ),
    "efficientnetv2-l": _stages(
        (3, 4, 32, 32, 1, 0, 1, 1), (3, 7, 32, 64, 4, 0, 2, 1), (3, 7, 64, 96, 4, 0, 2, 1),
        (3, 10, 96, 192, 4, 0.25, 2, 0), (3, 19, 192, 224, 6, 0.25, 1, 0), (3, 25, 224, 384, 6, 0.25, 2, 0),
        (3, 7, 384, 640, 6, 0.25, 1, 0),
    ),
    **{f"efficientnetv2-b{i}": copy.deepcopy(_B_STAGES) for i in range(4)},
}

# ImageNet RGB statistics of the B variants' Normalization layer.
_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_VARIANCE = [0.229**2, 0.224**2, 0.225**2]


def round_filters(filters, width_coefficient, min_depth, depth_divisor):
    """Filters scaled by the width and rounded to a multiple of `depth_divisor`."""
    filters *= width_coefficient
    minimum_depth = min_depth or depth_divisor
    return int(max(minimum_depth, int(filters + depth_divisor / 2) // depth_divisor * depth_divisor))


def round_repeats(repeats, depth_coefficient):
    """Repeats scaled by the depth, rounded up."""
    return int(math.ceil(depth_coefficient * repeats))


def _squeeze_excite(x, name, input_filters, filters, se_ratio, activation, bn_axis):
    filters_se = max(1, int(input_filters * se_ratio))
    se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
    se = layers.Reshape((filters, 1, 1) if bn_axis == 1 else (1, 1, filters), name=f"{name}se_reshape")(se)
    se = layers.Conv2D(filters_se, 1, padding="same", activation=activation,
                       kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}se_reduce")(se)
    se = layers.Conv2D(filters, 1, padding="same", activation="sigmoid",
                       kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}se_expand")(se)
    return layers.multiply([x, se], name=f"{name}se_excite")


def _residual(x, inputs, name, strides, input_filters, output_filters, survival_probability):
    if strides == 1 and input_filters == output_filters:
        if survival_probability:  # Keras's naming: this is the Dropout *rate*
            x = layers.Dropout(survival_probability, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def MBConvBlock(input_filters, output_filters, expand_ratio=1, kernel_size=3, strides=1, se_ratio=0.0,
                bn_momentum=0.9, activation="swish", survival_probability=0.8, name=None):
    """MBConv: 1x1 expand, depthwise conv, squeeze-excite, 1x1 project (+ residual)."""
    bn_axis = _channel_axis()
    data_format = _config.image_data_format()

    def apply(inputs):
        filters = input_filters * expand_ratio
        x = inputs
        if expand_ratio != 1:
            x = layers.Conv2D(filters=filters, kernel_size=1, strides=1, kernel_initializer=CONV_KERNEL_INITIALIZER,
                              padding="same", data_format=data_format, use_bias=False, name=f"{name}expand_conv")(x)
            x = layers.BatchNormalization(axis=bn_axis, momentum=bn_momentum, name=f"{name}expand_bn")(x)
            x = layers.Activation(activation, name=f"{name}expand_activation")(x)
        x = layers.DepthwiseConv2D(kernel_size=kernel_size, strides=strides,
                                   depthwise_initializer=CONV_KERNEL_INITIALIZER, padding="same",
                                   data_format=data_format, use_bias=False, name=f"{name}dwconv2")(x)
        x = layers.BatchNormalization(axis=bn_axis, momentum=bn_momentum, name=f"{name}bn")(x)
        x = layers.Activation(activation, name=f"{name}activation")(x)
        if 0 < se_ratio <= 1:
            x = _squeeze_excite(x, name, input_filters, filters, se_ratio, activation, bn_axis)
        x = layers.Conv2D(filters=output_filters, kernel_size=1, strides=1, kernel_initializer=CONV_KERNEL_INITIALIZER,
                          padding="same", data_format=data_format, use_bias=False, name=f"{name}project_conv")(x)
        x = layers.BatchNormalization(axis=bn_axis, momentum=bn_momentum, name=f"{name}project_bn")(x)
        return _residual(x, inputs, name, strides, input_filters, output_filters, survival_probability)

    return apply


def FusedMBConvBlock(input_filters, output_filters, expand_ratio=1, kernel_size=3, strides=1, se_ratio=0.0,
                     bn_momentum=0.9, activation="swish", survival_probability=0.8, name=None):
    """Fused-MBConv: one full conv in place of expand + depthwise (+ residual)."""
    bn_axis = _channel_axis()
    data_format = _config.image_data_format()

    def apply(inputs):
        filters = input_filters * expand_ratio
        x = inputs
        if expand_ratio != 1:
            x = layers.Conv2D(filters, kernel_size=kernel_size, strides=strides,
                              kernel_initializer=CONV_KERNEL_INITIALIZER, data_format=data_format, padding="same",
                              use_bias=False, name=f"{name}expand_conv")(x)
            x = layers.BatchNormalization(axis=bn_axis, momentum=bn_momentum, name=f"{name}expand_bn")(x)
            x = layers.Activation(activation=activation, name=f"{name}expand_activation")(x)
        if 0 < se_ratio <= 1:
            x = _squeeze_excite(x, name, input_filters, filters, se_ratio, activation, bn_axis)
        x = layers.Conv2D(output_filters, kernel_size=1 if expand_ratio != 1 else kernel_size,
                          strides=1 if expand_ratio != 1 else strides, kernel_initializer=CONV_KERNEL_INITIALIZER,
                          padding="same", use_bias=False, name=f"{name}project_conv")(x)
        x = layers.BatchNormalization(axis=bn_axis, momentum=bn_momentum, name=f"{name}project_bn")(x)
        if expand_ratio == 1:
            x = layers.Activation(activation=activation, name=f"{name}project_activation")(x)
        return _residual(x, inputs, name, strides, input_filters, output_filters, survival_probability)

    return apply


def EfficientNetV2(width_coefficient, depth_coefficient, default_size, dropout_rate=0.2, drop_connect_rate=0.2,
                   depth_divisor=8, min_depth=8, bn_momentum=0.9, activation="swish", blocks_args="default",
                   name="efficientnetv2", include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                   pooling=None, classes=1000, classifier_activation="softmax", include_preprocessing=True,
                   weights_name=None):
    """Builds an EfficientNetV2 from its scaling coefficients (Keras's `EfficientNetV2`).

    `blocks_args="default"` looks the stages up by `name` (as Keras does), so a
    custom `name` needs explicit `blocks_args`. BatchNormalization momentum
    defaults to 0.9 here (Keras's V2 value), not the layer's 0.99.
    """
    if blocks_args == "default":
        blocks_args = DEFAULT_BLOCKS_ARGS[name]
    if not weights_argument_is_valid(weights):
        # Keras's message, missing space before "Received" included
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), `imagenet` "
            "(pre-training on ImageNet), or the path to the weights file to be loaded."
            f"Received: weights={weights}"
        )
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError('If using `weights="imagenet"` with `include_top` as true, `classes` should be 1000')
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=default_size, min_size=32, data_format=_config.image_data_format(),
        require_flatten=include_top, weights=weights,
    )
    weights_path = weights
    if weights == "imagenet":  # resolved before building: a missing file fails at once
        suffix, file_hash = (".h5", WEIGHTS_HASHES[weights_name][0]) if include_top else (
            "_notop.h5", WEIGHTS_HASHES[weights_name][1])
        weights_path = resolve_weights(weights, name + suffix, BASE_WEIGHTS_PATH + name + suffix, file_hash=file_hash)
    img_input = _image_input(input_tensor, input_shape)
    bn_axis = _channel_axis()

    def rounded(filters):
        return round_filters(filters=filters, width_coefficient=width_coefficient, min_depth=min_depth,
                             depth_divisor=depth_divisor)

    x = img_input
    if include_preprocessing:
        num_channels = input_shape[bn_axis - 1]
        if name.split("-")[-1].startswith("b") and num_channels == 3:
            x = layers.Rescaling(scale=1.0 / 255)(x)
            x = layers.Normalization(mean=_IMAGENET_MEAN, variance=_IMAGENET_VARIANCE, axis=bn_axis)(x)
        else:
            x = layers.Rescaling(scale=1.0 / 128.0, offset=-1)(x)

    x = layers.Conv2D(filters=rounded(blocks_args[0]["input_filters"]), kernel_size=3, strides=2,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(axis=bn_axis, momentum=bn_momentum, name="stem_bn")(x)
    x = layers.Activation(activation, name="stem_activation")(x)

    blocks_args = copy.deepcopy(blocks_args)
    b = 0
    blocks = float(sum(args["num_repeat"] for args in blocks_args))
    for i, args in enumerate(blocks_args):
        if args["num_repeat"] <= 0:
            raise ValueError(
                f"The number of repeats in `EfficientNetV2` must be > 0. Received: num_repeat={args['num_repeat']}"
            )
        args["input_filters"] = rounded(args["input_filters"])
        args["output_filters"] = rounded(args["output_filters"])
        block = {0: MBConvBlock, 1: FusedMBConvBlock}[args.pop("conv_type")]
        for j in range(round_repeats(repeats=args.pop("num_repeat"), depth_coefficient=depth_coefficient)):
            if j > 0:
                args["strides"] = 1
                args["input_filters"] = args["output_filters"]
            x = block(activation=activation, bn_momentum=bn_momentum,
                      survival_probability=drop_connect_rate * b / blocks, name=f"block{i + 1}{chr(j + 97)}_",
                      **args)(x)
            b += 1

    x = layers.Conv2D(filters=rounded(1280), kernel_size=1, strides=1, kernel_initializer=CONV_KERNEL_INITIALIZER,
                      padding="same", data_format=_config.image_data_format(), use_bias=False, name="top_conv")(x)
    x = layers.BatchNormalization(axis=bn_axis, momentum=bn_momentum, name="top_bn")(x)
    x = layers.Activation(activation=activation, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, kernel_initializer=DENSE_KERNEL_INITIALIZER,
                         bias_initializer=initializers.Constant(0.0), name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    model = Functional(_model_inputs(input_tensor, img_input), x, name=name)
    return _load_weights(model, weights_path, None, None)


_DOC = """Instantiates the {name} architecture (Keras's `keras.applications.{name}`).

    Args:
        include_top: Whether to include the classifier (GlobalAveragePooling2D,
            Dropout, Dense "predictions"). Defaults to True.
        weights: None, "imagenet" (Keras's file, read from the Keras cache;
            kerasish does not download) or the path of a weights file.
            Defaults to "imagenet".
        input_tensor: Optional Keras tensor to use as the image input.
        input_shape: Optional shape tuple, only with `include_top=False`.
        pooling: None, "avg" or "max" for a headless model.
        classes: Number of classes (1000 with ImageNet weights and a top).
        classifier_activation: Activation of "predictions"; None for logits.
            Pretrained weights allow only None or "softmax".
        include_preprocessing: Whether the model rescales (and, for the B
            variants, normalizes) its [0, 255] input itself. Defaults to True.
        name: The model's name. Defaults to "{lname}".

    Returns:
        A functional `keras.Model`.
"""

# name suffix -> (width, depth, default size)
_SIZES = {
    "b0": (1.0, 1.0, 224), "b1": (1.0, 1.1, 240), "b2": (1.1, 1.2, 260), "b3": (1.2, 1.4, 300),
    "s": (1.0, 1.0, 384), "m": (1.0, 1.0, 480), "l": (1.0, 1.0, 480),
}


def _variant(size):
    width, depth, default_size = _SIZES[size]
    model_name = f"efficientnetv2-{size}"
    weights_name = size if size.startswith("b") else f"-{size}"

    def builder(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", include_preprocessing=True, name=model_name):
        return EfficientNetV2(
            width_coefficient=width, depth_coefficient=depth, default_size=default_size, name=name,
            include_top=include_top, weights=weights, input_tensor=input_tensor, input_shape=input_shape,
            pooling=pooling, classes=classes, classifier_activation=classifier_activation,
            include_preprocessing=include_preprocessing, weights_name=weights_name,
        )

    builder.__name__ = builder.__qualname__ = f"EfficientNetV2{size.upper()}"
    builder.__doc__ = _DOC.format(name=builder.__name__, lname=model_name)
    return builder


EfficientNetV2B0 = _variant("b0")
EfficientNetV2B1 = _variant("b1")
EfficientNetV2B2 = _variant("b2")
EfficientNetV2B3 = _variant("b3")
EfficientNetV2S = _variant("s")
EfficientNetV2M = _variant("m")
EfficientNetV2L = _variant("l")


def preprocess_input(x, data_format=None):
    """A pass-through, kept for compatibility: EfficientNetV2 preprocesses inside the model."""
    return x


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions (`imagenet_utils.decode_predictions`)."""
    return imagenet_utils.decode_predictions(preds, top=top)
