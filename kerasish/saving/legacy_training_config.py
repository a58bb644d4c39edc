"""Keras 2's `training_config` (loss, metrics, optimizer), both ways.

Where Keras 2 and Keras 3 differ:

- optimizer `lr` is `learning_rate`; `decay` (`lr / (1 + decay * iterations)`)
  was removed in Keras 3; kerasish optimizers take it as an argument and
  apply it as tf.keras 2 did (written back as a legacy optimizer); tf-keras writes `Custom>Adam` class names and
  `is_legacy_optimizer`;
- legacy optimizers (RMSprop / Adagrad: epsilon outside the square root;
  Nadam: its momentum schedule, `decay` being that schedule's rate) load as
  `keras.optimizers.legacy`'s, which keep tf.keras 2's rules and are written
  back as legacy optimizers;
- losses `logcosh`, `kld` / `kullback_leibler_divergence`, `huber_loss`
  (Keras 3 spells them `log_cosh`, `kl_divergence`, `huber`);
- metrics are nested per output and written as `MeanMetricWrapper`s.
"""

from __future__ import annotations

import inspect

from kerasish.saving.legacy_config import _downgrade

_LOSS_NAMES = {"logcosh": "log_cosh", "kld": "kl_divergence", "kullback_leibler_divergence": "kl_divergence",
               "huber_loss": "huber"}


def compile_args_from_training_config(training_config: dict, custom_objects=None, output_names=None) -> dict:
    """`model.compile` arguments from a Keras 2 `training_config` (`output_names`: the model's, in order)."""
    from kerasish import optimizers

    opt_config = training_config.get("optimizer_config")
    optimizer = None
    if opt_config is not None:
        optimizer = optimizer_from_keras2(opt_config, custom_objects)
    loss = _map_losses(training_config.get("loss"), custom_objects)
    metrics = _metrics(_unprefixed(training_config.get("metrics"), output_names), custom_objects)
    weighted = _metrics(_unprefixed(training_config.get("weighted_metrics"), output_names), custom_objects)
    args = {"optimizer": optimizer or optimizers.get("rmsprop"), "loss": loss,
            "loss_weights": training_config.get("loss_weights")}
    if metrics:
        args["metrics"] = metrics
    if weighted:
        args["weighted_metrics"] = weighted
    return args


def _unprefixed(metrics, output_names):
    """tf.keras 2 writes a multi-output model's built metrics under their logged names (`price_mae` for
    output `price`'s "mae", per output in a list, or keyed by output); compile prefixes the output name
    itself, so the saved prefix is taken off (else the logs say `price_price_mae`). A new structure."""
    names = list(output_names or ())
    if len(names) < 2 or not isinstance(metrics, (list, dict)):
        return metrics
    per_output = metrics.items() if isinstance(metrics, dict) else zip(names, metrics)
    if isinstance(metrics, list) and (len(metrics) != len(names) or not all(isinstance(m, list) for m in metrics)):
        return metrics

    def strip(entry, prefix):
        config = entry.get("config") if isinstance(entry, dict) else None
        name = config.get("name") if isinstance(config, dict) else None
        if isinstance(name, str) and name.startswith(prefix) and len(name) > len(prefix):
            return {**entry, "config": {**config, "name": name[len(prefix):]}}
        return entry

    out = {out_name: [strip(e, f"{out_name}_") for e in (entries if isinstance(entries, list) else [entries])]
           for out_name, entries in per_output}
    return out if isinstance(metrics, dict) else [out[n] for n in names]


def _custom(name, custom_objects):
    """A loss/metric function saved by name: a custom object in effect
    (`custom_objects=`, `CustomObjectScope`, registered) wins over a built-in
    of the same name, as in Keras 2's `losses.get` / `metrics.get`."""
    from kerasish.saving.object_registration import get_registered_object

    return get_registered_object(name, custom_objects) if isinstance(name, str) else None


