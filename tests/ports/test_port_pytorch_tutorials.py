"""The official PyTorch tutorials (pytorch/tutorials, beginner_source/ and
intermediate_source/) with kerasish layers swapped in, the way a torch user
ports them: the torch program stays (DataLoader, loss, torch optimizer,
`model.train()` / `model.eval()`, `torch.save`, schedulers, autocast), only
`nn.Linear` / `nn.Conv2d` / `nn.RNN` / `nn.GRU` / `nn.Embedding` /
`nn.BatchNorm2d` / `nn.TransformerEncoderLayer` become kerasish layers.

Each program runs twice, shrunk, on small synthetic data: once as written with
`torch.nn` modules, once swapped, from the same weights (torch's copied into
the Keras layouts: a Dense kernel is (in, out) where `nn.Linear.weight` is
(out, in); a Conv2D kernel (kh, kw, in, out); Keras GRU gates are (z, r, h)
where torch's are (r, z, n); a Keras recurrent bias is one vector where torch
has `bias_ih` + `bias_hh`). Losses per step, outputs and trained weights must
agree within explicit float32 tolerances.

What a torch user must change, checked here: Keras layers are batch-first
(`nn.RNN`/`nn.GRU` default to seq-first) and `channels_last` (pass
`data_format="channels_first"` or permute, and reorder the first Dense
kernel's rows after a flatten); LayerNormalization's epsilon is 1e-3 (torch
1e-5) and BatchNormalization's momentum 0.99 / epsilon 1e-3 (torch 0.1 /
1e-5) and its moving variance averages the biased batch variance (torch's
running_var the unbiased one).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

import kerasish as keras

TOL = {"rtol": 2e-4, "atol": 2e-5}


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _close(a, b, rtol=TOL["rtol"], atol=TOL["atol"], msg=""):
    np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol, err_msg=msg)


def _set(variable, value):
    with torch.no_grad():
        variable.assign(_np(value))


def copy_linear(dense, linear):
    """nn.Linear (out, in) weight -> Keras Dense (in, out) kernel."""
    if not dense.built:
        dense.build((None, linear.in_features))
    _set(dense.kernel, linear.weight.T)
    if linear.bias is not None:
        _set(dense.bias, linear.bias)


def copy_conv(conv, torch_conv, in_shape):
    """nn.Conv2d (out, in, kh, kw) -> Keras Conv2D (kh, kw, in, out)."""
    if not conv.built:
        conv.build(in_shape)
    _set(conv.kernel, torch_conv.weight.permute(2, 3, 1, 0))
    _set(conv.bias, torch_conv.bias)


def _gru_gates(t, units):
    """torch GRU gate blocks (r, z, n) along dim 0 -> Keras (z, r, h)."""
    r, z, n = t.split(units, dim=0)
    return torch.cat([z, r, n], dim=0)


def copy_gru(gru, torch_gru, input_dim):
    units = torch_gru.hidden_size
    if not gru.built:
        gru.build((None, None, input_dim))
    cell = gru.cell
    _set(cell.kernel, _gru_gates(torch_gru.weight_ih_l0, units).T)
    _set(cell.recurrent_kernel, _gru_gates(torch_gru.weight_hh_l0, units).T)
    bias = torch.stack([_gru_gates(torch_gru.bias_ih_l0, units), _gru_gates(torch_gru.bias_hh_l0, units)])
    _set(cell.bias, bias)


def copy_mha(mha, torch_mha, dim):
    """nn.MultiheadAttention in_proj (3E, E) / out_proj (E, E) -> Keras
    query/key/value kernels (E, H, D), biases (H, D), output kernel (H, D, E)."""
    heads = torch_mha.num_heads
    head_dim = dim // heads
    wq, wk, wv = torch_mha.in_proj_weight.split(dim, dim=0)
    bq, bk, bv = torch_mha.in_proj_bias.split(dim, dim=0)
    for dense, w, b in ((mha.query_dense, wq, bq), (mha.key_dense, wk, bk), (mha.value_dense, wv, bv)):
        _set(dense.kernel, w.T.reshape(dim, heads, head_dim))
        _set(dense.bias, b.reshape(heads, head_dim))
    _set(mha.output_dense.kernel, torch_mha.out_proj.weight.T.reshape(heads, head_dim, dim))
    _set(mha.output_dense.bias, torch_mha.out_proj.bias)


# ---------------------------------------------------------------- quickstart
# beginner_source/basics/quickstart_tutorial.py, buildmodel_tutorial.py and
# optimization_tutorial.py: FashionMNIST MLP, train / test loops.
class TorchNeuralNetwork(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(8 * 8, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10)
        )

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))


class KerasishNeuralNetwork(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            keras.layers.Dense(hidden), nn.ReLU(), keras.layers.Dense(hidden), nn.ReLU(), keras.layers.Dense(10)
        )

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))


def _fashion_loader(n=96, batch_size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


def _twin_mlps():
    torch.manual_seed(0)
    ref = TorchNeuralNetwork()
    ours = KerasishNeuralNetwork()
    for dense, linear in zip(ours.linear_relu_stack[::2], ref.linear_relu_stack[::2]):
        copy_linear(dense, linear)
    return ref, ours


def _train_loop(dataloader, model, loss_fn, optimizer, clip=None):
    model.train()
    losses = []
    for X, y in dataloader:
        pred = model(X)
        loss = loss_fn(pred, y)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def _test_loop(dataloader, model, loss_fn):
    model.eval()
    test_loss, correct = 0.0, 0
    with torch.no_grad():
        for X, y in dataloader:
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
    return test_loss / len(dataloader), correct / len(dataloader.dataset)


def test_quickstart_train_and_test_loops_match_torch():
    ref, ours = _twin_mlps()
    # the module habits the tutorials show: to(device), print, parameters
    device = "cpu"
    ref, ours = ref.to(device), ours.to(device)
    assert "Dense" in repr(ours) and "units=32" in repr(ours)
    assert [tuple(p.shape) for p in ours.parameters()] == [
        tuple(p.shape[::-1]) if p.dim() == 2 else tuple(p.shape) for p in ref.parameters()
    ]
    names = [n for n, _ in ours.named_parameters()]
    assert names[:2] == ["linear_relu_stack.0.kernel", "linear_relu_stack.0.bias"]
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    loader = _fashion_loader()
    loss_fn = nn.CrossEntropyLoss()
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.5)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.5)
    for epoch in range(2):
        clip = 1.0 if epoch else None  # the gradient clipping habit in the second epoch
        _close(_train_loop(loader, ours, loss_fn, opt_ours, clip), _train_loop(loader, ref, loss_fn, opt_ref, clip))
        _close(_test_loop(loader, ours, loss_fn), _test_loop(loader, ref, loss_fn))
    for dense, linear in zip(ours.linear_relu_stack[::2], ref.linear_relu_stack[::2]):
        _close(dense.kernel, linear.weight.T, msg=dense.name)
        _close(dense.bias, linear.bias, msg=dense.name)


# ---------------------------------------------------------- save and load
# beginner_source/basics/saveloadrun_tutorial.py and
# beginner_source/saving_loading_models.py
def test_save_and_load_state_dict_and_whole_model():
    ref, ours = _twin_mlps()
    x = torch.rand(4, 1, 8, 8)
    expected = ours(x)
    buffer = io.BytesIO()
    torch.save(ours.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert list(state) == [
        f"linear_relu_stack.{i}.{w}" for i in (0, 2, 4) for w in ("kernel", "bias")
    ]
    fresh = KerasishNeuralNetwork()  # never called: the deferred build takes the shapes from the file
    fresh.load_state_dict(state)
    fresh.eval()
    _close(fresh(x), expected, rtol=0, atol=0)

    # the whole-model habit: pickle the module, load with weights_only=False
    buffer = io.BytesIO()
    torch.save(ours, buffer)
    buffer.seek(0)
    whole = torch.load(buffer, weights_only=False)
    whole.eval()
    _close(whole(x), expected, rtol=0, atol=0)
    # and, as for torch's own modules, a weights_only load of a whole model refuses cleanly
    buffer.seek(0)
    with pytest.raises(Exception, match="[Ww]eights only load failed|weights_only"):
        torch.load(buffer, weights_only=True)

    # the general checkpoint recipe: model + optimizer + epoch, resumed
    optimizer = torch.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    ours(x).sum().backward()
    optimizer.step()
    buffer = io.BytesIO()
    torch.save({"epoch": 3, "model_state_dict": ours.state_dict(), "optimizer_state_dict": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    resumed = KerasishNeuralNetwork()
    resumed.load_state_dict(checkpoint["model_state_dict"])
    resumed_opt = torch.optim.SGD(resumed.parameters(), lr=0.1, momentum=0.9)
    resumed_opt.load_state_dict(checkpoint["optimizer_state_dict"])
    for model, opt in ((ours, optimizer), (resumed, resumed_opt)):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    for a, b in zip(resumed.parameters(), ours.parameters()):
        _close(a, b, rtol=0, atol=0)


# ------------------------------------------------- learning with examples
# beginner_source/examples_nn/polynomial_nn.py, polynomial_optim.py,
# polynomial_module.py: y = sin(x) by a cubic, nn.Linear(3, 1) -> Dense(1).
def test_polynomial_nn_and_optim():
    x = torch.linspace(-np.pi, np.pi, 200)
    y = torch.sin(x)
    xx = x.unsqueeze(-1).pow(torch.tensor([1, 2, 3]))
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1))
    ours = nn.Sequential(keras.layers.Dense(1), nn.Flatten(0, 1))
    copy_linear(ours[0], ref[0])
    loss_fn = nn.MSELoss(reduction="sum")
    # polynomial_nn: manual SGD over parameters() under no_grad
    for _ in range(50):
        losses = []
        for model in (ref, ours):
            loss = loss_fn(model(xx), y)
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for param in model.parameters():
                    param -= 1e-6 * param.grad
            losses.append(loss.item())
        _close(losses[1], losses[0])
    # polynomial_optim: RMSprop
    opts = [torch.optim.RMSprop(m.parameters(), lr=1e-3) for m in (ref, ours)]
    for _ in range(50):
        losses = []
        for model, opt in zip((ref, ours), opts):
            loss = loss_fn(model(xx), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        _close(losses[1], losses[0], rtol=1e-3)
    _close(ours[0].kernel, ref[0].weight.T, rtol=1e-3, atol=1e-4)
