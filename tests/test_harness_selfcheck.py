"""The shared layer harness run on a small custom layer, so a broken harness
shows up here first."""

import torch

import kerasish as keras
from layer_harness import run_layer_test


class Scale(keras.layers.Layer):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, x):
        return x @ self.kernel + self.bias


def test_harness_on_custom_layer():
    layer = run_layer_test(
        Scale, {"units": 3}, input_shape=(2, 4), expected_output_shape=(2, 3),
        expected_num_trainable_weights=2, expected_num_non_trainable_weights=0,
    )
    assert list(layer.state_dict()) == ["kernel", "bias"]
    assert isinstance(layer.kernel, torch.nn.Parameter)


class Dense(keras.layers.Dense):
    """Named like Keras's Dense, but off by one: the harness's Keras-parity
    step must catch it."""

    def call(self, x):
        return super().call(x) + 1.0


def test_harness_keras_parity_catches_a_wrong_layer(keras_ref):
    import pytest

    with pytest.raises(AssertionError, match="Dense vs Keras"):
        run_layer_test(Dense, {"units": 3}, input_shape=(2, 4), check_config=False)
    run_layer_test(Dense, {"units": 3}, input_shape=(2, 4), check_config=False, keras_parity=False)
