"""Hostile, damaged and unusual HDF5 files fail with a clear ValueError that
names the file, before anything large is allocated; writes are atomic."""

import os
import shutil

import h5py
import numpy as np
import pytest

import kerasish as keras
from kerasish.saving import legacy_h5_format
from legacy_fixtures import path

L = keras.layers


def _copy(tmp_path, name="mlp_weights.h5"):
    target = tmp_path / name
    shutil.copy(path(name), target)
    return target


def _model():
    return keras.Sequential([keras.Input((8,)), L.Dense(16), L.Dense(6), L.Dense(3)])


def test_external_link_is_refused(tmp_path):
    target = _copy(tmp_path)
    with h5py.File(target, "a") as f:
        f["evil"] = h5py.ExternalLink("/etc/passwd", "/x")
    with pytest.raises(ValueError, match=r"external link.*mlp_weights\.h5|mlp_weights\.h5.*external link"):
        _model().load_weights(target)


def test_soft_link_is_refused(tmp_path):
    target = _copy(tmp_path)
    with h5py.File(target, "a") as f:
        f["dense"]["alias"] = h5py.SoftLink("/dense_1")
    with pytest.raises(ValueError, match="soft link"):
        _model().load_weights(target)


def test_virtual_dataset_is_refused(tmp_path):
    src = tmp_path / "src.h5"
    with h5py.File(src, "w") as f:
        f["data"] = np.zeros((8, 16), "float32")
    target = _copy(tmp_path)
    with h5py.File(target, "a") as f:
        layout = h5py.VirtualLayout(shape=(8, 16), dtype="float32")
        layout[:] = h5py.VirtualSource(str(src), "data", shape=(8, 16))
        f["dense"].create_virtual_dataset("virtual", layout)
    with pytest.raises(ValueError, match="virtual dataset"):
        _model().load_weights(target)


def test_truncated_file(tmp_path):
    data = open(path("mlp.h5"), "rb").read()
    target = tmp_path / "cut.h5"
    target.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="cut.h5"):
        keras.models.load_model(target)


def test_not_hdf5(tmp_path):
    target = tmp_path / "junk.h5"
    target.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match=r"junk\.h5.*not a valid"):
        legacy_h5_format.load_model(target)


def test_absurd_shape_is_never_read(tmp_path, monkeypatch):
    target = _copy(tmp_path)
    with h5py.File(target, "a") as f:
        del f["dense"]["dense"]["kernel:0"]
        # 2**40 float32 values declared (4 TiB), stored sparsely: only a read would allocate them
        f["dense"]["dense"].create_dataset("kernel:0", shape=(1 << 20, 1 << 20), dtype="float32", chunks=(1, 16))
    reads = []
    original = h5py.Dataset.__getitem__
    monkeypatch.setattr(h5py.Dataset, "__getitem__", lambda self, k: reads.append(self.shape) or original(self, k))
    with pytest.raises(ValueError, match=r"dense.*\(1048576, 1048576\).*\(8, 16\)"):
        _model().load_weights(target)
    assert (1 << 20, 1 << 20) not in reads


def test_wrong_dtype(tmp_path):
    target = _copy(tmp_path)
    with h5py.File(target, "a") as f:
        del f["dense"]["dense"]["bias:0"]
        f["dense"]["dense"]["bias:0"] = np.array([b"x" * 4] * 16)
    with pytest.raises(ValueError, match="not a numeric array"):
        _model().load_weights(target)


def test_huge_attribute_is_refused_before_reading(tmp_path, monkeypatch):
    """A fixed-size attribute is measured before it is read (a variable-length
    one cannot be larger than the file, so it cannot amplify)."""
    target = _copy(tmp_path, "mlp.h5")
    with h5py.File(target, "a") as f:
        config = f.attrs["model_config"]
        f.attrs["model_config"] = np.bytes_(config.encode() if isinstance(config, str) else bytes(config))
    monkeypatch.setattr(legacy_h5_format, "_MAX_ATTR_BYTES", 1000)
    with pytest.raises(ValueError, match="model_config.*refusing"):
        keras.models.load_model(target)


def test_invalid_model_config_json(tmp_path):
    target = _copy(tmp_path, "mlp.h5")
    with h5py.File(target, "a") as f:
        f.attrs["model_config"] = b"{not json"
    with pytest.raises(ValueError, match=r"invalid 'model_config'.*JSON"):
        keras.models.load_model(target)


def test_weights_only_file_to_load_model_says_what_to_do():
    with pytest.raises(ValueError, match="weights only.*load_weights"):
        keras.models.load_model(path("mlp_weights.h5"))


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model = _model()
    target = tmp_path / "m.h5"
    model.save(target)
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(legacy_h5_format, "save_weights_to_group", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        model.save(target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.h5"]


def test_overwrite_false(tmp_path):
    target = tmp_path / "m.h5"
    _model().save(target)
    with pytest.raises(FileExistsError):
        _model().save(target, overwrite=False)


def _flip_bytes(data, rng, count):
    b = bytearray(data)
    for _ in range(count):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def _zoo_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    model.fit(np.ones((8, 4), "float32"), np.ones((8, 2), "float32"), verbose=0)
    return model


@pytest.mark.parametrize("kind", ["model", "weights"])
def test_byte_flipped_files_load_or_raise_value_error_naming_the_file(tmp_path, kind):
    """Random byte flips in a Keras 2 `.h5` model / weights file (seeded): each
    load either succeeds (a flip in unused bytes or in weight values, which
    HDF5 does not checksum) or raises ValueError naming the file. h5py's
    RuntimeError ("Link iteration failed", "bad heap free list", ...) and
    UnicodeDecodeError on damaged names used to escape raw."""
    import random

    model = _zoo_model()
    src = tmp_path / "src.h5"
    model.save(src) if kind == "model" else model.save_weights(src)
    data = src.read_bytes()
    rng = random.Random(1234)
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(60):
        damaged = tmp_path / f"damaged_{i}.h5"
        damaged.write_bytes(_flip_bytes(data, rng, rng.randrange(1, 20)))
        try:
            if kind == "model":
                keras.models.load_model(damaged)
            else:
                _zoo_model().load_weights(damaged)
            outcomes["loaded"] += 1
        except ValueError as e:  # (a flipped class name in the config is an "Unknown layer" error)
            assert not isinstance(e, UnicodeDecodeError), e
            if "damaged" in str(e):
                assert damaged.name in str(e), e
            assert "only the Keras 3 `.weights.h5` layout" not in str(e), e  # (a damaged Keras 2 file)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 10  # the flips do reach the file's structure
