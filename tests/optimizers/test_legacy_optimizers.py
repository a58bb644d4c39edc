"""`keras.optimizers.legacy` against recorded tf.keras 2 legacy optimizers.

tests/fixtures/keras2_optimizers/legacy_rules.{npz,json} hold what
`tf_keras.optimizers.legacy.<Optimizer>(**kwargs)` (tf-keras 2.21) did with a
fixed sequence of gradients: both variables after every step, its
`get_weights()` (names and values) after the last one and its `get_config()`
(tools/fixtures/make_keras2_legacy_optimizers.py). kerasish's legacy
optimizers apply the same gradients to the same starting values.
"""

import json
import pathlib
import warnings

import numpy as np
import pytest
import torch

import kerasish as keras

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "keras2_optimizers"
META = json.loads((FIXTURES / "legacy_rules.json").read_text())
ARRAYS = dict(np.load(FIXTURES / "legacy_rules.npz"))
CASES = sorted(META["cases"])
# tf-keras's legacy slot names -> kerasish's (Keras 3's) slot names, per class
SLOTS = {
    "SGD": {"momentum": "momentum"},
    "Adam": {"m": "momentum", "v": "velocity", "vhat": "velocity_hat"},
    "RMSprop": {"rms": "velocity", "momentum": "momentum", "mg": "average_gradient"},
    "Adagrad": {"accumulator": "accumulator"},
    "Adadelta": {"accum_grad": "accumulated_grad", "accum_var": "accumulated_delta_var"},
    "Adamax": {"m": "momentum", "v": "norm"},
    "Nadam": {"m": "momentum", "v": "velocity"},
    "Ftrl": {"accumulator": "accumulator", "linear": "linear"},
}
# the legacy rules that differ from Keras 3's, recorded where the difference shows (an epsilon of 1e-7
# outside or inside the square root moves float32 weights by less than their rounding): the Keras 3
# optimizer must NOT follow these recordings
DIFFERENT_FROM_KERAS3 = {"rmsprop_epsilon", "rmsprop_centered", "adagrad_zero_start", "nadam", "nadam_schedule_decay",
                         "nadam_decay_is_overridden"}


