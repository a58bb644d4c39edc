"""`.keras` and `.weights.h5` files written by older Keras 3 releases
(3.0.5, 3.3.3, 3.6.0, 3.9.2, 3.12.4), recorded by
tools/fixtures/make_keras3_version_fixtures.py into
tests/fixtures/keras3_versions/<version>/ with the predictions, fit losses
and next training step that release computed.

kerasish must load each file to that release's numbers, restore the compile
config and the optimizer state (one more step equals what that release did
next), and re-save it so that the installed Keras 3 loads it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import kerasish

pytest.importorskip("h5py")
HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras3_versions")


@kerasish.saving.register_keras_serializable(package="kfix")
class Tower(kerasish.Model):
    """The fixture's registered subclassed model (`kfix>Tower`), written for kerasish."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.d1 = kerasish.layers.Dense(units, activation="relu")
        self.blocks = [kerasish.layers.Dense(units), kerasish.layers.Dense(units)]
        self.bn = kerasish.layers.BatchNormalization()
        self.head = kerasish.layers.Dense(2)

    def call(self, x, training=False):
        h = self.d1(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(self.bn(h, training=training))

    def get_config(self):
        return {"units": self.units, "name": self.name}


@kerasish.saving.register_keras_serializable(package="kfix")
def scaled_tanh(x):
    """The fixture's registered activation function (`kfix>scaled_tanh`)."""
    return 1.5 * torch.tanh(x)


def _release(version):
    return tuple(int(p) for p in version.split("-")[0].split("."))


# "<version>" folders were written on the torch backend, "<version>-<backend>" on another
_FOLDERS = sorted((v for v in os.listdir(HERE) if os.path.isdir(os.path.join(HERE, v))), key=lambda v: (_release(v), v))
# releases with the full set (record.json); 3.4.1 holds only its quantized models
VERSIONS = [v for v in _FOLDERS if os.path.exists(os.path.join(HERE, v, "record.json"))]
QUANT_VERSIONS = [v for v in _FOLDERS if os.path.exists(os.path.join(HERE, v, "quant_record.npz"))]
MODELS = ["mlp", "shared", "cnn_bn", "lstm_mask", "custom", "compiled", "nested", "mixed", "int8", "zoo", "subclassed"]
TOL = {"rtol": 1e-5, "atol": 1e-6}


@kerasish.saving.register_keras_serializable(package="kfix")
class Scale(kerasish.layers.Layer):
    """The fixture's registered custom layer (`kfix>Scale`), written for kerasish."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.s = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="s")

    def call(self, x):
        return x * self.s * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _need(meta, version, fname):
    if fname not in meta["files"]:
        why = "int8 quantization came in Keras 3.4" if fname.startswith("int8") else "kept small: see its README"
        pytest.skip(f"no {fname} from Keras {version} ({why})")


def _record(version):
    d = os.path.join(HERE, version)
    with open(os.path.join(d, "record.json")) as f:
        meta = json.load(f)
    return d, meta, dict(np.load(os.path.join(d, "record.npz"), allow_pickle=False))


def _inputs(rec, name):
    if f"{name}_x0" in rec:
        return [rec[f"{name}_x0"], rec[f"{name}_x1"]]
    return rec[f"{name}_x"]


def _preds(rec, name):
    if f"{name}_pred" in rec:
        return [rec[f"{name}_pred"]]
    return [rec[f"{name}_pred{i}"] for i in range(2)]


def _predict(model, x):
    out = model.predict(x, verbose=0)
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MODELS)
def test_old_file_predicts_what_that_keras_recorded(version, name):
    d, meta, rec = _record(version)
    assert meta["keras"] == version.split("-")[0]
    _need(meta, version, f"{name}.keras")
    model = kerasish.saving.load_model(os.path.join(d, f"{name}.keras"))
    for got, want in zip(_predict(model, _inputs(rec, name)), _preds(rec, name), strict=True):
        np.testing.assert_allclose(got, want, **_tol(name))
    if name == "mixed":
        assert model.layers[0].dtype_policy.name == "mixed_float16"
        assert _predict(model, _inputs(rec, name))[0].dtype == np.float16
    if name == "int8":
        assert model.layers[0].dtype_policy.quantization_mode == "int8"
        assert model.layers[0]._kernel.dtype == torch.int8


def _tol(name):
    # float16 outputs (mixed) round to 2**-11 relative
    return {"rtol": 2e-3, "atol": 2e-3} if name == "mixed" else TOL


@pytest.mark.parametrize("version", VERSIONS)
def test_old_legacy_h5_from_keras3_predicts_what_that_keras_recorded(version):
    d, meta, rec = _record(version)
    _need(meta, version, "cnn_bn.h5")
    model = kerasish.saving.load_model(os.path.join(d, "cnn_bn.h5"))
    np.testing.assert_allclose(_predict(model, rec["cnn_bn_x"])[0], rec["cnn_bn_pred"], **TOL)


@pytest.mark.parametrize("version", VERSIONS)
def test_old_per_output_compile_config_evaluates_and_trains_as_that_keras_did(version):
    d, meta, rec = _record(version)
    model = kerasish.saving.load_model(os.path.join(d, "compiled_multi.keras"))
    xs, ys = _inputs(rec, "shared"), [rec["compiled_multi_y0"], rec["compiled_multi_y1"]]
    for got, want in zip(_predict(model, xs), [rec["compiled_multi_pred0"], rec["compiled_multi_pred1"]], strict=True):
        np.testing.assert_allclose(got, want, **TOL)
    assert type(model.optimizer).__name__ == "SGD"
    logs = model.evaluate(xs, ys, verbose=0, return_dict=True)
    want = dict(meta["compiled_multi_eval"])
    # The file is the same; the logs are each release's own: Keras 3.0-3.5 log no
    # per-output losses, 3.6 logs them multiplied by their loss weights, 3.9 and
    # later (and kerasish, following the installed Keras) log them unweighted.
    assert set(logs) == {"loss", "out_a_loss", "out_b_loss", "out_a_mae", "out_b_acc"}
    weights = {"out_a_loss": 0.5, "out_b_loss": 2.0}
    if _release(version) < (3, 9, 0):
        for k, w in weights.items():
            if k in want:
                want[k] /= w
    for k, v in want.items():
        np.testing.assert_allclose(float(logs[k]), v, rtol=1e-5, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(float(logs["loss"]), sum(float(logs[k]) * w for k, w in weights.items()), rtol=1e-5)
    model.reset_metrics()
    loss = model.train_on_batch(xs, ys, return_dict=True)["loss"]
    np.testing.assert_allclose(float(loss), meta["compiled_multi_next_loss"], rtol=1e-5)
    for i, got in enumerate(model.get_weights()):
        np.testing.assert_allclose(got, rec[f"compiled_multi_next_w{i}"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("version", VERSIONS)
def test_old_weights_file_loads_into_the_same_architecture(version):
    d, meta, rec = _record(version)
    _need(meta, version, "shared.weights.h5")
    model = kerasish.saving.load_model(os.path.join(d, "shared.keras"))
    fresh = kerasish.models.clone_model(model)
    fresh.load_weights(os.path.join(d, "shared.weights.h5"))
    for got, want in zip(_predict(fresh, _inputs(rec, "shared")), _preds(rec, "shared"), strict=True):
        np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("version", VERSIONS)
def test_old_compiled_file_continues_training_as_that_keras_did(version):
    d, meta, rec = _record(version)
    model = kerasish.saving.load_model(os.path.join(d, "compiled.keras"))
    opt = model.optimizer
    assert type(opt).__name__ == "Adam"
    np.testing.assert_allclose(float(opt.learning_rate), 0.01, rtol=1e-6)
    assert int(opt.iterations) == meta["compiled_iterations"]
    assert isinstance(model.loss, kerasish.losses.MeanSquaredError)
    loss = model.train_on_batch(rec["compiled_next_x"], rec["compiled_next_y"], return_dict=True)["loss"]
    np.testing.assert_allclose(float(loss), meta["compiled_next_loss"], rtol=1e-5)
    want = [rec[f"compiled_next_w{i}"] for i in range(len(model.get_weights()))]
    for got, w in zip(model.get_weights(), want, strict=True):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
    assert int(opt.iterations) == meta["compiled_iterations"] + 1
    logs = model.evaluate(rec["compiled_x"], rec["compiled_y"], verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mae", "rmse"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MODELS)
def test_resaved_old_file_loads_in_installed_keras(keras_ref, version, name, tmp_path):
    d, meta, rec = _record(version)
    _need(meta, version, f"{name}.keras")
    model = kerasish.saving.load_model(os.path.join(d, f"{name}.keras"))
    model.save(tmp_path / "resaved.keras")
    custom = {}
    if name == "custom":

        class RefScale(keras_ref.layers.Layer):
            def __init__(self, factor=2.0, **kwargs):
                super().__init__(**kwargs)
                self.factor = factor

            def build(self, input_shape):
                self.s = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="s")

            def call(self, x):
                return x * self.s * self.factor

            def get_config(self):
                return {**super().get_config(), "factor": self.factor}

        # Keras files a layer's weights under its class's snake_case name
        RefScale.__name__ = RefScale.__qualname__ = "Scale"
        custom = {"kfix>Scale": RefScale}
    if name == "zoo":
        custom = {"kfix>scaled_tanh": lambda x: 1.5 * keras_ref.ops.tanh(x)}
    if name == "subclassed":
        custom = {"kfix>Tower": _ref_tower(keras_ref)}
    ref = keras_ref.saving.load_model(tmp_path / "resaved.keras", custom_objects=custom)
    out = ref.predict(_inputs(rec, name), verbose=0)
    out = out if isinstance(out, (list, tuple)) else [out]
    for got, want in zip(out, _preds(rec, name), strict=True):
        np.testing.assert_allclose(np.asarray(got), want, **_tol(name))
    if name == "compiled":
        assert int(ref.optimizer.iterations) == int(model.optimizer.iterations)
        assert ref.jit_compile == model.jit_compile  # True in a file from the jax backend
        ref.jit_compile = False  # the same step, without torch.compile's start-up time
        loss = ref.train_on_batch(rec["compiled_next_x"], rec["compiled_next_y"], return_dict=True)["loss"]
        _, meta, _ = _record(version)
        np.testing.assert_allclose(float(loss), meta["compiled_next_loss"], rtol=1e-5)


def _ref_tower(keras):
    class Tower(keras.Model):
        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.d1 = keras.layers.Dense(units, activation="relu")
            self.blocks = [keras.layers.Dense(units), keras.layers.Dense(units)]
            self.bn = keras.layers.BatchNormalization()
            self.head = keras.layers.Dense(2)

        def call(self, x, training=False):
            h = self.d1(x)
            for block in self.blocks:
                h = h + block(h)
            return self.head(self.bn(h, training=training))

        def get_config(self):
            return {"units": self.units, "name": self.name}

    return Tower


def _optimizer_cases():
    for version in VERSIONS:
        _, meta, _ = _record(version)
        for oname in sorted(meta.get("optimizers", {})):
            yield pytest.param(version, oname, id=f"{version}-{oname}")


@pytest.mark.parametrize(("version", "oname"), list(_optimizer_cases()))
def test_old_optimizer_state_continues_as_that_keras_did(version, oname):
    """Each built-in optimizer's slots, saved by an older release after two steps,
    land on the right variables: one more step equals that release's."""
    d, meta, rec = _record(version)
    want = meta["optimizers"][oname]
    model = kerasish.saving.load_model(os.path.join(d, "optimizers", f"{oname}.keras"))
    assert int(model.optimizer.iterations) == want["iterations"]
    model.reset_metrics()
    loss = model.train_on_batch(rec["opt_x"][:4], rec["opt_y"][:4], return_dict=True)["loss"]
    # loss_scale's first Dense runs in float16: Keras rounds after the matmul and again after the
    # bias, kerasish's fused addmm once, so its outputs may differ by one float16 ulp
    tol = {"rtol": 2e-3, "atol": 2e-4} if oname == "loss_scale" else {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(float(loss), want["next_loss"], rtol=tol["rtol"])
    for i, got in enumerate(model.get_weights()):
        np.testing.assert_allclose(got, rec[f"opt_{oname}_next_w{i}"], **tol, err_msg=f"weight {i}")


def test_old_nadam_state_in_a_bare_weights_file_is_read_by_its_shapes(tmp_path):
    """A `.weights.h5` has no metadata naming its Keras: Keras 3.0-3.9's Nadam
    layout (u_product before the moments) is told apart by the shapes."""
    import zipfile

    d, meta, rec = _record("3.0.5")
    archive = os.path.join(d, "optimizers", "nadam.keras")
    with zipfile.ZipFile(archive) as zf:
        (tmp_path / "nadam.weights.h5").write_bytes(zf.read("model.weights.h5"))
    model = kerasish.saving.load_model(archive)
    # a model in another state: other weights, other moments, another step count
    model.fit(rec["opt_x"][::-1], rec["opt_y"][::-1] * 3, batch_size=2, epochs=1, verbose=0)
    model.load_weights(tmp_path / "nadam.weights.h5")
    assert int(model.optimizer.iterations) == meta["optimizers"]["nadam"]["iterations"]
    model.reset_metrics()
    loss = model.train_on_batch(rec["opt_x"][:4], rec["opt_y"][:4], return_dict=True)["loss"]
    np.testing.assert_allclose(float(loss), meta["optimizers"]["nadam"]["next_loss"], rtol=1e-5)
    for i, got in enumerate(model.get_weights()):
        np.testing.assert_allclose(got, rec[f"opt_nadam_next_w{i}"], rtol=1e-5, atol=1e-6)


def test_nadam_layout_that_both_orders_fit_warns_and_reads_the_current_one(tmp_path):
    """Only scalar weights: both Keras orders fit the shapes of a bare weights
    file, so kerasish reads the current (3.10+) one and says so."""

    class Gain(kerasish.layers.Layer):
        def build(self, input_shape):
            self.g = self.add_weight(shape=(), initializer="ones", name="g")

        def call(self, x):
            return x * self.g

    inp = kerasish.Input((2,))
    model = kerasish.Model(inp, Gain()(inp))
    model.compile(optimizer=kerasish.optimizers.Nadam(0.1), loss="mse")
    x, y = np.ones((4, 2), "float32"), np.full((4, 2), 3.0, "float32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    model.save_weights(tmp_path / "g.weights.h5")
    want = [np.asarray(v.detach() if isinstance(v, torch.Tensor) else v) for v in model.optimizer.variables]
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="fit both Keras 3.0-3.9's order"):
        model.load_weights(tmp_path / "g.weights.h5")
    got = [np.asarray(v.detach() if isinstance(v, torch.Tensor) else v) for v in model.optimizer.variables]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("version", [v for v in VERSIONS if os.path.exists(os.path.join(HERE, v, "lambda.keras"))])
def test_old_lambda_layer_needs_safe_mode_false_then_runs(version):
    """A Lambda's Python bytecode from an older Keras 3 is refused in safe mode,
    as Keras refuses it, and runs to that release's numbers with safe_mode=False."""
    path = os.path.join(HERE, version, "lambda.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        kerasish.saving.load_model(path)
    model = kerasish.saving.load_model(path, safe_mode=False)
    with np.load(os.path.join(HERE, version, "lambda_record.npz"), allow_pickle=False) as rec:
        np.testing.assert_allclose(_predict(model, rec["x"])[0], rec["pred"], **TOL)


def _sharded_model(lib):
    layers = lib.layers
    return lib.Sequential(
        [
            lib.Input((4,)),
            layers.Dense(16, name="s1"),
            layers.BatchNormalization(name="sbn"),
            layers.Dense(2, name="s2"),
        ]
    )


def test_sharded_weights_from_keras_3_12_load():
    """`save_weights("x.weights.json", max_shard_size=...)` of Keras 3.12: an index
    and two shards, BatchNormalization's variables split between them."""
    d = os.path.join(HERE, "3.12.4", "sharded")
    model = _sharded_model(kerasish)
    model.load_weights(os.path.join(d, "sharded.weights.json"))
    with np.load(os.path.join(d, "record.npz"), allow_pickle=False) as rec:
        np.testing.assert_allclose(_predict(model, rec["x"])[0], rec["pred"], **TOL)


def test_sharded_weights_from_installed_keras_load(keras_ref, tmp_path):
    ref = _sharded_model(keras_ref)
    rng = np.random.default_rng(5)
    ref.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in ref.get_weights()])
    ref.save_weights(tmp_path / "m.weights.json", max_shard_size=4.3e-7)
    assert len(list(tmp_path.glob("m_*.weights.h5"))) > 1
    model = _sharded_model(kerasish)
    model.load_weights(tmp_path / "m.weights.json")
    x = rng.normal(size=(3, 4)).astype("float32")
    np.testing.assert_allclose(_predict(model, x)[0], np.asarray(ref.predict(x, verbose=0)), **TOL)


def _copy_sharded(tmp_path):
    import shutil

    src = os.path.join(HERE, "3.12.4", "sharded")
    for name in os.listdir(src):
        shutil.copy(os.path.join(src, name), tmp_path / name)
    with open(tmp_path / "sharded.weights.json") as f:
        return json.load(f)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["weight_map"].__setitem__("/layers/dense/vars", ["../sharded_00000.weights.h5"]), "Not allowed"),
        (lambda m: m["weight_map"].__setitem__("/layers/dense/vars", ["gone_00000.weights.h5"]), "does not exist"),
        (lambda m: m.pop("weight_map"), "weight_map"),
        (lambda m: m["weight_map"].__setitem__("/layers/dense/vars", 3), "expected a list of shard file names"),
    ],
)
def test_damaged_sharded_index_is_refused(tmp_path, edit, message):
    index = _copy_sharded(tmp_path)
    edit(index)
    with open(tmp_path / "sharded.weights.json", "w") as f:
        json.dump(index, f)
    model = _sharded_model(kerasish)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=message):
        model.load_weights(tmp_path / "sharded.weights.json")
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_sharded_weights_into_another_architecture_name_the_layer(tmp_path):
    _copy_sharded(tmp_path)
    layers = kerasish.layers
    other = kerasish.Sequential([kerasish.Input((4,)), layers.Dense(8), layers.BatchNormalization(), layers.Dense(2)])
    with pytest.raises(ValueError, match="dense"):
        other.load_weights(tmp_path / "sharded.weights.json")


