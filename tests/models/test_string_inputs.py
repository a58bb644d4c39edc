"""Functional models with `keras.Input(dtype="string")` inputs against Keras 3
(TensorFlow backend; Keras's StringLookup/TextVectorization need TensorFlow).
The reference is the record and `string_model.keras` written by
tools/fixtures/make_keras3_strings_fixture.py: StringLookup (adapted),
Hashing, IntegerLookup, multi-hot StringLookup and TextVectorization ->
Embedding on four dict inputs."""

import json
import os

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.backend import dtypes

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras3_strings")


@pytest.fixture(scope="module")
def record():
    rec = np.load(os.path.join(FIXTURES, "record.npz"))
    with open(os.path.join(FIXTURES, "record.json")) as f:
        meta = json.load(f)
    return rec, meta


def _inputs(rec, kind=object):
    return {
        "color": rec["x_color"].astype(kind),
        "city": rec["x_city"].astype(kind),
        "num": rec["x_num"],
        "text": rec["x_text"].astype(kind),
    }


def _load():
    return keras.models.load_model(os.path.join(FIXTURES, "string_model.keras"))


def test_keras_string_model_loads_and_predicts(record):
    rec, meta = record
    model = _load()
    assert model.get_layer("color_lookup").get_vocabulary() == meta["color_vocab"]
    assert model.get_layer("vec").get_vocabulary() == meta["text_vocab"]
    assert model.inputs[0].dtype in ("string", "int64")
    assert {t.name: t.dtype for t in model.inputs} == {"color": "string", "city": "string", "num": "int64",
                                                       "text": "string"}
    for kind in (object, str):  # NumPy object arrays and str arrays
        np.testing.assert_allclose(model.predict(_inputs(rec, kind), verbose=0), rec["string_model_pred"],
                                   rtol=1e-5, atol=1e-6)
    # rank-1 string columns are expanded to the declared (None, 1), like tensors
    flat = {k: v[:, 0] for k, v in _inputs(rec).items()}
    np.testing.assert_allclose(model(flat).detach().numpy(), rec["string_model_pred"], rtol=1e-5, atol=1e-6)
    parts = keras.Model(model.inputs, model.get_layer("concatenate").output)
    np.testing.assert_allclose(parts.predict(_inputs(rec), verbose=0), rec["string_model_parts"], rtol=1e-5,
                               atol=1e-6)


