"""The Keras 3 `.keras` archive and weight files: writing and reading.

A `.keras` file is a zip (members stored, not compressed, as Keras writes
them) holding:

- `metadata.json`: `{"keras_version", "date_saved"}` (plus `kerasish_version`);
- `config.json`: `serialize_keras_object(model)` with the model's
  `build_config` and `compile_config`, module names as Keras writes them
  (`"keras.layers"`), so real Keras 3 can rebuild it;
- `model.weights.h5`: the weights in Keras 3's layout (see `h5_weights`).

Safety: every write goes to a temporary file in the target's directory,
is fsync'ed and then `os.replace`d over the target, so a failure never
leaves a half-written file and keeps any previous one. Loading never runs
code from the file: no pickle, classes resolve only to kerasish classes and
registered custom objects, Python-lambda bytecode needs `safe_mode=False`,
zip members with absolute paths or `..` are refused, and damaged files give
a `ValueError` that says what is wrong.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import io
import json
import os
import shutil
import tempfile
import warnings
import zipfile

from kerasish.saving import h5_weights

CONFIG_FILENAME = "config.json"
METADATA_FILENAME = "metadata.json"
VARS_FILENAME = "model.weights.h5"
# The Keras version whose format this writes (the metadata Keras writes).
KERAS_FORMAT_VERSION = "3.15.1"
# A zip member larger than this and more than 100x its stored size is a
# decompression bomb (Keras 3 applies the same guard above 4 GiB; 256 MiB
# here, so a crafted member never makes the loader allocate gigabytes).
_BOMB_FLOOR_BYTES = 1 << 28
_BOMB_MAX_EXPANSION = 100


# ------------------------------------------------------------ atomic writes
@contextlib.contextmanager
def atomic_path(filepath: str):
    """Yields a temporary path next to `filepath`; when the block succeeds the
    file is fsync'ed and moved over `filepath` with `os.replace`, otherwise it
    is deleted and `filepath` is left as it was."""
    filepath = os.fspath(filepath)
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(filepath) + ".", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _target_mode(filepath))
        os.replace(tmp, filepath)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _target_mode(filepath: str) -> int:
    """Keep the permissions of the file being replaced; new files get the
    usual 0o666 minus the umask (mkstemp would leave 0o600)."""
    try:
        return os.stat(filepath).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ----------------------------------------------------------------- configs
def _json_default(obj):
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _public_module(module: str, class_name: str) -> str:
    """`keras.layers.core.dense` -> `keras.layers`: the shortest public Keras
    module that exports `class_name` (what Keras 3 writes for built-ins)."""
    if not module.startswith("keras.") or module.startswith("keras.src"):
        return module
    parts = module.split(".")
    try:  # the class the full path names: a shorter module must export that class, not a namesake
        # (`keras.optimizers.legacy.RMSprop` is not `keras.optimizers.RMSprop`)
        named = getattr(importlib.import_module("kerasish" + module[len("keras"):]), class_name, None)
    except ImportError:
        named = None
    for n in range(2, len(parts)):
        candidate = ".".join(parts[:n])
        try:
            mod = importlib.import_module("kerasish" + candidate[len("keras") :])
        except ImportError:
            continue
        found = getattr(mod, class_name, None)
        if isinstance(found, type) and (not isinstance(named, type) or found is named):
            return candidate
    return module


def _keras_modules(config):
    """Rewrites kerasish module paths in a serialized config to Keras's."""
    if isinstance(config, dict):
        out = {k: _keras_modules(v) for k, v in config.items()}
        if isinstance(out.get("module"), str) and isinstance(out.get("class_name"), str):
            out["module"] = _public_module(out["module"], out["class_name"])
        return out
    if isinstance(config, (list, tuple)):
        return [_keras_modules(v) for v in config]
    return config


