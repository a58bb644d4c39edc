"""Shared machinery of the recurrent cells: argument checks, the weight
arguments every cell takes, and Keras's per-sequence dropout masks.

Keras's dropout for recurrent cells (`DropoutRNNCell`): one random mask is
drawn per sequence (per `RNN` call) and reused at every time step. While an
`RNN` layer runs its time loop the masks are cached on the cell; a cell called
on its own draws fresh masks on every call (Keras keeps the first mask until
`reset_dropout_mask()`; kerasish does not cache outside an `RNN` call).
"""

from __future__ import annotations

import torch

from kerasish import activations
from kerasish import constraints
from kerasish import initializers
from kerasish import regularizers
from kerasish.layers.layer import Layer
from kerasish.layers.regularization.base_random import attach_seed_generator
from kerasish.layers.weight_layout import contiguous_weights
from kerasish.random.seed_generator import _stateless_scope
from kerasish.random.seed_generator import checkpoint_replay
from kerasish.random.seed_generator import keras_seeding
from kerasish.random.seed_generator import outside_func_transforms
from kerasish.utils.argument_validation import as_int


def check_units(units, name: str = "units"):
    """Keras's check for `units`/`filters`: a positive integer (NumPy
    integers are accepted as tf.keras does, and returned as int)."""
    units = as_int(units)
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a positive integer, got {units}."
        )
    return units


def clip_rate(rate) -> float:
    """Keras clips dropout rates into [0, 1]."""
    return min(1.0, max(0.0, float(rate)))


def dropout_mask(like: torch.Tensor, rate: float, count: int | None, seed: int | None, calls: int) -> torch.Tensor:
    """A Keras dropout mask of ones scaled by 1/(1 - rate), with `count`
    independent masks stacked first when `count` is not None. Seeded, mask
    `i` is drawn with seed `seed + calls + i` (the caller advances `calls`
    by `count`): Keras draws each of the `count` masks with its own
    `SeedGenerator` step."""
    shape = tuple(like.shape) if count is None else (count, *like.shape)
    keep = 1.0 - rate
    if keep <= 0.0:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    if seed is None:
        # (the draws of Keras's unseeded F.dropout(ones): bernoulli_ with a scalar probability)
        mask = torch.empty(shape, dtype=like.dtype, device=like.device)
        mask.bernoulli_(keep)
    else:
        # Keras's seeded dropout: SeedGenerator(seed) advanced once per mask, a
        # generator seeded with seed + counter, Bernoulli of a float32 full tensor
        probs = torch.full(tuple(like.shape), keep, device=like.device)
        masks = []
        for c in range(calls, calls + (count or 1)):
            gen = torch.Generator(device=like.device).manual_seed((int(seed) + c) & 0xFFFFFFFF)
            masks.append(torch.bernoulli(probs, generator=gen))
        mask = (masks[0] if count is None else torch.stack(masks)).to(like.dtype)
    return mask / keep


def store_transposed(var: torch.Tensor) -> None:
    """Re-lays a Keras-layout kernel `(in, G * units)` in place so that its
    storage is torch's `(G * units, in)` (`nn.LSTM`'s `weight_ih`),
    contiguous: the variable keeps its Keras shape and values (strides
    `(1, in)`), and `var.t()` is the contiguous weight the fused kernels read,
    with no copy per call. Gradients then arrive in the same layout, so they
    accumulate without strided adds, and optimizer slots made with
    `zeros_like` follow it. The object stays the same (an optimizer or hook
    holding it keeps working); `assign`, `set_weights`, `load_state_dict`
    (`copy_`), `.to()` and `deepcopy` keep the layout."""
    with torch.no_grad():
        var.data = var.data.t().contiguous().t()


# the old name, kept: the function now covers convolution kernels too (`kerasish.utils.contiguous_weights`)
contiguous_kernels = contiguous_weights


