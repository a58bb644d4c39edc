"""`python -m kerasish.inspect FILE`: what a Keras file holds, without building a model.

Prints the format, the Keras version that wrote it, a layer table (name,
class, weight shapes and dtypes) and the compile / training configuration.
Reads only metadata: no weight values, no code from the file. Formats:

- Keras 2 / tf.keras legacy HDF5, full model (`model.save("m.h5")`) or
  weights only (`save_weights("w.h5")`);
- Keras 3 `.keras` archives and `.weights.h5` files;
- torch checkpoints written by `python -m kerasish.convert` or
  `save_weights("w.pt")` (read with `torch.load(weights_only=True)`).

Exit status 0, or 2 with a one-line error for an unsupported or damaged file.
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile


def _legacy_h5(f, where) -> dict:
    from kerasish.saving import legacy_h5_format as lf

    config = lf._json_attr(f, "model_config", where)
    training = lf._json_attr(f, "training_config", where)
    group = f["model_weights"] if "model_weights" in f and "layer_names" not in f.attrs else f
    classes = {}
    if config:
        for layer in (config.get("config") or {}).get("layers", []) if isinstance(config.get("config"), dict) else []:
            classes[(layer.get("config") or {}).get("name", layer.get("name"))] = layer.get("class_name")
    rows = []
    for name in lf._list_attr(group, "layer_names", where) or []:
        weights = []
        if name in group:
            for wname, ds in lf._weight_datasets(group[name], where):
                weights.append((wname, tuple(ds.shape), str(ds.dtype)))
        rows.append((name, classes.get(name, "?"), weights))
    return {
        "format": "Keras 2 legacy HDF5 " + ("full model" if config else "weights only"),
        "keras_version": lf._attr(f, "keras_version", where) or lf._attr(group, "keras_version", where),
        "backend": lf._attr(f, "backend", where) or lf._attr(group, "backend", where),
        "model_class": (config or {}).get("class_name"),
        "layers": rows,
        "compile": training,
        "optimizer_weights": len(lf._list_attr(f["optimizer_weights"], "weight_names", where) or [])
        if "optimizer_weights" in f else 0,
    }


def _keras3_weights(f) -> list:
    import h5py

    rows = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and name.endswith("vars") and len(obj):
            owner = name[: -len("/vars")] or "/"
            rows.append((owner, obj.parent.attrs.get("class_name", "?") if obj.parent is not None else "?",
                         [(k, tuple(obj[k].shape), str(obj[k].dtype)) for k in sorted(obj, key=_num)]))

    f.visititems(visit)
    return rows


def _num(key):
    return (0, int(key)) if key.isdigit() else (1, key)


def _keras_archive(path) -> dict:
    from kerasish.saving import legacy_h5_format as lf
    from kerasish.saving import saving_lib

    zf, where = saving_lib._open_zip(path)
    with zf:
        config = json.loads(saving_lib._read_member(zf, saving_lib.CONFIG_FILENAME, where))
        names = zf.namelist()
        metadata = json.loads(saving_lib._read_member(zf, saving_lib.METADATA_FILENAME, where)) \
            if saving_lib.METADATA_FILENAME in names else {}
        weights = saving_lib._read_member(zf, saving_lib.VARS_FILENAME, where) \
            if saving_lib.VARS_FILENAME in names else None
    classes = {x.get("name") or (x.get("config") or {}).get("name"): x.get("class_name")
               for x in (config.get("config") or {}).get("layers", [])}
    rows = []
    if weights is not None:
        with lf.open_file(io.BytesIO(weights)) as f:
            rows = [(name, classes.get(name.rsplit("/", 1)[-1], "?"), w) for name, _, w in _keras3_weights(f)]
    return {"format": "Keras 3 .keras archive", "keras_version": metadata.get("keras_version"),
            "model_class": config.get("class_name"), "layers": rows, "compile": config.get("compile_config")}


def _torch_file(path) -> dict:
    import torch

    try:
        data = torch.load(path, map_location="meta", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure is "not a plain tensor checkpoint"
        raise ValueError(f"'{path}' is not a plain tensor torch checkpoint: {str(e).splitlines()[0]}") from e
    config = None
    if isinstance(data, dict) and "state_dict" in data and "format" in data:
        config = json.loads(data.get("model_config") or "null")
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise ValueError(f"'{path}' does not hold a state_dict.")
    layers: dict = {}
    for key, t in data.items():
        owner, _, leaf = key.rpartition(".")
        layers.setdefault(owner or "/", []).append((leaf, tuple(t.shape), str(t.dtype).replace("torch.", "")))
    return {"format": "torch state_dict" + (" + kerasish model config" if config else ""),
            "keras_version": None, "model_class": (config or {}).get("class_name"),
            "layers": [(k, "?", v) for k, v in layers.items()], "compile": None}


def describe(path) -> dict:
    """The summary `python -m kerasish.inspect` prints, as a dict."""
    from kerasish.saving import legacy_h5_format as lf

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"File not found: {path}")
    if zipfile.is_zipfile(path) and not path.endswith((".pt", ".pth")):
        return _keras_archive(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        with lf.open_file(path) as f:
            if "model_config" in f.attrs or "layer_names" in f.attrs or "model_weights" in f:
                return _legacy_h5(f, path)
            return {"format": "Keras 3 .weights.h5", "keras_version": None, "model_class": None,
                    "layers": _keras3_weights(f), "compile": None}
    if path.endswith((".pt", ".pth")) or zipfile.is_zipfile(path):
        return _torch_file(path)
    raise ValueError(f"'{path}' is not a Keras file kerasish knows (HDF5, .keras zip or torch checkpoint).")


def format_summary(info: dict) -> str:
    lines = [f"format:        {info['format']}"]
    if info.get("keras_version"):
        lines.append(f"keras_version: {info['keras_version']}" +
                     (f" (backend: {info['backend']})" if info.get("backend") else ""))
    if info.get("model_class"):
        lines.append(f"model class:   {info['model_class']}")
    lines.append("")
    lines.append(f"{'layer':<32} {'class':<22} weights")
    for name, cls, weights in info["layers"]:
        shown = ", ".join(f"{w}{list(shape)}:{dtype}" for w, shape, dtype in weights) or "-"
        lines.append(f"{str(name):<32} {str(cls):<22} {shown}")
    total = sum(1 for _, _, ws in info["layers"] for _ in ws)
    lines.append(f"\n{len(info['layers'])} layers, {total} weight arrays")
    if info.get("compile"):
        lines.append("compile: " + json.dumps(info["compile"]))
    if info.get("optimizer_weights"):
        lines.append(f"optimizer state: {info['optimizer_weights']} arrays")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m kerasish.inspect FILE", file=sys.stderr)
        return 2
    try:
        print(format_summary(describe(argv[0])))
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
