"""`Optimizer.stateless_apply` (Keras 3): one update computed from given
optimizer and model values, returned as new tensors, leaving the optimizer
and the model as they were.

Keras runs `apply` inside a `StatelessScope` that maps its variables to the
given values. A kerasish optimizer keeps its slots as plain torch tensors in
`optimizer.state` (what `optimizer.variables` shows are views of them), and
its fused update kernels write those tensors directly, so a scope cannot
redirect them. Instead the given values are written into the optimizer's and
the model's variables, `apply` runs (the very same update as a stateful
step, for every optimizer, custom Keras 3 style ones included), the results
are copied out and the previous values written back, also when the update
raises.
"""

from __future__ import annotations

import torch


def _as_value(value, variable, argument: str, index: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        import numpy as np

        value = torch.as_tensor(np.asarray(value))
    if tuple(value.shape) != tuple(variable.shape):
        raise ValueError(
            f"Argument `{argument}` must hold tensors shaped like the variables they stand for. Entry {index} "
            f"stands for '{getattr(variable, 'path', None)}' of shape {tuple(variable.shape)}. Received: a "
            f"tensor of shape {tuple(value.shape)}"
        )
    return value


def _write(variable, value) -> None:
    assign = variable.__dict__.get("assign")
    if assign is not None:  # the learning rate view: its `assign` writes through to the optimizer
        assign(value)
        return
    with torch.no_grad():
        torch.Tensor.copy_(variable, value.to(device=variable.device, dtype=variable.dtype))


def _read(variable) -> torch.Tensor:
    return torch.Tensor.detach(variable).clone()


def stateless_apply(optimizer, optimizer_variables, grads, trainable_variables):
    """See `Optimizer.stateless_apply`."""
    name = type(optimizer).__name__
    from kerasish.backend.stateless_scope import get_stateless_scope

    if get_stateless_scope() is not None:
        # its writes into the variables would be collected by the scope instead of made
        raise RuntimeError(
            f"{name}.stateless_apply cannot run inside a `keras.StatelessScope` in kerasish. Call it outside "
            "the scope: its result depends only on the values it is given."
        )
    if not optimizer.built:
        raise ValueError(
            f"To call `stateless_apply`, {name} must be built (i.e. its variables must have been created). "
            "You can build it via `optimizer.build(trainable_variables)`."
        )
    own = optimizer.variables
    targets = optimizer._trainable_variables
    optimizer_variables = list(optimizer_variables)
    trainable_variables = list(trainable_variables)
    if len(optimizer_variables) != len(own):
        raise ValueError(
            f"Argument `optimizer_variables` must be a list of tensors corresponding 1:1 to {name}().variables. "
            f"Received list with length {len(optimizer_variables)}, but expected {len(own)} variables."
        )
    if len(trainable_variables) != len(targets):
        raise ValueError(
            "Argument `trainable_variables` must be a list of tensors corresponding 1:1 to the trainable "
            f"variables list that the optimizer was built with. Received len(trainable_variables) == "
            f"{len(trainable_variables)} whereas the optimizer was built with {len(targets)} variables."
        )
    given = ([_as_value(v, var, "optimizer_variables", i) for i, (v, var) in enumerate(zip(optimizer_variables, own))]
             + [_as_value(v, var, "trainable_variables", i)
                for i, (v, var) in enumerate(zip(trainable_variables, targets))])
    everything = own + targets
    saved = [_read(v) for v in everything]
    try:
        for var, value in zip(everything, given):
            _write(var, value)
        optimizer.apply(list(grads))
        new_trainable = [_read(p) for p in targets]
        # fetched again: the learning rate entry is a snapshot taken when `variables` is read
        new_optimizer = [_read(v) for v in optimizer.variables]
    finally:
        for var, value in zip(everything, saved):
            _write(var, value)
    return new_trainable, new_optimizer
