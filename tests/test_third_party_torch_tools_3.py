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
import importlib
import logging
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kerasish as keras

logging.getLogger("transformers").setLevel(logging.ERROR)


def _need(name):
    try:
        return importlib.import_module(name)
    except ImportError as e:  # (not installed, or timm installed without torchvision)
        pytest.skip(f"`{name}` (a `test` extra) cannot be imported: {e}")


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


def _fit_with_scheduler(make_scheduler, step_scheduler, epochs=3, loss_scale=False):
    """A kerasish model trained by `fit` with a Keras SGD driven by a scheduler made before the first
    step (the optimizer unbuilt), and its torch twin trained with torch SGD and the same scheduler."""
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    y = np.random.default_rng(1).normal(size=(16, 3)).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, kernel_initializer=_glorot(6))])
    twin = _linear_from(model.layers[0])
    opt = keras.optimizers.SGD(0.1)
    sched = make_scheduler(keras.optimizers.LossScaleOptimizer(opt) if loss_scale else opt)
    rates = []

    def on_epoch_end(epoch, logs):
        step_scheduler(sched, epoch)
        rates.append(float(opt.learning_rate))

    model.compile(optimizer=sched.optimizer, loss="mse")
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


# kerasish's `fit` updates through the Keras `apply` path, not `optimizer.step()`: `apply` records the step as
# torch's `step()` wrapper does, so torch's LR scheduler does not warn that it was stepped first (it did)
_STEP_ORDER_WARNING = pytest.mark.filterwarnings("error:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")


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


@_STEP_ORDER_WARNING
def test_a_torch_scheduler_made_on_an_unbuilt_loss_scale_optimizer_drives_the_inner_rate():
    """The wrapper shares its inner optimizer's groups from the start: LambdaLR records the inner rate (0.1),
    not the wrapper's own 0.0 (which would have scheduled the rate to 0 once built, silently)."""
    rates = _fit_with_scheduler(lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 ** (e + 1)),
                                lambda sched, epoch: sched.step(), loss_scale=True)
    np.testing.assert_allclose(rates, [0.025, 0.0125, 0.00625], rtol=1e-6)


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
    for _ in range(4):
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


# ---------------------------------------------------------------------------------------- torchvision


def _images(n=8, size=10):
    rng = np.random.default_rng(4)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)], rng.integers(0, 3, n)


class _ImageSet(torch.utils.data.Dataset):
    def __init__(self, transform):
        self.images, self.labels = _images()
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), int(self.labels[i])


def _v2_pipeline(extra=()):
    from torchvision.transforms import v2

    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(mean=[0.5, 0.4, 0.3], std=[0.25, 0.2, 0.3]), *extra])


def _image_model(data_format):
    shape = (3, 10, 10) if data_format == "channels_first" else (10, 10, 3)
    return keras.Sequential([
        keras.Input(shape),
        keras.layers.Conv2D(4, 3, data_format=data_format, kernel_initializer=_glorot(11)),
        keras.layers.GlobalAveragePooling2D(data_format=data_format),
        keras.layers.Dense(3, kernel_initializer=_glorot(12)),
    ])


class _ImageTwin(torch.nn.Module):
    def __init__(self, km):
        super().__init__()
        self.conv, self.fc = _conv_from(km.layers[0]), _linear_from(km.layers[2])

    def forward(self, x):  # NCHW
        return self.fc(self.conv(x).mean((2, 3)))


def test_torchvision_transforms_v2_in_a_dataloader_feed_a_channels_first_model_and_fit():
    _need("torchvision")
    loader = torch.utils.data.DataLoader(_ImageSet(_v2_pipeline()), batch_size=4, shuffle=False)
    xb, yb = next(iter(loader))
    images, labels = _images()
    # the pipeline's numbers, from its definition: HWC uint8 -> CHW float in [0, 1], normalised per channel
    ref = (np.stack(images[:4]).astype(np.float64) / 255 - [0.5, 0.4, 0.3]) / [0.25, 0.2, 0.3]
    _close(xb.double(), torch.as_tensor(ref.transpose(0, 3, 1, 2)), atol=1e-5)
    model = _image_model("channels_first")
    twin = _ImageTwin(model)
    with torch.no_grad():
        _close(model(xb), twin(xb))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(loader, epochs=2, verbose=0)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    for _ in range(2):
        for xt, yt in loader:
            loss = F.cross_entropy(twin(xt), yt)
            twin_opt.zero_grad()
            loss.backward()
            twin_opt.step()
    _close(model.layers[2].kernel.T, twin.fc.weight, atol=1e-6)
    with torch.no_grad():
        _close(model(xb), twin(xb), atol=1e-5)


