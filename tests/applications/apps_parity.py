"""Shared checks of the applications tests: build the same application in
Keras 3 (the reference, torch backend) and in kerasish, compare structure,
configs and outputs with Keras's weights copied in."""

from __future__ import annotations

import json

import numpy as np
import torch

import kerasish

# float32 inference is bit for bit in practice; 1e-5 of the output's scale allows for another conv algorithm.
INFERENCE_RTOL = 1e-5
# training=True: BatchNormalization normalizes with the batch's moments. Keras computes the variance as
# E[x^2] - E[x]^2 in float32, kerasish with torch's fused batch-norm kernel; the two differ by float32 rounding
# (~1e-7 at the first layer), which tens of BatchNormalizations over batch-2 statistics amplify: measured
# 2e-6..4e-4 of the output scale at the sizes used. Inference never diverges.
TRAINING_RTOL = 2e-3


def build_both(keras_ref, name, **kwargs):
    """(keras_model, kerasish_model), each built after its own
    `clear_session()` so automatic layer names count from zero in both."""
    keras_ref.utils.clear_session()
    ref = getattr(keras_ref.applications, name)(**kwargs)
    kerasish.utils.clear_session()
    ours = getattr(kerasish.applications, name)(**kwargs)
    return ref, ours


def _config(model):
    """The model's config as JSON data, without what differs by design: the
    registered module names."""
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in ("module", "registered_name")}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return strip(json.loads(json.dumps(model.get_config())))


def assert_same_structure(ref, ours):
    assert ours.name == ref.name
    assert [layer.name for layer in ours.layers] == [layer.name for layer in ref.layers]
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in ref.layers]
    assert [w.path for w in ours.weights] == [w.path for w in ref.weights]
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in ref.weights]
    assert [w.path for w in ours.trainable_weights] == [w.path for w in ref.trainable_weights]
    assert ours.count_params() == ref.count_params()
    assert sum(int(np.prod(w.shape)) for w in ours.non_trainable_weights) == sum(
        int(np.prod(w.shape)) for w in ref.non_trainable_weights)
    assert tuple(ours.output.shape) == tuple(ref.output.shape)


def assert_same_config(ref, ours):
    theirs, mine = _config(ref), _config(ours)
    for a, b in zip(mine["layers"], theirs["layers"]):
        assert a == b, (a["name"], b["name"])
    assert mine == theirs


def images(shape, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 255.0, (batch, *shape)).astype("float32")


def outputs(ref, ours, x, training):
    theirs = ref(x, training=training)
    theirs = theirs.detach().cpu().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    mine = ours(torch.from_numpy(x), training=training).detach().numpy()
    return theirs, mine


def assert_outputs_equal(ref, ours, x, training=False):
    theirs, mine = outputs(ref, ours, x, training)
    assert mine.shape == theirs.shape
    rtol = TRAINING_RTOL if training else INFERENCE_RTOL
    scale = float(np.abs(theirs).max())
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=rtol * max(scale, 1e-6))


def assert_parity(keras_ref, name, shape, train=True, **kwargs):
    """Structure, config, and outputs (inference, then training=True, then the
    moving statistics that training call left) with Keras's weights."""
    ref, ours = build_both(keras_ref, name, weights=None, **kwargs)
    assert_same_structure(ref, ours)
    assert_same_config(ref, ours)
    ours.set_weights(ref.get_weights())
    x = images(shape)
    assert_outputs_equal(ref, ours, x, training=False)
    if train:
        assert_outputs_equal(ref, ours, x, training=True)
        for a, b in zip(ref.non_trainable_weights, ours.non_trainable_weights):
            np.testing.assert_allclose(b.numpy(), np.asarray(a.numpy()), rtol=1e-3, atol=1e-4, err_msg=a.path)
    return ref, ours
