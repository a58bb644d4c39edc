"""Habits PyTorch users bring to kerasish layers (round 5): several threads
calling one model (also its first, building call), optimizers / EMA / dtype
and memory-format moves made before the first call, torch.func and
torch.autograd.functional over conv models, torch's parametrizations and
pruning in the Keras kernel layout, hooks with kwargs, `nn.init` functions,
`eval()` then `fit`, deep copies trained apart, preprocessing layers in
DataLoader workers, `torch.autocast` around every layer family.
References: the same pattern on `torch.nn` modules holding the same weights,
the same calls made one after the other, or NumPy from the maths."""

import copy
import sys
import threading
import warnings

import numpy as np
import pytest
import torch

import kerasish

L = kerasish.layers


@pytest.fixture
def _switch_often():
    """Thread switches every few microseconds, so races show up in a short test."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def _run_threads(targets):
    errors = []
    barrier = threading.Barrier(len(targets))

    def wrapped(fn):
        try:
            barrier.wait()
            fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(fn,)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]


def _copy_dense(linear, dense):
    with torch.no_grad():
        linear.weight.copy_(dense.kernel.T)
        linear.bias.copy_(dense.bias)


def _copy_conv(conv, keras_conv):
    with torch.no_grad():
        conv.weight.copy_(keras_conv.kernel.permute(3, 2, 0, 1))  # (kh, kw, in, out) -> (out, in, kh, kw)
        conv.bias.copy_(keras_conv.bias)


# ------------------------------------------------------------------- threads
class _Net(kerasish.Model):
    def __init__(self):
        super().__init__()
        self.d1 = L.Dense(8, activation="relu")
        self.bn = L.BatchNormalization()
        self.d2 = L.Dense(3)

    def call(self, x, training=None):
        return self.d2(self.bn(self.d1(x), training=training))


def _functional():
    i = kerasish.Input((None, 5))
    return kerasish.Model(i, L.GRU(3)(L.Dense(8)(i)))


_MAKERS = {
    "sequential": (lambda: kerasish.Sequential([L.Dense(8, activation="relu"), L.BatchNormalization(), L.Dense(3)]),
                   (4, 5)),
    "subclassed": (_Net, (4, 5)),
    "functional": (_functional, (2, 3, 5)),
}


@pytest.mark.parametrize("kind", sorted(_MAKERS))
def test_threads_making_the_first_call_of_one_model_build_it_once(kind, _switch_often):
    """Four threads call the same unbuilt model at once (a web server's first requests). Each gets what
    the built model computes, weights are created once, with the paths a single-threaded build gives."""
    make, shape = _MAKERS[kind]
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    kerasish.utils.clear_session()
    alone = make()
    with torch.no_grad():
        alone(x)
    want_paths = [w.path for w in alone.weights]
    for _ in range(3):  # a race, tried a few times (3: CI time; each try switches threads every 1 µs)
        kerasish.utils.clear_session()
        model = make()
        outs = [None] * 4

        def work(i):
            with torch.no_grad():
                outs[i] = model(x)

        _run_threads([lambda i=i: work(i) for i in range(4)])
        assert [w.path for w in model.weights] == want_paths
        assert len(list(model.parameters())) == len(alone.trainable_weights)
        with torch.no_grad():
            again = model(x)
        for out in outs:
            torch.testing.assert_close(out, again, rtol=0, atol=0)


def test_a_sublayer_first_used_in_a_later_call_gets_the_models_path(keras_ref):
    """A subclassed model whose `call` uses a layer only on some calls: that layer builds during a later,
    already-built call of the model. Keras gives its weights the model's path; so must kerasish (paths
    name the weights in `.keras` / `.weights.h5` files and in `get_layer`-free lookups)."""
    paths = []
    for lib in (kerasish, keras_ref):
        class Branchy(lib.Model):
            def __init__(self):
                super().__init__(name="branchy")
                self.d1 = lib.layers.Dense(4, name="first")
                self.d2 = lib.layers.Dense(2, name="later")

            def call(self, x, branch=False):
                h = self.d1(x)
                return self.d2(h) if branch else h

        model = Branchy()
        x = np.ones((2, 3), "float32")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras: "build() was called ... unbuilt state"
            model(x)
            model(x, branch=True)
        paths.append([w.path for w in model.weights])
    assert paths[0] == paths[1] == ["branchy/first/kernel", "branchy/first/bias", "branchy/later/kernel",
                                    "branchy/later/bias"]


def test_training_thread_and_no_grad_inference_thread_share_a_bn_model(_switch_often):
    """Thread A trains (`training=True`, grad on) while thread B predicts under `torch.no_grad` with no
    `training=`: B never sees A's mode (no dropout, no graph), and the moving statistics end where the
    same training calls made alone take them (BN's update counted once per call)."""
    torch.manual_seed(0)

    def make():
        return kerasish.Sequential([kerasish.Input((5,)), L.Dense(4), L.BatchNormalization(momentum=0.5),
                                    L.Dropout(0.5)])

    model, alone = make(), make()
    alone.set_weights(model.get_weights())
    g = torch.Generator().manual_seed(1)
    xa, xb = torch.randn(6, 5, generator=g), torch.randn(64, 5, generator=g)
    with torch.no_grad():
        expected_b = model(xb)
    steps = 60
    seen_b = []

    def train():
        for _ in range(steps):
            model(xa, training=True).sum().backward()

    def infer():
        with torch.no_grad():
            for _ in range(steps):
                out = model(xb)
                seen_b.append((out.requires_grad, bool((out == 0).any())))

    # B in inference mode draws no dropout masks: A's draws from the global generator are the ones
    # the calls made alone draw, so even A's gradients (through its dropout masks) agree
    torch.manual_seed(5)
    _run_threads([train, infer])
    torch.manual_seed(5)
    for _ in range(steps):
        alone(xa, training=True).sum().backward()
    assert seen_b == [(False, False)] * steps
    bn, bn_alone = model.layers[1], alone.layers[1]
    torch.testing.assert_close(bn.moving_mean.detach(), bn_alone.moving_mean.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(bn.moving_variance.detach(), bn_alone.moving_variance.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(model.layers[0].kernel.grad, alone.layers[0].kernel.grad, rtol=1e-5, atol=1e-6)
    # B's inference used the statistics A moved, never A's batch statistics: rerun it now, identical
    assert not torch.equal(expected_b, model(xb).detach())  # (the statistics did move)


# --------------------------------------------------------- torch.autocast
def _lstm_pair():
    ours = L.LSTM(4, return_sequences=True)
    ours.build((None, 3, 2))
    ref = torch.nn.LSTM(2, 4, batch_first=True)
    cell = ours.cell
    with torch.no_grad():  # Keras gates i, f, c, o = torch's i, f, g, o; one bias
        ref.weight_ih_l0.copy_(cell.kernel.T)
        ref.weight_hh_l0.copy_(cell.recurrent_kernel.T)
        ref.bias_ih_l0.copy_(cell.bias)
        ref.bias_hh_l0.zero_()
    return ours, (lambda x: ref(x)[0]), ref, (2, 3, 2)


def _gru_pair():
    ours = L.GRU(4, return_sequences=True)
    ours.build((None, 3, 2))
    ref = torch.nn.GRU(2, 4, batch_first=True)
    cell, u = ours.cell, 4

    def torch_order(w):  # Keras z, r, h -> torch r, z, n
        return torch.cat((w[..., u:2 * u], w[..., :u], w[..., 2 * u:]), dim=-1)

    with torch.no_grad():  # reset_after=True: bias rows are (input, recurrent)
        ref.weight_ih_l0.copy_(torch_order(cell.kernel).T)
        ref.weight_hh_l0.copy_(torch_order(cell.recurrent_kernel).T)
        ref.bias_ih_l0.copy_(torch_order(cell.bias[0]))
        ref.bias_hh_l0.copy_(torch_order(cell.bias[1]))
    return ours, (lambda x: ref(x)[0]), ref, (2, 3, 2)


def _dense_pair():
    ours = L.Dense(3)
    ours.build((None, 4))
    ref = torch.nn.Linear(4, 3)
    _copy_dense(ref, ours)
    return ours, ref, ref, (2, 4)


def _conv_pair():
    ours = L.Conv2D(3, 3, padding="same")
    ours.build((None, 5, 5, 2))
    ref = torch.nn.Conv2d(2, 3, 3, padding=1)
    _copy_conv(ref, ours)
    return ours, (lambda x: ref(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)), ref, (2, 5, 5, 2)


def _bn_pair():
    ours = L.BatchNormalization(epsilon=1e-5)
    ours.build((None, 3))
    ref = torch.nn.BatchNorm1d(3, eps=1e-5)
    return ours, (lambda x: ref.train()(x)), ref, (6, 3)


@pytest.mark.parametrize("make", [_dense_pair, _conv_pair, _lstm_pair, _gru_pair, _bn_pair],
                         ids=["Dense", "Conv2D", "LSTM", "GRU", "BatchNormalization"])
def test_autocast_bfloat16_gives_the_dtypes_and_gradients_of_torch_modules(make):
    """`with torch.autocast("cpu", dtype=torch.bfloat16)` around a kerasish layer: the output dtype is the
    one the torch module gives (bfloat16 for Linear/Conv/LSTM, float32 for GRU and BatchNorm on CPU, where
    torch's autocast leaves those ops alone), the numbers agree, and the gradients reach the float32
    weights as the torch module's do."""
    torch.manual_seed(0)
    ours, ref_call, ref, shape = make()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ours(x_ours, training=True)
        want = ref_call(x_ref)
    assert out.dtype == want.dtype
    torch.testing.assert_close(out.float(), want.float(), rtol=2e-2, atol=2e-2)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    (out.float() * g).sum().backward()
    (want.float() * g).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=3e-2, atol=3e-2)
    for p in ours.parameters():
        assert p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
    # the bias (same layout on both sides; GRU's and LSTM's compared through the input gradient)
    if isinstance(ours, (L.Dense, L.Conv2D)):
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=3e-2, atol=3e-2)
        kernel_grad = ours.kernel.grad.T if isinstance(ours, L.Dense) else ours.kernel.grad.permute(3, 2, 0, 1)
        torch.testing.assert_close(kernel_grad, ref.weight.grad, rtol=3e-2, atol=3e-2)


# ------------------------------------- optimizers, EMA, dtype, memory format before the first call
def _bn_mlp():
    return kerasish.Sequential([L.Dense(8), L.BatchNormalization(momentum=0.9), L.Dense(3)])


def _bn_mlp_twin(model):
    twin = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8, eps=1e-3, momentum=0.1),
                               torch.nn.Linear(8, 3)).to(model.layers[0].kernel.dtype)
    _copy_dense(twin[0], model.layers[0])
    _copy_dense(twin[2], model.layers[2])
    with torch.no_grad():
        twin[1].weight.copy_(model.layers[1].gamma)
        twin[1].bias.copy_(model.layers[1].beta)
    return twin


