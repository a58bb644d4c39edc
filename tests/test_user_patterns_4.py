"""Habits PyTorch users bring to kerasish layers (round 4): gradient
checkpointing, meta-device loading, default dtype and device contexts,
torch.func transforms, torch's model converters (SyncBatchNorm, quantization,
conv-bn fusion), parameter groups and clipping, share_memory / Hogwild,
whole-module pickles, torch.compile(dynamic=True), inference-mode tensors.
References: an equivalent `torch.nn` model with the same weights, real torch
on that model, or NumPy from the maths."""

import copy
import re
import warnings

import numpy as np
import pytest
import torch
from torch.utils.checkpoint import checkpoint

import kerasish

L = kerasish.layers


def _copy_dense(linear, dense):
    with torch.no_grad():
        linear.weight.copy_(dense.kernel.T)
        linear.bias.copy_(dense.bias)


# ------------------------------------------------- torch.utils.checkpoint
class _BnBlock(kerasish.layers.Layer):
    """Dense -> BatchNormalization -> relu -> Dense, an `add_loss` and an `add_metric` in the middle."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d1 = L.Dense(8)
        self.bn = L.BatchNormalization(momentum=0.9)
        self.d2 = L.Dense(3)

    def call(self, x, training=None):
        h = self.bn(self.d1(x), training=training)
        self.add_metric(h.mean(), name="h_mean")
        y = self.d2(torch.relu(h))
        self.add_loss(y.square().mean())
        return y


def _bn_pair(remat=False):
    torch.manual_seed(0)
    if remat:
        with kerasish.RematScope("full"):  # kerasish's own checkpointing, torch's checkpoint underneath
            ours = _BnBlock()
    else:
        ours = _BnBlock()
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    ours(x)
    ref = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8, eps=1e-3, momentum=0.1),
                              torch.nn.ReLU(), torch.nn.Linear(8, 3))
    _copy_dense(ref[0], ours.d1)
    _copy_dense(ref[3], ours.d2)
    return ours, ref, x


@pytest.mark.parametrize("reentrant", [False, True, "keras.RematScope"])
def test_checkpointed_block_trains_like_torch_and_counts_its_side_effects_once(reentrant):
    """torch's checkpoint recomputes the block in the backward pass. The reference is the same torch.nn
    block run without checkpointing: equal outputs and gradients, the moving statistics updated once
    (torch's own BatchNorm updates twice under checkpoint; Keras's rule is one update per step), the
    metric counted once, and `layer.losses` still the forward's one loss after the backward (the
    recomputation used to drop it, or to update the statistics a second time when it ran past them)."""
    remat = reentrant == "keras.RematScope"
    ours, ref, x = _bn_pair(remat)
    ours.train()
    ref.train()
    xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reentrant add_loss warning, tested below
        y = ours(xo) if remat else checkpoint(ours, xo, use_reentrant=reentrant)
    y_ref = ref(xr)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    (losses,) = ours.losses
    y.sum().backward()
    y_ref.sum().backward()
    assert ours.losses == [losses]
    torch.testing.assert_close(xo.grad, xr.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.d1.kernel.grad, ref[0].weight.grad.T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.bn.gamma.grad, ref[1].weight.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.d2.kernel.grad, ref[3].weight.grad.T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.bn.moving_mean.detach(), ref[1].running_mean, rtol=1e-5, atol=1e-6)
    h = ref[0](x).detach()
    torch.testing.assert_close(ours.bn.moving_variance.detach(), 0.9 + 0.1 * h.var(0, unbiased=False),
                               rtol=1e-5, atol=1e-6)
    assert float(ours.metrics[0].count) == 2.0  # the first (build) call and the checkpointed one


def test_checkpointed_add_loss_keeps_its_gradient_without_reentrant_and_warns_with_it():
    ours, ref, x = _bn_pair()
    ours.train()
    ref.train()
    y = checkpoint(ours, x, use_reentrant=False)
    (y.sum() + sum(ours.losses)).backward()
    y_ref = ref(x)
    (y_ref.sum() + y_ref.square().mean()).backward()
    torch.testing.assert_close(ours.d2.kernel.grad, ref[3].weight.grad.T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.d1.kernel.grad, ref[0].weight.grad.T, rtol=1e-5, atol=1e-6)
    # reentrant checkpointing runs the forward under no_grad: the added loss cannot train anything
    with pytest.warns(UserWarning, match=r"_bn_block.*use_reentrant=True.*no gradient.*use_reentrant=False"):
        checkpoint(ours, x, use_reentrant=True)
    assert not ours.losses[0].requires_grad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():  # an ordinary no_grad call is no checkpoint: no warning
            ours(x)


class _MetricBlock(kerasish.layers.Layer):
    """Keras 3's way to track a statistic in a layer: a Metric attribute updated in `call`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d = L.Dense(3)
        self.act_mean = kerasish.metrics.Mean(name="act_mean")

    def call(self, x):
        h = self.d(x)
        self.act_mean.update_state(h)
        return torch.relu(h) * 2.0


