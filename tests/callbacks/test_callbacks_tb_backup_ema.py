"""TensorBoard (event files read back), BackupAndRestore (an interrupted fit
resumes to the same weights as an uninterrupted one) and SwapEMAWeights
(against real Keras 3)."""

import json
import os

import numpy as np
import pytest

import kerasish as keras


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype("float32")
    y = (x @ rng.standard_normal((4, 2)) + 0.1).astype("float32")
    return x, y


def _model(lib, weights=None, optimizer=None):
    model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(8, activation="tanh"), lib.layers.Dense(2)])
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=optimizer or lib.optimizers.SGD(0.05, momentum=0.9), loss="mse", metrics=["mae"])
    return model


# ---------------------------------------------------------------- TensorBoard
def _events(path):
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea.EventAccumulator(path, size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
    acc.Reload()
    return acc


def test_tensorboard_writes_epoch_batch_and_validation_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    x, y = _data()
    model = _model(keras)
    tb = keras.callbacks.TensorBoard(tmp_path / "logs", update_freq=2, histogram_freq=2)
    hist = model.fit(x, y, batch_size=8, epochs=3, validation_data=(x[:8], y[:8]), callbacks=[tb], verbose=0)
    assert sorted(os.listdir(tmp_path / "logs")) == ["train", "validation"]
    train = _events(str(tmp_path / "logs" / "train"))
    tags = set(train.Tags()["scalars"])
    assert {"epoch_loss", "epoch_mae", "epoch_learning_rate", "batch_loss", "batch_mae"} <= tags
    loss = train.Scalars("epoch_loss")
    assert [e.step for e in loss] == [0, 1, 2]
    np.testing.assert_allclose([e.value for e in loss], hist.history["loss"], rtol=1e-6)
    np.testing.assert_allclose([e.value for e in train.Scalars("epoch_learning_rate")], [0.05] * 3, rtol=1e-6)
    # 3 batches per epoch, 9 global batches, written every 2nd (1-based global count)
    assert [e.step for e in train.Scalars("batch_loss")] == [2, 4, 6, 8]
    hist_tags = set(train.Tags()["histograms"])
    assert {f"{w.path}/histogram" for layer in model.layers for w in layer.weights} == hist_tags
    assert [e.step for e in train.Histograms(model.layers[0].weights[0].path + "/histogram")] == [0, 2]
    val = _events(str(tmp_path / "logs" / "validation"))
    np.testing.assert_allclose([e.value for e in val.Scalars("epoch_loss")], hist.history["val_loss"], rtol=1e-6)
    assert [e.step for e in val.Scalars("evaluation_loss_vs_iterations")] == [3, 6, 9]


def test_tensorboard_epoch_mode_writes_no_batch_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    x, y = _data()
    model = _model(keras)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[keras.callbacks.TensorBoard(tmp_path)])
    tags = set(_events(str(tmp_path / "train")).Tags()["scalars"])
    assert tags == {"epoch_loss", "epoch_mae", "epoch_learning_rate"}
    assert not os.path.exists(tmp_path / "validation")


def test_tensorboard_refuses_profiling():
    with pytest.raises(ValueError, match="profile_batch"):
        keras.callbacks.TensorBoard(profile_batch=2)


# ----------------------------------------------------------- BackupAndRestore
class _Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("interrupted")


