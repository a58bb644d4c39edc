"""The Keras 2 / tf.keras config dialect, both ways.

`upgrade_model_config` turns a `model_config` written by tf.keras 2.x or
multi-backend Keras 2.2-2.3 into the form kerasish's deserializers read;
`downgrade_model_config` turns a kerasish model config into what tf.keras 2
reads (for writing legacy HDF5). What the Keras 2 dialect differs in:

- `batch_input_shape` on InputLayer (Keras 3: `batch_shape`) and on the first
  layer of a Sequential (Keras <= 2.2 wrote no InputLayer at all);
- class names `Model` (= `Functional`), `TFOpLambda` / `SlicingOpLambda`
  (TensorFlow ops recorded as layers, see `tf_op_mapping`);
- arguments Keras 3 dropped: `time_major`, `implementation`,
  `input_length`, MultiHeadAttention's `query_shape` / `key_shape` /
  `value_shape`, BatchNormalization's `fused`, InputLayer's `ragged` /
  `sparse`: dropped when they hold a value kerasish reproduces, a
  `ValueError` naming the layer otherwise (`time_major=True`, ...);
- dtype policies written as `{"class_name": "Policy", "config": {"name"}}`;
- `axis=[3]` lists on BatchNormalization;
- Lambda functions as `[code, defaults, closure]` lists;
- node indices: a nested Keras 2 model's node 0 is its own graph, so calls
  of it start at node 1.

Names that Keras 2 and Keras 3 define differently (Keras 2 meaning kept for
models loaded from Keras 2 files, and written back under the Keras 2 name):

- activation `hard_sigmoid`: Keras 2 `clip(0.2 * x + 0.5, 0, 1)`, Keras 3
  `relu6(x + 3) / 6` = `clip(x / 6 + 0.5, 0, 1)`. (This is also the default
  `recurrent_activation` of Keras <= 2.2 LSTM/GRU.)
- optimizer `decay`, legacy optimizers and Keras 2 loss names: see
  `legacy_training_config`.

Every other activation, loss and layer name used in Keras 2 files means the
same in Keras 3 (compared against tf-keras 2.21 and Keras 3.15 sources;
`gelu` defaults to `approximate=False` in both).
"""

from __future__ import annotations

import contextvars
import copy

import torch

from kerasish.saving.object_registration import register_keras_serializable


@register_keras_serializable(package="kerasish")
def keras2_hard_sigmoid(x):
    """Keras 2's `hard_sigmoid`: `clip(0.2 * x + 0.5, 0, 1)` (Keras 3's
    `hard_sigmoid` uses slope 1/6 instead)."""
    return torch.clamp(x * 0.2 + 0.5, 0.0, 1.0)


# Keras 2 activation name -> the kerasish function with the Keras 2 meaning.
_KERAS2_ACTIVATIONS = {"hard_sigmoid": "kerasish>keras2_hard_sigmoid"}
_KERAS2_ACTIVATION_NAMES = {v: k for k, v in _KERAS2_ACTIVATIONS.items()}
# Keras 3 activations whose name means something else in Keras 2 (writing
# them to a Keras 2 file would change the model silently).
_KERAS3_ONLY_MEANING = {"hard_sigmoid"}
_ACTIVATION_KEYS = ("activation", "recurrent_activation")
_MODEL_CLASSES = {"Functional", "Model", "Sequential"}
_TF_OP_CLASSES = {"TFOpLambda", "SlicingOpLambda"}
_WRAPPER_KEYS = ("layer", "backward_layer", "cell")

# Keras 2 arguments Keras 3 removed: name -> values that mean "the behaviour
# kerasish has anyway" (dropped); any other value is refused.
_DROPPED_ARGS = {
    "time_major": (False, None),
    "implementation": (0, 1, 2, None),  # a speed hint only; the maths is the same
    "input_length": None,  # any value: a shape hint only
    "query_shape": None,
    "key_shape": None,
    "value_shape": None,
    "fused": (None, True, False),
    "virtual_batch_size": (None,),
    "adjustment": (None,),
    "ragged": (False, None),
    "sparse": (False, None),
    "optional": (False, None),
    "softmax_robust_masking": (False,),  # tf-keras 2.13+ MultiHeadAttention
}
# Conv arguments Keras 2's separable/depthwise convolutions inherit and write,
# which are meaningless for them (their kernels have their own arguments).
_INHERITED_CONV_ARGS = {"groups": (1,), "kernel_initializer": None, "kernel_regularizer": (None,),
                        "kernel_constraint": (None,)}
