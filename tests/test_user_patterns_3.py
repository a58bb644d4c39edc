"""Programs and habits users bring from Keras 2, Keras 3 and PyTorch (round 3):
SWA's `update_bn` on kerasish BatchNormalization, torch parametrizations,
hooks, `functional_call` meta-learning, re-initialisation with `apply`,
`torch.jit`, memory formats, grad modes around fit/predict. References: real
torch on an equivalent `torch.nn` model (same weights), real Keras 3, NumPy."""

import copy

import numpy as np
import pytest
import torch
from torch.optim.swa_utils import AveragedModel
from torch.optim.swa_utils import update_bn

import kerasish


# ------------------------------------------------------------ SWA update_bn
def _mlp_pair():
    torch.manual_seed(0)
    ours = kerasish.Sequential([kerasish.Input((4,)), kerasish.layers.Dense(6), kerasish.layers.BatchNormalization(),
                                kerasish.layers.Dense(3), kerasish.layers.BatchNormalization(momentum=0.9)])
    # Keras's epsilon (1e-3): the second layer's statistics depend on the first one's output
    ref = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6, eps=1e-3), torch.nn.Linear(6, 3),
                              torch.nn.BatchNorm1d(3, eps=1e-3))
    with torch.no_grad():
        for lin, dense in ((ref[0], ours.layers[0]), (ref[2], ours.layers[2])):
            lin.weight.copy_(dense.kernel.T)
            lin.bias.copy_(dense.bias)
    return ours, ref


def test_update_bn_recomputes_kerasish_batchnorm_like_torch_batchnorm():
    """torch's update_bn on the equivalent torch.nn model is the reference: the same means; variances
    are Keras's biased ones (torch's unbiased ones times (n-1)/n for batches of n). The Keras
    momentum is restored exactly, the model's mode too, and the layers keep training normally."""
    ours, ref = _mlp_pair()
    for bn in ours.layers[1::2]:  # stale statistics update_bn must throw away
        bn.moving_mean.assign(torch.full_like(bn.moving_mean, 5.0))
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=16)
    swa_ours, swa_ref = AveragedModel(ours), AveragedModel(ref)
    swa_ours.eval()
    update_bn(loader, swa_ours)
    update_bn(loader, swa_ref)
    n = 16
    for bn, tbn in zip(swa_ours.module.layers[1::2], (swa_ref.module[1], swa_ref.module[3])):
        torch.testing.assert_close(bn.moving_mean.detach(), tbn.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn.moving_variance.detach(), tbn.running_var * (n - 1) / n, rtol=1e-5, atol=1e-6)
    assert [bn.momentum for bn in swa_ours.module.layers[1::2]] == [0.99, 0.9]
    assert not swa_ours.training and not swa_ours.module.training  # update_bn restored eval mode
    bn = swa_ours.module.layers[1]
    before = bn.moving_mean.detach().clone()
    swa_ours.train()
    swa_ours(x[:16])  # back to Keras's exponential average
    h = swa_ours.module.layers[0](x[:16]).detach()
    torch.testing.assert_close(bn.moving_mean.detach(), before * 0.99 + h.mean(0) * 0.01, rtol=1e-5, atol=1e-6)


def test_update_bn_on_channels_last_cnn_inside_a_torch_module():
    torch.manual_seed(0)
    inner = kerasish.Sequential([kerasish.Input((6, 6, 2)), kerasish.layers.Conv2D(3, 3),
                                 kerasish.layers.BatchNormalization()])
    ours = torch.nn.Sequential(torch.nn.Identity(), inner)  # a kerasish model inside a torch module
    ref = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    with torch.no_grad():
        ref[0].weight.copy_(inner.layers[0].kernel.permute(3, 2, 0, 1))
        ref[0].bias.copy_(inner.layers[0].bias)
    x = torch.randn(24, 6, 6, 2, generator=torch.Generator().manual_seed(2))
    update_bn([x[:8], x[8:16], x[16:]], ours)
    update_bn([xi.permute(0, 3, 1, 2) for xi in (x[:8], x[8:16], x[16:])], ref)
    n = 8 * 4 * 4
    bn = inner.layers[1]
    torch.testing.assert_close(bn.moving_mean.detach(), ref[1].running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.moving_variance.detach(), ref[1].running_var * (n - 1) / n, rtol=1e-5, atol=1e-6)


