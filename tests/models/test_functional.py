"""Functional models: `keras.Input`, `keras.Model(inputs, outputs)`, graphs of
layers and torch ops, symbolic losses and metrics, configs and cloning."""

import copy
import json
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kerasish as keras
from kerasish.backend.keras_tensor import KerasTensor
from kerasish.models import Functional
from kerasish.models import Model
from kerasish.models import clone_model

L = keras.layers
Input = L.Input


def _close(a, b, atol=1e-6):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=atol, rtol=1e-5)


def _two_branch(lib=keras):
    inp = lib.Input((8,), name="x")
    d1 = lib.layers.Dense(4, name="d1")
    d2 = lib.layers.Dense(4, activation="relu", name="d2")
    out = lib.layers.Add()([d1(inp), d2(inp)])
    return lib.Model(inp, out), d1, d2


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _close_ref(ours, theirs, atol=1e-6):
    """kerasish's output against real Keras's (same weights)."""
    np.testing.assert_allclose(_np(ours), _np(theirs), atol=atol, rtol=1e-5)


# ------------------------------------------------------------------ Input
def test_input_makes_keras_tensor(keras_ref):
    x = Input(shape=(8,), batch_size=4, dtype="int32", name="ids")
    assert isinstance(x, KerasTensor)
    layer = x._keras_history.operation
    assert isinstance(layer, L.InputLayer)
    got = {}
    for lib in (keras_ref, keras):
        t = lib.Input(shape=(8,), batch_size=4, dtype="int32", name="ids")
        op = t._keras_history.operation
        got[lib] = [
            tuple(t.shape), t.dtype, t.name, type(op).__name__, op.name, tuple(op.batch_shape), op.output is t,
            tuple(lib.Input((None, 3)).shape), tuple(lib.Input(batch_shape=(2, 3)).shape),
            tuple(lib.Input(tensor=t).shape),
        ]
    assert got[keras] == got[keras_ref]
    assert got[keras][:3] == [(4, 8), "int32", "ids"]


def test_input_layer_config_round_trip():
    layer = L.InputLayer(shape=(5,), name="inp")
    config = layer.get_config()
    assert config == {"batch_shape": (None, 5), "dtype": "float32", "sparse": False, "ragged": False,
                      "name": "inp", "optional": False}
    clone = L.InputLayer.from_config(config)
    assert clone.batch_shape == (None, 5) and clone.name == "inp"
    # Keras 2 spellings
    with pytest.warns(UserWarning, match="`input_shape` is deprecated"):
        assert L.InputLayer(input_shape=(3,)).batch_shape == (None, 3)
    assert L.InputLayer(batch_input_shape=(2, 3)).batch_shape == (2, 3)


def test_input_errors():
    with pytest.raises(ValueError, match="must pass a `shape`"):
        Input()
    with pytest.raises(ValueError, match="both `shape` and `batch_shape`"):
        Input(shape=(2,), batch_shape=(None, 2))
    with pytest.raises(ValueError, match="Cannot convert"):
        Input(shape=8)
    with pytest.raises(ValueError, match="ragged"):
        Input(shape=(2,), ragged=True)
    with pytest.raises(ValueError, match="must be a KerasTensor"):
        Input(tensor=torch.ones(2))


# ------------------------------------------------------------ construction
def test_model_returns_functional_and_matches_manual_composition(keras_ref):
    keras_ref.utils.clear_session()
    ref, _, _ = _two_branch(keras_ref)
    model, d1, d2 = _two_branch()
    ref.set_weights(model.get_weights())
    assert type(model) is Functional and isinstance(model, Model)
    assert model.name == ref.name == "functional"
    x = torch.randn(3, 8)
    _close(model(x), d1(x) + d2(x))
    _close_ref(model(x), ref(x))
    assert [layer.name for layer in model.layers] == [layer.name for layer in ref.layers] == ["x", "d1", "d2", "add"]
    assert model.get_layer("d2") is d2 and model.get_layer(index=1) is d1
    assert model.inputs[0].shape == tuple(ref.inputs[0].shape) == (None, 8)
    assert model.outputs[0].shape == tuple(ref.outputs[0].shape) == (None, 4)
    assert model.input_shape == ref.input_shape == (None, 8) and model.output_shape == ref.output_shape == (None, 4)
    # numpy inputs are converted, float64 cast to the Input dtype
    out = model(np.ones((2, 8)))
    ref_out = ref(np.ones((2, 8)))
    assert out.dtype == ref_out.dtype == torch.float32
    _close_ref(out, ref_out)


