"""NASNet-A (`keras.applications.nasnet`): NASNetMobile and NASNetLarge, built as Keras 3.15 builds them.

Reference: [Learning Transferable Architectures for Scalable Image Recognition](https://arxiv.org/abs/1707.07012)
(CVPR 2018). Inputs are preprocessed with `preprocess_input` ("tf" mode: [-1, 1]); channels_last only; at least
32x32.

Keras 3.15 refuses `NASNetMobile` on its torch backend ("not available with the torch backend at this time due to
an outstanding bug"); its generic `NASNet` builder does build the mobile network there, and kerasish builds the
same graph (tests/applications/test_nasnet.py compares both, outputs included).

Layer names, the name scopes in the weight paths (`normal_A_block_0/block_1/separable_conv_block_.../...`), the
weight order and the configs are Keras's: Keras's `.keras` and `.weights.h5` files and its ImageNet `.h5` files
load as they are.
"""

from __future__ import annotations

from kerasish import layers
from kerasish.applications import _common
from kerasish.applications import _weights
from kerasish.applications import imagenet_utils
from kerasish.utils.naming import NameScope

__all__ = ["NASNetMobile", "NASNetLarge", "preprocess_input", "decode_predictions"]

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/nasnet/"
NASNET_MOBILE_WEIGHT_PATH = f"{BASE_WEIGHTS_PATH}NASNet-mobile.h5"
NASNET_MOBILE_WEIGHT_PATH_NO_TOP = f"{BASE_WEIGHTS_PATH}NASNet-mobile-no-top.h5"
NASNET_LARGE_WEIGHT_PATH = f"{BASE_WEIGHTS_PATH}NASNet-large.h5"
NASNET_LARGE_WEIGHT_PATH_NO_TOP = f"{BASE_WEIGHTS_PATH}NASNet-large-no-top.h5"

# (default_size, include_top) -> Keras's get_file arguments (cache file name, URL, md5)
_WEIGHT_FILES = {
    (224, True): ("nasnet_mobile.h5", NASNET_MOBILE_WEIGHT_PATH, "020fb642bf7360b370c678b08e0adf61"),
    (224, False): ("nasnet_mobile_no_top.h5", NASNET_MOBILE_WEIGHT_PATH_NO_TOP, "1ed92395b5b598bdda52abe5c0dbfd63"),
    (331, True): ("nasnet_large.h5", NASNET_LARGE_WEIGHT_PATH, "11577c9a518f0070763c2b964a382f17"),
    (331, False): ("nasnet_large_no_top.h5", NASNET_LARGE_WEIGHT_PATH_NO_TOP, "d81d89dc07e6e56530c4e77faddd61b5"),
}

# NASNet's BatchNormalization: TF-slim's NASNet values (momentum 0.9997, not Keras's default 0.99)
_BN_MOMENTUM = 0.9997
_BN_EPSILON = 1e-3
_CHANNEL_DIM = -1  # channels_last only (NASNet raises on channels_first)
_IMG_DIM = -2  # the width, compared to decide whether the previous path needs a reduction


