"""`keras.ops.nn`: activations, normalisation, one-hot encodings, losses
and attention, on torch's own kernels.

Keras conventions kept here: `gelu` is the tanh approximation by default,
`leaky_relu`'s slope defaults to 0.2, crossentropies clip probabilities to
`[epsilon, 1 - epsilon]` with `keras.backend.epsilon()` (1e-7) and return
per-sample values (no reduction), attention takes `(batch, seq, heads,
dim)` tensors. Convolutions and pooling live in `nn_conv.py`.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from kerasish.backend import config as _config
from kerasish.backend import dtypes as _dtypes
from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import to_tensor


def _float(x):
    x = to_tensor(x)
    if x.is_floating_point() or x.is_complex():
        return x
    return x.to(_dtypes.to_torch_dtype(_dtypes.floatx()))


def _activation(name, fn, doc):
    def op(x):
        return fn(_float(x))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc + "\n\nArgs:\n    x: Input tensor.\n\nReturns:\n    Tensor of the same shape."
    op.__module__ = __name__
    wrapped = keras_op(op, name=name)
    globals()[name] = wrapped
    return wrapped


_activation("sigmoid", torch.sigmoid, "`1 / (1 + exp(-x))`.")
_activation("softplus", F.softplus, "`log(1 + exp(x))`.")
_activation("softsign", F.softsign, "`x / (1 + |x|)`.")
_activation("silu", F.silu, "`x * sigmoid(x)` (swish).")
_activation("swish", F.silu, "`x * sigmoid(x)` (same as `silu`).")
_activation("log_sigmoid", F.logsigmoid, "`log(sigmoid(x))`, computed stably.")
# torch's fused hardsigmoid / hardswish kernels (as Keras's torch backend): bit-equal
# to Keras, where `x / 6 + 0.5` composed rounds differently (up to ~1e3 ulp near 0)
_activation("hard_sigmoid", F.hardsigmoid, "`clip(x / 6 + 0.5, 0, 1)`.")
_activation("hard_silu", F.hardswish, "`x * hard_sigmoid(x)`.")
_activation("hard_swish", F.hardswish, "`x * hard_sigmoid(x)`.")
_activation("selu", F.selu, "Scaled exponential linear unit.")
_activation("hard_tanh", lambda x: torch.clamp(x, -1.0, 1.0), "`clip(x, -1, 1)`.")
_activation("tanh_shrink", lambda x: x - torch.tanh(x), "`x - tanh(x)`.")
_activation("sparse_plus", lambda x: torch.where(x <= -1, torch.zeros_like(x), torch.where(
    x >= 1, x, (x + 1) ** 2 / 4)), "0 for `x <= -1`, `(x + 1)**2 / 4` inside, `x` for `x >= 1`.")
_activation("sparse_sigmoid", lambda x: torch.clamp(0.5 * (x + 1), 0.0, 1.0),
            "0 for `x <= -1`, `(x + 1) / 2` inside, 1 for `x >= 1`.")


@keras_op
def relu(x):
    """`max(x, 0)`; integer inputs stay integer."""
    return torch.relu(to_tensor(x))


@keras_op
def relu6(x):
    """`min(max(x, 0), 6)`; integer inputs stay integer."""
    return torch.clamp(to_tensor(x), 0, 6)


@keras_op
def leaky_relu(x, negative_slope=0.2):
    """`x` if `x >= 0` else `negative_slope * x`."""
    return F.leaky_relu(_float(x), negative_slope)


@keras_op
def elu(x, alpha=1.0):
    """`x` if `x > 0` else `alpha * (exp(x) - 1)`."""
    return F.elu(_float(x), alpha)


@keras_op
def celu(x, alpha=1.0):
    """`max(0, x) + min(0, alpha * (exp(x / alpha) - 1))`."""
    return F.celu(_float(x), alpha)


@keras_op
def gelu(x, approximate=True):
    """Gaussian error linear unit (tanh approximation unless `approximate=False`)."""
    return F.gelu(_float(x), approximate="tanh" if approximate else "none")


@keras_op
def glu(x, axis=-1):
    """Gated linear unit: halves `a, b` of `x` along `axis`, `a * sigmoid(b)`."""
    x = _float(x)
    if x.shape[axis] % 2:
        raise ValueError(f"axis size must be divisible by 2. Received: x.shape={tuple(x.shape)} with axis={axis}")
    return F.glu(x, dim=axis)


@keras_op
def hard_shrink(x, threshold=0.5):
    """`x` where `|x| > threshold`, else 0."""
    return F.hardshrink(_float(x), threshold)


@keras_op
def soft_shrink(x, threshold=0.5):
    """`x` shrunk toward 0 by `threshold` (0 inside the band)."""
    return F.softshrink(_float(x), threshold)


@keras_op
def threshold(x, threshold, default_value):
    """`x` where `x > threshold`, else `default_value`."""
    return F.threshold(_float(x), threshold, default_value)


@keras_op
def squareplus(x, b=4):
    """`(x + sqrt(x**2 + b)) / 2`."""
    x = _float(x)
    return (x + torch.sqrt(x * x + b)) / 2


@keras_op
def softmax(x, axis=-1):
    """Softmax over `axis` (an int, a tuple, or None for all axes)."""
    x = _float(x)
    if axis is None or isinstance(axis, (tuple, list)):
        dims = tuple(range(x.ndim)) if axis is None else tuple(a % x.ndim for a in axis)
        rest = [d for d in range(x.ndim) if d not in dims]
        moved = x.permute(*rest, *dims)
        flat = moved.reshape(*[x.shape[d] for d in rest], -1)
        out = torch.softmax(flat, dim=-1).reshape(moved.shape)
        return out.permute(*torch.argsort(torch.tensor(rest + list(dims))).tolist())
    return torch.softmax(x, dim=axis)


@keras_op
def log_softmax(x, axis=-1):
    """Log of the softmax over `axis`."""
    x = _float(x)
    if axis is None:
        return (x.reshape(-1).log_softmax(0)).reshape(x.shape)
    return torch.log_softmax(x, dim=axis)


@keras_op
def sparsemax(x, axis=-1):
    """Sparsemax (Euclidean projection onto the simplex) over `axis`."""
    x = torch.movedim(_float(x), axis, -1)
    z, _ = torch.sort(x, dim=-1, descending=True)
    k = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype, device=x.device)
    cum = torch.cumsum(z, dim=-1)
    support = (1 + k * z) > cum
    k_z = torch.sum(support, dim=-1, keepdim=True).to(x.dtype)
    tau = (torch.gather(cum, -1, k_z.long() - 1) - 1) / k_z
    return torch.movedim(torch.clamp(x - tau, min=0.0), -1, axis)


@keras_op
def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """One-hot encoding of integer `x` (`floatx()` by default); out-of-range
    indices give all-zero rows."""
    if sparse:
        raise ValueError("kerasish ops do not support sparse outputs. Received: sparse=True")
    x = to_tensor(x).to(torch.int64)
    valid = (x >= 0) & (x < num_classes)
    out = F.one_hot(torch.where(valid, x, torch.zeros_like(x)), num_classes) * valid.unsqueeze(-1)
    out = out.to(_dtypes.to_torch_dtype(dtype))
    if axis != -1:
        out = torch.movedim(out, -1, axis)
    return out


@keras_op
def multi_hot(inputs, num_classes=None, axis=-1, dtype=None, sparse=False, **kwargs):
    """Multi-hot encoding: 1 at every index present in each sample."""
    if num_classes is None:
        num_classes = kwargs.pop("num_tokens", None)
    if num_classes is None:
        raise ValueError("Argument `num_classes` must be specified.")
    x = to_tensor(inputs)
    squeeze = x.ndim == 1
    if squeeze:
        x = x.unsqueeze(0)
    hot = one_hot.__wrapped_op__(x, num_classes, axis=-1, dtype="float32", sparse=sparse)
    out = torch.amax(hot, dim=-2)
    if squeeze:
        out = out.squeeze(0)
    out = out.to(_dtypes.to_torch_dtype(dtype))
    return torch.movedim(out, -1, axis) if axis != -1 else out


@keras_op
def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """`(x - mean) / sqrt(variance + epsilon) * scale + offset`, with the
    1-D statistics broadcast along `axis`."""
    x = _float(x)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]

    def b(v):
        return to_tensor(v).to(x.dtype).reshape(shape)

    inv = torch.rsqrt(b(variance) + epsilon)
    if scale is not None:
        inv = inv * b(scale)
    out = (x - b(mean)) * inv
    return out + b(offset) if offset is not None else out


@keras_op
def moments(x, axes, keepdims=False, synchronized=False):
    """Mean and (population) variance of `x` over `axes`."""
    x = _float(x)
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    xc = x.to(compute)
    dims = tuple(axes) if isinstance(axes, (list, tuple)) else (axes,)
    mean = torch.mean(xc, dim=dims, keepdim=True)
    var = torch.mean(torch.square(xc - mean), dim=dims, keepdim=True)
    if not keepdims:
        mean, var = mean.squeeze(dims), var.squeeze(dims)
    return mean.to(x.dtype), var.to(x.dtype)


@keras_op
def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None, **kwargs):
    """Normalises over `axis`, then `* gamma + beta` (Keras's LayerNorm maths)."""
    x = _float(x)
    epsilon = _config.epsilon() if epsilon is None else epsilon
    dims = (axis,) if isinstance(axis, int) else tuple(axis)
    if kwargs.get("rms_scaling"):
        # Keras's deprecated option (and kerasish's LayerNormalization(rms_scaling=True)):
        # scales by rsqrt(variance + epsilon), not by the root mean square
        warnings.warn(
            "You passed `rms_scaling=True`, which is deprecated. This argument incorrectly scales the input by "
            "the variance, not the root mean square. To correctly use RMS Normalization, please use "
            "`keras.ops.rms_normalization` / `keras.ops.nn.rms_normalization` instead.",
            stacklevel=2,
        )
        out = x * torch.rsqrt(torch.var(x, dim=dims, correction=0, keepdim=True) + epsilon)
        if gamma is None:
            return out
        gamma = to_tensor(gamma).to(x.dtype)
        if gamma.ndim != x.ndim and [d % x.ndim for d in dims] != [x.ndim - 1]:
            gamma = gamma.reshape([x.shape[d] if d in {a % x.ndim for a in dims} else 1 for d in range(x.ndim)])
        return out * gamma
    trailing = sorted(d % x.ndim for d in dims) == list(range(x.ndim - len(dims), x.ndim)) if dims else False
    if trailing:
        # the trailing axes (one or several): torch's fused kernel, as Keras's torch backend
        # (bit-equal to it; mean/var composed differ by a few ulp)
        w = None if gamma is None else to_tensor(gamma).to(x.dtype)
        bias = None if beta is None else to_tensor(beta).to(x.dtype)
        return F.layer_norm(x, tuple(x.shape[len(x.shape) - len(dims):]), w, bias, epsilon)
    mean = torch.mean(x, dim=dims, keepdim=True)
    var = torch.mean(torch.square(x - mean), dim=dims, keepdim=True)
    out = (x - mean) * torch.rsqrt(var + epsilon)
    if gamma is not None:
        out = out * to_tensor(gamma).to(x.dtype)
    if beta is not None:
        out = out + to_tensor(beta).to(x.dtype)
    return out


@keras_op
def rms_normalization(x, scale=None, axis=-1, epsilon=None):
    """`x / sqrt(mean(x**2) + epsilon) * scale` over `axis`."""
    x = _float(x)
    epsilon = _config.epsilon() if epsilon is None else epsilon
    dims = (axis,) if isinstance(axis, int) else tuple(axis)
    out = x * torch.rsqrt(torch.mean(torch.square(x), dim=dims, keepdim=True) + epsilon)
    return out if scale is None else out * to_tensor(scale).to(x.dtype)


@keras_op
def normalize(x, axis=-1, order=2, epsilon=None):
    """`x` divided by its `order`-norm over `axis` (floored at `epsilon`).

    As Keras 3: `order` must be an int >= 1 (ValueError otherwise), a scalar
    becomes a 1-element vector, and the L2 case is computed as Keras's is,
    `x * min(rsqrt(sum(x**2)), 1 / epsilon)`, so that results and gradients
    agree with Keras's bit for bit (a division by the norm differs in the last
    bits, which a contrastive loss with a small temperature amplifies). The
    floor is taken before `rsqrt` here, which gives the same values; an
    all-zero slice gets the gradient `1 / epsilon` instead of Keras's NaN.
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"Argument `order` must be an int >= 1. Received: order={order}")
    x = _float(x)
    if x.dim() == 0:
        x = x.unsqueeze(0)
    epsilon = _config.epsilon() if epsilon is None else epsilon
    if order == 2:
        floor = epsilon * epsilon
        if floor < torch.finfo(x.dtype).tiny:
            # the floor underflows (float16/bfloat16, epsilon=1e-7): float32 maths, where it
            # does not (Keras's formula there gives inf * 0 = NaN for an all-zero slice)
            return normalize(x.float(), axis=axis, order=2, epsilon=epsilon).to(x.dtype)
        square_sum = torch.sum(torch.square(x), dim=axis, keepdim=True)
        return x * torch.rsqrt(torch.clamp(square_sum, min=floor))
    norm = torch.linalg.vector_norm(x, ord=order, dim=axis, keepdim=True)
    return x / torch.clamp(norm, min=epsilon)


def _probs(output, from_logits, fn):
    output = _float(output)
    if from_logits:
        return fn(output), True
    return output, False


@keras_op
def binary_crossentropy(target, output, from_logits=False):
    """Element-wise binary crossentropy (probabilities clipped to [eps, 1-eps])."""
    output = _float(output)
    target = to_tensor(target).to(output.dtype)
    if target.shape != output.shape:
        raise ValueError(
            "Arguments `target` and `output` must have the same shape. "
            f"Received: target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}"
        )
    if from_logits:
        return F.binary_cross_entropy_with_logits(output, target, reduction="none")
    eps = _config.epsilon()
    output = torch.clamp(output, eps, 1.0 - eps)
    # composed, not torch's fused `binary_cross_entropy` (Keras's choice): that CPU kernel is a
    # scalar loop with glibc's log, 4-5x slower here and up to ~100 ulp away from this
    return -(target * torch.log(output) + (1.0 - target) * torch.log(1.0 - output))


@keras_op
def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Crossentropy between one-hot `target` and `output` over `axis`."""
    output = _float(output)
    target = to_tensor(target).to(output.dtype)
    if target.shape != output.shape:
        raise ValueError(
            "Arguments `target` and `output` must have the same shape. "
            f"Received: target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}"
        )
    if from_logits:
        log_prob = torch.log_softmax(output, dim=axis)
    else:
        output = output / torch.sum(output, dim=axis, keepdim=True)
        eps = _config.epsilon()
        log_prob = torch.log(torch.clamp(output, eps, 1.0 - eps))
    return -torch.sum(target * log_prob, dim=axis)


@keras_op
def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Crossentropy between integer `target` and `output` over `axis`."""
    output = _float(output)
    target = to_tensor(target).to(torch.int64)
    if target.ndim == output.ndim and target.shape[-1] == 1:
        target = target.squeeze(-1)
    if from_logits:
        log_prob = torch.log_softmax(output, dim=axis)
    else:
        output = output / torch.sum(output, dim=axis, keepdim=True)
        eps = _config.epsilon()
        log_prob = torch.log(torch.clamp(output, eps, 1.0 - eps))
    log_prob = torch.movedim(log_prob, axis, -1)
    return -torch.gather(log_prob, -1, target.unsqueeze(-1)).squeeze(-1)


@keras_op
def dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False,
                          flash_attention=None, attn_logits_soft_cap=None):
    """Scaled dot-product attention on `(batch, seq, heads, dim)` tensors.

    `mask` is boolean (True = attend), `bias` is added to the logits,
    `scale` defaults to `1 / sqrt(dim)`. Uses torch's fused kernel when no
    soft cap is requested; `flash_attention=False` keeps it off the flash
    kernel, `True` allows only the flash kernel (torch raises when it cannot
    run), `None` lets torch choose.
    """
    q, k, v = (_float(t) for t in (query, key, value))
    if q.ndim != 4:
        raise ValueError(f"`dot_product_attention` only supports 4D inputs. Received: query.shape={tuple(q.shape)}")
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # -> (B, N, T, H)
    if k.shape[1] != q.shape[1]:  # grouped-query attention
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    attn_mask = None
    if mask is not None:
        attn_mask = to_tensor(mask).to(torch.bool)
    if bias is not None:
        b = to_tensor(bias).to(q.dtype)
        attn_mask = b if attn_mask is None else b.masked_fill(~attn_mask, float("-inf"))
    if attn_logits_soft_cap is None:
        if is_causal and attn_mask is not None:
            causal = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril()
            attn_mask = (attn_mask & causal) if attn_mask.dtype == torch.bool else attn_mask.masked_fill(
                ~causal, float("-inf"))
            is_causal = False
        if flash_attention is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale)
        else:
            from torch.nn.attention import sdpa_kernel

            from kerasish.backend.config import sdpa_backends

            with sdpa_kernel(sdpa_backends(flash_attention)):
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale)
        return out.transpose(1, 2)
    logits = torch.matmul(q, k.transpose(-1, -2)) * scale
    logits = torch.tanh(logits / attn_logits_soft_cap) * attn_logits_soft_cap
    if attn_mask is not None:
        logits = logits.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else logits + attn_mask
    if is_causal:
        causal = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril()
        logits = logits.masked_fill(~causal, float("-inf"))
    return torch.matmul(torch.softmax(logits, dim=-1), v).transpose(1, 2)


@keras_op
def psnr(x1, x2, max_val):
    """Peak signal-to-noise ratio (dB) between `x1` and `x2`."""
    a, b = _float(x1), _float(x2)
    if a.shape != b.shape:
        raise ValueError(
            f"Input shapes {tuple(a.shape)} and {tuple(b.shape)} must match for PSNR calculation."
        )
    mse = torch.mean(torch.square(a - b))
    return 20 * torch.log10(torch.as_tensor(float(max_val), dtype=a.dtype)) - 10 * torch.log10(mse)


@keras_op
def depth_to_space(x, block_size, data_format="channels_last"):
    """Moves channel blocks into `block_size x block_size` spatial tiles."""
    x = to_tensor(x)
    b = block_size
    # TF's "DCR" order: channel = (row_in_block * b + col_in_block) * C + c
    if data_format == "channels_last":
        n, h, w, c = x.shape
        x = x.reshape(n, h, w, b, b, c // (b * b)).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(n, h * b, w * b, c // (b * b))
    n, c, h, w = x.shape
    x = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c // (b * b), h * b, w * b)


@keras_op
def space_to_depth(x, block_size, data_format="channels_last"):
    """Moves `block_size x block_size` spatial tiles into channels."""
    x = to_tensor(x)
    b = block_size
    if data_format == "channels_last":
        n, h, w, c = x.shape
        x = x.reshape(n, h // b, b, w // b, b, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(n, h // b, w // b, b * b * c)
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(n, b * b * c, h // b, w // b)


@keras_op
def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding local blocks of an `(N, C, H, W)` tensor, as `(N, C*kh*kw, L)`."""
    return F.unfold(to_tensor(x), kernel_size, dilation=dilation, padding=padding, stride=stride)


@keras_op
def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Inverse of `unfold` (overlapping values are summed)."""
    return F.fold(to_tensor(x), output_size, kernel_size, dilation=dilation, padding=padding, stride=stride)


# convolutions, pooling and CTC live in nn_conv.py; `ops.nn` lists them too
from kerasish.ops.nn_conv import adaptive_average_pool  # noqa: E402
from kerasish.ops.nn_conv import adaptive_max_pool  # noqa: E402
from kerasish.ops.nn_conv import average_pool  # noqa: E402
from kerasish.ops.nn_conv import conv  # noqa: E402
from kerasish.ops.nn_conv import conv_transpose  # noqa: E402
from kerasish.ops.nn_conv import ctc_decode  # noqa: E402
from kerasish.ops.nn_conv import ctc_loss  # noqa: E402
from kerasish.ops.nn_conv import depthwise_conv  # noqa: E402
from kerasish.ops.nn_conv import max_pool  # noqa: E402
from kerasish.ops.nn_conv import separable_conv  # noqa: E402
from kerasish.ops.numpy_misc import polar  # noqa: E402

__all__ = sorted(
    name for name, op in globals().items()
    if not name.startswith("_") and callable(getattr(op, "__wrapped_op__", None))
)
