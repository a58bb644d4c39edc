"""kerasish models inside the torch tools people train with: PyTorch
Lightning (`LightningModule` + `Trainer`) and torchinfo.

Each kerasish run is compared with a hand-written torch twin holding the
same weights, trained by the same Trainer (Lightning drives `train()` /
`eval()`, the optimizer's `step(closure)`, `state_dict` checkpoints).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch

import kerasish as keras

L = pytest.importorskip("lightning", reason="the `lightning` test extra is not installed")
torchinfo = pytest.importorskip("torchinfo", reason="the `torchinfo` test extra is not installed")

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
logging.getLogger("lightning.fabric").setLevel(logging.ERROR)


def _kerasish_net(dropout=0.0, bn=False, built=True):
    layers = [keras.Input((6,))] if built else []
    layers += [keras.layers.Dense(8)]
    if bn:
        layers.append(keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5))
    layers += [keras.layers.Activation("relu"), keras.layers.Dropout(dropout), keras.layers.Dense(3)]
    return keras.Sequential(layers)


class _Twin(torch.nn.Module):
    """The same network in plain torch, with the kerasish model's weights copied in."""

    def __init__(self, km, bn=False):
        super().__init__()
        self.l1 = torch.nn.Linear(6, 8)
        self.bn = torch.nn.BatchNorm1d(8, eps=1e-5, momentum=0.1) if bn else None
        self.l2 = torch.nn.Linear(8, 3)
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
        return self.l2(torch.relu(h))


class _Module(L.LightningModule):
    def __init__(self, net, optimizer="torch"):
        super().__init__()
        self.net = net
        self.optimizer_kind = optimizer
        self.val_outputs = []
        self.train_modes = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.train_modes.append(self.net.training)
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        self.val_outputs.append(self.net(batch[0]).detach().clone())

    def configure_optimizers(self):
        if self.optimizer_kind == "keras":  # (a Keras optimizer is a torch optimizer: on the twin too)
            return keras.optimizers.Adam(1e-2).build(self.net.parameters())
        return torch.optim.Adam(self.net.parameters(), lr=1e-2, eps=1e-7)


def _data(n=64):
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(n, 6)).astype("float32"))
    y = torch.as_tensor(rng.integers(0, 3, n))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def _trainer(max_epochs=2, **kwargs):
    kwargs.setdefault("enable_checkpointing", False)
    return L.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, **kwargs)


