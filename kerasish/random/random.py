"""`keras.random` on torch.

Seeding follows Keras: `seed` is an int (the same draw every call), a
`SeedGenerator` (a new draw every call, reproducible from its seed) or None
(the global generator). In eager mode every draw comes from a fresh CPU
`torch.Generator` seeded with `(seed + counter) mod 2**32`, which is what
Keras 3 does on its torch backend, so seeded draws equal Keras's bit for bit
on the CPU. Under `torch.compile` a `torch.Generator` cannot be traced: the
draw then uses torch's global RNG (no graph break; the SeedGenerator state
still advances inside the graph), so compiled draws are random but not
tied to the seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.backend import dtypes as _dtypes
from kerasish.layers import call_context as ctx
from kerasish.backend.promotion import to_tensor
from kerasish.random.seed_generator import SeedGenerator
from kerasish.random.seed_generator import draw_seed


def _dry_run() -> bool:
    # shape inference of a symbolic call runs the layer on probe tensors;
    # like Keras (which draws on the meta device there), no seed is consumed
    return ctx.state().symbolic


def _generator(seed):
    """A CPU generator for this draw, or None under torch.compile."""
    if _dry_run():
        if not isinstance(seed, (int, SeedGenerator, type(None))) or isinstance(seed, bool):
            draw_seed(seed)  # the same error as a real call
        return None
    state = draw_seed(seed)
    if torch.compiler.is_compiling():
        return None
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(state[0] + state[1]) & 0xFFFFFFFF)
    return gen


def _float_dtype(dtype, fn):
    dtype = _dtypes.standardize_dtype(dtype)
    if not _dtypes.is_float_dtype(dtype):
        raise ValueError(f"`keras.random.{fn}` requires a floating point `dtype`. Received: dtype={dtype} ")
    return _dtypes.to_torch_dtype(dtype)


def _shape(shape):
    return (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Draws from a normal distribution.

    Args:
        shape: Output shape.
        mean: Mean. Defaults to 0.
        stddev: Standard deviation. Defaults to 1.
        dtype: Float dtype. Defaults to `floatx()`.
        seed: An int, a `SeedGenerator` or None (see module docstring).
    """
    dt = _float_dtype(dtype, "normal")
    return torch.normal(float(mean), float(stddev), size=_shape(shape), generator=_generator(seed), dtype=dt)


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Draws from a uniform distribution on `[minval, maxval)`."""
    dt = _float_dtype(dtype, "uniform")
    shape = _shape(shape)
    draw = torch.rand(shape or (1,), generator=_generator(seed), dtype=dt)
    out = (maxval - minval) * draw + minval
    return out if shape else out[0]


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Draws from a normal distribution truncated to 2 standard deviations.

    Like Keras on torch, four candidates are drawn per value and the first
    inside `(-2, 2)` is kept.
    """
    dt = _float_dtype(dtype, "truncated_normal")
    shape = _shape(shape)
    x = torch.normal(0.0, 1.0, size=shape + (4,), generator=_generator(seed), dtype=dt)
    valid = (x > -2) & (x < 2)
    first = valid.max(-1, keepdim=True)[1]
    return x.gather(-1, first).squeeze(-1) * stddev + mean


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Draws integers uniformly from `[minval, maxval)`."""
    dt = _dtypes.to_torch_dtype(dtype)
    if dt.is_floating_point:
        raise ValueError(f"`keras.random.randint` requires an integer `dtype`. Received: dtype={dtype} ")
    return torch.randint(int(minval), int(maxval), _shape(shape), generator=_generator(seed), dtype=dt)


def categorical(logits, num_samples, dtype="int32", seed=None):
    """Draws `num_samples` class indices per row of `logits` (with replacement)."""
    logits = to_tensor(logits)
    if logits.ndim != 2:
        raise ValueError(
            "`logits` should be a 2-D tensor with shape [batch_size, num_classes]. "
            f"Received: logits={tuple(logits.shape)}"
        )
    probs = torch.softmax(logits.float() if not logits.is_floating_point() else logits, dim=-1)
    draw = torch.multinomial(probs, int(num_samples), replacement=True, generator=_generator(seed))
    return draw.to(_dtypes.to_torch_dtype(dtype))


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Zeroes entries with probability `rate` and scales the rest by
    `1 / (1 - rate)`; `noise_shape` (None entries: the input's) sets which
    entries share a draw."""
    inputs = to_tensor(inputs)
    if not 0 <= rate <= 1:
        raise ValueError(f"Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
                         f"Received: rate={rate}")
    if rate == 1.0:
        return torch.zeros_like(inputs)
    if rate == 0.0:
        return inputs
    unseeded = seed is None or (isinstance(seed, SeedGenerator) and seed._initial_seed is None)
    if unseeded and noise_shape is None:
        return F.dropout(inputs, p=rate, training=True)
    keep = 1.0 - rate
    shape = tuple(inputs.shape) if noise_shape is None else tuple(
        inputs.shape[i] if d is None else d for i, d in enumerate(noise_shape))
    mask = torch.bernoulli(torch.full(shape, keep), generator=_generator(seed)).bool()
    mask = torch.broadcast_to(mask.to(inputs.device), inputs.shape)
    return torch.where(mask, inputs / keep, torch.zeros_like(inputs))


def shuffle(x, axis=0, seed=None):
    """`x` with its slices along `axis` permuted (independently per leading index)."""
    x = to_tensor(x)
    perm = torch.rand(x.shape[: axis + 1], generator=_generator(seed)).argsort(axis).to(x.device)
    perm = perm.reshape(perm.shape + (1,) * (x.ndim - axis - 1)).expand(x.shape)
    return x.gather(axis, perm)


def _distribution_sample(dist_fn, seed, dtype):
    """Sample a torch distribution reproducibly (Keras seeds torch's global
    RNG for these; here the global state is forked and restored)."""
    if _dry_run():
        return dist_fn().sample().to(dtype)
    state = draw_seed(seed)
    if torch.compiler.is_compiling():
        return dist_fn().sample().to(dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(state[0] + state[1]) & 0xFFFFFFFF)
        return dist_fn().sample().to(dtype)


def gamma(shape, alpha, dtype=None, seed=None):
    """Draws from Gamma(`alpha`, rate 1)."""
    dt = _float_dtype(dtype, "gamma")
    shape = _shape(shape)
    a = torch.broadcast_to(to_tensor(alpha).to(torch.float32), shape)
    return _distribution_sample(lambda: torch.distributions.Gamma(a, torch.ones(shape)), seed, dt)


def beta(shape, alpha, beta, dtype=None, seed=None):
    """Draws from Beta(`alpha`, `beta`)."""
    dt = _float_dtype(dtype, "beta")
    shape = _shape(shape)
    a = torch.broadcast_to(to_tensor(alpha).to(torch.float32), shape)
    b = torch.broadcast_to(to_tensor(beta).to(torch.float32), shape)
    return _distribution_sample(lambda: torch.distributions.Beta(a, b), seed, dt)


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    """Draws from Binomial(`counts`, `probabilities`)."""
    dt = _dtypes.to_torch_dtype(dtype)
    shape = _shape(shape)
    n = torch.broadcast_to(to_tensor(counts).to(torch.float32), shape)
    p = torch.broadcast_to(to_tensor(probabilities).to(torch.float32), shape)
    return _distribution_sample(lambda: torch.distributions.Binomial(total_count=n, probs=p), seed, dt)
