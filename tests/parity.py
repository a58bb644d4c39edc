"""Parity against real Keras 3 (torch backend): build the same layer in both,
copy Keras's weights into kerasish with get_weights/set_weights, compare.

    assert_keras_parity(keras_ref, "Dense", {"units": 3}, x)
"""

from __future__ import annotations

import numpy as np
import torch

import kerasish

FLOAT32_TOL = {"rtol": 1e-4, "atol": 1e-5}


def to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if hasattr(x, "numpy"):
        return np.asarray(x.numpy())
    return np.asarray(x)


def _flat(x):
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _flat(v)]
    if isinstance(x, dict):
        return [t for k in sorted(x) for t in _flat(x[k])]
    return [x]


def build_pair(keras_ref, class_name, kwargs, inputs, call_kwargs=None, ours_cls=None, theirs_cls=None):
    """Returns (ours, theirs, our_out, their_out) after copying Keras's
    weights into ours and calling both on `inputs`."""
    call_kwargs = call_kwargs or {}
    theirs_cls = theirs_cls or getattr(keras_ref.layers, class_name)
    ours_cls = ours_cls or getattr(kerasish.layers, class_name)
    theirs = theirs_cls(**kwargs)
    ours = ours_cls(**kwargs)
    np_inputs = [to_numpy(t) for t in inputs] if isinstance(inputs, list) else to_numpy(inputs)
    their_out = theirs(np_inputs, **call_kwargs)
    ours(inputs, **call_kwargs)  # build
    weights = theirs.get_weights()
    assert [w.shape for w in weights] == [w.shape for w in ours.get_weights()], (
        [w.shape for w in weights],
        [w.shape for w in ours.get_weights()],
    )
    ours.set_weights(weights)
    our_out = ours(inputs, **call_kwargs)
    return ours, theirs, our_out, their_out


def assert_close(ours, theirs, rtol=1e-4, atol=1e-5):
    a, b = _flat(ours), _flat(theirs)
    assert len(a) == len(b), (len(a), len(b))
    for x, y in zip(a, b):
        np.testing.assert_allclose(to_numpy(x).astype(np.float64), to_numpy(y).astype(np.float64), rtol=rtol, atol=atol)


def assert_keras_parity(keras_ref, class_name, kwargs, inputs, call_kwargs=None, rtol=1e-4, atol=1e-5, **kw):
    """Same weights in, same outputs out (float32 tolerances by default)."""
    ours, theirs, our_out, their_out = build_pair(keras_ref, class_name, kwargs, inputs, call_kwargs, **kw)
    assert_close(our_out, their_out, rtol, atol)
    return ours, theirs