@pytest.mark.parametrize("reentrant", [False, True])
def test_checkpointed_metric_attribute_counts_each_batch_once(reentrant):
    """Reference: NumPy's mean of the two batches' activations. A metric updated from a gradient hook
    (no layer call in progress) still counts."""
    block = _MetricBlock()
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 2, generator=g, requires_grad=True) for _ in range(2)]
    block(batches[0])
    block.act_mean.reset_state()
    for xb in batches:
        checkpoint(block, xb, use_reentrant=reentrant).sum().backward()
    acts = np.concatenate([block.d(xb).detach().numpy().ravel() for xb in batches])
    np.testing.assert_allclose(float(block.act_mean.result()), acts.mean(), rtol=1e-5)
    # one count per sample, as Keras's Mean (a batch counted twice leaves the mean alone, not the count)
    assert float(block.act_mean.count) == sum(xb.shape[0] for xb in batches)
    grad_norms = kerasish.metrics.Mean()
    x = torch.randn(3, requires_grad=True)
    x.register_hook(lambda grad: grad_norms.update_state(grad.norm()))
    (x * 2).sum().backward()
    assert float(grad_norms.count) == 1.0


class _DropBlock(kerasish.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d = L.Dense(16)
        self.drop = L.Dropout(0.5)

    def call(self, x, training=None):
        return self.drop(self.d(x), training=training)


class _Outer(kerasish.layers.Layer):
    """A custom layer checkpointing its sublayer, as a torch user writes it."""

    def __init__(self, reentrant, **kwargs):
        super().__init__(**kwargs)
        self.inner = _DropBlock()
        self.reentrant = reentrant

    def call(self, x, training=None):
        return checkpoint(self.inner, x, use_reentrant=self.reentrant)


@pytest.mark.parametrize("reentrant", [False, True])
def test_checkpoint_recomputation_sees_the_training_mode_of_the_outer_call(reentrant):
    """`outer(x, training=True)` on a layer in inference mode: the checkpointed sublayer inherits
    training=True in the forward; the recomputation runs in the backward pass with no call in progress
    and must apply the same dropout (torch restores the RNG state), else the gradients are those of
    another function (non-reentrant torch raised a CheckpointError, reentrant was silently wrong).
    Reference: the sublayer called directly with the same seed, no checkpoint."""
    outer = _Outer(reentrant)
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    outer(x)
    torch.manual_seed(3)
    y = outer(x, training=True)
    assert (y == 0).any()  # dropout ran
    y.sum().backward()
    got = x.grad.clone()
    x.grad = None
    torch.manual_seed(3)
    y_ref = outer.inner(x, training=True)
    y_ref.sum().backward()
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(got, x.grad)


def test_checkpointed_spectral_normalization_recomputes_with_the_kernel_its_forward_used():
    torch.manual_seed(0)
    sn = L.SpectralNormalization(L.Dense(4), power_iterations=2)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    sn(x)
    twin = copy.deepcopy(sn)
    y = checkpoint(sn, x, training=True, use_reentrant=False)
    y.sum().backward()
    y_ref = twin(x, training=True)
    y_ref.sum().backward()
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(sn.layer.kernel.detach(), twin.layer.kernel.detach())
    torch.testing.assert_close(sn.layer.kernel.grad, twin.layer.kernel.grad)


# ------------------------------------------------------ torch's converters
def test_convert_sync_batchnorm_synchronizes_kerasish_batchnorm_under_ddp(tmp_path):
    """Two gloo processes, DDP over a converted model, half the batch each. Reference: one torch.nn model
    (Linear, BatchNorm1d with Keras's epsilon, Linear) trained one SGD step on the whole batch in one
    process: the statistics of the global batch, the same updated weights. Before, the converter left the
    kerasish layer alone and each process normalized with its own half."""
    import os

    pytest.importorskip("torch.distributed")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed not built")
    from tests.distribution.sync_bn_worker import build
    from tests.distribution.test_data_parallel import run_ranks

    torch.manual_seed(0)
    ours = build()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 4, generator=g) * 2 + 1, torch.randn(8, 2, generator=g)
    torch.save({"weights": [torch.from_numpy(w) for w in ours.get_weights()], "x": x, "y": y}, tmp_path / "init.pt")
    run_ranks(os.path.join(os.path.dirname(__file__), "distribution", "sync_bn_worker.py"), tmp_path, timeout=120)
    got = torch.load(tmp_path / "final.pt", weights_only=True)

    ref = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6, eps=1e-3, momentum=0.1),
                              torch.nn.Linear(6, 2))
    _copy_dense(ref[0], ours.layers[0])
    _copy_dense(ref[2], ours.layers[2])
    ref.train()
    h = ref[0](x).detach()
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    torch.nn.functional.mse_loss(ref(x), y).backward()
    opt.step()
    torch.testing.assert_close(got["batch_normalization.moving_mean"], ref[1].running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["batch_normalization.moving_variance"], 0.9 + 0.1 * h.var(0, unbiased=False),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["dense.kernel"], ref[0].weight.detach().T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["batch_normalization.gamma"], ref[1].weight.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["dense_1.kernel"], ref[2].weight.detach().T, rtol=1e-5, atol=1e-6)


