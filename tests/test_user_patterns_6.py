"""Habits PyTorch users bring to kerasish layers (round 6): EMA copies
(`AveragedModel`, a hand-written EMA over `parameters()` / `state_dict()`)
and the other parameter-list consumers (torch and kerasish optimizers,
`requires_grad_`, `parameters_to_vector`) used before the first call of
a model with an unbuilt custom layer; first calls under
`torch.inference_mode()` then training; `torch.fx.symbolic_trace`; padded
batches from a `collate_fn` into `mask_zero=True` Embedding + LSTM under
anomaly detection; kerasish layers in `nn.ModuleList` / `nn.ModuleDict`
under `train()` / `eval()`; meta-device construction, `to_empty` and
`reset_parameters()`; `PackedSequence` inputs; forward hooks and pre-hooks
that replace tensors carrying a Keras mask; `torch.distributed.checkpoint`
of a model and its torch optimizer in one process; `torch.jit.trace` of
masked models; `torch.optim.LBFGS` over an LSTM; seeded Dropout under
`torch.utils.checkpoint` (a known bug, xfail); a torch module called on a
Keras tensor; an IterableDataset of weighted samples in `fit` (against
real Keras 3); torch's model-ensembling recipe (`stack_module_state`, a meta
base copy, `vmap`).
References: the same pattern on `torch.nn` modules holding the same weights
(`pack_padded_sequence` LSTMs for masks), torch's own behaviour for the
equivalent lazy module, or the maths of the initializers."""

import copy
import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from torch.optim.swa_utils import AveragedModel
from torch.optim.swa_utils import get_ema_multi_avg_fn

import kerasish

L = kerasish.layers


class _Scale(kerasish.layers.Layer):
    """A custom layer: its weight exists only once `build` ran (no placeholder)."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="random_normal", name="w")

    def call(self, x):
        return x * self.w


class _ScaleTwin(torch.nn.Module):
    """`Sequential([_Scale(), Dense(2)])` in plain torch."""

    def __init__(self, model):
        super().__init__()
        self.w = torch.nn.Parameter(model.layers[0].w.detach().clone())
        self.linear = torch.nn.Linear(3, 2)
        with torch.no_grad():
            self.linear.weight.copy_(model.layers[1].kernel.T)
            self.linear.bias.copy_(model.layers[1].bias)

    def forward(self, x):
        return self.linear(x * self.w)


def _scale_model():
    return kerasish.Sequential([_Scale(), L.Dense(2)])


def _batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(6, 3, generator=g), torch.randn(6, 2, generator=g)) for _ in range(n)]


# ------------------------------------------------- EMA copies before the first call
@pytest.mark.parametrize("layers", ["custom only", "custom and Dense"])
def test_averaged_model_made_before_the_first_call_fails_loudly_naming_the_fix(layers):
    """Round 5 left this averaging nothing after a warning (a custom layer has no placeholder weights, so
    the copy's parameter list was empty or shorter than the model's, and `zip` truncated it)."""
    model = kerasish.Sequential([_Scale()] if layers == "custom only" else [_Scale(), L.Dense(2)])
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    model(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"_scale' \(_Scale\) is not built yet.*AveragedModel\.update_parameters.*run one batch"):
        ema.update_parameters(model)


def test_hand_written_ema_over_a_copy_made_before_the_first_call_fails_loudly():
    """`ema = copy.deepcopy(model)` before training, then timm-style `zip(ema.state_dict().values(),
    model.state_dict().values())`: the unbuilt copy's state_dict was empty, so the EMA silently averaged
    nothing (built-in layers too: their placeholders are not saved). Now both walks raise, naming the fix;
    the copy itself still pickles and builds on its own batch."""
    for make in (_scale_model, lambda: kerasish.Sequential([L.Dense(3), L.BatchNormalization()])):
        model = make()
        ema = copy.deepcopy(model)
        model(torch.randn(2, 3))
        with pytest.raises(ValueError, match=r"copy .*made before the first call.*`state_dict\(\)`.*after the model's first call"):
            ema.state_dict()
        assert pickle.loads(pickle.dumps(ema)) is not None
        ema(torch.randn(2, 3))  # a copy that ran its own batch is a model like any other
        assert list(ema.state_dict()) == list(model.state_dict())
    model = kerasish.Sequential([L.Dense(3), L.BatchNormalization()])
    ema = copy.deepcopy(model)
    model(torch.randn(2, 3))
    ema.load_state_dict(model.state_dict())  # (the other fix the error names: built-in layers build from it)
    assert list(ema.state_dict()) == list(model.state_dict())
    model = _scale_model()
    ema = copy.deepcopy(model)
    model(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"copy .*made before the first call.*`parameters\(\)`"):
        list(zip(ema.parameters(), model.parameters()))


def test_ema_copies_made_after_the_first_call_match_the_torch_twin():
    """The fix the errors name: copy after the first call. AveragedModel and a hand-written state_dict EMA
    then equal the same EMAs of the torch twin, step by step."""
    torch.manual_seed(0)
    model = _scale_model()
    model(torch.randn(1, 3))
    twin = _ScaleTwin(model)
    avg = [AveragedModel(m, multi_avg_fn=get_ema_multi_avg_fn(0.8)) for m in (model, twin)]
    hand = [copy.deepcopy(m) for m in (model, twin)]
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin)]
    for x, y in _batches(3):
        for i, m in enumerate((model, twin)):
            opts[i].zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            opts[i].step()
            avg[i].update_parameters(m)
            with torch.no_grad():
                for e, v in zip(hand[i].state_dict().values(), m.state_dict().values()):
                    e.mul_(0.8).add_(v, alpha=0.2)
    tol = {"rtol": 1e-6, "atol": 1e-6}
    for ours, theirs in ((avg[0].module, avg[1].module), (hand[0], hand[1])):
        torch.testing.assert_close(ours.layers[0].w.detach(), theirs.w.detach(), **tol)
        torch.testing.assert_close(ours.layers[1].kernel.detach(), theirs.linear.weight.detach().T, **tol)
        torch.testing.assert_close(ours.layers[1].bias.detach(), theirs.linear.bias.detach(), **tol)


def test_parameter_list_consumers_before_the_first_call_fail_loudly_and_user_lists_warn():
    """Consumers that keep the walked list (a torch or kerasish optimizer, `parameters_to_vector`) or change every entry
    (`requires_grad_`) raise before the first call of an unbuilt custom layer, whose weights would never
    train / be frozen; a list the user only looks at warns. `zero_grad` and `fit` stay quiet."""
    consumers = {
        "SGD(...)": lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
        "Sequential.requires_grad_": lambda m: m.requires_grad_(False),
        "parameters_to_vector": lambda m: torch.nn.utils.parameters_to_vector(m.parameters()),
        "Adam.build": lambda m: kerasish.optimizers.Adam().build(m.parameters()),  # (kerasish's own keeps it too)
    }
    for name, use in consumers.items():
        with pytest.raises(ValueError, match=rf"not built yet.*`{re.escape(name)}`.*build\(input_shape\)"):
            use(kerasish.Sequential([_Scale()]))
    with pytest.warns(UserWarning, match="not built yet"):
        list(_scale_model().parameters())
    model = _scale_model()
    model.compile(optimizer="sgd", loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"), verbose=0)  # (warned twice before)
        torch.optim.SGD(model.parameters(), lr=0.1)
        model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_register_hook_and_vector_of_built_in_placeholders_fail_as_torch_lazy_modules_do():
    """Built-in layers hold torch `UninitializedParameter`s before the first call: hooks and vector
    utilities on them give torch's own error, exactly as for `nn.LazyLinear`."""
    errors = []
    for module in (torch.nn.Sequential(torch.nn.LazyLinear(2)), kerasish.Sequential([L.Dense(2)])):
        for use in (lambda p: p.register_hook(lambda g: g), lambda p: torch.nn.utils.parameters_to_vector([p])):
            with pytest.raises(ValueError, match="uninitialized parameter") as info:
                use(next(iter(module.parameters())))
            errors.append(str(info.value))
    assert errors[:2] == errors[2:]


