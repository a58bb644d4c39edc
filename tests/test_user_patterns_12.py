"""Habits PyTorch users bring to kerasish layers (round 12):
`torch.func.functional_call` with float64 weights on a float32 layer (the
functorch gradcheck habit): every layer of the catalogue now computes in the
weights' dtype, as torch's own modules do and as a `.double()` copy of the
layer does (before: 29 layers raised torch's dtype mismatch, 17 computed in
float32 and returned float32, silently, PReLU computed in float64), also
through the deprecated `torch.nn.utils.stateless.functional_call`;
`copy.deepcopy(torch.compile(layer))` copies the compiled wrapper as torch
does for its modules (it returned an uncompiled copy of the layer alone);
Hugging Face accelerate's `init_empty_weights()` (which replaces
`nn.Module.register_parameter`) now leaves kerasish parameters on the meta
device, allocating nothing, then `to_empty` + `load_state_dict`; a
`Sequential` with a declared `keras.Input(dtype=...)` converts its inputs to
that dtype as Keras's Sequential (its functional graph) does, and a
`.double()` Sequential to float64; a torch user's `_load_from_state_dict`
override renaming legacy keys and `register_state_dict_post_hook`;
`torch.utils.data.default_collate` of dict batches into `fit`; a
`torch.distributions` head trained with a torch optimizer.
References: a `.double()` copy of the layer holding the same values, the
same pattern on `torch.nn` modules holding the same weights (Keras kernels
are (in, out), torch Linear weights (out, in)), real Keras 3, or the same
run without the tool around it.
"""

import contextlib
import copy

import numpy as np
import pytest
import torch
from torch import nn

import kerasish
from kerasish import layers as L
from test_torch_citizen_catalogue import CASES
from test_torch_citizen_catalogue import _built
from test_torch_citizen_catalogue import _floats


def _weights(layer):
    named = dict(layer.named_parameters())
    named.update((k, b) for k, b in layer.named_buffers() if b.is_floating_point())
    return named


_WEIGHTED = [c for c in CASES if _weights(_built(c)[0])]


def _double_copy(layer, values):
    ref = copy.deepcopy(layer).double()
    with torch.no_grad():
        for k, v in [*ref.named_parameters(), *ref.named_buffers()]:
            if k in values:
                v.copy_(values[k])
    return ref


