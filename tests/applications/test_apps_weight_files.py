"""`weights="imagenet"` asks for exactly Keras's file: the same name, URL,
hash and cache folder as Keras 3.15's `get_file` call, for the families whose
file names depend on their arguments (alpha, size, top, minimalistic, ...).
Both sides' `get_file` are replaced by a recorder that stops the build there:
nothing downloads."""

import warnings

import pytest

import kerasish


class _Asked(Exception):
    pass


def _recorder(calls):
    def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
                 hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None,
                 force_download=False):
        calls.append((fname, origin, file_hash, cache_subdir))
        raise _Asked

    return get_file


CASES = [
    ("ResNet50V2", {"include_top": False, "input_shape": (32, 32, 3)}),
    ("VGG19", {"include_top": False, "input_shape": (32, 32, 3)}),
    ("MobileNet", {"include_top": True, "alpha": 0.25, "input_shape": (128, 128, 3)}),
    ("MobileNet", {"include_top": False, "alpha": 0.5, "input_shape": (40, 40, 3)}),
    ("MobileNetV2", {"include_top": False, "alpha": 0.35, "input_shape": (96, 96, 3)}),
    ("MobileNetV2", {"include_top": True, "alpha": 0.35}),
    ("MobileNetV3Small", {"include_top": True, "alpha": 0.75}),
    ("MobileNetV3Large", {"include_top": False, "minimalistic": True, "input_shape": (32, 32, 3)}),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=lambda v: str(v)[:50])
def test_imagenet_file_requests_equal_keras(keras_ref, monkeypatch, name, kwargs):
    from keras.src.utils import file_utils

    theirs, ours = [], []
    monkeypatch.setattr(file_utils, "get_file", _recorder(theirs))
    monkeypatch.setattr(kerasish.utils, "get_file", _recorder(ours), raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Weights for input shape (224, 224) will be loaded as the default."
        with pytest.raises(_Asked):
            getattr(keras_ref.applications, name)(weights="imagenet", **kwargs)
        with pytest.raises(_Asked):
            getattr(kerasish.applications, name)(weights="imagenet", **kwargs)
    assert ours == theirs and len(ours) == 1
