"""`keras.ops.normalize` against real Keras 3 (torch backend): the L2 case is
computed with Keras's formula (`x * rsqrt(sum(x**2))`, floored), so values
AND gradients agree bit for bit (the gap of a division by the norm, ~1 ulp,
grew to 3e-5 in the weights of keras.io's SimCLR example after 8 Adam steps);
`order` is validated as Keras does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish


@pytest.mark.parametrize("shape,axis", [((16, 8), 1), ((4, 5, 6), -1), ((4, 5, 6), (1, 2)), ((6, 3), 0)])
def test_l2_normalize_values_and_gradients_equal_keras(keras_ref, shape, axis):
    x = torch.from_numpy(np.random.default_rng(0).normal(size=shape).astype("float32"))
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref = keras_ref.ops.normalize(x_ref, axis=axis)
    out_ours = kerasish.ops.normalize(x_ours, axis=axis)
    torch.testing.assert_close(out_ours, out_ref, rtol=0, atol=0)
    out_ref.pow(3).sum().backward()
    out_ours.pow(3).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=0, atol=0)


@pytest.mark.parametrize("order", [1, 3])
def test_other_orders_match_keras(keras_ref, order):
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(5, 7)).astype("float32"))
    torch.testing.assert_close(kerasish.ops.normalize(x, order=order), keras_ref.ops.normalize(x, order=order),
                               rtol=1e-6, atol=1e-7)


def test_zero_slice_is_zero_with_finite_gradient(keras_ref):
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], requires_grad=True)
    out = kerasish.ops.normalize(x, axis=1)
    torch.testing.assert_close(out, keras_ref.ops.normalize(x.detach(), axis=1))
    torch.testing.assert_close(out[1], torch.tensor([0.6, 0.8]))
    out.sum().backward()
    # (Keras's min(rsqrt(0), 1/eps) gives NaN here; x * (1/eps) has gradient 1/eps)
    assert torch.isfinite(x.grad).all()


def test_scalar_becomes_a_vector(keras_ref):
    ours, ref = kerasish.ops.normalize(torch.tensor(3.0)), keras_ref.ops.normalize(torch.tensor(3.0))
    assert tuple(ours.shape) == tuple(ref.shape) == (1,)


@pytest.mark.parametrize("order", [0, 0.5, "fro", -1])
def test_invalid_order_raises_value_error_as_keras(keras_ref, order):
    x = torch.ones(2, 2)
    with pytest.raises(ValueError, match="`order` must be an int >= 1") as ref_err:
        keras_ref.ops.normalize(x, order=order)
    with pytest.raises(ValueError, match="`order` must be an int >= 1") as our_err:
        kerasish.ops.normalize(x, order=order)
    assert f"Received: order={order}" in str(our_err.value) and f"Received: order={order}" in str(ref_err.value)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_zero_slice_stays_finite(dtype):
    """epsilon**2 underflows in half precision: the maths runs in float32 there."""
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=dtype)
    out = kerasish.ops.normalize(x, axis=1)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), torch.tensor([[0.0, 0.0], [0.6, 0.8]]), rtol=1e-2, atol=1e-3)
