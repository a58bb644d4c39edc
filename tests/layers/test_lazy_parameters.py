"""Optimizers and DDP created before the first call.

Built-in layers whose trainable weights are known from their config expose
them as `nn.UninitializedParameter`s until `build`, which materializes each
one in place into a Keras variable (as `nn.LazyLinear` does), so an
optimizer made early trains every weight. Unbuilt custom layers warn."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

import kerasish as keras

L = keras.layers


class _Encoder(keras.Model):
    """A subclassed Keras model of built-in layers."""

    def __init__(self):
        super().__init__()
        self.proj = L.Dense(8, activation="relu")
        self.norm = L.LayerNormalization()
        self.out = L.Dense(4)

    def call(self, x):
        return self.out(self.norm(self.proj(x)))


class _Mixed(nn.Module):
    """The issue's mixed model: kerasish layers inside a torch module, a
    torch layer, and a subclassed Keras model."""

    def __init__(self):
        super().__init__()
        self.conv = L.Conv1D(6, 3, padding="same")
        self.bn = L.BatchNormalization()
        self.rnn = L.LSTM(5)
        self.torch_head = nn.Linear(5, 5)
        self.encoder = _Encoder()

    def forward(self, x):
        h = self.rnn(self.bn(self.conv(x)))
        return self.encoder(self.torch_head(h))


def _train(model, opt, x, y, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(x) - y).square().mean()
        loss.backward()
        opt.step()


def test_optimizer_made_before_first_call_trains_every_weight():
    torch.manual_seed(0)
    early = _Mixed()
    early.train()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # built-in layers only: no "partial list" warning
        params_before = list(early.parameters())
    assert any(isinstance(p, UninitializedParameter) for p in params_before)
    opt_early = torch.optim.Adam(params_before, lr=1e-2)
    x = torch.randn(4, 7, 3)
    y = torch.randn(4, 4)
    early(x)  # builds: the placeholders become the weights, in place
    late = copy.deepcopy(early)  # same initial weights, optimizer made after the first call
    opt_late = torch.optim.Adam(late.parameters(), lr=1e-2)
    params_after = list(early.parameters())
    assert len(params_before) == len(params_after)
    assert all(a is b for a, b in zip(params_before, params_after))
    assert not any(isinstance(p, UninitializedParameter) for p in params_after)
    held = {id(p) for group in opt_early.param_groups for p in group["params"]}
    assert {id(p) for p in early.parameters()} <= held
    initial = [p.detach().clone() for p in early.parameters()]
    _train(early, opt_early, x, y, steps=3)
    _train(late, opt_late, x, y, steps=3)
    for p0, a, b in zip(initial, early.parameters(), late.parameters()):
        assert not torch.equal(p0, a.detach())  # every weight trained
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for w in early.encoder.weights:
        assert isinstance(w, keras.Variable)


def test_subclassed_model_optimizer_before_first_call_is_not_empty():
    model = _Encoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # torch raised "empty parameter list" here
    assert len(opt.param_groups[0]["params"]) == 6
    x = torch.randn(3, 5)
    model(x)
    kernel0 = model.out.kernel.detach().clone()
    model(x).sum().backward()
    opt.step()
    assert not torch.equal(kernel0, model.out.kernel.detach())


def test_unbuilt_layer_keeps_keras_semantics():
    layer = L.Dense(3)
    assert len(list(layer.parameters())) == 2
    assert layer.weights == [] and layer.trainable_weights == []
    assert dict(layer.state_dict()) == {}
    with pytest.raises(ValueError, match="isn't built"):
        layer.count_params()
    layer.build((None, 4))
    assert [w.path for w in layer.weights] == ["dense/kernel", "dense/bias"]
    assert layer.count_params() == 4 * 3 + 3


def test_placeholders_follow_config_and_unused_ones_are_dropped(keras_ref):
    assert [n for n, _ in L.Dense(2, use_bias=False).named_parameters()] == ["kernel"]
    bn = L.BatchNormalization(center=False)
    assert [n for n, _ in bn.named_parameters()] == ["gamma"]
    bn.build((None, 3))
    ref = keras_ref.layers.BatchNormalization(center=False)
    ref.build((None, 3))
    assert [w.name for w in bn.weights] == [w.name for w in ref.weights] == ["gamma", "moving_mean", "moving_variance"]
    assert bn.beta is None and ref.beta is None
    dense = L.Dense(2, use_bias=False)
    dense.build((None, 4))
    ref_dense = keras_ref.layers.Dense(2, use_bias=False)
    ref_dense.build((None, 4))
    assert [w.name for w in dense.weights] == [w.name for w in ref_dense.weights] == ["kernel"]


def test_load_state_dict_into_unbuilt_layer_materializes_in_place():
    source = L.Dense(3)
    source.build((None, 4))
    target = L.Dense(3)
    held = list(target.parameters())
    target.load_state_dict(source.state_dict())
    assert target.built and held[0] is target.kernel and held[1] is target.bias
    np.testing.assert_array_equal(target.kernel.numpy(), source.kernel.numpy())


def test_deepcopy_and_pickle_of_unbuilt_layer():
    layer = L.Dense(3)
    for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert all(isinstance(p, UninitializedParameter) for p in twin.parameters())
        out = twin(torch.ones(2, 4))
        assert out.shape == (2, 3) and isinstance(twin.kernel, keras.Variable)
    assert not layer.built


def test_cast_before_build_builds_in_that_dtype():
    layer = L.Dense(3)
    layer.double()
    assert layer.dtype_policy.name == "float64"
    assert layer(torch.ones(1, 2, dtype=torch.float64)).dtype == torch.float64
    assert layer.kernel.dtype == torch.float64


def test_frozen_before_build_stays_frozen():
    layer = L.Dense(3)
    layer.trainable = False
    layer.build((None, 2))
    assert not layer.kernel.requires_grad and layer.trainable_weights == []


class _Custom(keras.layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 2))

    def call(self, x):
        return x @ self.w


class _CustomDense(L.Dense):
    def build(self, input_shape):  # its own build: Dense's declaration does not hold
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units))
        self.bias = None


@pytest.mark.parametrize("cls", [_Custom, lambda: _CustomDense(2)])
def test_unbuilt_custom_layer_warns_that_parameters_are_partial(cls):
    model = keras.Sequential([L.Dense(3), cls()])
    with pytest.warns(UserWarning, match=r"not built yet.*build\(input_shape\).*one batch"):
        list(model.parameters())  # (warns when the walk runs, as an optimizer consumes it)
    model(torch.ones(1, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(model.parameters())) == 3


def test_ddp_before_first_call_gives_torchs_refusal(tmp_path):
    dist = pytest.importorskip("torch.distributed", reason="needs torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available in this build")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = _Encoder()
        with pytest.raises(RuntimeError, match="uninitialized parameters"):
            nn.parallel.DistributedDataParallel(model)
        model(torch.ones(2, 5))
        ddp = nn.parallel.DistributedDataParallel(model)  # after one batch: every weight
        assert len(list(ddp.parameters())) == 6
    finally:
        dist.destroy_process_group()


def test_moves_before_build_keep_the_placeholder_objects():
    layer = L.Dense(3)
    held = list(layer.parameters())
    opt = torch.optim.SGD(held, lr=0.5)
    layer.to("meta").to("cpu").double()  # (meta -> cpu needs a swap: no data to copy)
    assert all(a is b for a, b in zip(layer.parameters(), held))
    assert all(isinstance(p, UninitializedParameter) and p.dtype == torch.float64 for p in held)
    x = torch.ones(2, 4, dtype=torch.float64)
    layer(x).sum().backward()
    assert held[0] is layer.kernel and layer.kernel.dtype == torch.float64
    kernel0 = layer.kernel.detach().clone()
    opt.step()
    # d(sum(x @ K + b))/dK = x^T @ ones: every entry equals the batch size
    torch.testing.assert_close(layer.kernel.detach(), kernel0 - 0.5 * 2.0)


_DECLARED = [
    (lambda: L.Dense(3), (2, 4)),
    (lambda: L.Dense(3, use_bias=False), (2, 4)),
    (lambda: L.Conv1D(2, 3), (2, 5, 3)),
    (lambda: L.Conv2D(2, 3), (2, 5, 5, 3)),
    (lambda: L.Conv2DTranspose(2, 3), (2, 5, 5, 3)),
    (lambda: L.DepthwiseConv2D(3), (2, 5, 5, 3)),
    (lambda: L.SeparableConv2D(2, 3), (2, 5, 5, 3)),
    (lambda: L.BatchNormalization(), (2, 3)),
    (lambda: L.LayerNormalization(rms_scaling=True), (2, 3)),
    (lambda: L.GroupNormalization(groups=2), (2, 4)),
    (lambda: L.PReLU(), (2, 3)),
    (lambda: L.Embedding(7, 3), None),
    (lambda: L.SimpleRNN(3), (2, 4, 3)),
    (lambda: L.LSTM(3), (2, 4, 3)),
    (lambda: L.GRU(3), (2, 4, 3)),
]


@pytest.mark.parametrize("index", range(len(_DECLARED)))
def test_declared_placeholders_become_exactly_the_trainable_weights(index):
    make, shape = _DECLARED[index]
    layer = make()
    held = list(layer.parameters())
    assert held and all(isinstance(p, UninitializedParameter) for p in held)
    x = torch.tensor([[1, 2, 3], [4, 5, 6]]) if shape is None else torch.randn(*shape)
    layer(x)
    after = list(layer.parameters())
    assert [id(p) for p in after] == [id(p) for p in held]
    assert {id(w) for w in layer.trainable_weights} == {id(p) for p in held}
    assert all(isinstance(p, keras.Variable) for p in after)


class _UserModule(nn.Module):
    """A user's torch module holding a kerasish model with a custom layer."""

    def __init__(self):
        super().__init__()
        self.body = keras.Sequential([L.Dense(3), _Custom()])
        self.head = nn.Linear(2, 1)

    def forward(self, x):
        return self.head(self.body(x))


