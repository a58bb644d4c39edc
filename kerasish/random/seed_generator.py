"""`SeedGenerator`: the state behind seeded random ops, as a small module.

Its state is an int64 buffer `state = [seed, counter]`, so it moves with
`.to()`, is saved in `state_dict()` (under the attribute name of the layer
that holds it) and is restored by `load_state_dict()`. Each draw reads the
state and advances the counter in place, as Keras's `SeedGenerator.next()`
does; under `torch.compile` that is an in-graph buffer update (no graph
break). It is not a Keras weight: it is left out of `layer.weights` and
`get_weights()`, as in Keras.
"""

from __future__ import annotations

import random as _py_random

import torch
from torch import nn


def make_default_seed() -> int:
    """A fresh seed for an unseeded generator (Keras: 1 .. 1e9)."""
    return _py_random.randint(1, int(1e9))


class SeedGenerator(nn.Module):
    """Generates a new seed at every random op that uses it.

    Args:
        seed: Initial seed (int). Defaults to a random seed.
        name: Optional name. Defaults to "seed_generator".

    Example:

    ```python
    gen = keras.random.SeedGenerator(seed=42)
    a = keras.random.normal((2, 3), seed=gen)
    b = keras.random.normal((2, 3), seed=gen)  # different from `a`
    ```
    """

    _is_seed_generator = True

    def __init__(self, seed=None, name=None, **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to SeedGenerator: {kwargs}")
        self._initial_seed = seed
        if seed is None:
            seed = make_default_seed()
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"Argument `seed` must be an integer. Received: seed={seed}")
        self.name = name or "seed_generator"
        self.register_buffer("state", torch.tensor([seed, 0], dtype=torch.int64))

    def next(self, ordered=True) -> torch.Tensor:
        """The current state `[seed, counter]` (a copy); then advances it."""
        value = self.state.clone()
        with torch.no_grad():
            if ordered:
                self.state[1] += 1
            else:
                # Keras's sequence of near-unique values in [0, 1e6)
                self.state.copy_((self.state + 1) * 5387 % 933199)
        return value

    def get_config(self) -> dict:
        return {"seed": self._initial_seed, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def extra_repr(self) -> str:
        return f"seed={self._initial_seed}"


_GLOBAL: list = []


def global_seed_generator() -> SeedGenerator:
    """The process-wide generator behind unseeded random ops."""
    if not _GLOBAL:
        _GLOBAL.append(SeedGenerator())
    return _GLOBAL[0]


def draw_seed(seed) -> torch.Tensor:
    """Keras's seeding rule: an int gives `[seed, 0]` every time (stateless),
    a `SeedGenerator` its next state, None the global generator's next
    (unordered) state."""
    if isinstance(seed, SeedGenerator):
        return seed.next()
    if isinstance(seed, int) and not isinstance(seed, bool):
        # Keras stores torch seeds as int32: reinterpret the low 32 bits
        seed = (seed & 0xFFFFFFFF ^ 0x80000000) - 0x80000000
        return torch.tensor([seed, 0], dtype=torch.int64)
    if seed is None:
        return global_seed_generator().next(ordered=False)
    raise ValueError(
        "Argument `seed` must be either an integer or an instance of `SeedGenerator`. "
        f"Received: seed={seed} (of type {type(seed)})"
    )
