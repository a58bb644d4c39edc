"""`keras.utils.bounding_boxes` against real Keras 3 (torch backend): every
format pair, batched and unbatched boxes, the same inputs to both."""

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.utils import bounding_boxes as ours

FORMATS = ["xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw", "rel_xyxy", "rel_yxyx", "rel_xywh",
           "rel_center_xywh"]
H, W = 60, 80


@pytest.fixture(scope="module")
def ref(keras_ref):
    return keras_ref.utils.bounding_boxes


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _boxes(shape=(5,), seed=0):
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(-10, 60, shape)
    y1 = rng.uniform(-10, 40, shape)
    return np.stack([x1, y1, x1 + rng.uniform(1, 40, shape), y1 + rng.uniform(1, 30, shape)], -1).astype("float32")


def _in(fmt, xyxy, ref):
    """`xyxy` boxes expressed in `fmt` (by Keras, so both get the same input)."""
    return _np(ref.convert_format(xyxy, "xyxy", fmt, height=H, width=W))


@pytest.mark.parametrize("source", FORMATS)
@pytest.mark.parametrize("batched", [False, True])
def test_convert_format_every_pair(ref, source, batched):
    boxes = _in(source, _boxes((3, 5) if batched else (5,)), ref)
    for target in FORMATS:
        got = ours.convert_format(boxes, source, target.upper() if target == "xywh" else target, height=H, width=W)
        want = ref.convert_format(boxes, source, target, height=H, width=W)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
        np.testing.assert_allclose(_np(got), _np(want), rtol=1e-6, atol=1e-5, err_msg=f"{source}->{target}")
    # dtype and dict forms
    got = ours.convert_format(torch.as_tensor(boxes), source, "xywh", height=H, width=W, dtype="float64")
    assert got.dtype == torch.float64
    d = ours.convert_format({"boxes": boxes, "labels": np.arange(5)}, source, "xyxy", height=H, width=W)
    np.testing.assert_allclose(_np(d["boxes"]), _np(ref.convert_format(boxes, source, "xyxy", height=H, width=W)),
                               rtol=1e-6, atol=1e-5)


def test_convert_format_errors(ref):
    boxes = _boxes()
    with pytest.raises(ValueError, match="last dimension of 4"):
        ours.convert_format(boxes[:, :3], "xyxy", "xywh")
    with pytest.raises(ValueError, match="Invalid source or target format"):
        ours.convert_format(boxes, "xyxy", "cxcywh")
    with pytest.raises(ValueError, match="height"):
        ours.convert_format(boxes, "xyxy", "rel_xyxy")
    # relative to relative also asks for the image size (Keras checks before converting)
    with pytest.raises(ValueError, match="height"):
        ref.convert_format(boxes / 100, "rel_xyxy", "rel_xywh")
    with pytest.raises(ValueError, match="height"):
        ours.convert_format(boxes / 100, "rel_xyxy", "rel_xywh")


@pytest.mark.parametrize("fmt", ["xyxy", "rel_xyxy"])
@pytest.mark.parametrize("batched", [False, True])
def test_clip_to_image_size(ref, fmt, batched):
    shape = (2, 6) if batched else (6,)
    boxes = _boxes(shape, seed=3) * np.float32(1.6)
    if fmt == "rel_xyxy":
        boxes = boxes / np.float32(70)
    labels = np.arange(int(np.prod(shape))).reshape(shape).astype("int32")
    boxes[..., 0, :] = [90, 70, 95, 75] if fmt == "xyxy" else [1.2, 1.1, 1.3, 1.4]  # fully outside: label -1
    got = ours.clip_to_image_size({"boxes": boxes, "labels": labels}, height=H, width=W, bounding_box_format=fmt)
    want = ref.clip_to_image_size({"boxes": boxes, "labels": labels}, height=H, width=W, bounding_box_format=fmt)
    np.testing.assert_allclose(_np(got["boxes"]), _np(want["boxes"]), rtol=1e-6)
    np.testing.assert_array_equal(_np(got["labels"]), _np(want["labels"]))
    assert (_np(got["labels"])[..., 0] == -1).all()
    only = ours.clip_to_image_size({"boxes": boxes}, height=H, width=W, bounding_box_format=fmt)
    assert "labels" not in only


def test_crop_and_pad(ref):
    for shape in [(5,), (2, 5)]:
        boxes = _boxes(shape, seed=4)
        np.testing.assert_allclose(_np(ours.crop(boxes, top=10, left=20, height=40, width=30)),
                                   _np(ref.crop(boxes, top=10, left=20, height=40, width=30)), rtol=1e-6)
        np.testing.assert_allclose(_np(ours.pad(boxes, top=7, left=3)), _np(ref.pad(boxes, top=7, left=3)),
                                   rtol=1e-6)
    ints = np.array([[10, 20, 50, 60], [70, 80, 100, 120]])
    np.testing.assert_array_equal(_np(ours.pad(ints, 2, 3)), _np(ref.pad(ints, 2, 3)))
    with pytest.raises(NotImplementedError):
        ours.crop(ints, 0, 0, 10, 10, bounding_box_format="xywh")


