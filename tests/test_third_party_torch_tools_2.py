"""kerasish models inside more of the torch tools people train with:
Hugging Face `accelerate`, `skorch`, `pytorch-ignite`, `torchmetrics` (in a
Lightning module) and `torch-ema`.

Each kerasish run is compared with a hand-written torch twin holding the same
weights, driven by the same tool (and, for Keras optimizers, the same Keras
optimizer built on the twin's parameters). BatchNormalization's moving
variance is not compared: Keras updates it with the biased batch variance,
torch's BatchNorm1d with the unbiased one (a documented Keras difference).
Each tool's tests skip cleanly when that tool is not installed.
"""

from __future__ import annotations

import logging
import pickle
import warnings

import numpy as np
import pytest
import torch

import kerasish as keras

logging.getLogger("ignite").setLevel(logging.ERROR)
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
logging.getLogger("lightning.fabric").setLevel(logging.ERROR)


def _need(name):
    return pytest.importorskip(name, reason=f"`{name}` (a `test` extra) is not installed")


def _net(dropout=0.0, bn=False, built=True, softmax=False):
    layers = [keras.Input((6,))] if built else []
    layers += [keras.layers.Dense(8, kernel_initializer=keras.initializers.GlorotUniform(seed=1))]
    if bn:
        layers.append(keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5))
    layers += [keras.layers.Activation("relu"), keras.layers.Dropout(dropout),
               keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(seed=2))]
    if softmax:
        layers.append(keras.layers.Softmax())
    return keras.Sequential(layers)


class _Twin(torch.nn.Module):
    """The same network in plain torch, with the kerasish model's weights copied in."""

    def __init__(self, km, bn=False, softmax=False):
        super().__init__()
        self.l1 = torch.nn.Linear(6, 8)
        self.bn = torch.nn.BatchNorm1d(8, eps=1e-5, momentum=0.1) if bn else None
        self.l2 = torch.nn.Linear(8, 3)
        self.softmax = softmax
        w = [torch.as_tensor(a) for a in km.get_weights()]
        with torch.no_grad():
            self.l1.weight.copy_(w[0].T)
            self.l1.bias.copy_(w[1])
            if bn:
                self.bn.weight.copy_(w[2])
                self.bn.bias.copy_(w[3])
                self.bn.running_mean.copy_(w[4])
                self.bn.running_var.copy_(w[5])
                w = w[:2] + w[6:]
            self.l2.weight.copy_(w[2].T)
            self.l2.bias.copy_(w[3])

    def forward(self, x):
        h = self.l1(x)
        if self.bn is not None:
            h = self.bn(h)
        out = self.l2(torch.relu(h))
        return torch.softmax(out, -1) if self.softmax else out


def _arrays(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n).astype("int64")


def _data(n=64):
    x, y = _arrays(n)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y)),
                                       batch_size=16)


def _assert_same_weights(km, twin, bn=False, rtol=1e-6, atol=1e-7):
    w = km.get_weights()
    pairs = [(w[0], twin.l1.weight.detach().numpy().T), (w[1], twin.l1.bias.detach().numpy()),
             (w[-2], twin.l2.weight.detach().numpy().T), (w[-1], twin.l2.bias.detach().numpy())]
    if bn:
        pairs += [(w[2], twin.bn.weight.detach().numpy()), (w[4], twin.bn.running_mean.numpy())]
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def _optimizer(kind, net):
    if kind == "keras":  # (a Keras optimizer is a torch optimizer: the same one on the twin)
        return keras.optimizers.Adam(1e-2).build(net.parameters())
    return torch.optim.Adam(net.parameters(), lr=1e-2, eps=1e-7)


# ---------------------------------------------------------------- accelerate


def _accelerator(**kwargs):
    accelerate = _need("accelerate")
    from accelerate.state import AcceleratorState, GradientState

    # (one process-wide state per run: each test makes its own, as a fresh script would)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return accelerate.Accelerator(cpu=True, **kwargs)


def _accelerate_train(acc, model, opt, data, epochs):
    model.train()
    for _ in range(epochs):
        for x, y in data:
            with acc.accumulate(model):
                acc.backward(torch.nn.functional.cross_entropy(model(x), y))
                opt.step()
                opt.zero_grad()


@pytest.mark.parametrize(("precision", "optimizer", "accumulation"),
                         [("no", "torch", 1), ("bf16", "keras", 2)])
