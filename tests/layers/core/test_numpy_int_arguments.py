"""Keras 2 programs size layers with NumPy integers (`num_classes =
np.max(y_train) + 1`, `max_features = np.max(ids) + 1`): tf.keras accepts
them, Keras 3 raises. kerasish accepts them and keeps a Python int, so the
config stays JSON-serializable."""

import json

import numpy as np
import pytest

import kerasish as keras


@pytest.mark.parametrize("make, attr", [
    (lambda n: keras.layers.Dense(n), "units"),
    (lambda n: keras.layers.Embedding(n, 3), "input_dim"),
    (lambda n: keras.layers.Embedding(3, n), "output_dim"),
    (lambda n: keras.layers.LSTM(n), "units"),
    (lambda n: keras.layers.GRU(n), "units"),
    (lambda n: keras.layers.SimpleRNN(n), "units"),
    (lambda n: keras.layers.ConvLSTM2D(n, 3), "filters"),
])
@pytest.mark.parametrize("kind", [np.int64, np.int32, np.uint8])
def test_numpy_integer_sizes_accepted_as_int(make, attr, kind):
    layer = make(kind(5))
    config = layer.get_config()
    assert type(config[attr]) is int and config[attr] == 5
    json.dumps(config)


@pytest.mark.parametrize("bad", [np.float32(5.0), True, np.int64(0), -3])
def test_non_integers_still_rejected(bad):
    with pytest.raises(ValueError, match="units"):
        keras.layers.Dense(bad)


def test_dense_with_numpy_units_trains():
    y = np.array([0, 2, 1, 2])
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(np.max(y) + 1, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(np.ones((4, 3), "float32"), y, verbose=0)
    assert model.output_shape == (None, 3)
