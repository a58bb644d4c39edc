"""fit/evaluate/predict cast non-floatx float arrays to floatx, as Keras 3's
ArrayDataAdapter does ("Normalize floats to floatx"): NumPy and torch, float16,
bfloat16 and float64, in x, y and sample_weight. Integer and bool data keep
their dtype; batches of generators and DataLoaders are not cast (neither
does Keras). Every case runs real Keras (torch backend) on the same weights."""

import numpy as np
import pytest
import torch

import kerasish as keras

N, D = 12, 3
ATOL = 1e-6

FLOAT_KINDS = [
    ("numpy", "float64"),
    ("numpy", "float16"),
    ("torch", "float64"),
    ("torch", "float16"),
    ("torch", "bfloat16"),
]


def _data(kind, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)) * 3.0
    y = rng.normal(size=(N, 2))
    sw = rng.uniform(0.5, 2.0, size=(N,))
    if kind == "torch":
        tdt = getattr(torch, dtype)
        return tuple(torch.tensor(a).to(tdt) for a in (x, y, sw))
    if dtype == "bfloat16":
        raise AssertionError("NumPy has no bfloat16")
    return tuple(a.astype(dtype) for a in (x, y, sw))


def _pair(keras_ref, dtype=None):
    """A kerasish model and a Keras model with the same weights."""
    old_policy = keras_ref.config.dtype_policy().name
    if dtype is not None:
        # the whole Keras model in `dtype` (its Sequential and Input too, not only the layers)
        keras_ref.config.set_dtype_policy(dtype)
    try:
        ref = keras_ref.Sequential([keras_ref.Input((D,)), keras_ref.layers.Dense(4, activation="tanh"),
                                    keras_ref.layers.Dense(2)])
    finally:
        keras_ref.config.set_dtype_policy(old_policy)
    ours = keras.Sequential([keras.Input((D,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)])
    if dtype == "float64":
        ours.double()
    ours.set_weights(ref.get_weights())
    for m, k in ((ref, keras_ref), (ours, keras)):
        m.compile(optimizer=k.optimizers.SGD(0.05), loss="mse", metrics=["mae"], weighted_metrics=["mse"])
    return ours, ref


def _run(model, x, y, sw):
    hist = model.fit(x, y, sample_weight=sw, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    ev = model.evaluate(x, y, sample_weight=sw, batch_size=5, verbose=0, return_dict=True)
    pred = model.predict(x, batch_size=5, verbose=0)
    return hist, ev, pred


def _assert_same(ours, ref):
    (h1, e1, p1), (h2, e2, p2) = ours, ref
    assert set(h1) == set(h2)
    for k in h2:
        np.testing.assert_allclose(h1[k], h2[k], rtol=ATOL, atol=ATOL, err_msg=k)
    assert set(e1) == set(e2)
    for k in e2:
        np.testing.assert_allclose(e1[k], e2[k], rtol=ATOL, atol=ATOL, err_msg=k)
    assert p1.dtype == p2.dtype
    np.testing.assert_allclose(p1, p2, rtol=ATOL, atol=ATOL)


@pytest.mark.parametrize("kind,dtype", FLOAT_KINDS, ids=[f"{k}-{d}" for k, d in FLOAT_KINDS])
def test_fit_evaluate_predict_non_floatx_floats_match_keras(keras_ref, kind, dtype):
    x, y, sw = _data(kind, dtype)
    ours, ref = _pair(keras_ref)
    got = _run(ours, x, y, sw)
    want = _run(ref, x, y, sw)  # the same NumPy arrays / torch tensors
    _assert_same(got, want)
    assert got[2].dtype == np.float32


def _recording_model(lib):
    """A one-Dense model of `lib` (kerasish or Keras) whose train_step records the dtypes it receives."""
    seen = []

    class Recording(lib.Model):
        def __init__(self):
            super().__init__()
            self.d = lib.layers.Dense(1)

        def call(self, x):
            return self.d(x)

        def train_step(self, data):
            x, y, sw = lib.utils.unpack_x_y_sample_weight(data)
            seen.append(tuple(None if t is None else str(t.dtype).replace("torch.", "") for t in (x, y, sw)))
            return {}

    return Recording(), seen


def _recording_models(keras_ref):
    return _recording_model(keras), _recording_model(keras_ref)


CASES = {
    "numpy-float64": lambda: (np.ones((8, 3)), np.ones((8, 1)), np.ones(8)),
    "torch-float64": lambda: (torch.ones(8, 3, dtype=torch.float64), torch.ones(8, 1, dtype=torch.float16),
                              torch.ones(8, dtype=torch.bfloat16)),
    "numpy-int64-bool": lambda: (np.arange(24).reshape(8, 3), np.ones((8, 1), bool), np.ones(8, np.float16)),
    "torch-int32-uint8": lambda: (torch.arange(24, dtype=torch.int32).reshape(8, 3),
                                  torch.ones(8, 1, dtype=torch.uint8), None),
    "torch-complex": lambda: (torch.ones(8, 3, dtype=torch.complex64), torch.ones(8, 1, dtype=torch.float64), None),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("floatx", ["float32", "float64", "float16"])
def test_train_step_receives_keras_dtypes(keras_ref, case, floatx):
    """What a custom `train_step` receives: the dtypes Keras gives it, under
    each floatx (the setting restored afterwards)."""
    old_ours, old_ref = keras.config.floatx(), keras_ref.config.floatx()
    keras.config.set_floatx(floatx)
    keras_ref.config.set_floatx(floatx)
    try:
        (ours, seen_ours), (ref, seen_ref) = _recording_models(keras_ref)
        for m, seen in ((ours, seen_ours), (ref, seen_ref)):
            m.compile(optimizer="sgd", loss="mse")
            x, y, sw = CASES[case]()
            m.fit(x, y, sample_weight=sw, batch_size=4, epochs=1, verbose=0)
        assert seen_ours and seen_ours == seen_ref
    finally:
        keras.config.set_floatx(old_ours)
        keras_ref.config.set_floatx(old_ref)


def test_float32_tensor_is_not_copied():
    """A floatx tensor is batched from the user's own storage, no copy."""
    from kerasish.trainers.data_adapters import ArrayDataAdapter

    x = torch.randn(8, 3)
    adapter = ArrayDataAdapter(x, batch_size=8)
    (batch,) = list(adapter)
    assert batch.data_ptr() == x.data_ptr()


def _source(kind, k):
    """A float64 source of two batches of 4, for `fit` of kerasish (k=kerasish) or Keras (k=keras_ref)."""
    x, y = np.ones((8, 3)), np.ones((8, 1))
    if kind == "generator":
        return (b for b in [(x[:4], y[:4]), (x[4:], y[4:])])
    if kind == "pydataset":
        class Batches(k.utils.PyDataset):
            def __len__(self):
                return 2

            def __getitem__(self, i):
                return x[4 * i:4 * i + 4], y[4 * i:4 * i + 4]

        return Batches()
    ds = torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y))
    return torch.utils.data.DataLoader(ds, batch_size=4)


@pytest.mark.parametrize("kind", ["generator", "pydataset", "dataloader"])
def test_generator_pydataset_dataloader_batches_are_not_cast(keras_ref, kind):
    """Keras casts arrays only: float64 batches (NumPy or torch) of a
    generator, PyDataset or DataLoader reach `train_step` as float64."""
    (ours, seen_ours), (ref, seen_ref) = _recording_models(keras_ref)
    for m, seen, k in ((ours, seen_ours, keras), (ref, seen_ref, keras_ref)):
        m.compile(optimizer="sgd", loss="mse")
        m.fit(_source(kind, k), epochs=1, steps_per_epoch=2 if kind == "generator" else None, verbose=0)
    assert seen_ref == [("float64", "float64", None)] * 2
    assert seen_ours == seen_ref


def test_float64_model_against_keras_float64_model(keras_ref):
    """A kerasish model made float64 with `.double()` and a Keras
    `dtype="float64"` model, fed float64 data under floatx float32: both
    train on float32-rounded data (Keras casts the arrays), in float64 maths."""
    x, y, sw = _data("torch", "float64", seed=1)
    ours, ref = _pair(keras_ref, dtype="float64")
    got = _run(ours, x, y, sw)
    want = _run(ref, x.numpy(), y.numpy(), sw.numpy())
    _assert_same(got, want)
    assert got[2].dtype == np.float64
    # the data was rounded to float32 once, then the maths ran in float64
    w = [torch.tensor(a) for a in ours.get_weights()]
    rounded = x.float().double()
    expected = torch.tanh(rounded @ w[0] + w[1]) @ w[2] + w[3]
    np.testing.assert_allclose(got[2], expected.numpy(), rtol=1e-12, atol=1e-12)


def test_set_floatx_float64_keeps_float64_data(keras_ref):
    """Under `set_floatx("float64")` float64 data is used as it is and float32/16 data becomes float64."""
    old_ours, old_ref = keras.config.floatx(), keras_ref.config.floatx()
    old_policy = keras_ref.config.dtype_policy().name
    keras.config.set_floatx("float64")
    keras_ref.config.set_floatx("float64")
    # (the test session pins Keras's global policy to "float32"; a fresh Keras follows floatx)
    keras_ref.config.set_dtype_policy("float64")
    try:
        ours, ref = _pair(keras_ref)
        x, y, _ = _data("torch", "float64", seed=2)
        sw = torch.linspace(0.5, 2.0, N, dtype=torch.float16)
        got = _run(ours, x, y.float(), sw)
        want = _run(ref, x.numpy(), y.float().numpy(), sw.numpy())
        _assert_same(got, want)
        assert got[2].dtype == np.float64
        # and the float64 values were kept: predictions of the float64 model differ from float32-rounded inputs'
        rounded = ours.predict(x.float(), batch_size=5, verbose=0)
        assert not np.array_equal(rounded, got[2])
    finally:
        keras.config.set_floatx(old_ours)
        keras_ref.config.set_floatx(old_ref)
        keras_ref.config.set_dtype_policy(old_policy)


def _recording_eval_models(keras_ref):
    """Models whose `test_step` records the dtypes it receives."""
    (ours, _), (ref, _) = _recording_models(keras_ref)
    seen = {"ours": [], "ref": []}

    def recorder(model, key, unpack):
        def test_step(data):
            x, y, sw = unpack(data)
            seen[key].append(tuple(None if t is None else str(t.dtype).replace("torch.", "") for t in (x, y, sw)))
            return {}
        model.test_step = test_step

    recorder(ours, "ours", keras.utils.unpack_x_y_sample_weight)
    recorder(ref, "ref", keras_ref.utils.unpack_x_y_sample_weight)
    return ours, ref, seen


@pytest.mark.parametrize("how", ["validation_data", "validation_split"])
def test_validation_arrays_are_cast(keras_ref, how):
    """`validation_data` tuples and the `validation_split` part go through the array adapter: cast, as in Keras."""
    ours, ref, seen = _recording_eval_models(keras_ref)
    x32, y32 = np.ones((8, 3), np.float32), np.ones((8, 1), np.float32)
    x64, y16 = torch.ones(8, 3, dtype=torch.float64), torch.ones(8, 1, dtype=torch.float16)
    for m in (ours, ref):
        m.compile(optimizer="sgd", loss="mse")
        if how == "validation_data":
            m.fit(x32, y32, validation_data=(x64, y16, np.ones(8)), batch_size=4, epochs=1, verbose=0)
        else:
            m.fit(x64, y16, validation_split=0.5, batch_size=4, epochs=1, verbose=0)
    assert seen["ref"] and seen["ref"][0][:2] == ("float32", "float32")
    assert seen["ours"] == seen["ref"]


def test_train_on_batch_float64_numpy_matches_keras(keras_ref):
    """`train_on_batch` (no data adapter, in Keras or here) on float64 NumPy data: same loss as Keras."""
    rng = np.random.default_rng(3)
    x, y, sw = rng.normal(size=(6, D)), rng.normal(size=(6, 2)), rng.uniform(0.5, 2, size=(6,))
    ours, ref = _pair(keras_ref)
    got = [ours.train_on_batch(x, y, sample_weight=sw, return_dict=True) for _ in range(2)]
    want = [ref.train_on_batch(x, y, sample_weight=sw, return_dict=True) for _ in range(2)]
    for g, w in zip(got, want):
        assert set(g) == set(w)
        for k in w:
            np.testing.assert_allclose(g[k], w[k], rtol=ATOL, atol=ATOL, err_msg=k)