# ------------------------------------------- functional_call with float64 weights
@pytest.mark.parametrize("case", _WEIGHTED, ids=lambda c: c.name)
def test_functional_call_with_float64_weights_computes_like_a_double_copy(case):
    """`functional_call(layer, {k: v.double()})` computes in float64 and returns float64, the numbers
    of a `.double()` copy of the layer holding the same values (float64 inputs, and float32 inputs,
    which the layer casts as the copy does, or refuses as the copy does); the layer itself stays a
    float32 layer computing what it computed."""
    layer, out = _built(case)
    values = {k: v.detach().double() * 0.5 + 0.25 for k, v in _weights(layer).items()}
    ref = _double_copy(layer, values)
    for dtype in (torch.float64, torch.float32):
        try:
            expected = _floats(ref(*case.inputs(dtype)))
        except RuntimeError as e:  # (RNN cells given float32 states: torch's nn.LSTMCell refuses too)
            with pytest.raises(type(e)):
                torch.func.functional_call(layer, values, case.inputs(dtype))
            continue
        result = _floats(torch.func.functional_call(layer, values, case.inputs(dtype)))
        assert len(result) == len(expected)
        for r, e in zip(result, expected):
            assert r.dtype == e.dtype == torch.float64
            torch.testing.assert_close(r, e, rtol=1e-12, atol=1e-12)
    assert layer.compute_dtype == "float32" and layer.dtype_policy.name == "float32"
    again = _floats(layer(*case.inputs(torch.float32)))
    assert all(t.dtype == torch.float32 for t in again)
    if not case.random:
        for a, b in zip(again, _floats(out)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def _twins():
    torch.manual_seed(0)
    dense, emb, lstm = L.Dense(3), L.Embedding(7, 4), L.LSTM(5, return_sequences=True)
    x, ids, seq = torch.randn(2, 4), torch.tensor([[1, 6, 0]]), torch.randn(2, 3, 4)
    dense(x), emb(ids), lstm(seq)
    lin, temb, tlstm = nn.Linear(4, 3), nn.Embedding(7, 4), nn.LSTM(4, 5, batch_first=True)
    with torch.no_grad():
        lin.weight.copy_(dense.kernel.T)
        lin.bias.copy_(dense.bias)
        temb.weight.copy_(emb.embeddings)
        cell = lstm.cell
        tlstm.weight_ih_l0.copy_(cell.kernel.T)  # Keras's gate order i, f, c, o is torch's i, f, g, o
        tlstm.weight_hh_l0.copy_(cell.recurrent_kernel.T)
        tlstm.bias_ih_l0.copy_(cell.bias)
        tlstm.bias_hh_l0.zero_()
    return [(dense, lin, x), (emb, temb, ids), (lstm, tlstm, seq)]


@pytest.mark.parametrize("api", ["torch.func", "nn.utils.stateless"])
def test_functional_call_in_float64_matches_torch_modules_given_the_same_float64_weights(api):
    """Dense / Embedding / LSTM given float64 weights through `functional_call` equal nn.Linear /
    nn.Embedding / nn.LSTM given the same float64 weights (torch computes in the weights' dtype);
    before, Dense raised torch's dtype mismatch and Embedding / LSTM returned float32."""
    import warnings

    def call(module, values, args):
        if api == "torch.func":
            return torch.func.functional_call(module, values, args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # (torch deprecates it for torch.func's)
            return torch.nn.utils.stateless.functional_call(module, values, args)

    for ours, twin, x in _twins():
        x64 = x.double() if x.is_floating_point() else x
        ours_values = {k: v.detach().double() for k, v in ours.named_parameters()}
        twin_values = {k: v.detach().double() for k, v in twin.named_parameters()}
        got = call(ours, ours_values, (x64,))
        want = call(twin, twin_values, (x64,))
        want = want[0] if isinstance(want, tuple) else want
        assert got.dtype == want.dtype == torch.float64, type(ours).__name__
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_gradcheck_through_functional_call_with_float64_weights_of_a_float32_model():
    """torch's gradcheck habit without `.double()` on the model: float64 leaves through
    `functional_call` of a float32 functional model (a Dropout between its Dense layers, which has no
    weights to tell it the dtype, computes in float64 too); it raised before."""
    torch.manual_seed(0)
    inputs = kerasish.Input((3,))
    x = L.Dense(4, activation="tanh")(inputs)
    x = L.Dropout(0.5)(x)
    x = L.LayerNormalization()(x)
    model = kerasish.Model(inputs, L.Dense(2)(x))
    names = [k for k, _ in model.named_parameters()]
    leaves = tuple(v.detach().double().requires_grad_(True) for _, v in model.named_parameters())
    data = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)

    def f(*args):
        return torch.func.functional_call(model, dict(zip(names, args[:-1])), (args[-1],))

    assert f(*leaves, data).dtype == torch.float64
    assert torch.autograd.gradcheck(f, (*leaves, data), eps=1e-6, atol=1e-7)
    assert model.compute_dtype == "float32" and model(torch.randn(2, 3)).dtype == torch.float32


# ------------------------------------------------- deepcopy of a compiled layer
def test_deepcopy_of_a_compiled_layer_is_a_compiled_copy_like_torch_modules():
    """`copy.deepcopy(torch.compile(m))` on an nn.Module gives an OptimizedModule around a copy of the
    module; on a kerasish layer it gave the bare layer copy (the wrapper forwards `__deepcopy__` to
    the layer), no longer compiled."""
    lin = nn.Linear(4, 3)
    twin = copy.deepcopy(torch.compile(lin))
    layer = L.Dense(3)
    x = torch.randn(2, 4)
    layer(x)
    compiled = torch.compile(layer)
    dup = copy.deepcopy(compiled)
    assert type(dup) is type(twin) is type(compiled)
    assert type(dup._orig_mod) is L.Dense and dup._orig_mod is not layer
    assert isinstance(twin._orig_mod, nn.Linear) and twin._orig_mod is not lin
    for a, b in zip(dup._orig_mod.weights, layer.weights):
        assert a is not b and a.data_ptr() != b.data_ptr()
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(dup._orig_mod(x), layer(x), rtol=0, atol=0)
    with torch.no_grad():
        dup._orig_mod.kernel.add_(1.0)
    assert not torch.equal(dup._orig_mod.kernel, layer.kernel)  # the original is untouched
    # a layer copied directly is still a layer copy
    assert type(copy.deepcopy(layer)) is L.Dense


# ------------------------------------------------ accelerate's init_empty_weights
@contextlib.contextmanager
def _empty_weights(device=torch.device("meta")):
    """What Hugging Face accelerate's `init_empty_weights()` (include_buffers=False) does: every
    parameter registered on a module is made again on `device`, its class and attributes kept."""
    original = nn.Module.register_parameter

    def register(module, name, param):
        original(module, name, param)
        if param is not None:
            p = module._parameters[name]
            attrs = dict(p.__dict__)
            attrs["requires_grad"] = p.requires_grad
            module._parameters[name] = type(p)(p.to(device), **attrs)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def _models():
    return [
        lambda: kerasish.Sequential([kerasish.Input((6,)), L.Dense(8), L.BatchNormalization(), L.Dense(3)]),
        lambda: kerasish.Sequential([L.Dense(8), L.BatchNormalization(), L.Dense(3)]),  # built later
    ]


@pytest.mark.parametrize("make", _models(), ids=["declared_input", "built_later"])
def test_init_empty_weights_puts_parameters_on_meta_then_to_empty_and_load_state_dict(make):
    """The big-model loading recipe: construct under `init_empty_weights()`, `to_empty`, then
    `load_state_dict`. torch's modules get meta parameters (no memory) and real buffers; kerasish
    weights were drawn on the CPU (the patch never saw them: they are materialized in place). Now
    the parameters are drawn on the meta device, the buffers (BatchNormalization's moving
    statistics) stay real as torch's do, and the loaded model computes what the source does."""
    x = torch.randn(4, 6)
    torch.manual_seed(0)
    source = make()
    source(x)
    with _empty_weights():
        twin = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
        model = make()
        model.build((None, 6))
    assert {p.device.type for p in twin.parameters()} == {"meta"}
    assert {b.device.type for b in twin.buffers()} == {"cpu"}
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert {b.device.type for b in model.buffers() if b.is_floating_point()} == {"cpu"}
    for p in model.parameters():
        assert isinstance(p, kerasish.Variable) and p.requires_grad
    model.to_empty(device="cpu")
    model.load_state_dict(source.state_dict())
    torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)
    # outside the patch, weights are real again
    assert all(p.device.type == "cpu" for p in make().parameters() if not isinstance(p, nn.UninitializedParameter))


