"""Models shared by `dp_worker.py` (each rank) and `test_data_parallel.py`
(the single-process reference)."""

import kerasish as keras


class WithSpareWeight(keras.layers.Layer):
    """Identity with a trainable weight no loss depends on (its gradient
    stays None: one process leaves it alone, so must N)."""

    def build(self, input_shape):
        self.spare = self.add_weight(shape=(2,), initializer="ones", name="spare")

    def call(self, inputs):
        return inputs


def local_bn_model():
    """A non-synchronized BatchNormalization between two Dense layers."""
    return keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.BatchNormalization(),
        WithSpareWeight(),
        keras.layers.Dense(3),
    ])


def lstm_model():
    """An LSTM (its kernels stored in torch's layout: strided gradients) and a Dense head."""
    return keras.Sequential([keras.Input((5, 1)), keras.layers.LSTM(4), keras.layers.Dense(3)])


class BatchLogs(keras.callbacks.Callback):
    """Records the loss every train and test batch reports to callbacks."""

    def __init__(self):
        super().__init__()
        self.train, self.test = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.train.append(float(logs["loss"]))

    def on_test_batch_end(self, batch, logs=None):
        self.test.append(float(logs["loss"]))
