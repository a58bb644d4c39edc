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


# ------------------------------------------------ the same runs in real Keras 3
def keras_model(keras_ref, lr=0.05, **compile_kwargs):
    model = keras_ref.Sequential(
        [keras_ref.Input((3,)), keras_ref.layers.Dense(4, activation="tanh"), keras_ref.layers.Dense(1)]
    )
    model.compile(optimizer=keras_ref.optimizers.SGD(lr), loss="mse", **compile_kwargs)
    return model


def keras_script(keras_ref, key, values):
    class KerasScript(keras_ref.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs[key] = values[epoch]

    return KerasScript()


def keras_recorder(keras_ref):
    class KerasRecorder(keras_ref.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __getattribute__(self, name):
            if name.startswith("on_"):
                calls = object.__getattribute__(self, "calls")
                return lambda *args, **kwargs: calls.append(name)
            return object.__getattribute__(self, name)

    return KerasRecorder()


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            calls = object.__getattribute__(self, "calls")
            return lambda *args, **kwargs: calls.append(name)
        return object.__getattribute__(self, name)


def test_hook_order_in_fit_evaluate_predict(keras_ref):
    """The hooks fire in Keras's order, hook for hook, for fit with
    validation, evaluate and predict."""
    x, y = data(16)
    runs = []
    for model, rec in ((make_model(), Recorder()), (keras_model(keras_ref), keras_recorder(keras_ref))):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(x, y), callbacks=[rec])
        fit_calls = list(rec.calls)
        rec.calls.clear()
        model.evaluate(x, y, batch_size=16, verbose=0, callbacks=[rec])
        model.predict(x, batch_size=16, verbose=0, callbacks=[rec])
        runs.append((fit_calls, list(rec.calls)))
    assert runs[0] == runs[1]
    assert runs[0][0][0] == "on_train_begin" and runs[0][0][-1] == "on_train_end"


def test_batch_logs_are_python_floats_and_params(keras_ref):
    x, y = data(16)
    runs = []
    for model, base in ((make_model(metrics=["mae"]), callbacks.Callback),
                        (keras_model(keras_ref, metrics=["mae"]), keras_ref.callbacks.Callback)):
        seen = []

        class Check(base):
            def on_train_batch_end(self, batch, logs=None):
                seen.append((batch, sorted(logs), dict(self.params)))
                assert all(isinstance(v, float) for v in logs.values())  # (Keras: Python floats too)

        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[Check()])
        runs.append(seen)
    assert runs[0] == runs[1]  # batch numbers, log keys and `params` as in Keras


@pytest.mark.parametrize(
    "values,kwargs",
    [
        ([5, 4, 4.5, 4.6, 4.7, 3, 2], {"patience": 2}),
        ([5, 4, 3.99, 3.98, 3.97, 3, 2], {"patience": 1, "min_delta": 0.05}),
        ([1, 2, 3, 4, 5, 6, 7], {"patience": 0, "mode": "max"}),
        ([5, 6, 7, 8, 1, 1, 1], {"patience": 2, "start_from_epoch": 3}),
        ([5, 4, 4, 4, 4, 4, 4], {"patience": 2}),
        ([5, 4, 4, 4, 4, 4, 4], {"patience": 2, "baseline": 0.5}),  # never beats the baseline
        ([5, 4, 3, 2, 1, 0, -1], {"patience": 2, "baseline": 0.5}),  # still improving
    ],
)
def test_early_stopping_on_scripted_sequence_matches_keras(keras_ref, values, kwargs):
    x, y = data(8)
    kwargs = {"mode": "min", **kwargs}
    es = callbacks.EarlyStopping(monitor="val_score", **kwargs)
    history = make_model().fit(x, y, epochs=7, verbose=0, callbacks=[Script("val_score", values), es])
    ref_es = keras_ref.callbacks.EarlyStopping(monitor="val_score", **kwargs)
    ref_history = keras_model(keras_ref).fit(
        x, y, epochs=7, verbose=0, callbacks=[keras_script(keras_ref, "val_score", values), ref_es]
    )
    assert history.epoch == ref_history.epoch
    assert (es.stopped_epoch, es.best_epoch, es.wait) == (ref_es.stopped_epoch, ref_es.best_epoch, ref_es.wait)
    assert float(es.best) == float(ref_es.best)


