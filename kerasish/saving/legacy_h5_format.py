"""Keras 2 / tf.keras legacy HDF5 files (`model.save("m.h5")`,
`save_weights("w.h5")`), read and written with h5py only.

Full-model file layout (tf.keras 2.x, multi-backend Keras 2.2-2.3):

- root attributes `model_config` (JSON, Keras 2 dialect, see
  `legacy_config`), `training_config` (JSON: loss, metrics, loss_weights,
  optimizer_config), `keras_version`, `backend`;
- group `model_weights` (the weights-only file has this at its root):
  attribute `layer_names` (every layer of the top model, Sequential without
  its InputLayer), then per layer a group with attribute `weight_names` and
  one dataset per name (`"dense/kernel:0"`, slashes making subgroups).
  A layer's weights are Keras 2's `layer.weights` order: all trainable ones
  (sublayers included), then all non-trainable ones; a frozen layer lists
  each sublayer's weights in turn. A nested model is one entry.
- group `optimizer_weights` with attribute `weight_names`: `iteration`, then
  the slots. tf-keras's optimizer (TF >= 2.11) interleaves them per variable
  (`m0, v0, m1, v1`); the legacy one (`optimizers.legacy`, multi-backend
  Keras) groups them per slot (`m0, m1, ..., v0, v1, ...`, plus `vhat`s).

Safety: loading never runs code (no pickle; Lambda bytecode only with
`safe_mode=False`); external links, soft links and virtual datasets are
refused; fixed-size attributes are size-checked before they are read
(variable-length ones cannot be larger than the file itself), and a dataset
is read only when its dtype is numeric and its shape is the one the model
expects, so a small hostile file cannot make us allocate gigabytes. Every write goes to a
temporary file moved into place (`saving_lib.atomic_path`).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings

import numpy as np
import torch

from kerasish.saving import h5_weights
from kerasish.saving import legacy_config
from kerasish.saving import legacy_training_config

# The Keras version whose legacy HDF5 layout kerasish writes (tf.keras 2.x reads it).
LEGACY_KERAS_VERSION = "2.15.0"
# HDF5 object headers hold at most 64 KiB; Keras splits longer lists into
# `name0`, `name1`, ... attributes (as `save_attributes_to_hdf5_group` does).
_HEADER_LIMIT = 64512
_MAX_ATTR_BYTES = 64 << 20  # a model_config larger than this is not a real model
_NUMERIC_KINDS = "fiub"


# ------------------------------------------------------------------ opening
def _where(source) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<file>")


def _raised_by_h5py(e) -> bool:
    """Whether `e` comes out of h5py's own code (a damaged file's structure
    surfaces as RuntimeError / OSError / KeyError from any h5py call), not
    from a user's custom object run while loading."""
    tb = e.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    # (h5py's compiled modules report paths like "h5py/h5g.pyx")
    return last is not None and "/h5py/" in "/" + last.tb_frame.f_code.co_filename.replace(os.sep, "/")


@contextlib.contextmanager
def _damaged_file_errors(where, what="file"):
    """Turns h5py's low-level errors on a damaged file into a ValueError naming it."""
    try:
        yield
    except (RuntimeError, OSError, KeyError, UnicodeDecodeError) as e:  # (h5py decodes damaged names too)
        if not _raised_by_h5py(e):
            raise
        raise ValueError(f"The {what} '{where}' is damaged: {type(e).__name__}: {e}") from e


def open_file(source, mode="r"):
    """Opens an HDF5 file for reading, with a `ValueError` naming the file
    when it is missing, truncated or not HDF5, and refuses files holding
    external links, soft links or virtual datasets."""
    h5py = h5_weights.require_h5py()
    where = _where(source)
    if isinstance(source, (str, os.PathLike)) and not os.path.exists(source):
        raise ValueError(f"File not found: filepath={where}.")
    try:
        f = h5py.File(source, mode)
    except (OSError, ValueError) as e:
        raise ValueError(f"The file '{where}' is not a valid HDF5 file (truncated or damaged?): {e}") from e
    try:
        with _damaged_file_errors(where):
            _check_links(f, f, where, h5py)
    except BaseException:
        f.close()
        raise
    return f


