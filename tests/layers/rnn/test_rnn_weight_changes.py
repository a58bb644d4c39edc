"""The fused kernels' torch-layout weights follow every kind of weight change.

The weights handed to `torch._VF.gru/lstm/rnn_tanh` are re-laid from the
Keras-layout variables (GRU: its gates reordered). A copy kept across calls
would go stale; these tests change the weights in each way users and torch
tools do (an update through `.data`, which no version counter sees, an
optimizer step, `set_weights`, `load_state_dict(assign=True)`, `p.data = ...`,
a dtype move, `torch.func.functional_call`) between calls and compare the
layer with a reference written from the maths here (a per-step loop over the
Keras-layout weights, gate order z, r, h / i, f, c, o): outputs with
autograd off and on, and the gradients reaching the Keras-layout weights.
"""

import pytest
import torch

import kerasish as keras

KINDS = ["GRU", "LSTM", "SimpleRNN"]
CHANGES = ["data_inplace", "optimizer_step", "set_weights", "load_state_dict_assign", "data_replaced", "double",
           "functional_call"]


def _x(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _reference(kind, x, k, rk, b):
    """The Keras recurrence, one step at a time, from Keras-layout weights."""
    batch, steps, _ = x.shape
    u = rk.shape[0]
    h = x.new_zeros(batch, u)
    c = x.new_zeros(batch, u)
    outs = []
    for t in range(steps):
        xt = x[:, t]
        if kind == "GRU":  # reset_after=True: bias (2, 3u) = input bias, recurrent bias
            xz, xr, xh = (xt @ k + b[0]).split(u, dim=-1)
            hz, hr, hh = (h @ rk + b[1]).split(u, dim=-1)
            z = torch.sigmoid(xz + hz)
            r = torch.sigmoid(xr + hr)
            cand = torch.tanh(xh + r * hh)
            h = z * h + (1 - z) * cand
        elif kind == "LSTM":
            i, f, g, o = (xt @ k + h @ rk + b).split(u, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            h = torch.tanh(xt @ k + h @ rk + b)
        outs.append(h)
    return torch.stack(outs, dim=1)


def _weights(layer):
    cell = layer.cell
    return cell.kernel, cell.recurrent_kernel, cell.bias


def _check(layer, x, params=None):
    """Layer vs reference: no-grad output, training output and the gradients
    of the Keras-layout weights. `params`: a `functional_call` dict."""
    names = ["cell.kernel", "cell.recurrent_kernel", "cell.bias"]
    if params is None:
        weights = _weights(layer)

        def run(inp):
            return layer(inp)
    else:
        weights = tuple(params[n] for n in names)

        def run(inp):
            return torch.func.functional_call(layer, params, (inp,))

    tol = {"rtol": 1e-5, "atol": 1e-6} if x.dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    ref_weights = [w.detach().clone().requires_grad_() for w in weights]
    expected = _reference(type(layer).__name__, x, *ref_weights)
    with torch.no_grad():
        torch.testing.assert_close(run(x), expected.detach(), **tol)
    for w in weights:
        w.grad = None
    out = run(x)
    torch.testing.assert_close(out.detach(), expected.detach(), **tol)
    probe = _x(*out.shape, seed=7, dtype=out.dtype)
    found = torch.autograd.grad((out * probe).sum(), weights)
    wanted = torch.autograd.grad((expected * probe).sum(), ref_weights)
    for g, w, name in zip(found, wanted, names):
        torch.testing.assert_close(g, w, **tol, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("kind", KINDS)
def test_fused_weights_follow_each_kind_of_weight_change(kind, change):
    layer = getattr(keras.layers, kind)(4, return_sequences=True)
    x = _x(2, 5, 3)
    with torch.no_grad():
        layer(x)  # built; a no-grad call first (what an inference cache would keep)
        layer(x)
    _check(layer, x)
    params = None
    k, rk, b = _weights(layer)
    if change == "data_inplace":  # old-style manual updates / weight clipping: no version bump
        for p in (k, rk, b):
            p.data.mul_(0.5).add_(0.1)
    elif change == "optimizer_step":
        opt = torch.optim.SGD(layer.parameters(), lr=0.5)
        layer(x, training=True).square().sum().backward()
        opt.step()
    elif change == "set_weights":
        layer.set_weights([w * -0.7 + 0.05 for w in layer.get_weights()])
    elif change == "load_state_dict_assign":
        state = {n: v.detach() * 1.3 - 0.02 for n, v in layer.state_dict().items()}
        layer.load_state_dict(state, assign=True)
    elif change == "data_replaced":
        for p in (k, rk, b):
            p.data = p.data * 0.8 + 0.03
    elif change == "double":
        layer.double()
        x = x.double()
    elif change == "functional_call":
        params = {n: (p.detach() * 0.6 - 0.01).requires_grad_() for n, p in layer.named_parameters()}
    with torch.no_grad():  # a no-grad call right after the change
        layer(x) if params is None else torch.func.functional_call(layer, params, (x,))
    _check(layer, x, params)
    if params is not None:  # the layer's own weights are untouched by the swap
        _check(layer, x)


def test_gru_training_weights_are_one_reordered_copy_each():
    """Eager CPU training: each torch-layout GRU weight is one copy (its gate
    blocks reordered; the kernels handed over transposed), gradients flow to
    the Keras weights, and no flat buffer is made."""
    from kerasish.layers.rnn import fused_rnn

    layer = keras.layers.GRU(4)
    x = _x(2, 3, 5)
    layer(x)
    cell = layer.cell
    weights = fused_rnn.flat_weights("gru", cell, x)
    u = 4

    def order(w):  # Keras z, r, h -> torch r, z, n
        return torch.cat((w[..., u : 2 * u], w[..., :u], w[..., 2 * u :]), dim=-1)

    expected = [order(cell.kernel).t(), order(cell.recurrent_kernel).t(), order(cell.bias[0]), order(cell.bias[1])]
    for w, e in zip(weights, expected):
        assert w.grad_fn is not None
        assert torch.equal(w, e)
    assert weights[0].t().is_contiguous() and weights[1].t().is_contiguous()
    assert all(w.data_ptr() != p.data_ptr() for w, p in zip(weights, (cell.kernel, cell.recurrent_kernel)))
    assert weights[0].untyped_storage().data_ptr() != weights[1].untyped_storage().data_ptr()

