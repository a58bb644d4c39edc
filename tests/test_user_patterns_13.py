"""Habits PyTorch users bring to kerasish layers (round 13): a standalone
kerasish model trained in a plain torch loop that never calls `model.train()`
runs in Keras's "no mode set" state, i.e. in inference mode (Dropout off,
BatchNormalization on its moving statistics, never updated), as real Keras 3
on torch does (which ignores `model.train()` altogether); kerasish now warns
once when an optimizer steps after a backward pass through such a Dropout,
BatchNormalization, or RNN / attention layer with dropout (siblings
watched too: noise, spatial dropout, Bidirectional), and never inside
fit / evaluate / predict (a GAN
generator called directly in `train_step` included), with `training=`, with a
mode set, inside a user's torch module, or for backward passes no step
follows (saliency maps); torch's older hook-based `weight_norm` /
`spectral_norm` on kerasish kernels (Keras files silently held (bias,
kernel_g, kernel_v), and after `remove_weight_norm` the kernel came back
after the bias: files nobody could load; now saving refuses, naming the
removal function, which puts the kernel back in its Keras place);
`torch.func.vmap` over BatchNormalization in training mode (torch's internal
in-place error, now a clear one naming the ensembling recipe, which is
checked).
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



class _Seq(kerasish.Model):
    """Embedding -> one layer under test (called on `[h, h]` for attention layers)."""

    def __init__(self, layer, pair=False):
        super().__init__()
        self.embed = L.Embedding(10, 8)
        self.inner = layer
        self.pair = pair

    def call(self, ids):
        h = self.embed(ids)
        out = self.inner([h, h]) if self.pair == "list" else self.inner(h, h) if self.pair else self.inner(h)
        return out


_WATCHED = {
    "LSTM dropout": (lambda r: L.LSTM(3, dropout=r), False),
    "GRU recurrent_dropout": (lambda r: L.GRU(3, recurrent_dropout=r), False),
    "Bidirectional": (lambda r: L.Bidirectional(L.SimpleRNN(3, dropout=r)), False),
    "MultiHeadAttention": (lambda r: L.MultiHeadAttention(2, 4, dropout=r), True),
    "Attention": (lambda r: L.Attention(dropout=r), "list"),
    "GaussianNoise": (lambda r: L.GaussianNoise(r), False),
    "SpatialDropout1D": (lambda r: L.SpatialDropout1D(r), False),
}


@pytest.mark.parametrize("case", sorted(_WATCHED))
def test_every_layer_whose_dropout_depends_on_the_mode_is_watched_and_only_with_a_rate(armed, case, monkeypatch):
    """The siblings of Dropout and BatchNormalization: RNN dropouts, attention dropout, noise and
    spatial dropout (rate 0: nothing to say). A few predictions under grad mode first: the warning
    still comes within the sampling's period of forward passes (16; 4 here, to keep the test short)."""
    monkeypatch.setattr(no_mode_warning, "_EVERY", 4)
    make, pair = _WATCHED[case]
    ids = torch.randint(1, 10, (4, 5), generator=torch.Generator().manual_seed(0))
    for rate, expected in ((0.0, 0), (0.3, 1)):
        no_mode_warning.reset()
        model = _Seq(make(rate), pair)
        for _ in range(3):
            model(ids)  # predictions, no backward pass
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            for _ in range(5):
                loss = model(ids).square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        found = _no_mode_warnings(record)
        assert len(found) == expected, (case, rate, [str(w.message) for w in record])
        if expected:
            assert f"'{model.inner.name}'" in str(found[0].message)


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


# ------------------------------------------ torch's hook-based weight_norm / spectral_norm
def _mlp_and_twin():
    torch.manual_seed(0)
    ours = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3, kernel_regularizer="l2"), L.Dense(2)])
    twin = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    with torch.no_grad():
        for lin, dense in zip(twin, ours.layers):
            lin.weight.copy_(dense.kernel.T)
            lin.bias.copy_(dense.bias)
    return ours, twin


def _refuses_keras_files(model, tmp_path, match):
    for action in (lambda: model.save(str(tmp_path / "m.keras")),
                   lambda: model.save_weights(str(tmp_path / "w.weights.h5")),
                   lambda: model.save(str(tmp_path / "m.h5"))):
        with pytest.raises(ValueError, match=match):
            action()
    assert not list(tmp_path.glob("*.keras")) and not list(tmp_path.glob("*.h5"))


