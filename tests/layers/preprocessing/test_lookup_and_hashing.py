"""StringLookup, IntegerLookup, Hashing, HashedCrossing and the pure-Python
FarmHash / SipHash behind them.

Keras 3's versions of these layers need TensorFlow even on its torch backend
(`ImportError: Layer Hashing requires TensorFlow`), so real Keras cannot run
here as the oracle. References instead: the hashes against pyfarmhash (the
C++ FarmHash) and SipHash's published test vectors; the layers against
outputs that TensorFlow computed for Keras's own docstring examples; a
plain-Python dict reference for lookups on random data; and config / asset
round trips."""

import os
import random

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.layers.preprocessing.string_hashing import fingerprint64
from kerasish.layers.preprocessing.string_hashing import siphash24
from layer_harness import run_layer_test

L = keras.layers


# ---------------------------------------------------------------- the hashes
def test_fingerprint64_matches_farmhash():
    farmhash = pytest.importorskip("farmhash", reason="pip install pyfarmhash (the C++ FarmHash reference)")
    r = random.Random(0)
    for n in list(range(0, 200)) + [255, 256, 257, 1000, 4097]:  # every length branch of Hash64
        data = bytes(r.randrange(256) for _ in range(n))
        assert fingerprint64(data) == farmhash.fingerprint64(data), n
    assert fingerprint64("héllo".encode()) == farmhash.fingerprint64("héllo")


def test_siphash24_reference_vectors():
    # SipHash paper / reference implementation: key 00..0f, message 00..(n-1)
    k0, k1 = 0x0706050403020100, 0x0F0E0D0C0B0A0908
    expected = {0: 0x726FDB47DD0E0E31, 7: 0xAB0200F58B01D137, 8: 0x93F5F5799A932462, 15: 0xA129CA6149BE45E5,
                63: 0x958A324CEB064572}
    for n, want in expected.items():
        assert siphash24(k0, k1, bytes(range(n))) == want, n


# ------------------------------------------------------------------- Hashing
@pytest.mark.parametrize("kwargs,inputs,want", [
    # Keras's docstring examples, outputs computed by TensorFlow
    ({"num_bins": 3}, [["A"], ["B"], ["C"], ["D"], ["E"]], [[1], [0], [1], [1], [2]]),
    ({"num_bins": 3, "mask_value": ""}, [["A"], ["B"], [""], ["C"], ["D"]], [[1], [1], [0], [2], [2]]),
    ({"num_bins": 3, "salt": [133, 137]}, [["A"], ["B"], ["C"], ["D"], ["E"]], [[1], [2], [1], [0], [2]]),
    ({"num_bins": 3, "salt": 133}, [["A"], ["B"], ["C"], ["D"], ["E"]], [[0], [0], [2], [1], [0]]),
])
def test_hashing_matches_keras_documented_outputs(kwargs, inputs, want):
    layer = L.Hashing(**kwargs)
    for form in (inputs, np.array(inputs), np.array(inputs, dtype=bytes)):
        out = layer(form)
        assert out.dtype == torch.int64
        np.testing.assert_array_equal(out.numpy(), want)


def test_hashing_numbers_and_modes():
    farmhash = pytest.importorskip("farmhash", reason="pip install pyfarmhash (the C++ FarmHash reference)")
    values = np.array([[3, -7], [120, 3]])
    # TF hashes the decimal string; floats are truncated towards zero first (-7.4 -> -7)
    want = np.vectorize(lambda v: farmhash.fingerprint64(str(v)) % 5)(values)
    for form in (values, torch.as_tensor(values), values + 0.4 * np.sign(values), values.tolist()):
        np.testing.assert_array_equal(L.Hashing(5)(form).numpy(), want)
    assert L.Hashing(5, dtype="int32")(values).dtype == torch.int32
    counts = L.Hashing(5, output_mode="count")(values)
    np.testing.assert_array_equal(counts.numpy(), [np.bincount(r, minlength=5) for r in want])
    one_hot = L.Hashing(5, output_mode="one_hot")(values[:, :1])
    assert one_hot.shape == (2, 5) and one_hot.dtype == torch.float32
    np.testing.assert_array_equal(one_hot.argmax(-1).numpy(), want[:, 0])
    layer = L.Hashing(5, mask_value=3, salt=(1, 2))
    clone = L.Hashing.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert torch.equal(clone(values), layer(values)) and int(layer(values)[0, 0]) == 0