_NO_PLAIN_KERNEL = {"SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D",
                    "DepthwiseConv1D", "DepthwiseConv2D"}
# Keras 2's transposed convolutions write the `groups` of the Conv class they
# derive from (always 1: they have no grouped form); Keras 3's take no `groups`.
_TRANSPOSE_CONV_ARGS = {"groups": (1,)}
_TRANSPOSE_CONV = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Convolution1DTranspose",
                   "Convolution2DTranspose", "Convolution3DTranspose", "Deconvolution2D", "Deconvolution3D"}


# Keras 2 layers Keras 3 removed and kerasish does not have: what to do instead.
_REMOVED_LAYERS = {
    "LocallyConnected1D": "a `Conv1D` has the same receptive field with shared weights",
    "LocallyConnected2D": "a `Conv2D` has the same receptive field with shared weights",
}


def removed_layer_error(config: dict, custom_objects=None):
    """A `ValueError` naming the first layer of `config` (an upgraded model config) whose class Keras 3
    removed (`LocallyConnected1D/2D`) and that `custom_objects` does not supply, or None."""
    from kerasish.saving.object_registration import get_registered_object

    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("class_name")
            if name in _REMOVED_LAYERS and get_registered_object(name, custom_objects) is None:
                layer = (item.get("config") or {}).get("name", name) if isinstance(item.get("config"), dict) else name
                return _error(layer, f"`{name}` is a Keras 2 layer that was removed in Keras 3, and kerasish has "
                                     f"no such layer ({_REMOVED_LAYERS[name]}). To load this file anyway, pass "
                                     f"your own implementation: `load_model(path, custom_objects={{'{name}': ...}})` "
                                     "(its weights are read in Keras 2's order).")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _error(layer_name, message):
    return ValueError(f"Cannot load layer '{layer_name}' from a Keras 2 file: {message}")


# ------------------------------------------------------------------ upgrade
def upgrade_model_config(config: dict, keras_version: str | None = None, custom_objects=None) -> dict:
    """A legacy-HDF5 `model_config` in the form kerasish reads (a new dict).

    `keras_version` is the file's attribute: Keras 3 also writes this format
    (with Keras 3 meanings, e.g. its own `hard_sigmoid`), Keras 1/2 wrote it
    with Keras 2 meanings (the default when the version is unknown).
    `custom_objects`: the user's classes; an argument their `__init__` names
    is theirs and kept, even when Keras's own layers had one of that name
    that kerasish drops (`implementation`, `input_length`, `sparse`, ...).
    """
    custom_token = _CUSTOM_OBJECTS.set(dict(custom_objects or {}))
    try:
        return _upgrade_model_config(config, keras_version)
    finally:
        _CUSTOM_OBJECTS.reset(custom_token)


_CUSTOM_OBJECTS = contextvars.ContextVar("kerasish_legacy_custom_objects", default=None)


def _user_class(class_name):
    """The user's (or a layer library's) class called `class_name`, from `custom_objects` or
    registered; None for kerasish's own classes and unknown names."""
    from kerasish.saving.object_registration import get_registered_object

    cls = get_registered_object(class_name, _CUSTOM_OBJECTS.get() or {})
    if not isinstance(cls, type) or cls.__module__.startswith("kerasish."):
        return None
    return cls


def _own_init_args(class_name) -> frozenset:
    """The named `__init__` parameters of a user's (or a layer library's) class called `class_name`
    (from `custom_objects` or registered), else nothing."""
    import inspect

    cls = _user_class(class_name)
    if cls is None:
        return frozenset()
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _upgrade_model_config(config: dict, keras_version: str | None = None) -> dict:
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"Invalid Keras 2 model config: expected an object with a `class_name`. Received: "
                         f"{str(config)[:200]}")
    token = _KERAS3_FILE.set(str(keras_version or "").split(".")[0].isdigit()
                             and int(str(keras_version).split(".")[0]) >= 3)
    try:
        return _upgrade_layer(copy.deepcopy(config))
    finally:
        _KERAS3_FILE.reset(token)


