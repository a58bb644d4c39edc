"""keras.io's "Define a Custom TPU/GPU Kernel" guide (guides/define_custom_kernel.py),
ported to torch.

The guide fuses Dense + ReLU in a Pallas kernel (JAX only) and makes it
trainable with `jax.custom_vjp`. A torch user writes the same kernel as a
`torch.library.custom_op` with `register_fake` (for torch.compile) and
`register_autograd` (the hand-written backward), and calls it from a
kerasish layer's `call` on `self.w.value`. Checked here: the fused layer
trains in `fit` (eager and `jit_compile=True`) to the same losses and
weights as the guide's unfused `StandardDenseReLU`, and a model holding it
compiles with `fullgraph=True` (the op stays opaque: no graph break).
"""

import numpy as np
import pytest
import torch

import kerasish as keras


@torch.library.custom_op("kerasish_tests::matmul_relu", mutates_args=())
def matmul_relu(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.relu(x @ w)


@matmul_relu.register_fake
def _(x, w):
    return x.new_empty((*x.shape[:-1], w.shape[-1]))


def _setup_context(ctx, inputs, output):
    x, w = inputs
    ctx.save_for_backward(x, w, output)


def _backward(ctx, grad):
    x, w, y = ctx.saved_tensors
    grad_relu = grad * (y > 0)
    return grad_relu @ w.T, x.T @ grad_relu


matmul_relu.register_autograd(_backward, setup_context=_setup_context)


class StandardDenseReLU(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform", trainable=True)

    def call(self, inputs):
        return keras.ops.relu(keras.ops.matmul(inputs, self.w))


class FusedDenseTrainable(StandardDenseReLU):
    def call(self, inputs):
        return matmul_relu(inputs, self.w.value)


X = np.random.default_rng(0).normal(size=(64, 16)).astype("float32")
Y = np.random.default_rng(1).normal(size=(64, 8)).astype("float32")


def _fit(cls, jit_compile):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), cls(8)])
    model.compile(optimizer="adam", loss="mse", jit_compile=jit_compile)
    initial = model.get_weights()[0]
    history = model.fit(X, Y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    assert np.abs(model.get_weights()[0] - initial).max() > 1e-3  # the kernel trained
    return model, history.history["loss"]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fused_custom_op_layer_trains_like_the_unfused_layer(jit_compile):
    standard, standard_loss = _fit(StandardDenseReLU, jit_compile)
    fused, fused_loss = _fit(FusedDenseTrainable, jit_compile)
    np.testing.assert_allclose(fused_loss, standard_loss, rtol=1e-6)
    np.testing.assert_allclose(fused.get_weights()[0], standard.get_weights()[0], rtol=1e-6, atol=1e-7)
    if not jit_compile:
        torch._dynamo.reset()
        compiled = torch.compile(fused, fullgraph=True)
        x = torch.from_numpy(X)
        torch.testing.assert_close(compiled(x), fused(x))
