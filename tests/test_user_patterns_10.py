"""Habits PyTorch users bring to kerasish layers (round 10): freezing and
unfreezing with `requires_grad_` between and during `fit` calls (before,
`fit` kept the weight lists of its first step: an unfrozen weight was
skipped silently, or trained on gradients never reset) and torch-side edits
of `nn.ModuleList` / `_modules` after a `fit` (silently untrained, now
Keras's "Unknown variable"); Keras optimizer slots after `model.double()` /
`.half()` / `.bfloat16()` (they stayed float32); MultiHeadAttention under
`torch.compile` before its first call (it failed inside dynamo).
References: the same pattern on `torch.nn` modules holding the same weights
(Keras kernels are (in, out), torch Linear weights (out, in)), real Keras 3,
or the documented error.
"""

import warnings

import numpy as np
import pytest
import torch

import kerasish
from kerasish import layers as L


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")


def _mlp_and_twin():
    torch.manual_seed(0)
    ours = kerasish.Sequential([kerasish.Input((4,)), L.Dense(6, activation="tanh", name="body"),
                                L.Dense(2, name="head")])
    twin = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    with torch.no_grad():
        for lin, dense in ((twin[0], ours.layers[0]), (twin[2], ours.layers[1])):
            lin.weight.copy_(dense.kernel.T)
            lin.bias.copy_(dense.bias)
    return ours, twin


def _twin_epoch(twin, opt, x, y, batch_size, before_step=None):
    for step, start in enumerate(range(0, len(x), batch_size)):
        if before_step is not None:
            before_step(step)
        opt.zero_grad()
        xb, yb = torch.from_numpy(x[start:start + batch_size]), torch.from_numpy(y[start:start + batch_size])
        torch.nn.functional.mse_loss(twin(xb), yb).backward()
        opt.step()


def _assert_twin_weights(ours, twin):
    for lin, dense in ((twin[0], ours.layers[0]), (twin[2], ours.layers[1])):
        torch.testing.assert_close(dense.kernel.detach(), lin.weight.detach().T, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(dense.bias.detach(), lin.bias.detach(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------- freezing the torch way
def test_requires_grad_flips_between_and_during_fit_train_like_the_torch_twin():
    """A torch optimizer in `compile`, the body frozen with `requires_grad_(False)` before the first fit
    (the fine-tuning start), unfrozen in a callback in the middle of the next one, frozen again by
    attribute (`p.requires_grad = False`, the torchvision fine-tuning tutorial's way): the same weights as
    the torch loop doing the same. Before, `fit` kept its first step's lists: the unfrozen body's
    gradients were never reset (each step added to the last) and it drifted away from the twin."""
    ours, twin = _mlp_and_twin()
    x, y = _data()
    ours.compile(optimizer=torch.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9), loss="mse")
    t_opt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    ours.layers[0].requires_grad_(False)
    twin[0].requires_grad_(False)
    frozen = ours.layers[0].kernel.detach().clone()
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    _twin_epoch(twin, t_opt, x, y, 4)
    torch.testing.assert_close(ours.layers[0].kernel.detach(), frozen, rtol=0, atol=0)
    _assert_twin_weights(ours, twin)

    class UnfreezeAtStep2(kerasish.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                ours.layers[0].requires_grad_(True)

    ours.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[UnfreezeAtStep2()])
    unfreeze = lambda step: twin[0].requires_grad_(True) if step == 2 else None  # noqa: E731 (after batch 1)
    _twin_epoch(twin, t_opt, x, y, 4, before_step=unfreeze)
    _twin_epoch(twin, t_opt, x, y, 4)
    assert not torch.equal(ours.layers[0].kernel.detach(), frozen)
    _assert_twin_weights(ours, twin)

    for p in ours.layers[0].parameters():
        p.requires_grad = False
    for p in twin[0].parameters():
        p.requires_grad = False
    frozen = ours.layers[0].kernel.detach().clone()
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    _twin_epoch(twin, t_opt, x, y, 4)
    torch.testing.assert_close(ours.layers[0].kernel.detach(), frozen, rtol=0, atol=0)
    _assert_twin_weights(ours, twin)


def test_requires_grad_flips_after_fit_train_like_keras_trainable_flips_and_unknown_weights_raise(keras_ref):
    """With a Keras optimizer: `requires_grad_(False)` on the body after a first fit trains the head only,
    as Keras 3 does after `body.trainable = False` (its trainer reads the trainable variables every step),
    with no "Gradients do not exist" warning (kerasish gave one per step); `requires_grad_(True)` trains the
    body again, as `trainable = True` does in Keras. A body frozen before the optimizer was built and then
    unfrozen raises Keras's "Unknown variable" in both (before, kerasish silently left it untrained)."""
    x, y = _data(seed=1)
    ref = keras_ref.Sequential([keras_ref.Input((4,)), keras_ref.layers.Dense(6, activation="tanh", name="body"),
                                keras_ref.layers.Dense(2, name="head")])
    ours = kerasish.Sequential([kerasish.Input((4,)), L.Dense(6, activation="tanh", name="body"),
                                L.Dense(2, name="head")])
    ours.set_weights(ref.get_weights())
    ref.compile(optimizer=keras_ref.optimizers.Adam(0.01), loss="mse")
    ours.compile(optimizer=kerasish.optimizers.Adam(0.01), loss="mse")

    def fit_both(epochs):
        ref.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ours.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0)
        for a, b in zip(ours.get_weights(), ref.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    fit_both(1)
    frozen = ours.get_layer("body").kernel.detach().clone()
    ref.get_layer("body").trainable = False
    ours.get_layer("body").requires_grad_(False)
    fit_both(2)
    assert torch.equal(frozen, ours.get_layer("body").kernel.detach())
    ref.get_layer("body").trainable = True
    ours.get_layer("body").requires_grad_(True)
    fit_both(1)
    assert not torch.equal(frozen, ours.get_layer("body").kernel.detach())

    for lib in (keras_ref, kerasish):
        model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(6, name="body"), lib.layers.Dense(2)])
        if lib is kerasish:
            model.get_layer("body").requires_grad_(False)
        else:
            model.get_layer("body").trainable = False
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, batch_size=8, verbose=0)
        if lib is kerasish:
            model.get_layer("body").requires_grad_(True)
        else:
            model.get_layer("body").trainable = True
        with pytest.raises(ValueError, match="Unknown variable"):
            model.fit(x, y, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="Unknown variable.*recreate a new optimizer instance"):
        model.train_on_batch(x[:8], y[:8])