_KERAS3_FILE = contextvars.ContextVar("kerasish_legacy_h5_from_keras3", default=False)


def _upgrade_activation(value):
    if _KERAS3_FILE.get():
        return value
    if isinstance(value, str) and value in _KERAS2_ACTIVATIONS:
        return _KERAS2_ACTIVATIONS[value]
    if isinstance(value, dict) and value.get("class_name") == "function" and value.get("config") in _KERAS2_ACTIVATIONS:
        return _KERAS2_ACTIVATIONS[value["config"]]
    return value


def _upgrade_layer(layer: dict) -> dict:
    class_name = layer["class_name"]
    config = layer.get("config")
    if class_name == "Model":
        layer["class_name"] = class_name = "Functional"
    if class_name in ("TFOpLambda", "SlicingOpLambda"):
        from kerasish.saving import tf_op_mapping

        tf_op_mapping.check_supported(config, layer.get("name"))
        return layer
    if class_name == "Sequential":
        if isinstance(config, list):  # Keras <= 2.2.2: the config is the layer list
            config = layer["config"] = {"name": "sequential", "layers": config}
        config["layers"] = _sequential_layers([_upgrade_layer(x) for x in config.get("layers", [])])
        return layer
    if class_name == "Functional":
        _upgrade_functional(config)
        return layer
    if not isinstance(config, dict):
        return layer
    if _user_class(class_name) is not None:
        # a user's or a layer library's class named like a Keras one (CyberZHG's LayerNormalization,
        # a custom BatchNormalization): Keras's class rules below are not for its config
        class_name = None
    if class_name in ("CuDNNLSTM", "CuDNNGRU"):  # Keras 2's GPU-only layers: the LSTM/GRU computing the same
        from kerasish.saving import cudnn_weights

        class_name, config = cudnn_weights.upgrade_config(class_name, config)
        layer["class_name"], layer["config"] = class_name, config
    name = config.get("name", layer["class_name"])
    batch_input_shape = config.pop("batch_input_shape", None)
    if class_name == "InputLayer":
        if batch_input_shape is not None:
            config["batch_shape"] = batch_input_shape
        if "input_shape" in config and "batch_shape" not in config:  # Keras 2.2 wrote both
            config["batch_shape"] = config.pop("input_shape")
    elif batch_input_shape is not None:
        layer["_batch_input_shape"] = batch_input_shape  # consumed by _sequential_layers
    dropped = {**_DROPPED_ARGS, **(_INHERITED_CONV_ARGS if class_name in _NO_PLAIN_KERNEL else {}),
               **(_TRANSPOSE_CONV_ARGS if class_name in _TRANSPOSE_CONV else {})}
    own = _own_init_args(layer["class_name"])
    for key, allowed in dropped.items():
        if key in config and key not in own:
            value = config.pop(key)
            if allowed is not None and value not in allowed:
                raise _error(name, f"`{key}={value!r}` (a Keras 2 option) is not supported by kerasish.")
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = _policy_name(config["dtype"])
    if class_name == "BatchNormalization" and isinstance(config.get("axis"), list) and len(config["axis"]) == 1:
        config["axis"] = int(config["axis"][0])
    for key in _ACTIVATION_KEYS:
        if key in config:
            config[key] = _upgrade_activation(config[key])
    if class_name == "Lambda":
        _upgrade_lambda(config)
    for key in _WRAPPER_KEYS:
        if isinstance(config.get(key), dict) and "class_name" in config[key]:
            config[key] = _upgrade_layer(config[key])
    if class_name == "StackedRNNCells" and isinstance(config.get("cells"), list):
        config["cells"] = [_upgrade_layer(c) for c in config["cells"]]
    return layer


def _policy_name(dtype):
    inner = dtype.get("config") or {}
    return inner.get("name", "float32")


