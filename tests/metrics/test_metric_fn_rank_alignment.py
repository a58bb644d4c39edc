"""A custom metric function sees `y_true` and `y_pred` at the same rank when
they differ by a trailing 1, as in Keras 2 (mnist_siamese.py's
`accuracy(y_true, y_pred)` with labels (batch,) and distances (batch, 1));
Keras 3 passes them as they are and the function broadcasts to (batch, batch)."""

import numpy as np
import torch

import kerasish as keras
from kerasish import backend as K


def siamese_accuracy(y_true, y_pred):
    return K.mean(K.equal(y_true, K.cast(y_pred < 0.5, y_true.dtype)))


def test_labels_vector_predictions_column():
    m = keras.metrics.MeanMetricWrapper(siamese_accuracy)
    y_true = torch.tensor([1.0, 1.0, 1.0, 0.0])
    y_pred = torch.tensor([[0.1], [0.2], [0.9], [0.7]])  # < 0.5: [1, 1, 0, 0]
    m.update_state(y_true, y_pred)
    # Keras 2's meaning: the column squeezed onto the labels, element by element
    expected = np.mean(y_true.numpy() == (y_pred.numpy()[:, 0] < 0.5))
    broadcast = np.mean(y_true.numpy() == (y_pred.numpy() < 0.5))  # Keras 3's (batch, batch) reading
    assert expected != broadcast
    np.testing.assert_allclose(float(m.result()), expected)


def test_compiled_custom_metric_uses_aligned_ranks():
    x = np.array([[0, 0], [1, 0], [0, 0], [1, 0]], "float32")
    y = np.array([1.0, 0.0, 1.0, 0.0], "float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones",
                                                                     bias_initializer="zeros")])
    model.compile("sgd", "mse", metrics=[siamese_accuracy])
    _, acc = model.evaluate(x, y, verbose=0)
    y_pred = x @ np.ones((2, 1), "float32")  # the model's output with its ones/zeros initializers
    expected = np.mean(y == (y_pred[:, 0] < 0.5))
    assert expected != np.mean(y == (y_pred < 0.5))  # a (batch, batch) broadcast differs
    np.testing.assert_allclose(acc, expected)


def test_builtin_sparse_metrics_unaffected(keras_ref):
    y_true = torch.tensor([0, 2, 1])
    y_pred = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.7, 0.2, 0.1]])
    m = keras.metrics.SparseCategoricalAccuracy()
    m.update_state(y_true, y_pred)
    ref = keras_ref.metrics.SparseCategoricalAccuracy()
    ref.update_state(y_true, y_pred)
    np.testing.assert_allclose(float(m.result()), float(ref.result()), rtol=1e-6)
    np.testing.assert_allclose(float(m.result()), 2 / 3, rtol=1e-6)
