"""A user's Keras-3-style optimizer that makes its slots in its own `build`
(`add_optimizer_variables` / `add_variable_from_reference`): after the model
moves to float64 (`model.double()`) or float16 (`.half()`) with the optimizer
already built, the slots take the weights' dtype, as the slots Keras makes for
weights of that dtype (checked against real Keras 3 with a float64 model from
the start). The updates then equal a float64 torch reference of the same
maths to the bit (float32 slots left them ~1e-8 off). Keras itself trains
that float64 model ~5e-8 away from the float64 reference: it is compared only
loosely on the weights.)"""

import copy

import numpy as np
import pytest
import torch

import kerasish


def _momentum_sgd(k):
    class MomentumSGD(k.optimizers.Optimizer):
        def __init__(self, learning_rate=0.0625, momentum=0.875, **kwargs):
            super().__init__(learning_rate=learning_rate, **kwargs)
            self.momentum = momentum

        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            self.momentums = self.add_optimizer_variables(variables, "momentum")
            self.steps_seen = self.add_variable((), initializer="zeros", name="steps_seen")  # own dtype

        def update_step(self, gradient, variable, learning_rate):
            m = self.momentums[self._get_variable_index(variable)]
            self.assign(m, self.momentum * m - learning_rate * gradient)
            self.assign_add(variable, m)

    return MomentumSGD()


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((24, 5)), rng.standard_normal((24, 2))


def _model(k, dtype, input_dtype=None):
    inputs = k.Input((5,), dtype=input_dtype or dtype)
    x = k.layers.Dense(7, activation="tanh", dtype=dtype, name="hidden")(inputs)  # (named: paths equal in any order)
    return k.Model(inputs, k.layers.Dense(2, dtype=dtype, name="out")(x))


@pytest.fixture
def floatx_float64(keras_ref):
    """floatx float64 on both sides for the fit: Keras's data adapter casts float64 arrays to floatx."""
    for k in (kerasish, keras_ref):
        k.config.set_floatx("float64")
    try:
        yield
    finally:
        for k in (kerasish, keras_ref):
            k.config.set_floatx("float32")


def _float64_reference(weights, x, y, epochs, batch_size, lr=0.0625, momentum=0.875):
    """The same model and momentum update in float64 torch, by hand."""
    w = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in weights]
    slots = [torch.zeros_like(a) for a in w]
    x, y = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    for _ in range(epochs):
        for i in range(0, len(x), batch_size):
            out = torch.tanh(x[i:i + batch_size] @ w[0] + w[1]) @ w[2] + w[3]
            grads = torch.autograd.grad(((out - y[i:i + batch_size]) ** 2).mean(), w)
            with torch.no_grad():
                for a, m, g in zip(w, slots, grads):
                    m.copy_(momentum * m - lr * g)
                    a.add_(m)
    return [a.detach().numpy() for a in w], [m.numpy() for m in slots]


def test_slots_made_in_build_follow_double(keras_ref, floatx_float64):
    x, y = _data()
    # (a float64 Input: `.double()` leaves a functional model's Input dtype, and its cast, as they were)
    ours = _model(kerasish, "float32", input_dtype="float64")
    ours.compile(optimizer=_momentum_sgd(kerasish), loss="mse")
    ours.optimizer.build(ours.trainable_variables)  # slots made for float32 weights
    assert [m.dtype for m in ours.optimizer.momentums] == [torch.float32] * 4
    start = ours.get_weights()
    theirs = _model(keras_ref, "float64")
    theirs.set_weights(start)
    theirs.compile(optimizer=_momentum_sgd(keras_ref), loss="mse")

    ours.double()
    ours.fit(x, y, batch_size=6, epochs=3, shuffle=False, verbose=0)
    theirs.fit(x, y, batch_size=6, epochs=3, shuffle=False, verbose=0)

    assert [m.dtype for m in ours.optimizer.momentums] == [torch.float64] * 4
    # (paths without the optimizer's name, which is numbered per process)
    theirs_dtypes = {v.path.split("/", 1)[-1]: str(v.dtype) for v in theirs.optimizer.variables}
    ours_dtypes = {v.path.split("/", 1)[-1]: str(v.dtype).replace("torch.", "") for v in ours.optimizer.variables}
    assert {p: d for p, d in ours_dtypes.items() if p.endswith("_momentum")} == {
        p: d for p, d in theirs_dtypes.items() if p.endswith("_momentum")}
    assert set(theirs_dtypes.values()) >= {"float64"}
    weights, slots = _float64_reference(start, x, y, epochs=3, batch_size=6)
    for a, b in zip(ours.get_weights(), weights):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    for a, b in zip(ours.optimizer.momentums, slots):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-12, atol=1e-15)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_slots_made_with_add_variable_keep_their_dtype():
    model = _model(kerasish, "float32")
    model.compile(optimizer=_momentum_sgd(kerasish), loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.double()
    _ = model.optimizer.variables
    assert model.optimizer.steps_seen.dtype == torch.float32  # not shaped by a weight: as Keras makes it


def test_slots_follow_half_and_back_and_keep_their_identity():
    x, y = _data()
    model = _model(kerasish, "float32")
    model.compile(optimizer=_momentum_sgd(kerasish), loss="mse")
    model.fit(x.astype("float32"), y.astype("float32"), batch_size=6, epochs=1, verbose=0)
    slots = list(model.optimizer.momentums)
    before = [s.detach().clone() for s in slots]
    model.half()
    _ = model.optimizer.variables  # a read converts them, as for the built-in optimizers' slots
    assert [s.dtype for s in model.optimizer.momentums] == [torch.float16] * 4
    assert all(a is b for a, b in zip(model.optimizer.momentums, slots))  # the subclass's list still holds them
    for s, b in zip(slots, before):
        np.testing.assert_allclose(s.float().numpy(), b.numpy(), rtol=1e-3, atol=1e-4)
    model.float()
    model.fit(x.astype("float32"), y.astype("float32"), batch_size=6, epochs=1, verbose=0)
    assert [s.dtype for s in model.optimizer.momentums] == [torch.float32] * 4
    clone = copy.deepcopy(model.optimizer)  # the slot bookkeeping copies with the optimizer
    assert [s.dtype for s in clone.momentums] == [torch.float32] * 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_slots_follow_the_model_to_cuda():
    x, y = _data()
    model = _model(kerasish, "float32")
    model.compile(optimizer=_momentum_sgd(kerasish), loss="mse")
    model.fit(x.astype("float32"), y.astype("float32"), batch_size=6, epochs=1, verbose=0)
    model.to("cuda")
    model.fit(x.astype("float32"), y.astype("float32"), batch_size=6, epochs=1, verbose=0)
    assert all(m.device.type == "cuda" for m in model.optimizer.momentums)