def test_get_layer_errors():
    model, _, _ = _two_branch()
    with pytest.raises(ValueError, match="No such layer: nope"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="only has 4 layers"):
        model.get_layer(index=10)
    with pytest.raises(ValueError, match="Provide only a layer name or a layer index"):
        model.get_layer("d1", 1)
    with pytest.raises(ValueError, match="Provide either a layer name or layer index"):
        model.get_layer()
    with pytest.raises(AttributeError, match="reserved"):
        model.layers = []


def test_state_dict_keys_follow_layer_names_and_load(keras_ref):
    model, d1, d2 = _two_branch()
    ref, _, _ = _two_branch(keras_ref)
    assert [w.path for w in model.weights] == [w.path for w in ref.weights]  # Keras's names for the same weights
    assert list(model.state_dict()) == ["d1.kernel", "d1.bias", "d2.kernel", "d2.bias"]
    inp = Input((8,), name="x")
    twin = Model(inp, L.Add()([L.Dense(4, name="d1")(inp), L.Dense(4, activation="relu", name="d2")(inp)]))
    twin.load_state_dict(model.state_dict())
    x = torch.randn(2, 8)
    _close(twin(x), model(x))
    assert [tuple(w.shape) for w in model.weights] == [(8, 4), (4,), (8, 4), (4,)]


def test_multiple_inputs_and_outputs_as_lists_and_dicts(keras_ref):
    def build(lib):
        a, b = lib.Input((4,), name="a"), lib.Input((4,), name="b")
        da, db = lib.layers.Dense(3, name="da"), lib.layers.Dense(3, name="db")
        ya, yb = da(a), db(b)
        listed = lib.Model([a, b], [lib.layers.Concatenate()([ya, yb]), ya])
        named = lib.Model({"a": a, "b": b}, {"sum": lib.layers.Add()([ya, yb]), "a_proj": ya})
        return listed, named, lib.Model(a, [ya]), (da, db)

    listed, named, single, (da, db) = build(keras)
    r_listed, r_named, r_single, _ = build(keras_ref)
    r_listed.set_weights(listed.get_weights())  # (da, db: shared by the three models)
    xa, xb = torch.randn(2, 4), torch.randn(2, 4)

    def same(ours, theirs):
        assert type(ours) is type(theirs) or (isinstance(ours, torch.Tensor) and isinstance(theirs, torch.Tensor))
        if isinstance(ours, dict):
            assert set(ours) == set(theirs)
            for k in ours:
                same(ours[k], theirs[k])
        elif isinstance(ours, (list, tuple)):
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs):
                same(a, b)
        else:
            np.testing.assert_allclose(ours.detach().numpy(), keras_ref.ops.convert_to_numpy(theirs), rtol=1e-5,
                                       atol=1e-6)

    out = listed([xa, xb])
    same(out, r_listed([xa, xb]))
    _close(out[0], torch.cat([da(xa), db(xb)], -1))
    # a dict keyed by Input names also feeds a list-input model
    same(listed({"a": xa, "b": xb}), r_listed({"a": xa, "b": xb}))
    same(named({"b": xb, "a": xa}), r_named({"b": xb, "a": xa}))
    # a single-output list is unpacked, as in Keras
    same(single(xa), r_single(xa))


def test_input_structure_and_shape_errors():
    a, b = Input((4,), name="a"), Input((4,), name="b")
    model = Model([a, b], L.Add()([a, b]))
    with pytest.raises(ValueError, match="structure of `inputs`"):
        model([torch.ones(2, 4)])
    with pytest.raises(ValueError, match="structure of `inputs`"):
        model({"a": torch.ones(2, 4)})
    single = Model(a, L.Dense(2)(a))
    # other feature size: the model warns and runs; the Dense refuses it
    with pytest.warns(UserWarning, match=r"constructed with shape \(None, 4\).*incompatible shape \(2, 5\)"):
        with pytest.raises(ValueError, match=r"layer 'dense'.*value 4.*\(2, 5\)"):
            single(torch.ones(2, 5))
    with pytest.raises(ValueError, match="incompatible with the layer"):
        single(torch.ones(2, 4, 3))
    # Keras's rank adjustment: a trailing axis of size 1 is squeezed / added
    col = Input((1,))
    m = Model(col, col * 2.0)
    _close(m(torch.ones(3)), torch.full((3, 1), 2.0))


