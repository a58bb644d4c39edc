"""keras.applications.NASNetMobile / NASNetLarge against Keras 3.15 (torch backend).

Keras 3.15's `NASNetMobile` raises on the torch backend before building anything ("not available with the torch
backend at this time due to an outstanding bug"); `_keras_mobile` calls it with that one check answered as on
TensorFlow, so the rest of Keras's function (its defaults, its builder call) is the reference.

NASNetLarge is not built here (1,039 layers: ~25 s in Keras, more in kerasish on a loaded 2-core machine): its
arguments to the shared builder are compared with Keras's, and the builder's Large-only branch
(`skip_reduction=True`) runs on a small NASNet through both builders.
"""

import numpy as np
import pytest
import torch

import kerasish
import kerasish.applications as apps
from kerasish.applications import nasnet as ours_nasnet
from tests.applications.test_apps2_efficientnet import (
    _assert_same_model, _assert_same_outputs, _captured_args, _images, _randomize, _to_numpy,
)

# Large's branches (skip_reduction=True, stem 96/24 = 4 filters) on 8..32-filter stages, one normal cell each
SMALL = dict(penultimate_filters=192, num_blocks=1, stem_block_filters=12, skip_reduction=True, filter_multiplier=2,
             default_size=331)
SMALL_KWARGS = dict(SMALL, input_shape=(40, 48, 3), include_top=True, classes=5, weights=None, name="small")


@pytest.fixture(scope="module")
def kn(keras_ref):
    from keras.src.applications import nasnet

    return nasnet


class _BackendNotTorch:
    """Keras's backend module, except that `backend()` answers "tensorflow"."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    @staticmethod
    def backend():
        return "tensorflow"


def _keras_mobile(kn, monkeypatch, **kwargs):
    monkeypatch.setattr(kn, "backend", _BackendNotTorch(kn.backend))
    return kn.NASNetMobile(**kwargs)


@pytest.fixture(scope="module")
def mobile(keras_ref, kn):
    """Both NASNetMobiles with a top (1000 classes) at 96x96 (stem 47x47, cells down to 3x3: both `correct_pad`
    parities; 224x224 costs ~5x the time), Keras's randomized weights in both."""
    keras_ref.backend.clear_session()
    with pytest.MonkeyPatch.context() as mp:
        theirs = _keras_mobile(kn, mp, weights=None, input_shape=(96, 96, 3))
    kerasish.backend.clear_session()
    ours = apps.NASNetMobile(weights=None, input_shape=(96, 96, 3))
    ours.set_weights(_randomize(theirs))
    return theirs, ours


def test_mobile_matches_keras(mobile):
    theirs, ours = mobile
    _assert_same_model(theirs, ours)
    assert len(ours.layers) == 771 and ours.count_params() == 5_326_716  # Keras's documented size: 5.3M
    assert ours.get_layer("stem_bn1").momentum == 0.9997
    path = "normal_A_block_0/block_1/separable_conv_block_normal_left1_0/separable_conv_1_normal_left1_0/"
    assert ours.get_layer("separable_conv_1_normal_left1_0").depthwise_kernel.path == path + "depthwise_kernel"
    x = apps.nasnet.preprocess_input(_images((96, 96, 3)))
    _assert_same_outputs(theirs, ours, x)


@pytest.fixture(scope="module")
def small(keras_ref, kn):
    """A small NASNet through both builders (Large's branches), static 40x48 input, randomized weights."""
    keras_ref.backend.clear_session()
    theirs = kn.NASNet(**SMALL_KWARGS)
    kerasish.backend.clear_session()
    ours = ours_nasnet.NASNet(**SMALL_KWARGS)
    ours.set_weights(_randomize(theirs, seed=2))
    return theirs, ours


def _small_images(batch=4, seed=2):
    return apps.nasnet.preprocess_input(_images((40, 48, 3), batch=batch, seed=seed))


