"""`kerasish::fused_rnn_masked`: a masked whole-sequence RNN as one opaque
op for `torch.compile`.

Traced as is, a masked recurrent layer runs the Python time loop: the
graph unrolls one step per time step, so every new sequence length is a
new graph (dynamo recompiles per length until its `recompile_limit`, then
runs eagerly), and long sequences take long to compile. This op keeps the
whole masked sequence behind one node whose fake (shape) implementation
takes a symbolic length, and runs torch's fused kernels with packed
sequences inside (one device-to-host transfer of the lengths, out of the
compiler's sight).

Any mask works, holes included, with Keras's semantics (see `rnn_loop`):
a masked step changes no state, so the valid steps of each row, moved to
the front in order (a stable sort), run as one packed sequence; an output
at step `t` is the compacted output of the last valid step up to `t`
(zeros before the first one, and at masked steps with
`zero_output_for_mask`); the final states are those after the last valid
step (the initial states for a row with none).

Backward recomputes the forward with autograd (as `rnn_op`): torch exposes
no backend-independent backward for its fused kernels.
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pack_padded_sequence

from kerasish.layers.rnn import rnn_op


def masked_sequence(mode, x, mask, hx, weights, has_bias, train, zero_output_for_mask):
    """`[outputs, *final_states]` of the masked sequence (differentiable;
    eager only: the packed lengths go to the host). `x` `(batch, time, in)`
    and `mask` `(batch, time)` in processing order; `hx` and the finals
    `(1, batch, units)`."""
    steps = x.shape[1]
    mask = mask.to(torch.bool)
    lengths = mask.sum(dim=1)
    # valid steps first, in order (stable): the states only see those
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    compact = x.gather(1, order[..., None].expand(-1, -1, x.shape[-1]))
    packed = pack_padded_sequence(compact, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
    sorted_hx = [h.index_select(1, packed.sorted_indices) for h in hx]
    out, *final = _packed_call(mode, packed.data, packed.batch_sizes, sorted_hx, weights, has_bias, train)
    out, _ = torch._VF._pad_packed_sequence(out, packed.batch_sizes, True, 0.0, steps)
    out = out.index_select(0, packed.unsorted_indices)
    final = [h.index_select(1, packed.unsorted_indices) for h in final]
    # step t shows the output of the last valid step up to t
    seen = mask.cumsum(dim=1)
    source = (seen - 1).clamp(min=0)
    out = out.gather(1, source[..., None].expand(-1, -1, out.shape[-1]))
    keep = mask if zero_output_for_mask else seen > 0
    out = torch.where(keep[..., None], out, torch.zeros_like(out))
    nonempty = (lengths > 0)[None, :, None]
    final = [torch.where(nonempty, h, h0) for h, h0 in zip(final, hx)]
    return [out, *final]


def _packed_call(mode, data, batch_sizes, hx, weights, has_bias, train):
    if mode == "lstm":
        out, h, c = torch._VF.lstm(data, batch_sizes, (hx[0], hx[1]), weights, has_bias, 1, 0.0, train, False)
        return [out, h, c]
    fn = {"gru": torch._VF.gru, "rnn_tanh": torch._VF.rnn_tanh, "rnn_relu": torch._VF.rnn_relu}[mode]
    out, h = fn(data, batch_sizes, hx[0], weights, has_bias, 1, 0.0, train, False)
    return [out, h]


@torch.library.custom_op("kerasish::fused_rnn_masked", mutates_args=())
def fused_rnn_masked(
    mode: str,
    x: torch.Tensor,
    mask: torch.Tensor,
    hx: list[torch.Tensor],
    weights: list[torch.Tensor],
    has_bias: bool,
    train: bool,
    zero_output_for_mask: bool,
) -> list[torch.Tensor]:
    """`[outputs, h_n(, c_n)]` of `masked_sequence`."""
    with torch.no_grad():
        return [t.contiguous() for t in masked_sequence(mode, x, mask, hx, weights, has_bias, train,
                                                        zero_output_for_mask)]


@fused_rnn_masked.register_fake
def _(mode, x, mask, hx, weights, has_bias, train, zero_output_for_mask):
    out = x.new_empty((*x.shape[:-1], hx[0].shape[-1]))
    return [out, *(h.new_empty(h.shape) for h in hx)]


@torch.library.custom_op("kerasish::fused_rnn_masked_backward", mutates_args=())
def fused_rnn_masked_backward(
    mode: str,
    x: torch.Tensor,
    mask: torch.Tensor,
    hx: list[torch.Tensor],
    weights: list[torch.Tensor],
    has_bias: bool,
    zero_output_for_mask: bool,
    grads: list[torch.Tensor],
) -> list[torch.Tensor]:
    """Gradients `[dx, *dhx, *dweights]` of `fused_rnn_masked` (by recomputation)."""
    inputs = [t.detach().requires_grad_() for t in (x, *hx, *weights)]
    n_hx = len(hx)
    with rnn_op._autograd_on():
        outs = masked_sequence(mode, inputs[0], mask, inputs[1 : 1 + n_hx], inputs[1 + n_hx :], has_bias, True,
                               zero_output_for_mask)
        found = torch.autograd.grad(outs, inputs, grads, allow_unused=True)
    return [rnn_op._like(g, t) for g, t in zip(found, inputs)]


@fused_rnn_masked_backward.register_fake
def _(mode, x, mask, hx, weights, has_bias, zero_output_for_mask, grads):
    return [t.new_empty(t.shape) for t in (x, *hx, *weights)]


def _setup_context(ctx, inputs, output):
    mode, x, mask, hx, weights, has_bias, _, zero_output_for_mask = inputs
    ctx.mode, ctx.has_bias, ctx.n_hx, ctx.zero_output_for_mask = mode, has_bias, len(hx), zero_output_for_mask
    ctx.save_for_backward(x, mask, *hx, *weights)


@torch.compiler.disable
def _backward(ctx, grads):
    # (disabled for dynamo: a step compiled around `loss.backward()`, as
    # fit's, would otherwise compile this frame again for every length)
    saved = ctx.saved_tensors
    n = ctx.n_hx
    x, mask, hx, weights = saved[0], saved[1], list(saved[2 : 2 + n]), list(saved[2 + n :])
    if any(g is None for g in grads):  # an unused output (an LSTM's final `c`)
        shapes = [(*x.shape[:-1], hx[0].shape[-1]), *(h.shape for h in hx)]
        grads = [x.new_zeros(s) if g is None else g for g, s in zip(grads, shapes)]
    found = fused_rnn_masked_backward(ctx.mode, x, mask, hx, weights, ctx.has_bias, ctx.zero_output_for_mask,
                                      grads)
    return None, found[0], None, found[1 : 1 + n], found[1 + n :], None, None, None


fused_rnn_masked.register_autograd(_backward, setup_context=_setup_context)