# ------------------------------------------------------- inference_mode first calls
def _lstm_bn_twin(model):
    """`[LSTM(3, stateful), BatchNormalization, Dense(1)]` as torch modules with the same weights
    (Keras's LSTM gate order i, f, c, o is torch's i, f, g, o; Keras has one bias)."""
    lstm, bn, dense = model.layers
    cell = lstm.cell
    twin = torch.nn.ModuleDict({
        "lstm": torch.nn.LSTM(3, 3, batch_first=True),
        "bn": torch.nn.BatchNorm1d(3, eps=1e-3, momentum=0.01),  # Keras momentum 0.99
        "linear": torch.nn.Linear(3, 1),
    })
    with torch.no_grad():
        twin["lstm"].weight_ih_l0.copy_(cell.kernel.T)
        twin["lstm"].weight_hh_l0.copy_(cell.recurrent_kernel.T)
        twin["lstm"].bias_ih_l0.copy_(cell.bias)
        twin["lstm"].bias_hh_l0.zero_()
        twin["bn"].weight.copy_(bn.gamma)
        twin["bn"].bias.copy_(bn.beta)
        twin["linear"].weight.copy_(dense.kernel.T)
        twin["linear"].bias.copy_(dense.bias)
    twin["lstm"].bias_hh_l0.requires_grad_(False)  # (Keras's one bias: torch's two would each move)
    return twin


