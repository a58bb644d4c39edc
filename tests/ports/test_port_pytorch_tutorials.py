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
    assert list(state) == [f"linear_relu_stack.{i}.{w}" for i in (0, 2, 4) for w in ("kernel", "bias")]
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
    torch.save(
        {"epoch": 3, "model_state_dict": ours.state_dict(), "optimizer_state_dict": optimizer.state_dict()}, buffer
    )
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


def test_warmstart_from_a_different_model_strict_false():
    """saving_loading_models.py, "Warmstarting Model Using Parameters from a
    Different Model": `load_state_dict(strict=False)` into a never-called
    model with an extra layer; the loaded layers take the file's weights, the
    extra one builds on its first call."""
    _ref, source = _twin_mlps()
    x = torch.rand(4, 1, 8, 8)
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    target = KerasishNeuralNetwork()
    target.linear_relu_stack.append(nn.ReLU())
    target.linear_relu_stack.append(keras.layers.Dense(3))
    result = target.load_state_dict(torch.load(buffer, weights_only=True), strict=False)
    assert result.missing_keys == ["linear_relu_stack.6.kernel", "linear_relu_stack.6.bias"]
    assert result.unexpected_keys == []
    assert target(x).shape == (4, 3)
    with torch.no_grad():
        _close(target.linear_relu_stack[:5](target.flatten(x)), source(x), rtol=0, atol=0)


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


# ---------------------------------------------------------------- CIFAR-10
# beginner_source/blitz/cifar10_tutorial.py: LeNet-style convnet, SGD momentum.
class TorchNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 24)
        self.fc2 = nn.Linear(24, 16)
        self.fc3 = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class KerasishNet(nn.Module):
    """channels_first keeps the torch program as is; channels_last (Keras's
    default) needs NHWC inputs and a flatten in (h, w, c) order."""

    def __init__(self, data_format):
        super().__init__()
        self.data_format = data_format
        self.conv1 = keras.layers.Conv2D(6, 5, data_format=data_format)
        self.pool = keras.layers.MaxPooling2D(2, 2, data_format=data_format)
        self.conv2 = keras.layers.Conv2D(16, 5, data_format=data_format)
        self.fc1 = keras.layers.Dense(24)
        self.fc2 = keras.layers.Dense(16)
        self.fc3 = keras.layers.Dense(10)

    def forward(self, x):
        if self.data_format == "channels_last":
            x = x.permute(0, 2, 3, 1)
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_cifar10_convnet(data_format):
    torch.manual_seed(0)
    ref = TorchNet()
    ours = KerasishNet(data_format)
    shape = (None, 3, 32, 32) if data_format == "channels_first" else (None, 32, 32, 3)
    copy_conv(ours.conv1, ref.conv1, shape)
    copy_conv(ours.conv2, ref.conv2, (None, 6, 14, 14) if data_format == "channels_first" else (None, 14, 14, 6))
    copy_linear(ours.fc1, ref.fc1)
    if data_format == "channels_last":
        # torch flattens (c, h, w), an NHWC tensor flattens (h, w, c): reorder fc1's input rows
        rows = torch.arange(16 * 5 * 5).reshape(16, 5, 5).permute(1, 2, 0).reshape(-1)
        _set(ours.fc1.kernel, ref.fc1.weight.T[rows])
    copy_linear(ours.fc2, ref.fc2)
    copy_linear(ours.fc3, ref.fc3)
    g = torch.Generator().manual_seed(1)
    inputs, labels = torch.randn(12, 3, 32, 32, generator=g), torch.randint(0, 10, (12,), generator=g)
    criterion = nn.CrossEntropyLoss()
    opts = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in (ref, ours)]
    for step in range(3):
        losses = []
        for model, optimizer in zip((ref, ours), opts):
            optimizer.zero_grad()
            loss = criterion(model(inputs[step * 4 : step * 4 + 4]), labels[step * 4 : step * 4 + 4])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        _close(losses[1], losses[0], msg=f"step {step}")
    with torch.no_grad():
        _close(ours(inputs), ref(inputs), rtol=1e-3, atol=1e-4)
    _close(ours.conv1.kernel, ref.conv1.weight.permute(2, 3, 1, 0), rtol=1e-3, atol=1e-5)


