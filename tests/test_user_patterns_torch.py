"""Programs PyTorch users write around kerasish models, checked against real
Keras 3 or plain torch (the paths the rest of the suite does not walk)."""

import numpy as np
import pytest
import torch

import kerasish as keras

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
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
    for got, want in zip(model.get_weights(), want_weights):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    fresh = _mlp(keras)
    fresh.set_weights(want_weights)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want_pred = fresh.predict(x, verbose=0)
    np.testing.assert_allclose(got_pred, want_pred, rtol=1e-6, atol=1e-6)


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
    np.testing.assert_allclose(losses_a, losses_b, rtol=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)


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
