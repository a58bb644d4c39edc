"""Feeding batches to an accelerator: pinned, non-blocking host-to-device
copies, the next batch prefetched on a side stream, and outputs brought
back to the host per batch.

On the CPU every function here is the identity (no pinning, no lookahead,
no copies), so the CPU path is exactly the plain one.

- `host_to_device(t, device)`: a CPU tensor bound for CUDA is copied from
  page-locked memory with `non_blocking=True` (as `DataLoader(pin_memory=True)`
  does): the host does not wait for the copy, and the copy can overlap
  compute. Pinned blocks come from torch's caching host allocator, which
  keeps a block alive until the copies reading it have finished.
- `Prefetcher`: while the step runs on batch `i`, batch `i + 1` is already
  gathered and its copy enqueued on a side CUDA stream; before batch `i + 1`
  is handed out, the compute stream waits for that copy (`wait_stream`) and
  each tensor is marked as used there (`record_stream`), so the allocator
  never reuses its memory early.
- `DeviceToHost`: `predict` outputs copied to the host batch by batch
  (non-blocking into pinned memory on CUDA, one stream sync at the end), so
  device memory stays flat however many batches are predicted.
"""

from __future__ import annotations

import numpy as np
import torch

from kerasish.backend import dtypes


def is_cuda(device) -> bool:
    return device is not None and torch.device(device).type == "cuda"


def host_to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`t` on `device`; CPU -> CUDA copies go through pinned memory, non-blocking."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        if not t.is_pinned():
            t = t.pin_memory()
        return t.to(device, non_blocking=True)
    return t.to(device)


def _leaves(batch):
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, (list, tuple)):
        for b in batch:
            yield from _leaves(b)
    elif isinstance(batch, dict):
        for b in batch.values():
            yield from _leaves(b)


class _CudaStreams:
    """The side stream of a `Prefetcher` (a seam the CPU tests replace)."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.side = torch.cuda.Stream(device=self.device)

    def producing(self):
        return torch.cuda.stream(self.side)

    def hand_over(self, batch):
        """Makes the compute stream wait for `batch`'s copies."""
        current = torch.cuda.current_stream(self.device)
        current.wait_stream(self.side)
        for t in _leaves(batch):
            if t.device.type == "cuda":
                t.record_stream(current)
        return batch


class Prefetcher:
    """Iterates `source` one batch ahead on a side CUDA stream (see the
    module docstring); on any other device it is `iter(source)`.

    Only for sources whose batches are produced by kerasish's adapters from
    re-iterable data (arrays, DataLoaders, PyDatasets): reading one batch
    ahead of a plain generator would take a batch from the next epoch.
    """

    streams_class = _CudaStreams

    def __init__(self, source, device):
        self.source = source
        self.device = torch.device(device) if device is not None else None

    def __iter__(self):
        if not is_cuda(self.device):
            yield from self.source
            return
        streams = self.streams_class(self.device)
        it = iter(self.source)
        sentinel = object()
        with streams.producing():
            nxt = next(it, sentinel)
        while nxt is not sentinel:
            current = streams.hand_over(nxt)
            with streams.producing():
                nxt = next(it, sentinel)
            yield current


class DeviceToHost:
    """Collects per-batch outputs on the host (for `predict`): device
    tensors are copied out as each batch ends, so device memory holds one
    batch's outputs at a time. `result()` waits once for the pending copies."""

    def __init__(self):
        self._pending = set()

    def __call__(self, t):
        if isinstance(t, torch.Tensor):
            t = t.detach()
            if t.device.type == "cuda":
                self._pending.add(t.device)
                return t.to("cpu", non_blocking=True)  # into pinned memory; valid after `wait()`
            if t.device.type != "cpu":
                return t.cpu()
        return t

    def wait(self) -> None:
        for device in self._pending:
            torch.cuda.current_stream(device).synchronize()
        self._pending.clear()

    @staticmethod
    def concatenate(parts):
        if isinstance(parts[0], torch.Tensor):
            out = torch.cat(parts) if len(parts) > 1 else parts[0]
            return dtypes.tensor_to_numpy(out)  # bfloat16: ml_dtypes.bfloat16, as Keras
        return np.concatenate([np.asarray(p) for p in parts])