def test_batchnorm_torch_protocol_and_other_walks_unchanged():
    bn = kerasish.layers.BatchNormalization(momentum=0.95)
    bn.build((None, 3))
    assert bn.torch_momentum == pytest.approx(0.05)
    bn.torch_momentum = None  # torch's cumulative average
    assert bn.torch_momentum is None
    bn.reset_running_stats()
    bn.train()
    xs = [torch.randn(4, 3) for _ in range(3)]
    for x in xs:
        bn(x)
    torch.testing.assert_close(bn.moving_mean.detach(), torch.stack([x.mean(0) for x in xs]).mean(0))
    torch.testing.assert_close(bn.moving_variance.detach(),
                               torch.stack([x.var(0, correction=0) for x in xs]).mean(0))
    bn.torch_momentum = 1.0 - 0.95
    assert bn.momentum == 0.95
    bn.torch_momentum = 0.2
    assert bn.momentum == pytest.approx(0.8)
    # outside update_bn every walk sees the layer itself, and torch's BN converters leave it alone
    model = kerasish.Sequential([kerasish.Input((3,)), bn])
    assert list(model.modules())[-1] is bn
    assert torch.nn.SyncBatchNorm.convert_sync_batchnorm(model).layers[0] is bn
    assert copy.deepcopy(model).layers[0].momentum == pytest.approx(0.8)


# ------------------------------------- weighted metrics on masked sequences
def test_keras_masked_loss_rescales_sample_weight_in_place(keras_ref):
    """Why Keras 3.15 (torch backend) reports a different `weighted_accuracy` than the NumPy weighted
    mean when a masked sequence model is evaluated in several batches: its loss's `apply_mask` does
    `sample_weight *= mask * (total / valid)` on the batch's own tensor (`ops.cast` returns the same
    torch tensor), so the weighted metrics computed after the loss see each batch's weights scaled by
    that batch's `total / valid`. Within one batch the factor cancels (one batch agrees); across batches
    it reweights them. That is a Keras bug (TF and JAX tensors are immutable, so there it does not
    happen); kerasish keeps the NumPy weighted mean and never writes into the caller's weights."""
    from test_user_patterns_2 import _tagger_pair

    ref, ours, x, y = _tagger_pair(keras_ref)
    for model in (ref, ours):
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"])
    sw = np.random.default_rng(1).uniform(0.2, 2.0, (8, 6)).astype("float32")
    mask = (x != 0).astype("float64")
    acc = (ref.predict(x, verbose=0).argmax(-1) == y).astype("float64")
    numpy_mean = (acc * sw * mask).sum() / (sw * mask).sum()
    # Keras's number, reproduced from the in-place rescaling: batch b's weights times T*B/valid_b
    scaled = [(acc[b:b + 4] * sw[b:b + 4] * mask[b:b + 4], sw[b:b + 4] * mask[b:b + 4],
               mask[b:b + 4].size / mask[b:b + 4].sum()) for b in (0, 4)]
    keras_formula = sum(n.sum() * f for n, _, f in scaled) / sum(d.sum() * f for _, d, f in scaled)
    assert abs(keras_formula - numpy_mean) > 1e-4  # the two readings differ on this data

    got = ours.evaluate(x, y, sample_weight=sw, batch_size=4, verbose=0, return_dict=True)["weighted_accuracy"]
    np.testing.assert_allclose(got, numpy_mean, rtol=1e-6)
    theirs = ref.evaluate(x, y, sample_weight=sw, batch_size=4, verbose=0, return_dict=True)["weighted_accuracy"]

    # the mechanism, on the loss objects directly
    y_pred = ref(x[:4])
    weights = keras_ref.ops.convert_to_tensor(sw[:4])
    before = keras_ref.ops.convert_to_numpy(weights).copy()
    keras_ref.losses.SparseCategoricalCrossentropy()(y[:4], y_pred, sample_weight=weights)
    keras_mutates = not np.array_equal(keras_ref.ops.convert_to_numpy(weights), before)
    if keras_mutates:  # Keras 3.15.1
        np.testing.assert_allclose(theirs, keras_formula, rtol=1e-5)
    else:  # a Keras without the bug must agree with kerasish
        np.testing.assert_allclose(theirs, numpy_mean, rtol=1e-5)
    y_ours = ours(torch.as_tensor(x[:4]))
    mine = torch.as_tensor(sw[:4]).clone()
    kerasish.losses.SparseCategoricalCrossentropy()(torch.as_tensor(y[:4]), y_ours, sample_weight=mine)
    torch.testing.assert_close(mine, torch.as_tensor(sw[:4]), rtol=0, atol=0)