def test_accelerate_trains_a_kerasish_model_like_its_torch_twin(precision, optimizer, accumulation):
    """`prepare` + `backward` + gradient accumulation, in float32 or under `mixed_precision="bf16"`
    (accelerate's CPU autocast, patched onto the model's `forward`: kerasish's Dense runs in bfloat16 as
    nn.Linear does, and the outputs come back in float32)."""
    km = _net(bn=True)
    twin = _Twin(km, bn=True)
    dtypes = {}
    for name, net, first in (("kerasish", km, km.layers[0]), ("torch", twin, twin.l1)):
        first.register_forward_hook(lambda m, i, o, name=name: dtypes.setdefault(name, o.dtype) and None)
        acc = _accelerator(mixed_precision=precision, gradient_accumulation_steps=accumulation)
        model, opt, data = acc.prepare(net, _optimizer(optimizer, net), _data())
        _accelerate_train(acc, model, opt, data, 2)
        assert model(torch.zeros(2, 6)).dtype == torch.float32
    expected = torch.bfloat16 if precision == "bf16" else torch.float32
    assert dtypes == {"kerasish": expected, "torch": expected}
    _assert_same_weights(km, twin, bn=True)


def test_accelerate_save_state_resume_equals_an_uninterrupted_run(tmp_path):
    """`save_state` (model as safetensors, the Keras optimizer's state with its iteration count) and
    `load_state` into a model with other initial weights resume to the uninterrupted run's weights."""

    def run(net, epochs, save=None, load=None):
        acc = _accelerator()
        model, opt, data = acc.prepare(net, keras.optimizers.Adam(1e-2).build(net.parameters()), _data())
        if load:
            acc.load_state(load)
        _accelerate_train(acc, model, opt, data, epochs)
        if save:
            acc.save_state(save)
        return opt

    km = _net(bn=True)
    init = km.get_weights()
    run(km, 4)
    half = _net(bn=True)
    half.set_weights(init)
    run(half, 2, save=str(tmp_path / "state"))
    resumed = _net(bn=True)
    resumed.set_weights([w + 1 for w in init])  # everything must come from the saved state
    opt = run(resumed, 2, load=str(tmp_path / "state"))
    assert int(opt.optimizer.iterations) == 16
    for a, b in zip(resumed.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_accelerate_unbuilt_model_with_the_optimizer_made_first():
    """An unbuilt model (lazy weights until the first batch, seeded initializers) with its optimizer
    made before any call trains like a built twin; the optimizer holds the real weights."""
    built = _net()
    twin = _Twin(built)
    lazy = _net(built=False)
    for net in (lazy, twin):
        acc = _accelerator()
        model, opt, data = acc.prepare(net, torch.optim.Adam(net.parameters(), lr=1e-2, eps=1e-7), _data())
        _accelerate_train(acc, model, opt, data, 2)
    assert lazy.built and len(opt.optimizer.state) == 4
    _assert_same_weights(lazy, twin)


def test_accelerate_modes_drive_dropout_and_batchnorm():
    """A kerasish model inside the user's torch module starts in training mode (as torch's would);
    `model.train()` / `model.eval()` on the prepared model switch Dropout and BatchNormalization."""

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _net(dropout=0.5, bn=True)

        def forward(self, x):
            return self.net(x)

    acc = _accelerator()
    model = acc.prepare(Wrapper())
    x = torch.as_tensor(_arrays()[0])
    assert model.net.training
    a, b = model(x), model(x)
    assert not torch.allclose(a, b)  # dropout masks
    model.eval()
    np.testing.assert_array_equal(model(x).detach().numpy(), model(x).detach().numpy())
    moving = model.net.layers[1].moving_mean.clone()
    model.train()
    model(x)
    assert not torch.equal(model.net.layers[1].moving_mean, moving)


# ---------------------------------------------------------------- skorch


class _KerasClassifier(keras.Model):
    """A subclassed Keras model (built at its first call), as skorch's `module=` class."""

    def __init__(self, units=8, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.drop = keras.layers.Dropout(dropout)
        self.out = keras.layers.Dense(3, activation="softmax")

    def call(self, x, training=None):
        return self.out(self.drop(self.hidden(x), training=training))


def _skorch_net(module, **kwargs):
    skorch = _need("skorch")
    kwargs.setdefault("max_epochs", 3)
    return skorch.NeuralNetClassifier(module, lr=0.05, batch_size=16, train_split=None, verbose=0, **kwargs)


def test_skorch_fits_a_kerasish_model_like_its_torch_twin():
    """`NeuralNetClassifier(module=<kerasish instance>)` (SGD, its default NLLLoss on softmax outputs):
    the same weights and BatchNormalization statistics as the twin, Dropout active in training steps
    only (skorch switches `train()`), and `predict_proba` equals the model's own inference outputs."""
    x, y = _arrays(96)
    km = _net(bn=True, dropout=0.5, softmax=True)
    km_nodrop = _net(bn=True, softmax=True)
    km_nodrop.set_weights(km.get_weights())
    twin = _Twin(km_nodrop, bn=True, softmax=True)
    modes = []
    km.layers[3].register_forward_pre_hook(lambda m, i: modes.append(m.training))
    _skorch_net(km).fit(x, y)
    assert modes and all(modes)  # every forward of skorch's fit is a training step (no validation split)
    net = _skorch_net(km_nodrop).fit(x, y)
    _skorch_net(twin).fit(x, y)
    _assert_same_weights(km_nodrop, twin, bn=True, rtol=1e-5, atol=1e-6)
    proba = net.predict_proba(x)
    km_nodrop.eval()
    np.testing.assert_allclose(proba, km_nodrop(torch.as_tensor(x)).detach().numpy(), rtol=1e-6, atol=1e-7)


def test_skorch_class_module_grid_search_pickle_and_params_round_trip(tmp_path):
    """A kerasish model class with `module__` parameters (built lazily at skorch's first batch): grid
    search clones and refits it, the fitted net pickles, and `save_params` / `load_params` restore the
    weights and the optimizer into a fresh net."""
    sklearn_model_selection = pytest.importorskip("sklearn.model_selection", reason="scikit-learn is not installed")
    x, y = _arrays(96)
    torch.manual_seed(0)
    net = _skorch_net(_KerasClassifier, module__units=8).fit(x, y)
    proba = net.predict_proba(x)
    assert proba.shape == (96, 3)
    # the optimizer, made before the first batch built the model, holds every weight the model ended with
    held = [p for g in net.optimizer_.param_groups for p in g["params"]]
    assert len(held) == 4 and {id(p) for p in held} == {id(p) for p in net.module_.parameters()}
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(net)).predict_proba(x), proba)

    net.save_params(f_params=str(tmp_path / "p.pt"), f_optimizer=str(tmp_path / "o.pt"))
    fresh = _skorch_net(_KerasClassifier, module__units=8).initialize()
    fresh.load_params(f_params=str(tmp_path / "p.pt"), f_optimizer=str(tmp_path / "o.pt"))
    np.testing.assert_array_equal(fresh.predict_proba(x), proba)

    search = sklearn_model_selection.GridSearchCV(_skorch_net(_KerasClassifier, max_epochs=2),
                                                  {"module__units": [4, 8]}, cv=2, scoring="accuracy")
    search.fit(x, y)
    assert search.best_estimator_.module_.hidden.units == search.best_params_["module__units"]
    assert len(search.cv_results_["mean_test_score"]) == 2


