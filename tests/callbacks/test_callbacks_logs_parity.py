"""What `fit` / `evaluate` / `predict` print, what callbacks do at their edges,
and `summary()` options, differentially against real Keras 3 (torch backend).

Every run starts both models from the same weights (copied) with
`shuffle=False`, so the numbers are equal and the printed text can be compared
character for character. The progress bar's clock is replaced by the same
fake clock on both sides (each reading is 0.25 s after the last), so the
timing fields, and which steps are redrawn, are deterministic too; and stdout
is a terminal (`isatty()`), where kerasish redraws the bar in place as Keras
does (on a non-terminal kerasish deliberately writes one plain line per bar,
see `kerasish/callbacks/progbar_logger.py`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import warnings

import numpy as np
import pytest

import kerasish as keras
import kerasish.callbacks.progbar_logger as our_progbar


class _Clock:
    """Stands in for the `time` module inside a progress bar module."""

    def __init__(self):
        self.now = 1000.0

    def time(self):
        self.now += 0.25
        return self.now


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _quiet_batch_hooks(lib):
    """A callback listening to the batch hooks: with one, Keras 3 runs its
    batch callbacks in the loop's thread. Without one it dispatches them to a
    thread pool (`CallbackList._async_dispatch`), and its bar's redraws can
    arrive out of order: "1/Unknown", "3/Unknown", "2/Unknown", then a final
    "2/2" after three batches, run to run (a Keras defect; kerasish calls the
    hooks in order)."""

    class Sync(lib.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

        def on_test_batch_end(self, batch, logs=None):
            pass

        def on_predict_batch_end(self, batch, logs=None):
            pass

    return Sync()


def _printed(lib, run, keras_ref):
    """stdout of `run()` on a fake terminal with the fake clock."""
    if lib is keras_ref:
        import keras.src.utils.progbar as module
    else:
        module = our_progbar
    buf = _Terminal()
    saved = module.time
    module.time = _Clock()
    try:
        with contextlib.redirect_stdout(buf), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras's "ran out of data" warning for generators
            run()
    finally:
        module.time = saved
    return buf.getvalue()


def _data(n=20):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x.sum(axis=1, keepdims=True) * 0.5).astype("float32")


def _model(lib, lr=0.05, metrics=("mae",)):
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(4, activation="tanh"), lib.layers.Dense(1)])
    model.compile(optimizer=lib.optimizers.SGD(lr), loss="mse", metrics=list(metrics))
    return model


def _pair(keras_ref, **kwargs):
    ref = _model(keras_ref, **kwargs)
    ours = _model(keras, **kwargs)
    ours.set_weights(ref.get_weights())
    return ref, ours


def _batches(x, y, n=3, size=8):
    for i in range(n):
        yield x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]


_X, _Y = _data()
_RUNS = {
    "fit_v1": lambda m, cb: m.fit(_X, _Y, batch_size=8, epochs=2, shuffle=False, verbose=1, callbacks=cb),
    "fit_v2": lambda m, cb: m.fit(_X, _Y, batch_size=8, epochs=2, shuffle=False, verbose=2, callbacks=cb),
    "fit_auto_one_epoch": lambda m, cb: m.fit(_X, _Y, batch_size=8, epochs=1, shuffle=False, callbacks=cb),
    "fit_v1_val": lambda m, cb: m.fit(_X, _Y, batch_size=8, epochs=2, shuffle=False, verbose=1, callbacks=cb,
                                      validation_data=(_X[:5], _Y[:5])),
    "fit_v2_val": lambda m, cb: m.fit(_X, _Y, batch_size=8, epochs=2, shuffle=False, verbose=2, callbacks=cb,
                                      validation_data=(_X[:5], _Y[:5])),
    "fit_v1_steps_per_epoch": lambda m, cb: m.fit(_X, _Y, batch_size=4, epochs=2, steps_per_epoch=2, shuffle=False,
                                                  verbose=1, callbacks=cb),
    "fit_v2_steps_per_epoch": lambda m, cb: m.fit(_X, _Y, batch_size=4, epochs=2, steps_per_epoch=2, shuffle=False,
                                                  verbose=2, callbacks=cb),
    "fit_v1_generator": lambda m, cb: m.fit(_batches(_X, _Y), epochs=1, verbose=1, callbacks=cb,
                                            validation_data=_batches(_X, _Y, n=2)),
    "fit_v2_generator": lambda m, cb: m.fit(_batches(_X, _Y), epochs=1, verbose=2, callbacks=cb),
    "evaluate_v1": lambda m, cb: m.evaluate(_X, _Y, batch_size=8, verbose=1, callbacks=cb),
    "evaluate_v2": lambda m, cb: m.evaluate(_X, _Y, batch_size=8, verbose=2, callbacks=cb),
    "evaluate_auto_steps": lambda m, cb: m.evaluate(_X, _Y, batch_size=4, steps=2, callbacks=cb),
    "evaluate_v1_generator": lambda m, cb: m.evaluate(_batches(_X, _Y), verbose=1, callbacks=cb),
    "predict_v1": lambda m, cb: m.predict(_X, batch_size=8, verbose=1, callbacks=cb),
    "predict_v2": lambda m, cb: m.predict(_X, batch_size=8, verbose=2, callbacks=cb),
    "predict_auto_generator": lambda m, cb: m.predict(((a,) for a, _ in _batches(_X, _Y)), callbacks=cb),
}


@pytest.mark.parametrize("name", list(_RUNS))
def test_fit_evaluate_predict_print_what_keras_prints(keras_ref, name):
    """verbose=1 / 2 / "auto", with and without validation data, with
    `steps_per_epoch`, with generators of unknown length: epoch headers, step
    counters, bars, redraw backspaces and padding, metric names and formats,
    `val_` entries and the final newline, character for character."""
    run = _RUNS[name]
    ref, ours = _pair(keras_ref)
    expected = _printed(keras_ref, lambda: run(ref, [_quiet_batch_hooks(keras_ref)]), keras_ref)
    got = _printed(keras, lambda: run(ours, [_quiet_batch_hooks(keras)]), keras_ref)
    assert got == expected
    assert expected.endswith("\n")
    if name == "fit_v1":  # the fake clock reaches the text: a redraw of step 1, then the final bar
        assert "\r\x1b[1m1/3\x1b[0m" in expected and "\r\x1b[1m3/3\x1b[0m" in expected


def _two_outputs(lib):
    lib.utils.clear_session()
    inputs = lib.Input((3,), name="inp")
    h = lib.layers.Dense(4, activation="tanh", name="h")(inputs)
    model = lib.Model(inputs, [lib.layers.Dense(1, name="reg")(h),
                               lib.layers.Dense(2, activation="softmax", name="cls")(h)])
    model.compile(optimizer=lib.optimizers.SGD(0.05), loss=["mse", "sparse_categorical_crossentropy"],
                  metrics=[["mae"], ["accuracy"]], loss_weights=[1.0, 0.5])
    return model


_LABELS = (_X[:, 0] > 0).astype("int64")
_MORE_RUNS = {
    "validation_freq": (_model, lambda m, cb: m.fit(_X, _Y, batch_size=8, epochs=3, shuffle=False, verbose=2,
                                                    validation_data=(_X[:5], _Y[:5]), validation_freq=2,
                                                    callbacks=cb)),
    "validation_split": (_model, lambda m, cb: m.fit(_X, _Y, batch_size=8, epochs=2, shuffle=False, verbose=1,
                                                     validation_split=0.25, callbacks=cb)),
    "two_outputs_v2": (_two_outputs, lambda m, cb: m.fit(_X, [_Y, _LABELS], batch_size=8, epochs=2, shuffle=False,
                                                         verbose=2, callbacks=cb,
                                                         validation_data=(_X[:5], [_Y[:5], _LABELS[:5]]))),
    "two_outputs_evaluate_v1": (_two_outputs, lambda m, cb: m.evaluate(_X, [_Y, _LABELS], batch_size=8, verbose=1,
                                                                       callbacks=cb)),
    "zero_loss": (_model, lambda m, cb: m.fit(_X, _Y, batch_size=8, epochs=1, shuffle=False, verbose=2,
                                              sample_weight=np.zeros(len(_X)), callbacks=cb)),
}


@pytest.mark.parametrize("name", sorted(_MORE_RUNS))
def test_more_printed_runs(keras_ref, name):
    """`validation_freq`, `validation_split`, a two-output model's per-output
    names, and a zero loss (printed as `0.0000e+00`)."""
    make, run = _MORE_RUNS[name]
    ref = make(keras_ref)
    ours = make(keras)
    ours.set_weights(ref.get_weights())
    expected = _printed(keras_ref, lambda: run(ref, [_quiet_batch_hooks(keras_ref)]), keras_ref)
    assert _printed(keras, lambda: run(ours, [_quiet_batch_hooks(keras)]), keras_ref) == expected
    if name == "zero_loss":
        assert "- loss: 0.0000e+00" in expected
    if name == "two_outputs_v2":
        assert "val_cls_accuracy" in expected


def test_epoch_line_keeps_the_order_of_the_logs(keras_ref):
    """Regression: the epoch line printed entries sorted by name, so the
    `learning_rate` that LearningRateScheduler / ReduceLROnPlateau add came
    first; Keras prints the epoch logs in their order (metrics sorted, then
    `val_` ones, then what callbacks added)."""
    ref, ours = _pair(keras_ref, metrics=())

    def run(lib, model):
        sched = lib.callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1), verbose=1)
        return lambda: model.fit(_X, _Y, batch_size=8, epochs=3, shuffle=False, verbose=2, callbacks=[sched],
                                 validation_data=(_X[:4], _Y[:4]))

    expected = _printed(keras_ref, run(keras_ref, ref), keras_ref)
    got = _printed(keras, run(keras, ours), keras_ref)
    assert got == expected
    assert "LearningRateScheduler setting learning rate to 0.03333333333333333." in got
    assert re.search(r"- val_loss: \d\.\d{4} - learning_rate: 0\.0500\n", got)


# ------------------------------------------------------------- callbacks' edges
_SCORES = [1.0, 0.9, 0.95, 0.5, 0.49, 0.6, 0.7, 0.8, 0.9, 1.0]


def _scripted(lib, key="score", values=_SCORES):
    """Writes scripted values into the epoch logs (callbacks share the dict)."""

    class Script(lib.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs[key] = values[epoch]

    return Script()


def _both(keras_ref, run, **kwargs):
    ref, ours = _pair(keras_ref, **kwargs)
    return run(keras_ref, ref), run(keras, ours)


def _stdout(fn):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fn()
    return buf.getvalue(), result


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start_from_epoch": 3, "patience": 1},
        {"baseline": 0.55, "patience": 2},
        {"baseline": 0.1, "patience": 2, "restore_best_weights": True},
        {"min_delta": 0.05, "patience": 2, "restore_best_weights": True},
        {"mode": "max", "patience": 2, "restore_best_weights": True, "start_from_epoch": 1},
    ],
)
def test_early_stopping_edges(keras_ref, kwargs):
    """The epoch it stops at, its message, `best`/`best_epoch`/`wait`, and the
    weights it leaves (restored from the best epoch or not)."""

    def run(lib, model):
        stop = lib.callbacks.EarlyStopping(monitor="score", verbose=1, **{"mode": "min", **kwargs})
        out, history = _stdout(lambda: model.fit(_X, _Y, batch_size=8, epochs=10, shuffle=False, verbose=0,
                                                 callbacks=[_scripted(lib), stop]))
        return out, stop.stopped_epoch, stop.best, stop.best_epoch, stop.wait, history.epoch, model.get_weights()

    (*ref, ref_w), (*ours, our_w) = _both(keras_ref, run)
    assert ours == ref
    for a, b in zip(our_w, ref_w):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"patience": 1, "factor": 0.5, "cooldown": 2, "min_lr": 0.01},
        {"patience": 1, "factor": 0.1, "min_delta": 0.2, "min_lr": 1e-4},
        {"patience": 0, "factor": 0.5, "mode": "max"},
    ],
)
def test_reduce_lr_on_plateau_trajectory(keras_ref, kwargs):
    def run(lib, model):
        rates = []

        class Record(lib.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                rates.append(float(lib.ops.convert_to_numpy(model.optimizer.learning_rate)))

        reduce = lib.callbacks.ReduceLROnPlateau(monitor="score", verbose=1, **{"mode": "min", **kwargs})
        out, history = _stdout(lambda: model.fit(_X, _Y, batch_size=8, epochs=10, shuffle=False, verbose=0,
                                                 callbacks=[_scripted(lib), reduce, Record()]))
        return out, rates, history.history["learning_rate"]

    ref, ours = _both(keras_ref, run)
    assert ours[0] == ref[0]  # "Epoch 4: ReduceLROnPlateau reducing learning rate to ..."
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-6)
    np.testing.assert_allclose(ours[2], ref[2], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"save_freq": 3}, "w-{epoch:02d}-{batch}.weights.h5"),
        ({"save_freq": 3, "save_best_only": True, "monitor": "val_loss"}, "w-{epoch:02d}.weights.h5"),
        ({"save_freq": 3, "save_best_only": True, "monitor": "loss"}, "w-{epoch:02d}-{batch}.weights.h5"),
        ({"save_best_only": True, "monitor": "val_loss", "initial_value_threshold": 0.5}, "w-{epoch:02d}.weights.h5"),
        ({"save_best_only": True, "monitor": "val_loss", "initial_value_threshold": 100.0},
         "w-{epoch:02d}.weights.h5"),
    ],
)
def test_model_checkpoint_files_and_messages(keras_ref, tmp_path, kwargs, pattern):
    """Which files appear at which steps (`{batch}` is the 1-based batch of
    the epoch), what is printed, and `best`. With an integer `save_freq` and
    `monitor="val_loss"` (absent from batch logs) Keras saves nothing and
    warns; so does kerasish."""

    def run(lib, model):
        folder = tmp_path / lib.__name__
        folder.mkdir()
        ckpt = lib.callbacks.ModelCheckpoint(str(folder / pattern), verbose=1, save_weights_only=True, **kwargs)
        out, _ = _stdout(lambda: model.fit(_X[:16], _Y[:16], batch_size=4, epochs=3, shuffle=False, verbose=0,
                                           validation_data=(_X[:4], _Y[:4]), callbacks=[ckpt]))
        best = None if ckpt.best is None else round(float(ckpt.best), 5)
        return out.replace(str(folder), "DIR"), sorted(os.listdir(folder)), best

    ref, ours = _both(keras_ref, run)
    assert ours == ref


@pytest.mark.parametrize("name", ["best.h5", "weights.{epoch:02d}.hdf5"])
def test_model_checkpoint_weights_only_keras2_h5_name_loads_back(keras_ref, tmp_path, name):
    """Regression: `ModelCheckpoint("best.h5", save_weights_only=True)` (the
    Keras 2 idiom; Keras 3 refuses the name) wrote a torch zip file under the
    `.h5` name, which `load_weights` could not read. It now writes Keras 2's
    HDF5 weights, read back by kerasish and by Keras 3's legacy loader."""
    with pytest.raises(ValueError, match="must end in `.weights.h5`"):
        keras_ref.callbacks.ModelCheckpoint(str(tmp_path / name), save_weights_only=True)
    model = _model(keras)
    model.fit(_X, _Y, batch_size=8, epochs=1, shuffle=False, verbose=0,
              callbacks=[keras.callbacks.ModelCheckpoint(str(tmp_path / name), save_weights_only=True)])
    path = tmp_path / name.format(epoch=1)
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    for lib in (keras, keras_ref):
        again = _model(lib)
        again.load_weights(str(path))
        for a, b in zip(again.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_csv_logger_separator_bytes(keras_ref, tmp_path):
    """The file's bytes (header, separator, `\\r\\n`, "NA" for a missing
    validation entry when appending) equal Keras's; the values agree to float32
    rounding, which may differ in the last printed digits."""

    def run(lib, model):
        path = tmp_path / f"{lib.__name__}.csv"
        model.fit(_X, _Y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(_X[:4], _Y[:4]),
                  callbacks=[lib.callbacks.CSVLogger(str(path), separator=";")])
        model.fit(_X, _Y, batch_size=8, epochs=3, initial_epoch=2, shuffle=False, verbose=0,
                  callbacks=[lib.callbacks.CSVLogger(str(path), separator=";", append=True)])
        return path.read_bytes()

    ref, ours = _both(keras_ref, run)
    number = re.compile(rb"-?\d+\.\d+(e-?\d+)?")
    assert number.sub(b"N", ours) == number.sub(b"N", ref)
    assert ref.startswith(b"epoch;loss;mae;val_loss;val_mae\r\n") and ref.endswith(b";NA;NA\r\n")
    ref_rows = [row.split(b";") for row in ref.splitlines()[1:]]
    our_rows = [row.split(b";") for row in ours.splitlines()[1:]]
    for a, b in zip(our_rows, ref_rows):
        assert a[0] == b[0]
        np.testing.assert_allclose([float(v) for v in a[1:] if v != b"NA"],
                                   [float(v) for v in b[1:] if v != b"NA"], rtol=1e-5)


def test_csv_logger_odd_values_and_late_keys(keras_ref, tmp_path):
    """Arrays, lists, strings with the separator and ints in the logs; a key
    that appears after the first epoch (dropped: the header is fixed then);
    `stop_training` with a key missing ("NA"). Values agree to float32
    rounding; everything else byte for byte."""

    def run(lib, model):
        class Odd(lib.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs["vec"] = np.array([1.5, 2.0]) if epoch == 0 else [3, 4]
                logs["txt"] = "a,b" if epoch == 0 else "c"
                logs["i"] = epoch * 2
                if epoch == 1:
                    logs["late"] = 1.0
                if epoch == 2:
                    self.model.stop_training = True
                    del logs["txt"]

        path = tmp_path / f"{lib.__name__}.csv"
        model.fit(_X, _Y, batch_size=8, epochs=4, shuffle=False, verbose=0,
                  callbacks=[Odd(), lib.callbacks.CSVLogger(str(path))])
        return path.read_bytes()

    ref, ours = _both(keras_ref, run)
    long_number = re.compile(rb"\d+\.\d{6,}")
    assert long_number.sub(b"N", ours) == long_number.sub(b"N", ref)
    # Keras's quirks, kept: "val_" columns for every key when the first epoch has none, iterables
    # written as a quoted "[...]" string (quoted again by the csv module)
    assert ref.startswith(b"epoch,i,loss,mae,txt,vec,val_i,val_loss,val_mae,val_txt,val_vec\r\n")
    assert b',"a,b","""[1.5, 2.0]""",NA,' in ref and b"late" not in ref and ref.endswith(b',NA,"""[3, 4]""",NA,NA,NA,NA,NA\r\n')


def test_terminate_on_nan_history_initial_epoch_and_batch_logs(keras_ref):
    x_nan = _X[:16].copy()
    x_nan[9, 0] = np.nan

    def run(lib, model):
        record = []

        class Record(lib.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                record.append(("train", batch, {k: type(v).__name__ for k, v in logs.items()}))

            def on_test_batch_end(self, batch, logs=None):
                record.append(("test", batch, {k: type(v).__name__ for k, v in logs.items()}))

            def on_predict_batch_end(self, batch, logs=None):
                record.append(("predict", batch, sorted(logs), type(logs["outputs"]).__name__))

        history = model.fit(_X, _Y, batch_size=8, epochs=4, initial_epoch=2, shuffle=False, verbose=0,
                            validation_data=(_X[:4], _Y[:4]), callbacks=[Record()])
        model.predict(_X[:4], verbose=0, callbacks=[Record()])
        logged = (history.epoch, sorted(history.history), history.params)
        out, nan_history = _stdout(lambda: model.fit(x_nan, _Y[:16], batch_size=4, epochs=3, shuffle=False,
                                                     verbose=0, callbacks=[lib.callbacks.TerminateOnNaN()]))
        return logged, record, out, nan_history.epoch, model.stop_training

    ref, ours = _both(keras_ref, run)
    assert ours == ref
    assert ref[2] == "Batch 2: Invalid loss, terminating training\n"
    # batch logs hold Python floats; a predict batch's outputs are NumPy arrays (regression: tensors)
    assert ("predict", 0, ["outputs"], "ndarray") in ours[1]


def test_callback_list_by_hand(keras_ref):
    def run(lib, model):
        events = []

        class Record(lib.callbacks.Callback):
            def on_train_begin(self, logs=None):
                events.append(("train_begin", logs, self.params, self.model is model))

            def on_epoch_end(self, epoch, logs=None):
                events.append(("epoch_end", epoch, logs))

        history = lib.callbacks.History()
        quiet = lib.callbacks.CallbackList([Record(), history], add_history=False, add_progbar=False, model=model,
                                           epochs=2, steps=3, verbose=0)
        quiet.on_train_begin()
        quiet.on_epoch_begin(0)
        quiet.on_epoch_end(0, {"loss": 1.5})
        loud = lib.callbacks.CallbackList(None, add_history=True, add_progbar=True, model=model, epochs=2, steps=3,
                                          verbose=2)
        out = _printed(lib, lambda: (loud.on_train_begin(), loud.on_epoch_begin(0),
                                     loud.on_train_batch_end(0, {"loss": 2.0}), loud.on_epoch_end(0, {"loss": 1.0}),
                                     loud.on_train_end()), keras_ref)
        return events, history.history, history.epoch, [type(c).__name__ for c in loud.callbacks], out

    ref, ours = _both(keras_ref, run)
    assert ours == ref
    # the fake clock read at the bar's start (epoch begin) and at the epoch's end, 0.25 s later:
    # 0.25 s over 3 steps (no step-1 reading at verbose=2) is 83 ms/step, 0 s in all
    assert ref[4] == "Epoch 1/2\n3/3 - 0s - 83ms/step - loss: 1.0000\n"


# ------------------------------------------------------------------- summary
def _summary_models(lib):
    lib.utils.clear_session()
    Ly = lib.layers
    inner = lib.Sequential([Ly.Dense(4, name="i1"), Ly.Dense(3, name="i2")], name="sub")
    seq = lib.Sequential([Ly.Input((8,)), Ly.Dense(5, name="first"), inner, Ly.Dense(2, name="last")], name="seq")
    seq.layers[0].trainable = False
    a = Ly.Input((4,), name="a")
    h = Ly.Dense(3, name="d1")(a)
    fn = lib.Model(a, Ly.Add(name="add")([h, Ly.Dense(3, name="d2")(h)]), name="fn")
    return {"seq": seq, "fn": fn}


def _summary(model, **kwargs):
    lines = []
    model.summary(print_fn=lambda text, **_: lines.append(text), **kwargs)
    return lines


@pytest.mark.parametrize(
    "kwargs",
    [
        {"expand_nested": True, "show_trainable": True},
        {"layer_range": ["first", "last"]},
        {"layer_range": ["sub", "last"], "expand_nested": True},
        {"positions": [0.5, 0.7, 1.0]},
        {"line_length": 100, "positions": [0.3, 0.6, 0.7, 1.0], "show_trainable": True},
        {"positions": [0.2, 0.4, 0.6, 0.8, 1.0]},  # extra entries: sized, not drawn (regression: narrower table)
        {"line_length": 200},
    ],
)
def test_summary_options_match_keras(keras_ref, kwargs):
    """`print_fn` is called once with the whole table, as Keras does."""
    ours, theirs = _summary_models(keras), _summary_models(keras_ref)
    for name in ours:
        if name == "fn" and kwargs.get("layer_range", ["d"])[0] != "d":
            continue  # those layer names are the Sequential's
        if name == "fn" and len(kwargs.get("positions", [0] * 4)) < 4:
            continue  # Keras raises IndexError there; kerasish a ValueError (below)
        expected = _summary(theirs[name], **kwargs)
        assert len(expected) == 1
        assert _summary(ours[name], **kwargs) == expected, name


def test_summary_positions_errors_and_keras2_absolute_positions(keras_ref):
    ours = _summary_models(keras)
    with pytest.raises(ValueError, match=r"`positions` must give the end of each of the 4 columns.*"
                                         r"Received: positions=\[0.5, 0.7, 1.0\]"):
        _summary(ours["fn"], positions=[0.5, 0.7, 1.0])
    with pytest.raises(IndexError):  # Keras 3.15's failure for the same call
        _summary(_summary_models(keras_ref)["fn"], positions=[0.5, 0.7, 1.0])
    # Absolute positions (Keras 2's form, which Keras 3's docstring still
    # promises) are column ends in characters in kerasish; Keras 3.15 multiplies
    # them by the line length and draws equal columns (a Keras defect).
    # (line_length=80: the three cells, one space of padding each side, fill the 76 characters
    # inside the four borders, so nothing is rescaled)
    def cells(lib_models):
        top = _summary(lib_models["seq"], positions=[30, 50, 70], line_length=80)[0].splitlines()[1]
        return [len(cell) for cell in top.strip("┏┓").split("┳")]

    assert cells(ours) == [30 + 2, 20 + 2, 20 + 2]
    assert cells(_summary_models(keras_ref)) == [25, 26, 25]  # Keras: about equal thirds


def test_count_params_and_summary_of_unbuilt_models(keras_ref):
    def run(lib):
        class Sub(lib.Model):
            def __init__(self):
                super().__init__()
                self.d = lib.layers.Dense(2)

            def call(self, x):
                return self.d(x)

        errors = []
        for layer in (lib.layers.Dense(3), lib.Sequential([lib.layers.Dense(3)]), Sub()):
            with pytest.raises(ValueError) as info:
                layer.count_params()
            errors.append(re.sub(r"'\w+'", "'NAME'", str(info.value)))
        return errors, re.sub(r"\w+_\d+", "NAME", "\n".join(_summary(Sub())))

    keras_ref.utils.clear_session()
    ref = run(keras_ref)
    assert run(keras) == ref
    assert "isn't built" in ref[0][0] and "0 (unbuilt)" in ref[1]


# ----------------------------------------------------------- BackupAndRestore
def _interrupt_at(lib, epoch, batch):
    class Interrupt(lib.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            self.e = e

        def on_train_batch_end(self, b, logs=None):
            if (self.e, b) == (epoch, batch):
                raise RuntimeError("interrupted")

    return Interrupt()


def _backup_run(lib, init, folder, save_freq, at):
    """Interrupted fit, then a fresh model resuming from `folder`."""
    model = _model(lib)
    model.set_weights(init)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(_X[:16], _Y[:16], batch_size=4, epochs=3, shuffle=False, verbose=0,
                  callbacks=[lib.callbacks.BackupAndRestore(str(folder), save_freq=save_freq, delete_checkpoint=False),
                             _interrupt_at(lib, *at)])
    meta = json.loads((folder / "training_metadata.json").read_text())
    files = sorted(os.listdir(folder))
    again = _model(lib)
    history = again.fit(_X[:16], _Y[:16], batch_size=4, epochs=3, shuffle=False, verbose=0,
                        callbacks=[lib.callbacks.BackupAndRestore(str(folder), save_freq=save_freq,
                                                                  delete_checkpoint=False)])
    return meta, files, history, again, sorted(os.listdir(folder))


@pytest.mark.parametrize("save_freq, at", [(2, (1, 2)), (3, (1, 1))])
def test_backup_and_restore_int_freq_keeps_its_files(keras_ref, tmp_path, save_freq, at):
    """An integer `save_freq` with `delete_checkpoint=False`, interrupted mid-epoch:
    the backup written before the exception (metadata, files) equals Keras's and
    stays after the resumed fit. Resuming differs on purpose (see
    BackupAndRestore's docstring): kerasish goes on at the batch after the
    backup and ends on the uninterrupted run's weights; Keras 3.15 restarts the
    epoch from its first batch, from the mid-epoch weights."""
    init = _model(keras_ref).get_weights()
    ref = _backup_run(keras_ref, init, tmp_path / "ref", save_freq, at)
    ours = _backup_run(keras, init, tmp_path / "ours", save_freq, at)
    assert ours[0] == ref[0] and ours[1] == ref[1] == ["latest.weights.h5", "training_metadata.json"]
    assert ours[2].epoch == ref[2].epoch == [1, 2]
    assert ours[4] == ref[4]
    straight = _model(keras)
    straight.set_weights(init)
    straight.fit(_X[:16], _Y[:16], batch_size=4, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(ours[3].get_weights(), straight.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(ours[3].optimizer.iterations) == int(straight.optimizer.iterations) == 12


def test_backup_and_restore_resumed_empty_epoch_logs_no_fake_loss(tmp_path):
    """Regression: interrupted after the last batch of the last epoch (before
    its end), the resumed fit had no batch left to run and logged that epoch's
    loss as 0.0 (freshly reset metrics), which `EarlyStopping` /
    `ModelCheckpoint(monitor="loss")` took for an improvement. Now that epoch
    logs no training metrics (they are unknown).
    (Keras 3.15 restarts the epoch from its first batch, training it twice.)"""
    init = _model(keras).get_weights()
    meta, _, history, model, _ = _backup_run(keras, init, tmp_path / "ours", 1, (2, 3))
    assert meta == {"epoch": 2, "batch": 3}
    assert history.epoch == [2] and "loss" not in history.history
    assert int(model.optimizer.iterations) == 12