# ------------------------------------------------------------ int4 kernels
def test_int4_dense_kernel_reads_unpacked_like_keras(keras_ref):
    ours, ref = kerasish.layers.Dense(5), keras_ref.layers.Dense(5)
    ours.build((None, 4))
    ref.build((None, 4))
    ours.set_weights(ref.get_weights())
    ours.quantize("int4")
    ref.quantize("int4")
    want = keras_ref.ops.convert_to_numpy(ref.kernel)
    assert want.shape == (4, 5)
    np.testing.assert_array_equal(np.asarray(ours.kernel.detach()), want)
    # the stored variable stays the packed buffer, as Keras's `_kernel`
    np.testing.assert_array_equal(np.asarray(ours._kernel), keras_ref.ops.convert_to_numpy(ref._kernel))


# --------------------------------------------------------------- torch habits
def _mlp_and_torch_twin():
    torch.manual_seed(0)
    ours = kerasish.Sequential([kerasish.Input((4,)), kerasish.layers.Dense(8, activation="relu"),
                                kerasish.layers.Dense(2)])
    twin = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with torch.no_grad():
        for lin, dense in ((twin[0], ours.layers[0]), (twin[2], ours.layers[1])):
            lin.weight.copy_(dense.kernel.T)
            lin.bias.copy_(dense.bias)
    return ours, twin


