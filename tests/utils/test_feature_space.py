"""`keras.utils.FeatureSpace` and string-input functional models against
Keras 3 (TensorFlow backend: Keras's FeatureSpace, StringLookup and
TextVectorization need TensorFlow even under torch). The reference is the
record and the `.keras` files written by
tools/fixtures/make_keras3_strings_fixture.py."""

import json
import os

import numpy as np
import pytest
import torch

import kerasish as keras

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras3_strings")
FS = keras.utils.FeatureSpace
NAMES = ["f", "fn", "fr", "fd", "ic", "sc", "sh", "ih"]


@pytest.fixture(scope="module")
def record():
    rec = np.load(os.path.join(FIXTURES, "record.npz"))
    with open(os.path.join(FIXTURES, "record.json")) as f:
        meta = json.load(f)
    return rec, meta


def _data(rec):
    return {k: rec["fs_" + k] for k in NAMES}


def _concat_space():
    features = {
        "f": "float",
        "fn": "float_normalized",
        "fr": FS.float_rescaled(scale=0.5, offset=1.0),
        "fd": FS.float_discretized(num_bins=4),
        "ic": "integer_categorical",
        "sc": FS.string_categorical(num_oov_indices=2),
        "sh": "string_hashed",
        "ih": FS.integer_hashed(num_bins=7),
    }
    return FS(features, crosses=[("sc", "ic"), FS.cross(("sh", "ih"), crossing_dim=5)], crossing_dim=9,
              hashing_dim=11, output_mode="concat")


def _dict_space():
    return FS(
        {
            "fd": FS.float_discretized(num_bins=3, output_mode="int"),
            "sc": FS.string_categorical(output_mode="int"),
            "ic": FS.integer_categorical(max_tokens=4),
            "fn": "float_normalized",
        },
        crosses=[FS.cross(("sc", "ic"), crossing_dim=6, output_mode="int")],
        output_mode="dict",
    )


def _query(rec, keys=NAMES):
    return {k: rec["fs_" + k][:7] for k in keys}


def test_concat_adapt_and_encode_match_keras(record):
    rec, meta = record
    fs = _concat_space()
    fs.adapt(_data(rec))
    assert fs.preprocessors["sc"].get_vocabulary() == meta["fs_concat_vocab_sc"]
    assert [int(v) for v in fs.preprocessors["ic"].get_vocabulary()] == meta["fs_concat_vocab_ic"]
    np.testing.assert_allclose(fs.preprocessors["fd"].bin_boundaries, meta["fs_concat_bins_fd"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fs.preprocessors["fn"].mean).reshape(-1),
                               rec["fs_concat_mean_fn"].reshape(-1), rtol=1e-5)
    out = fs(_query(rec))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), rec["fs_concat"], rtol=1e-5, atol=1e-6)
    # a single row of scalars comes back unbatched, as in Keras
    single = fs({k: v[3] for k, v in _query(rec).items()})
    np.testing.assert_allclose(single.numpy(), rec["fs_concat_single"], rtol=1e-5, atol=1e-6)
    assert fs.get_encoded_features().shape == tuple(meta["fs_encoded_shape"])