# ------------------------------------------------------- transfer learning
# beginner_source/transfer_learning_tutorial.py, "ConvNet as fixed feature
# extractor": a small local backbone frozen with requires_grad = False, a new
# classifier head, SGD momentum + lr_scheduler.StepLR, train() / eval() phases.
def test_transfer_learning_frozen_backbone_steplr():
    torch.manual_seed(0)
    t_conv, t_bn, t_fc = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, eps=1e-3, momentum=0.01), nn.Linear(8, 2)
    ref = nn.Sequential(t_conv, t_bn, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), t_fc)
    k_conv = keras.layers.Conv2D(8, 3, data_format="channels_first")
    k_bn = keras.layers.BatchNormalization(axis=1)  # Keras's momentum 0.99 == torch's 0.01, epsilon 1e-3
    k_fc = keras.layers.Dense(2)
    ours = nn.Sequential(k_conv, k_bn, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), k_fc)
    copy_conv(k_conv, t_conv, (None, 3, 10, 10))
    k_bn.build((None, 8, 8, 8))
    copy_linear(k_fc, t_fc)
    for model, head in ((ref, t_fc), (ours, k_fc)):
        for param in model.parameters():
            param.requires_grad = False
        for param in head.parameters():
            param.requires_grad = True
    assert [p.requires_grad for p in ours.parameters()] == [p.requires_grad for p in ref.parameters()]
    g = torch.Generator().manual_seed(2)
    data = torch.randn(5, 6, 3, 10, 10, generator=g)
    labels = torch.randint(0, 2, (5, 6), generator=g)
    criterion = nn.CrossEntropyLoss()
    runs = []
    for model, head in ((ref, t_fc), (ours, k_fc)):
        optimizer = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.1)
        train_losses, val_losses, lrs = [], [], []
        for _epoch in range(4):
            model.train()
            for x, y in zip(data[:4], labels[:4]):
                optimizer.zero_grad()
                with torch.set_grad_enabled(True):
                    loss = criterion(model(x), y)
                    loss.backward()
                    optimizer.step()
                train_losses.append(loss.item())
            scheduler.step()
            lrs.append(scheduler.get_last_lr()[0])
            model.eval()
            with torch.no_grad():
                val_losses.append(criterion(model(data[4]), labels[4]).item())
        runs.append((train_losses, val_losses, lrs))
    _close(runs[1][0], runs[0][0], rtol=1e-4, atol=1e-5)
    _close(runs[1][1], runs[0][1], rtol=1e-4, atol=1e-5)
    assert runs[1][2] == runs[0][2]
    # the frozen backbone did not move; BatchNormalization's moving mean follows
    # torch's running_mean (the mode comes from model.train() / model.eval())
    _close(k_conv.kernel, t_conv.weight.permute(2, 3, 1, 0), rtol=0, atol=0)
    _close(k_bn.moving_mean, t_bn.running_mean, rtol=1e-4, atol=1e-6)
    # the documented difference: Keras averages the biased batch variance
    moving_var = torch.ones(8)
    with torch.no_grad():
        for _epoch in range(4):
            for x in data[:4]:
                moving_var = 0.99 * moving_var + 0.01 * t_conv(x).var(dim=(0, 2, 3), unbiased=False)
    _close(k_bn.moving_variance, moving_var, rtol=1e-4, atol=1e-6)
    _close(k_fc.kernel, t_fc.weight.T, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------ char-RNN classifier
# intermediate_source/char_rnn_classification_tutorial.py: one-hot letters,
# nn.RNN -> h2o Linear -> LogSoftmax, NLLLoss summed over a batch of names of
# different lengths, clip_grad_norm_(3), SGD.  nn.RNN reads (seq, batch,
# feature); Keras recurrent layers read (batch, seq, feature).
class TorchCharRNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size, cell="rnn"):
        super().__init__()
        self.rnn = (nn.RNN if cell == "rnn" else nn.GRU)(input_size, hidden_size)
        self.h2o = nn.Linear(hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, line_tensor):
        _rnn_out, hidden = self.rnn(line_tensor)
        return self.softmax(self.h2o(hidden[0]))


class KerasishCharRNN(nn.Module):
    def __init__(self, hidden_size, output_size, cell="rnn"):
        super().__init__()
        self.rnn = (keras.layers.SimpleRNN if cell == "rnn" else keras.layers.GRU)(hidden_size)
        self.h2o = keras.layers.Dense(output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, line_tensor):
        hidden = self.rnn(line_tensor.transpose(0, 1))  # the last step's output is the hidden state
        return self.softmax(self.h2o(hidden))


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_char_rnn_name_classifier(cell):
    n_letters, n_hidden, n_categories = 12, 16, 4
    torch.manual_seed(0)
    ref = TorchCharRNN(n_letters, n_hidden, n_categories, cell)
    ours = KerasishCharRNN(n_hidden, n_categories, cell)
    if cell == "rnn":
        # Keras's SimpleRNN has one bias where nn.RNN has bias_ih + bias_hh: torch's
        # sum moves at twice the SGD rate (both get the same gradient) and counts
        # twice in clip_grad_norm_. The equivalent torch model keeps bias_hh at 0.
        with torch.no_grad():
            ref.rnn.bias_hh_l0.zero_()
        ref.rnn.bias_hh_l0.requires_grad_(False)
        ours.rnn.build((None, None, n_letters))
        _set(ours.rnn.cell.kernel, ref.rnn.weight_ih_l0.T)
        _set(ours.rnn.cell.recurrent_kernel, ref.rnn.weight_hh_l0.T)
        _set(ours.rnn.cell.bias, ref.rnn.bias_ih_l0)
    else:
        copy_gru(ours.rnn, ref.rnn, n_letters)
    copy_linear(ours.h2o, ref.h2o)
    g = torch.Generator().manual_seed(3)
    names = []
    for length in (3, 7, 5, 4, 6, 2):
        letters = torch.randint(0, n_letters, (length,), generator=g)
        names.append(torch.eye(n_letters)[letters].unsqueeze(1))  # (seq, 1, n_letters), as lineToTensor
    labels = torch.randint(0, n_categories, (len(names),), generator=g)
    criterion = nn.NLLLoss()
    opts = [torch.optim.SGD(m.parameters(), lr=0.15) for m in (ref, ours)]
    for _epoch in range(3):
        for start in (0, 3):
            losses = []
            for model, optimizer in zip((ref, ours), opts):
                model.train()
                batch_loss = 0
                for i in range(start, start + 3):
                    output = model(names[i])
                    batch_loss = batch_loss + criterion(output, labels[i : i + 1])
                batch_loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 3)
                optimizer.step()
                optimizer.zero_grad()
                losses.append(batch_loss.item() / 3)
            _close(losses[1], losses[0])
    ours.eval()
    ref.eval()
    with torch.no_grad():
        for name in names:
            _close(ours(name), ref(name), rtol=1e-4, atol=1e-5)