def _fit(module, trainer, data, val=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice (num_workers, ...)
        trainer.fit(module, data, val, **kwargs)


def _kernel_pairs(km, twin):
    w = km.get_weights()
    return [(w[0], twin.l1.weight.detach().numpy().T), (w[-2], twin.l2.weight.detach().numpy().T),
            (w[-1], twin.l2.bias.detach().numpy())]


@pytest.mark.parametrize("optimizer", ["torch", "keras"])
def test_lightning_trains_a_kerasish_model_like_its_torch_twin(optimizer):
    """torch's Adam, or a Keras Adam (Lightning calls its `step(closure)`), on both. The kerasish model
    is in training mode although nobody called `train()`: Lightning keeps the modes modules start
    with, and a kerasish model registered in a torch module starts in training mode, as torch's do."""
    data = _data()
    km = _kerasish_net(bn=True)
    twin = _Twin(km, bn=True)
    module = _Module(km, optimizer)
    _fit(module, _trainer(), data)
    _fit(_Module(twin, optimizer), _trainer(), data)
    assert module.train_modes and all(module.train_modes)
    for a, b in _kernel_pairs(km, twin):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # BatchNormalization's moving statistics followed Lightning's train() mode, as nn.BatchNorm1d's did
    np.testing.assert_allclose(km.layers[1].moving_mean.detach().numpy(), twin.bn.running_mean.numpy(),
                               rtol=1e-5, atol=1e-6)


def test_lightning_modes_drive_dropout_and_batchnorm():
    """Lightning switches `train()` / `eval()`: kerasish's Dropout is active in training_step and
    inactive in validation_step, and BatchNormalization uses its moving statistics in validation."""
    data = _data()
    km = _kerasish_net(dropout=0.5, bn=True)
    module = _Module(km)
    _fit(module, _trainer(max_epochs=1), data, data)
    assert module.train_modes and all(module.train_modes)
    km.eval()
    expected = torch.cat([km(x) for x, _ in data]).detach()
    np.testing.assert_allclose(torch.cat(module.val_outputs).numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)
    # while training, the same inputs give other outputs (dropout masks, batch statistics)
    km.train()
    x = next(iter(data))[0]
    assert not torch.allclose(km(x), km.eval()(x))


def test_lightning_checkpoint_resume_equals_an_uninterrupted_run(tmp_path):
    """`trainer.save_checkpoint` stores the kerasish model's `state_dict` and the Keras optimizer's
    (with its iteration count); `fit(ckpt_path=...)` resumes to the uninterrupted run's weights."""
    data = _data()
    km = _kerasish_net()
    init = km.get_weights()
    _fit(_Module(km, "keras"), _trainer(max_epochs=4), data)

    first = _kerasish_net()
    first.set_weights(init)
    trainer = _trainer(max_epochs=2)
    _fit(_Module(first, "keras"), trainer, data)
    path = str(tmp_path / "half.ckpt")
    trainer.save_checkpoint(path)
    resumed_net = _kerasish_net()  # other initial weights: everything must come from the checkpoint
    resumed = _Module(resumed_net, "keras")
    _fit(resumed, _trainer(max_epochs=4), data, ckpt_path=path)
    assert int(resumed.optimizers().optimizer.iterations) == 16
    for a, b in zip(resumed_net.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_lightning_with_an_unbuilt_model_and_bf16_autocast():
    """An unbuilt kerasish model (lazy weights until its first batch; seeded initializers make the same
    weights as a built twin's) with torch's Adam made in `configure_optimizers` before any call, under
    Lightning's `bf16-mixed` CPU autocast, trains like its torch twin under the same autocast."""

    def seeded_net(built):
        return keras.Sequential(([keras.Input((6,))] if built else []) + [
            keras.layers.Dense(8, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed=1)),
            keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(seed=2)),
        ])

    data = _data()
    twin = _Twin(seeded_net(True))
    lazy = seeded_net(False)
    module = _Module(lazy)
    assert not lazy.built
    _fit(module, _trainer(precision="bf16-mixed"), data)
    _fit(_Module(twin), _trainer(precision="bf16-mixed"), data)
    assert lazy.built and all(w.dtype == torch.float32 for w in lazy.parameters())
    for a, b in _kernel_pairs(lazy, twin):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_torchinfo_summary_counts_what_keras_counts():
    """torchinfo counts parameters (Keras's trainable weights); Keras's `count_params` also counts the
    non-trainable weights, which kerasish keeps as buffers (BatchNormalization's moving statistics)."""
    km = _kerasish_net(bn=True)
    stats = torchinfo.summary(km, input_size=(4, 6), verbose=0)
    trainable = sum(int(np.prod(w.shape)) for w in km.trainable_weights)
    moving = sum(int(np.prod(w.shape)) for w in km.non_trainable_weights)
    assert stats.total_params == stats.trainable_params == trainable
    assert km.count_params() == trainable + moving and moving == 16
    assert [tuple(s.output_size) for s in stats.summary_list if s.depth == 1][-1] == (4, 3)


def test_only_a_users_torch_module_switches_kerasish_sublayers_to_training_mode():
    """A kerasish layer registered in a user's torch module (or a fresh torch container) starts in
    training mode, as torch submodules do; in a user's Keras layer or model it keeps Keras's "no mode"
    state (its Dropout is off in a plain call), and torch's wrappers (`torch.compile`) change nothing."""

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = keras.layers.Dropout(0.5)

    class KerasBlock(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.drop = keras.layers.Dropout(0.5)

        def call(self, x):
            return self.drop(x)

    assert TorchNet().drop.training
    assert torch.nn.Sequential(keras.layers.Dropout(0.5))[0].training
    block = KerasBlock()
    assert not block.drop.training
    x = torch.ones(4, 8)
    torch.testing.assert_close(block(x), x)  # Keras's rule: a plain call is inference
    model = _kerasish_net(dropout=0.5)
    torch.compile(model)
    assert not any(m.training for m in model.modules())
