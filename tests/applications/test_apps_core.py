"""kerasish.applications' shared infrastructure against Keras 3.15:
`imagenet_utils` (preprocess_input, decode_predictions, obtain_input_shape,
validate_activation), how `weights=` files are found (Keras's cache, never the
network) and read (tf.keras-era HDF5 application files), and the namespace."""

import hashlib
import json
import os
import warnings

import h5py
import numpy as np
import pytest
import torch

import kerasish
import kerasish.applications
from kerasish.applications import _weights
from kerasish.applications import imagenet_utils

from apps_parity import build_both, images, outputs


# ---------------------------------------------------------------- preprocess_input
@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("ndim", [3, 4])
def test_preprocess_numpy_equals_keras(keras_ref, mode, data_format, ndim):
    rng = np.random.default_rng(0)
    shape = (5, 4, 3) if data_format == "channels_last" else (3, 5, 4)
    x = rng.uniform(0, 255, ((2,) if ndim == 4 else ()) + shape).astype("float32")
    want = keras_ref.applications.imagenet_utils.preprocess_input(x.copy(), data_format=data_format, mode=mode)
    mine = x.copy()
    got = imagenet_utils.preprocess_input(mine, data_format=data_format, mode=mode)
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
    # Keras overwrites a float array in place (documented); so does kerasish
    assert not np.array_equal(mine, x)


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("ndim", [3, 4])
def test_preprocess_torch_equals_keras(keras_ref, mode, data_format, ndim):
    rng = np.random.default_rng(1)
    shape = (5, 4, 3) if data_format == "channels_last" else (3, 5, 4)
    x = torch.from_numpy(rng.uniform(0, 255, ((2,) if ndim == 4 else ()) + shape).astype("float32"))
    want = keras_ref.applications.imagenet_utils.preprocess_input(x.clone(), data_format=data_format, mode=mode)
    mine = x.clone()
    got = imagenet_utils.preprocess_input(mine, data_format=data_format, mode=mode)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    torch.testing.assert_close(got, torch.as_tensor(want), rtol=1e-6, atol=1e-5)
    # in place exactly where Keras is: "tf"/"torch" divide the caller's tensor, "caffe" makes a new one
    assert (got is mine) == (mode != "caffe") == (not torch.equal(mine, x))


@pytest.mark.parametrize("dtype", ["float64", "float16", "uint8", "int32"])
@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocess_dtypes_numpy_as_keras(keras_ref, dtype, mode):
    x = (np.arange(2 * 3 * 4 * 3) % 256).reshape(2, 3, 4, 3).astype(dtype)
    want = keras_ref.applications.imagenet_utils.preprocess_input(x.copy(), mode=mode)
    got = imagenet_utils.preprocess_input(x.copy(), mode=mode)
    assert got.dtype == want.dtype  # float dtypes kept, integers become float32
    np.testing.assert_allclose(got.astype("float64"), want.astype("float64"), rtol=1e-3 if dtype == "float16" else 1e-6,
                               atol=1e-5)


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocess_torch_float64_and_integers(keras_ref, mode):
    x = torch.arange(2 * 3 * 4 * 3).reshape(2, 3, 4, 3) % 256
    want = keras_ref.applications.imagenet_utils.preprocess_input(x.to(torch.float64), mode=mode)
    got = imagenet_utils.preprocess_input(x.to(torch.float64), mode=mode)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want)
    # integer tensors: Keras on torch raises a RuntimeError ("tf", "torch") or wraps uint8 around ("caffe");
    # kerasish converts them to floatx first, as Keras does integer NumPy arrays
    as_float = keras_ref.applications.imagenet_utils.preprocess_input(x.to(torch.float32), mode=mode)
    for dtype in (torch.uint8, torch.int64):
        got = imagenet_utils.preprocess_input(x.to(dtype), mode=mode)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, as_float)


def test_preprocess_keeps_autograd(keras_ref):
    x = torch.rand(1, 4, 4, 3, requires_grad=True)
    y = imagenet_utils.preprocess_input(x, mode="torch")  # not in place on a leaf that needs grad
    y.sum().backward()
    std = torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(x.grad[0, 0, 0], 1 / 255 / std)


