"""Exported recurrent models take any number of time steps (and any batch):
`torch.export` (strict and non-strict), `torch.onnx.export(dynamo=True)` in
onnxruntime and `Model.export` equal eager at 1, 3 and 17 steps, for LSTM,
GRU (reset_after both), SimpleRNN and Bidirectional, with and without masks
(full rows, right and left padding, holes, a fully masked row),
return_sequences both, go_backwards and return_state.

The export side runs the time loop as one `scan` (`kerasish/layers/rnn/
rnn_scan.py`); eager runs the fused kernels or the time loop. Eager itself
is checked against real Keras 3 on the same inputs here too."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch

import kerasish as keras

L = keras.layers
_MISSING = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_onnx = pytest.mark.skipif(bool(_MISSING), reason=f"ONNX export checks need {', '.join(_MISSING)} (test extra)")

FEATURES, VOCAB = 4, 10
# (batch, time steps) served by one exported program (traced at (2, 5))
SIZES = [(2, 1), (4, 3), (3, 17)]


def _rnn(lib, name, **kw):
    """The recurrent layer `name` of `lib` (kerasish or Keras layers)."""
    if name == "bidirectional":
        return lib.Bidirectional(lib.LSTM(3, return_sequences=True), merge_mode="concat")
    return getattr(lib, name)(5, **kw)


# name -> (layer name, layer kwargs, masked input, return_state)
CASES = {
    "lstm": ("LSTM", {}, False, False),
    "lstm_masked_seq_backwards": ("LSTM", {"return_sequences": True, "go_backwards": True}, True, False),
    "gru_masked_state": ("GRU", {"return_state": True}, True, True),
    "gru_v1_seq_backwards": ("GRU", {"reset_after": False, "return_sequences": True, "go_backwards": True}, False,
                             False),
    "simple_rnn_masked_seq": ("SimpleRNN", {"return_sequences": True}, True, False),
    "bidirectional_masked": ("bidirectional", {}, True, False),
}


def _model(lib, case):
    name, kw, masked, _ = CASES[case]
    if masked:
        inputs = lib.Input((None,), dtype="int64")
        x = lib.layers.Embedding(VOCAB, FEATURES, mask_zero=True)(inputs)
    else:
        inputs = lib.Input((None, FEATURES))
        x = inputs
    outputs = _rnn(lib.layers, name, **kw)(x)
    return lib.Model(inputs, outputs)


def _make(case):
    keras.utils.set_random_seed(0)
    model = _model(keras, case)
    model.eval()
    return model


def _data(case, batch, steps, seed=0):
    """Floats, or ids whose zeros (masked steps) follow a pattern per row:
    full, right padding (half valid; none for one step), left padding,
    holes."""
    rng = np.random.default_rng(seed + 100 * steps + batch)
    if not CASES[case][2]:
        return torch.from_numpy(rng.normal(size=(batch, steps, FEATURES)).astype("float32"))
    ids = rng.integers(1, VOCAB, size=(batch, steps))
    t = np.arange(steps)
    for row in range(batch):
        kind = row % 4
        if kind == 1:
            ids[row, t >= steps // 2] = 0
        elif kind == 2:
            ids[row, t < steps // 2] = 0
        elif kind == 3:
            ids[row, rng.random(steps) < 0.4] = 0
    return torch.from_numpy(ids)


def _flat(out) -> list:
    out = out if isinstance(out, (list, tuple)) else [out]
    return [o.detach().numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in out]


def _eager(model, x) -> list:
    with torch.no_grad():
        return _flat(model(x))


def _assert_all_close(got, want, rtol, atol):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


class _Call(torch.nn.Module):
    """`model(x)` with a fixed one-argument signature for `dynamic_shapes`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


def _dims():
    return ({0: torch.export.Dim("batch"), 1: torch.export.Dim("time", min=1)},)


# Export modes crossed with cases, not multiplied (CI time): every case runs in one mode, both modes
# see masked and unmasked inputs, LSTM/GRU/SimpleRNN/Bidirectional; the return_state case runs in both.
_CASE_MODES = [("lstm", True), ("lstm_masked_seq_backwards", False), ("gru_masked_state", True),
               ("gru_masked_state", False), ("gru_v1_seq_backwards", False), ("simple_rnn_masked_seq", True),
               ("bidirectional_masked", True)]


@pytest.mark.parametrize(("case", "strict"), _CASE_MODES,
                         ids=[f"{c}-{'strict' if s else 'nonstrict'}" for c, s in _CASE_MODES])
def test_torch_export_any_number_of_steps(case, strict):
    model = _make(case)
    program = torch.export.export(_Call(model), (_data(case, 2, 5),), dynamic_shapes=_dims(), strict=strict)
    assert any(n.target is torch.ops.higher_order.scan for n in program.graph.nodes)  # one loop, not unrolled steps
    for batch, steps in SIZES:
        x = _data(case, batch, steps, seed=1)
        _assert_all_close(_flat(program.module()(x)), _eager(model, x), rtol=1e-5, atol=1e-6)


