"""`keras.distribution` on `torch.distributed`.

Keras 3 implements this namespace on JAX only. Here the same names map onto
PyTorch's own engine, launched by `torchrun` (one process per device):

- `initialize()` creates the default process group from torchrun's
  environment (`RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`,
  `LOCAL_RANK`): NCCL on CUDA, gloo on CPU.
- `list_devices()` lists one device per process of the group
  (`"cuda:<rank>"` / `"cpu:<rank>"`), as JAX lists its global devices.
- `DataParallel` replicates the weights: they are broadcast from rank 0 when
  `fit` starts, gradients are averaged over the ranks (weighted by each
  rank's share of the global batch, so a fit on N processes equals one
  process on the global batch; DDP-style buckets all-reduced while backward
  runs), BatchNormalization normalizes with the global batch's statistics
  (as Keras's data-parallel step on JAX does), and data is split across
  ranks.
- `ModelParallel` maps a `LayoutMap` onto DTensor (see `model_parallel`):
  weights it matches are sharded on the mesh axes other than the batch
  axis (`Shard(dim)`, Keras's kernel layouts: `(None, "model")` on a Dense
  kernel shards its output units), other weights are replicated, and the
  batch axis is data parallel. A layout naming the batch axis (e.g.
  `("batch", None)` on a `(n,)` or `(n, 1)` mesh) shards those weights
  along it with FSDP2 (ZeRO-3; every model axis must then have one
  device). `fit`/`evaluate`/`predict` on N processes equal one process on
  the global batch; whole weights are read and written through
  `get_weights`/`set_weights`, `variable.numpy()`, `save` (rank 0 writes),
  `save_weights`/`load_weights`; sharded checkpoints through
  `model_parallel.save_sharded_checkpoint` (`sharded_checkpoint`). Not supported: batch-axis and
  model-axis sharding at once. Layouts for activations (Keras's
  `layout_map["d2/output"]`) are accepted and answered by
  `get_tensor_layout`; on JAX they only constrain where XLA keeps the
  values, and here the activations stay where each layer computes them:
  no number changes either way.

Keras 3's distribution guide (keras-io `guides/distribution.py`) runs
unchanged but for `import kerasish as keras` and a torch `DataLoader` in
place of `tf.data`, under `torchrun --nproc_per_node=N`
(tests/distribution/test_guide.py).
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import re
import threading
import warnings

import numpy as np
import torch

DEFAULT_BATCH_DIM_NAME = "batch"


class _CurrentDistribution(threading.local):
    """The global distribution, one per thread as in Keras 3 (its `global_state` is a
    `threading.local`): a `scope()` or `set_distribution` in one thread never makes another
    thread's `fit` distributed."""

    value = None


_STATE = _CurrentDistribution()
_FIT = threading.local()  # per thread: another thread's model never joins this fit's collectives


def sync_batch_stats() -> bool:
    """Whether this thread is running a data-parallel `fit` on several
    processes: `BatchNormalization` then uses the global batch's statistics
    (all rows of the batch group), as Keras's data-parallel step on JAX does."""
    return getattr(_FIT, "sync_batch_stats", False)


def batch_stats_group():
    """The process group `BatchNormalization`'s global statistics are summed
    over in this thread (None: the default group). Under `ModelParallel` it
    is the batch axis's group: the processes along the model axes hold the
    same rows, so summing over them too adds nothing but traffic."""
    return getattr(_FIT, "batch_stats_group", None)


def mark_batch_stats_synced() -> None:
    """Called by a BatchNormalization that summed its statistics over
    several processes in this thread's forward: the ranks' losses are then
    coupled, and the step weighs each rank's loss by its rows before
    backward (see `DataParallelRun.before_backward`)."""
    _FIT.stats_synced = True


def take_batch_stats_synced() -> bool:
    """Whether a forward since the last call summed BatchNormalization
    statistics over processes (and clears it)."""
    synced = getattr(_FIT, "stats_synced", False)
    _FIT.stats_synced = False
    return synced


