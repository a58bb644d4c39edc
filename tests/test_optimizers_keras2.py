"""Keras 2 spellings on optimizers: `lr=`, time-based `decay=`, `optimizer.lr`.

Checked against a stored record of tf.keras 2's legacy optimizers
(tests/fixtures/keras2_optimizers, written by
tools/fixtures/make_keras2_optimizer_decay_fixture.py) and against NumPy
references of the update rules.
"""

import json
import os
import warnings

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish import backend as K
from kerasish import optimizers
from kerasish.optimizers import schedules

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "keras2_optimizers")
FIX = np.load(os.path.join(HERE, "decay.npz"))
with open(os.path.join(HERE, "decay.json")) as f:
    META = json.load(f)


def _run(opt, a, b, w0, steps):
    w = torch.nn.Parameter(torch.tensor(w0))
    a, b = torch.tensor(a), torch.tensor(b)
    traj = []
    for _ in range(steps):
        opt.apply_gradients([(a * w.detach() + b, w)])
        traj.append(w.detach().numpy().copy())
    return np.stack(traj)


@pytest.mark.parametrize("case_id", sorted(META["cases"]))
def test_trajectory_matches_tf_keras2_legacy_record(case_id):
    case = META["cases"][case_id]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt = getattr(optimizers, case["class_name"])(**case["kwargs"])
    assert any("`lr` argument is deprecated" in str(w.message) for w in caught)
    assert caught[0].filename == __file__  # the warning points at the user's line
    traj = _run(opt, FIX["a"], FIX["b"], FIX["w0"], META["steps"])
    np.testing.assert_allclose(traj, FIX[case_id], rtol=2e-6, atol=1e-6)


def test_from_keras2_config_keys():
    # tf.keras 2's get_config() of a legacy optimizer rebuilds the same optimizer
    case = META["cases"]["sgd_momentum"]
    config = dict(case["config"])
    opt = optimizers.SGD.from_config(config)
    assert opt.decay == pytest.approx(0.1)
    np.testing.assert_allclose(_run(opt, FIX["a"], FIX["b"], FIX["w0"], META["steps"]), FIX["sgd_momentum"],
                               rtol=2e-6, atol=1e-6)
    with pytest.warns(UserWarning, match="`lr` argument is deprecated"):
        again = optimizers.SGD.from_config({"lr": 0.3, "decay": 0.2})
    assert float(again.learning_rate) == pytest.approx(0.3)
    assert again.get_config()["decay"] == pytest.approx(0.2)
    assert "decay" not in optimizers.SGD(0.1).get_config()  # Keras 3 configs stay Keras 3's


def _numpy_adam_with_decay(w0, grads, lr, decay, b1=0.9, b2=0.999, eps=1e-7):
    w, m, v = w0.astype(np.float64), np.zeros_like(w0, np.float64), np.zeros_like(w0, np.float64)
    out = []
    for t, g in enumerate(grads):
        lr_t = lr / (1 + decay * t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        alpha = lr_t * np.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))
        w = w - alpha * m / (np.sqrt(v) + eps)
        out.append(w.copy())
    return np.stack(out)


def test_adam_decay_numpy_reference():
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal(5).astype("float32")
    grads = rng.standard_normal((8, 5)).astype("float32")
    opt = optimizers.Adam(learning_rate=0.05, decay=0.5)
    w = torch.nn.Parameter(torch.tensor(w0))
    got = []
    for g in grads:
        opt.apply([torch.tensor(g)], [w])
        got.append(w.detach().numpy().copy())
    np.testing.assert_allclose(np.stack(got), _numpy_adam_with_decay(w0, grads, 0.05, 0.5), rtol=1e-5, atol=1e-6)


def test_decay_applies_on_top_of_a_schedule():
    # tf.keras 2 legacy: lr_t = schedule(iterations) / (1 + decay * iterations)
    sched = schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    opt = optimizers.SGD(learning_rate=sched, decay=0.25)
    w = torch.nn.Parameter(torch.zeros(()))
    ref = 0.0
    for t in range(6):
        opt.apply([torch.tensor(1.0)], [w])
        ref -= 0.1 * 0.5 ** (t / 2) / (1 + 0.25 * t)
        assert float(w.detach()) == pytest.approx(ref, rel=1e-6)


