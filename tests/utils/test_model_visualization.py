"""`keras.utils.model_to_dot` / `plot_model` against real Keras 3 (torch backend).

The same model is built with explicit layer names in Keras and in kerasish;
`model_to_dot(...).to_string()` of both must be equal once each node id
(`str(id(layer))`) is replaced by the layer's name: nodes, HTML labels,
graph attributes, clusters and edges. Graphviz's `dot` program is not assumed:
rendering is captured by patching `pydot.Dot.write` / `pydot.Dot.create`,
which both libraries call.
"""

import re
import sys

import numpy as np
import pytest

import kerasish

pydot = pytest.importorskip("pydot", reason="model_to_dot needs pydot (in the `test` extra)")

IPYTHON_MARKER = "IPython.core.magics.namespace"


@pytest.fixture(scope="module")
def K(keras_ref):
    return keras_ref


# ------------------------------------------------------------------ models
def _sequential(k):
    L = k.layers
    return k.Sequential(
        [k.Input((4,), name="inp"), L.Dense(3, activation="relu", name="d1"), L.Dense(2, name="d2")], name="seq"
    )


def _built_sequential(k):
    m = k.Sequential([k.layers.Dense(3, name="d1"), k.layers.Dense(2, name="d2")], name="bs")
    m.build((None, 5))
    return m


def _cnn(k):
    L = k.layers
    return k.Sequential(
        [
            k.Input((8, 8, 3), name="img"),
            L.Conv2D(4, 3, activation="relu", name="conv"),
            L.MaxPooling2D(name="pool"),
            L.Flatten(name="flat"),
            L.Dropout(0.1, name="drop"),
            L.Activation("softmax", name="act"),
            L.ReLU(name="relu"),
        ],
        name="cnn",
    )


def _multi_io_shared(k):
    L = k.layers
    a, b = k.Input((4,), name="a"), k.Input((5,), name="b")
    shared = L.Dense(3, name="shared")
    x = L.Concatenate(name="cat")([shared(a), L.Dense(3, name="pb")(b)])
    y = shared(L.Dense(4, name="back")(x))  # second call: Keras shows the first call's shapes
    return k.Model([a, b], [L.Dense(1, activation="sigmoid", name="o1")(x), y], name="multi")


def _dict_io(k):
    L = k.layers
    a, b = k.Input((3,), name="a"), k.Input((2,), name="b")
    y = L.Concatenate(name="cat")([a, b])
    return k.Model({"a": a, "b": b}, {"out": L.Dense(1, name="o")(y), "aux": L.Dense(2, name="o2")(y)}, name="dictm")


def _rnn(k):
    L = k.layers
    x = k.Input((5,), dtype="int32", name="tok")
    h = L.LSTM(3, return_sequences=True, name="lstm")(L.Embedding(10, 4, name="emb")(x))
    return k.Model(x, L.Bidirectional(L.GRU(2, name="gru"), name="bi")(h), name="rnn")


def _nested(k):
    L = k.layers
    ii = k.Input((4,), name="ii")
    inner = k.Model(ii, L.Dense(3, name="idense")(ii), name="inner")
    seq = k.Sequential([k.Input((3,), name="si"), L.Dense(2, name="sd1"), L.Dense(2, name="sd2")], name="innerseq")
    x = k.Input((4,), name="x")
    bn = L.BatchNormalization(name="bn")
    bn.trainable = False
    return k.Model(x, L.Dense(1, name="out")(seq(inner(bn(x)))), name="outer")


def _nested_sequential(k):
    L = k.layers
    inner = k.Sequential([k.Input((4,), name="ii"), L.Dense(3, name="i1"), L.Dense(3, name="i2")], name="inner")
    return k.Sequential([k.Input((4,), name="oi"), inner, L.Dense(2, name="o1")], name="outer")


def _shared_nested(k):
    ii = k.Input((4,), name="ii")
    inner = k.Model(ii, k.layers.Dense(4, name="idense")(ii), name="inner")
    x = k.Input((4,), name="x")
    return k.Model(x, k.layers.Dense(1, name="out")(inner(inner(x))), name="outer")