def test_convert_sync_batchnorm_marks_nested_layers_and_refuses_another_group():
    inner = kerasish.Sequential([kerasish.Input((3,)), L.BatchNormalization(), L.Dense(2)])
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), inner, torch.nn.BatchNorm1d(2))
    bn = inner.layers[0]
    list(model.modules())  # other walks change nothing
    assert not bn.synchronized
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted[1].layers[0] is bn and bn.synchronized
    assert bn.get_config()["synchronized"] is True
    assert isinstance(converted[2], torch.nn.SyncBatchNorm)  # torch's own layer converted as before
    with pytest.raises(ValueError, match=r"convert_sync_batchnorm.*batch_normalization.*default process group"):
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(kerasish.Sequential([L.BatchNormalization()]),
                                                      process_group=object())


def _quantize_dynamic(model, spec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao.quantization itself is deprecated
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)


def test_torch_dynamic_quantization_says_it_leaves_kerasish_layers_in_float():
    """torch swaps nn.Linear / nn.LSTM by type; a kerasish model comes back unchanged in float. Reference:
    the same torch.nn model, whose Linear torch does quantize. The warning names the supported way."""
    torch.manual_seed(0)
    ours = kerasish.Sequential([kerasish.Input((6,)), L.Dense(16, activation="relu"), L.Dense(3)])
    ref = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    _copy_dense(ref[0], ours.layers[0])
    _copy_dense(ref[2], ours.layers[1])
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    with pytest.warns(UserWarning, match=r"swaps `torch.nn.Linear` modules only: kerasish Dense.*'dense'.*"
                                          r"stay in float.*model.quantize\(\"int8\"\)") as record:
        q_ours = _quantize_dynamic(ours, {torch.nn.Linear})
    named = sorted(re.findall(r"\(here '(\w+)'\)", " ".join(str(w.message) for w in record)))
    assert named == ["dense", "dense_1"]
    q_ref = _quantize_dynamic(ref, {torch.nn.Linear})
    assert type(q_ref[0]).__module__.startswith("torch.ao.nn.quantized")  # torch quantized its own Linear
    torch.testing.assert_close(q_ours(x), ours(x))  # kerasish's came back in float: hence the warning
    # the supported way: Keras's int8 quantization, close to the float model
    ours.quantize("int8")
    assert ours.layers[0].quantization_mode == "int8"
    torch.testing.assert_close(ours(x), ref(x), rtol=0.05, atol=0.05)
    with pytest.warns(UserWarning, match=r"torch.nn.LSTM` modules only: kerasish LSTM.*no quantized version"):
        _quantize_dynamic(kerasish.Sequential([kerasish.Input((3, 2)), L.LSTM(4)]), {torch.nn.LSTM})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _quantize_dynamic(kerasish.Sequential([kerasish.Input((3, 2)), L.LSTM(4)]), {torch.nn.Linear})  # not asked


def test_torch_conv_bn_fusion_on_kerasish_layers_fails_loudly():
    """torch's fusion helpers read torch's attribute names and layouts; on kerasish layers they raise
    (never a silently wrong fused layer). Fold BatchNormalization into the convolution by hand, or
    keep the two layers."""
    model = kerasish.Sequential([kerasish.Input((6, 6, 2)), L.Conv2D(3, 3), L.BatchNormalization()])
    model.eval()
    with pytest.raises(AssertionError, match="did not find fuser method.*Conv2D.*BatchNormalization"):
        torch.ao.quantization.fuse_modules(model, [["conv2d", "batch_normalization"]])
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    with pytest.raises(AttributeError, match="running_mean"):
        fuse_conv_bn_eval(model.layers[0], model.layers[1])


# ------------------------------------------------ meta device, assign=True
def _mlp():
    return kerasish.Sequential([kerasish.Input((4,)), L.Dense(6, activation="relu"), L.LayerNormalization(),
                                L.Dense(3)])


