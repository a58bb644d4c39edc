"""`keras.saving.KerasFileEditor`: inspect and edit the weights of a `.keras`
archive or a `.weights.h5` file, then write a `.weights.h5`."""

from __future__ import annotations

import io
import json

import numpy as np

from kerasish.saving import h5_weights
from kerasish.saving import saving_lib

_MAX_DATASET_BYTES = 1 << 32  # Keras refuses single datasets over 4 GiB


class KerasFileEditor:
    """Inspects and edits the weights of a saved Keras file.

    Useful to adapt an old weights file to a changed architecture: rename,
    delete or add objects (layers) and weights, then write a `.weights.h5`
    that `model.load_weights` reads (in kerasish and in Keras).

    The weights are `editor.weights_dict`: nested dicts following the file's
    groups (`{"layers": {"dense": {"0": kernel, "1": bias}}}`), with NumPy
    arrays at the leaves (each object's `vars` group is folded into it, as
    Keras does). `editor.config` / `editor.metadata` hold a `.keras` file's
    `config.json` / `metadata.json`.

    Args:
        filepath: A `.keras` or `.weights.h5` file.

    Example:
        >>> editor = keras.saving.KerasFileEditor("model.keras")
        >>> editor.summary()
        >>> editor.rename_object("dense", "encoder_dense")
        >>> editor.add_weights("encoder_dense", {"2": np.zeros(3)})
        >>> editor.save("edited.weights.h5")

    Unlike Keras, it prints nothing when opening the file (Keras prints the
    path and metadata with `rich`); `summary()` prints plain text.
    """

    def __init__(self, filepath):
        filepath = str(filepath)
        self.filepath = filepath
        self.metadata = None
        self.config = None
        self.model = None
        h5py = h5_weights.require_h5py()
        if filepath.endswith(".keras"):
            zf, where = saving_lib._open_zip(filepath)
            with zf:
                raw = saving_lib._read_member(zf, saving_lib.VARS_FILENAME, where)
                self.config = json.loads(saving_lib._read_member(zf, saving_lib.CONFIG_FILENAME, where))
                self.metadata = json.loads(saving_lib._read_member(zf, saving_lib.METADATA_FILENAME, where))
            source = io.BytesIO(raw)
        elif filepath.endswith(".weights.h5"):
            source = filepath
        else:
            raise ValueError(
                f"Invalid filename: expected a `.keras` `.weights.h5` extension. Received: filepath={filepath}"
            )
        with h5py.File(source, "r") as f:
            self.weights_dict, self.object_metadata = _read_group(h5py, f, {}, "")

    # ------------------------------------------------------------ inspect
    def summary(self):
        """Prints the objects and weights in the file (shapes and dtypes)."""
        print(self._summary_text())

    def _summary_text(self):
        lines = [f"Keras model file '{self.filepath}'"]
        if self.metadata is not None:
            lines.append(f"Saved with Keras {self.metadata.get('keras_version')} - date: "
                         f"{self.metadata.get('date_saved')}")
        lines.append("Weights structure")

        def walk(d, indent):
            for key, value in d.items():
                if isinstance(value, dict):
                    lines.append(f"{'  ' * indent}{key}")
                    walk(value, indent + 1)
                else:
                    arr = np.asarray(value)
                    lines.append(f"{'  ' * indent}{key}: shape={arr.shape}, dtype={arr.dtype}")

        walk(self.weights_dict, 1)
        return "\n".join(lines)

    def compare(self, reference_model):
        """Lists the differences between the file and `reference_model`'s
        weights: missing or extra objects and weights, shape mismatches.

        Returns:
            `{"status": "success" | "error", "error_count", "match_count"}`.
            The status is Keras's; the counts count each weight once (Keras
            3.15 adds the counts of nested objects twice).
        """
        h5py = h5_weights.require_h5py()
        with h5py.File(io.BytesIO(saving_lib._weights_bytes(reference_model)), "r") as f:
            reference, _ = _read_group(h5py, f, {}, "")
        errors = []
        matches = [0]

        def walk(ref, ours, path):
            for key in ref:
                where = f"{path}/{key}" if path else key
                if key not in ours:
                    errors.append(f"Reference model has '{where}', the file does not")
                elif isinstance(ref[key], dict) != isinstance(ours[key], dict):
                    errors.append(f"'{where}' is an object in one and a weight in the other")
                elif isinstance(ref[key], dict):
                    walk(ref[key], ours[key], where)
                elif np.shape(ref[key]) != np.shape(ours[key]):
                    errors.append(f"Weight shape mismatch for '{where}': reference {np.shape(ref[key])}, "
                                  f"file {np.shape(ours[key])}")
                else:
                    matches[0] += 1
            for key in ours:
                if key not in ref:
                    where = f"{path}/{key}" if path else key
                    errors.append(f"The file has '{where}', the reference model does not")

        walk(reference, self.weights_dict, "")
        for e in errors:
            print(e)
        status = "error" if errors else "success"
        print(f"Comparison {status}: {len(errors)} error(s), {matches[0]} matching weight(s)")
        return {"status": status, "error_count": len(errors), "match_count": matches[0]}

    # --------------------------------------------------------------- edit
    def _edit_object(self, edit_fn, source_name, target_name=None):
        if target_name is not None and "/" in target_name:
            raise ValueError(
                "Argument `target_name` should be a leaf name, not a full path name. "
                f"Received: target_name='{target_name}'"
            )
        if "/" in source_name:
            parts = source_name.split("/")
            d = self.weights_dict
            for part in parts[:-1]:
                if part not in d or not isinstance(d[part], dict):
                    raise ValueError(f"Path '{source_name}' not found in model.")
                d = d[part]
            if parts[-1] not in d:
                raise ValueError(f"Path '{source_name}' not found in model.")
            edit_fn(d, parts[-1], target_name)
            return
        holders = []

        def find(d):
            for value in d.values():
                if isinstance(value, dict):
                    find(value)
            if source_name in d:
                holders.append(d)

        find(self.weights_dict)
        if len(holders) > 1:
            raise ValueError(f"Name '{source_name}' occurs more than once in the model; try passing a complete path")
        if not holders:
            raise ValueError(
                f"Source name '{source_name}' does not appear in the model. Use `editor.summary()` to list all "
                "objects."
            )
        edit_fn(holders[0], source_name, target_name)

    def rename_object(self, object_name, new_name):
        """Renames an object (`"dense_2"`, or a path like `"layers/dense_2"`)."""

        def rename(d, source, target):
            d[target] = d.pop(source)

        self._edit_object(rename, object_name, new_name)

    def delete_object(self, object_name):
        """Removes an object (a name or a path) and its weights."""

        def delete(d, source, target=None):
            d.pop(source)

        self._edit_object(delete, object_name)

    def add_object(self, object_path, weights):
        """Adds an object at `object_path` (e.g. `"layers/dense_2"`) holding
        `weights`, a dict of weight name (`"0"`, `"1"`, ...) to array."""
        _check_weights(weights)
        parts = object_path.split("/")
        d = self.weights_dict
        for part in parts[:-1]:
            if part not in d or not isinstance(d[part], dict):
                raise ValueError(f"Path '{'/'.join(parts[:-1])}' not found in model.")
            d = d[part]
        d[parts[-1]] = weights

    def delete_weight(self, object_name, weight_name):
        """Removes the weight `weight_name` (e.g. `"1"`) of an object."""

        def delete(d, source, target=None):
            if weight_name not in d[source]:
                raise ValueError(
                    f"Weight {weight_name} not found in object {object_name}. Weights found: {list(d[source].keys())}"
                )
            d[source].pop(weight_name)

        self._edit_object(delete, object_name)

    def add_weights(self, object_name, weights):
        """Adds (or replaces) weights of an existing object: a dict of weight
        name to array."""
        _check_weights(weights)

        def add(d, source, target=None):
            d[source].update(weights)

        self._edit_object(add, object_name)

    # --------------------------------------------------------------- save
    def save(self, filepath):
        """Writes the edited weights to a `.weights.h5` file (Keras 3's
        layout: each object's arrays in its `vars` group)."""
        filepath = str(filepath)
        if not filepath.endswith(".weights.h5"):
            raise ValueError(
                f"Invalid `filepath` argument: expected a `.weights.h5` extension. Received: filepath={filepath}"
            )
        h5py = h5_weights.require_h5py()
        with saving_lib.atomic_path(filepath) as tmp:
            with h5py.File(tmp, "w") as f:
                _write_group(f, self.weights_dict, "")

    def resave_weights(self, filepath):
        """Alias of `save`."""
        self.save(filepath)