def _multi_input_nested(k):
    L = k.layers
    a, b = k.Input((3,), name="ia"), k.Input((3,), name="ib")
    inner = k.Model([a, b], [L.Add(name="add")([a, b]), L.Subtract(name="sub")([a, b])], name="inner")
    x, y = k.Input((3,), name="x"), k.Input((3,), name="y")
    p, q = inner([x, y])
    return k.Model([x, y], L.Multiply(name="mul")([p, q]), name="outer")


def _subclassed(k):
    class Net(k.Model):
        def __init__(self):
            super().__init__(name="net")
            self.dense = k.layers.Dense(2, name="d")

        def call(self, x):
            return self.dense(x)

    model = Net()
    model(np.ones((1, 3), "float32"))
    return model


def _subclassed_inside(k):
    class Block(k.Model):
        def __init__(self):
            super().__init__(name="blk")
            self.dense = k.layers.Dense(2, name="d")

        def call(self, x):
            return self.dense(x)

    x = k.Input((3,), name="x")
    return k.Model(x, k.layers.Dense(1, name="o")(Block()(x)), name="sf")


def _ops(k):
    k.utils.clear_session(free_memory=False)  # op names are auto names (add, add_1, ...): same counters in both
    a, b = k.Input((3,), name="a"), k.Input((3,), name="b")
    y = k.ops.relu(k.ops.add(a, b))
    return k.Model([a, b], k.layers.Dense(1, name="o")(k.ops.concatenate([y, a + b], axis=-1)), name="ops")


def _mixed_precision(k):
    L = k.layers
    k.mixed_precision.set_global_policy("mixed_float16")
    try:
        return k.Sequential(
            [k.Input((4,), name="i"), L.Dense(3, name="d1"), L.Dense(2, name="d2", dtype="float32")], name="mp"
        )
    finally:
        k.mixed_precision.set_global_policy("float32")


def _attention_scores(k):
    q = k.Input((4, 8), name="q")
    out, scores = k.layers.MultiHeadAttention(2, 4, name="mha")(q, q, return_attention_scores=True)
    return k.Model(q, [out, scores], name="m")


def _called_sequential(k):
    """A Sequential without Input, built by a call on data, then nested."""
    inner = k.Sequential([k.layers.Dense(3, name="d1"), k.layers.Dense(2, name="d2")], name="cs")
    inner(np.ones((2, 5), "float32"))
    x = k.Input((5,), name="x")
    return k.Model(x, k.layers.Dense(1, name="out")(inner(x)), name="wrap")


def _layer_from_another_model(k):
    """A layer first called in another graph: only this model's nodes are drawn."""
    L = k.layers
    dense = L.Dense(3, name="reused")
    other = k.Input((4,), name="other_in")
    k.Model(other, L.Dense(2, name="other_out")(dense(other)), name="other")
    x = k.Input((4,), name="x")
    return k.Model(x, L.Dense(1, name="out")(dense(L.Dense(4, name="pre")(x))), name="second")


def _from_config(k):
    """A nested graph rebuilt by `Model.from_config`."""
    model = _multi_input_nested(k)
    return k.Model.from_config(model.get_config())


def _catalogue(k):
    """Layers whose labels read their activation, weights and dtypes."""
    L = k.layers
    x = k.Input((6, 4), name="seq_in")
    h = L.Conv1D(3, 2, activation="swish", name="conv1d")(x)
    h = L.LSTM(3, return_sequences=True, name="lstm")(h)
    h = L.GRU(2, name="gru")(L.SeparableConv1D(2, 2, name="sep")(h))
    h = L.EinsumDense("ab,bc->ac", output_shape=4, activation="relu", name="einsum")(h)
    h = L.LayerNormalization(name="ln")(L.PReLU(name="prelu")(L.Dense(3, activation="gelu", name="dense")(h)))
    img = k.Input((8, 8, 3), name="img_in")
    g = L.DepthwiseConv2D(3, activation="tanh", name="dw")(L.Conv2D(3, 3, activation="relu", name="conv2d")(img))
    g = L.GlobalMaxPooling2D(name="gmp")(L.GroupNormalization(groups=1, name="gn")(g))
    return k.Model([x, img], L.Softmax(name="softmax")(L.Concatenate(name="cat")([h, g])), name="catalogue")