def set_sync_batch_stats(value: bool, group=None) -> None:
    """Set by the data-parallel `fit` of this thread for its duration
    (`group`: the processes holding distinct rows; None for all)."""
    _FIT.sync_batch_stats = value
    _FIT.batch_stats_group = group if value else None


# ------------------------------------------------------------- processes
def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def num_processes() -> int:
    """Processes in the default process group (1 without one)."""
    return torch.distributed.get_world_size() if _dist_ready() else 1


def process_id() -> int:
    """This process's rank in the default process group (0 without one)."""
    return torch.distributed.get_rank() if _dist_ready() else 0


def _local_device_type(device_type=None) -> str:
    if device_type is not None:
        device_type = device_type.lower()
        if device_type == "gpu":
            device_type = "cuda"
        if device_type not in ("cpu", "cuda"):
            raise ValueError(
                f"Invalid value for argument `device_type`. Expected one of 'cpu', 'gpu', 'cuda' or None. "
                f"Received: device_type={device_type}"
            )
        return device_type
    return "cuda" if torch.cuda.is_available() else "cpu"


def list_devices(device_type=None) -> list:
    """All devices available for computation, as strings.

    Inside a process group this is one device per process (`"cpu:<rank>"`,
    or `"cuda:<rank>"` when the group runs on GPUs), the global view JAX
    gives; outside one, the local devices (`"cuda:0"`... or `"cpu:0"`).

    Args:
        device_type: "cpu", "gpu" (or "cuda"), or None for the default
            (GPU when available).

    Returns:
        List of device strings.
    """
    kind = _local_device_type(device_type)
    if _dist_ready():
        return [f"{kind}:{i}" for i in range(num_processes())]
    if kind == "cuda":
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu:0"]


def get_device_count(device_type=None) -> int:
    """`len(list_devices(device_type))`."""
    return len(list_devices(device_type))


def initialize(job_addresses=None, num_processes=None, process_id=None) -> None:
    """Creates the default `torch.distributed` process group.

    Under `torchrun` no argument is needed: the rank, world size and
    coordinator address come from the environment. Started some other way
    (one process per host, as with Keras on JAX), each process names the
    job as Keras does, with arguments or with Keras's environment variables
    `KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES`
    and `KERAS_DISTRIBUTION_PROCESS_ID` (arguments win, then those, then
    torchrun's `MASTER_ADDR`/`MASTER_PORT`/`WORLD_SIZE`/`RANK`):

        keras.distribution.initialize(
            job_addresses="10.0.0.1:1234,10.0.0.2:2345", num_processes=2, process_id=0)

    Does nothing when a process group already exists, or when this is a
    single process with no coordinator to join (Keras on JAX raises there;
    a one-process program runs unchanged here).

    Args:
        job_addresses: Comma-separated `host:port` addresses (or a list),
            one per process, or just the coordinator's; the first is the
            coordinator (`MASTER_ADDR:MASTER_PORT` of torch's rendezvous).
        num_processes: World size. Defaults to `WORLD_SIZE`.
        process_id: This process's rank, in `[0, num_processes)`. Defaults
            to `RANK`.

    Raises:
        ValueError: an address is not `host:port`, the number of addresses
            is neither 1 nor `num_processes` (Keras's check), or
            `process_id` is out of range.
    """
    if _dist_ready():
        return
    if not torch.distributed.is_available():
        raise RuntimeError("`keras.distribution.initialize()` needs a PyTorch build with torch.distributed.")
    env = os.environ
    # Keras's own environment variables (`keras.distribution.initialize`'s documented alternative)
    if job_addresses is None and env.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        job_addresses = env["KERAS_DISTRIBUTION_JOB_ADDRESSES"]
    if num_processes is None and env.get("KERAS_DISTRIBUTION_NUM_PROCESSES"):
        num_processes = int(env["KERAS_DISTRIBUTION_NUM_PROCESSES"])
    if process_id is None and env.get("KERAS_DISTRIBUTION_PROCESS_ID"):
        process_id = int(env["KERAS_DISTRIBUTION_PROCESS_ID"])
    if job_addresses:
        addresses = job_addresses.split(",") if isinstance(job_addresses, str) else list(job_addresses)
        addresses = [a.strip() for a in addresses if a.strip()]
        if num_processes is not None and len(addresses) > 1 and len(addresses) != int(num_processes):
            raise ValueError(
                f"The provided job_addresses {addresses} has {len(addresses)} jobs, but num_processes is "
                f"{num_processes}"
            )
        host, _, port = addresses[0].rpartition(":") if addresses else ("", "", "")
        if not host or not port.isdigit():
            raise ValueError(
                f"Expected `job_addresses` as 'host:port[,host:port...]'. Received: job_addresses={job_addresses}"
            )
        coordinator = (host.strip("[]"), port)
    else:
        coordinator = None
    world = int(num_processes if num_processes is not None else env.get("WORLD_SIZE", 1))
    rank = int(process_id if process_id is not None else env.get("RANK", 0))
    if world <= 1 and coordinator is None and "MASTER_ADDR" not in env:
        return  # a single process with no coordinator: nothing to join
    if world < 1:
        raise ValueError(f"`num_processes` must be a positive integer. Received: num_processes={world}")
    if not 0 <= rank < world:
        raise ValueError(f"`process_id` must be in [0, {world}). Received: process_id={rank}")
    # (the environment is written only once the arguments are known to be good)
    if coordinator is not None:
        env["MASTER_ADDR"], env["MASTER_PORT"] = coordinator
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    env.setdefault("MASTER_PORT", "29500")
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(env.get("LOCAL_RANK", rank % torch.cuda.device_count())))
    backend = "nccl" if use_cuda else "gloo"
    store = None if coordinator is not None else _restart_store(env, world)
    if store is not None:
        torch.distributed.init_process_group(backend=backend, store=store, rank=rank, world_size=world)
    else:
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world)