def test_early_stopping_restores_best_weights(keras_ref):
    x, y = data(8)
    model = make_model(lr=0.1)
    weights = []
    values = [3, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    keep = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: weights.append(model.get_weights()))
    es = callbacks.EarlyStopping(monitor="val_score", mode="min", patience=2, restore_best_weights=True)
    model.fit(x, y, epochs=10, verbose=0, callbacks=[Script("val_score", values), keep, es])
    ref_es = keras_ref.callbacks.EarlyStopping(monitor="val_score", mode="min", patience=2, restore_best_weights=True)
    keras_model(keras_ref, lr=0.1).fit(
        x, y, epochs=10, verbose=0, callbacks=[keras_script(keras_ref, "val_score", values), ref_es]
    )
    assert (es.best_epoch, es.stopped_epoch) == (ref_es.best_epoch, ref_es.stopped_epoch)
    assert not np.array_equal(weights[es.best_epoch][0], weights[es.stopped_epoch][0])  # training moved on
    for a, b in zip(model.get_weights(), weights[es.best_epoch]):
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


def _sequential():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def test_model_checkpoint_best_only_writes_on_improvement(tmp_path, keras_ref):
    x, y = data(8)
    model = _sequential()  # a keras Model: `.weights.h5` goes through save_weights, as in Keras
    values = [3.0, 2.0, 2.5, 1.0, 1.5]
    ours_dir, ref_dir = tmp_path / "ours", tmp_path / "keras"
    ours_dir.mkdir(), ref_dir.mkdir()
    template = "ckpt-{epoch:02d}-{val_score:.1f}.weights.h5"
    ckpt = callbacks.ModelCheckpoint(str(ours_dir / template), monitor="val_score", mode="min",
                                     save_best_only=True, save_weights_only=True)
    weights = []
    keep = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: weights.append(model.get_weights()))
    model.fit(x, y, epochs=5, verbose=0, callbacks=[Script("val_score", values), keep, ckpt])
    ref_ckpt = keras_ref.callbacks.ModelCheckpoint(str(ref_dir / template), monitor="val_score", mode="min",
                                                   save_best_only=True, save_weights_only=True)
    keras_model(keras_ref).fit(x, y, epochs=5, verbose=0,
                               callbacks=[keras_script(keras_ref, "val_score", values), ref_ckpt])
    written = sorted(os.listdir(ours_dir))
    assert written == sorted(os.listdir(ref_dir))  # the same epochs, the same names
    fresh = _sequential()
    fresh.load_weights(str(ours_dir / written[-1]))
    for a, b in zip(fresh.get_weights(), weights[values.index(min(values))]):
        np.testing.assert_array_equal(a, b)  # the weights of the best epoch


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


def test_reduce_lr_on_plateau(keras_ref):
    x, y = data(8)
    kwargs = {"monitor": "val_score", "mode": "min", "factor": 0.5, "patience": 1, "cooldown": 1, "min_lr": 0.2}
    model = make_model(lr=1.0)
    history = model.fit(x, y, epochs=7, verbose=0, callbacks=[Script("val_score", [3] * 7),
                                                              callbacks.ReduceLROnPlateau(**kwargs)])
    ref = keras_model(keras_ref, lr=1.0).fit(
        x, y, epochs=7, verbose=0,
        callbacks=[keras_script(keras_ref, "val_score", [3] * 7), keras_ref.callbacks.ReduceLROnPlateau(**kwargs)],
    )
    # Keras's order: the cooldown counts down, then the same epoch may reduce again
    np.testing.assert_allclose(history.history["learning_rate"], ref.history["learning_rate"], rtol=1e-6)
    assert float(model.optimizer.learning_rate) == pytest.approx(ref.history["learning_rate"][-1])
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.5)


def test_csv_logger(tmp_path, keras_ref):
    x, y = data(8)
    tables = []
    for model, module in ((make_model(metrics=["mae"]), callbacks),
                          (keras_model(keras_ref, metrics=["mae"]), keras_ref.callbacks)):
        path = tmp_path / f"{module.__name__}.csv"
        model.fit(x, y, epochs=2, verbose=0, callbacks=[module.CSVLogger(str(path))])
        model.fit(x, y, epochs=1, verbose=0, callbacks=[module.CSVLogger(str(path), append=True)])
        tables.append(list(csv.reader(path.open())))
    ours, theirs = tables
    assert ours[0] == theirs[0]  # the header, Keras's column order
    assert [len(r) for r in ours] == [len(r) for r in theirs]
    for a, b in zip(ours[1:], theirs[1:]):
        assert a[0] == b[0]  # epoch numbers restart in the appended run
        assert [v == "NA" for v in a] == [v == "NA" for v in b]
        float(a[1])  # (the values come from different models: only their form is compared)


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


def _seq_model(K):
    model = K.Sequential([K.Input((3,)), K.layers.Dense(4, activation="tanh"), K.layers.Dense(1)])
    model.compile(optimizer=K.optimizers.SGD(0.05), loss="mse")
    return model


