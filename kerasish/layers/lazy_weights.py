"""Deferred build through torch's lazy-parameter machinery.

A built-in layer whose trainable weight names are known from its config
(`Dense`: `kernel`, `bias`) registers them as `nn.UninitializedParameter`s
when it is constructed, as `nn.LazyLinear` does. `build` materializes each
one *in place* into a `TrainableVariable` (the same Python object gets its
data and its class), so an optimizer made before the first call holds the
real weights, and DDP wrapped before it gives torch's own refusal
("Modules with uninitialized parameters can't be used with
`DistributedDataParallel`").

Keras semantics are kept: an unbuilt layer has no `weights`, no
`state_dict()` entries and `count_params()` raises; placeholders a build
did not use are dropped. A layer whose weights cannot exist before `build`
(a custom layer, or a built-in one with input-dependent sublayers) has no
placeholders; `Layer.parameters()` then warns that the list is partial, and
raises where a partial list is silently wrong (see `warn_if_partial`).

A deep copy of an unbuilt layer (`AveragedModel(model)`, an EMA model made
with `copy.deepcopy`) stays unbuilt when its original builds. Pairing the two
weight by weight would skip whatever the copy lacks, so once the original is
built, walking the copy's parameters or `state_dict()` from user code raises
(see `check_unbuilt_copy`).
"""

from __future__ import annotations

import os
import sys
import warnings
import weakref

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

from kerasish.variables import TrainableVariable


def is_lazy(value) -> bool:
    return isinstance(value, UninitializedParameter)


def _defining_class(cls, attr):
    for klass in cls.__mro__:
        if attr in klass.__dict__:
            return klass
    return None


def declared_names(layer):
    """The trainable weight names `layer.build` will create, or None when
    unknown. A declaration counts only when made by the class whose `build`
    runs (a subclass with its own `build` may create other weights)."""
    cls = type(layer)
    declaring = _defining_class(cls, "_lazy_trainable_weights")
    if declaring is None or declaring is not _defining_class(cls, "build"):
        return None
    return tuple(layer._lazy_trainable_weights())


def add_placeholders(layer) -> None:
    """Registers an uninitialized parameter per declared trainable weight."""
    names = declared_names(layer)
    if not names or not layer.__dict__["_trainable"]:
        return
    params = layer._parameters
    dtype = layer._dtype_policy.variable_torch_dtype
    if not dtype.is_floating_point:
        return
    for name in names:
        if params.get(name) is None and name not in layer._buffers and name not in layer._modules:
            layer.__dict__.pop(name, None)  # a `self.bias = None`-style placeholder attribute
            params[name] = UninitializedParameter(requires_grad=True, device=layer.__dict__["_device_hint"], dtype=dtype)


def convert_placeholder(placeholder, fn) -> None:
    """Applies a `Module._apply` function (`.to()`, `.double()`...) to an
    uninitialized parameter: only its device and dtype can change."""
    try:
        new = fn(torch.empty(0, dtype=placeholder.dtype, device=placeholder.device))
    except (NotImplementedError, RuntimeError):  # e.g. out of the meta device
        new = fn(torch.empty(0, dtype=placeholder.dtype))
    try:
        placeholder.data = torch.empty(0, dtype=new.dtype, device=new.device)
    except RuntimeError:  # another tensor type (meta -> cpu): swap, keeping the object
        fresh = UninitializedParameter(placeholder.requires_grad, device=new.device, dtype=new.dtype)
        torch.utils.swap_tensors(placeholder, fresh)


def materialize(placeholder, var: TrainableVariable) -> TrainableVariable:
    """Turns `placeholder` into `var` in place: the object an optimizer or
    a hook already holds becomes the Keras variable."""
    try:
        placeholder.data = var.data
    except RuntimeError:  # another tensor type (placeholder left on meta): swap, keeping the object
        torch.utils.swap_tensors(placeholder, var)
        return placeholder
    placeholder.__class__ = type(var)
    placeholder.__dict__.update(var.__dict__)
    placeholder.requires_grad_(var.requires_grad)
    return placeholder


def drop_unused(layer) -> None:
    """After `build`: placeholders no weight materialized become None
    entries (as `self.bias = None` registers them)."""
    params = layer._parameters
    for key, value in list(params.items()):
        if is_lazy(value):
            params[key] = None


def has_placeholders(module) -> bool:
    return any(is_lazy(p) for p in module._parameters.values())


