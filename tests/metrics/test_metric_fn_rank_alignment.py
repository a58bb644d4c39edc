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


class SumAbsError(keras.metrics.Metric):
    """A user Metric written the book's way (Hands-On ML 3rd ed., ch. 12's HuberMetric): `add_weight` state,
    `y_true - y_pred` with no reshaping, `tf.size(y_true)` as the count."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.total = self.add_weight(name="total", initializer="zeros")
        self.count = self.add_weight(name="count", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(torch.sum(torch.abs(y_true - y_pred)))
        self.count.assign_add(torch.tensor(float(y_true.numel())))

    def result(self):
        return self.total / self.count


def test_compiled_custom_metric_subclass_gets_a_vector_target_as_a_column():
    """Compiled, a Metric subclass receives a (batch,) target for a (batch, 1) prediction as (batch, 1) (tf.keras
    2's rank matching), not to broadcast into a (batch, batch) sum."""
    x = np.array([[1.0], [2.0], [3.0], [4.0]], "float32")
    y = np.array([1.0, 3.0, 2.0, 6.0], "float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="ones",
                                                                     bias_initializer="zeros")])
    model.compile("sgd", "mse", metrics=[SumAbsError()])
    _, value = model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(value, np.mean(np.abs(y - x[:, 0])), rtol=1e-6)


def test_metric_add_weight_makes_resettable_state():
    """`Metric.add_weight` is Keras's alias of `add_variable`: non-trainable state listed in `variables`, that
    `reset_state()` (and so `fit` at each epoch) sets back to its initializer. It was the Layer's add_weight: a
    trainable Parameter that `variables` and `reset_state` missed, so the metric summed over every epoch."""
    m = SumAbsError()
    assert [v.name for v in m.variables] == ["total", "count"]
    assert not any(v.trainable for v in m.variables) and list(m.parameters()) == []
    m.update_state(torch.tensor([[2.0]]), torch.tensor([[10.0]]))
    assert [float(v.numpy()) for v in m.variables] == [8.0, 1.0]
    m.reset_state()
    assert [float(v.numpy()) for v in m.variables] == [0.0, 0.0]

    class Keras2Positional(keras.metrics.Metric):
        def __init__(self):
            super().__init__()
            self.total = self.add_weight("total", initializer="ones")  # tf.keras 2: add_weight(name, shape=())

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total.assign_add(1.0)

        def result(self):
            return self.total

    k2 = Keras2Positional()
    assert k2.total.name == "total" and tuple(k2.total.shape) == () and float(k2.result()) == 1.0

    # fit resets the metric between epochs: epoch 2 reports epoch 2's error only
    x = np.array([[1.0], [2.0], [3.0], [4.0]], "float32")
    y = np.array([[1.0], [3.0], [2.0], [6.0]], "float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="ones",
                                                                     bias_initializer="zeros")])
    model.compile(keras.optimizers.SGD(learning_rate=0.0), "mse", metrics=[SumAbsError(name="sae")])
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0).history["sae"]
    np.testing.assert_allclose(history, [np.mean(np.abs(y - x))] * 2, rtol=1e-6)
