"""`keras.ops.linalg` on `torch.linalg`.

Integer inputs are computed in `floatx()`, as Keras does; decompositions
return what Keras returns (`qr` -> `(q, r)`, `svd` -> `(u, s, v^H)` or just
`s`, `eig`/`eigh` -> `(values, vectors)`).
"""

from __future__ import annotations

import torch

from kerasish.backend import dtypes as _dtypes
from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import to_tensor


def _float(x):
    x = to_tensor(x)
    if x.is_floating_point() or x.is_complex():
        return x
    return x.to(_dtypes.to_torch_dtype(_dtypes.floatx()))


def _square(x, name):
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"Expected input to {name} to be a batch of square matrices. "
                         f"Received: input with shape {tuple(x.shape)}")
    return x


@keras_op
def cholesky(x, upper=False):
    """Cholesky factor of symmetric positive-definite matrices."""
    return torch.linalg.cholesky(_square(_float(x), "cholesky"), upper=upper)


@keras_op
def cholesky_inverse(x, upper=False):
    """Inverse of `A` given its Cholesky factor `x`."""
    return torch.cholesky_inverse(_float(x), upper=upper)


@keras_op
def det(x):
    """Determinant of square matrices."""
    return torch.linalg.det(_square(_float(x), "det"))


@keras_op
def eig(x):
    """Eigenvalues and eigenvectors of square matrices (complex results)."""
    return tuple(torch.linalg.eig(_square(_float(x), "eig")))


@keras_op
def eigh(x):
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices."""
    return tuple(torch.linalg.eigh(_square(_float(x), "eigh")))


@keras_op
def inv(x):
    """Inverse of square matrices."""
    return torch.linalg.inv(_square(_float(x), "inv"))


@keras_op
def lu_factor(x):
    """Packed LU factorisation and 0-based int32 pivots."""
    lu, piv = torch.linalg.lu_factor(_float(x))
    return lu, (piv - 1).to(torch.int32)


@keras_op
def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002 - Keras name
    """Vector (one axis) or matrix (two axes) norm; Frobenius / 2-norm of
    the flat tensor by default."""
    x = _float(x)
    if axis is None:
        if ord is None:
            out = torch.linalg.vector_norm(x)
            return out.reshape((1,) * x.ndim) if keepdims else out
        axis = tuple(range(x.ndim))
    if isinstance(axis, int):
        axis = (axis,)
    axis = tuple(axis)
    if len(axis) == 1:
        order = 2 if ord is None else ord
        if isinstance(order, str):
            raise ValueError(f"Invalid `ord` argument for vector norm. Received: ord={ord}")
        return torch.linalg.vector_norm(x, ord=order, dim=axis, keepdim=keepdims)
    if len(axis) == 2:
        order = "fro" if ord is None else ord
        return torch.linalg.matrix_norm(x, ord=order, dim=axis, keepdim=keepdims)
    raise ValueError(f"Invalid axis values. Received: axis={axis}")


@keras_op
def qr(x, mode="reduced"):
    """QR decomposition ("reduced" or "complete"): `(q, r)`."""
    if mode not in ("reduced", "complete"):
        raise ValueError(f"`mode` argument value not supported. Expected one of {{'reduced', 'complete'}}. "
                         f"Received: mode={mode}")
    return tuple(torch.linalg.qr(_float(x), mode=mode))


@keras_op
def slogdet(x):
    """Sign and log of the absolute determinant."""
    return tuple(torch.linalg.slogdet(_square(_float(x), "slogdet")))


@keras_op
def solve(a, b):
    """Solves `a @ x = b` for `x`."""
    a, b = _float(a), _float(b)
    return torch.linalg.solve(a, b.to(a.dtype))


@keras_op
def solve_triangular(a, b, lower=False):
    """Solves `a @ x = b` for triangular `a` (a vector `b` is allowed)."""
    a, b = _float(a), _float(b).to(_float(a).dtype)
    vector = b.ndim == a.ndim - 1
    if vector:
        b = b.unsqueeze(-1)
    out = torch.linalg.solve_triangular(a, b, upper=not lower)
    return out.squeeze(-1) if vector else out


@keras_op
def svd(x, full_matrices=True, compute_uv=True):
    """Singular value decomposition: `(u, s, vh)`, or `s` alone."""
    x = _float(x)
    if not compute_uv:
        return torch.linalg.svdvals(x)
    return tuple(torch.linalg.svd(x, full_matrices=full_matrices))


@keras_op
def lstsq(a, b, rcond=None):
    """Least-squares solution of `a @ x = b`."""
    a, b = _float(a), _float(b)
    vector = b.ndim == 1
    rhs = b.unsqueeze(-1) if vector else b
    if a.device.type == "cpu":
        sol = torch.linalg.lstsq(a, rhs, rcond=rcond, driver="gelsd").solution
    else:
        sol = _lstsq_pinv(a, rhs, rcond)
    return sol.squeeze(-1) if vector else sol


def _lstsq_pinv(a, rhs, rcond):
    """NumPy's minimum-norm least-squares solution through the SVD pseudo-inverse: off the CPU
    torch's lstsq has only the `gels` driver, which needs a full-rank, tall `a` (`gelsd` raises
    there). Singular values below `rcond` (default: eps * max(M, N)) times the largest count as 0."""
    return torch.linalg.pinv(a, rtol=rcond) @ rhs


@keras_op
def matrix_rank(x, tol=None):
    """Numerical rank (int32) of matrices."""
    return torch.linalg.matrix_rank(_float(x), atol=tol).to(torch.int32) if tol is not None else \
        torch.linalg.matrix_rank(_float(x)).to(torch.int32)


@keras_op
def pinv(x, rcond=None):
    """Moore-Penrose pseudo-inverse."""
    x = _float(x)
    return torch.linalg.pinv(x) if rcond is None else torch.linalg.pinv(x, rtol=rcond)


def jvp(fun, primals, tangents, has_aux=False):
    """Jacobian-vector product of `fun` at `primals` along `tangents`:
    `(outputs, tangent_outputs)` (plus `aux` with `has_aux=True`)."""
    return torch.func.jvp(fun, tuple(primals), tuple(tangents), has_aux=has_aux)
