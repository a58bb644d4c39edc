"""`.keras`, `.weights.h5` and unzipped-directory files written by Keras 3.0.5,
3.3.3, 3.6.0, 3.10.0, 3.14.0 and 3.15.1 (torch backend), recorded by
tools/fixtures/make_keras3_versions.py into
tests/fixtures/keras3_versions/<version>/v2/ (gzipped) with what that release
computed: a Transformer block with padding and causal masks, GRUs with
masking (a Sequential without an Input; Masking + Bidirectional), a Conv1D
text model, a mixed_float16 CNN, and for the two compiled ones the optimizer
state after two steps and the step after that.

tests/saving/test_old_keras3_files.py covers the first set (MLPs, CNN, LSTM,
custom layer, optimizers, quantized, sharded); this file adds these models."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest
import torch

import kerasish

pytest.importorskip("h5py")
L = kerasish.layers
HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras3_versions")


def _release(version):
    return tuple(int(p) for p in version.split("-")[0].split("."))


VERSIONS = sorted(
    (v for v in os.listdir(HERE) if os.path.exists(os.path.join(HERE, v, "v2", "record.json"))), key=_release
)
NAMES = ["transformer", "gru_mask", "bigru_masking", "text", "mixed_cnn"]
COMPILED = ["transformer", "text"]
TOL = {"rtol": 1e-5, "atol": 1e-6}
# float16 activations: Keras rounds the convolution and its bias separately,
# kerasish's fused op once, so one float16 ulp (2**-8 at 6.0) may differ
MIXED_TOL = {"rtol": 2e-3, "atol": 2e-3}


def test_the_releases_are_all_there():
    assert VERSIONS == ["3.0.5", "3.3.3", "3.6.0", "3.10.0", "3.14.0", "3.15.1"]
    assert set(SOME_VERSIONS) <= set(VERSIONS)


def _record(version):
    d = os.path.join(HERE, version, "v2")
    with open(os.path.join(d, "record.json")) as f:
        meta = json.load(f)
    assert meta["keras"] == version and meta["backend"] == "torch"
    return d, meta, dict(np.load(os.path.join(d, "record.npz"), allow_pickle=False))


def _unpack(d, fname, tmp_path):
    """The gunzipped file (or folder of files) in tmp_path."""
    src, dst = os.path.join(d, fname), tmp_path / fname
    if os.path.isdir(src):
        dst.mkdir()
        for member in os.listdir(src):
            with gzip.open(os.path.join(src, member)) as g:
                (dst / member[: -len(".gz")]).write_bytes(g.read())
        return dst
    with gzip.open(src + ".gz") as g:
        dst.write_bytes(g.read())
    return dst


def _predict(model, x):
    return np.asarray(model.predict(x, verbose=0))


def _tol(name):
    return MIXED_TOL if name == "mixed_cnn" else TOL


# ---------------------------------------------- the fixture models, in kerasish code
def build_transformer():
    tok = kerasish.Input((8,), dtype="int32", name="tokens")
    h = L.Embedding(20, 8, mask_zero=True, name="emb")(tok)
    a = L.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(h, h, use_causal_mask=True)
    h = L.LayerNormalization(epsilon=1e-5, name="ln1")(L.Add(name="res1")([h, a]))
    f = L.Dense(16, activation="relu", name="ff1")(h)
    f = L.Dense(8, name="ff2")(f)
    h = L.LayerNormalization(name="ln2")(L.Add(name="res2")([h, f]))
    h = L.GlobalAveragePooling1D(name="pool")(h)
    return kerasish.Model(tok, L.Dense(3, activation="softmax", name="head")(h), name="transformer")


def build_gru_mask():
    return kerasish.Sequential(
        [
            L.Embedding(15, 5, mask_zero=True, name="emb"),
            L.GRU(6, return_sequences=True, name="gru1"),
            L.GRU(4, reset_after=False, go_backwards=True, name="gru2"),
            L.Dense(2, name="head"),
        ],
        name="gru_mask",
    )


def build_bigru_masking():
    x = kerasish.Input((6, 3), name="seq")
    h = L.Masking(mask_value=0.0, name="masking")(x)
    h = L.Bidirectional(L.GRU(4, return_sequences=True, name="g"), merge_mode="sum", name="bi")(h)
    h = L.SimpleRNN(3, name="rnn")(h)
    return kerasish.Model(x, L.Dense(2, name="head")(h), name="bigru_masking")


def build_text():
    tok = kerasish.Input((10,), dtype="int32", name="tokens")
    h = L.Embedding(30, 6, name="emb")(tok)
    h = L.Conv1D(5, 3, padding="same", activation="relu", name="conv")(h)
    h = L.BatchNormalization(name="bn")(h)
    h = L.GlobalMaxPooling1D(name="pool")(h)
    return kerasish.Model(tok, L.Dense(1, activation="sigmoid", name="head")(h), name="text")


def build_mixed_cnn():
    x = kerasish.Input((6, 6, 2), name="img")
    h = L.Conv2D(4, 3, activation="relu", dtype="mixed_float16", name="conv")(x)
    h = L.BatchNormalization(dtype="mixed_float16", name="bn")(h)
    h = L.GlobalAveragePooling2D(dtype="mixed_float16", name="pool")(h)
    return kerasish.Model(x, L.Dense(2, dtype="float32", name="head")(h), name="mixed_cnn")


def compile_transformer(model):
    model.compile(
        optimizer=kerasish.optimizers.AdamW(learning_rate=0.01, weight_decay=0.05, clipnorm=1.0),
        loss=kerasish.losses.SparseCategoricalCrossentropy(),
        metrics=["sparse_categorical_accuracy"],
    )


def compile_text(model):
    lr = kerasish.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    model.compile(
        optimizer=kerasish.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True),
        loss="binary_crossentropy",
        metrics=["accuracy", kerasish.metrics.Precision(name="prec")],
    )


BUILDERS = {
    "transformer": build_transformer,
    "gru_mask": build_gru_mask,
    "bigru_masking": build_bigru_masking,
    "text": build_text,
    "mixed_cnn": build_mixed_cnn,
}
COMPILERS = {"transformer": compile_transformer, "text": compile_text}


# Keras 3.0.5 and 3.3.3 on torch computed other gradients for the embedding and
# the attention of `transformer` (same loss, same predictions; 3.4/3.5 not
# recorded); Keras 3.6.0 and later, Keras 3.15.1 resuming these very files, and
# kerasish agree (continued.npz).
def _next_weights_want(version, name, d, rec, index, path):
    if _release(version) < (3, 6, 0) and name == "transformer" and path.split("/")[0] in ("emb", "mha"):
        return dict(np.load(os.path.join(d, "continued.npz"), allow_pickle=False))[f"{name}_w{index}"]
    return rec[f"{name}_next_w{index}"]


def _check_next_step(model, version, name, d, meta, rec, code_built=False):
    loss = model.train_on_batch(rec[f"{name}_next_x"], rec[f"{name}_next_y"], return_dict=True)["loss"]
    if code_built:  # see `_code_built_differs`
        cont = dict(np.load(os.path.join(d, "continued.npz"), allow_pickle=False))
        np.testing.assert_allclose(float(loss), float(cont["code_transformer_loss"]), rtol=1e-5)
        for i, (v, got) in enumerate(zip(model.weights, model.get_weights(), strict=True)):
            np.testing.assert_allclose(got, cont[f"code_transformer_w{i}"], rtol=1e-5, atol=2e-6, err_msg=v.path)
        return
    np.testing.assert_allclose(float(loss), meta[f"{name}_next_loss"], rtol=1e-5)
    for i, (v, got) in enumerate(zip(model.weights, model.get_weights(), strict=True)):
        want = _next_weights_want(version, name, d, rec, i, v.path)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6, err_msg=f"{v.path} ({version})")


def _code_built_differs(version, name):
    """Keras 3.0-3.3 graphs of `transformer` record no mask for the pooling
    (`"mask": null`: the attention's output carried none then), so that
    release's model averages over padded steps; the same code run today (Keras
    3.6+, and kerasish) pools with the mask. A weights file of that release in
    today's code is compared with Keras 3.15.1 doing the same (continued.npz)."""
    return name == "transformer" and _release(version) < (3, 6, 0)


