"""Habits PyTorch users bring to kerasish layers (round 13): a standalone
kerasish model trained in a plain torch loop that never calls `model.train()`
runs in Keras's "no mode set" state, i.e. in inference mode (Dropout off,
BatchNormalization on its moving statistics, never updated), as real Keras 3
on torch does (which ignores `model.train()` altogether); kerasish now warns
once when an optimizer steps after a backward pass through such a Dropout or
BatchNormalization, and never inside fit / evaluate / predict (a GAN
generator called directly in `train_step` included), with `training=`, with a
mode set, inside a user's torch module, or for backward passes no step
follows (saliency maps).
References: real Keras 3 with the same weights, the same pattern on
`torch.nn` modules holding the same weights (Keras kernels are (in, out),
torch Linear weights (out, in)), or the same run without the tool around it.
"""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import kerasish
from kerasish import layers as L
from kerasish.layers import no_mode_warning

_NO_MODE = "called with no training mode set"


@pytest.fixture
def armed():
    """The warning is given once per process: armed again for each test, and left armed."""
    no_mode_warning.reset()
    yield
    no_mode_warning.reset()


def _net(lib=kerasish, dropout=0.5):
    return lib.Sequential([lib.Input((4,)), lib.layers.Dense(8), lib.layers.BatchNormalization(),
                           lib.layers.Dropout(dropout), lib.layers.Dense(1)])


def _xy(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g)


def _no_mode_warnings(record):
    return [w for w in record if _NO_MODE in str(w.message)]


def _torch_loop(model, opt, steps=3, **call_kwargs):
    x, y = _xy()
    for _ in range(steps):
        loss = ((model(x, **call_kwargs) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


# ------------------------------------------------ the "no mode" torch loop
def test_no_mode_call_under_autograd_is_keras_inference_as_in_real_keras(keras_ref):
    """The evidence behind the warning: real Keras 3 on torch, given the same weights, runs an
    argument-less call under autograd in inference mode (Dropout off, moving statistics used and
    not updated) and ignores `model.train()`; kerasish's no-mode call gives the same numbers."""
    ref, ours = _net(keras_ref), _net()
    ours.set_weights(ref.get_weights())
    x, _ = _xy()
    expected = ref(x, training=False).detach().numpy()
    for model in (ref, ours):
        out = model(x)
        out.sum().backward()  # under autograd, gradients flow
        np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(model.layers[1].moving_mean.numpy()), np.zeros(8, "float32"))
    ref.train()  # Keras 3 ignores torch's mode: still inference
    np.testing.assert_allclose(ref(x).detach().numpy(), expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(ref(x, training=True).detach().numpy(), expected, atol=1e-3)


def test_torch_loop_without_train_warns_once_naming_the_layer_and_the_fixes(armed):
    torch.manual_seed(0)
    model = _net()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _torch_loop(model, torch.optim.SGD(model.parameters(), lr=0.1), steps=4)
        _torch_loop(_net(), torch.optim.Adam(model.parameters()), steps=2)  # a second model: still once
    found = _no_mode_warnings(record)
    assert len(found) == 1, [str(w.message) for w in record]
    message = str(found[0].message)
    assert "Dropout 'dropout" in message or "BatchNormalization 'batch_normalization" in message
    assert "model.train()" in message and "training=True" in message and "training=False" in message
    assert found[0].filename == __file__  # points at the user's `opt.step()`


def test_keras_guide_loop_with_a_keras_optimizer_warns_once(armed):
    """Keras's own "training loop in torch" guide: `model(inputs)`, `loss.backward()`,
    `optimizer.apply(grads, weights)` under no_grad; also a Keras optimizer's torch-style `step()`."""
    x, y = _xy()
    for stepper in ("apply", "step"):
        no_mode_warning.reset()
        model = _net()
        opt = kerasish.optimizers.Adam(1e-3)
        opt.build(model.trainable_weights)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            for _ in range(3):
                loss = ((model(x) - y) ** 2).mean()
                model.zero_grad()
                loss.backward()
                if stepper == "apply":
                    with torch.no_grad():
                        opt.apply([v.value.grad for v in model.trainable_weights], model.trainable_weights)
                else:
                    opt.step()
        found = _no_mode_warnings(record)
        assert len(found) == 1, (stepper, [str(w.message) for w in record])
        assert found[0].filename == __file__


def _gan_trainer():
    class Trainer(kerasish.Model):
        def __init__(self):
            super().__init__()
            self.generator = kerasish.Sequential([L.Dense(4), L.BatchNormalization(), L.Dropout(0.5)])
            self.head = L.Dense(1)

        def call(self, x, training=None):
            return self.head(x)

        def train_step(self, data):
            x, y = data
            fake = self.generator(x)  # called directly, no training= (keras.io's GANs)
            y_pred = self(x + fake, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            self.zero_grad()
            loss.backward()
            self.optimizer.apply([v.value.grad for v in self.trainable_weights], self.trainable_weights)
            return {"loss": loss}

    return Trainer()


def test_fit_evaluate_predict_and_a_generator_called_in_train_step_never_warn(armed):
    x, y = (t.numpy() for t in _xy())
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = _net()
        model.compile("sgd", "mse")
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, validation_data=(x, y))
        model.evaluate(x, y, verbose=0)
        model.predict(x, verbose=0)
        model.train_on_batch(x, y)
        gan = _gan_trainer()
        gan.compile("sgd", "mse")
        gan.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert not _no_mode_warnings(record), [str(w.message) for w in record]
    assert no_mode_warning.WATCHING[0]  # still armed: nothing was taken for a sign


def test_no_warning_with_training_passed_a_mode_set_or_inside_a_torch_module(armed):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _net()

        def forward(self, x):
            return self.body(x)

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = _net()
        _torch_loop(model, torch.optim.SGD(model.parameters(), lr=0.1), training=True)
        model = _net()
        model.train()
        _torch_loop(model, torch.optim.SGD(model.parameters(), lr=0.1))
        model = _net()
        model.eval()  # (inference on purpose: a frozen feature extractor being fine-tuned)
        _torch_loop(model, torch.optim.SGD(model.parameters(), lr=0.1))
        model = _net()
        _torch_loop(model, torch.optim.SGD(model.parameters(), lr=0.1), training=False)
        net = Net()  # a user's torch module: its kerasish submodule starts in training mode
        _torch_loop(net, torch.optim.SGD(net.parameters(), lr=0.1))
    assert not _no_mode_warnings(record), [str(w.message) for w in record]
    assert no_mode_warning.WATCHING[0]


def test_no_warning_for_frozen_or_inert_layers_or_backward_passes_no_step_follows(armed):
    """A frozen BatchNormalization (trainable=False: inference in every mode, as in Keras), a
    Dropout of rate 0, a saliency map (input gradients of a model run in inference on purpose),
    a generator's output detached before the step: nothing for the warning to say."""
    x, y = _xy()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = _net(dropout=0.0)
        model.layers[1].trainable = False
        _torch_loop(model, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1))
        model = _net()
        xi = x.clone().requires_grad_()
        (model(xi) ** 2).sum().backward()  # saliency: no optimizer step
        assert xi.grad is not None
        saliency = torch.autograd.grad(model(xi).sum(), xi)[0]
        assert saliency.shape == x.shape
    assert not _no_mode_warnings(record)
    # the saliency passes left a sign no step consumed: fit, Keras's own loop, drops it
    model.compile("sgd", "mse")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(x.numpy(), y.numpy(), epochs=1, verbose=0)
    assert not _no_mode_warnings(record)

