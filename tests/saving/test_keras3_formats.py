"""Keras 3 `.keras` / `.weights.h5` with real Keras 3, beyond one layer per
model: compiled state (training continues identically), masked graphs,
shared layers, nested models, `shapes_dict` build configs, the unzipped
directory layout (`zipped=False`), `load_weights` of a `.keras` archive,
`keras.models.load_model` / `save_model`, scalar variables, and loader
safety for these formats."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
import torch

import kerasish
from kerasish.saving import h5_weights
from kerasish.saving import saving_lib

h5py = pytest.importorskip("h5py")
TOL = {"rtol": 1e-4, "atol": 1e-5}
RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 6)).astype("float32")
Y = RNG.normal(size=(4, 2)).astype("float32")


def _randomize(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights(
        [
            rng.uniform(0.1, 1.0, w.shape).astype(w.dtype) if np.issubdtype(w.dtype, np.floating) else w
            for w in model.get_weights()
        ]
    )


def _out(model, x):
    if isinstance(model, kerasish.Model):
        xs = [torch.as_tensor(v) for v in x] if isinstance(x, list) else torch.as_tensor(x)
        with torch.no_grad():
            return model(xs, training=False).numpy()
    import keras

    return keras.ops.convert_to_numpy(model(x, training=False))


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def _both_ways(keras_ref, tmp_path, build, x, tol=TOL):
    """kerasish -> Keras and Keras -> kerasish through `.keras`, outputs equal."""
    q, k = build(kerasish), build(keras_ref)
    _randomize(q, 1)
    _randomize(k, 2)
    q.save(tmp_path / "q.keras")
    k.save(tmp_path / "k.keras")
    np.testing.assert_allclose(_out(keras_ref.saving.load_model(tmp_path / "q.keras"), x), _out(q, x), **tol)
    np.testing.assert_allclose(_out(kerasish.models.load_model(tmp_path / "k.keras"), x), _out(k, x), **tol)
    return q, k


# ------------------------------------------------------------------ graphs
def _masked(k):
    L = k.layers
    inp = L.Input((7,), dtype="int32")
    h = L.Embedding(12, 4, mask_zero=True)(inp)
    h = L.LSTM(3, return_sequences=True)(h)
    return k.Model(inp, L.Dense(2)(L.GRU(3)(h)))


def test_masked_graph_both_ways(keras_ref, tmp_path):
    x = RNG.integers(1, 12, size=(3, 7)).astype("int32")
    x[0, 3:] = 0
    x[1, 5:] = 0
    q, k = _both_ways(keras_ref, tmp_path, _masked, x)
    # the mask matters: the same model fed the unpadded tail gives other numbers
    unmasked = x.copy()
    unmasked[unmasked == 0] = 1
    assert not np.allclose(_out(q, unmasked), _out(q, x), **TOL)


def _shared(k):
    L = k.layers
    a, b = L.Input((6,)), L.Input((6,))
    dense = L.Dense(3, activation="tanh")
    return k.Model([a, b], L.Dense(2)(L.Concatenate()([dense(a), dense(b)])))


def test_shared_layer_both_ways(keras_ref, tmp_path):
    x = [X, X[::-1].copy()]
    q, _ = _both_ways(keras_ref, tmp_path, _shared, x)
    restored = keras_ref.saving.load_model(tmp_path / "q.keras")
    assert len(restored.get_layer("dense")._inbound_nodes) == 2  # still one layer, called twice
    assert len(kerasish.models.load_model(tmp_path / "k.keras").weights) == len(q.weights) == 4


def _nested(k):
    L = k.layers
    inner = k.Sequential([L.Input((6,)), L.Dense(4, activation="relu"), L.BatchNormalization()], name="inner")
    inp = L.Input((6,))
    return k.Model(inp, L.Dense(2)(inner(inp)))


def test_sequential_nested_in_functional_both_ways(keras_ref, tmp_path):
    q, _ = _both_ways(keras_ref, tmp_path, _nested, X)
    loaded = kerasish.models.load_model(tmp_path / "k.keras")
    assert type(loaded.get_layer("inner")).__name__ == "Sequential"
    # weights files too, into the twin
    k_twin = _nested(keras_ref)
    q.save_weights(tmp_path / "q.weights.h5")
    k_twin.load_weights(tmp_path / "q.weights.h5")
    np.testing.assert_allclose(_out(k_twin, X), _out(q, X), **TOL)


def test_multi_head_attention_writes_keras_shapes_dict(keras_ref):
    def build(k):
        L = k.layers
        q, v = L.Input((5, 4)), L.Input((3, 4))
        return k.Model([q, v], L.MultiHeadAttention(2, 3)(q, v))

    ours = next(c for c in build(kerasish).get_config()["layers"] if c["class_name"] == "MultiHeadAttention")
    theirs = next(c for c in build(keras_ref).get_config()["layers"] if c["class_name"] == "MultiHeadAttention")
    assert json.loads(json.dumps(ours["build_config"])) == json.loads(json.dumps(theirs["build_config"]))
    assert set(ours["build_config"]["shapes_dict"]) == {"query_shape", "value_shape"}
    layer = kerasish.layers.MultiHeadAttention(2, 3)
    layer.build_from_config(ours["build_config"])
    assert layer.built and tuple(layer.query.kernel.shape) == (4, 2, 3)


# ------------------------------------------------------------ compiled state
def _compiled(k):
    L = k.layers
    inp = L.Input((6,))
    model = k.Model(inp, L.Dense(2)(L.Dense(5, activation="tanh")(inp)))
    model.compile(optimizer=k.optimizers.Adam(0.01), loss="mse")
    return model


@pytest.mark.parametrize("saver", ["kerasish", "keras"])
def test_training_continues_identically_after_load(keras_ref, tmp_path, saver):
    src_k = keras_ref if saver == "keras" else kerasish
    dst_k = kerasish if saver == "keras" else keras_ref
    src = _compiled(src_k)
    _randomize(src, 3)
    for _ in range(3):
        src.train_on_batch(X, Y)
    path = tmp_path / "m.keras"
    src.save(path)
    dst = dst_k.saving.load_model(path)
    assert int(dst.optimizer.iterations) == int(src.optimizer.iterations) == 3
    src.train_on_batch(X, Y)
    dst.train_on_batch(X, Y)
    for a, b in zip(_weights(dst), _weights(src)):
        np.testing.assert_allclose(a, b, **TOL)


# ------------------------------------------------------- formats and entry points
def test_unzipped_directory_both_ways(keras_ref, tmp_path):
    q, k = _compiled(kerasish), _compiled(keras_ref)
    _randomize(q, 1)
    _randomize(k, 2)
    q.train_on_batch(X, Y)
    k.train_on_batch(X, Y)
    kerasish.models.save_model(q, tmp_path / "q_dir", zipped=False)
    assert sorted(os.listdir(tmp_path / "q_dir")) == ["config.json", "metadata.json", "model.weights.h5"]
    k.save(tmp_path / "k_dir", zipped=False)
    np.testing.assert_allclose(_out(keras_ref.saving.load_model(tmp_path / "q_dir"), X), _out(q, X), **TOL)
    q_from_k = kerasish.saving.load_model(tmp_path / "k_dir")
    assert q_from_k.compiled and int(q_from_k.optimizer.iterations) == 1
    np.testing.assert_allclose(_out(q_from_k, X), _out(k, X), **TOL)
    # overwriting replaces the directory as a whole
    _randomize(q, 5)
    q.save(tmp_path / "q_dir", zipped=False)
    np.testing.assert_allclose(_out(kerasish.models.load_model(tmp_path / "q_dir"), X), _out(q, X), **TOL)
    assert sorted(os.listdir(tmp_path)) == ["k_dir", "q_dir"]  # no temporary directories left
    with pytest.raises(ValueError, match="should not end in `.keras`"):
        q.save(tmp_path / "x.keras", zipped=False)
    with pytest.raises(FileExistsError):
        q.save(tmp_path / "q_dir", zipped=False, overwrite=False)


def test_failed_directory_save_keeps_previous(tmp_path, monkeypatch):
    q = _compiled(kerasish)
    q.save(tmp_path / "d", zipped=False)
    before = {n: (tmp_path / "d" / n).read_bytes() for n in os.listdir(tmp_path / "d")}

    def boom(root, f):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(h5_weights, "write_weights", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        q.save(tmp_path / "d", zipped=False)
    assert {n: (tmp_path / "d" / n).read_bytes() for n in os.listdir(tmp_path / "d")} == before
    assert os.listdir(tmp_path) == ["d"]


def test_models_namespace_has_load_and_save_model():
    assert kerasish.models.load_model is kerasish.saving.load_model
    assert kerasish.models.save_model is kerasish.saving.save_model


def test_load_weights_from_keras_archive(keras_ref, tmp_path):
    k = _compiled(keras_ref)
    _randomize(k, 4)
    k.save(tmp_path / "k.keras")
    q = _compiled(kerasish)
    q.load_weights(tmp_path / "k.keras")
    np.testing.assert_allclose(_out(q, X), _out(k, X), **TOL)
    _randomize(q, 6)
    q.save(tmp_path / "q.keras")
    k.load_weights(tmp_path / "q.keras")
    np.testing.assert_allclose(_out(k, X), _out(q, X), **TOL)


def test_scalar_variable_reloads_from_own_weights_file(tmp_path):
    def build():
        inp = kerasish.layers.Input((3,))
        norm = kerasish.layers.Normalization()
        return kerasish.Model(inp, norm(inp)), norm

    model, norm = build()
    norm.adapt(RNG.normal(2.0, 3.0, size=(50, 3)).astype("float32"))
    norm.count.assign(50)  # adapt leaves it 0, as in Keras 3: give it a value that must travel
    model.save_weights(tmp_path / "n.weights.h5")
    twin, twin_norm = build()
    twin.load_weights(tmp_path / "n.weights.h5")
    assert twin_norm.count.shape == () and int(twin_norm.count) == int(norm.count) == 50
    np.testing.assert_allclose(_out(twin, X[:, :3]), _out(model, X[:, :3]), **TOL)


# ------------------------------------------------------------------ safety
def test_hostile_optimizer_dataset_is_refused_before_reading(tmp_path):
    q = _compiled(kerasish)
    q.train_on_batch(X, Y)
    q.save_weights(tmp_path / "m.weights.h5")
    expected = _weights(q)
    with h5py.File(tmp_path / "m.weights.h5", "a") as f:
        del f["optimizer/vars/2"]
        # 8 GiB declared, a few bytes stored: must be refused from the shape alone
        f.create_dataset("optimizer/vars/2", shape=(1 << 31,), dtype="float32", chunks=(1 << 20,), compression="gzip")
    twin = _compiled(kerasish)
    _randomize(twin, 9)
    twin.optimizer.build(twin.trainable_variables)  # built, so that it reads its slots (unbuilt, it skips them)
    before = _weights(twin)
    with pytest.raises(ValueError, match=r"optimizer.*shape \(2147483648,\)"):
        twin.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(_weights(twin), before):  # nothing was assigned
        np.testing.assert_array_equal(a, b)
    assert not any(np.array_equal(a, b) for a, b in zip(before, expected))


def test_compression_bomb_member_is_refused(tmp_path, monkeypatch):
    q = _compiled(kerasish)
    path = tmp_path / "z.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps(saving_lib.serialize_model(q)))
        zf.writestr("model.weights.h5", b"\0" * 200_000)
    monkeypatch.setattr(saving_lib, "_BOMB_FLOOR_BYTES", 100_000)
    with pytest.raises(ValueError, match=f"model.weights.h5' of '{path}'.*decompression bomb"):
        kerasish.saving.load_model(path)


def test_damaged_directory_names_what_is_wrong(tmp_path):
    q = _compiled(kerasish)
    q.save(tmp_path / "d", zipped=False)
    os.remove(tmp_path / "d" / "model.weights.h5")
    with pytest.raises(ValueError, match="has no 'model.weights.h5'"):
        kerasish.saving.load_model(tmp_path / "d")
    (tmp_path / "d" / "model.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(ValueError, match="d/model.weights.h5' is not a valid HDF5"):
        kerasish.saving.load_model(tmp_path / "d")
    (tmp_path / "d" / "config.json").write_text("[" * 100_000)
    with pytest.raises(ValueError, match="invalid 'config.json'"):
        kerasish.saving.load_model(tmp_path / "d")


@pytest.mark.parametrize("optimizer", ["Nadam", "Adam", "SGD", "Adadelta", "Lion"])
def test_scalar_siblings_reload_from_own_weights_file(keras_ref, tmp_path, optimizer):
    """Every 0-d variable in a compiled, trained model's `.weights.h5`
    (Normalization's `count`, the optimizer's `iterations`, learning rate
    and Nadam's `u_product`) reloads 0-d into kerasish and into Keras 3."""

    def build(lib):
        inp = lib.layers.Input((6,))
        norm = lib.layers.Normalization()
        norm.adapt(X)
        model = lib.Model(inp, lib.layers.Dense(2)(norm(inp)))
        model.compile(getattr(lib.optimizers, optimizer)(), "mse", metrics=["mae"])
        return model

    model = build(kerasish)
    model.fit(X, Y, epochs=2, batch_size=2, verbose=0)
    model.save_weights(tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5") as f:
        scalars = []
        f.visititems(lambda name, obj: scalars.append(name) if getattr(obj, "shape", None) == () else None)
    assert "optimizer/vars/0" in scalars and "layers/normalization/vars/2" in scalars

    twin = build(kerasish)
    twin.optimizer.build(twin.trainable_variables)
    twin.load_weights(tmp_path / "m.weights.h5")
    assert int(twin.optimizer.iterations) == int(model.optimizer.iterations) == 4
    for a, b in zip(twin.optimizer.variables, model.optimizer.variables):
        assert tuple(a.shape) == tuple(b.shape)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)
    saved_out = _out(model, X)
    np.testing.assert_allclose(_out(twin, X), saved_out, **TOL)
    # training continues identically after the reload
    model.train_on_batch(X, Y)
    twin.train_on_batch(X, Y)
    np.testing.assert_allclose(_out(twin, X), _out(model, X), **TOL)

    theirs = build(keras_ref)
    theirs.optimizer.build(theirs.trainable_variables)
    theirs.load_weights(tmp_path / "m.weights.h5")
    assert int(keras_ref.ops.convert_to_numpy(theirs.optimizer.iterations)) == 4
    np.testing.assert_allclose(_out(theirs, X), saved_out, **TOL)
