"""The fused RNN path's costs: weights handed over in torch's layout without
a flat re-layout buffer, one host transfer per masked call, and
one opaque op under `torch.compile` (numerics equal to nn.LSTM/nn.GRU and to
the eager path)."""

import pytest
import torch

import kerasish as keras
from kerasish.layers.rnn import fused_rnn

RIGHT = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _torch_twin(layer):
    """nn.LSTM/nn.GRU with `layer`'s weights (Keras gate orders converted)."""
    cell = layer.cell
    u = cell.units
    k, rk, b = (w.detach() for w in (cell.kernel, cell.recurrent_kernel, cell.bias))
    if isinstance(layer, keras.layers.GRU):
        ref = torch.nn.GRU(k.shape[0], u, batch_first=True)

        def order(w):  # Keras z, r, h -> torch r, z, n
            return torch.cat((w[..., u : 2 * u], w[..., :u], w[..., 2 * u :]), dim=-1)

        weights = [order(k).t(), order(rk).t(), order(b[0]), order(b[1])]
    else:
        ref = torch.nn.LSTM(k.shape[0], u, batch_first=True)
        weights = [k.t(), rk.t(), b, torch.zeros_like(b)]
    with torch.no_grad():
        for p, w in zip((ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0), weights):
            p.copy_(w)
    return ref


@pytest.mark.parametrize("name", ["LSTM", "SimpleRNN"])
def test_cpu_training_weights_are_torch_layout_without_a_flat_buffer(name):
    """LSTM: views of its torch-layout storage; SimpleRNN: transposed
    copies of its contiguous Keras-layout kernels."""
    layer = getattr(keras.layers, name)(4)
    x = _x(2, 3, 5)
    layer(x)
    cell = layer.cell
    weights = fused_rnn.flat_weights(fused_rnn.fused_mode(cell), cell, x)
    assert weights[0].is_contiguous() and torch.equal(weights[0], cell.kernel.detach().t())
    assert weights[1].is_contiguous() and torch.equal(weights[1], cell.recurrent_kernel.detach().t())
    views = [w.data_ptr() == v.data_ptr() for w, v in zip(weights, (cell.kernel, cell.recurrent_kernel))]
    assert views == ([True, True] if name == "LSTM" else [False, False])
    assert weights[2].data_ptr() == cell.bias.data_ptr()  # the bias as is
    assert weights[0].untyped_storage().data_ptr() != weights[1].untyped_storage().data_ptr()  # no flat cat
    assert weights[0].grad_fn is not None  # gradients reach the Keras-layout parameters


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_training_step_equals_torch_module(name):
    layer = getattr(keras.layers, name)(4, return_sequences=True)
    x = _x(3, 5, 2)
    layer(x)
    ref = _torch_twin(layer)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = layer(xa, training=True)
    expected = ref(xb)[0]
    torch.testing.assert_close(out, expected)
    out.pow(2).sum().backward()
    expected.pow(2).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    grad_k = ref.weight_ih_l0.grad.t()
    if name == "GRU":
        u = 4
        grad_k = torch.cat((grad_k[:, u : 2 * u], grad_k[:, :u], grad_k[:, 2 * u :]), dim=1)
    torch.testing.assert_close(layer.cell.kernel.grad, grad_k)


class _Counter:
    """Counts calls of `torch.Tensor` methods that read device data on the host."""

    def __init__(self, monkeypatch, names):
        self.calls = {n: 0 for n in names}
        for n in names:
            original = getattr(torch.Tensor, n)

            def wrapper(t, *a, _n=n, _original=original, **k):
                self.calls[_n] += 1
                return _original(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, n, wrapper)


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("mask", [RIGHT, RIGHT.flip(1), torch.ones(3, 5, dtype=torch.bool)], ids=["right", "left", "full"])
def test_masked_fused_call_reads_the_host_once(monkeypatch, name, mask):
    layer = getattr(keras.layers, name)(4, return_sequences=True, return_state=True)
    x = _x(3, 5, 2)
    layer(x)
    expected = layer(x, mask=mask)
    counter = _Counter(monkeypatch, ["tolist", "item", "cpu", "__bool__", "__int__", "numpy"])
    before = fused_rnn.FUSED_CALLS[0]
    with torch.no_grad():
        out = layer(x, mask=mask)
    monkeypatch.undo()
    assert fused_rnn.FUSED_CALLS[0] == before + 1  # the fused kernel ran
    calls = counter.calls
    assert calls["tolist"] == calls["item"] == calls["__bool__"] == calls["__int__"] == 0, calls
    assert calls["cpu"] == 1, calls  # layout flags and lengths in one transfer
    for a, b in zip(out, expected):
        torch.testing.assert_close(a, b)