# ------------------------------------------------- Sequential with a declared Input dtype
def _same_weights(ours, ref):
    for a, b in zip(ours.weights, ref.weights):
        b.assign(a.detach().numpy())


def test_sequential_casts_to_its_declared_input_dtype_as_keras(keras_ref):
    """Keras's Sequential runs its functional graph, which converts the inputs to the `Input` dtype:
    a float16 `Input` rounds float32 data to float16 before the first Dense (which computes in
    float32). kerasish's Sequential passed the data on unrounded (kerasish's functional model
    already converted); it now converts as Keras does. Same weights, same numbers."""
    data = (np.arange(12, dtype="float32").reshape(4, 3) / 7.0 + 0.1).astype("float32")
    for dtype in ("float16", "float64"):
        ours = kerasish.Sequential([kerasish.Input((3,), dtype=dtype), L.Dense(2)])
        ref = keras_ref.Sequential([keras_ref.Input((3,), dtype=dtype), keras_ref.layers.Dense(2)])
        _same_weights(ours, ref)
        got = ours(torch.from_numpy(data))
        want = ref(data)
        assert str(got.dtype).replace("torch.", "") == str(want.dtype).replace("torch.", "")
        np.testing.assert_allclose(got.detach().numpy(), want.detach().cpu().numpy(), rtol=1e-6, atol=1e-6)
    # the float16 rounding is visible: without it the numbers differ
    ours = kerasish.Sequential([kerasish.Input((3,), dtype="float16"), L.Dense(2)])
    unrounded = torch.from_numpy(data) @ ours.layers[0].kernel + ours.layers[0].bias
    rounded = torch.from_numpy(data).half().float() @ ours.layers[0].kernel + ours.layers[0].bias
    assert not torch.allclose(unrounded, rounded, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours(torch.from_numpy(data)), rounded, rtol=1e-6, atol=1e-6)


def test_double_sequential_keeps_float64_inputs_and_saves_the_moved_input_dtype(tmp_path):
    """`.double()` of a Sequential with a float32 `Input` (the habit round 11 fixed for functional
    models): float64 data stays float64 (equal to the float64 torch twin, gradcheck passes), and the
    config reports a float64 `Input`, so the loaded model computes the same."""
    torch.manual_seed(0)
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(5, activation="tanh"), L.Dense(2)]).double()
    twin = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    with torch.no_grad():
        for lin, d in zip((twin[0], twin[2]), model.layers):
            lin.weight.copy_(d.kernel.T)
            lin.bias.copy_(d.bias)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(model(x), twin(x), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(model, (x,))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = kerasish.saving.load_model(path)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    model.float()
    assert model(x).dtype == torch.float32


# --------------------------------------------------------- state_dict overrides
class _LegacyDense(L.Dense):
    """A torch habit: accept checkpoints of an older version of the class (kernel saved as `w`)."""

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        if prefix + "w" in state_dict:
            state_dict[prefix + "kernel"] = state_dict.pop(prefix + "w")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)