def _check_links(group, root, where, h5py, depth=0):
    if depth > 64:
        raise ValueError(f"The file '{where}' nests groups deeper than any Keras file ({group.name}).")
    for name in group:
        link = group.get(name, getlink=True)
        path = f"{group.name.rstrip('/')}/{name}"
        if isinstance(link, h5py.ExternalLink):
            raise ValueError(f"Refusing to load '{where}': '{path}' is an external link to "
                             f"'{link.filename}:{link.path}' (Keras files never contain links).")
        if isinstance(link, h5py.SoftLink):
            raise ValueError(f"Refusing to load '{where}': '{path}' is a soft link to '{link.path}' "
                             "(Keras files never contain links).")
        try:
            obj = group[name]
        except (KeyError, OSError) as e:
            raise ValueError(f"The file '{where}' is damaged: cannot read '{path}' ({e}).") from e
        if isinstance(obj, h5py.Group):
            _check_links(obj, root, where, h5py, depth + 1)
        elif isinstance(obj, h5py.Dataset) and obj.is_virtual:
            raise ValueError(f"Refusing to load '{where}': '{path}' is a virtual dataset (it reads other files).")


def _attr(obj, name, where, default=None):
    """An attribute as Python text / list, size-checked before reading."""
    if name not in obj.attrs:
        return default
    try:
        size = obj.attrs.get_id(name).get_storage_size()
    except (KeyError, OSError, RuntimeError):  # h5py raises RuntimeError for an empty attribute
        size = 0
    if size > _MAX_ATTR_BYTES:
        raise ValueError(f"The file '{where}' has an attribute '{name}' of {size} bytes on '{obj.name}'; "
                         "refusing to read it (no Keras file has one that large).")
    try:
        value = obj.attrs[name]
    except (OSError, TypeError, ValueError) as e:
        raise ValueError(f"The file '{where}' is damaged: cannot read attribute '{name}' of '{obj.name}' "
                         f"({e}).") from e
    try:
        return _decode(value)
    except UnicodeDecodeError as e:
        raise ValueError(f"The file '{where}' is damaged: attribute '{name}' of '{obj.name}' is not UTF-8 "
                         f"text ({e}).") from e


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [_decode(v) for v in value.tolist()]
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _list_attr(obj, name, where):
    """A list attribute, also when split into `name0`, `name1`, ..."""
    if name in obj.attrs:
        value = _attr(obj, name, where)
        return value if isinstance(value, list) else [value]
    out, i = [], 0
    while f"{name}{i}" in obj.attrs:
        out += _attr(obj, f"{name}{i}", where)
        i += 1
    return out if i else None


def _json_attr(f, name, where):
    text = _attr(f, name, where)
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"The file '{where}' has an invalid '{name}' attribute (not JSON): {e}") from e


def is_legacy_h5(source) -> bool:
    """Whether `source` is a Keras 2 HDF5 model or weights file (by its
    contents, not its name)."""
    h5py = h5_weights.require_h5py()
    try:
        f = h5py.File(source, "r")
    except (OSError, ValueError):  # not HDF5: the other loaders say what it is
        return False
    with f, _damaged_file_errors(_where(source)):  # an HDF5 file whose structure is damaged
        return "model_config" in f.attrs or "layer_names" in f.attrs or (
            "model_weights" in f and "layer_names" in f["model_weights"].attrs)


# ------------------------------------------------------------ weights order
def legacy_weights(layer) -> list:
    """A layer's weights in Keras 2's `layer.weights` order (see module doc)."""
    if _is_user_layer(layer):
        trainable, non_trainable = _keras2_split(layer)
        return _dedup(trainable + non_trainable)
    if getattr(layer, "trainable", True):
        return list(layer.trainable_weights) + list(layer.non_trainable_weights)
    return list(layer.weights)


def _is_user_layer(layer) -> bool:
    """A layer class written outside kerasish (a user's or a layer library's) holding sublayers."""
    return (not type(layer).__module__.startswith("kerasish.")
            and "_keras2_attr_order" in layer.__dict__ and bool(layer._layers))


def _dedup(weights) -> list:
    seen, out = set(), []
    for w in weights:
        if id(w) not in seen:
            seen.add(id(w))
            out.append(w)
    return out


