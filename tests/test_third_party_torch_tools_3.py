"""kerasish models inside more torch ecosystem tools: timm, torchvision and
Hugging Face transformers.

Each kerasish run is compared with a hand-written torch twin holding the same
weights and driven by the same tool (and, for timm's loss, with real Keras's
loss on the same numbers). Each tool's tests skip cleanly when that tool is
not installed. The registry's torchvision wheels are CUDA builds; on CPU torch
tests/conftest.py declares the two op schemas torchvision's import needs (see
`_torchvision_ops_schemas` there), so its Python (models, transforms.v2, fx
feature extraction, StochasticDepth, FeaturePyramidNetwork) runs here.
"""

from __future__ import annotations

import copy
import logging
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kerasish as keras

logging.getLogger("transformers").setLevel(logging.ERROR)


def _need(name):
    return pytest.importorskip(name, reason=f"`{name}` (a `test` extra) is not installed")


def _glorot(seed):
    return keras.initializers.GlorotUniform(seed=seed)


def _linear_from(dense):
    """A torch Linear holding a built kerasish Dense's weights (Keras kernel layout (in, out))."""
    kernel, bias = (torch.as_tensor(w) for w in dense.get_weights())
    lin = torch.nn.Linear(kernel.shape[0], kernel.shape[1])
    with torch.no_grad():
        lin.weight.copy_(kernel.T)
        lin.bias.copy_(bias)
    return lin


def _conv_from(conv):
    """A torch Conv2d holding a built kerasish Conv2D's weights (Keras kernel layout (kh, kw, in, out)),
    for 'valid' padding and stride 1."""
    kernel, bias = (torch.as_tensor(w) for w in conv.get_weights())
    c = torch.nn.Conv2d(kernel.shape[2], kernel.shape[3], tuple(kernel.shape[:2]))
    with torch.no_grad():
        c.weight.copy_(kernel.permute(3, 2, 0, 1))
        c.bias.copy_(bias)
    return c


def _close(a, b, atol=1e-5, rtol=1e-5):
    np.testing.assert_allclose(torch.as_tensor(a).detach().numpy(), torch.as_tensor(b).detach().numpy(),
                               atol=atol, rtol=rtol)


def _sgd_steps(model, x, y, steps=3, lr=0.1, momentum=0.9):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


# ----------------------------------------------------------------------------------------------- timm


def test_timm_backbone_with_kerasish_head_trains_like_its_torch_twin():
    timm = _need("timm")
    backbone = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    head = keras.layers.Dense(3, kernel_initializer=_glorot(1))
    model = torch.nn.Sequential(backbone, head)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 1])
    model.eval()
    model(x)  # builds the head
    twin = torch.nn.Sequential(copy.deepcopy(backbone), _linear_from(head))
    with torch.no_grad():
        _close(model(x), twin(x))
    _sgd_steps(model, x, y, steps=2, lr=0.01, momentum=0.0)
    _sgd_steps(twin, x, y, steps=2, lr=0.01, momentum=0.0)
    with torch.no_grad():
        _close(model(x), twin(x), atol=1e-4, rtol=1e-4)
    _close(head.kernel.T, twin[1].weight, atol=1e-5)
    bn = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    twin_bn = [m for m in twin[0].modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    _close(bn.running_mean, twin_bn.running_mean, atol=1e-5)


def test_kerasish_channels_first_backbone_with_timm_head_trains_like_its_torch_twin():
    timm = _need("timm")
    from timm.layers import ClassifierHead

    backbone = keras.Sequential([
        keras.Input((3, 12, 12)),
        keras.layers.Conv2D(6, 3, data_format="channels_first", kernel_initializer=_glorot(2)),
        keras.layers.ReLU(),
        keras.layers.Conv2D(8, 3, data_format="channels_first", kernel_initializer=_glorot(3)),
    ])
    head = ClassifierHead(8, 3, pool_type="avg")
    model = torch.nn.Sequential(backbone, head)
    twin = torch.nn.Sequential(_conv_from(backbone.layers[0]), torch.nn.ReLU(), _conv_from(backbone.layers[2]),
                               copy.deepcopy(head))
    x, y = torch.randn(4, 3, 12, 12), torch.tensor([2, 0, 1, 1])
    with torch.no_grad():
        _close(model(x), twin(x))
    _sgd_steps(model, x, y)
    _sgd_steps(twin, x, y)
    with torch.no_grad():
        _close(model(x), twin(x), atol=1e-5)
    _close(backbone.layers[0].kernel.permute(3, 2, 0, 1), twin[0].weight)
    assert timm is not None


def _ln_model():
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, kernel_initializer=_glorot(4)),
        keras.layers.LayerNormalization(),
        keras.layers.Dense(3, kernel_initializer=_glorot(5)),
    ])