class DropoutRNNCell:
    """Mixin giving a cell Keras's cached dropout masks (`get_dropout_mask`,
    `get_recurrent_dropout_mask`, `reset_dropout_mask`,
    `reset_recurrent_dropout_mask`). Needs `dropout`, `recurrent_dropout`,
    `seed` attributes; `dropout_mask_count` (None or an int) says how many
    independent masks one call draws."""

    dropout_mask_count = None

    def _new_mask(self, like, rate):
        if self.seed is not None:
            # (only a seeded mask needs the count; unseeded, a count changing every call would
            # be a new graph per call under torch.compile, which guards the cell's int attributes)
            seed, calls = self._advance_seed(self.dropout_mask_count or 1)
            return dropout_mask(like, rate, self.dropout_mask_count, seed, calls)
        return dropout_mask(like, rate, self.dropout_mask_count, None, self.__dict__.get("_dropout_calls", 0))

    def _advance_seed(self, step):
        """Advances the seeded mask counter by `step` draws; returns `(seed, first_draw)`."""
        d = self.__dict__
        scope = _stateless_scope()
        gen = d.get("seed_generator")
        if scope is not None and gen is not None and not torch.compiler.is_compiling():
            # `stateless_call` (Keras): the mask comes from the seed state in the scope
            # (the one given), which is advanced there; the cell's counter stays
            seed, calls = gen._advance_stateless(scope, True, step).tolist()
            return seed, calls

        def advance():
            first = d.get("_dropout_calls", 0)
            d["_dropout_calls"] = first + step
            if gen is not None and not torch.compiler.is_compiling():
                # the listed seed state (`variables`) follows the counter, as Keras's advances
                # (inside torch.func.grad / vmap too: the counter is plain state, not differentiable data)
                with outside_func_transforms(), torch.no_grad():
                    gen.state[1] = first + step
            return first

        # torch.utils.checkpoint's recomputation gets the forward's masks back
        calls = advance() if torch.compiler.is_compiling() else checkpoint_replay(self, advance, self.name)
        return self.seed, calls

    def skip_unused_masks(self, step_input=None, state=None):
        """A call that uses no mask (inference) still advances the random
        state as Keras's does: Keras 3's `RNN.call` draws the cell's masks
        (`count` per rate in (0, 1)) on every eager call, training or not, so
        a layer's training masks depend on how many inference calls
        (`predict`, validation) came before. Seeded, kerasish moves the
        counter without drawing; unseeded, after `keras.utils.set_random_seed`
        (the only time torch's global RNG stream follows Keras's, as for the
        other Keras-draw emulations), it draws and discards masks shaped as
        Keras's (`step_input`, the first time step, and `state`, the first
        state; a cell inside `StackedRNNCells` is not given them and draws
        nothing): without it an inference call draws nothing (a draw would
        cost ~40 % of a small LSTM's inference call). Not under
        `torch.compile` (a counter changing every call would be a new graph
        per call)."""
        if torch.compiler.is_compiling():
            return
        if self.seed is None:
            if not keras_seeding():
                return
            if step_input is not None and 0.0 < self.dropout:
                dropout_mask(step_input, self.dropout, self.dropout_mask_count, None, 0)
            if state is not None and 0.0 < self.recurrent_dropout:
                dropout_mask(state, self.recurrent_dropout, self.dropout_mask_count, None, 0)
            return
        draws = (0.0 < self.dropout < 1.0) + (0.0 < self.recurrent_dropout < 1.0)
        if draws:
            self._advance_seed(draws * (self.dropout_mask_count or 1))

    def get_dropout_mask(self, step_input):
        d = self.__dict__
        mask = d.get("_dropout_mask")
        if mask is None and self.dropout > 0:
            mask = self._new_mask(step_input, self.dropout)
            if d.get("_cache_masks"):
                d["_dropout_mask"] = mask
        return mask

    def get_recurrent_dropout_mask(self, step_input):
        d = self.__dict__
        mask = d.get("_recurrent_dropout_mask")
        if mask is None and self.recurrent_dropout > 0:
            mask = self._new_mask(step_input, self.recurrent_dropout)
            if d.get("_cache_masks"):
                d["_recurrent_dropout_mask"] = mask
        return mask

    def reset_dropout_mask(self):
        self.__dict__["_dropout_mask"] = None

    def reset_recurrent_dropout_mask(self):
        self.__dict__["_recurrent_dropout_mask"] = None


class BaseRNNCell(Layer, DropoutRNNCell):
    """Base of `SimpleRNNCell`, `LSTMCell` and `GRUCell`: the arguments they
    share, their validation and their config."""

    _keras_module = "keras.layers"
    _gates = 1
    # kernels whose storage is torch's `(G * units, in)` layout (see `store_transposed`)
    _torch_layout_kernels = False
    # Keras creates the cell's SeedGenerator (a default seed drawn from Python's
    # `random`) before its initializers in SimpleRNNCell and ConvLSTMCell, after
    # them in LSTMCell and GRUCell: the same order keeps later layers' seeds equal
    _seed_generator_first = False

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        units = check_units(units)
        implementation = kwargs.pop("implementation", 2)
        super().__init__(**kwargs)
        if self._seed_generator_first:
            attach_seed_generator(self, seed)
        self.units = units
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = clip_rate(dropout)
        self.recurrent_dropout = clip_rate(recurrent_dropout)
        self.seed = seed
        if not self._seed_generator_first:
            attach_seed_generator(self, seed)
        # Keras: recurrent dropout switches LSTM/GRU cells to the per-gate
        # "implementation 1", which draws one dropout mask per gate.
        self.implementation = 1 if self.recurrent_dropout != 0.0 else implementation
        self.state_size = self.units
        self.output_size = self.units

    def _add_kernels(self, input_dim: int):
        n = self.units * self._gates
        self.kernel = self.add_weight(
            shape=(input_dim, n),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, n),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self._torch_layout_kernels:
            store_transposed(self.kernel)
            store_transposed(self.recurrent_kernel)

    def _add_bias(self, shape, initializer):
        self.bias = self.add_weight(
            shape=shape,
            name="bias",
            initializer=initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def _infer_build_shape(self, weight_shapes: dict):
        kernel = weight_shapes.get("kernel")
        return None if kernel is None else (None, kernel[0])

    def get_initial_state(self, batch_size=None):
        """Zero states, one `(batch_size, size)` tensor per state."""
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        device = self.kernel.device if self.built else None
        return [torch.zeros((batch_size, s), dtype=self._compute_torch_dtype, device=device) for s in sizes]

    def get_config(self) -> dict:
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        if self._gates > 1:
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        return {**super().get_config(), **config}