def _map_losses(loss, custom_objects=None):
    if isinstance(loss, str):
        custom = _custom(loss, custom_objects)
        return custom if custom is not None else _LOSS_NAMES.get(loss, loss)
    if isinstance(loss, list):
        return [_map_losses(x, custom_objects) for x in loss]
    if isinstance(loss, dict) and "class_name" not in loss:
        return {k: _map_losses(v, custom_objects) for k, v in loss.items()}
    if isinstance(loss, dict):
        from kerasish import losses

        if not isinstance(loss.get("config") or {}, dict):  # a function serialized as a name
            return _map_losses(loss.get("config"), custom_objects)
        inner = dict(loss.get("config") or {})
        name = loss["class_name"]
        if name == "LossFunctionWrapper":  # a loss function (with its keyword arguments, if any)
            return _map_losses(inner.get("fn"), custom_objects)
        # tf-keras >= 2.13 also writes `fn` (the function's name) in the config of its built-in loss
        # classes (`LossFunctionWrapper` subclasses): the class with the rest of the config is the loss
        # (`CategoricalCrossentropy(label_smoothing=0.1)`, `from_logits=True`, ...), never the bare function
        fn = inner.pop("fn", None)
        inner.pop("reduction", None) if inner.get("reduction") in ("auto", "sum_over_batch_size") else None
        custom = _custom(name, custom_objects)
        if custom is not None:  # a custom `Loss` subclass
            return custom.from_config(inner) if hasattr(custom, "from_config") else custom(**inner)
        if fn is not None and not inspect.isclass(getattr(losses, name, None)):
            return _map_losses(fn, custom_objects)  # an unknown wrapper class: its function
        return losses.deserialize({"class_name": name, "config": inner})
    return loss


def tf_keras_archive_loss(loss):
    """The `loss` of a tf-keras `.keras` archive's `compile_config` with Keras 2's `fn` (and `reduction:
    "auto"`) taken out of its built-in loss classes' configs, which Keras 3's constructors refuse (a new
    structure). Everything else (functions, custom and registered classes) is left to `losses.get`."""
    from kerasish import losses

    if isinstance(loss, list):
        return [tf_keras_archive_loss(v) for v in loss]
    if isinstance(loss, dict) and "class_name" not in loss:
        return {k: tf_keras_archive_loss(v) for k, v in loss.items()}
    if not isinstance(loss, dict) or not isinstance(loss.get("config"), dict) or "fn" not in loss["config"]:
        return loss
    if not inspect.isclass(getattr(losses, loss["class_name"], None)) or loss.get("module") not in (
            None, "keras.losses"):
        return loss
    config = {k: v for k, v in loss["config"].items() if k != "fn" and (k, v) != ("reduction", "auto")}
    return {**loss, "config": config}


def _metrics(metrics, custom_objects=None):
    """Keras 2 nests metrics per output (`[[m1, m2], [m3]]`) or flat; a
    `MeanMetricWrapper` becomes its function name (`categorical_accuracy`),
    or the custom function of that name (custom objects in effect)."""
    if metrics is None:
        return None
    if isinstance(metrics, dict):
        return {k: _metrics(v, custom_objects) for k, v in metrics.items()}
    if isinstance(metrics, list):
        if len(metrics) == 1 and isinstance(metrics[0], list):
            return _metrics(metrics[0], custom_objects)
        return [_metrics(m, custom_objects) if isinstance(m, list) else _metric(m, custom_objects) for m in metrics]
    return _metric(metrics, custom_objects)


def _metric(metric, custom_objects=None):
    from kerasish import metrics

    if isinstance(metric, dict) and metric.get("class_name") == "MeanMetricWrapper":
        inner = metric.get("config") or {}
        fn, name = inner.get("fn"), inner.get("name")
        custom = _custom(fn, custom_objects)
        if custom is not None:  # the function, or a wrapper that keeps another saved name
            if name in (None, fn) and getattr(custom, "__name__", None) == fn:
                return custom
            return metrics.MeanMetricWrapper(custom, name=name or fn, dtype=inner.get("dtype"))
        if name in (None, fn):
            return fn
        # e.g. "accuracy" saved as `sparse_categorical_accuracy`: keep the function tf.keras resolved
        # (written back so; a bare "accuracy" in a Keras 2 file is resolved by tf.keras against the
        # model's outputs, i.e. as one-hot labels)
        builtin = getattr(metrics, fn, None) if isinstance(fn, str) and not fn.startswith("_") else None
        if not inspect.isfunction(builtin):
            return name
        return metrics.MeanMetricWrapper(builtin, name=name, dtype=inner.get("dtype"))
    if isinstance(metric, dict):
        custom = _custom(metric.get("class_name"), custom_objects)
        if custom is not None:  # a custom `Metric` subclass
            return custom.from_config(metric.get("config") or {})
        return metrics.deserialize(metric)
    if isinstance(metric, str):
        custom = _custom(metric, custom_objects)
        return custom if custom is not None else metric
    return metric


