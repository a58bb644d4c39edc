"""Which `training` value a call gets when nobody passed one.

Keras 3's rule: an explicit `training=` wins, then the call in progress, then
the `training` default of the layer's own `call` (True for the image
augmentation layers, False for Dropout, None for most). kerasish adds the torch
mode: once `train()`/`eval()` set it, it decides. Every case here is compared
with real Keras 3 on the same program.
"""

import threading

import numpy as np
import pytest
import torch

import kerasish

X = np.random.default_rng(0).uniform(0, 1, size=(4, 6, 6, 3)).astype("float32")


def _changed(y) -> bool:
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    return not np.allclose(y, X)


def _programs(K):
    """(name, a callable returning whether the images came out augmented)."""
    flip = K.layers.RandomFlip("horizontal_and_vertical", seed=1)
    inp = K.Input((6, 6, 3))
    functional = K.Model(inp, K.layers.RandomRotation(0.4, seed=2)(inp))
    sequential = K.Sequential([K.Input((6, 6, 3)), K.layers.RandomFlip("horizontal_and_vertical", seed=3)])
    dropped = K.Sequential([K.Input((6, 6, 3)), K.layers.Dropout(0.9, seed=4)])

    def several(fn, n=4):
        return any(fn() for _ in range(n))  # a random flip may draw "no flip"

    return [
        ("standalone", lambda: several(lambda: _changed(flip(X)))),
        ("standalone_training_false", lambda: several(lambda: _changed(flip(X, training=False)))),
        ("functional_call", lambda: several(lambda: _changed(functional(X)))),
        ("functional_predict", lambda: several(lambda: _changed(functional.predict(X, verbose=0)))),
        ("sequential_call", lambda: several(lambda: _changed(sequential(X)))),
        ("dropout_call", lambda: several(lambda: _changed(dropped(X)))),
        ("dropout_training_true", lambda: _changed(dropped(X, training=True))),
    ]


def test_default_training_matches_keras(keras_ref):
    ours = dict((name, fn()) for name, fn in _programs(kerasish))
    theirs = dict((name, fn()) for name, fn in _programs(keras_ref))
    assert ours == theirs
    # what Keras does, spelled out: augmentation layers augment unless told not to
    assert theirs["standalone"] and theirs["functional_call"] and not theirs["functional_predict"]
    assert not theirs["dropout_call"] and theirs["dropout_training_true"]


def test_a_custom_layer_gets_the_call_default_as_in_keras(keras_ref):
    seen = {}

    def make(K, tag):
        class Probe(K.layers.Layer):
            def call(self, x, training=None):
                seen.setdefault(tag, []).append(training)
                return x

        class Outer(K.layers.Layer):
            def __init__(self):
                super().__init__()
                self.probe = Probe()

            def call(self, x, training=None):
                seen.setdefault(tag, []).append(training)
                return self.probe(x, training=training)

        return Outer()

    for K, tag in ((kerasish, "ours"), (keras_ref, "theirs")):
        layer = make(K, tag)
        layer(X)  # builds (Keras traces the call once more while building)
        seen[tag] = []
        layer(X)
        layer(X, training=True)
        layer(X, training=False)
    assert seen["ours"] == seen["theirs"] == [None, None, True, True, False, False]


def test_fit_evaluate_predict_leave_the_modes_as_they_were(keras_ref):
    model = kerasish.Sequential([kerasish.Input((6, 6, 3)), kerasish.layers.RandomFlip(seed=5),
                                 kerasish.layers.Flatten(), kerasish.layers.Dropout(0.5),
                                 kerasish.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    y = np.zeros((4, 1), "float32")
    model.fit(X, y, epochs=1, verbose=0)
    model.evaluate(X, y, verbose=0)
    model.predict(X, verbose=0)
    # never set by the user: still Keras's rule after fit (a Keras model augments after fit too)
    aug = model.layers[0]
    assert any(_changed(aug(X)) for _ in range(4))
    # a user's own modes survive fit/evaluate/predict, module by module
    model.train()
    model.layers[2].eval()  # e.g. a frozen part
    modes = [m.training for m in model.modules()]
    model.fit(X, y, epochs=1, verbose=0)
    model.predict(X, verbose=0)
    model.evaluate(X, y, verbose=0)
    model.train_on_batch(X, y)
    model.predict_on_batch(X)
    assert [m.training for m in model.modules()] == modes


def test_eval_and_train_decide_once_set():
    flip = kerasish.layers.RandomFlip("horizontal_and_vertical", seed=6)
    assert any(_changed(flip(X)) for _ in range(4))
    flip.eval()
    assert not any(_changed(flip(X)) for _ in range(4))
    assert any(_changed(flip(X, training=True)) for _ in range(4))  # explicit still wins
    drop = kerasish.layers.Dropout(0.9, seed=7)
    drop.train()
    assert _changed(drop(X))


def test_training_call_in_one_thread_does_not_reach_another():
    flip = kerasish.layers.RandomFlip("horizontal_and_vertical", seed=8)
    model = kerasish.Sequential([kerasish.Input((6, 6, 3)), flip])
    changed = []
    barrier = threading.Barrier(2)

    def inference():
        barrier.wait()
        changed.extend(_changed(model(X, training=False)) for _ in range(50))

    def training():
        barrier.wait()
        for _ in range(50):
            model(X, training=True)

    threads = [threading.Thread(target=inference), threading.Thread(target=training)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert changed and not any(changed)


@pytest.mark.parametrize("name", ["RandomFlip", "RandomContrast", "RandomCrop", "Pipeline"])
def test_configs_record_keras_call_default(keras_ref, name):
    """Keras records the augmentation layers' `training=True` default in a
    functional model's config; kerasish's configs say the same."""
    def build(K):
        args = {"RandomFlip": {}, "RandomContrast": {"factor": 0.2}, "RandomCrop": {"height": 4, "width": 4},
                "Pipeline": {"layers": [K.layers.RandomFlip()]}}[name]
        inp = K.Input((6, 6, 3))
        return K.Model(inp, getattr(K.layers, name)(**args)(inp))

    def call_kwargs(model):
        layer = [c for c in model.get_config()["layers"] if c["class_name"] == name][0]
        return layer["inbound_nodes"][0]["kwargs"]

    assert call_kwargs(build(kerasish)) == call_kwargs(build(keras_ref))
