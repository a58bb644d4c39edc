"""EfficientNet B0-B7 (`keras.applications.efficientnet`), built as Keras 3.15 builds them.

Reference: [EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks](https://arxiv.org/abs/1905.11946) (ICML 2019).

The models take float pixels in [0, 255]: preprocessing is inside the model
(`Rescaling(1/255)` then an un-adapted `Normalization`), so `preprocess_input`
is a pass-through, as in Keras. Layer names, weights, defaults and errors
follow Keras, so Keras's weight files (`weights=` a path, or the cached
`"imagenet"` files) load as they are.

The helpers the EfficientNetV2, DenseNet, ConvNeXt and InceptionResNetV2
modules import from here are the shared ones of `_common` / `imagenet_utils`
/ `_weights`, plus this family's weights-argument wording.
"""

from __future__ import annotations

import copy
import math

from kerasish import layers
from kerasish.applications import _common
from kerasish.applications import _weights
from kerasish.applications import imagenet_utils
from kerasish.applications._weights import resolve_weights
from kerasish.backend import config as _config
from kerasish.models.functional import Functional

__all__ = [
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3",
    "EfficientNetB4", "EfficientNetB5", "EfficientNetB6", "EfficientNetB7",
    "preprocess_input", "decode_predictions",
]

# --- helpers shared by the apps2 families ------------------------------------

_WEIGHTS_ERROR = (
    "The `weights` argument should be either `None` (random initialization), `imagenet` "
    "(pre-training on ImageNet), or the path to the weights file to be loaded."
)


def _check_weights(weights, include_top, classes, message=None):
    """Keras's two up-front checks of `weights` and `classes` (ValueError)."""
    if not _weights.weights_argument_is_valid(weights):
        raise ValueError(_WEIGHTS_ERROR + f" Received: weights={weights}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(
            message or 'If using `weights="imagenet"` with `include_top` as true, `classes` should be 1000'
        )


# the helpers every family shares (kerasish/applications/_common.py, imagenet_utils)
_channel_axis = _common.channel_axis
_image_input = _common.image_input
_model_inputs = _common.model_inputs
_correct_pad = imagenet_utils.correct_pad


def _load_weights(model, weights, fname, origin, file_hash=None):
    """Loads `weights` ("imagenet" from the Keras cache, or a file) into `model`."""
    _weights.load_application_weights(model, weights, fname, origin, file_hash)
    return model