@pytest.mark.filterwarnings("ignore:Model 'sequential' was constructed with shape:UserWarning")
def test_torchvision_chw_batches_into_a_channels_last_model_raise_or_are_permuted():
    _need("torchvision")
    from torchvision.transforms import v2

    model = _image_model("channels_last")
    chw = next(iter(torch.utils.data.DataLoader(_ImageSet(_v2_pipeline()), batch_size=4)))[0]
    with pytest.raises(ValueError, match=r"expected axis -1 of input shape to have value 3"):
        model(chw)
    hwc_pipeline = _v2_pipeline([v2.Lambda(lambda t: t.permute(1, 2, 0))])
    hwc = next(iter(torch.utils.data.DataLoader(_ImageSet(hwc_pipeline), batch_size=4)))[0]
    with torch.no_grad():
        _close(model(hwc), _ImageTwin(model)(chw))


def test_torchvision_resnet18_with_a_kerasish_dense_fc_trains_like_its_torch_twin():
    torchvision = _need("torchvision")
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    model.fc = keras.layers.Dense(3, kernel_initializer=_glorot(13))
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 2, 1, 2])
    model.eval()
    with torch.no_grad():
        model(x)  # builds the Dense head
    twin = copy.deepcopy(model)
    twin.fc = _linear_from(model.fc)
    assert [n for n, _ in model.named_parameters()][-2:] == ["fc.kernel", "fc.bias"]
    _sgd_steps(model, x, y, steps=2, lr=0.01, momentum=0.0)
    _sgd_steps(twin, x, y, steps=2, lr=0.01, momentum=0.0)
    _close(model.fc.kernel.T, twin.fc.weight, atol=1e-5)
    _close(model.layer1[0].conv1.weight, twin.layer1[0].conv1.weight, atol=1e-5)
    # the outputs loosely: layer4's BatchNorm normalises 4 values per channel (batch 4, 1x1), which
    # amplifies float32 rounding (~1e-7 at the start) about 1e5-fold in two steps, as in float64 (5e-9 -> 4e-4)
    model.train()
    twin.train()
    with torch.no_grad():
        _close(model(x), twin(x), atol=2e-2, rtol=1e-2)


class _ResidualDrop(torch.nn.Module):
    """x + StochasticDepth(conv(x)), the conv a kerasish 'same' Conv2D (channels_first) or its torch twin."""

    def __init__(self, conv):
        super().__init__()
        from torchvision.ops import StochasticDepth

        self.conv = conv
        self.drop = StochasticDepth(0.5, "row")

    def forward(self, x):
        return x + self.drop(self.conv(x))


