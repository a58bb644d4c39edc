"""Monitored names in "auto" mode: Keras 3 resolves the direction from the
compiled metric and raises for names it cannot resolve; kerasish adds Keras 2's
rule that a name containing "acc" is maximized, so Keras 2 programs
monitoring "val_acc" (cifar10_resnet.py's ModelCheckpoint) run."""

import numpy as np
import pytest

import kerasish as keras


def _model():
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    m.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    return m


@pytest.mark.parametrize("monitor", ["val_acc", "acc", "fmeasure"])
def test_keras2_accuracy_names_are_maximized(monitor):
    cb = keras.callbacks.EarlyStopping(monitor=monitor)
    cb.set_model(_model())
    cb._set_monitor_op()
    assert cb._is_improvement(0.9, 0.8) and not cb._is_improvement(0.7, 0.8)


def test_unknown_names_still_raise_as_in_keras3():
    cb = keras.callbacks.EarlyStopping(monitor="val_thing")
    cb.set_model(_model())
    with pytest.raises(ValueError, match="automatically determine"):
        cb._set_monitor_op()


def test_model_checkpoint_val_acc_runs(tmp_path):
    x = np.ones((4, 3), "float32")
    y = np.eye(2, dtype="float32")[[0, 1, 0, 1]]
    cb = keras.callbacks.ModelCheckpoint(str(tmp_path / "m.{epoch:02d}.weights.h5"), monitor="val_acc",
                                         save_best_only=True, save_weights_only=True)
    with pytest.warns(UserWarning, match="only with val_acc available"):  # logged as val_accuracy
        _model().fit(x, y, validation_data=(x, y), epochs=2, callbacks=[cb], verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.01.weights.h5", "m.02.weights.h5"]  # as Keras 3