def _ln_twin(km):
    ln = torch.nn.LayerNorm(8, eps=1e-3)  # Keras's LayerNormalization epsilon
    with torch.no_grad():
        gamma, beta = km.layers[1].get_weights()
        ln.weight.copy_(torch.as_tensor(gamma))
        ln.bias.copy_(torch.as_tensor(beta))
    return torch.nn.Sequential(_linear_from(km.layers[0]), ln, _linear_from(km.layers[2]))


def test_timm_create_optimizer_v2_decays_kernels_not_biases_or_norms_as_torch():
    timm = _need("timm")
    from timm.optim import create_optimizer_v2

    model = _ln_model()
    twin = _ln_twin(model)
    opt = create_optimizer_v2(model, "adamw", lr=0.05, weight_decay=0.1)
    twin_opt = create_optimizer_v2(twin, "adamw", lr=0.05, weight_decay=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g["weight_decay"]: sorted(names[id(p)] for p in g["params"]) for g in opt.param_groups}
    assert groups == {0.1: ["dense.kernel", "dense_1.kernel"],
                      0.0: ["dense.bias", "dense_1.bias", "layer_normalization.beta", "layer_normalization.gamma"]}
    assert sorted(len(g["params"]) for g in opt.param_groups) == sorted(len(g["params"]) for g in twin_opt.param_groups)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    model.train()
    for m, o in ((model, opt), (twin, twin_opt)):
        for _ in range(4):
            loss = F.cross_entropy(m(x), y)
            o.zero_grad()
            loss.backward()
            o.step()
    _close(model.layers[0].kernel.T, twin[0].weight, atol=1e-5)
    _close(model.layers[1].gamma, twin[1].weight, atol=1e-5)
    assert timm is not None


def test_timm_param_groups_of_an_unbuilt_model_are_refused():
    """An unbuilt Dense's kernel is a placeholder without its rank: timm (deciding weight decay by
    `param.ndim`) would put it in the no-decay group, silently; kerasish refuses the walk."""
    _need("timm")
    from timm.optim import create_optimizer_v2

    model = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"Layer 'dense' \(Dense\) is not built.*timm"):
        create_optimizer_v2(model, "adamw", weight_decay=0.05)


def _fit_with_scheduler(make_scheduler, step_scheduler, epochs=3):
    """A kerasish model trained by `fit` with a Keras SGD driven by a scheduler made before the first
    step (the optimizer unbuilt), and its torch twin trained with torch SGD and the same scheduler."""
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    y = np.random.default_rng(1).normal(size=(16, 3)).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, kernel_initializer=_glorot(6))])
    twin = _linear_from(model.layers[0])
    opt = keras.optimizers.SGD(0.1)
    sched = make_scheduler(opt)
    rates = []

    def on_epoch_end(epoch, logs):
        step_scheduler(sched, epoch)
        rates.append(float(opt.learning_rate))

    model.compile(optimizer=opt, loss="mse")
    model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)])
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    twin_sched = make_scheduler(twin_opt)
    twin_rates = []
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for epoch in range(epochs):
        for i in range(0, 16, 8):
            loss = F.mse_loss(twin(xt[i:i + 8]), yt[i:i + 8])
            twin_opt.zero_grad()
            loss.backward()
            twin_opt.step()
        step_scheduler(twin_sched, epoch)
        twin_rates.append(twin_opt.param_groups[0]["lr"])
    np.testing.assert_allclose(rates, twin_rates, rtol=1e-6)
    _close(model.layers[0].kernel.T, twin.weight, atol=1e-6)
    return rates


def test_timm_scheduler_made_before_the_first_step_drives_a_keras_optimizer():
    """Before, an unbuilt Keras optimizer had no param group: timm's scheduler recorded none and the
    learning rate silently stayed 0.1."""
    _need("timm")
    from timm.scheduler import StepLRScheduler

    rates = _fit_with_scheduler(lambda opt: StepLRScheduler(opt, decay_t=1, decay_rate=0.5),
                                lambda sched, epoch: sched.step(epoch + 1))
    np.testing.assert_allclose(rates, [0.05, 0.025, 0.0125], rtol=1e-6)


def test_timm_cosine_scheduler_with_warmup_per_update():
    _need("timm")
    from timm.scheduler import CosineLRScheduler

    model = _ln_model()
    twin = _ln_twin(model)
    opt = keras.optimizers.Adam(0.01).build(model.parameters())
    twin_opt = keras.optimizers.Adam(0.01).build(twin.parameters())
    scheds = [CosineLRScheduler(o, t_initial=6, warmup_t=2, warmup_lr_init=1e-4, t_in_epochs=False)
              for o in (opt, twin_opt)]
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    model.train()
    for step in range(6):
        for m, o, s in ((model, opt, scheds[0]), (twin, twin_opt, scheds[1])):
            loss = F.cross_entropy(m(x), y)
            o.zero_grad()
            loss.backward()
            o.step()
            s.step_update(step + 1)
        assert opt.param_groups[0]["lr"] == twin_opt.param_groups[0]["lr"]
    _close(model.layers[2].kernel.T, twin[2].weight, atol=1e-5)


