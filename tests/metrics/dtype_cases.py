"""Cases for the target/prediction dtype sweep of every metric and loss.

Each case is `(name, kwargs, kind)`; `kind` says what data the metric or loss
takes. `make_data(kind, true_dtype, pred_dtype)` builds torch tensors that
both real Keras (torch backend) and kerasish receive unchanged.
"""

import numpy as np
import torch

TRUE_DTYPES = ("bool", "int32", "int64", "float16", "bfloat16", "float32")
PRED_DTYPES = ("float32", "float16", "bfloat16")
# class-id predictions may also be integers or booleans
LABEL_PRED_DTYPES = PRED_DTYPES + ("int32", "int64", "bool")


def pred_dtypes(kind):
    return LABEL_PRED_DTYPES if kind == "labels" else PRED_DTYPES

_N, _C = 6, 3
_LABELS = np.array([0, 2, 1, 1, 0, 2])
_ONE_HOT = np.eye(_C)[_LABELS]
_BINARY = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0], [1, 0, 0], [0, 1, 1]])
_PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3],
                   [0.6, 0.3, 0.1], [0.8, 0.1, 0.1], [0.3, 0.3, 0.4]])
_SIGMOID = np.array([[0.9, 0.2, 0.6], [0.4, 0.1, 0.7], [0.8, 0.6, 0.3],
                     [0.2, 0.9, 0.5], [0.6, 0.4, 0.1], [0.3, 0.7, 0.8]])
_REG_TRUE = np.array([[1, 0, 3], [2, 1, 0], [0, 2, 1], [3, 3, 1], [1, 0, 2], [2, 1, 1]])
_REG_PRED = np.array([[1.2, 0.4, 2.5], [1.5, 1.1, 0.3], [0.2, 2.2, 0.9],
                      [2.6, 3.1, 1.4], [0.7, 0.2, 2.1], [1.9, 1.3, 0.8]])


def _t(x, dtype):
    return torch.tensor(np.asarray(x, np.float32)).to(getattr(torch, dtype))


def make_data(kind, true_dtype, pred_dtype):
    """`(y_true, y_pred)` torch tensors of the given dtypes for a kind of case."""
    if kind == "categorical":
        return _t(_ONE_HOT, true_dtype), _t(_PROBS, pred_dtype)
    if kind == "sparse":
        return _t(_LABELS, true_dtype), _t(_PROBS, pred_dtype)
    if kind == "binary":
        return _t(_BINARY, true_dtype), _t(_SIGMOID, pred_dtype)
    if kind == "labels":  # class ids against class ids (IoU, Accuracy)
        return _t(_LABELS, true_dtype), _t(_LABELS[::-1], pred_dtype)
    if kind == "regression":
        # bool targets can only hold 0/1
        y = _BINARY if true_dtype == "bool" else _REG_TRUE
        return _t(y, true_dtype), _t(_REG_PRED, pred_dtype)
    raise ValueError(kind)


