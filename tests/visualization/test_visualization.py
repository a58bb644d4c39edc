"""`keras.visualization` against real Keras 3 (torch backend), same inputs to both.

`draw_segmentation_masks` and `draw_bounding_boxes` must be bit for bit
Keras's outputs; the galleries are rendered to PNG files with matplotlib's
Agg backend by both, and the figures (size, axes, titles, legend) and the
decoded pixels must be equal. Where kerasish deliberately differs (see the
docstrings), the test states the rule and checks it against Keras on the
input Keras handles.
"""

import sys

import numpy as np
import pytest
import torch

import kerasish

KV = None  # keras.visualization, set by the fixture
QV = kerasish.visualization
H, W = 40, 56


@pytest.fixture(scope="module", autouse=True)
def ref(keras_ref):
    global KV
    KV = keras_ref.visualization
    return keras_ref


def _images(batch=2, seed=0, dtype="float32"):
    return np.random.default_rng(seed).uniform(0, 255, (batch, H, W, 3)).astype(dtype)


def _masks(batch=2, seed=1, low=-1, high=4):
    return np.random.default_rng(seed).integers(low, high, (batch, H, W, 1)).astype("int32")


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ------------------------------------------------------------ segmentation
SEG_CASES = {
    "defaults": dict(num_classes=4),
    "alpha": dict(num_classes=5, alpha=0.3),
    "ignore_zero": dict(num_classes=4, ignore_index=0),
    "color_mapping": dict(num_classes=4, color_mapping={0: (1, 2, 3), 1: (255, 0, 0), 2: (0, 255, 0), 3: (9, 9, 250)}),
    "no_blend": dict(num_classes=4, blend=False),
}


@pytest.mark.parametrize("case", list(SEG_CASES))
@pytest.mark.parametrize("as_torch", [False, True], ids=["numpy", "torch"])
def test_draw_segmentation_masks_bitwise(case, as_torch):
    images, masks = _images(), _masks()
    expected = KV.draw_segmentation_masks(images, masks, **SEG_CASES[case])
    if as_torch:
        images, masks = torch.from_numpy(images), torch.from_numpy(masks)
    got = QV.draw_segmentation_masks(images, masks, **SEG_CASES[case])
    assert type(got) is type(expected)  # uint8 NumPy, or (blend=False) a float32 torch tensor as Keras-on-torch
    assert got.dtype == expected.dtype and tuple(got.shape) == tuple(expected.shape)
    np.testing.assert_array_equal(_np(got), _np(expected))
    assert not np.array_equal(_np(got), images.astype("uint8") if not as_torch else images.numpy().astype("uint8"))


def test_draw_segmentation_masks_uint8_and_channels_first():
    images, masks = _images(dtype="uint8"), _masks()
    np.testing.assert_array_equal(
        QV.draw_segmentation_masks(images, masks, num_classes=4),
        KV.draw_segmentation_masks(images, masks, num_classes=4),
    )
    cf_images, cf_masks = images.transpose(0, 3, 1, 2), masks.transpose(0, 3, 1, 2)
    expected = KV.draw_segmentation_masks(cf_images, cf_masks, num_classes=4, data_format="channels_first")
    got = QV.draw_segmentation_masks(cf_images, cf_masks, num_classes=4, data_format="channels_first")
    assert got.shape == (2, H, W, 3)  # channels last out, as Keras
    np.testing.assert_array_equal(got, expected)


def test_draw_segmentation_masks_deliberate_differences():
    images, masks = _images(), _masks(low=0, high=3)
    # num_classes=None: the largest class + 1 (Keras-on-torch raises here)
    with pytest.raises(RuntimeError):
        KV.draw_segmentation_masks(images, masks)
    expected = KV.draw_segmentation_masks(images, masks, num_classes=3)
    np.testing.assert_array_equal(QV.draw_segmentation_masks(images, masks), expected)
    # (batch, height, width) masks, which Keras's docstring allows and its code refuses
    np.testing.assert_array_equal(QV.draw_segmentation_masks(images, masks[..., 0], num_classes=3), expected)
    # a class without a colour: a ValueError naming num_classes (torch's RuntimeError in Keras)
    with pytest.raises(ValueError, match="holds class 2.*num_classes=2"):
        QV.draw_segmentation_masks(images, masks, num_classes=2)


