"""`ops.vectorize(..., signature=...)` (it raised NotImplementedError): NumPy
gufunc signatures, against `np.vectorize(signature=...)` from the maths and
against Keras 3 (torch backend); core-dimension checks with Keras's error;
`excluded` arguments passed through."""

import numpy as np
import pytest

import kerasish as keras

RNG = np.random.default_rng(0)

CASES = [
    ("(m,n),(n)->(m)", lambda a, b: a @ b, [(4, 3, 2), (2,)]),
    ("(n),(n)->()", lambda a, b: (a * b).sum(), [(5, 1, 3), (4, 3)]),
    ("(n)->(n),()", lambda a: (a * 2, a.sum()), [(2, 3, 4)]),
    ("(n)->()", lambda a: a.max(), [(6,)]),
    ("()->()", lambda a: a * 3, [(2, 2)]),
    ("(m,n)->(n,m)", lambda a: a.T, [(2, 3, 4)]),
]


def _as_list(x):
    return [np.asarray(v) for v in x] if isinstance(x, tuple) else [np.asarray(x)]


@pytest.mark.parametrize("signature,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_signature_matches_numpy_and_keras(keras_ref, signature, fn, shapes):
    args = [RNG.normal(size=s).astype("float32") for s in shapes]
    want = np.vectorize(lambda *a: fn(*[np.asarray(x) for x in a]), signature=signature)(*args)
    ref = keras_ref.ops.vectorize(fn, signature=signature)(*args)
    got = keras.ops.vectorize(fn, signature=signature)(*args)
    for g, w, r in zip(_as_list(got), _as_list(want), _as_list(ref)):
        assert g.shape == w.shape == r.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-6)


def test_excluded_arguments_pass_through():
    out = keras.ops.vectorize(lambda a, scale: a.sum() * scale, excluded={1}, signature="(n)->()")(
        np.ones((3, 4), "float32"), 2.0)
    np.testing.assert_allclose(np.asarray(out), [8.0, 8.0, 8.0])


def test_bad_signatures_and_core_sizes():
    with pytest.raises(ValueError, match="Not a valid gufunc signature"):
        keras.ops.vectorize(lambda a: a, signature="(n)(n)->(n)")
    with pytest.raises(ValueError, match="inconsistent size for core dimension 'n': 4 vs 3"):
        keras.ops.vectorize(lambda a, b: a @ b, signature="(m,n),(n)->(m)")(np.ones((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match="does not match core dimensions"):
        keras.ops.vectorize(lambda a: a.sum(), signature="(n)->(n)")(np.ones((2, 3)))
