"""scipy.sparse matrices in fit/evaluate/predict (scikit-learn users' TF-IDF
and one-hot features), as Keras 3's torch backend takes them: kept sparse,
each batch's rows made dense, non-floatx float matrices cast to floatx; COO
taken as CSR; `validation_split` slices the rows. kerasish treated a sparse
matrix as a generator and refused `y`. Every case runs real Keras (torch
backend) on the same weights."""

import numpy as np
import pytest
import torch

import kerasish as keras

sp = pytest.importorskip("scipy.sparse", reason="scipy is a test extra: these cases feed scipy.sparse matrices")

N, D = 36, 12
TOL = {"rtol": 1e-5, "atol": 1e-6}


def _data(fmt="csr", dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    x = sp.random(N, D, density=0.25, format=fmt, random_state=seed, dtype=np.float64)
    x = x.astype(dtype) if dtype != "float64" else x
    y = rng.integers(0, 2, N).astype("float32")[:, None]
    return x, y


def _pair(keras_ref):
    ref = keras_ref.Sequential([keras_ref.Input((D,)), keras_ref.layers.Dense(5, activation="relu"),
                                keras_ref.layers.Dense(1, activation="sigmoid")])
    ours = keras.Sequential([keras.Input((D,)), keras.layers.Dense(5, activation="relu"),
                             keras.layers.Dense(1, activation="sigmoid")])
    ours.set_weights(ref.get_weights())
    for m, k in ((ours, keras), (ref, keras_ref)):
        m.compile(optimizer=k.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    return ours, ref


def _run(model, x, y, **kwargs):
    hist = model.fit(x, y, batch_size=8, epochs=2, verbose=0, **kwargs).history
    ev = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    return hist, ev, model.predict(x, batch_size=16, verbose=0)


@pytest.mark.parametrize("fmt,dtype,kwargs", [
    ("csr", "float64", {"shuffle": False}),
    ("coo", "float32", {"shuffle": False, "validation_split": 0.25}),
    ("csc", "float64", {"shuffle": False, "validation_split": 0.25}),
    ("csr", "int64", {"shuffle": False}),
])
def test_sparse_matrices_match_keras(keras_ref, fmt, dtype, kwargs):
    x, y = _data(fmt, dtype)
    if dtype == "int64":
        x = (x * 10).astype("int64")
    ours, ref = _pair(keras_ref)
    (h1, e1, p1), (h2, e2, p2) = _run(ours, x, y, **kwargs), _run(ref, x, y, **kwargs)
    assert set(h1) == set(h2)
    for k in h2:
        np.testing.assert_allclose(h1[k], h2[k], err_msg=k, **TOL)
    for k in e2:
        np.testing.assert_allclose(e1[k], e2[k], err_msg=k, **TOL)
    np.testing.assert_allclose(p1, p2, **TOL)


def test_shuffled_sparse_fit_after_set_random_seed_matches_keras(keras_ref):
    """The same shuffled batches as Keras's loader after `set_random_seed`."""
    x, y = _data(seed=1)
    keras_ref.utils.set_random_seed(3)
    ref = _pair(keras_ref)[1]
    keras.utils.set_random_seed(3)
    ours = _pair(keras_ref)[0]
    ours.set_weights(ref.get_weights())
    keras.utils.set_random_seed(4)
    h1 = ours.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    keras_ref.utils.set_random_seed(4)
    h2 = ref.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    np.testing.assert_allclose(h1["loss"], h2["loss"], **TOL)
    for a, b in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, **TOL)


def test_batches_are_dense_floatx_rows_and_the_matrix_stays_sparse(keras_ref):
    """What a custom `train_step` receives equals Keras's (dense floatx rows);
    the adapter never densifies the whole matrix."""
    from kerasish.trainers.data_adapters import ArrayDataAdapter, SparseRows

    x, y = _data()
    seen = {"ours": [], "ref": []}
    for key, lib in (("ours", keras), ("ref", keras_ref)):
        class Recording(lib.Model):
            def __init__(self):
                super().__init__()
                self.dense = lib.layers.Dense(1)

            def call(self, inputs):
                return self.dense(inputs)

            def train_step(self, data, _key=key):
                x_batch = data[0]
                seen[_key].append((type(x_batch).__name__, str(x_batch.dtype).replace("torch.", ""),
                                   tuple(x_batch.shape)))
                return super().train_step(data)

        m = Recording()
        m.compile(optimizer="sgd", loss="mse")
        m.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert seen["ours"] == seen["ref"] == [("Tensor", "float32", (16, D)), ("Tensor", "float32", (16, D)),
                                           ("Tensor", "float32", (4, D))]
    adapter = ArrayDataAdapter(x, y, batch_size=16)
    assert isinstance(adapter._flat[0], SparseRows)
    first = next(iter(adapter))[0]
    np.testing.assert_array_equal(first.numpy(), x.toarray()[:16].astype("float32"))
    assert isinstance(first, torch.Tensor)