def _folds_back_in_keras_order(model, tmp_path, keras_ref, x):
    """After the removal: Keras's weight order and layouts, the kernel's Keras identity (path,
    regularizer), and a `.keras` file real Keras loads to the same outputs."""
    dense = model.layers[0]
    assert [w.path.split("/", 1)[1] for w in model.weights] == ["dense/kernel", "dense/bias", "dense_1/kernel",
                                                               "dense_1/bias"]
    assert [w.shape for w in model.get_weights()] == [(4, 3), (3,), (3, 2), (2,)]
    assert model.weights[0] is dense.kernel and dense.kernel.regularizer is not None
    model(x)
    assert len(model.losses) == 1  # the kernel's L2 penalty, as before
    model.save(str(tmp_path / "m.keras"))
    loaded = keras_ref.saving.load_model(str(tmp_path / "m.keras"))
    np.testing.assert_allclose(loaded(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")
def test_hook_based_weight_norm_trains_like_torch_refuses_keras_files_and_folds_back_in_keras_order(
        tmp_path, keras_ref):
    """torch's older `torch.nn.utils.weight_norm` (hooks, not parametrize) on a Dense kernel `(in, out)`
    along dim=1 is torch's on the Linear weight along dim=0. Before, `get_weights` and the saved files
    silently held (bias, kernel_g, kernel_v): a file Keras and kerasish could not load; and after
    `remove_weight_norm` the kernel came back after the bias, so the saved files could not be loaded
    either. Now saving refuses, naming `remove_weight_norm`, and the removal puts the kernel back in
    its Keras place with its Keras identity."""
    ours, twin = _mlp_and_twin()
    torch.nn.utils.weight_norm(ours.layers[0], "kernel", dim=1)
    torch.nn.utils.weight_norm(twin[0], "weight", dim=0)
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ours(x), twin(x), rtol=1e-5, atol=1e-6)
    ours(x).square().sum().backward()
    twin(x).square().sum().backward()
    dense = ours.layers[0]
    torch.testing.assert_close(dense.kernel_g.grad.reshape(-1), twin[0].weight_g.grad.reshape(-1), rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(dense.kernel_v.grad, twin[0].weight_v.grad.T, rtol=1e-5, atol=1e-6)
    _refuses_keras_files(ours, tmp_path, r"remove_weight_norm\(layer, 'kernel'\)")
    ours.save_weights(str(tmp_path / "w.pt"))  # a torch state_dict holds them
    with torch.no_grad():
        dense.kernel_g.mul_(2.0)
        twin[0].weight_g.mul_(2.0)
    torch.nn.utils.remove_weight_norm(dense, "kernel")
    torch.testing.assert_close(ours(x), twin(x), rtol=1e-5, atol=1e-6)
    _folds_back_in_keras_order(ours, tmp_path, keras_ref, x)


def test_hook_based_spectral_norm_follows_the_modes_like_torch_refuses_keras_files_and_folds_back(
        tmp_path, keras_ref):
    """torch's older `torch.nn.utils.spectral_norm` reads `module.training` to decide on its power
    iteration. A kerasish layer in Keras's "no mode" state reads False there, like an `eval()` torch
    module (a fresh torch module would iterate): after `train()` both iterate alike, and `eval()`
    freezes both. Saving refuses, naming `remove_spectral_norm`; the removal folds the kernel back in
    its Keras place."""
    ours, twin = _mlp_and_twin()
    torch.manual_seed(3)
    torch.nn.utils.spectral_norm(ours.layers[0], "kernel", dim=1)
    torch.manual_seed(3)
    torch.nn.utils.spectral_norm(twin[0], "weight")
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    assert not ours.layers[0].training
    twin.eval()
    torch.testing.assert_close(ours(x), twin(x), rtol=1e-5, atol=1e-6)  # no iteration in either
    ours.train()
    twin.train()
    for _ in range(3):
        torch.testing.assert_close(ours(x), twin(x), rtol=1e-5, atol=1e-6)
    sigma = torch.linalg.matrix_norm(ours.layers[0].kernel.detach(), ord=2)
    assert abs(float(sigma) - 1.0) < 0.05
    _refuses_keras_files(ours, tmp_path, r"remove_spectral_norm\(layer, 'kernel'\)")
    torch.nn.utils.remove_spectral_norm(ours.layers[0], "kernel")
    torch.nn.utils.remove_spectral_norm(twin[0], "weight")
    ours.eval()
    twin.eval()
    torch.testing.assert_close(ours(x), twin(x), rtol=1e-5, atol=1e-6)
    _folds_back_in_keras_order(ours, tmp_path, keras_ref, x)


# ------------------------------------------ vmap over BatchNormalization in training mode
def test_vmap_of_batchnorm_in_training_names_the_way_out_and_the_stacked_recipe_updates_each_members_stats():
    """Under `torch.func.vmap` in training mode one pair of moving statistics cannot take a batch of
    updates: torch's BatchNorm refuses, and kerasish raised torch's internal "vmap: inplace
    arithmetic" error from its update; now a RuntimeError names the layer and the ways out. The
    ensembling recipe it names (`stack_module_state`, the buffers passed in) gives each member its
    outputs and its moving statistics, as each model called on its own slice."""
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    def member(seed):
        torch.manual_seed(seed)
        model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(8), L.BatchNormalization(momentum=0.9),
                                     L.Dense(1)])
        model.train()
        return model

    x = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1))
    twin = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with pytest.raises(RuntimeError, match="running_mean"):
        vmap(twin)(x)
    with pytest.raises(RuntimeError, match=r"BatchNormalization 'batch_normalization.*stack_module_state"):
        vmap(member(0))(x)
    models = [member(i) for i in range(3)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    out = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)))(params, buffers, x)
    for i, model in enumerate(models):
        torch.testing.assert_close(out[i], model(x[i]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(buffers["batch_normalization.moving_mean"][i], model.layers[1].moving_mean,
                                   rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(buffers["batch_normalization.moving_variance"][i],
                                   model.layers[1].moving_variance, rtol=1e-5, atol=1e-7)