def test_affine_transform(ref):
    boxes = _boxes((3, 4), seed=5)
    rng = np.random.default_rng(6)
    params = dict(
        angle=rng.uniform(-30, 30, 3).astype("float32"),
        translate_x=rng.uniform(-0.2, 0.2, 3).astype("float32"),
        translate_y=rng.uniform(-0.2, 0.2, 3).astype("float32"),
        scale=rng.uniform(0.8, 1.2, 3).astype("float32"),
        shear_x=rng.uniform(-10, 10, 3).astype("float32"),
        shear_y=rng.uniform(-10, 10, 3).astype("float32"),
    )
    for center in [{}, {"center_x": 0.3, "center_y": 0.6}]:
        got = ours.affine_transform(boxes, **params, height=H, width=W, **center)
        want = ref.affine_transform(boxes, **{k: torch.as_tensor(v) for k, v in params.items()}, height=H, width=W,
                                    **center)
        np.testing.assert_allclose(_np(got), _np(want), rtol=1e-5, atol=1e-3)
    # kerasish's unbatched form equals the batch of one
    one = ours.affine_transform(boxes[0], **{k: v[0] for k, v in params.items()}, height=H, width=W)
    np.testing.assert_allclose(_np(one), _np(ours.affine_transform(boxes[:1], **{k: v[:1] for k, v in params.items()},
                                                                   height=H, width=W))[0], rtol=1e-6)


@pytest.mark.parametrize("fmt", ["xyxy", "yxyx", "center_xywh", "rel_xyxy"])
def test_compute_iou(ref, fmt):
    a = _in(fmt, _boxes((4,), seed=7), ref)
    b = _in(fmt, _boxes((6,), seed=8), ref)
    ab = _in(fmt, _boxes((2, 4), seed=9), ref)
    bb = _in(fmt, _boxes((2, 6), seed=10), ref)
    shape = (H, W, 3)
    for x, y in [(a, b), (ab, bb), (ab, b), (a, bb), (a, a)]:
        got = ours.compute_iou(x, y, fmt, image_shape=shape)
        want = ref.compute_iou(x, y, fmt, image_shape=shape)
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(_np(got), _np(want), rtol=1e-5, atol=1e-6)
    padded = ab.copy()
    padded[:, -1] = -1.0
    # (Keras's masking fails for batched boxes1 with unbatched boxes2; kerasish broadcasts)
    for x, y in [(padded, bb)]:
        np.testing.assert_allclose(
            _np(ours.compute_iou(x, y, fmt, use_masking=True, mask_val=-7, image_shape=shape)),
            _np(ref.compute_iou(x, y, fmt, use_masking=True, mask_val=-7, image_shape=shape)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="batched"):
        ours.compute_iou(a[0], b, "xyxy")
    with pytest.raises(ValueError, match="image_shape"):
        ours.compute_iou(a, b, "rel_xyxy")


@pytest.mark.parametrize("fmt", ["xyxy", "yxyx", "xywh", "center_yxhw"])
def test_compute_ciou(ref, fmt):
    a = _in(fmt, _boxes((2, 5), seed=11), ref)
    b = _in(fmt, _boxes((2, 5), seed=12), ref)
    for x, y in [(a, b), (a[0], b[0]), (a, a)]:
        np.testing.assert_allclose(_np(ours.compute_ciou(x, y, fmt)), _np(ref.compute_ciou(x, y, fmt)),
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="relative"):
        ours.compute_ciou(a, b, "rel_xyxy", image_shape=(H, W, 3))


@pytest.mark.parametrize("encoding", ["center_yxhw", "center_xywh"])
@pytest.mark.parametrize("variance", [None, [0.1, 0.1, 0.2, 0.2]])
def test_encode_decode_deltas(ref, encoding, variance):
    anchors = _boxes((6,), seed=13).clip(1, None)
    boxes = _boxes((2, 6), seed=14).clip(1, None)
    for anchor_format, box_format in [("xyxy", "xyxy"), ("xyxy", "center_xywh"), ("yxyx", "rel_xyxy")]:
        a = _in(anchor_format, anchors, ref)
        b = _in(box_format, boxes, ref)
        kw = dict(anchor_format=anchor_format, box_format=box_format, variance=variance, image_shape=(H, W, 3))
        got = ours.encode_box_to_deltas(a, b, encoding_format=encoding, **kw)
        want = ref.encode_box_to_deltas(a, b, encoding_format=encoding, **kw)
        np.testing.assert_allclose(_np(got), _np(want), rtol=1e-5, atol=1e-5)
        back = ours.decode_deltas_to_boxes(a, _np(want), encoded_format=encoding, **kw)
        want_back = ref.decode_deltas_to_boxes(a, want, encoded_format=encoding, **kw)
        np.testing.assert_allclose(_np(back), _np(want_back), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(_np(back), b, rtol=1e-4, atol=1e-3)  # the round trip
    levels = ours.decode_deltas_to_boxes({"p3": anchors, "p4": anchors[:2]},
                                         {"p3": np.zeros((6, 4), "float32"), "p4": np.zeros((2, 4), "float32")},
                                         "xyxy", "xyxy")
    np.testing.assert_allclose(_np(levels["p4"]), anchors[:2], rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="variance"):
        ours.encode_box_to_deltas(anchors, boxes, "xyxy", "xyxy", variance=[1, 2, 3])
    with pytest.raises(ValueError, match="encoding_format"):
        ours.encode_box_to_deltas(anchors, boxes, "xyxy", "xyxy", encoding_format="xyxy")


def test_public_names(keras_ref):
    public = sorted(n for n in dir(keras_ref.utils.bounding_boxes) if not n.startswith("_"))
    assert all(callable(getattr(keras.utils.bounding_boxes, n)) for n in public)
