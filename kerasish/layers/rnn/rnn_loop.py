"""The generic time loop of `RNN` with Keras's masking semantics.

Keras (`keras.src.backend.torch.rnn.rnn`): at a masked step the states are
carried over unchanged and the output is the previous step's output (zeros
before the first unmasked step), or zeros with `zero_output_for_mask=True`.
With `go_backwards=True` the sequence and the mask are reversed and the
outputs are returned in processing (reversed) order. The last output is the
(masked) output of the last processed step.
"""

from __future__ import annotations

import torch


def rnn_loop(step, inputs, states, mask=None, go_backwards=False, zero_output_for_mask=False, return_all_outputs=True):
    """Runs `step(x_t, states) -> (output, new_states)` over axis 1 of `inputs`.

    Args:
        step: The step function; `states` is a flat list of tensors.
        inputs: `(batch, time, ...)`.
        states: Flat list of initial state tensors.
        mask: Optional `(batch, time)` mask (True = use the step).
        go_backwards: Process the sequence in reverse.
        zero_output_for_mask: Masked steps output zeros instead of the
            previous output.
        return_all_outputs: Keep every step's output (else only the last).

    Returns:
        `(last_output, outputs, final_states)`; `outputs` is
        `(batch, time, ...)` (time 1 when `return_all_outputs=False`).
    """
    steps = inputs.unbind(1)
    masks = None
    if mask is not None:
        masks = mask.to(torch.bool).unbind(1)
        if go_backwards:
            masks = masks[::-1]
    if go_backwards:
        steps = steps[::-1]
    outputs = []
    prev_output = None
    last = len(steps) - 1
    for t, x_t in enumerate(steps):
        output, new_states = step(x_t, states)
        if masks is not None:
            m = masks[t]
            if prev_output is None or zero_output_for_mask:
                prev_output = torch.zeros_like(output)
            output = torch.where(_expand(m, output), output, prev_output)
            new_states = [torch.where(_expand(m, s), s, old) for s, old in zip(new_states, states)]
            prev_output = output
        states = new_states
        if return_all_outputs or t == last:
            outputs.append(output)
    stacked = torch.stack(outputs, dim=1)
    return outputs[-1], stacked, list(states)


def _expand(mask_t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`(batch,)` mask -> broadcastable against `like` `(batch, ...)`."""
    return mask_t.reshape(mask_t.shape[0], *([1] * (like.ndim - 1)))