# the store prefix of one attempt of a torchrun job (see `_restart_store`)
_ATTEMPT_PREFIX = "kerasish_attempt_{}"


def _restart_store(env, world):
    """The process group's store for a single-node torchrun job: the
    agent's store (which outlives the workers) under a prefix naming this
    attempt (`TORCHELASTIC_RESTART_COUNT`), or None elsewhere.

    torchrun's workers share its agent's TCPStore, whose keys survive a
    restart (`--max-restarts`): a restarted rank can read a dead rank's
    gloo/NCCL address from the previous attempt and fail to connect
    (pytorch/pytorch#135712). On one node a single agent restarts every
    worker at once, so the restart count names the attempt on every rank;
    across nodes each agent counts its own restarts, and torch's default
    is kept.
    """
    attempt = env.get("TORCHELASTIC_RESTART_COUNT")
    if (attempt is None or env.get("TORCHELASTIC_USE_AGENT_STORE") != "True"
            or env.get("LOCAL_WORLD_SIZE") != str(world) or "MASTER_PORT" not in env):
        return None
    from torch.distributed.constants import default_pg_timeout

    agent = torch.distributed.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), world, is_master=False,
                                       timeout=default_pg_timeout)
    return torch.distributed.PrefixStore(_ATTEMPT_PREFIX.format(attempt), agent)


# ------------------------------------------------------------------ mesh
class DeviceMesh:
    """A named N-D grid of the devices (one per process) that compute.

    Args:
        shape: Tuple of ints, e.g. `(8,)` for data parallel, `(4, 2)` for
            data x model parallel.
        axis_names: One name per axis of `shape`.
        devices: Defaults to `list_devices()`.
    """

    def __init__(self, shape, axis_names, devices=None):
        if not shape or not axis_names:
            raise ValueError(f"Shape and axis_names cannot be empty. Received: shape={shape}, axis_names={axis_names}")
        if len(shape) != len(axis_names):
            raise ValueError(
                f"Shape and axis_names should have same size. Received: shape={shape}, axis_names={axis_names}"
            )
        devices = np.array(list_devices() if devices is None else devices)
        if math.prod(shape) != devices.size:
            raise ValueError(
                f"Shape does not match the number of devices. Received: shape={shape}; devices.shape={devices.shape}"
            )
        self._shape = tuple(shape)
        self._axis_names = list(axis_names)
        self._devices = devices.reshape(shape)

    @property
    def shape(self):
        return self._shape

    @property
    def axis_names(self):
        return self._axis_names

    @property
    def devices(self):
        return self._devices

    @property
    def backend_mesh(self):
        """The equivalent `torch.distributed.device_mesh.DeviceMesh` (needs a
        process group whose size is the mesh size)."""
        from kerasish.distribution import model_parallel

        return model_parallel.torch_mesh(self)

    def __repr__(self):
        return f"<DeviceMesh shape={self.shape}, axis_names={self.axis_names}>"


