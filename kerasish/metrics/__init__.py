"""`keras.metrics`: metric classes, metric functions and `get/serialize/deserialize`."""

from __future__ import annotations

import inspect

from kerasish.losses.loss import to_snake_case
from kerasish.metrics.accuracy_metrics import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from kerasish.metrics.confusion_metrics import (
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    Recall,
    TrueNegatives,
    TruePositives,
)
from kerasish.metrics.correlation_metrics import (
    ConcordanceCorrelation,
    PearsonCorrelation,
    concordance_correlation,
    pearson_correlation,
)
from kerasish.metrics.f_score_metrics import F1Score, FBetaScore
from kerasish.metrics.hinge_metrics import CategoricalHinge, Hinge, SquaredHinge
from kerasish.metrics.iou_metrics import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from kerasish.metrics.metric import Metric
from kerasish.metrics.probabilistic_metrics import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    KLDivergence,
    Poisson,
    SparseCategoricalCrossentropy,
)
from kerasish.metrics.reduction_metrics import Mean, MeanMetricWrapper, Sum
from kerasish.metrics.regression_metrics import (
    CosineSimilarity,
    LogCoshError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    RootMeanSquaredError,
)
from kerasish.metrics.regression_metrics_extra import R2Score
from kerasish.metrics.sensitivity_metrics import (
    PrecisionAtRecall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
)
from kerasish.losses.losses import (
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_focal_crossentropy,
    huber,
    log_cosh,
    categorical_crossentropy,
    categorical_hinge,
    hinge,
    kl_divergence,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
)
from kerasish.saving.serialization_lib import deserialize_keras_object, serialize_keras_object

ALL_OBJECTS = (
    Metric, Mean, Sum, MeanMetricWrapper,
    MeanSquaredError, RootMeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, CosineSimilarity, LogCoshError,
    AUC, FalseNegatives, FalsePositives, Precision, Recall, TrueNegatives, TruePositives,
    KLDivergence, Poisson, BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
    Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy,
    F1Score, FBetaScore, R2Score, IoU, MeanIoU, BinaryIoU, OneHotIoU, OneHotMeanIoU,
    Hinge, SquaredHinge, CategoricalHinge,
    PrecisionAtRecall, RecallAtPrecision, SensitivityAtSpecificity, SpecificityAtSensitivity,
    PearsonCorrelation, ConcordanceCorrelation,
)
# Keras 3 resolves names to classes: "MeanSquaredError", "mean_squared_error", "mse"...
ALL_OBJECTS_DICT = {cls.__name__: cls for cls in ALL_OBJECTS}
ALL_OBJECTS_DICT.update({to_snake_case(cls.__name__): cls for cls in ALL_OBJECTS})
ALL_OBJECTS_DICT.update({
    "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy,
    "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError,
})


def serialize(metric):
    """A metric's Keras config dict (`{"module", "class_name", "config", ...}`)."""
    return serialize_keras_object(metric)


def deserialize(config, custom_objects=None):
    """A metric from `serialize`'s output or a name.

    Raises:
        ValueError: for unknown names.
    """
    return deserialize_keras_object(
        config, module_objects=ALL_OBJECTS_DICT, custom_objects=custom_objects, printable_module_name="metric"
    )


def get(identifier):
    """Returns a metric instance or function.

    Args:
        identifier: None, a name (`"mse"`, `"MeanSquaredError"`,
            `"sparse_categorical_accuracy"`), a config dict, a `Metric`
            instance or class, or any callable `fn(y_true, y_pred)`.

    Raises:
        ValueError: if the identifier cannot be interpreted (the message
            names it). `"accuracy"`/`"acc"` in `compile()` are resolved from
            the loss and shapes by the trainer, as Keras does.
    """
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = ALL_OBJECTS_DICT.get(identifier)
        if obj is None:
            from kerasish.saving.object_registration import get_registered_object

            obj = get_registered_object(identifier)
    else:
        obj = identifier
    if callable(obj):
        if inspect.isclass(obj):
            obj = obj()
        return obj
    raise ValueError(f"Could not interpret metric identifier: {identifier}")


__all__ = [
    "AUC", "Accuracy", "BinaryAccuracy", "BinaryCrossentropy", "BinaryIoU", "CategoricalHinge",
    "F1Score", "FBetaScore", "Hinge", "IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU", "R2Score", "SquaredHinge", "CategoricalAccuracy", "CategoricalCrossentropy",
    "CosineSimilarity", "FalseNegatives", "FalsePositives", "KLDivergence", "LogCoshError", "Mean",
    "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanMetricWrapper", "MeanSquaredError",
    "MeanSquaredLogarithmicError", "Metric", "Poisson", "Precision", "Recall", "RootMeanSquaredError",
    "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy", "SparseTopKCategoricalAccuracy", "Sum",
    "TopKCategoricalAccuracy", "TrueNegatives", "TruePositives",
    "accuracy", "binary_accuracy", "binary_crossentropy", "categorical_accuracy", "categorical_crossentropy",
    "categorical_hinge", "hinge", "squared_hinge",
    "deserialize", "get", "kl_divergence", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_error", "mean_squared_logarithmic_error", "poisson", "serialize",
    "sparse_categorical_accuracy", "sparse_categorical_crossentropy", "sparse_top_k_categorical_accuracy",
    "top_k_categorical_accuracy",
    "ConcordanceCorrelation", "PearsonCorrelation", "PrecisionAtRecall", "RecallAtPrecision",
    "SensitivityAtSpecificity", "SpecificityAtSensitivity", "binary_focal_crossentropy",
    "categorical_focal_crossentropy", "concordance_correlation", "huber", "log_cosh", "pearson_correlation",
]
