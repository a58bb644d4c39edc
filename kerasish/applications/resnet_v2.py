"""ResNet50V2/101V2/152V2 (Keras 3's `keras.applications.resnet_v2`).

Reference: [Identity Mappings in Deep Residual Networks](https://arxiv.org/abs/1603.05027) (ECCV 2016).
"""

from __future__ import annotations

from kerasish.applications import imagenet_utils
from kerasish.applications import resnet


def _v2(depths, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name,
        weights_name):
    def stack_fn(x):
        x = resnet.stack_residual_blocks_v2(x, 64, depths[0], name="conv2")
        x = resnet.stack_residual_blocks_v2(x, 128, depths[1], name="conv3")
        x = resnet.stack_residual_blocks_v2(x, 256, depths[2], name="conv4")
        return resnet.stack_residual_blocks_v2(x, 512, depths[3], stride1=1, name="conv5")

    return resnet.ResNet(stack_fn, True, True, name=name, weights_name=weights_name, include_top=include_top,
                         weights=weights, input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
                         classes=classes, classifier_activation=classifier_activation)


def ResNet50V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
               classes=1000, classifier_activation="softmax", name="resnet50v2"):
    """Instantiates the ResNet50V2 architecture."""
    return _v2((3, 4, 6, 3), include_top, weights, input_tensor, input_shape, pooling, classes,
               classifier_activation, name, "resnet50v2")


def ResNet101V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="resnet101v2"):
    """Instantiates the ResNet101V2 architecture."""
    return _v2((3, 4, 23, 3), include_top, weights, input_tensor, input_shape, pooling, classes,
               classifier_activation, name, "resnet101v2")


def ResNet152V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="resnet152v2"):
    """Instantiates the ResNet152V2 architecture."""
    return _v2((3, 8, 36, 3), include_top, weights, input_tensor, input_shape, pooling, classes,
               classifier_activation, name, "resnet152v2")


def preprocess_input(x, data_format=None):
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


preprocess_input.__doc__ = imagenet_utils.PREPROCESS_INPUT_DOC.format(
    mode="", ret=imagenet_utils.PREPROCESS_INPUT_RET_DOC_TF, error=imagenet_utils.PREPROCESS_INPUT_ERROR_DOC
)
decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__

for _fn in (ResNet50V2, ResNet101V2, ResNet152V2):
    _fn.__doc__ += resnet.DOC.replace("resnet.preprocess_input", "resnet_v2.preprocess_input").replace(
        '"caffe" mode: RGB to BGR, then the\n    ImageNet channel means subtracted', '"tf" mode: scaled to [-1, 1]').replace(
        "[Deep Residual Learning for Image Recognition](https://arxiv.org/abs/1512.03385) (CVPR 2015)",
        "[Identity Mappings in Deep Residual Networks](https://arxiv.org/abs/1603.05027) (ECCV 2016)")
