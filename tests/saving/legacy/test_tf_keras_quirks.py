"""Regression tests for what tf-keras 2 writes that kerasish misread (found
by tests/ports/test_port_keras2_programs_4.py, files recorded by
tools/fixtures/make_keras2_programs_4.py in tests/fixtures/keras2_programs_4/):
transposed convolutions' `groups`, tf-keras's own `.keras` archives (Keras 2
optimizer config, its optimizer-variable order), legacy Ftrl's slot order, the
per-output metric names of a multi-output `training_config`, the removed
LocallyConnected layers, and TensorFlow-only files (checkpoints, SavedModels)."""

import gzip
import io
import json
import os
import shutil
import zipfile

import h5py
import numpy as np
import pytest

import kerasish as keras
from kerasish.saving import legacy_config
from kerasish.saving import legacy_training_config

HERE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "keras2_programs_4")


def _unpacked(tmp_path, name):
    dest = tmp_path / name
    if os.path.exists(os.path.join(HERE, name)):
        shutil.copy(os.path.join(HERE, name), dest)
    else:
        with gzip.open(os.path.join(HERE, name + ".gz"), "rb") as s, open(dest, "wb") as d:
            shutil.copyfileobj(s, d)
    return str(dest)


@pytest.mark.parametrize("class_name", ["Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"])
def test_keras2_transpose_conv_groups_one_is_dropped(class_name):
    rank = int(class_name[4])
    config = {"class_name": class_name, "config": {"name": "up", "filters": 2, "kernel_size": [3] * rank,
                                                   "strides": [2] * rank, "output_padding": [1] * rank,
                                                   "groups": 1}}
    upgraded = legacy_config.upgrade_model_config(config)
    assert "groups" not in upgraded["config"]
    layer = getattr(keras.layers, class_name).from_config(upgraded["config"])
    assert tuple(layer.output_padding) == (1,) * rank
    config["config"]["groups"] = 2
    with pytest.raises(ValueError, match=r"'up'.*`groups=2`"):
        legacy_config.upgrade_model_config(config)


def test_tf_keras_archive_compiles_and_restores_adam_in_its_order(tmp_path):
    """tf-keras's `.keras`: the optimizer config carries `is_legacy_optimizer` / `jit_compile` and
    `steps_per_execution: null`; its optimizer vars are `iteration`, then (m, v) of each weight in turn."""
    path = _unpacked(tmp_path, "tfkeras_archive.keras")
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
        with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
            stored = [np.asarray(f["optimizer/vars"][str(i)]) for i in range(len(f["optimizer/vars"]))]
    assert config["compile_config"]["optimizer"]["config"]["is_legacy_optimizer"] is False
    assert config["compile_config"]["steps_per_execution"] is None
    model = keras.models.load_model(path)
    opt = model.optimizer
    assert type(opt).__name__ == "Adam"
    np.testing.assert_allclose(float(opt.learning_rate), 0.01, rtol=1e-6)
    assert int(opt.iterations) == int(stored[0]) == 8
    params = list(model.trainable_weights)
    assert len(stored) == 1 + 2 * len(params)
    for j, p in enumerate(params):
        np.testing.assert_array_equal(opt.state[p]["momentum"].cpu().numpy(), stored[1 + 2 * j])
        np.testing.assert_array_equal(opt.state[p]["velocity"].cpu().numpy(), stored[2 + 2 * j])