def _torch_twin(model):
    ref = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.LayerNorm(6, eps=1e-3),
                              torch.nn.Linear(6, 3))
    _copy_dense(ref[0], model.layers[0])
    _copy_dense(ref[3], model.layers[2])
    return ref


def _torch_loop(model, opt, x, y, steps=3):
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def test_meta_device_build_then_assign_load_trains_like_torch():
    """The LLM loading habit: build model and optimizer on the meta device, `load_state_dict(sd,
    assign=True)`, train. Reference: the torch.nn twin with the same weights and the same (kerasish)
    optimizer. The Keras views follow the assigned Parameters, and the optimizer built on the meta
    weights now updates the loaded ones (before, its `step()` silently updated nothing and `fit` raised
    "Unknown variable")."""
    torch.manual_seed(0)
    source = _mlp()
    ref = _torch_twin(source)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 4, generator=g), torch.randn(8, 3, generator=g)
    with torch.device("meta"):
        model = _mlp()
    opt = kerasish.optimizers.Adam(0.05)
    opt.build(model.trainable_variables)  # moments on the meta device, like the weights
    assert {p.device.type for p in model.parameters()} == {"meta"}
    paths = [w.path for w in model.weights]
    assert model.load_state_dict(source.state_dict(), assign=True).missing_keys == []
    params = dict(model.named_parameters())
    assert model.layers[0].kernel is params["dense.kernel"] and model.weights[0] is params["dense.kernel"]
    assert [w.path for w in model.weights] == paths  # the Keras identity carried over
    torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-6)
    ref_opt = kerasish.optimizers.Adam(0.05)
    ref_opt.build(list(ref.parameters()))
    _torch_loop(model, opt, x, y)
    _torch_loop(ref, ref_opt, x, y)
    torch.testing.assert_close(model.layers[0].kernel.detach(), ref[0].weight.detach().T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.layers[2].bias.detach(), ref[3].bias.detach(), rtol=1e-5, atol=1e-6)
    assert all(v.device.type == "cpu" for v in opt.variables)
    assert int(opt.iterations) == 3


def test_assign_load_into_a_trained_model_keeps_the_optimizer_moments():
    """fit, then `load_state_dict(new, assign=True)`, then fit on: the optimizer's moments move to the
    new Parameters. Reference: the same program loading in place (`assign=False`), where nothing is
    replaced."""
    torch.manual_seed(0)
    new = _mlp().state_dict()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 4, generator=g).numpy(), torch.randn(8, 3, generator=g).numpy()
    runs = []
    for assign in (True, False):
        torch.manual_seed(5)
        model = _mlp()
        model.compile(kerasish.optimizers.Adam(0.05), "mse")
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
        model.load_state_dict({k: v.clone() for k, v in new.items()}, assign=assign)  # (assign shares storage)
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
        runs.append((model.get_weights(), [np.asarray(v.detach()) for v in model.optimizer.variables]))
    for a, b in zip(runs[0][0] + runs[0][1], runs[1][0] + runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_meta_build_then_to_empty_and_load_trains_like_torch():
    torch.manual_seed(0)
    source = _mlp()
    ref = _torch_twin(source)
    with torch.device("meta"):
        model = _mlp()
    model.to_empty(device="cpu")
    model.load_state_dict(source.state_dict())
    assert model.layers[0].kernel is dict(model.named_parameters())["dense.kernel"]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 4, generator=g), torch.randn(8, 3, generator=g)
    _torch_loop(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y)
    _torch_loop(ref, torch.optim.SGD(ref.parameters(), lr=0.1), x, y)
    torch.testing.assert_close(model.layers[0].kernel.detach(), ref[0].weight.detach().T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-6)


# ------------------------------------------- default dtype / device contexts
def test_torch_default_dtype_leaves_floatx_in_charge_as_in_keras(keras_ref):
    """`torch.set_default_dtype(torch.float64)` is torch's switch; Keras 3 on torch still creates floatx
    (float32) weights and computes in float32 (its variables name the dtype). kerasish follows Keras
    (documented in the README); a float64 dtype policy is the switch for kerasish, and then a Dense
    equals torch's float64 Linear."""
    x64 = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        seen = []
        for lib in (keras_ref, kerasish):
            dense, bn = lib.layers.Dense(3), lib.layers.BatchNormalization()
            y = dense(x64)
            z = bn(x64, training=True)
            seen.append([str(t.dtype).replace("torch.", "") for t in (
                dense.kernel, y, bn.moving_mean, z, lib.ops.ones((2,)), lib.ops.convert_to_tensor([1.0]),
                lib.random.normal((2,)))])
        assert seen[0] == seen[1] == ["float32"] * 7
        ref = torch.nn.Linear(4, 3)  # float64 under the default dtype
        dense = L.Dense(3, dtype="float64")  # (or keras.config.set_floatx("float64") in a fresh program)
        dense.build((None, 4))
    finally:
        torch.set_default_dtype(previous)
    assert ref.weight.dtype == dense.kernel.dtype == torch.float64
    _copy_dense(ref, dense)
    torch.testing.assert_close(dense(x64), ref(x64), rtol=1e-12, atol=1e-12)


