"""Keras variables where torch tools expect `torch.Tensor` / `nn.Parameter`
signatures: `numpy(force=)`, `detach()` keeping the class (needed by
`nn.Parameter(variable)` and so by parametrizations), ONNX dynamo export,
`weight_norm`, and a sweep over every method the Variable classes override."""

from __future__ import annotations

import inspect
import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import kerasish as keras
from kerasish import variables as kv

FLOAT32_TOL = {"rtol": 1e-4, "atol": 1e-5}


def _params(sig):
    return [(p.name, p.kind, p.default) for p in sig.parameters.values() if p.name != "self"]


# methods whose signature intentionally differs from torch's, and why
_DOCUMENTED_DIVERGENCE = {
    # Keras's `Variable(initial_value, trainable, name, dtype, shape)` constructor
    "__new__",
    "__init__",
    # torch's own disabled-dispatch function, shared with nn.Parameter
    "__torch_function__",
}

# torch methods implemented in C have no introspectable signature: these are
# their documented ones (torch.Tensor.numpy / torch.Tensor.detach docs)
_C_SIGNATURES = {
    "numpy": inspect.Signature(
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY),
            inspect.Parameter("force", inspect.Parameter.KEYWORD_ONLY, default=False),
        ]
    ),
    "detach": inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]),
}


@pytest.mark.parametrize("cls", [kv.Variable, kv.TrainableVariable, kv.NonTrainableVariable])
def test_overridden_methods_accept_torchs_signature(cls):
    """Every torch.Tensor/nn.Parameter method a Variable class overrides
    accepts at least torch's parameters (same names, kinds and defaults)."""
    ref_cls = nn.Parameter if issubclass(cls, nn.Parameter) else torch.Tensor
    checked = 0
    for klass in cls.__mro__:
        if klass not in (kv.Variable, kv.TrainableVariable, kv.NonTrainableVariable):
            continue
        for name, ours in klass.__dict__.items():
            if name in _DOCUMENTED_DIVERGENCE or not callable(ours) or not hasattr(ref_cls, name):
                continue
            try:
                ref_sig = inspect.signature(getattr(ref_cls, name))
            except (TypeError, ValueError):
                assert name in _C_SIGNATURES, f"add torch's documented signature of `{name}` to the table"
                ref_sig = _C_SIGNATURES[name]
            our_sig = inspect.signature(ours)
            ours_by_name = {p.name: p for p in our_sig.parameters.values()}
            for pname, kind, default in _params(ref_sig):
                if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                    continue
                assert pname in ours_by_name, f"{cls.__name__}.{name} lacks torch's parameter `{pname}`"
                assert ours_by_name[pname].default == default, f"{cls.__name__}.{name}({pname}=) default differs"
                if kind is inspect.Parameter.KEYWORD_ONLY:
                    assert ours_by_name[pname].kind is kind, f"{cls.__name__}.{name}: `{pname}` must be keyword-only"
            checked += 1
    if cls is not kv.TrainableVariable:  # (inherits them all from Variable)
        assert checked >= 6  # numpy, detach, __array__, __deepcopy__, __reduce_ex__, __repr__


def test_numpy_takes_force_and_matches_torch():
    v = keras.Variable(np.arange(6, dtype="float32").reshape(2, 3))
    plain = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    np.testing.assert_array_equal(v.numpy(force=True), plain.numpy(force=True))
    np.testing.assert_array_equal(v.numpy(force=False), plain.numpy())
    # Keras semantics kept: a variable requiring grad converts without force
    assert v.requires_grad
    np.testing.assert_array_equal(v.numpy(), plain.numpy())
    # a snapshot, as in Keras (torch's numpy() would share memory, but refuses a tensor requiring grad)
    arr = v.numpy()
    v.assign(torch.ones(2, 3))
    np.testing.assert_array_equal(arr, plain.numpy())
    arr[0, 0] = 7.0
    np.testing.assert_array_equal(v.numpy(), np.ones((2, 3), "float32"))
    # the storage view torch users know is one detach() away
    view = v.detach().numpy()
    v.assign(torch.zeros(2, 3))
    np.testing.assert_array_equal(view, np.zeros((2, 3), "float32"))
    with pytest.raises(TypeError):
        v.numpy(True)  # keyword-only, as in torch


