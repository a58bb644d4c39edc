"""`kerasish::rnn_time_loop`: the generic time loop of `RNN` (the one that
calls the cell once per step) as one opaque op for `torch.compile`.

Why: traced as is, the Python loop (`rnn_loop`) unrolls into one set of
ops per time step, so every new sequence length is a new graph (dynamo
recompiles per length until its `recompile_limit`, 8, then runs the frame
eagerly), and long sequences take long to compile. The cells this concerns
are those without a fused torch kernel: `GRU(reset_after=False)`, other
activations, `recurrent_dropout` in training, `StackedRNNCells` and user
cells. (A `scan` over the step, as `torch.export` gets from `rnn_scan`,
broke inductor; see the git log.)

How: the layer is registered under an int handle (a constant of the
graph); the op receives the sequence, the mask, the initial states and
every parameter of the cell as tensors, and its implementation runs the
very eager loop (`RNN._loop_call`, so the numbers are eager's) with the
cell's parameters swapped for the tensors it received. Its fake (shape)
implementation takes a symbolic length, so one graph serves every length.

Backward recomputes the forward with autograd on and differentiates it
(as `rnn_op` does for the fused kernels), so a compiled training step pays
one extra forward of the loop. Dropout masks are drawn again identically:
unseeded masks from a seed the graph draws per call (the device's default
generator is seeded with it for the loop, then restored), seeded masks
from the draw counters the forward returns.

Limits (these still unroll, one graph per length): cells that are not
`torch.nn.Module`s (their weights cannot be handed over) and cells whose
`output_size` is not an int (e.g. ConvLSTM cells). A cell must read its
trainable tensors from its own parameters (or its sublayers'): a tensor it
closes over that requires grad would get no gradient through the op, so
the first backward of each layer checks that and raises a ValueError.
"""

from __future__ import annotations

import contextlib
import itertools
import weakref

import torch

from kerasish.layers.rnn import rnn_op
from kerasish.random import seed_generator

_LAYERS: dict = {}  # handle -> weakref to the RNN layer
_HANDLES = itertools.count(1)


def register(layer) -> int:
    """A fresh handle for `layer` (at construction, and for a copy)."""
    handle = next(_HANDLES)
    _LAYERS[handle] = weakref.ref(layer, lambda _, h=handle: _LAYERS.pop(h, None))
    layer.__dict__["_loop_op_handle"] = handle
    return handle


def _layer(handle: int):
    ref = _LAYERS.get(handle)
    layer = None if ref is None else ref()
    if layer is None:
        raise RuntimeError(f"kerasish::rnn_time_loop: the RNN layer of handle {handle} no longer exists")
    return layer


def wanted(layer, sequences, output_size) -> bool:
    """Whether this call runs the time loop as the op: under `torch.compile`
    (not export, which has the scan), for a module cell with an int output
    size."""
    if not torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return False
    if sequences.device.type == "meta" or not isinstance(output_size, int) or isinstance(output_size, bool):
        return False
    return isinstance(layer.cell, torch.nn.Module) and "_loop_op_handle" in layer.__dict__


def weight_slots(cell) -> list:
    """`(owner module, name)` of every parameter of `cell`, each once."""
    slots, seen = [], set()
    for owner in cell.modules():
        for name, p in owner._parameters.items():
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            slots.append((owner, name))
    return slots


def dropout_cells(cell) -> list:
    """The cells of `cell` (itself or sublayers) that draw dropout masks."""
    from kerasish.layers.rnn.base_rnn_cell import DropoutRNNCell

    return [m for m in cell.modules() if isinstance(m, DropoutRNNCell)]


def draws_masks(cell, training) -> bool:
    if not training:
        return False
    return any(c.dropout > 0 or c.recurrent_dropout > 0 for c in dropout_cells(cell))


@contextlib.contextmanager
def _swapped(slots, tensors):
    """The cell's parameters replaced by `tensors` for the duration."""
    old = [owner._parameters[name] for owner, name in slots]
    try:
        for (owner, name), t in zip(slots, tensors):
            owner._parameters[name] = t
        yield
    finally:
        for (owner, name), p in zip(slots, old):
            owner._parameters[name] = p


@contextlib.contextmanager
def _seeded(device, seed, cells, counts):
    """The device's default generator seeded with `seed` (restored after),
    and the seeded cells' draw counters set to `counts` (when given)."""
    gen = None
    if seed is not None:
        gen = torch.cuda.default_generators[device.index or 0] if device.type == "cuda" else torch.default_generator
        saved = gen.get_state()
        gen.manual_seed(int(seed))
    replay = contextlib.nullcontext()
    if counts is not None:  # (a recomputation: the counters are left as they were)
        current = [c.__dict__.get("_dropout_calls", 0) for c in cells]
        for c, n in zip(cells, counts):
            c.__dict__["_dropout_calls"] = n
        replay = seed_generator.own_replay()  # (it runs in the backward pass: no checkpoint replay)
    try:
        with replay:
            yield
    finally:
        if gen is not None:
            gen.set_state(saved)
        if counts is not None:
            for c, n in zip(cells, current):
                c.__dict__["_dropout_calls"] = n


