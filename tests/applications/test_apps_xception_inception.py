"""Xception and InceptionV3 against Keras 3.15 (torch backend): names (many
automatic: `conv2d_93`, `batch_normalization_93`, `add_11` ... as Keras
counts them), weights, counts, config and outputs with Keras's weights copied
in, at the smallest inputs they take (71x71, 75x75) and a larger one for
training=True."""

from apps_parity import assert_parity


def test_xception_top_at_min_size(keras_ref):
    ref, ours = assert_parity(keras_ref, "Xception", (71, 71, 3), input_shape=(71, 71, 3), classes=6)
    assert [layer.name for layer in ours.layers if layer.name.startswith("add")][-1] == "add_11"


def test_inception_v3_features_avg(keras_ref):
    # 139x139: the last 8x8-grid blocks see 3x3 maps (75x75 gives 1x1 maps, 107x107 2x2: batch-2 statistics
    # over so few values are ill-conditioned, a few channels then differ by float32 rounding amplified)
    ref, ours = assert_parity(keras_ref, "InceptionV3", (139, 139, 3), input_shape=(139, 139, 3),
                              include_top=False, pooling="avg")
    assert ours.layers[-2].name == "mixed10" and ours.get_layer("conv2d_93").kernel_size == (1, 1)


def test_inception_v3_top_at_min_size(keras_ref):
    assert_parity(keras_ref, "InceptionV3", (75, 75, 3), train=False, input_shape=(75, 75, 3), classes=4,
                  classifier_activation="sigmoid")
