"""Property-based tests: damaged `.keras` archives and `.weights.h5` files.

A small model is saved once; each example truncates it, flips bits in it,
overwrites a span with random bytes, or pads it with garbage (oversized
files), then loads it. Acceptable: a clear Keras-type error raised by
kerasish (never a zipfile/h5py/json/torch exception escaping, never a hang),
or a model that works. A `.keras` archive carries CRC-32 checksums, so one
that still loads must predict exactly what the original predicts; a
`.weights.h5` file has no checksums, so a load that succeeds must at least
give outputs of the right shape.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzz_support import FUZZ
from fuzz_support import attempt
from hypothesis import event
from hypothesis import given
from hypothesis import strategies as st

import kerasish as keras

pytest.importorskip("h5py", reason="the weight files are HDF5")
pytestmark = pytest.mark.filterwarnings("ignore")

X = np.random.default_rng(0).random((3, 4)).astype("float32")


def _model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)])


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    keras.utils.clear_session()
    model = _model()
    folder = tmp_path_factory.mktemp("fuzz_files")
    model.save(folder / "model.keras")
    model.save_weights(folder / "model.weights.h5")
    expected = model(X).detach().numpy()
    return {
        ".keras": (folder / "model.keras").read_bytes(),
        ".weights.h5": (folder / "model.weights.h5").read_bytes(),
        "expected": expected,
    }


@st.composite
def damage(draw, data: bytes) -> bytes:
    n = len(data)
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "oversize", "prepend", "empty"]))
    event(kind)
    if kind == "truncate":
        return data[: draw(st.integers(0, n - 1))]
    if kind == "flip":
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, n - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(buf)
    if kind == "overwrite":
        start = draw(st.integers(0, n - 1))
        junk = draw(st.binary(min_size=1, max_size=64))
        return data[:start] + junk + data[start + len(junk) :]
    if kind == "oversize":
        return data + draw(st.binary(min_size=1, max_size=256)) * draw(st.integers(1, 4096))
    if kind == "prepend":
        return draw(st.binary(min_size=1, max_size=64)) + data
    return b""


def _outcome(ok, result):
    event("loaded" if ok else f"clear {type(result).__name__}")


@FUZZ
@given(data=st.data())
def test_damaged_keras_archive(originals, tmp_path_factory, data):
    blob = data.draw(damage(originals[".keras"]), label="file")
    path = tmp_path_factory.getbasetemp() / "damaged.keras"
    path.write_bytes(blob)
    ok, model = attempt(lambda: keras.saving.load_model(path), f"load_model on {len(blob)} damaged bytes")
    _outcome(ok, model)
    if ok:  # CRC-checked: a loaded archive is the original model
        np.testing.assert_allclose(model(X).detach().numpy(), originals["expected"], rtol=0, atol=0)


@FUZZ
@given(data=st.data())
def test_damaged_weights_file(originals, tmp_path_factory, data):
    blob = data.draw(damage(originals[".weights.h5"]), label="file")
    path = tmp_path_factory.getbasetemp() / "damaged.weights.h5"
    path.write_bytes(blob)
    model = _model()
    ok, result = attempt(lambda: model.load_weights(path), f"load_weights on {len(blob)} damaged bytes")
    _outcome(ok, result)
    if ok:
        out = model(X).detach().numpy()
        assert out.shape == originals["expected"].shape


@FUZZ
@given(data=st.data())
def test_damaged_archive_weights_only(originals, tmp_path_factory, data):
    """`model.load_weights("x.keras")` reads only the archive's weights."""
    blob = data.draw(damage(originals[".keras"]), label="file")
    path = tmp_path_factory.getbasetemp() / "damaged_weights_only.keras"
    path.write_bytes(blob)
    model = _model()
    ok, result = attempt(lambda: model.load_weights(path), f"load_weights(.keras) on {len(blob)} damaged bytes")
    _outcome(ok, result)
    if ok:
        np.testing.assert_allclose(model(X).detach().numpy(), originals["expected"], rtol=0, atol=0)