def test_hashing_errors():
    with pytest.raises(ValueError, match="num_bins"):
        L.Hashing(0)
    with pytest.raises(ValueError, match="output_mode"):
        L.Hashing(3, output_mode="tf_idf")
    with pytest.raises(ValueError, match="salt"):
        L.Hashing(3, salt="x")
    with pytest.raises(ValueError, match="dtype"):
        L.Hashing(3, dtype="float32")


# ------------------------------------------------------------ HashedCrossing
def test_hashed_crossing_matches_keras_documented_outputs():
    # Keras's docstring example, computed by TensorFlow's sparse.cross_hashed
    feat1 = np.array(["A", "B", "A", "B", "A"])
    feat2 = np.array([101, 101, 101, 102, 102])
    out = L.HashedCrossing(num_bins=5)((feat1, feat2))
    np.testing.assert_array_equal(out.numpy(), [1, 4, 1, 1, 3])
    assert out.dtype == torch.int64
    hot = L.HashedCrossing(num_bins=5, output_mode="one_hot")((feat1.tolist(), torch.as_tensor(feat2)))
    np.testing.assert_array_equal(hot.numpy(), np.eye(5)[[1, 4, 1, 1, 3]])
    col = L.HashedCrossing(num_bins=5)((feat1[:, None], feat2[:, None]))
    np.testing.assert_array_equal(col.numpy(), [[1], [4], [1], [1], [3]])
    assert L.HashedCrossing(5).compute_output_shape(((None, 1), (None, 1))) == (None, 1)
    layer = L.HashedCrossing(num_bins=7, output_mode="one_hot")
    assert L.HashedCrossing.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="at least two"):
        L.HashedCrossing(5)((feat1,))
    with pytest.raises(ValueError, match="equal shape"):
        L.HashedCrossing(5)((feat1, feat2[:3]))
    with pytest.raises(ValueError, match="integer or string"):
        L.HashedCrossing(5)((feat1, feat2 + 0.5))


# ------------------------------------------------------------------- lookups
def _reference_lookup(values, vocab, num_oov=1, mask=None):
    """Keras's index layout from its docs: [mask] [OOV...] [vocabulary...]."""
    start = (1 if mask is not None else 0) + num_oov
    table = {t: i + start for i, t in enumerate(vocab)}
    oov = 1 if mask is not None else 0
    return np.vectorize(lambda v: 0 if (mask is not None and v == mask) else table.get(v, oov))(values)


def test_string_lookup_keras_documented_examples():
    vocab = ["a", "b", "c", "d"]
    data = [["a", "c", "d"], ["d", "z", "b"]]
    np.testing.assert_array_equal(L.StringLookup(vocabulary=vocab)(data).numpy(), [[1, 3, 4], [4, 0, 2]])
    layer = L.StringLookup()
    layer.adapt(data)  # by frequency, ties in reverse order
    assert layer.get_vocabulary() == ["[UNK]", "d", "z", "c", "b", "a"]
    np.testing.assert_array_equal(layer(data).numpy(), [[5, 3, 1], [1, 2, 4]])
    two = L.StringLookup(vocabulary=vocab, num_oov_indices=2)  # OOV buckets by FarmHash, as TF
    np.testing.assert_array_equal(two([["a", "c", "d"], ["m", "z", "b"]]).numpy(), [[2, 4, 5], [0, 1, 3]])
    data4 = [["a", "c", "d", "d"], ["d", "z", "b", "z"]]
    np.testing.assert_array_equal(L.StringLookup(vocabulary=vocab, output_mode="one_hot")(
        ["a", "b", "c", "d", "z"]).numpy(), np.eye(5)[[1, 2, 3, 4, 0]])
    np.testing.assert_array_equal(L.StringLookup(vocabulary=vocab, output_mode="multi_hot")(data4).numpy(),
                                  [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]])
    np.testing.assert_array_equal(L.StringLookup(vocabulary=vocab, output_mode="count")(data4).numpy(),
                                  [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]])
    tfidf = L.StringLookup(output_mode="tf_idf")
    tfidf.set_vocabulary(vocab, idf_weights=[0.25, 0.75, 0.6, 0.4])  # OOV weight: their mean, 0.5
    np.testing.assert_allclose(tfidf(data4).numpy(), [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]], rtol=1e-6)
    tfidf.set_vocabulary(["[UNK]"] + vocab, idf_weights=[0.9, 0.25, 0.75, 0.6, 0.4])
    np.testing.assert_allclose(tfidf(data4).numpy(), [[0, 0.25, 0, 0.6, 0.8], [1.8, 0, 0.75, 0, 0.4]], rtol=1e-6)
    inverse = L.StringLookup(vocabulary=vocab, invert=True)(L.StringLookup(vocabulary=vocab)(data))
    assert inverse.tolist() == [["a", "c", "d"], ["d", "[UNK]", "b"]]


