"""The VGG builder VGG16 and VGG19 share (Keras builds each by hand; the
layers, names and files are the same)."""

from __future__ import annotations

from kerasish import layers
from kerasish.applications import _common
from kerasish.applications import _weights
from kerasish.applications import imagenet_utils


def build_vgg(convs_per_block, include_top, weights, input_tensor, input_shape, pooling, classes,
              classifier_activation, name, files):
    """`convs_per_block`: 3x3 "same" convolutions in each of the 5 blocks;
    `files`: ((top name, url, md5), (no-top name, url, md5))."""
    _common.check_weights_and_classes(weights, include_top, classes)
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=224, min_size=32, data_format=_common._config.image_data_format(),
        require_flatten=include_top, weights=weights,
    )
    img_input = _common.image_input(input_tensor, input_shape)
    x = img_input
    for block, (filters, convs) in enumerate(zip((64, 128, 256, 512, 512), convs_per_block), start=1):
        for i in range(1, convs + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same", name=f"block{block}_conv{i}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)

    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _common.pooling_head(x, pooling)  # unnamed in Keras: global_average_pooling2d, ...

    model = _common.make_model(input_tensor, img_input, x, name)
    file_name, origin, file_hash = files[0 if include_top else 1]
    _weights.load_application_weights(model, weights, file_name, origin, file_hash)
    return model


VGG_DOC = """

    Reference: [Very Deep Convolutional Networks for Large-Scale Image Recognition](
    https://arxiv.org/abs/1409.1556) (ICLR 2015). The default input size is 224x224. Call
    `kerasish.applications.{module}.preprocess_input` on the inputs ("caffe" mode).

    Args:
        include_top: whether to include the 3 fully-connected layers at the top of the network.
        weights: `None` (random initialization), `"imagenet"` (Keras's ImageNet file, read from Keras's cache
            `$KERAS_HOME/models`, never downloaded by kerasish), or the path to a weights file.
        input_tensor: optional KerasTensor (output of `keras.Input()`) to use as image input.
        input_shape: optional shape tuple, only with `include_top=False` (else `(224, 224, 3)`); 3 channels,
            width and height at least 32.
        pooling: with `include_top=False`: None (4D output), "avg" or "max" (global pooling, 2D output).
        classes: number of classes, only with `include_top=True` and no `weights`. Defaults to 1000.
        classifier_activation: activation of the top layer (None for logits); with pretrained weights only
            None or "softmax".
        name: the name of the model.

    Returns:
        A functional `Model`.
"""
