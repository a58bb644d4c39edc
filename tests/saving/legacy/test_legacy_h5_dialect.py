"""The Keras 2 config dialect and the names Keras 2 and Keras 3 define
differently, including a file in multi-backend Keras 2.2.4's layout.

Multi-backend Keras 2.2 needs Python <= 3.7 and TensorFlow 1.x, which cannot
be installed here, so `_write_keras224_file` writes that layout by hand with
h5py, following Keras 2.2.4's `saving.save_model` exactly: root attributes
`keras_version`, `backend`, `model_config` (a Sequential without InputLayer,
`batch_input_shape` on its first layer), `training_config` (optimizer config
with `lr` / `decay`, no `epsilon`); `model_weights` without the InputLayer;
`optimizer_weights` = `[iterations] + ms + vs + vhats` (the `vhat`s are
`(1,)` placeholders when `amsgrad=False`).
"""

import json
import warnings

import h5py
import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.saving import legacy_config
from kerasish.saving import legacy_training_config
from legacy_fixtures import path

L = keras.layers
RNG = np.random.default_rng(3)
W1 = RNG.normal(size=(4, 3)).astype("float32")
B1 = RNG.normal(size=(3,)).astype("float32")
W2 = RNG.normal(size=(3, 2)).astype("float32")
B2 = RNG.normal(size=(2,)).astype("float32")
PARAMS = [W1, B1, W2, B2]
M = [RNG.normal(scale=0.1, size=p.shape).astype("float32") for p in PARAMS]
V = [np.abs(RNG.normal(scale=0.1, size=p.shape)).astype("float32") for p in PARAMS]
ITERATIONS = 5


def _dense(name, units, activation, first=False):
    config = {"name": name, "trainable": True, "units": units, "activation": activation, "use_bias": True,
              "kernel_initializer": {"class_name": "VarianceScaling",
                                     "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform",
                                                "seed": None}},
              "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
              "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
              "bias_constraint": None}
    if first:
        config.update(batch_input_shape=[None, 4], dtype="float32")
    return {"class_name": "Dense", "config": config}


def _write_keras224_file(target):
    model_config = {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": [
        _dense("dense_1", 3, "hard_sigmoid", first=True), _dense("dense_2", 2, "linear")]}}
    training_config = {"optimizer_config": {"class_name": "Adam", "config": {
        "lr": 0.0010000000474974513, "beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033, "decay": 0.0,
        "amsgrad": False}}, "loss": "mean_squared_error", "metrics": [], "sample_weight_mode": None,
        "loss_weights": None}
    with h5py.File(target, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(model_config).encode()
        f.attrs["training_config"] = json.dumps(training_config).encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"dense_1", b"dense_2"]
        g.attrs["keras_version"] = b"2.2.4"
        g.attrs["backend"] = b"tensorflow"
        for layer, (k, b) in (("dense_1", (W1, B1)), ("dense_2", (W2, B2))):
            lg = g.create_group(layer)
            lg.attrs["weight_names"] = [f"{layer}/kernel:0".encode(), f"{layer}/bias:0".encode()]
            lg[f"{layer}/kernel:0"] = k
            lg[f"{layer}/bias:0"] = b
        og = f.create_group("optimizer_weights")
        names, values = ["Adam/iterations:0"], [np.array(ITERATIONS, dtype="int64")]
        for i, arr in enumerate(M + V + [np.zeros((1,), "float32")] * 4):
            names.append(f"training/Adam/Variable{'' if i == 0 else f'_{i}'}:0")
            values.append(arr)
        og.attrs["weight_names"] = [n.encode() for n in names]
        for n, v in zip(names, values):
            og[n] = v


def _keras2_hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def test_keras224_file_predicts_with_keras2_hard_sigmoid(tmp_path):
    target = tmp_path / "k224.h5"
    _write_keras224_file(target)
    model = keras.models.load_model(target)
    x = RNG.normal(size=(5, 4)).astype("float32") * 4
    expected = _keras2_hard_sigmoid(x @ W1 + B1) @ W2 + B2
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    # Keras 3's hard_sigmoid (slope 1/6) would give something else on these inputs
    keras3 = np.clip((x @ W1 + B1) / 6 + 0.5, 0, 1) @ W2 + B2
    assert np.abs(keras3 - expected).max() > 1e-2