def test_verbose_callback_messages_match_keras(tmp_path, keras_ref, capsys, caplog):
    """ModelCheckpoint(verbose=1) says "improved ... saving" and then, as Keras
    3.15 does, "finished saving model to ..."; EarlyStopping and
    ReduceLROnPlateau print Keras's lines; all of them go through
    `print_msg`, so `disable_interactive_logging()` sends them to the logger."""
    x, y = data()
    val = (x[:8], y[:8])

    def run(K, model, name):
        cbs = [
            K.callbacks.ModelCheckpoint(str(tmp_path / name), monitor="val_loss", verbose=1, save_best_only=True,
                                        save_weights_only=True),
            K.callbacks.ModelCheckpoint(str(tmp_path / ("all_" + name)), verbose=1, save_weights_only=True),
            # (min_delta=1e3: no epoch after the first improves, whatever the weights)
            K.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e3, patience=1, verbose=1,
                                      restore_best_weights=True),
            K.callbacks.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_delta=10.0, verbose=1),
        ]
        capsys.readouterr()
        model.fit(x, y, batch_size=8, epochs=6, validation_data=val, shuffle=False, callbacks=cbs, verbose=0)
        return capsys.readouterr().out.replace(name, "NAME")

    ref = _seq_model(keras_ref)
    ours = _seq_model(keras)
    ours.set_weights(ref.get_weights())
    out_ref = run(keras_ref, ref, "ref.weights.h5")
    out_ours = run(keras, ours, "ours.weights.h5")
    assert "finished saving model to" in out_ref and "early stopping" in out_ref and "ReduceLROnPlateau" in out_ref
    assert out_ours == out_ref

    keras.config.disable_interactive_logging()
    try:
        with caplog.at_level("INFO", logger="kerasish"):
            quiet = run(keras, _seq_model(keras), "q.weights.h5")
    finally:
        keras.config.enable_interactive_logging()
    assert quiet == ""
    assert any("finished saving model to" in r.getMessage() for r in caplog.records)
    assert any("early stopping" in r.getMessage() for r in caplog.records)


def test_keras2_lr_key_reads_the_logged_learning_rate():
    """Keras 2 logged the learning rate as `lr`; Keras 3 (and kerasish) as `learning_rate`. A Keras 2
    callback placed after ReduceLROnPlateau reads `logs["lr"]` / `logs.get("lr")`, and a Keras 2 program
    `history.history["lr"]`: the same values, while the keys stay Keras 3's."""
    import kerasish as keras

    seen = []

    class LrReader(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((logs["lr"], logs.get("lr"), "lr" in logs, "lr" in logs.keys()))

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    h = model.fit(x, y, epochs=3, verbose=0, callbacks=[
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1)), LrReader()])
    np.testing.assert_allclose([s[0] for s in seen], [0.1, 0.05, 0.1 / 3], rtol=1e-6)
    assert all(s[0] == s[1] and s[2] and not s[3] for s in seen)
    assert h.history["lr"] is h.history["learning_rate"] and "lr" not in list(h.history)
    with pytest.raises(KeyError):
        keras.callbacks.History().history["lr"]


def test_csv_logger_appending_follows_the_files_header(tmp_path):
    """A new CSV gets Keras 3's `learning_rate` column; appending to a file tf.keras 2 started (header
    `epoch,loss,lr`) writes each value under its own column, the learning rate under `lr` (the rows used to
    follow kerasish's sorted keys under the old header: the learning rate landed in the `loss` column)."""
    import csv

    import kerasish as keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = np.arange(8, dtype="float32").reshape(4, 2) / 8, np.ones((4, 1), "float32")
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    fresh = tmp_path / "fresh.csv"
    model.fit(x, y, epochs=1, verbose=0, callbacks=[schedule, keras.callbacks.CSVLogger(str(fresh))])
    assert fresh.read_text().splitlines()[0] == "epoch,learning_rate,loss,val_learning_rate,val_loss"

    path = tmp_path / "log.csv"
    path.write_text("epoch,loss,lr\n0,0.5,0.1\n")  # what tf.keras 2 wrote for its first epoch
    h = model.fit(x, y, epochs=3, initial_epoch=1, verbose=0,
                  callbacks=[schedule, keras.callbacks.CSVLogger(str(path), append=True)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "loss", "lr"] and len(rows) == 3
    np.testing.assert_allclose([float(r["loss"]) for r in rows[1:]], h.history["loss"], rtol=1e-6)
    np.testing.assert_allclose([float(r["lr"]) for r in rows[1:]], [0.05, 0.1 / 3], rtol=1e-6)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