def test_construction_errors():
    a = Input((4,))
    with pytest.raises(ValueError, match="All `inputs` values must be KerasTensors"):
        Model(torch.ones(2), L.Dense(2)(a))
    with pytest.raises(ValueError, match="All `outputs` values must be KerasTensors"):
        Model(a, torch.ones(2))
    other = Input((4,))
    with pytest.raises(ValueError, match="Graph disconnected"):
        Model(a, L.Add()([a, other]))
    with pytest.raises(ValueError, match='The name "twin" is used 2 times'):
        Model(a, L.Dense(2, name="twin")(L.Dense(4, name="twin")(a)))


def test_symbolic_call_checks_input_spec():
    dense = L.Dense(3)
    dense(Input((4,)))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        dense(Input((5,)))


# ---------------------------------------------------- shared and nested
def test_shared_layer_has_two_nodes():
    a, b = Input((4,), name="a"), Input((4,), name="b")
    shared = L.Dense(3, name="shared")
    model = Model([a, b], L.Subtract()([shared(a), shared(b)]))
    assert len(shared._inbound_nodes) == 2
    assert list(model.state_dict()) == ["shared.kernel", "shared.bias"]
    xa, xb = torch.randn(2, 4), torch.randn(2, 4)
    _close(model([xa, xb]), shared(xa) - shared(xb))
    with pytest.raises(AttributeError, match="multiple inbound nodes"):
        _ = shared.output
    with pytest.raises(AttributeError, match="multiple inbound nodes"):
        _ = shared.input_shape
    assert shared.get_output_at(1).shape == (None, 3)


def test_layer_input_output_once_connected():
    inp = Input((6,))
    dense = L.Dense(2)
    with pytest.raises(AttributeError, match="never been called"):
        _ = dense.output
    out = dense(inp)
    assert dense.input is inp and dense.output is out
    assert dense.input_shape == (None, 6) and dense.output_shape == (None, 2)
    add = L.Add()
    s = add([out, out])
    assert add.input == [out, out] and add.output is s


def test_nested_model_used_as_layer(keras_ref):
    def build(lib):
        inner_in = lib.Input((3,))
        inner = lib.Model(inner_in, lib.layers.Dense(2, name="inner_d")(inner_in), name="inner")
        a = lib.Input((4,))
        pre = lib.layers.Dense(3, name="pre")
        out = inner(pre(a))
        return lib.Model(a, lib.layers.Dense(1, name="head")(out)), inner, inner_in, pre

    ref, _, _, _ = build(keras_ref)
    outer, inner, inner_in, pre = build(keras)
    ref.set_weights(outer.get_weights())
    assert [layer.name for layer in outer.layers][1:] == [layer.name for layer in ref.layers][1:] == [
        "pre", "inner", "head"]
    assert [w.path for w in outer.weights] == [w.path for w in ref.weights]
    _close_ref(outer(torch.ones(2, 4)), ref(torch.ones(2, 4)))
    assert list(outer.state_dict()) == [
        "pre.kernel", "pre.bias", "inner.inner_d.kernel", "inner.inner_d.bias", "head.kernel", "head.bias"
    ]
    x = torch.randn(5, 4)
    _close(outer(x), outer.get_layer("head")(inner(pre(x))))
    # the nested model's input/output stay its own graph
    assert inner.input is inner_in
    cfg = json.loads(json.dumps(outer.get_config()))
    rebuilt = Model.from_config(cfg)
    rebuilt.set_weights(outer.get_weights())
    _close(rebuilt(x), outer(x))
    ref_rebuilt = keras_ref.Model.from_config(cfg)  # real Keras reads kerasish's nested config
    ref_rebuilt.set_weights(outer.get_weights())
    _close_ref(outer(x), ref_rebuilt(x))