def test_keras224_file_next_adam_step_equals_keras2_maths(tmp_path):
    target = tmp_path / "k224.h5"
    _write_keras224_file(target)
    model = keras.models.load_model(target)
    assert int(model.optimizer.iterations) == ITERATIONS
    x = RNG.normal(size=(6, 4)).astype("float32")
    y = RNG.normal(size=(6, 2)).astype("float32")
    model.train_on_batch(x, y)
    # reference: gradients of Keras 2's forward pass (torch autograd on the formula), Keras 2.2.4's Adam update
    ps = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in PARAMS]
    h = torch.clamp(0.2 * (torch.tensor(x, dtype=torch.float64) @ ps[0] + ps[1]) + 0.5, 0, 1)
    loss = torch.mean((h @ ps[2] + ps[3] - torch.tensor(y, dtype=torch.float64)) ** 2)
    grads = torch.autograd.grad(loss, ps)
    t = ITERATIONS + 1
    lr, b1, b2, eps = 0.001, 0.9, 0.999, 1e-7
    lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    for got, p, g, m, v in zip(model.get_weights(), PARAMS, grads, M, V):
        g = g.numpy()
        m_t = b1 * m + (1 - b1) * g
        v_t = b2 * v + (1 - b2) * g * g
        np.testing.assert_allclose(got, p - lr_t * m_t / (np.sqrt(v_t) + eps), rtol=1e-5, atol=1e-6)


def test_keras2_hard_sigmoid_is_written_back_as_keras2_name(tmp_path):
    model = keras.models.load_model(path("mlp.h5"), compile=False)
    assert model.get_layer("dense_1").get_config()["activation"] != "hard_sigmoid"  # not Keras 3's
    out = tmp_path / "again.h5"
    model.save(out)
    with h5py.File(out, "r") as f:
        config = json.loads(f.attrs["model_config"])
    assert config["config"]["layers"][2]["config"]["activation"] == "hard_sigmoid"


def test_keras3_hard_sigmoid_refuses_keras2_file(tmp_path):
    model = keras.Sequential([keras.Input((3,)), L.Dense(2, activation="hard_sigmoid")])
    with pytest.raises(ValueError, match=r"hard_sigmoid.*Keras 2 defines differently.*\.keras"):
        model.save(tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_unknown_tf_op_names_the_op():
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3], "name": "in"}, "name": "in",
         "inbound_nodes": []},
        {"class_name": "TFOpLambda", "config": {"name": "tf.signal.rfft", "function": "signal.rfft"},
         "name": "tf.signal.rfft", "inbound_nodes": [["in", 0, 0, {}]]}],
        "input_layers": [["in", 0, 0]], "output_layers": [["tf.signal.rfft", 0, 0]]}}
    with pytest.raises(ValueError, match=r"tf\.signal\.rfft.*no torch mapping"):
        legacy_config.upgrade_model_config(config)


@pytest.mark.parametrize("key,value", [("time_major", True), ("virtual_batch_size", 4)])
def test_unsupported_keras2_options_name_the_layer(key, value):
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "LSTM", "config": {"name": "my_rnn", "units": 2, "batch_input_shape": [None, 3, 2],
                                          key: value}}]}}
    with pytest.raises(ValueError, match=rf"my_rnn.*{key}={value}"):
        legacy_config.upgrade_model_config(config)


def _keras2_helper(t):
    return t * 10.0


def test_keras2_lambda_bytecode_resolves_globals_from_its_module():
    """Keras 2 writes a Lambda's `module` beside its bytecode and, on loading, gives the bytecode that
    module's globals when it is imported (a script that saves and reloads its own model): kerasish
    keeps the key through the legacy upgrade and does the same (only with `safe_mode=False`)."""
    import base64
    import marshal
    import sys

    from kerasish.saving.saving_lib import model_from_config

    def fn(t):
        return _keras2_helper(t) + 1.0

    code = base64.encodebytes(marshal.dumps(fn.__code__)).decode("ascii")
    assert __name__ in sys.modules
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 2], "name": "in"}},
        {"class_name": "Lambda", "config": {"name": "lam", "function": [code, None, None],
                                            "function_type": "lambda", "module": __name__,
                                            "output_shape": None, "arguments": {}}}]}}
    model = model_from_config(legacy_config.upgrade_model_config(config), compile=False, safe_mode=False)
    np.testing.assert_allclose(model(np.array([[1.0, 2.0]], "float32")).numpy(), [[11.0, 21.0]])
    config["config"]["layers"][1]["config"]["module"] = "a_module_not_imported"
    with pytest.raises(NameError, match="_keras2_helper"):  # (raised while building the model)
        model_from_config(legacy_config.upgrade_model_config(config), compile=False, safe_mode=False)


