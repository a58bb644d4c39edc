"""kerasish saving: `.weights.h5` / `.pt` / `.keras` round trips, file layout,
atomic writes, damaged and unsafe files."""

import json
import os
import sys
import warnings
import zipfile

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.models import Model
from kerasish.models import Sequential
from kerasish.saving import h5_weights

h5py = pytest.importorskip("h5py")
Input = keras.layers.Input


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in model.get_weights()])


def _functional(units=3, lib=keras):
    inp = lib.Input((4,))
    x = lib.layers.Dense(units)(inp)
    x = lib.layers.BatchNormalization()(x)
    return lib.Model(inp, lib.layers.Dense(2)(x))


def _ref_out(model, x):
    """A real Keras model's output as NumPy."""
    with torch.no_grad():
        return model(torch.as_tensor(x)).detach().cpu().numpy()


def _out(model, x):
    with torch.no_grad():
        return model(torch.as_tensor(x)).numpy()


def _datasets(path):
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.__setitem__(n, o.shape) if isinstance(o, h5py.Dataset) else None)
    return out


X = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")


def _block_class(lib):
    class Block(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.proj = lib.layers.Dense(3)
            self.stack = [lib.layers.Dense(3), lib.layers.Dense(3)]
            self._priv = lib.layers.Dense(2)

        def build(self, input_shape):
            self.w = self.add_weight(shape=(2,), name="w")
            self.v = self.add_weight(shape=(1,), name="v", trainable=False, initializer="ones")

        def call(self, x):
            for layer in self.stack:
                x = layer(x)
            return self._priv(self.proj(x)) * self.w + self.v

    return Block


Block = _block_class(keras)


def test_weights_h5_roundtrip_and_keras_layout(tmp_path, keras_ref):
    keras_ref.utils.clear_session()
    ref = _functional(lib=keras_ref)
    ref(torch.as_tensor(X))
    ref.save_weights(tmp_path / "ref.weights.h5")
    a, b = _functional(), _functional()
    a(torch.as_tensor(X)), b(torch.as_tensor(X))
    _randomize(a)
    path = tmp_path / "m.weights.h5"
    a.save_weights(path)  # Model.save_weights
    assert _datasets(path) == _datasets(tmp_path / "ref.weights.h5")  # real Keras's layout
    with h5py.File(tmp_path / "ref.weights.h5") as f:
        ref_attrs = (f["layers/dense_1/vars"].attrs["name"], f["vars"].attrs["name"])
    with h5py.File(path) as f:
        assert (f["layers/dense_1/vars"].attrs["name"], f["vars"].attrs["name"]) == ref_attrs
    ref.load_weights(path)  # real Keras reads kerasish's file
    np.testing.assert_allclose(_ref_out(ref, X), _out(a, X), rtol=1e-6, atol=1e-6)
    assert _datasets(path) == {
        "layers/dense/vars/0": (4, 3),
        "layers/dense/vars/1": (3,),
        "layers/batch_normalization/vars/0": (3,),
        "layers/batch_normalization/vars/1": (3,),
        "layers/batch_normalization/vars/2": (3,),
        "layers/batch_normalization/vars/3": (3,),
        "layers/dense_1/vars/0": (3, 2),
        "layers/dense_1/vars/1": (2,),
    }
    with h5py.File(path) as f:
        assert f["layers/dense_1/vars"].attrs["name"] == a.layers[3].name
        assert f["vars"].attrs["name"] == a.name
    assert not np.allclose(_out(a, X), _out(b, X))
    keras.saving.load_weights(b, path)
    np.testing.assert_array_equal(_out(a, X), _out(b, X))


def test_nested_layer_layout_walks_attributes_lists_and_private(tmp_path, keras_ref):
    from keras.src.saving import saving_lib  # Keras's writer for a bare layer (no Layer.save_weights)

    keras_ref.utils.clear_session()
    ref = _block_class(keras_ref)()
    ref(torch.ones(2, 4))
    saving_lib.save_weights_only(ref, str(tmp_path / "ref.weights.h5"))
    layer = Block()
    layer(torch.ones(2, 4))
    _randomize(layer)
    keras.saving.save_weights(layer, tmp_path / "ours.weights.h5")
    assert _datasets(tmp_path / "ours.weights.h5") == _datasets(tmp_path / "ref.weights.h5")
    saving_lib.load_weights_only(ref, str(tmp_path / "ours.weights.h5"))  # real Keras reads it back
    np.testing.assert_allclose(_ref_out(ref, X), _out(layer, X), rtol=1e-6, atol=1e-6)
    paths = {p: [tuple(v.shape) for v in h5_weights.own_variables(o)] for p, o in h5_weights.iter_saveables(layer)}
    assert paths == {
        "": [(2,), (1,)],
        "proj": [(3, 3), (3,)],
        "stack/dense": [(4, 3), (3,)],
        "stack/dense_1": [(3, 3), (3,)],
        "_priv": [(3, 2), (2,)],
    }


def test_layer_weights_roundtrip_h5_and_pt(tmp_path):
    a, b = Block(), Block()
    a(torch.ones(2, 4)), b(torch.ones(2, 4))
    _randomize(a)
    for name in ("b.weights.h5", "b.pt"):
        _randomize(b, seed=5)
        keras.saving.save_weights(a, tmp_path / name)
        keras.saving.load_weights(b, tmp_path / name)
        np.testing.assert_array_equal(_out(a, X), _out(b, X))


def test_pt_loads_into_unbuilt_model(tmp_path):
    # state_dict keys are layer names: give both models the same ones
    a = Sequential([keras.layers.Dense(3, name="d0"), keras.layers.Dense(2, name="d1")])
    a(torch.as_tensor(X))
    keras.saving.save_weights(a, tmp_path / "w.pth")
    b = Sequential([keras.layers.Dense(3, name="d0"), keras.layers.Dense(2, name="d1")])
    keras.saving.load_weights(b, tmp_path / "w.pth")
    np.testing.assert_array_equal(_out(a, X), _out(b, X))


def test_mismatched_weights_name_layer_and_shapes(tmp_path):
    a, b = _functional(3), _functional(5)
    a(torch.as_tensor(X)), b(torch.as_tensor(X))
    keras.saving.save_weights(a, tmp_path / "a.weights.h5")
    before = _out(b, X)
    with pytest.raises(ValueError, match=r"Dense 'dense_\d+'.*shape \(4, 5\).*\(4, 3\)"):
        keras.saving.load_weights(b, tmp_path / "a.weights.h5")
    np.testing.assert_array_equal(before, _out(b, X))  # nothing assigned
    with pytest.warns(UserWarning, match="Skipping variable loading"):
        keras.saving.load_weights(b, tmp_path / "a.weights.h5", skip_mismatch=True)
    # a different number of variables
    c = Sequential([Input((4,)), keras.layers.Dense(3, use_bias=False)])
    d = Sequential([Input((4,)), keras.layers.Dense(3)])
    keras.saving.save_weights(c, tmp_path / "c.weights.h5")
    with pytest.raises(ValueError, match="expected 2 variables, but received 1"):
        keras.saving.load_weights(d, tmp_path / "c.weights.h5")
    e = Sequential([Input((4,)), keras.layers.Dense(3, name="head")])
    f = Sequential([Input((4,)), keras.layers.Dense(5, name="head")])
    keras.saving.save_weights(e, tmp_path / "e.pt")
    with pytest.raises(ValueError, match=r"layer 'head'.*model has shape \(4, 5\), file has \(4, 3\)"):
        keras.saving.load_weights(f, tmp_path / "e.pt")


def test_unbuilt_and_bad_names(tmp_path):
    a = Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="not yet been built"):
        keras.saving.save_weights(a, tmp_path / "a.weights.h5")
    with pytest.raises(ValueError, match="not yet been built"):
        keras.saving.save_weights(a, tmp_path / "a.h5")  # Keras 2 legacy HDF5
    with pytest.raises(ValueError, match="must end in `.weights.h5`"):
        keras.saving.save_weights(a, tmp_path / "a.txt")
    with pytest.raises(ValueError, match="expected a `.keras` extension"):
        keras.saving.load_model(tmp_path / "a.zip")
    with pytest.raises(ValueError, match="Invalid filepath extension"):
        keras.saving.save_model(a, tmp_path / "a.zip")
    with pytest.raises(ValueError, match="File not found"):
        keras.saving.load_model(tmp_path / "missing.keras")