@pytest.mark.parametrize("dtype", [None, torch.float64])
def test_adam_and_lr_scheduler_made_before_the_first_call_train_like_the_torch_twin(dtype):
    """`model.double()` (or nothing), an optimizer over `model.parameters()` and `StepLR`, all before the
    model ever ran:
    the first training step builds the model inside the loop. Every weight trains, at the dtype asked,
    exactly as the torch twin trained from the built weights."""
    torch.manual_seed(0)
    model = _bn_mlp()
    if dtype is not None:
        model.to(dtype)
    model.train()
    # (SGD with momentum: Adam would blow the float32 rounding noise of the bias before BN, whose exact
    # gradient is zero, up to full steps, differently in two equal models)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    g = torch.Generator().manual_seed(1)
    want_dtype = dtype or torch.float32
    x, y = torch.randn(6, 4, generator=g, dtype=want_dtype), torch.randn(6, 3, generator=g, dtype=want_dtype)
    twin = twin_opt = twin_sched = None
    for step in range(4):
        out = model(x)
        if twin is None:  # the weights the first call built
            twin = _bn_mlp_twin(model)
            twin_opt = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
            twin_sched = torch.optim.lr_scheduler.StepLR(twin_opt, step_size=2, gamma=0.5)
        for o, m, s in ((opt, None, sched), (twin_opt, twin, twin_sched)):
            loss = torch.nn.functional.mse_loss(out if m is None else m(x), y)
            o.zero_grad()
            loss.backward()
            o.step()
            s.step()
    assert {p.dtype for p in model.parameters()} == {want_dtype}
    assert sum(len(group["params"]) for group in opt.param_groups) == len(model.trainable_weights) == 6
    tol = {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(model.layers[0].kernel.detach(), twin[0].weight.detach().T, **tol)
    torch.testing.assert_close(model.layers[1].gamma.detach(), twin[1].weight.detach(), **tol)
    torch.testing.assert_close(model.layers[2].bias.detach(), twin[2].bias.detach(), **tol)
    torch.testing.assert_close(model.layers[1].moving_mean.detach(), twin[1].running_mean, **tol)
    assert opt.param_groups[0]["lr"] == twin_opt.param_groups[0]["lr"] == 0.05 * 0.25


@pytest.mark.parametrize("how", ["half", "bfloat16"])
def test_half_and_bfloat16_before_the_first_call_build_in_that_dtype(how):
    torch.manual_seed(0)
    model = kerasish.Sequential([L.Conv2D(4, 3), L.BatchNormalization(), L.GlobalAveragePooling2D(), L.Dense(2)])
    getattr(model, how)()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    dtype = getattr(torch, how if how == "bfloat16" else "float16")
    model.train()
    out = model(torch.randn(2, 6, 6, 3, dtype=dtype))
    assert out.dtype == dtype
    assert {w.dtype for w in model.weights} == {dtype}
    before = [w.detach().clone() for w in model.trainable_weights]
    out.float().square().sum().backward()
    opt.step()
    assert all(w.grad is not None and w.grad.dtype == dtype for w in model.trainable_weights)
    kernels = [i for i, w in enumerate(model.trainable_weights) if w.name == "kernel"]
    assert len(kernels) == 2 and all(not torch.equal(model.trainable_weights[i].detach(), before[i]) for i in kernels)


def test_ema_averaged_model_before_the_first_call_fails_like_a_torch_lazy_module_and_after_matches():
    """`AveragedModel(model)` deep-copies the model. Made before the first call, the copy holds unbuilt
    weights: `update_parameters` raises torch's own uninitialized-parameter error, exactly as for
    `nn.LazyLinear` (never a silent EMA of nothing). Made after it, the EMA equals the torch twin's."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    lazy = torch.nn.Sequential(torch.nn.LazyLinear(3))
    model = _bn_mlp()
    errors = []
    for net in (lazy, model):
        early = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.9))
        net(torch.randn(2, 4))
        with pytest.raises(ValueError, match="uninitialized parameter") as info:
            early.update_parameters(net)
        errors.append(str(info.value))
    assert errors[0] == errors[1]

    torch.manual_seed(0)
    twin = _bn_mlp_twin(model)
    emas = [AveragedModel(m, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True) for m in (model, twin)]
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin)]
    model.train()
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x, y = torch.randn(6, 4, generator=g), torch.randn(6, 3, generator=g)
        for m, o, e in zip((model, twin), opts, emas):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step()
            e.update_parameters(m)
    tol = {"rtol": 1e-5, "atol": 1e-6}
    ours, theirs = emas[0].module, emas[1].module
    torch.testing.assert_close(ours.layers[0].kernel.detach(), theirs[0].weight.detach().T, **tol)
    torch.testing.assert_close(ours.layers[2].bias.detach(), theirs[2].bias.detach(), **tol)
    # (buffers averaged too: the moving mean; the variances differ by design, Keras's is biased)
    torch.testing.assert_close(ours.layers[1].moving_mean.detach(), theirs[1].running_mean.detach(), **tol)


def test_channels_last_before_the_first_call_changes_nothing_in_the_numbers():
    torch.manual_seed(0)
    model = kerasish.Sequential([L.Conv2D(4, 3, padding="same"), L.BatchNormalization(), L.Conv2D(2, 3)])
    model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 8, 8, 3, generator=torch.Generator().manual_seed(1))
    out = model(x)
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4, eps=1e-3),
                              torch.nn.Conv2d(4, 2, 3)).eval()
    _copy_conv(ref[0], model.layers[0])
    _copy_conv(ref[2], model.layers[2])
    want = ref(x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


# --------------------------------------------- torch.func / torch.autograd.functional on conv models
def _conv_model_and_twin():
    """Conv2D -> relu -> Flatten -> Dense and its NCHW torch twin (the Dense kernel's rows re-ordered from
    Keras's (h, w, c) flatten order to torch's (c, h, w))."""
    torch.manual_seed(0)
    model = kerasish.Sequential([kerasish.Input((6, 6, 2)), L.Conv2D(3, 3, activation="relu"), L.Flatten(),
                                 L.Dense(2)])
    twin = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(48, 2))
    _copy_conv(twin[0], model.layers[0])
    dense = model.layers[2]
    with torch.no_grad():
        twin[3].weight.copy_(dense.kernel.reshape(4, 4, 3, 2).permute(2, 0, 1, 3).reshape(48, 2).T)
        twin[3].bias.copy_(dense.bias)
    return model, twin


def test_per_sample_gradients_of_a_conv_model_match_the_torch_twin():
    """Opacus-style `vmap(grad(loss))` over `functional_call` for a Conv2D model."""
    from torch.func import functional_call, grad, vmap

    model, twin = _conv_model_and_twin()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 6, 6, 2, generator=g), torch.randn(5, 2, generator=g)

    def per_sample(net, inputs):
        params = {k: v.detach() for k, v in net.named_parameters()}

        def loss(p, xi, yi):
            return torch.nn.functional.mse_loss(functional_call(net, p, (xi[None],)), yi[None])

        return vmap(grad(loss), in_dims=(None, 0, 0))(params, inputs, y)

    ours, theirs = per_sample(model, x), per_sample(twin, x.permute(0, 3, 1, 2))
    torch.testing.assert_close(ours["conv2d.kernel"], theirs["0.weight"].permute(0, 3, 4, 2, 1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours["conv2d.bias"], theirs["0.bias"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours["dense.bias"], theirs["3.bias"], rtol=1e-5, atol=1e-6)
    # and each one equals that sample's ordinary backward
    model.zero_grad()
    torch.nn.functional.mse_loss(model(x[2:3]), y[2:3]).backward()
    torch.testing.assert_close(ours["conv2d.kernel"][2], model.layers[0].kernel.grad, rtol=1e-5, atol=1e-6)


def test_autograd_functional_jacobian_and_hessian_of_a_conv_model_match_the_torch_twin():
    model, twin = _conv_model_and_twin()
    x = torch.randn(2, 6, 6, 2, generator=torch.Generator().manual_seed(1))
    xt = x.permute(0, 3, 1, 2)
    jac = torch.autograd.functional.jacobian(model, x)
    jac_ref = torch.autograd.functional.jacobian(twin, xt)
    torch.testing.assert_close(jac, jac_ref.permute(0, 1, 2, 4, 5, 3), rtol=1e-5, atol=1e-6)
    hes = torch.autograd.functional.hessian(lambda v: model(v).square().sum(), x[:1])
    hes_ref = torch.autograd.functional.hessian(lambda v: twin(v).square().sum(), xt[:1])
    torch.testing.assert_close(hes, hes_ref.permute(0, 2, 3, 1, 4, 6, 7, 5), rtol=1e-4, atol=1e-5)
    # vectorize=True (vmap inside) and create_graph=True (a gradient penalty) agree as well
    jac_v = torch.autograd.functional.jacobian(model, x, vectorize=True, create_graph=True)
    torch.testing.assert_close(jac_v.detach(), jac, rtol=1e-5, atol=1e-6)
    jac_v.square().sum().backward()
    assert model.layers[2].kernel.grad is not None and model.layers[0].kernel.grad is not None


# -------------------------------------------------- hooks, parametrizations, init functions, modes
def test_forward_pre_hook_with_kwargs_sees_and_changes_training_like_a_torch_kwarg():
    """`register_forward_pre_hook(hook, with_kwargs=True)` gets the call's keyword arguments (Keras's
    `training=`) and may rewrite them; a full backward hook on the model sees torch's gradients."""
    torch.manual_seed(0)
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3), L.Dropout(0.5)])
    seen = []

    def record(module, args, kwargs):
        seen.append(dict(kwargs))
        return (args[0] * 2,), kwargs

    handle = model.register_forward_pre_hook(record, with_kwargs=True)
    x = torch.ones(2, 4)
    torch.testing.assert_close(model(x, training=False), model.layers[0](2 * x))
    handle.remove()
    assert seen == [{"training": False}]
    handle = model.layers[1].register_forward_pre_hook(
        lambda m, args, kwargs: (args, {**kwargs, "training": True}), with_kwargs=True)
    out = model(torch.ones(400, 4))  # inference call, but the hook turns this dropout on
    handle.remove()
    assert 0.4 < float((out == 0).float().mean()) < 0.6
    grads = []
    handle = model.register_full_backward_hook(lambda m, gin, gout: grads.append((gin[0], gout[0])))
    xr = torch.randn(2, 4, requires_grad=True)
    model(xr).sum().backward()
    handle.remove()
    torch.testing.assert_close(grads[0][0], xr.grad)
    torch.testing.assert_close(grads[0][1], torch.ones(2, 3))