@pytest.mark.parametrize("trainable", [True, False])
def test_detach_keeps_class_and_storage(trainable):
    v = keras.Variable(np.ones((3,), "float32"), trainable=trainable, name="w")
    d = v.detach()
    assert type(d) is type(v)
    assert not d.requires_grad
    assert d.data_ptr() == v.data_ptr()
    v.assign(torch.full((3,), 2.0))
    np.testing.assert_array_equal(d.numpy(), np.full((3,), 2.0, "float32"))
    # nn.Parameter(variable) now works, as torch requires of tensor subclasses
    p = nn.Parameter(v)
    assert isinstance(p, nn.Parameter) and p.requires_grad


def test_state_dict_values_load_with_weights_only():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    sd = layer.state_dict()
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    assert set(loaded) == {"kernel", "bias"}
    for key in loaded:
        assert type(loaded[key]) is torch.Tensor
        np.testing.assert_array_equal(loaded[key].numpy(), sd[key].numpy())
    # a whole variable still pickles as a Variable
    buf = io.BytesIO()
    torch.save(layer.kernel, buf)
    buf.seek(0)
    again = torch.load(buf, weights_only=False)
    assert isinstance(again, kv.TrainableVariable) and again.name == "kernel"


def test_trainable_variable_accepts_parameter_keywords():
    data = torch.randn(2, 2)
    p = kv.TrainableVariable(data=data, requires_grad=False)
    assert isinstance(p, nn.Parameter) and not p.requires_grad
    torch.testing.assert_close(p.detach().as_subclass(torch.Tensor), data)


def test_weight_norm_on_dense_kernel_keeps_output_and_trains():
    torch.manual_seed(0)
    dense = keras.layers.Dense(3)
    x = torch.randn(5, 4)
    before = dense(x).detach().clone()
    kernel = dense.kernel.detach().clone()
    nn.utils.parametrizations.weight_norm(dense, "kernel")
    g = dense.parametrizations.kernel.original0
    v = dense.parametrizations.kernel.original1
    # torch's weight_norm (dim=0 of the (in, out) kernel): w = g * v / ||v|| over the other dims
    w = g * v / v.norm(dim=1, keepdim=True)
    torch.testing.assert_close(w, kernel, **FLOAT32_TOL)
    torch.testing.assert_close(dense(x), before, **FLOAT32_TOL)
    opt = torch.optim.SGD(dense.parameters(), lr=0.1)
    g0 = g.detach().clone()
    v0 = v.detach().clone()
    b0 = dense.bias.detach().clone()
    loss = dense(x).square().sum()
    loss.backward()
    opt.step()
    assert not torch.equal(g.detach(), g0) and not torch.equal(v.detach(), v0)
    # the reference: the same step in plain torch
    g_ref = g0.clone().requires_grad_()
    v_ref = v0.clone().requires_grad_()
    w_ref = g_ref * v_ref / v_ref.norm(dim=1, keepdim=True)
    (x @ w_ref + b0).square().sum().backward()
    torch.testing.assert_close(g.detach(), g0 - 0.1 * g_ref.grad, **FLOAT32_TOL)
    torch.testing.assert_close(v.detach(), v0 - 0.1 * v_ref.grad, **FLOAT32_TOL)


def test_onnx_dynamo_export_matches_eager():
    ort = pytest.importorskip("onnxruntime", reason="ONNX export check needs onnxruntime")
    pytest.importorskip("onnxscript", reason="torch.onnx dynamo export needs onnxscript")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8, activation="relu")
            self.norm = keras.layers.LayerNormalization()
            self.out = keras.layers.Dense(2)

        def forward(self, x):
            return self.out(self.norm(self.hidden(x)))

    torch.manual_seed(0)
    net = Net()
    x = torch.randn(4, 5)
    expected = net(x).detach().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, (x,), dynamo=True, verbose=False)
    buf = io.BytesIO()
    program.save(buf)
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, expected, **FLOAT32_TOL)
