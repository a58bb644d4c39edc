"""`SeedGenerator`: the state behind seeded random ops, as a small module.

Its state is an int64 buffer `state = [seed, counter]`, so it moves with
`.to()`, is saved in `state_dict()` (under the attribute name of the layer
that holds it) and is restored by `load_state_dict()`. Each draw reads the
state and advances the counter in place, as Keras's `SeedGenerator.next()`
does; under `torch.compile` that is an in-graph buffer update (no graph
break). It is not a Keras weight: it is left out of `layer.weights` and
`get_weights()`, as in Keras.

Keras-exact seeding: after `keras.utils.set_random_seed(s)` (as in Keras 3)
every unseeded initializer and SeedGenerator takes its seed from Python's
`random` at construction, in Keras's order, and the global generator behind
`seed=None` draws is recreated; `keras_seeding()` says whether that mode is on.
Before any `set_random_seed`, unseeded draws keep using torch's global RNG
(so `torch.manual_seed` alone still makes a program reproducible).
"""

from __future__ import annotations

import contextlib
import inspect
import random as _py_random
import threading
import weakref

import numpy as np
import torch
from torch import nn
from torch.utils.data import get_worker_info as _worker_info


# the seed given to `keras.utils.set_random_seed`, None until it is called
_RANDOM_SEED: list = [None]


def set_global_random_seed(seed: int) -> None:
    """Records `seed` (Keras's `GLOBAL_RANDOM_SEED`) and drops the calling
    thread's global generator so that its next `seed=None` draw recreates it
    from `random`."""
    _RANDOM_SEED[0] = seed
    _GLOBAL.clear()


def get_random_seed():
    """The seed given to `set_random_seed`, or None if it was never called."""
    return _RANDOM_SEED[0]


def keras_seeding() -> bool:
    """True once `set_random_seed` was called: unseeded layers and
    initializers then draw as Keras 3 does (see module docstring)."""
    return _RANDOM_SEED[0] is not None


_func_transform_stack = torch._C._functorch.peek_interpreter_stack  # None outside torch.func transforms


def outside_func_transforms():
    """Inside a torch.func transform (`grad`, `vmap`, `jacrev`), a context where a seed counter advances
    as plain state: the transforms refuse in-place writes to a tensor the transformed function did not
    take as an input, and the counter is not differentiable data (the draw itself still follows vmap's
    `randomness`). Outside them a no-op context (entering the disabling one costs ~2 us)."""
    if _func_transform_stack() is None:
        return contextlib.nullcontext()
    return torch._C._DisableFuncTorch()


