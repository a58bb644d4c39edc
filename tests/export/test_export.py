"""Export equals eager: `torch.export.export` (strict and non-strict),
`torch.onnx.export(dynamo=True)` run by onnxruntime, and `Model.export`
(format "torch" / "onnx", dynamic batch), for an MLP, a CNN with
BatchNormalization (inference statistics), an LSTM, a GRU over a masked
Embedding and a MultiHeadAttention model."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import kerasish as keras

L = keras.layers
_MISSING = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_onnx = pytest.mark.skipif(bool(_MISSING), reason=f"ONNX export checks need {', '.join(_MISSING)} (test extra)")


def _rng(seed=0):
    return np.random.default_rng(seed)


def mlp():
    model = keras.Sequential([keras.Input((8,)), L.Dense(16, activation="relu"), L.Dense(3)])
    return model, lambda n, s: torch.from_numpy(_rng(s).normal(size=(n, 8)).astype("float32"))


def cnn_bn():
    model = keras.Sequential([keras.Input((12, 12, 3)), L.Conv2D(4, 3), L.BatchNormalization(), L.ReLU(),
                              L.MaxPooling2D(), L.Flatten(), L.Dense(2)])
    bn = model.layers[1]
    gamma, beta, mean, var = bn.get_weights()
    rng = _rng(9)  # moving statistics far from the batch's: batch statistics in the export would show
    bn.set_weights([gamma + 0.5, beta + 0.1, rng.normal(size=mean.shape).astype("float32"),
                    rng.uniform(0.5, 2.0, size=var.shape).astype("float32")])
    return model, lambda n, s: torch.from_numpy(_rng(s).normal(size=(n, 12, 12, 3)).astype("float32"))


def lstm():
    model = keras.Sequential([keras.Input((5, 4)), L.LSTM(6, return_sequences=True)])
    return model, lambda n, s: torch.from_numpy(_rng(s).normal(size=(n, 5, 4)).astype("float32"))


def gru_masked():
    model = keras.Sequential([keras.Input((7,), dtype="int64"), L.Embedding(10, 4, mask_zero=True), L.GRU(5)])

    def data(n, s):
        rng = _rng(s)
        ids = rng.integers(1, 10, size=(n, 7))
        lengths = rng.integers(1, 8, size=n)
        ids[np.arange(7)[None, :] >= lengths[:, None]] = 0  # right-padded, a different length per row
        return torch.from_numpy(ids)

    return model, data


def mha():
    inputs = keras.Input((5, 8))
    outputs = L.MultiHeadAttention(num_heads=2, key_dim=4)(inputs, inputs)
    return keras.Model(inputs, outputs), lambda n, s: torch.from_numpy(
        _rng(s).normal(size=(n, 5, 8)).astype("float32"))


MODELS = {"mlp": mlp, "cnn_bn": cnn_bn, "lstm": lstm, "gru_masked": gru_masked, "mha": mha}


def _make(name):
    keras.utils.set_random_seed(0)
    model, data = MODELS[name]()
    model.eval()
    return model, data


def _eager(model, x):
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("strict", [False, True], ids=["nonstrict", "strict"])
@pytest.mark.parametrize("name", list(MODELS))
def test_torch_export_equals_eager(name, strict):
    model, data = _make(name)
    program = torch.export.export(model, (data(3, 0),), strict=strict)
    x = data(3, 1)  # new values (and for the GRU, new padding) through the same program
    np.testing.assert_allclose(program.module()(x).detach().numpy(), _eager(model, x), rtol=1e-5, atol=1e-6)


@needs_onnx
@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_dynamo_export_runs_in_onnxruntime(name):
    import onnxruntime as ort

    model, data = _make(name)
    program = torch.onnx.export(model, (data(3, 0),), dynamo=True, verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = data(3, 1)
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(out, _eager(model, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_model_export_torch_has_a_dynamic_batch(name, tmp_path):
    model, data = _make(name)
    path = model.export(tmp_path / "model.pt2", format="torch", verbose=False)
    program = torch.export.load(path)
    for n in (1, 5):
        x = data(n, n)
        np.testing.assert_allclose(program.module()(x).detach().numpy(), _eager(model, x), rtol=1e-5, atol=1e-6)


@needs_onnx
@pytest.mark.parametrize("name", list(MODELS))
def test_model_export_onnx_has_a_dynamic_batch(name, tmp_path):
    import onnxruntime as ort

    model, data = _make(name)
    path = model.export(tmp_path / "model.onnx", format="onnx", verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (spec,) = session.get_inputs()
    assert spec.name == model.inputs[0].name and not isinstance(spec.shape[0], int)
    for n in (1, 5):
        x = data(n, n)
        (out,) = session.run(None, {spec.name: x.numpy()})
        np.testing.assert_allclose(out, _eager(model, x), rtol=1e-4, atol=1e-5)


def test_model_export_variable_length_sequences(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, 4)), L.Conv1D(3, 2, padding="same"), L.GlobalAveragePooling1D()])
    model.eval()
    program = torch.export.load(model.export(tmp_path / "m.pt2", format="torch", verbose=False))
    for t in (3, 9):
        x = torch.from_numpy(_rng(t).normal(size=(2, t, 4)).astype("float32"))
        np.testing.assert_allclose(program.module()(x).detach().numpy(), _eager(model, x), rtol=1e-5, atol=1e-6)


def test_model_export_warns_when_a_none_dim_is_fixed_by_the_model(tmp_path):
    """A model whose code needs a concrete size for a `None` dim (here a
    Python branch on the number of time steps) exports with the sample size
    only: said, not silently. (Recurrent layers no longer fix the time axis:
    tests/export/test_export_rnn_dynamic.py.)"""
    model = keras.Sequential([keras.Input((None, 4)), L.Lambda(lambda x: x * 2 if x.shape[1] == 2 else x)])
    model.eval()
    with pytest.warns(UserWarning, match=r"dim\(s\) \[1\]"):
        model.export(tmp_path / "m.pt2", format="torch", verbose=False)


def test_model_export_multi_input(tmp_path):
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    model = keras.Model([a, b], L.Dense(1)(L.Concatenate()([a, b])))
    program = torch.export.load(model.export(tmp_path / "m.pt2", format="torch", verbose=False))
    xa, xb = torch.randn(4, 3), torch.randn(4, 2)
    with torch.no_grad():
        ref = model([xa, xb])
    torch.testing.assert_close(program.module()(xa, xb), ref)


def test_model_export_with_input_signature(tmp_path):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Net()
    model(torch.ones(1, 3))  # subclassed: no symbolic inputs to read the signature from
    with pytest.raises(ValueError, match="input_signature"):
        model.export(tmp_path / "m.pt2", format="torch", verbose=False)
    path = model.export(tmp_path / "m.pt2", format="torch", verbose=False,
                        input_signature=[keras.InputSpec(shape=(None, 3), dtype="float32")])
    x = torch.randn(6, 3)
    torch.testing.assert_close(torch.export.load(path).module()(x), model(x).detach())


@pytest.mark.parametrize("fmt", ["tf_saved_model", "openvino", "litert", "savedmodel"])
def test_model_export_unsupported_formats_say_why(fmt, tmp_path):
    model, _ = _make("mlp")
    match = {"tf_saved_model": "needs TensorFlow", "savedmodel": "Unrecognized format"}.get(fmt, "not supported")
    with pytest.raises(ValueError, match=match):
        model.export(tmp_path / "m", format=fmt)
    with pytest.raises(ValueError, match="TensorFlow"):
        model.export(tmp_path / "m")  # Keras's default format


def test_model_export_torch_argument_errors(tmp_path):
    model, _ = _make("mlp")
    with pytest.raises(ValueError, match=".pt2"):
        model.export(tmp_path / "m.pt", format="torch")
    with pytest.raises(ValueError, match="opset_version"):
        model.export(tmp_path / "m.pt2", format="torch", opset_version=18)


def test_model_export_keeps_the_training_mode(tmp_path):
    model, _ = _make("mlp")
    model.train()
    model.export(tmp_path / "m.pt2", format="torch", verbose=False)
    assert model.training
