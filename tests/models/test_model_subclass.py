"""Subclassed `keras.Model`s and the `Model` base class."""

import json

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.models import Functional
from kerasish.models import Model
from kerasish.models import clone_model

L = keras.layers


def _close(a, b, atol=1e-6):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=atol, rtol=1e-5)


def _two_layer_class(lib):
    class TwoLayer(lib.Model):
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.hidden = lib.layers.Dense(8, activation="relu")
            self.out = lib.layers.Dense(units)

        def call(self, inputs, training=None):
            return self.out(self.hidden(inputs))

    return TwoLayer


TwoLayer = _two_layer_class(keras)


def _close_ref(ours, theirs, atol=1e-6):
    """kerasish's output against real Keras's (same weights)."""
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().cpu().numpy(), atol=atol, rtol=1e-5)


def test_subclassed_model_builds_on_first_call(keras_ref):
    keras_ref.utils.clear_session()
    ref = _two_layer_class(keras_ref)(units=4)
    model = TwoLayer(units=4)
    assert model.name == ref.name == "two_layer" and not model.built and not ref.built and not model.training
    x = torch.randn(2, 5)
    ref(x)
    y = model(x)
    ref.set_weights(model.get_weights())
    assert model.built and ref.built and y.shape == (2, 4)
    _close(y, model.out(model.hidden(x)))
    _close_ref(y, ref(x))
    assert model.layers == [model.hidden, model.out]
    assert [layer.name for layer in model.layers] == [layer.name for layer in ref.layers]
    assert model.get_layer("dense") is model.hidden
    assert [w.path for w in model.weights] == [w.path for w in ref.weights]
    assert list(model.state_dict()) == ["hidden.kernel", "hidden.bias", "out.kernel", "out.bias"]


def test_explicit_build_creates_weights_once():
    # tf.keras 2's Model.build (runs the call on a placeholder); Keras 3 marks
    # a subclassed model without its own build() built with no weights
    model = TwoLayer()
    model.build((None, 6))
    assert model.built
    assert [tuple(w.shape) for w in model.weights] == [(6, 8), (8,), (8, 3), (3,)]
    kernel = model.hidden.kernel.detach().clone()
    model(torch.randn(1, 6))
    assert torch.equal(model.hidden.kernel.detach(), kernel)


def test_subclass_get_config_and_from_config():
    model = TwoLayer(units=7, name="net")
    config = model.get_config()
    assert config["units"] == 7 and config["name"] == "net"
    clone = TwoLayer.from_config(config)
    assert clone.units == 7 and clone.name == "net"
    x = torch.randn(2, 3)
    model(x)
    twin = clone_model(model)
    assert isinstance(twin, TwoLayer) and twin.units == 7
    twin(x)
    twin.set_weights(model.get_weights())
    _close(twin(x), model(x))

    class NoConfig(Model):
        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def call(self, x):
            return self.layer(x)

    with pytest.raises(NotImplementedError, match="get_config"):
        NoConfig(L.Dense(2)).get_config()
    with pytest.raises(TypeError, match="Unable to revive model from config"):
        TwoLayer.from_config({"units": 2, "bogus": 1})


def test_model_without_call_raises():
    with pytest.raises(NotImplementedError, match="does not have a `call\\(\\)` method"):
        Model()(torch.ones(1, 2))


def test_model_dispatches_to_functional(keras_ref):
    for lib, functional in ((keras_ref, keras_ref.src.models.Functional), (keras, Functional)):
        inp = lib.Input((3,))
        out = lib.layers.Dense(2)(inp)
        for model in (lib.Model(inp, out), lib.Model(inputs=inp, outputs=out), lib.Model(inp, outputs=out)):
            assert type(model) is functional, lib.__name__
        two_layer = _two_layer_class(lib)
        assert type(two_layer()) is two_layer, lib.__name__


def test_functional_subclass(keras_ref):
    def net_class(lib):
        class Net(lib.Model):
            def __init__(self, **kwargs):
                inp = lib.Input((4,))
                out = lib.layers.Dense(2, name="proj")(inp)
                super().__init__(inp, out, **kwargs)

            def extra(self):
                return "extra"

        return Net

    keras_ref.utils.clear_session()
    ref = net_class(keras_ref)(name="net")
    assert isinstance(ref, keras_ref.src.models.Functional)
    net = net_class(keras)(name="net")
    assert isinstance(net, Functional) and isinstance(net, Model)
    assert net.extra() == "extra" and net.name == "net"
    ref.set_weights(net.get_weights())
    x = torch.randn(3, 4)
    _close(net(x), net.get_layer("proj")(x))
    _close_ref(net(x), ref(x))
    assert [layer.name for layer in net.layers] == [layer.name for layer in ref.layers]
    assert list(net.state_dict()) == ["proj.kernel", "proj.bias"]


def test_nested_functional_inside_subclass_and_training_mode(keras_ref):
    def make(lib):
        class Wrapper(lib.Model):
            def __init__(self):
                super().__init__()
                inp = lib.Input((6,))
                self.body = lib.Model(inp, lib.layers.Dropout(0.5)(lib.layers.Dense(6)(inp)))

            def call(self, x, training=None):
                return self.body(x, training=training)

        return Wrapper()

    ref = make(keras_ref)
    model = make(keras)
    x = torch.ones(4, 6)
    ref(x)
    ref.set_weights(model.get_weights())
    assert torch.equal(model(x), model(x))  # inference by default
    _close_ref(model(x), ref(x))  # real Keras 3: the same inference output
    for net in (ref, model):  # training=True reaches the nested functional's dropout
        assert (net(x, training=True) == 0).any()
    model.train()
    assert model.body.training
    out = model(x)
    assert (out == 0).any()
    model.eval()
    assert list(model.state_dict()) == ["body.dense.kernel", "body.dense.bias"]


def test_losses_from_sublayers_and_regularizers(keras_ref):
    seen = {}
    for lib in (keras_ref, keras):  # the same model in real Keras 3

        class Reg(lib.Model):
            def __init__(self):
                super().__init__()
                self.d = lib.layers.Dense(2, kernel_regularizer=lib.regularizers.L2(0.5), kernel_initializer="ones")

            def call(self, x):
                self.add_loss(torch.sum(x))
                return self.d(x)

        model = Reg()
        model(torch.ones(1, 3))
        first = [float(v.detach()) for v in model.losses]
        model(torch.zeros(1, 3))
        seen[lib] = (first, [float(v.detach()) for v in model.losses])
    for ours, ref in zip(seen[keras], seen[keras_ref], strict=True):
        assert ours == pytest.approx(ref)
    assert seen[keras] == ([3.0, pytest.approx(0.5 * 6)], [0.0, pytest.approx(3.0)])


def test_to_json_and_model_from_json_for_functional(keras_ref):
    inp = L.Input((3,), name="i")
    model = Model(inp, L.Dense(2)(inp))
    text = model.to_json()
    assert json.loads(text)["class_name"] == "Functional"
    again = keras.models.model_from_json(text)
    again.set_weights(model.get_weights())
    x = torch.randn(1, 3)
    _close(again(x), model(x))
    ref = keras_ref.models.model_from_json(text)  # real Keras reads kerasish's JSON
    ref.set_weights(model.get_weights())
    _close_ref(model(x), ref(x))
