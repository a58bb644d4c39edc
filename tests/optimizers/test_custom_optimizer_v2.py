"""tf.keras 2 custom optimizers (`OptimizerV2` subclasses) ported to kerasish.

Two optimizers written the way tf.keras 2 users wrote them were run under
tf-keras 2.21 (tools/fixtures/make_keras2_custom_optimizerv2.py ->
tests/fixtures/keras2_custom_optimizer/). Here the same classes, with the tf
ops turned into torch ops and nothing else changed, subclass
`kerasish.optimizers.legacy.Optimizer` and must step, save and resume as
tf.keras 2 recorded.
"""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest
import torch

import kerasish as keras

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras2_custom_optimizer")


# ---- the recorded classes, ported: tf.cast -> .to, tf.pow/sqrt/square -> torch, var.dtype.base_dtype -> var.dtype
class SimpleMomentum(keras.optimizers.legacy.Optimizer):
    def __init__(self, learning_rate=0.01, momentum=0.9, name="SimpleMomentum", **kwargs):
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("decay", self._initial_decay)
        self._set_hyper("momentum", momentum)

    def _create_slots(self, var_list):
        for var in var_list:
            self.add_slot(var, "pv")

    def _resource_apply_dense(self, grad, var, apply_state=None):
        var_dtype = var.dtype
        lr_t = self._decayed_lr(var_dtype)
        momentum = self._get_hyper("momentum", var_dtype)
        pv = self.get_slot(var, "pv")
        pv_t = pv.assign(momentum * pv - lr_t * grad)
        return var.assign_add(pv_t)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update({
            "learning_rate": self._serialize_hyperparameter("learning_rate"),
            "decay": self._initial_decay,
            "momentum": self._serialize_hyperparameter("momentum"),
        })
        return config


class AdamLike(keras.optimizers.legacy.Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="AdamLike", **kwargs):
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("decay", self._initial_decay)
        self._set_hyper("beta_1", beta_1)
        self._set_hyper("beta_2", beta_2)
        self.epsilon = epsilon

    def _create_slots(self, var_list):
        for var in var_list:
            self.add_slot(var, "m")
        for var in var_list:
            self.add_slot(var, "v")

    def _prepare_local(self, var_device, var_dtype, apply_state):
        super()._prepare_local(var_device, var_dtype, apply_state)
        local_step = (self.iterations + 1).to(var_dtype)
        beta_1_t = self._get_hyper("beta_1", var_dtype)
        beta_2_t = self._get_hyper("beta_2", var_dtype)
        beta_1_power = torch.pow(beta_1_t, local_step)
        beta_2_power = torch.pow(beta_2_t, local_step)
        lr = apply_state[(var_device, var_dtype)]["lr_t"] * (torch.sqrt(1 - beta_2_power) / (1 - beta_1_power))
        apply_state[(var_device, var_dtype)].update(dict(
            lr=lr,
            epsilon=torch.tensor(self.epsilon, dtype=var_dtype),
            beta_1_t=beta_1_t,
            one_minus_beta_1_t=1 - beta_1_t,
            beta_2_t=beta_2_t,
            one_minus_beta_2_t=1 - beta_2_t,
        ))

    def _resource_apply_dense(self, grad, var, apply_state=None):
        var_device, var_dtype = var.device, var.dtype
        coefficients = ((apply_state or {}).get((var_device, var_dtype))
                        or self._fallback_apply_state(var_device, var_dtype))
        m = self.get_slot(var, "m")
        v = self.get_slot(var, "v")
        m.assign(coefficients["beta_1_t"] * m + coefficients["one_minus_beta_1_t"] * grad)
        v.assign(coefficients["beta_2_t"] * v + coefficients["one_minus_beta_2_t"] * torch.square(grad))
        return var.assign_sub(coefficients["lr"] * m / (torch.sqrt(v) + coefficients["epsilon"]))

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update({
            "learning_rate": self._serialize_hyperparameter("learning_rate"),
            "decay": self._initial_decay,
            "beta_1": self._serialize_hyperparameter("beta_1"),
            "beta_2": self._serialize_hyperparameter("beta_2"),
            "epsilon": self.epsilon,
        })
        return config


CASES = {
    "momentum": lambda: SimpleMomentum(learning_rate=0.1, momentum=0.9, decay=0.05),
    "adamlike": lambda: AdamLike(
        learning_rate=keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5),
        decay=0.1, clipnorm=0.5, epsilon=1e-3),
}