METRIC_CASES = [
    ("Accuracy", {}, "labels"),
    ("Accuracy", {}, "binary"),
    ("BinaryAccuracy", {}, "binary"),
    ("CategoricalAccuracy", {}, "categorical"),
    ("SparseCategoricalAccuracy", {}, "sparse"),
    ("TopKCategoricalAccuracy", {"k": 2}, "categorical"),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, "sparse"),
    ("AUC", {}, "binary"),
    ("AUC", {"curve": "PR", "multi_label": True}, "binary"),
    ("Precision", {}, "binary"),
    ("Recall", {"thresholds": [0.3, 0.6]}, "binary"),
    ("TruePositives", {}, "binary"),
    ("TrueNegatives", {}, "binary"),
    ("FalsePositives", {}, "binary"),
    ("FalseNegatives", {}, "binary"),
    ("PrecisionAtRecall", {"recall": 0.5}, "binary"),
    ("RecallAtPrecision", {"precision": 0.5}, "binary"),
    ("SensitivityAtSpecificity", {"specificity": 0.5}, "binary"),
    ("SpecificityAtSensitivity", {"sensitivity": 0.5}, "binary"),
    ("F1Score", {}, "binary"),
    ("FBetaScore", {"beta": 2.0, "threshold": 0.5}, "binary"),
    ("BinaryCrossentropy", {}, "binary"),
    ("CategoricalCrossentropy", {}, "categorical"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("KLDivergence", {}, "categorical"),
    ("Poisson", {}, "regression"),
    ("Hinge", {}, "binary"),
    ("SquaredHinge", {}, "binary"),
    ("CategoricalHinge", {}, "categorical"),
    ("MeanSquaredError", {}, "regression"),
    ("RootMeanSquaredError", {}, "regression"),
    ("MeanAbsoluteError", {}, "regression"),
    ("MeanAbsolutePercentageError", {}, "regression"),
    ("MeanSquaredLogarithmicError", {}, "regression"),
    ("CosineSimilarity", {}, "regression"),
    ("LogCoshError", {}, "regression"),
    ("R2Score", {}, "regression"),
    ("PearsonCorrelation", {}, "regression"),
    ("ConcordanceCorrelation", {}, "regression"),
    ("IoU", {"num_classes": 3, "target_class_ids": [0, 2]}, "labels"),
    ("MeanIoU", {"num_classes": 3}, "labels"),
    ("BinaryIoU", {}, "binary"),
    ("OneHotIoU", {"num_classes": 3, "target_class_ids": [0, 1]}, "categorical"),
    ("OneHotMeanIoU", {"num_classes": 3}, "categorical"),
]

METRIC_FUNCTION_CASES = [
    ("binary_accuracy", {}, "binary"),
    ("categorical_accuracy", {}, "categorical"),
    ("sparse_categorical_accuracy", {}, "sparse"),
    ("top_k_categorical_accuracy", {"k": 2}, "categorical"),
    ("sparse_top_k_categorical_accuracy", {"k": 2}, "sparse"),
    ("binary_focal_crossentropy", {}, "binary"),
    ("categorical_focal_crossentropy", {}, "categorical"),
    ("huber", {}, "regression"),
    ("log_cosh", {}, "regression"),
    ("pearson_correlation", {}, "regression"),
    ("concordance_correlation", {}, "regression"),
]

LOSS_CASES = [
    ("MeanSquaredError", {}, "regression"),
    ("MeanAbsoluteError", {}, "regression"),
    ("MeanAbsolutePercentageError", {}, "regression"),
    ("MeanSquaredLogarithmicError", {}, "regression"),
    ("CosineSimilarity", {}, "regression"),
    ("Huber", {}, "regression"),
    ("LogCosh", {}, "regression"),
    ("Hinge", {}, "binary"),
    ("SquaredHinge", {}, "binary"),
    ("CategoricalHinge", {}, "categorical"),
    ("KLDivergence", {}, "categorical"),
    ("Poisson", {}, "regression"),
    ("BinaryCrossentropy", {}, "binary"),
    ("BinaryCrossentropy", {"label_smoothing": 0.1}, "binary"),
    ("BinaryFocalCrossentropy", {}, "binary"),
    ("CategoricalCrossentropy", {}, "categorical"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "categorical"),
    ("CategoricalFocalCrossentropy", {}, "categorical"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("Dice", {}, "binary"),
    ("Tversky", {}, "binary"),
    ("CategoricalGeneralizedCrossEntropy", {}, "sparse"),
    ("Circle", {}, "labels_embeddings"),
]


def _out(r):
    r = r if isinstance(r, torch.Tensor) else torch.as_tensor(np.asarray(r))
    return r.detach().float().cpu().numpy(), str(r.dtype)


def run_metric(mod, name, kwargs, y_true, y_pred):
    m = getattr(mod.metrics, name)(**kwargs)
    m.update_state(y_true, y_pred)
    return _out(m.result())


def run_metric_function(mod, name, kwargs, y_true, y_pred):
    return _out(getattr(mod.metrics, name)(y_true, y_pred, **kwargs))


def run_loss(mod, name, kwargs, y_true, y_pred):
    return _out(getattr(mod.losses, name)(**kwargs)(y_true, y_pred))
