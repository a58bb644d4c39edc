"""keras.callbacks: hooks, History, progress bar, EarlyStopping,
ModelCheckpoint, LR schedulers, CSVLogger, TerminateOnNaN, LambdaCallback."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch
from torch import nn

import kerasish as keras
import kerasish.callbacks as callbacks
from kerasish.trainers.trainer import Trainer


class Net(Trainer, keras.layers.Layer):
    def __init__(self, layers):
        super().__init__()
        self.body = nn.ModuleList(layers)

    def call(self, x):
        for layer in self.body:
            x = layer(x)
        return x


def make_model(lr=0.05, optimizer=None, **compile_kwargs):
    model = Net([keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    model(torch.zeros(1, 3))
    model.compile(optimizer=optimizer or keras.optimizers.SGD(lr), loss="mse", **compile_kwargs)
    return model


def data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x.sum(axis=1, keepdims=True) * 0.5).astype("float32")


class Script(callbacks.Callback):
    """Writes scripted values into the epoch logs (callbacks share the dict)."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, values

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            calls = object.__getattribute__(self, "calls")
            return lambda *args, **kwargs: calls.append(name)
        return object.__getattribute__(self, name)


def test_hook_order_in_fit_evaluate_predict():
    x, y = data(16)
    model = make_model()
    rec = Recorder()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(x, y), callbacks=[rec])
    assert rec.calls == [
        "on_train_begin", "on_epoch_begin",
        "on_train_batch_begin", "on_train_batch_end", "on_train_batch_begin", "on_train_batch_end",
        "on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_batch_begin", "on_test_batch_end",
        "on_test_end", "on_epoch_end", "on_train_end",
    ]
    rec.calls.clear()
    model.evaluate(x, y, batch_size=16, verbose=0, callbacks=[rec])
    model.predict(x, batch_size=16, verbose=0, callbacks=[rec])
    assert rec.calls == ["on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end",
                         "on_predict_begin", "on_predict_batch_begin", "on_predict_batch_end", "on_predict_end"]


def test_batch_logs_are_python_floats_and_params():
    x, y = data(16)
    model = make_model(metrics=["mae"])
    seen = []

    class Check(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((batch, logs, dict(self.params)))

    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[Check()])
    assert [b for b, _, _ in seen] == [0, 1]
    assert all(isinstance(v, float) for _, logs, _ in seen for v in logs.values())
    assert set(seen[0][1]) == {"loss", "mae"}
    assert seen[0][2] == {"verbose": 0, "epochs": 1, "steps": 2}


def test_progress_bar_output(capsys):
    x, y = data(32)
    model = make_model(metrics=["mae"])
    model.fit(x, y, batch_size=8, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "4/4" in out and "━" in out and "step - loss:" in out and "- mae:" in out
    model.fit(x, y, batch_size=8, epochs=2, verbose=2, validation_split=0.25)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert lines[0] == "Epoch 1/2"
    assert lines[1].startswith("3/3 - ") and "step - loss: " in lines[1] and "val_loss" in lines[1]
    assert len(lines) == 4
    model.fit(x, y, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y, verbose=1)
    assert "1/1" in capsys.readouterr().out


def test_progbar_formats_like_keras():
    bar = callbacks.Progbar(target=10, verbose=2)
    bar._start -= 1.0
    import io
    import sys

    buf, old = io.StringIO(), sys.stdout
    sys.stdout = buf
    try:
        bar.update(10, [("loss", 0.123456), ("tiny", 1e-5)])
    finally:
        sys.stdout = old
    line = buf.getvalue()
    assert line.startswith("10/10 - 1s - ") and "ms/step - loss: 0.1235 - tiny: 1.0000e-05" in line


@pytest.mark.parametrize(
    "values,kwargs,epochs_run,stopped",
    [
        ([5, 4, 4.5, 4.6, 4.7, 3, 2], {"patience": 2}, 4, 3),
        ([5, 4, 3.99, 3.98, 3.97, 3, 2], {"patience": 1, "min_delta": 0.05}, 3, 2),
        ([1, 2, 3, 4, 5, 6, 7], {"patience": 0, "mode": "max"}, 7, 0),
        ([5, 6, 7, 8, 1, 1, 1], {"patience": 2, "start_from_epoch": 3}, 7, 6),
        ([5, 4, 4, 4, 4, 4, 4], {"patience": 2}, 4, 3),
        ([5, 4, 4, 4, 4, 4, 4], {"patience": 2, "baseline": 0.5}, 3, 2),  # never beat the baseline
        ([5, 4, 3, 2, 1, 0, -1], {"patience": 2, "baseline": 0.5}, 7, 0),  # still improving
    ],
)
def test_early_stopping_on_scripted_sequence(values, kwargs, epochs_run, stopped):
    x, y = data(8)
    model = make_model()
    es = callbacks.EarlyStopping(monitor="val_score", **{"mode": "min", **kwargs})
    history = model.fit(x, y, epochs=7, verbose=0, callbacks=[Script("val_score", values), es])
    assert len(history.epoch) == epochs_run
    assert es.stopped_epoch == stopped


def test_early_stopping_restores_best_weights():
    x, y = data(8)
    model = make_model(lr=0.1)
    weights = []
    keep = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: weights.append(model.get_weights()))
    es = callbacks.EarlyStopping(monitor="val_score", mode="min", patience=2, restore_best_weights=True)
    model.fit(x, y, epochs=10, verbose=0, callbacks=[Script("val_score", [3, 1, 2, 2, 2, 2, 2, 2, 2, 2]), keep, es])
    assert es.best_epoch == 1 and es.stopped_epoch == 3
    assert not np.array_equal(weights[1][0], weights[3][0])  # training moved on (get_weights copies)
    for a, b in zip(model.get_weights(), weights[1]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_auto_mode_from_metric_direction():
    x, y = data(8)
    model = make_model(metrics=["accuracy"])
    es = callbacks.EarlyStopping(monitor="accuracy")
    model.fit(x, (y > 0).astype("float32"), epochs=1, verbose=0, callbacks=[es])
    assert es.monitor_op(2, 1)  # accuracy goes up
    es = callbacks.EarlyStopping(monitor="something")
    with pytest.raises(ValueError, match="mode='max'"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[Script("something", [1.0]), es])


def test_model_checkpoint_best_only_writes_on_improvement(tmp_path):
    x, y = data(8)
    model = make_model()
    path = str(tmp_path / "ckpt-{epoch:02d}-{val_score:.1f}.pt")
    ckpt = callbacks.ModelCheckpoint(path, monitor="val_score", mode="min", save_best_only=True,
                                     save_weights_only=True)
    weights = []
    keep = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: weights.append(model.get_weights()))
    model.fit(x, y, epochs=5, verbose=0, callbacks=[Script("val_score", [3.0, 2.0, 2.5, 1.0, 1.5]), keep, ckpt])
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01-3.0.pt", "ckpt-02-2.0.pt", "ckpt-04-1.0.pt"]
    fresh = Net([keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    fresh(torch.zeros(1, 3))
    fresh.load_state_dict(torch.load(tmp_path / "ckpt-04-1.0.pt"))
    for a, b in zip(fresh.get_weights(), weights[3]):
        np.testing.assert_array_equal(a, b)  # the weights of epoch 4


def test_model_checkpoint_is_atomic(tmp_path, monkeypatch):
    x, y = data(8)
    model = make_model()
    target = tmp_path / "model.pt"
    callbacks_run = [callbacks.ModelCheckpoint(str(target), monitor="loss", save_weights_only=True)]
    model.fit(x, y, epochs=1, verbose=0, callbacks=callbacks_run)
    good = target.read_bytes()

    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as fh:
            fh.truncate(10)  # half-written...
        raise OSError("disk full")  # ...and then the crash

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=callbacks_run)
    assert target.read_bytes() == good  # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["model.pt"]  # no temporary file left behind


def test_model_checkpoint_save_freq_and_errors(tmp_path):
    x, y = data(32)
    model = make_model()
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "b{epoch}-{batch}.pt"), save_freq=2, save_weights_only=True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[ckpt])
    assert sorted(os.listdir(tmp_path)) == ["b1-2.pt", "b1-4.pt"]
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        callbacks.ModelCheckpoint("x.pt", save_freq="batch")


