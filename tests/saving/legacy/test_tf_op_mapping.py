"""Keras 2 TFOpLambda ops run with torch, checked against NumPy written from
TensorFlow's documented semantics (argument names as tf.keras records them)."""

import numpy as np
import pytest
import torch

from kerasish.saving import tf_op_mapping

X = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
Y = np.random.default_rng(1).normal(size=(2, 3, 4)).astype("float32")

CASES = [
    ("math.reduce_sum", dict(axis=-1, keepdims=True), lambda x: x.sum(-1, keepdims=True)),
    ("math.reduce_mean", dict(axis=[0, 2]), lambda x: x.mean((0, 2))),
    ("math.reduce_max", dict(axis=None), lambda x: x.max()),
    ("math.reduce_prod", dict(axis=[1, 2], keepdims=False), lambda x: x.prod((1, 2))),
    ("math.reduce_logsumexp", dict(axis=1), lambda x: np.log(np.exp(x).sum(1))),
    ("transpose", dict(perm=[0, 2, 1]), lambda x: x.transpose(0, 2, 1)),
    ("transpose", dict(), lambda x: x.transpose(2, 1, 0)),
    ("reshape", dict(shape=[-1, 4]), lambda x: x.reshape(-1, 4)),
    ("expand_dims", dict(axis=1), lambda x: x[:, None]),
    ("nn.softmax", dict(axis=1), lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
    ("nn.relu6", dict(), lambda x: np.clip(x, 0, 6)),
    ("math.l2_normalize", dict(axis=-1), lambda x: x / np.sqrt(np.maximum((x * x).sum(-1, keepdims=True), 1e-12))),
    ("clip_by_value", dict(clip_value_min=-0.5, clip_value_max=0.5), lambda x: np.clip(x, -0.5, 0.5)),
    ("__operators__.getitem", dict(slice_spec=[{"start": None, "stop": None, "step": None}, 1,
                                               {"start": 1, "stop": None, "step": 2}]), lambda x: x[:, 1, 1::2]),
]


@pytest.mark.parametrize("name,kwargs,reference", CASES, ids=[c[0] for c in CASES])
def test_unary_ops_match_numpy(name, kwargs, reference):
    got = tf_op_mapping._OPS[name](torch.tensor(X), **kwargs)
    np.testing.assert_allclose(got.numpy(), reference(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,reference", [
    ("math.multiply", np.multiply), ("math.truediv", np.true_divide), ("__operators__.add", np.add),
    ("math.maximum", np.maximum), ("math.squared_difference", lambda a, b: (a - b) ** 2),
])
def test_binary_ops_match_numpy(name, reference):
    got = tf_op_mapping._OPS[name](torch.tensor(X), y=torch.tensor(Y))
    np.testing.assert_allclose(got.numpy(), reference(X, Y), rtol=1e-5, atol=1e-6)


def test_matmul_transpose_and_concat():
    a, b = X[0], Y[0]
    got = tf_op_mapping._OPS["linalg.matmul"](torch.tensor(a), torch.tensor(b), transpose_b=True)
    np.testing.assert_allclose(got.numpy(), a @ b.T, rtol=1e-5, atol=1e-6)
    got = tf_op_mapping._OPS["concat"]([torch.tensor(X), torch.tensor(Y)], axis=-1)
    np.testing.assert_array_equal(got.numpy(), np.concatenate([X, Y], -1))


def test_layer_config_round_trip_and_unknown_op():
    layer = tf_op_mapping.TFOpLambda(function="math.tanh", name="tf.math.tanh")
    assert tf_op_mapping.TFOpLambda.from_config(layer.get_config()).function == "math.tanh"
    with pytest.raises(ValueError, match=r"tf\.io\.read_file.*no torch mapping"):
        tf_op_mapping.TFOpLambda(function="io.read_file")