# ---------------------------------------------- seq2seq with attention
# intermediate_source/seq2seq_translation_tutorial.py: EncoderRNN
# (Embedding + GRU, batch_first), BahdanauAttention, AttnDecoderRNN with
# teacher forcing, NLLLoss over log_softmax outputs, Adam.
SOS_TOKEN, MAX_LENGTH = 0, 5


class BahdanauAttention(nn.Module):
    def __init__(self, hidden_size, linear):
        super().__init__()
        self.Wa, self.Ua, self.Va = (
            linear(hidden_size, hidden_size),
            linear(hidden_size, hidden_size),
            linear(hidden_size, 1),
        )

    def forward(self, query, keys):
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys)))
        scores = scores.squeeze(2).unsqueeze(1)
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights, keys), weights


class Seq2Seq(nn.Module):
    """Encoder and attention decoder; `lib` picks torch.nn or kerasish layers.
    The only code a torch user changes besides the constructors is the GRU call:
    Keras returns (sequences, state) with a (batch, units) state, torch a
    (1, batch, hidden) one."""

    def __init__(self, lib, input_size, output_size, hidden_size):
        super().__init__()
        self.lib = lib
        if lib == "torch":
            linear = lambda i, o: nn.Linear(i, o)  # noqa: E731
            self.enc_embedding = nn.Embedding(input_size, hidden_size)
            self.enc_gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
            self.dec_embedding = nn.Embedding(output_size, hidden_size)
            self.dec_gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
        else:
            linear = lambda i, o: keras.layers.Dense(o)  # noqa: E731
            self.enc_embedding = keras.layers.Embedding(input_size, hidden_size)
            self.enc_gru = keras.layers.GRU(hidden_size, return_sequences=True, return_state=True)
            self.dec_embedding = keras.layers.Embedding(output_size, hidden_size)
            self.dec_gru = keras.layers.GRU(hidden_size, return_sequences=True, return_state=True)
        self.attention = BahdanauAttention(hidden_size, linear)
        self.out = linear(hidden_size, output_size)
        self.dropout = nn.Dropout(0.0)

    def gru(self, layer, x, hidden=None):
        if self.lib == "torch":
            return layer(x, hidden)
        output, state = layer(x, initial_state=None if hidden is None else [hidden[0]])
        return output, state.unsqueeze(0)

    def forward(self, input_tensor, target_tensor=None):
        encoder_outputs, hidden = self.gru(self.enc_gru, self.dropout(self.enc_embedding(input_tensor)))
        batch_size = input_tensor.size(0)
        decoder_input = torch.full((batch_size, 1), SOS_TOKEN, dtype=torch.long)
        decoder_outputs = []
        for i in range(MAX_LENGTH):
            embedded = self.dropout(self.dec_embedding(decoder_input))
            context, _attn = self.attention(hidden.permute(1, 0, 2), encoder_outputs)
            output, hidden = self.gru(self.dec_gru, torch.cat((embedded, context), dim=2), hidden)
            output = self.out(output)
            decoder_outputs.append(output)
            if target_tensor is not None:
                decoder_input = target_tensor[:, i].unsqueeze(1)  # teacher forcing
            else:
                decoder_input = output.topk(1)[1].squeeze(-1).detach()
        return torch.log_softmax(torch.cat(decoder_outputs, dim=1), dim=-1)


