"""Habits PyTorch users bring to kerasish layers (round 14: mixed precision
and dtypes first): a custom layer that updates a weight with `assign` /
`assign_add` from its `call` under a mixed policy (the read is a cast copy:
it raised AttributeError; it now writes the variable, where real Keras 3.15
on torch silently writes nothing); a mixed layer reading a float32 layer's
`kernel` / `embeddings` (a tied output projection: Keras casts it to the
reader's compute dtype, kerasish returned float32 and the matmul raised),
while the float32 layer's own call keeps it float32;
`torch.distributed.checkpoint`'s `get_state_dict` / `set_state_dict` with a
Keras optimizer (they dropped its iterations and a LossScaleOptimizer's
scale: the resume silently took other steps); `torch.autocast` around a
float32-policy model trained with a Keras optimizer and gradient
accumulation through `apply`.
References: real Keras 3 with the same weights, a NumPy reference from the
maths, the uninterrupted run, or the same pattern on `torch.nn` modules
holding the same weights (Keras kernels are (in, out), torch Linear weights
(out, in)).
"""

import numpy as np
import pytest
import torch
from torch import nn

import kerasish

_MIXED = ["mixed_bfloat16", "mixed_float16"]


def _stat_layer(lib):
    class RunningStat(lib.layers.Layer):
        """A custom layer keeping a call counter and a running mean of its inputs, updated in `call`."""

        def build(self, input_shape):
            self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")
            self.mean = self.add_weight(shape=(input_shape[-1],), initializer="zeros", trainable=False, name="mean")
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")
            self.ema = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="ema")

        def call(self, x):
            self.count.assign_add(1.0)
            self.mean.assign(self.mean * 0.5 + lib.ops.mean(x, axis=0) * 0.5)
            # a trainable weight written in the call (an EMA kept as a weight): read again after the write
            self.ema.assign(self.ema * 0.5 + 0.25)
            self.scale.assign_sub(lib.ops.ones_like(self.scale) * 0.125)
            return x * self.scale + self.ema

    return RunningStat


def _numpy_run(batches):
    """The same layer's maths in float64 NumPy: (outputs, count, mean, scale, ema)."""
    count, mean, scale, ema = 0.0, np.zeros(3), np.ones(3), np.zeros(3)
    outs = []
    for x in batches:
        count += 1.0
        mean = mean * 0.5 + x.mean(0) * 0.5
        ema = ema * 0.5 + 0.25
        scale = scale - 0.125
        outs.append(x * scale + ema)
    return outs, count, mean, scale, ema


def _batches():
    g = np.random.default_rng(0)
    # values exact in bfloat16 and float16 (multiples of 1/8 below 4): the casts lose nothing
    return [np.round(g.uniform(-2, 2, (4, 3)) * 8) / 8 for _ in range(3)]


@pytest.mark.parametrize("policy", _MIXED)
def test_assign_in_a_mixed_precision_call_writes_the_variable(policy):
    layer = _stat_layer(kerasish)(dtype=policy)
    batches = _batches()
    outs = [layer(torch.tensor(b, dtype=torch.float32)) for b in batches]
    ref_outs, count, mean, scale, ema = _numpy_run(batches)
    compute = torch.bfloat16 if policy == "mixed_bfloat16" else torch.float16
    assert all(o.dtype == compute for o in outs)
    tol = dict(rtol=0, atol=2e-2)  # the running mean of the inputs is read in the compute dtype
    for out, ref in zip(outs, ref_outs):
        np.testing.assert_allclose(out.float().detach().numpy(), ref, **tol)
    # the variables: float32, updated (a write in the compute dtype would have lost the 1/8 steps)
    for var, ref in [(layer.count, count), (layer.mean, mean), (layer.scale, scale), (layer.ema, ema)]:
        assert var.dtype == torch.float32
        np.testing.assert_allclose(var.numpy(), ref, **tol)
    np.testing.assert_array_equal(layer.count.numpy(), 3.0)
    np.testing.assert_array_equal(layer.scale.numpy(), np.full(3, 1 - 3 * 0.125))