def test_string_lookup_random_against_dict_reference():
    r = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(40)], dtype=object)
    vocab = list(words[:25])
    data = r.choice(words, size=(6, 7))
    for kwargs, mask in (({}, None), ({"mask_token": "w30"}, "w30")):
        layer = L.StringLookup(vocabulary=vocab, **kwargs)
        np.testing.assert_array_equal(layer(data).numpy(), _reference_lookup(data, vocab, 1, mask))
        assert layer.vocabulary_size() == len(vocab) + 1 + (mask is not None)
    # adapt: counts, ties by token descending, max_tokens keeps the most frequent
    layer = L.StringLookup(max_tokens=6)
    layer.adapt(data)
    flat = data.ravel().tolist()
    ranked = sorted(set(flat), key=lambda t: (flat.count(t), t), reverse=True)
    assert layer.get_vocabulary() == ["[UNK]"] + ranked[:5]


def test_integer_lookup():
    vocab = [12, 36, 1138, 42]
    data = np.array([[12, 1138, 42], [42, 1000, 36]])
    for form in (data, torch.as_tensor(data), data.tolist()):
        np.testing.assert_array_equal(L.IntegerLookup(vocabulary=vocab)(form).numpy(), [[1, 3, 4], [4, 0, 2]])
    layer = L.IntegerLookup()
    layer.adapt(data)
    assert layer.get_vocabulary() == [-1, 42, 1138, 1000, 36, 12]
    np.testing.assert_array_equal(layer(torch.as_tensor(data)).numpy(), [[5, 2, 1], [1, 3, 4]])
    # several OOV indices: floormod of the value (Keras's default oov_method)
    two = L.IntegerLookup(vocabulary=vocab, num_oov_indices=2)
    np.testing.assert_array_equal(two(torch.tensor([[12, 1138, 42], [37, 1000, 36]])).numpy(),
                                  [[2, 4, 5], [37 % 2, 1000 % 2, 3]])
    farm = L.IntegerLookup(vocabulary=vocab, num_oov_indices=3, oov_method="farmhash")
    want = fingerprint64(b"37") % 3
    assert int(farm(np.array([37]))[0]) == want
    masked = L.IntegerLookup(vocabulary=vocab, mask_token=0)
    r = np.random.default_rng(1).choice([0, 12, 36, 1138, 42, 7, 99], size=(5, 4))
    want = _reference_lookup(r, vocab, 1, 0)
    np.testing.assert_array_equal(masked(torch.as_tensor(r)).numpy(), want)  # torch path
    np.testing.assert_array_equal(masked(r.tolist()).numpy(), want)  # host path
    inverse = L.IntegerLookup(vocabulary=vocab, mask_token=0, invert=True)(torch.as_tensor(want))
    np.testing.assert_array_equal(inverse.numpy(), np.where(np.isin(r, vocab + [0]), r, -1))
    with pytest.raises(ValueError, match="num_oov_indices=0"):
        L.IntegerLookup(vocabulary=vocab, num_oov_indices=0)(torch.tensor([5]))


