"""TextVectorization (Keras's version needs TensorFlow even on torch, so the
references are Keras's documented examples, which TensorFlow computed, and
Python references written from the documented rules)."""

import math
import re

import numpy as np
import pytest
import torch

import kerasish as keras

L = keras.layers


def test_keras_documented_examples():
    layer = L.TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4)
    layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    out = layer(["foo qux bar", "qux baz"])
    assert out.dtype == torch.int64
    np.testing.assert_array_equal(out.numpy(), [[4, 1, 3, 0], [1, 2, 0, 0]])
    fixed = L.TextVectorization(output_mode="int", output_sequence_length=4, vocabulary=["earth", "wind", "and", "fire"])
    np.testing.assert_array_equal(fixed(np.array(["earth wind and fire", "fire and earth michigan"])).numpy(),
                                  [[2, 3, 4, 5], [5, 4, 2, 1]])
    assert fixed.get_vocabulary() == ["", "[UNK]", "earth", "wind", "and", "fire"]


def _reference_tokens(text, ngrams=None):
    text = re.sub(r"[!\"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~']", "", text.lower())
    tokens = text.split()
    if ngrams:
        tokens = [" ".join(tokens[i:i + n]) for n in range(1, ngrams + 1) for i in range(len(tokens) - n + 1)]
    return tokens


def test_against_python_reference():
    corpus = ["The cat sat on the mat.", "A dog; a CAT!", "the end", "Mat's cat-dog"]
    for ngrams in (None, 2):
        layer = L.TextVectorization(ngrams=ngrams)
        layer.adapt(np.array(corpus)[:, None])  # (batch, 1) works like (batch,)
        docs = [_reference_tokens(t, ngrams) for t in corpus]
        counts = {}
        for doc in docs:
            for t in doc:
                counts[t] = counts.get(t, 0) + 1
        vocab = [t for t, _ in sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]
        assert layer.get_vocabulary() == ["", "[UNK]"] + vocab
        queries = ["the CAT, the unknown", "mat"]
        index = {t: i + 2 for i, t in enumerate(vocab)}
        rows = [[index.get(t, 1) for t in _reference_tokens(q, ngrams)] for q in queries]
        width = max(map(len, rows))
        want = [r + [0] * (width - len(r)) for r in rows]  # padded to the longest sequence
        np.testing.assert_array_equal(layer(queries).numpy(), want)
    # tf_idf: idf = log(1 + docs / (1 + document count)), OOV gets the mean
    layer = L.TextVectorization(output_mode="tf_idf")
    layer.adapt(["a b b", "a c"])
    vocab = layer.get_vocabulary()
    assert vocab == ["[UNK]", "b", "a", "c"]
    idf = {"b": math.log(1 + 2 / 2), "a": math.log(1 + 2 / 3), "c": math.log(1 + 2 / 2)}
    oov = float(np.mean(list(idf.values())))
    want = [2 * oov, 1 * idf["b"], 1 * idf["a"], 0.0]  # "a b z z": two OOV tokens
    np.testing.assert_allclose(layer(["a b z z"]).numpy()[0], want, rtol=1e-6)
    counts = L.TextVectorization(output_mode="count", vocabulary=["x", "y"])(["x x y q", "y"])
    np.testing.assert_array_equal(counts.numpy(), [[1, 2, 1], [0, 0, 1]])


def test_options_config_and_assets(tmp_path):
    layer = L.TextVectorization(standardize="lower", split="character", output_sequence_length=3,
                                vocabulary=["a", "b"])
    np.testing.assert_array_equal(layer(["AbC", "b"]).numpy(), [[2, 3, 1], [3, 0, 0]])
    custom = L.TextVectorization(standardize=None, split=lambda s: s.split("-"), vocabulary=["x", "Y"])
    np.testing.assert_array_equal(custom(["x-Y-z"]).numpy(), [[2, 3, 1]])
    adapted = L.TextVectorization(max_tokens=4, output_mode="multi_hot")
    adapted.adapt(["b b a", "c b a d"])
    assert adapted.get_vocabulary() == ["[UNK]", "b", "a", "d"]
    config = adapted.get_config()
    assert config["vocabulary_size"] == 4 and config["max_tokens"] == 4 and config["vocabulary"] is None
    adapted.save_assets(str(tmp_path))
    clone = L.TextVectorization.from_config(config)
    clone.load_assets(str(tmp_path))
    assert torch.equal(clone(["a q b"]), adapted(["a q b"]))
    fixed = L.TextVectorization(vocabulary=["u", "v"], ngrams=(1, 2))
    assert L.TextVectorization.from_config(fixed.get_config()).get_vocabulary() == fixed.get_vocabulary()


def test_errors():
    with pytest.raises(ValueError, match="standardize"):
        L.TextVectorization(standardize="upper")
    with pytest.raises(ValueError, match="split"):
        L.TextVectorization(split="comma")
    with pytest.raises(ValueError, match="ngrams"):
        L.TextVectorization(ngrams="2")
    with pytest.raises(ValueError, match="output_sequence_length"):
        L.TextVectorization(output_mode="count", output_sequence_length=3)
    with pytest.raises(ValueError, match="rank must be 1"):
        L.TextVectorization(vocabulary=["a"])(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="strings"):
        L.TextVectorization(vocabulary=["a"])(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="Cannot adapt"):
        L.TextVectorization(vocabulary=["a"]).adapt(["a"])