def test_tf_keras_archive_rmsprop_state_is_read_slot_by_slot(tmp_path):
    """tf-keras's RMSprop makes every velocity, then every momentum, then every average gradient (its
    Adam interleaves m/v): the archive's vars follow that order. Its layers' configs are Keras 2's
    (`time_major` on the LSTM/GRU), read as a legacy `.h5`'s are."""
    path = _unpacked(tmp_path, "tfkeras_archives_more_rnn.keras")
    with zipfile.ZipFile(path) as z:
        with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
            stored = [np.asarray(f["optimizer/vars"][str(i)]) for i in range(len(f["optimizer/vars"]))]
    model = keras.models.load_model(path)
    opt, params = model.optimizer, list(model.trainable_weights)
    n = len(params)
    assert type(opt).__name__ == "RMSprop" and len(stored) == 1 + 3 * n and int(opt.iterations) == 2
    for j, p in enumerate(params):
        for block, slot in enumerate(("velocity", "momentum", "average_gradient")):
            np.testing.assert_array_equal(opt.state[p][slot].cpu().numpy(), stored[1 + block * n + j], err_msg=slot)


def test_tf_keras_archive_with_a_legacy_optimizer_compiles(tmp_path):
    """tf-keras writes `keras.optimizers.legacy` with `decay` and `steps_per_execution: null`, and no
    optimizer state, for a legacy optimizer; metadata.json says 2.21.0. It loads compiled, fresh."""
    path = _unpacked(tmp_path, "tfkeras_archive_legacy.keras")
    with zipfile.ZipFile(path) as z:
        opt_config = json.loads(z.read("config.json"))["compile_config"]["optimizer"]
    assert opt_config["module"] == "keras.optimizers.legacy" and "is_legacy_optimizer" not in opt_config["config"]
    model = keras.models.load_model(path)
    assert type(model.optimizer).__name__ == "Adam" and int(model.optimizer.iterations) == 0
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 0.01, rtol=1e-6)


