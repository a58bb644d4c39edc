"""`ModelParallel` on torch: a `LayoutMap` mapped onto DTensor weights.

How a Keras layout becomes torch (one process per device, `torchrun`):

- The Keras `DeviceMesh` becomes a `torch.distributed` device mesh
  (`init_device_mesh`, same shape, same axis names, ranks laid out row-major
  as Keras lays out its device array).
- The batch axis (`batch_dim_name`) is data parallelism: data is split along
  it, weights are replicated along it, and gradients are all-reduced over
  it (each process weighted by its share of the global batch).
- Every other axis is tensor parallelism. A weight whose `variable.path`
  matches a LayoutMap key becomes a DTensor on the sub-mesh of those axes:
  a tensor dimension laid out on axis `"model"` is `Shard(dim)`, every
  other mesh axis `Replicate()`. Keras's kernel layouts hold: a Dense
  kernel is `(in, out)`, so `(None, "model")` shards the output units
  (column parallel) and `("model", None)` the input units (row parallel).
  The other weights of a layer that owns a sharded weight (and the weights
  of every other layer) are replicated DTensors, so one optimizer step
  updates them all alike.
- Compute: `Dense` and `Embedding` with a sharded weight run on the
  DTensors themselves (each process multiplies by its shard; torch inserts
  the all-gather or all-reduce). Inside a Sequential or functional model,
  one whose consumers are all such layers hands its output on still
  sharded (a column-parallel Dense feeding a row-parallel one needs no
  all-gather in between, as in Megatron-LM); any other consumer, and a
  layer called on its own, gets the whole output as a plain tensor. Every
  other layer owning DTensor weights (Conv2D, BatchNormalization, LSTM,
  Dense inside a custom layer, ...) gathers them, and those of the modules
  below it, for its call (`full_tensor`, whose backward keeps each
  process's slice of the gradient), so its numbers are those of one
  process; non-trainable weights it updates (moving statistics) are
  written back to their shards.
- Gradients are laid out like their weights before the batch-axis
  all-reduce (DDP-style buckets of the local shards, `grad_buckets`, for
  the default and a custom train step) and the optimizer step; an
  optimizer built before the layout (compile + `load_weights`) has its
  state moved onto the DTensors.
- BatchNormalization's global statistics are summed over the batch axis's
  process group only (processes along the model axes hold the same rows).
- Under FSDP2 (weights on the batch axis) an uneven step weighs the
  compiled loss and the per-call `add_loss` terms by each rank's rows in
  the loss itself; weight-regularization terms, whose gradients land on
  each rank's shards unaveraged, are left whole.
- Outside a step the weights keep the Keras variable API: `numpy()`,
  `assign`, `path`; `get_weights`/`set_weights`, `save`, `save_weights` and
  `load_weights` see whole weights (gathered on every process; rank 0
  writes).
- A layout naming the batch axis (FSDP / ZeRO-3) is handed to FSDP2
  instead (`fully_shard_model`): `fully_shard` per layer over the batch
  axis, `Shard(dim)` where the layout puts the batch axis; the Keras
  metadata (regularizer, constraint, path) moves to FSDP2's parameters.
- Sharded checkpoints: `save_sharded_checkpoint` / `load_sharded_checkpoint`
  (from `sharded_checkpoint`; torch.distributed.checkpoint: every process
  writes and reads its own shards; the optimizer's moments and step count
  included), also during `fit` with `ModelCheckpoint(path,
  save_weights_only=True, sharded=True)`.
"""

from __future__ import annotations

import contextlib

import torch

# -------------------------------------------------------------------- mesh


def torch_mesh(dist_or_mesh):
    """The torch `DeviceMesh` of a distribution or a Keras `DeviceMesh`
    (created once per Keras mesh, on every rank: it makes process groups)."""
    keras_mesh = getattr(dist_or_mesh, "device_mesh", dist_or_mesh)
    mesh = keras_mesh.__dict__.get("_torch_mesh")
    if mesh is None:
        from torch.distributed.device_mesh import init_device_mesh

        kind = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
        mesh = init_device_mesh(kind, tuple(keras_mesh.shape), mesh_dim_names=tuple(keras_mesh.axis_names))
        keras_mesh.__dict__["_torch_mesh"] = mesh
    return mesh


def model_axes(dist) -> list:
    """The mesh axes other than the batch axis (tensor parallelism)."""
    return [name for name in dist.device_mesh.axis_names if name != dist.batch_dim_name]


