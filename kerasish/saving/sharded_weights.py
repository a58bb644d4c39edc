"""Reading Keras 3's sharded weight files (`model.save_weights("m.weights.json",
max_shard_size=...)`, Keras 3.12 and later).

`m.weights.json` holds `{"metadata": {"total_size"}, "weight_map": {"/<object
path>/vars": ["m_00000.weights.h5", ...]}}`; each shard is a `.weights.h5` in
Keras 3's layout holding some objects' `vars` (an object's variables may be
spread over several shards, its group then appearing in each). The shards must
sit next to the JSON file and are named by plain file names.
"""

from __future__ import annotations

import json
import os

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