class TensorLayout:
    """How a tensor is laid out on a `DeviceMesh`: one mesh axis name (or
    None, replicated) per tensor dimension.

    Args:
        axes: Tuple of axis names or None.
        device_mesh: Optional `DeviceMesh`.
    """

    def __init__(self, axes, device_mesh=None):
        self._axes = tuple(axes)
        self._device_mesh = device_mesh
        self._validate_axes()

    @property
    def axes(self):
        return self._axes

    @property
    def device_mesh(self):
        return self._device_mesh

    @device_mesh.setter
    def device_mesh(self, device_mesh):
        if self._device_mesh is not None:
            raise ValueError(
                f"Cannot override device mesh value. Existing value is {self._device_mesh}"
            )
        self._device_mesh = device_mesh
        self._validate_axes()

    def _validate_axes(self):
        if self._device_mesh is not None:
            valid = set(self._device_mesh.axis_names)
            bad = set(self._axes) - valid - {None}
            if bad:
                raise ValueError(
                    f"Invalid axis names for Layout. Valid axis names: {sorted(valid)}, Got {sorted(bad)}"
                )

    def __repr__(self):
        return f"<TensorLayout axes={self.axes}, device_mesh={self.device_mesh}>"


class LayoutMap(collections.abc.MutableMapping):
    """Maps variable paths (regexes, e.g. `".*dense.*kernel"`) to
    `TensorLayout`s. Tuples of axis names are accepted as layouts.

    Kernels use Keras's layouts: a Dense kernel is `(in, out)`, so
    `(None, "model")` shards the output units.

    Args:
        device_mesh: The `DeviceMesh` the layouts refer to.
    """

    def __init__(self, device_mesh):
        self._layout_map = collections.OrderedDict()
        self._device_mesh = device_mesh

    def __getitem__(self, key):
        if key in self._layout_map:
            return self._layout_map[key]
        matches = [pattern for pattern in self._layout_map if re.fullmatch(pattern, key)]
        if len(matches) > 1:
            raise ValueError(
                f"Path '{key}' matches multiple layout specification keys: {matches}. Please make sure each "
                "tensor/variable path only matches at most one layout specification key in the LayoutMap."
            )
        return self._layout_map[matches[0]] if matches else None

    def __setitem__(self, key, layout):
        if key in self._layout_map:
            raise ValueError(
                f"{key} already exist in the LayoutMap with value {self._layout_map[key]}. Please make sure to not "
                "use duplicated keys."
            )
        if isinstance(layout, tuple):
            layout = TensorLayout(axes=layout)
        if not isinstance(layout, TensorLayout):
            raise ValueError(f"{layout} should be a TensorLayout type, got {type(layout)}")
        if layout.device_mesh is None and self._device_mesh is not None:
            layout.device_mesh = self._device_mesh
        self._layout_map[key] = layout

    def __delitem__(self, key):
        return self._layout_map.pop(key)

    def __len__(self):
        return len(self._layout_map)

    def __iter__(self):
        return iter(self._layout_map)

    @property
    def device_mesh(self):
        return self._device_mesh


