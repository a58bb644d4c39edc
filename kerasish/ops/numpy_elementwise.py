"""Element-wise `keras.ops` (NumPy-style): unary maths, arithmetic,
comparisons, logical and bitwise ops.

Dtype rules follow the Keras 3 torch backend: Python scalars become int32 /
float32 0-d tensors (so they act as weak types under torch promotion),
transcendental functions of integer or bool inputs return `floatx()`,
`divide` always returns a float.
"""

from __future__ import annotations

import torch

from kerasish.backend import dtypes as _dtypes
from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import dtype_of
from kerasish.backend.promotion import result_type
from kerasish.backend.promotion import to_tensor

__all__: list = []


def _floatx():
    return _dtypes.to_torch_dtype(_dtypes.floatx())


def _float_input(x):
    """`x` as a tensor; integer and bool inputs are cast to `floatx()`."""
    x = to_tensor(x)
    if x.is_floating_point() or x.is_complex():
        return x
    return x.to(_floatx())


def _define(name, fn, doc):
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    fn.__module__ = __name__
    op = keras_op(fn, name=name)
    globals()[name] = op
    __all__.append(name)
    return op


def _unary_float(name, torch_fn):
    def fn(x):
        return torch_fn(_float_input(x))

    return _define(name, fn, f"Element-wise `{name}`; integer and bool inputs give `floatx()`.\n\n"
                   "Args:\n    x: Input tensor.\n\nReturns:\n    Output tensor.")


def _unary_same(name, torch_fn):
    def fn(x):
        return torch_fn(to_tensor(x))

    return _define(name, fn, f"Element-wise `{name}`; the result keeps the input dtype.\n\n"
                   "Args:\n    x: Input tensor.\n\nReturns:\n    Output tensor.")


for _name, _fn in {
    "arccos": torch.arccos, "arccosh": torch.arccosh, "arcsin": torch.arcsin, "arcsinh": torch.arcsinh,
    "arctan": torch.arctan, "arctanh": torch.arctanh, "cos": torch.cos, "cosh": torch.cosh, "sin": torch.sin,
    "sinh": torch.sinh, "tan": torch.tan, "tanh": torch.tanh, "exp": torch.exp, "exp2": torch.exp2,
    "expm1": torch.expm1, "log": torch.log, "log10": torch.log10, "log1p": torch.log1p, "log2": torch.log2,
    "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "erf": torch.erf, "erfc": torch.erfc, "erfinv": torch.erfinv,
    "deg2rad": torch.deg2rad, "rad2deg": torch.rad2deg, "i0": torch.i0, "sinc": torch.sinc,
    "reciprocal": torch.reciprocal, "cbrt": lambda x: torch.sign(x) * torch.abs(x).pow(1.0 / 3.0),
    "fabs": torch.abs, "angle": torch.angle, "ceil": torch.ceil, "floor": torch.floor,
}.items():
    _unary_float(_name, _fn)

for _name, _fn in {
    "absolute": torch.abs, "abs": torch.abs, "negative": torch.negative, "square": torch.square,
    "sign": torch.sign, "conjugate": torch.conj_physical, "conj": torch.conj_physical, "real": torch.real,
    "imag": torch.imag, "copy": torch.clone, "isfinite": torch.isfinite, "isinf": torch.isinf,
    "isnan": torch.isnan, "isneginf": torch.isneginf, "isposinf": torch.isposinf, "isreal": torch.isreal,
    "signbit": torch.signbit, "logical_not": torch.logical_not, "bitwise_not": torch.bitwise_not,
    "bitwise_invert": torch.bitwise_not, "trunc": torch.trunc,
}.items():
    _unary_same(_name, _fn)


@keras_op
def round(x, decimals=0):  # noqa: A001 - Keras name
    """Rounds half to even to `decimals` places; integer inputs stay integer."""
    x = to_tensor(x)
    if not x.is_floating_point():
        if decimals >= 0:
            return x
        factor = 10 ** (-decimals)
        return (torch.round(x.double() / factor) * factor).to(x.dtype)
    return torch.round(x, decimals=decimals)


def _pair(x1, x2):
    a, b = to_tensor(x1), to_tensor(x2)
    # a Python scalar becomes a CPU tensor; next to the meta tensors of
    # symbolic shape inference (`7 // x` on a KerasTensor) some torch
    # decompositions refuse it, so it goes to meta too (CUDA kernels take a
    # CPU scalar as is: no copy there)
    if not isinstance(x1, torch.Tensor):
        if b.is_meta:
            a = a.to("meta")
    elif not isinstance(x2, torch.Tensor) and a.is_meta:
        b = b.to("meta")
    return a, b


