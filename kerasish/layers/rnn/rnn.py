"""`RNN`: runs a cell over the time axis (fused `torch._VF` kernel when the
cell allows it, else a Python time loop with Keras's masking semantics)."""

from __future__ import annotations

import inspect

import torch

from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers import call_context as ctx
from kerasish.layers import weight_substitution
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer
from kerasish.layers.layer_call import torch_autocast_on
from kerasish.layers.rnn import fused_rnn
from kerasish.layers.rnn import masked_rnn_op
from kerasish.layers.rnn import rnn_loop_op
from kerasish.layers.rnn import rnn_scan
from kerasish.layers.rnn.base_rnn_cell import DropoutRNNCell
from kerasish.layers.rnn.rnn_loop import rnn_loop
from kerasish.layers.rnn.stacked_rnn_cells import StackedRNNCells
from kerasish.layers.rnn.stacked_rnn_cells import deserialize_layer
from kerasish.utils import tree


def _dropout_cells(cell) -> list:
    if isinstance(cell, DropoutRNNCell):
        return [cell]
    if isinstance(cell, StackedRNNCells):
        return [c for sub in cell.cells for c in _dropout_cells(sub)]
    return []



def _kept_state(state):
    """A stateful layer's carried state computed under `torch.inference_mode()`: a normal tensor (a later
    training call starts from it, and autograd cannot save an inference tensor)."""
    with torch.inference_mode(False):
        return state.clone()