def seeded_generator(state, device) -> torch.Generator:
    """A fresh generator on `device` seeded with `(seed + counter) mod 2**32`
    from a `[seed, counter]` state (or that int itself), as Keras's torch
    backend seeds each draw."""
    gen = torch.Generator(device=device)
    gen.manual_seed(state if isinstance(state, int) else int(state[0] + state[1]) & 0xFFFFFFFF)
    return gen


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

    def __init__(self, seed=None, name=None, *, _persistent=True, **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to SeedGenerator: {kwargs}")
        self._initial_seed = seed
        if seed is None:
            seed = make_default_seed()
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"Argument `seed` must be an integer. Received: seed={seed}")
        from kerasish.utils import naming  # (naming imports the layers package)

        if name is None:
            name = naming.auto_name("seed_generator")
        self.name = name
        # Keras creates the state inside `name_scope(name)`: its path has the scopes open now
        self._path = naming.current_path(name)
        # a layer's own generator (Dropout's) is not saved: Keras writes no seed
        # state to weight files, and older state_dicts have no such key
        # a layer's own generator lives outside the module tree, on the CPU, whatever device context it is
        # built in: under `torch.device("meta")` (torch's meta-init recipe) its state had no data and no
        # `to_empty` / `load_state_dict` reached it (the seeded layer could not run); under a CUDA default
        # device every draw read it back from the GPU
        device = None if _persistent else "cpu"
        self.register_buffer("state", torch.tensor([seed, 0], dtype=torch.int64, device=device),
                             persistent=_persistent)

    def next(self, ordered=True) -> torch.Tensor:
        """The current state `[seed, counter]` (a copy); then advances it.
        Inside `torch.utils.checkpoint` the recomputation gets the states the
        forward got (see `checkpoint_replay`)."""
        if torch.compiler.is_compiling():
            return self._advance(ordered)
        return checkpoint_replay(self, lambda: self._advance(ordered), self._path)

    def _advance(self, ordered) -> torch.Tensor:
        scope = _stateless_scope()
        if scope is not None:
            return self._advance_stateless(scope, ordered)
        if torch.compiler.is_compiling():
            return self._advance_state(ordered)
        if _worker_info() is not None:
            self._enter_worker()
        with outside_func_transforms():
            return self._advance_state(ordered)

    def _advance_state(self, ordered) -> torch.Tensor:
        with torch.no_grad():
            value = self.state.clone()
            if ordered:
                self.state[1] += 1
            else:
                # Keras's sequence of near-unique values in [0, 1e6), computed
                # as its int32 state does (the product wraps around)
                self.state.copy_(torch.remainder(_wrap_int32(_wrap_int32(self.state + 1) * 5387), 933199))
        return value

    def next_seed(self) -> int:
        """`(seed + counter) mod 2**32` for the next draw, then advances the
        counter (the eager fast path of `next()` for one layer draw; replayed
        under `torch.utils.checkpoint` as `next()` is)."""
        return checkpoint_replay(self, self._advance_seed, self._path)

    def _advance_seed(self) -> int:
        scope = _stateless_scope()
        if scope is not None:
            seed, counter = self._advance_stateless(scope, True).tolist()
            return (seed + counter) & 0xFFFFFFFF
        if _worker_info() is not None:
            self._enter_worker()
        state = self.state
        if state.device.type == "cpu":
            try:
                values = state.numpy()  # (shares the storage: a few times cheaper than tensor indexing)
            except RuntimeError:
                values = None  # inside a torch.func transform (grad, vmap, jacrev): the path below
            if values is not None:
                seed, counter = int(values[0]), int(values[1])
                values[1] = counter + 1
                return (seed + counter) & 0xFFFFFFFF
        with outside_func_transforms():
            return self._advance_seed_tensor(state)

    @staticmethod
    def _advance_seed_tensor(state) -> int:
        with torch.no_grad():
            seed, counter = state.tolist()
            state[1] += 1
        return (seed + counter) & 0xFFFFFFFF

    def _enter_worker(self) -> None:
        """Inside a `torch.utils.data.DataLoader` worker, the first draw (and the first of
        each new worker seed) gives this copy its own stream: the seed becomes a hash of
        the seed and the worker's seed (torch's `base_seed + worker_id`, drawn from the
        loader's generator or torch's global RNG when the loader's iterator starts), in a
        new buffer. Without it every worker drew the stream of the main process's copy:
        samples from different workers got the same masks and transformations, and with
        "spawn" (which moves pickled tensors into shared memory) the workers advanced one
        shared counter in whatever order they ran, so a seeded pipeline was not
        reproducible. Unseeded draws before `set_random_seed` use torch's global RNG,
        which torch already seeds per worker."""
        worker_seed = _worker_info().seed
        if self.__dict__.get("_worker_seed") == worker_seed:
            return
        with torch.no_grad():
            seed, counter = self.state.tolist()
            key = np.random.SeedSequence([seed & 0xFFFFFFFF, worker_seed & 0xFFFFFFFFFFFFFFFF])
            mixed = int(key.generate_state(1)[0])
            # a new tensor, not an in-place write: with "spawn" the old storage is the main process's
            self.state = torch.tensor([mixed, counter], dtype=self.state.dtype, device=self.state.device)
        self.__dict__.pop("_state_view", None)
        self.__dict__["_worker_seed"] = worker_seed

    def _advance_stateless(self, scope, ordered, steps=1) -> torch.Tensor:
        """Inside a `StatelessScope` (`stateless_call`), as Keras: the draw
        reads the state's value in the scope (the one given, or the one a
        previous draw in the scope left) and the advanced state is recorded
        in the scope; `self.state` is not changed."""
        # the cached view: the scope's mapping is keyed by that object (reading its
        # data_ptr here would go through the scope's torch-function mode)
        view = self.__dict__.get("_state_view")
        if view is None:
            view = self.state_variable()
        current = scope.get_current_value(view)
        value = (self.state if current is None else current).detach().to(torch.int64).clone()
        if ordered:
            new = value + torch.tensor([0, steps], dtype=torch.int64, device=value.device)
        else:
            new = torch.remainder(_wrap_int32(_wrap_int32(value + 1) * 5387), 933199)
        scope.add_update((view, new.to(dtype=self.state.dtype, device=self.state.device)))
        return value

    def state_variable(self):
        """The state as a non-trainable Keras variable sharing its storage
        (`seed_generator_state`, path `<name>/seed_generator_state`)."""
        from kerasish.variables import state_view

        view = self.__dict__.get("_state_view")
        if view is None or view.data_ptr() != self.state.data_ptr() or view.device != self.state.device:
            view = state_view(self.state, "seed_generator_state", f"{self._path}/seed_generator_state")
            self.__dict__["_state_view"] = view
        return view

    def get_config(self) -> dict:
        return {"seed": self._initial_seed, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def extra_repr(self) -> str:
        return f"seed={self._initial_seed}"


# ---------------------------------------------------------------- checkpoint replay
# `torch.utils.checkpoint` runs a forward again during the backward pass and
# restores torch's global RNG for it, so unseeded draws repeat. A seeded draw
# advances a SeedGenerator instead, and the recomputation would draw another
# mask (its gradient silently wrong). So draws made inside a non-reentrant
# checkpoint's forward are recorded per checkpoint frame and generator, and
# the recomputation of that frame gets them back in order (every
# recomputation pass from the start: `retain_graph` backwards repeat it).
# The frame is read from torch's saved-tensor hooks (`_checkpoint_hook` in the
# forward, `_recomputation_hook` in the recomputation), private names: if a
# torch version changes them, seeded draws under checkpoint are refused in
# the backward pass below rather than silently redrawn.
_CHECKPOINT_DRAWS = weakref.WeakKeyDictionary()  # frame -> {id(owner): [draws]}
_REPLAY_PASSES = weakref.WeakKeyDictionary()  # frame -> (weakref to the pass's hook, {id(owner): next index})


def _closure_value(fn, name):
    code = getattr(fn, "__code__", None)
    if code is None or name not in code.co_freevars:
        return None
    try:
        return fn.__closure__[code.co_freevars.index(name)].cell_contents
    except (ValueError, IndexError, TypeError):
        return None


def _checkpoint_phase():
    """`("forward", frame, None)` inside a non-reentrant checkpoint's forward,
    `("recompute", frame, hook)` while it is recomputed, else None."""
    hooks = torch._C._autograd._top_saved_tensors_default_hooks(False)
    if hooks is None:
        return None
    hook = hooks[0]
    inner = inspect.unwrap(hook)
    name = getattr(inner, "__qualname__", "")
    if name.startswith("_checkpoint_hook."):
        frame = _closure_value(inner, "frame")
        return None if frame is None else ("forward", frame, None)
    if name.startswith("_recomputation_hook."):
        ref = _closure_value(inner, "target_frame_ref")
        frame = ref() if callable(ref) else None
        return None if frame is None else ("recompute", frame, hook)
    return None


_OWN_REPLAY = threading.local()  # .depth > 0: the caller has set the counters (see `own_replay`)


@contextlib.contextmanager
def own_replay():
    """For code that recomputes a forward itself with the draw counters it
    recorded (the compiled RNN loop's backward): `checkpoint_replay` stands
    aside."""
    _OWN_REPLAY.depth = getattr(_OWN_REPLAY, "depth", 0) + 1
    try:
        yield
    finally:
        _OWN_REPLAY.depth -= 1


def checkpoint_replay(owner, draw, what: str):
    """`draw()` (which advances `owner`'s random state: a SeedGenerator, an
    RNN cell's mask counter), recorded inside a checkpointed forward and
    given back in its recomputation (see above). `what` names it in errors."""
    if getattr(_OWN_REPLAY, "depth", 0):
        return draw()
    phase = _checkpoint_phase()
    if phase is None:
        if torch._C._current_graph_task_id() != -1 and torch.is_grad_enabled():
            # a forward run by the backward pass: torch.utils.checkpoint(use_reentrant=True)
            raise RuntimeError(
                f"A seeded random draw ({what}) is being recomputed in the backward pass "
                "(torch.utils.checkpoint with use_reentrant=True): it cannot draw the mask/noise of its forward "
                "again, so its gradient would be wrong. Use torch.utils.checkpoint(..., use_reentrant=False) "
                "(kerasish replays seeded draws there), or leave the layer unseeded (seed=None without "
                "keras.utils.set_random_seed draws from torch's global RNG, which checkpoint restores)."
            )
        return draw()
    kind, frame, hook = phase
    if kind == "forward":
        value = draw()
        _CHECKPOINT_DRAWS.setdefault(frame, {}).setdefault(id(owner), []).append(value)
        return value
    recorded = _CHECKPOINT_DRAWS.get(frame, {}).get(id(owner))
    passes = _REPLAY_PASSES.get(frame)
    if passes is None or passes[0]() is not hook:
        passes = (weakref.ref(hook), {})
        _REPLAY_PASSES[frame] = passes
    index = passes[1].get(id(owner), 0)
    if recorded is None or index >= len(recorded):
        raise RuntimeError(
            f"The recomputation of a torch.utils.checkpoint region drew from {what} more often than "
            "its forward did: its random numbers cannot be replayed (is the checkpointed function "
            "non-deterministic in which layers it calls?)."
        )
    passes[1][id(owner)] = index + 1
    value = recorded[index]
    return value.clone() if isinstance(value, torch.Tensor) else value


def _wrap_int32(x: torch.Tensor) -> torch.Tensor:
    """int64 values wrapped to int32's range (Keras's torch seed state is int32)."""
    return torch.remainder(x + 2**31, 2**32) - 2**31


_CALL_CONTEXT: list = []


def _stateless_scope():
    """The innermost open `keras.StatelessScope`, or None."""
    if not _CALL_CONTEXT:
        from kerasish.layers import call_context  # (imported late: kerasish.layers imports this module)

        _CALL_CONTEXT.append(call_context)
    return _CALL_CONTEXT[0].state().stateless


class _PerThreadGenerator(threading.local):
    """The global generator behind unseeded random ops, one per thread, as Keras 3 keeps it in its
    thread-local global state: another thread's draws (an inference server's workers, a data thread)
    never move this thread's stream, and `set_random_seed` / `clear_session` drop only the calling
    thread's generator."""

    generator = None

    def clear(self):
        self.generator = None


_GLOBAL = _PerThreadGenerator()


def global_seed_generator() -> SeedGenerator:
    """The calling thread's generator behind unseeded random ops (made from `random` on first use)."""
    generator = _GLOBAL.generator
    if generator is None:
        generator = _GLOBAL.generator = SeedGenerator()
    return generator


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