def test_integer_lookup_harness():
    run_layer_test(L.IntegerLookup, {"vocabulary": [3, 1, 7, 9]}, input_data=torch.randint(0, 10, (4, 5)),
                   expected_output_shape=(4, 5), expected_num_trainable_weights=0, check_state_dict=False)
    run_layer_test(L.IntegerLookup, {"vocabulary": [3, 1, 7], "output_mode": "multi_hot"},
                   input_data=torch.randint(0, 10, (4, 5)), expected_output_shape=(4, 4),
                   check_mixed_precision=False)  # Keras's lookup layers drop `dtype`: encodings are floatx


def test_lookup_config_and_assets(tmp_path):
    layer = L.StringLookup(vocabulary=["x", "y"], mask_token="", num_oov_indices=2)
    config = layer.get_config()
    assert config["vocabulary"] == ["x", "y"] and config["vocabulary_size"] == 5 and "vocabulary_dtype" not in config
    clone = L.StringLookup.from_config(config)
    assert clone.get_vocabulary() == layer.get_vocabulary() == ["", "[UNK]", "[UNK]", "x", "y"]
    # an adapted vocabulary travels as Keras's `vocabulary.txt` asset
    adapted = L.StringLookup(output_mode="multi_hot")
    adapted.adapt(["b", "a", "b", "c"])
    adapted.save_assets(str(tmp_path))
    assert (tmp_path / "vocabulary.txt").read_text().splitlines() == ["[UNK]", "b", "c", "a"]
    fresh = L.StringLookup.from_config(adapted.get_config())
    fresh.load_assets(str(tmp_path))
    assert torch.equal(fresh([["a", "q"]]), adapted([["a", "q"]]))
    ints = L.IntegerLookup.from_config(L.IntegerLookup(vocabulary=np.array([5, 6])).get_config())
    assert ints.get_vocabulary() == [-1, 5, 6]
    path = tmp_path / "vocab.txt"
    path.write_text("p\nq\n")
    assert L.StringLookup(vocabulary=str(path)).get_vocabulary() == ["[UNK]", "p", "q"]


def test_lookup_errors():
    with pytest.raises(ValueError, match="repeated"):
        L.StringLookup(vocabulary=["a", "a"])
    with pytest.raises(ValueError, match="mask token"):
        L.StringLookup(vocabulary=["a", ""], mask_token="")
    with pytest.raises(ValueError, match="max_tokens"):
        L.StringLookup(max_tokens=1)
    with pytest.raises(ValueError, match="larger than the maximum"):
        L.StringLookup(vocabulary=["a", "b", "c"], max_tokens=3)
    with pytest.raises(ValueError, match="invert"):
        L.StringLookup(invert=True, output_mode="count")
    with pytest.raises(ValueError, match="idf_weights"):
        L.StringLookup(vocabulary=["a"], output_mode="tf_idf")
    with pytest.raises(ValueError, match="Cannot adapt"):
        L.StringLookup(vocabulary=["a"]).adapt(["a"])
    with pytest.raises(RuntimeError, match="vocabulary"):
        L.StringLookup(output_mode="one_hot")(["a"])
    with pytest.raises(TypeError, match="string inputs"):
        L.StringLookup(vocabulary=["a"])(np.array([1.5]))
    assert not os.path.exists("vocabulary.txt")


def test_adapted_vocabulary_saved_as_keras_asset(tmp_path):
    """`.keras` archives carry an adapted vocabulary as Keras's
    `assets/<layer path>/vocabulary.txt`, and load it back."""
    import zipfile

    inputs = keras.Input((3,), dtype="int64")
    lookup = L.IntegerLookup()
    lookup.adapt(np.array([5, 7, 7, 9]))
    model = keras.Model(inputs, L.Embedding(10, 2)(lookup(inputs)))
    path = str(tmp_path / "m.keras")
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        assert zf.read("assets/layers/integer_lookup/vocabulary.txt").decode().splitlines() == ["-1", "7", "9", "5"]
    loaded = keras.saving.load_model(path)
    x = torch.tensor([[5, 7, 8]])
    assert loaded.layers[1].get_vocabulary() == [-1, 7, 9, 5]
    torch.testing.assert_close(loaded(x), model(x))