def test_first_call_under_inference_mode_then_training_matches_the_torch_twin():
    """The first call, made under `torch.inference_mode()`, builds the model and sets a stateful LSTM's
    carried state. Weights and that state were inference tensors, so the next training step failed
    ("Inference tensors cannot be saved for backward"; `nn.LazyLinear` builds normal tensors). Now training
    goes on from the carried state exactly as the torch twin does."""
    torch.manual_seed(0)
    model = kerasish.Sequential([kerasish.Input(batch_shape=(4, 5, 3)), L.LSTM(3, stateful=True),
                                 L.BatchNormalization(), L.Dense(1)])
    g = torch.Generator().manual_seed(2)
    xs = [torch.randn(4, 5, 3, generator=g) for _ in range(3)]
    y = torch.randn(4, 1, generator=g)
    with torch.inference_mode():
        first = model(xs[0])
    assert not any(t.is_inference() for t in [*model.parameters(), *model.buffers()])
    twin = _lstm_bn_twin(model).eval()
    with torch.no_grad():
        seq, state = twin["lstm"](xs[0])
        torch.testing.assert_close(first, twin["linear"](twin["bn"](seq[:, -1])), rtol=1e-5, atol=1e-5)
    model.train()
    twin.train()
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin)]
    for x in xs[1:]:
        seq, state = twin["lstm"](x, state)
        state = tuple(s.detach() for s in state)
        losses = [torch.nn.functional.mse_loss(model(x), y),
                  torch.nn.functional.mse_loss(twin["linear"](twin["bn"](seq[:, -1])), y)]
        for opt, loss in zip(opts, losses):
            opt.zero_grad()
            loss.backward()
            opt.step()
    tol = {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(model.layers[0].cell.kernel.detach(), twin["lstm"].weight_ih_l0.detach().T, **tol)
    torch.testing.assert_close(model.layers[2].kernel.detach(), twin["linear"].weight.detach().T, **tol)
    torch.testing.assert_close(model.layers[1].moving_mean.detach(), twin["bn"].running_mean, **tol)
    torch.testing.assert_close(model.layers[0].states[0], state[0][0], **tol)


def test_reset_states_under_inference_mode_then_training_starts_from_zeros():
    """`model.reset_states()` inside an evaluation loop under `torch.inference_mode()` stored inference-tensor
    zeros, and the next training call failed; now it trains from zero states like a fresh stateless call."""
    torch.manual_seed(0)
    model = kerasish.Sequential([kerasish.Input(batch_shape=(2, 4, 3)), L.LSTM(3, stateful=True)])
    x = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(3))
    model(x)
    with torch.inference_mode():
        model.reset_states()
    assert not any(s.is_inference() for s in model.layers[0].states)
    model.train()
    out = model(x)
    out.sum().backward()
    torch.testing.assert_close(out, model.layers[0](x, initial_state=[torch.zeros(2, 3)] * 2), rtol=0, atol=0)


def test_fit_after_a_first_call_under_inference_mode_trains_every_weight():
    torch.manual_seed(0)
    model = _scale_model()
    with torch.inference_mode():
        model(torch.randn(2, 3))
    before = [w.detach().clone() for w in model.trainable_weights]
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"), verbose=0)
    assert all(not torch.equal(w.detach(), b) for w, b in zip(model.trainable_weights, before))


# ------------------------------------------------------------------- torch.fx
def test_fx_symbolic_trace_says_what_to_use_and_a_leaf_tracer_keeps_kerasish_layers_whole():
    """`torch.fx.symbolic_trace` of a kerasish model (or of a torch module holding a kerasish layer) failed
    deep in the Keras pipeline with fx's "symbolically traced variables cannot be used as inputs to control
    flow". It now names the layer and the alternatives; the leaf-module recipe it names gives an FX graph
    that computes what the module computes."""
    torch.manual_seed(0)
    model = kerasish.Sequential([L.Dense(3), L.BatchNormalization(), L.Dense(2)])
    x = torch.randn(4, 5)
    model(x)
    for root, name in ((model, "sequential"), (torch.nn.Sequential(L.Dense(3), torch.nn.ReLU()), "dense")):
        with pytest.raises(RuntimeError, match=rf"symbolic_trace cannot trace through the kerasish layer '{name}.*is_leaf_module"):
            torch.fx.symbolic_trace(root)

    class KerasLeaves(torch.fx.Tracer):
        def is_leaf_module(self, module, qualname):
            return isinstance(module, kerasish.Layer) or super().is_leaf_module(module, qualname)

    root = torch.nn.Sequential(model, torch.nn.Tanh())
    graph = torch.fx.GraphModule(root, KerasLeaves().trace(root))
    assert [n.op for n in graph.graph.nodes] == ["placeholder", "call_module", "call_module", "output"]
    torch.testing.assert_close(graph(x), torch.tanh(model(x)), rtol=0, atol=0)


