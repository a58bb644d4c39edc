"""`BaseRandomLayer`: the random-number plumbing of the noise layers.

Keras draws from a `SeedGenerator`; here a layer built with `seed=...` owns a
`torch.Generator` per device (seeded with `seed`, advancing on every call), so
its training-mode results are reproducible. With `seed=None` the global torch
RNG is used (`torch.manual_seed` controls it). Under `torch.compile` the
global RNG is always used: dynamo cannot trace a `torch.Generator`, and this
keeps compiled calls free of graph breaks. Random draws never match Keras's
bit for bit (Keras's own torch backend uses other streams); statistics do.
"""

from __future__ import annotations

import torch

from kerasish.layers.layer import Layer


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
        self.__dict__["_generators"] = {}

    def _generator(self, device: torch.device):
        """This layer's generator on `device`, or None for the global RNG."""
        if self.seed is None or torch.compiler.is_compiling():
            return None
        gens = self.__dict__["_generators"]
        gen = gens.get(device)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            gens[device] = gen
        return gen

    def _uniform(self, shape, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(shape, generator=self._generator(like.device), device=like.device, dtype=like.dtype)

    def _normal(self, shape, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=self._generator(like.device), device=like.device, dtype=like.dtype)

    def _keep_mask(self, shape, rate: float, like: torch.Tensor) -> torch.Tensor:
        """Boolean mask, True with probability `1 - rate` (drawn in float32 so
        low-precision inputs get the same keep probability)."""
        gen = self._generator(like.device)
        return torch.rand(shape, generator=gen, device=like.device) >= rate


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