# Tensor dtypes for which torch's own Python-scalar rule gives `x <op> s`
# the dtype and the values Keras's conversion of `s` (an int32 or floatx 0-dim
# tensor, see `to_tensor`) gives, so the scalar can go to torch as is and the
# conversion (a tensor made at every call: most of the cost of `x * 2` in a
# functional model) is skipped. Not float16/bfloat16/float64 (the scalar's
# rounding could differ), not bool or narrow integers (category, overflow).
_INT_SCALAR_OK = frozenset({torch.int32, torch.int64, torch.float32, torch.float64})
_FLOAT_SCALAR_OK = frozenset({torch.float32})


def _plain_scalar(x, t) -> bool:
    """Whether the Python scalar `x` can be passed to torch next to `t` as is."""
    kind = type(x)
    if kind is int:
        return t.dtype in _INT_SCALAR_OK and -(2**31) <= x < 2**31 and t.ndim > 0
    if kind is float:
        return t.dtype in _FLOAT_SCALAR_OK and t.ndim > 0
    return False


def _subtract(a, b):
    # torch refuses `-` on bool tensors; Keras's torch backend gives a bool
    # operand the other operand's dtype first (`mask - 1`, `x - True`)
    if a.dtype == torch.bool:
        a = a.to(b.dtype)
    if isinstance(b, torch.Tensor) and b.dtype == torch.bool:
        b = b.to(a.dtype)
    return torch.subtract(a, b)


def _int_if_both_bool(torch_fn):
    # torch has no bool `remainder`/`fmod`; Keras's torch backend computes
    # them on int32 when both operands are bool
    def fn(a, b):
        if a.dtype == torch.bool and b.dtype == torch.bool:
            a, b = a.to(torch.int32), b.to(torch.int32)
        return torch_fn(a, b)

    return fn


# the ops whose torch function takes a Python scalar second operand
_SCALAR_OPS = frozenset({
    "add", "subtract", "multiply", "divide", "true_divide", "equal", "not_equal", "greater", "greater_equal", "less",
    "less_equal", "mod",
})


def _binary(name, torch_fn, to_float=False):
    scalar_ok = name in _SCALAR_OPS

    def fn(x1, x2):
        if scalar_ok and type(x1) is torch.Tensor:
            if to_float:
                if isinstance(x2, (int, float)) and x1.is_floating_point():
                    # Keras's torch backend hands a Python number to torch's divide as is
                    return torch_fn(x1, x2)
            elif _plain_scalar(x2, x1):
                return torch_fn(x1, x2)  # (`x * 2`: same dtype and values as converting the 2)
        a, b = _pair(x1, x2)
        if to_float:
            dt = _dtypes.to_torch_dtype(result_type(dtype_of(x1), dtype_of(x2), float))
            a, b = a.to(dt), b.to(dt)
        return torch_fn(a, b)

    return _define(name, fn, f"Element-wise `{name}` of `x1` and `x2`, with broadcasting.\n\n"
                   "Args:\n    x1: First tensor.\n    x2: Second tensor.\n\nReturns:\n    Output tensor.")


for _name, _fn in {
    "add": torch.add, "subtract": _subtract, "multiply": torch.multiply, "maximum": torch.maximum,
    "minimum": torch.minimum, "equal": torch.eq, "not_equal": torch.ne, "greater": torch.gt,
    "greater_equal": torch.ge, "less": torch.lt, "less_equal": torch.le, "logical_and": torch.logical_and,
    "logical_or": torch.logical_or, "logical_xor": torch.logical_xor, "mod": _int_if_both_bool(torch.remainder),
"fmod": _int_if_both_bool(torch.fmod), "gcd": torch.gcd, "lcm": torch.lcm,
    "heaviside": torch.heaviside,
}.items():
    _binary(_name, _fn)

for _name, _fn in {
    "divide": torch.true_divide, "true_divide": torch.true_divide, "arctan2": torch.arctan2,
    "hypot": torch.hypot, "logaddexp": torch.logaddexp, "logaddexp2": torch.logaddexp2,
    "nextafter": torch.nextafter, "fmax": torch.fmax, "fmin": torch.fmin,
}.items():
    _binary(_name, _fn, to_float=True)


@keras_op
def floor_divide(x1, x2):
    """`x1 // x2` element-wise, in Keras's result dtype (`int64 // 2` is int32,
    as in Keras 3); Python numbers go to torch as they are, as Keras's torch
    backend passes them.

    Args:
        x1: First tensor (or number).
        x2: Second tensor (or number).

    Returns:
        Output tensor.
    """
    dtype = _dtypes.to_torch_dtype(result_type(dtype_of(x1), dtype_of(x2)))
    a = x1 if isinstance(x1, (int, float)) else to_tensor(x1)
    b = x2 if isinstance(x2, (int, float)) else to_tensor(x2)
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
        a = to_tensor(a)
    elif isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        a, b = _pair(a, b)
    out = torch.floor_divide(a, b)
    return out if out.dtype == dtype else out.to(dtype)