def test_seq2seq_translation_with_attention():
    n_in, n_out, hidden = 11, 9, 8
    torch.manual_seed(0)
    ref = Seq2Seq("torch", n_in, n_out, hidden)
    ours = Seq2Seq("kerasish", n_in, n_out, hidden)
    ours.enc_embedding.build((None, None))
    ours.dec_embedding.build((None, None))
    _set(ours.enc_embedding.embeddings, ref.enc_embedding.weight)
    _set(ours.dec_embedding.embeddings, ref.dec_embedding.weight)
    copy_gru(ours.enc_gru, ref.enc_gru, hidden)
    copy_gru(ours.dec_gru, ref.dec_gru, 2 * hidden)
    for name in ("Wa", "Ua", "Va"):
        copy_linear(getattr(ours.attention, name), getattr(ref.attention, name))
    copy_linear(ours.out, ref.out)
    assert len(list(ours.parameters())) == len(list(ref.parameters())) - 2  # one GRU bias each, not two
    g = torch.Generator().manual_seed(4)
    src = torch.randint(1, n_in, (6, MAX_LENGTH), generator=g)
    tgt = torch.randint(1, n_out, (6, MAX_LENGTH), generator=g)
    criterion = nn.NLLLoss()
    opts = [torch.optim.Adam(m.parameters(), lr=0.01) for m in (ref, ours)]
    for _epoch in range(4):
        losses = []
        for model, optimizer in zip((ref, ours), opts):
            model.train()
            optimizer.zero_grad()
            decoder_outputs = model(src, tgt)
            loss = criterion(decoder_outputs.view(-1, decoder_outputs.size(-1)), tgt.view(-1))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        _close(losses[1], losses[0], rtol=1e-4, atol=1e-5)
    for model in (ref, ours):
        model.eval()
    with torch.no_grad():  # greedy decoding, no target
        _close(ours(src), ref(src), rtol=1e-3, atol=1e-4)
    _close(ours.dec_embedding.embeddings, ref.dec_embedding.weight, rtol=1e-3, atol=1e-5)


# ------------------------------------------------ transformer language model
# beginner_source/transformer_tutorial.py: Embedding * sqrt(d_model),
# sinusoidal PositionalEncoding, nn.TransformerEncoder (post-norm layers,
# ReLU feed-forward, causal mask), a Linear decoder; CrossEntropyLoss, SGD,
# clip_grad_norm_(0.5), StepLR.  The kerasish encoder layer is written from
# MultiHeadAttention + LayerNormalization(epsilon=1e-5: Keras's default is
# 1e-3) + Dense; the tutorial's (seq, batch) tensors become (batch, seq).
def _positional_encoding(max_len, d_model):
    position = torch.arange(max_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2) * (-np.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


class KerasishEncoderLayer(nn.Module):
    def __init__(self, d_model, nhead, d_hid):
        super().__init__()
        self.self_attn = keras.layers.MultiHeadAttention(nhead, d_model // nhead)
        self.linear1 = keras.layers.Dense(d_hid, activation="relu")
        self.linear2 = keras.layers.Dense(d_model)
        self.norm1 = keras.layers.LayerNormalization(epsilon=1e-5)
        self.norm2 = keras.layers.LayerNormalization(epsilon=1e-5)

    def forward(self, x):
        x = self.norm1(x + self.self_attn(x, x, use_causal_mask=True))
        return self.norm2(x + self.linear2(self.linear1(x)))


class TransformerModel(nn.Module):
    def __init__(self, lib, ntoken, d_model, nhead, d_hid, nlayers):
        super().__init__()
        self.lib, self.d_model = lib, d_model
        self.register_buffer("pe", _positional_encoding(64, d_model))
        if lib == "torch":
            layer = nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout=0.0, batch_first=True)
            self.transformer_encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
            self.embedding = nn.Embedding(ntoken, d_model)
            self.linear = nn.Linear(d_model, ntoken)
        else:
            self.transformer_encoder = nn.Sequential(
                *[KerasishEncoderLayer(d_model, nhead, d_hid) for _ in range(nlayers)]
            )
            self.embedding = keras.layers.Embedding(ntoken, d_model)
            self.linear = keras.layers.Dense(ntoken)

    def forward(self, src):
        src = self.embedding(src) * np.sqrt(self.d_model) + self.pe[: src.size(1)]
        if self.lib == "torch":
            mask = nn.Transformer.generate_square_subsequent_mask(src.size(1))
            output = self.transformer_encoder(src, mask, is_causal=True)
        else:
            output = self.transformer_encoder(src)
        return self.linear(output)


def test_transformer_language_model():
    ntoken, d_model, nhead, d_hid, nlayers = 13, 16, 2, 24, 2
    torch.manual_seed(0)
    ref = TransformerModel("torch", ntoken, d_model, nhead, d_hid, nlayers)
    ours = TransformerModel("kerasish", ntoken, d_model, nhead, d_hid, nlayers)
    ours.embedding.build((None, None))
    _set(ours.embedding.embeddings, ref.embedding.weight)
    copy_linear(ours.linear, ref.linear)
    for k_layer, t_layer in zip(ours.transformer_encoder, ref.transformer_encoder.layers):
        probe = torch.zeros(1, 3, d_model)
        k_layer.self_attn(probe, probe)
        copy_mha(k_layer.self_attn, t_layer.self_attn, d_model)
        copy_linear(k_layer.linear1, t_layer.linear1)
        copy_linear(k_layer.linear2, t_layer.linear2)
        for k_norm, t_norm in ((k_layer.norm1, t_layer.norm1), (k_layer.norm2, t_layer.norm2)):
            k_norm.build((None, None, d_model))
            _set(k_norm.gamma, t_norm.weight)
            _set(k_norm.beta, t_norm.bias)
    g = torch.Generator().manual_seed(5)
    data = torch.randint(0, ntoken, (4, 8, 7), generator=g)  # 4 batches of (batch 8, bptt 6 + 1)
    criterion = nn.CrossEntropyLoss()
    runs = []
    for model in (ref, ours):
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1.0, gamma=0.95)
        losses = []
        for _epoch in range(2):
            model.train()
            for batch in data:
                inputs, targets = batch[:, :-1], batch[:, 1:]
                output = model(inputs)
                loss = criterion(output.reshape(-1, ntoken), targets.reshape(-1))
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                optimizer.step()
                losses.append(loss.item())
            scheduler.step()
        model.eval()
        with torch.no_grad():
            runs.append((losses, model(data[0, :, :-1])))
    _close(runs[1][0], runs[0][0], rtol=1e-4, atol=1e-5)
    _close(runs[1][1], runs[0][1], rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------ AMP recipe
# recipes_source/recipes/amp_recipe.py: a Linear/ReLU stack under
# torch.autocast with GradScaler (scale, unscale_, clip, step, update), and the
# scaler's state saved with the checkpoint.  On CPU, with float16 autocast.
def test_amp_recipe_autocast_and_gradscaler():
    in_size, out_size, num_layers = 16, 8, 3
    torch.manual_seed(0)
    t_layers, k_layers = [], []
    for _ in range(num_layers - 1):
        t_layers += [nn.Linear(in_size, in_size), nn.ReLU()]
        k_layers += [keras.layers.Dense(in_size), nn.ReLU()]
    t_layers.append(nn.Linear(in_size, out_size))
    k_layers.append(keras.layers.Dense(out_size))
    ref, ours = nn.Sequential(*t_layers), nn.Sequential(*k_layers)
    for k, t in zip(ours[::2], ref[::2]):
        copy_linear(k, t)
    g = torch.Generator().manual_seed(6)
    data = [torch.randn(8, in_size, generator=g) for _ in range(4)]
    targets = [torch.randn(8, out_size, generator=g) for _ in range(4)]
    loss_fn = nn.MSELoss()
    runs = []
    for net in (ref, ours):
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        losses, dtypes = [], []
        for _epoch in range(2):
            for x, y in zip(data, targets):
                with torch.autocast(device_type="cpu", dtype=torch.float16):
                    output = net(x)
                    dtypes.append(output.dtype)
                    loss = loss_fn(output, y)
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=0.1)
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                losses.append(loss.item())
        checkpoint = {"model": net.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict()}
        runs.append((losses, dtypes, checkpoint))
    assert runs[1][1] == runs[0][1] == [torch.float16] * 8  # autocast reaches the Dense matmuls
    _close(runs[1][0], runs[0][0], rtol=2e-3, atol=1e-3)  # float16 matmuls
    assert runs[1][2]["scaler"] == runs[0][2]["scaler"]
    for k, t in zip(ours[::2], ref[::2]):
        assert k.kernel.dtype == torch.float32  # the weights stay float32
        _close(k.kernel, t.weight.T, rtol=1e-2, atol=1e-3)
    buffer = io.BytesIO()
    torch.save(runs[1][2], buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=True)
    fresh_layers = [layer for _ in range(num_layers - 1) for layer in (keras.layers.Dense(in_size), nn.ReLU())]
    fresh = nn.Sequential(*fresh_layers, keras.layers.Dense(out_size))  # never called before the load
    fresh.load_state_dict(restored["model"])
    with torch.no_grad():
        _close(fresh(data[0]), ours(data[0]), rtol=0, atol=0)