# ------------------------------------- padded batches from a collate_fn into masked layers
class _Sentences(torch.utils.data.Dataset):
    """Token sequences of different lengths (no zeros: 0 is the padding id) and a target each."""

    def __init__(self):
        g = torch.Generator().manual_seed(3)
        self.items = [(torch.randint(1, 12, (int(n),), generator=g), torch.randn(1, generator=g))
                      for n in torch.randint(1, 7, (12,), generator=g)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _pad_collate(batch):
    tokens = torch.nn.utils.rnn.pad_sequence([t for t, _ in batch], batch_first=True, padding_value=0)
    return tokens, torch.stack([y for _, y in batch])


class _PackedTwin(torch.nn.Module):
    """Embedding -> LSTM over `pack_padded_sequence` -> Linear: the torch way to skip the padding."""

    def __init__(self, model):
        super().__init__()
        emb, lstm, dense = model.layers
        self.emb = torch.nn.Embedding(12, 4)
        self.lstm = torch.nn.LSTM(4, 3, batch_first=True)
        self.linear = torch.nn.Linear(3, 1)
        with torch.no_grad():
            self.emb.weight.copy_(emb.embeddings)
            self.lstm.weight_ih_l0.copy_(lstm.cell.kernel.T)
            self.lstm.weight_hh_l0.copy_(lstm.cell.recurrent_kernel.T)
            self.lstm.bias_ih_l0.copy_(lstm.cell.bias)
            self.lstm.bias_hh_l0.zero_()
            self.linear.weight.copy_(dense.kernel.T)
            self.linear.bias.copy_(dense.bias)
        self.lstm.bias_hh_l0.requires_grad_(False)  # (Keras's one bias)

    def forward(self, tokens):
        lengths = (tokens != 0).sum(1)
        packed = torch.nn.utils.rnn.pack_padded_sequence(self.emb(tokens), lengths, batch_first=True,
                                                         enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.linear(h[-1])


def test_padded_dataloader_batches_into_mask_zero_embedding_and_lstm_fit_like_a_packed_torch_lstm():
    """A `collate_fn` pads each batch to its own longest sequence; `fit` on that DataLoader (the time
    length changes per batch) trains a `mask_zero=True` Embedding + LSTM exactly as torch trains the same
    weights over `pack_padded_sequence`, under `set_detect_anomaly(True)` (no false NaN alarm from the
    masked steps, nor from a batch row that is all padding)."""
    torch.manual_seed(0)
    model = kerasish.Sequential([L.Embedding(12, 4, mask_zero=True), L.LSTM(3), L.Dense(1)])
    loader = torch.utils.data.DataLoader(_Sentences(), batch_size=4, collate_fn=_pad_collate)
    model(next(iter(loader))[0])
    twin = _PackedTwin(model)
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    model.compile(optimizer=kerasish.optimizers.SGD(0.1), loss="mse")
    with torch.autograd.set_detect_anomaly(True):
        history = model.fit(loader, epochs=2, shuffle=False, verbose=0)
        losses = []
        for _ in range(2):
            epoch = []
            for tokens, y in loader:
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(twin(tokens), y)
                loss.backward()
                opt.step()
                epoch.append(loss.item())
            losses.append(np.mean(epoch))
        np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-5)
        tol = {"rtol": 1e-5, "atol": 1e-6}
        torch.testing.assert_close(model.layers[0].embeddings.detach(), twin.emb.weight.detach(), **tol)
        torch.testing.assert_close(model.layers[1].cell.recurrent_kernel.detach(), twin.lstm.weight_hh_l0.detach().T, **tol)
        padded_row = torch.tensor([[3, 4, 0], [0, 0, 0]])  # (an all-padding row: Keras gives the initial state)
        model(padded_row).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# ----------------------------------------------- kerasish layers in torch containers
class _Blocks(torch.nn.Module):
    """A torch model keeping kerasish layers in `nn.ModuleList` / `nn.ModuleDict` (or, for the twin, the
    torch layers)."""

    def __init__(self, blocks, head):
        super().__init__()
        self.blocks = torch.nn.ModuleList(blocks)
        self.heads = torch.nn.ModuleDict({"out": head})

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.heads["out"](x)


def test_module_list_and_dict_of_kerasish_layers_follow_train_eval_and_dtype_moves_like_torch_layers():
    """`train()` / `eval()` on the torch parent decide BatchNormalization's and Dropout's behaviour as they
    decide torch's (batch statistics and a 1/(1-rate) scaled mask, moving averages with Keras's momentum;
    inference: the moving averages, no dropout); `state_dict` keys are the containers' names;
    `zero_grad(set_to_none=True)` and `.double()` after the build act as on the twin."""
    torch.manual_seed(0)
    ours = _Blocks([L.Dense(6), L.BatchNormalization(), L.Dropout(0.5)], L.Dense(2))
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(4))
    # registered in the user's torch containers, the kerasish layers start in training mode as torch's do
    assert all(m.training for m in ours.modules())
    ours.eval()(x)  # (builds the layers without moving the statistics)
    twin = _Blocks([torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6, eps=1e-3, momentum=0.01), torch.nn.Identity()],
                   torch.nn.Linear(6, 2))
    with torch.no_grad():
        for k, t in ((ours.blocks[0], twin.blocks[0]), (ours.heads["out"], twin.heads["out"])):
            t.weight.copy_(k.kernel.T)
            t.bias.copy_(k.bias)
        twin.blocks[1].weight.copy_(ours.blocks[1].gamma)
        twin.blocks[1].bias.copy_(ours.blocks[1].beta)
    assert list(ours.state_dict()) == ["blocks.0.kernel", "blocks.0.bias", "blocks.1.gamma", "blocks.1.beta",
                                       "blocks.1.moving_mean", "blocks.1.moving_variance", "heads.out.kernel",
                                       "heads.out.bias"]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in twin.named_modules()]

    masks = []
    ours.blocks[2].register_forward_hook(lambda m, args, out: masks.append((out != 0).to(out.dtype)))
    ours.train()
    twin.train()
    out = ours(x)
    assert all(m.training for m in ours.modules())
    mask = masks[-1]
    assert 0 < mask.mean() < 1  # dropout ran
    want = twin.heads["out"](twin.blocks[1](twin.blocks[0](x)) * mask / 0.5)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.blocks[1].moving_mean, twin.blocks[1].running_mean, rtol=1e-5, atol=1e-6)
    out.square().sum().backward()
    ours.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in ours.parameters())

    ours.eval()
    twin.eval()
    # (the moving means agree to float32 rounding, checked above; Keras's variance is the biased one)
    twin.blocks[1].running_mean.copy_(ours.blocks[1].moving_mean)
    twin.blocks[1].running_var.copy_(ours.blocks[1].moving_variance)
    torch.testing.assert_close(ours(x), twin(x), rtol=1e-5, atol=1e-5)
    assert len(masks) == 2 and torch.equal(masks[-1], (ours.blocks[1](ours.blocks[0](x)) != 0).to(x.dtype))
    ours.double()
    twin.double()
    out64 = ours(x.double())
    assert out64.dtype == torch.float64 and {p.dtype for p in ours.parameters()} == {torch.float64}
    torch.testing.assert_close(out64, twin(x.double()), rtol=1e-10, atol=1e-10)