# --------------------------------------------------------------------- the tests
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", NAMES)
def test_archive_predicts_what_that_keras_recorded(version, name, tmp_path):
    d, meta, rec = _record(version)
    model = kerasish.saving.load_model(_unpack(d, f"{name}.keras", tmp_path))
    np.testing.assert_allclose(_predict(model, rec[f"{name}_x"]), rec[f"{name}_pred"], **_tol(name))
    if name == "mixed_cnn":
        assert model.get_layer("conv").dtype_policy.name == "mixed_float16"
        assert model.get_layer("conv").kernel.dtype == torch.float32
        assert model.get_layer("head").dtype_policy.name == "float32"
    if name == "gru_mask":
        assert isinstance(model, kerasish.Sequential) and model.built
        assert model.get_layer("gru2").go_backwards and not model.get_layer("gru2").reset_after


# the `.weights.h5` layout is the archive's `model.weights.h5` (read above for every
# release); these three spread over the range keep the suite fast
SOME_VERSIONS = ["3.0.5", "3.6.0", "3.14.0"]


@pytest.mark.parametrize("version", SOME_VERSIONS)
@pytest.mark.parametrize("name", NAMES)
def test_weights_file_loads_into_the_model_built_in_kerasish_code(version, name, tmp_path):
    """A `save_weights` file of that release into the same architecture written
    for kerasish: the predictions, and for a compiled model the optimizer state
    (one more step equals that release's)."""
    d, meta, rec = _record(version)
    model = BUILDERS[name]()
    x = rec[f"{name}_x"]
    if not model.built:
        model(x[:1])
    if name in COMPILERS:
        COMPILERS[name](model)
        model.optimizer.build(model.trainable_variables)  # as Keras needs, or it skips the optimizer's state
    model.load_weights(_unpack(d, f"{name}.weights.h5", tmp_path))
    code_built = _code_built_differs(version, name)
    if code_built:
        want = dict(np.load(os.path.join(d, "continued.npz"), allow_pickle=False))["code_transformer_pred"]
        assert np.abs(want - rec[f"{name}_pred"]).max() > 1e-3  # what the release's own graph did differs
    else:
        want = rec[f"{name}_pred"]
    np.testing.assert_allclose(_predict(model, x), want, **_tol(name))
    if name in COMPILERS:
        assert int(model.optimizer.iterations) == meta[f"{name}_iterations"]
        _check_next_step(model, version, name, d, meta, rec, code_built=code_built)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", COMPILED)
