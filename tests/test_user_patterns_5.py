"""Habits PyTorch users bring to kerasish layers (round 5): several threads
calling one model (also its first, building call), optimizers / EMA / dtype
and memory-format moves made before the first call, torch.func and
torch.autograd.functional over conv models, torch's parametrizations and
pruning in the Keras kernel layout, hooks with kwargs, `nn.init` functions,
`eval()` then `fit`, deep copies trained apart, preprocessing layers in
DataLoader workers, `torch.autocast` around every layer family.
References: the same pattern on `torch.nn` modules holding the same weights,
the same calls made one after the other, or NumPy from the maths."""

import copy
import sys
import threading
import warnings

import numpy as np
import pytest
import torch

import kerasish

L = kerasish.layers


@pytest.fixture
def _switch_often():
    """Thread switches every few microseconds, so races show up in a short test."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def _run_threads(targets):
    errors = []
    barrier = threading.Barrier(len(targets))

    def wrapped(fn):
        try:
            barrier.wait()
            fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(fn,)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]


def _copy_dense(linear, dense):
    with torch.no_grad():
        linear.weight.copy_(dense.kernel.T)
        linear.bias.copy_(dense.bias)


def _copy_conv(conv, keras_conv):
    with torch.no_grad():
        conv.weight.copy_(keras_conv.kernel.permute(3, 2, 0, 1))  # (kh, kw, in, out) -> (out, in, kh, kw)
        conv.bias.copy_(keras_conv.bias)


# ------------------------------------------------------------------- threads
class _Net(kerasish.Model):
    def __init__(self):
        super().__init__()
        self.d1 = L.Dense(8, activation="relu")
        self.bn = L.BatchNormalization()
        self.d2 = L.Dense(3)

    def call(self, x, training=None):
        return self.d2(self.bn(self.d1(x), training=training))


def _functional():
    i = kerasish.Input((None, 5))
    return kerasish.Model(i, L.GRU(3)(L.Dense(8)(i)))


_MAKERS = {
    "sequential": (lambda: kerasish.Sequential([L.Dense(8, activation="relu"), L.BatchNormalization(), L.Dense(3)]),
                   (4, 5)),
    "subclassed": (_Net, (4, 5)),
    "functional": (_functional, (2, 3, 5)),
}


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_threads_making_the_first_call_of_one_model_build_it_once(kind, _switch_often):
    """Four threads call the same unbuilt model at once (a web server's first requests). Each gets what
    the built model computes, weights are created once, with the paths a single-threaded build gives."""
    make, shape = _MAKERS[kind]
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    kerasish.utils.clear_session()
    alone = make()
    with torch.no_grad():
        alone(x)
    want_paths = [w.path for w in alone.weights]
    for _ in range(6):  # a race, tried a few times
        kerasish.utils.clear_session()
        model = make()
        outs = [None] * 4

        def work(i):
            with torch.no_grad():
                outs[i] = model(x)

        _run_threads([lambda i=i: work(i) for i in range(4)])
        assert [w.path for w in model.weights] == want_paths
        assert len(list(model.parameters())) == len(alone.trainable_weights)
        with torch.no_grad():
            again = model(x)
        for out in outs:
            torch.testing.assert_close(out, again, rtol=0, atol=0)


def test_training_thread_and_no_grad_inference_thread_share_a_bn_model(_switch_often):
    """Thread A trains (`training=True`, grad on) while thread B predicts under `torch.no_grad` with no
    `training=`: B never sees A's mode (no dropout, no graph), and the moving statistics end where the
    same training calls made alone take them (BN's update counted once per call)."""
    torch.manual_seed(0)

    def make():
        return kerasish.Sequential([kerasish.Input((5,)), L.Dense(4), L.BatchNormalization(momentum=0.5),
                                    L.Dropout(0.5)])

    model, alone = make(), make()
    alone.set_weights(model.get_weights())
    g = torch.Generator().manual_seed(1)
    xa, xb = torch.randn(6, 5, generator=g), torch.randn(64, 5, generator=g)
    with torch.no_grad():
        expected_b = model(xb)
    steps = 60
    seen_b = []

    def train():
        for _ in range(steps):
            model(xa, training=True).sum().backward()

    def infer():
        with torch.no_grad():
            for _ in range(steps):
                out = model(xb)
                seen_b.append((out.requires_grad, bool((out == 0).any())))

    # B in inference mode draws no dropout masks: A's draws from the global generator are the ones
    # the calls made alone draw, so even A's gradients (through its dropout masks) agree
    torch.manual_seed(5)
    _run_threads([train, infer])
    torch.manual_seed(5)
    for _ in range(steps):
        alone(xa, training=True).sum().backward()
    assert seen_b == [(False, False)] * steps
    bn, bn_alone = model.layers[1], alone.layers[1]
    torch.testing.assert_close(bn.moving_mean.detach(), bn_alone.moving_mean.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(bn.moving_variance.detach(), bn_alone.moving_variance.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(model.layers[0].kernel.grad, alone.layers[0].kernel.grad, rtol=1e-5, atol=1e-6)
    # B's inference used the statistics A moved, never A's batch statistics: rerun it now, identical
    assert not torch.equal(expected_b, model(xb).detach())  # (the statistics did move)