def optimizer_from_keras2(opt_config: dict, custom_objects=None):
    """A kerasish optimizer from a Keras 2 optimizer config (legacy `lr`,
    `decay`, the `Custom>` prefix tf-keras writes, `is_legacy_optimizer`)."""
    from kerasish import optimizers
    from kerasish.optimizers import schedules

    class_name = str(opt_config.get("class_name", ""))
    class_name = class_name.split(">", 1)[-1]
    inner = dict(opt_config.get("config") or {})
    if class_name in _KERAS2_LOSS_SCALE_OPTIMIZERS:
        return _loss_scale_optimizer_from_keras2(class_name, inner, custom_objects)
    legacy = inner.get("is_legacy_optimizer", "lr" in inner or "decay" in inner)
    if legacy and class_name in optimizers.legacy.ALL_OBJECTS_DICT and not (custom_objects or {}).get(class_name):
        # tf.keras 2's legacy optimizer, rebuilt as one: its own update rule (RMSprop's and Adagrad's
        # epsilon, Nadam's schedule and `decay`), arguments and config
        inner.pop("jit_compile", None)
        if isinstance(inner.get("learning_rate"), dict):
            inner["learning_rate"] = schedules.deserialize(inner["learning_rate"])
        try:
            return optimizers.legacy.ALL_OBJECTS_DICT[class_name].from_config(inner)
        except (TypeError, ValueError) as e:
            raise ValueError(f"Could not rebuild the Keras 2 optimizer '{class_name}' from {inner}: {e}") from e
    if "lr" in inner:
        inner["learning_rate"] = inner.pop("lr")
    if not inner.get("decay"):
        inner.pop("decay", None)
    for key in ("jit_compile", "is_legacy_optimizer"):
        inner.pop(key, None)
    if isinstance(inner.get("name"), str):
        inner["name"] = inner["name"].lower() if inner["name"] == class_name else inner["name"]
    if isinstance(inner.get("learning_rate"), dict):
        inner["learning_rate"] = schedules.deserialize(inner["learning_rate"])
    # `decay` (Keras 2's lr / (1 + decay * iterations)) goes to the optimizer,
    # which applies it the way tf.keras 2's legacy optimizers did.
    cls = getattr(optimizers, class_name, None)
    if cls is None and custom_objects:
        cls = custom_objects.get(class_name)
    if not isinstance(cls, type):
        raise ValueError(f"Unknown optimizer in the Keras 2 training config: '{opt_config.get('class_name')}'.")
    try:
        return cls.from_config(inner)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Could not rebuild the Keras 2 optimizer '{class_name}' from {inner}: {e}") from e


# tf.keras 2 wraps a mixed_float16 model's optimizer in one of these (`LossScaleOptimizerV3` around the
# TF >= 2.11 optimizers, `LossScaleOptimizer` around the legacy ones; TF 2.1-2.3's experimental one wrote
# `{"optimizer": ..., "loss_scale": ...}`).
_KERAS2_LOSS_SCALE_OPTIMIZERS = {"LossScaleOptimizer", "LossScaleOptimizerV3", "LossScaleOptimizerV1"}


