"""`model.summary()`: Keras 3's table, compared line by line with real Keras."""

import pytest
import torch

import kerasish as keras
from kerasish.models import Model
from kerasish.models import Sequential

L = keras.layers


@pytest.fixture(autouse=True)
def _terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # Keras caps the width by the terminal's


def _text(model, **kwargs):
    out = []
    model.summary(print_fn=out.append, **kwargs)
    assert len(out) == 1  # Keras 3 hands the whole table to print_fn at once
    return out[0]


def _row(text, start):
    """The stripped cells of the table row whose first cell starts with `start`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0].startswith(start):
            return cells
    raise AssertionError(f"no row for {start!r} in:\n{text}")


def test_sequential_summary_counts_and_sizes(keras_ref):
    model = Sequential([L.Input((8,)), L.Dense(4), L.BatchNormalization(), L.Dense(2)], name="seq")
    text = _text(model)
    keras_ref.utils.clear_session()
    K = keras_ref
    ref = K.Sequential([K.Input((8,)), K.layers.Dense(4), K.layers.BatchNormalization(), K.layers.Dense(2)], name="seq")
    assert text == _keras_text(ref)  # real Keras 3's table
    lines = text.splitlines()
    assert lines[0] == 'Model: "seq"'
    assert "Layer (type)" in lines[2] and "Output Shape" in lines[2] and "Param #" in lines[2]
    assert "Connected to" not in text
    dense_params, bn_params, head_params = 8 * 4 + 4, 4 * 4, 4 * 2 + 2
    assert _row(text, "dense (Dense)") == ["dense (Dense)", "(None, 4)", str(dense_params)]
    assert _row(text, "batch_normalization") == ["batch_normalization", "(None, 4)", str(bn_params)]
    assert _row(text, "dense_1 (Dense)") == ["dense_1 (Dense)", "(None, 2)", str(head_params)]
    total = dense_params + bn_params + head_params
    trainable = total - 8  # moving mean and variance
    assert f" Total params: {total} ({total * 4:.2f} B)" in text
    assert f" Trainable params: {trainable} ({trainable * 4:.2f} B)" in text
    assert f" Non-trainable params: 8 ({8 * 4:.2f} B)" in text
    assert all(len(line) == 76 for line in lines[1:-3])


def test_functional_summary_has_connections(keras_ref):
    def make(lib):
        a, b = lib.layers.Input((4,), name="a"), lib.layers.Input((4,), name="b")
        shared = lib.layers.Dense(3, name="shared")
        return lib.Model([a, b], lib.layers.Add(name="sum")([shared(a), shared(b)]))

    keras_ref.utils.clear_session()
    text = _text(make(keras))
    assert text == _keras_text(make(keras_ref))  # real Keras 3's table
    assert "Connected to" in text
    assert _row(text, "shared (Dense)") == ["shared (Dense)", "(None, 3)", str(4 * 3 + 3), "a[0][0], b[0][0]"]
    assert _row(text, "sum (Add)") == ["sum (Add)", "(None, 3)", "0", "shared[0][0],"]
    assert "│ shared[1][0]      │" in text  # wrapped onto the next line


def _keras_text(model, **kwargs):
    out = []
    model.summary(print_fn=lambda text, **_: out.append(text), **kwargs)
    return out[0]


def test_unbuilt_and_trainable_column(keras_ref):
    keras_ref.utils.clear_session()
    texts = {}
    for lib, render in ((keras_ref, _keras_text), (keras, _text)):
        model = lib.Sequential([lib.layers.Dense(3)])
        built = lib.Sequential([lib.Input((2,)), lib.layers.Dense(3)])
        built.layers[0].trainable = False
        texts[lib] = (render(model), render(built, show_trainable=True))
    assert texts[keras] == texts[keras_ref]  # real Keras 3's tables, character for character
    text, trainable = texts[keras]
    assert _row(text, "dense (Dense)") == ["dense (Dense)", "?", "0 (unbuilt)"]
    assert "Trai…" in trainable and _row(trainable, "dense_1 (Dense)")[-1] == "N"
    assert " Non-trainable params: 9 (36.00 B)" in trainable


def test_summary_prints_to_stdout(capsys, keras_ref):
    Sequential([L.Input((2,)), L.Dense(1)]).summary()
    ours = capsys.readouterr().out
    assert 'Model: "sequential"' in ours
    keras_ref.utils.clear_session()
    keras_ref.Sequential([keras_ref.Input((2,)), keras_ref.layers.Dense(1)]).summary()
    theirs = capsys.readouterr().out
    strip = lambda text: [line.rstrip() for line in text.splitlines() if line.strip()]  # noqa: E731
    assert strip(ours) == strip(theirs)  # real Keras 3 prints the same table to stdout


def test_layer_range_and_errors():
    model = Sequential([L.Input((2,)), L.Dense(3, name="first"), L.Dense(2, name="second")])
    text = _text(model, layer_range=["second", "second"])
    assert "second (Dense)" in text and "first (Dense)" not in text
    with pytest.raises(ValueError, match="layer_range must be a list or tuple of length 2"):
        _text(model, layer_range=["a"])
    with pytest.raises(ValueError, match="do not match the layer names"):
        _text(model, layer_range=["zzz", "second"])
    with pytest.raises(ValueError, match="Insufficient console width"):
        _text(model, line_length=8)


def _build(lib):
    lib.utils.clear_session()
    Ly = lib.layers
    models = {}
    a, b = Ly.Input((4,), name="a"), Ly.Input((4,), name="b")
    shared = Ly.Dense(3, name="shared")
    inner_in = Ly.Input((3,))
    inner = lib.models.Model(inner_in, Ly.Dense(2, name="inner_d")(inner_in), name="inner")
    models["functional"] = lib.models.Model([a, b], Ly.Add()([inner(shared(a)), inner(shared(b))]))
    models["sequential"] = lib.models.Sequential([
        Ly.Input((8,)), Ly.Dense(4), Ly.BatchNormalization(),
        Ly.Dense(2, name="a_very_long_layer_name_that_needs_wrapping_indeed"),
    ])
    models["unbuilt"] = lib.models.Sequential([Ly.Dense(3)])
    models["nested"] = lib.models.Sequential(
        [Ly.Input((8,)), lib.models.Sequential([Ly.Dense(4), Ly.Dense(3)], name="sub"), Ly.Dense(1)]
    )
    chain_in = Ly.Input((6,))
    models["chain"] = lib.models.Model(chain_in, Ly.Dense(2)(Ly.Dense(5, activation="relu")(chain_in)))
    return models


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"show_trainable": True}, {"expand_nested": True}, {"line_length": 120}, {"line_length": 70}],
)
def test_summary_text_matches_keras(keras_ref, kwargs):
    ours, theirs = _build(keras), _build(keras_ref)
    for name in ours:
        expected = []
        theirs[name].summary(print_fn=lambda text, out=expected, **_: out.append(text), **kwargs)
        assert _text(ours[name], **kwargs) == expected[0], name


def test_summary_after_subclass_call(keras_ref):
    def make(lib):
        class Net(lib.Model):
            def __init__(self):
                super().__init__()
                self.d = lib.layers.Dense(2)

            def call(self, x):
                return self.d(x)

        net = Net()
        net(torch.ones(1, 3))
        return net

    keras_ref.utils.clear_session()
    expected = _keras_text(make(keras_ref))
    text = _text(make(keras))
    assert text == expected  # real Keras 3's table for the same subclassed model
    assert 'Model: "net"' in text and "dense (Dense)" in text and "(1, 2)" in text
    assert " Total params: 8 (32.00 B)" in text
