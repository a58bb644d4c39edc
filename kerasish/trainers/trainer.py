"""`Trainer`: compile / fit / evaluate / predict for `keras.Model` (Keras 3
semantics on torch).

`Trainer` is a mixin with no `__init__`: `Model(Trainer, Layer)` keeps its
constructor. The training state has class-level defaults and is read as plain
attributes; the objects that are themselves modules (the loss tracker, the
compiled loss and metrics, a Keras optimizer) are stored with
`_set_untracked`, so they are never registered as torch submodules and
`state_dict()` holds only the model's own weights and buffers.

The default train step is Keras 3's torch step: forward with
`training=True` (plain `self(x)` when `call` takes no `training`), `zero_grad`, `loss = compiled loss + sum(model.losses)`,
`backward`, `optimizer.apply(grads, trainable_weights)` (a plain
`torch.optim.Optimizer` gets `step()`), then the metric updates. Metric
values stay device tensors: they are read back (one sync) only when a
callback or the progress bar needs them, at most every 50 ms for the bar, and
at the end of each epoch.
"""

from __future__ import annotations

import functools
import inspect
import operator
import warnings

import torch

from kerasish.layers import call_context
from kerasish.layers import tracking
from kerasish.layers.layer import Layer
from kerasish.trainers import data_adapters
from kerasish.trainers.keras2_compat import Keras2TrainerAPI
from kerasish.trainers.loops import TrainerLoops
from kerasish.trainers.stateless_api import StatelessTrainerAPI
from kerasish.trainers.compile_utils import CompileLoss
from kerasish.trainers.compile_utils import CompileMetrics
from kerasish.trainers.data_adapters import unpack_x_y_sample_weight
from kerasish.variables import forget_autocast_casts



def _never_updated(tracker) -> bool:
    """Whether a `Mean` tracker has had no update since its last reset (its count is 0)."""
    count = getattr(tracker, "count", None)
    return count is not None and float(count) == 0.0


class NotCompiledError(RuntimeError, ValueError):
    """`fit`/`evaluate` before `compile()`: a RuntimeError (Keras 2, torch
    users) and a ValueError (what Keras 3 raises)."""


def _batch_size_of(x) -> int:
    if type(x) is torch.Tensor:  # (per step: skip the generic flatten)
        return int(x.shape[0]) if x.dim() else 1
    for leaf in data_adapters._flatten(x):
        if leaf is not None and hasattr(leaf, "shape") and len(leaf.shape):
            return int(leaf.shape[0])
    return 1


_BUILTIN_LOSSES: dict = {}


def _builtin_losses(cls) -> bool:
    """Whether `cls.losses` is the Layer (or Model) property that
    `_additional_losses` may shortcut (decided once per class)."""
    found = _BUILTIN_LOSSES.get(cls)
    if found is None:
        found = _BUILTIN_LOSSES[cls] = _is_builtin_losses(cls)
    return found


def _is_builtin_losses(cls) -> bool:
    prop = cls.losses
    if prop is Layer.losses:
        return True
    try:
        from kerasish.models.model import Model
    except ImportError:  # pragma: no cover - during package init
        return False
    return prop is Model.losses


# A dim of a batch tensor that has taken this many distinct sizes is marked
# dynamic: the full and the last, smaller batch keep static graphs, while
# sizes that vary from batch to batch (sequence lengths, bucketed data)
# share one symbolic graph instead of recompiling until dynamo's
# `recompile_limit` (8) sends the step back to eager mode.
_STATIC_SIZES_PER_DIM = 2

_REQUIRES_GRAD = operator.attrgetter("requires_grad")
_IS_NONE = functools.partial(operator.is_, None)


def _compile_backend():
    """The `torch.compile` backend of `jit_compile=True` (tests count graphs with their own)."""
    return "inductor"


class _DynamicDims:
    """Marks the dims of a step's input tensors that keep changing size as
    dynamic (`torch._dynamo.maybe_mark_dynamic`: a dim the model needs
    static, such as a feature size, stays specialized without an error)."""

    def __init__(self):
        self._seen = {}  # (leaf index, dim) -> distinct sizes (up to the limit)
        self._dynamic = set()

    def __call__(self, data):
        for i, leaf in enumerate(data_adapters._flatten(data)):
            if not isinstance(leaf, torch.Tensor):
                continue
            for dim, size in enumerate(leaf.shape):
                key = (i, dim)
                if key not in self._dynamic:
                    sizes = self._seen.setdefault(key, set())
                    sizes.add(int(size))
                    if len(sizes) > _STATIC_SIZES_PER_DIM:
                        self._dynamic.add(key)
                        del self._seen[key]
                if key in self._dynamic:
                    torch._dynamo.maybe_mark_dynamic(leaf, dim)
        return data


