"""More programs users bring from Keras and PyTorch (issue #7, round 2):
sample/class weights on masked sequence outputs, pure-bfloat16 Adam, Python
generators across epochs, `optimizer.learning_rate.assign`, a torchrun-style
DDP loop, torch LR schedulers, gradient clipping and SWA on kerasish models.
References: real Keras 3 (same weights), real torch, NumPy."""

import contextlib
import os
import re

import numpy as np
import pytest
import torch

import kerasish


def _masked_tagger(K):
    inp = K.Input((6,))
    x = K.layers.Embedding(10, 4, mask_zero=True)(inp)
    x = K.layers.LSTM(5, return_sequences=True)(x)
    out = K.layers.Dense(3, activation="softmax")(x)
    model = K.Model(inp, out)
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def _tagger_pair(keras_ref):
    # Keras's unseeded initializers draw their seeds from Python's `random`: seeded here, the weights (and
    # so which predictions are right) do not depend on the tests that ran before in this process
    keras_ref.utils.set_random_seed(0)
    ref, ours = _masked_tagger(keras_ref), _masked_tagger(kerasish)
    ours.set_weights(ref.get_weights())
    rng = np.random.default_rng(0)
    x = rng.integers(1, 10, (8, 6))
    x[:, 4:] = 0  # padded tail: masked
    x[0, 2:] = 0
    y = rng.integers(0, 3, (8, 6))
    return ref, ours, x, y


@pytest.mark.parametrize("shape", [(8, 6), (8, 6, 1)])
def test_per_step_sample_weight_on_masked_sequence_matches_keras(keras_ref, shape):
    ref, ours, x, y = _tagger_pair(keras_ref)
    sw = np.random.default_rng(1).uniform(0.2, 2.0, shape).astype("float32")
    want = ref.evaluate(x, y, sample_weight=sw, verbose=0, batch_size=8)
    got = ours.evaluate(x, y, sample_weight=sw, verbose=0, batch_size=8)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    h_ref = ref.fit(x, y, sample_weight=sw, verbose=0, batch_size=4, epochs=2, shuffle=False)
    h_ours = ours.fit(x, y, sample_weight=sw, verbose=0, batch_size=4, epochs=2, shuffle=False)
    np.testing.assert_allclose(h_ours.history["loss"], h_ref.history["loss"], rtol=1e-4, atol=1e-6)