# ---------------------------------------------------------------- pytorch-ignite


def _ignite_run(net, optimizer, max_epochs=2):
    engine = _need("ignite.engine")
    metrics = _need("ignite.metrics")
    opt = _optimizer(optimizer, net)
    trainer = engine.create_supervised_trainer(net, opt, torch.nn.functional.cross_entropy)
    evaluator = engine.create_supervised_evaluator(
        net, metrics={"accuracy": metrics.Accuracy(), "loss": metrics.Loss(torch.nn.functional.cross_entropy)})
    modes = []
    trainer.add_event_handler(engine.Events.ITERATION_COMPLETED, lambda e: modes.append(net.training))
    trainer.run(_data(), max_epochs=max_epochs)
    evaluator.run(_data())
    return trainer, evaluator, opt, modes


@pytest.mark.parametrize("optimizer", ["torch", "keras"])
def test_ignite_supervised_trainer_and_evaluator_match_the_torch_twin(optimizer):
    """`create_supervised_trainer` trains like the twin (ignite calls `train()`); the evaluator (which
    calls `eval()`) reports the loss and accuracy of the model's own inference outputs."""
    km = _net(bn=True)
    twin = _Twin(km, bn=True)
    _, evaluator, _, modes = _ignite_run(km, optimizer)
    _ignite_run(twin, optimizer)
    assert modes and all(modes) and not km.training
    _assert_same_weights(km, twin, bn=True)
    x, y = (torch.as_tensor(a) for a in _arrays())
    out = km(x).detach()
    np.testing.assert_allclose(evaluator.state.metrics["loss"],
                               torch.nn.functional.cross_entropy(out, y).item(), rtol=1e-5)
    assert evaluator.state.metrics["accuracy"] == pytest.approx((out.argmax(1) == y).float().mean().item())