def _loss_scale_optimizer_from_keras2(class_name, config, custom_objects):
    """kerasish's `LossScaleOptimizer` around the Keras 2 inner optimizer (dynamic scaling only)."""
    from kerasish.optimizers import LossScaleOptimizer

    inner = config.get("inner_optimizer", config.get("optimizer"))
    if not isinstance(inner, dict):
        raise ValueError(f"The Keras 2 `{class_name}` config has no inner optimizer. Received: {config}")
    loss_scale = config.get("loss_scale")  # TF 2.1-2.3's experimental API
    initial_scale, growth = config.get("initial_scale", 2.0**15), config.get("dynamic_growth_steps", 2000)
    dynamic, fixed = config.get("dynamic", True), config.get("initial_scale")
    if isinstance(loss_scale, dict):  # {"class_name": "DynamicLossScale" | "FixedLossScale", "config": ...}
        ls = loss_scale.get("config") or {}
        dynamic = loss_scale.get("class_name") == "DynamicLossScale"
        initial_scale = ls.get("initial_loss_scale", initial_scale)
        growth = ls.get("increment_period", growth)
        fixed = ls.get("loss_scale_value")
    elif loss_scale is not None:  # "dynamic" or a number
        dynamic, fixed = loss_scale == "dynamic", loss_scale
    inner_optimizer = optimizer_from_keras2(inner, custom_objects)
    if not dynamic:
        # Keras 3 removed the fixed scale: it is the inner optimizer's `loss_scale_factor` (the loss is
        # multiplied and the gradients divided by it), the same numbers
        inner_optimizer.loss_scale_factor = float(fixed)
        return inner_optimizer
    return LossScaleOptimizer(inner_optimizer, initial_scale=float(initial_scale), dynamic_growth_steps=int(growth))


# Keras 3 optimizer arguments tf.keras 2 does not take (dropped at their defaults).
_KERAS3_ONLY_OPTIMIZER_ARGS = {"loss_scale_factor": None, "gradient_accumulation_steps": None}
_KERAS3_ONLY_LEGACY_ARGS = {"weight_decay": None, "use_ema": False}


def _keras2_object(value, what):
    """A name stays a name; an object becomes Keras 2's `{"class_name", "config"}`."""
    from kerasish.saving import serialize_keras_object

    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_keras2_object(v, what) for v in value]
    if isinstance(value, dict):
        return {k: _keras2_object(v, what) for k, v in value.items()}
    data = _functions_as_names(serialize_keras_object(value))
    if isinstance(data, str):
        return data
    return _downgrade({"class_name": data.get("registered_name") or data["class_name"],
                       "config": data.get("config")}, what)