def test_model_from_intermediate_tensors(keras_ref):
    def build(lib):
        inp = lib.Input((4,))
        h = lib.layers.Dense(5, name="h")(inp)
        out = lib.layers.Dense(2, name="o")(h)
        return lib.Model(inp, out), lib.Model(h, out)

    ref_full, ref_head = build(keras_ref)
    full, head = build(keras)
    ref_full.set_weights(full.get_weights())
    assert isinstance(head.inputs[0]._keras_history.operation, L.InputLayer)
    assert [type(layer).__name__ for layer in head.layers] == [type(layer).__name__ for layer in ref_head.layers]
    x = torch.randn(3, 5)
    _close(head(x), full.get_layer("o")(x))
    _close_ref(head(x), ref_head(x))
    # the original model is untouched
    _close(full(torch.ones(1, 4)), full.get_layer("o")(full.get_layer("h")(torch.ones(1, 4))))


def test_masks_flow_through_the_graph(keras_ref):
    def build(lib):
        ids = lib.Input((5,), dtype="int64")
        emb = lib.layers.Embedding(10, 4, mask_zero=True)
        lstm = lib.layers.LSTM(3)
        return lib.Model(ids, lstm(emb(ids))), emb, lstm

    model, emb, lstm = build(keras)
    ref, _, _ = build(keras_ref)
    ref.set_weights(model.get_weights())
    x = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0]])
    out = model(x)
    np.testing.assert_allclose(out.detach().numpy(), keras_ref.ops.convert_to_numpy(ref(x)), rtol=1e-5, atol=1e-6)
    _close(out, lstm(emb(x)))
    # the mask matters: the same sequences without padding steps
    _close(out[:1], lstm(emb(x[:1, :3])))
    unmasked = lstm(emb.embeddings[x].detach())
    assert not torch.allclose(out, unmasked)


def test_training_flag_reaches_inner_layers(keras_ref):
    x = torch.ones(4, 100)
    for lib in (keras_ref, keras):  # the same modes in real Keras
        inp = lib.Input((100,))
        model = lib.Model(inp, lib.layers.Dropout(0.5)(inp))
        assert torch.equal(model(x), x), lib.__name__  # inference mode by default
        dropped = model(x, training=True)
        assert (dropped == 0).any() and set(dropped.unique().tolist()) == {0.0, 2.0}, lib.__name__  # kept / (1 - rate)
        always = lib.Input((100,))
        fixed = lib.Model(always, lib.layers.Dropout(0.5)(always, training=True))
        assert (fixed(x) == 0).any(), lib.__name__
    model.train()  # torch's mode (kerasish only)
    assert (model(x) == 0).any()
    model.eval()
    assert torch.equal(model(x), x)


# ----------------------------------------------------------- torch ops
def test_torch_ops_and_operators_are_recorded():
    a = Input((4, 6))
    y = F.relu(a[:, 0]) * 2.0 + 1
    z = torch.cat([y, a.sum(dim=1), 1 - a.mean(1)], dim=-1).reshape(-1, 3, 6)
    assert isinstance(z, KerasTensor) and z.shape == (None, 3, 6)
    model = Model(a, z)
    x = torch.randn(2, 4, 6)
    ref = torch.cat([F.relu(x[:, 0]) * 2 + 1, x.sum(1), 1 - x.mean(1)], -1).reshape(-1, 3, 6)
    _close(model(x), ref)
    assert [layer.name for layer in model.layers] == [model.layers[0].name]  # ops are not layers (Keras 3)
    # config round trip through JSON recreates the torch functions by name
    rebuilt = Model.from_config(json.loads(json.dumps(model.get_config())))
    _close(rebuilt(x), ref)
    assert a.ndim == 3 and a.dim() == 3  # constants stay constants


def test_torch_op_names_are_resolved_safely():
    from kerasish.models.torch_op_layer import TorchOpLambda

    with pytest.raises(ValueError, match="Unknown torch function"):
        TorchOpLambda("os.system")
    with pytest.raises(ValueError, match="Unknown torch function"):
        TorchOpLambda("torch.load")
    with pytest.raises(ValueError, match="Unknown torch function"):
        TorchOpLambda("torch.Tensor.__setstate__")
    assert TorchOpLambda("torch.nn.functional.relu").function is F.relu