def test_default_device_context_places_weights_built_inside():
    with torch.device("meta"):
        model = _mlp()
        lazy = L.Dense(3)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    y = lazy(torch.ones(2, 4))  # built on its first call, next to its input
    assert lazy.kernel.device.type == "cpu" and y.device.type == "cpu"
    with torch.device("cpu"):
        model = _mlp()
    assert {p.device.type for p in model.parameters()} == {"cpu"}


# ----------------------------------------------------------- torch.func
def _per_sample_grads(model, x, y):
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, xi, yi):
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return torch.nn.functional.mse_loss(out, yi.unsqueeze(0))

    return vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)


def test_vmap_grad_per_sample_gradients_match_the_torch_twin():
    """Opacus-style per-sample gradients: vmap(grad(loss)) over `functional_call` of the model."""
    torch.manual_seed(0)
    model = _mlp()
    ref = _torch_twin(model)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 4, generator=g), torch.randn(5, 3, generator=g)
    ours, theirs = _per_sample_grads(model, x, y), _per_sample_grads(ref, x, y)
    assert ours["dense.kernel"].shape == (5, 4, 6)
    torch.testing.assert_close(ours["dense.kernel"], theirs["0.weight"].transpose(1, 2), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours["layer_normalization.gamma"], theirs["2.weight"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours["dense_1.bias"], theirs["3.bias"], rtol=1e-5, atol=1e-6)


def test_vmap_grad_per_sample_gradients_of_an_lstm_equal_one_sample_at_a_time():
    torch.manual_seed(0)
    model = kerasish.Sequential([kerasish.Input((3, 2)), L.LSTM(4), L.Dense(2)])
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 3, 2, generator=g), torch.randn(3, 2, generator=g)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")  # torch's vmap fallback for the RNN op
        ours = _per_sample_grads(model, x, y)
    for i in range(3):
        model.zero_grad()
        torch.nn.functional.mse_loss(model(x[i:i + 1]), y[i:i + 1]).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(ours[name][i], p.grad, rtol=1e-5, atol=1e-6)