def _parameter_walk_caller(layer):
    """When `layer.named_modules()` runs as part of a `parameters()` /
    `named_parameters()` walk (torch's `_named_members`) whose outermost
    kerasish layer is `layer`: the frame to attribute a warning to and the
    torch frames between the walk and it (an optimizer, `AveragedModel`...);
    else (None, ()) (a `modules()` walk, or an outer kerasish layer checks
    instead)."""
    from kerasish.layers.layer import Layer

    frame = sys._getframe(3)  # (1: warn_if_partial, 2: Layer.named_modules)
    while frame is not None and frame.f_code.co_name == "named_modules":
        if isinstance(frame.f_locals.get("self"), Layer):
            return None, ()  # an outer kerasish layer's walk: it checked its whole tree
        frame = frame.f_back
    if frame is None or frame.f_code is not _NAMED_MEMBERS:
        return None, ()
    if frame.f_back is None or frame.f_back.f_code.co_name != "named_parameters":
        return None, ()  # named_buffers()
    frame = frame.f_back
    torch_frames = []
    while frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR):
        torch_frames.append(frame)  # (parameters(), torch.optim, DDP...: point at the user's line)
        frame = frame.f_back
    return frame, torch_frames


_NAMED_MEMBERS = nn.Module._named_members.__code__
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_KERASISH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_KERASISH_OPTIMIZERS = _KERASISH_DIR + "optimizers" + os.sep
# torch code that keeps the parameter list it walks (optimizers, AveragedModel, DDP / FSDP, the
# vector utilities) or changes every parameter in it (`requires_grad_`): a partial list there means
# weights that silently never train, never average or never synchronize.
_KEEPING_DIRS = tuple(_TORCH_DIR + d + os.sep for d in ("optim", "distributed", os.path.join("nn", "parallel"),
                                                       os.path.join("nn", "utils")))


def _keeping_consumer(torch_frames):
    """The name of the torch function in `torch_frames` that keeps (or changes) the walked list."""
    for frame in reversed(torch_frames):  # (outermost first: `SGD.__init__` rather than `Optimizer.__init__`)
        code = frame.f_code
        if code.co_filename.startswith(_KEEPING_DIRS) or code.co_name == "requires_grad_":
            owner = frame.f_locals.get("self")
            name = code.co_name if owner is None else f"{type(owner).__name__}.{code.co_name}"
            return name.replace(".__init__", "(...)")
    return None


def _kerasish_keeper(caller):
    """A kerasish optimizer's `build(model.parameters())` keeps the list too."""
    if caller is None or not os.path.abspath(caller.f_code.co_filename).startswith(_KERASISH_OPTIMIZERS):
        return None
    owner = caller.f_locals.get("self")
    return caller.f_code.co_name if owner is None else f"{type(owner).__name__}.{caller.f_code.co_name}"


# third-party code that keeps the walked list (it builds the optimizer's param groups from it) and decides
# by each parameter's shape: timm's `param_groups_weight_decay` gives weight decay to `ndim > 1` only, so an
# unbuilt placeholder (no shape yet) would silently land in the no-decay group.
_SHAPE_DECIDING_KEEPERS = (os.sep + os.path.join("timm", "optim") + os.sep,)


def _shape_deciding_keeper(caller):
    if caller is None or not any(d in caller.f_code.co_filename for d in _SHAPE_DECIDING_KEEPERS):
        return None
    module = caller.f_globals.get("__name__", "")
    return f"{module}.{caller.f_code.co_name}" if module else caller.f_code.co_name


def copied_from(layer):
    """The layer `layer` is an unbuilt deep copy of, when that one is built now; else None."""
    ref = layer.__dict__.get("_copied_from")
    source = ref() if ref is not None else None
    if source is None or not source.__dict__.get("built") or layer.__dict__.get("built"):
        return None
    return source


def remember_source(copy, source) -> None:
    """Called by `Layer.__deepcopy__`: an unbuilt copy keeps a weak reference to its original."""
    if not source.__dict__.get("built"):
        copy.__dict__["_copied_from"] = weakref.ref(source)
    else:
        copy.__dict__.pop("_copied_from", None)


def _copy_error(layer, source, what):
    return ValueError(
        f"Layer '{layer.name}' ({type(layer).__name__}) is a copy (`copy.deepcopy`, `AveragedModel`, an EMA "
        f"model) made before the first call of the layer it copies, '{source.name}', which has been built "
        f"since; the copy has not, so its {what} lacks the weights the original now has, and averaging or "
        "copying weights between the two would silently skip them. Make the copy after the model's first "
        "call (or after `model.build(input_shape)`), or run one batch through the copy (or load the original's "
        "`state_dict()` into it) first."
    )


