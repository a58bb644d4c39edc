"""Preprocessing layers that models contain: Rescaling, Normalization,
CategoryEncoding, Resizing, CenterCrop (harness + Keras parity)."""

import numpy as np
import pytest
import torch

import kerasish as keras
from layer_harness import run_layer_test
from parity import assert_close
from parity import assert_keras_parity
from parity import to_numpy

L = keras.layers


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _same_config(keras_ref, name, kwargs):
    ours = getattr(L, name)(**kwargs).get_config()
    theirs = getattr(keras_ref.layers, name)(**kwargs).get_config()
    ours.pop("name"), theirs.pop("name")
    assert ours == theirs, (ours, theirs)


# ------------------------------------------------------------------ Rescaling
@pytest.mark.parametrize("kwargs", [{"scale": 1 / 255.0}, {"scale": 0.5, "offset": -1.0},
                                    {"scale": [0.5, 2.0, 1.0], "offset": [0.0, 1.0, -1.0]}])
def test_rescaling(keras_ref, kwargs):
    x = _x(2, 4, 4, 3)
    run_layer_test(L.Rescaling, kwargs, input_shape=(2, 4, 4, 3), expected_output_shape=(2, 4, 4, 3),
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)
    assert_keras_parity(keras_ref, "Rescaling", kwargs, x)
    _same_config(keras_ref, "Rescaling", kwargs)


def test_rescaling_int_input_and_array_config(keras_ref):
    x = torch.randint(0, 256, (2, 3, 3, 3), dtype=torch.uint8)
    ours, theirs = assert_keras_parity(keras_ref, "Rescaling", {"scale": 1 / 127.5, "offset": -1}, x)
    assert ours(x).dtype == torch.float32
    scale = np.array([0.5, 2.0, 1.0], dtype="float32")
    ours = L.Rescaling(scale)
    theirs = keras_ref.layers.Rescaling(scale)
    assert ours.get_config()["scale"] == theirs.get_config()["scale"]
    clone = L.Rescaling.from_config(ours.get_config())
    assert_close(clone(_x(1, 2, 3)), theirs(_x(1, 2, 3).numpy()))


# -------------------------------------------------------------- Normalization
@pytest.mark.parametrize("kwargs,shape", [
    ({"mean": [1.0, 2.0, 3.0], "variance": [1.0, 4.0, 0.25]}, (4, 3)),
    ({"axis": (1, 2), "mean": 0.5, "variance": 2.0}, (2, 3, 4)),
    ({"mean": [1.0, 2.0, 3.0], "variance": [1.0, 4.0, 0.0], "invert": True}, (2, 5, 3)),
])
def test_normalization_fixed_stats(keras_ref, kwargs, shape):
    run_layer_test(L.Normalization, kwargs, input_shape=shape, expected_output_shape=shape,
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)
    assert_keras_parity(keras_ref, "Normalization", kwargs, _x(*shape))
    _same_config(keras_ref, "Normalization", kwargs)


@pytest.mark.parametrize("axis,shape", [(-1, (6, 3)), ((1,), (5, 3, 4)), ((1, -1), (5, 3, 4)), (None, (8, 2))])
def test_normalization_adapt_matches_keras(keras_ref, axis, shape):
    data = np.random.default_rng(0).normal(2.0, 3.0, size=shape).astype("float32")
    tensor = torch.as_tensor(data)
    batches = [data[:2], data[2:]]
    # Keras's adapt on an iterable needs TensorFlow: the merged batch
    # statistics are compared with Keras's full-array ones instead
    for source in (data, tensor, batches):
        ours = L.Normalization(axis=axis)
        theirs = keras_ref.layers.Normalization(axis=axis)
        ours.adapt(source)
        theirs.adapt(source if not isinstance(source, list) else data)
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert_close(ours(tensor), theirs(data))
        assert_close(ours.mean, theirs.mean)
        assert_close(ours.variance, theirs.variance)
    _same_config(keras_ref, "Normalization", {"axis": axis})


def test_normalization_weights_state_dict_and_harness(keras_ref):
    layer = run_layer_test(L.Normalization, {"axis": -1}, input_shape=(4, 3), expected_output_shape=(4, 3),
                           expected_num_trainable_weights=0, expected_num_non_trainable_weights=3)
    assert list(layer.state_dict()) == ["adapt_mean", "adapt_variance", "count"]
    theirs = keras_ref.layers.Normalization()
    theirs.build((None, 3))
    assert [w.name for w in layer.weights] == [w.name for w in theirs.weights] == ["mean", "variance", "count"]
    assert [str(w.dtype).split(".")[-1] for w in layer.weights] == [w.dtype for w in theirs.weights]
    # adapted statistics travel with the state_dict, also into an unbuilt layer
    layer.adapt(np.array([[0.0, 1.0, 2.0], [2.0, 5.0, 6.0]], dtype="float32"))
    fresh = L.Normalization()
    fresh.load_state_dict(layer.state_dict())
    x = _x(3, 3)
    torch.testing.assert_close(fresh(x), layer(x))
    torch.testing.assert_close(layer(torch.tensor([[1.0, 3.0, 4.0]])), torch.zeros(1, 3))


