"""Sharded checkpoints (`torch.distributed.checkpoint`) of models laid out
by `keras.distribution.ModelParallel` (DTensor weights, or FSDP2 along the
batch axis) or `fully_shard`ed: every process writes and reads its own
shards, the optimizer's moments and step count included. Also written by
`keras.callbacks.ModelCheckpoint(..., sharded=True)`. In a single process
(no process group) the same format is written and read whole."""

from __future__ import annotations

import contextlib
import warnings

import torch


def _no_dist() -> bool:
    """No process group: one process writes/reads the whole checkpoint
    (the same directory format, so a job can resume on another count)."""
    return not (torch.distributed.is_available() and torch.distributed.is_initialized())


@contextlib.contextmanager
def _single_process_quiet():
    """torch warns on every single-process save/load that it assumes one
    process; here that is the documented intent, not a surprise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


def _checkpoint_state(model) -> dict:
    """What a sharded checkpoint holds: the model's state_dict and its
    optimizer's (keyed by parameter names, through torch's `get_state_dict`,
    which understands DTensor and FSDP2 weights), plus the Keras optimizer's
    step count (its `iterations`, which Adam's bias correction reads)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    opt = getattr(model, "optimizer", None)
    if opt is None or not getattr(opt, "param_groups", None) or not getattr(opt, "built", True):
        return {"model": get_state_dict(model, [])[0]}
    model_sd, opt_sd = get_state_dict(model, opt)
    state = {"model": model_sd, "optimizer": opt_sd}
    steps = getattr(opt, "_iterations", None)  # (raw: counts accumulation steps too)
    if isinstance(steps, torch.Tensor):
        state["iterations"] = steps.detach().reshape(1).clone()
    return state


def save_sharded_checkpoint(model, checkpoint_id) -> None:
    """Writes `model` (and its optimizer's state) as a
    `torch.distributed.checkpoint`: a directory where every process writes
    its own shards, with no gather on one process. Call it on every rank
    (e.g. at an epoch end, or after `fit`), under `ModelParallel` (DTensor
    weights, or weights sharded along the batch axis by FSDP2) or for a
    `fully_shard`ed model.

        from kerasish.distribution import model_parallel
        model_parallel.save_sharded_checkpoint(model, "ckpt/epoch3")
        ...
        model = build_model(); model.compile(...)  # same distribution set
        model_parallel.load_sharded_checkpoint(model, "ckpt/epoch3")
        model.fit(...)  # the same next step as the model that wrote it

    Args:
        model: A built (and, to include the optimizer, trained or
            `optimizer.build`-ed) model.
        checkpoint_id: The checkpoint directory.
    """
    import torch.distributed.checkpoint as dcp

    with _single_process_quiet():
        dcp.save(_checkpoint_state(model), checkpoint_id=checkpoint_id, no_dist=_no_dist())


def load_sharded_checkpoint(model, checkpoint_id) -> None:
    """Reads `save_sharded_checkpoint`'s directory into `model` on every
    rank. A model already laid out reads just its shards; a fresh one
    (built, not yet trained) reads whole values, laid out by its first
    `fit`/`evaluate`/`predict` like any weights. A compiled model's
    optimizer is built on the model's weights first if needed, so its
    moments and step count resume too.

    Args:
        model: A built model with the architecture that was saved.
        checkpoint_id: The checkpoint directory.

    Raises:
        ValueError: `model` is not built.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    if not model.built:
        raise ValueError(
            f"`load_sharded_checkpoint` needs a built model (its weights receive the values): call "
            f"`model.build(input_shape)` or the model on a batch first. Received: model '{model.name}' (unbuilt)"
        )
    opt = getattr(model, "optimizer", None)
    if opt is not None and hasattr(opt, "build") and not getattr(opt, "built", True):
        opt.build(model.trainable_weights)
    state = _checkpoint_state(model)
    with _single_process_quiet():
        dcp.load(state, checkpoint_id=checkpoint_id, no_dist=_no_dist())
    if "optimizer" in state:
        set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    else:
        set_state_dict(model, [], model_state_dict=state["model"], optim_state_dict={})
    if "iterations" in state:
        with torch.no_grad():
            opt._iterations.fill_(int(state["iterations"][0]))