def test_builder_large_branches_match_keras(small):
    """skip_reduction=True (NASNetLarge's), inference and training=True (batch statistics over 4 images; 1e-4 as
    the other families' training tests)."""
    theirs, ours = small
    _assert_same_model(theirs, ours)
    _assert_same_outputs(theirs, ours, _small_images())
    _assert_same_outputs(theirs, ours, _small_images(), training=True, rtol=1e-4, atol=1e-4)


def test_builder_with_unknown_size_matches_keras(keras_ref, kn):
    """With (None, None, 3), Keras's previous-path adjustment compares unknown widths (None != None is False) and
    projects where a static size needs a reduction: the graph builds but cannot run (a cell adds 4x5 to 9x11 maps
    at 40x48). kerasish builds the same graph, so weights files keep Keras's layout, and fails as Keras does."""
    kwargs = dict(SMALL, input_shape=(None, None, 3), include_top=False, pooling="avg", weights=None)
    keras_ref.backend.clear_session()
    theirs = kn.NASNet(**kwargs)
    kerasish.backend.clear_session()
    ours = ours_nasnet.NASNet(**kwargs)
    _assert_same_model(theirs, ours)
    names = {layer.name for layer in ours.layers}
    assert "adjust_conv_projection_stem_2" in names and "adjust_conv_1_stem_2" not in names
    x = _small_images(batch=1, seed=3)
    with pytest.raises(RuntimeError, match="must match the size"):
        theirs(x)
    with pytest.raises(ValueError, match="reduction_add_1_stem_2': Inputs have incompatible shapes"):
        ours(torch.as_tensor(x))  # kerasish's Add names the layer (Keras's torch backend: a torch RuntimeError)


def test_keras_files_both_ways(keras_ref, small, tmp_path):
    """`.keras` archives: Keras's read by kerasish, kerasish's read by Keras (same outputs, same weights)."""
    theirs, ours = small
    x = _small_images(batch=2, seed=5)
    want = _to_numpy(theirs(x))
    theirs.save(tmp_path / "keras.keras")
    kerasish.backend.clear_session()
    loaded = kerasish.saving.load_model(tmp_path / "keras.keras")
    np.testing.assert_allclose(_to_numpy(loaded(torch.as_tensor(x))), want, rtol=0, atol=1e-5 * np.abs(want).max())
    ours.save(tmp_path / "kerasish.keras")
    keras_ref.backend.clear_session()
    back = keras_ref.saving.load_model(tmp_path / "kerasish.keras")
    assert [layer.name for layer in back.layers] == [layer.name for layer in ours.layers]
    for a, b in zip(back.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(a, b)
    mine = _to_numpy(ours(torch.as_tensor(x)))
    np.testing.assert_allclose(_to_numpy(back(x)), mine, rtol=0, atol=1e-5 * np.abs(mine).max())


def test_weights_path_reads_the_imagenet_file_layout(small, tmp_path):
    """`weights=path` with a file laid out as Keras's ImageNet downloads (tf.keras 2 HDF5, layer by layer)."""
    from tests.applications.test_apps_core import _write_application_h5

    theirs, _ = small
    path = str(tmp_path / "nasnet.h5")
    _write_application_h5(theirs, path)
    kerasish.backend.clear_session()
    ours = ours_nasnet.NASNet(**dict(SMALL_KWARGS, weights=path))
    _assert_same_outputs(theirs, ours, _small_images(batch=2, seed=4))


def test_large_and_mobile_pass_keras_arguments_to_the_builder(kn, monkeypatch):
    for fn, kwargs in (("NASNetLarge", {}), ("NASNetLarge", {"include_top": False, "pooling": "max"}),
                       ("NASNetMobile", {}), ("NASNetMobile", {"include_top": False, "classes": 7})):
        if fn == "NASNetMobile":
            monkeypatch.setattr(kn, "backend", _BackendNotTorch(kn.backend))
        theirs = _captured_args(monkeypatch, kn, "NASNet", getattr(kn, fn), weights=None, **kwargs)
        ours = _captured_args(monkeypatch, ours_nasnet, "NASNet", getattr(apps, fn), weights=None, **kwargs)
        assert ours == theirs, (fn, kwargs)


class _Asked(Exception):
    pass


def _recorder(calls):
    def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
                 **kwargs):
        calls.append((fname, origin, file_hash, cache_subdir))
        raise _Asked

    return get_file


