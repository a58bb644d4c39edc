"""Keras 2's preprocessing utilities against a record of what tf.keras 2.21
(and Keras 3 for `timeseries_dataset_from_array`) returned on the same inputs
(tests/fixtures/keras2_preprocessing, written by
tools/fixtures/make_keras2_preprocessing_fixture.py)."""

import json
import os
import random

import numpy as np
import pytest

import kerasish as keras
from kerasish.preprocessing import image, sequence, text

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras2_preprocessing")
REC = np.load(os.path.join(HERE, "record.npz"))
META = json.load(open(os.path.join(HERE, "record.json")))
TOKENIZERS = ["plain", "oov_num_words", "char_level", "no_lower_split"]


@pytest.mark.parametrize("name", TOKENIZERS)
def test_tokenizer_matches_tf_keras(name):
    rec = META[f"tok_{name}"]
    tok = text.Tokenizer(**rec["kwargs"])
    tok.fit_on_texts(META["texts"])
    queries = META["texts"] + ["unknown words here, the cat"]
    assert tok.word_index == rec["word_index"]
    assert tok.document_count == rec["document_count"]
    seqs = tok.texts_to_sequences(queries)
    assert seqs == rec["sequences"]
    assert tok.sequences_to_texts(seqs) == rec["texts_back"]
    for mode in ("binary", "count", "freq", "tfidf"):
        np.testing.assert_allclose(tok.texts_to_matrix(queries, mode=mode), REC[f"tok_{name}_{mode}"], rtol=1e-12)
    # JSON both ways: tf.keras's JSON loads into kerasish, and kerasish's JSON round-trips
    for source in (rec["json"], tok.to_json()):
        back = text.tokenizer_from_json(source)
        assert back.word_index == tok.word_index
        assert back.texts_to_sequences(queries) == seqs
        np.testing.assert_allclose(back.texts_to_matrix(queries, mode="tfidf"), REC[f"tok_{name}_tfidf"])


def test_text_helpers_and_errors():
    assert text.text_to_word_sequence("Hello, World! It's me:\tagain") == META["text_to_word_sequence"]
    assert text.hashing_trick("the quick brown fox the", 20, hash_function="md5") == META["hashing_trick_md5"]
    with pytest.raises(ValueError, match="fit on some text"):
        text.Tokenizer().texts_to_matrix(["a"])
    with pytest.raises(ValueError, match="Unknown vectorization mode"):
        tok = text.Tokenizer()
        tok.fit_on_texts(["a b"])
        tok.texts_to_matrix(["a"], mode="onehot")
    with pytest.raises(ValueError, match="Tokenizer JSON"):
        text.tokenizer_from_json('{"config": 3}')


def test_timeseries_generator_matches_tf_keras():
    series = np.arange(50, dtype="float32").reshape(25, 2)
    targets = np.arange(25, dtype="float32") * 10
    for name in ("basic", "rate_stride_reverse"):
        rec = META[f"tsgen_{name}"]
        gen = sequence.TimeseriesGenerator(series, targets, **rec["kwargs"])
        assert len(gen) == rec["len"]
        for i in range(len(gen)):
            x, y = gen[i]
            np.testing.assert_array_equal(x, REC[f"tsgen_{name}_{i}_x"])
            np.testing.assert_array_equal(y, REC[f"tsgen_{name}_{i}_y"])
    np.random.seed(7)
    x, y = sequence.TimeseriesGenerator(series, targets, length=4, batch_size=5, shuffle=True)[0]
    np.testing.assert_array_equal(x, REC["tsgen_shuffle_x"])
    np.testing.assert_array_equal(y, REC["tsgen_shuffle_y"])
    with pytest.raises(ValueError, match="same length"):
        sequence.TimeseriesGenerator(series, targets[:3], length=2)


def test_sampling_table_skipgrams_pad_sequences():
    np.testing.assert_allclose(sequence.make_sampling_table(12, sampling_factor=0.05), REC["sampling_table"])
    random.seed(3)
    couples, labels = sequence.skipgrams([1, 4, 0, 2, 3, 5, 2], 7, window_size=2, negative_samples=1.0, seed=11)
    assert couples == META["skipgrams"]["couples"] and labels == META["skipgrams"]["labels"]
    random.seed(3)
    table = sequence.make_sampling_table(7, sampling_factor=0.3)
    couples, labels = sequence.skipgrams([1, 4, 6, 2, 3, 5, 2], 7, window_size=1, negative_samples=0.5,
                                         categorical=True, sampling_table=table, seed=5)
    assert couples == META["skipgrams_table"]["couples"] and labels == META["skipgrams_table"]["labels"]
    padded = sequence.pad_sequences([[1, 2, 3], [4], [5, 6, 7, 8, 9]], maxlen=4, padding="post",
                                    truncating="post", value=-1)
    np.testing.assert_array_equal(padded, REC["pad_post"])