@pytest.mark.parametrize("built", [True, False])
def test_load_from_state_dict_override_renaming_legacy_keys(built):
    """A subclass's `_load_from_state_dict` renaming old keys, on a built layer and on one never
    called (kerasish's lazy loading builds it from the renamed tensors), alone and inside a model."""
    x = torch.randn(2, 4)
    source = L.Dense(3)
    source(x)
    old = {"w": source.kernel.detach().clone(), "bias": source.bias.detach().clone()}
    layer = _LegacyDense(3)
    model = kerasish.Sequential([_LegacyDense(3, name="d")])
    if built:
        layer(x)
        model(x)
    assert not layer.load_state_dict(dict(old)).missing_keys
    assert not model.load_state_dict({"d." + k: v for k, v in old.items()}).missing_keys
    torch.testing.assert_close(layer(x), source(x), rtol=0, atol=0)
    torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)


def test_state_dict_post_hook_adds_entries_like_on_torch_modules():
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3, name="d")])
    twin = nn.Sequential(nn.Linear(4, 3))
    for m in (model, twin):
        m.register_state_dict_post_hook(
            lambda mod, sd, prefix, meta: sd.__setitem__(prefix + "step", torch.tensor(7)) if prefix == "" else None)
    assert list(model.state_dict()) == ["d.kernel", "d.bias", "step"]
    assert list(twin.state_dict()) == ["0.weight", "0.bias", "step"]


# ------------------------------------------------------ data and heads from torch
def test_default_collate_dict_batches_into_fit_equal_fit_on_the_arrays():
    """A DataLoader of (dict, target) samples with torch's `default_collate` (dicts of stacked tensors)
    into `fit`: the same history and weights as `fit` on the whole arrays with the same batches."""
    from torch.utils.data import DataLoader
    from torch.utils.data import default_collate

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 3)).astype("float32"), rng.normal(size=(12, 2)).astype("float32")
    y = rng.normal(size=(12, 1)).astype("float32")

    def make():
        torch.manual_seed(0)
        ia, ib = kerasish.Input((3,), name="a"), kerasish.Input((2,), name="b")
        m = kerasish.Model({"a": ia, "b": ib}, L.Dense(1)(L.Concatenate()([ia, ib])))
        m.compile(optimizer=kerasish.optimizers.SGD(0.1), loss="mse")
        return m

    samples = [({"a": torch.from_numpy(a[i]), "b": torch.from_numpy(b[i])}, torch.from_numpy(y[i]))
               for i in range(12)]
    loader = DataLoader(samples, batch_size=4, collate_fn=default_collate)
    m1, m2 = make(), make()
    h1 = m1.fit(loader, epochs=2, verbose=0).history
    h2 = m2.fit({"a": a, "b": b}, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-6)
    for w1, w2 in zip(m1.weights, m2.weights):
        torch.testing.assert_close(w1, w2, rtol=1e-6, atol=1e-7)


def test_distributions_head_trained_with_a_torch_optimizer_matches_the_torch_twin():
    """A Gaussian head (mean, softplus scale) on a kerasish model, `Normal.log_prob` as the loss,
    torch Adam: the same losses and weights as the nn.Linear twin."""
    torch.manual_seed(0)
    ours = L.Dense(2)
    x, y = torch.randn(16, 3), torch.randn(16)
    ours(x)
    twin = nn.Linear(3, 2)
    with torch.no_grad():
        twin.weight.copy_(ours.kernel.T)
        twin.bias.copy_(ours.bias)
    losses = []
    for module in (ours, twin):
        opt = torch.optim.Adam(module.parameters(), lr=0.05)
        run = []
        for _ in range(5):
            out = module(x)
            dist = torch.distributions.Normal(out[:, 0], nn.functional.softplus(out[:, 1]) + 1e-3)
            loss = -dist.log_prob(y).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)
    torch.testing.assert_close(ours.kernel.T, twin.weight, rtol=1e-6, atol=1e-6)


def test_float64_layer_normalization_given_float32_inputs_computes_as_keras(keras_ref):
    """`LayerNormalization(dtype="float64")` (or a `.double()` one) called on float32 data raised
    (F.layer_norm refuses float32 data with float64 weights). Keras normalizes in the input's dtype,
    the weights cast to it, and returns the compute dtype: float64 holding float32-computed numbers."""
    data = (np.arange(8, dtype="float32").reshape(2, 4) / 3 + 0.1).astype("float32")
    ref = keras_ref.layers.LayerNormalization(dtype="float64", gamma_initializer="random_normal",
                                               beta_initializer="random_normal")
    ref.build((None, 4))
    ours = L.LayerNormalization(dtype="float64", gamma_initializer="random_normal", beta_initializer="random_normal")
    ours.build((None, 4))
    _same_weights(ours, ref)
    want = ref(data)
    got = ours(torch.from_numpy(data))
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.detach().numpy(), want.detach().cpu().numpy(), rtol=1e-6, atol=1e-6)
    moved = L.LayerNormalization()
    moved.build((None, 4))
    moved.double()
    for a, b in zip(moved.weights, ours.weights):
        a.assign(b)
    torch.testing.assert_close(moved(torch.from_numpy(data)), got, rtol=0, atol=0)