def _abs_cubed(y_true, y_pred):
    return keras.ops.mean(keras.ops.abs(y_pred - y_true) ** 3, axis=-1)


def test_keras2_training_config_custom_loss_and_metric_functions():
    """tf.keras 2 saves a custom loss function by name and a custom metric function as a
    `MeanMetricWrapper` (`fn`, `name`): with the functions in `custom_objects=` or a
    `CustomObjectScope` the model loads compiled with them, as in tf.keras 2 (the port in
    tests/ports/test_port_keras2_programs_3.py loads a real file). NumPy reference for the logs."""
    training_config = {
        "loss": "_abs_cubed", "loss_weights": None, "weighted_metrics": None,
        "metrics": [[{"class_name": "MeanMetricWrapper", "config": {"name": "cubed", "dtype": "float32",
                                                                   "fn": "_abs_cubed"}},
                     {"class_name": "MeanMetricWrapper", "config": {"name": "mae", "dtype": "float32",
                                                                   "fn": "mean_absolute_error"}}]],
        "optimizer_config": {"class_name": "Custom>SGD", "config": {"name": "SGD", "learning_rate": 0.1,
                                                                    "is_legacy_optimizer": False}}}
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 3)).astype("float32"), rng.normal(size=(6, 2)).astype("float32")
    for how in ("custom_objects", "scope"):
        if how == "custom_objects":
            args = legacy_training_config.compile_args_from_training_config(
                training_config, {"_abs_cubed": _abs_cubed})
        else:
            with keras.saving.CustomObjectScope({"_abs_cubed": _abs_cubed}):
                args = legacy_training_config.compile_args_from_training_config(training_config)
        assert args["loss"] is _abs_cubed
        model = keras.Sequential([keras.Input((3,)), L.Dense(2)])
        model.compile(**args)
        kernel, bias = model.get_weights()
        err = np.abs(x @ kernel + bias - y)
        logs = model.evaluate(x, y, batch_size=6, verbose=0, return_dict=True)
        np.testing.assert_allclose([logs["loss"], logs["cubed"], logs["mae"]],
                                   [(err ** 3).mean(), (err ** 3).mean(), err.mean()], rtol=1e-5)
    # without them the name is looked up among the built-ins, and fails there
    with pytest.raises(ValueError, match="_abs_cubed"):
        keras.Sequential([keras.Input((3,)), L.Dense(2)]).compile(
            **legacy_training_config.compile_args_from_training_config(training_config))


def test_keras2_training_config_custom_loss_and_metric_classes():
    """A custom `Loss` / `Metric` subclass in a tf.keras 2 training config (`{"class_name", "config"}`,
    the loss with Keras 2's `reduction: "auto"`) is rebuilt from `custom_objects` with its config."""

    class ScaledMSE(keras.losses.Loss):
        def __init__(self, scale=1.0, **kwargs):
            super().__init__(**kwargs)
            self.scale = scale

        def call(self, y_true, y_pred):
            return self.scale * keras.ops.mean((y_pred - y_true) ** 2, axis=-1)

        def get_config(self):
            return {**super().get_config(), "scale": self.scale}

    class MaxAbs(keras.metrics.Metric):
        def __init__(self, name="max_abs", **kwargs):
            super().__init__(name=name, **kwargs)
            self.value = self.add_variable(shape=(), initializer="zeros", name="value")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.value.assign(keras.ops.maximum(self.value, keras.ops.max(keras.ops.abs(y_pred - y_true))))

        def result(self):
            return self.value

    training_config = {
        "loss": {"class_name": "ScaledMSE", "config": {"reduction": "auto", "name": "scaled_mse", "scale": 3.0}},
        "metrics": [[{"class_name": "MaxAbs", "config": {"name": "worst", "dtype": "float32"}}]],
        "optimizer_config": {"class_name": "SGD", "config": {"name": "SGD", "learning_rate": 0.1}}}
    args = legacy_training_config.compile_args_from_training_config(
        training_config, {"ScaledMSE": ScaledMSE, "MaxAbs": MaxAbs})
    model = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    model.compile(**args)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 3)).astype("float32"), rng.normal(size=(6, 2)).astype("float32")
    kernel, bias = model.get_weights()
    err = np.abs(x @ kernel + bias - y)
    logs = model.evaluate(x, y, batch_size=6, verbose=0, return_dict=True)
    np.testing.assert_allclose([logs["loss"], logs["worst"]], [3.0 * (err ** 2).mean(), err.max()], rtol=1e-5)