def test_weight_norm_trains_like_torch_and_keras_files_refuse_it_clearly(tmp_path):
    """`weight_norm` on a Dense kernel `(in, out)` along `dim=1` is torch's on the Linear weight
    `(out, in)` along `dim=0`: same outputs and gradients of g and v. Keras files cannot hold the
    parametrization: saving says so and names `remove_parametrizations`; after it, the file holds
    the effective kernel."""
    from torch.nn.utils import parametrizations
    from torch.nn.utils import parametrize

    ours, twin = _mlp_and_torch_twin()
    parametrizations.weight_norm(ours.layers[0], name="kernel", dim=1)
    parametrizations.weight_norm(twin[0], name="weight", dim=0)
    x = torch.randn(6, 4)
    torch.testing.assert_close(ours(x), twin(x), rtol=1e-5, atol=1e-6)
    ours(x).square().sum().backward()
    twin(x).square().sum().backward()
    g, v = ours.layers[0].parametrizations.kernel.original0, ours.layers[0].parametrizations.kernel.original1
    tg, tv = twin[0].parametrizations.weight.original0, twin[0].parametrizations.weight.original1
    torch.testing.assert_close(g.grad.reshape(-1), tg.grad.reshape(-1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v.grad, tv.grad.T, rtol=1e-5, atol=1e-6)
    for action in (lambda: ours.save(str(tmp_path / "m.keras")), lambda: ours.save_weights(str(tmp_path / "w.weights.h5")),
                   lambda: ours.save(str(tmp_path / "m.h5"))):
        with pytest.raises(ValueError, match="remove_parametrizations"):
            action()
    ours.save_weights(str(tmp_path / "w.pt"))  # a torch state_dict holds them
    parametrize.remove_parametrizations(ours.layers[0], "kernel")
    kernel = ours.layers[0].kernel  # back in Keras's place (before the bias) and a Keras variable again
    assert [w.shape for w in ours.get_weights()] == [(4, 8), (8,), (8, 2), (2,)]
    assert kernel.path.endswith("dense/kernel") and ours.weights[0] is kernel
    ours.save(str(tmp_path / "m.keras"))
    loaded = kerasish.saving.load_model(str(tmp_path / "m.keras"))
    torch.testing.assert_close(loaded(x), twin(x), rtol=1e-5, atol=1e-6)


def test_spectral_norm_on_a_dense_kernel_bounds_its_spectral_norm():
    from torch.nn.utils import parametrizations

    ours, _ = _mlp_and_torch_twin()
    parametrizations.spectral_norm(ours.layers[0], name="kernel", n_power_iterations=20)
    ours.train()
    for _ in range(5):
        ours(torch.randn(6, 4))
    sigma = torch.linalg.matrix_norm(ours.layers[0].kernel.detach(), ord=2)
    torch.testing.assert_close(sigma, torch.tensor(1.0), rtol=1e-4, atol=1e-4)


def test_functional_call_maml_inner_loop_matches_torch_nn():
    """A MAML step with `torch.func.functional_call` + `torch.func.grad`: the adapted loss and the
    meta-gradients equal those of the same torch.nn model."""
    from torch.func import functional_call
    from torch.func import grad

    ours, twin = _mlp_and_torch_twin()
    x, y = torch.randn(6, 4), torch.randn(6, 2)
    results = []
    for model in (ours, twin):
        params = dict(model.named_parameters())

        def loss(p, model=model):
            return torch.nn.functional.mse_loss(functional_call(model, p, (x,)), y)

        inner = grad(loss)(params)
        outer = loss({k: v - 0.1 * inner[k] for k, v in params.items()})
        outer.backward()
        results.append((outer.detach(), [p.grad for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    k0, b0, k1, b1 = results[0][1]
    w0, c0, w1, c1 = results[1][1]
    for a, b in ((k0, w0.T), (b0, c0), (k1, w1.T), (b1, c1)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_apply_reinitialisation_is_seen_by_the_keras_views(tmp_path):
    ours, _ = _mlp_and_torch_twin()

    def init(module):
        if isinstance(module, kerasish.layers.Dense):
            torch.nn.init.constant_(module.kernel, 0.25)
            torch.nn.init.zeros_(module.bias)

    ours.apply(init)
    assert all(np.all(w == 0.25) for w in ours.get_weights()[0::2])
    assert float(ours.layers[0].kernel.numpy().mean()) == 0.25 and float(ours.weights[1].numpy().sum()) == 0
    ours.save_weights(str(tmp_path / "w.weights.h5"))
    fresh, _ = _mlp_and_torch_twin()
    fresh.load_weights(str(tmp_path / "w.weights.h5"))
    assert np.all(fresh.get_weights()[2] == 0.25)


def test_forward_and_full_backward_hooks_see_what_torch_nn_sees():
    ours, twin = _mlp_and_torch_twin()
    seen = {}

    def fwd(tag):
        def hook(module, args, output):
            seen[(tag, "out")] = output.detach().clone()
        return hook

    def bwd(tag):
        def hook(module, grad_input, grad_output):
            seen[(tag, "gin")] = grad_input[0].detach().clone()
            seen[(tag, "gout")] = grad_output[0].detach().clone()
        return hook

    for tag, module in (("ours", ours.layers[0]), ("twin", twin[0])):
        module.register_forward_hook(fwd(tag))
        module.register_full_backward_hook(bwd(tag))
    x = torch.randn(6, 4)
    for model in (ours, twin):
        xx = x.clone().requires_grad_()
        model(xx).square().sum().backward()
    # ours' Dense applies its relu inside the layer: compare the forward after the activation
    torch.testing.assert_close(seen[("ours", "out")], torch.relu(seen[("twin", "out")]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(seen[("ours", "gin")], seen[("twin", "gin")], rtol=1e-5, atol=1e-6)
    # a hook replacing the output changes fit's and predict's numbers, as in torch
    ours.layers[1].register_forward_hook(lambda module, args, output: output * 0)
    assert np.all(ours.predict(x.numpy(), verbose=0) == 0)


def test_torch_jit_script_says_what_to_use_and_trace_works():
    ours, twin = _mlp_and_torch_twin()
    with pytest.raises(RuntimeError, match="torch.jit.script cannot compile the kerasish layer"):
        torch.jit.script(ours)
    with pytest.raises(RuntimeError, match="torch.jit.script cannot compile the kerasish layer"):
        torch.jit.script(torch.nn.Sequential(torch.nn.Identity(), ours))
    x = torch.randn(3, 4)
    traced = torch.jit.trace(ours, x)
    torch.testing.assert_close(traced(torch.randn(5, 4) * 0 + x[0]), twin(torch.randn(5, 4) * 0 + x[0]),
                               rtol=1e-5, atol=1e-6)


def test_channels_last_memory_format_keeps_outputs():
    torch.manual_seed(0)
    model = kerasish.Sequential([kerasish.Input((8, 8, 3)), kerasish.layers.Conv2D(4, 3),
                                 kerasish.layers.BatchNormalization(), kerasish.layers.GlobalAveragePooling2D(),
                                 kerasish.layers.Dense(2)])
    x = torch.randn(2, 8, 8, 3)
    before = model(x)
    model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x), before, rtol=1e-6, atol=1e-6)
    assert model.get_weights()[0].shape == (3, 3, 3, 4)  # Keras layout unchanged


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_fit_under_a_no_grad_block_says_why(mode):
    """Keras on torch fails deep in `backward()` ("element 0 of tensors does not require grad");
    kerasish names the block. predict and evaluate work inside it."""
    ours, _ = _mlp_and_torch_twin()
    ours.compile("sgd", "mse")
    x, y = np.random.rand(8, 4).astype("float32"), np.random.rand(8, 2).astype("float32")
    with getattr(torch, mode)():
        with pytest.raises(RuntimeError, match=f"`fit` was called under torch.{mode}"):
            ours.fit(x, y, verbose=0)
        with pytest.raises(RuntimeError, match="`train_on_batch` was called under"):
            ours.train_on_batch(x, y)
        ours.predict(x, verbose=0)
        ours.evaluate(x, y, verbose=0)
    ours.fit(x, y, verbose=0)


def test_requires_grad_false_freezes_like_trainable_false_for_fit():
    ours, _ = _mlp_and_torch_twin()
    ours.layers[0].requires_grad_(False)
    assert len(ours.trainable_weights) == 2 and len(ours.non_trainable_weights) == 2
    ours.compile("sgd", "mse")
    before = ours.get_weights()
    ours.fit(np.random.rand(8, 4).astype("float32"), np.random.rand(8, 2).astype("float32"), verbose=0)
    after = ours.get_weights()
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert not np.array_equal(after[2], before[2])
    other, _ = _mlp_and_torch_twin()
    other.layers[0].trainable = False
    assert [p.requires_grad for p in other.parameters()] == [False, False, True, True]


# ------------------------------------------------- Keras-side graph habits
def _interleaved(lib):
    class Blocks(lib.layers.Layer):
        def __init__(self):
            super().__init__()
            self.encoders, self.projectors = [], []
            for units in (3, 4, 5):
                self.encoders.append(lib.layers.Dense(units))
                self.projectors.append(lib.layers.Dense(2))
            self.head = lib.layers.Dense(1)

        def call(self, x):
            outs = [self.head(x)] + [proj(enc(x)) for enc, proj in zip(self.encoders, self.projectors)]
            return lib.ops.concatenate(outs, axis=-1)

    return Blocks()


def test_sublayer_weight_order_follows_keras_tracking_order(keras_ref):
    """Keras orders a layer's weights by when each sublayer was tracked (list appends interleave);
    kerasish did it by attribute, so `get_weights` / `set_weights` between the two misplaced arrays."""
    ours, ref = _interleaved(kerasish), _interleaved(keras_ref)
    x = np.ones((2, 6), "float32")
    ours(x)
    ref(x)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in ref.weights]
    assert [w.path.split("/", 1)[1] for w in ours.weights][:4] == ["dense/kernel", "dense/bias",
                                                                   "dense_1/kernel", "dense_1/bias"]
    copied = copy.deepcopy(ours)  # the order travels with the layers
    assert [tuple(w.shape) for w in copied.weights] == [tuple(w.shape) for w in ours.weights]
    ours.set_weights([np.asarray(keras_ref.ops.convert_to_numpy(w)) for w in ref.weights])
    np.testing.assert_allclose(ours(x).detach().numpy(), keras_ref.ops.convert_to_numpy(ref(x)), rtol=1e-6)


def test_custom_layer_on_string_inputs_in_a_functional_model(keras_ref):
    """A user layer whose call starts with a StringLookup, called on a `dtype="string"` Input: its output
    spec comes from placeholder strings (no OOV error for `num_oov_indices=0`); the model then computes
    the lookup's documented mapping (vocabulary position + num_oov_indices)."""
    vocab = ["a", "b", "c"]

    class Lookup2(kerasish.layers.Layer):
        def __init__(self):
            super().__init__()
            self.lookup = kerasish.layers.StringLookup(vocabulary=vocab, mask_token=None, num_oov_indices=0)

        def call(self, x):
            return kerasish.ops.cast(self.lookup(x), "float32") * 2.0

    inp = kerasish.Input(shape=(), dtype="string")
    out = kerasish.activations.sigmoid(Lookup2()(inp))
    model = kerasish.Model(inp, out)
    got = model.predict(np.asarray(["c", "a", "b"], dtype=object), verbose=0)
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-2.0 * np.asarray([2, 0, 1]))), rtol=1e-6)
    with pytest.raises(ValueError, match="all inputs should be in vocabulary"):
        model.predict(np.asarray(["z"], dtype=object), verbose=0)  # real values still checked


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "sigmoid", "relu", "gelu", "sparsemax"])
def test_activation_functions_on_keras_tensors(keras_ref, name):
    """`keras.activations.<fn>(KerasTensor)` builds a graph node (Keras's activations are ops);
    kerasish's converted the KerasTensor with torch.as_tensor and failed."""
    inp = kerasish.Input((5,))
    model = kerasish.Model(inp, getattr(kerasish.activations, name)(inp))
    x = np.random.default_rng(0).standard_normal((3, 5)).astype("float32")
    want = getattr(kerasish.activations, name)(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-6, atol=1e-6)
    if name != "sparsemax":  # (kerasish's sparsemax is the exact simplex projection; Keras 3.15's is not)
        ref = keras_ref.ops.convert_to_numpy(getattr(keras_ref.activations, name)(keras_ref.ops.convert_to_tensor(x)))
        np.testing.assert_allclose(want, ref, rtol=1e-5, atol=1e-6)
