"""`BaseRandomLayer`: the random-number plumbing of the noise layers.

As in Keras 3, a layer that draws (rate or stddev > 0) owns a
`SeedGenerator` (`layer.seed_generator`), created in `__init__`: seeded with
`seed`, or with `seed=None` from Python's `random` (which
`keras.utils.set_random_seed` seeds). Each training call then draws from a
fresh `torch.Generator` on the input's device seeded with
`(seed + counter) mod 2**32` and advances the counter, which is exactly what
Keras's torch backend does: with `seed=` given, or with `seed=None` after
`keras.utils.set_random_seed`, the masks and noise equal Keras 3's bit for
bit on the CPU (on CUDA, torch's CUDA generator is used, as Keras does, but
this is untested). `Dropout` with `seed=None` and no `noise_shape` uses
torch's fused `F.dropout` on the global RNG, as Keras's torch backend does,
so it too matches Keras after `set_random_seed` when the program draws in
the same order.

With `seed=None` and no `set_random_seed` call, the global torch RNG is used
(`torch.manual_seed` controls it; the fast path, no generator per call).
Under `torch.compile` the global RNG is always used and the seed counter
does not advance: dynamo cannot trace a `torch.Generator`, and this keeps
compiled calls free of graph breaks; compiled draws are random but not
Keras's.

Under `torch.utils.checkpoint(use_reentrant=False)` the recomputed forward
replays the draws of the original one (`seed_generator.checkpoint_replay`);
under the reentrant variant a seeded draw in the backward pass raises.

The seed generator's state is not saved in `state_dict()` or weight files
(Keras writes none either) and is kept on the CPU (reading it never syncs
an accelerator).
"""

from __future__ import annotations

import contextlib

import torch

from kerasish.layers import call_context as ctx
from kerasish.layers.layer import Layer
from kerasish.random.seed_generator import SeedGenerator
from kerasish.random.seed_generator import keras_seeding
from kerasish.random.seed_generator import seeded_generator