def _sub_mesh(mesh, names):
    return mesh[names[0]] if len(names) == 1 else mesh[tuple(names)]


# ----------------------------------------------------------------- layouts


def check_layout(mesh, path: str, shape, axes) -> dict:
    """`{mesh axis: tensor dimension}` of a layout that fits a tensor of
    `shape` on the Keras `mesh`; raises ValueError otherwise."""
    shape = tuple(shape)
    if len(axes) != len(shape):
        raise ValueError(
            f"The layout of variable '{path}' does not match its rank: a variable of shape {shape} needs one "
            f"mesh axis name (or None) per dimension, {len(shape)} in all. Received: layout axes={axes}"
        )
    sizes = dict(zip(mesh.axis_names, mesh.shape))
    seen = {}
    for dim, name in enumerate(axes):
        if name is None:
            continue
        if name not in sizes:
            raise ValueError(
                f"Invalid axis names for Layout of variable '{path}'. Valid axis names: {list(mesh.axis_names)}, "
                f"Got {name!r}"
            )
        if name in seen:
            raise ValueError(
                f"The layout of variable '{path}' maps mesh axis {name!r} to dimensions {seen[name]} and {dim}; "
                f"a mesh axis can shard at most one dimension. Received: layout axes={axes}"
            )
        seen[name] = dim
        if shape[dim] % sizes[name] != 0:
            raise ValueError(
                f"Variable '{path}' of shape {shape} cannot be sharded with layout {axes}: dimension {dim} "
                f"(size {shape[dim]}) is not divisible by the size of mesh axis {name!r} ({sizes[name]})."
            )
    return seen


def mesh_placements(mesh, path: str, shape, axes) -> list:
    """Torch placements over every axis of the Keras `mesh` (for
    `keras.distribution.distribute_tensor`)."""
    from torch.distributed.tensor import Replicate
    from torch.distributed.tensor import Shard

    seen = check_layout(mesh, path, shape, tuple(axes))
    return [Shard(seen[name]) if name in seen else Replicate() for name in mesh.axis_names]


def placements_for(dist, path: str, shape, layout) -> list | None:
    """Torch placements (one per model axis) of a weight with `layout`, or
    None when the layout shards nothing.

    Raises:
        ValueError: the layout's rank is not the weight's, it names an axis
            the mesh does not have, uses one axis for two dimensions, or a
            sharded dimension is not divisible by the axis size.
        NotImplementedError: the layout shards a weight along the batch
            axis on a mesh whose model axes are not all of size 1.
    """
    from torch.distributed.tensor import Replicate
    from torch.distributed.tensor import Shard

    mesh = dist.device_mesh
    axes = tuple(layout.axes)
    sizes = dict(zip(mesh.axis_names, mesh.shape))
    seen = check_layout(mesh, path, shape, axes)
    names = model_axes(dist)
    if dist.batch_dim_name in seen and sizes[dist.batch_dim_name] > 1:
        if any(sizes[n] > 1 for n in names):
            raise NotImplementedError(
                f"The layout of variable '{path}' shards it along the batch axis {dist.batch_dim_name!r} "
                f"({axes}) on a mesh that also has a model axis of more than one device "
                f"(shape {tuple(mesh.shape)}, axes {list(mesh.axis_names)}). kerasish shards weights along the "
                "batch axis (FSDP) or along model axes (tensor parallel), not both at once: give the model axes "
                "one device, or lay this weight out on a model axis."
            )
        return None  # sharded along the batch axis by FSDP2 (`fully_shard_model`), no tensor parallelism
    placements = [Shard(seen[name]) if name in seen else Replicate() for name in names]
    if not any(isinstance(p, Shard) and sizes[n] > 1 for p, n in zip(placements, names)):
        return None
    return placements


def validate_layouts(model, dist) -> None:
    """Raises the errors of `placements_for` for every weight of a built
    model (single process too, where nothing is sharded)."""
    for w in model.weights:
        layout = dist._layout_map[w.path] if hasattr(w, "path") else None
        if layout is not None:
            placements_for(dist, w.path, w.shape, layout)


# ------------------------------------------------- the batch axis: FSDP2


def batch_sharded_dims(model, dist) -> dict:
    """`{id(weight): dim}` of the weights whose layout shards them along the
    batch axis (of more than one device)."""
    mesh = dist.device_mesh
    if dict(zip(mesh.axis_names, mesh.shape))[dist.batch_dim_name] <= 1:
        return {}
    out = {}
    for w in model.weights:
        layout = dist._layout_map[w.path] if hasattr(w, "path") else None
        if layout is not None and dist.batch_dim_name in layout.axes:
            out[id(w)] = tuple(layout.axes).index(dist.batch_dim_name)
    return out


