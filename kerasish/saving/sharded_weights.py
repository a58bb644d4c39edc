"""Keras 3's sharded weight files (`model.save_weights("m.weights.json",
max_shard_size=...)`, Keras 3.12 and later): reading, and writing them as
Keras does.

`m.weights.json` holds `{"metadata": {"total_size"}, "weight_map": {"/<object
path>/vars": ["m_00000.weights.h5", ...]}}`; each shard is a `.weights.h5` in
Keras 3's layout holding some objects' `vars` (an object's variables may be
spread over several shards, its group then appearing in each). The shards must
sit next to the JSON file and are named by plain file names.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import warnings

from kerasish.saving import h5_weights

_MAX_SHARDS = 100_000


class _MergedVars:
    """One object's `vars` groups from several shards, read as one group."""

    def __init__(self, groups, path):
        self._groups = groups
        self._path = path
        owners = {}
        for g in groups:
            for key in g.keys():
                if key in owners:
                    raise ValueError(
                        f"Sharded weights: variable '{key}' of '{path}' is stored in more than one shard "
                        f"('{owners[key].file.filename}' and '{g.file.filename}')."
                    )
                owners[key] = g
        self._owners = owners

    def keys(self):
        return list(self._owners)

    def __contains__(self, key):
        return key in self._owners

    def get(self, key, default=None, getclass=False, getlink=False):
        group = self._owners.get(key)
        return default if group is None else group.get(key, default, getclass=getclass, getlink=getlink)

    def __getitem__(self, key):
        return self._owners[key][key]


def _read_index(path):
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"File not found: filepath={path}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"The sharded weights index '{path}' is not valid JSON: {e}") from e
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ValueError(
            f"The sharded weights index '{path}' has no `weight_map` object (Keras 3's `*.weights.json` holds "
            '`{"metadata": ..., "weight_map": {"/layers/dense/vars": ["m_00000.weights.h5"], ...}}`).'
        )
    shards = {}
    for key, names in weight_map.items():
        names = [names] if isinstance(names, str) else names
        if not isinstance(key, str) or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"The sharded weights index '{path}' maps '{key}' to {names!r}; expected a list of shard file names."
            )
        for name in names:
            if not name or os.path.basename(name) != name or name in (".", "..") or not name.endswith(".h5"):
                raise ValueError(
                    f"Not allowed: the sharded weights index '{path}' names the shard '{name}'; shards are plain "
                    "`.h5` file names next to the index."
                )
        shards[key] = names
    if len({n for names in shards.values() for n in names}) > _MAX_SHARDS:
        raise ValueError(f"The sharded weights index '{path}' names more than {_MAX_SHARDS} shards.")
    return shards


def load_weights(model, path, skip_mismatch=False) -> list[str]:
    """Loads a sharded Keras 3 weights file into `model`; returns the skipped
    objects' warnings (with `skip_mismatch=True`)."""
    h5py = h5_weights.require_h5py()
    shards = _read_index(path)
    folder = os.path.dirname(os.path.abspath(path))
    files = {}
    try:
        for name in sorted({n for names in shards.values() for n in names}):
            shard_path = os.path.join(folder, name)
            if not os.path.isfile(shard_path):
                raise ValueError(f"The sharded weights index '{path}' names the shard '{name}', which does not exist.")
            try:
                files[name] = h5py.File(shard_path, "r")
            except (OSError, ValueError) as e:
                raise ValueError(f"The weights shard '{shard_path}' is not a valid HDF5 file: {e}") from e
        if not files:
            raise ValueError(f"The sharded weights index '{path}' names no shard files.")

        def store_for(h5py, _, obj_path, keras_version):
            key = f"/{obj_path}/vars" if obj_path else "/vars"
            names = shards.get(key) or shards.get(obj_path) or []
            groups = []
            for name in names:
                g = h5_weights._safe_group(h5py, files[name], f"{obj_path}/vars" if obj_path else "vars")
                if g is not None:
                    groups.append(g)
            merged = _MergedVars(groups, obj_path or "/") if groups else None
            return h5_weights._ReadStore(h5py, merged, obj_path or "/", keras_version)

        first = files[sorted(files)[0]]
        try:
            return h5_weights.read_weights(model, first, skip_mismatch=skip_mismatch, store_for=store_for)
        except (KeyError, OSError, TypeError, RuntimeError) as e:
            raise ValueError(f"The sharded weights '{path}' are damaged or not in Keras 3's layout: {e}") from e
    finally:
        for f in files.values():
            f.close()