def test_structured_pruning_and_orthogonal_use_the_keras_kernel_layout():
    """torch's `dim` arguments index the tensor they are given: on a Keras Dense kernel `(in, out)` the
    output units are `dim=1` (torch's nn.Linear: `dim=0`), on a Conv2D kernel `(kh, kw, in, out)` the
    filters are `dim=3`. Pruning then zeroes the same units/filters as on the torch twin."""
    from torch.nn.utils import prune
    from torch.nn.utils.parametrizations import orthogonal

    torch.manual_seed(0)
    dense, linear = L.Dense(6), torch.nn.Linear(4, 6)
    dense.build((None, 4))
    _copy_dense(linear, dense)
    prune.ln_structured(dense, "kernel", amount=0.5, n=2, dim=1)
    prune.ln_structured(linear, "weight", amount=0.5, n=2, dim=0)
    torch.testing.assert_close(dense.kernel, linear.weight.T)
    x = torch.randn(3, 4)
    torch.testing.assert_close(dense(x), linear(x), rtol=1e-5, atol=1e-6)

    conv, conv_ref = L.Conv2D(4, 3), torch.nn.Conv2d(2, 4, 3)
    conv.build((None, 5, 5, 2))
    _copy_conv(conv_ref, conv)
    prune.ln_structured(conv, "kernel", amount=0.5, n=1, dim=3)
    prune.ln_structured(conv_ref, "weight", amount=0.5, n=1, dim=0)
    assert int((conv.kernel.abs().sum((0, 1, 2)) == 0).sum()) == 2
    xc = torch.randn(1, 5, 5, 2)
    torch.testing.assert_close(conv(xc), conv_ref(xc.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), rtol=1e-5, atol=1e-5)

    # orthogonal on a tall (in, out) kernel: orthonormal columns, the output units (a Linear's rows)
    ortho = L.Dense(3)
    ortho.build((None, 5))
    orthogonal(ortho, "kernel")
    torch.testing.assert_close(ortho.kernel.T @ ortho.kernel, torch.eye(3), rtol=1e-5, atol=1e-5)
    ortho(torch.randn(2, 5)).sum().backward()
    assert ortho.parametrizations.kernel.original.grad is not None