def test_legacy_ftrl_slots_are_read_per_weight(tmp_path):
    """Legacy Ftrl writes accumulator0, linear0, accumulator1, ... (other legacy optimizers: slot by slot)."""
    path = _unpacked(tmp_path, "legacy_optimizers_ftrl.h5")
    with h5py.File(path, "r") as f:
        group = f["optimizer_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
        stored = {n: np.asarray(group[n]) for n in names}
    assert names[1].endswith("kernel/accumulator:0") and names[2].endswith("kernel/linear:0")
    model = keras.models.load_model(path)
    opt = model.optimizer
    assert type(opt) is keras.optimizers.legacy.Ftrl
    assert int(opt.iterations) == 4
    params = list(model.trainable_weights)
    for j, p in enumerate(params):
        np.testing.assert_array_equal(opt.state[p]["accumulator"].cpu().numpy(), stored[names[1 + 2 * j]])
        np.testing.assert_array_equal(opt.state[p]["linear"].cpu().numpy(), stored[names[2 + 2 * j]])


def test_multi_output_training_config_metric_names_are_not_prefixed_twice():
    saved = [[{"class_name": "MeanMetricWrapper", "config": {"name": "price_mae", "dtype": "float32",
                                                              "fn": "mean_absolute_error"}}],
             [{"class_name": "MeanMetricWrapper", "config": {"name": "kind_accuracy", "dtype": "float32",
                                                              "fn": "sparse_categorical_accuracy"}}]]
    args = legacy_training_config.compile_args_from_training_config(
        {"loss": {"price": "mse", "kind": "sparse_categorical_crossentropy"}, "metrics": saved,
         "optimizer_config": {"class_name": "SGD", "config": {"learning_rate": 0.1}}},
        output_names=["price", "kind"])
    assert [[m.name for m in ms] for ms in args["metrics"]] == [["mae"], ["accuracy"]]
    # one output: tf.keras 2 writes the names unprefixed, and they are kept as written
    single = legacy_training_config.compile_args_from_training_config(
        {"loss": "mse", "metrics": [[saved[0][0]]]}, output_names=["price"])
    assert [m.name for m in single["metrics"]] == ["price_mae"]


def test_multi_output_h5_logs_tf_keras_names(tmp_path):
    model = keras.models.load_model(_unpacked(tmp_path, "multi_output_dicts.h5"))
    rng = np.random.RandomState(0)
    logs = model.evaluate({"num": rng.randn(4, 5).astype("float32"), "cat": rng.randn(4, 3).astype("float32")},
                          {"price": np.zeros((4, 1), "float32"), "kind": np.zeros(4, "int64")},
                          verbose=0, return_dict=True)
    assert sorted(logs) == ["kind_accuracy", "kind_loss", "loss", "price_loss", "price_mae"]


def test_locally_connected_names_the_layer_and_the_way_out(tmp_path):
    path = _unpacked(tmp_path, "layer_zoo_local.h5")
    with pytest.raises(ValueError, match=r"'lc'.*`LocallyConnected1D`.*removed in Keras 3.*custom_objects"):
        keras.models.load_model(path)

    class LocallyConnected1D(keras.layers.Layer):  # a user's own stand-in: then the file loads
        def __init__(self, filters, kernel_size, **kwargs):
            for key in ("strides", "padding", "data_format", "activation", "use_bias", "kernel_initializer",
                        "bias_initializer", "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                        "kernel_constraint", "bias_constraint", "implementation"):
                kwargs.pop(key, None)
            super().__init__(**kwargs)
            self.filters, self.kernel_size = filters, kernel_size[0] if isinstance(kernel_size, list) else kernel_size

        def build(self, shape):
            out = shape[1] - self.kernel_size + 1
            self.kernel = self.add_weight(shape=(out, self.kernel_size * shape[2], self.filters), name="kernel")
            self.bias = self.add_weight(shape=(out, self.filters), name="bias", initializer="zeros")

        def call(self, x):
            patches = x.unfold(1, self.kernel_size, 1).transpose(2, 3).flatten(2)  # (batch, out, k * channels)
            return keras.ops.einsum("bok,okf->bof", patches, self.kernel) + self.bias

    model = keras.models.load_model(path, custom_objects={"LocallyConnected1D": LocallyConnected1D})
    with np.load(os.path.join(HERE, "layer_zoo.npz"), allow_pickle=False) as f:
        want = f["local_predict"]
    rng = np.random.RandomState(4)
    seq = rng.randn(12, 8, 3).astype("float32")  # zoo_data()'s first draw
    np.testing.assert_allclose(model.predict(seq[:, :6, :2], verbose=0), want, rtol=1e-5, atol=1e-6)


def test_tf_checkpoint_and_saved_model_say_what_they_are(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    (tmp_path / "ckpt.index").write_bytes(b"\x00")
    (tmp_path / "ckpt.data-00000-of-00001").write_bytes(b"\x00")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt"\n')
    for name in ("ckpt", "ckpt.index", "ckpt.data-00000-of-00001"):
        with pytest.raises(ValueError, match=r"TensorFlow checkpoint.*save_weights\('ckpt'\).*model\.weights\.h5"):
            model.load_weights(tmp_path / name)
    saved = tmp_path / "exported"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    with pytest.raises(ValueError, match=r"SavedModel directory.*convert_tf_keras_files\.py"):
        model.load_weights(saved)
    # a plain missing file is still "not found", not a checkpoint
    with pytest.raises(ValueError, match="File format not supported"):
        model.load_weights(tmp_path / "nothing_here")


def test_keras2_save_format_argument(tmp_path):
    """Keras 2 programs pass `save_format=`: "h5" writes Keras 2 HDF5 under any name (read back by
    kerasish as such), "tf" needs TensorFlow and says so, anything else is refused (it was dropped
    silently by `save`, a TypeError in `save_weights`)."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), verbose=0)
    x = np.arange(6, dtype="float32").reshape(2, 3)
    model.save_weights(tmp_path / "weights_no_suffix", save_format="h5")
    assert h5py.is_hdf5(tmp_path / "weights_no_suffix")
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    other.load_weights(tmp_path / "weights_no_suffix")
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    model.save(tmp_path / "model_no_suffix", save_format="h5")
    loaded = keras.models.load_model(tmp_path / "model_no_suffix")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert int(loaded.optimizer.iterations) == 1
    for call in (lambda: model.save(tmp_path / "m", save_format="tf"),
                 lambda: model.save_weights(tmp_path / "ckpt", save_format="tf")):
        with pytest.raises(ValueError, match=r"save_format='tf'.*needs TensorFlow"):
            call()
    with pytest.raises(ValueError, match=r"Unknown `save_format`.*Received: save_format='pickle'"):
        model.save(tmp_path / "m.keras", save_format="pickle")
    with pytest.raises(ValueError, match=r"`save_format='h5'` with a `.keras` name"):
        model.save(tmp_path / "m.keras", save_format="h5")
    with pytest.raises(ValueError, match=r"TensorFlow checkpoint.*ckpt\.weights\.h5"):
        model.save_weights(tmp_path / "ckpt")


@pytest.mark.parametrize("saved, probs", [
    ({"class_name": "SparseCategoricalCrossentropy",
      "config": {"reduction": "auto", "name": "sparse_categorical_crossentropy", "from_logits": True,
                 "ignore_class": None, "fn": "sparse_categorical_crossentropy"}}, False),
    ({"class_name": "CategoricalCrossentropy",
      "config": {"reduction": "auto", "name": "categorical_crossentropy", "from_logits": False,
                 "label_smoothing": 0.1, "axis": -1, "fn": "categorical_crossentropy"}}, True),
])
def test_tf_keras_loss_class_config_keeps_its_arguments(saved, probs):
    """tf-keras >= 2.13 writes `fn` into its built-in loss classes' configs: the loss is that class with
    its arguments (`from_logits=True`, `label_smoothing=0.1`), not the bare function (which silently
    trained logits as probabilities / without smoothing). Found by test_port_keras2_programs_5.py."""
    loss = legacy_training_config.compile_args_from_training_config({"loss": saved})["loss"]
    assert type(loss).__name__ == saved["class_name"]
    rng = np.random.RandomState(0)
    logits = rng.randn(6, 3).astype("float32")
    labels = rng.randint(0, 3, 6)
    onehot = np.eye(3, dtype="float32")[labels]
    if probs:  # NumPy: smoothed one-hot against softmax probabilities
        p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        want = np.mean(-np.sum((onehot * 0.9 + 0.1 / 3) * np.log(p), axis=-1))
        got = loss(onehot, p)
    else:  # NumPy: log-softmax of the logits at the label
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        want = np.mean(-logp[np.arange(6), labels])
        got = loss(labels, logits)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_tf_keras_archive_loss_only_takes_fn_out_of_builtin_classes():
    """In a tf-keras `.keras` compile_config only the built-in loss classes lose Keras 2's `fn` (and
    `reduction: "auto"`); a serialized function (`class_name: "function"`), a registered custom class and
    per-output structures pass through to `losses.get` as before (a custom-function archive loaded compiled)."""
    builtin = {"module": "keras.losses", "class_name": "SparseCategoricalCrossentropy", "registered_name": None,
               "config": {"reduction": "auto", "name": "scce", "from_logits": True, "ignore_class": None,
                          "fn": "sparse_categorical_crossentropy"}}
    function = {"module": "builtins", "class_name": "function", "config": "my>my_loss", "registered_name": "function"}
    custom = {"module": None, "class_name": "MyLoss", "config": {"fn": "x", "scale": 2.0}, "registered_name": "my>MyLoss"}
    mapped = legacy_training_config.tf_keras_archive_loss([builtin, {"a": function, "b": custom}])
    assert mapped[0]["config"] == {"name": "scce", "from_logits": True, "ignore_class": None}
    assert mapped[1] == {"a": function, "b": custom}
    assert keras.losses.get(mapped[0]).get_config()["from_logits"] is True
    # the `.h5` reader: a function serialized as a dict is its name
    assert legacy_training_config._map_losses({"class_name": "function", "config": "mse"}) == "mse"