@pytest.fixture(scope="module")
def record():
    with open(os.path.join(FIXTURES, "rules.json")) as f:
        meta = json.load(f)
    with np.load(os.path.join(FIXTURES, "rules.npz")) as z:
        arrays = dict(z)
    return meta, arrays


def _variables(arrays):
    kernel = keras.Variable(arrays["init_kernel"], name="kernel")
    bias = keras.Variable(arrays["init_bias"], name="bias")
    return kernel, bias


@pytest.mark.parametrize("case", sorted(CASES))
def test_ported_optimizer_steps_as_tf_keras_2_recorded(record, case):
    meta, arrays = record
    opt = CASES[case]()
    kernel, bias = _variables(arrays)
    for step in range(meta["steps"]):
        if step == 4:  # tf.keras 2's hyperparameter setters: a float replaces even a schedule
            opt.learning_rate = 0.02 if case == "momentum" else 0.01
            if case == "momentum":
                opt.momentum = 0.5
        opt.apply_gradients([(torch.as_tensor(arrays[f"grad_kernel_{step}"]), kernel),
                             (torch.as_tensor(arrays[f"grad_bias_{step}"]), bias)])
        np.testing.assert_allclose(kernel.detach().numpy(), arrays[f"{case}_kernel_{step}"], rtol=1e-5, atol=1e-6,
                                   err_msg=f"step {step}")
        np.testing.assert_allclose(bias.detach().numpy(), arrays[f"{case}_bias_{step}"], rtol=1e-5, atol=1e-6,
                                   err_msg=f"step {step}")
    recorded = meta["cases"][case]
    weights = opt.get_weights()
    assert len(weights) == recorded["n_weights"]
    assert int(weights[0]) == meta["steps"]
    for j, w in enumerate(weights[1:], start=1):
        np.testing.assert_allclose(w, arrays[f"{case}_opt_weight_{j}"], rtol=1e-5, atol=1e-6)
    # the slots in tf.keras 2's creation order, named as there (without the optimizer's name scope)
    assert [w.name for w in opt.weights] == [n.split("/", 1)[1][:-2] for n in recorded["weight_names"]]
    assert opt.variables() == opt.weights  # tf.keras 2 spells it as a method
    config = opt.get_config()
    assert config.keys() == recorded["config"].keys()
    for key, value in recorded["config"].items():
        assert config[key] == pytest.approx(value, rel=1e-7) if not isinstance(value, str) else config[key] == value


def test_hyperparameters_read_and_write_like_tf_keras_2():
    opt = SimpleMomentum(lr=0.3, momentum=0.8, decay=0.1)  # Keras 2's `lr` keyword
    assert float(opt.lr) == pytest.approx(0.3)
    assert float(opt.momentum) == pytest.approx(0.8)
    assert float(opt.decay) == pytest.approx(0.1)
    assert opt._get_hyper("momentum", torch.float64).dtype == torch.float64
    opt.momentum = 0.25
    assert float(opt._get_hyper("momentum")) == pytest.approx(0.25)
    keras.backend.set_value(opt.lr, 0.05)  # Keras 2 callbacks' way
    assert opt.get_config()["learning_rate"] == pytest.approx(0.05)
    assert SimpleMomentum.from_config(opt.get_config()).get_config() == opt.get_config()
    with pytest.raises(TypeError, match="Unexpected keyword argument passed to optimizer: beta"):
        SimpleMomentum(beta=0.1)
    with pytest.raises(ValueError, match="Expected decay >= 0"):
        SimpleMomentum(decay=-1.0)
    with pytest.raises(AttributeError, match="no attribute 'nesterov'"):
        _ = opt.nesterov


def test_a_subclass_without_an_update_says_what_to_implement():
    class NoUpdate(keras.optimizers.legacy.Optimizer):
        def __init__(self, name="NoUpdate", **kwargs):
            super().__init__(name, **kwargs)
            self._set_hyper("learning_rate", 0.1)

    w = keras.Variable(np.ones((2,), "float32"))
    with pytest.raises(NotImplementedError, match="_resource_apply_dense"):
        NoUpdate().apply_gradients([(torch.ones(2), w)])


def _fit_model(arrays, key):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(1)])
    model.set_weights([arrays[f"{key}_{j}"] for j in range(4)])
    return model


