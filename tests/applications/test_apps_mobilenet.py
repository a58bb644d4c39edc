"""MobileNet / MobileNetV2 against Keras 3.15 (torch backend): names,
weights, counts, config and outputs with Keras's weights copied in (inference
and training=True), alpha / depth_multiplier variants, channels_first, and a
transfer-learning program (frozen base + head, `fit`) equal to Keras's.
MobileNetV3 is in test_apps_mobilenet_v3.py."""

import numpy as np
import torch

import kerasish

from apps_parity import assert_outputs_equal
from apps_parity import assert_parity
from apps_parity import assert_same_structure
from apps_parity import build_both
from apps_parity import images


def test_mobilenet_alpha_depth_multiplier(keras_ref):
    # dropout=0 so that training=True compares deterministic outputs (a Dropout draws its own mask on each side)
    ref, ours = assert_parity(keras_ref, "MobileNet", (64, 64, 3), input_shape=(64, 64, 3), alpha=0.25,
                              depth_multiplier=2, dropout=0.0, classes=7)
    assert ours.name == "mobilenet_0.25_64"


def test_mobilenet_features_max_pooling(keras_ref):
    ref, ours = assert_parity(keras_ref, "MobileNet", (32, 32, 3), train=False, input_shape=(32, 32, 3),
                              alpha=0.5, include_top=False, pooling="max")
    assert ours.name == "mobilenet_0.50_32"


def test_mobilenet_v2_top(keras_ref):
    ref, ours = assert_parity(keras_ref, "MobileNetV2", (64, 64, 3), input_shape=(64, 64, 3), alpha=0.35,
                              classes=10)
    assert ours.name == "mobilenetv2_0.35_64"


def test_mobilenet_v2_wide_features(keras_ref):
    # alpha > 1 widens the last convolution too; 96 is an ImageNet size, so it names the model
    ref, ours = assert_parity(keras_ref, "MobileNetV2", (96, 96, 3), train=False, input_shape=(96, 96, 3), alpha=1.3,
                              include_top=False, pooling="avg")
    assert ours.name == "mobilenetv2_1.30_96"
    assert ours.get_layer("Conv_1").filters == 1664  # _make_divisible(1280 * 1.3, 8)


def test_mobilenet_v2_channels_first(keras_ref):
    keras_ref.config.set_image_data_format("channels_first")
    kerasish.config.set_image_data_format("channels_first")
    try:
        ref, ours = build_both(keras_ref, "MobileNetV2", weights=None, alpha=0.35, input_shape=(3, 64, 64),
                               classes=4)
        assert_same_structure(ref, ours)
        ours.set_weights(ref.get_weights())
        x = images((3, 64, 64))
        assert_outputs_equal(ref, ours, x)
        assert_outputs_equal(ref, ours, x, training=True)
    finally:
        keras_ref.config.set_image_data_format("channels_last")
        kerasish.config.set_image_data_format("channels_last")


def _transfer_program(lib, base_weights, x, y):
    """The Keras guide's transfer-learning recipe: frozen MobileNetV2 base, new head, fit."""
    lib.utils.clear_session()
    base = lib.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    base.set_weights(base_weights)
    base.trainable = False
    inputs = lib.Input((32, 32, 3))
    h = lib.applications.mobilenet_v2.preprocess_input(inputs)
    h = base(h, training=False)
    h = lib.layers.GlobalAveragePooling2D()(h)
    outputs = lib.layers.Dense(3, activation="softmax", kernel_initializer="ones")(h)
    model = lib.Model(inputs, outputs)
    model.compile(optimizer=lib.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    return model, history.history


def test_transfer_learning_fit_equals_keras(keras_ref):
    keras_ref.utils.clear_session()
    donor = keras_ref.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    base_weights = donor.get_weights()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 3, (8,))
    ref, ref_history = _transfer_program(keras_ref, base_weights, x.copy(), y)
    ours, history = _transfer_program(kerasish, base_weights, x.copy(), y)
    assert ours.count_params() == ref.count_params()
    assert len(ours.trainable_weights) == len(ref.trainable_weights) == 2
    assert history.keys() == ref_history.keys()
    for key in history:
        np.testing.assert_allclose(history[key], ref_history[key], rtol=1e-4, atol=1e-6, err_msg=key)
    for a, b in zip(ref.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    # the frozen base did not move (its BatchNormalizations ran in inference mode)
    for a, b in zip(base_weights, ours.layers[2].get_weights()):
        np.testing.assert_array_equal(b, a)
    with torch.no_grad():
        np.testing.assert_allclose(ours.predict(x, verbose=0), ref.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