# ------------------------------------------------- What is torch.nn really?
# beginner_source/nn_tutorial.py, its last refactor: nn.Sequential with a
# Lambda preprocess, three stride-2 convolutions, AdaptiveAvgPool2d, the
# fit() / loss_batch() helpers over DataLoaders, model.train() / model.eval().
# A Dropout is added to check that the torch mode switches reach the kerasish
# layer.  Conv2d(padding=1, stride=2) is ZeroPadding2D(1) + Conv2D("valid"):
# Keras's padding="same" pads (0, 1) there, TensorFlow's rule, not torch's (1, 1).
class Lambda(nn.Module):
    def __init__(self, func):
        super().__init__()
        self.func = func

    def forward(self, x):
        return self.func(x)


def _nn_really_models(dropout):
    torch.manual_seed(0)
    t_convs = [
        nn.Conv2d(1, 8, 3, stride=2, padding=1),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.Conv2d(8, 10, 3, stride=2, padding=1),
    ]
    ref = nn.Sequential(
        Lambda(lambda x: x.view(-1, 1, 12, 12)),
        t_convs[0],
        nn.ReLU(),
        t_convs[1],
        nn.ReLU(),
        nn.Dropout(dropout),
        t_convs[2],
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        Lambda(lambda x: x.view(x.size(0), -1)),
    )
    k_convs = [keras.layers.Conv2D(f, 3, strides=2, data_format="channels_first") for f in (8, 8, 10)]
    pads = [keras.layers.ZeroPadding2D(1, data_format="channels_first") for _ in range(3)]
    ours = nn.Sequential(
        Lambda(lambda x: x.view(-1, 1, 12, 12)),
        pads[0],
        k_convs[0],
        nn.ReLU(),
        pads[1],
        k_convs[1],
        nn.ReLU(),
        keras.layers.Dropout(dropout),
        pads[2],
        k_convs[2],
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        Lambda(lambda x: x.view(x.size(0), -1)),
    )
    for k, t, size in zip(k_convs, t_convs, (14, 8, 5)):
        copy_conv(k, t, (None, t.in_channels, size, size))
    return ref, ours, t_convs, k_convs


