"""Turning what users pass to `fit`/`evaluate`/`predict` into batches.

Supported inputs (Keras 3 semantics):

- NumPy arrays, torch tensors, lists/tuples/dicts of them (multi-input and
  multi-output models), with `y`, `sample_weight`, `class_weight`,
  `batch_size` and `shuffle` (True, False or "batch");
- `torch.utils.data.DataLoader` (or any re-iterable of batches) and
  Python generators yielding `x`, `(x, y)` or `(x, y, sample_weight)`;
- a map-style or iterable `torch.utils.data.Dataset`, batched here with a
  `DataLoader(batch_size, shuffle)`.

Arrays become torch tensors once, and every floating array (NumPy, torch;
float16, bfloat16, float64, float8) whose dtype is not `floatx()` is cast to
`floatx()` then, as Keras 3's array adapter does for `x`, `y` and
`sample_weight` (`cast_to_floatx`); integer, bool, complex and string data
keep their dtype. Batches of generators, PyDatasets and DataLoaders are not
cast (Keras 3 leaves them alone too). Batches are gathered with one `index_select`
per array, and each batch is moved to the model's device. When the model is
on an accelerator and the arrays are small (`_DEVICE_RESIDENT_BYTES`), the
whole dataset is moved there once, so batching costs no host-to-device copy.
Otherwise (and for DataLoaders) batches bound for CUDA are copied from pinned
memory without blocking, one batch ahead (`device_feed.Prefetcher`).
"""

from __future__ import annotations

import collections.abc
import contextlib
import contextvars
import itertools
import math
import types
import warnings

import numpy as np
import torch

from kerasish.backend import dtypes
from kerasish.backend.dtypes import floatx
from kerasish.backend.dtypes import to_torch_dtype
from kerasish.random.seed_generator import keras_seeding
from kerasish.trainers.device_feed import Prefetcher
from kerasish.trainers.device_feed import is_cuda
from kerasish.trainers.device_feed import host_to_device

# Arrays up to this many bytes in total live on the accelerator for the whole fit.
_DEVICE_RESIDENT_BYTES = 256 * 2**20