def _upgrade_lambda(config):
    fn = config.get("function")
    if isinstance(fn, (list, tuple)) and config.get("function_type", "lambda") == "lambda":
        code, defaults, closure = (list(fn) + [None, None])[:3]
        config["function"] = {"class_name": "__lambda__", "config": {"code": code, "defaults": defaults,
                                                                     "closure": closure,
                                                                     "module": config.get("module")}}
    elif config.get("function_type") == "function" and isinstance(fn, str):
        config["function"] = {"module": "builtins", "class_name": "function", "config": fn,
                              "registered_name": "function"}
    for key in ("function_type", "module", "output_shape_type", "output_shape_module"):
        config.pop(key, None)
    if isinstance(config.get("output_shape"), list) and config["output_shape"] and isinstance(
            config["output_shape"][0], str):
        raise _error(config.get("name"), "a Lambda `output_shape` given as a function is not supported.")


def _sequential_layers(layers):
    """Adds the InputLayer Keras <= 2.2 left implicit; drops the per-layer
    `batch_input_shape` the InputLayer now carries."""
    out = []
    for i, layer in enumerate(layers):
        shape = layer.pop("_batch_input_shape", None)
        if i == 0 and shape is not None and layer.get("class_name") != "InputLayer":
            dtype = layer.get("config", {}).get("dtype", "float32")
            out.append({"class_name": "InputLayer",
                        "config": {"batch_shape": shape, "dtype": dtype if isinstance(dtype, str) else "float32",
                                   "name": f"{layer.get('config', {}).get('name', 'layer')}_input"}})
        out.append(layer)
    return out


def _upgrade_functional(config):
    layers = config.get("layers", [])
    nested = set()
    for i, layer in enumerate(layers):
        layer_name = layer.get("name")
        upgraded = _upgrade_layer(layer)
        upgraded.pop("_batch_input_shape", None)
        layers[i] = upgraded
        if upgraded["class_name"] in _MODEL_CLASSES:
            nested.add(layer_name)
    # A Keras 2 model has its own graph as node 0: its calls start at 1.
    names = {x.get("name") for x in layers}
    for layer in layers:
        layer["inbound_nodes"] = [_keras3_node(node, nested, names) for node in layer.get("inbound_nodes", [])]
    seq = {x.get("name") for x in layers if x["class_name"] == "Sequential"}
    for key in ("input_layers", "output_layers"):  # the reader already shifts Functional references
        if key in config:
            config[key] = _shift_refs(config[key], seq)


_CONSTANT_VALUE = "_CONSTANT_VALUE"  # Keras 2's marker for a constant call input


def _is_ref(x, names):
    return (isinstance(x, list) and len(x) == 3 and isinstance(x[0], str) and x[0] in names
            and isinstance(x[1], int) and isinstance(x[2], int))


def _tensor_ref(entry, nested):
    name, node, tensor = _shift_entry(list(entry[:3]), nested)
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, node, tensor]}}


def _refs_in(value, nested, names):
    """Keras 2 writes tensors inside call kwargs as `[layer, node, tensor]`."""
    if _is_ref(value, names):
        return _tensor_ref(value, nested)
    if isinstance(value, list):
        return [_refs_in(v, nested, names) for v in value]
    if isinstance(value, dict):
        return {k: _refs_in(v, nested, names) for k, v in value.items()}
    return value


def _keras3_node(node, nested, names):
    """A Keras 2 node (`[[layer, node, tensor, kwargs], ...]`, or one entry
    alone for TFOpLambda) as Keras 3's `{"args", "kwargs"}`."""
    if isinstance(node, dict):
        return node
    if not isinstance(node, list) or not node:
        raise ValueError(f"Invalid Keras 2 node data in the model config: {str(node)[:200]}")
    entries = [node] if isinstance(node[0], str) else node
    inputs, kwargs = [], {}
    for entry in entries:
        if not isinstance(entry, list) or len(entry) not in (3, 4):
            raise ValueError(f"Invalid Keras 2 node entry in the model config: {str(entry)[:200]}")
        inputs.append(entry[2] if entry[0] == _CONSTANT_VALUE else _tensor_ref(entry, nested))
        if len(entry) == 4 and entry[3]:
            kwargs = _refs_in(entry[3], nested, names)
    return {"args": [inputs[0] if len(inputs) == 1 else inputs], "kwargs": kwargs}


def _shift_entry(entry, nested):
    if isinstance(entry, list) and len(entry) >= 3 and entry[0] in nested and isinstance(entry[1], int):
        return [entry[0], max(entry[1] - 1, 0), *entry[2:]]
    return entry