def test_from_config_only_instantiates_known_classes():
    model, _, _ = _two_branch()
    config = model.get_config()
    config["layers"][1]["class_name"] = "NotALayer"
    with pytest.raises(ValueError, match="Unknown layer: 'NotALayer'"):
        Model.from_config(config)


# ------------------------------------------------ losses and metrics (spec)
def test_spec_activity_regularization_loss():
    inputs = Input(shape=(10,))
    x = L.Dense(10)(inputs)
    outputs = L.Dense(1)(x)
    model = Model(inputs, outputs)
    assert len(model.losses) == 0
    model.add_loss(torch.abs(torch.mean(x)))
    assert len(model.losses) == 1
    data = torch.randn(4, 10)
    model(data)
    (loss,) = model.losses
    expected = torch.abs(torch.mean(model.layers[1](data)))
    _close(loss, expected)
    loss.backward()  # gradients reach the weights
    assert model.layers[1].kernel.grad is not None
    model(torch.zeros(4, 10))
    assert len(model.losses) == 1  # replaced, not accumulated


def test_spec_weight_regularization_loss():
    inputs = Input(shape=(10,))
    d = L.Dense(10, kernel_initializer="ones")
    x = d(inputs)
    outputs = L.Dense(1)(x)
    model = Model(inputs, outputs)
    model.add_loss(lambda: torch.mean(d.kernel))
    (loss,) = model.losses
    assert float(loss.detach()) == 1.0
    model(torch.ones(2, 10))
    assert [float(v.detach()) for v in model.losses] == [1.0]


def test_symbolic_loss_must_trace_back_to_inputs():
    inputs = Input(shape=(3,))
    model = Model(inputs, L.Dense(1)(inputs))
    stray = Input(shape=(3,))
    with pytest.raises(ValueError, match="cannot be traced back"):
        model.add_loss(torch.mean(stray))


def test_spec_add_metric_on_model_and_layer():
    inputs = Input(shape=(10,))
    x = L.Dense(10)(inputs)
    model = Model(inputs, L.Dense(1)(x))
    model.add_metric(torch.sum(x), name="metric_1")
    data = torch.randn(3, 10)
    model(data)
    (metric,) = [m for m in model.metrics if m.name == "metric_1"]
    _close(metric.result(), torch.sum(model.layers[1](data)).detach())

    inp = Input(shape=(3,))
    d = L.Dense(2)
    output = d(inp)
    d.add_metric(torch.max(output), name="max")
    d.add_metric(torch.min(output), name="min")
    assert [m.name for m in d.metrics] == ["max", "min"]
    m2 = Model(inp, output)
    y = m2(torch.randn(5, 3)).detach()
    assert float(d.metrics[0].result()) == pytest.approx(float(y.max()))
    assert float(d.metrics[1].result()) == pytest.approx(float(y.min()))
    with pytest.raises(ValueError, match="provide a name"):
        d.add_metric(torch.max(output))


# ------------------------------------------------------- config, cloning
def test_get_config_layout_and_round_trip(keras_ref):
    model, _, _ = _two_branch()
    config = model.get_config()
    assert set(config) == {"name", "trainable", "layers", "input_layers", "output_layers"}
    assert config["input_layers"] == ["x", 0, 0] and config["output_layers"] == ["add", 0, 0]
    dense = config["layers"][1]
    assert dense["class_name"] == "Dense" and dense["name"] == "d1"
    arg = dense["inbound_nodes"][0]["args"][0]
    assert arg["class_name"] == "__keras_tensor__" and arg["config"]["keras_history"] == ["x", 0, 0]
    rebuilt = Model.from_config(json.loads(json.dumps(config)))
    assert [layer.name for layer in rebuilt.layers] == ["x", "d1", "d2", "add"]
    rebuilt.set_weights(model.get_weights())
    x = torch.randn(3, 8)
    _close(rebuilt(x), model(x))
    ref = keras_ref.Model.from_config(json.loads(json.dumps(config)))  # real Keras reads the same config
    assert [layer.name for layer in ref.layers] == ["x", "d1", "d2", "add"]
    ref.set_weights(model.get_weights())
    _close_ref(model(x), ref(x))
    restored = keras.models.model_from_json(model.to_json())
    restored.set_weights(model.get_weights())
    _close(restored(x), model(x))


