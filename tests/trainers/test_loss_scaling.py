"""Dynamic loss scaling of `mixed_float16` training (Keras's
`LossScaleOptimizer`, which `compile` wraps around a Keras optimizer, or a
`torch.amp.GradScaler` with the same policy for a torch optimizer): the loss is
scaled, gradients are unscaled before the update, a step with inf/nan
gradients is skipped (weights and `iterations` unchanged) and halves the
scale; `mixed_bfloat16` trains without a scaler. Runs on the CPU (GradScaler
supports it) with inf gradients injected by a hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish as keras


def _model(policy):
    """As in Keras, the model's own policy (the global one when it is
    made) decides loss scaling, not its layers'."""
    keras.utils.set_random_seed(1)
    keras.mixed_precision.set_global_policy(policy)
    try:
        return keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(1, dtype="float32"),
        ])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    return x, x.sum(1, keepdims=True)


def _scale_of(model):
    """The current loss scale: the compiled LossScaleOptimizer's (a Keras optimizer, wrapped by compile
    as in Keras 3) or fit's GradScaler's (a torch.optim optimizer)."""
    scaler = model.__dict__["_grad_scaler"]
    if scaler is not None:
        return scaler.get_scale()
    return float(model.optimizer.dynamic_scale)


@pytest.mark.parametrize("torch_optimizer", [False, True], ids=["keras_sgd", "torch_sgd"])
def test_inf_gradients_skip_the_step_and_halve_the_scale(torch_optimizer):
    model = _model("mixed_float16")
    if torch_optimizer:
        model.build((None, 4))
        model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss="mse")
    else:
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = _data()
    kernel = model.layers[0].kernel
    inject = {"on": True}
    kernel.register_hook(lambda g: torch.full_like(g, float("inf")) if inject["on"] else g)
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y)
    # one scaler only: the wrapped optimizer's or fit's GradScaler (for the torch optimizer)
    assert (model.__dict__["_grad_scaler"] is not None) == torch_optimizer
    assert _scale_of(model) == 2.0**14  # 2**15, halved
    steps = (lambda: model.optimizer.state_dict()["state"]) if torch_optimizer else (
        lambda: int(model.optimizer.iterations))
    assert not steps()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # every weight skipped, not only the inf one
    inject["on"] = False
    model.train_on_batch(x, y)
    assert _scale_of(model) == 2.0**14
    if not torch_optimizer:
        assert int(model.optimizer.iterations) == 1
    assert not np.array_equal(before[0], model.get_weights()[0])


def test_scaled_step_equals_the_unscaled_step():
    """The scale is divided out again: one scaled mixed_float16 step moves
    the weights like the same step without loss scaling."""
    x, y = _data()
    y = y * 0.01  # small errors: 2**15 * gradients stay finite in float16, so the step is not skipped
    scaled, plain = _model("mixed_float16"), _model("mixed_float16")
    plain.set_weights(scaled.get_weights())
    scaled.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    plain.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", auto_scale_loss=False)
    scaled.train_on_batch(x, y)
    plain.train_on_batch(x, y)
    assert plain.__dict__["_grad_scaler"] is None
    assert int(scaled.optimizer.iterations) == int(plain.optimizer.iterations) == 1
    for a, b in zip(scaled.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


def test_compile_wraps_the_optimizer_as_keras_does(keras_ref):
    """Keras 3's `compile`: a "mixed_float16" model's optimizer becomes a LossScaleOptimizer around the
    one passed (Keras's defaults: 2**15, growth every 2000 steps); `auto_scale_loss=False`, a float32
    model, or an explicit LossScaleOptimizer are left alone."""
    keras_ref.mixed_precision.set_global_policy("mixed_float16")
    try:
        k_model = keras_ref.Sequential([keras_ref.Input((4,)), keras_ref.layers.Dense(1)])
    finally:
        keras_ref.mixed_precision.set_global_policy("float32")
    for lib, model in ((keras, _model("mixed_float16")), (keras_ref, k_model)):
        sgd = lib.optimizers.SGD(0.1)
        model.compile(optimizer=sgd, loss="mse")
        opt = model.optimizer
        assert isinstance(opt, lib.optimizers.LossScaleOptimizer), lib
        assert opt.inner_optimizer is sgd and opt.name == "loss_scale_optimizer"
        assert (float(opt.initial_scale), opt.dynamic_growth_steps) == (2.0**15, 2000)
        assert model.get_compile_config()["optimizer"]["class_name"] == "SGD"  # the user's optimizer
        model.compile(optimizer=sgd, loss="mse", auto_scale_loss=False)
        assert model.optimizer is sgd
        lso = lib.optimizers.LossScaleOptimizer(lib.optimizers.SGD())
        model.compile(optimizer=lso, loss="mse")
        assert model.optimizer is lso
    plain = _model("float32")
    plain.compile(optimizer="sgd", loss="mse")
    assert type(plain.optimizer) is keras.optimizers.SGD
    x, y = _data()
    model = _model("mixed_float16")
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, y * 0.01)
    assert model.__dict__["_grad_scaler"] is None  # no second scaling on top of the optimizer's
    assert int(model.optimizer.iterations) == int(model.optimizer.inner_optimizer.iterations) == 1


def test_torch_optimizer_gets_a_grad_scaler_with_keras_defaults(keras_ref):
    model = _model("mixed_float16")
    model.build((None, 4))
    model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.01), loss="mse")
    x, y = _data()
    model.train_on_batch(x, y * 0.01)
    scaler = model.__dict__["_grad_scaler"]
    # keras.optimizers.LossScaleOptimizer: initial_scale=2**15, dynamic_growth_steps=2000, x2 / x0.5
    ref = keras_ref.optimizers.LossScaleOptimizer(keras_ref.optimizers.SGD())
    assert (scaler.get_scale(), scaler.get_growth_interval()) == (
        float(ref.initial_scale), ref.dynamic_growth_steps) == (2.0**15, 2000)
    assert (scaler.get_growth_factor(), scaler.get_backoff_factor()) == (2.0, 0.5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "float32"])
def test_no_loss_scaling_without_float16(policy):
    model = _model(policy)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    history = model.fit(*_data(), epochs=3, verbose=0)
    assert model.__dict__["_grad_scaler"] is None
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_cuda_mixed_float16_fit_trains_with_a_cuda_scaler():
    model = _model("mixed_float16").to("cuda")
    model.compile(optimizer=torch.optim.Adam(model.parameters()), loss="mse")
    history = model.fit(*_data(), epochs=5, verbose=0)
    scaler = model.__dict__["_grad_scaler"]
    assert scaler is not None and scaler._device == "cuda"
    assert model.layers[0].kernel.dtype == torch.float32
    assert history.history["loss"][-1] < history.history["loss"][0]