def _error(fn, *args, **kwargs):
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    return type(info.value), str(info.value)


@pytest.mark.parametrize(
    "args",
    [
        lambda: (_images()[0], _masks()[0]),  # not batched
        lambda: (_images(), _masks().astype("float32")),  # float masks
    ],
    ids=["rank3_images", "float_masks"],
)
def test_draw_segmentation_masks_errors_equal_keras(args):
    a = args()
    expected = _error(KV.draw_segmentation_masks, *a, num_classes=4)
    assert expected[0] in (ValueError, TypeError)
    assert _error(QV.draw_segmentation_masks, *a, num_classes=4) == expected


# ----------------------------------------------------------- bounding boxes
def _boxes(fmt="xyxy", ref=None):
    xyxy = np.array(
        [[[2, 30, 40, 38], [0, 0, 10, 10], [12, 20, 55, 39]], [[1, 25, 18, 35], [6, 4, 50, 30], [0, 0, 0, 0]]],
        "float32",
    )
    boxes = (
        xyxy if fmt == "xyxy" else _np(ref.utils.bounding_boxes.convert_format(xyxy, "xyxy", fmt, height=H, width=W))
    )
    return {
        "boxes": boxes,
        "labels": np.array([[0, 1, 2], [1, 0, -1]]),
        "confidences": np.array([[0.9, 0.5, 0.25], [0.1, 0.99, 0]]),
    }


BOX_CASES = {
    "defaults": {},
    "labels": dict(class_mapping={0: "cat", 1: "dog"}, color=(255, 0, 0), line_thickness=1, font_scale=0.4),
    "text_thickness_falsy": dict(class_mapping={0: "c", 2: "bird"}, text_thickness=0, line_thickness=3),
}


@pytest.mark.parametrize("fmt", ["xyxy", "rel_xyxy", "xywh", "center_yxhw"])
@pytest.mark.parametrize("case", list(BOX_CASES))
def test_draw_bounding_boxes_bitwise(ref, fmt, case):
    pytest.importorskip("cv2", reason="draw_bounding_boxes needs OpenCV (opencv-python-headless, in the test extra)")
    images, boxes = _images(), _boxes(fmt, ref)
    expected = KV.draw_bounding_boxes(images, dict(boxes), fmt, **BOX_CASES[case])
    got = QV.draw_bounding_boxes(torch.from_numpy(images), dict(boxes), fmt, **BOX_CASES[case])
    assert got.dtype == np.uint8 and got.shape == images.shape
    np.testing.assert_array_equal(got, expected)
    assert (got != images.astype("uint8")).any()
    if case == "labels":  # text drawn both above a box and inside one (Keras's placement rule)
        plain = QV.draw_bounding_boxes(images, {k: v for k, v in boxes.items()}, fmt)
        assert (got != plain).sum() > (plain != images.astype("uint8")).sum()


def test_draw_bounding_boxes_value_ranges_and_input_untouched():
    pytest.importorskip("cv2", reason="draw_bounding_boxes needs OpenCV")
    for images in (_images() / 255.0, _images() * 2 - 100, _images(dtype="uint8")):
        before = images.copy()
        expected = KV.draw_bounding_boxes(images, _boxes(), "xyxy", class_mapping={1: "x"})
        np.testing.assert_array_equal(
            QV.draw_bounding_boxes(images, _boxes(), "xyxy", class_mapping={1: "x"}), expected
        )
        np.testing.assert_array_equal(images, before)


