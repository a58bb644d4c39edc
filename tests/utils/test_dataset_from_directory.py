"""`keras.utils.image_dataset_from_directory` / `text_dataset_from_directory`
/ `split_dataset` against real Keras 3 (torch backend).

Keras's file indexing, seeded shuffle and validation split are plain
Python/NumPy (`keras.src.utils.dataset_utils`): the reference lists come
from calling them. Keras's argument checks all run before it first touches
TensorFlow, so each error is compared with the one real Keras raises for the
same call. Pixels are compared with Pillow-decoded arrays resized by real
Keras's `keras.ops.image.resize` (what Keras's TensorFlow-free path does).
"""

import os

import numpy as np
import pytest
import torch

import kerasish as keras

PIL = pytest.importorskip("PIL", reason="image files are written and read with Pillow (a test extra)")
from PIL import Image  # noqa: E402

CLASSES = ("bird", "cat", "dog")


def _write_images(root):
    """3 classes x 5 images of different sizes and formats (PNG, JPEG,
    BMP, GIF, an upper-case .PNG in a nested folder), an RGBA and an L
    (grayscale) PNG, plus files and folders Keras ignores."""
    rng = np.random.RandomState(0)
    for c_i, name in enumerate(CLASSES):
        os.makedirs(root / name / "nested" / "deeper")
        for i, ext in enumerate(["png", "jpg", "bmp", "gif"]):
            arr = rng.randint(0, 256, size=(9 + 2 * i + c_i, 7 + 3 * i, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / name / f"img{i}.{ext}")
        arr = rng.randint(0, 256, size=(12, 10, 4 if c_i == 0 else 1), dtype=np.uint8)
        Image.fromarray(arr if c_i == 0 else arr[..., 0]).save(root / name / "nested" / "deeper" / "x.PNG")
        (root / name / "readme.txt").write_text("not an image")
    os.makedirs(root / ".hidden_class")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / ".hidden_class" / "h.png")
    (root / "top_level.png").write_bytes((root / "cat" / "img0.png").read_bytes())  # not in a class folder


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    _write_images(root)
    return str(root)


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("texts")
    texts = {"neg": ["bad film", "awful, truly awful", "zzz"], "pos": ["great", "héllo wörld ✓ fine", "loved it!"]}
    for label, items in texts.items():
        os.makedirs(root / label / "more")
        for i, t in enumerate(items):
            sub = "more/" if i == 2 else ""
            (root / label / f"{sub}t{i}.txt").write_text(t, encoding="utf-8")
        (root / label / "skip.md").write_text("ignored")
    return str(root)


@pytest.fixture(scope="module")
def kdu(keras_ref):
    from keras.src.utils import dataset_utils

    return dataset_utils


def _keras_pixels(keras_ref, path, mode, size, interpolation="bilinear", data_format="channels_last", **kw):
    """Pillow decode (as Keras's `_load_image_grain`) + real Keras's resize."""
    with Image.open(path) as img:
        keep = {"L": ("L", "I;16", "I"), "RGB": ("RGB",), "RGBA": ("RGBA",)}[mode]
        arr = np.array(img if img.mode in keep else img.convert(mode)).astype("float32")
    if arr.ndim == 2:
        arr = arr[..., None]
    if data_format == "channels_first":
        arr = arr.transpose(2, 0, 1)
    out = keras_ref.ops.image.resize(arr, size, interpolation=interpolation, data_format=data_format, **kw)
    return keras_ref.ops.convert_to_numpy(out)


def _all(ds):
    xs, ys = [], []
    for x, y in ds:
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


# ------------------------------------------------------------- file indexing