def is_fully_sharded_by(model, dist) -> bool:
    return model.__dict__.get("_mp_fsdp") is dist


def fully_shard_model(model, dist, dims) -> None:
    """FSDP2 for a LayoutMap sharding weights along the batch axis (ZeRO-3):
    `fully_shard` on every layer owning weights, then on the model, over
    the batch axis's processes. Each weight the LayoutMap names is sharded
    on the dimension its layout puts on the batch axis (`Shard(dim)`), the
    other parameters on their first dimension (FSDP2 shards every parameter
    it manages; this changes where values live, not a single number).
    Forward and backward all-gather each layer's weights for its call,
    gradients are reduce-scattered (averaged) over the batch axis; buffers
    (moving statistics) stay whole on every process.
    """
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Shard

    mesh = torch_mesh(dist)
    if mesh.ndim > 1:
        mesh = mesh[dist.batch_dim_name]

    def placement(param):
        dim = dims.get(id(param))
        return Shard(dim) if dim is not None else None

    # FSDP2 registers new (DTensor) parameters: the Keras metadata (regularizer, constraint, name,
    # path) of each weight moves onto its replacement
    from kerasish.layers.weight_layout import contiguous_weights

    contiguous_weights(model)  # FSDP2 refuses strided kernels (LSTM's torch layout, conv's memory order)
    before = {(id(m), name): p for m in model.modules() for name, p in m._parameters.items() if p is not None}
    for layer, modules in list(_units(model)):
        if layer is not model and any(p is not None for m in modules for p in m._parameters.values()):
            fully_shard(layer, mesh=mesh, shard_placement_fn=placement)
    fully_shard(model, mesh=mesh, shard_placement_fn=placement)
    replaced = {}
    for m in model.modules():
        for name, p in m._parameters.items():
            old = before.get((id(m), name))
            if p is not None and old is not None and p is not old:
                p.__dict__.update({k: v for k, v in old.__dict__.items() if k not in p.__dict__})
                replaced[id(old)] = p
    _move_optimizer_state(getattr(model, "optimizer", None), replaced)
    model.__dict__["_mp_fsdp"] = model.__dict__["_mp_dist"] = dist
    if getattr(model, "_loss_sources", None) is not None:  # regularization terms cached on the old weights
        model._set_untracked("_loss_sources", None)


# --------------------------------------------------------- sharded weights


def is_dtensor(t) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def _sharded_variable_class():
    cls = _STATE.get("cls")
    if cls is None:
        cls = _STATE["cls"] = _make_sharded_variable_class()
    return cls


_STATE = {}


def _make_sharded_variable_class():
    from torch.distributed.tensor import DTensor

    class ShardedVariable(DTensor):
        """A Keras weight stored as a DTensor: the Keras variable API on top
        of a sharded (or replicated) parameter. Values read and written
        through it (`numpy()`, `assign`) are whole weights."""

        def detach(self):
            return _wrap(DTensor.detach(self), self.__dict__, False)

        @property
        def name(self) -> str:
            return self.__dict__.get("_kname", "variable")

        @property
        def path(self) -> str:
            return self.__dict__.get("_kpath", self.name)

        @property
        def value(self):
            return self

        @property
        def trainable(self) -> bool:
            return self.requires_grad

        def numpy(self, *, force: bool = False):
            """The whole value, gathered (a copy: every process calls it)."""
            return self.full_tensor().detach().cpu().numpy().copy()

        def __array__(self, dtype=None, copy=None):
            out = self.numpy()
            return out.astype(dtype) if dtype is not None else out

        def assign(self, value):
            """Sets the whole value (each process keeps its shard)."""
            from torch.distributed.tensor import distribute_tensor

            value = torch.as_tensor(value.full_tensor() if is_dtensor(value) else value)
            if tuple(value.shape) != tuple(self.shape):
                value = value.expand(self.shape)
            value = value.to(device=self._local_tensor.device, dtype=self.dtype)
            with torch.no_grad():
                self.copy_(distribute_tensor(value, self.device_mesh, self.placements))
            return self

        def assign_add(self, delta):
            return self.assign(self.full_tensor().detach() + torch.as_tensor(delta, dtype=self.dtype))

        def assign_sub(self, delta):
            return self.assign(self.full_tensor().detach() - torch.as_tensor(delta, dtype=self.dtype))

    return ShardedVariable