@pytest.mark.parametrize("policy", _MIXED)
def test_a_cast_read_answers_as_its_variable_and_gradients_still_reach_the_weight(policy):
    seen = {}

    class Probe(kerasish.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, x):
            read = self.w
            seen.update(dtype=read.dtype, variable=read.variable, returned=read.assign_add(torch.zeros(3)))
            return x * self.w

    layer = Probe(dtype=policy)
    x = torch.ones(2, 3)
    layer(x).float().sum().backward()
    assert seen["dtype"] != torch.float32
    assert seen["variable"] is layer.w and seen["returned"] is layer.w
    np.testing.assert_array_equal(layer.w.grad.numpy(), np.full(3, 2.0))


@pytest.mark.parametrize("policy", _MIXED)
def test_keras_on_torch_writes_nothing_from_a_mixed_call_and_kerasish_writes(keras_ref, policy):
    """The evidence for the decision: real Keras 3 on torch runs the assigns of a mixed call without an
    error and without an effect (its assign copies into the cast copy), updates them under float32;
    kerasish updates under every policy, as Keras on TensorFlow and JAX do."""
    batches = [torch.tensor(b, dtype=torch.float32) for b in _batches()]
    for lib, expect_written in [(keras_ref, False), (kerasish, True)]:
        for p, written in [("float32", True), (policy, expect_written)]:
            layer = _stat_layer(lib)(dtype=p)
            for b in batches:
                layer(b)
            assert float(np.asarray(layer.count.numpy())) == (3.0 if written else 0.0), (lib.__name__, p)


# ------------------------------------------- torch.distributed.checkpoint with a Keras optimizer
@pytest.mark.parametrize("wrap", [False, True], ids=["adam", "loss_scale_adam"])
def test_dcp_state_dict_helpers_resume_a_keras_optimizer_like_the_uninterrupted_run(tmp_path, wrap):
    """torch's `get_state_dict(model, optimizer)` / `set_state_dict` keep only an optimizer state dict's
    `state` and `param_groups`: a Keras optimizer's iterations (Adam's bias correction) and a
    LossScaleOptimizer's scale were dropped, and the resumed run silently took other steps. They now
    travel in the first param group too."""
    dcp = pytest.importorskip("torch.distributed.checkpoint", reason="needs torch.distributed.checkpoint")
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from torch.distributed.checkpoint.state_dict import set_state_dict
    import copy
    import warnings

    def make_opt(model):
        opt = kerasish.optimizers.Adam(0.05)
        if wrap:
            opt = kerasish.optimizers.LossScaleOptimizer(opt, initial_scale=2.0**7)
        opt.build(model.trainable_variables)
        return opt

    def make():
        return kerasish.Sequential([kerasish.Input((3,)), kerasish.layers.Dense(4), kerasish.layers.Dense(1)])

    g = torch.Generator().manual_seed(3)
    data = [(torch.randn(8, 3, generator=g), torch.randn(8, 1, generator=g)) for _ in range(4)]

    def steps(model, opt, batches):
        for x, y in batches:
            loss = torch.nn.functional.mse_loss(model(x), y)
            grads = torch.autograd.grad(loss, model.trainable_variables)
            opt.apply(grads, model.trainable_variables)

    model = make()
    straight = copy.deepcopy(model)
    opt, straight_opt = make_opt(model), make_opt(straight)
    steps(model, opt, data[:2])
    steps(straight, straight_opt, data[:2])
    if wrap:  # a scale of its own, not the initial one (LossScaleOptimizer.apply unscales by it)
        for o in (opt, straight_opt):
            o.dynamic_scale.assign(2.0**5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch.distributed.checkpoint's own notes: no process group)
        msd, osd = get_state_dict(model, opt)
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(tmp_path))
        resumed = make()
        resumed_opt = make_opt(resumed)
        msd, osd = get_state_dict(resumed, resumed_opt)
        state = {"model": msd, "optim": osd}
        dcp.load(state, checkpoint_id=str(tmp_path))
        set_state_dict(resumed, resumed_opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    assert int(resumed_opt.iterations) == 2
    if wrap:
        assert float(resumed_opt.dynamic_scale) == 2.0**5
    steps(resumed, resumed_opt, data[2:])
    steps(straight, straight_opt, data[2:])
    for ours, theirs in zip(resumed.trainable_variables, straight.trainable_variables):
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=0, atol=0)
    # the state dict itself still loads as before, from `torch.save` (the top-level "keras" entry)
    again = make_opt(make())
    again.load_state_dict(resumed_opt.state_dict())
    assert int(again.iterations) == 4


