"""Keras 2's backend functions for loops (`K.rnn`, `K.map_fn`, `K.foldl`,
`K.foldr`), convolutions, pooling, resizing and batch normalization, against
what tf.keras 2 returned on the same inputs (tests/fixtures/keras2_backend_more,
written by tools/fixtures/make_keras2_backend_more.py with tf-keras 2.21).
Layer libraries written against Keras 2 call them (custom RNN cells through
`K.rnn`, CRF decoding through `K.rnn` / `K.foldl`, batch-renormalization
layers through `K.normalize_batch_in_training` / `K.moving_average_update`);
before they were added each raised AttributeError.

Tolerance: float32 kernels of two frameworks, rtol 1e-5 / atol 1e-5
(bilinear resizing atol 1e-5 as well); booleans exactly.
"""

import importlib.util
import json
import os

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish import backend as K

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras2_backend_more")
_spec = importlib.util.spec_from_file_location("k2_more_cases", os.path.join(HERE, "cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)
with np.load(os.path.join(HERE, "records.npz"), allow_pickle=False) as _f:
    RECORD = dict(_f)
with open(os.path.join(HERE, "records.json")) as _meta:
    COUNTS = json.load(_meta)["counts"]
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _flat(value):
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flat(v)]
    return [value]


def _check(case_id, got):
    got = _flat(got)
    assert len(got) == COUNTS[case_id]
    for i, g in enumerate(got):
        want = RECORD[f"{case_id}.{i}"]
        g = g.detach().numpy() if isinstance(g, torch.Tensor) else np.asarray(g)
        assert g.shape == want.shape, f"{case_id}[{i}]"
        if want.dtype == bool:
            np.testing.assert_array_equal(g, want, err_msg=f"{case_id}[{i}]")
        else:
            np.testing.assert_allclose(g, want, err_msg=f"{case_id}[{i}]", **TOL)


@pytest.mark.parametrize("case", cases.CASES, ids=[c[0] for c in cases.CASES])
def test_matches_tf_keras_2(case):
    case_id, name, args, kwargs = case
    args = [torch.from_numpy(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
    _check(case_id, getattr(K, name)(*args, **kwargs))


@pytest.mark.parametrize("case", cases.CALLABLE_CASES, ids=[c[0] for c in cases.CALLABLE_CASES])
def test_loops_match_tf_keras_2(case):
    case_id, name, build = case
    args, kwargs = build(K)
    _check(case_id, getattr(K, name)(*args, **kwargs))


def test_moving_average_update_assigns_the_variable():
    value, batch, momentum = cases.MOVING_AVERAGE
    v = keras.Variable(value)
    assert K.moving_average_update(v, torch.from_numpy(batch), momentum) is v
    _check("moving_average_update", v.numpy())


def test_rnn_gradients_flow_through_the_steps():
    """`K.rnn` is a plain Python loop over torch ops: gradients reach the inputs of every step."""
    args, kwargs = cases.CALLABLE_CASES[2][2](K)  # masked
    x = args[1].clone().requires_grad_(True)
    last, outputs, states = K.rnn(args[0], x, args[2], **kwargs)
    (outputs.sum() + last.sum()).backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[1].abs().sum(-1) > 0).all()  # every step of the unmasked row matters
    assert (x.grad[0, 3:] == 0).all()  # masked steps change nothing


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match="rank 3"):
        K.rnn(lambda x, s: (x, s), torch.zeros(2, 3), [torch.zeros(2, 3)])
    with pytest.raises(ValueError, match="pool_mode"):
        K.pool2d(torch.zeros(1, 4, 4, 1), (2, 2), pool_mode="median")
    with pytest.raises(ValueError, match="output_shape"):
        K.conv2d_transpose(torch.zeros(1, 3, 3, 2), torch.zeros(3, 3, 4, 2), (1, 20, 20, 4), strides=(2, 2))
    with pytest.raises(NotImplementedError, match="training="):
        with K.learning_phase_scope(1):
            pass