def test_per_sample_column_weight_on_masked_sequence_equals_broadcast_weight(keras_ref):
    # Keras 3 on torch crashes here (an in-place `*=` of (8, 1) weights by the
    # (8, 6) mask); the weight means one value per sample, which Keras gives
    # for the same weights spelled out per step.
    ref, ours, x, y = _tagger_pair(keras_ref)
    col = np.linspace(0.5, 2.0, 8, dtype="float32")[:, None]
    want = ref.evaluate(x, y, sample_weight=np.broadcast_to(col, (8, 6)).copy(), verbose=0, batch_size=8)
    got = ours.evaluate(x, y, sample_weight=col, verbose=0, batch_size=8)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, given",
    [
        ({"sample_weight": np.linspace(0.5, 2.0, 8)}, "(8,)"),
        ({"sample_weight": np.ones((8, 5))}, "(8, 5)"),
        ({"class_weight": {0: 1.0, 1: 2.0, 2: 0.5}}, "(8,)"),
    ],
)
def test_sample_weight_that_does_not_fit_sequence_losses_raises_clearly(keras_ref, kwargs, given):
    # Keras 3 raises torch's RuntimeError from inside its loss here
    ref, ours, x, y = _tagger_pair(keras_ref)
    with pytest.raises(RuntimeError):
        ref.fit(x, y, verbose=0, batch_size=8, **kwargs)
    before = [w.copy() for w in ours.get_weights()]
    pattern = r"sparse_categorical_crossentropy.*sample_weight.*" + re.escape(given) + r".*\(8, 6\)"
    with pytest.raises(ValueError, match=pattern):
        ours.fit(x, y, verbose=0, batch_size=8, **kwargs)
    for a, b in zip(before, ours.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_per_sample_weight_when_batch_equals_timesteps_is_refused_not_misread():
    # batch == timesteps: the (6,) weights broadcast over time steps in Keras
    # 3 (a number, weighing the wrong axis); kerasish refuses the ambiguity.
    loss = kerasish.losses.SparseCategoricalCrossentropy()
    y = torch.randint(0, 3, (6, 6))
    p = torch.softmax(torch.randn(6, 6, 3), -1)
    with pytest.raises(ValueError, match=r"shape \(6,\).*\(6, 6\).*\(6, 1\)"):
        loss(y, p, sample_weight=torch.linspace(0.5, 2.0, 6))
    # one sample: a (1,) weight is unambiguous and broadcasts as in Keras
    w = torch.tensor([0.5])
    per = kerasish.losses.SparseCategoricalCrossentropy(reduction="none")(y[:1], p[:1])
    np.testing.assert_allclose(float(loss(y[:1], p[:1], sample_weight=w)), float((per * 0.5).mean()), rtol=1e-6)


def _adam_numpy(w, grads, lr, b1=0.9, b2=0.999, eps=1e-7):
    """Keras's Adam update (epsilon outside the bias-corrected root) in float32."""
    w = w.astype(np.float32).copy()
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        w = w - np.float32(alpha) * m / (np.sqrt(v) + eps)
    return w


def test_adam_moves_bfloat16_weights_like_float32_adam(keras_ref):
    # Keras 3 casts beta_2=0.999 to bfloat16 (1.0): 1 - beta_2**t == 0, so its
    # Adam never moves bfloat16 weights. kerasish follows the float32 maths
    # (documented in Adam's docstring).
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 arrays for the reference need ml_dtypes")
    rng = np.random.default_rng(3)
    bf16 = lambda a: np.asarray(a, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)  # noqa: E731
    w0 = bf16(rng.uniform(-0.1, 0.1, (3, 4)))
    grads = [bf16(rng.normal(size=(3, 4))) for _ in range(5)]
    lr = 1e-2

    ours_var = kerasish.Variable(w0, dtype="bfloat16")
    ours = kerasish.optimizers.Adam(lr)
    ref_var = keras_ref.Variable(w0, dtype="bfloat16")
    ref = keras_ref.optimizers.Adam(lr)
    for g in grads:
        ours.apply([torch.tensor(g, dtype=torch.bfloat16)], [ours_var])
        ref.apply([torch.tensor(g, dtype=torch.bfloat16)], [ref_var])

    want = _adam_numpy(w0, grads, lr)
    got = np.asarray(ours_var.numpy(), np.float32)
    assert np.abs(want - w0).min() > 0.005  # every weight moved by 10+ bfloat16 spacings
    # bfloat16 rounding of the weight and both moments at each of 5 steps
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-3)
    assert ours_var.dtype == torch.bfloat16  # a torch Parameter: torch dtypes (Keras: the string)
    np.testing.assert_array_equal(np.asarray(ref_var.numpy(), np.float32), w0)  # Keras 3.15: no step


def _counting_gen(n, seen, tag):
    for i in range(n):
        seen.append(f"{tag}{i}")
        yield np.full((2, 1), float(i), "float32"), np.full((2, 1), 0.5, "float32")


def _fit_with_generators(K, weights, **kw):
    model = K.Sequential([K.Input((1,)), K.layers.Dense(1)])
    model.set_weights(weights)
    model.compile(K.optimizers.SGD(0.01), "mse")
    seen = []
    kw = {k: (_counting_gen(*v, seen, k[0]) if isinstance(v, tuple) else v) for k, v in kw.items()}
    history = model.fit(epochs=3, verbose=0, shuffle=False, **kw)
    return seen, history.history