def _check_weights(weights):
    if not isinstance(weights, dict):
        raise ValueError(
            "Argument `weights` should be a dict where keys are weight names (usually '0', '1', etc.) and values "
            f"are NumPy arrays. Received: type(weights)={type(weights)}"
        )


def _read_group(h5py, group, metadata, inner_path):
    """(nested dict of arrays, {path: attrs}) for an h5 group, folding each
    `vars` subgroup into its object and skipping empty groups (Keras's
    reading); links and oversized datasets are refused."""
    attrs = dict(group.attrs.items())
    if attrs:
        metadata[inner_path] = attrs
    out = {}
    for key in group.keys():
        path = f"{inner_path}/{key}"
        link = group.get(key, default=None, getclass=True, getlink=True)
        if link in (h5py.ExternalLink, h5py.SoftLink):
            raise ValueError(f"Not allowed: H5 file with {link.__name__}")
        value = group[key]
        if isinstance(value, h5py.Group):
            if len(value) == 0:
                continue
            if "vars" in value.keys():
                value = value["vars"]
                if len(value) == 0:
                    continue
            out[key], metadata = _read_group(h5py, value, metadata, path)
            continue
        if not isinstance(value, h5py.Dataset):
            continue
        if value.external or value.is_virtual:
            raise ValueError(f"Not allowed: H5 file Dataset with external or virtual storage at {path}")
        if int(np.prod(value.shape, dtype=np.int64)) * value.dtype.itemsize > _MAX_DATASET_BYTES:
            raise ValueError(
                f"HDF5 dataset at {path} is too large to load safely (limit is {_MAX_DATASET_BYTES} bytes)."
            )
        out[key] = value[()]
    return out, metadata


def _write_group(f, weights, inner_path):
    leaves = {}
    for name, value in weights.items():
        if isinstance(value, dict):
            if value:
                _write_group(f, value, f"{inner_path}/{name}" if inner_path else name)
        else:
            leaves[name] = value
    if leaves:
        group = f.require_group(f"{inner_path}/vars" if inner_path else "vars")
        for name, value in leaves.items():
            group.create_dataset(name, data=np.asarray(value))