@pytest.mark.parametrize("torch_optimizer", [False, True])
def test_learning_rate_scheduler(torch_optimizer):
    x, y = data(8)
    model = Net([keras.layers.Dense(1)])
    model(torch.zeros(1, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1) if torch_optimizer else keras.optimizers.SGD(0.1)
    model.compile(optimizer=opt, loss="mse")
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch > 0 else lr)
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[sched])
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05, 0.025], rtol=1e-6)
    with pytest.raises(ValueError, match="should be a float"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e: "fast")])


def test_reduce_lr_on_plateau():
    x, y = data(8)
    model = make_model(lr=1.0)
    cb = callbacks.ReduceLROnPlateau(monitor="val_score", mode="min", factor=0.5, patience=1, cooldown=1, min_lr=0.2)
    history = model.fit(x, y, epochs=7, verbose=0, callbacks=[Script("val_score", [3, 3, 3, 3, 3, 3, 3]), cb])
    # Keras's order: the cooldown counts down, then the same epoch may reduce again
    np.testing.assert_allclose(history.history["learning_rate"], [1.0, 1.0, 0.5, 0.25, 0.2, 0.2, 0.2], rtol=1e-6)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.5)


def test_csv_logger(tmp_path):
    x, y = data(8)
    model = make_model(metrics=["mae"])
    path = tmp_path / "log.csv"
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(str(path))])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(str(path), append=True)])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "0"] and rows[1][3] == "NA"


def test_terminate_on_nan_and_lambda_callback():
    x, y = data(32)
    y[20:] = np.nan
    model = make_model()
    batches = []
    lam = callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch),
                                   on_train_begin=lambda logs: batches.append("begin"))
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[callbacks.TerminateOnNaN(), lam])
    assert batches == ["begin", 0, 1, 2]
    with pytest.raises(RuntimeError, match="NaN or Inf loss"):
        make_model().fit(x, y, batch_size=8, shuffle=False, verbose=0,
                         callbacks=[callbacks.TerminateOnNaN(raise_error=True)])


def test_callback_list_and_history_object():
    x, y = data(8)
    model = make_model()
    history = callbacks.History()
    returned = model.fit(x, y, epochs=2, verbose=0, callbacks=[history])
    assert returned is history and history.epoch == [0, 1] and model.history is history
    with pytest.raises(TypeError, match="keras.callbacks.Callback"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[object()])
    cbl = callbacks.CallbackList([callbacks.History()], add_progbar=True, model=model, verbose=0, epochs=1, steps=1)
    assert [type(c).__name__ for c in cbl] == ["History", "ProgbarLogger"]