def test_clip_grad_value_clips_every_kerasish_gradient_like_the_torch_twin():
    torch.manual_seed(0)
    model, twin = _conv_model_and_twin()
    x = torch.randn(4, 6, 6, 2, generator=torch.Generator().manual_seed(1)) * 50
    for net, inp in ((model, x), (twin, x.permute(0, 3, 1, 2))):
        net(inp).square().sum().backward()
        torch.nn.utils.clip_grad_value_(net.parameters(), 0.5)
    assert max(float(p.grad.abs().max()) for p in model.parameters()) == 0.5
    torch.testing.assert_close(model.layers[0].kernel.grad, twin[0].weight.grad.permute(2, 3, 1, 0))
    torch.testing.assert_close(model.layers[2].bias.grad, twin[3].bias.grad)


def test_torch_init_functions_need_the_torch_layout_view_of_a_keras_kernel():
    """`model.apply(init)` with `isinstance(m, nn.Linear)` matches no kerasish layer (a Dense is not an
    nn.Linear: its kernel is `(in, out)`), so such an init function changes nothing. torch's fan-based
    initializers read fans from the layout (`fan_in = size(1)` for 2-D), so they must be given the torch
    layout view (`kernel.T`, `kernel.permute(3, 2, 0, 1)`): then the weights have nn.Linear's/nn.Conv2d's
    statistics, as the README says."""
    model = kerasish.Sequential([kerasish.Input((256,)), L.Dense(16)])
    before = model.layers[0].kernel.detach().clone()
    model.apply(lambda m: torch.nn.init.zeros_(m.weight) if isinstance(m, torch.nn.Linear) else None)
    assert torch.equal(model.layers[0].kernel, before)  # nothing matched

    torch.manual_seed(0)
    dense = L.Dense(512)
    dense.build((None, 8))
    torch.nn.init.kaiming_normal_(dense.kernel.T)  # fan_in = 8, as for nn.Linear(8, 512)
    assert abs(float(dense.kernel.detach().std()) - (2 / 8) ** 0.5) < 0.03
    torch.nn.init.kaiming_normal_(dense.kernel)  # the mistake: fan_in read as 512
    assert abs(float(dense.kernel.detach().std()) - (2 / 512) ** 0.5) < 0.005
    conv = L.Conv2D(64, 3)
    conv.build((None, 8, 8, 16))
    torch.nn.init.kaiming_normal_(conv.kernel.permute(3, 2, 0, 1))  # fan_in = 16 * 3 * 3
    assert abs(float(conv.kernel.detach().std()) - (2 / 144) ** 0.5) < 0.01


