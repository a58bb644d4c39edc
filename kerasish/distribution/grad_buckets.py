"""Data-parallel gradient averaging during backward, as DDP's reducer does
it (used by `fit` under `keras.distribution.DataParallel`, and over the
batch axis under `ModelParallel`, where DTensor weights contribute their
local shards; see `kerasish.trainers.distributed`)."""

from __future__ import annotations

import torch

# DDP's bucket sizes: a small first bucket starts communicating early in backward
_FIRST_BUCKET_BYTES = 1 << 20
_BUCKET_BYTES = 25 << 20


def _local(t):
    """This process's part of `t` (its local shard when `t` is a DTensor)."""
    return t._local_tensor if hasattr(t, "_local_tensor") else t


class _Bucket:
    """Some parameters of one dtype and device whose gradients travel in one
    all-reduce: `[grad_0 ... grad_k, n_local, had_grad_0 ... had_grad_k]`."""

    __slots__ = ("params", "offsets", "size", "buffer", "ready", "work")

    def __init__(self, params, dtype, device):
        self.params = params
        self.offsets = []
        offset = 0
        for p in params:
            self.offsets.append(offset)
            offset += _local(p).numel()
        self.size = offset
        self.buffer = torch.zeros(offset + 1 + len(params), dtype=dtype, device=device)
        self.ready = set()  # indices of the parameters whose gradient arrived in this backward
        self.work = None


class GradientBuckets:
    """Averages gradients over the ranks as backward produces them, as
    DDP's reducer does: parameters are grouped in buckets (reverse
    registration order, which is roughly the order backward reaches them;
    1 MiB first bucket, then 25 MiB), a bucket's all-reduce starts
    (asynchronously) as soon as its last gradient is accumulated, and
    buckets start strictly in order, so every rank issues the same
    collectives in the same order even when some parameters get no
    gradient. When backward ends (an autograd callback) the remaining
    buckets start with zeros for the missing gradients, all are waited
    for, and each gradient becomes the mean over the ranks weighted by
    their samples (`n_local`; 1 each = DDP's unweighted mean). A parameter
    no rank had a gradient for keeps `grad=None`, as in one process.
    """

    def __init__(self, params, group=None):
        self.group = group
        self.n_local = 1
        self.buckets = []
        self.where = {}
        by_kind = {}
        for p in reversed(params):
            by_kind.setdefault((p.dtype, _local(p).device), []).append(p)
        for (dtype, device), group_params in by_kind.items():
            reduce_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
            cap, current, size = _FIRST_BUCKET_BYTES, [], 0
            for p in group_params:
                current.append(p)
                size += _local(p).numel() * p.element_size()
                if size >= cap:
                    self.buckets.append(_Bucket(current, reduce_dtype, device))
                    cap, current, size = _BUCKET_BYTES, [], 0
            if current:
                self.buckets.append(_Bucket(current, reduce_dtype, device))
        for b, bucket in enumerate(self.buckets):
            for i, p in enumerate(bucket.params):
                self.where[p] = (b, i)
        self.backwards = 0  # backward passes averaged so far
        self.next = 0  # the next bucket to start
        self.active = False  # a backward is filling the buckets
        self.pending = False  # the default step announced a backward (`expect`)
        # DTensor weights (ModelParallel): the local shards travel, each gradient first laid out like its
        # weight (a separate hook, so plain weights pay nothing for it)
        self.hooks = [p.register_post_accumulate_grad_hook(
            self._on_sharded_grad if hasattr(p, "_local_tensor") else self._on_grad) for p in params]

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()
        self.hooks = []

    def _on_sharded_grad(self, p) -> None:
        g = p.grad
        if tuple(g.placements) != tuple(p.placements):  # e.g. a replicated bias's gradient pending a sum
            p.grad = g.redistribute(p.device_mesh, p.placements)
        self._arrive(p, p.grad._local_tensor)

    def _on_grad(self, p) -> None:
        self._arrive(p, p.grad)

    def _arrive(self, p, grad) -> None:
        if not self.active:
            self.active = True
            torch.autograd.Variable._execution_engine.queue_callback(self.finish)
        b, i = self.where[p]
        bucket = self.buckets[b]
        bucket.ready.add(i)
        offset = bucket.offsets[i]
        # (one strided copy into the bucket: a conv kernel's gradient has its memory order, see weight_layout)
        bucket.buffer[offset:offset + grad.numel()].view(grad.shape).copy_(grad)
        if len(bucket.ready) == len(bucket.params):
            while self.next < len(self.buckets) and len(self.buckets[self.next].ready) == len(
                    self.buckets[self.next].params):
                self._start(self.buckets[self.next])
                self.next += 1

    def _start(self, bucket) -> None:
        buf, n, k = bucket.buffer, bucket.size, len(bucket.params)
        if len(bucket.ready) != k:  # missing gradients count as zeros
            for i, p in enumerate(bucket.params):
                if i not in bucket.ready:
                    buf[bucket.offsets[i]:bucket.offsets[i] + _local(p).numel()].zero_()
            buf[n + 1:].copy_(torch.tensor([1.0 if i in bucket.ready else 0.0 for i in range(k)]))
        else:
            buf[n + 1:].fill_(1.0)
        if self.n_local != 1:
            buf[:n].mul_(self.n_local)
        buf[n] = self.n_local
        bucket.work = torch.distributed.all_reduce(buf, group=self.group, async_op=True)

    def expect(self, n_local: int) -> None:
        """Before a backward of the default train step: this rank's samples."""
        self.n_local = n_local
        self.pending = True

    def flush(self) -> None:
        """After that backward: finishes it even if it reached no parameter
        on this rank (the other ranks' collectives still need this one's)."""
        if self.pending:
            self.finish()

    def finish(self) -> None:
        """Starts the buckets not started yet, waits for all, and writes the
        averaged gradients back (the end-of-backward callback)."""
        while self.next < len(self.buckets):
            self._start(self.buckets[self.next])
            self.next += 1
        for bucket in self.buckets:
            bucket.work.wait()
            buf, n, k = bucket.buffer, bucket.size, len(bucket.params)
            buf[:n].div_(buf[n].clamp(min=1))
            had = None
            for i, p in enumerate(bucket.params):
                local = _local(p)
                g = buf[bucket.offsets[i]:bucket.offsets[i] + local.numel()].view(local.shape)
                if i in bucket.ready:
                    _local(p.grad).copy_(g)
                    continue
                if had is None:  # a host sync, only when this rank missed a gradient
                    had = buf[n + 1:].tolist()
                if had[i] and p.grad is None:
                    g = g.to(p.dtype).clone()
                    if local is not p:  # a DTensor weight: a gradient laid out like it
                        from torch.distributed.tensor import DTensor

                        g = DTensor.from_local(g, p.device_mesh, p.placements, run_check=False)
                    p.grad = g
            bucket.ready.clear()
            bucket.work = None
        self.next = 0
        self.active = self.pending = False
        self.n_local = 1
        self.backwards += 1