# ----------------------------------------------------------------- writing
def _readable_size(n: float) -> str:
    """Bytes as Keras prints them in its shard-size error ("1.50 MB")."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n / 1024 < 1:
            return f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} PB"


class _ShardedWriter:
    """Keras 3's sharding rule: variables are written in the model's order
    into `<base>_00000.weights.h5`, `<base>_00001.weights.h5`, ...; a shard is
    closed when the next variable would take it past `max_shard_size`
    gigabytes (1024**3 bytes), and an object whose variables straddle two
    shards has a `vars` group in each. The index maps each `vars` group's
    HDF5 path to its shard file name(s). Shards are written to temporary
    files and moved into place, and the index last, so a failed save leaves
    no index pointing at missing or partial shards."""

    def __init__(self, index_path: str, max_shard_size):
        self.h5py = h5_weights.require_h5py()
        self.index_path = index_path
        self.folder = os.path.dirname(os.path.abspath(index_path))
        self.base = os.path.basename(index_path)[: -len(".json")].replace(".weights", "")
        self.max_bytes = float(max_shard_size) * 1024 ** 3
        self.weight_map = {}
        self.total = 0.0
        self.current = 0.0
        self.shards = []  # (final name, temporary path)
        self.file = None
        self._open_next()

    def _open_next(self):
        if self.file is not None:
            self.file.close()
        name = f"{self.base}_{len(self.shards):05}.weights.h5"
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        self.shards.append((name, tmp))
        self.file = self.h5py.File(tmp, "w")

    def store(self, path, name):
        return _ShardStore(self, path, name)

    def add(self, key, size: float, path: str):
        """Accounts for a variable of `size` bytes; opens the next shard when it does not fit."""
        self.total += size
        if size > self.max_bytes:
            raise ValueError(
                f"The size of {key} is {_readable_size(size)} which exceeds the maximum shard size "
                f"{_readable_size(self.max_bytes)}. You can increase the `max_shard_size` parameter to accommodate "
                "the size."
            )
        self.current += size
        if self.current > self.max_bytes:
            self._open_next()
            self.current = size

    def record(self, group_name: str):
        shard = self.shards[-1][0]
        known = self.weight_map.get(group_name)
        if known is None:
            self.weight_map[group_name] = shard
        else:
            known = known if isinstance(known, list) else [known]
            if shard not in known:
                known.append(shard)
            self.weight_map[group_name] = known

    def commit(self):
        from kerasish.saving.saving_lib import atomic_path

        self.file.close()
        self.file = None
        for name, tmp in self.shards:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, os.path.join(self.folder, name))
        index = {"metadata": {"total_size": self.total}, "weight_map": self.weight_map}
        with atomic_path(self.index_path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps(index, indent=4))

    def abort(self):
        if self.file is not None:
            with contextlib.suppress(Exception):
                self.file.close()
        for _, tmp in self.shards:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _ShardStore:
    """One object's `vars` group in the sharded files: made up front in the
    current shard for a named object (as Keras writes its name), and again
    in each later shard its variables reach (without the name, as Keras)."""

    def __init__(self, writer: _ShardedWriter, path: str, name):
        self.writer = writer
        self.path = path
        self.group = None
        self.group_file = None
        if name is not None:
            self._make_group().attrs["name"] = name

    def _make_group(self):
        file = self.writer.file
        if self.group is None or self.group_file is not file:
            where = file.create_group(self.path) if self.path else file
            self.group = where.create_group("vars")
            self.group_file = file
        return self.group

    def __setitem__(self, key, value):
        array = h5_weights._to_numpy(value)
        raw = array[0] if isinstance(array, tuple) else array
        self.writer.add(key, float(math.prod(raw.shape) * raw.dtype.itemsize), self.path)
        group = self._make_group()
        if isinstance(array, tuple):  # bfloat16, tagged as Keras tags it
            group.create_dataset(key, data=raw).attrs["dtype"] = "bfloat16"
        else:
            group[key] = raw
        self.writer.record(group.name)


def save_weights(model, path: str, max_shard_size) -> str:
    """Writes `model`'s weights as Keras 3's sharded files; returns the index
    path (a `*.weights.h5` name becomes `*.weights.json`, with Keras's
    warning)."""
    if isinstance(max_shard_size, bool) or not isinstance(max_shard_size, (int, float)) or not max_shard_size > 0:
        raise ValueError(
            "`max_shard_size` must be a positive number of gigabytes (an int or a float). "
            f"Received: max_shard_size={max_shard_size!r}"
        )
    if not path.endswith(".json"):
        new_path = os.path.splitext(path)[0] + ".json"
        warnings.warn(
            f"Saving sharded weights requires `*.json` as the extension. The original path: {path} will be "
            f"renamed to {new_path}.",
            stacklevel=3,
        )
        path = new_path
    writer = _ShardedWriter(path, max_shard_size)
    try:
        h5_weights.write_weights(model, None, make_store=writer.store)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return path
