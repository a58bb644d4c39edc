"""Core `keras.ops`: conversion, casting, shapes, control flow, slicing
and scatter.

Control flow (`cond`, `while_loop`, `fori_loop`, `scan`, `map`, `switch`)
runs as Python on tensors, as the Keras torch backend does, so it traces
into one graph under `torch.compile` when the trip count is static. A
tensor predicate of `cond` becomes `torch.cond` under compile (no graph
break); a data-dependent `while_loop` is still a graph break there.
"""

from __future__ import annotations

import builtins

import numpy as np
import torch

from kerasish.backend import dtypes as _dtypes
from kerasish.backend.keras_tensor import KerasTensor
from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import to_tensor
from kerasish.utils import tree


def _pack(like, flat):
    """`flat` (a list) in the nested structure of `like` (inverse of flatten)."""
    it = iter(flat)

    def build(x):
        if isinstance(x, list):
            return [build(v) for v in x]
        if isinstance(x, tuple):
            return tuple(build(v) for v in x)
        if isinstance(x, dict):
            return {k: build(v) for k, v in x.items()}
        return next(it)

    return build(like)


def _stack_structures(parts, dim=0):
    """A list of same-structure nests -> one nest of stacked tensors."""
    flats = [tree.flatten(p) for p in parts]
    return _pack(parts[0], [torch.stack([f[j] for f in flats], dim=dim) for j in range(len(flats[0]))])


@keras_op
def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """`x` (array, list, scalar, tensor) as a torch tensor.

    Python ints give int32, Python floats `floatx()`, NumPy arrays keep
    their dtype (Keras 3 on torch). `sparse`/`ragged` must be falsy.
    """
    if sparse:
        raise ValueError(f"kerasish tensors are dense: `sparse=True` is not supported. Received: sparse={sparse}")
    if ragged:
        raise ValueError(f"kerasish tensors are dense: `ragged=True` is not supported. Received: ragged={ragged}")
    return to_tensor(x, dtype)


def convert_to_numpy(x):
    """`x` as a NumPy array (detached, on the CPU): a copy, as Keras's
    (`np.array`), never a view of a live weight or tensor."""
    if isinstance(x, KerasTensor):
        raise ValueError("A KerasTensor is symbolic: it has no value to convert to NumPy.")
    if isinstance(x, torch.Tensor):
        out = _dtypes.tensor_to_numpy(x)
        return out.copy() if x.device.type == "cpu" else out  # off the CPU, .cpu() copied already
    return np.asarray(x)


def is_tensor(x) -> bool:
    """Whether `x` is a (torch) tensor."""
    return isinstance(x, torch.Tensor)


def shape(x) -> tuple:
    """The shape of `x` as a tuple (None for unknown symbolic dimensions)."""
    if isinstance(x, KerasTensor):
        return x.shape
    if not isinstance(x, torch.Tensor):
        x = to_tensor(x)
    return tuple(x.shape)


def dtype(x) -> str:
    """The Keras dtype name of `x` ("float32")."""
    if isinstance(x, KerasTensor):
        return x.dtype
    return _dtypes.standardize_dtype(to_tensor(x).dtype)


@keras_op
def cast(x, dtype):
    """`x` converted to `dtype` (float -> int truncates toward zero)."""
    return to_tensor(x).to(_dtypes.to_torch_dtype(dtype))


@keras_op
def saturate_cast(x, dtype):
    """`cast`, but clipped to the range of `dtype` first."""
    x = to_tensor(x)
    target = _dtypes.to_torch_dtype(dtype)
    if not target.is_floating_point and target != torch.bool:
        info = torch.iinfo(target)
        lo, hi = info.min, info.max
        if x.is_floating_point():
            x = torch.clamp(x.double() if x.dtype != torch.float64 else x, lo, hi)
        else:
            x = torch.clamp(x.to(torch.int64), max(lo, -(2**63)), min(hi, 2**63 - 1))
    elif target.is_floating_point and x.is_floating_point():
        info = torch.finfo(target)
        x = torch.clamp(x, info.min, info.max)
    return x.to(target)


@keras_op
def stop_gradient(variable):
    """`variable` with gradients blocked."""
    return to_tensor(variable).detach()


def cond(pred, true_fn, false_fn):
    """`true_fn()` if `pred` else `false_fn()`."""
    if isinstance(pred, KerasTensor):
        raise ValueError("`cond` on a symbolic KerasTensor predicate cannot be recorded in a functional graph.")
    if isinstance(pred, torch.Tensor):
        if pred.numel() != 1:
            raise ValueError(f"`pred` must be a scalar boolean. Received: pred shape={tuple(pred.shape)}")
        if torch.compiler.is_compiling():
            # a data-dependent branch stays in the graph (both branches must
            # return tensors of the same shapes and dtypes)
            return torch.cond(pred.reshape(()).to(torch.bool), lambda: true_fn(), lambda: false_fn(), ())
        pred = bool(pred)
    return true_fn() if pred else false_fn()