def test_draw_bounding_boxes_channels_first():
    """kerasish draws on the (height, width) planes and returns channels_first
    images: Keras's channels_last result, transposed."""
    pytest.importorskip("cv2", reason="draw_bounding_boxes needs OpenCV")
    images = _images()
    expected = KV.draw_bounding_boxes(images, _boxes(), "xyxy", class_mapping={0: "a"})
    got = QV.draw_bounding_boxes(
        images.transpose(0, 3, 1, 2), _boxes(), "xyxy", class_mapping={0: "a"}, data_format="channels_first"
    )
    np.testing.assert_array_equal(got, expected.transpose(0, 3, 1, 2))


@pytest.mark.parametrize(
    "args",
    [
        lambda: (_images()[0], _boxes(), "xyxy"),
        lambda: (_images(), [[0, 0, 1, 1]], "xyxy"),
        lambda: (_images(), {"boxes": _boxes()["boxes"]}, "xyxy"),
    ],
    ids=["rank3_images", "not_a_dict", "no_labels"],
)
def test_draw_bounding_boxes_errors_equal_keras(args):
    pytest.importorskip("cv2", reason="draw_bounding_boxes needs OpenCV")
    a = args()
    expected = _error(KV.draw_bounding_boxes, *a)
    assert expected[0] in (ValueError, TypeError)
    assert _error(QV.draw_bounding_boxes, *a) == expected


def test_missing_packages_raise_keras_messages(monkeypatch):
    from keras.src.visualization import draw_bounding_boxes as k_boxes
    from keras.src.visualization import plot_bounding_box_gallery as k_box_gallery
    from keras.src.visualization import plot_image_gallery as k_gallery

    monkeypatch.setattr(k_boxes, "cv2", None)
    monkeypatch.setattr(k_gallery, "plt", None)
    monkeypatch.setattr(k_box_gallery, "patches", None)
    for name in ("cv2", "matplotlib", "matplotlib.pyplot", "matplotlib.patches"):
        monkeypatch.setitem(sys.modules, name, None)
    images = _images()
    for fn, args in (
        ("draw_bounding_boxes", (images, _boxes(), "xyxy")),
        ("plot_image_gallery", (images,)),
        ("plot_bounding_box_gallery", (images, "xyxy")),
        ("plot_segmentation_mask_gallery", (images, 4)),
    ):
        expected = _error(getattr(KV, fn), *args)
        assert expected[0] is ImportError
        assert _error(getattr(QV, fn), *args) == expected