# ------------------------------------------- meta-device construction, then re-initialization
def _meta_model():
    i = kerasish.Input((5, 4))
    x = L.Conv1D(4, 2, padding="same")(i)
    x = L.BatchNormalization()(x)
    x = L.MultiHeadAttention(2, 3)(x, x)  # (built symbolically on the meta device: it failed there)
    x = L.LSTM(4)(x)
    return kerasish.Model(i, L.Dense(2)(x))


def test_meta_build_then_to_empty_and_reset_parameters_reinitializes_every_weight():
    """torch's meta-device recipe (FSDP's default `param_init_fn` too): build on meta, `to_empty`, then
    `reset_parameters()` on every module that has it. kerasish layers had no `reset_parameters`, so every
    weight stayed uninitialized memory, silently; `to_empty` also turned the weights into plain
    `nn.Parameter`s (no `path`, no `assign`), and MultiHeadAttention could not be built symbolically on
    meta. Now each weight is drawn again from its Keras initializer: the constant ones equal a normal
    build, the Glorot kernels lie within +-sqrt(6 / (fan_in + fan_out)), the recurrent kernel is
    orthogonal, and the LSTM computes what torch's nn.LSTM computes with those weights."""
    torch.manual_seed(0)
    normal = _meta_model()
    with torch.device("meta"):
        model = _meta_model()
    model.to_empty(device="cpu")
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    assert [(w.name, w.shape) for w in model.weights] == [(w.name, w.shape) for w in normal.weights]
    assert all(isinstance(w, kerasish.Variable) and w.device.type == "cpu" for w in model.weights)
    assert model.layers[-1].kernel.path.endswith("/kernel")
    for ours, ref in zip(model.weights, normal.weights):
        if ref.name in ("bias", "gamma", "beta", "moving_mean", "moving_variance"):
            torch.testing.assert_close(ours.detach(), ref.detach(), rtol=0, atol=0)
    for layer, fans in ((model.layers[1], (2 * 4, 2 * 4)), (model.layers[-1], (4, 2))):
        kernel = layer.kernel.detach()
        assert kernel.abs().max() <= np.sqrt(6 / sum(fans)) and kernel.std() > 0
    lstm = model.layers[4]
    rk = lstm.cell.recurrent_kernel.detach()
    torch.testing.assert_close(rk @ rk.T, torch.eye(4), rtol=0, atol=1e-5)  # Keras's Orthogonal: orthonormal rows

    twin = torch.nn.LSTM(4, 4, batch_first=True)
    with torch.no_grad():
        twin.weight_ih_l0.copy_(lstm.cell.kernel.T)
        twin.weight_hh_l0.copy_(rk.T)
        twin.bias_ih_l0.copy_(lstm.cell.bias)
        twin.bias_hh_l0.zero_()
    x = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(lstm(x), twin(x)[0][:, -1], rtol=1e-5, atol=1e-6)
    model.layers[-1].kernel.assign(np.zeros((4, 2), "float32"))  # the Keras variable API is back
    out = model(torch.randn(2, 5, 4))
    torch.testing.assert_close(out, model.layers[-1].bias.detach().expand(2, 2))


def test_reset_parameters_keeps_the_objects_an_optimizer_holds_and_redraws_like_the_initializer():
    """`reset_parameters()` of a built layer draws in place (a torch optimizer keeps training the same
    tensors) from the layer's own initializers, in weight order: the same global-RNG draws as calling those
    initializers (reference: `kerasish.initializers` from the layer's config, same seed)."""
    layer = L.Dense(3, bias_initializer="random_normal")
    layer(torch.randn(2, 4))
    held = list(layer.parameters())
    torch.manual_seed(7)
    layer.reset_parameters()
    assert [id(p) for p in layer.parameters()] == [id(p) for p in held]
    torch.manual_seed(7)
    config = layer.get_config()
    kernel = kerasish.initializers.get(config["kernel_initializer"])((4, 3), dtype="float32")
    bias = kerasish.initializers.get(config["bias_initializer"])((3,), dtype="float32")
    torch.testing.assert_close(layer.kernel.detach(), kernel, rtol=0, atol=0)
    torch.testing.assert_close(layer.bias.detach(), bias, rtol=0, atol=0)
    valued = L.Layer()
    valued.w = kerasish.Variable(np.ones(3, "float32"))
    with pytest.raises(ValueError, match="cannot reset its weight .*made from a value"):
        valued.reset_parameters()


