"""MobileNetV3Small / MobileNetV3Large against Keras 3.15 (torch backend):
names, weights, counts, config and outputs with Keras's weights copied in
(inference and training=True), alpha / minimalistic / include_preprocessing /
dropout variants and `input_tensor=`."""

import pytest

import kerasish

from apps_parity import assert_outputs_equal
from apps_parity import assert_parity
from apps_parity import assert_same_structure
from apps_parity import build_both
from apps_parity import images


@pytest.mark.parametrize("name,kwargs", [
    ("MobileNetV3Small", {}),
    ("MobileNetV3Small", {"alpha": 0.75, "include_preprocessing": False}),
    ("MobileNetV3Large", {"minimalistic": True}),
])
def test_mobilenet_v3_top(keras_ref, name, kwargs):
    # dropout_rate=0 drops the Dropout layer (as in Keras): deterministic training=True outputs
    assert_parity(keras_ref, name, (32, 32, 3), input_shape=(32, 32, 3), classes=10, dropout_rate=0, **kwargs)


def test_mobilenet_v3_large_features_and_dropout_layer(keras_ref):
    ref, ours = assert_parity(keras_ref, "MobileNetV3Large", (64, 64, 3), alpha=1.25, include_top=False,
                              pooling="avg")
    assert tuple(ours.input.shape) == (None, None, None, 3)  # no input_shape: any size
    ref, ours = build_both(keras_ref, "MobileNetV3Small", weights=None, input_shape=(32, 32, 3), classes=3,
                           minimalistic=True)
    assert_same_structure(ref, ours)
    assert [type(layer).__name__ for layer in ours.layers][-4:] == ["Dropout", "Conv2D", "Flatten", "Activation"]
    assert ours.get_layer("dropout").rate == 0.2


def test_mobilenet_v3_input_tensor(keras_ref):
    keras_ref.utils.clear_session()  # automatic names count from zero on both sides (conftest resets kerasish's)
    ref = keras_ref.applications.MobileNetV3Small(weights=None, include_top=False,
                                                  input_tensor=keras_ref.Input((48, 48, 3)))
    ours = kerasish.applications.MobileNetV3Small(weights=None, include_top=False,
                                                  input_tensor=kerasish.Input((48, 48, 3)))
    assert_same_structure(ref, ours)
    ours.set_weights(ref.get_weights())
    assert_outputs_equal(ref, ours, images((48, 48, 3)))