def test_normalization_dataloader_and_epsilon(keras_ref):
    data = torch.arange(12.0).reshape(6, 2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data, data), batch_size=4)
    layer = L.Normalization()
    layer.adapt(loader)
    torch.testing.assert_close(layer.mean, data.mean(0, keepdim=True))
    torch.testing.assert_close(layer.variance, data.var(0, correction=0, keepdim=True))
    ref = keras_ref.layers.Normalization()
    ref.adapt(data.numpy())  # real Keras 3 adapted on the same data (as one array)
    np.testing.assert_allclose(to_numpy(layer(data)), to_numpy(ref(data.numpy())), rtol=1e-5, atol=1e-6)
    const = L.Normalization(mean=1.0, variance=0.0)
    # the standard deviation is floored at Keras's epsilon, 1e-7
    torch.testing.assert_close(const(torch.tensor([[1.5]])), torch.tensor([[0.5]]) / torch.tensor(1e-7))
    theirs = keras_ref.layers.Normalization(mean=1.0, variance=0.0)(np.array([[1.5]], "float32"))
    np.testing.assert_allclose(to_numpy(const(torch.tensor([[1.5]]))), to_numpy(theirs), rtol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    ({"mean": 1.0}, "both `mean` and `variance` must be set"),
    ({"mean": [1.0, 2.0], "variance": [1.0]}, "must have the same shape"),
    ({"mean": [[1.0]], "variance": [[1.0]]}, "The rank of `mean` must be less than or equal"),
])
def test_normalization_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L.Normalization(**kwargs)


def test_normalization_bad_inputs():
    with pytest.raises(ValueError, match=r"must be in the range \[-ndim, ndim\)"):
        L.Normalization(axis=3)(torch.ones(2, 3))
    layer = L.Normalization()
    layer.adapt(np.ones((4, 3)))
    with pytest.raises(ValueError, match="incompatible shape"):
        layer.adapt(np.ones((4, 5)))
    with pytest.raises(ValueError, match="empty iterable"):
        L.Normalization().adapt([])
    with pytest.raises(TypeError, match="Unsupported data type"):
        L.Normalization().adapt(3.0)


# ----------------------------------------------------------- CategoryEncoding
@pytest.mark.parametrize("kwargs,x", [
    ({"num_tokens": 5, "output_mode": "one_hot"}, [[1], [3], [0]]),
    ({"num_tokens": 5, "output_mode": "one_hot"}, [[1, 4], [3, 2]]),
    ({"num_tokens": 5, "output_mode": "one_hot"}, [1, 3, -1]),
    ({"num_tokens": 4}, [[0, 1, 1], [3, 3, 2]]),
    ({"num_tokens": 4, "output_mode": "binary"}, [0, 2, 2]),
    ({"num_tokens": 4, "output_mode": "count"}, [[0, 1, 1], [3, 3, -1]]),
])
def test_category_encoding(keras_ref, kwargs, x):
    x = torch.tensor(x)
    out_shape = tuple(L.CategoryEncoding(**kwargs)(x).shape)
    run_layer_test(L.CategoryEncoding, kwargs, input_data=x, expected_output_shape=out_shape,
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
                   check_output_shape_inference=x.ndim > 1, check_mixed_precision=False)
    ours, _ = assert_keras_parity(keras_ref, "CategoryEncoding", kwargs, x)
    assert ours(x).dtype == torch.float32
    _same_config(keras_ref, "CategoryEncoding", kwargs)


def test_category_encoding_count_weights_and_mixed_policy(keras_ref):
    x = torch.tensor([[0, 1, 1], [3, 3, 2]])
    w = torch.tensor([[0.5, 1.0, 2.0], [1.0, 1.0, 4.0]])
    ours = L.CategoryEncoding(4, output_mode="count")(x, count_weights=w)
    theirs = keras_ref.layers.CategoryEncoding(4, output_mode="count")(x.numpy(), count_weights=w.numpy())
    assert_close(ours, theirs)
    assert L.CategoryEncoding(4, dtype="mixed_bfloat16")(x).dtype == torch.float32  # Keras: variable dtype
    with pytest.raises(ValueError, match="`count_weights` is not used"):
        L.CategoryEncoding(4)(x, count_weights=w)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_tokens": None}, "num_tokens must be set"),
    ({"num_tokens": 0}, "Received: num_tokens=0"),
    ({"num_tokens": 3, "output_mode": "tf_idf"}, "Unknown arg for output_mode: tf_idf"),
    ({"num_tokens": 3, "sparse": True}, "sparse=True"),
])
def test_category_encoding_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L.CategoryEncoding(**kwargs)


