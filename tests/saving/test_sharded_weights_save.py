"""`save_weights("m.weights.json", max_shard_size=...)`: kerasish writes Keras
3's sharded weight files (it raised before). Checked against the installed
Keras 3 (torch backend) on the same weights: the same index (weight map and
total size), the same shard names, the same groups, datasets and name
attributes in every shard; files move both ways; a trained model's optimizer
state included; Keras's errors; a failed save leaves no file behind."""

import json
import os

import numpy as np
import pytest

import kerasish as keras

h5py = pytest.importorskip("h5py", reason="the sharded weight files are HDF5 (h5py is a test extra)")

TOL = {"rtol": 1e-6, "atol": 1e-6}


def _model(lib):
    layers = lib.layers
    inputs = lib.Input((6, 3), name="inp")
    x = layers.Conv1D(8, 3, name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.LSTM(5, name="lstm")(x)
    x = layers.Dense(16, activation="relu", name="d1")(x)
    outputs = layers.Dense(2, name="d2")(x)
    return lib.Model(inputs, outputs, name="net")


def _pair(keras_ref, compiled=False):
    ref, ours = _model(keras_ref), _model(keras)
    rng = np.random.default_rng(0)
    ref.set_weights([rng.normal(scale=0.3, size=w.shape).astype("float32") for w in ref.get_weights()])
    ours.set_weights(ref.get_weights())
    if compiled:
        x, y = rng.normal(size=(8, 6, 3)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
        for m, lib in ((ref, keras_ref), (ours, keras)):
            m.compile(optimizer=lib.optimizers.Adam(0.01, name="adam"), loss="mse")
            m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return ours, ref


def _h5_tree(path):
    """Every group (with its attributes) and dataset (with its values) of one file."""
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = ("dataset", obj.shape, str(obj.dtype), np.asarray(obj[()]), dict(obj.attrs))
        else:
            out[name] = ("group", {k: str(v) for k, v in obj.attrs.items()})

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def _assert_same_h5(a, b, tol):
    ta, tb = _h5_tree(a), _h5_tree(b)
    assert sorted(ta) == sorted(tb)
    for key in ta:
        if ta[key][0] == "group":
            assert ta[key] == tb[key], key
        else:
            kind, shape, dtype, values, attrs = ta[key]
            assert (shape, dtype, attrs) == tb[key][1:3] + (tb[key][4],), key
            np.testing.assert_allclose(values, tb[key][3], err_msg=key, **tol)


@pytest.mark.parametrize("compiled", [False, True], ids=["weights", "with-optimizer"])
@pytest.mark.parametrize("max_shard_size", [1e-6, 6.5e-7])  # a few KB: several shards, groups split between them
def test_files_equal_keras(keras_ref, tmp_path, compiled, max_shard_size):
    ours, ref = _pair(keras_ref, compiled)
    (tmp_path / "ours").mkdir()
    (tmp_path / "ref").mkdir()
    ours.save_weights(tmp_path / "ours" / "m.weights.json", max_shard_size=max_shard_size)
    ref.save_weights(tmp_path / "ref" / "m.weights.json", max_shard_size=max_shard_size)
    names = sorted(os.listdir(tmp_path / "ref"))
    assert sorted(os.listdir(tmp_path / "ours")) == names
    assert len(names) > 3
    index_ours = json.loads((tmp_path / "ours" / "m.weights.json").read_text())
    index_ref = json.loads((tmp_path / "ref" / "m.weights.json").read_text())
    assert index_ours == index_ref
    assert any(isinstance(v, list) and len(v) > 1 for v in index_ref["weight_map"].values())  # a straddling group
    for name in names:
        if name.endswith(".h5"):
            # after two Adam steps the frameworks' values differ by float rounding (LSTM and BN kernels differ)
            _assert_same_h5(tmp_path / "ours" / name, tmp_path / "ref" / name,
                            {"rtol": 1e-4, "atol": 1e-5} if compiled else TOL)


def test_files_move_both_ways(keras_ref, tmp_path):
    ours, ref = _pair(keras_ref)
    ours.save_weights(tmp_path / "ours.weights.json", max_shard_size=1e-6)
    fresh_ref = _model(keras_ref)
    fresh_ref.load_weights(tmp_path / "ours.weights.json")
    x = np.random.default_rng(1).normal(size=(4, 6, 3)).astype("float32")
    want = ours.predict(x, verbose=0)
    np.testing.assert_allclose(np.asarray(fresh_ref.predict(x, verbose=0)), want, **TOL)
    fresh_ref.save_weights(tmp_path / "ref.weights.json", max_shard_size=1e-6)
    fresh = _model(keras)
    fresh.load_weights(tmp_path / "ref.weights.json")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), want, **TOL)


def test_an_h5_name_becomes_json_with_keras_warning(keras_ref, tmp_path):
    ours, _ = _pair(keras_ref)
    with pytest.warns(UserWarning, match="requires `\\*.json` as the extension"):
        ours.save_weights(tmp_path / "m.weights.h5", max_shard_size=1e-6)
    assert (tmp_path / "m.weights.json").exists() and not (tmp_path / "m.weights.h5").exists()
    fresh = _model(keras)
    fresh.load_weights(tmp_path / "m.weights.json")
    for a, b in zip(fresh.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_errors_match_keras_and_a_failed_save_leaves_nothing(keras_ref, tmp_path):
    ours, ref = _pair(keras_ref)
    for m in (ours, ref):
        with pytest.raises(ValueError, match="must end in `.weights.json` when `max_shard_size` is specified"):
            m.save_weights(tmp_path / "m.pt", max_shard_size=1)
    # the LSTM kernel (3 x 20 float32 = 240 B) does not fit a 100-byte shard: Keras's error, no files
    for m in (ours, ref):
        with pytest.raises(ValueError, match="exceeds the maximum shard size"):
            m.save_weights(tmp_path / "small.weights.json", max_shard_size=100 / 1024 ** 3)
        for leftover in tmp_path.iterdir():
            if m is ours:
                pytest.fail(f"a failed save left {leftover.name}")
            leftover.unlink()  # (Keras leaves its partial shards)
    with pytest.raises(ValueError, match="max_shard_size"):
        ours.save_weights(tmp_path / "m.weights.json", max_shard_size="1GB")
    ours.save_weights(tmp_path / "m.weights.json", max_shard_size=1)
    with pytest.raises(FileExistsError):
        ours.save_weights(tmp_path / "m.weights.json", max_shard_size=1, overwrite=False)
    assert json.loads((tmp_path / "m.weights.json").read_text())["weight_map"]
