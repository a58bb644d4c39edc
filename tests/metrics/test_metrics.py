"""keras.metrics vs real Keras 3: same data, same sample weights, same
results; configs; get/serialize/deserialize; errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish as keras

RNG = np.random.default_rng(7)
N = 60
Y_BIN = RNG.integers(0, 2, (N, 1)).astype("float32")
P_BIN = RNG.random((N, 1)).astype("float32")
Y_SPARSE = RNG.integers(0, 5, (N,))
P_CAT = RNG.random((N, 5)).astype("float32")
P_CAT /= P_CAT.sum(axis=1, keepdims=True)
Y_ONEHOT = np.eye(5, dtype="float32")[Y_SPARSE]
Y_REG = RNG.normal(size=(N, 3)).astype("float32")
P_REG = (Y_REG + 0.3 * RNG.normal(size=(N, 3))).astype("float32")
SW = RNG.random(N).astype("float32")

# (class name, kwargs, (y_true, y_pred))
CASES = [
    ("Accuracy", {}, (Y_SPARSE, P_CAT.argmax(1))),
    ("BinaryAccuracy", {}, (Y_BIN, P_BIN)),
    ("BinaryAccuracy", {"threshold": 0.3}, (Y_BIN, P_BIN)),
    ("CategoricalAccuracy", {}, (Y_ONEHOT, P_CAT)),
    ("SparseCategoricalAccuracy", {}, (Y_SPARSE, P_CAT)),
    ("SparseCategoricalAccuracy", {}, (Y_SPARSE[:, None], P_CAT)),
    ("TopKCategoricalAccuracy", {"k": 2}, (Y_ONEHOT, P_CAT)),
    ("SparseTopKCategoricalAccuracy", {"k": 3}, (Y_SPARSE, P_CAT)),
    ("MeanSquaredError", {}, (Y_REG, P_REG)),
    ("MeanAbsoluteError", {}, (Y_REG, P_REG)),
    ("RootMeanSquaredError", {}, (Y_REG, P_REG)),
    ("MeanAbsolutePercentageError", {}, (Y_REG, P_REG)),
    ("MeanSquaredLogarithmicError", {}, (np.abs(Y_REG), np.abs(P_REG))),
    ("CosineSimilarity", {}, (Y_REG, P_REG)),
    ("LogCoshError", {}, (Y_REG, P_REG)),
    ("Precision", {}, (Y_BIN, P_BIN)),
    ("Precision", {"thresholds": [0.2, 0.5, 0.8]}, (Y_BIN, P_BIN)),
    ("Precision", {"top_k": 2}, (Y_ONEHOT, P_CAT)),
    ("Precision", {"class_id": 1}, (Y_ONEHOT, P_CAT)),
    ("Recall", {}, (Y_BIN, P_BIN)),
    ("Recall", {"thresholds": [0.0, 0.25, 0.5, 0.75, 1.0]}, (Y_BIN, P_BIN)),
    ("Recall", {"top_k": 1, "class_id": 2}, (Y_ONEHOT, P_CAT)),
    ("TruePositives", {}, (Y_BIN, P_BIN)),
    ("FalsePositives", {"thresholds": [0.3, 0.6]}, (Y_BIN, P_BIN)),
    ("TrueNegatives", {}, (Y_BIN, P_BIN)),
    ("FalseNegatives", {}, (Y_BIN, P_BIN)),
    ("AUC", {}, (Y_BIN, P_BIN)),
    ("AUC", {"curve": "PR"}, (Y_BIN, P_BIN)),
    ("AUC", {"num_thresholds": 13, "summation_method": "minoring"}, (Y_BIN, P_BIN)),
    ("AUC", {"num_thresholds": 9, "curve": "PR", "summation_method": "majoring"}, (Y_BIN, P_BIN)),
    ("AUC", {"thresholds": [0.1, 0.4, 0.45, 0.9]}, (Y_BIN, P_BIN)),
    ("AUC", {"multi_label": True}, (Y_ONEHOT, P_CAT)),
    ("AUC", {"multi_label": True, "curve": "PR", "label_weights": [1, 2, 0.5, 1, 1]}, (Y_ONEHOT, P_CAT)),
    ("AUC", {"from_logits": True}, (Y_BIN, P_BIN * 6 - 3)),
    ("BinaryCrossentropy", {}, (Y_BIN, P_BIN)),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, (Y_BIN, P_BIN * 4 - 2)),
    ("CategoricalCrossentropy", {}, (Y_ONEHOT, P_CAT)),
    ("SparseCategoricalCrossentropy", {}, (Y_SPARSE, P_CAT)),
    ("KLDivergence", {}, (Y_ONEHOT * 0.9 + 0.02, P_CAT)),
    ("Poisson", {}, (np.abs(Y_REG), np.abs(P_REG))),
]


def _ids(case):
    name, kwargs, _ = case
    return name + ("-" + ",".join(f"{k}={v}" for k, v in kwargs.items()) if kwargs else "")


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_metric_matches_keras(keras_ref, case):
    name, kwargs, (y_true, y_pred) = case
    ref = getattr(keras_ref.metrics, name)(**kwargs)
    ours = getattr(keras.metrics, name)(**kwargs)
    half = len(y_true) // 2
    # two updates (state accumulates), the second weighted
    for m, convert in ((ref, np.asarray), (ours, torch.as_tensor)):
        m.update_state(convert(y_true[:half]), convert(y_pred[:half]))
        m.update_state(convert(y_true[half:]), convert(y_pred[half:]), sample_weight=convert(SW[half:]))
    expected = np.asarray(ref.result())
    got = ours.result().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    ours_cfg, ref_cfg = ours.get_config(), ref.get_config()
    ours_cfg.pop("name"), ref_cfg.pop("name")
    if ref_cfg.get("label_weights") is not None:  # Keras puts a tensor there; we write a JSON list
        np.testing.assert_allclose(ours_cfg.pop("label_weights"), np.asarray(ref_cfg.pop("label_weights")))
    assert ours_cfg == ref_cfg
    ours.reset_state()
    ref.reset_state()
    ours.update_state(torch.as_tensor(y_true), torch.as_tensor(y_pred))
    ref.update_state(y_true, y_pred)
    np.testing.assert_allclose(ours.result().numpy(), np.asarray(ref.result()), rtol=1e-5, atol=1e-6)


def test_mean_sum_and_wrapper_match_keras(keras_ref):
    values = RNG.normal(size=(8, 3)).astype("float32")
    w = RNG.random(8).astype("float32")
    for name in ("Mean", "Sum"):
        ref, ours = getattr(keras_ref.metrics, name)(), getattr(keras.metrics, name)()
        ref.update_state(values, sample_weight=w)
        ours.update_state(values, sample_weight=w)
        ref.update_state(values[:, 0])
        ours.update_state(values[:, 0])
        np.testing.assert_allclose(ours.result().numpy(), np.asarray(ref.result()), rtol=1e-6)
    ref = keras_ref.metrics.MeanMetricWrapper(keras_ref.losses.mean_absolute_error, name="wrapped")
    ours = keras.metrics.MeanMetricWrapper(keras.losses.mean_absolute_error, name="wrapped")
    ref.update_state(Y_REG, P_REG, sample_weight=SW)
    ours.update_state(Y_REG, P_REG, sample_weight=SW)
    np.testing.assert_allclose(ours.result().numpy(), np.asarray(ref.result()), rtol=1e-6)
    assert ours.name == "wrapped" and ours(Y_REG, P_REG) is not None


def test_metric_state_is_buffers_and_call_returns_result():
    m = keras.metrics.AUC(num_thresholds=5)
    assert {k for k, _ in m.named_buffers()} == {"true_positives", "false_positives", "true_negatives", "false_negatives"}
    assert not list(m.parameters())
    value = m(Y_BIN, P_BIN)
    np.testing.assert_allclose(value.numpy(), m.result().numpy())
    acc = keras.metrics.BinaryAccuracy()
    np.testing.assert_allclose(float(acc([[1], [0]], [[0.9], [0.8]])), 0.5)
    acc.reset_state()
    assert float(acc.result()) == 0.0
    p = torch.tensor([[0.9], [0.2]], requires_grad=True)
    assert not keras.metrics.MeanSquaredError()(torch.tensor([[1.0], [0.0]]), p).requires_grad


def test_get_serialize_deserialize():
    assert isinstance(keras.metrics.get("mse"), keras.metrics.MeanSquaredError)
    assert isinstance(keras.metrics.get("MAE"), keras.metrics.MeanAbsoluteError)
    assert isinstance(keras.metrics.get("sparse_categorical_accuracy"), keras.metrics.SparseCategoricalAccuracy)
    assert isinstance(keras.metrics.get("AUC"), keras.metrics.AUC)
    m = keras.metrics.Precision(thresholds=[0.3, 0.7], name="p")
    assert keras.metrics.get(m) is m
    config = keras.metrics.serialize(m)
    assert config["class_name"] == "Precision" and config["module"] == "keras.metrics"
    back = keras.metrics.deserialize(config)
    assert isinstance(back, keras.metrics.Precision) and back.thresholds == [0.3, 0.7] and back.name == "p"
    fn = keras.metrics.get(keras.metrics.binary_accuracy)
    assert fn is keras.metrics.binary_accuracy
    with pytest.raises(ValueError, match="not_a_metric"):
        keras.metrics.get("not_a_metric")


def test_config_keys_match_keras(keras_ref):
    for name, kwargs in (("AUC", {"curve": "PR", "num_thresholds": 50}), ("Precision", {"top_k": 3}),
                         ("BinaryAccuracy", {"threshold": 0.7}), ("SparseCategoricalCrossentropy", {})):
        assert keras.metrics.get(name).__class__(**kwargs).get_config().keys() == \
            getattr(keras_ref.metrics, name)(**kwargs).get_config().keys()


def test_bad_arguments():
    with pytest.raises(ValueError, match="Invalid AUC curve value"):
        keras.metrics.AUC(curve="XYZ")
    with pytest.raises(ValueError, match="Invalid AUC summation method"):
        keras.metrics.AUC(summation_method="riemann")
    with pytest.raises(ValueError, match="num_thresholds"):
        keras.metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match=r"Threshold values must be in \[0, 1\]"):
        keras.metrics.Precision(thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="num_labels"):
        keras.metrics.AUC(num_labels=3)
    with pytest.raises(ValueError, match="class_id"):
        keras.metrics.Recall(class_id=0).update_state([1, 0], [0.3, 0.9])


@pytest.mark.parametrize("name, kwargs", [("CategoricalAccuracy", {}), ("TopKCategoricalAccuracy", {"k": 2})])
def test_boolean_one_hot_targets_match_keras(keras_ref, name, kwargs):
    """keras.io's addition-RNN example trains on `dtype=bool` one-hot arrays
    with metrics=["accuracy"] (torch.argmax rejects bool)."""
    rng = np.random.default_rng(0)
    y_true = np.eye(4, dtype=bool)[rng.integers(0, 4, (6, 3))]
    y_pred = rng.random((6, 3, 4)).astype("float32")
    ref, ours = getattr(keras_ref.metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
    ref.update_state(y_true, y_pred)
    ours.update_state(y_true, y_pred)
    np.testing.assert_allclose(float(ours.result()), float(ref.result()), rtol=1e-6)
    np.testing.assert_array_equal(
        np.asarray(keras.metrics.categorical_accuracy(y_true, y_pred)),
        keras_ref.metrics.categorical_accuracy(y_true, y_pred).cpu().numpy(),
    )