# ---------------------------------------------------------- distributions
class Distribution:
    """Base class of distribution strategies (Keras 3).

    Args:
        device_mesh: A `DeviceMesh`.
        batch_dim_name: Mesh axis the batch is split along.
        auto_shard_dataset: Split the data passed to `fit`/`evaluate`/
            `predict` across processes (True, default), or feed each
            process its own data as given (False).
    """

    def __init__(self, device_mesh, batch_dim_name=None, auto_shard_dataset=True):
        self._device_mesh = device_mesh
        self._batch_dim_name = batch_dim_name
        self._auto_shard_dataset = auto_shard_dataset
        self._num_processes = num_processes()
        self._process_id = process_id()
        self._is_multi_process = self._num_processes > 1

    @property
    def num_processes(self):
        return self._num_processes

    @property
    def num_model_replicas(self):
        raise NotImplementedError()

    @property
    def data_shard_id(self):
        replicas = self.num_model_replicas
        if replicas >= self.num_processes:
            return self._process_id
        return self._process_id // (self.num_processes // replicas)

    @property
    def device_mesh(self):
        return self._device_mesh

    @property
    def batch_dim_name(self):
        return self._batch_dim_name

    @property
    def auto_shard_dataset(self):
        return self._auto_shard_dataset

    @auto_shard_dataset.setter
    def auto_shard_dataset(self, value):
        self._auto_shard_dataset = value

    def get_data_layout(self, data_shape):
        spec = [None] * len(data_shape)
        spec[0] = self.batch_dim_name
        return TensorLayout(spec, self.device_mesh)

    def get_variable_layout(self, variable):
        raise NotImplementedError()

    def get_tensor_layout(self, path):
        raise NotImplementedError()

    @contextlib.contextmanager
    def scope(self):
        """Makes this distribution current inside the `with` block."""
        previous = distribution()
        set_distribution(self)
        try:
            yield
        finally:
            set_distribution(previous)

    def distribute_dataset(self, dataset):
        """The dataset unchanged: `fit`/`evaluate`/`predict` split it per
        rank themselves (see `DataParallel`)."""
        return dataset

    def __repr__(self):
        return f"<{type(self).__name__} device_mesh={self.device_mesh}>"


class DataParallel(Distribution):
    """Data parallelism: every process holds the whole model.

    In `fit`, the weights are broadcast from rank 0 before the first step
    and gradients are averaged across ranks (each rank weighted by its
    share of the global batch) in buckets that start all-reducing while
    backward runs, as DDP's; `batch_size` is the global batch, split
    across ranks per step; every rank runs the same number of steps.
    BatchNormalization layers normalize with the global batch's statistics
    while `fit` trains (Keras on JAX computes them on the whole batch), so
    they equal one process, also on uneven shares and when the last batch
    leaves a rank no rows (the statistics carry each rank's gradient into
    the others' rows, so the step then weighs each rank's loss by its rows
    before backward, with one extra 1-element all-reduce per step).
    Activity regularizers and `add_loss` terms are weighted by rows like
    the compiled loss (exact for means over the rows; see the package
    docstring for sums).
    Metric states are summed over ranks before logs are read at epoch end
    (and per batch when a callback reads batch logs), so History,
    EarlyStopping, ReduceLROnPlateau and batch-level callbacks agree
    everywhere; the rank-0 progress bar shows rank 0's running values
    within an epoch.
    A DataLoader over a `torch.utils.data.DistributedSampler` is already
    split per rank: it is read as per-rank data (never split again), and
    `fit` calls `sampler.set_epoch(epoch)` before each epoch.
    Random layers (Dropout, random augmentation) draw on each rank's rows
    from that rank's generator, not one draw for the global batch as Keras
    on JAX: seed ranks apart (`keras.utils.set_random_seed(seed + rank)`;
    weights and shuffles come from rank 0 either way).

    Args:
        device_mesh: Optional 1-D `DeviceMesh` (one device per process).
            A mesh of more axes is accepted when its other axes have one
            device each (Keras warns and splits along the first axis);
            otherwise a ValueError points to `ModelParallel`.
        devices: Optional list of devices (instead of `device_mesh`).
        auto_shard_dataset: Defaults to True (see `Distribution`).
    """

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset=True):
        if device_mesh is not None:
            if not isinstance(device_mesh, DeviceMesh):
                raise ValueError(
                    f"Expect `mesh` to be an instance of `DeviceMesh`. Received: mesh={device_mesh} "
                    f"(of type {type(device_mesh)})"
                )
            if len(device_mesh.shape) != 1:
                if any(size > 1 for size in device_mesh.shape[1:]):
                    raise ValueError(
                        "`DataParallel` splits the batch along the mesh's first axis and holds one replica per "
                        "process; a mesh whose other axes have more than one device would replicate the "
                        "computation along them, which kerasish does with `ModelParallel(layout_map="
                        "LayoutMap(device_mesh), batch_dim_name=device_mesh.axis_names[0])`. "
                        f"Received: device_mesh.shape={device_mesh.shape}"
                    )
                warnings.warn(  # Keras's warning; the other axes have one device each
                    f"Expect the input mesh to be 1D, but received mesh.devices.ndim={len(device_mesh.shape)}. "
                    "The first axis will be used for data-parallel sharding.",
                    stacklevel=2,
                )
            super().__init__(device_mesh, device_mesh.axis_names[0], auto_shard_dataset)
            return
        devices = np.array(list_devices() if not devices else devices)
        mesh = DeviceMesh(shape=devices.shape, axis_names=[DEFAULT_BATCH_DIM_NAME], devices=devices)
        super().__init__(mesh, DEFAULT_BATCH_DIM_NAME, auto_shard_dataset)

    @property
    def num_model_replicas(self):
        return self.device_mesh.devices.size

    def get_variable_layout(self, variable):
        layout = getattr(variable, "_layout", None)
        if layout is not None:
            return layout
        return TensorLayout([None] * len(variable.shape), self.device_mesh)

    def get_tensor_layout(self, path):
        return None