def test_compiled_archive_evaluates_and_resumes_training_as_that_keras_did(version, name, tmp_path):
    d, meta, rec = _record(version)
    model = kerasish.saving.load_model(_unpack(d, f"{name}.keras", tmp_path))
    opt = model.optimizer
    assert int(opt.iterations) == meta[f"{name}_iterations"] == 2
    if name == "transformer":
        assert type(opt).__name__ == "AdamW"
        assert (opt.weight_decay, opt.clipnorm) == (0.05, 1.0)
        assert isinstance(model.loss, kerasish.losses.SparseCategoricalCrossentropy)
    else:
        assert type(opt).__name__ == "SGD" and opt.nesterov and opt.momentum == 0.9
        schedule = opt.get_config()["learning_rate"]
        assert schedule["class_name"] == "ExponentialDecay"
        assert {k: schedule["config"][k] for k in ("initial_learning_rate", "decay_steps", "decay_rate")} == {
            "initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5}
        # 0.1 * 0.5 ** (iterations / 2): the schedule resumes where it was
        np.testing.assert_allclose(float(opt.learning_rate), 0.1 * 0.5 ** (2 / 2), rtol=1e-6)
    logs = model.evaluate(rec[f"{name}_x"], rec[f"{name}_y"], verbose=0, return_dict=True)
    assert set(logs) == set(meta[f"{name}_eval"])
    for k, v in meta[f"{name}_eval"].items():
        np.testing.assert_allclose(float(logs[k]), v, rtol=1e-5, atol=1e-6, err_msg=k)
    model.reset_metrics()
    _check_next_step(model, version, name, d, meta, rec)


@pytest.mark.parametrize("version", [v for v in VERSIONS if _release(v) < (3, 6, 0)])
def test_the_release_quirk_is_only_in_the_gradients_upstream_of_the_attention(version):
    """The documented difference above is confined: the release's own next
    step and Keras 3.15.1's continuation of the same file agree on the loss
    and on every weight after the attention; they differ upstream."""
    d, meta, rec = _record(version)
    cont = dict(np.load(os.path.join(d, "continued.npz"), allow_pickle=False))
    assert str(cont["keras"]) == "3.15.1"
    np.testing.assert_allclose(float(cont["transformer_loss"]), meta["transformer_next_loss"], rtol=1e-6)
    paths = [v.path for v in build_transformer().weights]
    upstream = [i for i, p in enumerate(paths) if p.split("/")[0] in ("emb", "mha")]
    diffs = [float(np.abs(cont[f"transformer_w{i}"] - rec[f"transformer_next_w{i}"]).max()) for i in range(len(paths))]
    assert max(diffs[i] for i in upstream) > 1e-3
    for i, p in enumerate(paths):
        if i not in upstream:
            assert diffs[i] < 1e-6, p


@pytest.mark.parametrize("version", VERSIONS)
def test_unzipped_directory_from_that_release(version, tmp_path):
    d, meta, rec = _record(version)
    if "transformer_dir" not in meta["files"]:
        assert _release(version) < (3, 6, 0)
        pytest.skip(f"Keras {version}'s save has no `zipped` argument")
    model = kerasish.saving.load_model(_unpack(d, "transformer_dir", tmp_path))
    np.testing.assert_allclose(_predict(model, rec["transformer_x"]), rec["transformer_pred"], **TOL)
    assert int(model.optimizer.iterations) == 2


# the oldest graph layout (Keras 3.0-3.3: explicit `NotEqual` masks, `"mask": null`) and the newer one
@pytest.mark.parametrize("version", ["3.0.5", "3.6.0"])
@pytest.mark.parametrize("name", NAMES)
def test_resaved_file_loads_in_installed_keras(keras_ref, version, name, tmp_path):
    d, meta, rec = _record(version)
    model = kerasish.saving.load_model(_unpack(d, f"{name}.keras", tmp_path))
    model.save(tmp_path / "resaved.keras")
    ref = keras_ref.saving.load_model(tmp_path / "resaved.keras")
    np.testing.assert_allclose(np.asarray(ref.predict(rec[f"{name}_x"], verbose=0)), rec[f"{name}_pred"], **_tol(name))
    if name in COMPILED:
        assert int(ref.optimizer.iterations) == 2
        loss = ref.train_on_batch(rec[f"{name}_next_x"], rec[f"{name}_next_y"], return_dict=True)["loss"]
        np.testing.assert_allclose(float(loss), meta[f"{name}_next_loss"], rtol=1e-5)


def _h5_entries(path):
    import h5py

    entries = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, obj: entries.__setitem__(k, np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None)
    return entries


@pytest.mark.parametrize("version", ["3.0.5", "3.14.0"])
@pytest.mark.parametrize("name", NAMES)
def test_resaved_weights_file_has_that_releases_layout(version, name, tmp_path):
    """kerasish's `save_weights` of a model loaded from that release's archive
    holds the same datasets (paths, shapes, values, optimizer slots) as the
    `.weights.h5` that release wrote; with the release's venv (see the
    generator's `--check-resaved-weights`) each such file loaded into the model
    built by that release predicts its recorded numbers."""
    d, meta, rec = _record(version)
    model = kerasish.saving.load_model(_unpack(d, f"{name}.keras", tmp_path))
    model.save_weights(tmp_path / "ours.weights.h5")
    ours, theirs = _h5_entries(tmp_path / "ours.weights.h5"), _h5_entries(_unpack(d, f"{name}.weights.h5", tmp_path))
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        assert ours[key].shape == value.shape and ours[key].dtype == value.dtype, key
        np.testing.assert_array_equal(ours[key], value, err_msg=key)