def test_dict_mode_matches_keras(record):
    rec, meta = record
    fs = _dict_space()
    fs.adapt(_data(rec))
    keys = ("fd", "sc", "ic", "fn")
    out = fs(_query(rec, keys))
    assert sorted(out) == meta["fs_dict_keys"]
    for k, v in out.items():
        ref = rec["fs_dict_" + k]
        assert v.shape == ref.shape, k
        assert v.is_floating_point() == np.issubdtype(ref.dtype, np.floating), k
        np.testing.assert_allclose(v.numpy(), ref, rtol=1e-5, atol=1e-6, err_msg=k)
    single = fs({k: rec["fs_" + k][2] for k in keys})
    for k, v in single.items():
        np.testing.assert_allclose(v.numpy(), rec["fs_dict_single_" + k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("form", ["rows", "dataset", "dataloader"])
def test_adapt_on_rows_datasets_and_loaders(record, form):
    """Without tf.data: a list of dict rows, a torch Dataset of rows and a
    DataLoader of batches adapt to the same state as the dict of columns."""
    rec, _ = record
    data = _data(rec)
    n = len(data["f"])
    rows = [{k: v[i] for k, v in data.items()} for i in range(n)]

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return {k: (v[i] if v.dtype.kind == "U" else torch.as_tensor(v[i])) for k, v in data.items()}

    source = {"rows": rows, "dataset": Rows(),
              "dataloader": torch.utils.data.DataLoader(Rows(), batch_size=5)}[form]
    fs = _concat_space()
    fs.adapt(source)
    np.testing.assert_allclose(fs(_query(rec)).numpy(), rec["fs_concat"], rtol=1e-5, atol=1e-6)


def test_inference_model_pattern_and_keras_file(record, tmp_path):
    """keras.io's "structured data classification with FeatureSpace": a model
    on `get_encoded_features()` and an inference model from `get_inputs()`
    taking raw strings; Keras's saved inference model loads and predicts the
    same, and kerasish's own file reloads."""
    rec, _ = record
    loaded = keras.models.load_model(os.path.join(FIXTURES, "fs_inference_model.keras"))
    query = {k: v[:, None] for k, v in _query(rec).items()}
    np.testing.assert_allclose(loaded.predict(query, verbose=0), rec["fs_inference_pred"], rtol=1e-5, atol=1e-6)

    fs = _concat_space()
    fs.adapt(_data(rec))
    encoded = fs.get_encoded_features()
    hidden = keras.layers.Dense(6, activation="relu", name="fs_hidden")(encoded)
    pred = keras.layers.Dense(1, activation="sigmoid", name="fs_out")(hidden)
    training_model = keras.Model(encoded, pred)
    inference_model = keras.Model(fs.get_inputs(), pred)
    for name in ("fs_hidden", "fs_out"):
        inference_model.get_layer(name).set_weights(loaded.get_layer(name).get_weights())
    np.testing.assert_allclose(inference_model.predict(query, verbose=0), rec["fs_inference_pred"],
                               rtol=1e-5, atol=1e-6)
    # training on the encoded features, as the example does
    training_model.compile(optimizer="adam", loss="binary_crossentropy")
    x = fs(_data(rec))
    y = (rec["fs_f"] > 0).astype("float32")[:, None]
    training_model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = str(tmp_path / "inference.keras")
    inference_model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(query, verbose=0), inference_model.predict(query, verbose=0),
                               rtol=1e-6)


def test_feature_space_save_load_both_ways(record, tmp_path):
    rec, _ = record
    keras_fs = keras.models.load_model(os.path.join(FIXTURES, "feature_space.keras"))
    assert isinstance(keras_fs, FS)
    np.testing.assert_allclose(keras_fs(_query(rec)).numpy(), rec["fs_concat"], rtol=1e-5, atol=1e-6)
    fs = _concat_space()
    fs.adapt(_data(rec))
    path = str(tmp_path / "fs.keras")
    fs.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again(_query(rec)).numpy(), rec["fs_concat"], rtol=1e-5, atol=1e-6)
    import zipfile

    with zipfile.ZipFile(path) as ours, zipfile.ZipFile(os.path.join(FIXTURES, "feature_space.keras")) as ref:
        assert sorted(n for n in ours.namelist() if n.startswith("assets/")) == sorted(
            n for n in ref.namelist() if n.startswith("assets/"))
        config = json.loads(ours.read("config.json"))
        ref_config = json.loads(ref.read("config.json"))
    assert config["class_name"] == ref_config["class_name"] == "FeatureSpace"
    assert config["module"] == ref_config["module"]
    assert sorted(config["config"]["features"]) == sorted(ref_config["config"]["features"])
    for k, f in config["config"]["features"].items():
        ref_f = ref_config["config"]["features"][k]
        assert (f["module"], f["class_name"]) == (ref_f["module"], ref_f["class_name"])
        assert f["config"]["preprocessor"]["class_name"] == ref_f["config"]["preprocessor"]["class_name"]


def test_errors_name_the_problem(record):
    rec, _ = record
    with pytest.raises(ValueError, match="Invalid feature type"):
        FS({"x": "floaty"})
    with pytest.raises(ValueError, match="output_mode"):
        FS({"x": "float"}, output_mode="stack")
    with pytest.raises(ValueError, match="unknown features"):
        FS({"x": "float"}, crosses=[("x", "y")])
    fs = _concat_space()
    with pytest.raises(ValueError, match="adapt"):
        fs(_query(rec))
    fs.adapt(_data(rec))
    with pytest.raises(ValueError, match="only be called with a dict"):
        fs([1, 2])
    with pytest.raises(ValueError, match=r"without the feature\(s\) \['f'\]"):
        fs({k: v for k, v in _query(rec).items() if k != "f"})
    with pytest.raises(ValueError, match="no feature"):
        fs({**_query(rec), "extra": np.zeros(7)})
    with pytest.raises(ValueError, match="yield dicts"):
        _concat_space().adapt([1, 2, 3])
    with pytest.raises(ValueError, match="concatenate"):
        FS({"s": FS.string_categorical(output_mode="int")}).adapt({"s": ["a", "b"]})


TFENV = os.environ.get("KERASISH_TF_PYTHON", "/work/tfenv/bin/python")


@pytest.mark.skipif(not os.path.exists(TFENV), reason="needs a Python with TensorFlow + Keras 3 (KERASISH_TF_PYTHON): "
                    "Keras's FeatureSpace and StringLookup cannot load without TensorFlow")