def _is_loss_scale_optimizer(opt) -> bool:
    """A `LossScaleOptimizer` scales the loss itself: fit then needs no GradScaler."""
    from kerasish.optimizers.loss_scale_optimizer import LossScaleOptimizer

    return isinstance(opt, LossScaleOptimizer)


def _keras_optimizer_class():
    """`kerasish.optimizers.Optimizer` (imported on first use: the optimizers
    package imports the trainers)."""
    global _KERAS_OPTIMIZER
    if _KERAS_OPTIMIZER is None:
        from kerasish.optimizers import Optimizer

        _KERAS_OPTIMIZER = Optimizer
    return _KERAS_OPTIMIZER


_KERAS_OPTIMIZER = None


def _compiled_after_first_call(fn):
    """`torch.compile(fn)`, except that the first call runs eagerly: it
    builds the model, the optimizer state and the metrics (Keras builds
    them symbolically before compiling), which must not happen under
    tracing."""
    # dynamic=False: a static graph per batch shape (the last, smaller batch
    # gets its own), rather than symbolic shapes everywhere, which inductor
    # does not support for every conv/pool configuration; dims that keep
    # varying are marked dynamic by `_DynamicDims`
    compiled = torch.compile(fn, dynamic=False, backend=_compile_backend())
    mark = _DynamicDims()
    state = {"first": True}

    def step(data):
        if state["first"]:
            state["first"] = False
            mark(data)
            return fn(data)
        return compiled(mark(data))

    return step