def test_a_packed_sequence_is_refused_with_the_mask_recipe_which_equals_torchs_packed_lstm():
    """A torch user hands a kerasish LSTM the `PackedSequence` an `nn.LSTM` takes: it was read as a tuple of
    four inputs and failed while building ("shape of weight 'kernel' must be fully defined"). The error now
    gives the padded-batch-plus-mask recipe, and that recipe equals torch's LSTM over the packed batch."""
    torch.manual_seed(0)
    lstm = L.LSTM(3)
    x = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1))
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([5, 2, 4]), batch_first=True,
                                                     enforce_sorted=False)
    with pytest.raises(TypeError, match=r"'lstm.*received a torch PackedSequence.*pad_packed_sequence.*mask="):
        lstm(packed)
    padded, lengths = torch.nn.utils.rnn.pad_packed_sequence(packed, batch_first=True)
    out = lstm(padded, mask=torch.arange(padded.shape[1]) < lengths[:, None])
    twin = torch.nn.LSTM(4, 3, batch_first=True)
    with torch.no_grad():
        twin.weight_ih_l0.copy_(lstm.cell.kernel.T)
        twin.weight_hh_l0.copy_(lstm.cell.recurrent_kernel.T)
        twin.bias_ih_l0.copy_(lstm.cell.bias)
        twin.bias_hh_l0.zero_()
    torch.testing.assert_close(out, twin(packed)[1][0][0], rtol=1e-5, atol=1e-6)


def test_hooks_that_replace_outputs_or_inputs_keep_the_keras_mask_like_the_packed_torch_lstm():
    """A forward hook returning a new tensor (`out * 2`) after a `mask_zero=True` Embedding, or a pre-hook
    returning new inputs to the LSTM, dropped the Keras mask that rides on the tensor: the LSTM ran over the
    padding, silently. The mask now survives the user's hooks; reference: torch's LSTM over the packed
    batch of the doubled embeddings. Removing the hooks leaves no kerasish hook behind."""
    torch.manual_seed(0)
    model = kerasish.Sequential([L.Embedding(12, 4, mask_zero=True), L.LSTM(3), L.Dense(1)])
    tokens = torch.tensor([[3, 5, 0, 0], [7, 2, 9, 0], [4, 0, 0, 0]])
    model(tokens)
    twin = _PackedTwin(model)
    with torch.no_grad():
        twin.emb.weight.mul_(2)
    want = twin(tokens)
    emb, lstm = model.layers[0], model.layers[1]
    for hooked, register in ((emb, lambda: emb.register_forward_hook(lambda m, args, out: out * 2)),
                             (lstm, lambda: lstm.register_forward_pre_hook(lambda m, args: (args[0] * 2,)))):
        handle = register()
        torch.testing.assert_close(model(tokens), want, rtol=1e-5, atol=1e-6)
        handle.remove()
        assert not hooked._forward_hooks and not hooked._forward_pre_hooks
    with emb.register_forward_hook(lambda m, args, out: out * 2):  # (torch's handle as a context manager)
        torch.testing.assert_close(model(tokens), want, rtol=1e-5, atol=1e-6)
    assert not emb._forward_hooks