def test_imagenet_file_requests_equal_keras(kn, monkeypatch):
    """The file each variant asks `get_file` for (name, URL, md5, cache folder). Keras builds the model before
    asking: its cells are replaced by pass-throughs here to keep the test fast; nothing downloads."""
    from keras.src.utils import file_utils

    theirs, ours = [], []
    monkeypatch.setattr(file_utils, "get_file", _recorder(theirs))
    monkeypatch.setattr(kerasish.utils, "get_file", _recorder(ours), raising=False)
    monkeypatch.setattr(kn, "_normal_a_cell", lambda ip, p, filters, block_id=None: (ip, ip))
    monkeypatch.setattr(kn, "_reduction_a_cell", lambda ip, p, filters, block_id=None: (ip, ip))
    monkeypatch.setattr(kn, "backend", _BackendNotTorch(kn.backend))
    for fn in ("NASNetMobile", "NASNetLarge"):
        for include_top in (True, False):
            with pytest.raises(_Asked):
                getattr(kn, fn)(weights="imagenet", include_top=include_top)
            with pytest.raises(_Asked):
                getattr(apps, fn)(weights="imagenet", include_top=include_top)
    assert ours == theirs and len(ours) == 4
    assert {name for name, *_ in ours} == {"nasnet_mobile.h5", "nasnet_mobile_no_top.h5", "nasnet_large.h5",
                                           "nasnet_large_no_top.h5"}


ERROR_CASES = [
    ("NASNetLarge", {"weights": "no/such/file.h5"}),
    ("NASNetLarge", {"weights": "imagenet", "classes": 10}),
    ("NASNetMobile", {"weights": "imagenet", "include_top": False, "input_shape": (None, None, 3)}),
    ("NASNetMobile", {"weights": None, "include_top": False, "input_shape": (31, 64, 3)}),
    ("NASNetLarge", {"weights": "imagenet", "input_shape": (224, 224, 3)}),
    ("NASNet", {"weights": None, "penultimate_filters": 100, "input_shape": (32, 32, 3), "include_top": False}),
]


@pytest.mark.parametrize("fn,kwargs", ERROR_CASES, ids=lambda v: str(v)[:40])
def test_argument_errors_equal_keras(kn, monkeypatch, fn, kwargs):
    monkeypatch.setattr(kn, "backend", _BackendNotTorch(kn.backend))
    with pytest.raises(ValueError) as theirs:
        getattr(kn, fn)(**kwargs)
    with pytest.raises(ValueError) as ours:
        getattr(ours_nasnet, fn)(**kwargs)
    assert str(ours.value) == str(theirs.value)


def test_channels_first_is_refused_as_keras(keras_ref, kn, monkeypatch):
    from kerasish.backend import config

    monkeypatch.setattr(config, "_image_data_format", "channels_first")
    previous = keras_ref.config.image_data_format()
    keras_ref.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError) as theirs:
            kn.NASNetLarge(weights=None)
    finally:
        keras_ref.config.set_image_data_format(previous)
    with pytest.raises(ValueError) as ours:
        apps.NASNetLarge(weights=None)
    assert str(ours.value) == str(theirs.value)


def test_preprocess_and_namespace_equal_keras(keras_ref):
    x = _images((5, 6, 3))
    np.testing.assert_allclose(np.asarray(apps.nasnet.preprocess_input(x.copy())),
                               np.asarray(keras_ref.applications.nasnet.preprocess_input(x.copy())), rtol=1e-6)
    public = [n for n in dir(keras_ref.applications.nasnet) if not n.startswith("_")]
    assert [n for n in public if not hasattr(apps.nasnet, n)] == []
    assert apps.NASNetMobile is apps.nasnet.NASNetMobile and apps.NASNetLarge is apps.nasnet.NASNetLarge