# ------------------------------------------------------- Resizing, CenterCrop
RESIZE_CASES = [
    ({"height": 5, "width": 7}, (2, 8, 6, 3)),
    ({"height": 4, "width": 4, "interpolation": "nearest"}, (2, 7, 9, 3)),
    ({"height": 9, "width": 5, "interpolation": "nearest", "data_format": "channels_first"}, (2, 3, 4, 6)),
    ({"height": 6, "width": 6, "interpolation": "bicubic"}, (1, 5, 8, 2)),
    ({"height": 4, "width": 4, "antialias": True}, (1, 9, 7, 2)),
    ({"height": 4, "width": 6, "crop_to_aspect_ratio": True}, (2, 8, 8, 3)),
    ({"height": 4, "width": 6, "pad_to_aspect_ratio": True, "fill_value": 0.5}, (2, 8, 8, 3)),
    ({"height": 6, "width": 3, "pad_to_aspect_ratio": True, "data_format": "channels_first"}, (2, 3, 8, 8)),
]


@pytest.mark.parametrize("kwargs,shape", RESIZE_CASES)
def test_resizing(keras_ref, kwargs, shape):
    cf = kwargs.get("data_format") == "channels_first"
    out = list(shape)
    out[2 if cf else 1], out[3 if cf else 2] = kwargs["height"], kwargs["width"]
    run_layer_test(L.Resizing, kwargs, input_shape=shape, expected_output_shape=tuple(out),
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)
    assert_keras_parity(keras_ref, "Resizing", kwargs, _x(*shape))
    _same_config(keras_ref, "Resizing", kwargs)


def test_resizing_single_image_int_and_area(keras_ref):
    img = _x(6, 8, 3)
    ours, theirs = assert_keras_parity(keras_ref, "Resizing", {"height": 3, "width": 4}, img)
    assert ours(img).shape == (3, 4, 3) and tuple(ours.compute_output_shape((6, 8, 3))) == (3, 4, 3)
    u8 = torch.randint(0, 256, (1, 6, 8, 3), dtype=torch.uint8)
    for interpolation in ("bilinear", "nearest", "bicubic"):
        kwargs = {"height": 5, "width": 11, "interpolation": interpolation}
        ours, _ = assert_keras_parity(keras_ref, "Resizing", kwargs, u8, atol=0)
        assert ours(u8).dtype == torch.uint8
    area = L.Resizing(3, 4, interpolation="area")(_x(1, 6, 8, 2))
    torch.testing.assert_close(area, torch.nn.functional.avg_pool2d(_x(1, 6, 8, 2).permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1))


@pytest.mark.parametrize("kwargs,match", [
    ({"height": 4, "width": 4, "interpolation": "lanczos3"}, "Lanczos interpolation is not supported"),
    ({"height": 4, "width": 4, "interpolation": "cubic"}, "Received: interpolation=cubic"),
    ({"height": 4, "width": 4, "fill_mode": "reflect"}, "Received: fill_mode=reflect"),
    ({"height": 4, "width": 4, "crop_to_aspect_ratio": True, "pad_to_aspect_ratio": True}, "Only one of"),
    ({"height": 0, "width": 4}, "Received: height=0"),
    ({"height": 4, "width": 4, "data_format": "nchw"}, "Received: data_format=nchw"),
])
def test_resizing_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L.Resizing(**kwargs)


@pytest.mark.parametrize("kwargs,shape", [
    ({"height": 3, "width": 4}, (2, 6, 7, 3)),
    ({"height": 2, "width": 2, "data_format": "channels_first"}, (2, 3, 5, 4)),
    ({"height": 6, "width": 4}, (2, 4, 8, 3)),  # smaller than the target: crop to aspect + resize
])
def test_center_crop(keras_ref, kwargs, shape):
    cf = kwargs.get("data_format") == "channels_first"
    out = list(shape)
    out[2 if cf else 1], out[3 if cf else 2] = kwargs["height"], kwargs["width"]
    run_layer_test(L.CenterCrop, kwargs, input_shape=shape, expected_output_shape=tuple(out),
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)
    assert_keras_parity(keras_ref, "CenterCrop", kwargs, _x(*shape))
    _same_config(keras_ref, "CenterCrop", kwargs)


def test_center_crop_single_image_int_and_errors(keras_ref):
    img = torch.randint(0, 256, (7, 6, 3), dtype=torch.uint8)
    ours, theirs = assert_keras_parity(keras_ref, "CenterCrop", {"height": 3, "width": 3}, img)
    assert ours(img).dtype == torch.float32 and ours(img).shape == (3, 3, 3)
    with pytest.raises(ValueError, match="Received: height=-1"):
        L.CenterCrop(-1, 3)
    with pytest.raises(ValueError, match="size 3 \\(unbatched\\) or 4"):
        L.CenterCrop(2, 2)(torch.ones(2, 3))


def test_preprocessing_in_a_sequential_model(keras_ref):
    x = torch.tensor([[[255.0], [51.0]]])
    outs = []
    for lib in (keras_ref, keras):  # the same pipeline in real Keras 3
        model = lib.Sequential([lib.layers.Rescaling(1 / 255.0), lib.layers.Normalization(mean=[0.5], variance=[0.25])])
        outs.append(to_numpy(model(x)))
    assert outs[1].shape == (1, 2, 1)
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6)
    np.testing.assert_allclose(outs[1], (x.numpy() / 255.0 - 0.5) / 0.5, rtol=1e-6)