def _shift_refs(refs, names):
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str) and isinstance(refs[1], int):
        return _shift_entry(refs, names)
    if isinstance(refs, list):
        return [_shift_refs(r, names) for r in refs]
    if isinstance(refs, dict):
        return {k: _shift_refs(v, names) for k, v in refs.items()}
    return refs


# ---------------------------------------------------------------- downgrade
# Keras 3 arguments tf.keras 2 does not take: dropped at these values, refused
# otherwise (None: dropped whatever the value, it only seeds randomness).
_KERAS3_ONLY_ARGS = {
    "quantization_config": (None,), "lora_rank": (None,), "lora_alpha": (None,), "rms_scaling": (False,),
    "sliding_window": (None,), "use_gate": (False,), "input_axes": (None,), "output_axes": (None,),
    "flash_attention": (None,),
    "optional": (False,),  # Keras 3.x InputLayer; Keras 2.12's InputLayer refuses the unknown keyword
}
# Keras 3 argument names Keras 2 spelled otherwise (class -> {Keras 3 name: Keras 2 name})
_KERAS2_ARG_NAMES = {"LeakyReLU": {"negative_slope": "alpha"}}
# Arguments Keras 3 added to a Keras 2 class (class -> {name: values Keras 2's behaviour equals}).
# Keras 2's image preprocessing layers are channels-last only; its RandomContrast clips to [0, 255];
# its Resizing neither pads nor antialiases; its IntegerLookup hashes OOV values by floormod, unsalted.
_CHANNELS_LAST = {"data_format": ("channels_last", None)}
_KERAS3_ONLY_CLASS_ARGS = {
    "ZeroPadding1D": _CHANNELS_LAST,
    **{name: _CHANNELS_LAST for name in ("CenterCrop", "RandomBrightness", "RandomCrop", "RandomFlip",
                                         "RandomRotation", "RandomTranslation", "RandomZoom")},
    "RandomContrast": {**_CHANNELS_LAST, "value_range": ([0, 255], None)},
    "Resizing": {**_CHANNELS_LAST, "pad_to_aspect_ratio": (False,), "antialias": (False,),
                 # (only read when padding to the aspect ratio)
                 "fill_mode": None, "fill_value": None},
    "IntegerLookup": {"oov_method": ("floormod",), "salt": (None,)},
}
_SEEDED_WITHOUT_SEED_IN_KERAS2 = {"GRU", "LSTM", "SimpleRNN", "GRUCell", "LSTMCell", "SimpleRNNCell",
                                  "MultiHeadAttention", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}


def _keras2_dtype(dtype):
    """Keras 3's `DTypePolicy` dict -> Keras 2's dtype string / `Policy` dict."""
    if isinstance(dtype, dict):
        name = (dtype.get("config") or {}).get("name", "float32")
        return {"class_name": "Policy", "config": {"name": name}} if name.startswith("mixed_") else name
    return dtype


_AUTO_MASKS = contextvars.ContextVar("kerasish_keras2_auto_masks", default=frozenset())


def downgrade_model_config(config: dict, model_name: str = "model", auto_masks=frozenset()) -> dict:
    """A kerasish (Keras 3 form) model config in the Keras 2 dialect tf.keras
    2.x reads. Raises ValueError for what Keras 2 would read differently.
    `auto_masks`: `(model name, layer name, node position)` of the calls
    whose `mask=` is the propagated mask of their inputs (dropped: Keras 2
    propagates it itself)."""
    token = _AUTO_MASKS.set(frozenset(auto_masks))
    try:
        return _downgrade(copy.deepcopy(config), model_name)
    finally:
        _AUTO_MASKS.reset(token)


def _is_keras_module(module) -> bool:
    """Whether a serialized object's `module` is Keras's (`keras.layers`, `keras.src...`); configs
    without one are taken as Keras's."""
    return module is None or module == "keras" or str(module).startswith("keras.")


