"""Keras 2's backend functions (`from keras import backend as K`) on torch.

Keras 2 / tf.keras programs write custom layers, losses and `Lambda`s with
`K.mean`, `K.square`, `K.batch_dot`, ... . Each function here follows the
tf.keras 2.x definition (argument names, defaults, the `epsilon()` clipping
of the cross-entropies, `sqrt` of negatives clamped to 0, Keras 2's N-D
`dot`) and works on torch tensors, NumPy arrays and Python numbers. On
symbolic `KerasTensor`s (a `Lambda` or a custom layer inside a functional
model) the torch calls they are made of are recorded as graph steps, so the
same functions build functional graphs.

Differences from tf.keras, on purpose:
- `K.shape(x)` returns `x.shape` (a `torch.Size`, or a tuple with None for
  unknown dimensions of a KerasTensor) rather than a shape tensor; indexing
  it (`K.shape(x)[0]`) gives the batch size as in Keras 2 programs.
- `K.function`, `K.gradients`, `K.placeholder` build TensorFlow graphs in
  Keras 2; `K.function` is provided for functional models (it returns a
  callable sub-model); the other two raise a `NotImplementedError` saying
  what to use instead.
"""

from __future__ import annotations

import builtins
import numbers

import numpy as np
import torch
import torch.nn.functional as F

from kerasish.backend import config as _config
from kerasish.backend import dtypes as _dtypes
from kerasish.backend.keras_tensor import KerasTensor

# ----------------------------------------------------------------- helpers


def _t(x, dtype=None):
    """`x` as a tensor (KerasTensors pass through unchanged)."""
    if isinstance(x, (torch.Tensor, KerasTensor)):
        return x
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
        if t.dtype == torch.float64 and dtype is None:
            t = t.to(_dtypes.to_torch_dtype(_dtypes.floatx()))
        return t if dtype is None else t.to(dtype)
    if dtype is None:
        dtype = _dtypes.to_torch_dtype(_dtypes.floatx()) if isinstance(x, float) or _has_float(x) else None
    return torch.as_tensor(x, dtype=dtype)


def _has_float(x) -> bool:
    if isinstance(x, (list, tuple)):
        return builtins.any(_has_float(v) for v in x)
    return isinstance(x, float)


def _float(x):
    """Floating tensor (Keras 2 reductions like `mean` of ints/bools are floats)."""
    x = _t(x)
    if not _is_float(x):
        x = x.to(_dtypes.to_torch_dtype(_dtypes.floatx()))
    return x


def _is_float(x) -> bool:
    if isinstance(x, KerasTensor):
        return _dtypes.is_float_dtype(x.dtype)
    return x.is_floating_point()


def _ndim(x) -> int:
    return len(x.shape)


def _axes(axis):
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        return tuple(int(a) for a in axis)
    return int(axis)


def _reduce(fn, x, axis, keepdims):
    axis = _axes(axis)
    if axis is None:
        out = fn(x)
        if keepdims:
            out = out.reshape((1,) * _ndim(x))
        return out
    return fn(x, dim=axis, keepdim=keepdims)


def _eps(x):
    return epsilon()


# ----------------------------------------------------------------- config


def backend() -> str:
    """The name of the backend: always "torch"."""
    return "torch"


def epsilon() -> float:
    """The fuzz factor (1e-7 unless set with `set_epsilon`)."""
    return _config.epsilon()


def set_epsilon(value: float) -> None:
    _config.set_epsilon(value)


def floatx() -> str:
    return _dtypes.floatx()


def set_floatx(value) -> None:
    _dtypes.set_floatx(value)


def image_data_format() -> str:
    return _config.image_data_format()


def set_image_data_format(data_format: str) -> None:
    _config.set_image_data_format(data_format)