@pytest.mark.parametrize("shuffle,seed", [(False, None), (True, 1337), (True, 7)])
def test_file_order_and_labels_match_keras(kdu, image_dir, shuffle, seed):
    from kerasish.utils import dataset_utils as ours

    formats = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
    ref = kdu.index_directory(image_dir, "inferred", formats, shuffle=shuffle, seed=seed, verbose=False)
    got = ours.index_directory(image_dir, "inferred", formats, shuffle=shuffle, seed=seed, verbose=False)
    assert got[0] == ref[0] and got[2] == ref[2] == list(CLASSES)
    np.testing.assert_array_equal(got[1], ref[1])
    assert got[1].dtype == np.int32 and len(got[0]) == 15  # .txt, the hidden folder and top-level file ignored
    ds = keras.utils.image_dataset_from_directory(image_dir, shuffle=shuffle, seed=seed, verbose=False)
    assert ds.file_paths == ref[0] and ds.class_names == ref[2]


@pytest.mark.parametrize("labels,class_names", [(None, None), ("inferred", ["dog", "bird"]),
                                                ("explicit", None)])
def test_index_labels_and_class_names_match_keras(kdu, image_dir, labels, class_names):
    from kerasish.utils import dataset_utils as ours

    formats = (".png", ".jpg", ".bmp", ".gif")
    if labels == "explicit":  # one label per file, in sorted path order
        labels = [i % 4 for i in range(17)]  # the top-level file and the hidden folder count here
    ref = kdu.index_directory(image_dir, list(labels) if isinstance(labels, list) else labels, formats,
                              class_names=class_names, seed=3, verbose=False)
    got = ours.index_directory(image_dir, labels, formats, class_names=class_names, seed=3, verbose=False)
    assert got[0] == ref[0] and got[2] == ref[2]
    if ref[1] is None:
        assert got[1] is None
    else:
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(ref[1]))
    if isinstance(labels, list):
        assert labels == [i % 4 for i in range(17)]  # the caller's list is not shuffled in place


def test_follow_links_matches_keras(kdu, tmp_path):
    for name in ("a", "b"):
        os.makedirs(tmp_path / "data" / name)
        (tmp_path / "data" / name / f"{name}.txt").write_text(name)
    os.makedirs(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / "linked.txt").write_text("via link")
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "a" / "link")
    from kerasish.utils import dataset_utils as ours

    for follow in (False, True):
        ref = kdu.index_directory(str(tmp_path / "data"), "inferred", (".txt",), shuffle=False, follow_links=follow,
                                  verbose=False)
        got = ours.index_directory(str(tmp_path / "data"), "inferred", (".txt",), shuffle=False,
                                   follow_links=follow, verbose=False)
        assert got[0] == ref[0]
        assert len(got[0]) == (3 if follow else 2)