class _Blocks(kerasish.Model):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([L.Dense(4, activation="tanh"), L.Dense(4, activation="tanh")])
        self.out = L.Dense(2)

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return self.out(x)


@pytest.mark.parametrize("edit", ["append", "setitem", "modules_dict", "delitem"])
def test_module_list_and_modules_edits_after_fit_are_followed(edit):
    """torch-side edits kerasish's tracking does not see, made between two fits: a block appended to or
    replaced in an `nn.ModuleList`, a child put in `_modules` directly. Before, the second fit trained the
    first fit's weights (the new layer silently never trained); now the Keras optimizer raises Keras's
    "Unknown variable" and, after recompiling, the new layer trains. A deleted block leaves the step (no
    "Gradients do not exist" warning for its weights)."""
    x, y = _data(seed=2)
    model = _Blocks()
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, batch_size=8, verbose=0)
    if edit == "append":
        model.blocks.append(L.Dense(4))
        new = model.blocks[2]
    elif edit == "setitem":
        model.blocks[1] = L.Dense(4)
        new = model.blocks[1]
    elif edit == "modules_dict":
        model._modules["out"] = new = L.Dense(2)
    else:
        del model.blocks[1]
        new = None
    model(x[:2])  # builds the new layer
    if new is None:
        kept = [w.detach().clone() for w in model.trainable_weights]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.fit(x, y, batch_size=8, verbose=0)
        assert all(not torch.equal(a, b.detach()) for a, b in zip(kept, model.trainable_weights))
        return
    with pytest.raises(ValueError, match="Unknown variable"):
        model.fit(x, y, batch_size=8, verbose=0)
    model.compile(optimizer="adam", loss="mse")
    before = new.kernel.detach().clone()
    model.fit(x, y, batch_size=8, verbose=0)
    assert not torch.equal(before, new.kernel.detach())


