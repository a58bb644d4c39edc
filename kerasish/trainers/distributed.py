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

Every collective here is issued the same number of times on every rank:
data is split per global batch (every rank runs every step, possibly with
an empty share), and nothing depends on wall-clock time.
"""

from __future__ import annotations

import contextlib
import math

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
        if p is not None and "regularizer" not in p.__dict__ and "constraint" not in p.__dict__:
            p.__dict__.update(values)


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
            loss = loss * (n_local * self.world / max(rows.item(), 1.0)) if n_local else loss.sum() * 0.0
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
                    flat[offset:offset + n].copy_(_local(w.grad).reshape(-1)).mul_(n_local)
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

    def steps_in_lockstep(self, iterator):
        """`(step, batch)` of `iterator` while every rank still has a batch
        (for per-rank data, `auto_shard_dataset=False`): ranks with more
        batches stop with the others instead of hanging in a collective."""
        it = iter(iterator)
        while True:
            item = next(it, None)
            if not self.all(item is not None):
                return
            yield item

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


def _same_digest(a, b) -> bool:
    """Two batch fingerprints (`(shape, dtype, sum)` per leaf) agree (sums
    to a relative 1e-6: processes may sum in another order)."""
    return len(a) == len(b) and all(
        sa == sb and da == db and math.isclose(xa, xb, rel_tol=1e-6, abs_tol=1e-6)
        for (sa, da, xa), (sb, db, xb) in zip(a, b))


def _total(tensors):
    """The sum of every element of `tensors` (0.0 for none)."""
    out = 0.0
    for t in tensors:
        t = t.full_tensor() if hasattr(t, "full_tensor") else t
        out = out + (t.float() if not t.is_floating_point() else t).sum()
    return out


def mesh_group(dist):
    """The process group of `dist`'s batch axis (this process's row of the
    mesh along it; one process when the axis has one device)."""
    from kerasish.distribution import model_parallel

    return model_parallel.torch_mesh(dist).get_group(dist.batch_dim_name)


def _align_grad(w) -> None:
    """Lays a DTensor gradient out like its weight: DTensor may hand back a
    gradient sharded (or pending a sum) where the weight is replicated, e.g.
    the bias of a column-parallel Dense."""
    g = w.grad
    if g is not None and hasattr(g, "placements") and tuple(g.placements) != tuple(w.placements):
        w.grad = g.redistribute(w.device_mesh, w.placements)


class ModelParallelRun(DataParallelRun):
    """Collectives of one `fit`/`evaluate`/`predict` under `ModelParallel`.

    The weights are laid out once per model (see
    `kerasish.distribution.model_parallel`) before the first step. Data is
    split along the batch axis only: `rank`/`world` here are this process's
    coordinate on that axis and its size, and gradients, metric states and
    predictions are reduced over the processes of that axis (the processes
    along the model axes hold the same batch and compute the same losses).
    """

    def __init__(self, model, dist):
        super().__init__(model, dist)
        from kerasish.distribution import model_parallel

        self.dist = dist
        mesh = model_parallel.torch_mesh(dist)
        axis = dist.device_mesh.axis_names.index(dist.batch_dim_name)
        self.global_rank = self.rank
        self.rank = mesh.get_coordinate()[axis]
        self.world = dist.device_mesh.shape[axis]
        self.group = mesh.get_group(dist.batch_dim_name) if self.world > 1 else None
        self.check_feed = not self.auto_shard and self.world < distribution_lib.num_processes()
        if self.check_feed:
            # per-process data (Keras's `auto_shard_dataset=False`): the processes of one batch shard
            # (along the model axes) must draw the same shuffles, so their RNG starts alike
            torch.manual_seed((self.shared_seed() + self.rank) % (2**63))

    def sync_model(self, x, batch=None) -> None:
        """Builds the model on `x` if needed, broadcasts rank 0's weights,
        lays them out per the LayoutMap, and gives every process of a
        model-parallel group the same random state (dropout masks must
        agree where they compute the same activations)."""
        from kerasish.distribution import model_parallel

        model = self.model
        self.pending_sync = False
        if not model.built:
            with torch.no_grad():
                model(x, training=False)
        model_parallel.validate_layouts(model, self.dist)
        if self.check_feed:
            self._check_same_rows(x if batch is None else batch)
        seed = self.shared_seed()
        if not model_parallel.is_sharded(model) and not model_parallel.is_fully_sharded_by(model, self.dist):
            # (distribute_tensor takes rank 0's values too; plain buffers outside layouts included)
            with torch.no_grad():
                for t in [*model.parameters(), *model.buffers()]:
                    if not model_parallel.is_dtensor(t):
                        torch.distributed.broadcast(t.data, src=0)
            dims = model_parallel.batch_sharded_dims(model, self.dist)
            if dims:
                model_parallel.fully_shard_model(model, self.dist, dims)
            else:
                model_parallel.shard_model(model, self.dist)
        # weights sharded along the batch axis: FSDP2 gathers them and reduce-scatters the gradients
        self.managed = model_parallel.is_fully_sharded_by(model, self.dist)
        self._step_rows = 0.0  # rows of this step's global batch (FSDP2 training)
        self._row_scale = self._out_scale = 1.0  # this rank's weight `n_local * ranks / global rows`
        self._uneven = False  # this step's shares differ (every rank knows)
        if self.managed and self.trains and self.group is not None:
            self._weigh_fsdp_gradients()
        torch.manual_seed((seed + self.rank) % (2**63))
        if self.trains:
            # BatchNormalization sums its statistics over the batch axis's group only (the processes
            # along the model axes hold the same rows: counting them again would double the gradient
            # of a `synchronized=True` layer); a group of one process keeps its local statistics
            self._global_batch_stats(self.group if self.group is not None else mesh_group(self.dist))
        if self.trains and not self.managed:
            params = [p for p in model.parameters() if p.requires_grad]
            if self.group is not None and self._buckets is None:
                # one mechanism for the default and a custom train step, as under DataParallel: the local
                # shards' gradients (laid out like their weights) averaged over the batch axis in DDP-style
                # buckets during backward (weighted by rows for the default step, unweighted for a custom one)
                self._buckets = GradientBuckets(params, self.group)
            elif self.group is None and self.hook_grads and not self._hooks:
                # no batch axis to average over: a custom step's gradients are only laid out like their weights
                self._hooks = [p.register_post_accumulate_grad_hook(_align_grad) for p in params]

    def _check_same_rows(self, batch) -> None:
        """With per-process data, the processes that differ only along the
        model axes compute on the same rows: compares a fingerprint of each
        process's first batch of the loop (every leaf of `x`, `y` and
        `sample_weight`: shape, dtype and sum), on every rank (one small
        all-gather per loop), and raises the same ValueError everywhere.
        Later batches are compared by `steps_in_lockstep` (shapes and
        dtypes only) where that is free."""
        leaves = [t for t in _flat_leaves(batch) if isinstance(t, torch.Tensor)]
        digest = [(tuple(t.shape), str(t.dtype).replace("torch.", ""),
                   round(float(t.detach().double().sum().item()), 6) if t.numel() else 0.0) for t in leaves]
        gathered = [None] * distribution_lib.num_processes()
        torch.distributed.all_gather_object(gathered, (self.rank, digest))
        by_shard = {}
        for rank, (shard, d) in enumerate(gathered):
            by_shard.setdefault(shard, []).append((rank, d))
        for shard, feeds in by_shard.items():
            first = feeds[0][1]
            if any(not _same_digest(d, first) for _, d in feeds):
                raise ValueError(
                    "With `ModelParallel(auto_shard_dataset=False)` each process feeds its own part of the global "
                    "batch, and the processes of one batch shard (those that differ only along the model axes, "
                    "which compute on the same rows) must feed the same data in the same order. Processes "
                    f"{[r for r, _ in feeds]} (batch shard {shard} of axis {self.dist.batch_dim_name!r}) fed "
                    "different first batches: (shape, dtype, sum) of each leaf of x, y, sample_weight = "
                    f"{[d for _, d in feeds]}. Feed them the same data (shuffles drawn by kerasish agree), or pass "
                    "the global data to every process with `auto_shard_dataset=True`."
                )

    def steps_in_lockstep(self, iterator):
        """As `DataParallelRun.steps_in_lockstep`; with per-process data on
        a mesh whose batch axis has one device (every process is one batch
        shard and must feed the same rows), the flag all-reduce of each step
        also carries a digest of the batch's shapes and dtypes, so a process
        feeding a differently shaped batch later in the loop (another
        batch size, a missing `sample_weight`) raises the same ValueError
        on every rank instead of training on mismatched rows. Values after
        the first batch are not compared (that would cost a host sync per
        step); on a mesh with several batch shards only the first batch is."""
        if not (self.check_feed and self.world == 1):
            yield from super().steps_in_lockstep(iterator)
            return
        import zlib

        it = iter(iterator)
        while True:
            item = next(it, None)
            if item is None:
                d = 0
            else:
                leaves = [t for t in _flat_leaves(item[1]) if isinstance(t, torch.Tensor)]
                d = 1 + zlib.crc32(repr([(tuple(t.shape), str(t.dtype)) for t in leaves]).encode())
            t = torch.tensor([d, -d], dtype=torch.int64, device=self.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
            low, high = t[0].item(), -t[1].item()
            if low == 0:
                return
            if low != high:
                raise ValueError(
                    "With `ModelParallel(auto_shard_dataset=False)` on a mesh whose batch axis "
                    f"{self.dist.batch_dim_name!r} has one device, every process computes on the same rows and "
                    f"must feed the same batches, but at step {item[0]} the processes fed batches of different "
                    "shapes or dtypes (x, y or sample_weight). Feed every process the same data, or pass the global "
                    "data with `auto_shard_dataset=True`."
                )
            yield item

    def all_reduce_grads(self, weights, n_local: int) -> None:
        if self.managed:
            return
        for w in weights:
            _align_grad(w)
        super().all_reduce_grads(weights, n_local)

    def before_backward(self, loss, n_local: int):
        """Under FSDP2 (which averages the ranks' gradients unweighted) on an
        uneven step, the default step weighs the loss by its rows itself:
        the compiled loss and the per-call `add_loss` terms (activity
        regularizers: means over the rows, as Keras divides them by the
        batch size) are scaled by `n_local * ranks / global_rows`, so their
        mean is the global batch's, as Keras on JAX computes it; the weight
        regularization terms (and `add_loss` callables) are not: their
        gradients land on this rank's shards directly, unaveraged. An
        empty share keeps just those."""
        if not self.managed or not self._uneven:
            return super().before_backward(loss, n_local)
        # every rank knows the step is uneven (the forward counted the global rows): all compute the
        # regularization terms (collectives on sharded weights)
        from kerasish.layers import call_context

        scale, self._out_scale = self._row_scale, 1.0  # weighed here, not by the output hooks
        extra = self.model._additional_losses()
        rows = [t for layer in self.model._flatten_layers(include_self=True) for t in call_context.call_losses(layer)]
        fixed = _total(extra) - _total(rows)  # the terms that do not depend on the rows
        if n_local == 0:
            return loss.sum() * 0.0 + fixed
        return loss * scale + fixed * (1.0 - scale)

    def _weigh_fsdp_gradients(self) -> None:
        """Under FSDP2 (weights sharded along the batch axis), which averages
        the ranks' gradients unweighted, the gradient flowing into the
        model's outputs is scaled by `n_local * ranks / global_batch`, so the
        mean is weighted by each rank's rows (exact for uneven and empty
        shares). The default step then weighs its loss itself instead
        (`before_backward`, which also weighs `add_loss` terms); a custom
        `train_step` keeps this scaling of the outputs' gradient, and its
        terms that do not flow through the outputs are averaged unweighted."""
        world, group, device = self.world, self.group, self.device

        def weigh(module, args, output):
            if not torch.is_grad_enabled() or not module.training:
                return output
            leaves = [t for t in _flat_leaves(output) if isinstance(t, torch.Tensor) and t.requires_grad]
            if not leaves:
                return output
            n_local = leaves[0].shape[0] if leaves[0].dim() else 1
            # (the sum of squares tells every rank whether the shares are uneven: Cauchy-Schwarz)
            total = torch.tensor([float(n_local), float(n_local) ** 2], device=device, dtype=torch.float64)
            torch.distributed.all_reduce(total, group=group)
            self._step_rows, squares = total.tolist()
            self._uneven = squares * world != self._step_rows ** 2
            self._row_scale = self._out_scale = n_local * world / max(self._step_rows, 1.0)
            if self._row_scale != 1.0:
                for t in leaves:
                    t.register_hook(lambda g: g * self._out_scale)  # read when backward runs
            return output

        self._hooks.append(self.model.register_forward_hook(weigh))

    def shared_seed(self) -> int:
        t = torch.randint(0, 2**62, (1,), dtype=torch.int64) if self.global_rank == 0 else torch.zeros(
            1, dtype=torch.int64)
        t = t.to(self.device)
        torch.distributed.broadcast(t, src=0)
        return int(t.item())

    @contextlib.contextmanager
    def reduced_metrics(self, metrics):
        if self.group is None:
            yield
            return
        with super().reduced_metrics(metrics):
            yield

    def mean_of(self, logs: dict, keys) -> dict:
        return logs if self.group is None else super().mean_of(logs, keys)

    def gather_predictions(self, local_parts, local_sizes):
        if self.group is None:
            return local_parts
        return super().gather_predictions(local_parts, local_sizes)

    def after_inference(self) -> None:
        if self.managed:
            super().after_inference()