def serialize_model(model) -> dict:
    """`serialize_keras_object(model)` plus `build_config` and
    `compile_config`, as Keras 3 writes them in `config.json`."""
    from kerasish.saving.serialization_lib import serialize_keras_object

    config = serialize_keras_object(model)
    if hasattr(model, "get_build_config"):
        config["build_config"] = model.get_build_config()
    if getattr(model, "compiled", False) and hasattr(model, "get_compile_config"):
        compile_config = model.get_compile_config()
        if compile_config:
            config["compile_config"] = compile_config
    return _keras_modules(config)


def _config_json(model) -> str:
    """config.json's text: objects met twice (a layer another layer's config
    holds) written with a `shared_object_id`, as Keras's `save_model` does."""
    from kerasish.saving.serialization_lib import ObjectSharingScope

    with ObjectSharingScope():
        return json.dumps(serialize_model(model), default=_json_default)


def _metadata() -> dict:
    import kerasish

    return {
        "keras_version": KERAS_FORMAT_VERSION,
        "kerasish_version": getattr(kerasish, "__version__", "unknown"),
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
    }


# ------------------------------------------------------------------ saving
def _weights_bytes(model) -> bytes:
    h5py = h5_weights.require_h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        h5_weights.write_weights(model, f)
    return buffer.getvalue()


def _write_archive(model, fileobj) -> None:
    config_json = _config_json(model)
    metadata_json = json.dumps(_metadata())
    weights = _weights_bytes(model)
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(METADATA_FILENAME, metadata_json)
        zf.writestr(CONFIG_FILENAME, config_json)
        zf.writestr(VARS_FILENAME, weights)
        _write_assets(model, zf)


ASSETS_DIRNAME = "assets"


def _write_assets(model, zf) -> None:
    """Files an object writes with `save_assets(dir)` (e.g. a lookup layer's
    adapted `vocabulary.txt`) go under `assets/<object path>/`, as in Keras."""
    import tempfile

    for path, obj in h5_weights.iter_saveables(model):
        if not hasattr(obj, "save_assets"):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            obj.save_assets(tmp)
            for name in sorted(os.listdir(tmp)):
                with open(os.path.join(tmp, name), "rb") as f:
                    zf.writestr("/".join(p for p in (ASSETS_DIRNAME, path, name) if p), f.read())


def _read_assets(model, zf) -> None:
    """Hands each object with `load_assets` its `assets/<path>/` files (plain
    file names only: nothing is extracted outside a temporary directory)."""
    import tempfile

    names = [n for n in zf.namelist() if n.startswith(ASSETS_DIRNAME + "/") and not n.endswith("/")]
    if not names:
        return
    for path, obj in h5_weights.iter_saveables(model):
        if not hasattr(obj, "load_assets"):
            continue
        prefix = "/".join(p for p in (ASSETS_DIRNAME, path) if p) + "/"
        mine = [n for n in names if n.startswith(prefix) and "/" not in n[len(prefix):]]
        if not mine:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for name in mine:
                base = name[len(prefix):]
                if base in ("", ".", "..") or os.sep in base:
                    continue
                with open(os.path.join(tmp, base), "wb") as f:
                    f.write(zf.read(name))
            obj.load_assets(tmp)


def save_model(model, filepath) -> None:
    """Writes `model` to a `.keras` archive (a path, atomically, or a
    writable binary file object)."""
    h5_weights.require_h5py()
    if not getattr(model, "built", True):
        warnings.warn(
            "You are saving a model that has not yet been built. It might not contain any weights yet. "
            "Consider building the model first by calling it on some data.",
            stacklevel=3,
        )
    if hasattr(filepath, "write"):
        _write_archive(model, filepath)
        return
    with atomic_path(filepath) as tmp, open(tmp, "wb") as f:
        _write_archive(model, f)