# ----------------------------------------------------------------- packing
def unpack_x_y_sample_weight(data):
    """`x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)` -> `(x, y, sample_weight)`."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data[0], data[1], data[2]
    raise ValueError(
        f"Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, found: {data}"
    )


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """Inverse of `unpack_x_y_sample_weight`."""
    if y is None:
        return x if not isinstance(x, (list, tuple)) else (x,)
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


# -------------------------------------------------------------- structures
def _flatten(x) -> list:
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in _flatten(item)]
    if isinstance(x, dict):
        return [leaf for key in x for leaf in _flatten(x[key])]
    return [x]


def _pack(structure, flat):
    """Rebuilds `structure` from `flat` leaves (same order as `_flatten`)."""
    it = iter(flat)

    def build(s):
        if isinstance(s, (list, tuple)):
            return type(s)(build(v) for v in s)
        if isinstance(s, dict):
            return {k: build(s[k]) for k in s}
        return next(it)

    return build(structure)


def map_structure(fn, x):
    if isinstance(x, (list, tuple)):
        return type(x)(map_structure(fn, v) for v in x)
    if isinstance(x, dict):
        return {k: map_structure(fn, v) for k, v in x.items()}
    return fn(x)


def _is_array_like(x) -> bool:
    return x is None or isinstance(x, (np.ndarray, torch.Tensor)) or hasattr(x, "__array__") or np.isscalar(x)


def _is_scipy_sparse(x) -> bool:
    """A scipy.sparse matrix or array (scipy is never imported here)."""
    return (type(x).__module__ or "").startswith("scipy.sparse") and hasattr(x, "tocsr")


def can_convert_arrays(data) -> bool:
    """True when every leaf of `data` is an array, a tensor, a scipy.sparse
    matrix or None."""
    leaves = _flatten(data)
    return all(
        leaf is None or isinstance(leaf, (np.ndarray, torch.Tensor)) or _is_scipy_sparse(leaf)
        or (hasattr(leaf, "__array__") and not callable(leaf))
        for leaf in leaves
    )


class SparseRows:
    """A scipy.sparse matrix kept sparse on the host (CSR) by the array
    adapter, whose batches are its rows made dense, one batch at a time, as
    Keras 3's torch backend makes them (so a large TF-IDF matrix never
    becomes dense as a whole). Non-floatx float matrices are cast to floatx
    first, as Keras."""

    def __init__(self, matrix):
        csr = matrix.tocsr()
        if csr.dtype.kind == "f" and csr.dtype != np.dtype(floatx()):
            csr = csr.astype(floatx())
        self.csr = csr
        self.shape = tuple(int(d) for d in csr.shape)
        self.ndim = len(self.shape)
        self.dtype = csr.dtype

    def _dense(self, rows) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(rows.toarray()))

    def __getitem__(self, index: slice) -> torch.Tensor:
        return self._dense(self.csr[index])

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        return self._dense(self.csr[idx.cpu().numpy()])


def to_tensor(x):
    """An array-like as a torch tensor of its own dtype (the array adapter
    casts to floatx after, `cast_to_floatx`; a generator's or PyDataset's
    NumPy batches keep their dtype, as in Keras). A tensor made under `torch.inference_mode()` (features from a frozen model)
    is copied once into an ordinary tensor: data for `fit`, whose batches
    (views of it) autograd would refuse."""
    if x is None:
        return x
    if isinstance(x, torch.Tensor):
        return x.clone() if x.is_inference() else x
    if hasattr(x, "to_numpy") and not isinstance(x, np.ndarray):  # pandas
        x = x.to_numpy()
    arr = np.asarray(x)
    if dtypes.is_bfloat16_array(arr):
        return dtypes.bfloat16_array_to_tensor(arr)
    if arr.dtype.kind in "USO":
        strings = host_strings(arr)
        if strings is not None:
            return strings  # for `dtype="string"` model inputs: torch has no string tensors
        raise ValueError(f"Cannot convert an array of dtype object to a tensor. Received: {type(x).__name__}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _pandas_kind(x) -> str | None:
    """"frame" or "series" for a pandas DataFrame / Series (checked by the
    module name: pandas is never imported here), else None."""
    module = type(x).__module__ or ""
    if not module.startswith("pandas"):
        return None
    name = type(x).__name__
    return "frame" if name == "DataFrame" else "series" if name == "Series" else None


def _is_non_floatx_float(dtype) -> bool:
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:  # a pandas extension dtype (category, nullable Int64, string): not a float column
        return False
    return np_dtype.kind == "f" and np_dtype != np.dtype(floatx())


def adapter_leaf(x):
    """One leaf of `x`, `y` or `sample_weight` as Keras 3's array adapter
    takes it: a non-floatx float array or tensor becomes floatx; a pandas
    DataFrame is cast to floatx as a whole when any of its columns is a
    non-floatx float, and then read with `to_numpy()` (so a frame of int64
    and float32 columns gives float64 batches, as in Keras); a pandas Series
    becomes a column, shape `(n, 1)`."""
    if _is_scipy_sparse(x):
        return SparseRows(x)
    kind = _pandas_kind(x)
    if kind is None:
        return cast_to_floatx(to_tensor(x))
    if kind == "frame":
        if any(_is_non_floatx_float(d) for d in x.dtypes.values):
            x = x.astype(floatx())
        return to_tensor(_writable(x.to_numpy()))
    if _is_non_floatx_float(x.dtype):
        x = x.astype(floatx())
    return to_tensor(np.expand_dims(_writable(x.to_numpy()), axis=-1))


def _writable(arr: np.ndarray) -> np.ndarray:
    """pandas' copy-on-write hands out read-only views, which torch warns
    about sharing: those are copied (once, when the adapter is made)."""
    return arr if arr.flags.writeable else arr.copy()


def cast_to_floatx(t):
    """A floating tensor whose dtype is not `floatx()` cast to `floatx()`;
    any other leaf (a `floatx()` tensor: no copy; integer, bool, complex,
    host strings, None) as it is. Keras 3's `ArrayDataAdapter` does this to
    every array of `x`, `y` and `sample_weight` when the adapter is made
    ("Normalize floats to floatx"), not to batches of generators, PyDatasets
    or DataLoaders."""
    if isinstance(t, torch.Tensor) and t.is_floating_point():
        target = to_torch_dtype(floatx())
        if t.dtype != target:
            return t.to(target)
    return t


def host_strings(arr: np.ndarray):
    """A NumPy str/bytes/object-of-str array as an object array of `str`
    (bytes decoded as UTF-8), kept on the host; None when it holds anything
    else."""
    flat = arr.reshape(-1).tolist()
    if not all(isinstance(v, (str, bytes)) for v in flat):
        return None
    out = np.empty(len(flat), dtype=object)
    out[:] = [v.decode("utf-8") if isinstance(v, bytes) else v for v in flat]
    return out.reshape(arr.shape)


def _take(t, idx):
    """Rows `idx` (a CPU index tensor) of a tensor or a host string array."""
    if isinstance(t, np.ndarray):
        return t[idx.numpy()]
    if isinstance(t, SparseRows):
        return t.take(idx)
    return t.index_select(0, idx.to(t.device))


def move_to_device(batch, device):
    """Moves every tensor of a nested batch to `device` (NumPy leaves are
    converted first)."""
    if isinstance(batch, torch.Tensor):
        return host_to_device(batch.clone() if batch.is_inference() else batch, device)
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, np.ndarray):
        converted = to_tensor(batch)
        return move_to_device(converted, device) if isinstance(converted, torch.Tensor) else converted
    return batch


def check_data_cardinality(data) -> None:
    """ValueError (Keras's message) when `x`, `y` and `sample_weight` do not
    hold the same number of samples."""
    sizes = {int(t.shape[0]) for t in _flatten(data) if t is not None}
    if len(sizes) > 1:
        msg = "Data cardinality is ambiguous. Make sure all arrays contain the same number of samples."
        for label, single in zip(["x", "y", "sample_weight"], data if isinstance(data, tuple) else (data,)):
            shown = ", ".join(str(int(t.shape[0])) for t in _flatten(single) if t is not None)
            msg += f"'{label}' sizes: {shown}\n"
        raise ValueError(msg)


def class_weight_to_sample_weights(y, class_weight: dict) -> torch.Tensor:
    """Per-sample weights from a `{class_index: weight}` dict (one-hot,
    `(N, 1)` and `(N,)` labels; unlisted classes weigh 1)."""
    y = to_tensor(y)
    if y.ndim > 1:
        y = y.argmax(dim=-1) if y.shape[-1] != 1 else y.squeeze(-1)
    labels = torch.round(y.double()).to(torch.int64).cpu()
    if len(labels) == 0:
        return torch.ones(0, dtype=to_torch_dtype(floatx()))
    size = max(int(labels.max()) + 1, max((int(k) for k in class_weight), default=0) + 1)
    table = torch.ones(size, dtype=to_torch_dtype(floatx()))
    for k, w in class_weight.items():
        if int(k) >= 0:
            table[int(k)] = float(w)
    return table[labels.clamp(min=0)]


def _class_weighted_batches(batches, class_weight):
    """tf.keras 2's class weights on a generator: each `(x, y[, sample_weight])` batch gets the weights of
    its targets' classes (times its own sample weights)."""
    for batch in batches:
        x, y, sample_weight = unpack_x_y_sample_weight(batch)
        if y is None:
            raise ValueError("Argument `class_weight` needs targets: the generator yielded batches without `y`.")
        if isinstance(y, (list, tuple, dict)):
            raise ValueError(
                "`class_weight` is only supported for Models with a single output. "
                f"Received: class_weight={class_weight} and a batch with {len(y)} targets."
            )
        weights = class_weight_to_sample_weights(y, class_weight)
        if sample_weight is not None:
            weights = to_tensor(sample_weight).to(weights.dtype) * weights.reshape(
                (-1,) + (1,) * (to_tensor(sample_weight).ndim - 1))
        yield x, y, weights


def train_validation_split(arrays, validation_split: float):
    """Splits the last `validation_split` fraction off (before shuffling), as Keras."""
    flat = _flatten(arrays)
    bad = [type(t) for t in flat if t is not None and not isinstance(t, (np.ndarray, torch.Tensor))
           and not hasattr(t, "__array__") and not _is_scipy_sparse(t)]
    if bad:
        raise ValueError(
            "Argument `validation_split` is only supported for tensors or NumPy arrays."
            f"Found incompatible type in the input: {bad}"
        )
    if all(t is None for t in flat):
        return arrays, arrays
    n = int(next(t for t in flat if t is not None).shape[0])
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at in (0, n):
        raise ValueError(
            f"Training data contains {n} samples, which is not sufficient to split it into a validation and "
            f"training set as specified by `validation_split={validation_split}`. Either provide more data, or a "
            "different value for the `validation_split` argument."
        )
    def part(t, start, stop):
        if t is None:
            return t
        if _pandas_kind(t) is not None:
            return t.iloc[start:stop]  # kept a frame/series: the adapter converts it as Keras does
        if _is_scipy_sparse(t):
            return t.tocsr()[start:stop]
        if not isinstance(t, (np.ndarray, torch.Tensor)):
            t = np.asarray(t)
        return t[start:stop]

    return map_structure(lambda t: part(t, 0, split_at), arrays), map_structure(lambda t: part(t, split_at, n), arrays)


# ---------------------------------------------------------------- adapters
class DataAdapter:
    """Yields batches (nested structures of tensors on `device`) for one epoch."""

    num_batches: int | None = None
    _shard = None  # under a distribution: the run whose ranks share each global batch

    def __iter__(self):
        raise NotImplementedError

    def keras_reset(self) -> None:
        """Keras's `EpochIterator.reset()`, which every fit and evaluate runs before their first
        pass: it ends a pass (`data_adapter.on_epoch_end()`); only a PyDataset's hook sees it."""

    def set_epoch(self, epoch: int) -> None:
        """Under a distribution, an adapter shuffles each pass from a seed
        shared by the ranks plus a pass counter; this sets the counter to
        fit's epoch (as `DistributedSampler.set_epoch`), so a fit resumed at
        epoch k (BackupAndRestore, a torchrun restart) replays the
        uninterrupted run's order rather than epoch 0's."""
        if self._shard is not None:
            self._epoch = int(epoch)


class ArrayDataAdapter(DataAdapter):
    """Batches of in-memory arrays/tensors (any nesting of lists/tuples/dicts)."""

    def __init__(self, x, y=None, sample_weight=None, batch_size=None, steps=None, shuffle=False,
                 class_weight=None, device=None, shard=None):
        if sample_weight is not None:
            if class_weight is not None:
                raise ValueError("You cannot `class_weight` and `sample_weight` at the same time.")
            if isinstance(y, (list, tuple, dict)) and not isinstance(sample_weight, (list, tuple, dict)):
                sw = to_tensor(sample_weight)
                if not (sw.ndim == 1 or (sw.ndim == 2 and sw.shape[1] == 1)):
                    raise ValueError(
                        "For a model with multiple outputs, when providing a single `sample_weight` array, it "
                        "should only have one scalar score per sample (i.e. shape `(num_samples,)`). If you want "
                        "to use non-scalar sample weights, pass a `sample_weight` argument with one array per "
                        "model output."
                    )
                sample_weight = map_structure(lambda _: sw, y)
        if class_weight is not None:
            if isinstance(y, (list, tuple, dict)):
                raise ValueError("`class_weight` is only supported for Models with a single output.")
            if y is None:
                raise ValueError("`class_weight` requires targets `y`.")
            sample_weight = class_weight_to_sample_weights(y, class_weight)
        data = pack_x_y_sample_weight(x, y, sample_weight)
        # once, here, as Keras's array adapter: every non-floatx float array becomes floatx
        data = map_structure(adapter_leaf, data)
        check_data_cardinality(data if isinstance(data, tuple) else (data,))
        leaves = [t for t in _flatten(data) if t is not None]
        if not leaves:
            raise ValueError("Unexpected value for `x`: it holds no arrays.")
        for t in leaves:
            if t.ndim == 0:
                raise ValueError(
                    f"Expected arrays with a batch dimension, received a scalar (shape {tuple(t.shape)})."
                )
        self._num_samples = n = int(leaves[0].shape[0])
        if not batch_size:
            batch_size = int(math.ceil(n / steps)) if steps else 32
        self.batch_size = int(batch_size)
        self.num_batches = int(math.ceil(n / self.batch_size)) if n else 0
        if shuffle not in (True, False, "batch"):
            raise ValueError(f'`shuffle` must be a bool or "batch". Received: shuffle={shuffle}')
        self._shuffle = shuffle
        self._device = torch.device(device) if device is not None else None
        if self._device is not None and self._device.type != "cpu":
            total = sum(t.numel() * t.element_size() for t in leaves if isinstance(t, torch.Tensor))
            if total <= _DEVICE_RESIDENT_BYTES:
                data = map_structure(lambda t: t.to(self._device) if isinstance(t, torch.Tensor) else t, data)
        self._structure = data
        self._flat = _flatten(data)
        self._packer = _make_packer(data)
        self._shard = shard
        if shard is not None:
            self._seed, self._epoch = shard.shared_seed(), 0

    def keras_peek_draws(self) -> None:
        """After set_random_seed: the global-RNG draws of Keras's first-fit
        "symbolic build", which opens a DataLoader iterator and takes its
        first batch (the base seed, then the sampler's seed or the first
        batch's in-batch permutation)."""
        if self._shard is not None or not keras_seeding():
            return
        torch.empty((), dtype=torch.int64).random_()
        if self._shuffle is True:
            torch.empty((), dtype=torch.int64).random_()
        elif self._shuffle == "batch":
            torch.randperm(min(self.batch_size, self._num_samples))

    def keras_epoch_end_draw(self) -> None:
        """After set_random_seed: Keras's epoch iterator opens a new (unused)
        DataLoader iterator when an epoch ends, drawing its base seed."""
        if self._shard is None and keras_seeding():
            torch.empty((), dtype=torch.int64).random_()

    def __iter__(self):
        device = self._device
        move = device is not None and any(
            (isinstance(t, torch.Tensor) and t.device != device) or (isinstance(t, SparseRows) and device.type != "cpu")
            for t in self._flat)
        if self._shard is None and keras_seeding():
            # after set_random_seed: the global-RNG draws of Keras's torch
            # DataLoader: the loader iterator's base seed, now
            torch.empty((), dtype=torch.int64).random_()
        if not (move and is_cuda(device)):
            return self._batches(move)  # (what the Prefetcher would be: one generator level less per batch)
        # batches gathered on the host go to the accelerator one step ahead
        return iter(Prefetcher(self._batches(move), device))

    def _batches(self, move):
        n, bs, flat = self._num_samples, self.batch_size, self._flat
        pack = self._packer
        device = self._device
        if self._shard is not None:
            yield from self._iter_shard(move)
            return
        if self._shuffle is True:
            if keras_seeding():
                # ... and RandomSampler's permutation from a generator seeded by the global RNG
                gen = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
                perm = torch.randperm(n, generator=gen)
            else:
                perm = torch.randperm(n)
            by_device = {}
            for t in flat:
                if isinstance(t, torch.Tensor) and t.device not in by_device:
                    by_device[t.device] = perm.to(t.device)
            if len(by_device) == 1 and all(type(t) is torch.Tensor for t in flat):
                # the common case (every leaf a tensor on one device): one
                # index slice per batch, no per-leaf dispatch
                (perm,) = by_device.values()
                for start in range(0, n, bs):
                    idx = perm[start:start + bs]
                    batch = pack([t.index_select(0, idx) for t in flat])
                    yield move_to_device(batch, device) if move else batch
                return
            pairs = [(t, by_device[t.device] if isinstance(t, torch.Tensor) else perm) for t in flat]
            for start in range(0, n, bs):
                stop = start + bs
                batch = pack([None if t is None else _take(t, p[start:stop]) for t, p in pairs])
                yield move_to_device(batch, device) if move else batch
            return
        starts = list(range(0, n, bs))
        if self._shuffle == "batch" and not keras_seeding():
            # (after set_random_seed Keras's torch loader keeps the batches in order
            # and shuffles within each one only)
            starts = [starts[i] for i in torch.randperm(len(starts)).tolist()]
        for start in starts:
            out = [None if t is None else t[start:start + bs] for t in flat]
            if self._shuffle == "batch":
                within = torch.randperm(min(bs, n - start))
                out = [None if t is None else _take(t, within) for t in out]
            batch = pack(out)
            yield move_to_device(batch, device) if move else batch

    def _iter_shard(self, move):
        """This rank's share of each global batch: the global batches are
        those of one process (same order, the permutation drawn from a seed
        shared by all ranks and the epoch), each split in `world` parts."""
        from kerasish.trainers.distributed import shard_bounds

        n, bs, flat, run = self._num_samples, self.batch_size, self._flat, self._shard
        gen = torch.Generator().manual_seed(self._seed + self._epoch)
        self._epoch += 1
        perm = torch.randperm(n, generator=gen) if self._shuffle is True else None
        starts = list(range(0, n, bs))
        if self._shuffle == "batch":
            starts = [starts[i] for i in torch.randperm(len(starts), generator=gen).tolist()]
        for start in starts:
            m = min(bs, n - start)
            lo, hi = shard_bounds(m, run.rank, run.world)
            if perm is not None:
                idx = perm[start + lo:start + hi]
            elif self._shuffle == "batch":
                idx = torch.randperm(m, generator=gen)[lo:hi] + start
            else:
                idx = None
            out = [None if t is None else (t[start + lo:start + hi] if idx is None else _take(t, idx)) for t in flat]
            batch = self._packer(out)
            yield move_to_device(batch, self._device) if move else batch


def _slice_batch(batch, run):
    """This rank's rows of a global batch (every leaf split along dim 0)."""
    from kerasish.trainers.distributed import shard_bounds

    leaves = [leaf for leaf in _flatten(batch) if hasattr(leaf, "shape") and len(leaf.shape)]
    if not leaves:
        return batch
    lo, hi = shard_bounds(int(leaves[0].shape[0]), run.rank, run.world)
    return map_structure(lambda t: t[lo:hi] if hasattr(t, "shape") and len(t.shape) else t, batch)


def _make_packer(structure):
    """A function rebuilding `structure` from its flat leaves, specialized
    for the common single-tensor and flat-tuple cases."""
    if not isinstance(structure, (list, tuple, dict)):
        return lambda flat: flat[0]
    if isinstance(structure, tuple) and not any(isinstance(s, (list, tuple, dict)) for s in structure):
        return tuple
    return lambda flat: _pack(structure, flat)


def keras_loader_iterator_draw() -> None:
    """The global-RNG draw of a new torch DataLoader iterator (its base
    seed), which Keras's torch backend makes each time it opens one over a
    PyDataset or a generator."""
    torch.empty((), dtype=torch.int64).random_()


# Keras's NUM_BATCHES_FOR_TENSOR_SPEC: the batches a generator adapter peeks at and replays
_GENERATOR_PEEK_BATCHES = 2
# False inside Keras 2's `fit_generator`/`evaluate_generator`/`predict_generator`
# (absent from Keras 3): tf.keras 2 continues a generator, never replays it
_REPLAY_GENERATOR_START = contextvars.ContextVar("kerasish_replay_generator_start", default=True)


class IterableDataAdapter(DataAdapter):
    """Batches from a DataLoader / re-iterable (new pass each epoch) or a
    generator (continued across epochs; every new pass first replays the
    generator's first two batches, as Keras 3's generator adapter does)."""

    def __init__(self, data, device=None, shard=None):
        self._data = data
        self._device = torch.device(device) if device is not None else None
        self._shard = shard
        sampler = getattr(data, "sampler", None)
        # a DataLoader's RandomSampler must draw the same order on every rank
        self._sampler = sampler if shard is not None and isinstance(sampler, torch.utils.data.RandomSampler) else None
        if shard is not None:
            self._seed, self._epoch = shard.shared_seed(), 0
        self._is_generator = isinstance(data, (types.GeneratorType, collections.abc.Iterator))
        self._first_batches = []
        if self._is_generator and _REPLAY_GENERATOR_START.get():
            # Keras 3 reads a generator's first batches up front (its tensor
            # spec) and replays them at the start of every new pass: fit's
            # validation restarts on them each epoch, and a generator that ran
            # out yields them again rather than nothing.
            self._first_batches = list(itertools.islice(data, _GENERATOR_PEEK_BATCHES))
            if not self._first_batches:
                raise ValueError(
                    "When passing a Python generator to a Keras model, the generator must yield at least one "
                    "batch. Received an empty generator."
                )
        try:
            self.num_batches = None if self._is_generator else len(data)
        except TypeError:
            self.num_batches = None
        # a generator is read through a torch DataLoader by Keras (see `keras_loader_iterator_draw`)
        self.keras_loader_draws = self._is_generator and shard is None
        # a user's DataLoader: Keras opens iterators over it that this adapter does not need
        self._keras_loader = isinstance(data, torch.utils.data.DataLoader) and shard is None
        self._compare_first = shard is not None  # the ranks' first batches are compared once
        if shard is not None and self.num_batches is not None:
            shard.check_same_length(self.num_batches, "DataLoader" if isinstance(
                data, torch.utils.data.DataLoader) else type(data).__name__)

    def keras_peek_draws(self) -> None:
        """After set_random_seed: Keras's first fit/evaluate after `compile`
        opens a loader iterator to peek at a batch. Over a user's DataLoader
        the peek is made for real (an iterator and its first batch), which
        draws what Keras's draws from the global RNG or the loader's and
        sampler's own generators, whatever the loader's sampler and workers."""
        if not keras_seeding():
            return
        if self.keras_loader_draws:
            keras_loader_iterator_draw()
        elif self._keras_loader:
            next(iter(self._data), None)

    def keras_epoch_end_draw(self) -> None:
        """After set_random_seed: when a pass ends, Keras's epoch iterator opens
        the next (unused) loader iterator at once: its base-seed draw for a
        generator, the user's own DataLoader iterator for real."""
        if not keras_seeding():
            return
        if self.keras_loader_draws:
            keras_loader_iterator_draw()
        elif self._keras_loader:
            iter(self._data)

    def __iter__(self):
        if self._is_generator or self._device is None:
            # one batch ahead of a generator would take a batch of the next epoch
            return self._batches()
        return iter(Prefetcher(self._batches(), self._device))

    def _batches(self):
        if self._sampler is not None:
            self._sampler.generator = torch.Generator().manual_seed(self._seed + self._epoch)
            self._epoch += 1
        source = itertools.chain(self._first_batches, self._data) if self._is_generator else iter(self._data)
        if self._keras_loader and self.num_batches is not None:
            # as Keras, stop after len(loader) batches without asking for one more: the end of a
            # RandomSampler's pass draws another permutation from the loader's own generator
            source = itertools.islice(source, self.num_batches)
        shard = self._shard
        for batch in source:
            if isinstance(batch, list):
                batch = tuple(batch)
            if shard is not None:
                if self._compare_first:
                    self._compare_first = False
                    shard.check_same_batch(batch, "DataLoader" if isinstance(
                        self._data, torch.utils.data.DataLoader) else "generator")
                batch = _slice_batch(batch, shard)
            if self._device is not None:
                batch = move_to_device(batch, self._device)
            else:
                batch = move_to_device(batch, torch.device("cpu")) if _has_numpy(batch) else batch
            yield batch


def _has_numpy(batch) -> bool:
    """Whether a batch needs `move_to_device` on the host: NumPy leaves, or tensors made under
    `torch.inference_mode()` (copied into ordinary ones, which autograd accepts)."""
    return any(isinstance(leaf, np.ndarray) or (isinstance(leaf, torch.Tensor) and leaf.is_inference())
               for leaf in _flatten(batch))


def _unsupported(arg, what, kind):
    return ValueError(
        f"When providing `x` as a {kind}, `{arg}` should not be passed. Instead, {what} should be included "
        f"as part of the {kind}."
    )


def get_data_adapter(x, y=None, sample_weight=None, batch_size=None, steps_per_epoch=None, shuffle=False,
                     class_weight=None, device=None, shard=None) -> DataAdapter:
    """Picks the adapter for `x` (see the module docstring). `shard` (a
    `DataParallelRun`) makes every batch this rank's share of a global
    batch: arrays are split per global batch; DataLoaders, Datasets and
    generators are read whole on every rank and each batch is sliced (a
    DataLoader's RandomSampler is reseeded identically on all ranks)."""
    if isinstance(x, DataAdapter):
        return x
    if x is None:
        raise ValueError("Unexpected value for `x`: None. Pass arrays, tensors, a DataLoader or a generator.")
    from kerasish.utils.py_dataset import PyDataset

    if isinstance(x, PyDataset):
        from kerasish.trainers.py_dataset_adapter import PyDatasetAdapter

        for arg, value, what in (("y", y, "the targets"), ("sample_weights", sample_weight, "the sample weights")):
            if value is not None:
                raise _unsupported(arg, what, "PyDataset")
        # the `*_dataset_from_directory` datasets stand in for tf.data datasets, whose order fit's `shuffle`
        # does not touch in Keras; a user's own PyDataset has its batch order shuffled, as in Keras
        if getattr(x, "_keeps_own_order", False):
            shuffle = False
        return PyDatasetAdapter(x, shuffle=shuffle, class_weight=class_weight, device=device, shard=shard)
    if can_convert_arrays((x, y, sample_weight)):
        return ArrayDataAdapter(
            x, y, sample_weight=sample_weight, batch_size=batch_size, steps=steps_per_epoch, shuffle=shuffle,
            class_weight=class_weight, device=device, shard=shard,
        )
    if isinstance(x, torch.utils.data.Dataset) and not isinstance(x, torch.utils.data.DataLoader):
        if y is not None:
            raise _unsupported("y", "the targets", "torch Dataset")
        if sample_weight is not None:
            raise _unsupported("sample_weights", "the sample weights", "torch Dataset")
        is_iterable = isinstance(x, torch.utils.data.IterableDataset)
        loader = torch.utils.data.DataLoader(
            x, batch_size=batch_size or 32, shuffle=bool(shuffle) and not is_iterable
        )
        return IterableDataAdapter(loader, device=device, shard=shard)
    kind = "torch DataLoader" if isinstance(x, torch.utils.data.DataLoader) else "generator"
    if isinstance(x, torch.utils.data.DataLoader) or isinstance(x, types.GeneratorType) or hasattr(x, "__iter__"):
        if y is not None:
            raise _unsupported("y", "the targets", kind)
        if sample_weight is not None:
            raise _unsupported("sample_weights", "the sample weights", kind)
        if class_weight is not None and isinstance(x, types.GeneratorType):
            # Keras 3 refuses this; tf.keras 2 weighted each batch's targets (the Keras 2 idiom
            # `fit(gen(), steps_per_epoch=..., class_weight=...)`): unambiguous, so accepted
            x = _class_weighted_batches(x, class_weight)
        elif class_weight is not None:
            raise ValueError(
                f"Argument `class_weight` is not supported for {kind} inputs. Return `(x, y, sample_weight)` "
                f"batches instead. Received: class_weight={class_weight}"
            )
        if shuffle and isinstance(x, torch.utils.data.DataLoader):
            pass  # Keras warns here; fit's default shuffle=True would make it noise
        return IterableDataAdapter(x, device=device, shard=shard)
    raise ValueError(f"Unrecognized data type: x={x} (of type {type(x)})")


class EpochIterator:
    """Yields `(step, batch)` for one epoch, honouring `steps_per_epoch` (a
    generator/finite source then continues across epochs, as Keras)."""

    # under a distribution: whether each rank reads its own data (not shares of global batches), and
    # the DataLoader's `DistributedSampler` if it has one (see `TrainerLoops._epoch_iterator`)
    per_rank = False
    sampler = None

    def __init__(self, adapter: DataAdapter, steps_per_epoch=None):
        self.adapter = adapter
        self.steps_per_epoch = steps_per_epoch
        self._current = None
        self._seen = 0
        self.exhausted = False
        self._num_batches = adapter.num_batches

    @property
    def num_batches(self):
        return self.steps_per_epoch or self._num_batches

    def reset(self):
        """Starts the next pass from a fresh iterator (Keras resets fit's
        cached validation iterator before every evaluation)."""
        self._current = None
        self._seen = 0
        self.__dict__.pop("_predrawn", None)

    def _warn_ran_out(self):
        warnings.warn(
            "Your input ran out of data; interrupting training. Make sure that your dataset or generator can "
            "generate at least `steps_per_epoch * epochs` batches.",
            stacklevel=3,
        )

    def __iter__(self):
        steps = self.steps_per_epoch
        # after set_random_seed: Keras opens a DataLoader iterator (a global-RNG draw)
        # over a PyDataset or generator where this opens a pass (`_loader_draw`)
        loader_draws = getattr(self.adapter, "keras_loader_draws", False) and keras_seeding()
        if steps is None:
            step = -1
            if loader_draws:
                keras_loader_iterator_draw()
            for step, batch in enumerate(self.adapter):
                yield step, batch
            if self._num_batches and step + 1 >= self._num_batches:
                end_draw = getattr(self.adapter, "keras_epoch_end_draw", None)
                if end_draw is not None:
                    end_draw()  # after set_random_seed: Keras opens the next pass's iterator at once
            if step < 0 and getattr(self.adapter, "_is_generator", False):
                self.exhausted = True
            elif self._num_batches and step + 1 < self._num_batches:
                self._warn_ran_out()  # a generator that ran out: only its replayed first batches
            self._num_batches = step + 1 if self._num_batches is None else self._num_batches
            return
        if self._current is None:
            self._current = iter(self.adapter)
            self._seen = 0
            if loader_draws and not self.__dict__.pop("_predrawn", False):
                keras_loader_iterator_draw()
        for step in range(steps):
            if self._num_batches and self._seen >= self._num_batches:
                self._warn_ran_out()
                break
            try:
                batch = next(self._current)
            except StopIteration:
                self._current = None
                self.exhausted = True
                self._warn_ran_out()
                return
            self._seen += 1
            yield step, batch
        if self._num_batches and self._seen >= self._num_batches:
            self._current = None  # a finite source starts over next epoch
            if loader_draws:
                keras_loader_iterator_draw()  # (Keras opens the next iterator now)
                self._predrawn = True


@contextlib.contextmanager
def keras2_generators():
    """Generators read inside are continued, never replayed: Keras 2's
    `fit_generator` semantics (tf.keras 2 has no peek-and-replay)."""
    token = _REPLAY_GENERATOR_START.set(False)
    try:
        yield
    finally:
        _REPLAY_GENERATOR_START.reset(token)