def _bn(name):
    return layers.BatchNormalization(axis=_CHANNEL_DIM, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


def _conv1x1(filters, name):
    return layers.Conv2D(filters, (1, 1), strides=(1, 1), padding="same", use_bias=False, name=name,
                         kernel_initializer="he_normal")


def NASNet(input_shape=None, penultimate_filters=4032, num_blocks=6, stem_block_filters=96, skip_reduction=True,
           filter_multiplier=2, include_top=True, weights="imagenet", input_tensor=None, pooling=None,
           classes=1000, default_size=None, classifier_activation="softmax", name="NASNet"):
    """Instantiates a NASNet-A model (`NASNet (N @ P)`: `num_blocks` @ `penultimate_filters`), Keras's builder.

    `NASNetMobile` and `NASNetLarge` call it with their numbers; `weights="imagenet"` needs `default_size` 224
    (mobile) or 331 (large).

    Args:
        input_shape: Optional shape tuple (3 channels, at least 32x32); only with `include_top=False` unless it is
            `(default_size, default_size, 3)`.
        penultimate_filters: Filters of the penultimate layer; a multiple of `24 * filter_multiplier ** 2`.
        num_blocks: Normal cells repeated in each of the three stages.
        stem_block_filters: Filters of the first convolution.
        skip_reduction: Whether a stage's first normal cell takes the cell before the reduction cell as its
            previous path (True) or the reduction cell's input (False).
        filter_multiplier: Width factor between the stages.
        include_top: Whether to include the classifier (GlobalAveragePooling2D, Dense "predictions").
        weights: None, "imagenet" (Keras's file, through `keras.utils.get_file` into Keras's cache) or the path of
            a weights file.
        input_tensor: Optional Keras tensor to use as the image input.
        pooling: None, "avg" or "max" for a headless model.
        classes: Number of classes (1000 with ImageNet weights and a top).
        default_size: The default image size. Defaults to 331.
        classifier_activation: Activation of "predictions"; None for logits. Pretrained weights allow only None
            or "softmax".
        name: The model's name.

    Returns:
        A functional `keras.Model`.

    Raises:
        ValueError: channels_first data format, invalid `weights`, `classes` other than 1000 with ImageNet weights
            and a top, a shape with None entries with ImageNet weights, a bad `input_shape`, or
            `penultimate_filters` not a multiple of `24 * filter_multiplier ** 2`.
    """
    if not _common.channels_last():
        raise ValueError(
            "NASNet does not support the `channels_first` image data format. Switch to `channels_last` by editing "
            "your local config file at ~/.keras/keras.json"
        )
    if not _weights.weights_argument_is_valid(weights):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), `imagenet` (pre-training on "
            "ImageNet), or the path to the weights file to be loaded."
        )
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError('If using `weights` as `"imagenet"` with `include_top` as true, `classes` should be 1000')
    if isinstance(input_shape, tuple) and None in input_shape and weights == "imagenet":
        raise ValueError(
            "When specifying the input shape of a NASNet and loading `ImageNet` weights, the input_shape argument "
            f"must be static (no None entries). Got: `input_shape={input_shape}`."
        )
    if default_size is None:
        default_size = 331
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=default_size, min_size=32, data_format="channels_last",
        require_flatten=include_top, weights=weights,
    )
    img_input = _common.image_input(input_tensor, input_shape)
    if penultimate_filters % (24 * (filter_multiplier**2)) != 0:
        raise ValueError(
            "For NASNet-A models, the `penultimate_filters` must be a multiple of 24 * (`filter_multiplier` ** 2). "
            f"Current value: {penultimate_filters}"
        )
    weights_path = weights
    if weights == "imagenet":  # Keras asks for the file after building; the file and the error are the same
        if default_size not in (224, 331):
            raise ValueError("ImageNet weights can only be loaded with NASNetLarge or NASNetMobile")
        fname, origin, file_hash = _WEIGHT_FILES[(default_size, bool(include_top))]
        weights_path = _weights.resolve_weights(weights, fname, origin, file_hash=file_hash)

    filters = penultimate_filters // 24
    x = layers.Conv2D(stem_block_filters, (3, 3), strides=(2, 2), padding="valid", use_bias=False,
                      name="stem_conv1", kernel_initializer="he_normal")(img_input)
    x = _bn("stem_bn1")(x)

    p = None
    x, p = _reduction_a_cell(x, p, filters // (filter_multiplier**2), block_id="stem_1")
    x, p = _reduction_a_cell(x, p, filters // filter_multiplier, block_id="stem_2")
    for stage in range(3):
        width = filters * filter_multiplier**stage
        if stage:
            x, p0 = _reduction_a_cell(x, p, width, block_id=f"reduce_{stage * num_blocks}")
            p = p if skip_reduction else p0
        first = stage * num_blocks + (1 if stage else 0)
        for i in range(num_blocks):
            x, p = _normal_a_cell(x, p, width, block_id=f"{first + i}")

    x = layers.Activation("relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D()(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _common.pooling_head(x, pooling)

    model = _common.make_model(input_tensor, img_input, x, name)
    if weights_path is not None:
        model.load_weights(weights_path)
    return model


def NASNetMobile(input_shape=None, include_top=True, weights="imagenet", input_tensor=None, pooling=None,
                 classes=1000, classifier_activation="softmax", name="nasnet_mobile"):
    """Instantiates NASNet-A Mobile (4 @ 1056), Keras's `keras.applications.NASNetMobile`.

    The default input is 224x224x3 (at least 32x32). Call `keras.applications.nasnet.preprocess_input` on the
    inputs first. Keras 3.15 raises a ValueError for this model on its torch backend; kerasish builds it (the
    same graph as Keras's `NASNet` builder with these numbers, which Keras does run on torch).

    Args:
        input_shape: Optional shape tuple, only with `include_top=False` (else `(224, 224, 3)`).
        include_top: Whether to include the classifier. Defaults to True.
        weights: None, "imagenet" (Keras's `nasnet_mobile.h5` / `nasnet_mobile_no_top.h5`, through
            `keras.utils.get_file`) or the path of a weights file. Defaults to "imagenet".
        input_tensor: Optional Keras tensor to use as the image input.
        pooling: None, "avg" or "max" for a headless model.
        classes: Number of classes (1000 with ImageNet weights and a top).
        classifier_activation: Activation of "predictions"; None for logits.
        name: The model's name. Defaults to "nasnet_mobile".

    Returns:
        A functional `keras.Model`.
    """
    if not include_top and input_shape is None:
        input_shape = (224, 224, 3)
    return NASNet(input_shape, penultimate_filters=1056, num_blocks=4, stem_block_filters=32, skip_reduction=False,
                  filter_multiplier=2, include_top=include_top, weights=weights, input_tensor=input_tensor,
                  pooling=pooling, classes=classes, default_size=224, classifier_activation=classifier_activation,
                  name=name)


def NASNetLarge(input_shape=None, include_top=True, weights="imagenet", input_tensor=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="nasnet_large"):
    """Instantiates NASNet-A Large (6 @ 4032), Keras's `keras.applications.NASNetLarge`.

    The default input is 331x331x3 (at least 32x32). Call `keras.applications.nasnet.preprocess_input` on the
    inputs first.

    Args:
        input_shape: Optional shape tuple, only with `include_top=False` (else `(331, 331, 3)`).
        include_top: Whether to include the classifier. Defaults to True.
        weights: None, "imagenet" (Keras's `nasnet_large.h5` / `nasnet_large_no_top.h5`, through
            `keras.utils.get_file`) or the path of a weights file. Defaults to "imagenet".
        input_tensor: Optional Keras tensor to use as the image input.
        pooling: None, "avg" or "max" for a headless model.
        classes: Number of classes (1000 with ImageNet weights and a top).
        classifier_activation: Activation of "predictions"; None for logits.
        name: The model's name. Defaults to "nasnet_large".

    Returns:
        A functional `keras.Model`.
    """
    return NASNet(input_shape, penultimate_filters=4032, num_blocks=6, stem_block_filters=96, skip_reduction=True,
                  filter_multiplier=2, include_top=include_top, weights=weights, input_tensor=input_tensor,
                  pooling=pooling, classes=classes, default_size=331, classifier_activation=classifier_activation,
                  name=name)


def _separable_conv_block(ip, filters, kernel_size=(3, 3), strides=(1, 1), block_id=None):
    """Two [relu, SeparableConv2D, BatchNormalization]; the first strided one pads as TF's "same"."""
    with NameScope(f"separable_conv_block_{block_id}"):
        x = layers.Activation("relu")(ip)
        if strides == (2, 2):
            x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size),
                                     name=f"separable_conv_1_pad_{block_id}")(x)
            conv_pad = "valid"
        else:
            conv_pad = "same"
        x = layers.SeparableConv2D(filters, kernel_size, strides=strides, name=f"separable_conv_1_{block_id}",
                                   padding=conv_pad, use_bias=False)(x)
        x = _bn(f"separable_conv_1_bn_{block_id}")(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, kernel_size, name=f"separable_conv_2_{block_id}", padding="same",
                                   use_bias=False)(x)
        x = _bn(f"separable_conv_2_bn_{block_id}")(x)
    return x


def _adjust_block(p, ip, filters, block_id=None):
    """The previous path `p` brought to `ip`'s size (a factorized reduction) or to `filters` channels (a 1x1
    projection); `ip` itself when there is no previous path."""
    with NameScope("adjust_block"):
        if p is None:
            p = ip
        elif p.shape[_IMG_DIM] != ip.shape[_IMG_DIM]:
            with NameScope(f"adjust_reduction_block_{block_id}"):
                p = layers.Activation("relu", name=f"adjust_relu_1_{block_id}")(p)
                p1 = layers.AveragePooling2D((1, 1), strides=(2, 2), padding="valid",
                                             name=f"adjust_avg_pool_1_{block_id}")(p)
                p1 = layers.Conv2D(filters // 2, (1, 1), padding="same", use_bias=False,
                                   name=f"adjust_conv_1_{block_id}", kernel_initializer="he_normal")(p1)
                # the second half sees the map shifted by one pixel (pad bottom/right, crop top/left)
                p2 = layers.ZeroPadding2D(padding=((0, 1), (0, 1)))(p)
                p2 = layers.Cropping2D(cropping=((1, 0), (1, 0)))(p2)
                p2 = layers.AveragePooling2D((1, 1), strides=(2, 2), padding="valid",
                                             name=f"adjust_avg_pool_2_{block_id}")(p2)
                p2 = layers.Conv2D(filters // 2, (1, 1), padding="same", use_bias=False,
                                   name=f"adjust_conv_2_{block_id}", kernel_initializer="he_normal")(p2)
                p = layers.concatenate([p1, p2], axis=_CHANNEL_DIM)
                p = _bn(f"adjust_bn_{block_id}")(p)
        elif p.shape[_CHANNEL_DIM] != filters:
            with NameScope(f"adjust_projection_block_{block_id}"):
                p = layers.Activation("relu")(p)
                p = layers.Conv2D(filters, (1, 1), strides=(1, 1), padding="same",
                                  name=f"adjust_conv_projection_{block_id}", use_bias=False,
                                  kernel_initializer="he_normal")(p)
                p = _bn(f"adjust_bn_{block_id}")(p)
    return p


def _avg3(name, strides=(1, 1), padding="same"):
    return layers.AveragePooling2D((3, 3), strides=strides, padding=padding, name=name)


def _normal_a_cell(ip, p, filters, block_id=None):
    """NASNet-A's normal cell (Fig. 4 of the paper); returns (output, ip) for the next cell."""
    with NameScope(f"normal_A_block_{block_id}"):
        p = _adjust_block(p, ip, filters, block_id)
        h = layers.Activation("relu")(ip)
        h = _conv1x1(filters, f"normal_conv_1_{block_id}")(h)
        h = _bn(f"normal_bn_1_{block_id}")(h)

        with NameScope("block_1"):
            x1_1 = _separable_conv_block(h, filters, kernel_size=(5, 5), block_id=f"normal_left1_{block_id}")
            x1_2 = _separable_conv_block(p, filters, block_id=f"normal_right1_{block_id}")
            x1 = layers.add([x1_1, x1_2], name=f"normal_add_1_{block_id}")
        with NameScope("block_2"):
            x2_1 = _separable_conv_block(p, filters, (5, 5), block_id=f"normal_left2_{block_id}")
            x2_2 = _separable_conv_block(p, filters, (3, 3), block_id=f"normal_right2_{block_id}")
            x2 = layers.add([x2_1, x2_2], name=f"normal_add_2_{block_id}")
        with NameScope("block_3"):
            x3 = _avg3(f"normal_left3_{block_id}")(h)
            x3 = layers.add([x3, p], name=f"normal_add_3_{block_id}")
        with NameScope("block_4"):
            x4_1 = _avg3(f"normal_left4_{block_id}")(p)
            x4_2 = _avg3(f"normal_right4_{block_id}")(p)
            x4 = layers.add([x4_1, x4_2], name=f"normal_add_4_{block_id}")
        with NameScope("block_5"):
            x5 = _separable_conv_block(h, filters, block_id=f"normal_left5_{block_id}")
            x5 = layers.add([x5, h], name=f"normal_add_5_{block_id}")
        x = layers.concatenate([p, x1, x2, x3, x4, x5], axis=_CHANNEL_DIM, name=f"normal_concat_{block_id}")
    return x, ip


def _reduction_a_cell(ip, p, filters, block_id=None):
    """NASNet-A's reduction cell (Fig. 4 of the paper), halving the size; returns (output, ip)."""
    with NameScope(f"reduction_A_block_{block_id}"):
        p = _adjust_block(p, ip, filters, block_id)
        h = layers.Activation("relu")(ip)
        h = _conv1x1(filters, f"reduction_conv_1_{block_id}")(h)
        h = _bn(f"reduction_bn_1_{block_id}")(h)
        h3 = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(h, 3), name=f"reduction_pad_1_{block_id}")(h)

        with NameScope("block_1"):
            x1_1 = _separable_conv_block(h, filters, (5, 5), strides=(2, 2), block_id=f"reduction_left1_{block_id}")
            x1_2 = _separable_conv_block(p, filters, (7, 7), strides=(2, 2),
                                         block_id=f"reduction_right1_{block_id}")
            x1 = layers.add([x1_1, x1_2], name=f"reduction_add_1_{block_id}")
        with NameScope("block_2"):
            x2_1 = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="valid",
                                       name=f"reduction_left2_{block_id}")(h3)
            x2_2 = _separable_conv_block(p, filters, (7, 7), strides=(2, 2),
                                         block_id=f"reduction_right2_{block_id}")
            x2 = layers.add([x2_1, x2_2], name=f"reduction_add_2_{block_id}")
        with NameScope("block_3"):
            x3_1 = _avg3(f"reduction_left3_{block_id}", strides=(2, 2), padding="valid")(h3)
            x3_2 = _separable_conv_block(p, filters, (5, 5), strides=(2, 2),
                                         block_id=f"reduction_right3_{block_id}")
            x3 = layers.add([x3_1, x3_2], name=f"reduction_add3_{block_id}")
        with NameScope("block_4"):
            x4 = _avg3(f"reduction_left4_{block_id}")(x1)
            x4 = layers.add([x2, x4])
        with NameScope("block_5"):
            # Keras reuses "reduction_left4" in this block's separable-conv names
            x5_1 = _separable_conv_block(x1, filters, (3, 3), block_id=f"reduction_left4_{block_id}")
            x5_2 = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="valid",
                                       name=f"reduction_right5_{block_id}")(h3)
            x5 = layers.add([x5_1, x5_2], name=f"reduction_add4_{block_id}")
        x = layers.concatenate([x2, x3, x4, x5], axis=_CHANNEL_DIM, name=f"reduction_concat_{block_id}")
    return x, ip


def preprocess_input(x, data_format=None):
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


preprocess_input.__doc__ = imagenet_utils.PREPROCESS_INPUT_DOC.format(
    mode="", ret=imagenet_utils.PREPROCESS_INPUT_RET_DOC_TF, error=imagenet_utils.PREPROCESS_INPUT_ERROR_DOC
)
decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