class ModelParallel(Distribution):
    """Shards weights according to a `LayoutMap` (Keras 3 names).

    Launch one process per mesh device (`torchrun --nproc_per_node=N`). When
    `fit`/`evaluate`/`predict` first run, the model is built, rank 0's
    weights are taken, and each weight whose `variable.path` matches a key
    becomes a DTensor laid out on the mesh axes other than
    `batch_dim_name`; the rest are replicated. Data is split along the
    batch axis (`batch_size` is the global batch). Processes along the
    model axes compute on the same rows and get the same random state: the
    global torch RNG is reseeded from rank 0 when a loop starts.

    A layout that puts a weight's dimension on the batch axis (FSDP /
    ZeRO-3; Keras's common `DeviceMesh((n, 1), ["batch", "model"])` with
    kernels on "batch") is run by FSDP2: `fully_shard` on each layer, that
    dimension `Shard(dim)` over the batch axis, each layer's weights
    all-gathered for its call and gradients reduce-scattered (weighted by
    each rank's rows). FSDP2 shards every parameter of the model (the
    others on their first dimension); the numbers are those of one process.
    Every model axis must then have one device.

    With `auto_shard_dataset=False` each process feeds its own part of the
    global batch (Keras's rule): the processes of one batch shard (those
    that differ only along the model axes) must feed the same rows in the
    same order; kerasish gives them the same shuffle seed and checks, raising
    the same ValueError on every rank when they differ: each loop's first
    batch (shape, dtype and sum of every leaf of `x`, `y` and
    `sample_weight`, one small all-gather per loop) and, on a mesh whose
    batch axis has one device, the shapes and dtypes of every later batch
    (carried by the per-step all-reduce that keeps the processes in
    lockstep). Later batches' values, and later batches on a mesh with
    several batch shards, are not compared.

        mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"])
        layout_map = keras.distribution.LayoutMap(mesh)
        layout_map[".*dense.*kernel"] = (None, "model")  # (in, out): column parallel
        layout_map[".*dense.*bias"] = ("model",)
        keras.distribution.set_distribution(
            keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch"))

    A layout whose rank differs from the weight's, that names an unknown
    axis, uses one axis twice, or shards a dimension not divisible by the
    axis size raises `ValueError`; sharding along the batch axis on a mesh
    with a model axis of more than one device raises `NotImplementedError`.

    Args:
        layout_map: A `LayoutMap`.
        batch_dim_name: Mesh axis for the batch; defaults to the first.
        auto_shard_dataset: Defaults to True.
    """

    def __init__(self, *, layout_map=None, batch_dim_name=None, auto_shard_dataset=True, **kwargs):
        kwargs.pop("device_mesh", None)
        if layout_map is None:
            raise ValueError("You must specify a layout_map argument.")
        if not isinstance(layout_map, LayoutMap):
            raise ValueError(f"Argument `layout_map` must be a `LayoutMap` instance. Received: layout_map={layout_map}")
        mesh = layout_map.device_mesh
        super().__init__(mesh, batch_dim_name or mesh.axis_names[0], auto_shard_dataset)
        self._layout_map = layout_map
        if (self._is_multi_process and self.num_processes > self.num_model_replicas
                and self.num_processes % self.num_model_replicas != 0):
            raise ValueError(
                "If `num_processes` is greater than `num_model_replicas`, `num_processes` must be divisible by "
                f"`num_model_replicas`. Got num_processes={self.num_processes}, "
                f"num_model_replicas={self.num_model_replicas}."
            )

    @property
    def num_model_replicas(self):
        return self.device_mesh.shape[self.device_mesh.axis_names.index(self.batch_dim_name)]

    def get_variable_layout(self, variable):
        layout = getattr(variable, "_layout", None)
        if layout is not None:
            return layout
        layout = self._layout_map[variable.path]
        if layout is not None:
            return layout
        return TensorLayout([None] * len(variable.shape), self.device_mesh)

    def get_tensor_layout(self, path):
        return self._layout_map[path]

    def distribute_dataset(self, dataset):
        """The dataset unchanged: `fit`/`evaluate`/`predict` split each
        global batch along the batch axis themselves (processes that differ
        only along the model axes get the same rows)."""
        return dataset


