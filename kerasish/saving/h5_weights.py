"""Keras 3 weight files (`.weights.h5`, and `model.weights.h5` inside `.keras`).

Layout, as Keras 3's `saving_lib` writes it: every saveable object (layer,
model, optimizer) found by walking the object tree gets a group
`<path>/vars` (attribute `name` = the object's name) whose datasets `"0"`,
`"1"`, ... are its *own* variables, trainable first, then non-trainable, in
creation order. The walk (Keras's `_walk_saveable`):

- a Functional or Sequential model first lists `layers` (a container); any
  model lists it again among its attributes (names are uniquified over all
  items, including those already written elsewhere);
- then the object's attributes in sorted order, private (`_x`) ones last: a
  sublayer attribute `proj` becomes `<path>/proj`; a list, tuple or dict of
  layers becomes `<path>/<attr>/<snake_case class name, uniquified>`
  (`dense`, `dense_1`; nested containers `container`, `container_1`);
- a model's optimizer goes to `optimizer/vars`; an optimizer held in any
  other attribute of a layer or model goes to `<path>/<attr>/vars`;
- an object reached twice is written once, at its first path.

kerasish layers mirror Keras's attribute names for their sublayers; where a
layer names them differently, `_KERAS_ATTR_NAMES` maps them.

h5py is an optional dependency, imported on first use.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kerasish.utils import naming
from kerasish.variables import forget_autocast_casts

_H5PY_HELP = (
    "Saving or loading Keras weight files (`.weights.h5`, `.keras`) requires h5py, "
    "an optional dependency of kerasish. Install it with `pip install h5py`."
)

# kerasish attribute name -> Keras 3 attribute name, for layers whose
# sublayers Keras keeps under other (often private) attributes.
_KERAS_ATTR_NAMES = {
    "MultiHeadAttention": {
        # Keras keeps `_query_dense`... and exposes `query_dense`... as
        # properties; its walk reaches the public names first.
        "query": "query_dense",
        "key": "key_dense",
        "value": "value_dense",
        "attention_output": "output_dense",
    },
}

# Internal kerasish attributes that may hold layers but are not state
# (constructor arguments kept for the auto-config, graph bookkeeping).
_SKIP_ATTRS = frozenset(
    {
        "_init_call_args",
        "_inbound_nodes",
        "_outbound_nodes",
        "_compile_config",
        "_operations",
        "_nodes",
        "_nodes_by_depth",
        "_seq_layers",
        "_call_layers",
        "_layers",
        "_aux",
        "_steps",
        "_inputs",
        "_outputs",
        "_inputs_struct",
        "_outputs_struct",
        "_train_vars",
        "_loss_sources",
    }
) | frozenset(nn.Module().__dict__)


def require_h5py():
    """Imports h5py, or raises an ImportError saying how to install it."""
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(_H5PY_HELP) from e
    return h5py


# ------------------------------------------------------------------ traversal
def _name_key(name: str) -> str:
    """Private attributes are visited last, as Keras does."""
    return f"~{name}" if name.startswith("_") else name


def _is_saveable(obj) -> bool:
    if isinstance(obj, nn.Module):
        if getattr(obj, "_is_metric", False):
            return False
        return not isinstance(obj, (nn.ModuleList, nn.ModuleDict)) and not _is_plain_sequential(obj)
    return hasattr(obj, "save_own_variables") and hasattr(obj, "load_own_variables")


def _is_plain_sequential(obj) -> bool:
    return type(obj) is nn.Sequential


def _as_container(obj):
    """The items of a list-like child (a Python list/tuple/dict, or a torch
    ModuleList / ModuleDict / plain nn.Sequential), else None."""
    if isinstance(obj, (nn.ModuleDict, dict)):
        return list(obj.values())
    if isinstance(obj, (nn.ModuleList, list, tuple)) or _is_plain_sequential(obj):
        return list(obj)
    return None


def _holds_saveable(items, depth=0) -> bool:
    for item in items:
        if _is_saveable(item) and isinstance(item, nn.Module):
            return True
        inner = _as_container(item) if depth < 4 and not isinstance(item, nn.Module) else None
        if inner and _holds_saveable(inner, depth + 1):
            return True
    return False


def walk_children(obj):
    """(attribute, child) pairs of `obj` in Keras's order; children are
    saveables or containers (lists) of them."""
    from kerasish.layers.layer import Layer

    out = []
    graph_model = hasattr(type(obj), "layers") and (hasattr(obj, "_nodes_by_depth") or hasattr(obj, "_seq_layers"))
    if graph_model:
        out.append(("layers", list(obj.layers)))
    if not isinstance(obj, nn.Module) or getattr(obj, "_saves_own_subtree", False):
        return out  # e.g. TorchModuleWrapper: its state_dict is its whole subtree
    renames = {}
    for klass in type(obj).__mro__:
        renames.update(_KERAS_ATTR_NAMES.get(klass.__name__, {}))
    children = {}
    for key, module in obj._modules.items():
        if module is None or getattr(module, "_is_metric", False):
            continue
        children[renames.get(key, key)] = module
    if not graph_model:
        for key, value in obj.__dict__.items():
            if key in children or key in _SKIP_ATTRS or isinstance(value, nn.Module):
                continue
            items = _as_container(value) if isinstance(value, (list, tuple, dict)) else None
            if items and _holds_saveable(items):
                children[key] = value
    if hasattr(type(obj), "layers") and "layers" not in children:
        # a Model's `layers` is a public attribute for Keras's walk too: in a
        # subclassed model it names the sublayers not reached before "layers"
        children["layers"] = list(obj.layers)
    if isinstance(obj, Layer):
        opt = obj.__dict__.get("_optimizer")
        if opt is not None and hasattr(opt, "save_own_variables"):
            children["optimizer"] = opt
        for key, value in obj.__dict__.items():
            # an optimizer held in an attribute (a GAN's `d_optimizer`, a layer's own optimizer): Keras's
            # walk visits every attribute, and saves such an optimizer's state under the attribute's name
            if (key not in children and key != "_optimizer" and key not in _SKIP_ATTRS
                    and not isinstance(value, nn.Module) and _is_saveable(value)):
                children[key] = value
    for key in sorted(children, key=_name_key):
        out.append((key, children[key]))
    return out


def _unique(name: str, used: dict) -> str:
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def iter_saveables(root):
    """Yields `(path, obj)` for every saveable reachable from `root`, each
    object once at its first path (Keras's traversal; `""` is the root)."""
    visited: set[int] = set()

    def visit(obj, path):
        if id(obj) in visited:
            return
        visited.add(id(obj))
        yield path, obj
        for attr, child in walk_children(obj):
            child_path = _join(path, attr)
            if _is_saveable(child):
                yield from visit(child, child_path)
            else:
                items = _as_container(child)
                if items is not None:
                    yield from visit_container(items, child_path, set())

    def visit_container(items, path, seen_containers):
        used: dict[str, int] = {}
        for item in items:
            if _is_saveable(item):
                name = _unique(naming.to_snake_case(type(item).__name__), used)
                yield from visit(item, _join(path, name))
            else:
                inner = _as_container(item)
                if inner is not None and id(item) not in seen_containers:
                    seen_containers.add(id(item))
                    name = _unique("container", used)
                    yield from visit_container(inner, _join(path, name), seen_containers)

    yield from visit(root, "")


def own_variables(obj) -> list:
    """The variables `obj` stores in its own `vars` group, in Keras's order
    (trainable, then non-trainable, each in creation order)."""
    if isinstance(obj, nn.Module):
        params = [p for p in obj._parameters.values() if p is not None]
        skip = obj._non_persistent_buffers_set
        bufs = [b for k, b in obj._buffers.items() if b is not None and k not in skip]
        return params + bufs
    return []


def _object_name(obj):
    name = getattr(obj, "name", None)
    return name if isinstance(name, str) else None


# ----------------------------------------------------------------- writing
class _WriteStore:
    """`store[str(i)] = array` for one object's `vars` group; the group is
    created up front when the object has a name (as Keras does), otherwise
    on the first write."""

    def __init__(self, h5file, path, name):
        self._file = h5file
        self._path = path
        self._group = None
        if name is not None:
            self._make_group().attrs["name"] = name

    def _make_group(self):
        if self._group is None:
            where = self._file.create_group(self._path) if self._path else self._file
            self._group = where.create_group("vars")
        return self._group

    def __setitem__(self, key, value):
        array = _to_numpy(value)
        group = self._make_group()
        if isinstance(array, tuple):  # bfloat16, tagged as Keras tags it
            ds = group.create_dataset(key, data=array[0])
            ds.attrs["dtype"] = "bfloat16"
        else:
            group[key] = array


def _to_numpy(value):
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.dtype == torch.bfloat16:
            # raw 2-byte values, as Keras writes ml_dtypes.bfloat16 (opaque "V2")
            return (t.cpu().contiguous().view(torch.int16).numpy().view("V2"),)
        return t.cpu().numpy()
    array = np.asarray(value)
    if array.dtype.name == "bfloat16" and array.dtype.itemsize == 2:
        # an ml_dtypes.bfloat16 array (what a bfloat16 Variable's `numpy()` gives): the same raw, tagged bits;
        # h5py alone would store it untagged, and it would read back as opaque bytes
        return (array.view("V2"),)
    return array


def write_weights(root, h5file, make_store=None) -> None:
    """Writes the state of `root` and everything below it into an open,
    writable h5py File in Keras 3's layout (or into the stores that
    `make_store(path, name)` makes: the sharded writer's)."""
    from kerasish.layers.layer import Layer

    if make_store is None:
        def make_store(path, name):
            return _WriteStore(h5file, path, name)

    for path, obj in iter_saveables(root):
        if isinstance(obj, nn.Module) and not isinstance(obj, Layer) and not own_variables(obj):
            continue  # a plain torch container: Keras would not know it
        store = make_store(path, _object_name(obj))
        if _own_hook(obj, "save_own_variables"):  # optimizers, custom layers
            obj.save_own_variables(store)
            continue
        for i, v in enumerate(_values_to_save(obj)):
            store[str(i)] = v


def _own_hook(obj, name: str) -> bool:
    """Whether `obj` saves/loads itself through `name`: an optimizer, or a
    layer overriding Layer's default hook (the default is the plain path
    below, checked and loaded atomically)."""
    from kerasish.layers.layer import Layer

    if not hasattr(obj, name):
        return False
    return not isinstance(obj, Layer) or getattr(type(obj), name) is not getattr(Layer, name)


def _values_to_save(obj) -> list:
    """What `obj` writes in its `vars` group: a layer whose Keras file order
    (or values) differs from its variables' (a quantized or LoRA layer)
    says so through `_keras_saved_variables`."""
    hook = getattr(obj, "_keras_saved_variables", None)
    values = hook() if hook is not None else None
    return own_variables(obj) if values is None else values


def _variables_to_load(obj) -> list:
    hook = getattr(obj, "_keras_loaded_variables", None)
    values = hook() if hook is not None else None
    return own_variables(obj) if values is None else values


# ----------------------------------------------------------------- reading
def _safe_group(h5py, parent, path):
    """The group at `path`, refusing links to other files and non-groups."""
    current = parent
    for part in path.split("/"):
        if not part or part == "..":
            raise ValueError(f"Invalid path in H5 weights file: '{path}'")
        if part not in current:
            return None
        kind = current.get(part, getclass=True, getlink=True)
        if kind in (h5py.ExternalLink, h5py.SoftLink):
            raise ValueError(f"Not allowed: H5 weights file with a {kind.__name__} at '{path}'")
        current = current[part]
        if not isinstance(current, h5py.Group):
            raise ValueError(f"Invalid H5 weights file: expected a group at '{path}', found {type(current).__name__}")
    return current


class _ReadStore:
    """Read view of one object's `vars` group: `keys()`, `len()`, `store["0"]`
    (a NumPy array). Links, external and virtual datasets are refused."""

    def __init__(self, h5py, group, path, keras_version=None):
        self._h5py = h5py
        self._group = group
        self.path = path
        # the Keras release that wrote the file ((3, 9, 2)), from a `.keras`
        # archive's metadata.json; None for a bare `.weights.h5`
        self.keras_version = keras_version

    def keys(self):
        return list(self._group.keys()) if self._group is not None else []

    def __len__(self):
        return len(self.keys())

    def __contains__(self, key):
        return self._group is not None and key in self._group

    def _dataset(self, key):
        h5py = self._h5py
        if self._group is None or key not in self._group:
            raise KeyError(key)
        kind = self._group.get(key, getclass=True, getlink=True)
        if kind in (h5py.ExternalLink, h5py.SoftLink):
            raise ValueError(f"Not allowed: H5 weights file with a {kind.__name__} at '{self.path}/vars/{key}'")
        ds = self._group[key]
        if not isinstance(ds, h5py.Dataset):
            raise ValueError(f"Invalid H5 weights file: '{self.path}/vars/{key}' is not a dataset")
        if ds.external or ds.is_virtual:
            raise ValueError(
                f"Not allowed: H5 weights file with an external or virtual dataset at '{self.path}/vars/{key}'"
            )
        return ds

    def shape(self, key) -> tuple:
        """The stored shape, read without loading the data."""
        return tuple(self._dataset(key).shape)

    def __getitem__(self, key):
        ds = self._dataset(key)
        try:
            value = ds[()]
        except Exception as e:
            raise ValueError(f"Could not read '{self.path}/vars/{key}' from the H5 weights file: {e}") from e
        value = np.asarray(value)
        if ds.attrs.get("dtype") == "bfloat16" and value.dtype.itemsize == 2 and value.dtype.kind not in "fiu":
            # written by Keras with ml_dtypes: reinterpret the raw bits
            value = torch.from_numpy(value.view(np.int16).copy()).view(torch.bfloat16)
        return value


class _TfKerasOptimizerStore:
    """A tf-keras 2.13+ `.keras` archive's optimizer `vars` seen in Keras 3's layout.

    tf-keras writes `iteration`, then its slots in the order its `build` made them (see
    `_TF_KERAS_SLOT_BLOCKS`), and no `learning_rate` (that lives in the compile config); Keras 3 (and
    kerasish) keep `iteration`, `learning_rate`, then the slots in their own order. `order[i]` is the
    file key of kerasish variable `i`, or None for the learning rate (the optimizer's own value)."""

    def __init__(self, store, order, learning_rate):
        self._store, self._order, self._lr = store, order, learning_rate
        self.path = getattr(store, "path", "")
        self.keras_version = getattr(store, "keras_version", None)

    def keys(self):
        return [str(i) for i in range(len(self._order))]

    def __len__(self):
        return len(self._order)

    def __contains__(self, key):
        return key in self.keys()

    def shape(self, key) -> tuple:
        source = self._order[int(key)]
        return () if source is None else self._store.shape(source)

    def __getitem__(self, key):
        source = self._order[int(key)]
        return np.asarray(self._lr, dtype=np.float32) if source is None else self._store[source]


def _interleaved(slots):
    return [list(slots)]


# tf-keras 2.11+'s optimizers' `build`, per class: blocks of kerasish slot names; each block is made
# for every weight in turn with its slots interleaved (Adam: m0, v0, m1, v1, ..., then vhat0, vhat1, ...;
# RMSprop: every velocity, then every momentum, then every average gradient). tf-keras's SGD makes
# its `m` even at momentum=0 (kerasish then has no slot: the file's are unused zeros).
_TF_KERAS_SLOT_BLOCKS = {
    "SGD": _interleaved, "Adamax": _interleaved, "Adagrad": _interleaved, "Adadelta": _interleaved,
    "Ftrl": _interleaved, "Nadam": _interleaved, "Lion": _interleaved,
    "Adam": lambda slots: [[s for s in slots if s != "velocity_hat"]] + [["velocity_hat"]] * ("velocity_hat" in slots),
    "AdamW": lambda slots: [[s for s in slots if s != "velocity_hat"]] + [["velocity_hat"]] * ("velocity_hat" in slots),
    "RMSprop": lambda slots: [[s] for s in slots],
}


def _tf_keras_optimizer_store(opt, store, tf_keras_file=False):
    """`store` unchanged unless it is a tf-keras (Keras 2) file's state of an optimizer class tf-keras
    has, holding one `iteration` and exactly the slots that class makes (see `_TfKerasOptimizerStore`);
    any other layout is left to the optimizer, which skips it with a warning. A `.keras` archive says
    who wrote it (metadata.json); a bare `.weights.h5` does not, and `tf_keras_file` (see
    `_written_by_tf_keras`) stands for it."""
    version = getattr(store, "keras_version", None)
    if version is None and tf_keras_file:
        version = (2,)
    blocks_of = _TF_KERAS_SLOT_BLOCKS.get(type(opt).__name__)
    slots = list(getattr(opt, "_slot_names", ()) or ())
    params = list(getattr(opt, "_trainable_variables", ()) or ())
    if version is None or version >= (3,) or blocks_of is None or not params or not getattr(opt, "built", False):
        return store
    n = len(params)
    if not slots and type(opt).__name__ == "SGD" and len(store) == 1 + n:
        blocks = []  # plain SGD: only the step count matters (the file's `m`s are zeros)
    else:
        blocks = blocks_of(slots)
        if len(store) != 1 + n * len(slots) or any(slot not in opt.state[p] for p in params for slot in slots):
            return store
    key_of, i = {}, 1
    for block in blocks:
        for j in range(n):
            for slot in block:
                key_of[j, slot] = str(i)
                i += 1
    order = ["0"]
    if getattr(opt, "_schedule", None) is None:
        order.append(None)
    for group in getattr(opt, "_slot_groups", None) or (slots,):
        for j, p in enumerate(params):
            order += [key_of[j, slot] for slot in group if slot in opt.state[p]]
    if len(order) != len(opt.variables):  # EMA averages, accumulators, ...: not a layout this knows
        return store
    return _TfKerasOptimizerStore(store, order, opt._current_lr() if getattr(opt, "_schedule", None) is None
                                  else None)


def _written_by_tf_keras(h5py, h5file, keras_version) -> bool:
    """A bare `.weights.h5` (no archive metadata) written by tf-keras 2.13+'s `save_weights`: its root
    holds a `metrics` group (the compiled model's metrics, the loss tracker `mean` first), which no Keras 3
    release writes (checked on the files of Keras 3.0.5 to 3.15.1), and its `vars` groups carry no `name`
    attribute (Keras 3.6+ writes one). Its optimizer's `vars` then hold tf-keras's layout."""
    if keras_version is not None:
        return False
    if h5file.get("metrics", getclass=True, getlink=True) is not h5py.HardLink:
        return False
    if not isinstance(h5file["metrics"], h5py.Group):
        return False
    root_vars = h5file.get("vars", getclass=True, getlink=True)
    return not (root_vars is h5py.HardLink and "name" in h5file["vars"].attrs)


def _store_for(h5py, h5file, path, keras_version=None):
    group = h5file if not path else _safe_group(h5py, h5file, path)
    vars_group = None
    if group is not None and "vars" in group:
        vars_group = _safe_group(h5py, group, "vars")
    return _ReadStore(h5py, vars_group, path or "/", keras_version)


def parse_keras_version(text):
    """`"3.9.2"` -> `(3, 9, 2)` (pre-release tails ignored); None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    parts = []
    for piece in text.split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) if parts else None


def _describe(obj, path) -> str:
    name = _object_name(obj)
    what = f"{type(obj).__name__} '{name}'" if name else type(obj).__name__
    return f"{what} (at '{path or '/'}' in the file)"


def _plan_assignments(obj, store, path):
    """Checks `store` against `obj`'s own variables; returns the (variable,
    value) pairs or raises ValueError naming the layer and the shapes."""
    targets = _variables_to_load(obj)
    keys = store.keys()
    if len(keys) != len(targets):
        if not targets and not getattr(obj, "built", True):
            raise ValueError(
                f"{_describe(obj, path)} was never built and thus has no variables, but the weights file "
                f"lists {len(keys)} variables for it. Build the model (call it on data or `build(input_shape)`) "
                "before loading weights."
            )
        raise ValueError(
            f"{_describe(obj, path)} expected {len(targets)} variables, but received {len(keys)} variables "
            f"during loading. Expected: {[(_var_name(v), tuple(v.shape)) for v in targets]}; received shapes: "
            f"{[store.shape(k) for k in sorted(keys, key=_int_key)]}"
        )
    pairs = []
    for i, target in enumerate(targets):
        if str(i) not in store:
            raise ValueError(f"{_describe(obj, path)}: the weights file has no variable '{i}' (has {sorted(keys)})")
        stored = store.shape(str(i))
        if stored != tuple(target.shape):
            raise ValueError(
                f"{_describe(obj, path)}: variable '{_var_name(target)}' has shape {tuple(target.shape)}, "
                f"but the weights file holds shape {stored}."
            )
        pairs.append((target, store[str(i)]))
    return pairs


def _int_key(k):
    return (0, int(k)) if str(k).isdigit() else (1, str(k))


def _var_name(v) -> str:
    return str(getattr(v, "name", None) or "variable")


def read_weights(root, h5file, skip_mismatch=False, keras_version=None, store_for=None,
                 build_optimizer=False) -> list[str]:
    """Loads the state of `root` from an open h5py File in Keras 3's layout.

    `keras_version` (a tuple, from the archive's metadata.json) is the release
    that wrote the file, for objects whose layout changed between releases
    (Nadam's variables before Keras 3.10). `store_for(h5py, h5file, path,
    keras_version)` replaces the one-file lookup of an object's `vars`
    (sharded weight files). `build_optimizer`: build a compiled model's
    unbuilt optimizer so that the file's slots load, as Keras's
    `compile_from_config` does under `load_model` only; `load_weights` into a
    model that has not trained yet leaves the optimizer unbuilt, and its state
    is skipped with Keras's warning (tf.keras 2 and Keras 3 both).

    All layer variables are checked before any is assigned, so a file that
    does not match leaves the model unchanged. Returns the warnings (skipped
    objects) when `skip_mismatch=True`; otherwise a mismatch is a ValueError.
    """
    h5py = require_h5py()
    if "layer_names" in h5file.attrs or "model_weights" in h5file:
        raise ValueError(
            "This is a legacy Keras 2 HDF5 weights file (`layer_names`, `model_weights`); only the Keras 3 "
            "`.weights.h5` layout is supported. Re-save it with Keras 3 (`model.save_weights('x.weights.h5')`)."
        )
    assignments = []
    hooks = []
    errors = []
    tf_keras_file = store_for is None and _written_by_tf_keras(h5py, h5file, keras_version)
    for path, obj in iter_saveables(root):
        store = (store_for or _store_for)(h5py, h5file, path, keras_version)
        if _own_hook(obj, "load_own_variables"):
            if len(store):
                if build_optimizer:
                    _maybe_build_optimizer(root, obj, store)
                store = _tf_keras_optimizer_store(obj, store, tf_keras_file)
                try:
                    _check_hook_shapes(obj, store, path)
                except ValueError as e:
                    errors.append(str(e))
                    continue
            hooks.append((obj, store, path))
            continue
        try:
            assignments.extend(_plan_assignments(obj, store, path))
        except ValueError as e:
            errors.append(str(e))
    if errors and not skip_mismatch:
        extra = "" if len(errors) == 1 else f"\n\n{len(errors)} objects could not be loaded:\n" + "\n".join(errors)
        raise ValueError(errors[0] + extra)
    with torch.no_grad():
        for target, value in assignments:
            src = value if isinstance(value, torch.Tensor) else torch.from_numpy(_contiguous(value))
            target.copy_(src.to(device=target.device, dtype=target.dtype))
    for path, obj in iter_saveables(root):
        after = getattr(obj, "_after_keras_load", None)
        if after is not None:
            after()
    forget_autocast_casts()
    for obj, store, path in hooks:
        if not len(store):
            continue
        try:
            obj.load_own_variables(store)
        except (ValueError, KeyError, TypeError) as e:
            if not skip_mismatch:
                raise ValueError(f"{_describe(obj, path)} could not be loaded: {e}") from e
            errors.append(str(e))
    return errors


def _check_hook_shapes(obj, store, path) -> None:
    """For an object that loads itself (an optimizer), checks the stored
    shapes against its `variables` before anything is read, so a hostile
    file cannot make it allocate a huge array (or half-load a model)."""
    in_file_order = getattr(obj, "_variables_in_file_order", None)
    variables = in_file_order(store) if in_file_order is not None else getattr(obj, "variables", None)
    if not isinstance(variables, (list, tuple)) or len(store) != len(variables):
        return  # the object decides (optimizers skip with a warning)
    for i, v in enumerate(variables):
        key = str(i)
        if key in store and store.shape(key) != tuple(np.shape(v)):
            raise ValueError(
                f"{_describe(obj, path)}: variable {i} has shape {tuple(np.shape(v))}, "
                f"but the weights file holds shape {store.shape(key)}."
            )


def _contiguous(value) -> np.ndarray:
    """A C-contiguous array of the same shape (`np.ascontiguousarray` would
    turn a scalar, e.g. Normalization's `count`, into shape `(1,)`)."""
    array = np.asarray(value)
    return array if array.flags.c_contiguous else array.copy(order="C")


def _maybe_build_optimizer(root, obj, store) -> None:
    """A compiled model's optimizer is created lazily (first `fit`); build it
    on the model's trainable weights when the file holds its slots, as Keras
    does in `compile_from_config`."""
    import torch.optim

    compiled = obj is getattr(root, "__dict__", {}).get("_optimizer")
    if compiled and isinstance(obj, torch.optim.Optimizer) and not getattr(obj, "built", True) and len(store) > 2:
        # (only the compiled optimizer: one held in another attribute steps weights Keras cannot know;
        # unbuilt, it skips its state with Keras's warning)
        weights = getattr(root, "trainable_weights", None)
        if weights:
            obj.build(weights)