def _keras2_children(layer) -> list:
    """The direct sublayers in tf.keras 2's order: by the attributes holding them in the order they were
    last set (`self.blocks = []` re-set in `build` moves behind the attributes set since), containers in
    item order; sublayers reached otherwise follow in kerasish's order."""
    from kerasish.layers.layer import Layer

    out, seen = [], set()

    def visit(value, depth=0):
        if isinstance(value, Layer):
            if id(value) not in seen and not getattr(value, "_is_metric", False):
                seen.add(id(value))
                out.append(value)
        elif isinstance(value, (list, tuple)) and depth < 32:
            for item in value:
                visit(item, depth + 1)
        elif isinstance(value, dict) and depth < 32:
            for item in value.values():
                visit(item, depth + 1)

    for name in layer.__dict__["_keras2_attr_order"]:
        try:
            value = getattr(layer, name)
        except AttributeError:
            continue
        visit(value)
    for child in layer._layers:
        visit(child)
    return out


def _keras2_split(layer):
    """(trainable, non-trainable) weights as tf.keras 2 lists them: the layer's own, then each
    sublayer's (Keras 2 order again for a user layer inside), sublayers in `_keras2_children` order;
    a frozen layer's are all non-trainable."""
    children = _keras2_children(layer)
    below = {id(w) for child in layer._layers for w in child.weights}
    own = [w for w in layer.weights if id(w) not in below]
    own_trainable = [w for w in own if w.requires_grad]
    own_frozen = [w for w in own if not w.requires_grad]
    trainable, non_trainable = list(own_trainable), list(own_frozen)
    for child in children:
        if _is_user_layer(child):
            t, n = _keras2_split(child)
        else:
            t, n = list(child.trainable_weights), list(child.non_trainable_weights)
        trainable += t
        non_trainable += n
    if not getattr(layer, "trainable", True):
        return [], _dedup(trainable + non_trainable)
    return _dedup(trainable), _dedup(non_trainable)


def _legacy_layers(model) -> list:
    from kerasish.layers.input_layer import InputLayer
    from kerasish.models.sequential import Sequential

    layers = list(model.layers)
    if isinstance(model, Sequential):  # Keras 2 Sequential.layers hides its InputLayer
        layers = [x for x in layers if not isinstance(x, InputLayer)]
    return layers


def _read_dataset(ds, expected_shape, where, what):
    """Reads a dataset after checking its dtype and that its shape is the
    expected one (nothing is allocated for a wrong or absurd shape)."""
    if ds.dtype.kind not in _NUMERIC_KINDS:
        raise ValueError(f"The file '{where}' stores {what} as {ds.dtype}, not a numeric array.")
    if tuple(ds.shape) != tuple(expected_shape):
        return None
    try:
        return ds[()]
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"The file '{where}' is damaged: cannot read {what} ({e}).") from e


def _weight_datasets(group, where):
    names = _list_attr(group, "weight_names", where) or []
    out = []
    for n in names:
        if n not in group:
            raise ValueError(f"The file '{where}' is damaged: '{group.name}' lists weight '{n}' but has no such "
                             "dataset.")
        out.append((n, group[n]))
    return out


@torch.no_grad()
def _assign(layer, weights, datasets, where, skip_mismatch):
    """Assigns `datasets` to `weights` (Keras order); returns the problems
    skipped under `skip_mismatch`, raises otherwise."""
    label = f"layer '{layer.name}' ({type(layer).__name__})"
    if len(weights) != len(datasets):
        msg = (f"{label} expects {len(weights)} weights, but the saved weights have {len(datasets)} elements "
               f"(file '{where}').")
        if skip_mismatch:
            return [msg]
        raise ValueError(f"Weight count mismatch for {msg}")
    from kerasish.saving import cudnn_weights

    # Keras 2 `CuDNNLSTM` / `CuDNNGRU` weights into LSTM / GRU layers, converted as Keras 2 does
    values = cudnn_weights.convert(layer, weights, datasets,
                                   lambda ds, shape, what: _read_dataset(ds, shape, where, f"{what} of {label}"))
    if values is not None:
        for w, value in zip(weights, values):
            w.assign(value)
        return []
    values = []
    for w, (name, ds) in zip(weights, datasets):
        shape = tuple(w.shape)
        value = _read_dataset(ds, shape, where, f"weight '{name}' of {label}")
        if value is None:
            msg = (f"{label}: weight '{name}' has shape {tuple(ds.shape)} in the file '{where}' but the model "
                   f"expects {shape}.")
            if skip_mismatch:
                return [msg]
            raise ValueError(f"Shape mismatch in {msg}")
        values.append(value)
    for w, value in zip(weights, values):
        w.assign(value)
    return []