def _downgrade(obj, where):
    if isinstance(obj, list):
        return [_downgrade(x, where) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "class_name" in obj and "config" in obj:
        class_name = obj["class_name"]
        config = obj["config"]
        # the class rules below are for Keras's own classes: a user's or a layer library's class of the
        # same name (keras-multi-head's MultiHeadAttention) keeps its config as it wrote it
        keras_class = class_name if _is_keras_module(obj.get("module")) else None
        if isinstance(config, dict):
            where = config.get("name", where)
            if "dtype" in config:
                config["dtype"] = _keras2_dtype(config["dtype"])
            for key, defaults in _KERAS3_ONLY_ARGS.items():
                if key in config:
                    if config[key] not in defaults:
                        raise ValueError(f"Cannot save '{where}' ({class_name}) as Keras 2 HDF5: `{key}="
                                         f"{config[key]!r}` has no Keras 2 equivalent. Save as `.keras` instead.")
                    config.pop(key)
            for key, defaults in _KERAS3_ONLY_CLASS_ARGS.get(keras_class, {}).items():
                if key in config:
                    value = list(config[key]) if isinstance(config[key], tuple) else config[key]
                    if defaults is not None and value not in defaults:
                        raise ValueError(f"Cannot save '{where}' ({class_name}) as Keras 2 HDF5: `{key}="
                                         f"{config[key]!r}` has no Keras 2 equivalent. Save as `.keras` instead.")
                    config.pop(key)
            if keras_class in ("IntegerLookup", "StringLookup") and config.get("output_mode", "int") == "int":
                # Keras 2's lookups compute in their dtype and refuse a float one for integer indices
                # (Keras 3 writes the float32 policy and returns int64 anyway)
                config["dtype"] = "int64"
            for new_name, old_name in _KERAS2_ARG_NAMES.get(keras_class, {}).items():
                if new_name in config:
                    config[old_name] = config.pop(new_name)
            if keras_class in _SEEDED_WITHOUT_SEED_IN_KERAS2:
                config.pop("seed", None)
            for key in _ACTIVATION_KEYS:
                value = config.get(key)
                if isinstance(value, str) and value in _KERAS3_ONLY_MEANING:
                    raise ValueError(
                        f"Cannot save layer '{where}' as Keras 2 HDF5: its `{key}='{value}'` is Keras 3's "
                        f"definition, which Keras 2 defines differently (Keras 2: clip(0.2 * x + 0.5, 0, 1)). "
                        "Save as `.keras` instead."
                    )
                if isinstance(value, dict) and value.get("config") in _KERAS2_ACTIVATION_NAMES:
                    config[key] = _KERAS2_ACTIVATION_NAMES[value["config"]]
                elif isinstance(value, str) and value in _KERAS2_ACTIVATION_NAMES:
                    config[key] = _KERAS2_ACTIVATION_NAMES[value]
            if keras_class == "MultiHeadAttention":  # tf-keras's from_config reads these keys
                for key in ("query_shape", "key_shape", "value_shape"):
                    config.setdefault(key, None)
            if keras_class == "InputLayer" and "batch_shape" in config:
                config["batch_input_shape"] = config.pop("batch_shape")
                config.setdefault("sparse", False)
                config.setdefault("ragged", False)
            if keras_class == "Lambda" and isinstance(config.get("function"), dict):
                fn = config["function"]
                if fn.get("class_name") == "__lambda__":
                    inner = fn["config"]
                    config["function"] = [inner.get("code"), inner.get("defaults"), inner.get("closure")]
                    config["function_type"] = "lambda"
                elif fn.get("class_name") == "function":
                    config["function"] = fn.get("config")
                    config["function_type"] = "function"
                config.setdefault("output_shape", None)
                config.setdefault("arguments", {})
                config.setdefault("module", "builtins")
                config.setdefault("output_shape_type", "raw")
                config.setdefault("output_shape_module", None)
        out = {k: _downgrade(v, where) for k, v in obj.items() if k not in ("build_config", "compile_config")}
        if class_name == "Functional" and isinstance(out.get("config"), dict):
            _downgrade_nodes(out["config"])
        out.pop("registered_name", None) if out.get("registered_name") is None else None
        return out
    return {k: _downgrade(v, where) for k, v in obj.items()}


def _downgrade_nodes(config):
    """Keras 3 `{"args", "kwargs"}` nodes -> Keras 2 `[[name, node, tensor, kwargs]]`
    lists; nested models' calls shifted up by one (their node 0)."""
    _drop_propagated_masks(config)
    _drop_auto_masks(config)
    layers = config.get("layers", [])
    nested = {x.get("name") for x in layers if x.get("class_name") in _MODEL_CLASSES}
    seq = {x.get("name") for x in layers if x.get("class_name") == "Sequential"}
    for layer in layers:
        nodes = []
        for node in layer.get("inbound_nodes", []):
            nodes.append(_keras2_node(node, nested, layer.get("name"), layer.get("class_name"))
                         if isinstance(node, dict) else node)
        layer["inbound_nodes"] = nodes
    for key in ("input_layers", "output_layers"):
        if key in config:
            config[key] = _unshift(config[key], seq)
            if isinstance(config[key], list) and len(config[key]) == 3 and isinstance(config[key][0], str):
                config[key] = [config[key]]


def _history(value):
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return tuple(value["config"]["keras_history"])
    return None


def _drop_propagated_masks(config):
    """Drops the op nodes of masks Keras 2 propagates by itself.

    A Keras 3 config spells a propagated mask out: `Embedding(mask_zero=True)`
    adds a `NotEqual(ids, 0)` op node, `Masking(v)` an
    `Any(NotEqual(x, v), axis=-1)`, and downstream layers get `mask=<that
    tensor>`. Keras 2 has no op nodes (the file could not be written) and
    propagates such masks itself, so the nodes and the `mask` arguments go
    when the layer's input comes (through single-input layers) from that very
    Embedding/Masking call: Keras 2 recomputes exactly that mask. Any other
    explicit mask is kept (and refused by the writer)."""
    layers = config.get("layers", [])
    by_name = {x.get("name"): x for x in layers}

    def only_node(layer):
        nodes = (layer or {}).get("inbound_nodes") or []
        return nodes[0] if len(nodes) == 1 and isinstance(nodes[0], dict) else None

    def mask_op(history):
        """`(kind, source, value)` for a NotEqual / Any(NotEqual) mask tensor, else None."""
        layer = by_name.get(history[0]) if history else None
        node = only_node(layer)
        if node is None:
            return None, ()
        kind = layer.get("class_name")
        args = list(node.get("args") or ())
        if kind == "Any" and len(args) == 1 and (layer.get("config") or {}).get("axis") in (-1, [-1], (-1,)):
            inner, ops = mask_op(_history(args[0]))
            return (("Masking", *inner[1:]) if inner and inner[0] == "Embedding" else None), (*ops, history[0])
        if kind == "NotEqual" and len(args) == 2 and isinstance(args[1], (int, float)):
            source = _history(args[0])
            return (("Embedding", source, args[1]) if source else None), (history[0],)
        return None, ()

    def origin(history, depth=0):
        """`(kind, input, value)` of the Embedding/Masking call `history` derives from."""
        layer = by_name.get(history[0]) if history else None
        if layer is None or depth > 64:
            return None
        nodes = layer.get("inbound_nodes") or []
        if history[1] >= len(nodes) or not isinstance(nodes[history[1]], dict):
            return None
        args = nodes[history[1]].get("args") or ()
        if len(args) != 1:
            return None
        source, cfg = _history(args[0]), layer.get("config") or {}
        if layer.get("class_name") == "Embedding":
            return ("Embedding", source, 0) if cfg.get("mask_zero") else None
        if layer.get("class_name") == "Masking":
            return ("Masking", source, cfg.get("mask_value", 0.0))
        return origin(source, depth + 1)

    dropped = set()
    for layer in layers:
        for node in layer.get("inbound_nodes") or []:
            if not isinstance(node, dict):
                continue
            mask = _history((node.get("kwargs") or {}).get("mask"))
            found, ops = mask_op(mask) if mask else (None, ())
            if found is None:
                continue
            first = _history((node.get("args") or (None,))[0])
            here = origin(first)
            if here is not None and here[:2] == found[:2] and float(here[2]) == float(found[2]):
                node["kwargs"] = {k: v for k, v in node["kwargs"].items() if k != "mask"}
                dropped.update(ops)
    if dropped:
        still_used = {h[0] for x in layers if x.get("name") not in dropped
                      for h in _histories(x.get("inbound_nodes"))}
        still_used |= {r[0] for r in _flat_refs(config.get("output_layers"))}
        config["layers"] = [x for x in layers if x.get("name") not in dropped - still_used]


def _drop_auto_masks(config):
    """Drops the `mask` arguments the symbolic calls filled in from their inputs' masks (see
    `downgrade_model_config`), then the op nodes (`keras.src.ops` classes: a mask's `NotEqual`,
    `Any`, `LogicalOr`, ...) nothing refers to any more."""
    auto = _AUTO_MASKS.get()
    if not auto:
        return
    model = config.get("name")
    layers = config.get("layers", [])
    dropped = False
    for layer in layers:
        for j, node in enumerate(layer.get("inbound_nodes") or []):
            if isinstance(node, dict) and "mask" in (node.get("kwargs") or {}) and (model, layer.get("name"), j) in auto:
                node["kwargs"] = {k: v for k, v in node["kwargs"].items() if k != "mask"}
                dropped = True
    while dropped:
        used = {h[0] for x in layers for h in _histories(x.get("inbound_nodes"))}
        used |= {r[0] for key in ("output_layers", "input_layers") for r in _flat_refs(config.get(key))}
        kept = [x for x in layers if x.get("name") in used or not str(x.get("module", "")).startswith("keras.src.ops")]
        dropped = len(kept) != len(layers)
        layers = kept
    config["layers"] = layers


def _histories(value):
    if isinstance(value, dict):
        found = _history(value)
        if found is not None:
            return [found]
        return [h for v in value.values() for h in _histories(v)]
    if isinstance(value, (list, tuple)):
        return [h for v in value for h in _histories(v)]
    return []


def _flat_refs(refs):
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        return [refs]
    if isinstance(refs, list):
        return [r for x in refs for r in _flat_refs(x)]
    return []


def _unshift(refs, names):
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str) and isinstance(refs[1], int):
        return [refs[0], refs[1] + 1, refs[2]] if refs[0] in names else refs
    if isinstance(refs, list):
        return [_unshift(r, names) for r in refs]
    return refs


