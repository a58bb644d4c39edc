"""keras.io developer guide "Writing your own callbacks"
(guides/writing_your_own_callbacks.py), shrunk, run with real Keras 3 (torch
backend) and kerasish from the same weights: the order of every hook called
by fit (with `validation_split`), evaluate and predict and the log keys each
receives; per-batch and per-epoch logged values; the guide's
EarlyStoppingAtMinLoss (best weights restored via `self.model.set_weights`,
`self.model.stop_training`) and CustomLearningRateScheduler (reads and sets
`self.model.optimizer.learning_rate`).
"""

from __future__ import annotations

import numpy as np
import pytest

import kerasish as keras
from tests.ports.test_port_programs import assert_same

RNG = np.random.default_rng(0)
X = RNG.random((40, 6)).astype("float32")
Y = (X @ RNG.random((6, 1)) + 0.1).astype("float32")


@pytest.fixture(autouse=True)
def _fresh_keras_names(keras_ref):
    keras_ref.utils.clear_session()


def _get_model(K, learning_rate=0.1):
    model = K.Sequential([K.Input((6,)), K.layers.Dense(1)])
    model.set_weights([np.full((6, 1), 0.1, "float32"), np.zeros((1,), "float32")])
    model.compile(optimizer=K.optimizers.RMSprop(learning_rate=learning_rate), loss="mean_squared_error",
                  metrics=["mean_absolute_error"])
    return model


def _recording_callback(K, record):
    class CustomCallback(K.callbacks.Callback):
        pass

    hooks = [
        "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end",
        "on_predict_begin", "on_predict_end", "on_train_batch_begin", "on_train_batch_end",
        "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end",
    ]

    def make(name):
        def hook(self, *args, logs=None):
            where = list(args)
            if logs is None and where and isinstance(where[-1], dict):
                logs = where.pop()  # passed positionally (on_epoch_end)
            keys = sorted(logs) if isinstance(logs, dict) else logs
            values = {k: float(np.asarray(v)) for k, v in logs.items() if k != "outputs"} if isinstance(logs, dict) \
                else None
            record.append((name, where, keys, values))

        return hook

    for name in hooks:
        setattr(CustomCallback, name, make(name))
    return CustomCallback()


def test_hooks_order_and_logs(keras_ref):
    records = []
    for K in (keras_ref, keras):
        record = []
        model = _get_model(K)
        callback = _recording_callback(K, record)
        model.fit(X, Y, batch_size=8, epochs=2, verbose=0, validation_split=0.5, callbacks=[callback], shuffle=False)
        model.evaluate(X, Y, batch_size=16, verbose=0, callbacks=[callback])
        model.predict(X, batch_size=16, verbose=0, callbacks=[callback])
        records.append(record)
    ref, ours = records
    assert [r[:3] for r in ours] == [r[:3] for r in ref]
    for a, b in zip(ours, ref):
        if b[3] is not None:
            assert a[3].keys() == b[3].keys(), b[0]
            np.testing.assert_allclose(list(a[3].values()), list(b[3].values()), rtol=1e-4, atol=1e-6, err_msg=b[0])


def _early_stopping_program(K, patience):
    class EarlyStoppingAtMinLoss(K.callbacks.Callback):
        def __init__(self, patience=0):
            super().__init__()
            self.patience = patience
            self.best_weights = None

        def on_train_begin(self, logs=None):
            self.wait = 0
            self.stopped_epoch = 0
            self.best = np.inf

        def on_epoch_end(self, epoch, logs=None):
            current = logs.get("loss")
            if np.less(current, self.best):
                self.best = current
                self.wait = 0
                self.best_weights = self.model.get_weights()
            else:
                self.wait += 1
                if self.wait >= self.patience:
                    self.stopped_epoch = epoch
                    self.model.stop_training = True
                    self.model.set_weights(self.best_weights)

    model = _get_model(K, learning_rate=0.9)  # large enough for the loss to go up
    callback = EarlyStoppingAtMinLoss(patience=patience)
    history = model.fit(X, Y, batch_size=40, epochs=12, verbose=0, callbacks=[callback], shuffle=False)
    return history, callback.stopped_epoch, model.get_weights(), model.evaluate(X, Y, verbose=0)


def test_early_stopping_at_min_loss(keras_ref):
    ref = _early_stopping_program(keras_ref, patience=1)
    ours = _early_stopping_program(keras, patience=1)
    assert ours[1] == ref[1] > 0  # stopped early, at the same epoch
    assert ours[0].epoch == ref[0].epoch
    assert_same(ours[0].history, ref[0].history)
    assert_same(ours[2:], ref[2:])


def _lr_scheduler_program(K):
    lr_schedule_table = [(1, 0.05), (2, 0.01), (3, 0.005)]

    def lr_schedule(epoch, lr):
        if epoch < lr_schedule_table[0][0] or epoch > lr_schedule_table[-1][0]:
            return lr
        for i in range(len(lr_schedule_table)):
            if epoch == lr_schedule_table[i][0]:
                return lr_schedule_table[i][1]
        return lr

    seen = []

    class CustomLearningRateScheduler(K.callbacks.Callback):
        def __init__(self, schedule):
            super().__init__()
            self.schedule = schedule

        def on_epoch_begin(self, epoch, logs=None):
            if not hasattr(self.model.optimizer, "learning_rate"):
                raise ValueError('Optimizer must have a "learning_rate" attribute.')
            lr = self.model.optimizer.learning_rate
            scheduled_lr = self.schedule(epoch, lr)
            self.model.optimizer.learning_rate = scheduled_lr
            seen.append(float(np.array(scheduled_lr)))

    model = _get_model(K)
    history = model.fit(X, Y, batch_size=8, epochs=5, verbose=0, shuffle=False,
                        callbacks=[CustomLearningRateScheduler(lr_schedule)])
    return history, seen, model.get_weights(), float(np.array(model.optimizer.learning_rate))


def test_custom_learning_rate_scheduler(keras_ref):
    ref, ours = _lr_scheduler_program(keras_ref), _lr_scheduler_program(keras)
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-6)
    np.testing.assert_allclose(ref[1], [0.1, 0.05, 0.01, 0.005, 0.005], rtol=1e-6)
    assert_same(ours[0].history, ref[0].history)
    assert_same(ours[2], ref[2])
    assert ours[3] == pytest.approx(ref[3])