def distribute_tensor(tensor, layout):
    """Lays `tensor` out as `layout` says.

    In a process group whose size is the layout's mesh size, a
    `torch.distributed.tensor.DTensor` on that mesh: each dimension named by
    a mesh axis is sharded along it (`Shard(dim)`), the other axes hold
    replicas; every process passes the whole tensor and rank 0's values are
    used. In a single process (a one-device mesh) the tensor is returned
    unchanged, as there is nothing to lay out.

    Args:
        tensor: A tensor (or array) holding the whole value.
        layout: A `TensorLayout` with a `device_mesh`.

    Raises:
        ValueError: `layout` is not a `TensorLayout` with a mesh, or does
            not fit the tensor (rank, unknown axis, a dimension not
            divisible by its axis size).
    """
    if not isinstance(layout, TensorLayout) or layout.device_mesh is None:
        raise ValueError(
            "`distribute_tensor` expects a `keras.distribution.TensorLayout` with a `device_mesh`. "
            f"Received: layout={layout}"
        )
    from kerasish.distribution import model_parallel

    if not isinstance(tensor, torch.Tensor):
        tensor = torch.as_tensor(np.asarray(tensor))
    placements = model_parallel.mesh_placements(layout.device_mesh, "tensor", tensor.shape, layout.axes)
    if not _dist_ready() or layout.device_mesh.devices.size == 1:
        return tensor
    if layout.device_mesh.devices.size != num_processes():
        raise ValueError(
            f"The layout's mesh has {layout.device_mesh.devices.size} devices but the process group has "
            f"{num_processes()} ranks. Received: layout={layout}"
        )
    from torch.distributed.tensor import distribute_tensor as torch_distribute_tensor

    return torch_distribute_tensor(tensor, layout.device_mesh.backend_mesh, placements)


def distribution():
    """This thread's global `Distribution` (None when unset; per thread, as in Keras 3)."""
    return _STATE.value


def set_distribution(value) -> None:
    """Sets this thread's global distribution (a `Distribution` or None; per thread, as in Keras 3)."""
    if value is not None and not isinstance(value, Distribution):
        raise ValueError(
            f"Expected a `keras.distribution.Distribution` instance or None. Received: value={value!r}"
        )
    _STATE.value = value
