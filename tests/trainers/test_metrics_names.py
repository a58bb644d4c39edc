"""`model.metrics_names` as Keras 3 reports it: before and after compile and
fit, with several metrics, several outputs (list and dict), weighted metrics,
and after recompiling. Each scenario runs on real Keras 3 and on kerasish."""

import numpy as np
import pytest

import kerasish as keras


def _data():
    rng = np.random.default_rng(0)
    x = rng.random((8, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 8)]
    ya = rng.random((8, 2)).astype("float32")
    return x, y, ya


def _single(lib, log):
    x, y, _ = _data()
    m = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, activation="softmax")])
    log["uncompiled"] = m.metrics_names
    m.compile(optimizer="sgd", loss="categorical_crossentropy",
              metrics=["accuracy", "mse", lib.metrics.AUC(name="auc")])
    log["compiled"] = m.metrics_names
    m.fit(x, y, verbose=0)
    log["fitted"] = m.metrics_names
    log["evaluate"] = list(m.evaluate(x, y, verbose=0, return_dict=True))
    m.compile(optimizer="sgd", loss="categorical_crossentropy")
    log["recompiled_loss_only"] = m.metrics_names
    log["recompiled_evaluate"] = list(m.evaluate(x, y, verbose=0, return_dict=True))
    log["recompiled_evaluate_len"] = len(m.evaluate(x, y, verbose=0))


def _multi(lib, log):
    x, y, ya = _data()
    i = lib.Input((4,), name="inp")
    a = lib.layers.Dense(2, name="out_a")(i)
    b = lib.layers.Dense(3, activation="softmax", name="out_b")(i)
    m = lib.Model(i, [a, b])
    m.compile(optimizer="sgd", loss=["mse", "categorical_crossentropy"], metrics=[["mae"], ["accuracy", "auc"]],
              loss_weights=[1.0, 0.5])
    log["multi_compiled"] = m.metrics_names
    m.fit(x, [ya, y], verbose=0)
    log["multi_fitted"] = m.metrics_names
    log["multi_evaluate"] = list(m.evaluate(x, [ya, y], verbose=0, return_dict=True))
    d = lib.Model(i, {"out_a": a, "out_b": b})
    d.compile(optimizer="sgd", loss={"out_a": "mse", "out_b": "categorical_crossentropy"},
              metrics={"out_b": ["accuracy"]})
    log["dict_compiled"] = d.metrics_names
    d.fit(x, {"out_a": ya, "out_b": y}, verbose=0)
    log["dict_fitted"] = d.metrics_names
    log["dict_evaluate"] = list(d.evaluate(x, {"out_a": ya, "out_b": y}, verbose=0, return_dict=True))


def _weighted(lib, log):
    x, _, ya = _data()
    m = lib.Sequential([lib.Input((4,)), lib.layers.Dense(2)])
    m.compile(optimizer="sgd", loss="mse", weighted_metrics=["mae"])
    log["weighted_only_compiled"] = m.metrics_names
    m.fit(x, ya, sample_weight=np.arange(8, dtype="float32"), verbose=0)
    log["weighted_only_fitted"] = m.metrics_names
    log["weighted_evaluate"] = list(m.evaluate(x, ya, verbose=0, return_dict=True))


@pytest.mark.parametrize("scenario", [_single, _multi, _weighted], ids=lambda f: f.__name__.strip("_"))
def test_metrics_names_match_keras(keras_ref, scenario):
    ref, got = {}, {}
    scenario(keras_ref, ref)
    scenario(keras, got)
    assert got == ref


def test_metric_function_and_callable_names_are_snake_case_as_keras(keras_ref):
    """A metric given as a function or a callable object logs under Keras's
    `get_object_name`: the snake-cased function or class name (`def PSNR` ->
    "psnr", keras-io's EDSR example), in History and in `evaluate`."""
    x, y, _ = _data()

    def run(lib):
        def PSNR(y_true, y_pred):
            return lib.ops.psnr(y_true, y_pred, max_val=1.0)

        def meanAbs(y_true, y_pred):
            return lib.ops.mean(lib.ops.abs(y_true - y_pred))

        class MaxError:
            def __call__(self, y_true, y_pred):
                return lib.ops.max(lib.ops.abs(y_true - y_pred))

        m = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, activation="softmax")])
        m.compile(optimizer="sgd", loss="mse", metrics=[PSNR, meanAbs, MaxError()])
        history = m.fit(x, y, validation_data=(x, y), verbose=0)
        return sorted(history.history), sorted(m.evaluate(x, y, verbose=0, return_dict=True))

    logs = [run(keras_ref), run(keras)]
    assert logs[1] == logs[0]
    assert "psnr" in logs[1][0] and "val_mean_abs" in logs[1][0] and "max_error" in logs[1][1]