def _loss_batch(model, loss_func, xb, yb, opt=None):
    loss = loss_func(model(xb), yb)
    if opt is not None:
        loss.backward()
        opt.step()
        opt.zero_grad()
    return loss.item(), len(xb)


def _fit(epochs, model, loss_func, opt, train_dl, valid_dl):
    history = []
    for _epoch in range(epochs):
        model.train()
        train = [_loss_batch(model, loss_func, xb, yb, opt)[0] for xb, yb in train_dl]
        model.eval()
        with torch.no_grad():
            losses, nums = zip(*[_loss_batch(model, loss_func, xb, yb) for xb, yb in valid_dl])
        history.append((train, np.sum(np.multiply(losses, nums)) / np.sum(nums)))
    return history


def test_nn_really_sequential_fit_and_modes():
    g = torch.Generator().manual_seed(7)
    x_train, y_train = torch.rand(64, 144, generator=g), torch.randint(0, 10, (64,), generator=g)
    x_valid, y_valid = torch.rand(32, 144, generator=g), torch.randint(0, 10, (32,), generator=g)
    train_dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=16)
    valid_dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_valid, y_valid), batch_size=32)
    ref, ours, _t_convs, _k_convs = _nn_really_models(dropout=0.0)
    histories = []
    for model in (ref, ours):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        histories.append(_fit(2, model, nn.functional.cross_entropy, opt, train_dl, valid_dl))
    for (k_train, k_valid), (t_train, t_valid) in zip(histories[1], histories[0]):
        _close(k_train, t_train, rtol=1e-4, atol=1e-5)
        _close(k_valid, t_valid, rtol=1e-4, atol=1e-5)

    # the mode switch reaches the kerasish Dropout inside nn.Sequential
    ref, ours, _t_convs, _k_convs = _nn_really_models(dropout=0.5)
    xb = x_valid[:8]
    ours.train()
    assert ours[7].training
    with torch.no_grad():
        a, b = ours(xb), ours(xb)
    assert not torch.allclose(a, b)  # dropout draws new masks in train mode
    ours.eval()
    ref.eval()
    with torch.no_grad():
        _close(ours(xb), ref(xb), rtol=1e-4, atol=1e-6)
        _close(ours(xb), ours(xb), rtol=0, atol=0)


def test_conv_padding_same_is_not_torch_padding_one_at_stride_two():
    """The documented difference the walk-through hits: padding="same" with
    stride 2 on an even size pads only after (TensorFlow's rule)."""
    torch.manual_seed(0)
    t_conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
    same = keras.layers.Conv2D(4, 3, strides=2, padding="same", data_format="channels_first")
    copy_conv(same, t_conv, (None, 1, 12, 12))
    x = torch.rand(2, 1, 12, 12)
    with torch.no_grad():
        expected = t_conv(x)
        got = same(x)
        assert got.shape == expected.shape
        assert not torch.allclose(got, expected, atol=1e-3)
        # "same" here is torch's padding of (0, 1) rows and columns
        _close(got, nn.functional.conv2d(nn.functional.pad(x, (0, 1, 0, 1)), t_conv.weight, t_conv.bias, stride=2))


# ------------------------------------- polynomial_module.py / dynamic_net.py
# The custom-module examples, written as a Keras layer a torch user would write:
# scalar weights from add_weight(shape=()), trained by torch SGD over
# parameters(); dynamic_net reuses the fourth weight 0-2 extra times per call.
class KerasishPolynomial3(keras.layers.Layer):
    def __init__(self, dynamic=False, **kwargs):
        super().__init__(**kwargs)
        self.dynamic = dynamic
        self.a, self.b, self.c, self.d = (self.add_weight(shape=(), initializer="zeros", name=n) for n in "abcd")
        self.e = self.add_weight(shape=(), initializer="zeros", name="e") if dynamic else None

    def call(self, x, extra=0):
        y = self.a + self.b * x + self.c * x**2 + self.d * x**3
        for exp in range(4, 4 + extra):
            y = y + self.e * x**exp
        return y


class TorchPolynomial3(nn.Module):
    def __init__(self, dynamic=False):
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Parameter(torch.randn(())) for _ in range(4))
        self.e = nn.Parameter(torch.randn(())) if dynamic else None

    def forward(self, x, extra=0):
        y = self.a + self.b * x + self.c * x**2 + self.d * x**3
        for exp in range(4, 4 + extra):
            y = y + self.e * x**exp
        return y