@pytest.mark.parametrize("version", VERSIONS)
def test_file_editor_reads_old_files(version):
    """`KerasFileEditor` opens an older release's archive and finds every weight of
    the model kerasish loads from it."""
    d, meta, _ = _record(version)
    for name in ("compiled", "zoo"):
        if f"{name}.keras" not in meta["files"]:
            continue
        path = os.path.join(d, f"{name}.keras")
        result = kerasish.saving.KerasFileEditor(path).compare(kerasish.saving.load_model(path))
        assert result["status"] == "success" and result["error_count"] == 0, (name, result)


@pytest.mark.parametrize("version", QUANT_VERSIONS)
@pytest.mark.parametrize("mode", ["int8", "float8"])
def test_old_quantized_files_predict_what_that_keras_recorded(version, mode):
    """`quantize("int8")` / `quantize("float8")` models from Keras 3.4 (the first
    release with them) and 3.12: quantized weights and scales (float8: its
    scale and amax-history variables) load to that release's predictions."""
    path = os.path.join(HERE, version, f"quant_{mode}.keras")
    model = kerasish.saving.load_model(path)
    assert model.layers[0].dtype_policy.quantization_mode == mode
    with np.load(os.path.join(HERE, version, "quant_record.npz"), allow_pickle=False) as rec:
        got = _predict(model, rec[f"{mode}_x"])[0]
        np.testing.assert_allclose(got, rec[f"{mode}_pred"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("version", QUANT_VERSIONS)
@pytest.mark.parametrize("mode", ["int8", "float8"])
def test_resaved_old_quantized_files_load_in_installed_keras(keras_ref, version, mode, tmp_path):
    model = kerasish.saving.load_model(os.path.join(HERE, version, f"quant_{mode}.keras"))
    model.save(tmp_path / "q.keras")
    ref = keras_ref.saving.load_model(tmp_path / "q.keras")
    with np.load(os.path.join(HERE, version, "quant_record.npz"), allow_pickle=False) as rec:
        got = np.asarray(ref.predict(rec[f"{mode}_x"], verbose=0))
        np.testing.assert_allclose(got, rec[f"{mode}_pred"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "version", [v for v in VERSIONS if os.path.exists(os.path.join(HERE, v, "compiled_list_record.json"))]
)
def test_old_per_output_lists_in_compile_config_evaluate_and_train_as_that_keras_did(version):
    """Losses (a string and an object with arguments), loss weights and
    metrics given per output as lists come back from an older release's file."""
    d = os.path.join(HERE, version)
    with open(os.path.join(d, "compiled_list_record.json")) as f:
        want = json.load(f)
    with np.load(os.path.join(d, "compiled_list_record.npz"), allow_pickle=False) as data:
        rec = dict(data)
    xs, ys = [rec["x0"], rec["x1"]], [rec["y0"], rec["y1"]]
    model = kerasish.saving.load_model(os.path.join(d, "compiled_list.keras"))
    assert type(model.optimizer).__name__ == "RMSprop"
    logs = model.evaluate(xs, ys, verbose=0, return_dict=True)
    # (Keras 3.0-3.5 logged no per-output losses; the rest is the same in every release)
    assert set(want["eval"]) - {"out_a_loss", "out_b_loss"} <= set(logs)
    for k, v in want["eval"].items():
        np.testing.assert_allclose(float(logs[k]), v, rtol=1e-5, atol=1e-6, err_msg=k)
    model.reset_metrics()
    loss = model.train_on_batch(xs, ys, return_dict=True)["loss"]
    np.testing.assert_allclose(float(loss), want["next_loss"], rtol=1e-5)
    for i, got in enumerate(model.get_weights()):
        np.testing.assert_allclose(got, rec[f"next_w{i}"], rtol=1e-5, atol=1e-6)


def test_sharded_variable_stored_twice_is_refused(tmp_path):
    """The same variable in two shards is ambiguous: refused, naming both shards."""
    import h5py

    index = _copy_sharded(tmp_path)
    with (
        h5py.File(tmp_path / "sharded_00000.weights.h5", "r") as src,
        h5py.File(tmp_path / "sharded_00001.weights.h5", "a") as dst,
    ):
        dst.require_group("layers/dense/vars").create_dataset("0", data=src["layers/dense/vars/0"][()])
    index["weight_map"]["/layers/dense/vars"] = ["sharded_00000.weights.h5", "sharded_00001.weights.h5"]
    with open(tmp_path / "sharded.weights.json", "w") as f:
        json.dump(index, f)
    with pytest.raises(ValueError, match="more than one shard"):
        _sharded_model(kerasish).load_weights(tmp_path / "sharded.weights.json")
