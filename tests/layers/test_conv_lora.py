"""LoRA on Conv1D/2D/3D (`lora_rank=`, `enable_lora`) against real Keras 3
(torch backend): the same stored weights and LoRA factors are copied into
both layers, then weights, merged kernels, outputs, gradients, a `fit`,
configs, weight files (both ways) and errors are compared. The torch-user
test checks the merged kernel against `F.conv2d` written from the maths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kerasish

L = kerasish.layers

# (class, constructor kwargs, input shape): ranks 1-3, groups, channels_first, strides, dilation, no bias
CASES = [
    ("Conv1D", {"filters": 4, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (2, 7, 3)),
    ("Conv1D", {"filters": 4, "kernel_size": 2, "groups": 2, "data_format": "channels_first"}, (2, 4, 6)),
    ("Conv2D", {"filters": 3, "kernel_size": 3, "padding": "same", "strides": 2}, (2, 6, 6, 2)),
    ("Conv2D", {"filters": 4, "kernel_size": (2, 3), "groups": 2, "use_bias": False,
                "data_format": "channels_first"}, (2, 4, 5, 5)),
    ("Conv3D", {"filters": 2, "kernel_size": 2, "activation": "relu"}, (2, 3, 4, 3, 2)),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _keras_np(keras, x):
    return keras.ops.convert_to_numpy(x)


def _pair(keras, name, kwargs, shape, rank=2, lora_alpha=3, seed=0):
    """Keras's layer and ours, built, with the same base weights and the same
    non-zero LoRA factors (Keras's he_uniform `a` copied into ours)."""
    rng = np.random.default_rng(seed)
    kwargs = {"name": "conv", **kwargs}  # the same paths in both (name counters differ)
    ref, ours = getattr(keras.layers, name)(**kwargs), getattr(L, name)(**kwargs)
    ref.build(shape)
    ours.build(shape)
    weights = [rng.standard_normal(tuple(w.shape)).astype("float32") * 0.5 for w in ref.get_weights()]
    ref.set_weights(weights)
    ours.set_weights(weights)
    ref.enable_lora(rank, lora_alpha=lora_alpha)
    ours.enable_lora(rank, lora_alpha=lora_alpha)
    ours.lora_kernel_a.assign(_keras_np(keras, ref.lora_kernel_a))
    b = rng.standard_normal(tuple(ref.lora_kernel_b.shape)).astype("float32")  # Keras starts b at zero
    ref.lora_kernel_b.assign(b)
    ours.lora_kernel_b.assign(b)
    return ref, ours


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_enable_lora_weights_forward_and_gradients_match_keras(keras_ref, name, kwargs, shape):
    ref, ours = _pair(keras_ref, name, kwargs, shape)
    # variables: names, paths, shapes, dtypes, trainable split and order, get_weights
    for attr in ("weights", "trainable_weights", "non_trainable_weights"):
        assert [w.path for w in getattr(ours, attr)] == [w.path for w in getattr(ref, attr)], attr
        assert [tuple(w.shape) for w in getattr(ours, attr)] == [tuple(w.shape) for w in getattr(ref, attr)]
    assert ours.lora_kernel_a.dtype == ours.lora_kernel_b.dtype == torch.float32
    assert (ours.lora_enabled, ours.lora_rank, ours.lora_alpha) == (ref.lora_enabled, ref.lora_rank, ref.lora_alpha)
    got, want = ours.get_weights(), ref.get_weights()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # the computed kernel: base + (alpha / rank) a @ b, the stored one unchanged
    np.testing.assert_allclose(_np(ours.kernel), _keras_np(keras_ref, ref.kernel), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(_np(ours._kernel), _keras_np(keras_ref, ref._kernel))
    assert sorted(ours.state_dict()) == sorted(["kernel", "lora_kernel_a", "lora_kernel_b"]
                                               + (["bias"] if ours.use_bias else []))
    assert ours.state_dict(keep_vars=True)["kernel"] is ours._kernel
    # forward and gradients: only the LoRA factors (and the bias) get one
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype("float32")
    y_ref = ref(torch.tensor(x))
    y = ours(torch.tensor(x))
    np.testing.assert_allclose(_np(y), _np(y_ref), rtol=1e-5, atol=1e-5)
    g = torch.tensor(rng.standard_normal(tuple(y.shape)).astype("float32"))
    (y_ref * g).sum().backward()
    (y * g).sum().backward()
    assert ours._kernel.grad is None and not ours._kernel.requires_grad
    assert ref._kernel.value.grad is None
    for attr in ("lora_kernel_a", "lora_kernel_b") + (("bias",) if ours.use_bias else ()):
        np.testing.assert_allclose(_np(getattr(ours, attr).grad), _np(getattr(ref, attr).value.grad),
                                   rtol=1e-4, atol=1e-5, err_msg=attr)


def test_merged_kernel_and_torch_optimizer_over_parameters():
    """A torch user: `model.parameters()` after `enable_lora` holds the frozen
    kernel with requires_grad=False (as Dense's LoRA and Keras on torch), so
    SGD with momentum and weight decay steps only the factors and the bias.
    The output is `F.conv2d` with the merged kernel, written from the maths."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(4, 3, padding="same")
            self.head = torch.nn.Linear(4, 1)

        def forward(self, x):
            return self.head(self.conv(x).mean(dim=(1, 2)))

    torch.manual_seed(0)
    net = Net()
    x = torch.randn(3, 5, 5, 2)
    net(x)
    conv = net.conv
    conv.enable_lora(2, lora_alpha=4)
    params = dict(net.named_parameters())
    assert [n for n in params if n.startswith("conv.")] == [
        "conv.kernel", "conv.bias", "conv.lora_kernel_a", "conv.lora_kernel_b"]
    assert not params["conv.kernel"].requires_grad
    assert [w.path for w in conv.trainable_weights] == ["conv2d/bias", "conv2d/lora_kernel_a", "conv2d/lora_kernel_b"]
    base, a_before, b_before = (conv._kernel.detach().clone(), conv.lora_kernel_a.detach().clone(),
                                conv.lora_kernel_b.detach().clone())
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        (net(x) - 1.0).pow(2).mean().backward()
        opt.step()
    torch.testing.assert_close(conv._kernel, base, rtol=0, atol=0)  # frozen
    assert (conv.lora_kernel_b - b_before).abs().max() > 0  # trained (it started at zero)
    assert (conv.lora_kernel_a - a_before).abs().max() > 0
    with torch.no_grad():
        merged = base + 2.0 * (conv.lora_kernel_a.reshape(-1, 2) @ conv.lora_kernel_b).reshape(base.shape)
        torch.testing.assert_close(conv.kernel, merged)
        want = F.conv2d(x.permute(0, 3, 1, 2), merged.permute(3, 2, 0, 1), conv.bias, padding=1).permute(0, 2, 3, 1)
        torch.testing.assert_close(conv(x), want, rtol=1e-5, atol=1e-5)


def test_fit_of_a_cnn_with_lora_on_a_pretrained_conv_matches_keras(keras_ref):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 6, 6, 2)).astype("float32")
    y = rng.standard_normal((16, 2)).astype("float32")
    models = []
    for lib in (keras_ref, kerasish):
        models.append(lib.Sequential(name="lora_cnn", layers=[
            lib.Input((6, 6, 2)), lib.layers.Conv2D(4, 3, activation="relu", name="conv"),
            lib.layers.Conv2D(3, 2, name="conv_2"), lib.layers.Flatten(), lib.layers.Dense(2, name="head"),
        ]))
    ref, ours = models
    ours.set_weights(ref.get_weights())  # the "pretrained" weights
    for model in models:
        model.get_layer("conv").enable_lora(2)
        model.get_layer("conv_2").enable_lora(3, lora_alpha=1.5)
    for layer in ("conv", "conv_2"):
        ours.get_layer(layer).lora_kernel_a.assign(_keras_np(keras_ref, ref.get_layer(layer).lora_kernel_a))
    assert [w.path for w in ours.trainable_weights] == [w.path for w in ref.trainable_weights]
    bases = [_np(ours.get_layer(n)._kernel).copy() for n in ("conv", "conv_2")]
    histories = []
    for lib, model in zip((keras_ref, kerasish), models):
        model.compile(optimizer=lib.optimizers.SGD(0.05, momentum=0.5), loss="mse", metrics=["mae"])
        histories.append(model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history)
    assert sorted(histories[0]) == sorted(histories[1])
    for key in histories[0]:
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-5, atol=1e-6, err_msg=key)
    for g, w in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    for n, base in zip(("conv", "conv_2"), bases):
        np.testing.assert_array_equal(_np(ours.get_layer(n)._kernel), base)  # frozen in both
        np.testing.assert_array_equal(_keras_np(keras_ref, ref.get_layer(n)._kernel), base)
        assert np.abs(_np(ours.get_layer(n).lora_kernel_b)).max() > 0
    np.testing.assert_allclose(_np(ours.predict(x, verbose=0)), ref.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def _model(lib, lora_rank=None, name="conv"):
    kwargs = {"lora_rank": lora_rank} if lora_rank else {}
    return lib.Sequential([lib.Input((5, 5, 3)), lib.layers.Conv2D(4, 3, name=name, **kwargs),
                           lib.layers.GlobalAveragePooling2D()])


def test_weights_files_both_ways(keras_ref, tmp_path):
    """`.weights.h5` holds the merged kernel and the bias (no factors), as
    Keras's: our LoRA file loads into plain Keras and LoRA Keras models, and
    Keras's LoRA file into ours, where the factors are zeroed."""
    x = np.random.default_rng(3).standard_normal((2, 5, 5, 3)).astype("float32")
    ref, ours = _pair(keras_ref, "Conv2D", {"filters": 4, "kernel_size": 3, "name": "conv"}, (None, 5, 5, 3))
    ref_model = keras_ref.Sequential([keras_ref.Input((5, 5, 3)), ref])
    our_model = kerasish.Sequential([kerasish.Input((5, 5, 3)), ours])
    our_model.save_weights(tmp_path / "ours.weights.h5")
    ref_model.save_weights(tmp_path / "ref.weights.h5")
    want = ref_model.predict(x, verbose=0)
    np.testing.assert_allclose(_np(our_model.predict(x, verbose=0)), want, rtol=1e-5, atol=1e-5)

    import h5py

    for f in ("ours", "ref"):
        with h5py.File(tmp_path / f"{f}.weights.h5") as h5:
            group = h5["layers/conv2d/vars"]
            assert sorted(group) == ["0", "1"]
            np.testing.assert_allclose(group["0"][()], _keras_np(keras_ref, ref.kernel), rtol=1e-6, atol=1e-6)

    plain_ref = keras_ref.Sequential([keras_ref.Input((5, 5, 3)), keras_ref.layers.Conv2D(4, 3, name="conv")])
    plain_ref.load_weights(tmp_path / "ours.weights.h5")  # our LoRA file into a plain Keras model
    np.testing.assert_allclose(plain_ref.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
    _, ours2 = _pair(keras_ref, "Conv2D", {"filters": 4, "kernel_size": 3, "name": "conv"}, (None, 5, 5, 3), seed=5)
    our_model2 = kerasish.Sequential([kerasish.Input((5, 5, 3)), ours2])
    our_model2.load_weights(tmp_path / "ref.weights.h5")  # Keras's LoRA file into our LoRA model
    assert ours2.lora_enabled and not ours2.lora_kernel_a.abs().max() and not ours2.lora_kernel_b.abs().max()
    np.testing.assert_allclose(_np(ours2._kernel), _keras_np(keras_ref, ref.kernel), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(our_model2.predict(x, verbose=0)), want, rtol=1e-5, atol=1e-5)
    plain_ours = kerasish.Sequential([kerasish.Input((5, 5, 3)), L.Conv2D(4, 3, name="conv")])
    plain_ours.load_weights(tmp_path / "ref.weights.h5")
    plain_ours.save_weights(tmp_path / "plain.weights.h5")
    ref_model.load_weights(tmp_path / "plain.weights.h5")  # a plain file into Keras's LoRA model
    np.testing.assert_allclose(ref_model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(plain_ours.predict(x, verbose=0)), want, rtol=1e-5, atol=1e-5)


def test_keras_archives_both_ways(keras_ref, tmp_path):
    x = np.random.default_rng(4).standard_normal((2, 5, 5, 3)).astype("float32")
    models = {}
    for lib, tag in ((keras_ref, "ref"), (kerasish, "ours")):
        model = _model(lib, lora_rank=2)
        model.compile(optimizer="sgd", loss="mse")
        models[tag] = model
    models["ours"].set_weights(models["ref"].get_weights())
    conv = models["ref"].get_layer("conv")
    b = np.random.default_rng(5).standard_normal(tuple(conv.lora_kernel_b.shape)).astype("float32")
    for model in models.values():
        model.get_layer("conv").lora_kernel_b.assign(b)
    want = models["ref"].predict(x, verbose=0)
    for tag, model in models.items():
        model.save(tmp_path / f"{tag}.keras")
    ours_back = kerasish.saving.load_model(tmp_path / "ref.keras")  # Keras's archive into kerasish
    theirs_back = keras_ref.saving.load_model(tmp_path / "ours.keras")  # ours into Keras
    for back, get in ((ours_back, _np), (theirs_back, np.asarray)):
        layer = back.get_layer("conv")
        assert layer.lora_enabled and layer.lora_rank == 2 and layer.lora_alpha == 2
        np.testing.assert_allclose(get(back.predict(x, verbose=0)), want, rtol=1e-5, atol=1e-5)
        assert not np.abs(_keras_np(keras_ref, layer.lora_kernel_b) if back is theirs_back
                          else _np(layer.lora_kernel_b)).max()
    assert ours_back.get_layer("conv").get_config() == models["ours"].get_layer("conv").get_config()


def test_config_and_lora_rank_at_construction_match_keras(keras_ref):
    for kwargs in ({"lora_rank": 2}, {"lora_rank": 3, "lora_alpha": 0.5}, {}):
        ref = keras_ref.layers.Conv1D(4, 3, name="c", **kwargs)
        ours = L.Conv1D(4, 3, name="c", **kwargs)
        assert (ours.lora_rank, ours.lora_alpha, ours.lora_enabled) == (ref.lora_rank, ref.lora_alpha, False)
        config = ours.get_config()
        assert config == ref.get_config() | {"dtype": config["dtype"]}
        clone = L.Conv1D.from_config(config)
        ref_clone = keras_ref.layers.Conv1D.from_config(config)
        for layer in (ours, clone, ref, ref_clone):
            layer.build((None, 6, 2))
        assert clone.lora_enabled == ref_clone.lora_enabled == ours.lora_enabled == bool(kwargs)
        assert [w.path for w in clone.trainable_weights] == [w.path for w in ref_clone.trainable_weights]
        assert clone.get_config() == config


def test_load_state_dict_into_an_unbuilt_lora_layer():
    layer = L.Conv2D(4, 3, groups=2, lora_rank=2)
    x = torch.randn(1, 5, 5, 4)
    layer(x)
    with torch.no_grad():
        layer.lora_kernel_b.normal_()
    fresh = L.Conv2D.from_config(layer.get_config())
    fresh.load_state_dict(layer.state_dict())
    assert fresh.lora_enabled
    torch.testing.assert_close(fresh(x), layer(x))
    torch.testing.assert_close(fresh.kernel, layer.kernel)


def test_load_own_variables_zeroes_the_factors_as_keras(keras_ref):
    ref, ours = _pair(keras_ref, "Conv2D", {"filters": 3, "kernel_size": 2}, (None, 4, 4, 2))
    store_ref, store_ours = {}, {}
    ref.save_own_variables(store_ref)
    ours.save_own_variables(store_ours)
    assert sorted(store_ours) == sorted(store_ref) == ["0", "1"]
    for key in store_ref:
        np.testing.assert_allclose(_np(store_ours[key]), _keras_np(keras_ref, store_ref[key]), rtol=1e-6, atol=1e-6)
    ref.load_own_variables(store_ref)
    ours.load_own_variables({k: _np(v) for k, v in store_ours.items()})
    for name in ("_kernel", "lora_kernel_a", "lora_kernel_b", "kernel"):
        np.testing.assert_allclose(_np(getattr(ours, name)), _keras_np(keras_ref, getattr(ref, name)),
                                   rtol=1e-6, atol=1e-6, err_msg=name)


def test_custom_convolution_op_sees_the_merged_kernel():
    seen = []

    class Recording(L.Conv2D):
        def convolution_op(self, inputs, kernel):
            seen.append(kernel)
            return super().convolution_op(inputs, kernel)

    layer = Recording(2, 2, lora_rank=1)
    x = torch.randn(1, 3, 3, 2)
    layer(x)
    with torch.no_grad():
        layer.lora_kernel_b.fill_(1.0)
    y = layer(x)
    torch.testing.assert_close(seen[-1], layer.kernel)
    assert not torch.equal(seen[-1], layer._kernel)
    plain = L.Conv2D(2, 2)
    plain.build((None, 3, 3, 2))
    plain._kernel.assign(layer.kernel.detach())
    plain.bias.assign(layer.bias.detach())
    torch.testing.assert_close(y, plain(x))


def test_lora_under_mixed_precision_matches_keras(keras_ref):
    kwargs = {"filters": 3, "kernel_size": 2, "dtype": "mixed_bfloat16"}
    ref, ours = _pair(keras_ref, "Conv2D", kwargs, (None, 4, 4, 2))
    assert ours.kernel.dtype == torch.bfloat16 and ours._kernel.dtype == torch.float32
    assert str(ours.kernel.dtype).split(".")[-1] == keras_ref.backend.standardize_dtype(ref.kernel.dtype)
    x = np.random.default_rng(6).standard_normal((2, 4, 4, 2)).astype("float32")
    y, y_ref = ours(torch.tensor(x)), ref(torch.tensor(x))
    assert y.dtype == y_ref.dtype == torch.bfloat16
    np.testing.assert_allclose(_np(y.float()), _np(y_ref.float()), rtol=2e-2, atol=2e-2)


ERROR_CASES = [
    ("not built", lambda lib: lib.layers.Conv2D(2, 2).enable_lora(2)),
    ("twice", lambda lib: _built(lib.layers.Conv1D(2, 2, lora_rank=1), (None, 4, 2)).enable_lora(2)),
    ("constraint", lambda lib: _built(lib.layers.Conv3D(2, 2, kernel_constraint="non_neg"), (None, 3, 3, 3, 1))
     .enable_lora(2)),
    ("transpose", lambda lib: lib.layers.Conv2DTranspose(2, 2, lora_rank=2)),
    ("depthwise", lambda lib: lib.layers.DepthwiseConv1D(2, lora_rank=2)),
    ("separable", lambda lib: lib.layers.SeparableConv2D(2, 2, lora_rank=2, lora_alpha=1)),
]


def _built(layer, shape):
    layer.build(shape)
    return layer


@pytest.mark.parametrize("case,make", ERROR_CASES, ids=[c for c, _ in ERROR_CASES])
def test_errors_match_keras(keras_ref, case, make):
    with pytest.raises(Exception) as theirs:
        make(keras_ref)
    with pytest.raises(type(theirs.value)) as ours:
        make(kerasish)
    assert str(ours.value) == str(theirs.value)


def test_lora_weight_paths_follow_the_build_scope_as_keras(keras_ref):
    """Weights `enable_lora` adds after the build live under the scopes the
    layer was built in (Keras's `name_scope(caller=layer)`), also for Dense."""
    paths = []
    for lib in (keras_ref, kerasish):
        model = _subclassed_model(lib)
        model.build((None, 5, 5, 4))
        model.conv2d.enable_lora(2)
        seq = lib.Sequential([lib.Input((5, 5, 4)), lib.layers.Conv2D(2, 3, name="c"), lib.layers.Flatten(),
                              lib.layers.Dense(2, name="d")], name="seq")
        for layer in (seq.get_layer("c"), seq.get_layer("d")):
            layer.enable_lora(1)
        with lib.name_scope("elsewhere"):
            standalone = lib.layers.Conv1D(2, 2, name="solo")
            standalone.build((None, 4, 2))
        standalone.enable_lora(1)
        quantized = lib.Sequential([lib.Input((4,)), lib.layers.Dense(2, name="q")], name="qseq")
        quantized.quantize("int8")  # (the same mechanism: weights made after the build)
        paths.append([w.path for w in model.weights + seq.weights + standalone.weights + quantized.weights])
    assert "mymodel/conv2d/lora_kernel_a" in paths[0] and "seq/d/lora_kernel_b" in paths[0]
    assert "qseq/q/kernel_scale" in paths[0]
    assert paths[1] == paths[0]


def _subclassed_model(lib):
    class MyModel(lib.Model):
        def __init__(self):
            super().__init__(name="mymodel")
            self.conv2d = lib.layers.Conv2D(4, 3, name="conv2d")

        def build(self, input_shape):
            self.conv2d.build(input_shape)

        def call(self, x):
            return self.conv2d(x)

    return MyModel()