def test_fit_save_h5_and_resume_like_tf_keras_2(record, tmp_path):
    meta, arrays = record
    x, y = arrays["fit_x"], arrays["fit_y"]
    model = _fit_model(arrays, "fit_init")
    model.compile(optimizer=AdamLike(0.01, decay=0.01), loss="mse")
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], meta["fit"]["history"], rtol=1e-5)
    for j, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, arrays[f"fit_saved_{j}"], rtol=1e-5, atol=1e-6)

    def resume(path):
        resumed = keras.models.load_model(path, custom_objects={"AdamLike": AdamLike})
        assert isinstance(resumed.optimizer, AdamLike)
        assert int(resumed.optimizer.iterations) == 8
        h = resumed.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        np.testing.assert_allclose(h.history["loss"], meta["fit"]["resumed_history"], rtol=1e-5)
        for j, w in enumerate(resumed.get_weights()):
            np.testing.assert_allclose(w, arrays[f"fit_resumed_{j}"], rtol=1e-5, atol=1e-6)

    # tf.keras 2's own file, with its optimizer state (a fresh AdamLike would step differently)
    resume(os.path.join(FIXTURES, "fit.h5"))
    # kerasish's re-save, in the same layout (tf.keras 2 reads it back by position)
    path = str(tmp_path / "resaved.h5")
    model.save(path)
    import h5py

    with h5py.File(path) as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f["optimizer_weights"].attrs["weight_names"]]
    assert len(names) == len(meta["fit"]["optimizer_weight_names"])
    assert names[0] == "iter:0" and [n.rsplit("/", 1)[-1] for n in names] == [
        n.rsplit("/", 1)[-1] for n in meta["fit"]["optimizer_weight_names"]]
    resume(path)
    # and the Keras 3 archive
    path = str(tmp_path / "resaved.keras")
    model.save(path)
    resume(path)


def test_state_follows_torch_habits(record):
    _, arrays = record
    model = _fit_model(arrays, "fit_init")
    opt = AdamLike(0.01)
    x = torch.as_tensor(arrays["fit_x"])
    y = torch.as_tensor(arrays["fit_y"])
    opt.build(model.trainable_weights)
    for _ in range(3):  # a torch loop: backward, step, zero_grad
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert int(opt.iterations) == 3
    # state_dict round trip into a fresh optimizer gives the same next step
    twin_model = _fit_model(arrays, "fit_init")
    twin_model.set_weights(model.get_weights())
    twin = AdamLike(0.01).build(twin_model.trainable_weights)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)  # (torch's load_state_dict shares the tensors of a live state dict)
    buffer.seek(0)
    twin.load_state_dict(torch.load(buffer))
    assert all(np.array_equal(a, b) for a, b in zip(twin.get_weights(), opt.get_weights()))
    copied = pickle.loads(pickle.dumps((model, opt)))
    for m, o in ((model, opt), (twin_model, twin), copied):
        loss = torch.mean((m(x) - y) ** 2)
        loss.backward()
        o.step()
    for w1, w2, w3 in zip(model.get_weights(), twin_model.get_weights(), copied[0].get_weights()):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(w1, w3)
    # float64 model: the slots follow the weights' dtype, and so does the update
    model.double()
    loss = torch.mean((model(x.double()) - y.double()) ** 2)
    loss.backward()
    opt.step()
    assert all(w.dtype == torch.float64 for w in opt.weights[1:])


def test_minimize_with_a_callable_loss():
    w = keras.Variable(np.array([1.0, -2.0], "float32"))
    opt = SimpleMomentum(learning_rate=0.1, momentum=0.0)
    opt.minimize(lambda: torch.sum(w ** 2), [w])
    np.testing.assert_allclose(w.detach().numpy(), [0.8, -1.6], rtol=1e-6)


def test_builtin_legacy_optimizers_variables_is_callable_too():
    w = keras.Variable(np.ones((2,), "float32"))
    opt = keras.optimizers.legacy.Adam(0.1)
    opt.apply_gradients([(torch.ones(2), w)])
    assert opt.variables() == opt.variables and len(opt.variables) > 1  # tf.keras 2: a method; Keras 3: a property


def test_fit_jit_compile_runs_the_update_between_the_compiled_graphs(record):
    """`fit(jit_compile=True)`: the model's step is compiled, the subclass's Python update runs eagerly
    (dynamo cannot trace it) and gives tf.keras 2's numbers."""
    meta, arrays = record
    model = _fit_model(arrays, "fit_init")
    model.compile(optimizer=AdamLike(0.01, decay=0.01), loss="mse", jit_compile=True)
    history = model.fit(arrays["fit_x"], arrays["fit_y"], batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], meta["fit"]["history"], rtol=1e-5)
    for j, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, arrays[f"fit_saved_{j}"], rtol=1e-5, atol=1e-6)