@pytest.mark.parametrize("dynamic", [False, True])
def test_polynomial_custom_module_and_dynamic_net(dynamic):
    x = torch.linspace(-np.pi, np.pi, 100)
    y = torch.sin(x)
    torch.manual_seed(0)
    ref = TorchPolynomial3(dynamic)
    ours = KerasishPolynomial3(dynamic)
    for name in "abcde"[: 5 if dynamic else 4]:
        _set(getattr(ours, name), getattr(ref, name))
    assert [n for n, _ in ours.named_parameters()] == list("abcde"[: 5 if dynamic else 4])
    criterion = nn.MSELoss(reduction="sum")
    lr, momentum = (1e-8, 0.9) if dynamic else (1e-6, 0.0)
    opts = [torch.optim.SGD(m.parameters(), lr=lr, momentum=momentum) for m in (ref, ours)]
    extras = np.random.default_rng(0).integers(0, 3, 40)  # dynamic_net's random.randint(4, 5) - 3
    for t in range(40):
        losses = []
        for model, optimizer in zip((ref, ours), opts):
            loss = criterion(model(x, int(extras[t]) if dynamic else 0), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        _close(losses[1], losses[0], rtol=1e-4, atol=1e-4, msg=f"step {t}")
    _close([getattr(ours, n).item() for n in "abcd"], [getattr(ref, n).item() for n in "abcd"], rtol=1e-4, atol=1e-6)


# ---------------------------------------------- profiler and TensorBoard recipes
# recipes_source/recipes/profiler_recipe.py (record_function around inference,
# key_averages grouped by input shape) and intermediate_source/tensorboard_tutorial.py
# (add_graph, add_scalar of the running loss) on the kerasish CIFAR net.
def test_profiler_and_tensorboard_recipes(tmp_path):
    from torch.profiler import ProfilerActivity, profile, record_function

    torch.manual_seed(0)
    net = KerasishNet("channels_first")
    inputs = torch.randn(2, 3, 32, 32)
    net.eval()
    with torch.no_grad():
        expected = net(inputs)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True, profile_memory=True) as prof:
            with record_function("model_inference"):
                got = net(inputs)
    _close(got, expected, rtol=0, atol=0)
    events = {e.key for e in prof.key_averages(group_by_input_shape=True)}
    assert "model_inference" in events
    assert "aten::conv2d" in events  # the convolutions are torch's own kernels
    assert "model_inference" in prof.key_averages().table(sort_by="cpu_time_total", row_limit=20)
    prof.export_chrome_trace(str(tmp_path / "trace.json"))
    assert (tmp_path / "trace.json").stat().st_size > 0

    pytest.importorskip("tensorboard", reason="tensorboard (a test extra) writes and reads the event files")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "runs"))
    writer.add_graph(net, inputs)
    writer.add_scalar("training loss", float(expected.square().mean()), 0)
    writer.close()
    assert list((tmp_path / "runs").glob("events.out.tfevents.*"))
    net.eval()
    with torch.no_grad():
        _close(net(inputs), expected, rtol=0, atol=0)  # tracing for the graph left the model as it was


# `SummaryWriter.add_graph` is a `torch.jit.trace`, whose sanity check traces
# again under `no_grad`: a layer whose graph followed the grad mode (the conv
# bias added after the op when it needs a gradient, the RNN kernel's train
# flag) or recorded a first-call cache (BatchNormalization's update constants)
# failed it with "Graphs differed across invocations", so the TensorBoard
# tutorial's convnet could not be drawn.
_TRACED = {
    "Conv2D": (lambda: keras.layers.Conv2D(4, 3), (2, 8, 8, 3)),
    "Conv1D": (lambda: keras.layers.Conv1D(4, 3, data_format="channels_first"), (2, 3, 8)),
    "Conv2DTranspose": (lambda: keras.layers.Conv2DTranspose(4, 3), (2, 6, 6, 3)),
    "SeparableConv2D": (lambda: keras.layers.SeparableConv2D(4, 3), (2, 8, 8, 3)),
    "DepthwiseConv2D": (lambda: keras.layers.DepthwiseConv2D(3), (2, 8, 8, 3)),
    "LSTM": (lambda: keras.layers.LSTM(4, return_sequences=True), (2, 5, 3)),
    "GRU": (lambda: keras.layers.GRU(4), (2, 5, 3)),
    "SimpleRNN": (lambda: keras.layers.SimpleRNN(4), (2, 5, 3)),
    "BatchNormalization": (lambda: keras.layers.BatchNormalization(), (6, 3)),
}


@pytest.mark.parametrize("name", sorted(_TRACED))
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_jit_trace_sanity_check_passes(name, mode):
    make, shape = _TRACED[name]
    torch.manual_seed(0)
    layer = make()
    x = torch.randn(*shape)
    layer(x)
    getattr(layer, mode)()
    traced = torch.jit.trace(layer, x)  # check_trace=True, torch's default
    layer.eval()
    with torch.no_grad():
        if mode == "eval":
            _close(traced(x), layer(x), rtol=1e-5, atol=1e-6)


