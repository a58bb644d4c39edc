"""DenseNet 121/169/201 (`keras.applications.densenet`), built as Keras 3.15 builds them.

Reference: [Densely Connected Convolutional Networks](https://arxiv.org/abs/1608.06993)
(CVPR 2017). Inputs are preprocessed with `preprocess_input` ("torch" mode:
[0, 1] then ImageNet mean/std). channels_last only, as in Keras.
"""

from __future__ import annotations

from kerasish import layers
from kerasish.applications import imagenet_utils
from kerasish.applications._weights import resolve_weights
from kerasish.applications.efficientnet import (
    _channel_axis, _check_weights, _image_input, _load_weights, _model_inputs, _top_or_pooling,
)
from kerasish.backend import config as _config
from kerasish.models.functional import Functional

__all__ = ["DenseNet121", "DenseNet169", "DenseNet201", "preprocess_input", "decode_predictions"]

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/densenet/"

# blocks per dense stage -> (file stem, md5 with top, md5 without top), as Keras.
_WEIGHTS = {
    (6, 12, 24, 16): ("densenet121", "9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738"),
    (6, 12, 32, 32): ("densenet169", "d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b"),
    (6, 12, 48, 32): ("densenet201", "1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1"),
}

# Keras's DenseNet BatchNormalization epsilon (the original Caffe/Torch models').
_BN_EPSILON = 1.001e-5


def dense_block(x, blocks, name):
    """`blocks` conv blocks, each concatenating 32 new channels."""
    for i in range(blocks):
        x = conv_block(x, 32, name=f"{name}_block{i + 1}")
    return x


def transition_block(x, reduction, name):
    """BN-ReLU-1x1 conv (channels * reduction) then 2x2 average pooling."""
    bn_axis = _channel_axis()
    x = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(int(x.shape[bn_axis] * reduction), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def conv_block(x, growth_rate, name):
    """BN-ReLU-1x1 conv (4 * growth) - BN-ReLU-3x3 conv (growth), concatenated to `x`."""
    bn_axis = _channel_axis()
    x1 = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name=f"{name}_0_bn")(x)
    x1 = layers.Activation("relu", name=f"{name}_0_relu")(x1)
    x1 = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(x1)
    x1 = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name=f"{name}_1_bn")(x1)
    x1 = layers.Activation("relu", name=f"{name}_1_relu")(x1)
    x1 = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x1)
    return layers.Concatenate(axis=bn_axis, name=f"{name}_concat")([x, x1])


def DenseNet(blocks, include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="densenet"):
    """Builds a DenseNet with `blocks` conv blocks in its four dense stages (Keras's `DenseNet`)."""
    if _config.image_data_format() == "channels_first":
        raise ValueError(
            "DenseNet does not support the `channels_first` image data format. Switch to `channels_last` by "
            "editing your local config file at ~/.keras/keras.json"
        )
    _check_weights(weights, include_top, classes,
                   message='If using `weights` as `"imagenet"` with `include_top` as true, `classes` should be 1000')
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=224, min_size=32, data_format=_config.image_data_format(),
        require_flatten=include_top, weights=weights,
    )
    weights_path = weights
    if weights == "imagenet":  # resolved before building: a missing file fails at once
        if tuple(blocks) not in _WEIGHTS:
            raise ValueError("weights_path undefined")
        stem, top_hash, notop_hash = _WEIGHTS[tuple(blocks)]
        fname = f"{stem}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
        weights_path = resolve_weights(weights, fname, BASE_WEIGHTS_PATH + fname,
                                       file_hash=top_hash if include_top else notop_hash)
    img_input = _image_input(input_tensor, input_shape)
    bn_axis = _channel_axis()

    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)))(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)))(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, count in enumerate(blocks):
        x = dense_block(x, count, name=f"conv{stage + 2}")
        if stage < 3:
            x = transition_block(x, 0.5, name=f"pool{stage + 2}")
    x = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    x = _top_or_pooling(x, include_top, pooling, classes, classifier_activation, weights)

    model = Functional(_model_inputs(input_tensor, img_input), x, name=name)
    return _load_weights(model, weights_path, None, None)


_DOC = """Instantiates the {name} architecture (Keras's `keras.applications.{name}`).

    Call `keras.applications.densenet.preprocess_input` on the inputs first.
    channels_last only.

    Args:
        include_top: Whether to include the classifier (GlobalAveragePooling2D,
            Dense "predictions"). Defaults to True.
        weights: None, "imagenet" (Keras's file, read from the Keras cache;
            kerasish does not download) or the path of a weights file.
            Defaults to "imagenet".
        input_tensor: Optional Keras tensor to use as the image input.
        input_shape: Optional shape tuple, only with `include_top=False`
            (3 channels, at least 32x32).
        pooling: None, "avg" or "max" for a headless model.
        classes: Number of classes (1000 with ImageNet weights and a top).
        classifier_activation: Activation of "predictions"; None for logits.
            Pretrained weights allow only None or "softmax".
        name: The model's name. Defaults to "{lname}".

    Returns:
        A functional `keras.Model`.
"""


def _variant(blocks, model_name):
    def builder(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=model_name):
        return DenseNet(list(blocks), include_top, weights, input_tensor, input_shape, pooling, classes,
                        classifier_activation, name=name)

    builder.__name__ = builder.__qualname__ = model_name.replace("densenet", "DenseNet")
    builder.__doc__ = _DOC.format(name=builder.__name__, lname=model_name)
    return builder


DenseNet121 = _variant((6, 12, 24, 16), "densenet121")
DenseNet169 = _variant((6, 12, 32, 32), "densenet169")
DenseNet201 = _variant((6, 12, 48, 32), "densenet201")


def preprocess_input(x, data_format=None):
    """ImageNet "torch" preprocessing: scale to [0, 1], then per-channel mean/std."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="torch")


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions (`imagenet_utils.decode_predictions`)."""
    return imagenet_utils.decode_predictions(preds, top=top)