def test_torchvision_stochastic_depth_and_fpn_around_kerasish_convs():
    _need("torchvision")
    from torchvision.ops import FeaturePyramidNetwork

    conv = keras.layers.Conv2D(3, 3, padding="same", data_format="channels_first", kernel_initializer=_glorot(14))
    conv.build((None, 3, 8, 8))
    block = _ResidualDrop(conv)
    twin_conv = _conv_from(conv)
    twin_conv.padding = (1, 1)  # Keras "same" for a 3x3 kernel, stride 1
    twin = _ResidualDrop(twin_conv)
    x = torch.randn(6, 3, 8, 8)
    block.train()
    twin.train()
    torch.manual_seed(5)
    out = block(x)
    torch.manual_seed(5)
    twin_out = twin(x)
    _close(out, twin_out, atol=1e-5)
    dropped = [i for i in range(6) if torch.equal(out[i], x[i])]
    assert 0 < len(dropped) < 6  # some rows kept, some dropped (seeded)
    out.square().sum().backward()
    twin_out.square().sum().backward()
    _close(conv.kernel.grad.permute(3, 2, 0, 1), twin_conv.weight.grad, atol=1e-4)
    block.eval()
    with torch.no_grad():
        _close(block(x), x + conv(x))

    # an FPN over features of two kerasish convs (the second strided)
    c1 = keras.layers.Conv2D(4, 3, data_format="channels_first", kernel_initializer=_glorot(15))
    c2 = keras.layers.Conv2D(8, 3, strides=2, data_format="channels_first", kernel_initializer=_glorot(16))
    f1 = c1(x)
    f2 = c2(f1)
    fpn = FeaturePyramidNetwork([4, 8], 5)
    t1, t2 = _conv_from(c1), _conv_from(c2)
    t2.stride = (2, 2)
    twin_fpn = copy.deepcopy(fpn)
    got = fpn({"p1": f1, "p2": f2})
    want = twin_fpn({"p1": t1(x), "p2": t2(t1(x))})
    assert list(got) == ["p1", "p2"] and got["p2"].shape == (6, 5, 2, 2)
    for k in got:
        _close(got[k], want[k], atol=1e-5)
    sum(v.sum() for v in got.values()).backward()
    sum(v.sum() for v in want.values()).backward()
    _close(c1.kernel.grad.permute(3, 2, 0, 1), t1.weight.grad, atol=1e-4)


def test_torchvision_create_feature_extractor():
    torchvision = _need("torchvision")
    from torchvision.models.feature_extraction import create_feature_extractor

    # on a kerasish model: fx cannot trace the Keras call pipeline -- a clear error, not a wrong graph
    with pytest.raises(RuntimeError, match=r"symbolic_trace cannot trace through the kerasish layer"):
        create_feature_extractor(_image_model("channels_last"), return_nodes=["conv2d"])
    # a torch model holding kerasish layers: kept whole as leaf modules, the features and output are right
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    model.fc = keras.layers.Dense(3, kernel_initializer=_glorot(17))
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        features = model.avgpool(model.layer4(model.layer3(model.layer2(model.layer1(
            model.maxpool(model.relu(model.bn1(model.conv1(x)))))))))
    extractor = create_feature_extractor(model, return_nodes={"avgpool": "pooled", "fc": "logits"},
                                         tracer_kwargs={"leaf_modules": [keras.Layer]})
    assert not model.training and not extractor.training
    with torch.no_grad():
        got = extractor(x)
    _close(got["pooled"], features)
    _close(got["logits"], expected)


# ------------------------------------------------------------------------------------ HF transformers


