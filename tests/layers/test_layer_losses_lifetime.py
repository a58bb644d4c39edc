"""When `add_loss` tensors are dropped: at the start of the layer's own
outermost call (or of a layer containing it), never because another layer
was called. The same call sequence runs on real Keras 3 and on kerasish."""

import numpy as np
import pytest
import torch

import kerasish as keras


def _adder(ns):
    class AddsSum(ns.layers.Layer):
        def call(self, x):
            self.add_loss(ns.ops.sum(x) if hasattr(ns, "ops") else x.sum())
            return x * 2

    return AddsSum


def _values(losses):
    return [float(np.asarray(torch.as_tensor(v).detach().cpu())) for v in losses]


def _script(ns):
    """Calls in the order of a two-model train step; returns what each
    layer's `losses` holds after each step."""
    AddsSum = _adder(ns)
    a = AddsSum()
    reg = ns.layers.Dense(2, activity_regularizer=ns.regularizers.L2(0.1), kernel_initializer="ones")
    other = ns.layers.Dense(2, kernel_initializer="ones")
    model = ns.Sequential([ns.Input((3,)), ns.layers.Dense(3, kernel_initializer="ones"), a])
    x = np.ones((2, 3), "float32")
    seen = []

    def snap(tag):
        seen.append((tag, _values(a.losses), _values(reg.losses), _values(model.losses)))

    a(x)
    snap("a")
    reg(x)
    snap("reg")
    other(x)  # an unrelated layer keeps both
    snap("other")
    a(x * 2)  # a's own call replaces its tensor
    snap("a again")
    model(x)  # the model's outermost call replaces the tensors of its layers
    snap("model")
    other(x)
    snap("other again")
    a(x)  # a direct call of a sublayer replaces what the model call left
    snap("a direct")
    return seen


def test_losses_survive_unrelated_calls_like_keras(keras_ref):
    theirs = _script(keras_ref)
    ours = _script(keras)
    assert [t[0] for t in ours] == [t[0] for t in theirs]
    for (tag, *o), (_, *t) in zip(ours, theirs):
        for o_list, t_list in zip(o, t):
            np.testing.assert_allclose(o_list, t_list, rtol=1e-5, err_msg=tag)
    # the point of the fix, stated directly: b(x) does not empty a.losses
    assert ours[2][1] == ours[0][1] and ours[2][2] == ours[1][2]


def test_sublayer_called_twice_in_one_call_keeps_both(keras_ref):
    def run(ns):
        AddsSum = _adder(ns)

        class Twice(ns.layers.Layer):
            def __init__(self):
                super().__init__()
                self.inner = AddsSum()

            def call(self, x):
                return self.inner(x) + self.inner(x * 3)

        layer = Twice()
        x = np.ones((1, 2), "float32")
        out = []
        layer(x)
        out.append(_values(layer.losses))
        layer(x * 2)
        out.append(_values(layer.losses))
        return out

    assert run(keras) == run(keras_ref)


def test_two_models_train_step_keeps_both_regularizers():
    """A GAN-style step: generator, then discriminator, then a loss that reads
    both models' `losses` (empty generator losses before the fix)."""
    torch.manual_seed(0)
    gen = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activity_regularizer="l2")])
    disc = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activity_regularizer="l1")])
    z = torch.randn(8, 4)
    fake = gen(z)
    disc(fake)
    gen_reg = 0.01 * fake.square().sum() / 8  # Keras L2 default factor, divided by the batch size
    assert len(gen.losses) == 1 and len(disc.losses) == 1
    torch.testing.assert_close(gen.losses[0], gen_reg)
    total = gen.losses[0] + disc.losses[0]
    total.backward()  # the graph is intact: gradients reach the generator kernel
    assert gen.layers[0].kernel.grad is not None


def test_losses_are_per_thread():
    """A call in another thread neither sees nor drops this thread's losses."""
    import threading

    layer = _adder(keras)()
    layer(torch.ones(1, 2))
    before = _values(layer.losses)
    seen = {}

    def other():
        seen["start"] = _values(layer.losses)
        layer(torch.full((1, 2), 5.0))
        seen["after"] = _values(layer.losses)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == {"start": [], "after": [5.0 * 2]}  # sum of the (1, 2) input
    assert _values(layer.losses) == before == [1.0 * 2]


@pytest.mark.parametrize("via", ["clear_session", "own call"])
def test_losses_dropped(via):
    layer = _adder(keras)()
    layer(torch.ones(1, 2))
    if via == "clear_session":
        keras.utils.clear_session(free_memory=False)
        assert layer.losses == []
    else:
        layer(torch.zeros(1, 2))
        assert _values(layer.losses) == [0.0]


def test_losses_do_not_keep_a_deleted_layer_alive():
    import gc
    import weakref

    layer = keras.layers.Dense(2, activity_regularizer="l2")
    layer(torch.ones(1, 3))
    assert len(layer.losses) == 1
    ref = weakref.ref(layer)
    del layer
    gc.collect()
    assert ref() is None