def check_rate(rate, name: str = "rate") -> None:
    """Keras's check: a float in [0, 1]."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a float value between 0 and 1. "
            f"Received: {name}={rate}"
        )


def check_seed(seed) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"Argument `seed` must be an integer or None. Received: seed={seed}")


class BaseRandomLayer(Layer):
    """A layer that draws random numbers in training mode (see module doc)."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_seed(seed)
        self.seed = seed
        self.__dict__["seed_generator"] = None

    def _init_seed_generator(self) -> None:
        """Keras's `self.seed_generator = SeedGenerator(seed)` (subclasses
        call it at the end of `__init__` when they draw at all)."""
        attach_seed_generator(self, self.seed)

    def _generator(self, device: torch.device):
        """A fresh generator on `device` for this call's draw, seeded with
        `_keras_seed()` (Keras's way, see module doc), or None for torch's
        global RNG."""
        seed = self._keras_seed()
        return None if seed is None else seeded_generator(seed, device)

    def _keras_seed(self):
        """The int seed of this draw (`seed + counter`, advancing the
        SeedGenerator: a composite layer's while it draws for this one (see
        `draw_from`), else the layer's own), or None for torch's global RNG:
        compiled, on shape-inference probes (Keras draws on "meta"), and for
        an unseeded layer before any `set_random_seed`."""
        if torch.compiler.is_compiling():
            return None
        d = self.__dict__
        gen = d.get("_seed_override")
        if gen is None:
            if self.seed is None and not keras_seeding():
                return None
            gen = d["seed_generator"]
            if gen is None:
                if self.seed is None:
                    return None
                # (a layer with nothing to draw at construction, e.g. rate 0 changed later)
                attach_seed_generator(self, self.seed)
                gen = d["seed_generator"]
        if ctx.state().symbolic:
            return None
        return gen.next_seed()

    def _uniform(self, shape, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(shape, generator=self._generator(like.device), device=like.device, dtype=like.dtype)

    def _normal(self, shape, like: torch.Tensor, mean: float = 0.0, stddev: float = 1.0) -> torch.Tensor:
        """Normal noise as Keras's torch backend draws it (`torch.normal(mean, stddev)`)."""
        gen = self._generator(like.device)
        return torch.normal(mean, stddev, size=tuple(shape), generator=gen, device=like.device, dtype=like.dtype)

    def _keep_mask(self, shape, rate: float, like: torch.Tensor) -> torch.Tensor:
        """Boolean mask, True with probability `1 - rate` (drawn in float32 so
        low-precision inputs get the same keep probability)."""
        gen = self._generator(like.device)
        return torch.rand(shape, generator=gen, device=like.device) >= rate


def keras_exact_draws(layer) -> bool:
    """Whether `layer` draws as Keras does now (seeded, or after
    `set_random_seed`; not compiled)."""
    return not torch.compiler.is_compiling() and (layer.seed is not None or keras_seeding())


@contextlib.contextmanager
def draw_from(layers, generator):
    """Inside, every draw of `layers` advances `generator` instead of their
    own generators: Keras's composite layers (RandAugment, AugMix) pass their
    own `SeedGenerator` as the `seed` of their sublayers' draws."""
    layers = list(layers)
    for layer in layers:
        layer.__dict__["_seed_override"] = generator
    try:
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("_seed_override", None)


def seeded_generator_for(layer, device):
    """A fresh generator on `device` seeded from `layer.seed_generator`'s next
    state (advancing it), or None when the layer has none or runs on probe
    tensors for shape inference (no seed consumed: Keras draws on "meta")."""
    gen = layer.__dict__.get("seed_generator")
    if gen is None or ctx.state().symbolic:
        return None
    return seeded_generator(gen.next_seed(), device)


def keras_seeded_dropout(inputs: torch.Tensor, rate: float, generator, noise_shape=None) -> torch.Tensor:
    """Keras's seeded dropout on torch: a float32 Bernoulli(1 - rate) mask of
    `noise_shape` (default the input's) from `generator`, broadcast, then
    `where(mask, inputs / keep, 0)`."""
    keep_prob = 1.0 - rate
    shape = tuple(inputs.shape) if noise_shape is None else tuple(noise_shape)
    keep = torch.bernoulli(torch.full(shape, keep_prob, device=inputs.device), generator=generator).bool()
    return torch.where(keep, inputs / keep_prob, torch.zeros((), dtype=inputs.dtype, device=inputs.device))


def attach_seed_generator(layer, seed) -> None:
    """Gives `layer` Keras's `seed_generator` (seed None: from Python's
    `random`, drawn now, in Keras's program order). Kept out of the module
    tree: no state_dict key, no `.to()` (its state stays on the CPU)."""
    layer.__dict__["seed_generator"] = SeedGenerator(seed, _persistent=False)


def concrete_noise_shape(noise_shape, inputs: torch.Tensor) -> tuple:
    """`noise_shape` with its None entries taken from `inputs.shape` (Keras)."""
    shape = inputs.shape
    return tuple(shape[i] if d is None else d for i, d in enumerate(noise_shape))


def validate_noise_shape(noise_shape):
    """Keras's `Dropout._validate_noise_shape`: a tuple of positive ints or None."""
    if noise_shape is None:
        return None
    if isinstance(noise_shape, str):
        raise ValueError(
            "Invalid value received for argument `noise_shape`. Expected a tuple or list of integers. "
            f"Received: noise_shape={noise_shape}"
        )
    if not isinstance(noise_shape, tuple):
        try:
            noise_shape = tuple(noise_shape)
        except TypeError:
            raise ValueError(
                "Invalid value received for argument `noise_shape`. Expected an iterable of integers "
                f"(e.g., a tuple or list). Received: noise_shape={noise_shape}"
            ) from None
    for i, dim in enumerate(noise_shape):
        if dim is None:
            continue
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise ValueError(
                "Invalid value received for argument `noise_shape`. Expected all elements to be integers "
                f"or None. Received element at index {i}: {dim} (type: {type(dim).__name__})"
            )
        if dim <= 0:
            raise ValueError(
                "Invalid value received for argument `noise_shape`. Expected all dimensions to be positive "
                f"integers or None. Received negative or zero value at index {i}: {dim}"
            )
    return noise_shape