def test_preprocess_inside_a_functional_model(keras_ref):
    # Keras's documented use: preprocess_input on a symbolic Input
    x = images((6, 5, 3))
    for module in ("resnet50", "mobilenet_v2", "vgg16"):
        got_model = {}
        for lib in (keras_ref, kerasish):
            inp = lib.Input((6, 5, 3))
            got_model[lib.__name__] = lib.Model(inp, getattr(lib.applications, module).preprocess_input(inp))
        want = np.asarray(got_model["keras"](x).detach().cpu())
        got = got_model["kerasish"](torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5, err_msg=module)


def test_family_preprocessors_use_keras_modes(keras_ref):
    x = images((4, 4, 3))
    for module in ("resnet", "resnet50", "resnet_v2", "vgg16", "vgg19", "mobilenet", "mobilenet_v2",
                   "mobilenet_v3", "xception", "inception_v3"):
        want = getattr(keras_ref.applications, module).preprocess_input(x.copy())
        got = getattr(kerasish.applications, module).preprocess_input(x.copy())
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-5, err_msg=module)


@pytest.mark.parametrize("kwargs", [{"mode": "keras"}, {"data_format": "NHWC"}])
def test_preprocess_errors_equal_keras(keras_ref, kwargs):
    x = images((4, 4, 3))
    with pytest.raises(ValueError) as theirs:
        keras_ref.applications.imagenet_utils.preprocess_input(x, **kwargs)
    with pytest.raises(ValueError) as ours:
        imagenet_utils.preprocess_input(x, **kwargs)
    assert str(ours.value) == str(theirs.value)


# ---------------------------------------------------------------- decode_predictions
def _class_index():
    return {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}