@pytest.mark.parametrize("save_freq", ["epoch", 2, 1])
def test_backup_and_restore_resumes_to_the_uninterrupted_weights(tmp_path, save_freq):
    x, y = _data()
    init = _model(keras).get_weights()
    reference = _model(keras, init)
    ref_hist = reference.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0)

    model = _model(keras, init)
    backup = keras.callbacks.BackupAndRestore(tmp_path / "backup", save_freq=save_freq)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0, callbacks=[backup, _Interrupt(2, 4)])
    meta = json.loads((tmp_path / "backup" / "training_metadata.json").read_text())
    expected = {"epoch": {"epoch": 2, "batch": 0}, 2: {"epoch": 2, "batch": 3}, 1: {"epoch": 2, "batch": 4}}
    assert meta == expected[save_freq]
    # a fresh process: new model and optimizer, same callback configuration
    again = _model(keras, _model(keras).get_weights())
    hist = again.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0,
                     callbacks=[keras.callbacks.BackupAndRestore(tmp_path / "backup", save_freq=save_freq)])
    assert hist.epoch == [2, 3]
    for a, b in zip(again.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(again.optimizer.iterations) == int(reference.optimizer.iterations)
    np.testing.assert_allclose(hist.history["loss"][-1], ref_hist.history["loss"][-1], rtol=1e-5)
    assert not os.path.exists(tmp_path / "backup")  # delete_checkpoint


def test_backup_and_restore_epoch_mode_matches_keras(tmp_path, keras_ref):
    x, y = _data()
    results = []
    init = None
    for lib in (keras_ref, keras):
        model = _model(lib, init)
        init = model.get_weights() if init is None else init
        d = tmp_path / lib.__name__
        with pytest.raises(RuntimeError, match="interrupted"):
            model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0,
                      callbacks=[lib.callbacks.BackupAndRestore(d), _interrupt_for(lib, 1, 2)])
        meta = json.loads((d / "training_metadata.json").read_text())
        again = _model(lib, init)
        hist = again.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0,
                         callbacks=[lib.callbacks.BackupAndRestore(d)])
        results.append((meta, hist.epoch, again.get_weights()))
    assert results[0][0] == results[1][0]
    assert results[0][1] == results[1][1]
    for a, b in zip(results[0][2], results[1][2]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def _interrupt_for(lib, epoch, batch):
    class Interrupt(lib.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            self.e = e

        def on_train_batch_end(self, b, logs=None):
            if (self.e, b) == (epoch, batch):
                raise RuntimeError("interrupted")

    return Interrupt()


def test_backup_and_restore_is_written_whole_and_removed_by_rank_zero_only(tmp_path, monkeypatch):
    """Under torchrun another rank's crash gets this one killed at any
    point: the training position is moved into place whole (a write that
    fails midway leaves the previous one); and at the end of a distributed
    fit rank 0 alone removes the backup (every rank removing the same files
    at once failed on the rank that found them gone)."""
    from kerasish.trainers import distributed

    x, y = _data()
    model = _model(keras)
    backup = keras.callbacks.BackupAndRestore(tmp_path / "backup", save_freq=2, delete_checkpoint=True)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[backup, _Interrupt(1, 2)])
    meta_path = tmp_path / "backup" / "training_metadata.json"
    before = meta_path.read_text()

    def dump_then_die(obj, f):
        f.write('{"epoch": ')
        raise KeyboardInterrupt  # (a kill mid-write)

    monkeypatch.setattr(json, "dump", dump_then_die)
    with pytest.raises(KeyboardInterrupt):
        backup._write_backup()
    monkeypatch.undo()
    assert meta_path.read_text() == before and json.loads(before) == {"epoch": 1, "batch": 1}
    assert sorted(os.listdir(tmp_path / "backup")) == ["latest.weights.h5", "training_metadata.json"]

    monkeypatch.setattr(distributed, "is_rank_zero", lambda: False)
    backup.on_train_end()
    assert meta_path.exists()  # left to rank 0
    monkeypatch.undo()
    backup.on_train_end()
    assert not (tmp_path / "backup").exists()


def test_backup_and_restore_bad_arguments():
    with pytest.raises(ValueError, match="backup_dir"):
        keras.callbacks.BackupAndRestore("")
    with pytest.raises(ValueError, match="save_freq"):
        keras.callbacks.BackupAndRestore("x", save_freq="batch")


# ------------------------------------------------------------- SwapEMAWeights
@pytest.mark.parametrize("swap_on_epoch", [False, True])
def test_swap_ema_weights_matches_keras(keras_ref, swap_on_epoch):
    x, y = _data()
    vx, vy = _data(8, seed=1)
    out = []
    init = None
    for lib in (keras_ref, keras):
        model = _model(lib, init, optimizer=lib.optimizers.SGD(0.05, use_ema=True, ema_momentum=0.8))
        init = model.get_weights() if init is None else init
        hist = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, validation_data=(vx, vy), verbose=0,
                         callbacks=[lib.callbacks.SwapEMAWeights(swap_on_epoch=swap_on_epoch)])
        after_fit = model.get_weights()
        ev = model.evaluate(vx, vy, verbose=0, callbacks=[lib.callbacks.SwapEMAWeights()])
        pred = np.asarray(model.predict(vx, verbose=0, callbacks=[lib.callbacks.SwapEMAWeights()]))
        out.append((hist.history, after_fit, ev, pred, model.get_weights()))
    (kh, kw, kev, kp, kw2), (h, w, ev, p, w2) = out
    for key in kh:
        np.testing.assert_allclose(h[key], kh[key], rtol=1e-4, err_msg=key)
    for a, b in zip(w + w2, kw + kw2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ev, kev, rtol=1e-4)
    np.testing.assert_allclose(p, kp, rtol=1e-4, atol=1e-6)


def test_swap_ema_weights_needs_use_ema():
    x, y = _data()
    model = _model(keras)
    with pytest.raises(ValueError, match="use_ema"):
        model.evaluate(x, y, verbose=0, callbacks=[keras.callbacks.SwapEMAWeights()])


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # probes load weights only
def test_swap_ema_weights_checkpoints_ema_weights_like_keras(keras_ref, tmp_path):
    x, y = _data()
    saved = []
    init = None
    for lib in (keras_ref, keras):
        model = _model(lib, init, optimizer=lib.optimizers.SGD(0.05, use_ema=True, ema_momentum=0.7))
        init = model.get_weights() if init is None else init
        path = str(tmp_path / f"{lib.__name__}-{{epoch}}.weights.h5")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[
            lib.callbacks.SwapEMAWeights(swap_on_epoch=True),
            lib.callbacks.ModelCheckpoint(path, save_weights_only=True),
        ])
        per_epoch = []
        for epoch in (1, 2):
            probe = _model(lib, init)
            probe.load_weights(path.format(epoch=epoch))
            per_epoch.append(probe.get_weights())
        saved.append(per_epoch)
    for ref_epoch, got_epoch in zip(*saved):
        for a, b in zip(got_epoch, ref_epoch):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