@pytest.mark.parametrize("split", [0.2, 0.34, 0.5])
def test_validation_split_matches_keras(kdu, image_dir, split, capsys):
    paths, labels, _ = kdu.index_directory(image_dir, "inferred", (".bmp", ".gif", ".jpeg", ".jpg", ".png"),
                                           seed=1337, verbose=False)
    ref_train = kdu.get_training_or_validation_split(paths, labels, split, "training")
    ref_val = kdu.get_training_or_validation_split(paths, labels, split, "validation")
    capsys.readouterr()
    train, val = keras.utils.image_dataset_from_directory(image_dir, validation_split=split, subset="both",
                                                          seed=1337, image_size=(8, 8), batch_size=4)
    n_val = int(split * 15)
    assert capsys.readouterr().out == (f"Found 15 files belonging to 3 classes.\nUsing {15 - n_val} files for "
                                       f"training.\nUsing {n_val} files for validation.\n")
    assert train.file_paths == ref_train[0] and val.file_paths == ref_val[0]
    assert not set(train.file_paths) & set(val.file_paths)
    assert len(train) == -(-(15 - n_val) // 4) and len(val) == -(-n_val // 4)
    only_val = keras.utils.image_dataset_from_directory(image_dir, validation_split=split, subset="validation",
                                                        seed=1337, image_size=(8, 8), verbose=False)
    assert only_val.file_paths == ref_val[0]
    # the validation dataset is not shuffled: its labels come in file order
    _, y = _all(val)
    np.testing.assert_array_equal(y.numpy(), ref_val[1])


# ------------------------------------------------------------------ pixels


@pytest.mark.parametrize("color_mode,mode,channels", [("rgb", "RGB", 3), ("rgba", "RGBA", 4),
                                                      ("grayscale", "L", 1)])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest", "bicubic"])
def test_images_match_keras_resize(keras_ref, image_dir, color_mode, mode, channels, interpolation):
    ds = keras.utils.image_dataset_from_directory(image_dir, color_mode=color_mode, image_size=(6, 5),
                                                  interpolation=interpolation, shuffle=False, batch_size=4,
                                                  verbose=False)
    x, y = _all(ds)
    assert x.dtype == torch.float32 and x.shape == (15, 6, 5, channels)
    assert y.dtype == torch.int32
    ref = np.stack([_keras_pixels(keras_ref, p, mode, (6, 5), interpolation) for p in ds.file_paths])
    np.testing.assert_array_equal(x.numpy(), ref)  # the same torch kernels on the same float32 pixels: bit for bit


@pytest.mark.parametrize("kw", [{"crop_to_aspect_ratio": True}, {"pad_to_aspect_ratio": True}])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_crop_pad_and_data_format_match_keras(keras_ref, image_dir, kw, data_format):
    ds = keras.utils.image_dataset_from_directory(image_dir, image_size=(4, 9), shuffle=False, batch_size=None,
                                                  data_format=data_format, label_mode=None, verbose=False, **kw)
    images = list(ds)
    assert len(ds) == len(images) == 17  # labels=None: every image under the folder, whatever its folder
    for path, img in zip(ds.file_paths, images):
        ref = _keras_pixels(keras_ref, path, "RGB", (4, 9), data_format=data_format, **kw)
        assert tuple(img.shape) == ((4, 9, 3) if data_format == "channels_last" else (3, 4, 9))
        np.testing.assert_array_equal(img.numpy(), ref)


def test_crop_and_pad_windows_follow_keras_maths(image_dir):
    # cat/img2.bmp is 14 high, 13 wide (_write_images: 9 + 2*2 + 1, 7 + 3*2). With an output of the window's
    # own size the resize is the identity, so the output is the window itself.
    path = os.path.join(image_dir, "cat", "img2.bmp")
    arr = np.array(Image.open(path).convert("RGB")).astype("float32")
    h, w = arr.shape[:2]
    assert (h, w) == (14, 13)
    # crop to 1:2 (h:w): crop_h = max(min(h, int(w * 1 / 2)), 1) = 6, crop_w = 13, top = int((14 - 6) / 2) = 4
    ch, cw = max(min(h, int(w * 1 / 2)), 1), max(min(w, int(h * 2 / 1)), 1)
    top, left = int((h - ch) / 2), int((w - cw) / 2)
    # pad to 2:1: pad_h = max(h, int(w * 2 / 1)) = 26, pad_w = 13, the image starts at row int((26 - 14) / 2) = 6
    ph, pw = max(h, int(w * 2 / 1)), max(w, int(h * 1 / 2))
    ptop = int((ph - h) / 2)
    for kw, size in (({"crop_to_aspect_ratio": True}, (ch, cw)), ({"pad_to_aspect_ratio": True}, (ph, pw))):
        ds = keras.utils.image_dataset_from_directory(image_dir, image_size=size, shuffle=False, batch_size=None,
                                                      verbose=False, **kw)
        img = list(ds)[ds.file_paths.index(path)][0].numpy()
        if "crop_to_aspect_ratio" in kw:
            np.testing.assert_array_equal(img, arr[top:top + ch, left:left + cw])
        else:
            np.testing.assert_array_equal(img[ptop:ptop + h], arr)
            assert not img[:ptop].any() and not img[ptop + h:].any()  # zero padding


# ------------------------------------------------------------------ labels


@pytest.mark.parametrize("label_mode", ["int", "categorical", "binary", None])
def test_label_modes(image_dir, label_mode):
    class_names = ["cat", "dog"] if label_mode == "binary" else None
    ds = keras.utils.image_dataset_from_directory(image_dir, label_mode=label_mode, class_names=class_names,
                                                  image_size=(3, 3), shuffle=False, batch_size=4, verbose=False)
    if label_mode is None:
        x = torch.cat(list(ds))
        assert x.shape == (17, 3, 3, 3) and ds.class_names is None  # the folder structure is ignored
        return
    names = ds.class_names
    expected = np.array([names.index(p.split(os.sep)[-2] if p.split(os.sep)[-2] in names
                                     else p.split(os.sep)[-4]) for p in ds.file_paths])
    _, y = _all(ds)
    if label_mode == "int":
        assert y.dtype == torch.int32 and y.shape == (15,)
        np.testing.assert_array_equal(y.numpy(), expected)
    elif label_mode == "categorical":
        assert y.dtype == torch.float32 and y.shape == (15, 3)
        np.testing.assert_array_equal(y.numpy(), np.eye(3, dtype="float32")[expected])
    else:
        assert y.dtype == torch.float32 and y.shape == (10, 1) and names == ["cat", "dog"]
        np.testing.assert_array_equal(y.numpy(), expected[:, None].astype("float32"))


def test_shuffle_reshuffles_each_pass_and_keeps_pairs(keras_ref, image_dir):
    ds = keras.utils.image_dataset_from_directory(image_dir, image_size=(5, 5), seed=11, batch_size=4,
                                                  verbose=False)
    ref = {p: _keras_pixels(keras_ref, p, "RGB", (5, 5)) for p in ds.file_paths}
    names = ds.class_names
    orders = []
    for _ in range(3):
        x, y = _all(ds)
        order = []
        for img, label in zip(x.numpy(), y.numpy()):
            match = [p for p, r in ref.items() if np.allclose(img, r, atol=1e-3)]
            assert len(match) == 1
            parts = match[0].split(os.sep)
            assert names[label] in parts  # the label travels with its image
            order.append(match[0])
        assert sorted(order) == sorted(ds.file_paths)  # a permutation of the files
        orders.append(order)
    assert orders[0] != orders[1] != orders[2]
    again = keras.utils.image_dataset_from_directory(image_dir, image_size=(5, 5), seed=11, batch_size=4,
                                                     verbose=False)
    x0, _ = _all(again)
    np.testing.assert_array_equal(x0.numpy(), np.stack([ref[p] for p in orders[0]]).astype("float32"))


# -------------------------------------------------------------------- text


def test_text_dataset_contents_labels_and_max_length(text_dir, kdu):
    ref_paths, ref_labels, _ = kdu.index_directory(text_dir, "inferred", (".txt",), seed=5, verbose=False)
    ds = keras.utils.text_dataset_from_directory(text_dir, seed=5, batch_size=2, shuffle=False, verbose=False)
    assert ds.class_names == ["neg", "pos"] and len(ds) == 3
    texts, labels = [], []
    for x, y in ds:
        assert isinstance(x, np.ndarray) and x.dtype == object and y.dtype == torch.int32
        texts += list(x)
        labels += y.tolist()
    assert texts == [open(p, encoding="utf-8").read() for p in ds.file_paths]
    ds5 = keras.utils.text_dataset_from_directory(text_dir, max_length=5, batch_size=None, shuffle=False,
                                                  label_mode="categorical", verbose=False)
    items = list(ds5)
    assert [t for t, _ in items] == [t[:5] for t in texts] and "héllo" in [t for t, _ in items]
    np.testing.assert_array_equal(torch.stack([y for _, y in items]).numpy(), np.eye(2)[labels])
    train, val = keras.utils.text_dataset_from_directory(text_dir, validation_split=0.34, subset="both", seed=5,
                                                         verbose=False)
    assert train.file_paths == ref_paths[:-2] and val.file_paths == ref_paths[-2:]
    np.testing.assert_array_equal(next(iter(val))[1].numpy(), ref_labels[-2:])


def test_text_dataset_trains_a_text_vectorization_model(text_dir):
    keras.utils.set_random_seed(0)
    raw = keras.utils.text_dataset_from_directory(text_dir, batch_size=2, seed=1, verbose=False)
    vectorize = keras.layers.TextVectorization(max_tokens=50, output_mode="multi_hot")
    vectorize.adapt(raw.map(lambda x, y: x))
    assert "awful" in vectorize.get_vocabulary()
    train = raw.map(lambda x, y: (vectorize(x), y))
    model = keras.Sequential([keras.Input((vectorize.vocabulary_size(),)),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    history = model.fit(train, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


# ------------------------------------------------------------------ errors


ERROR_CASES = [
    {"label_mode": "sparse"},
    {"labels": "folders"},
    {"labels": [0, 1], "class_names": ["a"]},
    {"labels": [0, 1]},  # length does not match the files
    {"labels": None, "class_names": ["cat"]},
    {"class_names": ["cat", "lion"]},
    {"color_mode": "bgr"},
    {"image_size": (1, 2, 3)},
    {"interpolation": "cubic"},
    {"format": "torch"},
    {"validation_split": 1.5, "subset": "training", "seed": 1},
    {"validation_split": 0.2},
    {"subset": "validation"},
    {"validation_split": 0.2, "subset": "test", "seed": 1},
    {"validation_split": 0.2, "subset": "training"},  # shuffling needs a seed
    {"label_mode": "binary"},  # 3 classes
]


@pytest.mark.parametrize("kwargs", ERROR_CASES, ids=lambda kw: ",".join(kw))
def test_errors_match_keras(keras_ref, image_dir, kwargs):
    with pytest.raises(Exception) as ref:
        keras_ref.utils.image_dataset_from_directory(image_dir, verbose=False, **kwargs)
    with pytest.raises(type(ref.value)) as got:
        keras.utils.image_dataset_from_directory(image_dir, verbose=False, **kwargs)
    assert str(got.value) == str(ref.value)


@pytest.mark.parametrize("kwargs", [{"label_mode": "categorical", "labels": 3}, {"format": "grain2"},
                                    {"class_names": ["neg", "neutral"]}])
def test_text_errors_match_keras(keras_ref, text_dir, kwargs):
    with pytest.raises(Exception) as ref:
        keras_ref.utils.text_dataset_from_directory(text_dir, verbose=False, **kwargs)
    with pytest.raises(type(ref.value)) as got:
        keras.utils.text_dataset_from_directory(text_dir, verbose=False, **kwargs)
    assert str(got.value) == str(ref.value)


def test_split_too_small_for_one_file(image_dir, capsys):
    # Keras: `files[:-0]` (no training file: an error) and `files[-0:]` (every
    # file as validation, silently). Here: every file for training, and an
    # error for the empty validation subset.
    train = keras.utils.image_dataset_from_directory(image_dir, validation_split=0.05, subset="training", seed=1,
                                                     verbose=False)
    assert len(train.file_paths) == 15 and "Using 15 files for training." in capsys.readouterr().out
    with pytest.raises(ValueError, match="No images found in directory"):
        keras.utils.image_dataset_from_directory(image_dir, validation_split=0.05, subset="validation", seed=1)
    with pytest.raises(ValueError, match="No validation images found in directory"):
        keras.utils.image_dataset_from_directory(image_dir, validation_split=0.05, subset="both", seed=1)


def test_errors_kerasish_raises_earlier_than_keras(image_dir, tmp_path):
    with pytest.raises(ValueError, match="Lanczos|TensorFlow resize method.*lanczos3"):
        keras.utils.image_dataset_from_directory(image_dir, interpolation="lanczos3")
    with pytest.raises(ValueError, match="Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio`"):
        keras.utils.image_dataset_from_directory(image_dir, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)
    with pytest.raises(ValueError, match="image_size=\\(0, 4\\)"):
        keras.utils.image_dataset_from_directory(image_dir, image_size=(0, 4))
    with pytest.raises(ValueError, match="batch_size=0"):
        keras.utils.image_dataset_from_directory(image_dir, batch_size=0)
    with pytest.raises(ValueError, match="must be an existing directory"):
        keras.utils.image_dataset_from_directory(str(tmp_path / "missing"))
    os.makedirs(tmp_path / "empty" / "a")
    with pytest.raises(ValueError, match="No images found in directory"):
        keras.utils.image_dataset_from_directory(str(tmp_path / "empty"))


# ----------------------------------------------------------- tf.data idioms


def test_map_take_cache_unbatch_batch(image_dir):
    ds = keras.utils.image_dataset_from_directory(image_dir, image_size=(4, 4), shuffle=False, batch_size=4,
                                                  verbose=False)
    x, y = _all(ds)
    scaled = ds.map(lambda a, b: (a / 255.0, b), num_parallel_calls=-1).prefetch(-1)
    assert len(scaled) == 4 and scaled.class_names == ds.class_names
    xs, ys = _all(scaled)
    np.testing.assert_allclose(xs.numpy(), x.numpy() / 255.0, rtol=1e-6)
    assert len(ds.take(2)) == 2 and len(ds.take(-1)) == 4 and len(ds.take(10)) == 4
    np.testing.assert_array_equal(_all(ds.take(2))[1].numpy(), y[:8].numpy())
    samples = list(ds.unbatch())
    assert len(samples) == len(ds.unbatch()) == 15 and samples[3][0].shape == (4, 4, 3)
    np.testing.assert_array_equal(torch.stack([s[0] for s in samples]).numpy(), x.numpy())
    rebatched = ds.unbatch().batch(6)
    assert [len(b[1]) for b in rebatched] == [6, 6, 3]
    assert len(ds.unbatch().batch(6, drop_remainder=True)) == 2
    with pytest.raises(ValueError, match="already batched"):
        ds.batch(2)
    # map after unbatch works per sample
    flipped = ds.unbatch().map(lambda a, b: (a.flip(0), b))
    np.testing.assert_array_equal(flipped[0][0].numpy(), x[0].flip(0).numpy())



def test_shard_skip_and_cardinality(image_dir):
    """`shard(num_shards, index)`: elements index, index + num_shards, ... as tf.data's (tutorials split a
    validation set with shard(2, 0) / shard(2, 1)); of a batched dataset whole batches, the partial last one
    included; unbatch after it gives the shard's samples; bad arguments are refused."""
    ds = keras.utils.image_dataset_from_directory(image_dir, shuffle=False, image_size=(4, 4), batch_size=4,
                                                  verbose=False)
    batches = [keras.ops.convert_to_numpy(y).tolist() for _, y in ds]
    for num_shards in (1, 2, 3):
        for index in range(num_shards):
            shard = ds.shard(num_shards, index)
            got = [keras.ops.convert_to_numpy(y).tolist() for _, y in shard]
            assert got == batches[index::num_shards]
            assert len(shard) == len(got)
            assert [int(y) for _, y in shard.unbatch()] == [v for b in got for v in b]
    assert ds.shard(2, 1).class_names == ds.class_names
    # transfer_learning's `take(val_batches // 5)` / `skip(val_batches // 5)` with `cardinality()`
    assert ds.cardinality() == len(batches)
    for count in (0, 1, len(batches) - 1, len(batches), len(batches) + 3, -1):
        skipped = [keras.ops.convert_to_numpy(y).tolist() for _, y in ds.skip(count)]
        assert skipped == ([] if count == -1 else batches[count:])
        assert ds.skip(count).cardinality() == len(skipped)
    with pytest.raises(ValueError, match="count"):
        ds.skip(-2)
    for kwargs in ({"num_shards": 0, "index": 0}, {"num_shards": 2, "index": 2}, {"num_shards": 2, "index": -1},
                   {"num_shards": 2.0, "index": 0}):
        with pytest.raises(ValueError, match="num_shards|index"):
            ds.shard(**kwargs)


def test_cache_keeps_the_first_pass(image_dir):
    ds = keras.utils.image_dataset_from_directory(image_dir, image_size=(3, 3), seed=2, batch_size=5,
                                                  verbose=False)
    calls = []
    cached = ds.map(lambda a, b: (calls.append(1) or a, b)).cache()
    first, second = _all(cached), _all(cached)
    assert len(calls) == 3  # the map ran once per batch, on the first pass only
    np.testing.assert_array_equal(first[0].numpy(), second[0].numpy())  # tf.data's cache: the same order
    third = _all(ds)
    assert not torch.equal(third[0], first[0])  # the uncached dataset reshuffles


def test_cache_then_shuffle_reorders_cached_batches(image_dir):
    # the tf.data tutorial idiom `ds.cache().shuffle(1000).prefetch(AUTOTUNE)`
    ds = keras.utils.image_dataset_from_directory(image_dir, image_size=(3, 3), shuffle=False, batch_size=2,
                                                  verbose=False)
    batches = [b[0] for b in ds]
    pipeline = ds.cache().shuffle(1000, seed=4).prefetch(-1)
    passes = [[b[0] for b in pipeline] for _ in range(3)]
    for p in passes:  # each pass: every batch once, whole
        assert sorted(int(b.sum()) for b in p) == sorted(int(b.sum()) for b in batches)
    assert [int(b.sum()) for b in passes[0]] != [int(b.sum()) for b in passes[1]]
    fixed = ds.shuffle(8, seed=4, reshuffle_each_iteration=False)
    assert [int(b[0].sum()) for b in fixed] == [int(b[0].sum()) for b in fixed]
    with pytest.raises(ValueError, match="buffer_size=0"):
        ds.shuffle(0)


# ------------------------------------------------------------------- fit


def test_fit_a_small_cnn_on_image_dataset(tmp_path):
    rng = np.random.RandomState(1)
    for name, low in (("dark", 0), ("light", 156)):
        os.makedirs(tmp_path / name)
        for i in range(6):
            arr = rng.randint(low, low + 100, size=(6 + i, 8, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / name / f"{i}.png")
    keras.utils.set_random_seed(0)
    train, val = keras.utils.image_dataset_from_directory(
        str(tmp_path), validation_split=0.25, subset="both", seed=1337, image_size=(8, 8), batch_size=4,
        label_mode="binary", verbose=False)
    model = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255.0), keras.layers.Conv2D(2, 3),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(train, validation_data=val, epochs=12, verbose=0)
    assert len(history.history["val_loss"]) == 12
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(val, verbose=0)[1] == 1.0
    assert model.predict(val.map(lambda x, y: x), verbose=0).shape == (3, 1)



def test_fit_keeps_the_order_of_an_unshuffled_directory_dataset(image_dir):
    """Keras returns a tf.data dataset, whose order `fit(shuffle=True)` (the default) leaves alone; kerasish's
    dataset is a PyDataset, whose batch order fit permuted every epoch. An unshuffled dataset (and a `map`ped
    view of it) must reach train_step in its own order (found porting tensorflow.org's images/classification:
    History differed from tf.keras's until the order was kept)."""
    seen = []

    class Recorder(keras.Sequential):
        def train_step(self, batch):
            seen.append(int(keras.ops.convert_to_numpy(batch[1])[0]))
            return {"loss": 0.0}

    ds = keras.utils.image_dataset_from_directory(image_dir, shuffle=False, image_size=(4, 4), batch_size=1,
                                                  verbose=False)
    want = [int(keras.ops.convert_to_numpy(y)[0]) for _, y in ds]
    assert want == sorted(want) and len(set(want)) == 3
    model = Recorder([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    for dataset in (ds, ds.map(lambda x, y: (x * 2, y))):
        seen.clear()
        model.fit(dataset, epochs=2, verbose=0)
        assert seen == want * 2


# --------------------------------------------------------------- split_dataset


@pytest.mark.parametrize("kw", [{"left_size": 0.6}, {"right_size": 3}, {"left_size": 0.3, "right_size": 0.7},
                                {"left_size": 4, "right_size": 0.6}])
def test_split_dataset_matches_keras_when_shuffled(keras_ref, kw):
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    ref_l, ref_r = keras_ref.utils.split_dataset((x, y), shuffle=True, seed=42, **kw)
    left, right = keras.utils.split_dataset((x, y), shuffle=True, seed=42, **kw)
    assert isinstance(left, torch.utils.data.Subset)
    assert left.indices == ref_l.indices and right.indices == ref_r.indices
    for ours, theirs in ((left, ref_l), (right, ref_r)):
        for i in range(len(ours)):
            for a, b in zip(ours[i], theirs[i]):
                assert torch.equal(a, b)


def test_split_dataset_unshuffled_dicts_and_torch_datasets():
    x = np.arange(10)
    left, right = keras.utils.split_dataset(x, left_size=0.7)
    # documented order (Keras on torch draws a random permutation here even with shuffle=False)
    assert left.indices == list(range(7)) and right.indices == [7, 8, 9]
    assert left[0][0].item() == 0
    left, right = keras.utils.split_dataset(x, left_size=0.2, right_size=0.3)
    assert left.indices == [0, 1] and right.indices == [7, 8, 9]
    d_left, d_right = keras.utils.split_dataset({"a": x, "b": x * 2}, right_size=2)
    assert d_right[1] == {"a": torch.tensor(9), "b": torch.tensor(18)} and len(d_left) == 8
    tds = torch.utils.data.TensorDataset(torch.arange(5))
    t_left, t_right = keras.utils.split_dataset(tds, left_size=2)
    assert len(t_left) == 2 and t_right.dataset is tds


def test_split_dataset_of_a_directory_dataset(image_dir):
    ds = keras.utils.image_dataset_from_directory(image_dir, image_size=(4, 4), shuffle=False, batch_size=4,
                                                  verbose=False)
    x, y = _all(ds)
    left, right = keras.utils.split_dataset(ds, left_size=0.6)
    assert (len(left), len(right)) == (3, 2) and left.class_names == ds.class_names  # 9 and 6 samples, batches of 4
    lx, ly = _all(left)
    rx, ry = _all(right)
    np.testing.assert_array_equal(torch.cat([lx, rx]).numpy(), x.numpy())
    np.testing.assert_array_equal(torch.cat([ly, ry]).numpy(), y.numpy())
    left, right = keras.utils.split_dataset(ds.map(lambda a, b: (a / 255.0, b)), right_size=5, shuffle=True, seed=3)
    order = torch.randperm(15, generator=torch.Generator().manual_seed(3)).tolist()
    np.testing.assert_allclose(_all(right)[0].numpy(), x.numpy()[order[10:]] / 255.0, rtol=1e-6)


@pytest.mark.parametrize("dataset,kw", [
    (np.arange(10), {}),
    (np.arange(10), {"left_size": 0, "right_size": 0}),
    (np.arange(10), {"left_size": 10}),
    (np.arange(10), {"left_size": 1.5}),
    (np.arange(10), {"right_size": -1}),
    (np.arange(10), {"left_size": 0.6, "right_size": 0.6}),
    (np.arange(10), {"left_size": 8, "right_size": 5}),
    (np.arange(10), {"left_size": 0.01}),
    (np.arange(10), {"left_size": "half"}),
    (np.arange(10), {"left_size": "half", "right_size": [1]}),
    (np.arange(10), {"right_size": np.float32(0.5)}),
    ("not a dataset", {"left_size": 0.5}),
])
def test_split_dataset_errors_match_keras(keras_ref, dataset, kw):
    with pytest.raises(Exception) as ref:
        keras_ref.utils.split_dataset(dataset, **kw)
    with pytest.raises(type(ref.value)) as got:
        keras.utils.split_dataset(dataset, **kw)
    if isinstance(dataset, np.ndarray):  # the same message (Keras leaves out some spaces)
        assert "".join(str(got.value).split()) == "".join(str(ref.value).split())
