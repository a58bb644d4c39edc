"""fit() caches the (weight, regularizer) pairs of a model's regularization
losses; the cache must stay invisible: no change to `weights` order (Keras's
`get_weights()` layout) and no extra `state_dict()` entries."""

import numpy as np
import torch

import kerasish as keras


def _model(lib=keras):
    inp = lib.Input((4,))
    x = lib.layers.Dense(3)(inp)
    out = lib.layers.Dense(2, kernel_regularizer=lib.regularizers.l2(1e-2))(x)
    return lib.Model(inp, out)


def test_fit_keeps_weights_order_and_state_dict_keys(keras_ref):
    keras_ref.utils.clear_session()
    ref = _model(keras_ref)
    model = _model()
    paths = [w.path for w in model.weights]
    keys = list(model.state_dict())
    assert paths == [w.path for w in ref.weights] == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
    for m in (ref, model):
        m.compile("sgd", "mse")
        m.fit(np.ones((4, 4), "float32"), np.zeros((4, 2), "float32"), verbose=0)
    assert [w.path for w in model.weights] == [w.path for w in ref.weights] == paths  # as in real Keras 3
    assert list(model.state_dict()) == keys
    fresh = _model()
    fresh.load_state_dict(model.state_dict())  # strict: same keys both ways
    model.load_state_dict(fresh.state_dict())


def test_regularization_loss_still_counted_after_caching():
    model = _model()
    model.compile("sgd", "mse")
    x, y = np.ones((4, 4), "float32"), np.zeros((4, 2), "float32")
    model.fit(x, y, verbose=0)
    kernel = model.layers[-1].kernel
    expected = torch.mean(torch.square(model(torch.as_tensor(x)))).item() + 1e-2 * kernel.square().sum().item()
    assert np.isclose(model.evaluate(x, y, verbose=0), expected, rtol=1e-5)
