"""`keras.saving.save_model / load_model / save_weights / load_weights`.

Formats, chosen by the file name:

- `.keras`: Keras 3's model archive (config + weights), readable and
  writable by real Keras 3.
- `.weights.h5`: Keras 3's weights file (h5py needed: `pip install h5py`).
- `.pt` / `.pth`: a plain torch `state_dict` (`torch.save`), loaded with
  `torch.load(weights_only=True)`, so loading never unpickles code.
- `.h5` / `.hdf5` (not `.weights.h5`): Keras 2 / tf.keras legacy HDF5, full
  model or weights only (`legacy_h5_format`).
- no extension: tf.keras's SavedModel idiom, which needs TensorFlow; a
  `ValueError` says to save `.keras` or `.h5` instead.

`Model.save`, `Model.save_weights` and `Model.load_weights` call these.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings

import torch

from kerasish.saving import saving_lib

_TORCH_SUFFIXES = (".pt", ".pth")


def _path_str(filepath) -> str:
    return os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else ""


def _check_overwrite(filepath: str, overwrite: bool) -> None:
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(
            f"The file {filepath} already exists and `overwrite=False` was passed; nothing was written."
        )


def _is_legacy_h5_name(path: str) -> bool:
    """`m.h5` / `m.hdf5` / `m.keras.h5` (but not Keras 3's `.weights.h5`): Keras 2's HDF5 format."""
    return path.endswith((".h5", ".hdf5")) and not path.endswith(".weights.h5")


def _is_legacy_h5_file(path: str) -> bool:
    from kerasish.saving import legacy_h5_format

    return os.path.exists(path) and legacy_h5_format.is_legacy_h5(path)


_CONVERTER = "tools/convert_tf_keras_files.py (kerasish's repository)"
_TF_DATA_SHARD = re.compile(r"\.data-\d{5}-of-\d{5}$")


def _tf_only_format_error(path: str, action: str):
    """A `ValueError` naming a TensorFlow-only file (a SavedModel directory, a TF checkpoint written by
    tf.keras's `save_weights("ckpt")`) and how to convert it, or None for any other path. These files
    are TensorFlow graphs and tensor bundles: kerasish has no reader for them (no TensorFlow, ever)."""
    if not path:
        return None
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb")):
        return ValueError(
            f"Cannot {action} '{path}': it is a TensorFlow SavedModel directory (`model.save('{os.path.basename(path)}')` "
            "in tf.keras 2 without an extension, or `save_format='tf'`), which needs TensorFlow to read. In the "
            f"environment that wrote it run `python {_CONVERTER} {path} model.h5` (or `tf.keras.models.load_model"
            "(path).save('model.h5')`), then load `model.h5` with kerasish."
        )
    prefix = path[: -len(".index")] if path.endswith(".index") else _TF_DATA_SHARD.sub("", path)
    if prefix != path or (os.path.isfile(path + ".index") and not os.path.isfile(path)):
        return ValueError(
            f"Cannot {action} '{path}': it is a TensorFlow checkpoint (`{os.path.basename(prefix)}.index` + "
            f"`.data-*` files, written by tf.keras 2's `save_weights('{os.path.basename(prefix)}')` without an `.h5` "
            "suffix), which needs TensorFlow to read. In the environment that wrote it, build the model, "
            f"`model.load_weights('{prefix}')` and `model.save_weights('model.weights.h5', save_format='h5')` "
            f"(`python {_CONVERTER} {prefix} model.weights.h5 --build module:function` does this), then "
            "`model.load_weights('model.weights.h5')` with kerasish."
        )
    return None


def _save_format(save_format, action: str):
    """Keras 2's `save_format=` ("h5"/"hdf5", "tf"/"tensorflow", "keras"), normalized; "tf" needs
    TensorFlow and is refused naming the alternatives."""
    if save_format is None:
        return None
    fmt = str(save_format).lower()
    if fmt in ("h5", "hdf5"):
        return "h5"
    if fmt in ("keras", "keras_v3"):
        return "keras"
    if fmt in ("tf", "tensorflow"):
        raise ValueError(
            f"`{action}(..., save_format='tf')` is TensorFlow's format (a SavedModel / a TF checkpoint), which "
            "needs TensorFlow. Use a `.keras` / `.weights.h5` path (Keras 3) or `.h5` (Keras 2 HDF5, loadable by "
            f"tf.keras). Received: save_format={save_format!r}"
        )
    raise ValueError(f"Unknown `save_format` argument. Expected one of 'keras', 'tf', or 'h5'. "
                     f"Received: save_format={save_format!r}")


def _is_unnamed_legacy_h5(path: str) -> bool:
    """A Keras 2 HDF5 file whose name has none of the known suffixes (tf.keras 2 wrote one with
    `save(path, save_format="h5")` / `save_weights(path, save_format="h5")`)."""
    known = (".keras", ".h5", ".hdf5", ".json", ".pt", ".pth")
    return bool(path) and not path.endswith(known) and os.path.isfile(path) and _is_legacy_h5_file(path)


def _refuse_parametrized(model, action: str) -> None:
    """Keras files have no place for torch parametrizations (`weight_norm`, `spectral_norm`, ...): the
    layer's `kernel` is then computed from other tensors (`parametrizations.kernel.original0/1`) and the
    layer's class is torch's `Parametrized<Class>`; writing or reading them as Keras weights would
    misplace them. Refuse, naming the way out."""
    if not isinstance(model, torch.nn.Module):
        return
    from torch.nn.utils import parametrize

    for name, module in model.named_modules():
        old_style = _old_style_norms(module)
        if old_style:
            tensor, remove = old_style[0]
            raise ValueError(
                f"Cannot {action} in a Keras format: the layer '{getattr(module, 'name', name)}' has torch's "
                f"hook-based `{remove.replace('remove_', '')}` on {tensor!r}: its Keras weight is then computed "
                f"from other tensors ({tensor}_g / {tensor}_v or {tensor}_orig), which Keras files cannot hold. "
                f"Fold it into a plain weight first with `torch.nn.utils.{remove}(layer, {tensor!r})` (it keeps "
                "the current value), or save a torch `state_dict` (`save_weights('w.pt')`)."
            )
        if parametrize.is_parametrized(module):
            tensors = sorted(module.parametrizations.keys())
            raise ValueError(
                f"Cannot {action} in a Keras format: the layer '{getattr(module, 'name', name)}' has torch "
                f"parametrizations on {tensors} (e.g. `weight_norm` / `spectral_norm`), which Keras files "
                "cannot hold. Fold them into plain weights first with "
                f"`torch.nn.utils.parametrize.remove_parametrizations(layer, {tensors[0]!r})` (it keeps the "
                "current values), or save a torch `state_dict` (`save_weights('w.pt')`)."
            )


def _old_style_norms(module) -> list:
    """(tensor name, removal function) of the hook-based `torch.nn.utils.weight_norm` / `spectral_norm`
    (torch's older API, deprecated but in wide use) on `module`."""
    found = []
    for hook in getattr(module, "_forward_pre_hooks", {}).values():
        kind = type(hook).__module__
        if kind == "torch.nn.utils.weight_norm" and type(hook).__name__ == "WeightNorm":
            found.append((hook.name, "remove_weight_norm"))
        elif kind == "torch.nn.utils.spectral_norm" and type(hook).__name__ == "SpectralNorm":
            found.append((hook.name, "remove_spectral_norm"))
    return found


def save_model(model, filepath, overwrite: bool = True, zipped: bool | None = None, **kwargs) -> None:
    """Saves a model as a `.keras` archive (Keras 3's format).

    Args:
        model: A kerasish `Model` (or layer with a config).
        filepath: A path ending in `.keras`, or a writable binary file object.
        overwrite: Whether to replace an existing file. Defaults to True
            (with False an existing file raises `FileExistsError`; Keras asks
            interactively instead).
        zipped: True (default) writes a zip archive to a `.keras` path;
            False writes Keras 3's unzipped layout, a directory (whose name
            must not end in `.keras`) holding `config.json`,
            `metadata.json` and `model.weights.h5`.

    The file (or directory) is written next to the target and moved into
    place, so a failure mid-save leaves any previous one intact.

    Example:
        >>> model.save("model.keras")
        >>> restored = keras.saving.load_model("model.keras")
    """
    include_optimizer = kwargs.pop("include_optimizer", True)
    save_format = _save_format(kwargs.pop("save_format", None), "model.save")
    _refuse_parametrized(model, "save the model")
    if kwargs:
        raise ValueError(f"The following argument(s) are not supported: {list(kwargs)}")
    path = _path_str(filepath)
    if save_format == "h5" and path and not _is_legacy_h5_name(path):
        # Keras 2 writes HDF5 under any name with save_format="h5" (kerasish's load_model reads it back)
        if path.endswith((".keras", ".weights.h5")):
            raise ValueError(f"`save_format='h5'` with a `{os.path.splitext(path)[1]}` name: name the Keras 2 "
                             f"HDF5 file `.h5`. Received: filepath={path}")
        _check_overwrite(path, overwrite)
        from kerasish.saving import legacy_h5_format

        legacy_h5_format.save_model(model, path, include_optimizer=include_optimizer)
        return
    if save_format == "keras" and path and not path.endswith(".keras") and zipped is not False:
        raise ValueError(f"`save_format='keras'` needs a `.keras` path. Received: filepath={path}")
    legacy = bool(path) and _is_legacy_h5_name(path) and zipped is not False
    if not include_optimizer and not legacy:
        raise ValueError("`include_optimizer=False` is not supported by the `.keras` format.")
    if zipped is False:
        if not path:
            raise ValueError(f"`zipped=False` needs a directory path. Received: filepath={filepath!r}")
        if path.endswith(".keras"):
            raise ValueError(
                f"When using `zipped=False`, the `filepath` argument should not end in `.keras`. Received: filepath={path}"
            )
        _check_overwrite(path, overwrite)
        saving_lib.save_model_to_dir(model, path)
        return
    if path:
        if _is_legacy_h5_name(path):
            _check_overwrite(path, overwrite)
            from kerasish.saving import legacy_h5_format

            legacy_h5_format.save_model(model, path, include_optimizer=include_optimizer)
            return
        if not os.path.splitext(path)[1] and not path.endswith(".keras"):
            raise ValueError(
                f"`model.save('{path}')` without an extension is tf.keras's TensorFlow SavedModel format, which "
                "needs TensorFlow. Save as `model.save('" + path + ".keras')` (Keras 3 archive) or "
                "`model.save('" + path + ".h5')` (Keras 2 HDF5, loadable by tf.keras). "
                f"Received: filepath={path}"
            )
        if not path.endswith(".keras"):
            raise ValueError(
                "Invalid filepath extension for saving. Please add a `.keras` extension for the native Keras "
                f"format. Received: filepath={path}"
            )
        _check_overwrite(path, overwrite)
        filepath = path
    saving_lib.save_model(model, filepath)


def load_model(filepath, custom_objects=None, compile: bool = True, safe_mode: bool = True):
    """Loads a model saved with `save_model` / `Model.save` or by Keras 3.

    Args:
        filepath: A `.keras` path, a directory saved with `zipped=False`, or
            a readable binary file object.
        custom_objects: Dict of names to custom classes or functions.
        compile: Whether to compile the model from its saved compile config.
            Defaults to True.
        safe_mode: Refuse Python-lambda bytecode (Lambda layers). Defaults
            to True; pass False only for files you trust.

    Raises:
        ValueError: a damaged or unsafe file, an unknown class (only kerasish
            classes and registered custom objects are ever created), or
            weights that do not fit the model.
    """
    path = _path_str(filepath)
    if path and (_is_legacy_h5_name(path) or (path.endswith(".weights.h5") and _is_legacy_h5_file(path))
                 or _is_unnamed_legacy_h5(path)):
        from kerasish.saving import legacy_h5_format

        return legacy_h5_format.load_model(path, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)
    error = _tf_only_format_error(path, "load a model from")
    if error is not None:
        raise error
    if path and saving_lib.is_model_dir(path):
        return saving_lib.load_model_from_dir(path, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)
    if path:
        if not path.endswith(".keras"):
            raise ValueError(f"Invalid filename: expected a `.keras` extension. Received: filepath={path}")
        filepath = path
    return saving_lib.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def save_weights(model, filepath, overwrite: bool = True, max_shard_size=None, save_format=None,
                 options=None) -> None:
    """Saves the weights of a model or layer.

    Args:
        model: A kerasish model or layer.
        filepath: `*.weights.h5` (Keras 3's layout, loadable by
            `keras.Model.load_weights`) or `*.pt` / `*.pth` (a torch
            `state_dict`); with `max_shard_size`, `*.weights.json` (the
            index, written next to its `*_00000.weights.h5` shards).
        overwrite: Whether to replace an existing file. Defaults to True.
        max_shard_size: With a number, the weights are split into shard
            files of at most this many gigabytes each, as Keras 3 does.
        save_format: Keras 2's argument: "h5" writes Keras 2 HDF5 under any
            name (but `.weights.h5`, Keras 3's layout, as tf-keras does);
            "tf" (a TF checkpoint) raises a `ValueError`. Defaults to None
            (the name decides).
        options: Keras 2's `tf.train.CheckpointOptions` (TF checkpoints
            only); must be None.

    The file is written atomically (temporary file, fsync, `os.replace`).
    """
    path = os.fspath(filepath)
    save_format = _save_format(save_format, "model.save_weights")
    if options is not None:
        raise ValueError(f"`options` (tf.train.CheckpointOptions) applies to TF checkpoints only, which need "
                         f"TensorFlow. Received: options={options!r}")
    if save_format == "h5" and not _is_legacy_h5_name(path) and not path.endswith(".weights.h5"):
        _refuse_parametrized(model, "save the weights")
        _check_overwrite(path, overwrite)
        from kerasish.saving import legacy_h5_format

        legacy_h5_format.save_weights(model, path)
        return
    if max_shard_size is not None:
        if not path.endswith(("weights.h5", "weights.json")):
            raise ValueError(
                f"The filename must end in `.weights.json` when `max_shard_size` is specified. Received: filepath={path}"
            )
        _refuse_parametrized(model, "save the weights")
        if not getattr(model, "built", True):
            raise ValueError(
                "You are saving a model that has not yet been built. Try building the model first by calling it "
                "on some data or by using `build()`."
            )
        _check_overwrite(path, overwrite)
        from kerasish.saving import sharded_weights

        sharded_weights.save_weights(model, path, max_shard_size)
        return
    if _is_legacy_h5_name(path):
        _refuse_parametrized(model, "save the weights")
        if not getattr(model, "built", True):
            raise ValueError(
                "You are saving a model that has not yet been built. Try building the model first by calling it "
                "on some data or by using `build()`."
            )
        _check_overwrite(path, overwrite)
        from kerasish.saving import legacy_h5_format

        legacy_h5_format.save_weights(model, path)
        return
    if path.endswith(_TORCH_SUFFIXES):
        _check_overwrite(path, overwrite)
        state = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in model.state_dict().items()}
        # plain tensors only: `torch.load(weights_only=True)` reads them back
        state = {k: v.as_subclass(torch.Tensor) if isinstance(v, torch.Tensor) else v for k, v in state.items()}
        with saving_lib.atomic_path(path) as tmp:
            torch.save(state, tmp)
        return
    _refuse_parametrized(model, "save the weights")
    if not path.endswith(".weights.h5"):
        hint = ("" if os.path.splitext(path)[1] else
                f" (without a suffix tf.keras 2 wrote a TensorFlow checkpoint, which needs TensorFlow: name it "
                f"`{path}.weights.h5`, or `{path}.h5` for Keras 2's HDF5)")
        raise ValueError(
            f"The filename must end in `.weights.h5` (or `.pt` / `.pth` for a torch state_dict){hint}. "
            f"Received: filepath={path}"
        )
    if not getattr(model, "built", True):
        raise ValueError(
            "You are saving a model that has not yet been built. Try building the model first by calling it on "
            "some data or by using `build()`."
        )
    _check_overwrite(path, overwrite)
    saving_lib.save_weights_h5(model, path)


def load_weights(model, filepath, skip_mismatch: bool = False, **kwargs) -> None:
    """Loads weights saved by `save_weights`, `save_model` or Keras 3.

    Args:
        model: The kerasish model or layer to load into (built, for h5 files).
        filepath: `*.weights.h5`, `*.keras` (its weights), `*.weights.json`
            (Keras 3.12+'s sharded weights: the index next to its
            `*_00000.weights.h5` shards), or `*.pt` / `*.pth`.
        skip_mismatch: Skip (with a warning) objects whose variable counts or
            shapes do not match, instead of raising. Defaults to False.

    Raises:
        ValueError: naming the layer and the shapes when the file does not
            match the model; a damaged file or a pickle that is not plain
            tensors.
    """
    by_name = kwargs.pop("by_name", False)
    if kwargs:
        raise ValueError(f"Invalid keyword arguments: {kwargs}")
    path = os.fspath(filepath)
    error = _tf_only_format_error(path, "load weights from")
    if error is not None:
        raise error
    if not path.endswith(_TORCH_SUFFIXES):
        _refuse_parametrized(model, "load the weights")
    if (path.endswith((".h5", ".hdf5")) and _is_legacy_h5_file(path)) or _is_unnamed_legacy_h5(path):
        from kerasish.saving import legacy_h5_format

        legacy_h5_format.load_weights(model, path, by_name=by_name, skip_mismatch=skip_mismatch)
        return
    if by_name:
        raise ValueError("`by_name=True` is only supported for Keras 2 (legacy) HDF5 weight files. "
                         f"Received: filepath={path}")
    if path.endswith(_TORCH_SUFFIXES):
        _load_torch_state(model, path, skip_mismatch)
        return
    if not path.endswith((".weights.h5", ".h5", ".keras", ".weights.json")):
        raise ValueError(
            f"File format not supported: filepath={path}. Keras 3 weight files end in `.weights.h5` (or `.keras`, "
            "or `.weights.json` for sharded weights); torch state_dicts in `.pt` / `.pth`."
        )
    if not os.path.exists(path):
        raise ValueError(f"File not found: filepath={path}.")
    if not getattr(model, "built", True):
        raise ValueError(
            "You are loading weights into a model that has not yet been built. Try building the model first by "
            "calling it on some data or by using `build()`."
        )
    if path.endswith(".keras"):
        saving_lib.load_weights_from_keras_archive(model, path, skip_mismatch)
    elif path.endswith(".weights.json"):
        from kerasish.saving import sharded_weights

        for problem in sharded_weights.load_weights(model, path, skip_mismatch):
            warnings.warn(f"Skipping variable loading: {problem}", stacklevel=2)
    else:
        saving_lib.load_weights_h5(model, path, skip_mismatch)


def _load_torch_state(model, path: str, skip_mismatch: bool) -> None:
    if not os.path.exists(path):
        raise ValueError(f"File not found: filepath={path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"Refusing to load '{path}': it is not a plain tensor state_dict (only `weights_only=True` "
            f"loading is allowed, so no code from the file runs). {str(e).splitlines()[0]}"
        ) from e
    except Exception as e:  # noqa: BLE001 - a damaged file makes torch's reader fail in any way (AssertionError, ...)
        raise ValueError(f"The file '{path}' is not a valid torch weights file: {type(e).__name__}: {e}") from e
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError(
            f"The file '{path}' does not hold a state_dict (a dict of name -> tensor). Got {type(state).__name__}."
        )
    own = model.state_dict()
    mismatched = [
        (k, tuple(own[k].shape), tuple(v.shape))
        for k, v in state.items()
        if k in own and isinstance(v, torch.Tensor) and tuple(own[k].shape) != tuple(v.shape)
    ]
    if mismatched:
        lines = [
            f"'{k}' (layer '{k.rsplit('.', 1)[0] or k}'): model has shape {a}, file has {b}" for k, a, b in mismatched
        ]
        if not skip_mismatch:
            raise ValueError(f"Shape mismatch loading '{path}':\n  " + "\n  ".join(lines))
        warnings.warn("Skipping mismatched weights:\n  " + "\n  ".join(lines), stacklevel=3)
        state = {k: v for k, v in state.items() if k not in {m[0] for m in mismatched}}
    try:
        result = model.load_state_dict(state, strict=not skip_mismatch)
    except RuntimeError as e:
        raise ValueError(
            f"Could not load '{path}' into {type(model).__name__} '{getattr(model, 'name', '')}': {e}"
        ) from e
    if skip_mismatch and (result.missing_keys or result.unexpected_keys):
        warnings.warn(
            f"Weights not loaded from '{path}': missing {result.missing_keys}, unexpected {result.unexpected_keys}",
            stacklevel=3,
        )