class _LossLogits(torch.nn.Module):
    """The small torch wrapper Trainer wants: `forward(x, labels)` -> {"loss", "logits"}."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, labels=None):
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
        return out


def _ln_model_named(ln_name):
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, kernel_initializer=_glorot(4)),
        keras.layers.LayerNormalization(name=ln_name),
        keras.layers.Dense(3, kernel_initializer=_glorot(5)),
    ])


@pytest.fixture
def _no_hf_datasets(monkeypatch):
    """pytest puts tests/ on sys.path, where tests/datasets (kerasish's keras.datasets tests, a namespace
    package) passes transformers' `find_spec("datasets")` check for Hugging Face `datasets`: Trainer then
    takes it for that package. Tell Trainer the truth when HF datasets is not installed."""
    import importlib.metadata

    _need("transformers")
    import transformers.trainer

    try:
        importlib.metadata.version("datasets")
    except importlib.metadata.PackageNotFoundError:
        monkeypatch.setattr(transformers.trainer, "is_datasets_available", lambda: False)


def _train_with_trainer(model, tmp_path):
    from transformers import Trainer, TrainingArguments

    rng = np.random.default_rng(5)
    data = [{"x": torch.as_tensor(rng.normal(size=6), dtype=torch.float32), "labels": int(rng.integers(0, 3))}
            for _ in range(24)]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=2,
                             learning_rate=0.05, weight_decay=0.1, lr_scheduler_type="linear", warmup_steps=2,
                             logging_strategy="no", save_strategy="no", report_to=[], use_cpu=True, seed=7,
                             disable_tqdm=True, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    return trainer


def test_transformers_trainer_trains_a_kerasish_model_like_its_torch_twin(tmp_path, _no_hf_datasets):
    km = _ln_model_named("layernorm")
    model, twin = _LossLogits(km), _LossLogits(_ln_twin(km))
    trainer = _train_with_trainer(model, tmp_path / "k")
    twin_trainer = _train_with_trainer(twin, tmp_path / "t")
    # Trainer's weight decay skips biases and norms by name: kerasish's `kernel`/`bias` read as torch's
    assert sorted(trainer.get_decay_parameter_names(model)) == ["net.dense.kernel", "net.dense_1.kernel"]
    assert sorted(twin_trainer.get_decay_parameter_names(twin)) == ["net.0.weight", "net.2.weight"]
    _close(km.layers[0].kernel.T, twin.net[0].weight, atol=1e-6)
    _close(km.layers[1].gamma, twin.net[1].weight, atol=1e-6)
    _close(km.layers[2].kernel.T, twin.net[2].weight, atol=1e-6)
    assert trainer.state.global_step == twin_trainer.state.global_step == 6


def test_transformers_trainer_decays_a_default_named_layer_normalization(tmp_path, _no_hf_datasets):
    """Documented difference: Trainer exempts `nn.LayerNorm` modules and names containing "norm" patterns
    (`layernorm`, `.norm.`, `_norm.`) from weight decay; Keras's default name `layer_normalization` matches
    none, so its gamma/beta are decayed unless the layer is named e.g. "layernorm" (as above)."""
    import transformers

    model = _LossLogits(_ln_model_named(None))
    trainer = transformers.Trainer(model=model, args=transformers.TrainingArguments(
        output_dir=str(tmp_path), report_to=[], use_cpu=True))
    assert "net.layer_normalization.gamma" in trainer.get_decay_parameter_names(model)


def _tiny_pretrained_classes():
    from transformers import PretrainedConfig, PreTrainedModel

    class TinyConfig(PretrainedConfig):
        model_type = "kerasish_tiny"

        def __init__(self, hidden=8, n_classes=3, **kwargs):
            self.hidden = hidden
            self.n_classes = n_classes
            super().__init__(**kwargs)

    class TinyModel(PreTrainedModel):
        config_class = TinyConfig

        def __init__(self, config):
            super().__init__(config)
            # built here (Input / build): from_pretrained makes the model on the meta device and loads the
            # checkpoint's keys, which an unbuilt layer does not have yet
            self.encoder = keras.Sequential([keras.Input((6,)), keras.layers.Dense(config.hidden),
                                             keras.layers.LayerNormalization()])
            self.head = keras.layers.Dense(config.n_classes)
            self.head.build((None, config.hidden))
            self.post_init()

        def forward(self, x, labels=None):
            logits = self.head(self.encoder(x))
            return {"loss": None if labels is None else F.cross_entropy(logits, labels), "logits": logits}

    return TinyConfig, TinyModel


def test_transformers_pretrained_model_with_kerasish_layers_save_and_load_pretrained(tmp_path):
    _need("transformers")
    from safetensors.torch import load_file

    TinyConfig, TinyModel = _tiny_pretrained_classes()
    model = TinyModel(TinyConfig())
    with torch.no_grad():  # weights that are not the initializers' (a trained model)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    x = torch.randn(4, 6)
    with torch.no_grad():
        expected = model(x)["logits"]
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert sorted(saved) == ["encoder.dense.bias", "encoder.dense.kernel", "encoder.layer_normalization.beta",
                             "encoder.layer_normalization.gamma", "head.bias", "head.kernel"]
    _close(saved["encoder.dense.kernel"], model.encoder.layers[0].get_weights()[0])  # Keras layout (in, out)
    loaded = TinyModel.from_pretrained(tmp_path)
    loaded.eval()
    assert not any(p.is_meta for p in loaded.parameters())
    with torch.no_grad():
        _close(loaded(x)["logits"], expected, atol=0, rtol=0)
    # kerasish layers keep their Keras dtype policy under from_pretrained(dtype=...): convert after loading
    half = TinyModel.from_pretrained(tmp_path).bfloat16().eval()
    assert half.head.kernel.dtype == torch.bfloat16
    with torch.no_grad():
        out = half(x.bfloat16())["logits"]
    assert out.dtype == torch.bfloat16
    _close(out.float(), expected, atol=0.1, rtol=0.05)


@_STEP_ORDER_WARNING
def test_transformers_get_scheduler_made_before_the_first_step_drives_a_keras_optimizer():
    """Before, torch's LambdaLR on an unbuilt Keras optimizer failed at its first `step()` (zip error)."""
    transformers = _need("transformers")
    rates = _fit_with_scheduler(
        lambda opt: transformers.get_scheduler("linear", opt, num_warmup_steps=1, num_training_steps=4),
        lambda sched, epoch: sched.step(), epochs=3)
    np.testing.assert_allclose(rates, [0.1, 2 / 3 * 0.1, 1 / 3 * 0.1], rtol=1e-6)