def make(case, module):
    spec = META["cases"][case]
    kwargs = dict(spec["kwargs"])
    if isinstance(kwargs.get("learning_rate"), dict):
        kwargs["learning_rate"] = keras.optimizers.schedules.deserialize(kwargs["learning_rate"])
    if module is keras.optimizers:  # Keras 3's arguments: no `schedule_decay`; `decay` stays Keras 2's
        kwargs.pop("schedule_decay", None)
        if spec["class_name"] == "Nadam":
            kwargs.pop("decay", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "The `lr` argument is deprecated"
        return getattr(module, spec["class_name"])(**kwargs)


def run(opt, case):
    w, b = keras.Variable(ARRAYS["w0"], name="w"), keras.Variable(ARRAYS["b0"], name="b")
    steps = []
    for t in range(META["steps"]):
        opt.apply_gradients([(torch.tensor(ARRAYS["g1"][t]), w), (torch.tensor(ARRAYS["g2"][t]), b)])
        steps.append((w.numpy().copy(), b.numpy().copy()))
    return w, b, steps


@pytest.mark.parametrize("case", CASES)
def test_legacy_optimizer_steps_like_tf_keras(case):
    opt = make(case, keras.optimizers.legacy)
    w, b, steps = run(opt, case)
    for t, (got_w, got_b) in enumerate(steps):
        np.testing.assert_allclose(got_w, ARRAYS[f"{case}/w"][t], rtol=1e-5, atol=1e-6, err_msg=f"{case} step {t}")
        np.testing.assert_allclose(got_b, ARRAYS[f"{case}/b"][t], rtol=1e-5, atol=1e-6, err_msg=f"{case} step {t}")
    # the optimizer's state: iterations, then each slot, as tf-keras's get_weights named them
    spec = META["cases"][case]
    slots = SLOTS[spec["class_name"]]
    for i, name in enumerate(spec["weight_names"]):
        recorded = ARRAYS[f"{case}/opt{i}"]
        parts = name.split(":")[0].split("/")
        if parts[-1] == "iter":
            assert int(opt.iterations) == int(recorded) == META["steps"]
        elif parts[-1] == "momentum_cache":
            np.testing.assert_allclose(float(opt._u_product), recorded, rtol=1e-6)
        else:
            variable = {"w": w, "b": b}[parts[-2]]
            np.testing.assert_allclose(opt.state[variable][slots[parts[-1]]].numpy(), recorded, rtol=1e-5,
                                       atol=1e-6, err_msg=name)


@pytest.mark.parametrize("case", CASES)
def test_legacy_get_weights_and_set_weights_follow_tf_keras_order(case):
    """tf.keras 2 programs save an optimizer's state with `optimizer.get_weights()` and restore it with
    `set_weights` (after `_create_all_weights`): the list is tf.keras 2's `weights`, in its order."""
    opt = make(case, keras.optimizers.legacy)
    w, b, _ = run(opt, case)
    spec = META["cases"][case]
    values = opt.get_weights()
    assert len(values) == len(spec["weight_names"])
    assert [v.name for v in opt.weights] == [n.split("/", 1)[1].split(":")[0] for n in spec["weight_names"]]
    for i, name in enumerate(spec["weight_names"]):
        np.testing.assert_allclose(values[i], ARRAYS[f"{case}/opt{i}"], rtol=1e-5, atol=1e-6, err_msg=name)
    # a fresh optimizer given that list continues as the first one does
    twin = make(case, keras.optimizers.legacy)
    w2 = keras.Variable(w.numpy().copy(), name="w")
    b2 = keras.Variable(b.numpy().copy(), name="b")
    assert twin.weights == []
    twin._create_all_weights([w2, b2])
    twin.set_weights(values)
    for o, (x, y) in ((opt, (w, b)), (twin, (w2, b2))):
        o.apply_gradients([(torch.tensor(ARRAYS["g1"][1]), x), (torch.tensor(ARRAYS["g2"][1]), y)])
    np.testing.assert_array_equal(w2.numpy(), w.numpy())
    np.testing.assert_array_equal(b2.numpy(), b.numpy())
    with pytest.raises(ValueError, match="was expecting"):
        twin.set_weights(values[:-1])


@pytest.mark.parametrize("case", CASES)
def test_legacy_optimizer_config_is_tf_keras(case):
    spec = META["cases"][case]
    opt = make(case, keras.optimizers.legacy)
    config = opt.get_config()
    recorded = spec["config"]
    assert sorted(config) == sorted(recorded)
    for key, value in recorded.items():
        if isinstance(value, float):  # tf-keras serializes float32 hyperparameters
            assert config[key] == pytest.approx(value, rel=1e-6), key
        elif isinstance(value, dict):
            assert config[key]["class_name"] == value["class_name"]
            # (a schedule's config is Keras 3's: its `name` defaults to the class name, tf-keras's to None)
            assert {**config[key]["config"], "name": None} == pytest.approx(value["config"])
        else:
            assert config[key] == value, key
    # and back: from_config makes the same optimizer
    again = type(opt).from_config(config)
    assert again.get_config() == config
    assert keras.optimizers.legacy.ALL_OBJECTS_DICT[spec["class_name"]] is type(opt)


@pytest.mark.parametrize("case", sorted(DIFFERENT_FROM_KERAS3))
def test_the_recordings_tell_legacy_from_keras3_rules(case):
    """The cases whose legacy rule differs: Keras 3's optimizer does not follow them (so the test above
    checks the legacy rule, not a rule both share)."""
    _, _, steps = run(make(case, keras.optimizers), case)
    assert not np.allclose(steps[-1][0], ARRAYS[f"{case}/w"][-1], rtol=1e-5, atol=1e-6)


def test_legacy_arguments_and_errors_are_tf_keras():
    legacy = keras.optimizers.legacy
    with pytest.raises(TypeError, match="Unexpected keyword argument passed to optimizer: weight_decay"):
        legacy.Adam(weight_decay=0.1)
    with pytest.raises(TypeError, match="Unexpected keyword argument passed to optimizer: use_ema"):
        legacy.SGD(use_ema=True)
    with pytest.raises(ValueError, match="Expected clipnorm >= 0"):
        legacy.RMSprop(clipnorm=-1.0)
    with pytest.raises(ValueError, match="Cannot accept both `clipnorm` and `global_clipnorm`"):
        legacy.Adam(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="does not support"):
        legacy.Nadam(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5))
    with pytest.raises(ValueError, match="initial_accumulator_value must be non-negative"):
        legacy.Adagrad(initial_accumulator_value=-0.1)
    # names are the class names (tf.keras 2 numbered nothing); defaults are tf.keras 2's
    assert [legacy.SGD().name, legacy.Adam().name, legacy.RMSprop().name] == ["SGD", "Adam", "RMSprop"]
    assert float(legacy.SGD().learning_rate) == pytest.approx(0.01)
    assert legacy.Nadam(decay=0.5).get_config()["decay"] == 0.004  # tf.keras 2 overwrote `decay`
    with pytest.warns(UserWarning, match="`lr` argument is deprecated"):
        assert float(legacy.Adam(lr=0.5).learning_rate) == pytest.approx(0.5)


