"""Recurrent layers: harness checks, Keras parity (outputs, states, masks,
stateful, Bidirectional, GRU reset_after), fused-path checks, configs and
argument errors."""

import json
import re

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.layers.rnn import fused_rnn
from tests.layer_harness import run_layer_test
from tests.parity import assert_close
from tests.parity import to_numpy

RIGHT = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
LEFT = RIGHT.flip(1)
HOLES = torch.tensor([[1, 0, 1, 1, 0, 1], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _norm(name: str) -> str:
    """Drops the uniquifying `_<n>` suffixes of auto names."""
    return re.sub(r"_\d+", "", name)


def _pair(keras_ref, name, kwargs, x, ours_kwargs=None, **call_kwargs):
    """Builds `name` in Keras and kerasish, copies Keras's weights, returns
    (ours, theirs)."""
    theirs = getattr(keras_ref.layers, name)(**kwargs)
    ours = getattr(keras.layers, name)(**{**kwargs, **(ours_kwargs or {})})
    theirs(to_numpy(x), **call_kwargs)
    ours(x, **call_kwargs)
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in ours.get_weights()]
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def _parity(keras_ref, name, kwargs, x, ours_kwargs=None, **call_kwargs):
    ours, theirs = _pair(keras_ref, name, kwargs, x, ours_kwargs, **call_kwargs)
    if getattr(theirs, "stateful", False):
        theirs.reset_state()
        ours.reset_state()
    before = fused_rnn.FUSED_CALLS[0]
    out = ours(x, **call_kwargs)
    fused = fused_rnn.FUSED_CALLS[0] - before
    assert_close(out, theirs(to_numpy(x), **call_kwargs))
    return ours, theirs, fused


# ---------------------------------------------------------------- harness
@pytest.mark.parametrize(
    "cls, kwargs, shape, out_shape",
    [
        ("SimpleRNN", {"units": 3}, (2, 5, 4), (2, 3)),
        ("LSTM", {"units": 3, "return_sequences": True}, (2, 5, 4), (2, 5, 3)),
        ("LSTM", {"units": 3, "go_backwards": True, "use_bias": False}, (2, 5, 4), (2, 3)),
        ("GRU", {"units": 3}, (2, 5, 4), (2, 3)),
        ("GRU", {"units": 3, "reset_after": False, "return_sequences": True}, (2, 4, 4), (2, 4, 3)),
        ("ConvLSTM2D", {"filters": 2, "kernel_size": 3, "padding": "same"}, (2, 3, 5, 5, 2), (2, 5, 5, 2)),
        ("ConvLSTM1D", {"filters": 2, "kernel_size": 2, "return_sequences": True}, (2, 3, 6, 2), (2, 3, 5, 2)),
    ],
)
def test_harness(cls, kwargs, shape, out_shape):
    n_weights = 2 if kwargs.get("use_bias") is False else 3
    run_layer_test(
        getattr(keras.layers, cls), kwargs, input_shape=shape, expected_output_shape=out_shape,
        expected_num_trainable_weights=n_weights, expected_num_non_trainable_weights=0,
    )


def test_harness_wrappers():
    layers = keras.layers

    def stacked(dtype=None):
        return layers.RNN([layers.LSTMCell(3, dtype=dtype), layers.GRUCell(2, dtype=dtype)], dtype=dtype)

    def bidirectional(dtype=None):
        return layers.Bidirectional(layers.LSTM(3, return_sequences=True, dtype=dtype), dtype=dtype)

    def time_distributed(dtype=None):
        return layers.TimeDistributed(layers.GRU(3, dtype=dtype), dtype=dtype)

    for make, shape, out, n in (
        (stacked, (2, 4, 3), (2, 2), 6),
        (bidirectional, (2, 4, 3), (2, 4, 6), 6),
        (time_distributed, (2, 3, 4, 5), (2, 3, 3), 3),
    ):
        run_layer_test(make, {}, input_shape=shape, expected_output_shape=out, expected_num_trainable_weights=n,
                       check_config=False)


# ----------------------------------------------------------------- parity
@pytest.mark.parametrize("name, extra", [("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False}), ("SimpleRNN", {})])
@pytest.mark.parametrize("return_sequences, go_backwards", [(False, False), (True, False), (True, True)])
def test_parity_outputs_and_states(keras_ref, name, extra, return_sequences, go_backwards):
    kwargs = dict(units=4, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards, **extra)
    _, _, fused = _parity(keras_ref, name, kwargs, _x(3, 6, 5))
    assert bool(fused) == extra.get("reset_after", True)


@pytest.mark.parametrize("name, extra", [("LSTM", {}), ("GRU", {}), ("SimpleRNN", {}), ("GRU", {"reset_after": False})])
@pytest.mark.parametrize("mask_name", ["right", "left", "holes"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_parity_masks(keras_ref, name, extra, mask_name, go_backwards):
    mask = {"right": RIGHT, "left": LEFT, "holes": HOLES}[mask_name]
    x = _x(3, 6, 5)
    for return_sequences in (False, True):
        kwargs = dict(units=4, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards, **extra)
        _, _, fused = _parity(keras_ref, name, kwargs, x, mask=mask)
        # right/left padding is computed by the fused kernel, holes by the loop
        assert bool(fused) == (mask_name != "holes" and extra.get("reset_after", True))


def test_parity_zero_output_for_mask(keras_ref):
    x = _x(3, 6, 5)
    for mask in (RIGHT, LEFT, HOLES):
        theirs = keras_ref.layers.RNN(keras_ref.layers.LSTMCell(4), return_sequences=True, zero_output_for_mask=True)
        ours = keras.layers.RNN(keras.layers.LSTMCell(4), return_sequences=True, zero_output_for_mask=True)
        want = theirs(to_numpy(x), mask=mask)
        ours(x)
        ours.set_weights(theirs.get_weights())
        assert_close(ours(x, mask=mask), want)


@pytest.mark.parametrize("name, n_states", [("LSTM", 2), ("GRU", 1), ("SimpleRNN", 1)])
def test_parity_initial_state(keras_ref, name, n_states):
    x = _x(2, 5, 3)
    states = [_x(2, 4, seed=i + 1) for i in range(n_states)]
    ours, theirs = _pair(keras_ref, name, {"units": 4, "return_state": True}, x)
    want = theirs(to_numpy(x), initial_state=[to_numpy(s) for s in states])
    assert_close(ours(x, initial_state=states), want)


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
def test_parity_stateful_two_calls(keras_ref, name):
    x1, x2 = _x(2, 4, 3), _x(2, 4, 3, seed=1)
    ours, theirs = _pair(keras_ref, name, {"units": 4, "stateful": True, "return_state": True}, x1)
    theirs.reset_state()
    ours.reset_states()
    for x in (x1, x2):
        assert_close(ours(x), theirs(to_numpy(x)))
    assert_close(ours.states, [to_numpy(v) for v in theirs.states])
    assert list(ours.state_dict()) == list(theirs_keys(name))
    ours.reset_state()
    theirs.reset_state()
    assert_close(ours(x2), theirs(to_numpy(x2)))
    with pytest.raises(ValueError, match="batch size"):
        ours(_x(3, 4, 3))


def theirs_keys(name):
    return ["cell.kernel", "cell.recurrent_kernel", "cell.bias"]


def test_parity_rnn_with_cells_and_stacked(keras_ref):
    x = _x(2, 5, 3)
    for make in (
        lambda L: L.RNN(L.SimpleRNNCell(4, activation="relu"), return_sequences=True),
        lambda L: L.RNN([L.LSTMCell(4), L.GRUCell(3)], return_state=True),
        lambda L: L.RNN(L.StackedRNNCells([L.GRUCell(3, reset_after=False), L.SimpleRNNCell(2)]), go_backwards=True),
    ):
        theirs, ours = make(keras_ref.layers), make(keras.layers)
        want = theirs(to_numpy(x), mask=HOLES[:2, :5])
        ours(x)
        ours.set_weights(theirs.get_weights())
        assert_close(ours(x, mask=HOLES[:2, :5]), want)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_parity_bidirectional(keras_ref, merge_mode):
    x = _x(3, 6, 5)
    for inner, mask in ((("LSTM", {"return_sequences": True}), None), (("GRU", {"return_state": True}), RIGHT)):
        name, kw = inner
        theirs = keras_ref.layers.Bidirectional(getattr(keras_ref.layers, name)(4, **kw), merge_mode=merge_mode)
        ours = keras.layers.Bidirectional(getattr(keras.layers, name)(4, **kw), merge_mode=merge_mode)
        call = {} if mask is None else {"mask": mask}
        want = theirs(to_numpy(x), **call)
        ours(x, **call)
        assert [_norm(w.path) for w in ours.weights] == [_norm(w.path) for w in theirs.weights]
        ours.set_weights(theirs.get_weights())
        assert_close(ours(x, **call), want)


def test_parity_bidirectional_initial_state_and_masked_sequences(keras_ref):
    x = _x(3, 6, 5)
    states = [_x(3, 4, seed=i) for i in range(4)]
    theirs = keras_ref.layers.Bidirectional(keras_ref.layers.LSTM(4, return_sequences=True, return_state=True))
    ours = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True, return_state=True))
    want = theirs(to_numpy(x), initial_state=[to_numpy(s) for s in states])
    ours(x)
    ours.set_weights(theirs.get_weights())
    assert_close(ours(x, initial_state=states), want)
    assert_close(ours(x, mask=LEFT), theirs(to_numpy(x), mask=LEFT))


@pytest.mark.parametrize(
    "name, kwargs, shape",
    [
        ("ConvLSTM2D", {"filters": 3, "kernel_size": 3, "padding": "same", "return_sequences": True}, (2, 3, 5, 5, 2)),
        ("ConvLSTM2D", {"filters": 2, "kernel_size": (2, 3), "strides": 2, "padding": "same", "return_state": True}, (2, 3, 6, 7, 2)),
        ("ConvLSTM2D", {"filters": 2, "kernel_size": 2, "dilation_rate": 2, "data_format": "channels_first"}, (2, 3, 2, 6, 6)),
        ("ConvLSTM1D", {"filters": 2, "kernel_size": 3, "go_backwards": True, "padding": "same"}, (2, 4, 7, 3)),
        ("ConvLSTM3D", {"filters": 2, "kernel_size": 2, "return_sequences": True}, (1, 2, 4, 4, 3, 2)),
    ],
)
def test_parity_conv_lstm(keras_ref, name, kwargs, shape):
    _parity(keras_ref, name, kwargs, _x(*shape))


def test_parity_conv_lstm_mask(keras_ref):
    _parity(keras_ref, "ConvLSTM2D", {"filters": 2, "kernel_size": 3, "padding": "same"}, _x(3, 6, 4, 4, 2), mask=HOLES)


def test_parity_time_distributed(keras_ref):
    x = _x(2, 3, 4, 5)
    theirs = keras_ref.layers.TimeDistributed(keras_ref.layers.LSTM(3, return_sequences=True))
    ours = keras.layers.TimeDistributed(keras.layers.LSTM(3, return_sequences=True))
    want = theirs(to_numpy(x))
    ours(x)
    ours.set_weights(theirs.get_weights())
    assert_close(ours(x), want)
    assert ours.compute_output_shape((None, 3, 4, 5)) == (None, 3, 4, 3)


def test_parity_time_distributed_dense_with_mask(keras_ref):
    x = _x(2, 4, 5)
    theirs = keras_ref.layers.TimeDistributed(keras_ref.layers.Dense(3))
    ours = keras.layers.TimeDistributed(keras.layers.Dense(3))
    want = theirs(to_numpy(x))
    ours(x)
    ours.set_weights(theirs.get_weights())
    assert_close(ours(x), want)


# ------------------------------------------------------------ fused path
def test_fused_path_equals_loop_path(keras_ref):
    x = _x(3, 6, 5)
    for name, kw in (("LSTM", {}), ("GRU", {}), ("SimpleRNN", {}), ("SimpleRNN", {"activation": "relu"})):
        for mask in (None, RIGHT, LEFT):
            for gb in (False, True):
                kwargs = dict(units=4, return_sequences=True, return_state=True, go_backwards=gb, **kw)
                fast = getattr(keras.layers, name)(**kwargs)
                slow = getattr(keras.layers, name)(**kwargs, use_cudnn=False) if name != "SimpleRNN" else None
                if slow is None:
                    slow = keras.layers.RNN(keras.layers.SimpleRNNCell(4, **kw), return_sequences=True,
                                            return_state=True, go_backwards=gb)
                    slow._allow_fused = False
                fast(x)
                slow(x)
                slow.set_weights(fast.get_weights())
                before = fused_rnn.FUSED_CALLS[0]
                a = fast(x, mask=mask)
                assert fused_rnn.FUSED_CALLS[0] == before + 1
                b = slow(x, mask=mask)
                assert fused_rnn.FUSED_CALLS[0] == before + 1
                assert_close(a, b)
                ref = getattr(keras_ref.layers, name)(**kwargs)  # and both equal real Keras 3's layer
                ref(to_numpy(x))
                ref.set_weights(fast.get_weights())
                theirs = ref(to_numpy(x), mask=None if mask is None else to_numpy(mask))
                for ours, want in zip(a, theirs):
                    assert_close(ours, want)


def test_fused_path_calls_torch_vf(monkeypatch):
    calls = []
    real = torch._VF.lstm

    def spy(*args):
        calls.append(len(args))
        return real(*args)

    monkeypatch.setattr(torch._VF, "lstm", spy)
    layer = keras.layers.LSTM(4)
    layer(_x(2, 5, 3))
    layer(_x(2, 5, 3), mask=RIGHT[:2, :5])
    assert calls == [9, 9]  # dense and packed signatures


def test_fused_gradients_reach_keras_weights():
    x = _x(2, 5, 3)
    for layer in (keras.layers.LSTM(4), keras.layers.GRU(4)):
        layer(x)
        loop = type(layer)(4, use_cudnn=False)
        loop(x)
        loop.set_weights(layer.get_weights())
        layer(x, mask=RIGHT[:2, :5]).sum().backward()
        loop(x, mask=RIGHT[:2, :5]).sum().backward()
        for a, b in zip(layer.weights, loop.weights):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_compile_fullgraph(name):
    layer = getattr(keras.layers, name)(4, return_sequences=True, return_state=True)
    x = _x(2, 5, 3)
    layer(x)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(layer)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    assert_close(compiled(x), layer(x))
    assert_close(compiled(x, mask=HOLES[:2, :5]), layer(x, mask=HOLES[:2, :5]))


# --------------------------------------------------------------- dropout
def test_dropout_one_mask_per_sequence_and_seed():
    x = torch.ones(2, 5, 3)
    layer = keras.layers.SimpleRNN(4, dropout=0.5, seed=3, activation="linear", use_bias=False)
    layer(x)
    with torch.no_grad():
        layer.cell.recurrent_kernel.zero_()
    out = layer(x, training=True)
    seq = keras.layers.SimpleRNN(4, dropout=0.5, seed=3, activation="linear", use_bias=False, return_sequences=True)
    seq(x)
    seq.set_weights(layer.get_weights())
    steps = seq(x, training=True)
    assert torch.equal(steps[:, 0], steps[:, -1])  # the same mask at every time step
    assert_close(layer(x, training=False), x[:, 0] @ layer.cell.kernel.detach())
    assert not torch.allclose(out, layer(x, training=False))


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
def test_recurrent_dropout_training_runs_loop(name):
    layer = getattr(keras.layers, name)(4, dropout=0.2, recurrent_dropout=0.3, return_sequences=True)
    x = _x(2, 5, 3)
    before = fused_rnn.FUSED_CALLS[0]
    out = layer(x, training=True)
    assert fused_rnn.FUSED_CALLS[0] == before
    out.sum().backward()
    assert all(w.grad is not None for w in layer.trainable_weights)
    layer(x)  # inference: fused again
    assert fused_rnn.FUSED_CALLS[0] == before + 1


# ---------------------------------------------------------------- config
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("SimpleRNN", {"units": 3, "dropout": 0.1}),
        ("LSTM", {"units": 3, "return_sequences": True, "unit_forget_bias": False, "seed": 2}),
        ("GRU", {"units": 3, "reset_after": False, "kernel_regularizer": "l2"}),
        ("SimpleRNNCell", {"units": 3}),
        ("LSTMCell", {"units": 3, "recurrent_dropout": 0.2}),
        ("GRUCell", {"units": 3}),
        ("ConvLSTM2D", {"filters": 2, "kernel_size": 3, "strides": (1, 2)}),
    ],
)
def test_config_matches_keras(keras_ref, name, kwargs):
    theirs = getattr(keras_ref.layers, name)(**kwargs).get_config()
    ours_layer = getattr(keras.layers, name)(**kwargs)
    ours = ours_layer.get_config()
    ours["name"] = theirs["name"]
    assert ours == theirs
    assert type(ours_layer).from_config(ours).get_config() == ours


def test_wrapper_configs_match_keras(keras_ref):
    for make in (
        lambda L: L.Bidirectional(L.LSTM(3, name="lstm"), merge_mode="sum"),
        lambda L: L.TimeDistributed(L.GRU(3, name="gru")),
        lambda L: L.RNN([L.LSTMCell(3, name="a"), L.GRUCell(2, name="b")], stateful=True, name="rnn"),
    ):
        theirs, ours_layer = make(keras_ref.layers), make(keras.layers)
        theirs_cfg, ours = theirs.get_config(), ours_layer.get_config()
        assert _norm(json.dumps(ours, sort_keys=True)) == _norm(json.dumps(theirs_cfg, sort_keys=True))
        clone = type(ours_layer).from_config(ours_layer.get_config())
        assert clone.get_config() == ours_layer.get_config()


# ----------------------------------------------------------- bad args
def test_bad_arguments():
    for cls in (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN, keras.layers.LSTMCell, keras.layers.GRUCell):
        with pytest.raises(ValueError, match="units"):
            cls(0)
    with pytest.raises(ValueError, match="filters"):
        keras.layers.ConvLSTM2D(0, 3)
    with pytest.raises(ValueError, match="use_cudnn"):
        keras.layers.LSTM(3, use_cudnn="yes")
    with pytest.raises(ValueError, match="expected ndim=3|ndim"):
        keras.layers.LSTM(3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="rank"):
        keras.layers.RNN(keras.layers.GRUCell(3))(torch.randn(2, 3))
    with pytest.raises(ValueError, match="initial_state"):
        keras.layers.LSTM(3)(torch.randn(2, 4, 3), initial_state=[torch.zeros(2, 3)])
    with pytest.raises(ValueError, match="initial_state"):
        keras.layers.GRU(3)(torch.randn(2, 4, 3), initial_state=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="Merge mode"):
        keras.layers.Bidirectional(keras.layers.LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match="Layer"):
        keras.layers.Bidirectional("lstm")
    with pytest.raises(ValueError, match="go_backwards"):
        keras.layers.Bidirectional(keras.layers.LSTM(3), backward_layer=keras.layers.LSTM(3))
    with pytest.raises(ValueError, match="Layer"):
        keras.layers.TimeDistributed(3)
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        keras.layers.TimeDistributed(keras.layers.LSTM(3)).build((2, 3))
    with pytest.raises(ValueError, match="state_size"):
        keras.layers.RNN(keras.layers.Layer())
    with pytest.raises(ValueError, match="use_cudnn=True"):
        keras.layers.GRU(3, reset_after=False, use_cudnn=True)(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match="strides"):
        keras.layers.ConvLSTM2D(2, 3, strides=2, dilation_rate=2)


def test_masking_propagates_and_compute_output_shape(keras_ref):
    seen = {}
    for K in (keras_ref, keras):  # the same calls in real Keras 3
        x = _x(3, 6, 5)
        x._keras_mask = RIGHT
        seq = K.layers.LSTM(4, return_sequences=True)(x)
        last = K.layers.GRU(4)(x)
        layer = K.layers.LSTM(4, return_sequences=True, return_state=True)
        shapes = layer.compute_output_shape((None, 6, 5))
        seen[K] = (
            to_numpy(seq._keras_mask).tolist(),
            getattr(last, "_keras_mask", None) is None,
            tuple(tuple(s) for s in shapes),
        )
    assert seen[keras] == seen[keras_ref]
    assert seen[keras] == (RIGHT.tolist(), True, ((None, 6, 4), (None, 4), (None, 4)))


def test_custom_cell_loop_path():
    class MinimalRNNCell(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel")

        def call(self, inputs, states):
            output = inputs @ self.kernel + states[0] @ self.recurrent_kernel
            return output, [output]

    layer = keras.layers.RNN(MinimalRNNCell(3), return_sequences=True, return_state=True)
    x = _x(2, 4, 5)
    seq, state = layer(x)
    h = torch.zeros(2, 3)
    for t in range(4):
        h = x[:, t] @ layer.cell.kernel + h @ layer.cell.recurrent_kernel
        assert_close(seq[:, t], h)
    assert_close(state, h)
    assert list(layer.state_dict()) == ["cell.kernel", "cell.recurrent_kernel"]


def test_inference_follows_an_assigned_weight():
    """No-grad calls re-lay the weights each call (no cache to go stale; every
    other kind of weight change: test_rnn_weight_changes.py)."""
    import torch

    import kerasish as keras

    layer = keras.layers.LSTM(4)
    x = torch.randn(2, 3, 5)
    with torch.no_grad():
        first = layer(x)
        torch.testing.assert_close(layer(x), first)
        layer.cell.kernel.assign(layer.cell.kernel * 2)
        changed = layer(x)
    assert "_flat_weight_cache" not in layer.cell.__dict__
    assert not torch.allclose(changed, first)
    torch.testing.assert_close(changed, layer(x).detach())  # grad-enabled path agrees


@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv_lstm_symbolic_call_takes_shapes_not_cell_steps(return_state, return_sequences, data_format):
    """A ConvLSTM called on a KerasTensor gets its outputs from
    `compute_output_shape`, as Keras does, without running its cell: the
    meta-device probe stepped through 83 + 89 time steps where the time axis
    is unknown (~0.4 s per layer; a 3-layer keras.io ConvLSTM model took 2.3 s
    to build). The specs equal those of that probe (Keras's own shapes: the
    parity tests above)."""
    from kerasish.layers import shape_inference

    shape = (None, 9, 7, 3) if data_format == "channels_last" else (None, 3, 9, 7)
    layer = keras.layers.ConvLSTM2D(4, 3, strides=2, data_format=data_format, return_state=return_state,
                                    return_sequences=return_sequences)
    x = keras.Input(shape)
    layer.build((None, *shape))
    probed = shape_inference.compute_output_spec(layer, x)
    steps = []
    layer.cell.register_forward_pre_hook(lambda module, args: steps.append(1))
    y = layer(x)
    assert steps == []
    assert type(y) is type(probed)
    for a, b in zip(y if return_state else [y], probed if return_state else [probed]):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)
    # a mixed-precision ConvLSTM1D: its outputs are in its compute dtype
    y = keras.layers.ConvLSTM1D(2, 3, dtype="mixed_float16")(keras.Input((None, 6, 3)))
    assert (y.shape, y.dtype) == ((None, 4, 2), "float16")


def test_reset_states_with_values_as_keras2():
    """Keras 2's `layer.reset_states(states=...)` sets a stateful layer's states (before or after its
    first call); the next call starts from them. NumPy reference: one SimpleRNN step
    tanh(x W + h0 U + b). Wrong counts, shapes or batch sizes and non-stateful layers are refused."""
    from kerasish import layers

    rng = np.random.RandomState(0)
    x = rng.randn(2, 1, 3).astype("float32")
    h0 = rng.randn(2, 4).astype("float32")
    for call_first in (False, True):
        rnn = layers.SimpleRNN(4, stateful=True)
        rnn.build((2, 1, 3))
        if call_first:
            rnn(x)
        rnn.reset_states(states=h0)
        kernel, recurrent, bias = rnn.get_weights()
        want = np.tanh(x[:, 0] @ kernel + h0 @ recurrent + bias)
        np.testing.assert_allclose(to_numpy(rnn(x)), want, rtol=1e-5, atol=1e-6)
        states = rnn.states
        np.testing.assert_allclose(to_numpy(states[0] if isinstance(states, (list, tuple)) else states), want,
                                   rtol=1e-5, atol=1e-6)
    lstm = layers.LSTM(4, stateful=True)
    lstm(x)
    with pytest.raises(ValueError, match="expects 2 states, but it received 1"):
        lstm.reset_states(states=[h0])
    with pytest.raises(ValueError, match=r"State 1 is incompatible .* expected shape=\(2, 4\) but found shape=\(2, 3\)"):
        lstm.reset_states(states=[h0, h0[:, :3]])
    with pytest.raises(ValueError, match="batch size 2"):
        lstm.reset_states(states=[np.zeros((3, 4), "float32")] * 2)
    with pytest.raises(AttributeError, match="Layer must be stateful"):
        layers.GRU(4).reset_states(states=[h0])


def test_bidirectional_reset_states_with_values_as_keras2():
    """Keras 2's `Bidirectional.reset_states(states)`: the forward layer's values, then the backward's."""
    from kerasish import layers

    bi = layers.Bidirectional(layers.GRU(2, stateful=True, return_sequences=True))
    bi(np.ones((1, 2, 3), "float32"))
    fwd, bwd = np.full((1, 2), 0.5, "float32"), np.full((1, 2), -0.25, "float32")
    bi.reset_states([fwd, bwd])
    np.testing.assert_array_equal(to_numpy(bi.forward_layer.states[0]), fwd)
    np.testing.assert_array_equal(to_numpy(bi.backward_layer.states[0]), bwd)
    with pytest.raises(ValueError, match="Expected `states` to be list or tuple"):
        bi.reset_states(fwd)