# ------------------------------------------------- torch.distributed.checkpoint, one process
def test_distributed_checkpoint_of_model_and_torch_adam_resumes_like_the_torch_twin(tmp_path):
    """`dcp.save` of `get_state_dict(model, optimizer)` after two Adam steps, `dcp.load` + `set_state_dict`
    into a fresh model and optimizer, two more steps: the weights equal the torch twin's after the same four
    steps, and every state_dict entry the uninterrupted run's."""
    dcp = pytest.importorskip("torch.distributed.checkpoint", reason="needs torch.distributed.checkpoint")
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from torch.distributed.checkpoint.state_dict import set_state_dict

    def make():
        return kerasish.Sequential([kerasish.Input((3,)), L.Dense(4), L.BatchNormalization(), L.Dense(2)])

    torch.manual_seed(0)
    model = make()
    twin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4, eps=1e-3, momentum=0.01),
                               torch.nn.Linear(4, 2))
    with torch.no_grad():
        for i in (0, 2):
            twin[i].weight.copy_(model.layers[i].kernel.T)
            twin[i].bias.copy_(model.layers[i].bias)
    batches = _batches(4, seed=5)
    straight = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    twin_opt = torch.optim.Adam(twin.parameters(), lr=0.05)

    def steps(m, o, data):
        m.train()
        for x, y in data:
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step()

    steps(model, opt, batches[:2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch.distributed.checkpoint's own notes: no process group)
        msd, osd = get_state_dict(model, opt)
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(tmp_path))
        resumed = make()
        resumed_opt = torch.optim.Adam(resumed.parameters(), lr=0.05)
        msd, osd = get_state_dict(resumed, resumed_opt)
        state = {"model": msd, "optim": osd}
        dcp.load(state, checkpoint_id=str(tmp_path))
        set_state_dict(resumed, resumed_opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    steps(resumed, resumed_opt, batches[2:])
    steps(twin, twin_opt, batches)
    steps(straight, torch.optim.Adam(straight.parameters(), lr=0.05), batches)
    tol = {"rtol": 1e-5, "atol": 1e-6}
    for i in (0, 2):
        torch.testing.assert_close(resumed.layers[i].kernel.detach(), twin[i].weight.detach().T, **tol)
    # (not the bias before BatchNormalization: its exact gradient is zero, and Adam scales the float32
    # rounding noise standing in for it up to full steps, differently in two equal models)
    torch.testing.assert_close(resumed.layers[2].bias.detach(), twin[2].bias.detach(), **tol)
    torch.testing.assert_close(resumed.layers[1].gamma.detach(), twin[1].weight.detach(), **tol)
    for ours, theirs in zip(resumed.state_dict().values(), straight.state_dict().values()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)  # and everything as the uninterrupted run
    assert resumed_opt.state_dict()["state"][0]["step"] == 4


# ----------------------------------------------------------------- torch.jit.trace
def test_jit_trace_of_masked_models_follows_each_inputs_padding():
    """`torch.jit.trace` of a model with MultiHeadAttention crashed (`hasattr` on its `_gate_dense`
    accessor raised KeyError instead of AttributeError); a traced masked LSTM/GRU baked the example's
    sequence lengths into the trace (the fused path reads them on the host), so another padding pattern
    gave wrong numbers with only torch's generic TracerWarnings. Traced now, both follow the mask of each
    input as the eager model does."""
    torch.manual_seed(0)
    tokens = kerasish.Input((None,), dtype="int64")
    embedded = L.Embedding(12, 4, mask_zero=True)(tokens)
    attended = L.MultiHeadAttention(2, 2)(embedded, embedded)
    models = [kerasish.Model(tokens, L.GlobalAveragePooling1D()(attended)),
              kerasish.Sequential([L.Embedding(12, 4, mask_zero=True), L.LSTM(3)]),
              kerasish.Sequential([L.Embedding(12, 4, mask_zero=True), L.GRU(3, go_backwards=True)])]
    example = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    other = torch.tensor([[1, 0, 0, 0], [4, 5, 6, 7]])
    assert not hasattr(models[0].layers[2], "_gate_dense")
    for model in models:
        model(example)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (torch's deprecation and shape-check TracerWarnings)
            traced = torch.jit.trace(model, (example,), check_trace=False)
        for x in (example, other):
            torch.testing.assert_close(traced(x), model(x), rtol=1e-5, atol=1e-6)


def test_lbfgs_over_an_lstm_needs_contiguous_kernels_then_trains_like_the_torch_twin():
    """`torch.optim.LBFGS` (and any flat-gradient code, `p.grad.view(-1)`) views every gradient as a vector;
    an LSTM's kernels are transposed views of `nn.LSTM`'s storage (the fused kernel reads them without a
    copy), so torch refuses with its "view size is not compatible" error. The README's remedy,
    `contiguous_kernels(model)`, makes LBFGS train exactly like it trains the torch twin."""
    torch.manual_seed(0)
    model = kerasish.Sequential([L.LSTM(3), L.Dense(1)])
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(4, 5, 2, generator=g), torch.randn(4, 1, generator=g)
    model(x)

    def fit_lbfgs(m, forward):
        opt = torch.optim.LBFGS(m.parameters(), max_iter=5)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(forward(x), y)
            loss.backward()
            return loss

        return opt.step(closure)

    with pytest.raises(RuntimeError, match="view size is not compatible"):
        fit_lbfgs(model, model)
    kerasish.layers.rnn.contiguous_kernels(model)
    lstm, dense = model.layers
    twin = torch.nn.ModuleDict({"lstm": torch.nn.LSTM(2, 3, batch_first=True), "linear": torch.nn.Linear(3, 1)})
    with torch.no_grad():
        twin["lstm"].weight_ih_l0.copy_(lstm.cell.kernel.T)
        twin["lstm"].weight_hh_l0.copy_(lstm.cell.recurrent_kernel.T)
        twin["lstm"].bias_ih_l0.copy_(lstm.cell.bias)
        twin["lstm"].bias_hh_l0.zero_()
        twin["linear"].weight.copy_(dense.kernel.T)
        twin["linear"].bias.copy_(dense.bias)
    twin["lstm"].bias_hh_l0.requires_grad_(False)
    model.zero_grad(set_to_none=True)
    fit_lbfgs(model, model)
    fit_lbfgs(twin, lambda t: twin["linear"](twin["lstm"](t)[0][:, -1]))
    tol = {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(lstm.cell.kernel.detach(), twin["lstm"].weight_ih_l0.detach().T, **tol)
    torch.testing.assert_close(dense.kernel.detach(), twin["linear"].weight.detach().T, **tol)


# ------------------------------------------------------- torch.utils.checkpoint and seeded Dropout
@pytest.mark.parametrize("seed", [None, 3])
def test_checkpointed_dropout_backpropagates_through_the_mask_of_its_forward(seed):
    """Under `torch.utils.checkpoint` the forward is recomputed in the backward pass; the gradient must go
    through the mask the forward drew (torch restores its global RNG for that; a seeded Dropout's draws are
    replayed by kerasish). The reentrant variant cannot be replayed for a seeded layer: a clear error."""
    layer = L.Dropout(0.5, seed=seed)
    layer.train()
    x = torch.randn(4, 256, requires_grad=True)
    for reentrant in (False, True):
        x.grad = None
        out = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=reentrant)
        if seed is not None and reentrant:
            with pytest.raises(RuntimeError, match=r"use_reentrant=False"):
                out.sum().backward()
            continue
        out.sum().backward()
        torch.testing.assert_close(x.grad, (out != 0).to(x.dtype) * 2.0, rtol=0, atol=0)


# ------------------------------------------------ a torch module called on a Keras tensor
def test_torch_module_on_a_keras_tensor_is_refused_and_torch_module_wrapper_trains_like_torch():
    """`nn.Linear(4, 2)(keras_tensor)` in a functional model was recorded as an op with the module's weight
    as a constant: not among the model's weights, never trained by `fit`, silently (Keras's torch backend
    raises a TypeError). Now a TypeError names `TorchModuleWrapper`, and the wrapped module trains in
    `fit` exactly as the torch twin trains with SGD."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 2)
    inputs = kerasish.Input((3,))
    hidden = L.Dense(4, activation="relu")(inputs)
    with pytest.raises(TypeError, match=r"linear got a trainable torch tensor .*TorchModuleWrapper"):
        linear(hidden)
    assert (hidden * torch.tensor(2.0)).shape == (None, 4)  # (constants stay fine)
    model = kerasish.Model(inputs, L.TorchModuleWrapper(linear)(hidden))
    assert sum(w.numel() for w in model.trainable_weights) == 3 * 4 + 4 + 4 * 2 + 2
    dense = model.layers[1]
    twin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), copy.deepcopy(linear))
    with torch.no_grad():
        twin[0].weight.copy_(dense.kernel.T)
        twin[0].bias.copy_(dense.bias)
    g = torch.Generator().manual_seed(8)
    x, y = torch.randn(8, 3, generator=g), torch.randn(8, 2, generator=g)
    model.compile(optimizer=kerasish.optimizers.SGD(0.1), loss="mse")
    history = model.fit(x.numpy(), y.numpy(), batch_size=8, epochs=3, shuffle=False, verbose=0)
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(twin(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-5)
    torch.testing.assert_close(linear.weight.detach(), twin[2].weight.detach(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------ torch data habits into fit, against Keras
class _Stream(torch.utils.data.IterableDataset):
    """An IterableDataset without `__len__`: ten (x, y, sample_weight) samples per pass."""

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for i in range(10):
            yield torch.randn(3, generator=g), torch.randn(1, generator=g), torch.tensor(float(i % 3))


@pytest.mark.parametrize("kwargs", [{"epochs": 2}, {"epochs": 3, "steps_per_epoch": 2}])
def test_iterable_dataset_of_weighted_samples_fits_like_keras(keras_ref, kwargs):
    """A DataLoader over an IterableDataset with no `__len__`, yielding (x, y, sample_weight), with and
    without `steps_per_epoch` (3 batches per pass, so 2 steps per epoch run out of data mid-way): the
    per-epoch losses, and how many epochs ran, equal real Keras 3's with the same weights."""
    histories = []
    weights = None
    for lib in (keras_ref, kerasish):
        model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1)])
        if weights is None:
            weights = model.get_weights()
        model.set_weights(weights)
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
        loader = torch.utils.data.DataLoader(_Stream(), batch_size=4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (both warn that the data ran out; Keras also about shuffle)
            histories.append(model.fit(loader, verbose=0, **kwargs).history["loss"])
    assert len(histories[0]) == len(histories[1])
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-5)