def test_decode_predictions(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX", None)
    monkeypatch.delattr(kerasish.utils, "get_file", raising=False)
    os.makedirs(tmp_path / "models")
    with open(tmp_path / "models" / "imagenet_class_index.json", "w") as f:
        json.dump(_class_index(), f)
    # the file is checked against Keras's md5 of the real index: give the fake one its own
    with open(tmp_path / "models" / "imagenet_class_index.json", "rb") as f:
        monkeypatch.setattr(imagenet_utils, "CLASS_INDEX_HASH", hashlib.md5(f.read()).hexdigest())
    preds = np.random.default_rng(0).random((3, 1000)).astype("float32")
    got = imagenet_utils.decode_predictions(torch.from_numpy(preds), top=4)
    # reference: the 4 largest scores of each row, best first (NumPy)
    for row, decoded in zip(preds, got):
        best = np.argsort(-row)[:4]
        assert decoded == [(f"n{i:08d}", f"class_{i}", row[i]) for i in best]
    assert kerasish.applications.resnet50.decode_predictions(preds, top=1)[1] == [got[1][0]]


def test_decode_predictions_without_the_class_index(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX", None)
    monkeypatch.delattr(kerasish.utils, "get_file", raising=False)
    with pytest.raises(FileNotFoundError) as err:
        imagenet_utils.decode_predictions(np.zeros((1, 1000)))
    message = str(err.value)
    assert "imagenet_class_index.json" in message and imagenet_utils.CLASS_INDEX_PATH in message
    assert str(tmp_path / "models") in message and "KERAS_HOME" in message


@pytest.mark.parametrize("shape", [(2, 10), (1000,), (2, 1000, 1)])
def test_decode_predictions_shape_error_equals_keras(keras_ref, shape):
    with pytest.raises(ValueError) as theirs:
        keras_ref.applications.imagenet_utils.decode_predictions(np.zeros(shape))
    with pytest.raises(ValueError) as ours:
        imagenet_utils.decode_predictions(np.zeros(shape))
    assert str(ours.value) == str(theirs.value)


# ---------------------------------------------------------------- obtain_input_shape
OBTAIN_CASES = [
    # (input_shape, default_size, min_size, data_format, require_flatten, weights)
    (None, 224, 32, "channels_last", True, None),
    (None, 224, 32, "channels_last", False, None),
    (None, 299, 75, "channels_first", False, None),
    (None, 224, 32, "channels_first", True, "imagenet"),
    ((224, 224, 3), 224, 32, "channels_last", True, "imagenet"),
    ((100, 100, 3), 224, 32, "channels_last", True, "imagenet"),
    ((100, 100, 3), 224, 32, "channels_last", True, None),
    ((3, 100, 120), 224, 32, "channels_first", False, None),
    ((64, 64, 1), 224, 32, "channels_last", False, "imagenet"),
    ((64, 64, 5), 224, 32, "channels_last", False, None),
    ((None, None, 3), 224, 32, "channels_last", True, None),
    ((None, None, 3), 224, 32, "channels_last", False, "imagenet"),
    ((20, 64, 3), 224, 32, "channels_last", False, None),
    ((3, 64, 20), 224, 32, "channels_first", False, None),
    ((64, 64), 224, 32, "channels_last", False, None),
    ((4, 64, 64, 3), 224, 32, "channels_last", False, None),
]


@pytest.mark.parametrize("case", OBTAIN_CASES, ids=str)
def test_obtain_input_shape_equals_keras(keras_ref, case):
    from keras.src.applications import imagenet_utils as ref_utils

    def run(fn):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return ("ok", fn(*case)), [str(w.message) for w in caught]
            except ValueError as e:
                return ("error", str(e)), [str(w.message) for w in caught]

    assert run(imagenet_utils.obtain_input_shape) == run(ref_utils.obtain_input_shape)


@pytest.mark.parametrize("activation", [None, "softmax", "relu", "sigmoid"])
@pytest.mark.parametrize("weights", [None, "imagenet"])
def test_validate_activation_equals_keras(keras_ref, activation, weights):
    from keras.src.applications import imagenet_utils as ref_utils

    def run(fn):
        try:
            fn(activation, weights)
            return None
        except ValueError as e:
            return str(e).split("Received:")[0]

    assert run(imagenet_utils.validate_activation) == run(ref_utils.validate_activation)


# ---------------------------------------------------------------- weights files
def _write_application_h5(model, path):
    """A weights file laid out as Keras's ImageNet downloads are (tf.keras 2's
    `save_weights` HDF5): root attrs `layer_names`, `backend`, `keras_version`;
    one group per layer with `weight_names` ("layer/kernel:0") and datasets."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for n, w in zip(names, layer.weights):
                group.create_dataset(n, data=np.asarray(w.numpy()))


V2_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
V2_KWARGS = {"alpha": 0.35, "include_top": False, "input_shape": (96, 96, 3), "pooling": "avg"}


@pytest.fixture(scope="module")
def keras_mobilenet_v2(keras_ref):
    keras_ref.utils.clear_session()
    return keras_ref.applications.MobileNetV2(weights=None, **V2_KWARGS)


def test_weights_path_reads_tf_keras_application_files(keras_ref, keras_mobilenet_v2, tmp_path):
    ref = keras_mobilenet_v2
    path = str(tmp_path / "weights.h5")
    _write_application_h5(ref, path)
    x = images((96, 96, 3))
    keras_ref.utils.clear_session()
    in_keras = keras_ref.applications.MobileNetV2(weights=path, **V2_KWARGS)  # Keras reads the file too
    kerasish.utils.clear_session()
    ours = kerasish.applications.MobileNetV2(weights=path, **V2_KWARGS)
    want = np.asarray(ref(x).detach().cpu())
    np.testing.assert_allclose(np.asarray(in_keras(x).detach().cpu()), want, rtol=0, atol=0)
    np.testing.assert_allclose(ours(torch.from_numpy(x)).detach().numpy(), want, rtol=0, atol=1e-5 * abs(want).max())


def test_weights_path_reads_keras_legacy_h5_writer_files(keras_ref, keras_mobilenet_v2, tmp_path):
    # Keras 3's own writer of the tf.keras HDF5 layout (what `save_weights("w.h5")` wrote in Keras 2)
    from keras.src.legacy.saving import legacy_h5_format

    path = str(tmp_path / "legacy.h5")
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, keras_mobilenet_v2)
    ours = kerasish.applications.MobileNetV2(weights=path, **V2_KWARGS)
    theirs, mine = outputs(keras_mobilenet_v2, ours, images((96, 96, 3), seed=2), training=False)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-5 * abs(theirs).max())


def test_weights_path_reads_keras3_weight_files(keras_ref, keras_mobilenet_v2, tmp_path):
    ref = keras_mobilenet_v2
    path = str(tmp_path / "m.weights.h5")
    ref.save_weights(path)
    ours = kerasish.applications.MobileNetV2(weights=path, **V2_KWARGS)
    x = images((96, 96, 3), seed=3)
    theirs, mine = outputs(ref, ours, x, training=False)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-5 * abs(theirs).max())


def test_imagenet_weights_come_from_the_keras_cache(keras_ref, keras_mobilenet_v2, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delattr(kerasish.utils, "get_file", raising=False)
    os.makedirs(tmp_path / "models")
    # Keras's file name for alpha=0.35 at 96x96 without top (Keras gives MobileNetV2 files no hash)
    _write_application_h5(keras_mobilenet_v2, str(tmp_path / "models" / V2_FILE))
    ours = kerasish.applications.MobileNetV2(weights="imagenet", **V2_KWARGS)
    x = images((96, 96, 3), seed=4)
    theirs, mine = outputs(keras_mobilenet_v2, ours, x, training=False)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-5 * abs(theirs).max())


def test_missing_imagenet_weights_raise_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delattr(kerasish.utils, "get_file", raising=False)
    with pytest.raises(FileNotFoundError) as err:
        kerasish.applications.MobileNetV2(weights="imagenet", **V2_KWARGS)
    message = str(err.value)
    assert V2_FILE in message and str(tmp_path / "models") in message
    assert "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/" + V2_FILE in message


def test_a_cached_file_with_the_wrong_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delattr(kerasish.utils, "get_file", raising=False)
    os.makedirs(tmp_path / "models")
    name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    (tmp_path / "models" / name).write_bytes(b"not the real file")
    with pytest.raises(ValueError, match="Incomplete or corrupted file detected.*4d473c1dd8becc155b73f8504c6f6626"):
        kerasish.applications.ResNet50(weights="imagenet", include_top=False, input_shape=(32, 32, 3))


def test_keras_get_file_is_used_when_kerasish_has_it(monkeypatch, tmp_path):
    calls = []

    def get_file(fname, origin, cache_subdir="datasets", file_hash=None, **kwargs):
        calls.append((fname, origin, cache_subdir, file_hash))
        return str(tmp_path / fname)

    monkeypatch.setattr(kerasish.utils, "get_file", get_file, raising=False)
    path = _weights.resolve_weights("imagenet", "a.h5", "https://x/a.h5", file_hash="abc")
    assert path == str(tmp_path / "a.h5")
    assert calls == [("a.h5", "https://x/a.h5", "models", "abc")]
    assert _weights.resolve_weights(None, "a.h5", "https://x/a.h5") is None
    assert _weights.resolve_weights(str(tmp_path / "mine.h5"), "a.h5", "https://x/a.h5") == str(tmp_path / "mine.h5")
    assert len(calls) == 1


def test_keras_home_defaults_to_home_dot_keras(monkeypatch, tmp_path):
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _weights.keras_home() == os.path.join(str(tmp_path), ".keras")


# ---------------------------------------------------------------- argument errors shared by the families
ERROR_CASES = [
    ("ResNet50", {"weights": "no/such/file.h5"}),
    ("ResNet50", {"weights": "imagenet", "classes": 10}),
    ("ResNet50", {"weights": None, "input_shape": (16, 16, 3), "include_top": False}),
    ("ResNet50", {"weights": None, "input_shape": (None, None, 3)}),
    ("VGG16", {"weights": "imagenet", "input_shape": (64, 64, 3)}),
    ("MobileNetV3Small", {"weights": "imagenet", "classifier_activation": "relu", "input_shape": (32, 32, 3)}),
    ("Xception", {"weights": "nope"}),
    ("Xception", {"weights": None, "include_top": False, "input_shape": (70, 70, 3)}),
    ("InceptionV3", {"weights": "nope"}),
    ("InceptionV3", {"weights": "imagenet", "classes": 2}),
    ("MobileNet", {"weights": "imagenet", "depth_multiplier": 2, "include_top": False}),
    ("MobileNet", {"weights": "imagenet", "alpha": 0.3, "include_top": False}),
    ("MobileNet", {"weights": "nope"}),
    ("MobileNetV2", {"weights": "imagenet", "alpha": 0.3, "include_top": False}),
    ("MobileNetV2", {"weights": "imagenet", "classes": 7}),
    ("MobileNetV2", {"weights": "nope"}),
    ("MobileNetV3Small", {"weights": "imagenet", "alpha": 0.5}),
    ("MobileNetV3Large", {"weights": "imagenet", "alpha": 0.75, "minimalistic": True}),
    ("MobileNetV3Small", {"weights": None, "input_shape": (31, 64, 3)}),
    ("MobileNetV3Small", {"weights": "imagenet", "classes": 5}),
    ("MobileNetV3Large", {"weights": "nope"}),
]


@pytest.mark.parametrize("name,kwargs", ERROR_CASES, ids=lambda v: str(v)[:60])
def test_argument_errors_equal_keras(keras_ref, name, kwargs):
    with pytest.raises(ValueError) as theirs:
        getattr(keras_ref.applications, name)(**kwargs)
    with pytest.raises(ValueError) as ours:
        getattr(kerasish.applications, name)(**kwargs)
    if "classifier_activation" in kwargs:  # the message ends with the activation function's repr
        assert str(ours.value).split("Received:")[0] == str(theirs.value).split("Received:")[0]
    else:
        assert str(ours.value) == str(theirs.value)


def test_input_tensor_mismatch_errors_equal_keras(keras_ref):
    for name in ("MobileNetV2", "MobileNetV3Small"):
        messages = []
        for lib in (keras_ref, kerasish):
            with pytest.raises(ValueError) as err:
                getattr(lib.applications, name)(weights=None, input_tensor=lib.Input((64, 64, 3)),
                                                input_shape=(48, 48, 3))
            messages.append(str(err.value))
        assert messages[0] == messages[1]
    for lib in (keras_ref, kerasish):  # a plain tensor is not an input tensor
        with pytest.raises(ValueError):
            lib.applications.ResNet50(weights=None, input_tensor=torch.zeros(1, 32, 32, 3), include_top=False)


def test_input_tensor_keeps_layers_before_it(keras_ref):
    """`input_tensor=` from earlier layers: the model starts at their Input,
    as Keras's (get_source_inputs)."""
    keras_ref.utils.clear_session()
    ref_in = keras_ref.Input((40, 40, 3))
    ours_in = kerasish.Input((40, 40, 3))
    ref = keras_ref.applications.MobileNetV2(weights=None, include_top=False, alpha=0.35, pooling="max",
                                             input_tensor=keras_ref.layers.Rescaling(1 / 255.0)(ref_in))
    ours = kerasish.applications.MobileNetV2(weights=None, include_top=False, alpha=0.35, pooling="max",
                                             input_tensor=kerasish.layers.Rescaling(1 / 255.0)(ours_in))
    assert [type(layer).__name__ for layer in ours.layers[:3]] == ["InputLayer", "Rescaling", "Conv2D"]
    assert ours.name == ref.name == "mobilenetv2_0.35_None"  # no static input_shape: Keras names it so
    ours.set_weights(ref.get_weights())
    theirs, mine = outputs(ref, ours, images((40, 40, 3)), training=False)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-5 * abs(theirs).max())


def test_models_are_torch_modules(keras_ref):
    model = kerasish.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), classes=4,
                                                  include_preprocessing=False)
    assert isinstance(model, torch.nn.Module)
    names = [n for n, _ in model.named_parameters()]
    assert "conv.kernel" in names and "logits.bias" in names
    assert sum(p.numel() for p in model.parameters()) == sum(
        int(np.prod(w.shape)) for w in model.trainable_weights)


