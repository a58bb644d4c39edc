"""How many dtype casts a call makes: a mixed-precision layer casts each
weight once per call (not once per read), and under the user's
`torch.autocast` layers leave the dtypes to autocast, as `nn.Linear` does."""

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import kerasish as keras


class CastCounter(TorchDispatchMode):
    """Counts `aten._to_copy` (every `.to(dtype)` that copies)."""

    def __init__(self):
        super().__init__()
        self.casts = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._to_copy.default:
            self.casts.append((args[0].dtype, (kwargs or {}).get("dtype"), tuple(args[0].shape)))
        return func(*args, **(kwargs or {}))


def count_casts(fn):
    with CastCounter() as counter:
        out = fn()
    return counter.casts, out


@pytest.mark.parametrize("steps", [5, 40])
def test_rnn_time_loop_casts_each_weight_once(steps):
    """recurrent_dropout in training forces the step loop: the cell is called
    `steps` times, its three weights are cast once each."""
    x = torch.randn(2, steps, 3)
    layer = keras.layers.LSTM(4, dtype="mixed_bfloat16", recurrent_dropout=0.5)
    layer(x)
    casts, out = count_casts(lambda: layer(x, training=True))
    weights = [w for w in layer.weights if w.dtype == torch.float32]
    weight_casts = [c for c in casts if c[0] == torch.float32 and c[1] == torch.bfloat16 and c[2] != tuple(x.shape)]
    assert len(weights) == 3
    assert sorted(c[2] for c in weight_casts) == sorted(tuple(w.shape) for w in weights)
    assert out.dtype == torch.bfloat16


class ReadsTwice(keras.layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 2), initializer="ones", name="w")

    def call(self, x):
        with torch.no_grad():
            frozen = x @ self.w  # read without gradient first
        return x @ self.w + x @ self.w + frozen


def test_cached_cast_keeps_gradients_and_grad_mode():
    layer = ReadsTwice(dtype="mixed_bfloat16")
    x = torch.tensor([[1.0, 2.0, 3.0]])
    casts, out = count_casts(lambda: layer(x))
    # input once, then the weight once per grad mode (no_grad read, grad read)
    assert [c[2] for c in casts] == [(1, 3), (3, 2), (3, 2)]
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    # d/dw sum(2 * x @ w) = 2 * x^T @ ones(1, 2); the no_grad term adds nothing
    expected = 2 * x.T @ torch.ones(1, 2)
    torch.testing.assert_close(layer.w.grad, expected)
    assert layer.w.dtype == torch.float32  # outside the call the variable reads as stored


def test_weights_read_uncast_after_the_call():
    layer = keras.layers.Dense(3, dtype="mixed_bfloat16")
    layer(torch.ones(2, 4))
    assert layer.kernel.dtype == torch.float32
    assert isinstance(layer.kernel, nn.Parameter)


def _dense_stack_and_linear_twin():
    torch.manual_seed(0)
    layers = [keras.layers.Dense(8, activation="relu"), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(8)]
    model = keras.Sequential([keras.Input((8,)), *layers])
    twin = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    with torch.no_grad():
        for layer, linear in zip(layers, twin[::2]):
            linear.weight.copy_(layer.kernel.T)
            linear.bias.copy_(layer.bias)
    return model, twin


@pytest.mark.parametrize("kind", ["Sequential", "functional"])
def test_torch_autocast_casts_like_nn_linear(kind):
    model, twin = _dense_stack_and_linear_twin()
    if kind == "functional":
        inp = keras.Input((8,))
        h = inp
        for layer in model.layers:
            h = layer(h)
        model = keras.Model(inp, h)
    x = torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours_casts, ours = count_casts(lambda: model(x))
        twin_casts, theirs = count_casts(lambda: twin(x))
    # no cast back to float32 between layers: the same casts as hand-written torch
    assert not [c for c in ours_casts if c[1] == torch.float32]
    assert len(ours_casts) == len(twin_casts)
    assert ours.dtype == theirs.dtype == torch.bfloat16
    # same bfloat16 ops on the same weights; bf16 rounding of the kernel layout may differ
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=2e-2, atol=2e-2)


def test_without_autocast_float32_layers_still_cast_inputs():
    """Outside autocast a float32 layer casts a bfloat16 input (Keras's input autocast)."""
    layer = keras.layers.Dense(2)
    out = layer(torch.ones(1, 3, dtype=torch.bfloat16))
    assert out.dtype == torch.float32


@pytest.mark.parametrize(
    ("make", "n_losses"),
    [
        (lambda: keras.layers.Dense(4, dtype="mixed_bfloat16"), 0),
        (lambda: keras.layers.Dense(4, activity_regularizer="l2"), 1),
        (
            lambda: keras.Sequential(
                [keras.Input((8,)), keras.layers.Dense(4, dtype="mixed_bfloat16", activity_regularizer="l2"),
                 keras.layers.Dense(2)]
            ),
            1,
        ),
    ],
    ids=["mixed", "activity_regularizer", "nested"],
)
def test_per_thread_state_compiles_without_breaks_or_recompiles(make, n_losses):
    """Reading the thread-local call state, the per-call weight cast and the
    loss bookkeeping trace with fullgraph=True and settle after warm-up."""
    torch._dynamo.reset()
    layer = make()
    x = torch.randn(4, 8)
    expected = layer(x)
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    compiled(x)
    compiled(x)  # second call: losses from the first are now held
    with torch._dynamo.config.patch(error_on_recompile=True):
        out = compiled(x)
        out = compiled(x)
    torch.testing.assert_close(out, expected)
    assert len(layer.losses) == n_losses  # the latest compiled call's, not an accumulation


def test_a_parent_reading_a_sublayers_weight_gets_the_compute_dtype_as_keras(keras_ref):
    """Keras's autocast scope is the call's, whoever owns the variable: a mixed_float16 parent that
    reads its mixed sublayer's weight (Deep Learning with Python's tied-embedding GPT,
    `ops.matmul(x, ops.transpose(self.token_embeddings.embeddings))`) computes in float16. kerasish
    cast only a layer's own weights: that matmul promoted to float32 and the model's logits were
    float32 where Keras's are float16."""

    def run(k):
        class TiedEmbedding(k.Layer):
            def __init__(self):
                super().__init__()
                self.token_embeddings = k.layers.Embedding(10, 4)

            def call(self, inputs, reverse=False):
                if reverse:
                    return k.ops.matmul(inputs, k.ops.transpose(self.token_embeddings.embeddings))
                return self.token_embeddings(inputs)

        k.config.set_dtype_policy("mixed_float16")
        try:
            k.utils.set_random_seed(1)
            layer = TiedEmbedding()
            ids = torch.tensor([[1, 2, 3]])
            logits = layer(layer(ids), reverse=True)
        finally:
            k.config.set_dtype_policy("float32")
        embeddings = layer.token_embeddings.embeddings
        return logits, embeddings.dtype

    (theirs, their_dtype), (ours, our_dtype) = run(keras_ref), run(keras)
    assert ours.dtype == theirs.dtype == torch.float16
    assert str(our_dtype).endswith("float32") and str(their_dtype).endswith("float32")  # stored in float32
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3)