# ------------------------------------ torch.autocast around a float32 model, Keras optimizer, accumulation
def test_autocast_bfloat16_with_gradient_accumulation_through_apply_trains_like_the_torch_twin():
    """A float32-policy model run under the user's `torch.autocast("cpu", torch.bfloat16)`, gradients of two
    micro-batches summed and handed to a Keras SGD's `apply` once: the same weights as `nn.Linear` twins
    under the same autocast with torch's SGD, which accumulates in `.grad`."""
    model = kerasish.Sequential(
        [kerasish.Input((6,)), kerasish.layers.Dense(8, activation="relu"), kerasish.layers.Dense(2)]
    )
    twin = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        for ours, theirs in [(model.layers[0], twin[0]), (model.layers[1], twin[2])]:
            theirs.weight.copy_(ours.kernel.T)
            theirs.bias.copy_(ours.bias)
    start = model.layers[0].kernel.detach().clone()
    opt = kerasish.optimizers.SGD(0.1)
    opt.build(model.trainable_variables)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(4, 6, generator=g), torch.randn(4, 2, generator=g)) for _ in range(6)]
    for k in range(0, len(data), 2):
        summed = None
        for x, y in data[k : k + 2]:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out, twin_out = model(x), twin(x)
            assert out.dtype == twin_out.dtype == torch.bfloat16
            grads = torch.autograd.grad(nn.functional.mse_loss(out.float(), y) / 2, model.trainable_variables)
            summed = grads if summed is None else [a + b for a, b in zip(summed, grads)]
            (nn.functional.mse_loss(twin_out.float(), y) / 2).backward()
        opt.apply(summed, model.trainable_variables)
        twin_opt.step()
        twin_opt.zero_grad()
    assert int(opt.iterations) == 3
    assert (model.layers[0].kernel.detach() - start).abs().max() > 1e-3  # it trained
    tol = dict(rtol=1e-6, atol=1e-6)  # the same bfloat16 ops on the same values: float32 rounding only
    for ours, theirs in [(model.layers[0], twin[0]), (model.layers[1], twin[2])]:
        torch.testing.assert_close(ours.kernel.detach(), theirs.weight.detach().T, **tol)
        torch.testing.assert_close(ours.bias.detach(), theirs.bias.detach(), **tol)
        assert ours.kernel.dtype == torch.float32