def _bitwise(name, torch_fn):
    def fn(x, y):
        a, b = _pair(x, y)
        return torch_fn(a, b)

    return _define(name, fn, f"Element-wise `{name}` of integer or bool tensors `x` and `y`.\n\n"
                   "Args:\n    x: First tensor.\n    y: Second tensor.\n\nReturns:\n    Output tensor.")


for _name, _fn in {
    "bitwise_and": torch.bitwise_and, "bitwise_or": torch.bitwise_or, "bitwise_xor": torch.bitwise_xor,
    "bitwise_left_shift": torch.bitwise_left_shift, "left_shift": torch.bitwise_left_shift,
    "bitwise_right_shift": torch.bitwise_right_shift, "right_shift": torch.bitwise_right_shift,
}.items():
    _bitwise(_name, _fn)


@keras_op
def power(x1, x2):
    """`x1 ** x2` element-wise, with Keras dtype promotion."""
    a, b = _pair(x1, x2)
    return torch.pow(a, b)


@keras_op
def divide_no_nan(x1, x2):
    """`x1 / x2`, with 0 wherever `x2 == 0`."""
    a, b = _pair(x1, x2)
    dt = _dtypes.to_torch_dtype(result_type(dtype_of(x1), dtype_of(x2), float))
    a, b = a.to(dt), b.to(dt)
    return torch.where(b == 0, torch.zeros((), dtype=dt, device=a.device), a / b)


@keras_op
def ldexp(x1, x2):
    """`x1 * 2 ** x2` element-wise (`x2` must be integer)."""
    a, b = _pair(x1, x2)
    if b.is_floating_point():
        raise TypeError(f"ldexp exponent must be an integer type. Received: x2 dtype={dtype_of(b)}")
    dt = _dtypes.to_torch_dtype(result_type(dtype_of(x1), float))
    return torch.ldexp(a.to(dt), b).to(dt)


@keras_op
def clip(x, x_min, x_max):
    """Clips `x` to `[x_min, x_max]`; bool inputs give int32."""
    x = to_tensor(x)
    if x.dtype == torch.bool:
        x = x.to(torch.int32)
    return torch.clamp(x, min=x_min, max=x_max)


@keras_op
def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """Replaces NaN and infinities by finite numbers."""
    x = to_tensor(x)
    if not x.is_floating_point():
        return x
    return torch.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


@keras_op
def isclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    """Element-wise `|x1 - x2| <= atol + rtol * |x2|`."""
    a, b = _pair(x1, x2)
    dt = _dtypes.to_torch_dtype(result_type(dtype_of(x1), dtype_of(x2)))
    return torch.isclose(a.to(dt), b.to(dt), rtol=rtol, atol=atol, equal_nan=equal_nan)


@keras_op
def allclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    """Whether every element of `x1` is close to `x2` (a bool tensor)."""
    a, b = _pair(x1, x2)
    dt = _dtypes.to_torch_dtype(result_type(dtype_of(x1), dtype_of(x2)))
    return torch.all(torch.isclose(a.to(dt), b.to(dt), rtol=rtol, atol=atol, equal_nan=equal_nan))


@keras_op
def where(condition, x1=None, x2=None):
    """`x1` where `condition` else `x2`; with only `condition`, the indices
    of its non-zero elements as one `(ndim, n)` tensor (Keras on torch)."""
    condition = to_tensor(condition).to(torch.bool)
    if x1 is None and x2 is None:
        # Keras on torch: one (ndim, n) int64 tensor, not NumPy's tuple
        return torch.nonzero(condition).T
    if x1 is None or x2 is None:
        raise ValueError("`x1` and `x2` either both should be `None` or both should have non-None value.")
    dt = _dtypes.to_torch_dtype(result_type(dtype_of(x1), dtype_of(x2)))
    return torch.where(condition, to_tensor(x1).to(dt), to_tensor(x2).to(dt))


@keras_op
def select(condlist, choicelist, default=0):
    """Picks from `choicelist` where the matching condition holds first."""
    if len(condlist) != len(choicelist):
        raise ValueError(
            "`condlist` and `choicelist` must have the same length. Received: "
            f"len(condlist)={len(condlist)}, len(choicelist)={len(choicelist)}"
        )
    choices = [to_tensor(c) for c in choicelist]
    out = to_tensor(default)
    out = out.to(choices[0].dtype) if isinstance(default, (int, float)) else out
    for cond, choice in reversed(list(zip(condlist, choices))):
        out = torch.where(to_tensor(cond).to(torch.bool), choice, out)
    return out