def test_transformers_trainer_resumes_a_kerasish_model_from_its_checkpoint(tmp_path, _no_hf_datasets):
    """Trainer's checkpoints (model.safetensors of the kerasish state_dict, torch AdamW state, scheduler,
    RNG): resuming from the epoch-2 checkpoint ends on the same weights as the uninterrupted run."""
    from transformers import Trainer, TrainingArguments

    rng = np.random.default_rng(6)
    data = [{"x": torch.as_tensor(rng.normal(size=6), dtype=torch.float32), "labels": int(rng.integers(0, 3))}
            for _ in range(16)]

    def run(model, resume=None):
        args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=3,
                                 learning_rate=0.05, weight_decay=0.1, warmup_steps=2, logging_strategy="no",
                                 save_strategy="epoch", report_to=[], use_cpu=True, seed=7, disable_tqdm=True)
        Trainer(model=model, args=args, train_dataset=data).train(resume_from_checkpoint=resume)
        return model

    start = _LossLogits(_ln_model_named("layernorm"))
    init = copy.deepcopy(start.state_dict())
    full = run(start)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    resumed = _LossLogits(_ln_model_named("layernorm"))
    resumed.load_state_dict(init)
    run(resumed, resume=str(tmp_path / "checkpoint-4"))
    for key, value in full.state_dict().items():
        _close(resumed.state_dict()[key], value, atol=0, rtol=0)


def test_transformers_trainer_with_a_keras_optimizer_and_its_schedule(tmp_path, _no_hf_datasets):
    """`Trainer(optimizers=(keras_optimizer, None))`: Trainer schedules it (linear with warm-up) and steps it
    the torch way. It must be built on the parameters first (Trainer never builds it): unbuilt, the first
    step raises kerasish's "has no variables to update"."""
    from transformers import Trainer, TrainingArguments

    rng = np.random.default_rng(8)
    data = [{"x": torch.as_tensor(rng.normal(size=6), dtype=torch.float32), "labels": int(rng.integers(0, 3))}
            for _ in range(16)]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=2,
                             lr_scheduler_type="linear", warmup_steps=1, logging_strategy="no", save_strategy="no",
                             report_to=[], use_cpu=True, seed=7, disable_tqdm=True, max_grad_norm=0)
    km = _ln_model_named("layernorm")
    model, twin = _LossLogits(km), _LossLogits(_ln_twin(km))
    with pytest.raises(ValueError, match="has no variables to update"):
        Trainer(model=model, args=args, train_dataset=data,
                optimizers=(keras.optimizers.AdamW(0.05, weight_decay=0.1), None)).train()
    rates = {}
    for name, m in (("kerasish", model), ("twin", twin)):
        opt = keras.optimizers.AdamW(0.05, weight_decay=0.1).build(m.parameters())
        trainer = Trainer(model=m, args=args, train_dataset=data, optimizers=(opt, None))
        trainer.train()
        rates[name] = (trainer.lr_scheduler.get_last_lr(), int(opt.iterations))
    assert rates["kerasish"] == rates["twin"] == ([0.0], 4)
    _close(km.layers[0].kernel.T, twin.net[0].weight, atol=1e-6)
    _close(km.layers[1].gamma, twin.net[1].weight, atol=1e-6)