# ------------------------------------ a float32 layer's weights read inside another layer's mixed call
def _tied_head(lib):
    class TiedHead(lib.layers.Layer):
        """A mixed-precision head over a float32 embedding it shares (a tied output projection)."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.emb = lib.layers.Embedding(10, 4, dtype="float32")
            self.proj = lib.layers.Dense(4, dtype="float32")

        def call(self, ids):
            h = self.proj(self.emb(ids))  # the float32 sublayers' own calls: float32
            table = self.emb.embeddings  # read here: Keras's autocast scope is this (mixed) call's
            logits = lib.ops.matmul(lib.ops.cast(h, self.compute_dtype), lib.ops.transpose(table))
            return h, logits, table.dtype

    return TiedHead


@pytest.mark.parametrize("policy", _MIXED)
def test_a_float32_layers_weight_read_in_a_mixed_call_is_cast_as_keras_casts_it(keras_ref, policy):
    """Real Keras casts a float32-policy layer's variable read inside a mixed layer's call (its
    AutocastScope belongs to the innermost layer call, whoever owns the variable), and not inside the
    float32 layer's own call. kerasish returned the float32 variable: the matmul raised torch's dtype error."""
    ids = torch.tensor([[1, 2, 3], [4, 5, 9]])
    results = {}
    weights = None
    for lib in (keras_ref, kerasish):
        head = _tied_head(lib)(dtype=policy)
        head(ids)  # (built by its first call)
        if weights is None:
            weights = [np.asarray(w) for w in head.get_weights()]
        else:
            head.set_weights(weights)
        h, logits, table_dtype = head(ids)
        results[lib] = (h, logits, str(table_dtype).replace("torch.", ""))
    (kh, klogits, kdtype), (h, logits, dtype) = results[keras_ref], results[kerasish]
    compute = "bfloat16" if policy == "mixed_bfloat16" else "float16"
    assert kdtype == dtype == compute
    assert h.dtype == kh.dtype == torch.float32 and logits.dtype == klogits.dtype
    torch.testing.assert_close(h.detach(), kh.detach().cpu(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(logits.detach().float(), klogits.detach().cpu().float(), rtol=0, atol=1e-2)


def test_the_cast_read_of_a_float32_weight_backpropagates_into_the_float32_variable():
    """The gradient of the tied logits reaches the float32 embedding table through the cast, as the same
    maths written in torch (a bfloat16 copy of the table) gives it; the sublayers' own calls stay float32."""
    head = _tied_head(kerasish)(dtype="mixed_bfloat16")
    ids = torch.tensor([[1, 2, 3], [4, 5, 9]])
    h, logits, _ = head(ids)
    logits.float().square().sum().backward()
    table = head.emb.embeddings
    assert table.dtype == torch.float32 and table.grad is not None
    leaf = table.detach().clone().requires_grad_()
    kernel, bias = head.proj.kernel.detach(), head.proj.bias.detach()
    twin_h = leaf[ids] @ kernel + bias
    twin_logits = twin_h.to(torch.bfloat16) @ leaf.to(torch.bfloat16).T
    twin_logits.float().square().sum().backward()
    torch.testing.assert_close(logits.detach(), twin_logits.detach(), rtol=0, atol=0)
    torch.testing.assert_close(table.grad, leaf.grad, rtol=1e-2, atol=1e-2)


def test_a_float32_layers_own_call_inside_a_mixed_call_reads_its_weights_uncast(keras_ref):
    """The other half of Keras's rule: a float32 layer called inside a mixed layer's call computes with
    its float32 variables, also when it reads them through attributes in its own `call` and on inputs
    already float32 (kerasish's hot path, from the second call on)."""

    def outer(lib):
        class Affine(lib.layers.Layer):
            def build(self, input_shape):
                self.w = self.add_weight(shape=(input_shape[-1], 3), initializer="glorot_uniform", name="w")

            def call(self, x):
                return lib.ops.matmul(x, self.w)

        class KernelDense(lib.layers.Dense):
            def call(self, x):  # its own computed `kernel`, read in its own call
                return lib.ops.matmul(x, self.kernel)

        class Outer(lib.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.affine = Affine(dtype="float32")
                self.dense = KernelDense(2, dtype="float32")

            def call(self, x):
                return self.dense(self.affine(lib.ops.cast(x, "float32")))

        return Outer

    x = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    outs, weights = {}, None
    for lib in (keras_ref, kerasish):
        layer = outer(lib)(dtype="mixed_bfloat16")
        layer(x)
        if weights is None:
            weights = [np.asarray(w) for w in layer.get_weights()]
        else:
            layer.set_weights(weights)
        outs[lib] = [layer(x) for _ in range(2)]
    for k_out, out in zip(outs[keras_ref], outs[kerasish]):
        assert out.dtype == k_out.dtype == torch.float32
        torch.testing.assert_close(out.detach(), k_out.detach().cpu(), rtol=1e-6, atol=1e-6)