def test_tf_keras_sgd_without_momentum_keeps_its_step_count(tmp_path):
    """tf.keras 2.11+'s `SGD(momentum=0)` saves a momentum slot `m` per weight that it never uses;
    kerasish's (and Keras 3's) has no slot. Loading keeps the step count (it warned and started
    fresh at 0), and kerasish writes the unused slots back as zeros, so tf.keras restores the count
    (tests/fixtures/keras2_programs_3/metadata.json, `stateful_h5`)."""
    import os
    import shutil
    import warnings

    src = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "keras2_programs_3", "stateful_h5.h5")
    shutil.copy(src, tmp_path / "in.h5")
    with h5py.File(tmp_path / "in.h5", "r") as f:
        tf_names = [n.decode() if isinstance(n, bytes) else n for n in f["optimizer_weights"].attrs["weight_names"]]
        tf_shapes = [f["optimizer_weights"][n].shape for n in tf_names]
    assert tf_names[0] == "iteration:0" and all("/m/" in n for n in tf_names[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = keras.models.load_model(str(tmp_path / "in.h5"))
    assert int(model.optimizer.iterations) == 6 and model.optimizer.momentum == 0
    model.save(str(tmp_path / "out.h5"))
    with h5py.File(tmp_path / "out.h5", "r") as f:
        group = f["optimizer_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
        assert [group[n].shape for n in names] == tf_shapes
        assert int(group[names[0]][()]) == 6 and all(not np.any(group[n][()]) for n in names[1:])
    assert int(keras.models.load_model(str(tmp_path / "out.h5")).optimizer.iterations) == 6


def test_keras22_list_config_and_policy_dicts():
    config = {"class_name": "Sequential", "config": [
        {"class_name": "Dense", "config": {"name": "d", "units": 2, "batch_input_shape": [None, 3],
                                           "dtype": {"class_name": "Policy", "config": {"name": "float32"}}}}]}
    from kerasish.models.functional_config import deserialize_layer

    model = deserialize_layer(legacy_config.upgrade_model_config(config))
    assert model.built and tuple(model.input_shape) == (None, 3)
    assert model.layers[-1].dtype_policy.name == "float32"


def test_savedmodel_idiom_says_what_to_do(tmp_path):
    model = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    with pytest.raises(ValueError, match=r"SavedModel.*needs TensorFlow.*\.keras.*\.h5"):
        model.save(tmp_path / "my_model")
    saved = tmp_path / "exported"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    with pytest.raises(ValueError, match=r"SavedModel directory.*save\('model.h5'\)"):
        keras.models.load_model(saved)


def test_keras2_hard_sigmoid_survives_a_keras_archive_in_a_fresh_process(tmp_path):
    import os
    import subprocess
    import sys

    model = keras.models.load_model(path("mlp.h5"), compile=False)
    out = tmp_path / "m.keras"
    model.save(out)
    code = ("import kerasish as k, torch; m = k.models.load_model(r'%s'); "
            "print(float(m.get_layer('dense_1').activation(torch.tensor(2.0))))" % out)
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo,
                          env={**os.environ, "PYTHONPATH": repo}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip().splitlines()[-1]) == pytest.approx(0.9)  # 0.2 * 2 + 0.5 (Keras 3: 0.8333)


def test_legacy_rmsprop_is_rebuilt_as_the_legacy_optimizer():
    """A Keras 2 config's legacy RMSprop (its epsilon outside the square root) is
    `keras.optimizers.legacy.RMSprop`, with no warning (tests/optimizers/test_legacy_optimizers.py checks
    its steps against tf-keras)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt = legacy_training_config.optimizer_from_keras2(
            {"class_name": "RMSprop", "config": {"lr": 0.01, "rho": 0.9, "decay": 0.0, "epsilon": 1e-7}})
    assert type(opt) is keras.optimizers.legacy.RMSprop
    assert float(opt.learning_rate) == pytest.approx(0.01)
    assert opt.get_config()["name"] == "RMSprop"


def test_keras22_functional_model_class_and_shared_layer():
    """Keras 2.2's functional config: class `Model`, `[[name, node, tensor, kwargs]]` nodes, a shared layer."""
    def layer(cls, name, nodes, **config):
        return {"class_name": cls, "name": name, "config": {"name": name, **config}, "inbound_nodes": nodes}

    config = {"class_name": "Model", "config": {"name": "model_1", "layers": [
        layer("InputLayer", "a", [], batch_input_shape=[None, 3], dtype="float32", sparse=False),
        layer("InputLayer", "b", [], batch_input_shape=[None, 3], dtype="float32", sparse=False),
        layer("Dense", "shared", [[["a", 0, 0, {}]], [["b", 0, 0, {}]]], units=2, activation="hard_sigmoid"),
        layer("Add", "add", [[["shared", 0, 0, {}], ["shared", 1, 0, {}]]]),
    ], "input_layers": [["a", 0, 0], ["b", 0, 0]], "output_layers": [["add", 0, 0]]}}
    from kerasish.models.functional_config import deserialize_layer

    model = deserialize_layer(legacy_config.upgrade_model_config(config, "2.2.4"))
    kernel = np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.0]], "float32")
    model.get_layer("shared").set_weights([kernel, np.zeros(2, "float32")])
    xa, xb = np.ones((1, 3), "float32"), np.full((1, 3), 2.0, "float32")
    expected = _keras2_hard_sigmoid(xa @ kernel) + _keras2_hard_sigmoid(xb @ kernel)
    np.testing.assert_allclose(model.predict([xa, xb], verbose=0), expected, rtol=1e-6, atol=1e-6)