def _functions_as_names(data):
    """Keras 2 saves a (custom) loss/metric function by its name, also as a `MeanMetricWrapper`'s `fn`;
    Keras 3's `{"class_name": "function", "config": name}` is unknown to Keras 2."""
    if isinstance(data, dict):
        if data.get("class_name") == "function":
            return data.get("config")
        return {k: _functions_as_names(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_functions_as_names(v) for v in data]
    return data


def training_config_from_model(model):
    """Keras 2's `training_config` for a compiled kerasish model (None if not compiled)."""
    if not getattr(model, "compiled", False):
        return None
    compile_config = model.__dict__.get("_compile_config") or {}
    opt = compile_config.get("optimizer")
    optimizer_config = None
    lso = opt if hasattr(opt, "inner_optimizer") else getattr(model, "optimizer", None)
    if getattr(lso, "inner_optimizer", None) is None or lso.inner_optimizer is not getattr(opt, "inner_optimizer", opt):
        lso = None
    opt = getattr(opt, "inner_optimizer", opt)
    if hasattr(opt, "get_config"):
        inner = dict(opt.get_config())
        for key, default in _KERAS3_ONLY_OPTIMIZER_ARGS.items():
            if key in inner and inner[key] != default:
                raise ValueError(f"Cannot save the optimizer as Keras 2 HDF5: `{key}={inner[key]!r}` has no Keras 2 "
                                 "equivalent. Save as `.keras` instead.")
            inner.pop(key, None)
        if isinstance(inner.get("learning_rate"), dict):
            lr = inner["learning_rate"]
            inner["learning_rate"] = {"class_name": lr.get("class_name"), "config": lr.get("config")}
        from kerasish.optimizers import legacy as legacy_optimizers

        # a `keras.optimizers.legacy` optimizer, or one given Keras 2's `decay` (which only those took)
        inner["is_legacy_optimizer"] = isinstance(opt, legacy_optimizers.ALL_OBJECTS) or bool(inner.get("decay"))
        if inner["is_legacy_optimizer"]:
            # tf.keras 2 writes a legacy optimizer's config without the flag (its absence means legacy:
            # `keras.optimizers.deserialize`); Keras 2.12's legacy optimizers refuse it as an argument.
            del inner["is_legacy_optimizer"]
            # tf.keras 2's legacy optimizers (the only ones taking `decay`) refuse Keras 3's arguments.
            for key, default in _KERAS3_ONLY_LEGACY_ARGS.items():
                if inner.get(key, default) != default:
                    raise ValueError(f"Cannot save the optimizer as Keras 2 HDF5: `decay` with `{key}="
                                     f"{inner[key]!r}` has no Keras 2 equivalent. Save as `.keras` instead.")
                inner.pop(key, None)
            if not inner.get("use_ema"):
                for key in ("use_ema", "ema_momentum", "ema_overwrite_frequency"):
                    inner.pop(key, None)
        optimizer_config = {"class_name": type(opt).__name__, "config": inner}
        if lso is not None:  # a LossScaleOptimizer (compile's or the user's): tf.keras 2's layout
            # tf.keras 2 has two: `LossScaleOptimizerV3` around its (new) optimizers, and `LossScaleOptimizer`
            # (V1) around a legacy `OptimizerV2`, which V3 refuses with a TypeError at load. The inner
            # config is written as legacy when it has no `is_legacy_optimizer` flag (see above)
            legacy_inner = "is_legacy_optimizer" not in inner
            module = ("keras.optimizers.legacy" if isinstance(opt, legacy_optimizers.ALL_OBJECTS)
                      else "keras.optimizers")
            optimizer_config = {"class_name": "LossScaleOptimizer" if legacy_inner else "LossScaleOptimizerV3",
                                "config": {
                                    "inner_optimizer": {"module": module, "registered_name": None, **optimizer_config},
                                    "dynamic": True, "initial_scale": float(lso.initial_scale),
                                    "dynamic_growth_steps": int(lso.dynamic_growth_steps)}}
    return {
        "loss": _keras2_object(compile_config.get("loss"), "loss"),
        "metrics": _keras2_object(_resolved_metrics(model, compile_config, "metrics"), "metrics"),
        "weighted_metrics": _keras2_object(_resolved_metrics(model, compile_config, "weighted_metrics"),
                                           "weighted_metrics"),
        "loss_weights": compile_config.get("loss_weights"),
        "optimizer_config": optimizer_config,
    }


# the function each resolved "accuracy" / "crossentropy" metric class computes, by Keras 2 name
_RESOLVED_FUNCTIONS = {
    "BinaryAccuracy": "binary_accuracy", "CategoricalAccuracy": "categorical_accuracy",
    "SparseCategoricalAccuracy": "sparse_categorical_accuracy", "BinaryCrossentropy": "binary_crossentropy",
    "CategoricalCrossentropy": "categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
}


def _resolved_metrics(model, compile_config, key):
    """The `metrics` / `weighted_metrics` to write, with "accuracy"/"acc"/"crossentropy"/"ce" as the
    function training resolved them to (a `MeanMetricWrapper` named as the user spelled it), as tf.keras
    2 writes them once built: a bare "accuracy" in a Keras 2 file is resolved by tf.keras against the
    model's outputs (as if labels were one-hot), which is wrong for sparse labels. Unbuilt metrics, and
    nested per-output specs, are written as given."""
    from kerasish.trainers.compile_utils import _ACCURACY
    from kerasish.trainers.compile_utils import _CROSSENTROPY

    spec = compile_config.get(key)
    compiled = model.__dict__.get("_compile_metrics")
    if spec is None or compiled is None or not compiled.built:
        return spec
    sets = compiled._flat_metrics if key == "metrics" else compiled._flat_weighted_metrics
    names = compiled._names or []

    def resolve(leaves, built):
        if not isinstance(leaves, (list, tuple)) or built is None or len(leaves) != len(built.metrics):
            return leaves
        out = []
        for leaf, metric in zip(leaves, built.metrics):
            fn = _RESOLVED_FUNCTIONS.get(type(metric).__name__)
            if isinstance(leaf, str) and leaf.lower() in _ACCURACY + _CROSSENTROPY and fn is not None:
                leaf = {"class_name": "MeanMetricWrapper", "config": {"name": leaf, "dtype": "float32", "fn": fn}}
            out.append(leaf)
        return out

    if len(sets) == 1:
        return resolve(spec, sets[0])
    if isinstance(spec, dict) and all(k in names for k in spec):
        return {k: resolve(v if isinstance(v, (list, tuple)) else [v], sets[names.index(k)]) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)) and len(spec) == len(sets) and all(isinstance(v, (list, tuple)) for v in spec):
        return [resolve(v, built) for v, built in zip(spec, sets)]
    return spec