# --------------------------------------------------------------- galleries
@pytest.fixture
def plt():
    matplotlib = pytest.importorskip("matplotlib", reason="the galleries need matplotlib (in the test extra)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    yield plt
    plt.close("all")


def _render(plt, monkeypatch, fn, path, *args, **kwargs):
    """Runs a gallery function saving to `path`; returns what the figure held
    when saved (size, grid, titles, legend) and the decoded PNG pixels."""
    seen = {}
    original = plt.savefig

    def savefig(*a, **kw):
        fig = plt.gcf()
        seen["size"] = tuple(fig.get_size_inches())
        seen["axes"] = len(fig.axes)
        seen["titles"] = [ax.get_title() for ax in fig.axes]
        seen["images"] = [len(ax.images) for ax in fig.axes]
        seen["legend"] = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
        seen["kwargs"] = {k: v for k, v in kw.items() if k != "fname"}
        return original(*a, **kw)

    monkeypatch.setattr(plt, "savefig", savefig)
    try:
        result = fn(*args, path=str(path), **kwargs)
    finally:
        monkeypatch.setattr(plt, "savefig", original)
    assert result is None and plt.get_fignums() == []  # saved and closed, as Keras
    return seen, plt.imread(str(path))


def _same_gallery(plt, monkeypatch, tmp_path, name, *args, **kwargs):
    expected, expected_pixels = _render(plt, monkeypatch, getattr(KV, name), tmp_path / "k.png", *args, **kwargs)
    got, pixels = _render(plt, monkeypatch, getattr(QV, name), tmp_path / "q.png", *args, **kwargs)
    assert got == expected
    np.testing.assert_array_equal(pixels, expected_pixels)
    return got


@pytest.mark.filterwarnings("ignore:This figure was using a layout engine")
def test_plot_image_gallery_equals_keras(plt, monkeypatch, tmp_path):
    images = _images(batch=5)
    got = _same_gallery(
        plt,
        monkeypatch,
        tmp_path,
        "plot_image_gallery",
        torch.from_numpy(images) / 255.0,
        y_true=np.array([0, 1, 2, 0, 1]),
        y_pred=np.array([1, 1, 7, 0, 1]),
        label_map={0: "cat", 1: "dog", 2: "bird"},
        value_range=(0, 1),
        scale=1,
        dpi=30,
    )
    # 5 images: rows = ceil(sqrt(5)) = 3, cols = 5 // 3 = 1 (Keras's rule)
    assert got["axes"] == 3 and got["size"] == (1.0, 3.0)
    assert got["titles"] == ["Label: cat  Pred: dog", "Label: dog  Pred: dog", "Label: bird  Pred: Unknown"]
    got = _same_gallery(
        plt, monkeypatch, tmp_path, "plot_image_gallery", images, rows=2, cols=2, dpi=30, transparent=False
    )
    assert got["axes"] == 4 and got["images"] == [1, 1, 1, 1] and got["titles"] == [""] * 4


@pytest.mark.filterwarnings("ignore:This figure was using a layout engine")
def test_plot_bounding_box_gallery_equals_keras(ref, plt, monkeypatch, tmp_path):
    pytest.importorskip("cv2", reason="the box gallery draws with OpenCV")
    images = _images(batch=4)
    y_pred = _boxes()
    y_pred["boxes"] = y_pred["boxes"] + 3
    y_true = {k: np.concatenate([v, v]) for k, v in _boxes().items()}
    y_pred = {k: np.concatenate([v, v]) for k, v in y_pred.items()}
    got = _same_gallery(
        plt,
        monkeypatch,
        tmp_path,
        "plot_bounding_box_gallery",
        images,
        "xyxy",
        y_true=y_true,
        y_pred=y_pred,
        class_mapping={0: "cat", 1: "dog"},
        prediction_mapping={1: "DOG"},
        legend=True,
        font_scale=0.4,
        dpi=30,
    )
    assert got["axes"] == 4 and got["legend"] == ["Ground Truth", "Prediction"]
    cf = images.transpose(0, 3, 1, 2)
    _same_gallery(
        plt,
        monkeypatch,
        tmp_path,
        "plot_bounding_box_gallery",
        cf,
        "xyxy",
        y_true=y_true,
        data_format="channels_first",
        rows=1,
        cols=4,
        dpi=30,
    )


@pytest.mark.filterwarnings("ignore:This figure was using a layout engine")
def test_plot_segmentation_mask_gallery_equals_keras(plt, monkeypatch, tmp_path):
    images = _images(batch=2)
    got = _same_gallery(
        plt,
        monkeypatch,
        tmp_path,
        "plot_segmentation_mask_gallery",
        images,
        4,
        y_true=_masks(),
        y_pred=_masks(seed=5),
        alpha=0.5,
        dpi=30,
    )
    assert got["axes"] == 6 and got["size"] == (6.0, 4.0)  # one row per image: image, truth, prediction
    _same_gallery(
        plt,
        monkeypatch,
        tmp_path,
        "plot_segmentation_mask_gallery",
        images.transpose(0, 3, 1, 2),
        4,
        y_pred=_masks().transpose(0, 3, 1, 2),
        data_format="channels_first",
        blend=False,
        dpi=30,
    )


@pytest.mark.filterwarnings("ignore:This figure was using a layout engine")
def test_plot_image_gallery_deliberate_differences(plt, monkeypatch, tmp_path):
    """channels_first is transposed once (Keras 3.15 transposes twice and
    fails); a grid larger than the batch leaves the extra cells blank
    (Keras 3.15 raises IndexError)."""
    images = _images(batch=3)
    with pytest.raises(TypeError):
        KV.plot_image_gallery(images.transpose(0, 3, 1, 2), data_format="channels_first", path=str(tmp_path / "x.png"))
    plt.close("all")
    expected, expected_pixels = _render(plt, monkeypatch, KV.plot_image_gallery, tmp_path / "k.png", images, dpi=30)
    got, pixels = _render(
        plt,
        monkeypatch,
        QV.plot_image_gallery,
        tmp_path / "q.png",
        images.transpose(0, 3, 1, 2),
        data_format="channels_first",
        dpi=30,
    )
    assert got == expected
    np.testing.assert_array_equal(pixels, expected_pixels)
    with pytest.raises(IndexError):
        KV.plot_image_gallery(images, rows=2, cols=2, path=str(tmp_path / "x.png"))
    plt.close("all")
    got, _ = _render(plt, monkeypatch, QV.plot_image_gallery, tmp_path / "q.png", images, rows=2, cols=2, dpi=30)
    assert got["axes"] == 4 and got["images"] == [1, 1, 1, 0]


def test_gallery_errors_equal_keras(plt, tmp_path):
    images = _images()
    for fn, args, kwargs in (
        ("plot_image_gallery", (images,), dict(path=str(tmp_path / "x.png"), show=True)),
        ("plot_image_gallery", (images,), dict(y_true=np.array([0, 1]))),
        ("plot_image_gallery", (images[0],), dict(path=str(tmp_path / "x.png"))),
        ("plot_bounding_box_gallery", (images, "xyxy"), dict(legend=True, legend_handles=["h"])),
        ("plot_bounding_box_gallery", (images[0], "xyxy"), {}),
        ("plot_segmentation_mask_gallery", (images[0], 3), {}),
    ):
        expected = _error(getattr(KV, fn), *args, **kwargs)
        plt.close("all")
        assert expected[0] is ValueError
        assert _error(getattr(QV, fn), *args, **kwargs) == expected
        plt.close("all")


@pytest.mark.parametrize(
    "name",
    [
        "draw_bounding_boxes",
        "draw_segmentation_masks",
        "plot_image_gallery",
        "plot_bounding_box_gallery",
        "plot_segmentation_mask_gallery",
    ],
)
def test_signatures_equal_keras(name):
    import inspect

    def params(fn):
        return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]

    assert params(getattr(QV, name)) == params(getattr(KV, name))


