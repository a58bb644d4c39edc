"""`keras.utils.audio_dataset_from_directory` without TensorFlow.

File order, labels and the split come from real Keras's
`keras.src.utils.dataset_utils` (plain Python/NumPy); Keras decodes with
`tf.audio.decode_wav`, which cannot run here, so the expected samples are
derived from its documented maths: 16-bit PCM `int16 / 32768`, shape
`(samples, channels)`, zero-padded per batch (`padded_batch`) or cut/padded
to `output_sequence_length`. Argument errors are compared with the ones
real Keras raises (its checks run before it touches TensorFlow).
"""

import os
import wave

import numpy as np
import pytest
import torch

import kerasish as keras


def _write_wav(path, ints, width=2, rate=8000):
    ints = np.asarray(ints)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(ints.shape[1])
        f.setsampwidth(width)
        f.setframerate(rate)
        if width == 1:
            raw = (ints + 128).astype(np.uint8).tobytes()
        elif width == 3:
            u = (ints.astype(np.int64) % (1 << 24)).reshape(-1)
            raw = np.stack([u & 255, (u >> 8) & 255, (u >> 16) & 255], -1).astype(np.uint8).tobytes()
        else:
            raw = ints.astype({2: "<i2", 4: "<i4"}[width]).tobytes()
        f.writeframes(raw)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    rng = np.random.RandomState(0)
    clips = {}
    for c, name in enumerate(("no", "yes")):
        os.makedirs(root / name / "more")
        for i in range(4):
            ints = rng.randint(-32768, 32768, size=(20 + 7 * i + c, 2))
            path = root / name / ("more" if i == 3 else "") / f"clip{i}.wav"
            _write_wav(path, ints)
            clips[str(path)] = ints.astype("float32") / 32768.0
        (root / name / "clip.mp3").write_bytes(b"not read")
    return str(root), clips


def test_order_labels_and_padded_batches(keras_ref, audio_dir):
    from keras.src.utils import dataset_utils as kdu

    root, clips = audio_dir
    ref_paths, ref_labels, ref_names = kdu.index_directory(root, "inferred", (".wav",), seed=4, verbose=False)
    ds = keras.utils.audio_dataset_from_directory(root, batch_size=3, seed=4, shuffle=False, verbose=False)
    assert ds.class_names == ref_names == ["no", "yes"] and len(ds) == 3
    ref_sorted = kdu.index_directory(root, "inferred", (".wav",), shuffle=False, verbose=False)
    assert ds.file_paths == ref_sorted[0]
    seen = 0
    for x, y in ds:
        paths = ds.file_paths[seen:seen + len(y)]
        longest = max(len(clips[p]) for p in paths)
        assert x.dtype == torch.float32 and x.shape == (len(y), longest, 2)
        for row, p in zip(x.numpy(), paths):
            n = len(clips[p])
            np.testing.assert_array_equal(row[:n], clips[p])
            assert not row[n:].any()  # zero padding
        np.testing.assert_array_equal(y.numpy(), ref_sorted[1][seen:seen + len(y)])
        seen += len(y)
    train, val = keras.utils.audio_dataset_from_directory(root, validation_split=0.25, subset="both", seed=4,
                                                          verbose=False)
    assert train.file_paths == ref_paths[:-2] and val.file_paths == ref_paths[-2:]


@pytest.mark.parametrize("length", [10, 40])
def test_output_sequence_length_cuts_and_pads(audio_dir, length):
    root, clips = audio_dir
    ds = keras.utils.audio_dataset_from_directory(root, output_sequence_length=length, batch_size=None,
                                                  shuffle=False, label_mode="categorical", verbose=False)
    for path, (x, y) in zip(ds.file_paths, ds):
        expected = np.zeros((length, 2), "float32")
        n = min(length, len(clips[path]))
        expected[:n] = clips[path][:n]
        np.testing.assert_array_equal(x.numpy(), expected)
        assert y.shape == (2,) and y.sum() == 1


@pytest.mark.parametrize("width,low,high", [(1, -128, 128), (3, -(1 << 23), 1 << 23), (4, -(1 << 31), 1 << 31)])
def test_other_pcm_widths_scale_by_their_range(tmp_path, width, low, high):
    ints = np.random.RandomState(width).randint(low, high, size=(12, 1), dtype=np.int64)
    ints[0, 0], ints[1, 0] = low, high - 1
    os.makedirs(tmp_path / "a")
    _write_wav(tmp_path / "a" / "x.wav", ints, width=width)
    ds = keras.utils.audio_dataset_from_directory(str(tmp_path), batch_size=None, label_mode=None, verbose=False)
    np.testing.assert_allclose(next(iter(ds)).numpy(), ints / float(high), rtol=0, atol=1e-7)


@pytest.mark.parametrize("kwargs", [{"label_mode": "sparse"}, {"labels": "dirs"}, {"labels": [1, 2]},
                                    {"ragged": True, "output_sequence_length": 5}, {"sampling_rate": 16000.0},
                                    {"sampling_rate": 0}, {"validation_split": 0.3}, {"label_mode": "binary",
                                                                                      "class_names": ["yes"]}])
def test_errors_match_keras(keras_ref, audio_dir, kwargs):
    root, _ = audio_dir
    with pytest.raises(Exception) as ref:
        keras_ref.utils.audio_dataset_from_directory(root, verbose=False, **kwargs)
    with pytest.raises(type(ref.value)) as got:
        keras.utils.audio_dataset_from_directory(root, verbose=False, **kwargs)
    assert str(got.value) == str(ref.value)


def test_what_needs_tensorflow_raises_clearly(audio_dir, tmp_path):
    root, _ = audio_dir
    with pytest.raises(NotImplementedError, match="sampling_rate=16000"):
        keras.utils.audio_dataset_from_directory(root, sampling_rate=16000)
    with pytest.raises(ValueError, match="RaggedTensor.*ragged=True"):
        keras.utils.audio_dataset_from_directory(root, ragged=True)
    os.makedirs(tmp_path / "bad")
    (tmp_path / "bad" / "x.wav").write_bytes(b"RIFF????")
    ds = keras.utils.audio_dataset_from_directory(str(tmp_path), verbose=False)
    with pytest.raises(ValueError, match="Could not decode .*x.wav"):
        next(iter(ds))


def test_fit_on_audio_dataset(audio_dir):
    root, _ = audio_dir
    keras.utils.set_random_seed(0)
    ds = keras.utils.audio_dataset_from_directory(root, output_sequence_length=32, batch_size=4, seed=1,
                                                  verbose=False)
    model = keras.Sequential([keras.Input((32, 2)), keras.layers.Conv1D(3, 5), keras.layers.GlobalMaxPooling1D(),
                              keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds.prefetch(1), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
