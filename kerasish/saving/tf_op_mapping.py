"""TensorFlow ops recorded in Keras 2 functional models, run with torch.

tf.keras 2 records a TensorFlow function applied to a symbolic tensor
(`tf.nn.relu(x)`, `x * 2`, `x[:, 1:3]`, `tf.concat([a, b], -1)`) as a
`TFOpLambda` / `SlicingOpLambda` layer whose config names the op
(`"function": "math.reduce_sum"`) and whose node keeps the call's arguments
by TensorFlow's parameter names (`{"axis": -1, "keepdims": true}`). This
module maps the common `tf.math`, `tf.nn`, shape and slicing ops to torch
with TensorFlow's semantics; any other op is refused with a `ValueError`
naming it. The layer keeps its Keras 2 config, so a model saved again as
legacy HDF5 still loads in tf.keras.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.layers.layer import Layer


def _axis(a):
    return tuple(a) if isinstance(a, (list, tuple)) else a


def _reduce(fn):
    def run(input_tensor, axis=None, keepdims=False, name=None):
        if axis is None:
            out = fn(input_tensor)
            return out.reshape((1,) * input_tensor.ndim) if keepdims else out
        return fn(input_tensor, dim=_axis(axis), keepdim=bool(keepdims))

    return run


def _reduce_single_dim(fn):
    def run(input_tensor, axis=None, keepdims=False, name=None):
        if axis is None:
            out = fn(input_tensor)
            return out.reshape((1,) * input_tensor.ndim) if keepdims else out
        for a in sorted((axis if isinstance(axis, (list, tuple)) else [axis]), reverse=True):
            input_tensor = fn(input_tensor, dim=a, keepdim=True)
        if not keepdims:
            input_tensor = input_tensor.squeeze(_axis(axis))
        return input_tensor

    return run


def _amax(t, dim=None, keepdim=False):
    return t.amax() if dim is None else t.amax(dim=dim, keepdim=keepdim)


def _amin(t, dim=None, keepdim=False):
    return t.amin() if dim is None else t.amin(dim=dim, keepdim=keepdim)


def _unary(fn):
    def run(x=None, name=None, **kw):
        if x is None:  # tf names the argument `features`, `x` or `input`
            x = kw.pop("features", None)
            x = kw.pop("input", x)
        return fn(x)

    return run


def _binary(fn):
    def run(x, y, name=None):
        return fn(x, y)

    return run


def _matmul(a, b, transpose_a=False, transpose_b=False, name=None, **unused):
    if transpose_a:
        a = a.transpose(-1, -2)
    if transpose_b:
        b = b.transpose(-1, -2)
    return torch.matmul(a, b)


def _cast(x, dtype, name=None):
    from kerasish.backend import dtypes

    return x.to(dtypes.to_torch_dtype(dtype))


def _l2_normalize(x, axis=None, epsilon=1e-12, name=None, dim=None):
    axis = dim if axis is None else axis
    sq = torch.sum(x * x, dim=_axis(axis), keepdim=True)
    return x * torch.rsqrt(torch.clamp(sq, min=epsilon))


def _getitem(tensor, slice_spec, var=None):
    index = []
    for s in slice_spec if isinstance(slice_spec, (list, tuple)) else [slice_spec]:
        if isinstance(s, dict) and set(s) <= {"start", "stop", "step"}:
            index.append(slice(s.get("start"), s.get("stop"), s.get("step")))
        elif s is None:
            index.append(None)
        elif s == Ellipsis or (isinstance(s, dict) and s.get("class_name") == "__ellipsis__"):
            index.append(Ellipsis)
        elif isinstance(s, int):
            index.append(s)
        else:
            raise ValueError(f"Unsupported slice in a Keras 2 SlicingOpLambda: {s!r}")
    return tensor[tuple(index)]


def _softmax(logits, axis=-1, name=None):
    return torch.softmax(logits, dim=axis)


def _gelu(features, approximate=False, name=None):
    return F.gelu(features, approximate="tanh" if approximate else "none")


def _leaky_relu(features, alpha=0.2, name=None):
    return F.leaky_relu(features, alpha)


# TF op name (as in the config's `function`) -> callable taking TF's argument names.
_OPS = {
    "nn.relu": _unary(torch.relu), "nn.relu6": _unary(lambda t: torch.clamp(t, 0.0, 6.0)),
    "nn.sigmoid": _unary(torch.sigmoid), "math.sigmoid": _unary(torch.sigmoid),
    "nn.tanh": _unary(torch.tanh), "math.tanh": _unary(torch.tanh), "nn.elu": _unary(F.elu),
    "nn.selu": _unary(F.selu), "nn.softplus": _unary(F.softplus), "math.softplus": _unary(F.softplus),
    "nn.softsign": _unary(F.softsign), "nn.silu": _unary(F.silu), "nn.swish": _unary(F.silu),
    "nn.gelu": _gelu, "nn.leaky_relu": _leaky_relu, "nn.softmax": _softmax, "math.softmax": _softmax,
    "math.exp": _unary(torch.exp), "math.log": _unary(torch.log), "math.sqrt": _unary(torch.sqrt),
    "math.rsqrt": _unary(torch.rsqrt), "math.square": _unary(torch.square), "math.abs": _unary(torch.abs),
    "math.negative": _unary(torch.negative), "math.reciprocal": _unary(torch.reciprocal),
    "math.sin": _unary(torch.sin), "math.cos": _unary(torch.cos), "math.erf": _unary(torch.erf),
    "math.floor": _unary(torch.floor), "math.ceil": _unary(torch.ceil), "math.round": _unary(torch.round),
    "math.sign": _unary(torch.sign), "math.log1p": _unary(torch.log1p), "math.expm1": _unary(torch.expm1),
    "identity": _unary(lambda t: t), "stop_gradient": _unary(torch.Tensor.detach),
    "math.add": _binary(torch.add), "__operators__.add": _binary(torch.add), "math.subtract": _binary(torch.subtract),
    "math.multiply": _binary(torch.multiply), "math.truediv": _binary(torch.true_divide),
    "math.divide": _binary(torch.true_divide), "math.floordiv": _binary(torch.floor_divide),
    "math.maximum": _binary(torch.maximum), "math.minimum": _binary(torch.minimum), "math.pow": _binary(torch.pow),
    "math.squared_difference": _binary(lambda a, b: torch.square(a - b)),
    "math.equal": _binary(torch.eq), "math.not_equal": _binary(torch.ne), "math.greater": _binary(torch.gt),
    "math.greater_equal": _binary(torch.ge), "math.less": _binary(torch.lt), "math.less_equal": _binary(torch.le),
    "linalg.matmul": _matmul,
    "math.reduce_sum": _reduce(torch.sum), "math.reduce_mean": _reduce(torch.mean),
    "math.reduce_max": _reduce(_amax), "math.reduce_min": _reduce(_amin),
    "math.reduce_prod": _reduce_single_dim(torch.prod), "math.reduce_logsumexp": _reduce(torch.logsumexp),
    "reshape": lambda tensor, shape, name=None: tensor.reshape(tuple(-1 if s is None else s for s in shape)),
    "transpose": lambda a, perm=None, conjugate=False, name=None: a.permute(
        *(perm if perm is not None else range(a.ndim - 1, -1, -1))),
    "concat": lambda values, axis, name=None: torch.cat(list(values), dim=axis),
    "stack": lambda values, axis=0, name=None: torch.stack(list(values), dim=axis),
    "expand_dims": lambda input, axis, name=None: torch.unsqueeze(input, axis),
    "squeeze": lambda input, axis=None, name=None: input.squeeze(_axis(axis)) if axis is not None else input.squeeze(),
    "cast": _cast, "clip_by_value": lambda t, clip_value_min, clip_value_max, name=None: torch.clamp(
        t, clip_value_min, clip_value_max),
    "math.l2_normalize": _l2_normalize, "nn.l2_normalize": _l2_normalize, "linalg.l2_normalize": _l2_normalize,
    "__operators__.getitem": _getitem,
}
_OPS["compat.v1.transpose"] = _OPS["transpose"]
_OPS["math.argmax"] = lambda input, axis=None, output_type=None, name=None: torch.argmax(input, dim=axis)


def supported_ops() -> list:
    """The TensorFlow op names (as tf.keras writes them) that load."""
    return sorted(_OPS)


def check_supported(config, layer_name=None) -> None:
    """Raises a ValueError naming the op when a TFOpLambda's op has no mapping."""
    function = (config or {}).get("function")
    if function not in _OPS:
        raise ValueError(
            f"Cannot load the Keras 2 TFOpLambda layer '{(config or {}).get('name', layer_name)}': the TensorFlow "
            f"op `tf.{function}` has no torch mapping in kerasish. Supported ops: {', '.join(supported_ops())}. "
            "Replace it in the original model with a Keras layer, or load the weights into a kerasish model you "
            "build in code."
        )


class TFOpLambda(Layer):
    """A TensorFlow op from a Keras 2 model, run with torch (see module doc).

    Args:
        function: The op's name as tf.keras writes it (`"math.reduce_sum"`).
    """

    def __init__(self, function, **kwargs):
        kwargs.pop("trainable", None)
        super().__init__(**kwargs)
        check_supported({"function": function, "name": self.name})
        self.function = function
        self._op = _OPS[function]

    def call(self, *args, **kwargs):
        kwargs.pop("training", None)  # passed by Layer.__call__ to a `**kwargs` call
        kwargs.pop("mask", None)
        return self._op(*args, **kwargs)

    def get_config(self):
        return {**super().get_config(), "function": self.function}


class SlicingOpLambda(TFOpLambda):
    """`tensor[...]` from a Keras 2 model (`"function": "__operators__.getitem"`)."""