def test_timeseries_dataset_from_array_matches_keras3():
    series = np.arange(50, dtype="float32").reshape(25, 2)
    targets = np.arange(25, dtype="float32") * 10
    ds = keras.utils.timeseries_dataset_from_array(series, targets, sequence_length=4, sequence_stride=2,
                                                   sampling_rate=2, batch_size=3, start_index=2, end_index=23)
    batches = list(ds)
    assert len(ds) == len(batches) == META["tsds_len"]
    for i, (bx, by) in enumerate(batches):
        np.testing.assert_array_equal(bx.numpy(), REC[f"tsds_{i}_x"])
        np.testing.assert_array_equal(by.numpy(), REC[f"tsds_{i}_y"])
    shuffled = keras.utils.timeseries_dataset_from_array(series, None, 4, batch_size=None, shuffle=True, seed=2)
    starts = sorted(int(w[0, 0]) // 2 for w in shuffled)
    assert starts == list(range(22))  # the same windows, permuted
    with pytest.raises(ValueError, match="sampling_rate"):
        keras.utils.timeseries_dataset_from_array(series, None, 4, sampling_rate=0)


def test_timeseries_dataset_take_keeps_keras3_first_batches():
    """`ds.take(n)` (tf.data's, used by the keras.io weather-forecasting
    example) gives Keras 3's first n batches, or windows when batch_size=None."""
    series = np.arange(50, dtype="float32").reshape(25, 2)
    targets = np.arange(25, dtype="float32") * 10
    ds = keras.utils.timeseries_dataset_from_array(series, targets, sequence_length=4, sequence_stride=2,
                                                   sampling_rate=2, batch_size=3, start_index=2, end_index=23)
    taken = ds.take(2)
    assert len(taken) == 2 and len(ds.take(-1)) == len(ds) == META["tsds_len"] and len(ds.take(99)) == len(ds)
    for i, (bx, by) in enumerate(taken):
        np.testing.assert_array_equal(bx.numpy(), REC[f"tsds_{i}_x"])
        np.testing.assert_array_equal(by.numpy(), REC[f"tsds_{i}_y"])
    assert list(ds.take(0)) == []
    windows = keras.utils.timeseries_dataset_from_array(series, None, 4, batch_size=None)
    first = list(windows.take(3))
    assert len(first) == 3 and first[2].shape == (4, 2)
    np.testing.assert_array_equal(first[2].numpy(), series[2:6])
    for bad in (-2, 1.5, "1", True):
        with pytest.raises(ValueError, match="count"):
            ds.take(bad)


@pytest.mark.parametrize("mode", ["nearest", "constant", "reflect", "wrap"])
def test_image_apply_transform_matches_tf_keras(mode):
    pytest.importorskip("scipy", reason="ImageDataGenerator's affine transforms need SciPy, as in Keras 2")
    pytest.importorskip("PIL", reason="brightness shifts need Pillow, as in Keras 2")
    g = image.ImageDataGenerator(fill_mode=mode, cval=7.0)
    for k, params in enumerate(META["fixed_transforms"]):
        got = g.apply_transform(REC["imgs"][0].copy(), params)
        np.testing.assert_allclose(got, REC[f"apply_{mode}_{k}"], rtol=1e-5, atol=1e-4, err_msg=str(params))


def test_image_random_params_flow_and_normalisation_match_tf_keras():
    pytest.importorskip("scipy", reason="ImageDataGenerator's affine transforms need SciPy, as in Keras 2")
    imgs = REC["imgs"]
    g = image.ImageDataGenerator(**META["aug_kwargs"])
    for s, ref in enumerate(META["random_params"]):
        got = g.get_random_transform(imgs[0].shape, seed=s)
        assert set(got) == set(ref)
        for key, value in ref.items():
            assert (got[key] is None) == (value is None), key
            if value is not None:
                assert float(got[key]) == pytest.approx(value, rel=1e-12, abs=1e-12), key
    it = g.flow(imgs, np.arange(6), batch_size=4, seed=123, shuffle=True)
    assert len(it) == META["flow_len"]
    for i in range(len(it)):
        x, y = it[i]
        np.testing.assert_allclose(x, REC[f"flow_{i}_x"], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(y, REC[f"flow_{i}_y"])
    it.on_epoch_end()
    x, y = it[0]
    np.testing.assert_allclose(x, REC["flow_epoch2_0_x"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y, REC["flow_epoch2_0_y"])
    it2 = g.flow(imgs, np.arange(6), batch_size=4, seed=5)
    for k in range(3):
        x, y = next(it2)
        np.testing.assert_allclose(x, REC[f"flow_next_{k}_x"], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(y, REC[f"flow_next_{k}_y"])
    norm = image.ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
                                    samplewise_center=True, rescale=0.5)
    norm.fit(imgs)
    np.testing.assert_allclose(norm.mean, REC["norm_mean"], rtol=1e-5)
    np.testing.assert_allclose(norm.std, REC["norm_std"], rtol=1e-5)
    np.testing.assert_allclose(norm.standardize(imgs[1].copy()), REC["norm_standardize"], rtol=1e-4, atol=1e-5)
    with pytest.warns(UserWarning, match="zca_whitening"):
        zca = image.ImageDataGenerator(zca_whitening=True)
    zca.fit(REC["zca_x"])
    np.testing.assert_allclose(zca.zca_whitening_matrix, REC["zca_matrix"], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(zca.standardize(REC["zca_x"][2].copy()), REC["zca_standardize"], rtol=1e-3, atol=1e-3)


def test_fit_takes_image_flow_and_pydataset_like_keras(keras_ref):
    """`model.fit(datagen.flow(x, y))` trains; a PyDataset gives Keras 3's History with the same weights."""
    pytest.importorskip("scipy", reason="ImageDataGenerator's affine transforms need SciPy, as in Keras 2")
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (16, 6, 6, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("float32")
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    flow = image.ImageDataGenerator(horizontal_flip=True, rotation_range=10).flow(x, y, batch_size=8, seed=0)
    history = model.fit(flow, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2

    def make(base):
        class Squares(base):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)

            def __len__(self):
                return 3

            def __getitem__(self, i):
                xb = np.linspace(-1, 1, 15, dtype="float32")[i * 5:(i + 1) * 5, None]
                return xb, 3 * xb + 1

        return Squares

    ref = keras_ref.Sequential([keras_ref.Input((1,)), keras_ref.layers.Dense(1)])
    ref.compile(optimizer=keras_ref.optimizers.SGD(0.1), loss="mse")
    ours = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    ours.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ours.set_weights(ref.get_weights())
    h_ref = ref.fit(make(keras_ref.utils.PyDataset)(), epochs=3, shuffle=False, verbose=0)
    h_ours = ours.fit(make(keras.utils.PyDataset)(workers=2), epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_ours.history["loss"], h_ref.history["loss"], rtol=1e-5)
    for a, b in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    pred = ours.predict(make(keras.utils.PyDataset)(), verbose=0)
    np.testing.assert_allclose(pred, ref.predict(make(keras_ref.utils.PyDataset)(), verbose=0), rtol=1e-5)


def test_pydataset_epoch_hooks_shuffle_and_infinite():
    order = []

    class Tracking(keras.utils.Sequence):
        def __init__(self):
            super().__init__()
            self.events = []

        def __len__(self):
            return 4

        def __getitem__(self, i):
            order.append(i)
            return np.full((2, 1), i, "float32"), np.zeros((2, 1), "float32")

        def on_epoch_begin(self):
            self.events.append("begin")

        def on_epoch_end(self):
            self.events.append("end")

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    ds = Tracking()
    random.seed(0)
    model.fit(ds, epochs=2, shuffle=True, verbose=0)
    # (Keras's first fit peeks at a batch, then ends that pass before the first epoch:
    # tests/trainers/test_py_dataset.py::test_fit_and_evaluate_end_a_pass_before_their_first_as_keras_does)
    assert ds.events == ["begin", "end", "begin", "end", "begin", "end"]
    # (that peek reads one batch through `__getitem__`, as Keras's does: tests/random/test_keras_seed_parity_3.py)
    assert order.pop(0) in range(4)
    assert sorted(order[:4]) == [0, 1, 2, 3] and sorted(order[4:]) == [0, 1, 2, 3]
    assert order[:4] != [0, 1, 2, 3] or order[4:] != [0, 1, 2, 3]  # shuffled batch order

    class Endless(keras.utils.PyDataset):
        def __getitem__(self, i):
            return np.ones((2, 1), "float32"), np.ones((2, 1), "float32")

    assert Endless().num_batches is None
    history = model.fit(Endless(), epochs=2, steps_per_epoch=3, verbose=0)
    assert len(history.history["loss"]) == 2
    with pytest.raises(ValueError, match="`y` should not be passed"):
        model.fit(ds, np.zeros(4), verbose=0)


def test_progbar_writes_one_line_per_epoch_to_a_file(capsys):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(np.ones((64, 3), "float32"), np.ones((64, 1), "float32"), epochs=3, batch_size=8, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    bars = [line for line in lines if line.startswith("8/8")]
    assert len(bars) == 3 and all("\x1b" not in line and "\r" not in line for line in bars)
    assert len(lines) == 6