def test_jacrev_and_hessian_match_the_torch_twin():
    from torch.func import functional_call, hessian, jacrev

    torch.manual_seed(0)
    model = _mlp()
    ref = _torch_twin(model)
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(jacrev(model)(x), jacrev(ref)(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hessian(lambda v: model(v).square().sum())(x),
                               hessian(lambda v: ref(v).square().sum())(x), rtol=1e-4, atol=1e-5)
    h_ours = hessian(lambda b: functional_call(model, {"dense_1.bias": b}, (x,)).square().sum())(
        model.layers[2].bias.detach())
    h_ref = hessian(lambda b: functional_call(ref, {"3.bias": b}, (x,)).square().sum())(ref[3].bias.detach())
    torch.testing.assert_close(h_ours, h_ref)


# ------------------------------------- parameter groups, clipping, accumulation
def test_no_decay_groups_adamw_clipping_and_accumulation_match_the_torch_twin():
    """The transformer fine-tuning loop: AdamW groups by parameter name (no decay for biases and the
    norm's weights; kerasish names them Keras's way, `layer_normalization.gamma`), two micro-batches
    accumulated per step, `clip_grad_norm_`, `zero_grad(set_to_none=True)`."""
    torch.manual_seed(0)
    model = _mlp()
    ref = _torch_twin(model)

    def groups(net, no_decay):
        named = list(net.named_parameters())
        return [{"params": [p for n, p in named if not any(k in n for k in no_decay)], "weight_decay": 0.1},
                {"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0}]

    ours_groups = groups(model, ["bias", "layer_normalization.gamma", "layer_normalization.beta"])
    ref_groups = groups(ref, ["bias", "2.weight"])
    assert [len(g["params"]) for g in ours_groups] == [len(g["params"]) for g in ref_groups] == [2, 4]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 8, 4, generator=g), torch.randn(3, 8, 3, generator=g)
    norms = []
    for net, grp in ((model, ours_groups), (ref, ref_groups)):
        opt = torch.optim.AdamW(grp, lr=0.05)
        seen = []
        for step in range(3):
            opt.zero_grad(set_to_none=True)
            for half in (slice(0, 4), slice(4, 8)):
                (torch.nn.functional.mse_loss(net(x[step, half]), y[step, half]) / 2).backward()
            seen.append(float(torch.nn.utils.clip_grad_norm_(net.parameters(), 0.3)))
            opt.step()
        norms.append(seen)
    np.testing.assert_allclose(norms[0], norms[1], rtol=1e-5)
    assert norms[0][0] > 0.3  # the clipping did something
    torch.testing.assert_close(model.layers[0].kernel.detach(), ref[0].weight.detach().T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.layers[1].gamma.detach(), ref[2].weight.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(x[0]), ref(x[0]), rtol=1e-5, atol=1e-6)


def test_keras_optimizer_step_after_set_to_none_skips_weights_without_gradients_like_torch():
    """`zero_grad(set_to_none=True)`, a backward that reaches only part of the model, then a kerasish
    optimizer's `step()`: the weights without a gradient stay, as with torch's SGD on the twin."""
    torch.manual_seed(0)
    model = _mlp()
    ref = _torch_twin(model)
    x, y = torch.randn(8, 4, generator=torch.Generator().manual_seed(1)), torch.randn(8, 3)
    ours_opt = kerasish.optimizers.SGD(0.1, momentum=0.9)
    ours_opt.build(model.trainable_variables)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    first = model.layers[0].kernel.detach().clone()
    for _ in range(2):
        for net, opt in ((model, ours_opt), (ref, ref_opt)):
            opt.zero_grad(set_to_none=True)
            net.zero_grad(set_to_none=True)
            for p in list(net.parameters())[:2]:  # the first Dense frozen for this loop
                p.requires_grad_(False)
            torch.nn.functional.mse_loss(net(x), y).backward()
            for p in list(net.parameters())[:2]:
                p.requires_grad_(True)
            assert list(net.parameters())[0].grad is None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opt.step()
    torch.testing.assert_close(model.layers[0].kernel.detach(), first)
    torch.testing.assert_close(model.layers[2].kernel.detach(), ref[3].weight.detach().T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.layers[1].beta.detach(), ref[2].bias.detach(), rtol=1e-5, atol=1e-6)


def test_torch_grad_scaler_drives_a_kerasish_optimizer_like_torch_sgd():
    """`torch.amp.GradScaler`: scale, `scaler.step(opt)` (unscales, skips non-finite steps), update."""
    torch.manual_seed(0)
    model = _mlp()
    ref = _torch_twin(model)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 4, generator=g), torch.randn(8, 3, generator=g)
    ours_opt = kerasish.optimizers.SGD(0.1)
    ours_opt.build(model.trainable_variables)
    for net, opt in ((model, ours_opt), (ref, torch.optim.SGD(ref.parameters(), lr=0.1))):
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        for blow_up in (1.0, float("inf"), 1.0):
            opt.zero_grad()
            scaler.scale(torch.nn.functional.mse_loss(net(x), y) * blow_up).backward()
            scaler.step(opt)
            scaler.update()
        assert scaler.get_scale() == 512.0  # the infinite step was skipped and the scale halved
    torch.testing.assert_close(model.layers[0].kernel.detach(), ref[0].weight.detach().T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.layers[2].bias.detach(), ref[3].bias.detach(), rtol=1e-5, atol=1e-6)


def test_detect_anomaly_names_the_nan_backward_inside_a_kerasish_model_like_torch():
    torch.manual_seed(0)
    model = _mlp()
    ref = _torch_twin(model)
    x = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    with torch.autograd.set_detect_anomaly(True):
        model(x).square().sum().backward()  # a clean backward passes, with torch's gradients
        ref(x).square().sum().backward()
        # (float32 sums of gradients of size ~1: a few ulps apart)
        torch.testing.assert_close(model.layers[0].kernel.grad, ref[0].weight.grad.T, rtol=1e-4, atol=1e-5)
        bad = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3), L.Lambda(torch.sqrt)])
        with pytest.raises(RuntimeError, match="SqrtBackward0.*returned nan"):
            bad(-x.abs() - 1).sum().backward()


# ------------------------------------ share_memory, Hogwild, whole-module pickles
def _hogwild_child(model, seed):
    torch.set_num_threads(1)  # in the spawned worker only: the parent's thread count is left alone
    _hogwild_worker(model, seed)