# ------------------------------------------- optimizer slots after a dtype move
@pytest.mark.parametrize("move,dtype", [("double", "float64"), ("half", "float16"), ("bfloat16", "bfloat16")])
def test_optimizer_slots_follow_a_dtype_move_after_fit_as_keras_makes_them(keras_ref, move, dtype):
    """`model.double()` (or `.half()`, `.bfloat16()`) after a fit: Keras makes a variable's slots in its
    dtype (`add_variable_from_reference`), so a Keras model of `dtype` layers has Adam moments, EMA
    averages and accumulators of `dtype`. kerasish's stayed float32; now they follow the move."""
    x, y = _data(n=8)
    ours = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3), L.Dense(2)])
    ours.compile(optimizer=kerasish.optimizers.Adam(use_ema=True, gradient_accumulation_steps=2), loss="mse")
    ours.fit(x, y, batch_size=4, verbose=0)
    getattr(ours, move)()
    tdt = getattr(torch, dtype)
    ours.fit(torch.from_numpy(x).to(tdt), torch.from_numpy(y).to(tdt), batch_size=4, verbose=0)

    ref = keras_ref.Sequential([keras_ref.Input((4,)), keras_ref.layers.Dense(3, dtype=dtype),
                                keras_ref.layers.Dense(2, dtype=dtype)])
    ref.compile(optimizer=keras_ref.optimizers.Adam(use_ema=True, gradient_accumulation_steps=2), loss="mse")
    ref.optimizer.build(ref.trainable_variables)
    got = [(v.path.split("/", 1)[1].split("_", 2)[-1], str(v.dtype).replace("torch.", ""))
           for v in ours.optimizer.variables]
    want = [(v.path.split("/", 1)[1].split("_", 2)[-1], keras_ref.backend.standardize_dtype(v.dtype))
            for v in ref.optimizer.variables]
    assert [d for _, d in got] == [d for _, d in want]
    assert {d for _, d in got[2:]} == {dtype}


def test_momentum_after_double_steps_in_float64_like_torch_sgd_with_its_state_cast():
    """The step maths after `.double()`, in a torch loop: kerasish SGD(momentum) equals torch
    SGD(momentum) whose state was cast to float64 the torch way (`load_state_dict` casts state to the
    parameter's dtype; without it torch's SGD step raises on the mismatch). With float32 moments the
    weights were ~1e-8 off."""
    ours, twin = _mlp_and_twin()
    x, y = _data(n=8, seed=3)
    # (a learning rate float32 holds exactly: Keras keeps it in a float32 variable)
    k_opt = kerasish.optimizers.SGD(0.125, momentum=0.9)
    k_opt.build(ours.trainable_weights)
    t_opt = torch.optim.SGD(twin.parameters(), lr=0.125, momentum=0.9)
    ours_twin = torch.nn.Sequential(ours)  # the same loop drives both
    _twin_epoch(ours_twin, k_opt, x, y, 4)
    _twin_epoch(twin, t_opt, x, y, 4)
    ours.double()
    twin.double()
    t_opt.load_state_dict(t_opt.state_dict())
    # the same starting point on both sides (Keras's momentum is torch's buffer times -lr)
    moments = [v for v in k_opt.variables if v.path.endswith("_momentum")]
    with torch.no_grad():
        for (lin, dense), (m_k, m_b) in zip(((twin[0], ours.layers[0]), (twin[2], ours.layers[1])),
                                            zip(moments[::2], moments[1::2])):
            assert m_k.dtype == torch.float64
            lin.weight.copy_(dense.kernel.T)
            lin.bias.copy_(dense.bias)
            t_opt.state[lin.weight]["momentum_buffer"].copy_(m_k.T / -0.125)
            t_opt.state[lin.bias]["momentum_buffer"].copy_(m_b / -0.125)
    x64, y64 = x.astype("float64"), y.astype("float64")
    for _ in range(3):
        _twin_epoch(ours_twin, k_opt, x64, y64, 4)
        _twin_epoch(twin, t_opt, x64, y64, 4)
    for lin, dense in ((twin[0], ours.layers[0]), (twin[2], ours.layers[1])):
        assert dense.kernel.dtype == torch.float64
        torch.testing.assert_close(dense.kernel.detach(), lin.weight.detach().T, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(dense.bias.detach(), lin.bias.detach(), rtol=1e-12, atol=1e-12)



@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: slots following a device move")
def test_optimizer_slots_follow_the_model_to_cuda_after_fit():
    """`model.cuda()` after a CPU fit: the Keras optimizer's moments move with the weights (torch's own
    optimizers fail on the device mismatch until their state is loaded again)."""
    x, y = _data(n=8)
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3), L.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, batch_size=4, verbose=0)
    model.cuda()
    model.fit(x, y, batch_size=4, verbose=0)
    assert {v.device.type for v in model.optimizer.variables if v.path.endswith(("_momentum", "_velocity"))} == {"cuda"}

