"""Every public name of Keras 3's `keras.ops` (and its `nn`, `image`,
`linalg`, `numpy` sub-namespaces) and `keras.random` exists in kerasish,
except the reasoned allow-list below; and each kerasish op is a real
callable (no placeholders)."""

from __future__ import annotations

import inspect

import pytest

import kerasish
import kerasish.ops as kops

# Names kerasish does not provide yet, with the reason. Shrink, never grow.
MISSING: dict = {}

# Names kerasish adds on purpose (none today).
EXTRA: dict = {}


def _public(module):
    return {n for n in dir(module) if not n.startswith("_")}


@pytest.mark.parametrize("sub", [None, "nn", "image", "linalg", "numpy"])
def test_every_keras_op_exists(keras_ref, sub):
    theirs = keras_ref.ops if sub is None else getattr(keras_ref.ops, sub)
    ours = kops if sub is None else getattr(kops, sub)
    prefix = f"{sub}." if sub else ""
    missing = sorted(
        f"{prefix}{n}" for n in _public(theirs) if not hasattr(ours, n) and f"{prefix}{n}" not in MISSING
    )
    assert not missing, f"kerasish.ops lacks Keras ops: {missing}"
    # the allow-list stays honest: nothing listed as missing exists
    present = sorted(k for k in MISSING if k.startswith(prefix) and (sub or "." not in k) and hasattr(
        ours, k[len(prefix):]))
    assert not present, f"listed as missing but present: {present}"


def test_every_keras_random_name_exists(keras_ref):
    missing = sorted(_public(keras_ref.random) - _public(kerasish.random))
    assert not missing


def test_top_level_has_no_names_keras_lacks(keras_ref):
    extra = sorted(set(kops.__all__) - _public(keras_ref.ops) - set(EXTRA))
    assert not extra, extra


def test_ops_are_callables_with_keras_signatures(keras_ref):
    """Same parameter names as Keras (so keyword calls port unchanged)."""
    mismatched = []
    for name in kops.__all__:
        ours, theirs = getattr(kops, name), getattr(keras_ref.ops, name)
        if inspect.ismodule(ours):
            continue
        assert callable(ours), name
        ours_params = list(inspect.signature(ours).parameters)
        theirs_params = list(inspect.signature(theirs).parameters)
        if ours_params != theirs_params:
            mismatched.append((name, ours_params, theirs_params))
    assert not mismatched, mismatched