def _top_or_pooling(x, include_top, pooling, classes, classifier_activation, weights, dropout_rate=0.0,
                    dense_kwargs=None):
    """GlobalAveragePooling2D (+ Dropout) + Dense `predictions`, or the pooling of a headless model."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        return layers.Dense(classes, activation=classifier_activation, name="predictions", **(dense_kwargs or {}))(x)
    return _common.pooling_head(x, pooling, avg_name="avg_pool", max_name="max_pool")


# --- EfficientNet ------------------------------------------------------------

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/keras-applications/"

# (top, notop) md5 of Keras's weight files.
WEIGHTS_HASHES = {
    "b0": ("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d"),
    "b1": ("1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432"),
    "b2": ("b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "b3": ("ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226"),
    "b4": ("18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "b5": ("ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f"),
    "b6": ("165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743"),
    "b7": ("8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a"),
}


def _stage(kernel_size, repeats, filters_in, filters_out, expand_ratio, strides):
    return {"kernel_size": kernel_size, "repeats": repeats, "filters_in": filters_in,
            "filters_out": filters_out, "expand_ratio": expand_ratio, "id_skip": True,
            "strides": strides, "se_ratio": 0.25}


# The B0 stages; the other sizes scale widths and repeats.
DEFAULT_BLOCKS_ARGS = [
    _stage(3, 1, 32, 16, 1, 1),
    _stage(3, 2, 16, 24, 6, 2),
    _stage(5, 2, 24, 40, 6, 2),
    _stage(3, 3, 40, 80, 6, 2),
    _stage(5, 3, 80, 112, 6, 1),
    _stage(5, 4, 112, 192, 6, 2),
    _stage(3, 1, 192, 320, 6, 1),
]

CONV_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"},
}
DENSE_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"},
}

# Keras's ImageNet weight files store the per-channel *standard deviation* in
# the Normalization layer's `variance`, so the layer divides by sqrt(std);
# with `weights="imagenet"` Keras adds a Rescaling by 1/sqrt(std) to finish
# the division. We reproduce that quirk exactly (and only for "imagenet").
IMAGENET_STDDEV_RGB = [0.229, 0.224, 0.225]


def EfficientNet(
    width_coefficient,
    depth_coefficient,
    default_size,
    dropout_rate=0.2,
    drop_connect_rate=0.2,
    depth_divisor=8,
    activation="swish",
    blocks_args="default",
    name="efficientnet",
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    weights_name=None,
):
    """Builds an EfficientNet from its scaling coefficients (Keras's `EfficientNet`).

    Args:
        width_coefficient: Scaling of the number of filters.
        depth_coefficient: Scaling of the number of blocks per stage.
        default_size: Default input height/width.
        dropout_rate: Dropout before the classifier. Defaults to 0.2.
        drop_connect_rate: Largest stochastic-depth (per-sample Dropout) rate
            of the residual branches; block `b` of `n` gets `rate * b / n`.
            Defaults to 0.2.
        depth_divisor: Filters are rounded to a multiple of this. Defaults to 8.
        activation: Activation of the blocks. Defaults to "swish".
        blocks_args: List of per-stage dicts, or "default" (B0's stages).
        name, include_top, weights, input_tensor, input_shape, pooling,
        classes, classifier_activation: as in `EfficientNetB0`.
        weights_name: "b0" ... "b7", selects the pretrained file's hash.

    Returns:
        A functional `Model`.
    """
    if blocks_args == "default":
        blocks_args = DEFAULT_BLOCKS_ARGS
    _check_weights(weights, include_top, classes)
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=default_size, min_size=32, data_format=_config.image_data_format(),
        require_flatten=include_top, weights=weights,
    )
    if weights == "imagenet":  # resolved before building: a missing file fails at once
        suffix, file_hash = (".h5", WEIGHTS_HASHES[weights_name][0]) if include_top else (
            "_notop.h5", WEIGHTS_HASHES[weights_name][1])
        weights_path = resolve_weights(weights, name + suffix, BASE_WEIGHTS_PATH + name + suffix, file_hash=file_hash)
    else:
        weights_path = weights
    img_input = _image_input(input_tensor, input_shape)
    bn_axis = _channel_axis()

    def round_filters(filters, divisor=depth_divisor):
        filters *= width_coefficient
        new_filters = max(divisor, int(filters + divisor / 2) // divisor * divisor)
        if new_filters < 0.9 * filters:  # never round down by more than 10%
            new_filters += divisor
        return int(new_filters)

    def round_repeats(repeats):
        return int(math.ceil(depth_coefficient * repeats))

    x = layers.Rescaling(1.0 / 255.0)(img_input)
    x = layers.Normalization(axis=bn_axis)(x)
    if weights == "imagenet":
        x = layers.Rescaling([1.0 / math.sqrt(stddev) for stddev in IMAGENET_STDDEV_RGB])(x)

    x = layers.ZeroPadding2D(padding=_correct_pad(x, 3), name="stem_conv_pad")(x)
    x = layers.Conv2D(round_filters(32), 3, strides=2, padding="valid", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, name="stem_conv")(x)
    x = layers.BatchNormalization(axis=bn_axis, name="stem_bn")(x)
    x = layers.Activation(activation, name="stem_activation")(x)

    blocks_args = copy.deepcopy(blocks_args)
    b = 0
    blocks = float(sum(round_repeats(args["repeats"]) for args in blocks_args))
    for i, args in enumerate(blocks_args):
        if args["repeats"] <= 0:
            raise ValueError(
                f"The number of repeats in `EfficientNet` must be > 0. Received: repeats={args['repeats']}"
            )
        args["filters_in"] = round_filters(args["filters_in"])
        args["filters_out"] = round_filters(args["filters_out"])
        for j in range(round_repeats(args.pop("repeats"))):
            if j > 0:
                args["strides"] = 1
                args["filters_in"] = args["filters_out"]
            x = block(x, activation, drop_connect_rate * b / blocks, name=f"block{i + 1}{chr(j + 97)}_", **args)
            b += 1

    x = layers.Conv2D(round_filters(1280), 1, padding="same", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, name="top_conv")(x)
    x = layers.BatchNormalization(axis=bn_axis, name="top_bn")(x)
    x = layers.Activation(activation, name="top_activation")(x)
    x = _top_or_pooling(x, include_top, pooling, classes, classifier_activation, weights, dropout_rate,
                        dense_kwargs={"kernel_initializer": DENSE_KERNEL_INITIALIZER})

    model = Functional(_model_inputs(input_tensor, img_input), x, name=name)
    return _load_weights(model, weights_path, None, None)


def block(inputs, activation="swish", drop_rate=0.0, name="", filters_in=32, filters_out=16, kernel_size=3,
          strides=1, expand_ratio=1, se_ratio=0.0, id_skip=True):
    """An inverted residual (MBConv) block with squeeze-and-excitation, as Keras's `block`."""
    bn_axis = _channel_axis()
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False,
                          kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}expand_conv")(inputs)
        x = layers.BatchNormalization(axis=bn_axis, name=f"{name}expand_bn")(x)
        x = layers.Activation(activation, name=f"{name}expand_activation")(x)
    else:
        x = inputs

    if strides == 2:
        x = layers.ZeroPadding2D(padding=_correct_pad(x, kernel_size), name=f"{name}dwconv_pad")(x)
        conv_pad = "valid"
    else:
        conv_pad = "same"
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=conv_pad, use_bias=False,
                               depthwise_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}dwconv")(x)
    x = layers.BatchNormalization(axis=bn_axis, name=f"{name}bn")(x)
    x = layers.Activation(activation, name=f"{name}activation")(x)

    if 0 < se_ratio <= 1:
        filters_se = max(1, int(filters_in * se_ratio))
        se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
        se_shape = (filters, 1, 1) if bn_axis == 1 else (1, 1, filters)
        se = layers.Reshape(se_shape, name=f"{name}se_reshape")(se)
        se = layers.Conv2D(filters_se, 1, padding="same", activation=activation,
                           kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}se_reduce")(se)
        se = layers.Conv2D(filters, 1, padding="same", activation="sigmoid",
                           kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}se_expand")(se)
        x = layers.multiply([x, se], name=f"{name}se_excite")

    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}project_conv")(x)
    x = layers.BatchNormalization(axis=bn_axis, name=f"{name}project_bn")(x)
    if id_skip and strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            # stochastic depth as Keras writes it: a Dropout dropping whole samples
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


