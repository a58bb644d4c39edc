"""`kerasish.backend.result_type` against `keras.backend.result_type`
(Keras 3's promotion lattice with weak Python types) for every pair of
dtypes, Python scalar types, and under float16/float64 `floatx`."""

from __future__ import annotations

import itertools

import pytest

import kerasish
from kerasish.backend import dtypes

DTYPES = ["bool", "uint8", "uint16", "uint32", "int8", "int16", "int32", "int64", "bfloat16", "float16",
          "float32", "float64", "complex64", "complex128", int, float, bool, None]


def _ref(keras_ref, *args):
    try:
        return keras_ref.backend.result_type(*args)
    except ValueError:
        return ValueError


def _ours(*args):
    try:
        return kerasish.backend.result_type(*args)
    except ValueError:
        return ValueError


def test_every_pair_matches_keras(keras_ref):
    mismatches = []
    for a, b in itertools.product(DTYPES, repeat=2):
        if _ours(a, b) != _ref(keras_ref, a, b):
            mismatches.append((a, b, _ours(a, b), _ref(keras_ref, a, b)))
    assert not mismatches, mismatches


@pytest.mark.parametrize("args", [(), ("int8",), (int,), (float,), ("int8", "uint8", float), (int, float),
                                  ("bfloat16", "float16"), ("uint64", "int64"), ("int16", "uint32", int)])
def test_other_arities_match_keras(keras_ref, args):
    assert _ours(*args) == _ref(keras_ref, *args)


@pytest.mark.parametrize("floatx", ["float16", "float64"])
def test_weak_types_follow_floatx(keras_ref, floatx):
    old_ours, old_ref = dtypes.floatx(), keras_ref.backend.floatx()
    try:
        dtypes.set_floatx(floatx)
        keras_ref.backend.set_floatx(floatx)
        for args in ((int, float), ("int32", float), (float,), (None,), ("uint8", int)):
            assert _ours(*args) == _ref(keras_ref, *args), args
    finally:
        dtypes.set_floatx(old_ours)
        keras_ref.backend.set_floatx(old_ref)


@pytest.mark.parametrize("op", ["matmul", "einsum"])
def test_int8_products_accumulate_in_int32_as_keras(keras_ref, op):
    """Keras 3's `matmul` of two int8 operands and `einsum` of all-int8 operands give int32 (the
    int8 quantization example of Deep Learning with Python's chapter 18); kerasish gave int8 and
    wrapped around: `100 * 100 * 3` came out as 48."""
    import torch

    a = torch.full((2, 3), 100, dtype=torch.int8)
    b = torch.full((3, 2), -100, dtype=torch.int8)

    def run(k):
        if op == "matmul":
            eager, symbolic = k.ops.matmul(a, b), k.ops.matmul(k.KerasTensor((2, 3), "int8"), k.KerasTensor((3, 2), "int8"))
        else:
            eager = k.ops.einsum("ij,jk->ik", a, b)
            symbolic = k.ops.einsum("ij,jk->ik", k.KerasTensor((2, 3), "int8"), k.KerasTensor((3, 2), "int8"))
        return eager, str(symbolic.dtype)

    (theirs, their_spec), (ours, our_spec) = run(keras_ref), run(kerasish)
    assert ours.dtype == theirs.dtype == torch.int32
    assert ours.tolist() == theirs.tolist() == [[-30000, -30000]] * 2
    assert our_spec.replace("torch.", "") == their_spec.replace("torch.", "") == "int32"
