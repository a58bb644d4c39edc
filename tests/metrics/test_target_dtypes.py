"""Every metric and loss takes the target dtypes Keras takes (bool one-hot,
int32/int64 labels, float16/bfloat16), with the same results as real Keras 3
(torch backend). The cases live in dtype_cases.py; each test runs one metric
or loss over every target x prediction dtype pair and asserts that kerasish
and Keras either both compute (the same value and result dtype) or both raise.
"""

import numpy as np
import pytest
import torch

import kerasish as keras
from dtype_cases import (
    LOSS_CASES,
    METRIC_CASES,
    METRIC_FUNCTION_CASES,
    TRUE_DTYPES,
    make_data,
    pred_dtypes,
    run_loss,
    run_metric,
    run_metric_function,
)

CASES = (
    [pytest.param(run_metric, *c, id=f"metric-{c[0]}-{c[2]}") for c in METRIC_CASES]
    + [pytest.param(run_metric_function, *c, id=f"fn-{c[0]}") for c in METRIC_FUNCTION_CASES]
    + [pytest.param(run_loss, *c, id=f"loss-{c[0]}-{i}") for i, c in enumerate(LOSS_CASES)
       if c[2] != "labels_embeddings"]
)


def _attempt(fn):
    try:
        return fn(), None
    except Exception as e:  # noqa: BLE001 - the outcome itself is compared
        return None, e


@pytest.mark.parametrize(("runner", "name", "kwargs", "kind"), CASES)
def test_metric_or_loss_target_dtypes_match_keras(keras_ref, runner, name, kwargs, kind):
    problems = []
    for td in TRUE_DTYPES:
        for pd in pred_dtypes(kind):
            y_true, y_pred = make_data(kind, td, pd)
            ref, ref_err = _attempt(lambda: runner(keras_ref, name, kwargs, y_true, y_pred))
            got, got_err = _attempt(lambda: runner(keras, name, kwargs, y_true, y_pred))
            if ref_err is not None or got_err is not None:
                if (ref_err is None) != (got_err is None):
                    problems.append(f"{td}/{pd}: keras raised {ref_err!r}, kerasish raised {got_err!r}")
                continue
            low = {"float16", "bfloat16"} & {td, pd}
            tol = 2e-2 if low else 1e-5
            if not np.allclose(got[0], ref[0], rtol=tol, atol=tol, equal_nan=True) or got[1] != ref[1]:
                problems.append(f"{td}/{pd}: keras {ref}, kerasish {got}")
    assert not problems, "\n".join(problems)


def test_bool_one_hot_targets_in_fit_match_keras(keras_ref):
    # the report: categorical accuracy with boolean one-hot targets
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype("float32")
    y = np.eye(3, dtype=bool)[rng.integers(0, 3, 16)]
    results = []
    for lib in (keras_ref, keras):
        model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="sgd", loss="categorical_crossentropy",
                      metrics=["accuracy", lib.metrics.CategoricalAccuracy(name="cat"), lib.metrics.AUC(name="auc")])
        if lib is keras:
            model.set_weights(weights)
        weights = model.get_weights()
        results.append(model.evaluate(x, y, verbose=0, return_dict=True))
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert results[1][key] == pytest.approx(results[0][key], rel=1e-5, abs=1e-6), key


def test_int_targets_for_float_losses_in_fit_match_keras(keras_ref):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 3)).astype("float32")
    y = rng.integers(0, 3, (8, 2)).astype("int64")
    results = []
    for lib in (keras_ref, keras):
        model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse"])
        if lib is keras:
            model.set_weights(weights)
        weights = model.get_weights()
        results.append(model.evaluate(x, y, verbose=0, return_dict=True))
    for key in results[0]:
        assert results[1][key] == pytest.approx(results[0][key], rel=1e-5), key


@pytest.mark.parametrize("label_dtype", ["int32", "int64", "float32"])
def test_circle_loss_matches_keras(keras_ref, label_dtype):
    rng = np.random.default_rng(2)
    emb = rng.standard_normal((8, 5)).astype("float32")
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = torch.tensor([0, 1, 0, 2, 1, 2, 0, 1]).to(getattr(torch, label_dtype))
    for kwargs in ({}, {"gamma": 10.0, "margin": 0.25, "remove_diagonal": False}):
        ref = keras_ref.losses.Circle(**kwargs)(labels, torch.tensor(emb))
        got = keras.losses.Circle(**kwargs)(labels, torch.tensor(emb))
        np.testing.assert_allclose(got.detach().numpy(), ref.detach().numpy(), rtol=1e-5)
    assert keras.losses.Circle(gamma=3.0).get_config() == keras_ref.losses.Circle(gamma=3.0).get_config()


def test_ctc_loss_matches_keras(keras_ref):
    rng = np.random.default_rng(3)
    logits = torch.tensor(rng.standard_normal((3, 7, 5)).astype("float32"))
    labels = torch.tensor([[1, 2, 2, 0], [3, 4, 0, 0], [1, 1, 3, 4]], dtype=torch.int32)
    ref = keras_ref.losses.CTC()(labels, logits)
    got = keras.losses.CTC()(labels, logits)
    np.testing.assert_allclose(got.detach().numpy(), ref.detach().numpy(), rtol=1e-5)
    per_sample = keras.losses.ctc(labels, logits)
    np.testing.assert_allclose(per_sample.numpy(), keras_ref.losses.ctc(labels, logits).numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="y_true.shape"):
        keras.losses.ctc(labels[0], logits)


@pytest.mark.parametrize("cls", ["PrecisionAtRecall", "RecallAtPrecision", "SensitivityAtSpecificity",
                                 "SpecificityAtSensitivity"])
def test_operating_point_metrics_weighted_and_class_id(keras_ref, cls):
    rng = np.random.default_rng(4)
    y = (rng.random((20, 3)) > 0.5).astype("float32")
    p = rng.random((20, 3)).astype("float32")
    w = rng.random(20).astype("float32")
    for kwargs in ({}, {"num_thresholds": 7, "class_id": 1}, {"num_thresholds": 1}):
        ref = getattr(keras_ref.metrics, cls)(0.6, **kwargs)
        got = getattr(keras.metrics, cls)(0.6, **kwargs)
        for lo in (0, 10):
            ref.update_state(y[lo:lo + 10], p[lo:lo + 10], sample_weight=w[lo:lo + 10])
            got.update_state(y[lo:lo + 10], p[lo:lo + 10], sample_weight=w[lo:lo + 10])
        assert float(got.result()) == pytest.approx(float(ref.result()), rel=1e-5, abs=1e-7)
        ref_config, got_config = ref.get_config(), got.get_config()
        ref_config.pop("name"), got_config.pop("name")  # name counters differ between the two processes' sessions
        assert got_config == ref_config
    with pytest.raises(ValueError, match="range"):
        getattr(keras.metrics, cls)(1.5)