def save_model_to_dir(model, dirpath) -> None:
    """Writes Keras 3's unzipped layout (`save_model(..., zipped=False)`):
    a directory holding `config.json`, `metadata.json` and
    `model.weights.h5`. The directory is assembled next to the target and
    renamed into place, so readers never see a half-written one."""
    h5_weights.require_h5py()
    dirpath = os.path.abspath(os.fspath(dirpath))
    if os.path.exists(dirpath) and not os.path.isdir(dirpath):
        raise ValueError(f"Cannot save the model directory: '{dirpath}' exists and is not a directory.")
    parent = os.path.dirname(dirpath)
    os.makedirs(parent, exist_ok=True)
    config_json = _config_json(model)
    tmp = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(dirpath) + ".", suffix=".tmp")
    try:
        with open(os.path.join(tmp, METADATA_FILENAME), "w") as f:
            f.write(json.dumps(_metadata()))
        with open(os.path.join(tmp, CONFIG_FILENAME), "w") as f:
            f.write(config_json)
        with open(os.path.join(tmp, VARS_FILENAME), "wb") as f:
            f.write(_weights_bytes(model))
        for name in (METADATA_FILENAME, CONFIG_FILENAME, VARS_FILENAME):
            with open(os.path.join(tmp, name), "rb+") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if os.path.isdir(dirpath):
            old = tmp + ".old"
            os.rename(dirpath, old)
        os.rename(tmp, dirpath)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(parent)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def save_weights_h5(model, filepath) -> None:
    """Writes the weights of `model` to a Keras 3 `.weights.h5` file, atomically."""
    h5py = h5_weights.require_h5py()
    with atomic_path(filepath) as tmp:
        with h5py.File(tmp, "w") as f:
            h5_weights.write_weights(model, f)


# ----------------------------------------------------------------- loading
def _check_member_names(names, where) -> None:
    for name in names:
        norm = name.replace("\\", "/")
        if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in norm.split("/"):
            raise ValueError(
                f"Not allowed: the archive '{where}' has a member with an absolute path or `..` "
                f"({name!r}); refusing to load it."
            )


def _read_member(zf, name, where) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ValueError(
            f"The file '{where}' is not a valid `.keras` archive: it has no '{name}' (members: {zf.namelist()})."
        ) from None
    if info.file_size > _BOMB_FLOOR_BYTES and info.file_size > _BOMB_MAX_EXPANSION * max(info.compress_size, 1):
        raise ValueError(
            f"Not allowed: member '{name}' of '{where}' declares {info.file_size} bytes but stores "
            f"{info.compress_size}; refusing to load a potential decompression bomb."
        )
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ValueError(f"The file '{where}' is damaged: could not read '{name}' ({e}).") from e
    except Exception as e:  # zlib.error and friends from a corrupt stream
        raise ValueError(f"The file '{where}' is damaged: could not read '{name}' ({type(e).__name__}: {e}).") from e


def _open_zip(filepath):
    where = filepath if isinstance(filepath, str) else getattr(filepath, "name", "<file object>")
    try:
        zf = zipfile.ZipFile(filepath, "r")
    except FileNotFoundError:
        raise ValueError(
            f"File not found: filepath={filepath}. Please ensure the file is an accessible `.keras` zip file."
        ) from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ValueError(f"The file '{where}' is not a valid `.keras` archive (a zip file): {e}") from e
    try:
        _check_member_names(zf.namelist(), where)
    except BaseException:
        zf.close()
        raise
    return zf, str(where)


def _find_lambdas(config) -> bool:
    if isinstance(config, dict):
        if config.get("class_name") == "__lambda__":
            return True
        return any(_find_lambdas(v) for v in config.values())
    if isinstance(config, list):
        return any(_find_lambdas(v) for v in config)
    return False