def _tensor_entry(value, nested):
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, tensor = value["config"]["keras_history"]
        return [name, node + 1 if name in nested else node, tensor]
    return None


def _call_arg_names(class_name):
    import inspect

    from kerasish.models.functional_config import module_objects

    cls = module_objects().get(class_name)
    call = getattr(cls, "call", None)
    if call is None:
        return []
    return [n for n, p in inspect.signature(call).parameters.items()
            if n != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _kwarg_value(value, nested):
    entry = _tensor_entry(value, nested)
    if entry is not None:
        return entry  # Keras 2 writes tensors in kwargs as [layer, node, tensor]
    if isinstance(value, list):
        return [_kwarg_value(v, nested) for v in value]
    if isinstance(value, dict) and "class_name" not in value:
        return {k: _kwarg_value(v, nested) for k, v in value.items()}
    return value


def _keras2_node(node, nested, layer_name, class_name=None):
    args = list(node.get("args", ()))
    kwargs = {k: _kwarg_value(v, nested) for k, v in dict(node.get("kwargs", {})).items()}
    if not args:
        raise ValueError(f"Cannot save layer '{layer_name}' as Keras 2 HDF5: a call without positional inputs.")
    first, rest = args[0], args[1:]
    if rest:  # Keras 2 nodes hold one positional input; the others go by name (MultiHeadAttention's `value`)
        names = _call_arg_names(class_name)[1:]
        if len(names) < len(rest):
            raise ValueError(f"Cannot save layer '{layer_name}' as Keras 2 HDF5: its call takes {len(rest) + 1} "
                             "positional inputs that cannot be named. Save as `.keras` instead.")
        kwargs.update({n: _kwarg_value(v, nested) for n, v in zip(names, rest)})
    items = first if isinstance(first, (list, tuple)) else [first]
    entries = [_tensor_entry(v, nested) for v in items]
    if any(e is None for e in entries):
        raise ValueError(
            f"Cannot save layer '{layer_name}' as Keras 2 HDF5: its first input mixes tensors and constants, "
            "which the Keras 2 node format cannot describe. Save as `.keras` instead."
        )
    if class_name in _TF_OP_CLASSES and not isinstance(first, (list, tuple)):
        return [*entries[0], kwargs]  # tf.keras keeps a TFOpLambda's input structure: one tensor, not a list
    return [[*e, kwargs] for e in entries]
