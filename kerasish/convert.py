"""`python -m kerasish.convert IN OUT`: convert Keras model files.

IN: a full model in any format kerasish loads: Keras 2 / tf.keras legacy
HDF5 (`.h5` / `.hdf5`), Keras 3 `.keras`, or a torch checkpoint written by
this tool (`.pt`). A weights-only file has no architecture to convert; the
tool says so and exits 2.

OUT, chosen by its name:

- `.keras`: Keras 3's archive (loads in Keras 3 and kerasish);
- `.weights.h5`: Keras 3's weights file;
- `.h5` / `.hdf5`: Keras 2 legacy HDF5 (loads in tf.keras 2.x);
- `.pt` / `.pth`: a torch checkpoint `{"format", "state_dict", "model_config",
  "compile_config"}`: the state_dict has kerasish's keys
  (`dense.kernel`), the configs are JSON text, so it loads with
  `torch.load(path, weights_only=True)`; `load_torch_checkpoint` rebuilds
  the model from it.

Options: `--custom-module MOD` imports MOD first (your module that registers
custom layers with `@keras.saving.register_keras_serializable()`);
`--unsafe` allows Lambda bytecode (only for files you trust); `--no-compile`
leaves out the optimizer / training configuration.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

TORCH_FORMAT = "kerasish-torch-checkpoint-v1"
_OUT_SUFFIXES = (".keras", ".weights.h5", ".h5", ".hdf5", ".pt", ".pth")


def save_torch_checkpoint(model, filepath) -> None:
    """Writes `model` as a torch checkpoint holding its state_dict and config (atomic)."""
    import torch

    from kerasish.saving import saving_lib

    serialized = saving_lib.serialize_model(model)
    compile_config = serialized.pop("compile_config", None)
    state = {k: v.detach().cpu().as_subclass(torch.Tensor) for k, v in model.state_dict().items()
             if isinstance(v, torch.Tensor)}
    payload = {"format": TORCH_FORMAT, "state_dict": state,
               "model_config": json.dumps(serialized, default=saving_lib._json_default),
               "compile_config": json.dumps(compile_config, default=saving_lib._json_default)}
    with saving_lib.atomic_path(os.fspath(filepath)) as tmp:
        torch.save(payload, tmp)


def load_torch_checkpoint(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuilds a model from `save_torch_checkpoint`'s file (no unpickling of code)."""
    import torch

    from kerasish.saving import saving_lib

    path = os.fspath(filepath)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means "not our plain-tensor checkpoint"
        raise ValueError(f"'{path}' is not a plain tensor torch checkpoint: {str(e).splitlines()[0]}") from e
    if not isinstance(payload, dict) or payload.get("format") != TORCH_FORMAT:
        raise ValueError(f"'{path}' is a torch file without a model config (only weights): build the model in code "
                         "and call `model.load_weights(...)`, or convert a full model file.")
    config = json.loads(payload["model_config"])
    compile_config = json.loads(payload.get("compile_config") or "null")
    if compile_config:
        config["compile_config"] = compile_config
    model = saving_lib.model_from_config(config, custom_objects, compile=compile, safe_mode=safe_mode, where=path)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"The weights in '{path}' do not fit the model its config describes: {e}") from e
    return model


def load_any(filepath, custom_objects=None, compile=True, safe_mode=True):
    """A full model from any input format `convert` accepts."""
    from kerasish.saving import saving_api

    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise ValueError(f"File not found: {path}")
    if path.endswith((".pt", ".pth")):
        return load_torch_checkpoint(path, custom_objects, compile, safe_mode)
    if path.endswith(".weights.h5"):
        raise ValueError(f"'{path}' holds weights only, no architecture: nothing to convert. Build the model in "
                         "code, `model.load_weights(...)` it, then save it in the format you want.")
    if not path.endswith((".h5", ".hdf5", ".keras")):
        raise ValueError(f"Unsupported input '{path}': expected .h5/.hdf5 (Keras 2), .keras (Keras 3) or .pt "
                         "(written by this tool). A TensorFlow SavedModel directory needs TensorFlow: load it "
                         "there and save it with `model.save('model.h5')` first.")
    return saving_api.load_model(path, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def convert(src, dst, custom_objects=None, compile=True, safe_mode=True) -> None:
    """Loads `src` and writes it as `dst` (format from `dst`'s name)."""
    dst = os.fspath(dst)
    if not dst.endswith(_OUT_SUFFIXES):
        raise ValueError(f"Unsupported output '{dst}': the name must end in one of {', '.join(_OUT_SUFFIXES)}.")
    model = load_any(src, custom_objects, compile, safe_mode)
    if dst.endswith((".pt", ".pth")):
        save_torch_checkpoint(model, dst)
    elif dst.endswith(".weights.h5"):
        model.save_weights(dst)
    else:
        model.save(dst)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kerasish.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="input model file (.h5/.hdf5, .keras, .pt)")
    parser.add_argument("dst", help="output file (.keras, .weights.h5, .h5, .pt)")
    parser.add_argument("--custom-module", action="append", default=[],
                        help="module to import first (registers custom layers)")
    parser.add_argument("--unsafe", action="store_true", help="allow Lambda bytecode (trusted files only)")
    parser.add_argument("--no-compile", action="store_true", help="drop the training configuration")
    args = parser.parse_args(argv)
    try:
        for module in args.custom_module:
            importlib.import_module(module)
        convert(args.src, args.dst, compile=not args.no_compile, safe_mode=not args.unsafe)
    except (ValueError, OSError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
