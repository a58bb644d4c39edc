"""F-scores, R2Score, IoU metrics and hinge metrics vs real Keras 3: same
data, same sample weights, same results; configs; lookups; errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import kerasish as keras

RNG = np.random.default_rng(11)
N = 40
Y_SPARSE = RNG.integers(0, 4, (N,))
Y_ONEHOT = np.eye(4, dtype="float32")[Y_SPARSE]
P_CAT = RNG.random((N, 4)).astype("float32")
P_CAT /= P_CAT.sum(axis=1, keepdims=True)
Y_MULTI = RNG.integers(0, 2, (N, 4)).astype("float32")
P_MULTI = RNG.random((N, 4)).astype("float32")
Y_REG = RNG.normal(size=(N, 3)).astype("float32")
P_REG = (Y_REG + 0.5 * RNG.normal(size=(N, 3))).astype("float32")
Y_BIN = RNG.integers(0, 2, (N, 1)).astype("float32")
P_BIN = RNG.random((N, 1)).astype("float32")
Y_PM = (2 * Y_BIN - 1).astype("float32")
SW = RNG.random(N).astype("float32")
SW_INT = RNG.integers(0, 4, N).astype("int32")
# segmentation-like ids with out-of-range values (-1, 4) that both ignore
Y_SEG = RNG.integers(-1, 5, (N, 3, 3))
P_SEG = RNG.integers(0, 4, (N, 3, 3))
SW_SEG = RNG.integers(0, 3, (N, 3, 3)).astype("int32")
P_SEG_SCORES = RNG.random((N, 3, 3, 4)).astype("float32")
Y_SEG_ONEHOT = np.eye(4, dtype="float32")[RNG.integers(0, 4, (N, 3, 3))]

# (class name, kwargs, (y_true, y_pred), sample weight of the second update)
CASES = [
    ("F1Score", {}, (Y_ONEHOT, P_CAT), SW),
    ("F1Score", {"average": "micro"}, (Y_ONEHOT, P_CAT), SW),
    ("F1Score", {"average": "macro", "threshold": 0.3}, (Y_ONEHOT, P_CAT), SW),
    ("F1Score", {"average": "weighted"}, (Y_ONEHOT, P_CAT), SW),
    ("F1Score", {"threshold": 0.5}, (Y_MULTI, P_MULTI), SW),
    ("FBetaScore", {"beta": 2.0, "threshold": 0.5}, (Y_MULTI, P_MULTI), SW),
    ("FBetaScore", {"beta": 0.5, "average": "micro", "threshold": 0.4}, (Y_MULTI, P_MULTI), SW),
    ("FBetaScore", {"beta": 1.5, "average": "macro"}, (Y_ONEHOT, P_CAT), SW),
    ("FBetaScore", {"beta": 3.0, "average": "weighted", "threshold": 0.6}, (Y_MULTI, P_MULTI), SW),
    ("R2Score", {}, (Y_REG, P_REG), SW),
    ("R2Score", {"class_aggregation": None}, (Y_REG, P_REG), SW),
    ("R2Score", {"class_aggregation": "variance_weighted_average"}, (Y_REG, P_REG), SW),
    ("R2Score", {"num_regressors": 5}, (Y_REG, P_REG), SW),
    ("R2Score", {"class_aggregation": None, "num_regressors": 2}, (Y_REG, P_REG), RNG.random((N, 3)).astype("float32")),
    ("R2Score", {}, (Y_REG[:, 0], P_REG[:, :1]), SW),  # rank-1 y_true is expanded
    ("IoU", {"num_classes": 4, "target_class_ids": [0, 2]}, (Y_SPARSE, P_CAT.argmax(1)), SW_INT),
    ("IoU", {"num_classes": 4, "target_class_ids": [1, 3], "ignore_class": 2}, (Y_SEG, P_SEG), SW_SEG),
    ("IoU", {"num_classes": 4, "target_class_ids": [0, 1], "dtype": "float32"}, (Y_SPARSE, P_CAT.argmax(1)), SW),
    ("IoU", {"num_classes": 4, "target_class_ids": [1], "sparse_y_true": False, "sparse_y_pred": False},
     (Y_ONEHOT, P_CAT), SW_INT),
    ("MeanIoU", {"num_classes": 4}, (Y_SEG, P_SEG), SW_SEG),
    ("MeanIoU", {"num_classes": 4, "ignore_class": 0, "sparse_y_pred": False}, (Y_SPARSE, P_CAT), SW_INT),
    ("MeanIoU", {"num_classes": 4, "dtype": "float32"}, (Y_SEG, P_SEG), SW_SEG.astype("float32") * 0.7),
    ("BinaryIoU", {}, (Y_BIN, P_BIN), SW_INT),
    ("BinaryIoU", {"target_class_ids": [1], "threshold": 0.3}, (Y_BIN, P_BIN), SW_INT),
    ("BinaryIoU", {"target_class_ids": [0], "threshold": 0.7, "dtype": "float32"}, (Y_BIN, P_BIN), SW),
    ("OneHotIoU", {"num_classes": 4, "target_class_ids": [0, 3]}, (Y_ONEHOT, P_CAT), SW_INT),
    ("OneHotIoU", {"num_classes": 4, "target_class_ids": [2], "ignore_class": 1},
     (Y_SEG_ONEHOT, P_SEG_SCORES), SW_SEG),
    ("OneHotMeanIoU", {"num_classes": 4}, (Y_ONEHOT, P_CAT), SW_INT),
    ("OneHotMeanIoU", {"num_classes": 4, "sparse_y_pred": True}, (Y_SEG_ONEHOT, P_SEG), SW_SEG),
    ("Hinge", {}, (Y_BIN, P_BIN * 2 - 1), SW),
    ("Hinge", {}, (Y_PM, P_BIN * 2 - 1), SW),
    ("SquaredHinge", {}, (Y_MULTI, P_MULTI * 2 - 1), SW),
    ("CategoricalHinge", {}, (Y_ONEHOT, P_CAT), SW),
]


def _ids(case):
    name, kwargs, _, _ = case
    return name + ("-" + ",".join(f"{k}={v}" for k, v in kwargs.items()) if kwargs else "")


def _assert_close(ours, ref):
    np.testing.assert_allclose(ours.result().numpy(), np.asarray(ref.result()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_metric_matches_keras(keras_ref, case):
    name, kwargs, (y_true, y_pred), sw = case
    ref = getattr(keras_ref.metrics, name)(**kwargs)
    ours = getattr(keras.metrics, name)(**kwargs)
    half = len(y_true) // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IoU's float-weight warning
        # two updates (state accumulates), the second weighted
        for m, convert in ((ref, np.asarray), (ours, torch.as_tensor)):
            m.update_state(convert(y_true[:half]), convert(y_pred[:half]))
            m.update_state(convert(y_true[half:]), convert(y_pred[half:]), sample_weight=convert(sw[half:]))
        _assert_close(ours, ref)
        assert [v.name for v in ours.variables] == [v.name for v in ref.variables]
        ours_cfg, ref_cfg = ours.get_config(), ref.get_config()
        ours_cfg.pop("name"), ref_cfg.pop("name")
        assert ours_cfg == ref_cfg
        assert list(ours_cfg) == list(ref_cfg)
        ours.reset_state()
        ref.reset_state()
        assert all(not v.detach().any() for v in ours.variables)
        ours.update_state(torch.as_tensor(y_true), torch.as_tensor(y_pred))
        ref.update_state(y_true, y_pred)
        _assert_close(ours, ref)


def test_default_names_and_lookups(keras_ref):
    expected = {
        "F1Score": "f1_score", "FBetaScore": "fbeta_score", "R2Score": "r2_score", "BinaryIoU": "binary_io_u",
        "Hinge": "hinge", "SquaredHinge": "squared_hinge", "CategoricalHinge": "categorical_hinge",
    }
    for cls_name, name in expected.items():
        assert getattr(keras.metrics, cls_name)().name == name
    assert keras.metrics.IoU(3, [0]).name == "io_u"
    assert keras.metrics.MeanIoU(3).name == "mean_io_u"
    assert keras.metrics.OneHotIoU(3, [0]).name == "one_hot_io_u"
    assert keras.metrics.OneHotMeanIoU(3).name == "one_hot_mean_io_u"
    # names Keras's `metrics.get` resolves to an instance
    for ident in ("f1_score", "F1Score", "f_beta_score", "r2_score", "R2Score", "binary_io_u", "hinge",
                  "squared_hinge", "categorical_hinge", "Hinge"):
        ours, ref = keras.metrics.get(ident), keras_ref.metrics.get(ident)
        assert type(ours).__name__ == type(ref).__name__
    # classes with required arguments fail like Keras's
    with pytest.raises(TypeError, match="num_classes"):
        keras.metrics.get("mean_io_u")
    assert keras.metrics.hinge is keras.losses.hinge
    assert keras.metrics.categorical_hinge is keras.losses.categorical_hinge


@pytest.mark.parametrize("metric", [
    keras.metrics.F1Score(average="macro", threshold=0.4, name="f"),
    keras.metrics.FBetaScore(beta=2.0),
    keras.metrics.R2Score(class_aggregation=None, num_regressors=3),
    keras.metrics.IoU(5, [1, 4], ignore_class=0, sparse_y_pred=False, axis=1),
    keras.metrics.MeanIoU(3, dtype="float32"),
    keras.metrics.BinaryIoU([1], threshold=0.2),
    keras.metrics.OneHotIoU(4, [2, 3], sparse_y_pred=True),
    keras.metrics.OneHotMeanIoU(4, ignore_class=1),
    keras.metrics.SquaredHinge(name="sh"),
], ids=lambda m: type(m).__name__)
def test_serialize_round_trip(metric, keras_ref):
    config = keras.metrics.serialize(metric)
    assert config["module"] == "keras.metrics" and config["class_name"] == type(metric).__name__
    back = keras.metrics.deserialize(config)
    assert type(back) is type(metric) and back.get_config() == metric.get_config()
    # the same config in real Keras: it deserializes there and serializes back to the same dict
    theirs = keras_ref.metrics.deserialize(config)
    assert type(theirs).__name__ == type(metric).__name__
    assert keras_ref.metrics.serialize(theirs)["config"] == config["config"]


def test_state_is_buffers_and_call_returns_result():
    m = keras.metrics.MeanIoU(3)
    assert {k for k, _ in m.named_buffers()} == {"total_cm"}  # attribute name; Variable.name is Keras's
    assert m.total_cm.dtype == torch.int32 and not list(m.parameters())
    np.testing.assert_allclose(float(m([0, 1, 2, 2], [0, 1, 1, 2])), (1 + 0.5 + 0.5) / 3, rtol=1e-6)
    f = keras.metrics.F1Score(average="micro")
    assert not list(f.named_buffers())  # created on the first update, as in Keras
    p = torch.tensor(P_CAT, requires_grad=True)
    out = f(torch.as_tensor(Y_ONEHOT), p)
    assert out.shape == () and not out.requires_grad
    assert {k: tuple(v.shape) for k, v in f.named_buffers()} == {
        "true_positives": (), "false_positives": (), "false_negatives": (), "intermediate_weights": ()}
    r = keras.metrics.R2Score(class_aggregation=None)
    r.update_state(torch.as_tensor(Y_REG), torch.as_tensor(P_REG))
    assert [k for k, _ in r.named_buffers()] == ["num_samples", "squared_sum", "sum", "residual", "count"]
    assert r.result().shape == (3,)


def test_iou_float_weight_warning_and_r2_fallback_warning(keras_ref):
    m = keras.metrics.IoU(2, [0, 1])
    with pytest.warns(UserWarning, match="passing weight as `float`"):
        m.update_state([0, 1], [0, 1], sample_weight=np.array([0.5, 1.5], "float32"))
    np.testing.assert_array_equal(m.total_cm.numpy(), [[0, 0], [0, 1]])  # truncated like Keras
    ours, ref = keras.metrics.R2Score(num_regressors=500), keras_ref.metrics.R2Score(num_regressors=500)
    ours.update_state(Y_REG, P_REG)
    ref.update_state(Y_REG, P_REG)
    with pytest.warns(UserWarning, match="Falling back to standard R2 score"):
        _assert_close(ours, ref)
    ours, ref = keras.metrics.R2Score(num_regressors=N * 3 - 1), keras_ref.metrics.R2Score(num_regressors=N * 3 - 1)
    ours.update_state(Y_REG, P_REG)
    ref.update_state(Y_REG, P_REG)
    with pytest.warns(UserWarning, match="Division by zero"):
        _assert_close(ours, ref)


BAD_CONSTRUCTIONS = [
    ("FBetaScore", {"average": "samples"}, "Invalid `average`"),
    ("FBetaScore", {"beta": 2}, "It should be a Python float"),
    ("FBetaScore", {"beta": -1.0}, "It should be > 0"),
    ("F1Score", {"threshold": 1}, "It should be a Python float"),
    ("F1Score", {"threshold": 1.5}, "0 < threshold <= 1"),
    ("F1Score", {"threshold": 0.0}, "0 < threshold <= 1"),
    ("R2Score", {"class_aggregation": "mean"}, "class_aggregation"),
    ("R2Score", {"num_regressors": -1}, "num_regressors"),
    ("IoU", {"num_classes": 3, "target_class_ids": [0, 3]}, "Target class id 3 is out of range"),
    ("BinaryIoU", {"target_class_ids": [2]}, "out of range"),
]


@pytest.mark.parametrize("case", BAD_CONSTRUCTIONS, ids=[c[0] + "-" + "-".join(c[1]) for c in BAD_CONSTRUCTIONS])
def test_bad_arguments_raise_like_keras(keras_ref, case):
    name, kwargs, match = case
    with pytest.raises(ValueError, match=match):
        getattr(keras_ref.metrics, name)(**kwargs)
    with pytest.raises(ValueError, match=match):
        getattr(keras.metrics, name)(**kwargs)


@pytest.mark.parametrize("name", ["F1Score", "R2Score"])
def test_non_2d_inputs_raise_like_keras(keras_ref, name):
    y = np.zeros((2, 3, 4), "float32")
    with pytest.raises(ValueError, match="expects 2D inputs"):
        getattr(keras_ref.metrics, name)().update_state(y, y)
    with pytest.raises(ValueError, match="expects 2D inputs"):
        getattr(keras.metrics, name)().update_state(y, y)