_X = np.linspace(-1, 1, 4, dtype="float32")[:, None]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"x": _X, "y": _X, "batch_size": 2, "validation_data": (100,), "validation_steps": 2},
        {"x": _X, "y": _X, "batch_size": 2, "validation_data": (100,), "validation_steps": 3},
        {"x": _X, "y": _X, "batch_size": 2, "validation_data": (3,)},  # runs out after epoch 1
        {"x": (5,)},  # a training generator that runs out after epoch 1
        {"x": (3,), "steps_per_epoch": 2},  # runs out in epoch 2
    ],
    ids=["val_steps_2", "val_steps_3", "finite_val", "finite_train", "finite_train_steps"],
)
def test_generators_across_epochs_match_keras(keras_ref, kwargs):
    # Keras 3 peeks at a generator's first two batches and replays them at the
    # start of every new pass: fit's validation restarts on them each epoch
    # (later batches continue the generator); an exhausted generator yields
    # them again instead of nothing (kerasish logged val_loss 0.0 there).
    weights = [np.array([[0.7]], "float32"), np.array([0.1], "float32")]
    seen_ref, hist_ref = _fit_with_generators(keras_ref, weights, **kwargs)
    ran_out = kwargs["x"] is not _X  # Keras warns when a training generator runs out
    with pytest.warns(UserWarning, match="ran out of data") if ran_out else contextlib.nullcontext():
        seen, hist = _fit_with_generators(kerasish, weights, **kwargs)
    assert seen == seen_ref
    assert hist.keys() == hist_ref.keys()
    for key in hist_ref:
        np.testing.assert_allclose(hist[key], hist_ref[key], rtol=1e-5, atol=1e-7)


def test_empty_generator_raises_as_keras(keras_ref):
    for K, err in ((keras_ref, ValueError), (kerasish, ValueError)):
        model = K.Sequential([K.Input((1,)), K.layers.Dense(1)])
        model.compile("sgd", "mse")
        with pytest.raises(err, match="at least one batch"):
            model.evaluate((b for b in ()), verbose=0)


def test_ddp_loop_with_distributed_sampler_clipping_and_steplr(tmp_path):
    # torchrun-style: 2 gloo ranks, DDP around a built kerasish model, a
    # DistributedSampler, clip_grad_norm_, StepLR on a kerasish Adam, rank 0
    # saves state_dict; loaded in one process it equals one process training
    # on each step's global batch (DDP averages the ranks' mean gradients).
    pytest.importorskip("torch.distributed")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed not built")
    from torch.utils.data import DistributedSampler, TensorDataset

    from tests.distribution.test_data_parallel import run_ranks

    def build():
        return kerasish.Sequential(
            [kerasish.Input((5,)), kerasish.layers.Dense(8, activation="relu"), kerasish.layers.Dense(2)]
        )

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 5, generator=g), torch.randn(16, 2, generator=g)
    ref = build()
    torch.save({"weights": [torch.from_numpy(w) for w in ref.get_weights()], "x": x, "y": y}, tmp_path / "init.pt")
    run_ranks(os.path.join(os.path.dirname(__file__), "distribution", "ddp_user_worker.py"), tmp_path, timeout=120)

    # the reference: plain torch maths on the same global batches
    ds = TensorDataset(x, y)
    opt = kerasish.optimizers.Adam(0.05)
    opt.build(ref.trainable_variables)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for epoch in range(2):
        orders = []
        for rank in range(2):
            sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
            sampler.set_epoch(epoch)
            orders.append(list(sampler))
        for step in range(2):
            idx = [i for order in orders for i in order[step * 4:(step + 1) * 4]]
            opt.zero_grad()
            pred = ref(x[idx])
            # each rank's mean loss, gradients averaged over the ranks
            target = y[idx]
            loss = sum(
                torch.nn.functional.mse_loss(pred[r * 4:(r + 1) * 4], target[r * 4:(r + 1) * 4]) for r in range(2)
            ) / 2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
            opt.step()
            lrs.append(float(opt.learning_rate))
            sched.step()
    assert lrs == pytest.approx([0.05, 0.05, 0.025, 0.025])  # StepLR moved Keras's learning_rate

    loaded = build()
    loaded.load_state_dict(torch.load(tmp_path / "final.pt"))
    for a, b in zip(loaded.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(loaded.get_weights()[0], torch.load(tmp_path / "init.pt")["weights"][0].numpy())
    np.testing.assert_allclose(loaded.predict(x.numpy(), verbose=0), ref(x).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "method, arg, want", [("assign", 0.02, 0.02), ("assign_add", 0.05, 0.15), ("assign_sub", 0.04, 0.06)]
)
def test_learning_rate_assign_writes_through_like_keras(keras_ref, method, arg, want):
    # Keras 3 callbacks and loops write `optimizer.learning_rate.assign(v)`
    # (kerasish's snapshot tensor had no `assign`: AttributeError)
    w0, g = np.array([1.0, -2.0], "float32"), np.array([0.5, 1.5], "float32")
    got = []
    for K in (keras_ref, kerasish):
        opt = K.optimizers.SGD(0.1)
        var = K.Variable(w0)
        opt.build([var])
        lr = opt.learning_rate
        getattr(lr, method)(arg)
        np.testing.assert_allclose(float(lr), want, rtol=1e-6)
        np.testing.assert_allclose(float(opt.learning_rate), want, rtol=1e-6)
        opt.apply([torch.tensor(g)], [var])
        got.append(np.asarray(var.numpy()))
    np.testing.assert_allclose(got[1], got[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], w0 - want * g, rtol=1e-6)


def test_torch_one_cycle_lr_drives_a_kerasish_optimizer():
    # torch's schedulers write param_groups' "lr": Keras's learning_rate and
    # the step size follow. Momentum cycling (OneCycleLR's default) drives the
    # "momentum" group key (tests/test_optimizers_torch_tooling.py); an SGD
    # made without momentum has no slots for it: its first step says so.
    model = kerasish.Sequential([kerasish.Input((3,)), kerasish.layers.Dense(1, use_bias=False)])
    opt = kerasish.optimizers.SGD(0.1)
    opt.build(model.trainable_variables)
    cycling = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=6)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)  # OneCycleLR's max_momentum
    opt.zero_grad()
    model(torch.ones(2, 3)).sum().backward()
    before = model.get_weights()[0].copy()
    with pytest.raises(ValueError, match="cycle_momentum=False"):
        opt.step()
    np.testing.assert_array_equal(model.get_weights()[0], before)  # nothing applied
    del cycling
    opt.param_groups[0]["momentum"] = 0.0
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=6, cycle_momentum=False)
    x = torch.ones(2, 3)
    seen = []
    for _ in range(5):
        expected_lr = opt.param_groups[0]["lr"]
        seen.append(expected_lr)
        assert float(opt.learning_rate) == pytest.approx(expected_lr)
        w = model.get_weights()[0].copy()
        opt.zero_grad()
        model(x).sum().backward()
        grad = model.layers[0].kernel.grad.detach().numpy().copy()
        opt.step()
        np.testing.assert_allclose(model.get_weights()[0], w - expected_lr * grad, rtol=1e-5)
        sched.step()
    assert max(seen) > 0.9 and seen[0] < 0.1 and seen[-1] < max(seen)  # warm-up to max_lr, then decay