def _wrap(dtensor, meta, requires_grad):
    cls = _sharded_variable_class()
    out = cls(dtensor._local_tensor, dtensor._spec, requires_grad=requires_grad)
    out.__dict__.update({k: v for k, v in meta.items() if k != "_is_param"})
    return out


def _shard_weight(weight, mesh, placements):
    """A `ShardedVariable` holding `weight` (taken from rank 0) laid out
    with `placements`, with the Keras metadata of `weight`."""
    from torch.distributed.tensor import distribute_tensor

    meta = dict(weight.__dict__)
    meta["_kclass"] = type(weight)
    value = distribute_tensor(torch.Tensor.detach(weight).contiguous(), mesh, placements)
    out = _wrap(value, meta, False)
    if isinstance(weight, torch.nn.Parameter):
        return torch.nn.Parameter(out, requires_grad=weight.requires_grad)
    return out


def _native_layer_types():
    from kerasish.layers.core.dense import Dense
    from kerasish.layers.core.embedding import Embedding

    return (Dense, Embedding)


def _units(container):
    """`(layer, modules)` pairs to hook: each layer of a model (nested
    models are walked into) with every module below it, whose weights it
    may use without calling them (an LSTM runs its cell's weights in one
    fused op); a model owning weights itself comes with just its own."""
    from kerasish.layers.tracking import split_holders
    from kerasish.models.model import Model

    own = split_holders(container)[0]
    if any(h._parameters or h._buffers for h in own):
        yield container, own
    for layer in container._flatten_layers(include_self=False, recursive=False):
        if isinstance(layer, Model):
            yield from _units(layer)
        else:
            yield layer, list(layer.modules())


def _is_split(w) -> bool:
    """A DTensor weight sharded over some mesh axis of more than one device."""
    from torch.distributed.tensor import Shard

    return is_dtensor(w) and any(
        isinstance(p, Shard) and n > 1 for p, n in zip(w.placements, w.device_mesh.shape)
    )


def is_sharded(model) -> bool:
    return bool(model.__dict__.get("_mp_hooks"))


def shard_model(model, dist) -> None:
    """Replaces the weights of `model` by DTensors laid out per the
    LayoutMap, and installs the per-layer hooks (once per model)."""
    if is_sharded(model):
        if model.__dict__.get("_mp_dist") is not dist:
            raise ValueError(
                f"Model '{model.name}' was sharded under another `ModelParallel` distribution; a model is laid "
                "out once. Build a new model (or reload its weights into one) for a new layout."
            )
        return
    mesh = _sub_mesh(torch_mesh(dist), model_axes(dist))
    from torch.distributed.tensor import Replicate

    replicated = [Replicate()] * len(model_axes(dist))
    weights = {id(w) for w in model.weights}
    replaced = {}
    for module in model.modules():
        for registry in (module._parameters, module._buffers):
            for key, w in list(registry.items()):
                if w is None or id(w) not in weights or is_dtensor(w):
                    continue
                if id(w) in replaced:  # one weight set on two layers (tied): one DTensor
                    registry[key] = replaced[id(w)]
                    continue
                layout = dist.get_variable_layout(w)
                placements = placements_for(dist, w.path, w.shape, layout) if hasattr(w, "path") else None
                registry[key] = replaced[id(w)] = _shard_weight(w, mesh, placements or replicated)
    hooks = []
    native_types = _native_layer_types()
    units = [(layer, modules) for layer, modules in _units(model) if any(
        is_dtensor(w) for m in modules for w in (*m._parameters.values(), *m._buffers.values()))]
    native = {id(layer) for layer, _ in units
              if type(layer) in native_types and any(_is_split(w) for w in layer._parameters.values())}
    handoffs = _handoffs(model, native)
    running = [0]  # depth of `model` calls in progress: hand-offs happen inside them only
    if handoffs:
        def enter(module, args):
            running[0] += 1

        def leave(module, args, output):
            running[0] -= 1

        hooks.append(model.register_forward_pre_hook(enter))
        hooks.append(model.register_forward_hook(leave, always_call=True))

        def plain_unless_handed_off(module, args, output):
            return output if running[0] else _map(_plain, output)

    for layer, modules in units:
        if id(layer) in native:
            hooks.append(layer.register_forward_pre_hook(_to_dtensor_inputs(mesh), with_kwargs=True))
            post = plain_unless_handed_off if id(layer) in handoffs else _to_plain_outputs
            hooks.append(layer.register_forward_hook(post, always_call=True))
        else:
            pre, post = _gather_hooks(modules)
            hooks.append(layer.register_forward_pre_hook(pre))
            hooks.append(layer.register_forward_hook(post, always_call=True))
    _move_optimizer_state(getattr(model, "optimizer", None), replaced)
    model.__dict__["_mp_hooks"] = hooks
    model.__dict__["_mp_dist"] = dist
    if getattr(model, "_loss_sources", None) is not None:  # regularization terms cached on the old weights
        model._set_untracked("_loss_sources", None)


