"""`ops.linspace`, `ops.logspace` and `ops.geomspace` equal Keras 3's (torch
backend) bit for bit. Keras's torch backend rounds them two ways: ends that
are not both sized go through `torch.linspace` / `torch.logspace` (a
symmetric kernel); tensor or array ends (0-d ones too) are
`start + (k / (num - 1)) * (stop - start)` (then `base **` it). Ported
programs build grids, frequencies and positional encodings from these, and
one ulp moved there moves everything after (MelSpectrogram's filter bank was
one such case).

Deliberate differences, asserted below: `num=1` with tensor ends gives
`start` (Keras's torch backend divides by zero and gives NaN), and `axis`
works (Keras's torch backend raises).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish.ops as kops


def _f32(v):
    return torch.tensor(v, dtype=torch.float32)


CASES = [
    ("linspace", (0.0, 1.0, 50), {}),
    ("linspace", (150.48993, 2075.4, 130), {}),
    ("linspace", (_f32(150.48993), _f32(2075.4), 130), {}),
    ("linspace", (np.float32(-3.3), np.float32(7.1), 11), {}),
    ("linspace", (-3.3, 7.1, 11), {"endpoint": False}),
    ("linspace", (_f32(-3.3), _f32(7.1), 11), {"endpoint": False}),
    ("linspace", (_f32(0.1), 0.9, 7), {}),
    ("linspace", (_f32([0.0, 1.0]), _f32([1.0, 5.0]), 5), {}),
    ("linspace", (np.array([0.0, 1.0], "float32"), np.array([1.0, 5.0], "float32"), 5), {"endpoint": False}),
    ("linspace", (0.1, 0.9, 7), {"retstep": True}),
    ("linspace", (_f32(0.1), _f32(0.9), 7), {"retstep": True}),
    ("linspace", (0.1, 0.9, 7), {"dtype": "float64"}),
    ("linspace", (2, 9, 5), {"dtype": "float16"}),
    ("linspace", (0, 10, 4), {"dtype": "int32"}),
    ("logspace", (0.1, 2.3, 9), {}),
    ("logspace", (0.1, 2.3, 9), {"endpoint": False}),
    ("logspace", (_f32(0.1), _f32(2.3), 9), {"endpoint": False}),
    ("logspace", (_f32([0.0, 1.0]), _f32([1.0, 5.0]), 5), {"base": 2}),
    ("logspace", (0.0, 3.0, 4), {"base": 2.0, "dtype": "float64"}),
    ("geomspace", (1.0, 1000.0, 4), {}),
    ("geomspace", (0.3, 77.0, 9), {"endpoint": False}),
    ("geomspace", (-1.0, -1000.0, 4), {}),
    ("geomspace", (_f32([1.0, 2.0]), _f32([10.0, 50.0]), 5), {}),
    ("geomspace", (1.0, 1000.0, 4), {"dtype": "float16"}),
]


@pytest.mark.parametrize("name,args,kwargs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_spacing_op_equals_keras_bitwise(keras_ref, name, args, kwargs):
    expected = getattr(keras_ref.ops, name)(*args, **kwargs)
    got = getattr(kops, name)(*args, **kwargs)
    if kwargs.get("retstep"):
        np.testing.assert_array_equal(np.asarray(got[1]), keras_ref.ops.convert_to_numpy(expected[1]))
        expected, got = expected[0], got[0]
    expected = keras_ref.ops.convert_to_numpy(expected)
    assert got.numpy().dtype == expected.dtype
    np.testing.assert_array_equal(got.numpy(), expected)


def test_one_value_from_tensor_ends_is_start_and_axis_is_honoured():
    np.testing.assert_array_equal(kops.linspace(_f32([0.5, 2.0]), _f32([3.0, 4.0]), 1).numpy(), [[0.5, 2.0]])
    np.testing.assert_array_equal(kops.logspace(_f32(1.0), _f32(3.0), 1).numpy(), [10.0])
    grid = kops.linspace(_f32([0.0, 10.0]), _f32([1.0, 20.0]), 3, axis=1)
    np.testing.assert_allclose(grid.numpy(), [[0.0, 0.5, 1.0], [10.0, 15.0, 20.0]])


@pytest.mark.parametrize("shape_a,shape_b,rank", [((6, 3), (6,), 3), ((3, 6), (3, 2), 3), ((6, 4), (6, 2), 2)],
                         ids=["tall", "wide", "rank_deficient"])
def test_lstsq_off_the_cpu_path_is_numpys_minimum_norm_solution(shape_a, shape_b, rank):
    """(Not a spacing op: lstsq's non-CPU path, runnable here.) Off the CPU torch's lstsq has only
    the `gels` driver, which needs a full-rank tall matrix; kerasish solves there with the SVD
    pseudo-inverse. Checked on the CPU against NumPy's lstsq, wide and rank-deficient cases too."""
    from kerasish.ops.linalg import _lstsq_pinv

    g = torch.Generator().manual_seed(0)
    if rank < min(shape_a):
        a = torch.randn(shape_a[0], rank, generator=g, dtype=torch.float64) @ torch.randn(
            rank, shape_a[1], generator=g, dtype=torch.float64)
    else:
        a = torch.randn(*shape_a, generator=g, dtype=torch.float64)
    b = torch.randn(*shape_b, generator=g, dtype=torch.float64)
    rhs = b.unsqueeze(-1) if b.ndim == 1 else b
    expected = np.linalg.lstsq(a.numpy(), rhs.numpy(), rcond=None)[0]
    np.testing.assert_allclose(_lstsq_pinv(a, rhs, None).numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(kops.lstsq(a, b).numpy().reshape(expected.shape), expected, rtol=0, atol=1e-12)