def test_swa_update_bn_recomputes_kerasish_batchnorm_statistics():
    from torch.optim.swa_utils import AveragedModel, update_bn

    model = kerasish.Sequential([kerasish.Input((4,)), kerasish.layers.Dense(8), kerasish.layers.BatchNormalization()])
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    swa = AveragedModel(model)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=8)
    update_bn(loader, swa)
    h = swa.module.layers[0](x).detach()
    # update_bn's contract: the exact mean of the batch statistics (momentum=None)
    want = torch.stack([h[i:i + 8].mean(0) for i in range(0, 32, 8)]).mean(0)
    torch.testing.assert_close(swa.module.layers[1].moving_mean.detach(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch_size", [8, 3])
def test_weighted_accuracy_on_masked_sequence_is_the_weighted_mean_of_valid_steps(keras_ref, batch_size):
    # NumPy reference: sum(acc * w * mask) / sum(w * mask) over every step.
    # kerasish gives it at every batch size; Keras 3.15 on torch agrees at
    # batch_size=8 (one batch) but not over several batches: its loss scales
    # the batch's sample-weight tensor in place (a Keras bug, see
    # test_user_patterns_3.test_keras_masked_loss_rescales_sample_weight_in_place),
    # so the reference here is NumPy, not Keras.
    ref, ours, x, y = _tagger_pair(keras_ref)
    for model in (ref, ours):
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"])
    sw = np.random.default_rng(1).uniform(0.2, 2.0, (8, 6)).astype("float32")
    pred = ref.predict(x, verbose=0)
    mask = (x != 0).astype("float64")
    acc = (pred.argmax(-1) == y).astype("float64")
    want = (acc * sw * mask).sum() / (sw * mask).sum()
    got = ours.evaluate(x, y, sample_weight=sw, verbose=0, batch_size=batch_size, return_dict=True)
    np.testing.assert_allclose(got["weighted_accuracy"], want, rtol=1e-6)
    if batch_size == 8:
        one_batch = ref.evaluate(x, y, sample_weight=sw, verbose=0, batch_size=8, return_dict=True)
        np.testing.assert_allclose(got["weighted_accuracy"], one_batch["weighted_accuracy"], rtol=1e-6)


def test_class_weight_with_one_hot_sequence_targets_weighs_each_step(keras_ref):
    # Keras 3.15 raises TypeError here (it converts a row of labels with
    # int()); kerasish weighs each step by its class: checked against NumPy.
    def tagger(K):
        inp = K.Input((6,))
        h = K.layers.LSTM(5, return_sequences=True)(K.layers.Embedding(10, 4, mask_zero=True)(inp))
        model = K.Model(inp, K.layers.Dense(3, activation="softmax")(h))
        model.compile("sgd", "categorical_crossentropy")
        return model

    ref, ours = tagger(keras_ref), tagger(kerasish)
    ours.set_weights(ref.get_weights())
    rng = np.random.default_rng(0)
    x = rng.integers(1, 10, (8, 6))
    x[:, 4:] = 0
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, (8, 6))]
    cw = {0: 1.0, 1: 2.0, 2: 0.5}
    with pytest.raises(TypeError):
        ref.fit(x, y, class_weight=cw, verbose=0, batch_size=8)
    p = ref.predict(x, verbose=0)
    w = np.vectorize(cw.get)(y.argmax(-1))
    valid = x != 0
    per_step = -(y * np.log(np.clip(p, 1e-7, 1.0))).sum(-1)
    want = (per_step * w * valid).sum() / valid.sum()  # masked mean of the weighted step losses
    got = ours.fit(x, y, class_weight=cw, verbose=0, batch_size=8, epochs=1).history["loss"][0]
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("kind", ["Dense", "Conv2D", "LSTM", "GRU"])
def test_torch_parametrizations_and_pruning_reach_the_computation(kind):
    # torch habits: prune.l1_unstructured on a kernel, an AWD-LSTM-style
    # parametrization of the recurrent kernel. Reference: a copy whose
    # weight holds the same effective values.
    import copy

    import torch.nn.utils.prune as prune
    from torch.nn.utils import parametrize

    if kind in ("LSTM", "GRU"):
        layer, x = getattr(kerasish.layers, kind)(4), torch.randn(2, 5, 3)
    elif kind == "Conv2D":
        layer, x = kerasish.layers.Conv2D(2, 3), torch.randn(1, 5, 5, 3)
    else:
        layer, x = kerasish.layers.Dense(3), torch.randn(4, 5)
    layer(x)
    ref = copy.deepcopy(layer)
    if kind in ("LSTM", "GRU"):
        class Half(torch.nn.Module):
            def forward(self, w):
                return w * 0.5

        parametrize.register_parametrization(layer.cell, "recurrent_kernel", Half())
        with torch.no_grad():
            ref.cell.recurrent_kernel.mul_(0.5)
    else:
        if kind == "Conv2D":
            # a conv kernel is stored in torch's memory order behind its Keras shape (no per-call copy), and
            # torch's pruning views it flat: torch's own error, as for a channels_last `nn.Conv2d`; the
            # README's remedy, `contiguous_kernels`, lets the habit run
            from kerasish.layers.rnn import contiguous_kernels

            fresh = copy.deepcopy(layer)
            with pytest.raises(RuntimeError, match="view size is not compatible"):
                prune.l1_unstructured(fresh, "kernel", amount=0.5)
            contiguous_kernels(layer)
        prune.l1_unstructured(layer, "kernel", amount=0.5)
        with torch.no_grad():
            ref.kernel.copy_(layer.kernel)
        assert int((layer.kernel == 0).sum()) >= layer.kernel.numel() // 2
    out = layer(x)
    torch.testing.assert_close(out, ref(x), rtol=1e-6, atol=1e-6)
    out.sum().backward()
    original = layer.cell.parametrizations.recurrent_kernel.original if kind in ("LSTM", "GRU") else layer.kernel_orig
    assert original.grad is not None and torch.isfinite(original.grad).all()