def cast_to_floatx(x):
    """A NumPy array of `x` in `floatx()` (Keras 2 returns NumPy here)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=_dtypes.floatx() if _dtypes.floatx() != "bfloat16" else "float32")


def learning_phase() -> int:
    """1 inside a call running in training mode, else 0 (Keras 2's learning phase)."""
    from kerasish.layers import call_context

    return 1 if call_context.current_training() else 0


def set_learning_phase(value) -> None:
    raise NotImplementedError(
        "`K.set_learning_phase` is not supported (it was deprecated in TF 2.x): pass `training=True/False` "
        "to the model or layer call instead, or use `model.train()` / `model.eval()`."
    )


def name_scope(name):
    """Keras 2's `K.name_scope(name)` (TensorFlow's `tf.name_scope`): a
    context manager that puts `name` on the path of the weights created
    inside, as `keras.name_scope` does. Layer libraries open it in `build`
    around their sublayers (keras-tcn). A name with "/" opens one level per
    part; TensorFlow's trailing "/" (an absolute scope) is read as the same
    levels under the open ones."""
    from kerasish.utils import naming

    if not isinstance(name, str):
        raise TypeError(f"`K.name_scope` expects a string name. Received: name={name!r}")
    parts = [p for p in name.split("/") if p]
    if len(parts) == 1:
        return naming.NameScope(parts[0])
    import contextlib

    stack = contextlib.ExitStack()

    @contextlib.contextmanager
    def scopes():
        with stack:
            for part in parts:
                stack.enter_context(naming.NameScope(part))
            yield

    return scopes()


def is_keras_tensor(x) -> bool:
    """True for symbolic tensors (`keras.Input(...)` and what layers return on them)."""
    return isinstance(x, KerasTensor)


def is_tensor(x) -> bool:
    return isinstance(x, (torch.Tensor, KerasTensor))


def is_sparse(x) -> bool:
    return bool(getattr(x, "sparse", False)) or (isinstance(x, torch.Tensor) and x.is_sparse)


# ----------------------------------------------------- creation and values


def variable(value, dtype=None, name=None, constraint=None):
    """A `keras.Variable` (a trainable `nn.Parameter` with the Keras variable API)."""
    from kerasish.variables import Variable

    dtype = _dtypes.standardize_dtype(dtype) if dtype is not None else None
    if dtype is None:
        arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
        dtype = _dtypes.floatx() if arr.dtype.kind == "f" else _dtypes.standardize_dtype(arr.dtype)
    initial = value.detach().clone() if isinstance(value, torch.Tensor) else np.asarray(value)
    return Variable(initial, dtype=dtype, name=name, constraint=constraint)


def constant(value, dtype=None, shape=None, name=None):
    dtype = _dtypes.to_torch_dtype(dtype or _dtypes.floatx())
    t = torch.as_tensor(np.asarray(value), dtype=dtype)
    if shape is not None:
        t = t.expand(tuple(shape)).clone() if t.dim() == 0 else t.reshape(tuple(shape))
    return t


def _shape_dtype(shape, dtype):
    return tuple(int(s) for s in shape), _dtypes.to_torch_dtype(dtype or _dtypes.floatx())


def zeros(shape, dtype=None, name=None):
    s, d = _shape_dtype(shape, dtype)
    return torch.zeros(s, dtype=d)


def ones(shape, dtype=None, name=None):
    s, d = _shape_dtype(shape, dtype)
    return torch.ones(s, dtype=d)


def eye(size, dtype=None, name=None):
    d = _dtypes.to_torch_dtype(dtype or _dtypes.floatx())
    if isinstance(size, (list, tuple)):
        return torch.eye(int(size[0]), int(size[1]), dtype=d)
    return torch.eye(int(size), dtype=d)


def zeros_like(x, dtype=None, name=None):
    x = _t(x)
    return torch.zeros_like(x, dtype=_dtypes.to_torch_dtype(dtype) if dtype else None)


def ones_like(x, dtype=None, name=None):
    x = _t(x)
    return torch.ones_like(x, dtype=_dtypes.to_torch_dtype(dtype) if dtype else None)


def identity(x, name=None):
    return _t(x).clone() if isinstance(x, torch.Tensor) else _t(x)


def arange(start, stop=None, step=1, dtype="int32"):
    if stop is None:
        start, stop = 0, start
    return torch.arange(start, stop, step, dtype=_dtypes.to_torch_dtype(dtype))


def get_value(x):
    """`x` as a NumPy array."""
    if isinstance(x, KerasTensor):
        x.numpy()  # raises Keras's error about symbolic tensors
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def batch_get_value(tensors):
    return [get_value(x) for x in tensors]


def eval(x):  # noqa: A001 - Keras 2 name
    return get_value(x)


def set_value(x, value) -> None:
    """Writes `value` into the variable `x` in place (`K.set_value(model.optimizer.lr, 1e-4)` too)."""
    owner = getattr(x, "_kerasish_lr_owner", None)
    if owner is not None:  # an optimizer's learning rate
        owner.learning_rate = float(np.asarray(value))
        return
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`K.set_value` expects a variable (a torch tensor). Received: x of type {type(x).__name__}")
    value = torch.as_tensor(np.asarray(value), dtype=x.dtype, device=x.device)
    if tuple(value.shape) != tuple(x.shape):
        raise ValueError(
            f"`K.set_value`: the value's shape {tuple(value.shape)} does not match the variable's shape "
            f"{tuple(x.shape)}."
        )
    with torch.no_grad():
        x.copy_(value)


def batch_set_value(tuples) -> None:
    for x, value in tuples:
        set_value(x, value)


def update(x, new_x):
    set_value(x, get_value(new_x))
    return x


def update_add(x, increment):
    with torch.no_grad():
        x.add_(_t(increment).to(x.dtype))
    return x


def update_sub(x, decrement):
    with torch.no_grad():
        x.sub_(_t(decrement).to(x.dtype))
    return x


def count_params(x) -> int:
    return int(np.prod(tuple(x.shape)))


def print_tensor(x, message="", summarize=3):
    if isinstance(x, torch.Tensor):
        print(message, x)
    return x


# ----------------------------------------------------------------- shapes


def shape(x):
    """The shape of `x` (see the module docstring)."""
    return _t(x).shape


def int_shape(x):
    """The shape as a tuple of ints, None for unknown dimensions."""
    if isinstance(x, (KerasTensor,)):
        return tuple(x.shape)
    if hasattr(x, "shape"):
        return tuple(int(d) if d is not None else None for d in x.shape)
    return tuple(np.shape(x))


def ndim(x) -> int:
    return len(int_shape(x))


def dtype(x) -> str:
    if isinstance(x, KerasTensor):
        return x.dtype
    return _dtypes.standardize_dtype(_t(x).dtype)


def cast(x, dtype):
    return _t(x).to(_dtypes.to_torch_dtype(dtype))


def reshape(x, shape):
    return torch.reshape(_t(x), tuple(-1 if d is None else int(d) for d in shape))


def permute_dimensions(x, pattern):
    return torch.permute(_t(x), tuple(pattern))


def transpose(x):
    x = _t(x)
    return torch.permute(x, tuple(range(_ndim(x) - 1, -1, -1)))


def expand_dims(x, axis=-1):
    return torch.unsqueeze(_t(x), axis)


def squeeze(x, axis):
    return torch.squeeze(_t(x), axis)


def flatten(x):
    return torch.reshape(_t(x), (-1,))


def batch_flatten(x):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""
    return torch.flatten(_t(x), 1)


def concatenate(tensors, axis=-1):
    return torch.cat([_t(t) for t in tensors], dim=axis)


def stack(x, axis=0):
    return torch.stack([_t(t) for t in x], dim=axis)


def unstack(x, axis=0):
    return list(torch.unbind(_t(x), dim=axis))


def tile(x, n):
    if isinstance(n, int):
        n = [n]
    return torch.tile(_t(x), tuple(int(v) for v in n))


def repeat(x, n):
    """(batch, dim) -> (batch, n, dim), as `RepeatVector`."""
    x = _t(x)
    if _ndim(x) != 2:
        raise ValueError(f"`K.repeat` expects a 2D tensor (batch, dim). Received: shape={tuple(x.shape)}")
    return torch.unsqueeze(x, 1).expand(-1, int(n), -1) if not isinstance(x, KerasTensor) else torch.tile(
        torch.unsqueeze(x, 1), (1, int(n), 1)
    )


def repeat_elements(x, rep, axis):
    return torch.repeat_interleave(_t(x), int(rep), dim=axis)


def reverse(x, axes):
    if isinstance(axes, int):
        axes = [axes]
    return torch.flip(_t(x), tuple(axes))


def slice(x, start, size):  # noqa: A001 - Keras 2 name
    x = _t(x)
    index = tuple(
        builtins.slice(int(s), None if int(n) == -1 else int(s) + int(n)) for s, n in zip(start, size)
    )
    return x[index]


def gather(reference, indices):
    """`reference[indices]` along the first axis."""
    reference = _t(reference)
    indices = _t(indices).long()
    return torch.index_select(reference, 0, indices.reshape(-1)).reshape(
        tuple(indices.shape) + tuple(reference.shape[1:])
    ) if not isinstance(reference, KerasTensor) else reference[indices]


def one_hot(indices, num_classes):
    return F.one_hot(_t(indices).long(), int(num_classes)).to(_dtypes.to_torch_dtype(_dtypes.floatx()))


def _pad_dims(x, pads):
    # pads: list of (before, after) per dimension, first dimension first
    flat = []
    for before, after in reversed(pads):
        flat.extend([int(before), int(after)])
    return F.pad(x, flat)


def temporal_padding(x, padding=(1, 1)):
    """Pads the middle dimension of a 3D tensor with zeros."""
    return _pad_dims(_t(x), [(0, 0), tuple(padding), (0, 0)])


def spatial_2d_padding(x, padding=((1, 1), (1, 1)), data_format=None):
    data_format = data_format or image_data_format()
    if data_format == "channels_first":
        return _pad_dims(_t(x), [(0, 0), (0, 0), tuple(padding[0]), tuple(padding[1])])
    return _pad_dims(_t(x), [(0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)])


# ------------------------------------------------------------- reductions


def sum(x, axis=None, keepdims=False):  # noqa: A001 - Keras 2 name
    x = _t(x)
    if x.dtype == torch.bool if isinstance(x, torch.Tensor) else x.dtype == "bool":
        x = x.to(torch.int32)
    return _reduce(torch.sum, x, axis, keepdims)


def prod(x, axis=None, keepdims=False):
    axis = _axes(axis)
    x = _t(x)
    if axis is None:
        out = torch.prod(x)
        return out.reshape((1,) * _ndim(x)) if keepdims else out
    if isinstance(axis, tuple):
        for a in sorted((a % _ndim(x) for a in axis), reverse=True):
            x = torch.prod(x, dim=a, keepdim=keepdims)
        return x
    return torch.prod(x, dim=axis, keepdim=keepdims)


def mean(x, axis=None, keepdims=False):
    return _reduce(torch.mean, _float(x), axis, keepdims)


def _minmax(fn, x, axis, keepdims):
    x = _t(x)
    axis = _axes(axis)
    if axis is None:
        out = fn(x)
        return out.reshape((1,) * _ndim(x)) if keepdims else out
    return torch.amax(x, dim=axis, keepdim=keepdims) if fn is torch.max else torch.amin(x, dim=axis, keepdim=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001 - Keras 2 name
    return _minmax(torch.max, x, axis, keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001 - Keras 2 name
    return _minmax(torch.min, x, axis, keepdims)


def var(x, axis=None, keepdims=False):
    """Population variance (Keras 2 divides by N)."""
    return _reduce(lambda t, **kw: torch.var(t, correction=0, **kw), _float(x), axis, keepdims)


def std(x, axis=None, keepdims=False):
    return _reduce(lambda t, **kw: torch.std(t, correction=0, **kw), _float(x), axis, keepdims)


def any(x, axis=None, keepdims=False):  # noqa: A001 - Keras 2 name
    x = _t(x).to(torch.bool)
    axis = _axes(axis)
    if axis is None:
        out = torch.any(x)
        return out.reshape((1,) * _ndim(x)) if keepdims else out
    return torch.any(x, dim=axis, keepdim=keepdims)


def all(x, axis=None, keepdims=False):  # noqa: A001 - Keras 2 name
    x = _t(x).to(torch.bool)
    axis = _axes(axis)
    if axis is None:
        out = torch.all(x)
        return out.reshape((1,) * _ndim(x)) if keepdims else out
    return torch.all(x, dim=axis, keepdim=keepdims)


def argmax(x, axis=-1):
    return torch.argmax(_t(x), dim=axis)


def argmin(x, axis=-1):
    return torch.argmin(_t(x), dim=axis)


def logsumexp(x, axis=None, keepdims=False):
    x = _float(x)
    if axis is None:
        axis = tuple(range(_ndim(x)))
    return torch.logsumexp(x, dim=_axes(axis), keepdim=keepdims)


def cumsum(x, axis=0):
    return torch.cumsum(_t(x), dim=axis)


def cumprod(x, axis=0):
    return torch.cumprod(_t(x), dim=axis)


# ---------------------------------------------------------- element-wise


def square(x):
    return torch.square(_t(x))


def sqrt(x):
    """Square root; negative inputs give 0 (Keras 2 clamps at 0 first)."""
    x = _float(x)
    return torch.sqrt(torch.clamp(x, min=0.0))


def exp(x):
    return torch.exp(_float(x))


def log(x):
    return torch.log(_float(x))


def abs(x):  # noqa: A001 - Keras 2 name
    return torch.abs(_t(x))


def sign(x):
    return torch.sign(_t(x))


def pow(x, a):  # noqa: A001 - Keras 2 name
    return torch.pow(_t(x), a)


def round(x):  # noqa: A001 - Keras 2 name
    """Rounds half to even, as TF does."""
    return torch.round(_t(x))


def clip(x, min_value, max_value):
    """Clips to [min_value, max_value]; a max below the min is raised to the min (Keras 2)."""
    if isinstance(min_value, numbers.Number) and isinstance(max_value, numbers.Number) and max_value < min_value:
        max_value = min_value
    if min_value is None:
        min_value = -np.inf
    if max_value is None:
        max_value = np.inf
    return torch.clamp(_t(x), min=min_value, max=max_value)


def maximum(x, y):
    x, y = _t(x), _t(y)
    return torch.maximum(x, y if isinstance(y, (torch.Tensor, KerasTensor)) else torch.as_tensor(y))


def minimum(x, y):
    x, y = _t(x), _t(y)
    return torch.minimum(x, y)


def sin(x):
    return torch.sin(_float(x))


def cos(x):
    return torch.cos(_float(x))


def equal(x, y):
    return torch.eq(_t(x), _t(y))


def not_equal(x, y):
    return torch.ne(_t(x), _t(y))


def greater(x, y):
    return torch.gt(_t(x), _t(y))


def greater_equal(x, y):
    return torch.ge(_t(x), _t(y))


def less(x, y):
    return torch.lt(_t(x), _t(y))


def less_equal(x, y):
    return torch.le(_t(x), _t(y))


def switch(condition, then_expression, else_expression):
    """Element-wise `then if condition else else` (callables are called first)."""
    if callable(then_expression):
        then_expression = then_expression()
    if callable(else_expression):
        else_expression = else_expression()
    condition = _t(condition)
    if isinstance(condition, torch.Tensor) and condition.dim() == 0:
        return then_expression if bool(condition) else else_expression
    cond = condition.to(torch.bool)
    then_t, else_t = _t(then_expression), _t(else_expression)
    while _ndim(cond) < _ndim(then_t):
        cond = torch.unsqueeze(cond, -1)
    return torch.where(cond, then_t, else_t)


def in_train_phase(x, alt, training=None):
    """`x` in training mode, `alt` otherwise (callables are called)."""
    if training is None:
        training = learning_phase()
    chosen = x if training else alt
    return chosen() if callable(chosen) else chosen


def in_test_phase(x, alt, training=None):
    return in_train_phase(alt, x, training=training)


def stop_gradient(variables):
    if isinstance(variables, (list, tuple)):
        return [torch.detach(_t(v)) for v in variables]
    return torch.detach(_t(variables))


# ------------------------------------------------------------ activations


def relu(x, alpha=0.0, negative_slope=None, max_value=None, threshold=0.0):
    """Keras 2's parameterised ReLU: slope `alpha` below `threshold`, capped at `max_value`."""
    if negative_slope is not None:
        alpha = negative_slope
    x = _float(x)
    if alpha == 0 and max_value is None and threshold == 0:
        return torch.relu(x)
    if threshold != 0:
        negative = alpha * (x - threshold)
        out = torch.where(x > threshold, x, torch.zeros_like(x))
    else:
        negative = alpha * x
        out = torch.relu(x)
    if max_value is not None:
        out = torch.clamp(out, max=float(max_value))
    if alpha != 0:
        below = torch.lt(x, threshold) if threshold != 0 else torch.lt(x, 0)
        out = torch.where(below, negative, out)
    return out


def elu(x, alpha=1.0):
    return F.elu(_float(x), alpha=alpha)


def softmax(x, axis=-1):
    return torch.softmax(_float(x), dim=axis)


def softplus(x):
    return F.softplus(_float(x))


def softsign(x):
    return F.softsign(_float(x))


def sigmoid(x):
    return torch.sigmoid(_float(x))


def hard_sigmoid(x):
    """Keras 2's hard sigmoid: clip(0.2 * x + 0.5, 0, 1) (Keras 3 uses x / 6 + 0.5)."""
    return torch.clamp(0.2 * _float(x) + 0.5, 0.0, 1.0)


def tanh(x):
    return torch.tanh(_float(x))


def l2_normalize(x, axis=None):
    """x / sqrt(max(sum(x**2, axis), 1e-12)) (TF's l2_normalize)."""
    x = _float(x)
    if axis is None:
        axis = tuple(range(_ndim(x)))
    sq = torch.sum(torch.square(x), dim=_axes(axis), keepdim=True)
    return x * torch.rsqrt(torch.clamp(sq, min=1e-12))


def dropout(x, level, noise_shape=None, seed=None):
    """Inverted dropout at rate `level` (always on: Keras 2's K.dropout ignores the learning phase)."""
    x = _float(x)
    if not 0 <= level < 1:
        raise ValueError(f"`K.dropout`: `level` must be in [0, 1). Received: level={level}")
    gen = _generator(seed, x.device)
    shape_ = tuple(x.shape) if noise_shape is None else tuple(
        x.shape[i] if d is None else int(d) for i, d in enumerate(noise_shape)
    )
    keep = torch.rand(shape_, generator=gen, device=x.device) >= level
    return x * keep.to(x.dtype) / (1.0 - level)


# ----------------------------------------------------------------- losses


def binary_crossentropy(target, output, from_logits=False):
    """Element-wise binary cross-entropy, tf.keras 2.x definition (output clipped to [eps, 1 - eps])."""
    target, output = _float(target), _float(output)
    if from_logits:
        return F.binary_cross_entropy_with_logits(output, target.to(output.dtype), reduction="none")
    eps = epsilon()
    output = torch.clamp(output, eps, 1.0 - eps)
    bce = target * torch.log(output + eps) + (1 - target) * torch.log(1 - output + eps)
    return -bce


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Cross-entropy over `axis`; probabilities are renormalised then clipped (tf.keras 2.x)."""
    target, output = _float(target), _float(output)
    if from_logits:
        return -torch.sum(target * torch.log_softmax(output, dim=axis), dim=axis)
    output = output / torch.sum(output, dim=axis, keepdim=True)
    eps = epsilon()
    output = torch.clamp(output, eps, 1.0 - eps)
    return -torch.sum(target * torch.log(output), dim=axis)


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    output = _float(output)
    if not from_logits:
        eps = epsilon()
        output = torch.log(torch.clamp(output, eps, 1.0 - eps))
    logp = torch.log_softmax(output, dim=axis)
    target = _t(target).long()
    if _ndim(target) == _ndim(logp):
        target = torch.squeeze(target, axis)
    logp = torch.movedim(logp, axis, -1)
    return -torch.squeeze(torch.gather(logp, -1, torch.unsqueeze(target, -1)), -1)


# ----------------------------------------------------------- linear algebra


def dot(x, y):
    """Keras 2's `dot`: matmul for 2D; for N-D, contracts the last axis of `x`
    with the second-to-last axis of `y` (result `x.shape[:-1] + y.shape[:-2] + y.shape[-1:]`)."""
    x, y = _t(x), _t(y)
    if _ndim(x) > 2 or _ndim(y) > 2:
        if _ndim(y) == 1:
            return torch.tensordot(x, y, dims=([_ndim(x) - 1], [0]))
        return torch.tensordot(x, y, dims=([_ndim(x) - 1], [_ndim(y) - 2]))
    return torch.matmul(x, y)


def batch_dot(x, y, axes=None):
    """Batch-wise dot product (tf.keras 2.x semantics): contracts `axes[0]` of
    `x` with `axes[1]` of `y` for each sample; a result of rank 1 becomes
    `(batch, 1)`."""
    x, y = _t(x), _t(y)
    xn, yn = _ndim(x), _ndim(y)
    if xn < 2 or yn < 2:
        raise ValueError(
            f"Cannot do batch_dot on inputs with rank < 2. Received inputs with shapes {tuple(x.shape)} and "
            f"{tuple(y.shape)}."
        )
    if axes is None:
        axes = [xn - 1, yn - 1] if yn == 2 else [xn - 1, yn - 2]
    if isinstance(axes, int):
        axes = [axes, axes]
    a0, a1 = int(axes[0]) % xn, int(axes[1]) % yn
    if a0 == 0 or a1 == 0:
        raise ValueError(f"Cannot perform batch_dot over axis 0 (the batch axis). Received: axes={axes}")
    xm = torch.movedim(x, a0, -1)  # (b, X..., k)
    ym = torch.movedim(y, a1, 1)  # (b, k, Y...)
    x_rest = tuple(xm.shape[1:-1])
    y_rest = tuple(ym.shape[2:])
    k = xm.shape[-1]
    xm = torch.reshape(xm, (-1, int(np.prod(x_rest)) if x_rest else 1, k))
    ym = torch.reshape(ym, (-1, k, int(np.prod(y_rest)) if y_rest else 1))
    out = torch.bmm(xm, ym)
    out = torch.reshape(out, (-1, *x_rest, *y_rest))
    if len(x_rest) + len(y_rest) == 0:
        out = torch.unsqueeze(out, 1)
    return out


def bias_add(x, bias, data_format=None):
    x, bias = _t(x), _t(bias)
    data_format = data_format or image_data_format()
    if data_format == "channels_first" and _ndim(x) > 2:
        shape_ = (1, -1) + (1,) * (_ndim(x) - 2) if _ndim(bias) == 1 else (1, *bias.shape)
        return x + torch.reshape(bias, shape_)
    return x + bias


# ---------------------------------------------------------------- random


def _generator(seed, device=None):
    if seed is None:
        return None
    gen = torch.Generator(device=device if device is not None else "cpu")
    gen.manual_seed(int(seed))
    return gen


def _random_shape(shape):
    return tuple(int(s) for s in shape)


def random_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    d = _dtypes.to_torch_dtype(dtype or _dtypes.floatx())
    out = torch.randn(_random_shape(shape), generator=_generator(seed), dtype=d)
    return out * stddev + mean


def random_uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    d = _dtypes.to_torch_dtype(dtype or _dtypes.floatx())
    out = torch.rand(_random_shape(shape), generator=_generator(seed), dtype=d)
    return out * (maxval - minval) + minval


def random_bernoulli(shape, p=0.0, dtype=None, seed=None):
    d = _dtypes.to_torch_dtype(dtype or _dtypes.floatx())
    draws = torch.rand(_random_shape(shape), generator=_generator(seed))
    return (draws < p).to(d)


random_binomial = random_bernoulli


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal draws re-drawn until within two standard deviations of the mean."""
    d = _dtypes.to_torch_dtype(dtype or _dtypes.floatx())
    out = torch.empty(_random_shape(shape), dtype=d)
    torch.nn.init.trunc_normal_(out, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=_generator(seed))
    return out * stddev + mean


def random_normal_variable(shape, mean, scale, dtype=None, name=None, seed=None):
    return variable(random_normal(shape, mean, scale, dtype, seed), dtype=dtype, name=name)


def random_uniform_variable(shape, low, high, dtype=None, name=None, seed=None):
    return variable(random_uniform(shape, low, high, dtype, seed), dtype=dtype, name=name)


# ------------------------------------------------------- graph functions


def function(inputs, outputs, updates=None, name=None, **kwargs):
    """`K.function([model.input], [layer.output])`: a callable that maps input
    values to output values (NumPy arrays), built as a functional sub-model."""
    from kerasish.models.functional import Functional

    single_output = not isinstance(outputs, (list, tuple))
    model = Functional(inputs if isinstance(inputs, (list, tuple)) else [inputs],
                       [outputs] if single_output else list(outputs))

    def run(values):
        if not isinstance(values, (list, tuple)):
            values = [values]
        with torch.no_grad():
            result = model([_t(v) for v in values], training=False)
        if not isinstance(result, (list, tuple)):
            result = [result]
        arrays = [r.detach().cpu().numpy() for r in result]
        return arrays[0] if single_output else arrays

    return run


def gradients(loss, variables):
    raise NotImplementedError(
        "`K.gradients` builds a TensorFlow graph. On PyTorch use `torch.autograd.grad(loss, variables)` "
        "(or `loss.backward()`)."
    )


def placeholder(shape=None, ndim=None, dtype=None, sparse=False, name=None):
    """A symbolic input (`keras.Input`-like KerasTensor); the batch dimension is included in `shape`."""
    if shape is None:
        if ndim is None:
            raise ValueError("`K.placeholder` needs `shape` or `ndim`.")
        shape = (None,) * int(ndim)
    return KerasTensor(tuple(shape), dtype=dtype or _dtypes.floatx(), sparse=sparse, name=name)


def ctc_batch_cost(y_true, y_pred, input_length, label_length):
    """Per-sample CTC loss (Keras 2): `y_pred` (batch, time, classes) softmax
    probabilities with the blank as the LAST class; returns (batch, 1)."""
    y_pred = _float(y_pred)
    log_probs = torch.log(torch.transpose(y_pred, 0, 1) + epsilon())  # (time, batch, classes)
    blank = y_pred.shape[-1] - 1
    input_length = _t(input_length).reshape(-1).long()
    label_length = _t(label_length).reshape(-1).long()
    targets = _t(y_true).long()
    loss = F.ctc_loss(log_probs, targets, input_length, label_length, blank=blank, reduction="none",
                      zero_infinity=False)
    return torch.unsqueeze(loss, 1)


__all__ = [
    "abs",
    "all",
    "any",
    "arange",
    "argmax",
    "argmin",
    "backend",
    "batch_dot",
    "batch_flatten",
    "batch_get_value",
    "batch_set_value",
    "bias_add",
    "binary_crossentropy",
    "cast",
    "cast_to_floatx",
    "categorical_crossentropy",
    "clip",
    "concatenate",
    "constant",
    "cos",
    "count_params",
    "ctc_batch_cost",
    "cumprod",
    "cumsum",
    "dot",
    "dropout",
    "dtype",
    "elu",
    "epsilon",
    "equal",
    "eval",
    "exp",
    "expand_dims",
    "eye",
    "flatten",
    "floatx",
    "function",
    "gather",
    "get_value",
    "gradients",
    "greater",
    "greater_equal",
    "hard_sigmoid",
    "identity",
    "image_data_format",
    "in_test_phase",
    "in_train_phase",
    "int_shape",
    "is_keras_tensor",
    "is_sparse",
    "is_tensor",
    "l2_normalize",
    "learning_phase",
    "less",
    "less_equal",
    "log",
    "logsumexp",
    "max",
    "maximum",
    "name_scope",
    "mean",
    "min",
    "minimum",
    "ndim",
    "not_equal",
    "one_hot",
    "ones",
    "ones_like",
    "permute_dimensions",
    "placeholder",
    "pow",
    "print_tensor",
    "prod",
    "random_bernoulli",
    "random_binomial",
    "random_normal",
    "random_normal_variable",
    "random_uniform",
    "random_uniform_variable",
    "relu",
    "repeat",
    "repeat_elements",
    "reshape",
    "reverse",
    "round",
    "set_epsilon",
    "set_floatx",
    "set_image_data_format",
    "set_learning_phase",
    "set_value",
    "shape",
    "sigmoid",
    "sign",
    "sin",
    "slice",
    "softmax",
    "softplus",
    "softsign",
    "sparse_categorical_crossentropy",
    "spatial_2d_padding",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "stop_gradient",
    "sum",
    "switch",
    "tanh",
    "temporal_padding",
    "tile",
    "transpose",
    "truncated_normal",
    "unstack",
    "update",
    "update_add",
    "update_sub",
    "var",
    "variable",
    "zeros",
    "zeros_like",
]