def _from_kerasish(frame) -> bool:
    return frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_KERASISH_DIR)


def warn_if_partial(layer) -> None:
    """A `parameters()` walk over `layer` (called on it, or on a torch
    module holding it) that misses weights unbuilt custom layers below it
    will only create in `build`: raises `ValueError` where torch keeps the
    list (an optimizer, torch's or kerasish's, `AveragedModel.update_parameters`,
    DDP, `parameters_to_vector`, `requires_grad_`) or where the layer is an
    unbuilt copy of a layer built since (an EMA pairing them); otherwise
    warns (a list the user looks at)."""
    from kerasish.layers.layer import Layer

    caller, torch_frames = _parameter_walk_caller(layer)
    if caller is None:
        return
    shape_keeper = _shape_deciding_keeper(caller)
    for sub in layer._flatten_layers(include_self=True):
        d = sub.__dict__
        if shape_keeper is not None and not d.get("built") and has_placeholders(sub):
            raise ValueError(
                f"Layer '{sub.name}' ({type(sub).__name__}) is not built yet: its weights are placeholders with no "
                f"shape, and `{shape_keeper}` decides each parameter's group by its shape (`ndim`), so its "
                "kernel would silently get no weight decay. Call `build(input_shape)` on the model or run one "
                "batch through it first."
            )
        if d.get("built") or has_placeholders(sub):
            continue
        build_owner = _defining_class(type(sub), "build")
        if build_owner is Layer or build_owner.__module__.startswith("kerasish."):
            continue
        missing = (
            f"Layer '{sub.name}' ({type(sub).__name__}) is not built yet: the weights its `build()` creates "
            "do not exist, so they are missing from this `parameters()` list"
        )
        fix = "Call `build(input_shape)` on the model or run one batch through it first."
        consumer = _keeping_consumer(torch_frames) or _kerasish_keeper(caller) or shape_keeper
        if consumer is not None:
            raise ValueError(f"{missing}, and `{consumer}` would act on this list only (the missing weights "
                             f"would never be trained, averaged, synchronized or frozen). {fix}")
        source = copied_from(sub) or copied_from(layer)
        if source is not None and not _from_kerasish(caller):
            raise _copy_error(sub, source, "`parameters()` list")
        warnings.warn_explicit(
            f"{missing} (an optimizer or DDP made from it would never train them). {fix}",
            UserWarning,
            caller.f_code.co_filename,
            caller.f_lineno,
            module=caller.f_globals.get("__name__"),
            registry=caller.f_globals.setdefault("__warningregistry__", {}),
        )
        return


def _own_count(layer) -> int:
    d = layer.__dict__
    return sum(1 for v in d["_parameters"].values() if v is not None and not is_lazy(v)) + sum(
        1 for k, v in d["_buffers"].items() if v is not None and k not in d["_non_persistent_buffers_set"])


def check_unbuilt_copy(layer) -> None:
    """`state_dict()` of an unbuilt copy that lacks weights its original,
    built since, has now raises (a hand-written EMA over `state_dict()` would
    silently average nothing); kerasish's own code may still read it."""
    source = copied_from(layer)
    if source is None or _own_count(layer) >= _own_count(source):
        return  # (a container of built copies, or a copy built by `load_state_dict`: nothing missing)
    frame = sys._getframe(2)  # (1: the layer's `_save_to_state_dict`)
    while frame is not None and (frame.f_code.co_filename.startswith(_TORCH_DIR)
                                 or frame.f_code.co_name == "_save_to_state_dict"):
        frame = frame.f_back  # (torch's recursive `state_dict()`: point at its caller)
    if not _from_kerasish(frame):
        raise _copy_error(layer, source, "`state_dict()`")


def save_without_placeholders(module, save, destination, prefix, keep_vars) -> None:
    """`_save_to_state_dict` that skips uninitialized parameters (an unbuilt
    layer has no weights to save, as in Keras)."""
    d = module.__dict__
    params = d["_parameters"]
    d["_parameters"] = {k: v for k, v in params.items() if not is_lazy(v)}
    try:
        save(destination, prefix, keep_vars)
    finally:
        d["_parameters"] = params

