"""`MaxNumBoundingBoxes` against real Keras 3: truncation, padding, unbatched
inputs, pass-through of images and labels, config, errors."""

import numpy as np
import pytest
import torch

import kerasish as keras

L = keras.layers
RNG = np.random.default_rng(0)
IMAGES = RNG.random((2, 8, 8, 3)).astype("float32")
BOXES = (RNG.random((2, 5, 4)) * 8).astype("float32")
LABELS = np.arange(1, 11).reshape(2, 5)


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@pytest.mark.parametrize("max_number, fill_value", [(3, -1), (5, -1), (7, -2)])
@pytest.mark.parametrize("batched", [True, False])
def test_parity(keras_ref, max_number, fill_value, batched):
    def data():
        if batched:
            return {"images": IMAGES, "bounding_boxes": {"boxes": BOXES, "labels": LABELS}, "labels": np.array([0, 1])}
        return {"images": IMAGES[0], "bounding_boxes": {"boxes": BOXES[0], "labels": LABELS[0]}}

    kwargs = {"max_number": max_number, "fill_value": fill_value, "bounding_box_format": "xyxy"}
    ours = L.MaxNumBoundingBoxes(**kwargs)(data())
    theirs = keras_ref.layers.MaxNumBoundingBoxes(**kwargs)(data())
    assert set(ours) == set(theirs)
    for key in ("boxes", "labels"):
        a, b = _np(ours["bounding_boxes"][key]), _np(theirs["bounding_boxes"][key])
        assert a.shape == b.shape and a.dtype == b.dtype, (key, a.shape, b.shape, a.dtype, b.dtype)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_np(ours["images"]), _np(theirs["images"]))
    if batched:
        np.testing.assert_array_equal(_np(ours["labels"]), _np(theirs["labels"]))


def test_images_alone_pass_through_and_output_shape(keras_ref):
    layer = L.MaxNumBoundingBoxes(4)
    x = torch.as_tensor(IMAGES)
    assert layer(x) is x
    shape = {"images": (None, 8, 8, 3), "bounding_boxes": {"boxes": (None, 5, 4), "labels": (None, 5)}}
    theirs = keras_ref.layers.MaxNumBoundingBoxes(4).compute_output_shape(
        {"images": (None, 8, 8, 3), "bounding_boxes": {"boxes": (None, 5, 4), "labels": (None, 5)}})
    assert layer.compute_output_shape(shape) == theirs


def test_ragged_boxes_are_densified():
    layer = L.MaxNumBoundingBoxes(3, bounding_box_format="xyxy")
    boxes = [np.ones((1, 4), "float32"), np.full((4, 4), 2.0, "float32")]
    out = layer({"images": IMAGES, "bounding_boxes": {"boxes": boxes, "labels": [np.array([1]), np.array([2, 3, 4, 5])]}})
    np.testing.assert_array_equal(out["bounding_boxes"]["labels"].numpy(), [[1, -1, -1], [2, 3, 4]])
    assert out["bounding_boxes"]["boxes"].shape == (2, 3, 4)
    assert out["bounding_boxes"]["boxes"][0, 1:].eq(-1).all()


def test_config(keras_ref):
    ours = L.MaxNumBoundingBoxes(6, fill_value=-3, bounding_box_format="yxyx")
    theirs = keras_ref.layers.MaxNumBoundingBoxes(6, fill_value=-3, bounding_box_format="yxyx")
    a, b = ours.get_config(), theirs.get_config()
    # a superset of Keras's config: Keras 3.15 forgets `fill_value`
    assert a.pop("fill_value") == -3
    assert {**a, "name": None} == {**b, "name": None}
    clone = L.MaxNumBoundingBoxes.from_config(ours.get_config())
    assert clone.fill_value == -3 and clone.max_number == 6 and clone.bounding_box_format == "yxyx"
    # Keras reads kerasish's config (the extra key is one of its arguments)
    assert keras_ref.layers.MaxNumBoundingBoxes.from_config(ours.get_config()).fill_value == -3


def test_errors():
    with pytest.raises(ValueError, match=r"`max_number` must be a positive integer. Received: max_number=0"):
        L.MaxNumBoundingBoxes(0)
    data = {"images": IMAGES, "bounding_boxes": {"boxes": BOXES, "labels": LABELS}}
    with pytest.raises(ValueError, match="didn't specify a bounding box format"):
        L.MaxNumBoundingBoxes(3)(data)
    with pytest.raises(ValueError, match=r"'max_num_bounding_boxes_\d+'.*'boxes' and 'labels'.*\['boxes'\]"):
        L.MaxNumBoundingBoxes(3, bounding_box_format="xyxy")({"images": IMAGES, "bounding_boxes": {"boxes": BOXES}})
    with pytest.raises(ValueError, match=r"boxes.shape=\(2, 5, 3\)"):
        L.MaxNumBoundingBoxes(3, bounding_box_format="xyxy")(
            {"images": IMAGES, "bounding_boxes": {"boxes": BOXES[..., :3], "labels": LABELS}})
