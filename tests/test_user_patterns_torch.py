"""Programs PyTorch users write around kerasish models, checked against real
Keras 3 or plain torch (the paths the rest of the suite does not walk)."""

import numpy as np
import pytest
import torch

import kerasish as keras

BF16_RTOL = 1e-2  # bfloat16 keeps ~3 significant digits

def _data(rng, n=32):
    return rng.normal(size=(n, 5)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")


def _mlp(lib):
    return lib.Sequential([lib.Input((5,)), lib.layers.Dense(8, activation="relu"), lib.layers.Dense(2)])


def _torch_sgd_mse_reference(weights, x, y, lr, batch_size, epochs):
    """Per-epoch mean loss of a hand-written torch loop over the same MLP
    (Dense-relu-Dense), autocast around the forward only, as torch's AMP
    recipe does."""
    w = [torch.tensor(a, requires_grad=True) for a in weights]
    x, y = torch.tensor(x), torch.tensor(y)
    epoch_losses = []
    for _ in range(epochs):
        losses = []
        for i in range(0, len(x), batch_size):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                h = torch.relu(torch.addmm(w[1], x[i : i + batch_size], w[0]))
                loss = ((torch.addmm(w[3], h, w[2]).float() - y[i : i + batch_size]) ** 2).mean()
            for p in w:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in w:
                    p -= lr * p.grad
            losses.append(loss.item())
        epoch_losses.append(float(np.mean(losses)))
    return epoch_losses, [p.detach().numpy() for p in w]


def test_fit_inside_torch_autocast_trains_like_torch(rng):
    # torch.autocast caches one low-precision copy of each parameter for the
    # whole region: a fit wrapped in it trained on the first step's weights
    # forever (the loss never moved). (Keras 3 itself is off here too, so the
    # reference is torch's own AMP loop.)
    x, y = _data(rng)
    model = _mlp(keras)
    want_loss, want_weights = _torch_sgd_mse_reference(model.get_weights(), x, y, 0.1, 8, 3)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got_loss = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
        got_pred = model.predict(x, verbose=0)
    assert want_loss[0] - want_loss[-1] > 0.05  # the reference does train
    # bfloat16 CPU matmuls may round differently run to run (thread split);
    # stale weights leave the loss flat, tens of percent off by epoch 3
    np.testing.assert_allclose(got_loss, want_loss, rtol=BF16_RTOL)
    for got, want in zip(model.get_weights(), want_weights):
        np.testing.assert_allclose(got, want, rtol=BF16_RTOL, atol=BF16_RTOL)
    fresh = _mlp(keras)
    fresh.set_weights(want_weights)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want_pred = fresh.predict(x, verbose=0)
    np.testing.assert_allclose(got_pred, want_pred, rtol=BF16_RTOL, atol=BF16_RTOL)


def test_custom_loop_inside_one_autocast_region_matches_per_step_regions(rng):
    # A loop wholly inside one autocast region, stepping a kerasish optimizer,
    # must compute what torch's recommended loop (autocast around the forward
    # only) computes.
    x, y = (torch.tensor(a) for a in _data(rng))
    torch.manual_seed(0)
    a = _mlp(keras)
    b = _mlp(keras)
    b.set_weights(a.get_weights())
    opt_a, opt_b = keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1)
    losses_a, losses_b = [], []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(4):
            loss = ((a(x).float() - y) ** 2).mean()
            a.zero_grad()
            loss.backward()
            opt_a.apply([w.grad for w in a.trainable_weights], a.trainable_weights)
            losses_a.append(loss.item())
    for _ in range(4):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = ((b(x).float() - y) ** 2).mean()
        b.zero_grad()
        loss.backward()
        opt_b.apply([w.grad for w in b.trainable_weights], b.trainable_weights)
        losses_b.append(loss.item())
    assert losses_b[0] - losses_b[-1] > 0.01
    # stale casts would leave losses_a flat: > 0.01 off at the last step
    np.testing.assert_allclose(losses_a, losses_b, rtol=2e-3)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("how", ["set_weights", "assign", "assign_add"])
def test_weight_writes_inside_autocast_are_seen_by_the_next_call(rng, how):
    x = torch.tensor(_data(rng)[0])
    model = _mlp(keras)
    new = [w + 0.5 for w in model.get_weights()]
    fresh = _mlp(keras)
    fresh.set_weights(new)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)  # fills the cast cache with the old weights
        if how == "set_weights":
            model.set_weights(new)
        else:
            for w, v in zip(model.weights, new):
                if how == "assign":
                    w.assign(v)
                else:
                    w.assign_add(v - w.numpy())
        got = model(x).float()
        want = fresh(x).float()
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_load_weights_inside_autocast_is_seen_by_the_next_call(rng, tmp_path):
    x = torch.tensor(_data(rng)[0])
    saved = _mlp(keras)
    saved.save_weights(tmp_path / "w.weights.h5")
    model = _mlp(keras)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)  # fills the cast cache with the old weights
        model.load_weights(tmp_path / "w.weights.h5")
        torch.testing.assert_close(model(x), saved(x), rtol=0, atol=0)


def _bn_model(lib):
    return lib.Sequential(
        [lib.Input((5,)), lib.layers.Dense(4, activation="tanh"), lib.layers.BatchNormalization(), lib.layers.Dense(2)]
    )


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_a_copy_of_a_fitted_model_trains_on_like_keras(keras_ref, rng, how):
    # after fit, deepcopy raised (a metric kept the first batch's y_pred with
    # its autograd graph), pickle raised (the step closures), and the copy's
    # optimizer lost every Keras setting (torch pickles only param_groups)
    import copy
    import io
    import pickle

    x, y = _data(rng)
    ref, ours = _bn_model(keras_ref), _bn_model(keras)
    ours.set_weights(ref.get_weights())
    for lib, model in ((keras_ref, ref), (keras, ours)):
        model.compile(lib.optimizers.Adam(0.05, clipnorm=0.5), "mse", metrics=["mae"])
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    before = [w.copy() for w in ours.get_weights()]
    if how == "deepcopy":
        copied = copy.deepcopy(ours)
    else:
        buf = io.BytesIO()
        if how == "pickle":
            pickle.dump(ours, buf)
        else:
            torch.save(ours, buf)
        buf.seek(0)
        copied = pickle.load(buf) if how == "pickle" else torch.load(buf, weights_only=False)
    ref_copy = copy.deepcopy(ref)
    assert copied.optimizer.clipnorm == 0.5 and int(copied.optimizer.iterations) == 4
    got = copied.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    want = ref_copy.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    for key in ("loss", "mae"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5)
    for g, w in zip(copied.get_weights(), ref_copy.get_weights()):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    for b, a in zip(before, ours.get_weights()):  # training the copy left the original alone
        np.testing.assert_array_equal(a, b)
    assert int(ours.optimizer.iterations) == 4


def test_a_copied_optimizer_keeps_its_weight_decay_exclusions(rng):
    x, y = (torch.tensor(a) for a in _data(rng))
    import copy

    model = _mlp(keras)
    opt = keras.optimizers.AdamW(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_list=[model.layers[0].bias, model.layers[1].bias])
    model.compile(opt, "mse")
    twin = copy.deepcopy(model)
    for m in (model, twin):
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert twin.optimizer._use_weight_decay(twin.layers[0].kernel)
    assert not twin.optimizer._use_weight_decay(twin.layers[0].bias)