def _run(handle, x, mask, states, weights, seed, training, counts=None):
    """`[outputs, *final_states, draw_counts]` of the eager loop."""
    layer = _layer(handle)
    cell = layer.cell
    slots = weight_slots(cell)
    cells = dropout_cells(cell)
    before = torch.tensor([c.__dict__.get("_dropout_calls", 0) for c in cells], dtype=torch.int64)
    with _swapped(slots, weights), _seeded(x.device, seed, cells, counts):
        _, outputs, final = layer._loop_call(x, list(states), mask, training)
    dtype = states[0].dtype if states else x.dtype
    return [outputs.to(dtype), *(f.to(s.dtype) for f, s in zip(final, states)), before]


@torch.library.custom_op("kerasish::rnn_time_loop", mutates_args=())
def rnn_time_loop(
    handle: int,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    states: list[torch.Tensor],
    weights: list[torch.Tensor],
    seed: torch.Tensor | None,
    training: bool,
) -> list[torch.Tensor]:
    """`[outputs, *final_states, draw_counts]` of layer `handle`'s time loop
    (`outputs` `(batch, time or 1, output_size)` as `RNN._loop_call`)."""
    with torch.no_grad():
        out = _run(handle, x, mask, states, weights, None if seed is None else seed.item(), training)
    return [t.contiguous() for t in out]


@rnn_time_loop.register_fake
def _(handle, x, mask, states, weights, seed, training):
    layer = _layer(handle)
    steps = x.shape[1] if layer.return_sequences else 1
    size = layer._loop_output_size()
    dtype = states[0].dtype if states else x.dtype
    out = x.new_empty((x.shape[0], steps, size), dtype=dtype)
    count = x.new_empty((len(dropout_cells(layer.cell)),), dtype=torch.int64, device="cpu")
    return [out, *(s.new_empty(s.shape) for s in states), count]


@torch.library.custom_op("kerasish::rnn_time_loop_backward", mutates_args=())
def rnn_time_loop_backward(
    handle: int,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    states: list[torch.Tensor],
    weights: list[torch.Tensor],
    seed: torch.Tensor | None,
    counts: torch.Tensor,
    grads: list[torch.Tensor],
) -> list[torch.Tensor]:
    """Gradients `[dx, *dstates, *dweights]` of `rnn_time_loop` (by recomputation)."""
    inputs = [t.detach().requires_grad_(t.is_floating_point()) for t in (x, *states, *weights)]
    n = len(states)
    layer = _layer(handle)
    with rnn_op._autograd_on():
        outs = _run(handle, inputs[0], mask, inputs[1 : 1 + n], inputs[1 + n :], None if seed is None else seed.item(),
                    True, counts.tolist())[:-1]
        if not layer.__dict__.get("_loop_op_checked"):
            _check_closed_over(layer, outs, inputs)
        wanted = [t for t in inputs if t.requires_grad]
        found = iter(torch.autograd.grad(outs, wanted, grads, allow_unused=True))
    return [rnn_op._like(next(found) if t.requires_grad else None, t) for t in inputs]


def _check_closed_over(layer, outs, inputs):
    """Raises when the loop's graph reaches a leaf that requires grad and
    is none of the op's inputs: its gradient would be lost."""
    known = {id(t) for t in inputs}
    stack = [o.grad_fn for o in outs if o.grad_fn is not None]
    seen = set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        var = getattr(node, "variable", None)
        if var is not None and id(var) not in known:
            raise ValueError(
                f"Layer '{layer.name}': under torch.compile the time loop of cell {type(layer.cell).__name__} runs "
                "as one op that hands the cell its own parameters; the cell also reads a tensor that requires "
                f"grad and is not one of its parameters (shape {tuple(var.shape)}), whose gradient would be "
                "lost. Make it a weight of the cell (`add_weight`) or of a sublayer. "
                f"Received: cell={layer.cell!r}"
            )
        stack.extend(fn for fn, _ in node.next_functions)
    layer.__dict__["_loop_op_checked"] = True


@rnn_time_loop_backward.register_fake
def _(handle, x, mask, states, weights, seed, counts, grads):
    return [t.new_empty(t.shape) for t in (x, *states, *weights)]


def _setup_context(ctx, inputs, output):
    handle, x, mask, states, weights, seed, training = inputs
    ctx.handle, ctx.n_states, ctx.has_mask, ctx.has_seed = handle, len(states), mask is not None, seed is not None
    saved = [x, *states, *weights, output[-1]]
    if mask is not None:
        saved.append(mask)
    if seed is not None:
        saved.append(seed)
    ctx.save_for_backward(*saved)


@torch.compiler.disable
def _backward(ctx, grads):
    # (disabled for dynamo: a step compiled around `loss.backward()`, as
    # fit's, would otherwise compile this frame again for every length)
    saved = list(ctx.saved_tensors)
    seed = saved.pop() if ctx.has_seed else None
    mask = saved.pop() if ctx.has_mask else None
    counts = saved.pop()
    n = ctx.n_states
    x, states, weights = saved[0], saved[1 : 1 + n], saved[1 + n :]
    grads = list(grads[: 1 + n])
    if any(g is None for g in grads):  # an unused output (a final state nobody reads)
        layer = _layer(ctx.handle)
        steps = x.shape[1] if layer.return_sequences else 1
        shapes = [(x.shape[0], steps, layer._loop_output_size()), *(s.shape for s in states)]
        like = [states[0] if states else x, *states]
        grads = [l.new_zeros(s) if g is None else g for g, s, l in zip(grads, shapes, like)]
    found = rnn_time_loop_backward(ctx.handle, x, mask, states, weights, seed, counts, grads)
    return None, found[0], None, found[1 : 1 + n], found[1 + n :], None, None


rnn_time_loop.register_autograd(_backward, setup_context=_setup_context)