class _Scaled(keras.layers.Layer):
    """A library layer whose own arguments share names with Keras 2 arguments kerasish drops from
    Keras's own layers (`implementation`, `input_length`, `sparse`)."""

    def __init__(self, implementation=1, input_length=None, sparse=False, **kwargs):
        super().__init__(**kwargs)
        self.implementation, self.input_length, self.sparse = implementation, input_length, sparse

    def call(self, x):
        return x * (10.0 if self.implementation == 2 else 1.0) + (1.0 if self.sparse else 0.0)

    def get_config(self):
        return {**super().get_config(), "implementation": self.implementation,
                "input_length": self.input_length, "sparse": self.sparse}


def test_user_layer_arguments_named_like_dropped_keras2_ones_are_kept(tmp_path):
    """The Keras 2 dialect drops `implementation` / `input_length` / `sparse` from Keras's own
    layers; a user's class that names them in `__init__` keeps them (dropping them rebuilt the
    layer with its defaults: silently different outputs)."""
    inp = L.Input((3,))
    model = keras.Model(inp, _Scaled(implementation=2, input_length=3, sparse=True, name="scaled")(inp))
    path_ = str(tmp_path / "m.h5")
    model.save(path_)
    loaded = keras.models.load_model(path_, custom_objects={"_Scaled": _Scaled})
    layer = loaded.get_layer("scaled")
    assert (layer.implementation, layer.input_length, layer.sparse) == (2, 3, True)
    x = torch.ones(2, 3)
    torch.testing.assert_close(loaded(x), model(x))


class _LibraryNorm(keras.layers.Layer):
    """A layer library's own normalization class that happens to be called `BatchNormalization` and
    keeps `axis` as a list (tf.keras 2 files carry only the class name, not its module)."""

    def __init__(self, axis=(-1,), **kwargs):
        super().__init__(**kwargs)
        self.axis = list(axis)

    def call(self, x):
        return x - x.mean(dim=self.axis, keepdim=True)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def test_user_class_named_like_a_keras_class_keeps_its_config(tmp_path):
    """Keras's class rules (BatchNormalization's one-element `axis` list -> int) are for Keras's own
    classes: a custom class of that name given in `custom_objects` gets its config as written."""
    inp = L.Input((3, 4))
    model = keras.Model(inp, _LibraryNorm(axis=[-1], name="norm")(inp))
    path_ = str(tmp_path / "m.h5")
    model.save(path_)
    loaded = keras.models.load_model(path_, custom_objects={"_LibraryNorm": _LibraryNorm,
                                                            "BatchNormalization": _LibraryNorm})
    assert loaded.get_layer("norm").axis == [-1]
    with h5py.File(path_, "r") as f:
        config = json.loads(f.attrs["model_config"])
    config["config"]["layers"][1]["class_name"] = "BatchNormalization"  # as a library's file names it
    upgraded = legacy_config.upgrade_model_config(config, "2.21.0", {"BatchNormalization": _LibraryNorm})
    assert upgraded["config"]["layers"][1]["config"]["axis"] == [-1]
    assert legacy_config.upgrade_model_config(config, "2.21.0")["config"]["layers"][1]["config"]["axis"] == -1
