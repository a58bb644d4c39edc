"""`keras.distribution` on `torch.distributed` (see `distribution_lib`).

    # train.py, launched with: torchrun --nproc_per_node=2 train.py
    import kerasish as keras

    keras.distribution.initialize()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    model = ...  # on GPUs: model.to(f"cuda:{LOCAL_RANK}")
    model.compile(...)
    model.fit(x, y, batch_size=256)  # 256 is the global batch

Combining `fit` with your own wrapping. Supported: (1) `DataParallel` above
and no wrapper; (2) FSDP2: `fully_shard(model)` (in place; a model with LSTM
layers needs `kerasish.utils.contiguous_weights(model)` first) then `model.fit`
with no distribution set: each rank feeds its own data, FSDP2 averages the
gradients, metric states are summed over ranks, the weights' Keras
regularizers and constraints (which `fully_shard` drops) are restored
(tested on CPU/gloo);
(3) your own training loop around `DDP(model)` / `fully_shard(model)` (every
kerasish layer is an `nn.Module`). Not supported: `DDP(model)` then
`model.fit` (fit calls the inner model, so DDP would never sync: use (1)).
`ModelParallel(layout_map=...)`: LayoutMap weights become DTensors
sharded on the mesh's non-batch axes (see `model_parallel`), the batch axis
is data parallel; a layout that shards weights along the batch axis runs on
FSDP2 (`fully_shard`). Sharded checkpoints:
`model_parallel.save_sharded_checkpoint` / `load_sharded_checkpoint`.
`fit` in a multi-rank process group with no distribution set raises a
RuntimeError saying so. Gradients are averaged in DDP-style buckets while
backward runs (over the batch axis under `ModelParallel`, DTensor weights
contributing their shards); a custom `train_step` (calling `backward`) gets
them averaged unweighted, as DDP does (exact when every rank's share of
each batch has the same size; the default step weights ranks by their
samples). A custom step that updates the weights without `backward` (e.g.
gradients from `torch.autograd.grad`) raises instead of diverging.

Losses: the default step weighs each rank by its rows, so the compiled
loss, activity regularizers (which Keras divides by the batch size) and
`add_loss` terms that are means over the rows equal one process on the
global batch, as Keras on JAX computes them; a weight penalty added with
`add_loss` is also exact. An `add_loss` term that *sums* over the rows gets
the row-weighted mean of the ranks' sums instead (Keras on JAX would sum
it over the global batch): write such terms as means.

Launch: `torchrun --nproc_per_node=N train.py`, or one process per host
started some other way calling `keras.distribution.initialize(job_addresses=
"host0:port,host1:port", num_processes=2, process_id=i)` (or setting
Keras's `KERAS_DISTRIBUTION_JOB_ADDRESSES` / `_NUM_PROCESSES` /
`_PROCESS_ID`). Keras 3's distribution guide runs ported
(tests/distribution/test_guide.py).
"""

from kerasish.distribution.distribution_lib import DataParallel
from kerasish.distribution.distribution_lib import DeviceMesh
from kerasish.distribution.distribution_lib import Distribution
from kerasish.distribution.distribution_lib import LayoutMap
from kerasish.distribution.distribution_lib import ModelParallel
from kerasish.distribution.distribution_lib import TensorLayout
from kerasish.distribution.distribution_lib import distribute_tensor
from kerasish.distribution.distribution_lib import distribution
from kerasish.distribution.distribution_lib import get_device_count
from kerasish.distribution.distribution_lib import initialize
from kerasish.distribution.distribution_lib import list_devices
from kerasish.distribution.distribution_lib import set_distribution

__all__ = [
    "DataParallel",
    "DeviceMesh",
    "Distribution",
    "LayoutMap",
    "ModelParallel",
    "TensorLayout",
    "distribute_tensor",
    "distribution",
    "get_device_count",
    "initialize",
    "list_devices",
    "set_distribution",
]
