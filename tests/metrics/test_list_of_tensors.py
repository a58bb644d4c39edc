"""Metrics and losses given a Python list of tensors (`update_state([loss])`,
as keras.io's Forward-Forward example does, or `[t1, t2]` per sample) stack
them as Keras's torch `convert_to_tensor` does, with the same results as
real Keras 3 (torch backend). kerasish went through `torch.as_tensor`, which
raised "only one element tensors can be converted to Python scalars" for
tensors of more than one element and warned (a Python scalar round trip)
for one that requires grad.
"""

import warnings

import numpy as np
import pytest
import torch

import kerasish

_RNG = np.random.default_rng(7)
_PRED = _RNG.random((3, 4)).astype("float32")
_TRUE_ONE_HOT = np.eye(4, dtype="float32")[[0, 2, 3]]
_TRUE_LABELS = np.array([0, 2, 1])
_TRUE_BINARY = (_RNG.random((3, 4)) > 0.5).astype("float32")

# (name, constructor kwargs, y_true rows)
_METRICS = [
    ("MeanSquaredError", {}, _TRUE_BINARY),
    ("MeanAbsoluteError", {}, _TRUE_BINARY),
    ("CategoricalAccuracy", {}, _TRUE_ONE_HOT),
    ("SparseCategoricalAccuracy", {}, _TRUE_LABELS),
    ("BinaryAccuracy", {}, _TRUE_BINARY),
    ("AUC", {}, _TRUE_BINARY),
    ("Precision", {}, _TRUE_BINARY),
    ("R2Score", {}, _TRUE_BINARY),
    ("F1Score", {}, _TRUE_ONE_HOT),
    ("MeanIoU", {"num_classes": 2}, _TRUE_BINARY),
    ("CosineSimilarity", {}, _TRUE_BINARY),
    ("KLDivergence", {}, _TRUE_ONE_HOT),
]


def _rows(array, requires_grad=False):
    return [torch.tensor(row, requires_grad=requires_grad) for row in array]


@pytest.mark.parametrize("name,kwargs,y_true", _METRICS, ids=[m[0] for m in _METRICS])
def test_metric_update_state_with_lists_of_tensors(keras_ref, name, kwargs, y_true):
    ref = getattr(keras_ref.metrics, name)(**kwargs)
    ours = getattr(kerasish.metrics, name)(**kwargs)
    y_pred = (_PRED > 0.5).astype("float32") if name == "MeanIoU" else _PRED
    ref.update_state(_rows(y_true), _rows(y_pred))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours.update_state(_rows(y_true), _rows(y_pred, requires_grad=y_pred.dtype.kind == "f"))
    np.testing.assert_allclose(np.asarray(ours.result()), np.asarray(ref.result()), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["Mean", "Sum"])
def test_mean_and_sum_of_a_list_of_tensors(keras_ref, name):
    # the Forward-Forward pattern: `loss_metric.update_state([mean_loss])` on a loss that requires grad
    loss = torch.tensor(1.5, requires_grad=True) * 2
    vectors = [torch.tensor([1.0, 2.0]), torch.tensor([3.0, 5.0])]
    results = []
    for framework in (keras_ref, kerasish):
        metric = getattr(framework.metrics, name)()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            metric.update_state([loss])
            metric.update_state(vectors)
            metric.update_state((torch.tensor(2.0), torch.tensor(4.0)), sample_weight=[torch.tensor(1.0), 0.5])
        results.append(float(metric.result()))
    assert results[1] == pytest.approx(results[0], rel=1e-6)


@pytest.mark.parametrize("name", ["mean_squared_error", "binary_crossentropy", "categorical_crossentropy"])
def test_loss_functions_take_lists_of_tensors(keras_ref, name):
    expected = getattr(keras_ref.losses, name)(_rows(_TRUE_ONE_HOT), _rows(_PRED))
    got = getattr(kerasish.losses, name)(_rows(_TRUE_ONE_HOT), _rows(_PRED, requires_grad=True))
    np.testing.assert_allclose(got.detach().numpy(), np.asarray(expected), rtol=1e-6, atol=1e-7)
    loss = kerasish.losses.MeanSquaredError()(_rows(_TRUE_ONE_HOT), _rows(_PRED))
    ref = keras_ref.losses.MeanSquaredError()(_rows(_TRUE_ONE_HOT), _rows(_PRED))
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)