# ---------------------------------------------------------------- namespace
def test_namespace_equals_keras_for_these_families(keras_ref):
    for module in ("", "imagenet_utils", "resnet", "resnet50", "resnet_v2", "vgg16", "vgg19", "mobilenet",
                   "mobilenet_v2", "mobilenet_v3", "xception", "inception_v3"):
        ref = keras_ref.applications if not module else getattr(keras_ref.applications, module)
        ours = kerasish.applications if not module else getattr(kerasish.applications, module)
        names = [n for n in dir(ref) if not n.startswith("_")]
        if not module:  # apps2's families are another engineer's
            names = [n for n in names if hasattr(kerasish.applications, n) or not n[0].isupper()
                     and n in {"imagenet_utils", "resnet", "resnet50", "resnet_v2", "vgg16", "vgg19", "mobilenet",
                               "mobilenet_v2", "mobilenet_v3", "xception", "inception_v3"}]
        assert [n for n in names if not hasattr(ours, n)] == [], module


def test_build_both_names_count_from_zero(keras_ref):
    ref, ours = build_both(keras_ref, "VGG16", weights=None, include_top=False, input_shape=(32, 32, 3),
                           pooling="avg")
    assert ours.layers[-1].name == ref.layers[-1].name == "global_average_pooling2d"