def test_fit_evaluate_on_string_arrays_match_keras(record):
    rec, meta = record
    model = _load()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    hist = model.fit(_inputs(rec), rec["y"], batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(hist.history["loss"], meta["string_model_fit_loss"], rtol=1e-4)
    np.testing.assert_allclose(model.predict(_inputs(rec), verbose=0), rec["string_model_pred_after_fit"],
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.evaluate(_inputs(rec), rec["y"], verbose=0), meta["string_model_eval"],
                               rtol=1e-4)
    # shuffled batches gather string rows with their labels
    model.fit(_inputs(rec), rec["y"], batch_size=5, epochs=1, shuffle=True, verbose=0)


def test_save_load_round_trip(record, tmp_path):
    rec, meta = record
    model = _load()
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = keras.models.load_model(path)
    assert again.get_layer("color_lookup").get_vocabulary() == meta["color_vocab"]
    np.testing.assert_allclose(again.predict(_inputs(rec), verbose=0), rec["string_model_pred"], rtol=1e-5,
                               atol=1e-6)
    import zipfile

    with zipfile.ZipFile(path) as ours, zipfile.ZipFile(os.path.join(FIXTURES, "string_model.keras")) as ref:
        assert sorted(n for n in ours.namelist() if n.startswith("assets/")) == sorted(
            n for n in ref.namelist() if n.startswith("assets/"))
        layers = {x["name"]: x for x in json.loads(ours.read("config.json"))["config"]["layers"]}
    assert layers["color"]["config"]["dtype"] == "string"


def test_symbolic_string_tensors():
    inp = keras.Input(shape=(1,), dtype="string", name="s")
    assert inp.dtype == "string"
    lookup = keras.layers.StringLookup(vocabulary=["a", "b"])
    assert lookup(inp).dtype == "int64" and lookup(inp).shape == (None, 1)
    inverse = keras.layers.StringLookup(vocabulary=["a", "b"], invert=True)
    assert inverse(keras.Input(shape=(2,), dtype="int64")).dtype == "string"
    hashed = keras.layers.Hashing(num_bins=4, output_mode="one_hot")(inp)
    assert (hashed.shape, hashed.dtype) == ((None, 4), "float32")
    crossed = keras.layers.HashedCrossing(num_bins=5)([inp, keras.Input(shape=(1,), dtype="int64")])
    assert (crossed.shape, crossed.dtype) == ((None, 1), "int64")
    model = keras.Model(inp, hashed)
    out = model(np.array([["x"], ["y"]]))
    np.testing.assert_array_equal(out.numpy(), keras.layers.Hashing(num_bins=4, output_mode="one_hot")(
        np.array([["x"], ["y"]])).numpy())


def test_bad_string_inputs_raise():
    inp = keras.Input(shape=(1,), dtype="string", name="s")
    model = keras.Model(inp, keras.layers.StringLookup(vocabulary=["a"])(inp))
    with pytest.raises(TypeError, match="dtype \"string\""):
        model(np.array([[1.0], [2.0]]))
    with pytest.raises(ValueError, match="incompatible"):
        model(np.array([["a", "b"]], dtype=object))
    with pytest.raises(ValueError, match="torch has no string tensors"):
        dtypes.to_torch_dtype("string")
    with pytest.raises(ValueError, match="Invalid dtype"):
        keras.Input(shape=(1,), dtype="str")
    assert torch.is_tensor(model(np.array([["a"]])))


def test_sequential_with_string_input(record, tmp_path):
    """A Sequential stack on a `dtype="string"` Input, and one whose first
    layer is a lookup (built on its first call on strings): the same
    numbers as the functional path through Keras's adapted StringLookup."""
    rec, meta = record
    loaded = _load()
    colors = rec["x_color"].astype(object)
    want = loaded.get_layer("color_lookup")(colors).numpy()
    assert want.max() < len(meta["color_vocab"])
    declared = keras.Sequential([keras.Input(shape=(1,), dtype="string"),
                                 keras.layers.StringLookup(vocabulary=meta["color_vocab"][1:])])
    np.testing.assert_array_equal(declared(colors).numpy(), want)
    np.testing.assert_array_equal(declared.predict(rec["x_color"], verbose=0), want)  # a NumPy str array
    on_call = keras.Sequential([keras.layers.StringLookup(vocabulary=meta["color_vocab"][1:]),
                                keras.layers.Embedding(len(meta["color_vocab"]), 2)])
    out = on_call(colors)
    assert on_call.inputs[0].dtype == "string" and tuple(out.shape) == (len(colors), 1, 2)
    path = str(tmp_path / "seq.keras")
    declared.save(path)
    np.testing.assert_array_equal(keras.models.load_model(path)(colors).numpy(), want)
    with pytest.raises(ValueError, match="numeric inputs"):
        keras.Sequential([keras.layers.Dense(2)])(np.array([["a"]]))


def _device_model():
    inp = keras.Input(shape=(1,), dtype="string")
    hashed = keras.layers.Hashing(num_bins=4, output_mode="one_hot")(inp)
    looked = keras.layers.StringLookup(vocabulary=["a", "b"], output_mode="one_hot")(inp)
    crossed = keras.layers.HashedCrossing(num_bins=3, output_mode="one_hot")([inp, inp])
    tokens = keras.layers.TextVectorization(vocabulary=["a", "b"], output_sequence_length=3)(inp)
    dense = keras.layers.Dense(1)(keras.layers.concatenate([hashed, looked, crossed]))
    return keras.Model(inp, [dense, tokens])


def test_string_layers_follow_the_model_device():
    """Strings live on the host; the indices the lookup/hashing layers make
    go to the device the model was moved to (meta here: no data, same rule)."""
    model = _device_model()
    expected = [o.shape for o in model(np.array([["a"], ["b c"]]))]
    model.to("meta")
    out = model(np.array([["a"], ["b c"]]))
    assert [o.device.type for o in out] == ["meta", "meta"]
    assert [o.shape for o in out] == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_string_model_fits_on_cuda():
    inp = keras.Input(shape=(1,), dtype="string")
    x = keras.layers.StringLookup(vocabulary=["a", "b"], output_mode="one_hot")(inp)
    model = keras.Model(inp, keras.layers.Dense(1)(x))
    cpu = keras.models.clone_model(model)
    cpu.set_weights(model.get_weights())
    model.to("cuda")
    x_data, y = np.array([["a"], ["b"], ["z"], ["a"]]), np.ones((4, 1), "float32")
    for m in (model, cpu):
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        m.fit(x_data, y, batch_size=2, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(model.predict(x_data, verbose=0), cpu.predict(x_data, verbose=0), rtol=1e-5, atol=1e-6)