# ------------------------------------------- attention compiled before its first call
def _attention(kind):
    if kind == "mha":
        return L.MultiHeadAttention(num_heads=2, key_dim=4)
    return L.GroupedQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2)


class _AttentionBlock(torch.nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.attention = attention
        self.proj = torch.nn.Linear(8, 3)

    def forward(self, q, v):
        return self.proj(self.attention(q, v))


@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_attention_compiled_before_its_first_call_builds_eagerly_and_fullgraph_names_the_way_out(kind):
    """`torch.compile(block)` before the first call (torch's habit: compile right after construction).
    MultiHeadAttention (and GroupedQueryAttention) build their projections inside `call`, which dynamo
    traced: it failed on fake tensors drawing the initializers' kernels. Now the build runs eagerly at a
    graph break; outputs and gradients equal the eager block holding the same weights. `fullgraph=True`
    refuses that graph break with a message naming the way out, which then works."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    q, v = torch.randn(2, 5, 8), torch.randn(2, 6, 8)
    block = _AttentionBlock(_attention(kind))
    compiled = torch.compile(block, backend="eager")
    out = compiled(q, v)
    eager = _AttentionBlock(_attention(kind))
    eager(q, v)
    eager.load_state_dict(block.state_dict())
    torch.testing.assert_close(out, eager(q, v), rtol=1e-6, atol=1e-6)
    compiled(q, v).square().sum().backward()
    eager(q, v).square().sum().backward()
    for (name, p), e in zip(block.named_parameters(), eager.parameters()):
        torch.testing.assert_close(p.grad, e.grad, rtol=1e-5, atol=1e-6, msg=name)

    torch._dynamo.reset()
    fresh = _AttentionBlock(_attention(kind))
    with pytest.raises(Exception, match=r"call it once .* before compiling"):
        torch.compile(fresh, backend="eager", fullgraph=True)(q, v)
    if kind == "mha":  # an explicit build is the other way out
        fresh = _AttentionBlock(_attention(kind))
        fresh.attention.build((2, 5, 8), (2, 6, 8))
        assert torch.compile(fresh, backend="eager", fullgraph=True)(q, v).shape == (2, 5, 3)
    fresh(q, v)
    torch._dynamo.reset()
    assert torch.compile(fresh, backend="eager", fullgraph=True)(q, v).shape == (2, 5, 3)


# ------------------------------------------- torch's swap-on-conversion future flag
@pytest.fixture
def swap_on_conversion():
    previous = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    yield
    torch.__future__.set_swap_module_params_on_conversion(previous)


def test_swap_on_conversion_keeps_each_weight_object_and_its_keras_identity_like_torch_modules(swap_on_conversion):
    """`torch.__future__.set_swap_module_params_on_conversion(True)` (torch's recommended mode for tensor
    subclasses): `.double()` and `load_state_dict` swap each parameter's contents in place
    (`torch.utils.swap_tensors`), keeping the objects an optimizer holds. torch swaps the class and
    `__dict__` too: kerasish weights came back plain Parameters without `path` / `assign` /
    regularizer, and a load left weak references that made the next swap fail ("Cannot swap t1 because
    it has weakref associated with it"). Now they keep their object and their Keras identity, and the
    model computes and trains like the torch twin under the same flag."""
    ours, twin = _mlp_and_twin()
    ours.compile(optimizer=kerasish.optimizers.SGD(0.125, momentum=0.9), loss="mse")
    x, y = _data(n=8, seed=5)
    ours.fit(x, y, batch_size=4, verbose=0)
    held = list(ours.parameters())
    t_held = list(twin.parameters())
    ours.double()
    twin.double()
    assert [p is q for p, q in zip(ours.parameters(), held)] == [True] * 4
    assert [p is q for p, q in zip(twin.parameters(), t_held)] == [True] * 4  # torch's promise
    kernel = ours.layers[0].kernel
    assert isinstance(kernel, kerasish.Variable) and kernel.path.endswith("body/kernel")
    assert kernel.dtype == torch.float64 and ours.get_weights()[0].dtype == np.float64

    twin_sd = {"body.kernel": twin[0].weight.T, "body.bias": twin[0].bias,
               "head.kernel": twin[2].weight.T, "head.bias": twin[2].bias}
    for assign in (False, True):
        ours.load_state_dict({k: v.detach().clone() for k, v in twin_sd.items()}, assign=assign)
        assert ours.layers[0].kernel is held[0] or assign  # (assign may put new objects in place)
        kernel = ours.layers[0].kernel
        assert isinstance(kernel, kerasish.Variable) and kernel.path.endswith("body/kernel")
        kernel.assign(kernel + 0)  # the Keras variable API still answers
        x64 = torch.from_numpy(x).double()
        torch.testing.assert_close(ours(x64), twin(x64), rtol=1e-12, atol=1e-12)
    ours.double()  # a second swap (it failed after a load)
    ours.fit(x.astype("float64"), y.astype("float64"), batch_size=4, verbose=0)
    assert {str(v.dtype) for v in ours.optimizer.variables if v.path.endswith("_momentum")} == {"torch.float64"}


# ------------------------------------------- patterns that work (guarded against the torch twin)
def test_accelerate_style_forward_patch_runs_under_autocast_and_trains_like_the_torch_twin():
    """HF accelerate's `prepare(model)` with mixed precision replaces the instance's `forward` by an
    autocast-wrapped one (`model.forward = MethodType(autocast(...)(forward), model)`) and keeps
    `model._original_forward`; `model(x)` must go through it, as `nn.Module.__call__` does."""
    from types import MethodType

    ours, twin = _mlp_and_twin()
    for m in (ours, twin):
        m._original_forward = m.forward
        m.forward = MethodType(torch.autocast("cpu", dtype=torch.bfloat16)(m.forward.__func__), m)
    x = torch.randn(6, 4)
    out, ref = ours(x), twin(x)
    assert out.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref, rtol=2e-2, atol=2e-2)
    out.float().square().sum().backward()
    ref.float().square().sum().backward()
    torch.testing.assert_close(ours.layers[0].kernel.grad, twin[0].weight.grad.T, rtol=5e-2, atol=5e-2)
    assert ours._original_forward(x).dtype == torch.float32  # accelerate's unwrap


def test_global_module_hooks_backward_pre_hooks_and_state_dict_hooks_fire_like_on_torch_modules():
    """Hooks torch code installs without knowing the model: `register_module_forward_hook` (global, as
    profilers and activation-statistics tools use), `register_full_backward_pre_hook` that rescales the
    gradient flowing into a layer, and the state_dict / load hooks checkpoint converters use (timm /
    PEFT rename keys in a load pre-hook)."""
    ours, twin = _mlp_and_twin()
    x = torch.randn(5, 4)
    seen = {"ours": [], "twin": []}
    current = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda mod, args, out: seen[current[0]].append(tuple(out.shape)))
    try:
        for tag, m in (("ours", ours), ("twin", twin)):
            current[:] = [tag]
            m(x)
    finally:
        handle.remove()
    # after each module's forward, innermost first (torch's twin has a Tanh module; kerasish's body Dense
    # applies its tanh inside)
    assert seen["ours"] == [(5, 6), (5, 2), (5, 2)] and seen["twin"] == [(5, 6), (5, 6), (5, 2), (5, 2)]

    ours.layers[1].register_full_backward_pre_hook(lambda mod, grad_out: (grad_out[0] * 3.0,))
    twin[2].register_full_backward_pre_hook(lambda mod, grad_out: (grad_out[0] * 3.0,))
    ours(x).square().sum().backward()
    twin(x).square().sum().backward()
    torch.testing.assert_close(ours.layers[0].kernel.grad, twin[0].weight.grad.T, rtol=1e-5, atol=1e-6)

    # a torch-named checkpoint (`weight` in (out, in)) loaded through a user's load pre-hook
    def torch_names_to_keras(state_dict, prefix, *args):
        for key in [k for k in state_dict if k.startswith(prefix) and k.endswith("weight")]:
            state_dict[key[:-len("weight")] + "kernel"] = state_dict.pop(key).T

    fresh, _ = _mlp_and_twin()
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    for layer in fresh.layers:
        layer._register_load_state_dict_pre_hook(torch_names_to_keras)
    twin_sd = {f"{name}.{k}": v for name, lin in (("body", twin[0]), ("head", twin[2]))
               for k, v in lin.state_dict().items()}
    assert str(fresh.load_state_dict(twin_sd)) == "<All keys matched successfully>"
    torch.testing.assert_close(fresh(x), twin(x), rtol=1e-5, atol=1e-6)
    calls = []
    fresh.register_state_dict_post_hook(lambda mod, sd, prefix, meta: calls.append(sorted(sd)))
    fresh.state_dict()
    assert calls == [["body.bias", "body.kernel", "head.bias", "head.kernel"]]


def test_submodule_paths_strict_false_loads_and_zero_grad_without_none_like_torch():
    """`named_modules()` / `get_submodule("a.b")` / `get_parameter` / `set_submodule` (torch's surgery
    call), `load_state_dict(strict=False)` reporting missing and unexpected keys (also into a never-called
    model), the size-mismatch error strict=False does not silence, and `zero_grad(set_to_none=False)`."""
    inner = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3, name="a"), L.Dense(2, name="b")], name="inner")
    outer = kerasish.Sequential([kerasish.Input((4,)), inner, L.Dense(1, name="c")])
    x = torch.randn(5, 4)
    outer(x)
    assert [n for n, _ in outer.named_modules()] == ["", "inner", "inner.a", "inner.b", "c"]
    assert outer.get_submodule("inner.b") is inner.b
    assert outer.get_parameter("inner.a.kernel") is inner.a.kernel
    assert list(outer.state_dict()) == ["inner.a.kernel", "inner.a.bias", "inner.b.kernel", "inner.b.bias",
                                        "c.kernel", "c.bias"]
    outer.set_submodule("inner.b", L.Dense(2, name="b2"))
    assert outer(x).shape == (5, 1) and inner.layers[-1].name == "b2" and inner.b.built
    assert [n for n, _ in outer.named_modules()] == ["", "inner", "inner.a", "inner.b", "c"]

    src = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3, name="a"), L.Dense(2, name="b")])
    src(x)
    sd = src.state_dict()
    del sd["b.bias"]
    sd["extra.kernel"] = torch.zeros(2)
    fresh = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3, name="a"), L.Dense(2, name="b")])  # never called
    result = fresh.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["b.bias"] and result.unexpected_keys == ["extra.kernel"]
    torch.testing.assert_close(fresh.a.kernel, src.a.kernel, rtol=0, atol=0)
    torch.testing.assert_close(fresh.b.kernel, src.b.kernel, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match='(?s)Missing key.*"b.bias".*Unexpected key.*"extra.kernel"'):
        fresh.load_state_dict(sd)
    bad = dict(src.state_dict(), **{"a.kernel": torch.zeros(3, 4)})
    with pytest.raises(RuntimeError, match="size mismatch for a.kernel"):
        fresh.load_state_dict(bad, strict=False)

    fresh(x).sum().backward()
    fresh.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in fresh.parameters())


class _SelfAttending(torch.nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.attention = attention

    def forward(self, x):
        return self.attention(x, x)


def test_activation_offloading_with_saved_tensors_hooks_gives_the_gradients_without_them():
    """torchtune's activation offloading (`torch.autograd.graph.saved_tensors_hooks`, torch's
    `save_on_cpu`) around kerasish layers: every saved activation goes through the hooks, and the
    gradients equal those without hooks (and the torch twin's under the same hooks)."""
    import contextlib

    def grads(model, ctx, x):
        model.zero_grad()
        with ctx:
            out = model(x)
        out = out[0] if isinstance(out, (list, tuple)) else out
        out.square().sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    packed = []

    def offload():
        return torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(1) or t.clone(), lambda t: t)

    ours, twin = _mlp_and_twin()
    x = torch.randn(5, 4)
    for ctx in (offload, torch.autograd.graph.save_on_cpu):
        g_ours, g_twin = grads(ours, ctx(), x), grads(twin, ctx(), x)
        torch.testing.assert_close(g_ours[0], g_twin[0].T, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(g_ours[3], g_twin[3], rtol=1e-5, atol=1e-6)
    assert packed
    for make, inputs in ((lambda: L.LSTM(5, return_sequences=True), torch.randn(2, 6, 4)),
                         (lambda: L.MultiHeadAttention(2, 4), torch.randn(2, 3, 8)),
                         (lambda: L.BatchNormalization(), torch.randn(4, 3))):
        layer = make()
        module = _SelfAttending(layer) if isinstance(layer, L.MultiHeadAttention) else layer
        module(inputs)
        layer.train()
        packed.clear()
        ref = grads(module, contextlib.nullcontext(), inputs)
        for ctx in (offload, torch.autograd.graph.save_on_cpu):
            for a, b in zip(grads(module, ctx(), inputs), ref):
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        assert packed, type(layer).__name__