@needs_onnx
@pytest.mark.parametrize("case", [c for c in CASES if c != "lstm"])  # (plain LSTM: test_export.py's ONNX checks)
def test_onnx_export_any_number_of_steps(case):
    import onnxruntime as ort

    model = _make(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(_Call(model), (_data(case, 2, 5),), dynamo=True, dynamic_shapes=_dims(),
                                    verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert "Scan" in {n.op_type for n in program.model_proto.graph.node}
    for batch, steps in SIZES:
        x = _data(case, batch, steps, seed=2)
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        _assert_all_close(got, _eager(model, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fmt", ["torch", pytest.param("onnx", marks=needs_onnx)])
def test_model_export_none_time_axis_serves_every_length(fmt, tmp_path):
    """Keras's way: `None` time steps in the model's input (or an
    `input_signature` of shape (None, None, F)) export a dynamic axis, with
    no warning that it was fixed."""
    case = "bidirectional_masked" if fmt == "torch" else "gru_masked_state"
    model = _make(case)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = model.export(tmp_path / f"m.{'pt2' if fmt == 'torch' else 'onnx'}", format=fmt, verbose=False)
    fixed = [str(w.message) for w in caught if "exported with the fixed size" in str(w.message)]
    assert not fixed, fixed
    if fmt == "torch":
        run = torch.export.load(path).module()
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run(x):
            return session.run(None, {session.get_inputs()[0].name: x.numpy()})

    for batch, steps in SIZES:
        x = _data(case, batch, steps, seed=3)
        _assert_all_close(_flat(run(x)), _eager(model, x), rtol=1e-4, atol=1e-5)


def test_model_export_input_signature_with_none_time_steps(tmp_path):
    """A model built for a fixed length, exported with an `input_signature`
    whose time axis is None, serves other lengths."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, FEATURES)), L.LSTM(5, return_sequences=True), L.GRU(3)])
    model.eval()
    spec = keras.InputSpec(shape=(None, None, FEATURES), dtype="float32")
    program = torch.export.load(model.export(tmp_path / "m.pt2", format="torch", verbose=False,
                                             input_signature=[spec]))
    for batch, steps in SIZES:
        x = _data("lstm", batch, steps, seed=4)
        _assert_all_close(_flat(program.module()(x)), _eager(model, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("strict", [False, True], ids=["nonstrict", "strict"])
def test_exported_program_does_not_change_the_model(strict):
    """Export swaps the weights for detached copies while tracing: the model
    keeps its own Parameters (same objects, still trainable) afterwards, and
    the program computes with them."""
    model = _make("gru_masked_state")
    before = {n: p for n, p in model.named_parameters()}
    program = torch.export.export(_Call(model), (_data("gru_masked_state", 2, 5),), dynamic_shapes=_dims(),
                                  strict=strict)
    after = dict(model.named_parameters())
    assert after.keys() == before.keys()
    assert all(after[n] is p and p.requires_grad for n, p in before.items())
    assert not any(isinstance(model.__dict__.get(n.rsplit(".", 1)[-1]), torch.Tensor) for n in before)
    x = _data("gru_masked_state", 3, 4, seed=6)
    _assert_all_close(_flat(program.module()(x)), _eager(model, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_eager_reference_equals_keras(case, keras_ref):
    """The eager outputs the exports are compared with are Keras's numbers
    (the same weights in both)."""
    model = _make(case)
    ref = _model(keras_ref, case)
    ref.set_weights(model.get_weights())
    for batch, steps in SIZES:
        x = _data(case, batch, steps, seed=5)
        want = [np.asarray(keras_ref.ops.convert_to_numpy(o)) for o in _as_list(ref(x.numpy()))]
        _assert_all_close(_eager(model, x), want, rtol=1e-5, atol=1e-6)


def _as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


class _MinimalRNNCell(keras.layers.Layer):
    """The custom cell of Keras's RNN guide."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), initializer="uniform",
                                                name="recurrent_kernel")

    def call(self, inputs, states):
        output = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return output, [output]


@pytest.mark.parametrize(("cell", "strict"), [("stacked", True), ("custom", False)],
                         ids=["stacked-strict", "custom-nonstrict"])
def test_torch_export_stacked_and_custom_cells(cell, strict):
    """`RNN` over `StackedRNNCells` (a cell made of cells) and over a user's
    cell, masked: also one scan, any length."""
    keras.utils.set_random_seed(0)
    cells = [L.LSTMCell(4), L.GRUCell(3)] if cell == "stacked" else _MinimalRNNCell(3)
    inputs = keras.Input((None,), dtype="int64")
    x = L.Embedding(VOCAB, FEATURES, mask_zero=True)(inputs)
    model = keras.Model(inputs, L.RNN(cells, return_sequences=True)(x))
    model.eval()
    program = torch.export.export(_Call(model), (_data("gru_masked_state", 2, 5),), dynamic_shapes=_dims(),
                                  strict=strict)
    assert any(n.target is torch.ops.higher_order.scan for n in program.graph.nodes)
    for batch, steps in SIZES:
        x = _data("gru_masked_state", batch, steps, seed=7)
        _assert_all_close(_flat(program.module()(x)), _eager(model, x), rtol=1e-5, atol=1e-6)


@needs_onnx
def test_onnx_export_with_a_fixed_length_keeps_the_lstm_op():
    """Without a dynamic time axis (non-strict export, the ONNX exporter's
    default) the fused kernel stays torch's `aten.lstm`, which becomes one
    ONNX `LSTM` node, not a `Scan`."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, FEATURES)), L.LSTM(5, return_sequences=True)])
    model.eval()
    x = _data("lstm", 2, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(_Call(model), (x,), dynamo=True, verbose=False)
    ops = {n.op_type for n in program.model_proto.graph.node}
    assert "LSTM" in ops and "Scan" not in ops, ops


@pytest.mark.parametrize("fmt", ["strict", pytest.param("onnx", marks=needs_onnx)])
def test_training_mode_export_under_no_grad(fmt):
    """A model left in training mode (`model.train()`), exported under
    `torch.no_grad()`: the loop needs no autograd, so it exports as an
    inference loop. (With autograd on, see the next tests.)"""
    model = _make("gru_masked_state")
    model.train()
    x = _data("gru_masked_state", 2, 5)
    with torch.no_grad():
        if fmt == "strict":
            run = torch.export.export(_Call(model), (x,), dynamic_shapes=_dims(), strict=True).module()
        else:
            import onnxruntime as ort

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(_Call(model), (x,), dynamo=True, dynamic_shapes=_dims(), verbose=False)
            session = ort.InferenceSession(program.model_proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])

            def run(inputs):
                return session.run(None, {session.get_inputs()[0].name: inputs.numpy()})

    for batch, steps in SIZES:
        x = _data("gru_masked_state", batch, steps, seed=8)
        _assert_all_close(_flat(run(x)), _eager(model, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("case", "fmt"), [
    ("gru_masked_state", "strict"), pytest.param("gru_masked_state", "onnx", marks=needs_onnx),
    ("gru_v1_seq_backwards", "nonstrict"),
], ids=["gru_masked_state-strict", "gru_masked_state-onnx", "gru_v1_seq_backwards-nonstrict"])
def test_training_mode_gru_export_with_autograd_and_dynamic_batch(case, fmt):
    """A GRU model in training mode exported with autograd on and a dynamic batch: the scan's
    traced step keeps no batch size for its backward (GRUCell splits its recurrent projection
    instead of slicing it), which torch's scan autograd cannot carry (it failed with "'SymInt'
    object has no attribute 'unsqueeze'"). The program equals eager; the exported torch
    program also trains (its gradients equal eager's)."""
    model = _make(case)
    model.train()
    x = _data(case, 2, 5)
    if fmt == "onnx":
        import onnxruntime as ort

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(_Call(model), (x,), dynamo=True, dynamic_shapes=_dims(), verbose=False)
        session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
        for batch, steps in SIZES:
            x = _data(case, batch, steps, seed=9)
            got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
            _assert_all_close(got, _eager(model, x), rtol=1e-4, atol=1e-5)
        return
    program = torch.export.export(_Call(model), (x,), dynamic_shapes=_dims(), strict=fmt == "strict")
    run = program.module()
    for batch, steps in SIZES:
        x = _data(case, batch, steps, seed=9)
        got, want = run(x), model(x)
        got, want = (list(o) if isinstance(o, (list, tuple)) else [o] for o in (got, want))
        _assert_all_close(_flat(got), _flat(want), rtol=1e-5, atol=1e-6)
        params = dict(run.named_parameters())
        got_grads = torch.autograd.grad(sum(g.square().sum() for g in got), list(params.values()))
        want_params = dict(model.named_parameters())
        want_grads = torch.autograd.grad(sum(w.square().sum() for w in want), [want_params[n.replace("model.", "", 1)]
                                                                                for n in params])
        for g, w in zip(got_grads, want_grads):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("steps", [None, 6], ids=["dynamic_length", "fixed_length"])
def test_model_export_saves_lstm_kernels_whole(steps, tmp_path):
    """LSTM kernels are transposed views of their storage (torch's layout, see
    `store_transposed`); `Model.export(format="torch")` gives the program contiguous copies,
    so `torch.export.save` writes whole tensors ("No complete tensor found in the group!"
    before) and the loaded program equals eager. The model keeps its own weights and layout."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((steps, FEATURES)), L.LSTM(5, return_sequences=True),
                              L.LSTM(3, go_backwards=True)])
    model.eval()
    before = {n: (p, p.stride()) for n, p in model.named_parameters()}
    assert any(not p.is_contiguous() for p, _ in before.values())  # the case this test is about
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = model.export(tmp_path / "m.pt2", format="torch", verbose=False)
        program = torch.export.load(path)
    partial = [str(w.message) for w in caught if "complete tensor" in str(w.message)]
    assert not partial, partial
    assert all(p is before[n][0] and p.stride() == before[n][1] for n, p in model.named_parameters())
    for batch, length in (SIZES if steps is None else [(2, steps), (3, steps)]):
        x = _data("lstm", batch, length, seed=10)
        _assert_all_close(_flat(program.module()(x)), _eager(model, x), rtol=1e-5, atol=1e-6)
