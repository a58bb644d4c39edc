"""Steps every application shares: argument checks, the input tensor, the
classifier top and the pooling head, the model and its weights."""

from __future__ import annotations

from kerasish import layers
from kerasish.applications import _weights
from kerasish.applications import imagenet_utils
from kerasish.backend import config as _config
from kerasish.backend.keras_tensor import is_keras_tensor
from kerasish.utils.graph_utils import get_source_inputs

WEIGHTS_ERROR = (
    "The `weights` argument should be either `None` (random initialization), 'imagenet' (pre-training on ImageNet), "
    "or the path to the weights file to be loaded.  Received: weights={weights}"
)
CLASSES_ERROR = (
    "If using `weights='imagenet'` with `include_top=True`, `classes` should be 1000.  Received classes={classes}"
)


def check_weights_and_classes(weights, include_top, classes, weights_error=WEIGHTS_ERROR,
                              classes_error=CLASSES_ERROR):
    """Keras's first two checks (each family words them a little differently)."""
    if not _weights.weights_argument_is_valid(weights):
        raise ValueError(weights_error.format(weights=weights))
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(classes_error.format(classes=classes))


def channels_last() -> bool:
    return _config.image_data_format() == "channels_last"


def channel_axis() -> int:
    """The channel axis of 4-D images under the global data format."""
    return 3 if channels_last() else 1


def image_input(input_tensor, input_shape):
    """A new `Input(shape=input_shape)`, or `input_tensor` when it is a
    KerasTensor (anything else raises Input's ValueError, as in Keras)."""
    if input_tensor is None:
        return layers.Input(shape=input_shape)
    if not is_keras_tensor(input_tensor):
        return layers.Input(tensor=input_tensor, shape=input_shape)
    return input_tensor


def pooling_head(x, pooling, avg_name=None, max_name=None):
    """`include_top=False`: the feature map, or its global average / max."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=avg_name)(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=max_name)(x)
    return x


def dense_top(x, classes, classifier_activation, weights, pool_name=None):
    """GlobalAveragePooling2D + the `predictions` Dense."""
    x = layers.GlobalAveragePooling2D(name=pool_name)(x)
    imagenet_utils.validate_activation(classifier_activation, weights)
    return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


def make_model(input_tensor, img_input, outputs, name):
    """The functional model, from `input_tensor`'s source inputs when given
    (so layers before it stay part of the model), as Keras does."""
    from kerasish.models.functional import Functional

    return Functional(model_inputs(input_tensor, img_input), outputs, name=name)


def model_inputs(input_tensor, img_input):
    """What the model takes: the Inputs `input_tensor` depends on (Keras's list), or `img_input`."""
    return get_source_inputs(input_tensor) if input_tensor is not None else img_input