def test_ignite_model_checkpoint_resume_and_early_stopping(tmp_path):
    """`ModelCheckpoint` saves the kerasish model, the Keras optimizer and the trainer each epoch;
    `Checkpoint.load_objects` from epoch 2 resumes to the uninterrupted 4-epoch run's weights.
    `EarlyStopping` on the evaluator's loss stops a run whose weights never improve."""
    engine = _need("ignite.engine")
    handlers = _need("ignite.handlers")
    metrics = _need("ignite.metrics")

    def trainer_for(net):
        opt = keras.optimizers.Adam(1e-2).build(net.parameters())
        return engine.create_supervised_trainer(net, opt, torch.nn.functional.cross_entropy), opt

    km = _net(bn=True)
    init = km.get_weights()
    trainer, opt = trainer_for(km)
    checkpoint = handlers.ModelCheckpoint(str(tmp_path), "run", n_saved=None, require_empty=False)
    trainer.add_event_handler(engine.Events.EPOCH_COMPLETED, checkpoint,
                              {"model": km, "optimizer": opt, "trainer": trainer})
    trainer.run(_data(), max_epochs=4)

    resumed = _net(bn=True)
    resumed.set_weights([w + 1 for w in init])
    trainer2, opt2 = trainer_for(resumed)
    state = torch.load(str(tmp_path / "run_checkpoint_8.pt"), weights_only=False)  # after epoch 2 (8 steps)
    handlers.Checkpoint.load_objects({"model": resumed, "optimizer": opt2, "trainer": trainer2}, state)
    assert int(opt2.iterations) == 8 and trainer2.state.epoch == 2
    trainer2.run(_data(), max_epochs=4)
    for a, b in zip(resumed.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    still = _net()
    trainer3 = engine.create_supervised_trainer(still, torch.optim.SGD(still.parameters(), lr=0.0),
                                                torch.nn.functional.cross_entropy)
    evaluator = engine.create_supervised_evaluator(still, metrics={"loss": metrics.Loss(torch.nn.functional.cross_entropy)})
    trainer3.add_event_handler(engine.Events.EPOCH_COMPLETED, lambda e: evaluator.run(_data()))
    evaluator.add_event_handler(engine.Events.COMPLETED, handlers.EarlyStopping(
        patience=2, score_function=lambda e: -e.state.metrics["loss"], trainer=trainer3))
    trainer3.run(_data(), max_epochs=10)
    assert trainer3.state.epoch == 3


def test_ignite_ema_handler_averages_like_the_twins():
    """ignite's `EMAHandler` (a deep copy of the model, parameters averaged, buffers copied): the kerasish
    model's EMA copy holds the twin's EMA weights and BatchNormalization statistics."""
    engine = _need("ignite.engine")
    handlers = _need("ignite.handlers")
    km = _net(bn=True)
    twin = _Twin(km, bn=True)
    emas = []
    for net in (km, twin):
        trainer = engine.create_supervised_trainer(net, torch.optim.SGD(net.parameters(), lr=0.1),
                                                   torch.nn.functional.cross_entropy)
        ema = handlers.EMAHandler(net, momentum=0.2)
        ema.attach(trainer)
        trainer.run(_data(), max_epochs=2)
        emas.append(ema.ema_model)
    _assert_same_weights(km, twin, bn=True)
    _assert_same_weights(emas[0], emas[1], bn=True)
    assert not np.allclose(emas[0].get_weights()[0], km.get_weights()[0])


# ---------------------------------------------------------------- torchmetrics in Lightning


def test_torchmetrics_logged_from_a_lightning_module_with_a_kerasish_model():
    """`self.log` of torchmetrics' Accuracy on a kerasish model's outputs: the logged training metric
    is that of the outputs in training mode (Dropout on), the validation one equals the model's own
    inference accuracy."""
    L = _need("lightning")
    torchmetrics = _need("torchmetrics")

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _net(dropout=0.5, bn=True)
            self.train_acc = torchmetrics.classification.MulticlassAccuracy(num_classes=3, average="micro")
            self.val_acc = torchmetrics.classification.MulticlassAccuracy(num_classes=3, average="micro")
            self.train_hits = []

        def training_step(self, batch, batch_idx):
            x, y = batch
            out = self.net(x)
            self.train_acc(out, y)
            self.train_hits.append((out.argmax(1) == y).detach())
            self.log("train_acc", self.train_acc, on_step=False, on_epoch=True)
            return torch.nn.functional.cross_entropy(out, y)

        def validation_step(self, batch, batch_idx):
            self.val_acc(self.net(batch[0]), batch[1])
            self.log("val_acc", self.val_acc)

        def configure_optimizers(self):
            return torch.optim.SGD(self.net.parameters(), lr=0.0)  # (frozen weights: outputs can be re-derived)

    module = Module()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice (num_workers, ...)
        trainer.fit(module, _data(), _data())
    logged = trainer.logged_metrics
    assert float(logged["train_acc"]) == pytest.approx(torch.cat(module.train_hits).float().mean().item())
    module.net.eval()
    x, y = (torch.as_tensor(a) for a in _arrays())
    assert float(logged["val_acc"]) == pytest.approx((module.net(x).argmax(1) == y).float().mean().item())


# ---------------------------------------------------------------- torch-ema


def test_torch_ema_averages_kerasish_weights_like_the_twins():
    """`torch_ema.ExponentialMovingAverage(model.parameters())`: the averaged kerasish weights equal the
    twin's; `average_parameters()` swaps them in for inference and restores the trained ones after."""
    torch_ema = _need("torch_ema")
    km = _net()
    twin = _Twin(km)
    averaged = {}
    for name, net in (("kerasish", km), ("torch", twin)):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        ema = torch_ema.ExponentialMovingAverage(net.parameters(), decay=0.9)
        net.train()
        for x, y in _data():
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            opt.zero_grad()
            ema.update()
        trained = [p.detach().clone() for p in net.parameters()]
        with ema.average_parameters():
            averaged[name] = [p.detach().clone() for p in net.parameters()]
        assert all(torch.equal(p, t) for p, t in zip(net.parameters(), trained))
    _assert_same_weights(km, twin)
    k, t = averaged["kerasish"], averaged["torch"]
    pairs = [(k[0], t[0].T), (k[1], t[1]), (k[2], t[2].T), (k[3], t[3])]
    assert not torch.allclose(k[0], km.layers[0].kernel)
    for a, b in pairs:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_skorch_with_a_keras_optimizer_class_trains_like_the_twin():
    """skorch makes its optimizer torch's way, `optimizer(params, lr=lr, **optimizer__kwargs)`. A Keras
    optimizer class took the parameters for its `learning_rate` and `lr=` replaced them: an optimizer
    with nothing to update (its `step` raised). It is now built on them, the same Keras Adam as on
    the twin."""
    x, y = _arrays(96)
    km = _net(softmax=True)
    twin = _Twin(km, softmax=True)
    for net in (km, twin):
        fitted = _skorch_net(net, optimizer=keras.optimizers.Adam, optimizer__beta_1=0.8).fit(x, y)
        assert isinstance(fitted.optimizer_, keras.optimizers.Adam) and fitted.optimizer_.beta_1 == 0.8
        assert float(fitted.optimizer_.learning_rate) == pytest.approx(0.05)
        assert int(fitted.optimizer_.iterations) == 18  # 3 epochs x 6 batches
    _assert_same_weights(km, twin, rtol=1e-5, atol=1e-6)


def test_zero_redundancy_optimizer_with_a_keras_optimizer_class(tmp_path):
    """`ZeroRedundancyOptimizer(params, optimizer_class=keras.optimizers.Adam, lr=..., beta_1=...)` makes
    its optimizer torch's way and copies the constructor's arguments into each param group: it trains
    as the same Keras Adam built directly (one process, gloo)."""
    dist = torch.distributed
    if not dist.is_available() or dist.is_initialized():
        pytest.skip("needs torch.distributed without a process group already set up")
    from torch.distributed.optim import ZeroRedundancyOptimizer

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        km = _net()
        twin = _Twin(km)
        zero = ZeroRedundancyOptimizer(km.parameters(), optimizer_class=keras.optimizers.Adam, lr=1e-2, beta_1=0.8)
        direct = keras.optimizers.Adam(learning_rate=1e-2, beta_1=0.8).build(twin.parameters())
        for net, opt in ((km, zero), (twin, direct)):
            net.train()
            for x, y in _data():
                torch.nn.functional.cross_entropy(net(x), y).backward()
                opt.step()
                opt.zero_grad()
        assert isinstance(zero.optim, keras.optimizers.Adam) and int(zero.optim.iterations) == 4
        _assert_same_weights(km, twin)
    finally:
        dist.destroy_process_group()