def test_a_scheduler_attached_before_a_multi_group_build_is_refused():
    opt = keras.optimizers.SGD(0.1)
    torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="scheduler was attached before the build"):
        opt.build([{"params": [a]}, {"params": [b], "lr": 0.5}])


def test_timm_model_ema_v3_over_a_kerasish_model_with_batchnorm():
    _need("timm")
    from timm.utils import ModelEmaV3

    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, kernel_initializer=_glorot(7)),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(3, kernel_initializer=_glorot(8)),
    ])
    ema = ModelEmaV3(model, decay=0.8)
    assert isinstance(ema.module, keras.Sequential)
    expected = {k: v.detach().clone().double() for k, v in model.state_dict().items()}
    assert "batch_normalization.moving_variance" in expected
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for step in range(4):
        loss = F.cross_entropy(model(torch.randn(16, 6)), torch.randint(0, 3, (16,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(model)  # (no `step`: the constant decay, no warm-up)
        for k, v in model.state_dict().items():  # the EMA from its definition, in float64
            expected[k] = 0.8 * expected[k] + 0.2 * v.detach().double()
    got = ema.module.state_dict()
    assert set(got) == set(expected)
    for k in expected:
        _close(got[k].double(), expected[k], atol=1e-6)
    # the EMA copy is a working kerasish model, in inference mode (moving statistics)
    x = torch.randn(5, 6)
    ref = copy.deepcopy(model)
    ref.load_state_dict({k: v.float() for k, v in expected.items()})
    ref.eval()
    with torch.no_grad():
        _close(ema.module(x), ref(x), atol=1e-5)


def test_timm_mixup_and_soft_target_cross_entropy_with_a_kerasish_classifier(keras_ref):
    _need("timm")
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy

    model = _ln_model()
    twin = _ln_twin(model)
    mixup = Mixup(mixup_alpha=0.4, num_classes=3, label_smoothing=0.1)
    x, y = torch.randn(8, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    np.random.seed(3)
    xm, ym = mixup(x.clone(), y)
    assert ym.shape == (8, 3)
    criterion = SoftTargetCrossEntropy()
    # the loss on kerasish logits equals real Keras's categorical crossentropy on the same numbers
    with torch.no_grad():
        logits = model(xm)
    ref = keras_ref.losses.CategoricalCrossentropy(from_logits=True)(ym.numpy(), logits.numpy())
    _close(criterion(logits, ym), float(ref), atol=1e-6)
    opt, twin_opt = (torch.optim.SGD(m.parameters(), lr=0.2) for m in (model, twin))
    model.train()
    for m, o in ((model, opt), (twin, twin_opt)):
        for _ in range(3):
            loss = criterion(m(xm), ym)
            o.zero_grad()
            loss.backward()
            o.step()
    _close(model.layers[2].kernel.T, twin[2].weight, atol=1e-6)


def test_timm_layers_inside_a_kerasish_functional_model_via_torch_module_wrapper():
    _need("timm")
    from timm.layers import Mlp

    torch.manual_seed(0)
    mlp = Mlp(8, hidden_features=16, out_features=4)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, kernel_initializer=_glorot(9))(inputs)
    h = keras.layers.TorchModuleWrapper(mlp)(h)
    outputs = keras.layers.Dense(3, kernel_initializer=_glorot(10))(h)
    model = keras.Model(inputs, outputs)
    dense_in, dense_out = model.layers[1], model.layers[3]
    twin = torch.nn.Sequential(_linear_from(dense_in), copy.deepcopy(mlp), _linear_from(dense_out))
    assert {id(p) for p in mlp.parameters()} <= {id(p) for p in model.parameters()}
    assert len(model.trainable_weights) == 4 + len(list(mlp.parameters()))
    x = np.random.default_rng(2).normal(size=(16, 6)).astype("float32")
    y = np.random.default_rng(3).integers(0, 3, 16)
    with torch.no_grad():
        _close(model(torch.as_tensor(x)), twin(torch.as_tensor(x)))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    for _ in range(3):
        loss = F.cross_entropy(twin(torch.as_tensor(x)), torch.as_tensor(y))
        twin_opt.zero_grad()
        loss.backward()
        twin_opt.step()
    _close(mlp.fc1.weight, twin[1].fc1.weight, atol=1e-6)
    with torch.no_grad():
        _close(model(torch.as_tensor(x)), twin(torch.as_tensor(x)), atol=1e-5)
