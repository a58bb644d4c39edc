"""What `fit`/`evaluate`/`predict` do under a `keras.distribution` strategy.

`DataParallelRun` is created per loop when `keras.distribution.DataParallel`
is set and the process group has more than one rank. It

- broadcasts the weights (parameters and buffers) from rank 0 before the
  first step, after building an unbuilt model on that step's batch;
- averages gradients across ranks during `backward` (`GradientBuckets`:
  DDP-style buckets, each all-reduced asynchronously as soon as its
  gradients are in, in the same order on every rank), each rank weighted by
  its number of samples (the count rides along in each bucket), so N
  processes on a global batch compute the gradient of one process on that
  batch;
- makes BatchNormalization use the global batch's statistics while `fit`
  trains (Keras's data-parallel step on JAX sees the whole batch), summed
  over the processes holding distinct rows (the batch axis's group under
  `ModelParallel`); as those statistics carry each rank's gradient into the
  other ranks' rows, a step whose BatchNormalization synced weighs each
  rank's loss by its rows before backward and averages the gradients
  unweighted;
- sums metric states across ranks whenever logs are materialized at the end
  of an epoch / evaluation, and per batch only when a callback reads batch
  logs (Keras metric variables aggregate by "sum"), and ORs
  `stop_training`, so every decision agrees on every rank; nothing else is
  synchronized per step;
- gathers `predict` outputs from all ranks back into the global order.

Under `keras.distribution.ModelParallel` the loop's run is a
`model_parallel_run.ModelParallelRun`, these collectives along the mesh's
batch axis.

Every collective here is issued the same number of times on every rank:
data is split per global batch (every rank runs every step, possibly with
an empty share), and nothing depends on wall-clock time.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch

from kerasish.distribution import distribution_lib
from kerasish.distribution.grad_buckets import GradientBuckets


def shard_bounds(size: int, rank: int, world: int) -> tuple:
    """`[lo, hi)` of rank `rank`'s share of `size` items (the first
    `size % world` ranks get one more, like `torch.tensor_split`)."""
    base, extra = divmod(size, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def is_rank_zero() -> bool:
    """True outside a process group, and on rank 0 inside one."""
    return distribution_lib.process_id() == 0


def distributed_sampler(data):
    """The `torch.utils.data.DistributedSampler` that a DataLoader `data`
    draws its indices from (its `sampler`, or its `batch_sampler`'s), or
    None. Such a loader already yields this rank's share of the data."""
    if not isinstance(data, torch.utils.data.DataLoader):
        return None
    from torch.utils.data.distributed import DistributedSampler

    for sampler in (getattr(data, "sampler", None), getattr(getattr(data, "batch_sampler", None), "sampler", None)):
        if isinstance(sampler, DistributedSampler):
            return sampler
    return None


def barrier() -> None:
    """`torch.distributed.barrier()` when a process group exists."""
    if distribution_lib.num_processes() > 1:
        torch.distributed.barrier()


def current_run(model):
    """The `DataParallelRun` for `model` in the current setting, or None.

    Raises:
        RuntimeError: `fit`/`evaluate`/`predict` in a process group of more
            than one rank with no distribution set (ranks would silently
            train different models).
        ValueError: the mesh does not have one device per process, or a
            `ModelParallel` layout does not fit a weight.
    """
    dist = distribution_lib.distribution()
    world = distribution_lib.num_processes()
    laid_out = model.__dict__.get("_mp_dist")
    if laid_out is not None and dist is not laid_out:
        raise ValueError(
            f"Model '{model.name}' was laid out by {laid_out} (its weights are DTensors); run it under that "
            f"distribution. Received: distribution={dist}"
        )
    if world > 1 and _is_fully_sharded(model) and laid_out is None:
        if dist is not None and not isinstance(dist, distribution_lib.DataParallel):
            raise ValueError(f"A `fully_shard`ed model trains under no distribution or `DataParallel`. Received: {dist}")
        restore_weight_metadata(model)
        return DataParallelRun(model, dist, managed=True)
    if dist is None:
        if world > 1:
            raise RuntimeError(
                f"This process is one of {world} ranks of a torch.distributed process group, but no "
                "`keras.distribution` is set: each rank would train its own model and they would silently "
                "diverge. Call `keras.distribution.set_distribution(keras.distribution.DataParallel())` (or use "
                "`with keras.distribution.DataParallel().scope():`) before `fit`, apply FSDP2's "
                "`fully_shard(model)`, or train the model with your own loop around `DistributedDataParallel(model)`."
            )
        return None
    if isinstance(dist, distribution_lib.ModelParallel):
        return _model_parallel_run(model, dist, world)
    if world <= 1:
        return None
    replicas = dist.num_model_replicas
    if replicas != world:
        raise ValueError(
            f"`DataParallel` needs one device per process: the device mesh has {replicas} devices but the process "
            f"group has {world} ranks. Build it with `keras.distribution.list_devices()` (the default)."
        )
    run = DataParallelRun(model, dist)
    if run.device.type == "cuda" and model._model_device().type != "cuda":
        raise ValueError(
            f"The process group uses NCCL, which reduces CUDA tensors only, but the model is on "
            f"{model._model_device()}. Move it to this rank's GPU first: `model.to('cuda:{run.device.index}')`."
        )
    return run


def _model_parallel_run(model, dist, world):
    from kerasish.distribution import model_parallel

    size = dist.device_mesh.devices.size
    if world <= 1:
        if size != 1:
            raise ValueError(
                f"`ModelParallel` needs one process per device of its mesh ({size} devices, "
                f"shape {dist.device_mesh.shape}), launched with `torchrun --nproc_per_node={size}`; this is a "
                "single process."
            )
        # one device: every layout is the whole weight, but a bad one still raises (after the first
        # forward of an unbuilt model, before any update)
        if model.built:
            model_parallel.validate_layouts(model, dist)
        else:
            def check(module, args, output):
                handle.remove()
                if distribution_lib.distribution() is dist:
                    model_parallel.validate_layouts(model, dist)

            handle = model.register_forward_hook(check)
        return None
    if size != world:
        raise ValueError(
            f"`ModelParallel` needs one device per process: the device mesh has {size} devices but the process "
            f"group has {world} ranks."
        )
    if _is_fully_sharded(model) and not model_parallel.is_fully_sharded_by(model, dist):
        raise ValueError("A `fully_shard`ed model cannot also be laid out by `ModelParallel`.")
    from kerasish.trainers.model_parallel_run import ModelParallelRun

    return ModelParallelRun(model, dist)


def restore_weight_metadata(model) -> None:
    """Gives FSDP2's parameters of a `fully_shard`ed model their Keras
    regularizer and constraint back: `fully_shard` replaces each weight by
    a new parameter without them, and `fit` would silently train without
    the penalty or the projection. A parameter `name` of a layer gets the
    layer's `{name}_regularizer` / `{name}_constraint` (for
    `depthwise_kernel`, `depthwise_...`: Keras's argument names).

    Raises:
        ValueError: a layer has a regularizer or constraint that matches
            none of its parameters while some parameter matched none
            (kerasish cannot tell where it belongs).
    """
    from kerasish.variables import Variable

    if model.__dict__.get("_fsdp_metadata_hooks"):
        return
    hooks = []
    for module in model.modules():
        attrs = {k: v for k, v in vars(module).items()
                 if v is not None and k != "activity_regularizer" and k.endswith(("_regularizer", "_constraint"))}
        replaced = {name: p for name, p in module._parameters.items() if p is not None and not isinstance(p, Variable)}
        if not attrs or not replaced:
            continue
        used, bare, meta = set(), [], {}
        for name, p in replaced.items():
            stem = name[:-len("_kernel")] if name.endswith("_kernel") else name
            # (DepthwiseConv's weight is `kernel`, its arguments `depthwise_*`)
            alias = "depthwise" if name == "kernel" else stem
            found = False
            for kind in ("regularizer", "constraint"):
                key = next((k for k in (f"{name}_{kind}", f"{stem}_{kind}", f"{alias}_{kind}") if k in attrs), None)
                if key is not None:
                    meta.setdefault(name, {})[kind] = attrs[key]
                    used.add(key)
                    found = True
            if not found:
                bare.append(name)
        missing = sorted(set(attrs) - used)
        if missing and bare:
            raise ValueError(
                f"`fully_shard` replaced the weights {bare} of layer "
                f"'{getattr(module, 'name', type(module).__name__)}' without their Keras metadata, and kerasish "
                f"cannot tell which of them {missing} belong to, so `fit` would silently train without them. "
                "Shard the model through `keras.distribution.ModelParallel` with a LayoutMap on the batch axis "
                "(it keeps them), or drop those arguments."
            )
        if meta:
            _set_metadata(module, meta)
            # FSDP2 registers the gathered parameters during a forward (and keeps the root's until
            # backward): the losses read after the call see those, which need the metadata too
            hooks.append(module.register_forward_hook(lambda m, a, o, meta=meta: _set_metadata(m, meta)))
    model.__dict__["_fsdp_metadata_hooks"] = hooks


def _set_metadata(module, meta) -> None:
    params = module._parameters
    for name, values in meta.items():
        p = params.get(name)
        if p is None:
            continue
        # (a gathered parameter FSDP2 registers during a forward may already be a Keras weight, adopted
        # with no regularizer / constraint by `Layer.register_parameter`: those are filled in too)
        for kind, value in values.items():
            if p.__dict__.get(kind) is None:
                p.__dict__[kind] = value


def _is_fully_sharded(model) -> bool:
    """Whether FSDP2's `fully_shard` was applied to `model` or a submodule."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without FSDP2
        return False
    return any(isinstance(m, FSDPModule) for m in model.modules())


def _local(t):
    """This process's part of `t` (its shard when `t` is a DTensor)."""
    return t._local_tensor if hasattr(t, "_local_tensor") else t


def _flat_leaves(x) -> list:
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in _flat_leaves(item)]
    if isinstance(x, dict):
        return [leaf for key in x for leaf in _flat_leaves(x[key])]
    return [x]


