"""The runtime maths of quantized layers: int8/int4 matmuls whose gradient
reaches the inputs through the dequantized kernel, and the float8
quantize-dequantize steps with their scale / amax-history updates.

These reproduce Keras 3's `_int8_call` / `_float8_call` (torch backend):
int8 x int8 products accumulate exactly in int32 (`torch._int_mm` on CUDA
when its shape rules allow, as Keras does; an int32 matmul on CPU), then the
result is cast to the compute dtype and divided by the combined scale.
"""

from __future__ import annotations

import torch

from kerasish.backend import dtypes
from kerasish.quantizers.quantizers import FLOAT8_MAX
from kerasish.quantizers.quantizers import compute_float8_amax_history
from kerasish.quantizers.quantizers import compute_float8_scale
from kerasish.quantizers.quantizers import quantize_and_dequantize


def _int_mm_ok(a: torch.Tensor, b: torch.Tensor) -> bool:
    # torch._int_mm's rules (the ones Keras checks): CUDA, 2D int8, a is
    # [>16, >=16 and a multiple of 8], b is [>=16 and a multiple of 8, a multiple of 8]
    return (
        a.is_cuda and a.dim() == 2 and b.dim() == 2 and a.shape[0] > 16 and a.shape[1] >= 16
        and a.shape[1] % 8 == 0 and b.shape[0] >= 16 and b.shape[0] % 8 == 0 and b.shape[1] % 8 == 0
    )


def int_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`a @ b` for int8 (or float @ int8) operands, as Keras's torch
    `ops.matmul`: int8 x int8 gives exact int32; float x int8 runs in the
    float dtype."""
    if a.dtype == torch.int8 and b.dtype == torch.int8:
        if _int_mm_ok(a, b):
            try:
                return torch._int_mm(a, b)
            except RuntimeError:
                pass
        if a.is_cuda:  # CUDA has no int32 matmul: float32 (exact while |sums| < 2**24)
            return torch.matmul(a.float(), b.float()).round().to(torch.int32)
        return torch.matmul(a.to(torch.int32), b.to(torch.int32))
    dtype = a.dtype if a.is_floating_point() else b.dtype
    compute = torch.float32 if dtype == torch.float16 and not a.is_cuda else dtype
    return torch.matmul(a.to(compute), b.to(compute)).to(dtype)


class _QuantizedMatmul(torch.autograd.Function):
    """`inputs @ (kernel / kernel_scale)` computed on the integer kernel (with
    the inputs quantized too when a quantizer is given); the gradient goes
    to the inputs only, through the dequantized kernel."""

    @staticmethod
    def forward(ctx, inputs, kernel, kernel_scale, inputs_quantizer, compute_dtype):
        compute_dtype = dtypes.to_torch_dtype(compute_dtype)
        ctx.save_for_backward(kernel, kernel_scale)
        ctx.compute_dtype = compute_dtype
        output_scale = kernel_scale
        if inputs_quantizer:
            inputs, inputs_scale = inputs_quantizer(inputs, axis=-1)
            output_scale = output_scale * inputs_scale
        x = int_matmul(inputs, kernel).to(compute_dtype)
        return x / output_scale

    @staticmethod
    def backward(ctx, upstream):
        kernel, kernel_scale = ctx.saved_tensors
        float_kernel = kernel.to(ctx.compute_dtype) / kernel_scale
        return torch.matmul(upstream, float_kernel.transpose(-1, -2)), None, None, None, None


def quantized_matmul(inputs, kernel, kernel_scale, inputs_quantizer, compute_dtype):
    return _QuantizedMatmul.apply(inputs, kernel, kernel_scale, inputs_quantizer, compute_dtype)


# ----------------------------------------------------------------------- float8
def _float8_updates(x, scale, history, dtype_name):
    new_scale = compute_float8_scale(history.max(dim=0).values, scale, torch.tensor(FLOAT8_MAX[dtype_name]))
    return new_scale, compute_float8_amax_history(x, history)


class _QDQInputs(torch.autograd.Function):
    """Quantize-dequantize to float8_e4m3fn in the forward pass; the
    gradient passes straight through. In training, the backward pass
    overwrites the scale and amax history variables with their updates
    (computed from the forward's values), as Keras's optimizer does with
    these `overwrite_with_gradient` variables."""

    @staticmethod
    def forward(ctx, x, scale_var, amax_var, compute_dtype, training):
        scale, history = scale_var.detach().clone(), amax_var.detach().clone()
        ctx.vars = (scale_var, amax_var)
        ctx.updates = _float8_updates(x.detach(), scale, history, "float8_e4m3fn") if training else None
        return quantize_and_dequantize(x, scale, "float8_e4m3fn", compute_dtype)

    @staticmethod
    def backward(ctx, upstream):
        if ctx.updates is not None:
            with torch.no_grad():
                for var, value in zip(ctx.vars, ctx.updates):
                    var.copy_(value)
        return upstream, None, None, None, None


class _QDQOutputsGrad(torch.autograd.Function):
    """Identity forward; the incoming gradient is quantize-dequantized to
    float8_e5m2 and, in training, the scale / amax history variables are
    overwritten with their updates. (Keras hands the updates to its optimizer
    as "gradients"; kerasish writes them in the backward pass, so a custom
    torch loop needs no optimizer support for them.)"""

    @staticmethod
    def forward(ctx, x, scale_var, amax_var, compute_dtype, training):
        ctx.vars = (scale_var, amax_var)
        ctx.compute_dtype = compute_dtype
        ctx.training = training
        return x.view_as(x)

    @staticmethod
    def backward(ctx, upstream):
        scale_var, amax_var = ctx.vars
        with torch.no_grad():
            scale, history = scale_var.detach().clone(), amax_var.detach().clone()
            qdq = quantize_and_dequantize(upstream, scale, "float8_e5m2", ctx.compute_dtype)
            if ctx.training:
                for var, value in zip(ctx.vars, _float8_updates(upstream, scale, history, "float8_e5m2")):
                    var.copy_(value)
        return qdq, None, None, None, None


def float8_qdq_inputs(x, scale_var, amax_var, compute_dtype, training):
    return _QDQInputs.apply(x, scale_var, amax_var, compute_dtype, bool(training))


def float8_qdq_outputs_grad(x, scale_var, amax_var, compute_dtype, training):
    return _QDQOutputsGrad.apply(x, scale_var, amax_var, compute_dtype, bool(training))