def test_keras_reads_kerasish_files(record, tmp_path):
    """Keras 3 (TF backend, in a subprocess) loads kerasish's FeatureSpace,
    string-input model and FeatureSpace inference model and computes what
    kerasish computes."""
    import subprocess

    rec, _ = record
    model = keras.models.load_model(os.path.join(FIXTURES, "string_model.keras"))
    model.save(str(tmp_path / "string_model.keras"))
    fs = _concat_space()
    fs.adapt(_data(rec))
    fs.save(str(tmp_path / "fs.keras"))
    inference = keras.Model(fs.get_inputs(), keras.layers.Dense(1)(fs.get_encoded_features()))
    inference.save(str(tmp_path / "inf.keras"))
    query = _query(rec)
    np.save(tmp_path / "inf_pred.npy", inference.predict({k: v[:, None] for k, v in query.items()}, verbose=0))
    np.save(tmp_path / "fs_out.npy", fs(query).numpy())
    script = f"""
import os; os.environ["KERAS_BACKEND"] = "tensorflow"
import keras, numpy as np, tensorflow as tf
r = np.load({os.path.join(FIXTURES, "record.npz")!r}); d = {str(tmp_path)!r}
xs = {{"color": r["x_color"], "city": r["x_city"], "num": r["x_num"], "text": r["x_text"]}}
m = keras.models.load_model(d + "/string_model.keras")
np.testing.assert_allclose(m.predict(tf.data.Dataset.from_tensor_slices(xs).batch(8), verbose=0),
                           r["string_model_pred"], rtol=1e-5, atol=1e-6)
q = {{k: r["fs_" + k][:7] for k in {NAMES!r}}}
fs = keras.models.load_model(d + "/fs.keras")
np.testing.assert_allclose(np.asarray(fs(q)), np.load(d + "/fs_out.npy"), rtol=1e-5, atol=1e-6)
inf = keras.models.load_model(d + "/inf.keras")
p = inf.predict(tf.data.Dataset.from_tensor_slices({{k: v[:, None] for k, v in q.items()}}).batch(8), verbose=0)
np.testing.assert_allclose(p, np.load(d + "/inf_pred.npy"), rtol=1e-5, atol=1e-6)
print("KERAS-OK")
"""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([TFENV, "-c", script], capture_output=True, text=True, timeout=240, env=env)
    assert "KERAS-OK" in done.stdout, done.stderr[-3000:]


def test_keras_io_heart_feature_space(record):
    """keras.io's "Structured data classification with FeatureSpace" space:
    `num_oov_indices=0` lookups, a 30-bin discretized age crossed with sex,
    adapted by Keras on a batched tf.data dataset, by kerasish on a
    DataLoader of rows; the example's one-sample inference dict too."""
    rec, meta = record
    heart = {k[len("heart_"):]: rec[k] for k in rec.files
             if k.startswith("heart_") and k not in ("heart_encoded", "heart_sample_encoded")}
    fs = FS(
        features={
            "sex": FS.integer_categorical(num_oov_indices=0), "cp": FS.integer_categorical(num_oov_indices=0),
            "fbs": FS.integer_categorical(num_oov_indices=0), "restecg": FS.integer_categorical(num_oov_indices=0),
            "exang": FS.integer_categorical(num_oov_indices=0), "ca": FS.integer_categorical(num_oov_indices=0),
            "thal": FS.string_categorical(num_oov_indices=0), "age": FS.float_discretized(num_bins=30),
            "trestbps": FS.float_normalized(), "chol": FS.float_normalized(), "thalach": FS.float_normalized(),
            "oldpeak": FS.float_normalized(), "slope": FS.float_normalized(),
        },
        crosses=[FS.cross(feature_names=("sex", "age"), crossing_dim=64),
                 FS.cross(feature_names=("thal", "ca"), crossing_dim=16)],
        output_mode="concat",
    )
    n = len(heart["age"])
    rows = [{k: (str(v[i]) if v.dtype.kind == "U" else v[i]) for k, v in heart.items()} for i in range(n)]
    fs.adapt(torch.utils.data.DataLoader(rows, batch_size=32))
    out = fs({k: v[:10] for k, v in heart.items()})
    np.testing.assert_allclose(out.numpy(), rec["heart_encoded"], rtol=1e-5, atol=1e-6)
    sample = {k: np.asarray([v]) for k, v in meta["heart_sample"].items()}
    np.testing.assert_allclose(fs(sample).numpy(), rec["heart_sample_encoded"], rtol=1e-5, atol=1e-6)


def test_outputs_follow_the_space_device(record):
    """NumPy columns go to the device the FeatureSpace was moved to (meta
    here: shapes only; HashedCrossing hashes on the host, so no crosses)."""
    rec, _ = record
    keys = ("f", "fn", "fd", "ic", "sc", "sh")
    fs = FS({"f": "float", "fn": "float_normalized", "fd": FS.float_discretized(num_bins=4),
             "ic": "integer_categorical", "sc": "string_categorical", "sh": "string_hashed"})
    fs.adapt({k: rec["fs_" + k] for k in keys})
    expected = fs(_query(rec, keys)).shape
    fs.to("meta")
    out = fs(_query(rec, keys))
    assert out.device.type == "meta" and out.shape == expected