MODELS = {
    "sequential": _sequential,
    "built_sequential": _built_sequential,
    "cnn": _cnn,
    "multi_io_shared": _multi_io_shared,
    "dict_io": _dict_io,
    "rnn": _rnn,
    "nested": _nested,
    "nested_sequential": _nested_sequential,
    "shared_nested": _shared_nested,
    "multi_input_nested": _multi_input_nested,
    "subclassed": _subclassed,
    "subclassed_inside": _subclassed_inside,
    "ops": _ops,
    "mixed_precision": _mixed_precision,
    "attention_scores": _attention_scores,
    "called_sequential": _called_sequential,
    "layer_from_another_model": _layer_from_another_model,
    "from_config": _from_config,
    "catalogue": _catalogue,
}
ALL_ON = dict(show_shapes=True, show_dtype=True, show_layer_activations=True, show_trainable=True)
OPTIONS = {
    "defaults": {},
    "all_on": ALL_ON,
    "expanded": dict(ALL_ON, expand_nested=True),
    "expanded_plain": dict(expand_nested=True, show_layer_names=False),
    "graph_attrs": dict(show_layer_names=False, show_shapes=True, rankdir="LR", dpi=96, splines="curved"),
    "subgraph": dict(subgraph=True, show_dtype=True),
}


def _names_by_id(model) -> dict:
    """`str(id(layer))` -> name for the model and every layer/op inside it."""
    names = {str(id(model)): model.name}

    def walk(m):
        for layer in list(getattr(m, "layers", None) or []) + list(m.__dict__.get("_operations", None) or []):
            if str(id(layer)) not in names:
                names[str(id(layer))] = layer.name
                walk(layer)

    walk(model)
    return names


def _normalized(dot, model) -> str:
    text = dot.to_string()
    for node_id, name in _names_by_id(model).items():
        text = re.sub(rf"\b{node_id}\b", name, text)
    assert not re.search(r"\b\d{9,}\b", text), f"a node id was not mapped to a layer name:\n{text}"
    return text


@pytest.mark.parametrize("options", list(OPTIONS), ids=list(OPTIONS))
@pytest.mark.parametrize("kind", list(MODELS), ids=list(MODELS))
def test_model_to_dot_equals_keras(K, kind, options):
    build, opts = MODELS[kind], OPTIONS[options]
    ref_model, model = build(K), build(kerasish)
    expected = _normalized(K.utils.model_to_dot(ref_model, **opts), ref_model)
    got = _normalized(kerasish.utils.model_to_dot(model, **opts), model)
    assert got == expected
    dot = kerasish.utils.model_to_dot(model, **opts)
    assert isinstance(dot, pydot.Cluster if opts.get("subgraph") else pydot.Dot)
    # node names are `str(id(layer))`, as Keras's (code looks layers up by them)
    names = _node_names(dot)
    assert names and set(names) <= set(_names_by_id(model))


def _node_names(graph) -> list:
    names = [n.get_name() for n in graph.get_nodes() if n.get_name() != "node"]  # "node": the defaults entry
    return names + [name for sub in graph.get_subgraphs() for name in _node_names(sub)]


def test_graph_content_is_what_was_asked(K):
    """A sanity check of the comparison itself: the labels hold what the options say."""
    model = _multi_io_shared(kerasish)
    text = _normalized(kerasish.utils.model_to_dot(model, **ALL_ON), model)
    assert "<b>shared</b> (Dense)" in text and "Input shape: <b>(None, 4)</b>" in text
    assert "Activation: <b>sigmoid</b>" in text and "<b>Trainable</b>" in text
    assert "Input shape: <b>[(None, 3), (None, 3)]</b>" in text  # the Concatenate
    assert text.count(" -> ") == 7 and "back -> shared" in text  # the shared layer: one box, two edges in
    nested = _nested(kerasish)
    text = _normalized(kerasish.utils.model_to_dot(nested, expand_nested=True, show_trainable=True), nested)
    assert "subgraph cluster_inner" in text and "subgraph cluster_innerseq" in text
    assert "idense -> sd1" in text and "bn -> ii" in text and "<b>Non-trainable</b>" in text