class RNN(Layer):
    """Base class for recurrent layers: applies `cell` along the time axis.

    Args:
        cell: An RNN cell (an object with `call(input_t, states)` returning
            `(output_t, new_states)` and a `state_size`), or a list of cells
            (stacked with `StackedRNNCells`).
        return_sequences: Return the full output sequence instead of the
            last output. Defaults to False.
        return_state: Also return the final states. Defaults to False.
        go_backwards: Process the sequence backwards and return the outputs
            in processing (reversed) order. Defaults to False.
        stateful: Reuse the last states of each batch as the initial states
            of the next one (fixed batch size). `reset_state()` zeroes them.
            Defaults to False.
        unroll: Accepted for compatibility; ignored (eager runs a Python
            loop, `torch.compile` an opaque op). Defaults to False.
        zero_output_for_mask: Masked steps output zeros instead of the
            previous output. Defaults to False.

    Call arguments:
        sequences: `(batch, timesteps, ...)`. Keras 2's spelling
            `layer([sequences, *initial_state])` (and the configs tf.keras 2
            saves for it) is also accepted.
        initial_state: Tensor or list of initial state tensors.
        mask: `(batch, timesteps)` boolean mask (True = valid step).
        training: Passed to the cell (dropout).

    Output shape: `(batch, units)`, `(batch, timesteps, units)` with
    `return_sequences`; with `return_state` a tuple `(output, *states)`.

    Speed: the exact kerasish `SimpleRNNCell` (tanh/relu), `LSTMCell`
    (tanh/sigmoid) and `GRUCell` (tanh/sigmoid, `reset_after=True`) run the
    whole sequence in one `torch._VF` call, also with masks that are a valid
    prefix or suffix of each sequence (right/left padding; under
    `torch.compile` any mask, as one op: `masked_rnn_op`).
    Masks with holes, recurrent dropout, other activations and custom cells
    run a Python loop over time steps calling the cell. Under `torch.export`
    (and so ONNX export) the time loop is one `scan` over the cell's step,
    so exported programs take any number of time steps. Under
    `torch.compile` the loop is one opaque op (`rnn_loop_op`) with a
    symbolic length: one graph for every sequence length. Cells that are
    not `torch.nn.Module`s, or whose `output_size` is not an int, still
    unroll (a graph per length): bucket the lengths for those.

    Example:
        >>> layer = keras.layers.RNN(keras.layers.LSTMCell(4), return_sequences=True)
        >>> layer(torch.randn(2, 10, 8)).shape
        torch.Size([2, 10, 4])
    """

    _no_mode_watch = True  # (`no_mode_warning`)

    def _no_mode_matters(self):
        cells = getattr(self.cell, "cells", None) or [self.cell]
        return any(getattr(c, "dropout", 0) or getattr(c, "recurrent_dropout", 0) for c in cells)

    _float_inputs = True  # integer inputs are cast to the compute dtype

    _keras_module = "keras.layers"

    def __init__(
        self,
        cell,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        **kwargs,
    ):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell, dtype=kwargs.get("dtype"))
        if "call" not in dir(cell):
            raise ValueError(f"Argument `cell` should have a `call` method. Received: cell={cell}")
        if "state_size" not in dir(cell):
            raise ValueError(
                "The RNN cell should have a `state_size` attribute (single integer or list of integers, "
                f"one integer per RNN state). Received: cell={cell}"
            )
        super().__init__(**kwargs)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.supports_masking = True
        state_size = getattr(cell, "state_size", None)
        if state_size is None:
            raise ValueError("state_size must be specified as property on the RNN cell.")
        if not isinstance(state_size, (list, tuple, int)):
            raise ValueError("state_size must be an integer, or a list/tuple of integers (one for each state tensor).")
        self.single_state = isinstance(state_size, int)
        self.state_size = [state_size] if self.single_state else list(state_size)
        # top-level structure of the states: None = one tensor, n = a list of n
        self._state_structure = [None if isinstance(s, int) else len(tree.flatten(s)) for s in self.state_size]
        self._allow_fused = True
        if isinstance(cell, Layer):
            self._cell_training = cell._call_has_training
        else:
            params = inspect.signature(cell.call).parameters
            self._cell_training = "training" in params
        self._state_keys: list[str] = []
        self._expected_batch_size = None
        rnn_loop_op.register(self)

    def __setstate__(self, state):
        super().__setstate__(state)
        rnn_loop_op.register(self)  # a copy gets its own handle

    # ------------------------------------------------------ Keras 2 calls
    def _prepare_inputs(self, args, kwargs):
        # Keras 2 (RNN.__call__ / standardize_args) takes the initial states
        # as the tail of a list input: `lstm([x, h, c])`; tf.keras 2 also
        # saves a call `lstm(x, initial_state=[h, c])` that way in its
        # configs. Keras 3 has no list form, so the split is unambiguous.
        seq = args[0] if args else kwargs.get("sequences")
        if type(seq) in (list, tuple) and seq and kwargs.get("initial_state") is None and _is_tensor(seq[0]):
            if len(seq) > 1:
                kwargs["initial_state"] = list(seq[1:])
            kwargs.pop("sequences", None)
            args = (seq[0], *args[1:])
        return super()._prepare_inputs(args, kwargs)

    # ------------------------------------------------------------- shapes
    def build(self, sequences_shape, initial_state_shape=None):
        spec = self.input_spec
        min_rank = spec.ndim if isinstance(spec, InputSpec) and spec.ndim is not None else 3
        if not isinstance(sequences_shape, (tuple, list)) or len(sequences_shape) < min_rank:
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) expects sequences of rank {min_rank} (batch, timesteps, ...features): "
                f"expected ndim={min_rank}, found ndim={len(sequences_shape) if isinstance(sequences_shape, (tuple, list)) else None}. "
                f"Received: sequences_shape={sequences_shape}"
            )
        if self.stateful and sequences_shape[0] is None:
            raise ValueError(
                "When using `stateful=True` in a RNN, the batch size must be static. "
                f"Found dynamic batch size: sequence.shape={tuple(sequences_shape)}"
            )
        if isinstance(self.cell, Layer) and not self.cell.built:
            self.cell.build((sequences_shape[0], *sequences_shape[2:]))
        spec = self.input_spec
        if isinstance(spec, InputSpec) and spec.ndim is not None and not spec.axes:
            # a built cell has weights for this feature size: later calls must match it
            axis = 2 if getattr(self.cell, "data_format", None) == "channels_first" else -1
            if sequences_shape[axis] is not None:
                self.input_spec = InputSpec(ndim=spec.ndim, axes={axis: sequences_shape[axis]})

    def _infer_build_shape(self, weight_shapes: dict):
        return None

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, length = sequences_shape[0], sequences_shape[1]
        states = []
        for size in self.state_size:
            if isinstance(size, int):
                states.append((batch, size))
            else:
                states.append([(batch, s) for s in size])
        output_size = getattr(self.cell, "output_size", None)
        if output_size is None:
            output_size = self.state_size[0]
        out = (batch, length, output_size) if self.return_sequences else (batch, output_size)
        return (out, *states) if self.return_state else out

    def _hot_mask_mode(self):
        # an unmasked call on a tensor (no `_keras_mask` on it, no `mask=`) takes the layer call's hot
        # path: `call` gets no mask and `compute_mask` of no mask is no mask (None, and None for the
        # states). A masked call, a Keras 2 list input (`_prepare_inputs`) and a subclass with its own
        # `compute_mask` or `_prepare_inputs` take the full path
        cls = type(self)
        if (cls.compute_mask is not RNN.compute_mask or cls._prepare_inputs is not RNN._prepare_inputs
                or not cls._call_has_mask or cls._call_arg_masks):
            return None
        return 2

    def compute_mask(self, inputs, mask=None):
        mask = tree.flatten(mask)[0] if isinstance(mask, (list, tuple)) else mask
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self._state_structure)
        return output_mask

    # ------------------------------------------------------------- states
    def get_initial_state(self, batch_size):
        """The cell's initial states (zeros) for `batch_size`, as a list.

        tf.keras 2's spelling `get_initial_state(inputs)` (a batch of inputs, whose first axis is the batch;
        tensorflow.org's text_generation tutorial) is accepted too: the states then follow the inputs' device."""
        device = None
        if not isinstance(batch_size, (int, torch.SymInt)):  # (a SymInt: a batch size under dynamic compile)
            inputs = batch_size
            shape = getattr(inputs, "shape", None)
            if shape is not None and len(shape) == 0:
                # a 0-d tensor / NumPy integer; under `torch.jit.trace`, the traced batch size that
                # `sequences.shape[0]` gives, kept traced: made a Python int, the trace baked the example's
                # batch into its zero states, and torch's CPU LSTM kernel, handed states of another
                # batch, corrupted memory ("free(): invalid next size")
                batch_size = inputs if torch.jit.is_tracing() and isinstance(inputs, torch.Tensor) else int(inputs)
            elif shape is not None and len(shape) >= 1 and shape[0] is not None:
                batch_size = int(shape[0])
                device = getattr(inputs, "device", None)
                device = device if isinstance(device, torch.device) else None
            else:
                raise TypeError(
                    f"Layer '{self.name}' (of type {type(self).__name__}): `get_initial_state` expected "
                    "`batch_size`, an integer (Keras 3), or a batch of inputs whose first axis is the batch "
                    f"(tf.keras 2). Received: batch_size={batch_size!r}"
                )
        fn = getattr(self.cell, "get_initial_state", None)
        if fn is None:
            states = [torch.zeros((batch_size, d), dtype=self._compute_torch_dtype) for d in self.state_size]
        else:
            state = fn(batch_size=batch_size)
            states = list(state) if isinstance(state, (list, tuple)) else [state]
        if device is not None:
            states = [tree.map_structure(lambda t: t.to(device), s) for s in states]
        return states

    def _state_dtype(self, like):
        """Keras converts the states to the cell's compute dtype."""
        cell = self.cell
        # (the dtype of weights put in the cell's place by `functional_call`, see `weight_substitution`)
        return weight_substitution.call_dtype(cell) if isinstance(cell, Layer) else like.dtype

    def _constant_buffer_value(self, name):
        # a stateful layer's carried states after `to_empty()`: the zeros `reset_states()` gives
        return 0.0 if name.startswith("_rnn_state_") else None

    def _zero_states(self, batch_size, like) -> list:
        dtype = self._state_dtype(like)
        return [s.to(device=like.device, dtype=dtype) for s in tree.flatten(self.get_initial_state(batch_size))]

    def _pack_states(self, flat: list) -> list:
        out, i = [], 0
        for count in self._state_structure:
            if count is None:
                out.append(flat[i])
                i += 1
            else:
                out.append(list(flat[i : i + count]))
                i += count
        return out

    def _check_initial_state(self, initial_state, batch_size, like) -> list:
        flat = [torch.as_tensor(s) for s in tree.flatten(initial_state)]
        expected = [tuple(s.shape) for s in self._zero_states(batch_size, like)]
        received = [tuple(s.shape) for s in flat]
        if received != expected:
            raise ValueError(
                f"Layer '{self.name}': an `initial_state` was passed that is not compatible with "
                f"`cell.state_size`. Expected state shapes {expected} (cell.state_size={self.cell.state_size}). "
                f"Received: initial_state shapes={received}"
            )
        dtype = self._state_dtype(like)
        return [s.to(device=like.device, dtype=dtype) for s in flat]

    @property
    def states(self):
        """The stateful layer's current states (None until the first call)."""
        if not self._state_keys:
            return None
        return self._pack_states([self._buffers[k] for k in self._state_keys])

    def _stateful_states(self, sequences) -> list:
        batch = sequences.shape[0]
        if not self._state_keys:
            with torch.inference_mode(False):  # (kept across calls: never an inference tensor)
                zeros = self._zero_states(batch, sequences)
            for i, s in enumerate(zeros):
                key = f"_rnn_state_{i}"
                self.register_buffer(key, s, persistent=False)
                self._state_keys.append(key)
            self._expected_batch_size = batch
        elif batch != self._expected_batch_size:
            raise ValueError(
                "If an RNN is stateful, the batch size of the input sequences must be the same as the batch "
                f"size of the initial state. \n- Expected batch size: {self._expected_batch_size}\n"
                f"- Received batch size: {batch}"
            )
        return [self._buffers[k].to(self._state_dtype(sequences)) for k in self._state_keys]

    def reset_state(self):
        """Zeroes the states of a stateful layer."""
        with torch.inference_mode(False):  # (under inference_mode too: kept for training calls)
            for key in self._state_keys:
                self._buffers[key] = torch.zeros_like(self._buffers[key])

    def reset_states(self, states=None):
        """Keras 2 name of `reset_state`, with Keras 2's `states` argument.

        Args:
            states: None (default) zeroes the states; otherwise the new state
                values (NumPy arrays or tensors of shape `(batch_size, ...)`,
                one per state, a list for several), as Keras 2 takes them.
                The layer must be stateful.
        """
        if states is None:
            self.reset_state()
            return
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        values = list(states) if isinstance(states, (list, tuple)) else [states]
        like = next(iter(self._buffers[k] for k in self._state_keys), None)
        if like is None:
            device = next((p.device for p in self.parameters()), torch.device("cpu"))
            like = torch.empty(0, dtype=self._state_dtype(torch.empty(0)), device=device)
        values = [torch.as_tensor(v).to(like.device) for v in values]
        batch = values[0].shape[0] if values and values[0].ndim else None
        expected = [tuple(s.shape) for s in self._zero_states(batch or 1, like)]
        if len(values) != len(expected):
            raise ValueError(
                f"Layer {self.name} expects {len(expected)} states, but it received {len(values)} state "
                f"values. States received: {states}"
            )
        for i, (value, shape) in enumerate(zip(values, expected)):
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"State {i} is incompatible with layer {self.name}: expected shape={shape} but found "
                    f"shape={tuple(value.shape)}"
                )
        if self._state_keys and batch != self._expected_batch_size:
            raise ValueError(
                f"Layer {self.name} is stateful with batch size {self._expected_batch_size}: its states must "
                f"have that batch size. Received: states with batch size {batch}"
            )
        with torch.inference_mode(False), torch.no_grad():
            if not self._state_keys:
                for i, value in enumerate(values):
                    key = f"_rnn_state_{i}"
                    self.register_buffer(key, value.to(like.dtype).clone(), persistent=False)
                    self._state_keys.append(key)
                self._expected_batch_size = batch
            else:
                for key, value in zip(self._state_keys, values):
                    self._buffers[key] = value.to(self._buffers[key].dtype).clone()

    # --------------------------------------------------------------- call
    def call(self, sequences, initial_state=None, mask=None, training=False):
        if sequences.ndim < 3:
            raise ValueError(
                f"Layer '{self.name}' expects inputs of rank >= 3 (batch, timesteps, features). "
                f"Received: inputs.shape={tuple(sequences.shape)}"
            )
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if mask is not None:
            if not isinstance(mask, torch.Tensor):  # Keras converts array masks
                mask = torch.as_tensor(mask, device=sequences.device)
            if mask.shape != sequences.shape[:2]:
                raise ValueError(
                    f"Layer '{self.name}': the mask must have shape (batch_size, timesteps) = "
                    f"{tuple(sequences.shape[:2])}. Received: mask.shape={tuple(mask.shape)}"
                )
        batch = sequences.shape[0]
        symbolic = ctx.state().symbolic
        if initial_state is not None:
            states = self._check_initial_state(initial_state, batch, sequences)
        elif self.stateful and not symbolic:
            states = self._stateful_states(sequences)
        else:
            states = self._zero_states(batch, sequences)
        if not training and not symbolic:
            # Keras draws (unused) seeded masks in inference too (`_modules`: `self.cell` costs ~3us)
            cell = self._modules["cell"]
            if isinstance(cell, DropoutRNNCell):
                cell.skip_unused_masks(sequences[:, 0], states[0])
            else:
                for c in _dropout_cells(cell):
                    c.skip_unused_masks()
        result = None
        scan_size = self._scan_output_size(sequences, symbolic)
        if scan_size is not None:  # exporting with a dynamic number of time steps
            result = self._loop_call(sequences, states, mask, training, scan_size)
        elif self._fused_mode is not None and self._allow_fused:
            result = self._fused_call(sequences, states, mask, training)
        if result is None:
            self._check_loop_allowed()
            if rnn_loop_op.wanted(self, sequences, self._loop_output_size()):
                result = self._compiled_loop_call(sequences, states, mask, training)
            else:
                result = self._loop_call(sequences, states, mask, training)
        last_output, outputs, new_states = result
        dtype = sequences.dtype
        # a cell with another dtype policy; under the user's torch.autocast the ops chose the
        # dtype (bfloat16 out of the fused LSTM kernel, as nn.LSTM gives): kept
        if outputs.dtype != dtype and not torch_autocast_on(sequences):
            last_output, outputs = last_output.to(dtype), outputs.to(dtype)
            new_states = [s.to(dtype) for s in new_states]
        if self.stateful and not symbolic:
            if not self._state_keys:
                self._stateful_states(sequences)
            keep = _kept_state if torch.is_inference_mode_enabled() else torch.Tensor.detach
            for key, s in zip(self._state_keys, new_states):
                self._buffers[key] = keep(s)
        if self.return_sequences:
            output = outputs
            if (outputs.ndim > 2 and not symbolic and not outputs.transpose(0, 1).is_contiguous()
                    and not torch.compiler.is_compiling()):
                # Keras's layout: its loop stacks the steps time-major and transposes (torch's fused
                # unmasked kernels give that layout already). The values are the same either way, but
                # a following Dropout's `bernoulli_` fills its mask in memory order: without this, the
                # masks after a masked or recurrent-dropout RNN fell on other elements than Keras's
                # after `set_random_seed`
                output = outputs.transpose(0, 1).contiguous().transpose(0, 1)
        else:
            output = last_output
        if self.return_state:
            return (output, *self._pack_states(new_states))
        return output

    def _check_loop_allowed(self):
        """Hook: LSTM/GRU with `use_cudnn=True` refuse the loop path."""

    @property
    def _fused_mode(self):
        """The fused `torch._VF` kernel for the cell, or None; asked on each call, not once in
        `__init__`: a cell's activation set after construction (`layer.cell.activation = relu`)
        must leave the fused tanh/sigmoid kernel, as Keras's call reads it each time."""
        return fused_rnn.fused_mode(self.__dict__["_modules"].get("cell"))

    def _fused_call(self, sequences, states, mask, training):
        cell = self.cell
        if not fused_rnn.can_fuse(cell, training):
            return None
        layout = lengths = host_lengths = None
        if mask is not None:
            if torch.compiler.is_compiling() and not torch.compiler.is_exporting() and not ctx.state().symbolic:
                return self._compiled_masked_call(sequences, states, mask, training)
            if (torch.compiler.is_compiling() or ctx.state().symbolic or sequences.device.type == "meta"
                    or torch.jit.is_tracing()):  # (the fused path reads the lengths on the host: traced, a
                return None                      # constant; the loop's masked steps stay traced tensors)
            mask = mask.to(torch.bool)
            if self.go_backwards:
                mask = mask.flip(1)
            layout, lengths, host_lengths = fused_rnn.mask_layout(mask)
            if layout is None:
                return None
        x = sequences
        if fused_rnn.input_dropout_active(cell, training):
            x = x * cell.get_dropout_mask(x[:, 0])[:, None]
        if self.go_backwards:
            x = x.flip(1)
        states = [s.to(x.dtype) for s in states]
        outputs, new_states = fused_rnn.run_sequence(
            self._fused_mode, cell, x, states, mask, layout, lengths, self.zero_output_for_mask, host_lengths
        )
        return outputs[:, -1], outputs, new_states

    def _compiled_masked_call(self, sequences, states, mask, training):
        """Under `torch.compile`: the masked sequence as one opaque op with
        a symbolic length (`masked_rnn_op`), instead of the time loop, which
        unrolls into a graph per sequence length."""
        cell = self.cell
        x = sequences
        if fused_rnn.input_dropout_active(cell, training):
            x = x * cell.get_dropout_mask(x[:, 0])[:, None]
        mask = mask.to(torch.bool)
        if self.go_backwards:
            x, mask = x.flip(1), mask.flip(1)
        weights = fused_rnn.flat_weights(self._fused_mode, cell, x)
        hx = [s.to(x.dtype).unsqueeze(0).contiguous() for s in states]
        outputs, *final = masked_rnn_op.fused_rnn_masked(
            self._fused_mode, x, mask, hx, weights, len(weights) == 4, torch.is_grad_enabled(), self.zero_output_for_mask
        )
        # (a view: dynamo cannot set `_keras_mask` on a list-returning custom op's own output)
        outputs = outputs.view_as(outputs)
        return outputs[:, -1], outputs, [h[0] for h in final]

    def _loop_output_size(self):
        """The cell's step output size (`output_size`, else the first state size)."""
        size = getattr(self.cell, "output_size", None)
        return self.state_size[0] if size is None else size

    def _compiled_loop_call(self, sequences, states, mask, training):
        """Under `torch.compile`: the time loop as one opaque op with a
        symbolic length (`rnn_loop_op`), instead of the unrolled loop, which
        is a graph per sequence length."""
        cell = self.cell
        if mask is not None:
            mask = mask.to(torch.bool)
        seed = None
        if rnn_loop_op.draws_masks(cell, training):
            seed = torch.randint(0, 2**62, (), dtype=torch.int64)  # a fresh draw per call, in the graph
        weights = [owner._parameters[name] for owner, name in rnn_loop_op.weight_slots(cell)]
        outputs, *final, _ = rnn_loop_op.rnn_time_loop(
            self._loop_op_handle, sequences, mask, states, weights, seed, bool(training)
        )
        outputs = outputs.view_as(outputs)  # (a view: dynamo cannot tag a list-returning op's own output)
        return outputs[:, -1], outputs, final

    def _scan_output_size(self, sequences, symbolic):
        """The step output size when the time loop should be one `scan`
        (see `rnn_scan`), else None."""
        if symbolic or self.stateful or not rnn_scan.wanted(sequences):
            return None
        cell = self.cell
        if isinstance(cell, Layer):
            # the traced step calls `cell.call`, whose (leaf) cells may not
            # write per-call state: their lazily derived "plain" flag, or
            # mixed precision weight casts (those keep the unrolled loop)
            for layer in cell.modules():
                if not isinstance(layer, Layer) or any(isinstance(m, Layer) for m in layer._modules.values()):
                    continue
                if layer.__dict__.get("_plain") is None:
                    layer._derive_plain()
                plan = layer.__dict__.get("_plain")
                if not plan or plan[1] == 2:  # (a `call` taking `mask=`, BatchNormalization: not in a scan)
                    return None
        size = getattr(cell, "output_size", None)
        if size is None:
            size = self.state_size[0]
        return size if isinstance(size, int) else None

    def _loop_call(self, sequences, states, mask, training, scan_size=None):
        cell = self.cell
        kwargs = {"training": training} if self._cell_training else {}
        pack = self._pack_states

        # the scan's traced step skips the Layer call pipeline of the cell
        # (its call-stack bookkeeping is a side effect a scan body may not
        # have; `_scan_output_size` checked there is nothing else to do)
        call = cell.call if scan_size is not None and isinstance(cell, Layer) else cell

        def step(x_t, flat):
            output, new = call(x_t, tuple(pack(flat)), **kwargs)
            return output, tree.flatten(new)

        dropout_cells = _dropout_cells(cell)
        for c in dropout_cells:
            c.__dict__["_cache_masks"] = True
        options = {
            "mask": mask,
            "go_backwards": self.go_backwards,
            "zero_output_for_mask": self.zero_output_for_mask,
            "return_all_outputs": self.return_sequences,
        }
        try:
            if scan_size is not None:
                keep_grad = bool(training) and torch.is_grad_enabled()
                return rnn_scan.rnn_scan(
                    step, sequences, states, scan_size, training=keep_grad, weights_of=cell, **options
                )
            return rnn_loop(step, sequences, states, **options)
        finally:
            for c in dropout_cells:
                c.__dict__["_cache_masks"] = False
                c.reset_dropout_mask()
                c.reset_recurrent_dropout_mask()

    # ------------------------------------------------------------- config
    def get_config(self) -> dict:
        from kerasish.saving import serialize_keras_object

        config = {
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "cell": serialize_keras_object(self.cell),
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        cell = deserialize_layer(config.pop("cell"))
        return cls(cell, **config)


def _is_tensor(x) -> bool:
    return isinstance(x, (torch.Tensor, KerasTensor)) or hasattr(x, "__array__")