def _handoffs(model, native) -> set:
    """Ids of the layers in `native` that may hand their output on as a
    DTensor: each is called once, by a Sequential or functional `model`,
    and every consumer of its output is in `native` too (so a
    column-parallel Dense feeding a row-parallel one skips the all-gather
    in between, as in Megatron-LM). Any other layer gets whole tensors."""
    import collections

    from kerasish.models import graph
    from kerasish.models.functional import Functional
    from kerasish.models.sequential import Sequential

    d = model.__dict__
    if isinstance(model, Sequential) and not isinstance(model, Functional):
        layers = list(d.get("_call_layers") or ())
        if len(layers) != len({id(layer) for layer in layers}):
            return set()
        return {id(a) for a, b in zip(layers, layers[1:]) if id(a) in native and id(b) in native}
    if not isinstance(model, Functional) or d.get("_steps") is None or d.get("_output_slot") is None:
        return set()
    calls = collections.Counter()
    produced = {}
    consumers = collections.defaultdict(list)
    for kind, fn, a, kw, out, _ in d["_steps"]:
        calls[id(fn)] += 1
        if type(out) is int:
            produced[out] = fn
        if kind == graph.ONE:
            consumers[a].append(fn)
        else:  # a list or general arguments: those consumers get whole tensors
            for i in _slots_in((a, kw)):
                consumers[i].append(None)
    kept = {d["_output_slot"], *(slot for _, slot, _ in d.get("_aux_slots", ()))}
    out = set()
    for slot, fn in produced.items():
        users = consumers.get(slot, [])
        if (id(fn) in native and calls[id(fn)] == 1 and slot not in kept and users
                and all(u is not None and id(u) in native for u in users)):
            out.add(id(fn))
    return out


def _slots_in(template) -> list:
    from kerasish.models.graph import Slot

    if isinstance(template, Slot):
        return [template.i]
    if isinstance(template, int):
        return [template]
    if isinstance(template, (list, tuple)):
        return [i for t in template for i in _slots_in(t)]
    if isinstance(template, dict):
        return [i for t in template.values() for i in _slots_in(t)]
    return []


def _move_optimizer_state(opt, replaced) -> None:
    """Points an optimizer already built on the model's weights (e.g. by
    `load_weights` of a checkpoint with optimizer state) at their DTensor
    replacements, its slots laid out like them."""
    from torch.distributed.tensor import distribute_tensor

    groups = getattr(opt, "param_groups", None)
    if not groups or not any(id(p) in replaced for g in groups for p in g["params"]):
        return
    index = getattr(opt, "_param_index", None)
    for gi, group in enumerate(groups):
        for pi, old in enumerate(group["params"]):
            new = replaced.get(id(old))
            if new is None:
                continue
            group["params"][pi] = new
            if isinstance(index, dict):
                index.pop(id(old), None)
                index[id(new)] = (gi, pi)
            slots = opt.state.pop(old, None)
            if slots is not None:
                opt.state[new] = {
                    k: distribute_tensor(torch.Tensor.detach(v).contiguous(), new.device_mesh, new.placements)
                    if isinstance(v, torch.Tensor) and tuple(v.shape) == tuple(new.shape) and v.dim() > 0 else v
                    for k, v in slots.items()
                }


# ------------------------------------------------------------- the hooks


def _map(fn, x):
    if isinstance(x, (list, tuple)):
        return type(x)(_map(fn, i) for i in x)
    if isinstance(x, dict):
        return {k: _map(fn, v) for k, v in x.items()}
    return fn(x)