def test_config_matches_keras(keras_ref):
    def build(lib):
        lib.utils.clear_session()
        a, b = lib.layers.Input((4,), name="a"), lib.layers.Input((4,), name="b")
        shared = lib.layers.Dense(3, name="shared")
        return lib.models.Model([a, b], [lib.layers.Add()([shared(a), shared(b)]), shared(b)])

    def normalize(c):
        c = json.loads(json.dumps(c))
        for layer in c["layers"]:
            layer.pop("module", None)
            layer["config"].pop("dtype", None)
            layer["config"].get("kernel_initializer", {}).pop("module", None)
            layer["config"].get("bias_initializer", {}).pop("module", None)
        return c

    ours = normalize(build(keras).get_config())
    theirs = normalize(build(keras_ref).get_config())
    assert ours == theirs


def test_loads_keras_config_and_computes_the_same(keras_ref):
    keras_ref.utils.clear_session()
    a = keras_ref.layers.Input((4,))
    h = keras_ref.layers.Dense(5, activation="tanh")(a)
    ref = keras_ref.Model(a, keras_ref.layers.Concatenate()([h, keras_ref.layers.Dense(2)(h)]))
    model = Model.from_config(json.loads(json.dumps(ref.get_config())))
    model.set_weights(ref.get_weights())
    x = np.random.default_rng(0).random((3, 4)).astype("float32")
    expected = keras_ref.ops.convert_to_numpy(ref(x))
    np.testing.assert_allclose(model(x).detach().numpy(), expected, atol=1e-5, rtol=1e-4)


def test_clone_model_functional(keras_ref):
    a, b = Input((4,), name="a"), Input((4,), name="b")
    shared = L.Dense(3)
    model = Model([a, b], L.Add()([shared(a), shared(b)]))
    clone = clone_model(model)
    assert clone is not model and len(clone.weights) == 2  # sharing kept
    assert clone.layers[2] is not shared
    # real Keras 3's clone of the same graph: the same layers and weights (sharing kept)
    ra, rb = keras_ref.Input((4,), name="a"), keras_ref.Input((4,), name="b")
    rshared = keras_ref.layers.Dense(3)
    ref_clone = keras_ref.models.clone_model(keras_ref.Model([ra, rb], keras_ref.layers.Add()([rshared(ra), rshared(rb)])))
    assert [type(layer).__name__ for layer in clone.layers] == [type(layer).__name__ for layer in ref_clone.layers]
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in ref_clone.weights]
    ref_clone.set_weights(model.get_weights())
    xa, xb = torch.randn(2, 4), torch.randn(2, 4)
    _close_ref(model([xa, xb]), ref_clone([xa, xb]))
    xa, xb = torch.randn(2, 4), torch.randn(2, 4)
    assert not torch.allclose(clone([xa, xb]), model([xa, xb]))  # new weights
    clone.set_weights(model.get_weights())
    _close(clone([xa, xb]), model([xa, xb]))
    ops = Input((3,))
    with_ops = Model(ops, torch.tanh(L.Dense(2)(ops)) * 3)
    op_clone = clone_model(with_ops)
    op_clone.set_weights(with_ops.get_weights())
    x = torch.randn(2, 3)
    _close(op_clone(x), with_ops(x))
    custom = clone_model(model, clone_function=lambda layer: layer)
    assert custom.layers[2] is shared


# ---------------------------------------------------------- torch side
def test_compile_fullgraph_zero_graph_breaks():
    import torch._dynamo as dynamo

    a, b = Input((4,), name="a"), Input((4,), name="b")
    h = L.Dense(8, activation="relu")(L.Concatenate()([a, b]))
    model = Model({"a": a, "b": b}, L.Dense(2)(h) + torch.sigmoid(h).sum(-1, keepdim=True))
    x = {"a": torch.randn(3, 4), "b": torch.randn(3, 4)}
    dynamo.reset()
    explained = dynamo.explain(model)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(model, fullgraph=True)
    _close(compiled(x), model(x), atol=1e-5)


