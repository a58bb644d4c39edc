"""What `fit`/`evaluate`/`predict` do under `keras.distribution.ModelParallel`
(`ModelParallelRun`, created per loop by `distributed.current_run`).

On top of the data-parallel collectives of `DataParallelRun` (along the
mesh's batch axis only), it lays the model's weights out once (DTensors on
the model axes, or FSDP2 along the batch axis; see
`kerasish.distribution.model_parallel`), gives the processes of one batch
shard the same random state, averages gradients over the batch axis in
DDP-style buckets of the local shards (default and custom train steps
alike), sums BatchNormalization statistics over the batch axis's group,
weighs an FSDP2 step's losses by each rank's rows, and checks that
per-process data (`auto_shard_dataset=False`) agrees within a batch shard.
"""

from __future__ import annotations

import contextlib
import math

import torch

from kerasish.distribution import distribution_lib
from kerasish.distribution.grad_buckets import GradientBuckets
from kerasish.trainers.distributed import DataParallelRun
from kerasish.trainers.distributed import _flat_leaves


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
            # BatchNormalization uses the global batch's statistics, summed over the batch axis's group
            # only (the processes along the model axes hold the same rows: summing over them too would give
            # the same numbers, counts duplicated alike, for a larger all-reduce); a group of one process
            # keeps its local statistics
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
