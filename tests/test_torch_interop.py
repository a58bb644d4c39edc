"""kerasish layers inside plain PyTorch code: nn.Sequential, a hand-written
training loop with a torch optimizer, state_dict checkpoints (also into
layers that were never called), DDP, autocast and torch.compile."""

import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

import kerasish as keras


def _torch_twin(model):
    """The same MLP written with nn.Linear, weights copied (Keras (in, out)
    kernels transposed into torch's (out, in))."""
    d1, d2 = model[0], model[2]
    twin = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        twin[0].weight.copy_(d1.kernel.T)
        twin[0].bias.copy_(d1.bias)
        twin[2].weight.copy_(d2.kernel.T)
        twin[2].bias.copy_(d2.bias)
    return twin


def test_training_loop_in_nn_sequential_matches_hand_written_torch():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x.sum(dim=1, keepdim=True) ** 2
    model = nn.Sequential(keras.layers.Dense(8), nn.ReLU(), keras.layers.Dense(1))
    model(x)  # build
    twin = _torch_twin(model)
    opt_a = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    opt_b = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9)
    model.train()
    losses = []
    for _ in range(20):
        for net, opt in ((model, opt_a), (twin, opt_b)):
            opt.zero_grad()
            loss = nn.functional.mse_loss(net(x), y)
            loss.backward()
            opt.step()
        losses.append(loss.item())
        torch.testing.assert_close(model(x), twin(x), rtol=1e-5, atol=1e-5)
    assert losses[-1] < losses[0] * 0.5


def test_state_dict_checkpoint_loads_into_never_called_layers(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(keras.layers.Dense(8), nn.ReLU(), keras.layers.Dense(1))
    x = torch.randn(5, 4)
    expected = model(x)
    path = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), path)
    fresh = nn.Sequential(keras.layers.Dense(8), nn.ReLU(), keras.layers.Dense(1))
    assert not fresh[0].built
    fresh.load_state_dict(torch.load(path, weights_only=True))  # builds from the kernel shapes
    assert fresh[0].built and isinstance(fresh[0].kernel, keras.Variable)
    torch.testing.assert_close(fresh(x), expected)
    assert list(fresh.state_dict()) == ["0.kernel", "0.bias", "2.kernel", "2.bias"]


def test_lstm_inside_a_torch_module():
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.lstm = keras.layers.LSTM(16, return_sequences=True)
            self.head = nn.Linear(16, 3)

        def forward(self, tokens):
            return self.head(self.lstm(self.embed(tokens)))

    torch.manual_seed(0)
    model = Tagger()
    tokens = torch.randint(0, 20, (4, 7))
    targets = torch.randint(0, 3, (4, 7))
    model(tokens)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(15):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(tokens).reshape(-1, 3), targets.reshape(-1))
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first * 0.7
    assert model.lstm.cell.kernel.grad is not None


def test_autocast_and_compile_on_a_mixed_model():
    model = nn.Sequential(keras.layers.Dense(8), nn.ReLU(), keras.layers.Dense(2))
    x = torch.randn(3, 4)
    eager = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    torch.testing.assert_close(out.float(), eager, rtol=0.05, atol=0.05)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), eager)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_ddp_single_process_gloo():
    from torch.nn.parallel import DistributedDataParallel as DDP

    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group(
            "gloo", init_method=f"file://{os.path.join(tmp, 'store')}", rank=0, world_size=1
        )
        try:
            torch.manual_seed(0)
            model = nn.Sequential(keras.layers.Dense(8), nn.ReLU(), keras.layers.Dense(1))
            x = torch.randn(16, 4)
            model(x)  # DDP needs the parameters to exist
            ddp = DDP(model)
            ddp.train()
            loss = ddp(x).pow(2).mean()
            loss.backward()
            grads = [p.grad.clone() for p in model.parameters()]
            assert all(g is not None and torch.isfinite(g).all() for g in grads)
            # same gradients as without DDP
            model.zero_grad()
            model(x).pow(2).mean().backward()
            for g, p in zip(grads, model.parameters()):
                torch.testing.assert_close(g, p.grad)
        finally:
            dist.destroy_process_group()


def test_get_weights_match_keras_layouts_for_torch_users(keras_ref):
    layer = keras.layers.Dense(3)
    layer(torch.zeros(1, 5))
    kernel, bias = layer.get_weights()
    ref = keras_ref.layers.Dense(3)
    ref(np.zeros((1, 5), "float32"))
    assert [w.shape for w in ref.get_weights()] == [kernel.shape, bias.shape] == [(5, 3), (3,)]  # Keras's layout
    np.testing.assert_array_equal(kernel, layer.kernel.detach().numpy())
    # the Parameter torch sees is the Keras-layout kernel itself
    assert dict(layer.named_parameters())["kernel"] is layer.kernel
    # a torch user moving the weights by hand: nn.Linear takes the kernel transposed
    linear = nn.Linear(5, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(kernel.T))
        linear.bias.copy_(torch.from_numpy(bias + 0.5))
    layer.set_weights([kernel, bias + 0.5])
    x = torch.randn(4, 5)
    torch.testing.assert_close(layer(x), linear(x))