_NESTED = [
    ("nn.Sequential", lambda: nn.Sequential(_Custom(), nn.Linear(2, 2))),
    ("user nn.Module", _UserModule),
]


@pytest.mark.parametrize("make", [m for _, m in _NESTED], ids=[n for n, _ in _NESTED])
def test_unbuilt_custom_layer_inside_torch_module_warns(make):
    """The partial-list warning fires for a kerasish layer or model nested in
    a plain torch module (torch walks into it without `Layer.parameters`),
    at the user's line; `torch.optim`, which would keep the partial list,
    gets a ValueError instead."""
    module = make()
    with pytest.raises(ValueError, match=r"not built yet.*`Adam\(...\)`.*build\(input_shape\).*one batch"):
        torch.optim.Adam(module.parameters())
    with pytest.warns(UserWarning, match=r"not built yet.*build\(input_shape\).*one batch") as record:
        list(module.parameters())
    assert any(w.filename == __file__ for w in record), [w.filename for w in record]
    with pytest.warns(UserWarning, match="not built yet"):
        dict(module.named_parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # walks that are not about parameters stay quiet
        list(module.modules())
        list(module.buffers())
        module.state_dict()
    module(torch.ones(1, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        params = list(module.parameters())
    assert len(params) == len({id(p) for p in params}) >= 3


def test_built_in_layers_inside_torch_module_do_not_warn():
    module = nn.Sequential(L.Dense(4), L.MultiHeadAttention(2, 2), nn.Linear(4, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(isinstance(p, UninitializedParameter) for p in list(module.parameters())[:10])


def test_ddp_before_first_call_of_nested_layers(tmp_path):
    dist = pytest.importorskip("torch.distributed", reason="needs torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available in this build")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        # built-in layers: torch's own refusal (uninitialized parameters)
        with pytest.raises(RuntimeError, match="uninitialized parameters"):
            nn.parallel.DistributedDataParallel(nn.Sequential(L.Dense(3), nn.Linear(3, 1)))
        # a custom layer, whose weights cannot exist yet: DDP would never synchronize them
        with pytest.raises(ValueError, match="not built yet.*DistributedDataParallel"):
            nn.parallel.DistributedDataParallel(nn.Sequential(_Custom(), nn.Linear(2, 1)))
    finally:
        dist.destroy_process_group()


def _r(*shape):
    return torch.randn(*shape)


# options that change which weights `build` creates (the catalogue walks the defaults)
_VARIANTS = {
    "Attention-concat": (lambda: L.Attention(use_scale=True, score_mode="concat"), lambda: ([_r(2, 3, 4), _r(2, 5, 4)],)),
    "AdditiveAttention-noscale": (lambda: L.AdditiveAttention(use_scale=False), lambda: ([_r(2, 3, 4), _r(2, 5, 4)],)),
    "MHA-gate-nobias-outshape": (
        lambda: L.MultiHeadAttention(2, 3, use_gate=True, use_bias=False, output_shape=(2, 3)),
        lambda: (_r(2, 3, 4), _r(2, 5, 4)),
    ),
    "MHA-4d": (lambda: L.MultiHeadAttention(2, 3, attention_axes=(1, 2)), lambda: (_r(2, 3, 3, 4), _r(2, 3, 3, 4))),
    "MHA-key": (lambda: L.MultiHeadAttention(2, 3), lambda: (_r(2, 3, 4), _r(2, 5, 6), _r(2, 5, 2))),
    "GQA-gate": (lambda: L.GroupQueryAttention(3, 4, 2, use_gate=True), lambda: (_r(2, 3, 4), _r(2, 5, 4))),
    "EinsumDense-nobias": (lambda: L.EinsumDense("ab,bc->ac", 3), lambda: (_r(2, 4),)),
    "Bidirectional-backward_layer": (
        lambda: L.Bidirectional(
            L.GRU(3, return_sequences=True), backward_layer=L.GRU(3, return_sequences=True, go_backwards=True)
        ),
        lambda: (_r(2, 5, 4),),
    ),
    "TimeDistributed-Conv2D": (lambda: L.TimeDistributed(L.Conv2D(2, 2)), lambda: (_r(2, 3, 4, 4, 2),)),
    "RNN-StackedRNNCells": (lambda: L.RNN(L.StackedRNNCells([L.LSTMCell(3), L.GRUCell(2)])), lambda: (_r(2, 5, 4),)),
    "ConvLSTM2D-nobias": (lambda: L.ConvLSTM2D(2, 2, use_bias=False), lambda: (_r(1, 3, 4, 4, 2),)),
    "SpectralNormalization-Conv2D": (lambda: L.SpectralNormalization(L.Conv2D(2, 2)), lambda: (_r(1, 4, 4, 2),)),
    "GroupNormalization-nocenter": (lambda: L.GroupNormalization(2, center=False), lambda: (_r(2, 4),)),
    "PReLU-shared": (lambda: L.PReLU(shared_axes=[1]), lambda: (_r(2, 3, 4),)),
}


@pytest.mark.parametrize("name", list(_VARIANTS))
def test_option_variants_hold_every_weight_before_build(name):
    make, inputs = _VARIANTS[name]
    layer = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        held = list(layer.parameters())
    layer(*inputs())
    assert [id(p) for p in layer.parameters()] == [id(p) for p in held]
    assert {id(w) for w in layer.trainable_weights} == {id(p) for p in held}
