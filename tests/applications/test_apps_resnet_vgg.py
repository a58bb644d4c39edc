"""ResNet50 / ResNet50V2 / VGG16 / VGG19 against Keras 3.15 (torch backend):
layer names and types in order, weight paths and shapes, parameter counts,
the model config, and outputs with Keras's weights copied in (inference and
training=True, with the moving statistics that call leaves). The deeper
ResNets are in test_apps_resnet_deep.py (structure only: build cost)."""

import kerasish

from apps_parity import assert_outputs_equal
from apps_parity import assert_parity
from apps_parity import assert_same_structure
from apps_parity import build_both
from apps_parity import images


def test_resnet50_features_avg_pooling_training(keras_ref):
    assert_parity(keras_ref, "ResNet50", (64, 64, 3), include_top=False, input_shape=(64, 64, 3), pooling="avg")


def test_resnet50v2_top_logits(keras_ref):
    # include_top at 32x32 (the minimum): inference only, training=True there would normalize batch-2 1x1 maps
    # (ill-conditioned); ResNet50 above checks training
    ref, ours = assert_parity(keras_ref, "ResNet50V2", (32, 32, 3), train=False, input_shape=(32, 32, 3),
                              classes=5, classifier_activation=None)
    assert ours.get_layer("predictions").get_config()["activation"] == "linear"
    # the identity shortcuts with stride are unnamed MaxPooling2D layers in Keras: the same automatic names
    assert [layer.name for layer in ours.layers if layer.name.startswith("max_pooling2d")] == [
        "max_pooling2d", "max_pooling2d_1", "max_pooling2d_2"]


def test_vgg16_top(keras_ref):
    # no BatchNormalization: training=True is exact too
    assert_parity(keras_ref, "VGG16", (32, 32, 3), input_shape=(32, 32, 3), classes=10)


def test_vgg19_features_input_tensor_and_default_shape(keras_ref):
    keras_ref.utils.clear_session()
    ref_in, ours_in = keras_ref.Input((48, 40, 3), name="img"), kerasish.Input((48, 40, 3), name="img")
    ref = keras_ref.applications.VGG19(weights=None, include_top=False, input_tensor=ref_in)
    ours = kerasish.applications.VGG19(weights=None, include_top=False, input_tensor=ours_in)
    assert_same_structure(ref, ours)
    assert ours.inputs[0] is ours_in and tuple(ours.output.shape) == (None, 1, 1, 512)
    ours.set_weights(ref.get_weights())
    assert_outputs_equal(ref, ours, images((48, 40, 3)))
    # no input_shape: (None, None, 3), any size
    ref, ours = build_both(keras_ref, "VGG16", weights=None, include_top=False, pooling="avg")
    assert tuple(ours.input.shape) == tuple(ref.input.shape) == (None, None, None, 3)
    ours.set_weights(ref.get_weights())
    assert_outputs_equal(ref, ours, images((36, 52, 3)))