def test_tensorboard_add_graph_char_rnn(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard (a test extra) writes the event files")
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    model = KerasishCharRNN(8, 3, "gru")
    line = torch.eye(5)[torch.tensor([1, 3, 2])].unsqueeze(1)
    model.train()
    model(line)
    writer = SummaryWriter(str(tmp_path))
    writer.add_graph(model, line)
    writer.close()
    assert list(tmp_path.glob("events.out.tfevents.*"))


@pytest.mark.parametrize("cell", [keras.layers.LSTM, keras.layers.SimpleRNN])
def test_rnn_first_called_under_inference_mode_then_trained(cell):
    """The tutorials' sanity check (a first prediction under
    `torch.inference_mode()`) before training: the LSTM / SimpleRNN zero
    `b_hh` kept on the cell was an inference tensor, and the first training
    step raised "Inference tensors cannot be saved for backward"."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)
    layer, twin = cell(4), cell(4)
    layer.build(x.shape)
    twin.build(x.shape)
    twin.set_weights(layer.get_weights())
    with torch.inference_mode():
        layer(x)
    for model in (layer, twin):
        model.train()
        model(x).square().sum().backward()
    for a, b in zip(layer.parameters(), twin.parameters()):
        _close(a.grad, b.grad, rtol=0, atol=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.layers.LSTM(4, return_sequences=True),
        lambda: keras.layers.GRU(4),
        lambda: keras.layers.SimpleRNN(4),
        lambda: keras.layers.Bidirectional(keras.layers.GRU(4)),
    ],
    ids=["LSTM", "GRU", "SimpleRNN", "Bidirectional"],
)
def test_traced_rnn_runs_other_batch_sizes(make):
    """A traced RNN run on another batch size (and length), as a traced
    nn.LSTM / nn.GRU is: the trace baked the example's batch into the zero
    initial states, so a smaller batch silently gave the example's batch of
    outputs (GRU / SimpleRNN: 2 rows for 1 input) and a larger one made
    torch's CPU kernel corrupt memory (the process aborted)."""
    torch.manual_seed(0)
    layer = make()
    example = torch.randn(2, 5, 3)
    layer(example)
    layer.eval()
    traced = torch.jit.trace(layer, example)
    for batch, steps in ((1, 4), (3, 7)):
        x = torch.randn(batch, steps, 3)
        with torch.no_grad():
            got, expected = traced(x), layer(x)
        assert got.shape == expected.shape
        _close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: keras.layers.Conv1D(4, 3, padding="same", strides=2), (2, 6, 3)),
        (lambda: keras.layers.Conv2D(4, 5, padding="same", strides=3), (2, 9, 9, 3)),
        (lambda: keras.layers.SeparableConv2D(4, 3, padding="same", strides=2), (2, 6, 6, 3)),
    ],
    ids=["Conv1D", "Conv2D", "SeparableConv2D"],
)
def test_traced_strided_same_conv_pads_each_input_by_its_size(make, shape):
    """Strided "same" padding depends on the input size (TensorFlow's split):
    the trace kept the example's amounts, and an input of another size came
    out with the wrong length (Conv1D traced on 6 steps gave 3 outputs for 7)."""
    torch.manual_seed(0)
    layer = make()
    example = torch.randn(*shape)
    layer(example)
    layer.eval()
    traced = torch.jit.trace(layer, example)
    for extra in (1, 2):
        x = torch.randn(shape[0], *(n + extra for n in shape[1:-1]), shape[-1])
        with torch.no_grad():
            got, expected = traced(x), layer(x)
        assert got.shape == expected.shape
        _close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: keras.layers.MaxPooling2D(3, strides=2, padding="same"), (2, 6, 6, 3)),
        (lambda: keras.layers.AveragePooling2D(3, strides=2, padding="same"), (2, 6, 6, 3)),
        (lambda: keras.layers.AveragePooling1D(3, strides=2, padding="same"), (2, 6, 3)),
    ],
    ids=["MaxPooling2D", "AveragePooling2D", "AveragePooling1D"],
)
def test_traced_strided_same_pooling_pads_each_input_by_its_size(make, shape):
    """The pooling sibling of the strided "same" convolution: the trace kept
    the example's split (one step short on an input of the other parity)."""
    layer = make()
    layer(torch.randn(*shape))
    traced = torch.jit.trace(layer, torch.randn(*shape))
    for extra in (0, 1, 2):
        x = torch.randn(shape[0], *(n + extra for n in shape[1:-1]), shape[-1])
        got, expected = traced(x), layer(x)
        assert got.shape == expected.shape
        _close(got, expected, rtol=1e-6, atol=1e-6)


def test_traced_bilinear_upsampling_follows_the_input_size():
    """UpSampling2D(interpolation="bilinear") traced on 6x6: its output size
    came from Python ints, so every other input size came out 12x12."""
    layer = keras.layers.UpSampling2D(2, interpolation="bilinear")
    layer(torch.randn(2, 6, 6, 3))
    traced = torch.jit.trace(layer, torch.randn(2, 6, 6, 3))
    for size in (6, 7, 9):
        x = torch.randn(1, size, size, 3)
        got, expected = traced(x), layer(x)
        assert got.shape == expected.shape == (1, 2 * size, 2 * size, 3)
        _close(got, expected, rtol=1e-6, atol=1e-6)