def test_eval_then_fit_trains_in_training_mode_and_restores_eval():
    """A torch user's `model.eval()` left on before `fit`: Keras's fit trains in training mode (dropout
    on, BatchNormalization moving its statistics) whatever the torch mode, and gives the mode back."""
    torch.manual_seed(0)
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(8), L.Dropout(0.5), L.BatchNormalization(),
                                 L.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.eval()
    modes = []

    class Probe(kerasish.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            modes.append((model.training, model.layers[1].training))

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 1)).astype("float32")
    mean0 = model.layers[2].moving_mean.numpy().copy()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[Probe()])
    assert modes == [(True, True)] * 2
    assert not model.training and not model.layers[1].training
    assert not np.allclose(model.layers[2].moving_mean.numpy(), mean0)


def test_deepcopies_of_an_unbuilt_model_build_and_train_apart():
    torch.manual_seed(0)
    model = kerasish.Sequential([L.Dense(3), L.BatchNormalization(), L.Dense(2)])
    clone = copy.deepcopy(model)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, clone)]
    x = torch.randn(4, 5)
    model(x), clone(x)
    clone.set_weights(model.get_weights())
    start = [w.copy() for w in clone.get_weights()]
    model.train()
    for _ in range(2):
        opts[0].zero_grad()
        model(x).square().sum().backward()
        opts[0].step()
    assert not any(p.data_ptr() == q.data_ptr() for p in model.parameters() for q in clone.parameters())
    assert all(np.array_equal(a, b) for a, b in zip(clone.get_weights(), start))
    assert not np.array_equal(model.get_weights()[0], start[0])


class _Normalized(torch.utils.data.Dataset):
    """A torch Dataset that runs an adapted kerasish Normalization per item (in DataLoader workers)."""

    def __init__(self, layer, x):
        self.layer, self.x = layer, x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.layer(self.x[i:i + 1])[0]


def test_preprocessing_layer_inside_dataloader_workers_gives_the_main_process_numbers():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(8, 3)).astype("float32")
    norm = L.Normalization()
    norm.adapt(x)
    # spawned workers: DataLoader's default on Linux forks pytest-xdist's worker, which runs threads of its own
    loader = torch.utils.data.DataLoader(_Normalized(norm, x), batch_size=4, num_workers=2, timeout=60,
                                         multiprocessing_context="spawn")
    got = torch.cat(list(loader))
    want = (x - x.mean(0)) / np.sqrt(x.var(0))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-5)