def model_from_config(config, custom_objects=None, compile=True, safe_mode=True, where="config.json",
                      keras_version=None):
    """Rebuilds a model from a parsed `config.json` (kerasish classes and
    registered/custom objects only), then compiles it from `compile_config`
    (`keras_version`: the release that wrote it, from its metadata.json)."""
    from kerasish.models.functional_config import deserialize_layer
    from kerasish.saving.object_registration import CustomObjectScope

    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(
            f"Invalid model config in '{where}': expected an object with a `class_name`. Received: {str(config)[:200]}"
        )
    if _find_lambdas(config) and safe_mode:
        raise ValueError(
            "Requested the deserialization of a `Lambda` layer whose `function` is a Python lambda. This "
            "carries a potential risk of arbitrary code execution and thus it is disallowed by default. If you "
            "trust the source of the artifact, you can override this error by passing `safe_mode=False` to the "
            "loading function."
        )
    from kerasish.saving.serialization_lib import ObjectSharingScope
    from kerasish.saving.serialization_lib import SafeModeScope

    compile_config = _upgrade_tf_keras_compile_config(config.get("compile_config"), custom_objects, keras_version)
    if keras_version is not None and keras_version < (3,):
        # tf-keras 2.13+'s archives: Keras 3's file layout around Keras 2 layer configs (`time_major`,
        # Keras 2's `hard_sigmoid`, ...), read as the legacy `.h5` files' configs are
        from kerasish.saving import legacy_config

        config = legacy_config.upgrade_model_config(config, ".".join(str(v) for v in keras_version), custom_objects)
    try:
        # Lambda and TorchModuleWrapper read the safe mode from the scope (their code or pickle runs
        # only with safe_mode=False)
        # (one object for the configs that share a `shared_object_id`, as Keras's `load_model`)
        with SafeModeScope(safe_mode), ObjectSharingScope():
            model = deserialize_layer(config, custom_objects=custom_objects)
    except ValueError:
        raise
    except (TypeError, KeyError, AttributeError, IndexError, RuntimeError, RecursionError) as e:
        # (a damaged or hand-edited config: a node's kwargs of the wrong type reach torch, a nested
        # structure where a tensor reference belongs recurses, a shape asks for terabytes)
        raise ValueError(f"Could not rebuild the model from '{where}': {type(e).__name__}: {e}") from e
    if compile and compile_config and hasattr(model, "compile_from_config"):
        try:
            # as Keras, the user's custom objects are in scope for the compile config too (a custom loss,
            # metric or optimizer passed in `custom_objects`)
            with CustomObjectScope(dict(custom_objects or {})), SafeModeScope(safe_mode):
                model.compile_from_config(compile_config)
        except Exception as e:  # as Keras: the model still loads, uncompiled
            warnings.warn(
                f"`compile()` was not called as part of model loading because `compile_from_config()` failed: {e}",
                stacklevel=3,
            )
    return model


def _upgrade_tf_keras_compile_config(compile_config, custom_objects=None, keras_version=None):
    """tf-keras 2.13+ writes `.keras` archives too (metadata.json's `keras_version` 2.x): its
    `compile_config` names optimizers with Keras 2 arguments (`jit_compile`, `is_legacy_optimizer`, a
    legacy optimizer's `decay`, module `keras.optimizers.legacy`), which Keras 3's optimizers refuse;
    such an optimizer is rebuilt as a Keras 2 one (`legacy_training_config`). Its built-in loss classes carry a
    Keras 2 `fn` (and `reduction="auto"`) in their config, which Keras 3's refuse: taken out, so the loss
    keeps its arguments (`from_logits`, `label_smoothing`) instead of failing the compile."""
    opt = compile_config.get("optimizer") if isinstance(compile_config, dict) else None
    inner = opt.get("config") if isinstance(opt, dict) else None
    from_tf_keras = keras_version is not None and keras_version < (3,)
    if not from_tf_keras and not (isinstance(inner, dict) and "is_legacy_optimizer" in inner):
        return compile_config
    if not isinstance(compile_config, dict):
        return compile_config
    from kerasish.saving import legacy_training_config

    # tf-keras also writes `steps_per_execution` / `jit_compile` / `run_eagerly` as None (its defaults)
    compile_config = {k: v for k, v in compile_config.items()
                      if v is not None or k not in ("steps_per_execution", "jit_compile", "run_eagerly")}
    if from_tf_keras and compile_config.get("loss") is not None:
        compile_config["loss"] = legacy_training_config.tf_keras_archive_loss(compile_config["loss"])
    if isinstance(inner, dict):
        compile_config["optimizer"] = legacy_training_config.optimizer_from_keras2(opt, custom_objects)
    return compile_config