@pytest.mark.filterwarnings("ignore:This figure was using a layout engine")
def test_galleries_follow_a_global_channels_first(plt, monkeypatch, tmp_path):
    """With `image_data_format() == "channels_first"` the galleries read the
    images as channels_first and draw on the transposed images (Keras 3.15
    lets the inner drawing transpose them a second time): the same figure as
    Keras's with an explicit `data_format="channels_first"`."""
    pytest.importorskip("cv2", reason="the box gallery draws with OpenCV")
    from kerasish.backend import config

    images = _images(batch=2).transpose(0, 3, 1, 2)
    kwargs = dict(data_format="channels_first", dpi=30)
    expected = [
        _render(
            plt,
            monkeypatch,
            KV.plot_segmentation_mask_gallery,
            tmp_path / "k1.png",
            images,
            4,
            y_true=_masks().transpose(0, 3, 1, 2),
            **kwargs,
        ),
        _render(
            plt,
            monkeypatch,
            KV.plot_bounding_box_gallery,
            tmp_path / "k2.png",
            images,
            "xyxy",
            y_true=_boxes(),
            **kwargs,
        ),
    ]
    monkeypatch.setattr(config, "_image_data_format", "channels_first")
    got = [
        _render(
            plt,
            monkeypatch,
            QV.plot_segmentation_mask_gallery,
            tmp_path / "q1.png",
            images,
            4,
            y_true=_masks().transpose(0, 3, 1, 2),
            dpi=30,
        ),
        _render(
            plt, monkeypatch, QV.plot_bounding_box_gallery, tmp_path / "q2.png", images, "xyxy", y_true=_boxes(), dpi=30
        ),
    ]
    for (seen, pixels), (ref_seen, ref_pixels) in zip(got, expected):
        assert seen == ref_seen
        np.testing.assert_array_equal(pixels, ref_pixels)