class DataParallelRun:
    """Collectives of one data-parallel `fit`/`evaluate`/`predict` call."""

    def __init__(self, model, dist, managed=False):
        self.model = model
        self.rank = distribution_lib.process_id()
        self.world = distribution_lib.num_processes()
        # without a distribution (a `fully_shard`ed model) each rank feeds its own data
        self.auto_shard = dist is not None and bool(dist.auto_shard_dataset)
        # `managed`: FSDP2 owns the weights and reduce-scatters (averages) the gradients itself
        self.managed = managed
        self.pending_sync = not managed
        self.hook_grads = False  # a custom train_step: average gradients as they are accumulated
        self.trains = False  # set by `fit`: gradients are averaged (evaluate/predict install no hooks)
        self._hooks = []
        self._buckets = None  # `GradientBuckets` (plain DataParallel): gradients averaged during backward
        self._synced_bn = False
        self._weight = None  # this step's gradient weight, chosen by `before_backward`
        self.group = None  # the process group data is split over (None: all ranks)
        # where small control tensors (flags, seeds, counts) live: NCCL reduces CUDA tensors only
        nccl = torch.distributed.get_backend() == "nccl"
        self.device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")

    # ------------------------------------------------------------- weights
    def sync_model(self, x, batch=None) -> None:
        """Builds the model on `x` if needed, then broadcasts every
        parameter and buffer from rank 0 (once per loop)."""
        model = self.model
        self.pending_sync = False
        if not model.built:
            with torch.no_grad():
                model(x, training=False)
        with torch.no_grad():
            for t in [*model.parameters(), *model.buffers()]:
                torch.distributed.broadcast(t.data, src=0)
        if self.trains and self._buckets is None and not self.managed:
            self._buckets = GradientBuckets([p for p in model.parameters() if p.requires_grad], self.group)
            self._global_batch_stats()

    def after_inference(self) -> None:
        """Reshards a `fully_shard`ed model after `evaluate`/`predict`: their
        no-grad forwards leave the root's parameters gathered (FSDP2
        reshards the root only after a backward)."""
        if self.managed:
            from torch.distributed.fsdp import FSDPModule

            for m in self.model.modules():
                if isinstance(m, FSDPModule):
                    m.reshard()

    def close(self) -> None:
        """Removes the gradient hooks."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        if self._buckets is not None:
            self._buckets.remove()
            self._buckets = None
        if self._synced_bn:
            distribution_lib.take_batch_stats_synced()
            distribution_lib.set_sync_batch_stats(False)
            self._synced_bn = False

    def _global_batch_stats(self, group=None) -> None:
        """While this `fit` trains, BatchNormalization normalizes with the
        global batch's statistics (all-reduced over `group`, the processes
        holding distinct rows; None: the default group), as Keras's
        data-parallel step on JAX does: N processes equal one, and a rank's
        empty share of the last batch takes part with weight 0."""
        distribution_lib.set_sync_batch_stats(True, group)
        self._synced_bn = True

    def guard_custom_step(self, step_fn):
        """`step_fn` (a custom `train_step`), raising when a step updated the
        weights (the Keras optimizer's step count moved) without a backward
        pass through the gradient buckets, e.g. gradients taken with
        `torch.autograd.grad`: those were never averaged and the ranks
        would silently diverge."""

        def step(batch):
            opt = getattr(self.model, "optimizer", None)
            steps = getattr(opt, "_iterations", None)
            before = int(steps) if isinstance(steps, torch.Tensor) else None
            done = self._buckets.backwards if self._buckets is not None else None
            out = step_fn(batch)
            if (before is not None and done is not None and self._buckets is not None
                    and self._buckets.backwards == done and int(opt._iterations) != before):
                raise RuntimeError(
                    f"The custom `train_step` of model '{self.model.name}' updated the weights without calling "
                    "`backward()` on a loss: under `keras.distribution.DataParallel` gradients are averaged over "
                    "the ranks as `backward` accumulates them into `.grad`, so these were not, and the ranks "
                    "would diverge. Use `loss.backward()` and the weights' `.grad` (e.g. `self.optimizer.apply("
                    "[w.grad for w in self.trainable_weights], self.trainable_weights)`)."
                )
            return out

        return step

    def before_backward(self, loss, n_local: int):
        """The default train step is about to run backward of `loss` on
        `n_local` samples (its weight in the gradient mean); returns the
        loss to differentiate (an empty share's weighs 0).

        Usually the gradients are weighted by `n_local` in the all-reduce.
        When BatchNormalization summed its statistics over the ranks in this
        forward, every rank's gradient also flows into the other ranks'
        rows (through the statistics), so weights applied afterwards would
        mix the ranks' losses unweighted: the loss itself is scaled by
        `n_local * ranks / global_rows` instead (one 1-element all-reduce
        for the global rows) and the gradients are then averaged
        unweighted, which equals one process on the global batch also
        for uneven shares."""
        weight = n_local
        if not self.managed and distribution_lib.take_batch_stats_synced() and self.world > 1:
            rows = torch.tensor([float(n_local)], device=self.device)
            torch.distributed.all_reduce(rows, group=self.group)
            # (a tensor scale: no host sync per step on a GPU)
            scale = (n_local * self.world / rows.clamp(min=1.0))[0].to(loss.device)
            loss = loss * scale if n_local else loss.sum() * 0.0
            weight = 1
        self._weight = weight
        if self._buckets is not None:
            self._buckets.expect(weight)
        if n_local == 0 and not self.managed:
            return loss.sum() * 0.0
        return loss

    def all_reduce_grads(self, weights, n_local: int) -> None:
        """After backward: each weight's `.grad` is the sample-weighted mean
        of the ranks' gradients. Under plain `DataParallel` the buckets
        already did it during backward (this only finishes a backward that
        reached no parameter here); nothing for a `fully_shard`ed model,
        whose gradients FSDP2 already averaged."""
        if self.managed or self.world == 1:
            return
        if self._buckets is not None:
            self._buckets.flush()
            return
        if self._weight is not None:  # the weight `before_backward` chose (1: the loss is already weighted)
            n_local, self._weight = self._weight, None
        by_kind = {}
        for w in weights:
            by_kind.setdefault((w.dtype, _local(w).device), []).append(w)
        for (dtype, device), group in by_kind.items():
            flat = torch.empty(sum(_local(w).numel() for w in group) + 1, dtype=torch.float32 if dtype in
                               (torch.float16, torch.bfloat16) else dtype, device=device)
            offset = 0
            for w in group:
                n = _local(w).numel()
                if w.grad is None or n_local == 0:
                    flat[offset:offset + n].zero_()
                else:
                    grad = _local(w.grad)  # (strided for a conv kernel: one copy, not reshape + copy)
                    flat[offset:offset + n].view(grad.shape).copy_(grad).mul_(n_local)
                offset += n
            flat[-1] = n_local
            torch.distributed.all_reduce(flat, group=self.group)
            flat[:-1].div_(flat[-1].clamp(min=1))
            offset = 0
            for w in group:
                local = _local(w)
                n = local.numel()
                g = flat[offset:offset + n].view(local.shape).to(w.dtype)
                if w.grad is None:
                    if local is not w:  # a DTensor weight (ModelParallel): a gradient laid out like it
                        from torch.distributed.tensor import DTensor

                        w.grad = DTensor.from_local(g.clone(), w.device_mesh, w.placements, run_check=False)
                    else:
                        w.grad = g.clone()
                else:
                    _local(w.grad).copy_(g)
                offset += n

    # ------------------------------------------------------------- metrics
    @contextlib.contextmanager
    def reduced_metrics(self, metrics):
        """Inside the block, every metric state holds its sum over ranks
        (restored afterwards, so local accumulation can go on)."""
        states = []
        seen = set()
        for m in metrics:
            for v in m.variables:
                if id(v) not in seen:
                    seen.add(id(v))
                    states.append(v)
        saved = [v.detach().clone() for v in states]
        if states:
            by_kind = {}
            for v in states:
                by_kind.setdefault((v.dtype, v.device), []).append(v)
            for group in by_kind.values():
                flat = torch.cat([v.detach().reshape(-1) for v in group])
                torch.distributed.all_reduce(flat, group=self.group)
                offset = 0
                with torch.no_grad():
                    for v in group:
                        v.copy_(flat[offset:offset + v.numel()].view(v.shape))
                        offset += v.numel()
        try:
            yield
        finally:
            with torch.no_grad():
                for v, s in zip(states, saved):
                    v.copy_(s)

    def mean_of(self, logs: dict, keys) -> dict:
        """`logs` with the listed float entries averaged over ranks."""
        keys = [k for k in keys if isinstance(logs.get(k), (int, float, np.floating))]
        if keys:
            t = torch.tensor([float(logs[k]) for k in keys], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(t, group=self.group)
            logs = dict(logs)
            for k, v in zip(keys, (t / self.world).tolist()):
                logs[k] = v
        return logs

    def any(self, flag: bool) -> bool:
        """True when `flag` is true on any rank."""
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())

    def all(self, flag: bool) -> bool:
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        return bool(t.item())

    # ---------------------------------------------------------------- data
    def shared_seed(self) -> int:
        """A random seed drawn on rank 0 (from torch's global RNG) and
        broadcast, so every rank shuffles the same way."""
        t = torch.randint(0, 2**62, (1,), dtype=torch.int64) if self.rank == 0 else torch.zeros(1, dtype=torch.int64)
        t = t.to(self.device)
        torch.distributed.broadcast(t, src=0)
        return int(t.item())

    def check_same_length(self, num_batches, what: str) -> None:
        """A source split per global batch (`auto_shard_dataset=True`) has
        the same number of batches on every rank (each rank's share of one
        global batch per step); else the ranks with more would wait in a
        collective forever.

        Raises:
            ValueError: the ranks' lengths differ (each rank reads its own
                data: `auto_shard_dataset=False` is meant).
        """
        if self.world <= 1:  # (a ModelParallel mesh whose batch axis has one process)
            return
        lengths = [None] * self.world
        torch.distributed.all_gather_object(lengths, num_batches, group=self.group)
        if any(n != lengths[0] for n in lengths):
            raise ValueError(
                f"The {what} passed to model '{self.model.name}' has a different number of batches on each rank "
                f"({lengths}). Under `auto_shard_dataset=True` every rank reads the same data and keeps its share "
                "of each global batch; for data split per rank already (a rank's own subset or generator) use "
                "`keras.distribution.DataParallel(auto_shard_dataset=False)`."
            )

    def check_same_batch(self, batch, what: str) -> None:
        """Warns when the first global batch differs between the ranks
        under `auto_shard_dataset=True`: each rank would keep its share of a
        different batch, training on 1/world of data that was probably
        split per rank already. (Random augmentation that draws differently
        on each rank also makes batches differ; the warning then says so.)"""
        if self.world <= 1:
            return
        summary = []
        for leaf in _flat_leaves(batch):
            try:
                t = leaf if isinstance(leaf, torch.Tensor) else torch.as_tensor(np.asarray(leaf))
                t = t.detach().to("cpu", torch.float64)
            except (TypeError, ValueError, RuntimeError):
                continue  # strings and other non-numeric leaves
            summary.append((tuple(t.shape), float(t.sum()), float((t * t).sum())))
        gathered = [None] * self.world
        torch.distributed.all_gather_object(gathered, summary, group=self.group)
        if any(len(g) != len(gathered[0]) or any(a[0] != b[0] or not np.allclose(a[1:], b[1:], rtol=1e-9, atol=0)
                                                 for a, b in zip(g, gathered[0])) for g in gathered):
            warnings.warn(
                f"The first batch of the {what} passed to model '{self.model.name}' differs between the ranks. "
                "Under `auto_shard_dataset=True` every rank must read the same global batches (each keeps its "
                "share of every batch), so data already split per rank trains on 1/world of it: use "
                "`keras.distribution.DataParallel(auto_shard_dataset=False)` for per-rank data. (Random "
                "augmentation drawing differently on each rank also makes the batches differ.)",
                stacklevel=2,
            )

    def check_same_start(self, epoch: int, step: int) -> None:
        """`fit` starts (or resumes, after `BackupAndRestore`) at the same
        epoch and step on every rank; otherwise the ranks would pair
        collectives of different steps and train silently wrong or hang.

        Raises:
            RuntimeError: the ranks' starting points differ (a backup read
                on some ranks only: a `backup_dir` not shared by all ranks,
                or the callback given to some ranks only).
        """
        here = torch.tensor([epoch, step], dtype=torch.int64, device=self.device)
        low, high = here.clone(), here.clone()
        torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
        torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
        if not torch.equal(low, high):
            raise RuntimeError(
                f"The ranks would start `fit` of model '{self.model.name}' at different points: this rank "
                f"(process {distribution_lib.process_id()}) at epoch {epoch}, step {step}; the ranks' epochs "
                f"range over {int(low[0])}..{int(high[0])} and steps over {int(low[1])}..{int(high[1])}. A "
                "`BackupAndRestore` backup was restored on some ranks only: put its `backup_dir` on a filesystem "
                "every rank reads, and give every rank the same callbacks."
            )

    def check_sampler(self, sampler) -> None:
        """A user's `DistributedSampler` must split the data like the run:
        one share per rank of the group data is split over, this rank's
        share here; anything else trains silently on the wrong rows.

        Raises:
            ValueError: `num_replicas`/`rank` differ from the run's.
        """
        if sampler.num_replicas != self.world or sampler.rank != self.rank:
            raise ValueError(
                f"The DataLoader's `DistributedSampler` splits the data into num_replicas={sampler.num_replicas} "
                f"shares and reads share rank={sampler.rank}, but this `fit`/`evaluate`/`predict` of model "
                f"'{self.model.name}' splits its batches over {self.world} processes and this process holds share "
                f"{self.rank}. Build it as `DistributedSampler(dataset, num_replicas={self.world}, rank={self.rank})` "
                "(the defaults under `DataParallel`), or pass a loader without it and let "
                "`auto_shard_dataset=True` split each global batch."
            )

    def steps_in_lockstep(self, iterator, same_data=False):
        """`(step, batch)` of `iterator` while every rank still has a batch
        (for per-rank data, `auto_shard_dataset=False`): ranks with more
        batches stop with the others instead of hanging in a collective.

        With `same_data` (a source of unknown length split per global
        batch, which every rank must read alike), running out on some
        ranks only raises ValueError on every rank instead."""
        it = iter(iterator)
        steps = 0
        ranks = torch.distributed.get_world_size()  # (the flags are summed over every process)
        while True:
            item = next(it, None)
            have = torch.tensor([0 if item is None else 1], dtype=torch.int32, device=self.device)
            torch.distributed.all_reduce(have)
            have = int(have.item())
            if have == ranks:
                steps += 1
                yield item
                continue
            if have and same_data:
                raise ValueError(
                    f"The data of model '{self.model.name}' ran out on {ranks - have} of {ranks} ranks "
                    f"after {steps} steps while the others still had batches. Under "
                    "`auto_shard_dataset=True` every rank reads the same data and keeps its share of each global "
                    "batch; for a generator yielding each rank's own data use "
                    "`keras.distribution.DataParallel(auto_shard_dataset=False)`."
                )
            return

    def gather_predictions(self, local_parts, local_sizes):
        """Reassembles the global order from every rank's per-leaf arrays.

        Args:
            local_parts: One NumPy array per output leaf (this rank's rows,
                its batches concatenated).
            local_sizes: This rank's number of rows in each batch.
        """
        gathered = [None] * self.world
        torch.distributed.all_gather_object(gathered, (local_parts, local_sizes), group=self.group)
        ranks_parts = [g[0] for g in gathered]
        ranks_sizes = [g[1] for g in gathered]
        n_leaves = max(len(p) for p in ranks_parts)
        offsets = [0] * self.world
        pieces = [[] for _ in range(n_leaves)]
        for b in range(len(ranks_sizes[0])):
            for r in range(self.world):
                size = ranks_sizes[r][b]
                if size:
                    for leaf in range(n_leaves):
                        pieces[leaf].append(ranks_parts[r][leaf][offsets[r]:offsets[r] + size])
                offsets[r] += size
        return [np.concatenate(p) for p in pieces]