def test_keras_archive_roundtrip_with_optimizer_state(tmp_path):
    model = Sequential(
        [Input((6,), dtype="int64"), keras.layers.Embedding(10, 4), keras.layers.LSTM(3), keras.layers.Dense(2)]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    x = np.random.default_rng(0).integers(0, 10, (8, 6))
    model.fit(x, np.ones((8, 2), "float32"), epochs=2, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)  # Model.save
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        config = json.loads(zf.read("config.json"))
    assert config["class_name"] == "Sequential"
    assert config["compile_config"]["loss"] == "mse"
    assert {layer["module"] for layer in config["config"]["layers"]} == {"keras.layers"}
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(_out(restored, x), _out(model, x), rtol=0, atol=1e-7)
    assert restored.compiled and type(restored.optimizer).__name__ == "Adam"
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 2
    for v1, v2 in zip(restored.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(v1), np.asarray(v2))
    uncompiled = keras.saving.load_model(path, compile=False)
    assert not uncompiled.compiled


@keras.saving.register_keras_serializable(package="SavingTest")
class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.s = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="s")

    def call(self, x):
        return x * self.s * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def test_custom_registered_layer_roundtrip(tmp_path, keras_ref):
    inp = Input((4,))
    model = Model(inp, Scale(3.0)(keras.layers.Dense(4)(inp)))
    _randomize(model)
    keras.saving.save_model(model, tmp_path / "c.keras")
    restored = keras.saving.load_model(tmp_path / "c.keras")
    np.testing.assert_array_equal(_out(restored, X), _out(model, X))

    # the same user layer, written for real Keras; same class name, as Keras
    # files a layer held in a list under its class's snake_case name
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

    RefScale.__name__ = RefScale.__qualname__ = "Scale"
    ref = keras_ref.saving.load_model(tmp_path / "c.keras", custom_objects={"SavingTest>Scale": RefScale})
    assert ref.layers[-1].factor == 3.0
    np.testing.assert_allclose(_ref_out(ref, X), _out(model, X), rtol=1e-6, atol=1e-6)


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    model = _functional()
    model(torch.as_tensor(X))
    targets = [tmp_path / "m.keras", tmp_path / "m.weights.h5"]
    keras.saving.save_model(model, targets[0])
    keras.saving.save_weights(model, targets[1])
    before = [p.read_bytes() for p in targets]

    def boom(root, f):
        f.create_group("half_written")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(h5_weights, "write_weights", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        keras.saving.save_model(model, targets[0])
    with pytest.raises(RuntimeError, match="disk on fire"):
        keras.saving.save_weights(model, targets[1])
    assert [p.read_bytes() for p in targets] == before
    assert sorted(os.listdir(tmp_path)) == ["m.keras", "m.weights.h5"]  # no temp files left
    keras.saving.load_model(targets[0])


def _saved(tmp_path):
    model = _functional()
    model(torch.as_tensor(X))
    path = tmp_path / "ok.keras"
    keras.saving.save_model(model, path)
    with zipfile.ZipFile(path) as zf:
        return path, {n: zf.read(n) for n in zf.namelist()}, model


def _write_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_damaged_files_raise_value_error(tmp_path):
    path, members, model = _saved(tmp_path)
    data = path.read_bytes()
    (tmp_path / "trunc.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid `.keras` archive"):
        keras.saving.load_model(tmp_path / "trunc.keras")
    no_config = _write_zip(tmp_path / "nc.keras", {k: v for k, v in members.items() if k != "config.json"})
    with pytest.raises(ValueError, match="has no 'config.json'"):
        keras.saving.load_model(no_config)
    no_weights = _write_zip(tmp_path / "nw.keras", {k: v for k, v in members.items() if k != "model.weights.h5"})
    with pytest.raises(ValueError, match="has no 'model.weights.h5'"):
        keras.saving.load_model(no_weights)
    bad_json = _write_zip(tmp_path / "bj.keras", {**members, "config.json": b"{not json"})
    with pytest.raises(ValueError, match="invalid 'config.json'"):
        keras.saving.load_model(bad_json)
    wrong_json = _write_zip(tmp_path / "wj.keras", {**members, "config.json": b"[1, 2]"})
    with pytest.raises(ValueError, match="Invalid model config"):
        keras.saving.load_model(wrong_json)
    garbage_h5 = _write_zip(tmp_path / "gh.keras", {**members, "model.weights.h5": b"\x00garbage" * 50})
    with pytest.raises(ValueError, match="not a valid HDF5 weights file"):
        keras.saving.load_model(garbage_h5)
    (tmp_path / "g.weights.h5").write_bytes(b"garbage" * 100)
    with pytest.raises(ValueError, match="not a valid HDF5 weights file"):
        keras.saving.load_weights(model, tmp_path / "g.weights.h5")
    (tmp_path / "g.pt").write_bytes(b"garbage" * 100)
    with pytest.raises(ValueError, match="not a valid torch weights file|Refusing"):
        keras.saving.load_weights(model, tmp_path / "g.pt")


def test_unknown_classes_are_refused(tmp_path):
    path, members, _ = _saved(tmp_path)
    evil = {"module": "os", "class_name": "system", "config": {"command": "echo hi"}, "registered_name": None}
    bad = _write_zip(tmp_path / "os.keras", {**members, "config.json": json.dumps(evil)})
    with pytest.raises(ValueError, match="Unknown layer: 'system'"):
        keras.saving.load_model(bad)
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["class_name"] = "eval"
    bad = _write_zip(tmp_path / "eval.keras", {**members, "config.json": json.dumps(config)})
    with pytest.raises(ValueError, match="Unknown layer: 'eval'"):
        keras.saving.load_model(bad)
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["config"]["activation"] = "eval"
    bad = _write_zip(tmp_path / "act.keras", {**members, "config.json": json.dumps(config)})
    with pytest.raises(ValueError, match="Could not rebuild the model"):
        keras.saving.load_model(bad)


def test_lambda_naming_a_builtin_function_is_refused(tmp_path):
    model = Sequential([Input((4,)), keras.layers.Lambda(keras.activations.relu)])
    keras.saving.save_model(model, tmp_path / "ok.keras")
    with zipfile.ZipFile(tmp_path / "ok.keras") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["config"]["function"]["config"] = "print"
    bad = _write_zip(tmp_path / "print.keras", {**members, "config.json": json.dumps(config)})
    with pytest.raises(ValueError, match="Could not locate function 'print'"):
        keras.saving.load_model(bad)
    np.testing.assert_array_equal(_out(keras.saving.load_model(tmp_path / "ok.keras"), X), np.maximum(X, 0))


def test_zip_members_with_absolute_paths_or_dotdot_are_refused(tmp_path):
    _, members, _ = _saved(tmp_path)
    for i, name in enumerate(["../evil.txt", "/etc/evil", "assets/../../evil"]):
        bad = _write_zip(tmp_path / f"slip{i}.keras", {**members, name: b"x"})
        with pytest.raises(ValueError, match="absolute path or `..`"):
            keras.saving.load_model(bad)


class _Boom:
    def __reduce__(self):
        return (sys.exit, ("code from the file ran",))


def test_pickled_code_in_pt_is_refused(tmp_path):
    model = Sequential([Input((4,)), keras.layers.Dense(2)])
    torch.save({"layers.0.kernel": torch.zeros(4, 2), "evil": _Boom()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="Refusing to load"):
        keras.saving.load_weights(model, tmp_path / "evil.pt")


def test_lambda_bytecode_needs_safe_mode_false(tmp_path):
    model = Sequential([Input((4,)), keras.layers.Dense(2), keras.layers.Lambda(lambda t: t * 2 + 1)])
    keras.saving.save_model(model, tmp_path / "l.keras")
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.saving.load_model(tmp_path / "l.keras")
    restored = keras.saving.load_model(tmp_path / "l.keras", safe_mode=False)
    np.testing.assert_array_equal(_out(restored, X), _out(model, X))


def test_h5py_missing_gives_install_hint(tmp_path, monkeypatch):
    model = Sequential([Input((4,)), keras.layers.Dense(2)])
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install h5py"):
        keras.saving.save_weights(model, tmp_path / "x.weights.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        keras.saving.save_weights(model, tmp_path / "x.pt")  # torch format needs no h5py


def test_links_and_bad_datasets_in_h5_are_refused(tmp_path):
    model = Sequential([Input((4,)), keras.layers.Dense(2)])
    path = tmp_path / "m.weights.h5"
    keras.saving.save_weights(model, path)
    with h5py.File(path, "a") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.SoftLink("/layers/dense/vars/1")
    with pytest.raises(ValueError, match="Not allowed: H5 weights file with a SoftLink"):
        keras.saving.load_weights(model, path)
    with h5py.File(path, "a") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = np.array([b"a", b"b"] * 4).reshape(4, 2)
    with pytest.raises(ValueError, match="damaged or not in Keras 3's layout"):
        keras.saving.load_weights(model, path)


@pytest.mark.parametrize("ext", [".weights.h5", ".pt"])
def test_byte_flipped_weight_files_load_or_raise_value_error(tmp_path, ext):
    """Seeded truncations and byte flips of a Keras 3 `.weights.h5` and a torch
    `.pt` state_dict: each `load_weights` succeeds (flips in unused bytes or in
    unchecksummed tensor data) or raises ValueError naming the file. torch's
    weights-only reader raised a bare AssertionError ("saved_id must be a
    tuple") on one damaged `.pt`."""
    import random

    def make():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                                 keras.layers.BatchNormalization(), keras.layers.Dense(2)])

    src = tmp_path / f"src{ext}"
    make().save_weights(src)
    data = src.read_bytes()
    rng = random.Random(1)  # (seed 1 reaches torch's AssertionError on the `.pt`)
    refused = 0
    for i in range(150):
        b = bytearray(data)
        if i % 3 == 0:
            b = b[: rng.randrange(len(b))]
        else:
            for _ in range(rng.randrange(1, 20)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        damaged = tmp_path / f"d{i}{ext}"
        damaged.write_bytes(bytes(b))
        try:
            make().load_weights(damaged)
        except ValueError as e:  # (a damaged group name gives Keras's variable-count mismatch error)
            assert damaged.name in str(e) or "in the file) expected" in str(e), e
            refused += 1
    assert refused >= 50  # every truncation is refused, at least


def _rewrite_config(src, dst, edit):
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    return _write_zip(dst, {**members, "config.json": json.dumps(config)})


def test_hand_edited_configs_raise_value_or_type_errors(tmp_path):
    """A seeded sweep replacing one leaf of a functional model's config.json
    (Conv2D, BatchNormalization, LSTM fed a mask, MultiHeadAttention) by a value
    of another type: each load works or raises ValueError / TypeError. A
    string in `output_layers` recursed without end (RecursionError) and a dict
    as a node's `mask` kwarg reached torch ("Could not infer dtype of dict")."""
    import random

    inp = keras.Input((6, 4))
    x = keras.layers.Masking()(inp)
    x = keras.layers.LSTM(5, return_sequences=True)(x)
    x = keras.layers.MultiHeadAttention(2, 4)(x, x)
    x = keras.layers.Reshape((6, 5, 1))(x)
    x = keras.layers.Conv2D(2, 3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    src = tmp_path / "src.keras"
    keras.Model(inp, out).save(src)
    with zipfile.ZipFile(src) as zf:
        config = json.loads(zf.read("config.json"))

    def leaves(o, path=()):
        if isinstance(o, dict):
            for k, v in o.items():
                yield from leaves(v, path + (k,))
        elif isinstance(o, list):
            for i, v in enumerate(o):
                yield from leaves(v, path + (i,))
        else:
            yield path

    paths = [p for p in leaves(config) if "input_shape" not in p and "batch_shape" not in p]
    rng = random.Random(0)
    values = ["abc", -1, 0, None, [1, 2], 2.5, True, {"a": 1}, ""]

    def set_leaf(path, value):
        def edit(c):
            for k in path[:-1]:
                c = c[k]
            c[path[-1]] = value
        return edit

    cases = [(("config", "output_layers", 0), "abc"), (("config", "output_layers", 0), {"a": "x"})]
    mask_kwargs = [p for p in paths if "kwargs" in p and "mask" in p]
    assert mask_kwargs  # the LSTM's node records the Masking layer's mask
    cases += [(mask_kwargs[0], {"a": 1})]
    cases += [(rng.choice(paths), rng.choice(values)) for _ in range(50)]
    x = np.zeros((2, 6, 4), "float32")
    for i, (path, value) in enumerate(cases):
        damaged = _rewrite_config(src, tmp_path / f"c{i}.keras", set_leaf(path, value))
        try:
            keras.models.load_model(damaged).predict(x, verbose=0)
        except (ValueError, TypeError):
            pass