def _hogwild_worker(model, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(8, 4, generator=g), torch.randn(8, 3, generator=g)
    _torch_loop(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, steps=2)


def test_share_memory_hogwild_workers_train_the_parents_weights():
    """`model.share_memory()` then torch.multiprocessing workers training it (Hogwild). The workers run
    one after the other so that the result is exact: the torch.nn twin trained with the same two
    workers' steps in the same order."""
    import torch.multiprocessing as mp

    torch.manual_seed(0)
    model = _mlp()
    ref = _torch_twin(model)
    model.share_memory()
    assert all(p.is_shared() for p in model.parameters())
    # spawn, as torch's Hogwild example: a fork of pytest-xdist's threaded worker can deadlock
    ctx = mp.get_context("spawn")
    for seed in (1, 2):
        proc = ctx.Process(target=_hogwild_child, args=(model, seed))
        proc.start()
        proc.join(120)
        if proc.is_alive():
            proc.kill()
            pytest.fail("the Hogwild worker did not finish within 120 s")
        assert proc.exitcode == 0
        _hogwild_worker(ref, seed)
    torch.testing.assert_close(model.layers[0].kernel.detach(), ref[0].weight.detach().T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.layers[2].bias.detach(), ref[3].bias.detach(), rtol=1e-5, atol=1e-6)


def test_whole_module_pickle_loads_in_a_fresh_process_and_state_dicts_load_weights_only(tmp_path):
    import os
    import subprocess
    import sys

    torch.manual_seed(0)
    model = kerasish.Sequential([kerasish.Input((5, 3)), L.LSTM(4, return_sequences=True), L.BatchNormalization(),
                                 L.GlobalAveragePooling1D(), L.Dense(2)])
    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(1))
    model.train()
    model(x)  # moving statistics away from their initial values
    model.eval()
    torch.save(model, tmp_path / "model.pt")
    torch.save({"x": x, "y": model(x).detach()}, tmp_path / "io.pt")
    code = (
        "import torch, sys\n"
        f"m = torch.load({str(tmp_path / 'model.pt')!r}, weights_only=False)\n"
        f"io = torch.load({str(tmp_path / 'io.pt')!r}, weights_only=True)\n"
        "assert type(m).__module__.startswith('kerasish') and not m.training\n"
        "torch.testing.assert_close(m(io['x']), io['y'], rtol=0, atol=0)\n"
        "print(m.layers[0].cell.kernel.path)\n"
    )
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=repo,
                         env=dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("lstm/lstm_cell/kernel")
    # a state_dict holds plain tensors only: torch's safe loader takes it
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    sd = torch.load(tmp_path / "sd.pt", weights_only=True)
    assert {type(v) for v in sd.values()} == {torch.Tensor}
    twin = kerasish.Sequential([kerasish.Input((5, 3)), L.LSTM(4, return_sequences=True), L.BatchNormalization(),
                                L.GlobalAveragePooling1D(), L.Dense(2)])
    twin.load_state_dict(sd)
    torch.testing.assert_close(twin(x), model(x))
    with pytest.raises(Exception, match="weights_only"):  # torch refuses a whole-module pickle there
        torch.load(tmp_path / "model.pt", weights_only=True)


# ------------------------------------ compile(dynamic=True), inference mode, profiler
def test_compile_dynamic_true_does_not_recompile_per_batch_size():
    """Reference: the torch.nn twin compiled the same way (same outputs). kerasish's first compiled call
    compiles twice (the layer derives its hot-path flag on the first call, a guard the second frame
    replaces); every further batch size reuses that code."""
    torch.manual_seed(0)
    model = _mlp()
    ref = _torch_twin(model)
    frames = []

    def backend(gm, example_inputs):
        frames.append(gm)
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(model, dynamic=True, backend=backend)
    compiled_ref = torch.compile(ref, dynamic=True, backend="eager")
    for batch in (2, 3):
        compiled(torch.randn(batch, 4))
    warm = len(frames)
    assert warm <= 2
    for batch in (5, 7, 11, 16):
        x = torch.randn(batch, 4, generator=torch.Generator().manual_seed(batch))
        torch.testing.assert_close(compiled(x), compiled_ref(x), rtol=1e-5, atol=1e-6)
    assert len(frames) == warm
    torch._dynamo.reset()