def test_deepcopy_pickle_and_functional_call():
    model, _, _ = _two_branch()
    x = torch.randn(2, 8)
    ref = model(x)
    _close(copy.deepcopy(model)(x), ref)
    _close(pickle.loads(pickle.dumps(model))(x), ref)
    params = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    assert torch.count_nonzero(torch.func.functional_call(model, params, (x,))) == 0


def test_execution_plan_is_flat_and_precomputed():
    model, d1, d2 = _two_branch()
    steps = model._steps
    assert [step[1] for step in steps] == [d1, d2, model.get_layer("add")]
    assert steps[0][0] == 0 and steps[2][0] == 1  # one-tensor and list steps


def test_multi_output_layers_and_multi_argument_calls(keras_ref):
    def build(lib):
        q, v = lib.Input((5, 8)), lib.Input((7, 8))
        mha = lib.layers.MultiHeadAttention(2, 4)
        attended = mha(q, v)
        lstm = lib.layers.LSTM(3, return_state=True)
        seq, h, c = lstm(attended)
        return lib.Model([q, v], [seq, c, lib.layers.Attention()([attended, v])]), mha, lstm

    ref, _, _ = build(keras_ref)
    model, mha, lstm = build(keras)
    ref.set_weights(model.get_weights())
    for w in model.weights:
        assert w.device.type == "cpu"  # weights built during shape inference are real
    xq, xv = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    out = model([xq, xv])
    ref_seq, _, ref_c = lstm(mha(xq, xv))
    _close(out[0], ref_seq)
    _close(out[1], ref_c)
    for ours, theirs in zip(out, ref([xq, xv])):  # real Keras, same weights
        _close_ref(ours, theirs, atol=1e-5)
    rebuilt = Model.from_config(json.loads(json.dumps(model.get_config())))
    rebuilt.set_weights(model.get_weights())
    for a, b in zip(rebuilt([xq, xv]), out):
        _close(a, b, atol=1e-5)


def test_identity_nested_inputs_and_subclassed_layer_in_graph(keras_ref):
    x = torch.randn(2, 3)
    y = torch.randn(2, 3)
    results = {}
    for lib in (keras_ref, keras):  # the same program in real Keras and kerasish
        a = lib.Input((3,))
        identity = lib.Model(a, a)
        assert torch.equal(identity(x), x), lib.__name__
        b, c = lib.Input((3,)), lib.Input((3,))
        nested = lib.Model([[a, b], c], lib.layers.Add()([a, b, c]))

        class Scale(lib.Model):
            def __init__(self):
                super().__init__()
                self.d = lib.layers.Dense(2)

            def call(self, inputs):
                return self.d(inputs) * 2

        scale = Scale()
        inp = lib.Input((3,))
        model = lib.Model(inp, scale(inp))
        if lib is keras_ref:
            weights = scale.d.get_weights()
        else:
            scale.d.set_weights(weights)
        results[lib] = (nested([[x, y], x]), model.output_shape, model(x))
    _close(results[keras][0], 2 * x + y)
    _close_ref(results[keras][0], results[keras_ref][0])
    assert results[keras][1] == results[keras_ref][1] == (None, 2)
    assert scale.d.kernel.device.type == "cpu"
    _close(results[keras][2], scale.d(x) * 2)
    _close_ref(results[keras][2], results[keras_ref][2])


def test_keras2_config_format_loads(keras_ref):
    config = {
        "name": "model",
        "layers": [
            {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 3], "dtype": "float32", "sparse": False, "ragged": False,
                        "name": "input_1"}},
            {"class_name": "InputLayer", "name": "input_2", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 3], "dtype": "float32", "sparse": False, "ragged": False,
                        "name": "input_2"}},
            {"class_name": "Add", "name": "add", "config": {"name": "add", "trainable": True, "dtype": "float32"},
             "inbound_nodes": [[["input_1", 0, 0, {}], ["input_2", 0, 0, {}]]]},
        ],
        "input_layers": [["input_1", 0, 0], ["input_2", 0, 0]],
        "output_layers": [["add", 0, 0]],
    }
    model = Model.from_config(config)
    assert [layer.name for layer in model.layers] == ["input_1", "input_2", "add"]
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    _close(model([x, y]), x + y)
    ref = keras_ref.Model.from_config(json.loads(json.dumps(config)))  # real Keras 3 reads the Keras 2 format too
    assert [layer.name for layer in ref.layers] == ["input_1", "input_2", "add"]
    _close_ref(model([x, y]), ref([x, y]))


