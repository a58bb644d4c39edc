"""The time loop of `RNN` as one `scan` (torch's higher-order op) for
`torch.export` and ONNX, so that exported recurrent models take any number
of time steps.

Why: traced as is, the fused `torch._VF` kernels decompose into one set of
ops per time step, and the Python time loop (`rnn_loop`) unrolls; either
way the exported program holds exactly the traced number of steps.
`torch._higher_order_ops.scan` keeps one step (the cell's own `call`, so
every cell, mask and option works the same) and a symbolic length:
`torch.export` keeps it as `torch.ops.higher_order.scan` (the program
needs no kerasish to run) and the ONNX exporter turns it into an ONNX
`Scan` loop (see `wanted` for when).

The semantics are `rnn_loop`'s (Keras's): masked steps carry the states
over and output the previous output (zeros before the first valid step,
or always zeros with `zero_output_for_mask=True`); `go_backwards` processes
the reversed sequence and returns outputs in processing order.
"""

from __future__ import annotations

import contextlib

import torch


def wanted(sequences: torch.Tensor) -> bool:
    """True while `torch.export` traces (strict, non-strict, and the ONNX
    exporter's) a symbolic number of time steps. Strict export (dynamo)
    shows a symbolic length as a plain int, so there it is always True. A
    fixed length in non-strict export keeps the traced kernels (`aten.lstm`
    and friends, which the ONNX exporter turns into ONNX `LSTM`/`GRU`/`RNN`
    ops)."""
    if not torch.compiler.is_exporting():
        return False
    return torch.compiler.is_dynamo_compiling() or not isinstance(sequences.shape[1], int)


def rnn_scan(
    step,
    inputs,
    states,
    output_size: int,
    mask=None,
    go_backwards=False,
    zero_output_for_mask=False,
    return_all_outputs=True,
    training=False,
    weights_of=None,
):
    """`rnn_loop` as one `scan` over axis 1 of `inputs`.

    Args:
        step: `step(x_t, states) -> (output, new_states)`; `states` is a flat
            list of tensors whose shapes and dtypes the step keeps.
        inputs: `(batch, time, ...)`.
        states: Flat list of initial state tensors.
        output_size: Last dim of a step's `(batch, output_size)` output (the
            output carried through masked steps starts as zeros of it).
        mask, go_backwards, zero_output_for_mask, return_all_outputs: As
            `rnn_loop`.
        training: Keep autograd through the loop (a model in training
            mode exported with autograd on). An inference export (False)
            runs the loop under `torch.no_grad()` on detached inputs,
            states and weights (those of `weights_of`, the cell): torch's
            scan autograd fails on symbolic batch sizes (it stacks the
            SymInt sizes a step's backward saves) under strict export, and
            in the ONNX exporter's passes, which re-run the exported graph
            with autograd on (detached weights are in the graph; `no_grad`
            is not). With `training`, the step must keep no batch size for
            its backward: the built-in cells split batch-sized tensors
            rather than slicing them (a slice's backward saves the input's
            size); a custom cell that slices may still fail there with a
            dynamic batch: export it in eval mode (as `Model.export` does)
            or under `torch.no_grad()`.
        weights_of: The module whose parameters the step reads.

    Returns:
        `(last_output, outputs, final_states)` as `rnn_loop`.
    """
    if not training:
        inputs, states = inputs.detach(), [s.detach() for s in states]
        with torch.no_grad(), _detached_weights(weights_of):
            return _scan(step, inputs, states, output_size, mask, go_backwards, zero_output_for_mask,
                         return_all_outputs)
    return _scan(step, inputs, states, output_size, mask, go_backwards, zero_output_for_mask, return_all_outputs)


def _scan(step, inputs, states, output_size, mask, go_backwards, zero_output_for_mask, return_all_outputs):
    from torch._higher_order_ops.scan import scan

    xs = inputs.transpose(0, 1)  # scan runs over the leading axis
    if go_backwards:
        xs = xs.flip(0)
    n_states = len(states)
    if mask is None:

        def body(carry, x_t):
            output, new_states = step(x_t, list(carry))
            # (a scan output may not alias the carry: a cell's output often is its state)
            return tuple(new_states), output.clone()

        final, outputs = scan(body, tuple(states), xs)
    else:
        ms = mask.to(torch.bool).transpose(0, 1)
        if go_backwards:
            ms = ms.flip(0)

        def body(carry, inp):
            prev, old = carry[0], list(carry[1:])
            x_t, m_t = inp
            output, new_states = step(x_t, old)
            base = torch.zeros_like(output) if zero_output_for_mask else prev
            output = torch.where(_expand(m_t, output), output, base)
            new_states = [torch.where(_expand(m_t, s), s, o) for s, o in zip(new_states, old)]
            return (output, *new_states), output.clone()

        batch = inputs.shape[0]
        prev = inputs.new_zeros((batch, output_size), dtype=states[0].dtype if states else inputs.dtype)
        carry, outputs = scan(body, (prev, *states), (xs, ms))
        final = carry[1 : 1 + n_states]
    outputs = outputs.transpose(0, 1)
    last = outputs[:, -1]
    if not return_all_outputs:
        outputs = last[:, None]
    return last, outputs, list(final)


@contextlib.contextmanager
def _detached_weights(module):
    """`module`'s parameters (its own and its sublayers') replaced by
    detached copies for the duration."""
    if module is None or not isinstance(module, torch.nn.Module):
        yield
        return
    swapped = []
    try:
        for owner in module.modules():
            params = owner._parameters
            for name, p in list(params.items()):
                if p is not None and p.requires_grad:
                    params[name] = p.detach()
                    swapped.append((params, name, p))
        yield
    finally:
        for params, name, p in reversed(swapped):
            params[name] = p


def _expand(mask_t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`(batch,)` mask -> broadcastable against `like` `(batch, ...)`."""
    return mask_t.reshape(mask_t.shape[0], *([1] * (like.ndim - 1)))