_DOC = """Instantiates the {name} architecture (Keras's `keras.applications.{name}`).

    Preprocessing (scaling to [0, 1] and per-channel normalization) is part of
    the model: feed float pixels in [0, 255]; `preprocess_input` does nothing.

    Args:
        include_top: Whether to include the classifier (GlobalAveragePooling2D,
            Dropout, Dense "predictions"). Defaults to True.
        weights: None (random initialization), "imagenet" (Keras's pretrained
            file, read from the Keras cache; kerasish does not download) or
            the path of a weights file. Defaults to "imagenet".
        input_tensor: Optional Keras tensor to use as the image input.
        input_shape: Optional shape tuple, only with `include_top=False`
            (3 channels, at least 32x32).
        pooling: None, "avg" or "max": pooling of a headless model's output.
        classes: Number of classes, only without ImageNet weights or with
            `include_top=False`. Defaults to 1000.
        classifier_activation: Activation of the "predictions" layer (a str or
            callable); None for logits. Pretrained weights allow only None or
            "softmax". Defaults to "softmax".
        name: The model's name. Defaults to "{lname}".

    Returns:
        A functional `keras.Model`.

    Example:
        >>> base = keras.applications.{name}(include_top=False, weights=None,
        ...                                   input_shape=(64, 64, 3), pooling="avg")
"""

# (width, depth, default size, dropout) per size, as Keras.
_SIZES = {
    "b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5),
}


def _variant(size):
    width, depth, default_size, dropout = _SIZES[size]
    model_name = f"efficientnet{size}"

    def builder(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=model_name):
        return EfficientNet(
            width, depth, default_size, dropout, name=name, include_top=include_top, weights=weights,
            input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
            classifier_activation=classifier_activation, weights_name=size,
        )

    builder.__name__ = builder.__qualname__ = f"EfficientNet{size.upper()}"
    builder.__doc__ = _DOC.format(name=builder.__name__, lname=model_name)
    return builder


EfficientNetB0 = _variant("b0")
EfficientNetB1 = _variant("b1")
EfficientNetB2 = _variant("b2")
EfficientNetB3 = _variant("b3")
EfficientNetB4 = _variant("b4")
EfficientNetB5 = _variant("b5")
EfficientNetB6 = _variant("b6")
EfficientNetB7 = _variant("b7")


def preprocess_input(x, data_format=None):
    """A pass-through, kept for compatibility: EfficientNet preprocesses inside the model."""
    return x


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions (`imagenet_utils.decode_predictions`)."""
    return imagenet_utils.decode_predictions(preds, top=top)