def load_weights_from_group(model, group, where, by_name=False, skip_mismatch=False) -> list:
    """Loads a legacy `model_weights` group into `model`; returns skipped problems."""
    layer_names = _list_attr(group, "layer_names", where)
    if layer_names is None:
        raise ValueError(f"The file '{where}' is not a Keras 2 weights file: '{group.name}' has no `layer_names`.")
    file_layers = [(n, _weight_datasets(group[n], where)) for n in layer_names if n in group]
    problems = []
    if by_name:
        by = {}
        for layer in _legacy_layers(model):
            by.setdefault(layer.name, layer)
        for name, datasets in file_layers:
            layer = by.get(name)
            if layer is not None and datasets:
                problems += _assign(layer, legacy_weights(layer), datasets, where, skip_mismatch)
        return problems
    layers = [x for x in _legacy_layers(model) if legacy_weights(x)]
    file_layers = [(n, d) for n, d in file_layers if d]
    if len(layers) != len(file_layers):
        raise ValueError(
            f"Layer count mismatch when loading weights from file '{where}'. Model expects {len(layers)} layers "
            f"with weights ({[x.name for x in layers]}), but the file has {len(file_layers)} "
            f"({[n for n, _ in file_layers]})."
        )
    for layer, (_, datasets) in zip(layers, file_layers):
        problems += _assign(layer, legacy_weights(layer), datasets, where, skip_mismatch)
    if "top_level_model_weights" in group:
        top = _weight_datasets(group["top_level_model_weights"], where)
        if top:
            raise ValueError(f"The file '{where}' has top-level model weights, which kerasish models do not have.")
    return problems


def load_weights(model, filepath, by_name=False, skip_mismatch=False) -> None:
    """`model.load_weights("w.h5")` for a Keras 2 weights or full-model file."""
    where = _where(filepath)
    with open_file(filepath) as f, _damaged_file_errors(where, "Keras 2 weights file"):
        group = f["model_weights"] if "model_weights" in f and "layer_names" not in f.attrs else f
        try:
            problems = load_weights_from_group(model, group, where, by_name, skip_mismatch)
        except (KeyError, OSError, TypeError) as e:
            raise ValueError(f"The Keras 2 weights file '{where}' is damaged: {e}") from e
    for p in problems:
        warnings.warn(f"Skipping loading weights for {p}", stacklevel=3)