def while_loop(cond, body, loop_vars, maximum_iterations=None):
    """Runs `loop_vars = body(*loop_vars)` while `cond(*loop_vars)`.

    A tuple/list `loop_vars` is unpacked into `cond` and `body`; any other
    structure is passed as one argument. Returns the final `loop_vars` in
    the structure given.
    """
    is_seq = isinstance(loop_vars, (tuple, list))
    current = tuple(loop_vars) if is_seq else (loop_vars,)
    # Python numbers become tensors, as Keras converts its loop variables
    current = tuple(tree.map_structure(lambda v: to_tensor(v) if isinstance(v, (int, float)) else v, c)
                    for c in current)
    i = 0
    while bool(cond(*current)) and (maximum_iterations is None or i < maximum_iterations):
        out = body(*current)
        current = tuple(out) if is_seq else (out,)
        i += 1
    return current if is_seq else current[0]


def fori_loop(lower, upper, body_fun, init_val):
    """`val = body_fun(i, val)` for `i` in `[lower, upper)`."""
    val = init_val
    for i in range(int(lower), int(upper)):
        val = body_fun(i, val)
    return val


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """Loops `carry, y = f(carry, x)` over the leading axis of `xs`; returns
    the final carry and the stacked `y`s (JAX's `lax.scan`)."""
    if not callable(f):
        raise TypeError(f"`f` should be a callable. Received: f={f}")
    if xs is None and length is None:
        raise ValueError("Got no `xs` to scan over and `length` not provided.")
    flat_xs = tree.flatten(xs) if xs is not None else []
    n = int(length) if length is not None else int(flat_xs[0].shape[0])
    order = range(n - 1, -1, -1) if reverse else range(n)
    carry, ys = init, []
    for i in order:
        x = tree.map_structure(lambda t: t[i], xs) if xs is not None else None
        carry, y = f(carry, x)
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys or ys[0] is None:
        return carry, None
    return carry, _stack_structures(ys)


def associative_scan(f, elems, reverse=False, axis=0):
    """Inclusive prefix scan of `elems` along `axis` with the associative
    binary function `f`.

    The odd/even recursion of `jax.lax.associative_scan` (which Keras's torch
    backend also follows): about `2 log2(n)` calls of `f` on halves of the
    sequence instead of `n` calls on single steps, and the same pairings as
    Keras, so floating-point results equal Keras's bit for bit. (Keras's
    torch backend interleaves by adding zeros, which turns -0.0 into 0.0 and
    any dtype into float32; kerasish keeps both.)
    """
    if not callable(f):
        raise TypeError(f"`f` should be a callable. Received: f={f}")
    flat = [to_tensor(t) for t in tree.flatten(elems)]
    n = int(flat[0].shape[axis])
    if any(int(t.shape[axis]) != n for t in flat[1:]):
        raise ValueError("Array inputs to associative_scan must have the same first dimension. "
                         f"(saw: {[tuple(t.shape) for t in flat]})")
    if reverse:
        flat = [torch.flip(t, (axis,)) for t in flat]

    def part(t, start, stop=None, step=1):
        index = [builtins.slice(None)] * t.ndim
        index[axis] = builtins.slice(start, stop, step)
        return t[tuple(index)]

    def combine(a, b):
        return tree.flatten(f(_pack(elems, a), _pack(elems, b)))

    def interleave(even, odd):
        # even -> positions 0, 2, 4, ...; odd -> 1, 3, ...
        shape = list(even.shape)
        shape[axis] = even.shape[axis] + odd.shape[axis]
        out = torch.empty(shape, dtype=torch.promote_types(even.dtype, odd.dtype), device=even.device)
        index = [builtins.slice(None)] * out.ndim
        index[axis] = builtins.slice(0, None, 2)
        out[tuple(index)] = even
        index[axis] = builtins.slice(1, None, 2)
        out[tuple(index)] = odd
        return out

    def scan(ts):
        count = int(ts[0].shape[axis])
        if count < 2:
            return ts
        # pairs (0, 1), (2, 3), ... give the odd positions' prefixes, recursively
        odd = scan(combine([part(t, 0, -1, 2) for t in ts], [part(t, 1, None, 2) for t in ts]))
        # each even position past 0 is the odd prefix before it combined with itself
        before = odd if count % 2 else [part(t, 0, -1) for t in odd]
        even = combine(before, [part(t, 2, None, 2) for t in ts])
        even = [torch.cat([part(t, 0, 1), e], dim=axis) for t, e in zip(ts, even)]
        return [interleave(e, o) for e, o in zip(even, odd)]

    out = scan(flat)
    if reverse:
        out = [torch.flip(t, (axis,)) for t in out]
    return _pack(elems, out)