def test_lr_alias_and_backend_get_set_value():
    opt = optimizers.SGD(learning_rate=0.1, decay=1.0)
    assert K.get_value(opt.lr) == pytest.approx(0.1)
    K.set_value(opt.lr, 0.5)
    assert float(opt.learning_rate) == pytest.approx(0.5)
    opt.lr = 0.25
    assert K.get_value(opt.learning_rate) == pytest.approx(0.25)
    # `lr` reads the undecayed hyperparameter as Keras 2's did; the update uses the decayed one
    w = torch.nn.Parameter(torch.zeros(()))
    opt.apply([torch.tensor(1.0)], [w])
    opt.apply([torch.tensor(1.0)], [w])
    assert float(opt.lr) == pytest.approx(0.25)
    assert float(w.detach()) == pytest.approx(-(0.25 + 0.25 / 2))


def test_decay_in_fit_and_reduce_lr_keeps_decay():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1, decay=0.5), loss="mse")
    x = np.ones((4, 3), "float32")
    y = np.zeros((4, 1), "float32")
    model.fit(x, y, batch_size=4, epochs=3, verbose=0)
    # NumPy reference of mse gradient descent with time-based decay
    w = np.ones(3)
    for t in range(3):
        pred = x @ w
        grad = x.T @ (2 * (pred - 0) / 4)
        w = w - 0.1 / (1 + 0.5 * t) * grad
    np.testing.assert_allclose(model.get_weights()[0][:, 0], w, rtol=1e-5)


@pytest.mark.parametrize("bad", [-0.1, "x", True])
def test_bad_decay(bad):
    with pytest.raises(ValueError, match="decay"):
        optimizers.SGD(decay=bad)


def test_keras2_h5_training_config_writes_legacy_optimizer_with_decay():
    from kerasish.saving.legacy_training_config import optimizer_from_keras2, training_config_from_model

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01, decay=0.1), loss="mse")
    opt_config = training_config_from_model(model)["optimizer_config"]
    # tf.keras 2 marks a legacy (decayed) optimizer by the flag's absence; Keras 2.12 refuses it as an argument.
    assert "is_legacy_optimizer" not in opt_config["config"]
    assert opt_config["config"]["decay"] == pytest.approx(0.1)
    assert "weight_decay" not in opt_config["config"]
    again = optimizer_from_keras2(opt_config)
    assert again.decay == pytest.approx(0.1) and float(again.lr) == pytest.approx(0.01)


@pytest.mark.parametrize(("name", "kwargs"), [
    ("Lamb", {}), ("Lamb", {"learning_rate": 0.01, "beta_1": 0.8, "epsilon": 1e-5}),
    ("Lamb", {"weight_decay": 0.1, "clipnorm": 1.0}),
    ("Ftrl", {}), ("Ftrl", {"learning_rate": 0.1, "learning_rate_power": -0.7, "initial_accumulator_value": 0.3}),
    ("Ftrl", {"learning_rate": 0.05, "l1_regularization_strength": 0.01, "l2_regularization_strength": 0.02,
              "l2_shrinkage_regularization_strength": 0.03, "beta": 0.5}),
    ("Ftrl", {"learning_rate": 0.05, "learning_rate_power": 0.0, "use_ema": True}),
    ("Adafactor", {}), ("Adafactor", {"learning_rate": 0.5, "clip_threshold": 0.5, "beta_2_decay": -0.6}),
    ("Adafactor", {"learning_rate": 0.5, "relative_step": False, "epsilon_2": 0.1}),
])
def test_new_optimizers_match_keras(keras_ref, name, kwargs):
    from test_optimizers import _compare

    to, ko = _compare(keras_ref, name, kwargs)
    ours, theirs = to.get_config(), ko.get_config()
    # Keras reads its learning rate back from a float32 variable; names carry session counters
    assert ours.pop("learning_rate") == pytest.approx(theirs.pop("learning_rate"), rel=1e-6)
    ours.pop("name"), theirs.pop("name")
    assert ours == theirs
    assert type(optimizers.get(name.lower())) is getattr(optimizers, name)


def test_ftrl_bad_arguments():
    with pytest.raises(ValueError, match="learning_rate_power"):
        optimizers.Ftrl(learning_rate_power=0.5)
    with pytest.raises(ValueError, match="l1_regularization_strength"):
        optimizers.Ftrl(l1_regularization_strength=-1.0)


def test_adafactor_state_layout_matches_keras(keras_ref):
    from test_optimizers import _compare

    to, ko = _compare(keras_ref, "Adafactor", {"learning_rate": 0.1})
    ours = [tuple(v.shape) for v in to.variables]
    theirs = [tuple(v.shape) for v in ko.variables]
    assert ours == theirs