# ------------------------------------------------------------ full models
def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuilds, fills and (when it was compiled) compiles a model saved by
    tf.keras 2.x / Keras 2 with `model.save("m.h5")`."""
    from kerasish.saving import saving_lib
    from kerasish.saving import tf_op_mapping

    where = _where(filepath)
    with open_file(filepath) as f, _damaged_file_errors(where, "Keras 2 model file"):
        config = _json_attr(f, "model_config", where)
        if config is None:
            raise ValueError(f"No model config found in the file at '{where}': it holds weights only; build the "
                             "model in code and call `model.load_weights(...)`.")
        config = legacy_config.upgrade_model_config(config, _attr(f, "keras_version", where), custom_objects)
        removed = legacy_config.removed_layer_error(config, custom_objects)
        if removed is not None:
            raise removed
        objects = {"TFOpLambda": tf_op_mapping.TFOpLambda, "SlicingOpLambda": tf_op_mapping.SlicingOpLambda,
                   **(custom_objects or {})}
        model = saving_lib.model_from_config(config, objects, compile=False, safe_mode=safe_mode,
                                             where=f"{where}:model_config")
        if "model_weights" not in f:
            raise ValueError(f"The file '{where}' has a model config but no `model_weights` group.")
        try:
            problems = load_weights_from_group(model, f["model_weights"], where)
        except (KeyError, OSError, TypeError) as e:
            raise ValueError(f"The Keras 2 model file '{where}' is damaged: {e}") from e
        for p in problems:
            warnings.warn(p, stacklevel=2)
        training_config = _json_attr(f, "training_config", where) if compile else None
        if training_config is not None:  # without one the model loads uncompiled, as in Keras 2
            _compile(model, training_config, f, where, custom_objects)
    return model


def _compile(model, training_config, f, where, custom_objects):
    try:
        args = legacy_training_config.compile_args_from_training_config(
            training_config, custom_objects, output_names=getattr(model, "output_names", None))
        model.compile(**args)
    except (ValueError, TypeError, KeyError) as e:
        warnings.warn(f"The model from '{where}' loads uncompiled: its Keras 2 training configuration could not "
                      f"be restored ({e}).", stacklevel=3)
        return
    if "optimizer_weights" in f:
        _load_optimizer_weights(model, f["optimizer_weights"], training_config, where)


@torch.no_grad()
def _load_optimizer_weights(model, group, training_config, where):
    # tf.keras 2 saves a LossScaleOptimizer's inner optimizer state only (the scale starts again)
    opt = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    if not hasattr(opt, "_slot_names"):
        return
    params = list(model.trainable_weights)
    opt.build(params)
    datasets = _weight_datasets(group, where)
    if _is_optimizer_v2_subclass(opt):
        _load_optimizer_v2_weights(opt, datasets, where)
        return
    names = [n for n, _ in datasets]
    slots = list(opt._slot_names)
    n, k = len(params), len(slots)
    legacy = not (names and names[0].split("/")[-1].split(":")[0] == "iteration")
    # most legacy (OptimizerV2) optimizers make each slot for all weights in turn (m0, m1, ..., v0, v1, ...);
    # legacy Ftrl makes both slots of one weight before the next (accumulator0, linear0, accumulator1, ...)
    interleaved = legacy and _optimizer_class(training_config) in _LEGACY_INTERLEAVED_SLOTS
    lr_value = None
    if len(names) > 1 and names[1].split("/")[-1].split(":")[0] == "learning_rate":  # Keras 3 writes it second
        lr_value = _read_dataset(datasets[1][1], (), where, "optimizer learning rate")
        datasets = [datasets[0], *datasets[2:]]
    momentum_cache = None
    if (legacy and len(datasets) > 1 and datasets[1][0].split("/")[-1].split(":")[0] == "momentum_cache"
            and hasattr(opt, "schedule_decay")):
        # a legacy Nadam's running product of its momentum schedule (kerasish's legacy Nadam keeps it)
        momentum_cache = _read_dataset(datasets[1][1], (), where, "optimizer momentum_cache")
        datasets = [datasets[0], *datasets[2:]]
    extra = len(datasets) - 1 - n * k
    if datasets and legacy and extra == n and all(tuple(d.shape) == (1,) for _, d in datasets[-n:]):
        datasets, extra = datasets[:-n], 0  # multi-backend Keras Adam's unused `vhat`s
    if (not legacy and k == 0 and extra == n and n and _is_plain_sgd(opt)
            and all(tuple(d.shape) == tuple(p.shape) for (_, d), p in zip(datasets[1:], params))):
        datasets, extra = datasets[:1], 0  # tf.keras 2.11+'s SGD keeps a momentum `m` even at momentum=0, unused
    if len(datasets) == 1 and not legacy and _read_dataset(datasets[0][1], (), where, "optimizer iterations") == 0:
        return  # compiled, never trained (tf.keras 2 writes only `iteration` = 0): the fresh state is the file's
    if not datasets or extra != 0:
        warnings.warn(
            f"Skipping loading optimizer weights from '{where}': the optimizer '{opt.name}' has {n * k + 1} "
            f"state variables for {n} trainable weights, the file has {len(datasets)}. The optimizer starts "
            "fresh.", stacklevel=4)
        return
    values = []
    for j, p in enumerate(params):
        for s, slot in enumerate(slots):
            i = 1 + (s * n + j if legacy and not interleaved else j * k + s)
            name, ds = datasets[i]
            value = _read_dataset(ds, tuple(p.shape), where, f"optimizer weight '{name}'")
            if value is None:
                warnings.warn(f"Skipping loading optimizer weights from '{where}': '{name}' has shape "
                              f"{tuple(ds.shape)}, the weight it belongs to {tuple(p.shape)}.", stacklevel=4)
                return
            values.append((opt.state[p][slot], value))
    iterations = _read_dataset(datasets[0][1], (), where, "optimizer iterations")
    for target, value in values:
        target.copy_(torch.as_tensor(value, dtype=target.dtype))
    if iterations is not None:
        opt.iterations = int(iterations)
    if momentum_cache is not None:
        opt._u_product.fill_(float(momentum_cache))
    if lr_value is not None and getattr(opt, "_schedule", None) is None:
        opt.learning_rate = float(lr_value)


# ------------------------------------------------------------------ writing
def _write_list_attr(group, name, items):
    data = [x.encode("utf8") if isinstance(x, str) else x for x in items]
    if any(len(x) > _HEADER_LIMIT for x in data):
        raise ValueError(f"Cannot save: a name in '{name}' is longer than {_HEADER_LIMIT} bytes.")
    arr = np.asarray(data) if data else np.asarray([], dtype="S1")
    chunks = 1
    parts = np.array_split(arr, chunks)
    while any(p.nbytes > _HEADER_LIMIT for p in parts):
        chunks += 1
        parts = np.array_split(arr, chunks)
    if chunks > 1:
        for i, part in enumerate(parts):
            group.attrs[f"{name}{i}"] = part
    else:
        group.attrs[name] = arr


def _weight_name(layer, w, seen):
    path = getattr(w, "path", None) or f"{layer.name}/{getattr(w, 'name', 'weight')}"
    name = f"{path}:0"
    i = 0
    while name in seen:
        i += 1
        name = f"{path}_{i}:0"
    seen.add(name)
    return name


def _write_weights_group(group, weights_with_names):
    _write_list_attr(group, "weight_names", [n for n, _ in weights_with_names])
    for name, value in weights_with_names:
        group.create_dataset(name, data=value)


def save_weights_to_group(model, group) -> None:
    import kerasish

    layers = _legacy_layers(model)
    _write_list_attr(group, "layer_names", [x.name for x in layers])
    group.attrs["backend"] = b"torch"
    group.attrs["keras_version"] = LEGACY_KERAS_VERSION.encode()
    group.attrs["kerasish_version"] = str(getattr(kerasish, "__version__", "unknown")).encode()
    for layer in sorted(layers, key=lambda x: x.name):
        seen = set()
        pairs = [(_weight_name(layer, w, seen), _numpy(w)) for w in legacy_weights(layer)]
        _write_weights_group(group.create_group(layer.name), pairs)
    _write_weights_group(group.create_group("top_level_model_weights"), [])


def _numpy(w):
    t = w.value if hasattr(w, "value") and isinstance(w.value, torch.Tensor) else w
    return t.detach().cpu().numpy()


def save_weights(model, filepath) -> None:
    """Writes `model`'s weights in Keras 2's weights-only HDF5 layout, atomically."""
    from kerasish.saving import saving_lib

    h5py = h5_weights.require_h5py()
    with saving_lib.atomic_path(os.fspath(filepath)) as tmp, h5py.File(tmp, "w") as f:
        save_weights_to_group(model, f)


def model_config_for_keras2(model) -> dict:
    """`{"class_name", "config"}` of `model` in the Keras 2 dialect."""
    from kerasish.saving import saving_lib

    serialized = saving_lib.serialize_model(model)
    return legacy_config.downgrade_model_config(
        {"class_name": serialized["class_name"], "config": serialized["config"]}, getattr(model, "name", "model"),
        auto_masks=_propagated_mask_nodes(model))


def _propagated_mask_nodes(model, out=None) -> set:
    """`(model name, layer name, node position in the config)` of the calls in `model` (and the
    functional models inside) whose `mask=` argument is just the mask their inputs carry, which
    the symbolic call filled in: Keras 2 propagates those masks itself, so the Keras 2 config
    leaves them (and the mask op nodes only they use) out."""
    from kerasish.backend.keras_tensor import KerasTensor
    from kerasish.models.functional import Functional
    from kerasish.utils import tree

    out = set() if out is None else out
    own = getattr(model, "_nodes", None)
    if own is None:
        return out
    from kerasish.models import graph

    for op in getattr(model, "_operations", ()):
        position = 0
        for i, node in enumerate(op._inbound_nodes):
            if graph.node_key(op, i) not in own or not node.input_tensors:
                continue
            if "mask" in node.call_kwargs and node.call_args:
                tensors = tree.flatten(node.call_args[0])
                masks = tree.flatten(node.call_kwargs["mask"])
                if len(tensors) == len(masks) and all(
                    isinstance(t, KerasTensor) and m is t.__dict__.get("_keras_mask")
                    for t, m in zip(tensors, masks)
                ):
                    out.add((model.name, op.name, position))
            position += 1
        if isinstance(op, Functional):
            _propagated_mask_nodes(op, out)
    return out


def save_model(model, filepath, include_optimizer=True) -> None:
    """Writes `model` as a Keras 2 full-model HDF5 file (config, weights,
    training config and optimizer state), atomically."""
    import kerasish
    from kerasish.saving import saving_lib

    h5py = h5_weights.require_h5py()
    if not getattr(model, "built", True):
        raise ValueError("You are saving a model that has not yet been built. Build it first by calling it on "
                         "some data or by using `build()`.")
    config_json = json.dumps(model_config_for_keras2(model), default=saving_lib._json_default)
    training = legacy_training_config.training_config_from_model(model) if include_optimizer else None
    with saving_lib.atomic_path(os.fspath(filepath)) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["keras_version"] = LEGACY_KERAS_VERSION.encode()
        f.attrs["kerasish_version"] = str(getattr(kerasish, "__version__", "unknown")).encode()
        f.attrs["backend"] = b"torch"
        f.attrs["model_config"] = config_json.encode("utf8")
        save_weights_to_group(model, f.create_group("model_weights"))
        if training is not None:
            f.attrs["training_config"] = json.dumps(training, default=saving_lib._json_default).encode("utf8")
            _save_optimizer_weights(model, f)


_LEGACY_INTERLEAVED_SLOTS = {"Ftrl"}


def _optimizer_class(training_config) -> str:
    opt = training_config.get("optimizer_config") if isinstance(training_config, dict) else None
    return str(opt.get("class_name", "")).split(">", 1)[-1] if isinstance(opt, dict) else ""


def _is_optimizer_v2_subclass(opt) -> bool:
    from kerasish.optimizers.legacy_base import Optimizer as OptimizerV2

    return isinstance(opt, OptimizerV2)


@torch.no_grad()
def _load_optimizer_v2_weights(opt, datasets, where):
    """A user's tf.keras 2 `OptimizerV2` subclass: tf.keras 2 wrote its `weights` (the iteration count, then
    the slots in the order its `_create_slots` made them) and reads them back by position, as here."""
    weights = opt.weights
    values = []
    for w, (name, ds) in zip(weights, datasets):
        value = _read_dataset(ds, tuple(w.shape), where, f"optimizer weight '{name}'")
        if value is None:
            break
        values.append(value)
    if len(datasets) != len(weights) or len(values) != len(weights):
        warnings.warn(
            f"Skipping loading optimizer weights from '{where}': the optimizer '{opt.name}' has {len(weights)} "
            f"weights of shapes {[tuple(w.shape) for w in weights]}, the file has {len(datasets)} of shapes "
            f"{[tuple(ds.shape) for _, ds in datasets]}. The optimizer starts fresh.", stacklevel=5)
        return
    opt.set_weights(values)


def _save_optimizer_weights(model, f):
    opt = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # tf.keras 2's LossScaleOptimizer layout
    if _is_optimizer_v2_subclass(opt):
        if getattr(opt, "built", False):  # tf.keras 2's names for a fit-made optimizer: `iter`, `<path>/<slot>`
            _write_weights_group(f.create_group("optimizer_weights"),
                                 [(f"{w.name}:0", w.detach().cpu().numpy()) for w in opt.weights])
        return
    if not getattr(opt, "built", False) or not hasattr(opt, "_slot_names"):
        return
    params = list(model.trainable_weights)
    prefix = type(opt).__name__
    if any(p not in opt.state or slot not in opt.state[p] for p in params for slot in opt._slot_names):
        return
    from kerasish.optimizers import legacy as legacy_optimizers

    is_legacy = isinstance(opt, legacy_optimizers.ALL_OBJECTS)
    legacy_slots = (_LEGACY_SLOT_NAMES_OF_LEGACY if is_legacy else _LEGACY_SLOT_NAMES).get(prefix, {})
    if (is_legacy or getattr(opt, "decay", 0)) and all(slot in legacy_slots for slot in opt._slot_names):
        # The training config names a tf.keras 2 *legacy* optimizer (`keras.optimizers.legacy`, or one
        # given `decay`, which only they took): its `set_weights` wants `<Name>/iter:0` (Nadam: then its
        # `momentum_cache`), then each slot for every weight in turn (all m, then all v; Ftrl: both
        # slots of one weight before the next)
        state = [(f"{prefix}/iter:0", np.asarray(int(opt.iterations), dtype=np.int64))]
        if is_legacy and hasattr(opt, "schedule_decay"):
            # in the product's dtype, as tf.keras 2 made it (the first weight's); bfloat16, which HDF5
            # has no type for, as float32
            cache_dtype = {torch.float64: np.float64, torch.float16: np.float16}.get(opt._u_product.dtype, np.float32)
            state.append((f"{prefix}/momentum_cache:0", np.asarray(float(opt._u_product), dtype=cache_dtype)))
        order = ([(slot, p) for p in params for slot in opt._slot_names] if prefix in _LEGACY_INTERLEAVED_SLOTS
                 else [(slot, p) for slot in opt._slot_names for p in params])
        for slot, p in order:
            path = getattr(p, "path", "var")
            state.append((f"{prefix}/{path}/{legacy_slots[slot]}:0", opt.state[p][slot].detach().cpu().numpy()))
    else:  # tf.keras 2.11+'s optimizers: `iteration:0`, then every slot of each weight
        state = [("iteration:0", np.asarray(int(opt.iterations), dtype=np.int64))]
        for p in params:
            for slot in opt._slot_names:
                path = getattr(p, "path", "var")
                state.append((f"{prefix}/{slot}/{path}:0", opt.state[p][slot].detach().cpu().numpy()))
            if _is_plain_sgd(opt):  # tf.keras 2.11+'s SGD has its (unused) momentum `m` at momentum=0 too
                state.append((f"{prefix}/m/{getattr(p, 'path', 'var')}:0", np.zeros(tuple(p.shape), np.float32)))
    _write_weights_group(f.create_group("optimizer_weights"), state)


def _is_plain_sgd(opt) -> bool:
    """An SGD without momentum (kerasish and Keras 3 make no slot for it; tf.keras 2.11+ makes `m`)."""
    from kerasish.optimizers import SGD

    return isinstance(opt, SGD) and not opt._slot_names


# tf.keras 2's legacy (OptimizerV2) slot names for kerasish's slots; its `_create_slots` makes them
# in kerasish's `_slot_names` order. Nadam (its `momentum_cache` weight) and Ftrl are not here: their
# legacy layouts hold more than the slots, so they are written in the 2.11+ layout (tf.keras then
# warns and starts that optimizer fresh).
_LEGACY_SLOT_NAMES = {
    "SGD": {"momentum": "momentum"},
    "Adam": {"momentum": "m", "velocity": "v", "velocity_hat": "vhat"},
    "Adamax": {"momentum": "m", "norm": "v"},
    "Adagrad": {"accumulator": "accumulator"},
    "Adadelta": {"accumulated_grad": "accum_grad", "accumulated_delta_var": "accum_var"},
    "RMSprop": {"velocity": "rms", "momentum": "momentum", "average_gradient": "mg"},
}
# ... and for `keras.optimizers.legacy`'s optimizers, whose files hold their whole legacy state
_LEGACY_SLOT_NAMES_OF_LEGACY = {
    **_LEGACY_SLOT_NAMES,
    "Nadam": {"momentum": "m", "velocity": "v"},
    "Ftrl": {"accumulator": "accumulator", "linear": "linear"},
}