def map(f, xs):  # noqa: A001 - Keras name
    """`f` applied to each slice along the leading axis of `xs`, stacked."""
    flat = tree.flatten(xs)
    n = flat[0].shape[0]
    outs = [f(tree.map_structure(lambda t, i=i: t[i], xs)) for i in range(n)]
    return _stack_structures(outs)


def vectorized_map(function, elements):
    """`function` over the leading axis of `elements` (via `torch.vmap`)."""
    return torch.vmap(function)(elements)


def switch(index, branches, *operands):
    """`branches[index](*operands)`, with `index` clamped to the range."""
    i = int(index)
    i = min(max(i, 0), len(branches) - 1)
    return branches[i](*operands)


@keras_op
def slice(inputs, start_indices, shape):  # noqa: A001 - Keras name
    """The block of `inputs` starting at `start_indices` with size `shape`."""
    x = to_tensor(inputs)
    starts = [int(s) for s in start_indices]
    sizes = [int(s) for s in shape]
    for axis, (start, size) in enumerate(zip(starts, sizes)):
        x = x.narrow(axis, start, size)
    return x


@keras_op
def slice_update(inputs, start_indices, updates):
    """A copy of `inputs` with the block at `start_indices` replaced by `updates`."""
    x = to_tensor(inputs).clone()
    u = to_tensor(updates).to(x.dtype)
    index = tuple(builtins.slice(int(s), int(s) + n) for s, n in zip(start_indices, u.shape))
    x[index] = u
    return x


@keras_op
def scatter(indices, values, shape):
    """A zero tensor of `shape` with `values` added at `indices` (N x k)."""
    idx = to_tensor(indices).to(torch.int64)
    vals = to_tensor(values)
    out = torch.zeros(tuple(shape), dtype=vals.dtype, device=vals.device)
    k = idx.shape[-1]
    flat = torch.zeros(idx.shape[:-1], dtype=torch.int64, device=idx.device)
    for d in range(k):
        flat = flat * shape[d] + idx[..., d]
    view = out.reshape((-1,) + tuple(shape[k:]))
    view.index_put_((flat.reshape(-1),), vals.reshape((-1,) + tuple(shape[k:])), accumulate=True)
    return view.reshape(tuple(shape))


@keras_op
def scatter_update(inputs, indices, updates, reduction=None):
    """A copy of `inputs` with `updates` written at `indices` (N x k);
    `reduction` ("add", "max", "min", "mul") combines instead of replacing."""
    x = to_tensor(inputs).clone()
    idx = to_tensor(indices).to(torch.int64)
    upd = to_tensor(updates).to(x.dtype)
    key = tuple(idx[..., d] for d in range(idx.shape[-1]))
    if reduction is None:
        x[key] = upd
    elif reduction == "add":
        x.index_put_(key, upd, accumulate=True)
    elif reduction in ("max", "min", "mul"):
        current = x[key]
        fn = {"max": torch.maximum, "min": torch.minimum, "mul": torch.mul}[reduction]
        x[key] = fn(current, upd)
    else:
        raise ValueError(
            f"Unsupported reduction: {reduction}. Expected one of None, 'add', 'max', 'min', 'mul'."
        )
    return x


@keras_op
def unstack(x, num=None, axis=0):
    """`x` split into a list of tensors along `axis`."""
    x = to_tensor(x)
    if num is not None and num != x.shape[axis]:
        raise ValueError(f"`num` ({num}) does not match the size of axis {axis} ({x.shape[axis]}).")
    return list(torch.unbind(x, dim=axis))


def custom_gradient(f):
    """Decorator: `f(*args)` returns `(y, grad_fn)`; the gradient of `y`
    w.r.t. the tensor args is `grad_fn(upstream)`."""

    def wrapper(*args):
        class _Fn(torch.autograd.Function):
            @staticmethod
            def forward(ctx, *inputs):
                with torch.enable_grad():
                    y, grad_fn = f(*inputs)
                ctx.grad_fn = grad_fn
                return y.detach() if isinstance(y, torch.Tensor) else y

            @staticmethod
            def backward(ctx, upstream):
                grads = ctx.grad_fn(upstream)
                return tuple(grads) if isinstance(grads, (list, tuple)) else (grads,)

        return _Fn.apply(*args)

    return wrapper