def test_torch_model_ensembling_recipe_with_a_meta_base_copy_gives_each_models_outputs_and_gradients():
    """torch's "model ensembling" tutorial: `stack_module_state(models)`, a base copy moved to the meta
    device, `vmap` over `functional_call`. On kerasish models it gives each model's own outputs and, through
    `torch.func.grad`, each model's own gradients (the meta move now keeps the Keras weight class)."""
    from torch.func import functional_call
    from torch.func import stack_module_state

    torch.manual_seed(0)
    models = [kerasish.Sequential([L.Dense(4, activation="tanh"), L.BatchNormalization(), L.Dense(2)])
              for _ in range(3)]
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    for m in models:
        m(x)
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    assert isinstance(base.layers[0].kernel, kerasish.Variable) and base.layers[0].kernel.is_meta

    def loss(p, b, x):
        return functional_call(base, (p, b), (x,)).square().sum()

    outs = torch.vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))(params, buffers, x)
    grads = torch.vmap(torch.func.grad(loss), in_dims=(0, 0, None))(params, buffers, x)
    for i, m in enumerate(models):
        torch.testing.assert_close(outs[i], m(x), rtol=1e-6, atol=1e-6)
        m.zero_grad()
        m(x).square().sum().backward()
        for name, p in m.named_parameters():
            torch.testing.assert_close(grads[name][i], p.grad, rtol=1e-5, atol=1e-6)