@pytest.mark.parametrize("name", ["model_to_dot", "plot_model"])
def test_signatures_equal_keras(K, name):
    import inspect

    def params(fn):
        return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]

    assert params(getattr(kerasish.utils, name)) == params(getattr(K.utils, name))


# ------------------------------------------------------------------ errors
def _error(fn, *args, **kwargs):
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    return type(info.value), str(info.value)


@pytest.mark.parametrize("fn_name", ["model_to_dot", "plot_model"])
def test_unbuilt_model_error_equals_keras(K, fn_name):
    ref = K.Sequential([K.layers.Dense(2)])
    ours = kerasish.Sequential([kerasish.layers.Dense(2)])
    expected = _error(getattr(K.utils, fn_name), ref)
    assert expected[0] is ValueError
    assert _error(getattr(kerasish.utils, fn_name), ours) == expected


@pytest.mark.parametrize("kwargs", [{"layer_range": ["a", "b"]}, {"show_layers": True}], ids=["layer_range", "unknown"])
def test_refused_kwargs_equal_keras(K, kwargs):
    expected = _error(K.utils.model_to_dot, _sequential(K), **kwargs)
    assert expected[0] is ValueError
    assert _error(kerasish.utils.model_to_dot, _sequential(kerasish), **kwargs) == expected


def _no_pydot(monkeypatch, K):
    """No pydot, pydot_ng or pydotplus for kerasish; Keras's module-level
    `pydot` set to None (Keras imports it once, when the module loads)."""
    for name in ("pydot", "pydot_ng", "pydotplus"):
        monkeypatch.setitem(sys.modules, name, None)
    from keras.src.utils import model_visualization

    monkeypatch.setattr(model_visualization, "pydot", None)


def test_model_to_dot_without_pydot_equals_keras(K, monkeypatch):
    ref, ours = _sequential(K), _sequential(kerasish)
    _no_pydot(monkeypatch, K)
    monkeypatch.delitem(sys.modules, IPYTHON_MARKER, raising=False)
    expected = _error(K.utils.model_to_dot, ref)
    assert expected[0] is ImportError
    assert _error(kerasish.utils.model_to_dot, ours) == expected


@pytest.mark.parametrize("notebook", [False, True], ids=["script", "ipython"])
def test_plot_model_without_pydot_equals_keras(K, monkeypatch, capsys, notebook):
    ref, ours = _sequential(K), _sequential(kerasish)
    _no_pydot(monkeypatch, K)
    if notebook:
        monkeypatch.setitem(sys.modules, IPYTHON_MARKER, sys)  # Keras only looks the name up
        assert K.utils.plot_model(ref) is None
        expected = capsys.readouterr().out
        assert "pip install pydot" in expected
        assert kerasish.utils.plot_model(ours) is None
        assert capsys.readouterr().out == expected
    else:
        monkeypatch.delitem(sys.modules, IPYTHON_MARKER, raising=False)
        expected = _error(K.utils.plot_model, ref)
        assert expected[0] is ImportError
        assert _error(kerasish.utils.plot_model, ours) == expected


@pytest.mark.parametrize("notebook", [False, True], ids=["script", "ipython"])
def test_plot_model_without_graphviz_equals_keras(K, monkeypatch, capsys, tmp_path, notebook):
    """Graphviz missing: pydot's `create` cannot find `dot` (patched so the
    test does not depend on whether Graphviz is installed)."""

    def no_dot(self, *args, **kwargs):
        raise FileNotFoundError(2, '"dot" not found in path.')

    monkeypatch.setattr(pydot.Dot, "create", no_dot)
    written = []
    monkeypatch.setattr(pydot.Dot, "write", lambda self, *a, **kw: written.append(a))
    ref, ours = _sequential(K), _sequential(kerasish)
    path = str(tmp_path / "m.png")
    if notebook:
        monkeypatch.setitem(sys.modules, IPYTHON_MARKER, sys)
        assert K.utils.plot_model(ref, path) is None
        expected = capsys.readouterr().out
        assert "graphviz" in expected
        assert kerasish.utils.plot_model(ours, path) is None
        assert capsys.readouterr().out == expected
    else:
        monkeypatch.delitem(sys.modules, IPYTHON_MARKER, raising=False)
        expected = _error(K.utils.plot_model, ref, path)
        assert expected[0] is ImportError
        assert _error(kerasish.utils.plot_model, ours, path) == expected
        # the check comes before the arguments' (Keras's order)
        assert _error(kerasish.utils.plot_model, ours, path, layer_range=["a"]) == expected
    assert written == []