def _to_dtensor_inputs(mesh):
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor import Replicate

    replicated = [Replicate()] * mesh.ndim

    def convert(t):
        if isinstance(t, torch.Tensor) and not is_dtensor(t):
            out = DTensor.from_local(t, mesh, replicated, run_check=False)
            mask = getattr(t, "_keras_mask", None)
            if mask is not None:
                out._keras_mask = mask
            return out
        return t

    def hook(module, args, kwargs):
        return _map(convert, args), kwargs

    return hook


def _plain(t):
    if is_dtensor(t):
        out = t.full_tensor()
        mask = getattr(t, "_keras_mask", None)
        if mask is not None:
            out._keras_mask = _plain(mask)
        return out
    return t


def _to_plain_outputs(module, args, output):
    return _map(_plain, output)


def _gather_hooks(modules):
    """Forward hooks swapping the DTensor weights of `modules` (a layer and
    those below it) for whole tensors during its call (non-trainable ones
    are written back afterwards)."""
    saved = []

    def pre(module, args):
        for h in modules:
            for registry in (h._parameters, h._buffers):
                for key, w in list(registry.items()):
                    if is_dtensor(w):
                        full = w.full_tensor()
                        saved.append((registry, key, w, full))
                        registry[key] = full

    def post(module, args, output):
        from torch.distributed.tensor import DTensor
        from torch.distributed.tensor import Replicate

        while saved:
            registry, key, w, full = saved.pop()
            registry[key] = w
            if not w.requires_grad and full is not None:  # a buffer the call may have updated in place
                with torch.no_grad():
                    whole = DTensor.from_local(full.detach(), w.device_mesh, [Replicate()] * w.device_mesh.ndim,
                                               run_check=False)
                    w.copy_(whole.redistribute(w.device_mesh, w.placements))
        return output

    return pre, post


# -------------------------------------------------------- whole weights


@contextlib.contextmanager
def whole_weights(model, write_back=False):
    """Inside the block, every DTensor weight of `model` (and optimizer
    slot) is a plain Keras variable holding the whole value (gathered on
    every rank, in the same order); with
    `write_back`, values changed inside (loaded weights) are laid out
    again afterwards."""
    from kerasish.variables import _rebuild_variable

    if model.__dict__.get("_mp_whole"):  # nested (a checkpoint callback calling `save`)
        yield
        return
    swapped = []
    for module in model.modules():
        for registry in (module._parameters, module._buffers):
            for key, w in list(registry.items()):
                if is_dtensor(w):
                    meta = {k: v for k, v in w.__dict__.items() if k not in ("_kclass", "_is_param")}
                    cls = w.__dict__.get("_kclass")
                    full = w.full_tensor().detach().clone()
                    plain = _rebuild_variable(cls, full, w.requires_grad, meta) if cls is not None else full
                    swapped.append((registry, key, w, plain))
                    registry[key] = plain
    # the optimizer's slots (Adam's moments, ...) are laid out like their weights
    state = getattr(getattr(model, "optimizer", None), "state", None)
    for slots in (state.values() if isinstance(state, dict) else ()):
        if isinstance(slots, dict):
            for key, v in list(slots.items()):
                if is_dtensor(v):
                    plain = v.full_tensor().detach().clone()
                    swapped.append((slots, key, v, plain))
                    slots[key] = plain
    model.__dict__["_mp_whole"] = True
    try:
        yield
    finally:
        model.__dict__.pop("_mp_whole", None)
        for registry, key, w, plain in swapped:
            registry[key] = w
            if write_back:
                from torch.distributed.tensor import distribute_tensor

                with torch.no_grad():
                    w.copy_(distribute_tensor(torch.Tensor.detach(plain), w.device_mesh, w.placements))


def whole_weights_if_sharded(model):
    """`whole_weights(model)` for a model laid out by `ModelParallel` (every
    rank must enter it), else a no-op context."""
    return whole_weights(model) if is_sharded(model) else contextlib.nullcontext()


def save_on_rank_zero(model, write):
    """Runs `write()` on rank 0 with whole weights (every rank gathers)."""
    from kerasish.trainers.distributed import barrier
    from kerasish.trainers.distributed import is_rank_zero

    if model.__dict__.get("_mp_whole"):
        return write()
    with whole_weights(model):
        result = write() if is_rank_zero() else None
    barrier()
    return result


# (re-exported: `model_parallel.save_sharded_checkpoint` / `load_sharded_checkpoint`)
from kerasish.distribution.sharded_checkpoint import load_sharded_checkpoint  # noqa: E402
from kerasish.distribution.sharded_checkpoint import save_sharded_checkpoint  # noqa: E402
