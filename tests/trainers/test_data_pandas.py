"""pandas data in fit/evaluate/predict, as Keras 3's array adapter takes it:
a DataFrame (cast to floatx as a whole when any column is a non-floatx float,
then read with `to_numpy()`), a Series as a column of shape `(n, 1)`, a dict
of Series for a multi-input functional model, Series targets, sample weights
and class weights, and `validation_split` over all of them (it raised here).
Every case runs real Keras (torch backend) on the same weights and compares
Histories, evaluations, predictions and what a custom `train_step` receives."""

import numpy as np
import pytest

import kerasish as keras

pd = pytest.importorskip("pandas", reason="pandas is a test extra: these cases feed DataFrames and Series")

N = 40
TOL = {"rtol": 1e-5, "atol": 1e-6}


def _frame(seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "a": rng.normal(size=N),  # float64
        "b": rng.normal(size=N).astype("float32"),
        "c": rng.integers(0, 5, N),  # int64
        "t": rng.integers(0, 2, N),
        "w": rng.uniform(0.5, 2.0, N),  # float64
        "r": rng.normal(size=N),
    })


def _sequential(lib, n_in, loss, out_act=None):
    model = lib.Sequential([lib.Input((n_in,)), lib.layers.Dense(4, activation="tanh"),
                            lib.layers.Dense(1, activation=out_act)])
    model.compile(optimizer=lib.optimizers.SGD(0.1), loss=loss, metrics=["mae"], weighted_metrics=["mse"])
    return model


def _functional(lib):
    inputs = {k: lib.Input((1,), name=k) for k in "abc"}
    h = lib.layers.Concatenate()([inputs[k] for k in "abc"])
    out = lib.layers.Dense(1, activation="sigmoid")(lib.layers.Dense(4, activation="relu")(h))
    model = lib.Model(inputs, out)
    model.compile(optimizer=lib.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _run(model, x, y, **fit_kwargs):
    hist = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, **fit_kwargs).history
    ev = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    pred = model.predict(x, batch_size=16, verbose=0)
    return hist, ev, pred


def _assert_same(ours, ref):
    (h1, e1, p1), (h2, e2, p2) = ours, ref
    assert set(h1) == set(h2)
    for k in h2:
        np.testing.assert_allclose(h1[k], h2[k], err_msg=k, **TOL)
    assert set(e1) == set(e2)
    for k in e2:
        np.testing.assert_allclose(e1[k], e2[k], err_msg=k, **TOL)
    assert p1.shape == p2.shape and p1.dtype == p2.dtype
    np.testing.assert_allclose(p1, p2, **TOL)


CASES = {
    # x, y, fit kwargs (from the frame)
    "frame-series": lambda df: (df[["a", "b", "c"]], df["r"], {}),
    "frame-series-split": lambda df: (df[["a", "b", "c"]], df["r"], {"validation_split": 0.25}),
    "frame-series-weights-split": lambda df: (df[["a", "b", "c"]], df["r"],
                                              {"sample_weight": df["w"], "validation_split": 0.25}),
    "frame-frame-target": lambda df: (df[["a", "b"]], df[["r"]], {"validation_split": 0.2}),
    "int-frame": lambda df: (df[["c", "t"]], df["r"], {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_dataframes_and_series_match_keras(keras_ref, case):
    df = _frame()
    x, y, kwargs = CASES[case](df)
    ref = _sequential(keras_ref, x.shape[1], "mse")
    ours = _sequential(keras, x.shape[1], "mse")
    ours.set_weights(ref.get_weights())
    _assert_same(_run(ours, x, y, **kwargs), _run(ref, x, y, **kwargs))


def test_dict_of_series_multi_input_model_matches_keras(keras_ref):
    """The tabular tutorials' `{name: df[name]}` inputs for named `Input((1,))`s;
    each Series becomes an `(n, 1)` column."""
    df = _frame(1)
    x = {k: df[k] for k in "abc"}
    ref, ours = _functional(keras_ref), _functional(keras)
    ours.set_weights(ref.get_weights())
    for kwargs in ({"validation_split": 0.25}, {"class_weight": {0: 1.0, 1: 3.0}}):
        _assert_same(_run(ours, x, df["t"], **kwargs), _run(ref, x, df["t"], **kwargs))


def _recording(lib):
    seen = []

    class Recording(lib.Model):
        def __init__(self):
            super().__init__()
            self.dense = lib.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            x, y, sw = lib.utils.unpack_x_y_sample_weight(data)
            seen.append(tuple(None if t is None else (str(t.dtype).replace("torch.", ""), tuple(t.shape))
                              for t in (x, y, sw)))
            return super().train_step(data)

    return Recording(), seen


DTYPE_CASES = {
    # a frame with a float64 column is cast whole; int64 + float32 columns are read as float64 and kept
    "float64-and-int-columns": lambda df: (df[["a", "c"]], df["r"], df["w"]),
    "float32-and-int-columns": lambda df: (df[["b", "c"]], df["t"], None),
    "int-columns": lambda df: (df[["c", "t"]], df["t"], None),
    "float32-column": lambda df: (df[["b"]], df["b"], None),
}


@pytest.mark.parametrize("case", list(DTYPE_CASES))
def test_train_step_receives_keras_dtypes_and_shapes(keras_ref, case):
    df = _frame(2)
    x, y, sw = DTYPE_CASES[case](df)
    (ours, seen_ours), (ref, seen_ref) = _recording(keras), _recording(keras_ref)
    for m in (ours, ref):
        m.compile(optimizer="sgd", loss="mse")
        m.fit(x, y, sample_weight=sw, batch_size=16, epochs=1, verbose=0)
    assert seen_ref and seen_ours == seen_ref


def test_validation_split_keeps_keras_error_for_unsliceable_data():
    """Objects that are not arrays still get Keras's error from `validation_split`."""
    model = _sequential(keras, 3, "mse")
    with pytest.raises(ValueError, match="only supported for tensors or NumPy arrays"):
        model.fit([object()] * 4, np.zeros((4, 1)), validation_split=0.5, verbose=0)


def test_pandas_extension_dtypes_do_not_break_the_floatx_rule():
    """A nullable `Int64` column beside a float64 one: the frame is cast to floatx
    as a whole (the extension dtype is not a float), as plain int64 would be."""
    df = _frame(3)
    nullable = df[["a", "c"]].astype({"c": "Int64"})
    plain = df[["a", "c"]]
    preds = []
    for x in (nullable, plain):
        model = _sequential(keras, 2, "mse")
        model.set_weights([np.full(w.shape, 0.1, "float32") for w in model.get_weights()])
        model.fit(x, df["r"], batch_size=8, epochs=1, shuffle=False, verbose=0)
        preds.append(model.predict(x, verbose=0))
    np.testing.assert_array_equal(preds[0], preds[1])