# --------------------------------------------------------------- rendering
@pytest.fixture
def capture_render(monkeypatch):
    """Graphviz "works" (`create` returns bytes) and `write` records
    `(dot source with ids, path, format)` and writes a tiny stand-in file."""
    monkeypatch.setattr(pydot.Dot, "create", lambda self, *a, **kw: b"")
    calls = []

    def write(self, path, prog=None, format="raw", encoding=None):
        calls.append((self, str(path), format))
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n")
        return True

    monkeypatch.setattr(pydot.Dot, "write", write)
    monkeypatch.delitem(sys.modules, IPYTHON_MARKER, raising=False)
    return calls


@pytest.mark.parametrize("name", ["model.png", "model.svg", "model.dot", "model", "model.pdf", "model.jpg"])
def test_plot_model_writes_what_keras_writes(K, tmp_path, capture_render, name):
    ref, ours = _nested(K), _nested(kerasish)
    kwargs = dict(show_shapes=True, expand_nested=True, dpi=72, rankdir="LR")
    (tmp_path / "k").mkdir()
    (tmp_path / "q").mkdir()
    try:
        ref_result = K.utils.plot_model(ref, tmp_path / "k" / name, **kwargs)
    except ValueError as e:  # IPython's Image cannot embed svg/dot: Keras raises after writing
        ref_result = e
    result = kerasish.utils.plot_model(ours, tmp_path / "q" / name, **kwargs)
    (ref_dot, ref_path, ref_format), (dot, path, fmt) = capture_render
    assert (path.replace("/q/", "/k/"), fmt) == (ref_path, ref_format)
    assert fmt == (name.rsplit(".", 1)[1] if "." in name else "png")
    assert _normalized(dot, ours) == _normalized(ref_dot, ref)
    assert "<b>idense</b>" not in _normalized(dot, ours)  # plot_model's show_layer_names defaults to False
    try:
        from IPython import display
    except ImportError:
        assert result is None and ref_result is None
        return
    if name.endswith(".pdf"):
        assert result is None and ref_result is None
    elif isinstance(ref_result, ValueError):
        # deliberate difference: kerasish returns None where IPython cannot show the format
        assert "Cannot embed" in str(ref_result) and result is None
    else:
        assert isinstance(result, display.Image) and isinstance(ref_result, display.Image)
        assert result.data == ref_result.data and result.format == ref_result.format


def test_plot_model_with_the_real_graphviz_or_without_it(K, tmp_path, monkeypatch):
    """Unpatched: with Graphviz's `dot` both write a PNG; without it both
    raise the same ImportError."""
    import shutil

    monkeypatch.delitem(sys.modules, IPYTHON_MARKER, raising=False)
    ref_path, path = tmp_path / "k.png", tmp_path / "q.png"
    if shutil.which("dot") is None:
        expected = _error(K.utils.plot_model, _sequential(K), ref_path)
        assert expected[0] is ImportError and "graphviz" in expected[1]
        assert _error(kerasish.utils.plot_model, _sequential(kerasish), path) == expected
        assert not path.exists()
    else:
        K.utils.plot_model(_sequential(K), ref_path)
        kerasish.utils.plot_model(_sequential(kerasish), path)
        assert path.read_bytes()[:8] == ref_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_model_default_file_name(K, tmp_path, monkeypatch, capture_render):
    monkeypatch.chdir(tmp_path)
    K.utils.plot_model(_sequential(K))
    kerasish.utils.plot_model(_sequential(kerasish))
    assert [c[1:] for c in capture_render] == [("model.png", "png")] * 2
