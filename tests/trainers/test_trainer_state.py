"""Trainer internals that users can observe: the `compute_loss`
compatibility path and the parameter caches."""

import numpy as np
import pytest
import torch

import kerasish as keras


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    return x, (x @ np.ones((3, 2), "float32"))


def test_compute_loss_without_training_argument_is_called_without_it():
    seen = []

    class Old(keras.Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):  # Keras 2-era signature
            seen.append(True)
            return torch.mean((y_pred - y) ** 2)

    inp = keras.Input((3,))
    model = Old(inp, keras.layers.Dense(2)(inp))
    model.compile(optimizer="sgd")
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    assert seen


def test_type_error_inside_compute_loss_is_not_swallowed():
    calls = []

    class Broken(keras.Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            calls.append(training)
            raise TypeError("bad training data")  # mentions "training": must still surface, once

    inp = keras.Input((3,))
    model = Broken(inp, keras.layers.Dense(2)(inp))
    model.compile(optimizer="sgd")
    x, y = _data()
    with pytest.raises(TypeError, match="bad training data"):
        model.fit(x, y, epochs=1, verbose=0)
    assert calls == [True]


def test_replaced_parameter_is_trained_after_the_caches_were_built():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)  # caches the trainable parameter list
    dense = model.layers[0]
    new = torch.nn.Parameter(torch.zeros(2))
    dense._parameters["bias"] = new  # what FSDP2's fully_shard does to every parameter
    # the optimizer built for the old parameter now sees the new one: Keras's clear error, not silent
    # training of a parameter that left the model
    with pytest.raises(ValueError, match="Unknown variable"):
        model.fit(x, y, epochs=1, verbose=0)
    model.optimizer = keras.optimizers.SGD(0.1)  # no re-compile: the trainer's caches are kept
    before = new.detach().clone()
    model.fit(x, y, epochs=1, verbose=0)
    assert not torch.equal(new.detach(), before), "the new parameter was not updated"
    assert any(p is new for p in model.trainable_weights)


def test_fit_with_regularizers_keeps_weight_order_and_state_dict_keys(keras_ref):
    """The trainer's cache of regularized weights is not tracked: `weights`
    (and so get_weights/set_weights) keep Keras order after fit, and the
    state_dict gains no keys (keras.io "Collaborative Filtering" port)."""

    def make(lib):
        class Net(lib.Model):
            def __init__(self):
                super().__init__()
                self.first = lib.layers.Dense(2)
                self.second = lib.layers.Dense(3, kernel_regularizer=lib.regularizers.L2(1e-3))
                self.third = lib.layers.Dense(1)

            def call(self, x):
                return self.third(self.second(self.first(x)))

        return Net()

    x = np.ones((4, 5), "float32")
    paths = {}
    for lib in (keras_ref, keras):  # the same program in real Keras 3
        lib.utils.clear_session()
        model = make(lib)
        model(x)
        before = [w.path for w in model.weights]
        keys = list(model.state_dict())
        model.compile("sgd", "mse")
        model.fit(x, np.ones((4, 1), "float32"), verbose=0)
        paths[lib] = (before, [w.path for w in model.weights])
    assert paths[keras] == paths[keras_ref]  # Keras's order, before and after fit
    assert paths[keras][0] == paths[keras][1]
    assert list(model.state_dict()) == keys
