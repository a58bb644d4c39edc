"""Keras 2's backend functions for locally-connected convolutions
(`K.local_conv1d`, `K.local_conv2d`), CTC (`K.ctc_decode` greedy and beam
search, `K.ctc_batch_cost`) and the focal cross-entropies
(`K.binary_focal_crossentropy`, `K.categorical_focal_crossentropy`), against
what tf.keras 2 returned on the same inputs (tests/fixtures/keras2_backend_extra,
written by tools/fixtures/make_keras2_backend_extra.py with tf-keras 2.21).
Before they were added, all but `ctc_batch_cost` raised AttributeError.

Tolerance: float32 arithmetic of two frameworks, rtol 1e-5 / atol 1e-5
(CTC scores: sums of logs over 8 steps, atol 1e-4); decoded labels exactly.
"""

import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from kerasish import backend as K

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras2_backend_extra")
_spec = importlib.util.spec_from_file_location("k2_extra_cases", os.path.join(HERE, "cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)
with np.load(os.path.join(HERE, "records.npz"), allow_pickle=False) as _f:
    RECORD = dict(_f)
with open(os.path.join(HERE, "records.json")) as _meta:
    COUNTS = json.load(_meta)["counts"]


def _flat(value):
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flat(v)]
    return [value]


@pytest.mark.parametrize("case", cases.CASES, ids=[c[0] for c in cases.CASES])
def test_matches_tf_keras_2(case):
    case_id, name, args, kwargs = case
    args = [torch.from_numpy(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
    got = _flat(getattr(K, name)(*args, **kwargs))
    assert len(got) == COUNTS[case_id]
    tol = {"rtol": 1e-5, "atol": 1e-4 if name.startswith("ctc") else 1e-5}
    for i, g in enumerate(got):
        want = RECORD[f"{case_id}.{i}"]
        g = g.detach().numpy()
        assert g.shape == want.shape, f"{case_id}[{i}]"
        if want.dtype.kind in "iu":
            assert g.dtype == np.int64, f"{case_id}[{i}]"
            np.testing.assert_array_equal(g, want, err_msg=f"{case_id}[{i}]")
        else:
            np.testing.assert_allclose(g, want, err_msg=f"{case_id}[{i}]", **tol)


def test_local_conv2d_matches_a_loop_over_windows():
    """The maths, independently of TensorFlow: output position (i, j) is its window (flattened as (kh, kw, c))
    times that position's own kernel slice."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 6, 3)).astype("float32")
    kernel = rng.standard_normal((2 * 3, 2 * 2 * 3, 4)).astype("float32")
    got = K.local_conv2d(torch.from_numpy(x), torch.from_numpy(kernel), (2, 2), (2, 2), (2, 3),
                         data_format="channels_last").numpy()
    want = np.zeros((2, 2, 3, 4), "float32")
    for i in range(2):
        for j in range(3):
            window = x[:, 2 * i: 2 * i + 2, 2 * j: 2 * j + 2, :].reshape(2, -1)
            want[:, i, j] = window @ kernel[i * 3 + j]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_local_conv_bad_kernel_names_shapes():
    x = torch.zeros(1, 6, 5, 3)
    with pytest.raises(ValueError, match=r"kernel must be \(output_items, feature_dim, channels_out\).*Received"):
        K.local_conv2d(x, torch.zeros(8, 17, 4), (3, 2), (1, 2), (4, 2), data_format="channels_last")
    with pytest.raises(ValueError, match="too short"):
        K.local_conv2d(x, torch.zeros(10, 18, 4), (3, 2), (1, 2), (5, 2), data_format="channels_last")
