"""`torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)` on kerasish
`BatchNormalization`.

torch's converter replaces every `torch.nn.modules.batchnorm._BatchNorm` in
the tree with a `SyncBatchNorm` and walks every other module with
`named_children()`. kerasish's BatchNormalization is not a `_BatchNorm` (see
`swa_update_bn.py` for why), so the converter used to leave it as it was,
silently: under DDP each process then normalized with its own share of the
batch, not with the statistics of the global batch the user asked for.

What is done instead: when the converter's own code asks a BatchNormalization
for its children (one frame read per `named_children()` call), the layer
switches to `synchronized=True`, kerasish's SyncBatchNorm: in training its
batch moments are all-reduced (differentiably) over the default
`torch.distributed` process group whenever one is initialized, so N
processes normalize with, and update their moving statistics from, the
moments of the global batch. The layer stays a kerasish layer (Keras
momentum, epsilon, channel axis, `get_config` now says
`synchronized=True`). An explicit `process_group` other than the default
group is refused with a clear error (the layer all-reduces over the default
group only).
"""

from __future__ import annotations

_CODE = []  # convert_sync_batchnorm's code object, looked up once


def _convert_code():
    if not _CODE:
        import torch

        _CODE.append(torch.nn.SyncBatchNorm.convert_sync_batchnorm.__func__.__code__)
    return _CODE[0]


def on_named_children(layer, frame) -> None:
    """Called by `BatchNormalization.named_children` with its caller's frame:
    when the caller is `convert_sync_batchnorm`, synchronizes `layer`."""
    if frame is None or frame.f_code is not _convert_code():
        return
    group = frame.f_locals.get("process_group")
    if group is not None:
        import torch.distributed as dist

        if not (dist.is_available() and group is dist.group.WORLD):
            raise ValueError(
                f"`SyncBatchNorm.convert_sync_batchnorm`: kerasish BatchNormalization '{layer.name}' synchronizes "
                "its batch statistics over the default process group only. Received: process_group="
                f"{group!r}. Convert with `process_group=None`, or set `synchronized=True` on the layers "
                "that should synchronize and run them in the default group."
            )
    layer.synchronized = True