def _accepts_training(fn) -> bool:
    """Whether `fn` (a bound `compute_loss`) takes a `training` argument
    (Keras 3 added it; Keras 2-era overrides do not have it)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins / C callables
        return True
    return any(p.name == "training" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


class Trainer(TrainerLoops, Keras2TrainerAPI, StatelessTrainerAPI):
    """The Keras training API, mixed into `keras.Model` (the loops live in
    `kerasish/trainers/loops.py`)."""

    # ------------------------------------------- state (class-level defaults)
    _compiled = False
    _optimizer = None
    _loss = None
    _compile_loss = None
    _compile_metrics = None
    _loss_tracker = None
    _compile_config = None
    _stop_training = False
    _history = None
    _jit_compile = False
    _run_eagerly = False
    _steps_per_execution = 1
    _auto_scale_loss = True
    _grad_scaler = None
    _in_fit = False
    _no_fp16_layers = False  # during one `fit`: no sublayer was mixed_float16 at its first step
    _step_fns = None
    _train_vars = None
    _zero_grad_params = None
    _rg_watch = None  # (parameters, their requires_grad) when the cached weight lists were made
    _loss_sources = None
    _loss_takes_training = None
    _dist_run = None
    _eval_epoch_iterator = None
    _stop_evaluating = False
    _stop_predicting = False

    def _set_untracked(self, name, value):
        """Sets an attribute without `nn.Module`'s registration (for module
        values such as metrics and optimizers, which must not become
        submodules of the model or enter its `state_dict`)."""
        object.__setattr__(self, name, value)

    @property
    def compiled(self) -> bool:
        return self._compiled

    @property
    def optimizer(self):
        return self._optimizer

    @optimizer.setter
    def optimizer(self, value):
        self._set_untracked("_optimizer", value)

    @property
    def loss(self):
        return self._loss

    @loss.setter
    def loss(self, value):
        self._set_untracked("_loss", value)

    @property
    def stop_training(self) -> bool:
        return self._stop_training

    @stop_training.setter
    def stop_training(self, value):
        self._stop_training = bool(value)

    @property
    def history(self):
        return self._history

    @history.setter
    def history(self, value):
        self._set_untracked("_history", value)

    @property
    def jit_compile(self) -> bool:
        return self._jit_compile

    @jit_compile.setter
    def jit_compile(self, value):
        self._jit_compile = bool(value) and self._supports_jit_compile()
        self._step_fns = {}

    def _supports_jit_compile(self) -> bool:
        """Keras 3's rule: a layer with `supports_jit = False` turns
        `jit_compile=True` off, with its warning."""
        if all(getattr(layer, "supports_jit", True) for layer in self._flatten_layers(include_self=True)):
            return True
        warnings.warn("Model doesn't support `jit_compile=True`. Proceeding with `jit_compile=False`.", stacklevel=3)
        return False

    @property
    def run_eagerly(self) -> bool:
        return self._run_eagerly

    @run_eagerly.setter
    def run_eagerly(self, value):
        self._run_eagerly = bool(value)

    @property
    def steps_per_execution(self) -> int:
        return self._steps_per_execution

    # ------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True, **kwargs):
        """Configures the model for training.

        Args:
            optimizer: Name, `keras.optimizers.Optimizer` or any
                `torch.optim.Optimizer` (already bound to the model's
                parameters). Defaults to "rmsprop".
            loss: Name, `keras.losses.Loss`, function `fn(y_true, y_pred)`,
                or a list/dict of them (one per output).
            loss_weights: Float, or list/dict of floats (one per output).
            metrics: List (or per-output list/dict) of names, `Metric`s or
                functions, computed without sample weights. "accuracy"/"acc"
                and "crossentropy"/"ce" are resolved from the shapes.
            weighted_metrics: Metrics computed with the sample/class weights.
            run_eagerly: Never `torch.compile` the steps. Defaults to False.
            steps_per_execution: Batches per step call; callbacks' batch
                hooks run once per group (Keras's torch backend refuses >1;
                here it is supported).
            jit_compile: True wraps the train/test/predict steps in
                `torch.compile`; "auto" (default) means False, as Keras on torch.
            auto_scale_loss: With a "mixed_float16" model, wrap a Keras
                optimizer in a `LossScaleOptimizer` as Keras 3 does
                (`model.optimizer.inner_optimizer` is the one passed; initial
                scale 2**15, growth every 2000 steps). A `torch.optim`
                optimizer, or a float32 model with "mixed_float16" layers
                (e.g. a Keras mixed_float16 file loaded under a float32
                global policy; Keras would not scale), is scaled by fit with
                a `torch.amp.GradScaler` of the same policy instead.
                Defaults to True.
            **kwargs: Keras 2's `sample_weight_mode` only (`None`,
                `"temporal"`, or a list/dict of those per output), accepted
                and ignored as tf.keras 2 does: a 2-D `sample_weight` weighs
                each timestep of a sequence output without it.

        Raises:
            ValueError: unknown optimizer, loss or metric names (checked now,
                Keras finds out at the first batch), bad `loss_weights`, a
                bad `sample_weight_mode`.
            TypeError: any other keyword argument.
        """
        if kwargs:
            from kerasish.trainers.keras2_compat import check_keras2_compile_kwargs

            check_keras2_compile_kwargs(kwargs)
        if loss is not None or metrics is not None or weighted_metrics is not None:
            # new, unbuilt compiled loss / metrics: Keras's next fit or evaluate peeks at a batch to
            # build them (see TrainerLoops._keras_peek_draws); a compile with none keeps the old ones
            # ("loss": only a compiled loss to build, which a `compute_loss` call before fit builds too)
            self.__dict__["_keras_peek_pending"] = (
                True if metrics is not None or weighted_metrics is not None else "loss"
            )
        from kerasish import optimizers
        from kerasish.metrics import Mean

        if isinstance(optimizer, torch.optim.Optimizer):
            opt = optimizer
        else:
            opt = optimizers.get(optimizer)
        try:
            output_names = getattr(self, "output_names", None)
        except Exception:
            output_names = None
        # Keras 3 keeps the previous compile's loss (and `model.loss`) when recompiling without one
        compile_loss = (
            CompileLoss(loss, loss_weights, output_names=output_names)
            if loss is not None
            else self.__dict__.get("_compile_loss")
        )
        kept_loss = loss if loss is not None else self.__dict__.get("_loss")
        compile_metrics = (
            CompileMetrics(metrics, weighted_metrics, output_names=output_names)
            if metrics is not None or weighted_metrics is not None
            # Keras 3 keeps the previous compile's metrics when recompiling without any
            else self.__dict__.get("_compile_metrics")
        )
        if not isinstance(steps_per_execution, int) or steps_per_execution < 1:
            raise ValueError(
                f"`steps_per_execution` must be a positive integer. Received: steps_per_execution={steps_per_execution}"
            )
        if jit_compile == "auto":
            jit_compile = False
        if jit_compile and run_eagerly:
            warnings.warn(
                "If `run_eagerly` is True, then `jit_compile` cannot also be True. Disabling `jit_compile`.",
                stacklevel=2,
            )
            jit_compile = False
        user_opt = opt
        opt = self._wrap_for_loss_scaling(opt, auto_scale_loss)
        for name, value in (("_optimizer", opt), ("_loss", kept_loss), ("_compile_loss", compile_loss),
                            ("_compile_metrics", compile_metrics), ("_loss_tracker", Mean(name="loss"))):
            self._set_untracked(name, value)
        self._jit_compile = bool(jit_compile) and self._supports_jit_compile()
        self._run_eagerly = bool(run_eagerly)
        self._steps_per_execution = steps_per_execution
        self._auto_scale_loss = auto_scale_loss
        self._grad_scaler = None
        self._step_fns = {}
        self._train_vars = None
        self._zero_grad_params = None
        self._rg_watch = None
        self._loss_sources = None
        self._loss_takes_training = None
        self._stop_training = False
        self._set_untracked("_compile_config", {
            "optimizer": user_opt, "loss": loss, "loss_weights": loss_weights, "metrics": metrics,
            "weighted_metrics": weighted_metrics, "run_eagerly": run_eagerly,
            "steps_per_execution": steps_per_execution, "jit_compile": jit_compile,
        })
        self._compiled = True
        self._snapshot_compiled_trainable()

    def _wrap_for_loss_scaling(self, opt, auto_scale_loss):
        """Keras 3's `compile` rule: a model whose own policy is "mixed_float16" gets its Keras optimizer
        wrapped in a `LossScaleOptimizer` (`model.optimizer.inner_optimizer` is the one passed). A plain
        `torch.optim.Optimizer` is not wrapped (fit scales it with a `torch.amp.GradScaler`, the same
        numbers), nor is the optimizer of a float32 model with mixed_float16 layers (Keras does not scale
        those at all; fit's GradScaler keeps their float16 gradients from underflowing)."""
        if not (auto_scale_loss and opt is not None
                and getattr(getattr(self, "dtype_policy", None), "name", None) == "mixed_float16"
                and isinstance(opt, _keras_optimizer_class()) and not _is_loss_scale_optimizer(opt)):
            return opt
        from kerasish.optimizers.loss_scale_optimizer import LossScaleOptimizer

        wrapped = LossScaleOptimizer(opt, name="loss_scale_optimizer")
        wrapped._made_by_compile = True  # warns when a custom train_step never calls `scale_loss`
        return wrapped

    def get_compile_config(self) -> dict:
        """The `compile()` arguments, serialized (empty before compile)."""
        from kerasish.saving import serialize_keras_object

        if not self.compiled:
            return {}
        out = {}
        for key, value in self._compile_config.items():
            if isinstance(value, torch.optim.Optimizer) and not hasattr(value, "get_config"):
                value = None  # a plain torch optimizer has no Keras config
            try:
                out[key] = serialize_keras_object(value)
            except TypeError:
                out[key] = None
        return out

    def compile_from_config(self, config: dict) -> None:
        """Compiles the model from `get_compile_config()`'s output."""
        from kerasish import losses, metrics, optimizers

        config = dict(config)
        if isinstance(config.get("optimizer"), (dict, str)):
            config["optimizer"] = optimizers.get(config["optimizer"])
        elif config.get("optimizer") is None:
            config.pop("optimizer", None)

        def de(value, getter):
            if isinstance(value, dict) and "class_name" in value:
                return getter(value)
            if isinstance(value, dict):
                return {k: de(v, getter) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [de(v, getter) for v in value]
            return value

        config["loss"] = de(config.get("loss"), losses.get)
        config["metrics"] = de(config.get("metrics"), metrics.get)
        config["weighted_metrics"] = de(config.get("weighted_metrics"), metrics.get)
        self.compile(**config)

    def _assert_compile_called(self, method_name=None):
        if not self.compiled:
            raise NotCompiledError("You must call `compile()` before using the model.")

    def _assert_grad_enabled(self, method_name):
        """The built-in training step needs autograd: under `torch.no_grad()` / `torch.inference_mode()`
        its `backward()` would fail deep inside torch ("element 0 of tensors does not require grad", as
        in Keras on torch); say why up front. A custom `train_step` decides for itself."""
        if torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
            return
        if _overridden(self, "train_step"):
            return
        mode = "torch.inference_mode()" if torch.is_inference_mode_enabled() else "torch.no_grad()"
        raise RuntimeError(
            f"`{method_name}` was called under {mode}: training computes gradients with autograd, which is "
            f"switched off there. Call `{method_name}` outside that block (`predict` and `evaluate` may stay "
            "inside it)."
        )

    # ------------------------------------------------------------- metrics
    @property
    def metrics(self) -> list:
        """[loss tracker, compile metrics, per-output loss trackers, then the
        metrics of `add_metric` and Metric attributes] (Keras 3)."""
        out = []
        if self._compiled:
            out.append(self._loss_tracker)
            if self._compile_metrics is not None:
                out.append(self._compile_metrics)
            if self._compile_loss is not None:
                out.extend(self._compile_loss.metrics)
        for m in super().metrics:
            if not any(m is o for o in out):
                out.append(m)
        return out

    @property
    def metrics_names(self) -> list:
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        """Resets the state of every metric in `metrics`."""
        for m in self.metrics:
            m.reset_state()

    def get_metrics_result(self) -> dict:
        """`{name: value}` of every metric (the compile metrics' dict merged
        in); values are tensors."""
        out = {}
        for m in self.metrics:
            if isinstance(m, CompileMetrics) and not m.built:
                continue
            result = m.result()
            if isinstance(result, dict):
                out.update(result)
            else:
                out[m.name] = result
        return out

    def compute_metrics(self, x, y, y_pred, sample_weight=None) -> dict:
        """Updates the compiled metrics and returns `get_metrics_result()`."""
        cm = self._compile_metrics
        if cm is not None:
            cm.update_state(y, y_pred, sample_weight)
        return self.get_metrics_result()

    def _get_metrics_result_or_logs(self, logs):
        metric_logs = self.get_metrics_result()
        if logs is None or (isinstance(logs, dict) and set(logs) == set(metric_logs)):
            tracker = self._loss_tracker
            if logs is not None and tracker is not None and "loss" in logs and _never_updated(tracker):
                # a custom `train_step` / `test_step` returning `{"loss": loss}` without updating the loss
                # tracker (tensorflow.org's text_generation `CustomTraining`): Keras 3 logs the tracker's
                # empty 0.0 in its place, a silently wrong History; the step's own loss is logged instead,
                # as tf.keras 2 did
                metric_logs["loss"] = logs["loss"]
            return metric_logs
        return logs

    def _flatten_metrics_in_order(self, logs):
        names = []
        for m in self.metrics:
            if isinstance(m, CompileMetrics):
                names += [sub.name for sub in m.metrics]
            else:
                names.append(m.name)
        results = [logs[n] for n in names if n in logs]
        results += [logs[k] for k in sorted(logs) if k not in names]
        return results[0] if len(results) == 1 else results

    # ---------------------------------------------------------------- loss
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Total loss: the compiled loss plus `model.losses` (regularization
        and `add_loss` terms). Override it for a custom loss.

        Raises:
            ValueError: when there is no loss at all.
        """
        total = None
        cl = self._compile_loss
        if cl is not None:
            total = cl(y, y_pred, sample_weight)
            if self.__dict__.get("_keras_peek_pending") == "loss":
                # Keras's compiled loss is built now: its next fit / evaluate skips the peek (`_symbolic_build`)
                del self.__dict__["_keras_peek_pending"]
        for extra in self._additional_losses():
            if not extra.is_floating_point():
                extra = extra.float()
            extra = extra.sum()
            total = extra if total is None else total + extra
        if total is None:
            raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
        return total

    def _additional_losses(self) -> list:
        """`self.losses`, with a shortcut for the common case: when no layer
        holds `add_loss` tensors or callables, the list is just the
        regularization terms of the weights collected once per compile (so
        the layer tree is not walked at every step). Overridden `losses`
        properties are always called."""
        if not _builtin_losses(type(self)):
            return self.losses
        sources = self._loss_sources
        if sources is None:
            layers = list(self._flatten_layers(include_self=True))
            has_callables = any(getattr(layer, "_callable_losses", None) for layer in layers)
            regs = [(w, w.regularizer) for w in self.trainable_weights if getattr(w, "regularizer", None) is not None]
            sources = (has_callables, regs)
            if self.built:
                # untracked: a tracked tuple of weights would become a child
                # module, reorder `weights` and add `state_dict` keys
                self._set_untracked("_loss_sources", sources)
        has_callables, regs = sources
        # like Keras, what trains is fixed at compile time (re-compile after
        # changing `trainable`); add_loss tensors of the last call are live
        # (`__dict__`: Layer.__getattr__'s miss path is slow on this per-step read)
        if has_callables or call_context.state().losses or self.__dict__.get("_persistent_losses"):
            return self.losses
        if not regs:
            return []
        out = [reg(w) for w, reg in regs]
        # a sharded weight's (ModelParallel) term is a DTensor: its whole value joins the plain losses
        return [t.full_tensor() if hasattr(t, "full_tensor") else t for t in out]

    def _compute_loss_compat(self, x, y, y_pred, sample_weight, training):
        """`compute_loss`, without `training` for overrides written before
        Keras 3 added it (decided once from the signature, so a TypeError
        raised inside a user's `compute_loss` is never swallowed)."""
        if type(self).compute_loss is _COMPUTE_LOSS and "compute_loss" not in self.__dict__:
            # not overridden (per step: no keyword call, no signature check)
            return _COMPUTE_LOSS(self, x, y, y_pred, sample_weight, training)
        takes_training = self._loss_takes_training
        if takes_training is None:
            takes_training = self._loss_takes_training = _accepts_training(self.compute_loss)
        if takes_training:
            return self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        return self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)

    def _track_loss(self, x, loss, n=None):
        tracker = self._loss_tracker
        if n is None:
            n = _batch_size_of(x)
        if n == 0:
            return  # an empty share of a data-parallel batch: its loss is empty/NaN and weighs nothing
        if loss.ndim == 0:
            tracker._update_scalar(loss, n)
        else:
            tracker.update_state(loss, sample_weight=n)

    # --------------------------------------------------------------- steps
    def _param_slots(self) -> list:
        """`(owner._parameters, name, parameter)` of every registered
        parameter: a cached list stays valid while each slot still holds
        the same object (FSDP2's `fully_shard`, re-building or swapping a
        weight replaces it, and the caches are rebuilt)."""
        return [(m._parameters, name, p) for m in self.modules() for name, p in m._parameters.items() if p is not None]

    def _cached_params(self, attr, collect) -> list:
        cached = getattr(self, attr)
        version = tracking.structure_version()
        if cached is not None and cached[2] == version:  # (no layer added, removed or replaced since)
            params, slots, _ = cached
            for owner, name, p in slots:
                if owner.get(name) is not p:
                    break
            else:
                return params
        params = collect()
        if self.built:
            mine = {id(p) for p in params}
            slots = [s for s in self._param_slots() if id(s[2]) in mine]
            self._set_untracked(attr, (params, slots, version))
        return params

    def _trainable_variables_cached(self) -> list:
        return self._cached_params("_train_vars", lambda: list(self.trainable_weights))

    def _grad_params(self) -> list:
        """The parameters `nn.Module.zero_grad` would reset (all of them); read first in every training
        step. `requires_grad` flips (`p.requires_grad_(False)` / `p.requires_grad = True`, torch's way to
        freeze and unfreeze, which no kerasish code sees) make the cached weight lists be made again:
        checked in full when `fit` / `train_on_batch` start (`_notice_module_edits`), and step by step
        for the weights frozen when the lists were made (an unfrozen one joins the step; a Keras optimizer
        built without it raises Keras's "Unknown variable", as after `trainable = True` without
        recompiling) and, in `_apply_gradients`, for a weight frozen since (it leaves the step). Before,
        `fit` went on with the lists of its first step."""
        watch = self._rg_watch
        if watch is not None and watch[2] and any(map(_REQUIRES_GRAD, watch[2])):
            self._weight_lists_changed()
        return self._cached_params("_zero_grad_params", self._all_params_watched)

    def _all_params_watched(self) -> list:
        # every parameter, as `nn.Module.zero_grad`: a weight frozen after a step keeps that step's
        # gradient otherwise, which a torch optimizer holding it would apply at every later step
        params = self._walk_params()
        if self.built:
            flags = tuple(map(_REQUIRES_GRAD, params))
            frozen = [p for p, flag in zip(params, flags) if not flag]
            self._set_untracked("_rg_watch", (params, flags, frozen))
        return params

    def _weight_lists_changed(self) -> None:
        tracking.structure_changed()
        self._loss_sources = None  # (the regularized weights are the trainable ones)

    def _notice_module_edits(self) -> None:
        """At the start of `fit` / `train_on_batch`: parameters added, removed or replaced by torch-side
        edits the layer tracking does not see (`nn.ModuleList.append` / `insert` / `del`, `nn.ModuleDict`
        updates, `_modules[name] = layer`), or frozen / unfrozen, make the cached weight lists be made
        again. (Within one `fit`, kerasish-tracked edits and `requires_grad` flips are followed step by
        step; torch-side module edits from a callback are not.)"""
        watch = self._rg_watch
        if watch is None:
            return
        params, known = self._walk_params(), watch[0]
        if (len(params) != len(known) or any(a is not b for a, b in zip(params, known))
                or tuple(map(_REQUIRES_GRAD, params)) != watch[1]):
            self._weight_lists_changed()

    def _walk_params(self) -> list:
        """`self.parameters()` for the trainer's own use: the same list, without the warning an unbuilt
        custom layer gives a user's `parameters()` walk (the lists kept are made after the first batch
        built the model; before it, a partial list has nothing to miss)."""
        seen, out = set(), []
        for module in self.modules():
            for p in module._parameters.values():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def _apply_gradients(self, loss, n_samples=1):
        """backward + optimizer update (with dynamic loss scaling under
        mixed_float16); under `DataParallel` the gradients are averaged over
        the ranks in between, `n_samples` weighting this rank's share (an
        empty share, `n_samples=0`, contributes nothing)."""
        opt = self.optimizer
        weights = self._trainable_variables_cached()
        if not weights:
            warnings.warn("The model does not have any trainable weights.", stacklevel=3)
            return
        run = self._dist_run
        if run is not None:
            # (an empty share still runs backward: SyncBN's and FSDP2's collectives live there)
            loss = run.before_backward(loss, n_samples)
        scaler = self._grad_scaler_for(loss)
        if scaler is not None:
            scaler.scale(loss).backward()
            weights = self._trainable_variables_cached()
            if run is not None:
                run.all_reduce_grads(weights, n_samples)
            if isinstance(opt, _keras_optimizer_class()) and not opt.built:
                opt.build(weights)
            scaler.step(opt)
            scaler.update()
            forget_autocast_casts()
            return
        keras_opt = isinstance(opt, _keras_optimizer_class())
        if keras_opt:  # (`scale_loss` is the Keras optimizers' hook; a torch optimizer has none)
            loss = opt.scale_loss(loss)
        elif hasattr(opt, "scale_loss"):
            loss = opt.scale_loss(loss)
        loss.backward()
        # fetched again: FSDP2 registers unsharded parameters between its forward and backward
        weights = self._trainable_variables_cached()
        if run is not None:
            run.all_reduce_grads(weights, n_samples)
        if keras_opt:
            grads = [w.grad for w in weights]
            if any(map(_IS_NONE, grads)) and not all(map(_REQUIRES_GRAD, weights)):
                # a weight frozen with `requires_grad_(False)` since the list was made: it leaves the step
                # (as Keras's trainer reads the trainable variables every step), without a warning
                self._weight_lists_changed()
                weights = self._trainable_variables_cached()
                grads = [w.grad for w in weights]
            with torch.no_grad():
                opt.apply(grads, weights)
        else:
            opt.step()
            forget_autocast_casts()  # a torch optimizer wrote the weights in place

    def _grad_scaler_for(self, loss):
        scaler = self._grad_scaler
        if (scaler is None and self._auto_scale_loss and not self._no_fp16_layers
                and not _is_loss_scale_optimizer(self.optimizer)):
            # the model's policy (Keras's rule), or any sublayer's: a Keras mixed_float16 model loaded
            # under a float32 global policy has mixed layers inside a float32 model, and its float16
            # gradients would otherwise underflow unscaled
            if any(getattr(getattr(m, "dtype_policy", None), "name", None) == "mixed_float16"
                   for m in self.modules()):
                if not self._has_float16_weights():
                    scaler = self._grad_scaler = torch.amp.GradScaler(
                        loss.device.type, init_scale=2.0**15, growth_factor=2.0, backoff_factor=0.5,
                        growth_interval=2000
                    )
                elif self._in_fit:
                    self._no_fp16_layers = True  # (no scaler for this fit: checked, warned once)
            elif self._in_fit:
                # decided once per `fit` call (Keras decides once, at compile): the module walk
                # cost ~3 us a step, a few percent of a small model's step
                self._no_fp16_layers = True
        return scaler

    def _has_float16_weights(self):
        """A trainable float16 variable (a `dtype="float16"` layer) rules fit's GradScaler out: torch's
        GradScaler refuses to unscale float16 gradients ("Attempting to unscale FP16 gradients"). A
        float32 model is then not loss-scaled, as Keras scales none; a "mixed_float16" model with a
        torch optimizer is not either, with a warning (a Keras optimizer gets Keras's
        LossScaleOptimizer at compile, which unscales float16 gradients)."""
        if not any(w.dtype == torch.float16 for w in self._trainable_variables_cached()):
            return False
        if getattr(getattr(self, "dtype_policy", None), "name", None) == "mixed_float16":
            warnings.warn(
                "The model has float16 trainable variables, whose gradients torch's GradScaler cannot "
                "unscale: `fit` does not scale the loss of this mixed_float16 model's torch optimizer. Use a "
                "Keras optimizer (wrapped in a LossScaleOptimizer by `compile`) for dynamic loss scaling.",
                stacklevel=4,
            )
        return True

    def _train_step_impl(self, data, want_logs=True):
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        # `self.zero_grad()` without walking the module tree; before the forward, while FSDP2's
        # sharded parameters (which receive the gradients) are the registered ones
        for p in self._grad_params():
            p.grad = None
        # as Keras 3's trainers: `training=True` only to a `call` that takes it; a subclassed
        # model whose `call` has no `training` runs its layers in their default (inference) mode
        y_pred = self(x, training=True) if self._call_has_training else self(x)
        loss = self._compute_loss_compat(x, y, y_pred, sample_weight, training=True)
        n = _batch_size_of(x)
        self._track_loss(x, loss, n)
        if self.optimizer is None:
            raise ValueError("The model was compiled without an optimizer; `fit` needs one.")
        self._apply_gradients(loss, n)
        if want_logs or _overridden(self, "compute_metrics"):
            with torch.no_grad():
                return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        cm = self._compile_metrics
        if cm is not None:
            with torch.no_grad():
                cm.update_state(y, y_pred, sample_weight)
        return None

    def train_step(self, data):
        """One training step on a batch `data` = `x`, `(x, y)` or
        `(x, y, sample_weight)`; returns the metric logs. Override it for a
        custom step (see the Keras 3 torch guide: use `self.zero_grad()`,
        `self.compute_loss(...)`, `loss.backward()`, `self.optimizer.apply(...)`
        or `self.optimizer.step()`, and `self.metrics`)."""
        return self._train_step_impl(data, want_logs=True)

    def _test_step_impl(self, data, want_logs=True):
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False) if self._call_has_training else self(x)
        loss = self._compute_loss_compat(x, y, y_pred, sample_weight, training=False)
        self._track_loss(x, loss)
        if want_logs or _overridden(self, "compute_metrics"):
            return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        cm = self._compile_metrics
        if cm is not None:
            cm.update_state(y, y_pred, sample_weight)
        return None

    def test_step(self, data):
        """One evaluation step (no gradients); returns the metric logs."""
        return self._test_step_impl(data, want_logs=True)

    def predict_step(self, data):
        """One prediction step: `self(x, training=False)` (`self(x)` when
        `call` takes no `training`, as in Keras 3)."""
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False) if self._call_has_training else self(x)

    def __getstate__(self):
        # the per-batch step functions are closures over this very model: a
        # copy (deepcopy, pickle, torch.save) builds its own on its first step
        # instead of training the original through them
        state = super().__getstate__()
        state["_step_fns"] = None
        return state

    def _step_function(self, kind: str):
        """The function the loops call per batch (`torch.compile`d when
        `jit_compile=True`). Returns `(fn, lazy)`: `lazy` means `fn` returns
        None and the logs are `get_metrics_result()`."""
        if kind == "train":
            self._notice_module_edits()
            self._check_compiled_trainable()
        fns = self._step_fns
        if fns is None:
            fns = self._step_fns = {}
        if kind in fns:
            return fns[kind]
        if kind == "train":
            lazy = not _overridden(self, "train_step") and not _overridden(self, "get_metrics_result")
            if lazy:

                def fn(data):
                    return self._train_step_impl(data, False)
            else:

                def fn(data):
                    return self.train_step(data)
        elif kind == "test":
            lazy = not _overridden(self, "test_step") and not _overridden(self, "get_metrics_result")

            def fn(data):
                with torch.no_grad():
                    return self._test_step_impl(data, want_logs=False) if lazy else self.test_step(data)
        else:
            lazy = False

            def fn(data):
                with torch.no_grad():
                    return self.predict_step(data)
        if self.jit_compile and not self.run_eagerly:
            fn = _compiled_after_first_call(fn)
        fns[kind] = (fn, lazy)
        return fns[kind]

    # ------------------------------------------------------------- helpers
    def _model_device(self) -> torch.device:
        for p in self._walk_params():
            return p.device
        for b in self.buffers():
            return b.device
        return self._device_hint or torch.device("cpu")

    def _metrics_to(self, device):
        metrics = list(self.metrics)
        cl = self._compile_loss
        if cl is not None:
            metrics += cl.metrics
        for m in metrics:
            first = next(iter(m.variables), None) if not isinstance(m, CompileMetrics) else None
            if isinstance(m, CompileMetrics) or first is None or first.device != device:
                m.to(device)
                m._device_hint = device


_COMPUTE_LOSS = Trainer.compute_loss


def _overridden(model, name: str) -> bool:
    """Whether `model.<name>` is not Trainer's own: overridden by its class, or
    set on the instance (`model.train_step = fn`), which Keras calls too."""
    return getattr(type(model), name) is not getattr(Trainer, name) or name in model.__dict__