def _parse_config(raw: bytes, where: str):
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"The file '{where}' has an invalid '{CONFIG_FILENAME}': {e}") from e


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Reads a `.keras` archive (a path or a binary file object)."""
    h5py = h5_weights.require_h5py()
    zf, where = _open_zip(filepath)
    with zf:
        config = _parse_config(_read_member(zf, CONFIG_FILENAME, where), where)
        has_metadata = METADATA_FILENAME in zf.namelist()
        version = _writer_version(_read_member(zf, METADATA_FILENAME, where) if has_metadata else None)
        model = model_from_config(config, custom_objects, compile, safe_mode, where=f"{where}:{CONFIG_FILENAME}",
                                  keras_version=version)
        if VARS_FILENAME not in zf.namelist():
            raise ValueError(f"The file '{where}' is not a valid `.keras` archive: it has no '{VARS_FILENAME}'.")
        weights = _read_member(zf, VARS_FILENAME, where)
        _read_assets(model, zf)
    load_weights_h5(model, io.BytesIO(weights), where=f"{where}:{VARS_FILENAME}", h5py=h5py, keras_version=version,
                    build_optimizer=True)
    return model


def _writer_version(raw):
    """The Keras release named in a metadata.json (`(3, 9, 2)`), or None."""
    if raw is None:
        return None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return h5_weights.parse_keras_version(meta.get("keras_version")) if isinstance(meta, dict) else None


def is_model_dir(path) -> bool:
    """Whether `path` is Keras 3's unzipped model layout (a directory with a
    `config.json`)."""
    return isinstance(path, str) and os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG_FILENAME))


def load_model_from_dir(dirpath, custom_objects=None, compile=True, safe_mode=True):
    """Reads Keras 3's unzipped layout (written with `zipped=False`)."""
    h5py = h5_weights.require_h5py()
    config_path = os.path.join(dirpath, CONFIG_FILENAME)
    with open(config_path, "rb") as f:
        config = _parse_config(f.read(), config_path)
    version = None
    meta_path = os.path.join(dirpath, METADATA_FILENAME)
    if os.path.isfile(meta_path):
        with open(meta_path, "rb") as f:
            version = _writer_version(f.read())
    model = model_from_config(config, custom_objects, compile, safe_mode, where=config_path, keras_version=version)
    weights_path = os.path.join(dirpath, VARS_FILENAME)
    if not os.path.isfile(weights_path):
        raise ValueError(f"The model directory '{dirpath}' has no '{VARS_FILENAME}' (Keras 3's unzipped layout).")
    load_weights_h5(model, weights_path, where=weights_path, h5py=h5py, keras_version=version, build_optimizer=True)
    return model


def load_weights_h5(model, source, skip_mismatch=False, where=None, h5py=None, keras_version=None,
                    build_optimizer=False) -> None:
    """Loads Keras 3 layout weights from an h5 path or binary file object
    (`keras_version`: the release that wrote it, when its archive says;
    `build_optimizer`: `load_model`'s, see `h5_weights.read_weights`)."""
    h5py = h5py or h5_weights.require_h5py()
    where = where or str(source)
    try:
        f = h5py.File(source, "r")
    except FileNotFoundError:
        raise ValueError(f"File not found: filepath={where}.") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"The file '{where}' is not a valid HDF5 weights file: {e}") from e
    with f:
        try:
            problems = h5_weights.read_weights(model, f, skip_mismatch=skip_mismatch, keras_version=keras_version,
                                                build_optimizer=build_optimizer)
        except (KeyError, OSError, TypeError, RuntimeError) as e:
            raise ValueError(f"The HDF5 weights file '{where}' is damaged or not in Keras 3's layout: {e}") from e
    for problem in problems:
        warnings.warn(f"Skipping variable loading: {problem}", stacklevel=3)


def load_weights_from_keras_archive(model, filepath, skip_mismatch=False) -> None:
    """Loads only the weights stored in a `.keras` archive."""
    h5py = h5_weights.require_h5py()
    zf, where = _open_zip(filepath)
    with zf:
        weights = _read_member(zf, VARS_FILENAME, where)
    load_weights_h5(model, io.BytesIO(weights), skip_mismatch, where=f"{where}:{VARS_FILENAME}", h5py=h5py)