def test_inference_mode_features_feed_fit_and_a_direct_backward_raises_like_torch():
    """Features computed under `torch.inference_mode()` (a frozen backbone) are data for fit: it trains
    exactly as on an ordinary copy of them, as arrays in order, shuffled, or from a generator. Before,
    unshuffled batches and generator batches (views of inference tensors) failed inside a layer with
    torch's autograd error. Differentiating through them directly still raises torch's own error, as
    for the torch.nn twin."""
    torch.manual_seed(0)
    backbone = _mlp()
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        feats = backbone(x)
        y = torch.randn(8, 1, generator=torch.Generator().manual_seed(2))
    assert feats.is_inference() and y.is_inference()

    def generator(a, b):
        while True:
            for start in (0, 4):
                yield a[start:start + 4], b[start:start + 4]

    for how in ("arrays", "shuffled", "generator"):
        weights = []
        for a, b in ((feats, y), (feats.clone(), y.clone())):  # (a clone made outside inference mode)
            torch.manual_seed(3)
            head = kerasish.Sequential([kerasish.Input((3,)), L.Dense(1)])
            head.compile(kerasish.optimizers.SGD(0.1), "mse")
            if how == "generator":
                head.fit(generator(a, b), steps_per_epoch=2, epochs=2, verbose=0)
            else:
                head.fit(a, b, batch_size=4, shuffle=how == "shuffled", epochs=2, verbose=0)
            weights.append(head.get_weights())
        for got, want in zip(*weights):
            np.testing.assert_array_equal(got, want)
    head = L.Dense(1)
    twin = torch.nn.Linear(3, 1)
    for net in (head, twin):
        with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
            net(feats).sum().backward()


def test_profiler_names_kerasish_layers_like_torch_modules():
    from torch.profiler import profile
    from torch.profiler import record_function

    model = _mlp()
    x = torch.randn(3, 4)
    model(x)
    ref = torch.nn.Sequential(torch.nn.Linear(4, 6))
    names = []
    for net in (model, ref):
        with profile(with_stack=True) as prof:
            with record_function("my_block"):
                net(x)
        names.append({e.name for e in prof.events()})
    assert {"my_block", "nn.Module: Linear_0", "aten::addmm"} <= names[1]  # what torch shows for its modules
    assert {"my_block", "nn.Module: Dense_0", "nn.Module: Dense_1", "nn.Module: LayerNormalization_0",
            "aten::addmm"} <= names[0]


def test_checkpoint_sequential_over_model_layers_gives_the_models_gradients():
    """`checkpoint_sequential` takes an `nn.Sequential` or a list of modules; a kerasish Sequential is
    neither (torch raises `TypeError: ... has no len()`), its `.layers` list is. Reference: the same
    model without checkpointing."""
    from torch.utils.checkpoint import checkpoint_sequential

    torch.manual_seed(0)
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(6, activation="relu"), L.BatchNormalization(),
                                 L.Dense(3)])
    twin = copy.deepcopy(model)
    model.train()
    twin.train()
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    with pytest.raises(TypeError, match="has no len"):
        checkpoint_sequential(model, 2, x, use_reentrant=False)
    y = checkpoint_sequential(model.layers, 2, x, use_reentrant=False)
    y_ref = twin(x)
    y.square().sum().backward()
    y_ref.square().sum().backward()
    torch.testing.assert_close(y, y_ref)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    torch.testing.assert_close(model.layers[1].moving_mean, twin.layers[1].moving_mean)


def test_to_empty_after_a_meta_build_refills_the_constants_layers_keep_outside_the_state_dict():
    """`to_empty` gives every tensor uninitialized memory and `load_state_dict` restores the state_dict;
    constants that layers keep in non-persistent buffers (Rescaling's scale, Discretization's
    boundaries, a stateful RNN's carried states) are not in it and used to stay garbage, silently.
    References: the maths (`x * scale + offset`, NumPy's digitize) and the zeros of `reset_states()`."""
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    with torch.device("meta"):
        rescale = L.Rescaling(0.5, offset=-1.0)
        bins = L.Discretization(bin_boundaries=[-0.5, 0.0, 0.5])
        rnn = L.SimpleRNN(2, stateful=True)
        rnn(torch.empty(3, 5, 4))  # (a meta run: creates the carried states)
    for layer in (rescale, bins, rnn):
        layer.to_empty(device="cpu")
    torch.testing.assert_close(rescale(x), x * 0.5 - 1.0)
    np.testing.assert_array_equal(bins(x).numpy(), np.digitize(x.numpy(), [-0.5, 0.0, 0.5]))
    assert all(torch.count_nonzero(s) == 0 for s in rnn.states)


def test_assign_load_after_a_meta_build_places_the_constants_next_to_the_loaded_weights():
    """The same constants with `load_state_dict(sd, assign=True)`: they stayed on the meta device and the
    first call raised torch's device error. Reference: the model built normally."""
    def make():
        return kerasish.Sequential([kerasish.Input((4,)), L.Rescaling(0.5, offset=-1.0), L.Dense(3),
                                    L.Discretization(bin_boundaries=[-0.5, 0.0, 0.5])])

    torch.manual_seed(0)
    source = make()
    with torch.device("meta"):
        model = make()
    model.load_state_dict(source.state_dict(), assign=True)
    assert {t.device.type for t in list(model.parameters()) + list(model.buffers())} == {"cpu"}
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model(x), source(x))