_GUFUNC_ARG = r"\((?:\w+(?:,\s*\w+)*)?\)"
_GUFUNC_SIGNATURE = rf"^\s*{_GUFUNC_ARG}(?:\s*,\s*{_GUFUNC_ARG})*\s*->\s*{_GUFUNC_ARG}(?:\s*,\s*{_GUFUNC_ARG})*\s*$"


def _parse_gufunc_signature(signature: str):
    """NumPy's generalized-ufunc signature `"(m,n),(n)->(m)"` as the core
    dimension names of each input and each output."""
    import re

    if not re.match(_GUFUNC_SIGNATURE, signature):
        raise ValueError(f"Not a valid gufunc signature: {signature}")
    inputs, outputs = signature.split("->")

    def dims(part):
        return [tuple(d.strip() for d in group.split(",") if d.strip()) for group in re.findall(r"\(([^()]*)\)", part)]

    return dims(inputs), dims(outputs)


def _vectorize_with_signature(pyfunc, excluded, signature):
    in_core, out_core = _parse_gufunc_signature(signature)

    def wrapper(*args):
        active = [i for i in range(len(args)) if i not in excluded]
        if len(active) != len(in_core):
            raise TypeError(f"wrong number of positional arguments: expected {len(in_core)}, got {len(active)}")
        tensors = {i: to_tensor(args[i]) for i in active}
        sizes, loop_shapes = {}, []
        for i, core in zip(active, in_core):
            t = tensors[i]
            if t.ndim < len(core):
                raise ValueError(f"input with shape {tuple(t.shape)} does not have enough dimensions for all core "
                                 f"dimensions {core!r}")
            for name, size in zip(core, t.shape[t.ndim - len(core):]):
                if sizes.setdefault(name, int(size)) != int(size):
                    raise ValueError(f"inconsistent size for core dimension {name!r}: {int(size)} vs {sizes[name]}")
            loop_shapes.append(tuple(t.shape[: t.ndim - len(core)]))
        loop = torch.broadcast_shapes(*loop_shapes) if loop_shapes else torch.Size()
        for i, core in zip(active, in_core):
            t = tensors[i]
            tensors[i] = t.expand(*loop, *t.shape[t.ndim - len(core):])

        def checked(*inner):
            out = pyfunc(*inner)
            outs = out if isinstance(out, tuple) else (out,)
            if len(outs) != len(out_core):
                raise TypeError(f"wrong number of output arguments: expected {len(out_core)}, got {len(outs)}")
            for o, core in zip(outs, out_core):
                shape = tuple(to_tensor(o).shape)
                if len(shape) != len(core):
                    raise ValueError(f"output shape {shape} does not match core dimensions {core!r}")
                for name, size in zip(core, shape):
                    if sizes.setdefault(name, size) != size:
                        raise ValueError(f"inconsistent size for core dimension {name!r}: {size} vs {sizes[name]}")
            return out

        dims = tuple(None if i in excluded else 0 for i in range(len(args)))
        fn = checked
        for _ in range(len(loop)):
            fn = torch.vmap(fn, in_dims=dims)
        return fn(*(tensors[i] if i in tensors else args[i] for i in range(len(args))))

    return wrapper


def vectorize(pyfunc, *, excluded=None, signature=None):
    """`pyfunc` vectorised over the leading axes of its tensor arguments
    (`torch.vmap` once per axis, the arguments broadcast). With a NumPy
    gufunc `signature` (`"(m,n),(n)->(m)"`) the trailing core dimensions of
    each argument go to `pyfunc` whole and only the leading (broadcast) loop
    axes are mapped; core dimension sizes are checked as NumPy does.
    Arguments whose positions are in `excluded` are passed as they are."""
    excluded = set(excluded or ())
    if signature is not None:
        return _vectorize_with_signature(pyfunc, excluded, signature)

    def wrapper(*args):
        dims = tuple(None if i in excluded else 0 for i in range(len(args)))
        tensors = [to_tensor(a) if i not in excluded else a for i, a in enumerate(args)]
        ndim = max((t.ndim for i, t in enumerate(tensors) if i not in excluded), default=0)
        fn = pyfunc
        for _ in range(ndim):
            fn = torch.vmap(fn, in_dims=dims)
        if ndim:
            shape = torch.broadcast_shapes(*(t.shape for i, t in enumerate(tensors) if i not in excluded))
            tensors = [t if i in excluded else t.expand(shape) for i, t in enumerate(tensors)]
        return fn(*tensors)

    return wrapper