def test_legacy_optimizer_trains_a_model_in_fit_and_saves(tmp_path):
    """A Keras 2 program's `compile(optimizer=keras.optimizers.legacy.RMSprop(...))`: fit takes the legacy
    rule (equal to a hand-written NumPy loop of it), and `.keras` / `.h5` files keep the legacy optimizer."""
    rng = np.random.RandomState(0)
    x, y = rng.randn(16, 3).astype("float32"), rng.randn(16, 1).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    kernel, bias = (w.copy() for w in model.get_weights())
    model.compile(optimizer=keras.optimizers.legacy.RMSprop(learning_rate=0.01, decay=0.1), loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    # NumPy: mse gradient of a linear model, the legacy rule `lr_t * g / (sqrt(v) + eps)`, lr_t = lr / (1 + 0.1 t)
    v_k, v_b = np.zeros_like(kernel, np.float64), np.zeros_like(bias, np.float64)
    kernel, bias = kernel.astype(np.float64), bias.astype(np.float64)
    t = 0
    for _ in range(2):
        for start in range(0, 16, 8):
            xb, yb = x[start:start + 8].astype(np.float64), y[start:start + 8].astype(np.float64)
            err = xb @ kernel + bias - yb
            g_k, g_b = 2 * xb.T @ err / err.size, 2 * err.sum(0) / err.size
            lr = 0.01 / (1 + 0.1 * t)
            v_k, v_b = 0.9 * v_k + 0.1 * g_k**2, 0.9 * v_b + 0.1 * g_b**2
            kernel -= lr * g_k / (np.sqrt(v_k) + 1e-7)
            bias -= lr * g_b / (np.sqrt(v_b) + 1e-7)
            t += 1
    np.testing.assert_allclose(model.get_weights()[0], kernel, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], bias, rtol=1e-4, atol=1e-6)
    for name in ("m.keras", "m.h5"):  # (the files' round trips for every class: the test below)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "update rule differs" warning: the legacy class is rebuilt
            model.save(tmp_path / name)
            loaded = keras.models.load_model(tmp_path / name)
        assert type(loaded.optimizer) is keras.optimizers.legacy.RMSprop, name
        got, want = loaded.optimizer.get_config(), model.optimizer.get_config()
        assert sorted(got) == sorted(want), name
        for key, value in want.items():  # (the learning rate comes back through a float32 variable)
            assert got[key] == (pytest.approx(value, rel=1e-7) if isinstance(value, float) else value), (name, key)
        assert int(loaded.optimizer.iterations) == 4
        for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("make_optimizer", [
    lambda: keras.optimizers.legacy.Nadam(learning_rate=0.01),
    lambda: keras.optimizers.legacy.Ftrl(learning_rate=0.1, l1_regularization_strength=0.01),
    lambda: keras.optimizers.legacy.Adagrad(learning_rate=0.1),
    lambda: keras.optimizers.legacy.Adam(learning_rate=0.01, amsgrad=True),
], ids=["nadam", "ftrl", "adagrad", "adam_amsgrad"])
@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_legacy_optimizer_state_survives_saving_and_resumes(tmp_path, make_optimizer, suffix):
    """Saved mid-training and reloaded, a legacy optimizer (Nadam's momentum cache, Ftrl's interleaved
    legacy slots in `.h5`) resumes exactly where the original continues."""
    rng = np.random.RandomState(1)
    x, y = rng.randn(16, 3).astype("float32"), rng.randn(16, 2).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)])
    model.compile(optimizer=make_optimizer(), loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save(tmp_path / f"m{suffix}")
        loaded = keras.models.load_model(tmp_path / f"m{suffix}")
    assert type(loaded.optimizer) is type(model.optimizer)
    if isinstance(model.optimizer, keras.optimizers.legacy.Nadam):
        assert float(loaded.optimizer._u_product) == float(model.optimizer._u_product) != 1.0
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
