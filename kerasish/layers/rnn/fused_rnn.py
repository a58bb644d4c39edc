"""Whole-sequence fused kernels (`torch._VF.lstm/gru/rnn_tanh/rnn_relu`, the
calls `nn.LSTM`/`nn.GRU`/`nn.RNN` make) for the Keras cells.

Keras <-> torch conventions, all here:

- Kernels: Keras `(in, G * units)` is torch's `weight_ih` `(G * units, in)`
  transposed; same for the recurrent kernel.
- LSTM gate order: Keras i, f, c, o == torch i, f, g, o. Keras has one bias;
  torch's `b_hh` is zeros.
- GRU gate order: Keras z, r, h; torch r, z, n (columns reordered here).
  Keras `reset_after=True` (bias `(2, 3u)` = input bias, recurrent bias) is
  torch's formulation; `reset_after=False` has no torch kernel (loop path).
- Weight layout: the Keras-shaped parameters stay the source of truth (what
  `get_weights`, saving and the optimizer see). LSTM stores its kernels in
  torch's layout (`base_rnn_cell.store_transposed`: shape `(in, 4 * units)`,
  storage `(4 * units, in)` contiguous), so training on the CPU hands the
  oneDNN kernel `kernel.t()` with no copy and the gradients come back in the
  parameters' own layout (measured, 1 thread: fwd+bwd 1.04x nn.LSTM with a
  transposed copy per call and strided gradient adds, 1.01x without).
  SimpleRNN (contiguous Keras storage) gets one transposed copy per weight:
  the oneDNN kernel reads torch's `(G * units, in)` layout fastest
  (transposed views +2%, the former flat `cat` +3.5-5%). GRU's copy also
  reorders its gates (a `chunk` and a `cat` per weight). On CUDA, cuDNN wants
  one contiguous buffer (it would otherwise compact the weights itself, with
  a warning), so the weights are laid out into one buffer per call there.
  Nothing re-laid is kept across calls, with or without autograd: a weight
  changed through `.data` (manual updates, weight clipping) bumps no version
  counter, so a cache keyed on versions handed the kernel stale weights.
- Under `torch.compile` the kernel is one opaque custom op
  (`kerasish::fused_rnn`, see `rnn_op.py`): inductor would otherwise unroll
  the time loop into per-step ops (a minute of compile time, slower steps).
  `torch.export` keeps torch's own op when the time length is fixed
  (non-strict); a symbolic length runs the loop as one `scan` over the
  cell's step (`rnn_scan.py`). Either way exported programs need no kerasish.
- Masks: Keras carries states through masked steps. In processing order, a
  mask that is a run of valid steps followed by padding ("prefix") or padding
  followed by valid steps ("suffix", e.g. right padding with go_backwards or
  left padding) is computed exactly with packed sequences; any other mask
  (holes) goes to the time loop. Deciding which, and the lengths packed
  sequences take on the host (torch's `batch_sizes` API), cost one
  device-to-host transfer per masked call (`mask_layout`); everything else
  stays on the device.
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pack_padded_sequence

from kerasish import activations
from kerasish.layers.rnn import rnn_op
from kerasish.layers.rnn.gru_cell import GRUCell
from kerasish.layers.rnn.lstm_cell import LSTMCell
from kerasish.layers.rnn.simple_rnn_cell import SimpleRNNCell

_TANH = (activations.tanh, torch.tanh)
_SIGMOID = (activations.sigmoid, torch.sigmoid)
_RELU = (activations.relu, torch.relu)

# counts whole-sequence fused calls (tests check the fast path is taken)
FUSED_CALLS = [0]


def fused_mode(cell) -> str | None:
    """The `torch._VF` kernel that computes `cell` exactly, or None. Only the
    exact kerasish cell classes qualify (a subclass may change `call`)."""
    kind = type(cell)
    if kind is LSTMCell:
        ok = cell.activation in _TANH and cell.recurrent_activation in _SIGMOID
        return "lstm" if ok else None
    if kind is GRUCell:
        ok = cell.reset_after and cell.activation in _TANH and cell.recurrent_activation in _SIGMOID
        return "gru" if ok else None
    if kind is SimpleRNNCell:
        if cell.activation in _TANH:
            return "rnn_tanh"
        if cell.activation in _RELU:
            return "rnn_relu"
    return None


def input_dropout_active(cell, training) -> bool:
    if not training or cell.dropout <= 0:
        return False
    return type(cell) is SimpleRNNCell or cell.dropout < 1.0


def can_fuse(cell, training) -> bool:
    """Recurrent dropout and per-gate input dropout masks need the loop."""
    if training and cell.recurrent_dropout > 0:
        return False
    if input_dropout_active(cell, training) and cell.dropout_mask_count is not None:
        return False
    return True


def _gru_order(w: torch.Tensor, u: int) -> torch.Tensor:
    """Keras z, r, h columns -> torch r, z, n."""
    return torch.cat((w[..., u : 2 * u], w[..., :u], w[..., 2 * u :]), dim=-1)


def flat_weights(mode: str, cell, like: torch.Tensor) -> list:
    """`[w_ih, w_hh(, b_ih, b_hh)]` in torch's layout for inputs `like`,
    re-laid from the Keras-layout weights on every call (nothing cached: a
    copy kept across calls goes stale when a weight changes through `.data`,
    which no version counter sees).

    On the CPU: LSTM/SimpleRNN weights are transposed views or copies
    (`_torch_layout_weights`); GRU's are reordered copies
    (`_gru_torch_layout`, eager; `_relaid_weights` under `torch.compile`).
    On CUDA: one contiguous buffer, as cuDNN wants it."""
    dtype = like.dtype
    if like.device.type == "cpu":
        if mode != "gru":
            return _torch_layout_weights(cell, dtype)
        if not torch.compiler.is_compiling():
            return _gru_torch_layout(cell, dtype)
    return _relaid_weights(mode, cell, dtype)


def _gru_torch_layout(cell, dtype: torch.dtype) -> list:
    """GRU weights in torch's gate order, eager: Keras's `(in, 3 * units)`
    kernel (gates z, r, h) split into its three column blocks (views) and
    concatenated r, z, h (one contiguous copy, row by row), handed over
    transposed (torch's `(3 * units, in)` shape, a view); the `(2, 3 * units)`
    bias the same way, then split into `b_ih`, `b_hh`. Three dispatched ops
    per weight where slicing and concatenating took five, and a backward of
    views and one `cat` where each slice's backward filled a zero buffer; the
    same values in the same layout as before, so the same numbers.
    (Measured in instructions, GRU(64) on 8x20x32, 1 thread: a contiguous
    `(3 * units, in)` copy instead costs a strided transposing copy per call,
    1.058x nn.GRU's training step and 1.13x its no-grad call, against 1.037x
    and 1.03x this way.)"""
    k, rk, b = cell.kernel, cell.recurrent_kernel, cell.bias
    out = []
    for w in (k, rk):
        z, r, h = w.chunk(3, dim=1)
        out.append(torch.cat((r, z, h), dim=1).t())
    if b is not None:
        z, r, h = b.chunk(3, dim=1)
        out += torch.cat((r, z, h), dim=1).unbind(0)
    if out[0].dtype != dtype:
        out = [w.to(dtype) for w in out]
    return out


def _torch_layout_weights(cell, dtype: torch.dtype) -> list:
    """LSTM/SimpleRNN weights as torch lays them out: Keras's
    `(in, G * units)` kernel transposed is torch's `(G * units, in)` (a view
    of LSTM's torch-layout storage; one copy of SimpleRNN's contiguous Keras
    storage); Keras's one bias is torch's `b_ih` and `b_hh` is zeros (kept on
    the cell)."""
    k, rk, b = cell.kernel, cell.recurrent_kernel, cell.bias
    out = []
    for w in (k, rk):  # (no `.contiguous()` / `.to()` call that would do nothing: each is a dispatched op)
        w = w.t()
        if w.dtype is not dtype:
            w = w.to(dtype)
        out.append(w if w.is_contiguous() else w.contiguous())
    if b is None:
        return out
    if b.dtype is not dtype:
        b = b.to(dtype)
    if torch.compiler.is_compiling():
        return [*out, b, torch.zeros_like(b)]
    zeros = cell.__dict__.get("_zero_bias")
    if zeros is None or zeros.dtype != b.dtype or zeros.device != b.device or zeros.shape != b.shape:
        with torch.inference_mode(False):  # (kept for later calls: a first call under inference_mode made
            # an inference tensor, which the next training call could not save for backward)
            zeros = cell.__dict__["_zero_bias"] = torch.zeros(b.shape, dtype=b.dtype, device=b.device)
    return [*out, b, zeros]


def _gru_weights(cell) -> list:
    u = cell.units
    k, rk, b = cell.kernel, cell.recurrent_kernel, cell.bias
    parts = [_gru_order(k, u).t(), _gru_order(rk, u).t()]
    if b is not None:
        parts += [_gru_order(b[0], u), _gru_order(b[1], u)]
    return parts


def _relaid_weights(mode: str, cell, dtype: torch.dtype) -> list:
    if mode == "gru":
        parts = _gru_weights(cell)
        if cell.kernel.device.type != "cuda":
            return [p.to(dtype) for p in parts]  # one copy each (the reorder)
    else:
        k, rk, b = cell.kernel, cell.recurrent_kernel, cell.bias
        parts = [k.t(), rk.t(), *([] if b is None else [b, torch.zeros_like(b)])]
    # one contiguous buffer, as cuDNN wants it
    flat = torch.cat([p.reshape(-1).to(dtype) for p in parts])
    out, offset = [], 0
    for p in parts:
        n = p.numel()
        out.append(flat[offset : offset + n].view(p.shape))
        offset += n
    return out


def _run(mode, x, states, weights, batch_sizes=None):
    """One `torch._VF` call; `states` are `(batch, units)` tensors."""
    if not torch.compiler.is_compiling():
        FUSED_CALLS[0] += 1
    if x.device.type == "meta" and batch_sizes is None:
        # shape inference (keras.Input graphs): the meta torch._VF kernels
        # decompose into a per-step Python loop (~0.25 s per call at the
        # probe lengths); the shapes are known without running them
        return x.new_empty((*x.shape[:-1], states[0].shape[-1])), [s.new_empty(s.shape) for s in states]
    has_bias = len(weights) == 4
    # cuDNN keeps what backward needs only in train mode; a traced graph takes the train kernel in
    # either grad mode (`jit.trace`'s check re-traces under no_grad: a graph that followed the grad
    # mode failed it, and with it TensorBoard's `add_graph` on any RNN)
    train = torch.is_grad_enabled() or torch.jit.is_tracing()
    hx = [s.unsqueeze(0).contiguous() for s in states]
    if batch_sizes is None and torch.compiler.is_compiling() and not torch.compiler.is_exporting():
        # (torch.export keeps torch's own op: exported programs and ONNX must not need kerasish)
        out, *final = rnn_op.fused_rnn(mode, x, hx, weights, has_bias, train)
        return out, [h[0] for h in final]
    if mode == "lstm":
        if batch_sizes is None:
            out, h, c = torch._VF.lstm(x, (hx[0], hx[1]), weights, has_bias, 1, 0.0, train, False, True)
        else:
            out, h, c = torch._VF.lstm(x, batch_sizes, (hx[0], hx[1]), weights, has_bias, 1, 0.0, train, False)
        return out, [h[0], c[0]]
    fn = {"gru": torch._VF.gru, "rnn_tanh": torch._VF.rnn_tanh, "rnn_relu": torch._VF.rnn_relu}[mode]
    cpu_inference = not train and x.device.type == "cpu" and not torch.compiler.is_compiling()
    if mode == "gru" and batch_sizes is None and cpu_inference:
        # torch's CPU GRU projects all inputs at once with `matmul`, which
        # folds a batch-first (transposed) input into one `mm` only when the
        # weight requires grad (nn.GRU's parameters); the detached inference
        # weights got a `bmm` over the time steps (measured, 1 thread: 1.06x
        # nn.GRU; time-major: 1.01x). A time-major contiguous copy of the
        # input (the copy torch's fold makes) is one `mm`. (SimpleRNN
        # measured no better this way: not used.)
        out, h = fn(x.transpose(0, 1).contiguous(), hx[0], weights, has_bias, 1, 0.0, False, False, False)
        return out.transpose(0, 1), [h[0]]
    if batch_sizes is None:
        out, h = fn(x, hx[0], weights, has_bias, 1, 0.0, train, False, True)
    else:
        out, h = fn(x, batch_sizes, hx[0], weights, has_bias, 1, 0.0, train, False)
    return out, [h[0]]


def mask_layout(mask: torch.Tensor):
    """`("full" | "prefix" | "suffix" | None, lengths, host_lengths)` for a
    `(batch, time)` bool mask in processing order.

    The one device-to-host transfer of a masked fused call: the layout picks
    the kernel (holes need the time loop) and packed sequences take their
    lengths on the host, so both travel in one small tensor (`.cpu()`, a
    no-op for CPU data); `lengths` stays on the mask's device for the
    device-side gathers."""
    steps = mask.shape[1]
    lengths = mask.sum(dim=1)
    ar = torch.arange(steps, device=mask.device)
    prefix = ((ar < lengths[:, None]) == mask).all()
    suffix = ((ar >= (steps - lengths)[:, None]) == mask).all()
    full = (lengths == steps).all()
    host = torch.cat([torch.stack([full, prefix, suffix]).to(lengths.dtype), lengths]).cpu().numpy()
    is_full, is_prefix, is_suffix = host[:3]
    host_lengths = torch.from_numpy(host[3:])
    if is_full:
        return "full", lengths, host_lengths
    if is_prefix:
        return "prefix", lengths, host_lengths
    if is_suffix:
        return "suffix", lengths, host_lengths
    return None, lengths, host_lengths


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


def run_sequence(
    mode, cell, x, states, mask=None, layout=None, lengths=None, zero_output_for_mask=False, host_lengths=None
):
    """Runs the whole (processing-order) sequence `x` `(batch, time, features)`
    from the flat `states`. Returns `(outputs, final_states)` with Keras's
    masking semantics (see the module docstring). `lengths` (on the device)
    and `host_lengths` come from `mask_layout`."""
    weights = flat_weights(mode, cell, x)
    if mask is None or layout == "full":
        return _run(mode, x, states, weights)
    steps = x.shape[1]
    ar = torch.arange(steps, device=x.device)
    if layout == "suffix":  # move the valid steps first
        x = _gather_time(x, (ar[None] + (steps - lengths)[:, None]) % steps)
    clamped = lengths.clamp(min=1)
    if host_lengths is None:
        host_lengths = lengths.cpu()
    packed = pack_padded_sequence(x, host_lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
    sorted_states = [s.index_select(0, packed.sorted_indices) for s in states]
    out, final = _run(mode, packed.data, sorted_states, weights, packed.batch_sizes)
    # (not `pad_packed_sequence`: it copies `unsorted_indices` to the host, a second sync)
    out, _ = torch._VF._pad_packed_sequence(out, packed.batch_sizes, True, 0.0, steps)
    out = out.index_select(0, packed.unsorted_indices)
    final = [s.index_select(0, packed.unsorted_indices) for s in final]
    if layout == "suffix":  # and back
        out = _gather_time(out, (ar[None] + lengths[:, None]) % steps)
    valid = mask[..., None]
    out = torch.where(valid, out, torch.zeros_like(out))
    if layout == "prefix" and not zero_output_for_mask:  # masked steps repeat the last valid output
        out = torch.where(valid, out, _gather_time(out, (clamped - 1)[:, None]))
    nonempty = (lengths > 0)[:, None]
    final = [torch.where(nonempty, s, s0) for s, s0 in zip(final, states)]
    return out, final
