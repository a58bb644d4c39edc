"""`kerasish::fused_rnn`: torch's whole-sequence RNN kernels as one opaque
op for `torch.compile`.

Traced as is, `torch._VF.lstm/gru` are composite ops that AOT autograd
decomposes into one set of matmuls and pointwise ops per time step (the
CPU oneDNN kernel is only kept for LSTM inference): for 100 steps that is
about a minute of inductor compile time and a step ~3x slower than eager.
Wrapped in a `torch.library` custom op with a fake (shape) implementation,
the compiled graph holds one node that runs the same eager kernel (oneDNN
on the CPU, cuDNN on CUDA).

Backward: torch exposes no backend-independent backward for these kernels
(cuDNN's and oneDNN's need their private workspaces), so the backward op
(`kerasish::fused_rnn_backward`, opaque too) runs the forward again with
autograd on and differentiates it. A compiled training step therefore pays
one extra forward of the recurrent kernel; eager calls never go through
these ops (`fused_rnn._run` calls `torch._VF` directly).
"""

from __future__ import annotations

import contextlib

import torch

_KERNELS = {"gru": "gru", "rnn_tanh": "rnn_tanh", "rnn_relu": "rnn_relu"}


def _call(mode: str, x, hx: list, weights: list, has_bias: bool, train: bool) -> list:
    if mode == "lstm":
        out, h, c = torch._VF.lstm(x, (hx[0], hx[1]), weights, has_bias, 1, 0.0, train, False, True)
        return [out, h, c]
    out, h = getattr(torch._VF, _KERNELS[mode])(x, hx[0], weights, has_bias, 1, 0.0, train, False, True)
    return [out, h]


@torch.library.custom_op("kerasish::fused_rnn", mutates_args=())
def fused_rnn(
    mode: str, x: torch.Tensor, hx: list[torch.Tensor], weights: list[torch.Tensor], has_bias: bool, train: bool
) -> list[torch.Tensor]:
    """`[outputs, h_n(, c_n)]` of one batch-first, one-layer, one-direction
    kernel (`hx` and the finals are `(1, batch, units)`)."""
    with torch.no_grad():
        # contiguous: the kernels' batch-first output strides differ by backend
        return [t.contiguous() for t in _call(mode, x, hx, weights, has_bias, train)]


@fused_rnn.register_fake
def _(mode, x, hx, weights, has_bias, train):
    units = hx[0].shape[-1]
    out = x.new_empty((*x.shape[:-1], units))
    return [out, *(h.new_empty(h.shape) for h in hx)]


@torch.library.custom_op("kerasish::fused_rnn_backward", mutates_args=())
def fused_rnn_backward(
    mode: str,
    x: torch.Tensor,
    hx: list[torch.Tensor],
    weights: list[torch.Tensor],
    has_bias: bool,
    grads: list[torch.Tensor],
) -> list[torch.Tensor]:
    """Gradients `[dx, *dhx, *dweights]` of `fused_rnn` (by recomputation)."""
    inputs = [t.detach().requires_grad_() for t in (x, *hx, *weights)]
    n_hx = len(hx)
    with _autograd_on():
        outs = _call(mode, inputs[0], inputs[1 : 1 + n_hx], inputs[1 + n_hx :], has_bias, True)
        found = torch.autograd.grad(outs, inputs, grads, allow_unused=True)
    return [_like(g, t) for g, t in zip(found, inputs)]


def _like(grad, t):
    """`grad`, contiguous (what the fake implementation promises: the
    compiler may hand the op inputs in other layouts than eager would)."""
    if grad is None:
        return t.new_zeros(t.shape)
    return grad.contiguous()


@contextlib.contextmanager
def _autograd_on():
    """Autograd recording inside an op implementation: the dispatcher runs
    it with the autograd keys excluded (it is below autograd), so they are
    re-included for the recomputation, and grad mode is switched on."""
    keys = (torch._C.DispatchKey.AutogradFunctionality, torch._C.DispatchKey.ADInplaceOrView)
    was = [torch._C._dispatch_tls_is_dispatch_key_excluded(k) for k in keys]
    try:
        for k in keys:
            torch._C._dispatch_tls_set_dispatch_key_excluded(k, False)
        with torch.enable_grad():
            yield
    finally:
        for k, excluded in zip(keys, was):
            torch._C._dispatch_tls_set_dispatch_key_excluded(k, excluded)


@fused_rnn_backward.register_fake
def _(mode, x, hx, weights, has_bias, grads):
    return [t.new_empty(t.shape) for t in (x, *hx, *weights)]


def _setup_context(ctx, inputs, output):
    mode, x, hx, weights, has_bias, _ = inputs
    ctx.mode, ctx.has_bias, ctx.n_hx = mode, has_bias, len(hx)
    ctx.save_for_backward(x, *hx, *weights)


def _backward(ctx, grads):
    saved = ctx.saved_tensors
    x, hx, weights = saved[0], list(saved[1 : 1 + ctx.n_hx]), list(saved[1 + ctx.n_hx :])
    # an unused output (the final `c` of an LSTM that returns no state) gets a None gradient
    if any(g is None for g in grads):
        shapes = [(*x.shape[:-1], hx[0].shape[-1]), *(h.shape for h in hx)]
        grads = [x.new_zeros(s) if g is None else g for g, s in zip(grads, shapes)]
    found = fused_rnn_backward(ctx.mode, x, hx, weights, ctx.has_bias, grads)
    n = ctx.n_hx
    return None, found[0], found[1 : 1 + n], found[1 + n :], None, None


fused_rnn.register_autograd(_backward, setup_context=_setup_context)