def test_inputs_must_come_from_input():
    with pytest.raises(ValueError, match="must come from `keras.Input`"):
        Model(KerasTensor((None, 3)), L.Dense(2)(Input((3,))))


def test_state_dict_keys_are_stable_across_copies_built_in_one_process():
    import kerasish as keras

    def make():
        inp = keras.Input((4,))
        x = keras.layers.Dense(3)(inp)
        out = keras.layers.Dense(2, name="head")(x)
        return keras.Model(inp, out)

    a, b = make(), make()  # the second copy's layers are auto-named dense_2, ...
    assert a.layers[1].name != b.layers[1].name
    assert list(a.state_dict()) == list(b.state_dict()) == ["dense.kernel", "dense.bias", "head.kernel", "head.bias"]
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 4)
    torch.testing.assert_close(a(x), b(x))


def test_dict_inputs_and_outputs_flatten_in_sorted_key_order_like_keras(keras_ref):
    def build(k):
        t_in, b_in = k.Input((6,), name="title"), k.Input((4,), name="body")
        h = k.layers.Concatenate()([k.layers.Dense(3)(t_in), k.layers.Dense(2)(b_in)])
        return k.Model(
            {"title": t_in, "body": b_in},
            {"priority": k.layers.Dense(1, name="priority")(h), "department": k.layers.Dense(4, name="department")(h)},
        )

    ref, ours = build(keras_ref), build(keras)
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in ref.layers]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in ref.get_weights()]
    assert ours.output_names == ref.output_names == ["department", "priority"]
    assert [t.name for t in ours.inputs] == [t.name for t in ref.inputs] == ["body", "title"]
    ours.set_weights(ref.get_weights())
    x = {"title": np.ones((2, 6), "float32"), "body": np.full((2, 4), 0.5, "float32")}
    theirs, mine = ref.predict(x, verbose=0), ours.predict(x, verbose=0)
    for key in theirs:
        np.testing.assert_allclose(mine[key], theirs[key], rtol=1e-5, atol=1e-6)


def test_other_non_batch_dims_run_with_a_warning(keras_ref):
    """A functional model called on a longer sequence runs its layers (the
    LSTM can), warning once per shape as tf.keras 2 did; the outputs equal
    Keras 3 running the same layers on that input (Keras 3 itself refuses
    the call on the functional model, so its layers are compared)."""
    inp = Input((5, 4), name="seq")
    lstm = L.LSTM(3)
    model = Model(inp, lstm(inp))
    x = np.random.default_rng(3).normal(size=(2, 7, 4)).astype("float32")
    with pytest.warns(UserWarning) as record:
        y = model(torch.as_tensor(x))
        model(torch.as_tensor(x))  # the same shape again: no second warning
    messages = [str(w.message) for w in record if "constructed with shape" in str(w.message)]
    assert len(messages) == 1
    assert messages[0].startswith("Model 'functional' was constructed with shape (None, 5, 4) for input <KerasTensor")
    assert messages[0].endswith("but it was called on an input with incompatible shape (2, 7, 4).")
    ref = keras_ref.layers.LSTM(3)
    ref.build((None, 5, 4))
    ref.set_weights(lstm.get_weights())
    np.testing.assert_allclose(y.detach().numpy(), keras_ref.ops.convert_to_numpy(ref(x)), rtol=1e-5, atol=1e-6)
    ki = keras_ref.Input((5, 4))
    with pytest.raises(ValueError, match="incompatible"):  # Keras 3's functional call refuses it
        keras_ref.Model(ki, keras_ref.layers.LSTM(3)(ki))(x)
    # a different rank stays an error
    with pytest.raises(ValueError, match="incompatible"):
        model(torch.ones(2, 7))