def _graph_targets(layer, x):
    graphs = []

    def backend(gm, inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(layer, backend=backend, fullgraph=True)
    out = compiled(x)
    assert len(graphs) == 1
    return out, [str(n.target) for n in graphs[0].graph.nodes if n.op == "call_function"]


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
def test_compiled_fused_kernel_is_one_opaque_node(name):
    layer = getattr(keras.layers, name)(4, return_sequences=True)
    x = _x(2, 5, 3)
    expected = layer(x)
    out, targets = _graph_targets(layer, x)
    torch.testing.assert_close(out, expected)
    assert targets.count("kerasish.fused_rnn.default") == 1, targets
    assert not any("lstm" in t or "gru" in t or "rnn_tanh" in t for t in targets), targets


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_compiled_training_step_equals_eager(name):
    layer = getattr(keras.layers, name)(4, return_sequences=True)
    x = _x(2, 5, 3)
    layer(x)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    eager = layer(xa, training=True)
    eager.pow(2).sum().backward()
    grads = [w.grad.clone() for w in layer.trainable_weights]
    layer.zero_grad()
    torch._dynamo.reset()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    out = compiled(xb, training=True)
    out.pow(2).sum().backward()
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(xb.grad, xa.grad)
    for g, w in zip(grads, layer.trainable_weights):
        torch.testing.assert_close(w.grad, g)


def test_fused_op_passes_opcheck():
    x = _x(2, 5, 3)
    hx = [torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)]
    weights = [_x(16, 3, seed=1), _x(16, 4, seed=2), _x(16, seed=3), torch.zeros(16)]
    for t in (x, *weights):
        t.requires_grad_()
    torch.library.opcheck(torch.ops.kerasish.fused_rnn, ("lstm", x, hx, weights, True, True))


@pytest.mark.parametrize("name, op", [("LSTM", "aten.lstm.input"), ("GRU", "aten.gru.input")])
def test_export_keeps_torchs_own_op(name, op):
    """Exported programs (and ONNX) must not depend on kerasish's op."""
    layer = getattr(keras.layers, name)(4, return_sequences=True)
    x = _x(2, 5, 3)
    layer(x)
    program = torch.export.export(layer, (x,))
    targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    assert op in targets and not any("kerasish" in t for t in targets), targets
    torch.testing.assert_close(program.module()(x), layer(x))


def test_gru_inference_projects_the_inputs_in_one_matmul():
    """CPU inference: the GRU's input projection is one (add)mm over all
    steps, as nn.GRU's, not a bmm per time step (torch folds a batch-first
    input only for weights that require grad; the inference weights do not).
    Outputs and final state equal nn.GRU's."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.append(str(func))
            return func(*args, **(kwargs or {}))

    layer = keras.layers.GRU(4, return_sequences=True, return_state=True)
    x = _x(3, 6, 2)
    layer(x)
    ref = _torch_twin(layer)
    with torch.no_grad():
        with Ops() as ops:
            out, h = layer(x)
        expected, expected_h = ref(x)
    assert "aten.bmm.default" not in ops.seen, sorted(set(ops.seen))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(h, expected_h[0])


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
def test_cell_activation_set_after_construction_leaves_the_fused_kernel(name):
    """The fused kernel computes tanh (or relu for SimpleRNN) cells only; it was chosen once in
    `__init__`, so `layer.cell.activation = ...` set afterwards was silently ignored. Reference:
    the same layer constructed with that activation, with the same weights."""
    torch.manual_seed(0)
    cls = getattr(keras.layers, name)
    layer = cls(3)
    x = torch.randn(2, 5, 4)
    before = layer(x)
    ref = cls(3, activation="sigmoid")
    ref(x)
    ref.set_weights(layer.get_weights())
    layer.cell.activation = keras.activations.sigmoid
    expected = ref(x)
    assert not torch.allclose(before, expected)  # (the activation matters here)
    torch.testing.assert_close(layer(x), expected)
