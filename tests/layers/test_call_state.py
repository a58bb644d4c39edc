"""Call state (training mode, losses, build device, name scope, weight casts)
belongs to the calling thread: threads using kerasish at once give the same
results as the same calls made one after the other."""

import asyncio
import sys
import threading
import time

import numpy as np
import pytest
import torch

import kerasish as keras


@pytest.fixture(autouse=True)
def _switch_often():
    """Thread switches every few microseconds, so races show up in a short test."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


class ModeProbe(keras.layers.Layer):
    """Adds 1000 to its input when it runs in training mode."""

    def call(self, inputs, training=None):
        return inputs + (1000.0 if training else 0.0)


class Nest(keras.layers.Layer):
    """A sublayer inside a sublayer: the probe inherits through two calls."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3, kernel_initializer="ones")
        self.probe = ModeProbe()

    def call(self, inputs):
        return self.probe(self.dense(inputs))


def _run_threads(n, target):
    errors = []
    barrier = threading.Barrier(n)

    def wrapped(i):
        try:
            barrier.wait()
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_mixed_mode_calls_in_8_threads_match_single_thread():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), Nest()])
    x = torch.randn(2, 4)
    modes = [None, True, False]
    with torch.no_grad():
        expected = {m: model(x, training=m) for m in modes}
    # the probe's mode shows in the outputs: 1000 apart
    assert (expected[True] - expected[False]).sub(1000).abs().max() < 1e-3
    torch.testing.assert_close(expected[None], expected[False])  # layers start in inference mode
    calls = 300
    wrong = [0] * 8

    def work(i):
        with torch.no_grad():
            for k in range(calls):
                mode = modes[(i + k) % 3]
                if not torch.equal(model(x, training=mode), expected[mode]):
                    wrong[i] += 1

    _run_threads(8, work)
    assert wrong == [0] * 8


def test_fit_and_predict_on_two_models_in_threads():
    """`fit` on A while another thread predicts with B: A trains exactly as
    alone (its activity regularizer counted at every step) and B predicts the
    same numbers as alone (in inference mode)."""

    def make_a():
        torch.manual_seed(1)
        m = keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(8, activation="tanh", activity_regularizer="l2"), keras.layers.Dense(1)]
        )
        m.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        return m

    torch.manual_seed(2)
    b = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8), keras.layers.Dropout(0.5), keras.layers.Dense(2)])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    xb = rng.normal(size=(16, 6)).astype("float32")

    alone = make_a()
    alone.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    expected_b = b.predict(xb, verbose=0)

    together = make_a()
    preds = []
    done = threading.Event()

    def predict_loop(_):
        while not done.is_set() or not preds:
            preds.append(b.predict(xb, verbose=0))

    def fit(_):
        try:
            together.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
        finally:
            done.set()

    _run_threads(2, lambda i: (fit if i == 0 else predict_loop)(i))
    for w_alone, w_together in zip(alone.get_weights(), together.get_weights()):
        np.testing.assert_allclose(w_together, w_alone, rtol=1e-5, atol=1e-6)
    for p in preds:
        np.testing.assert_allclose(p, expected_b, rtol=1e-5, atol=1e-6)


class SlowBuilder(keras.layers.Layer):
    """Creates a sublayer and a weight in `build`, sleeping in between so that
    other threads build at the same time."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = keras.layers.Dense(units)

    def build(self, input_shape):
        time.sleep(0.002)
        self.inner.build(input_shape)
        time.sleep(0.002)
        self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale")

    def call(self, inputs):
        return self.inner(inputs) * self.scale


def test_concurrent_building_gives_each_model_its_own_paths():
    n = 8
    layers = [SlowBuilder(3, name=f"outer{i}") for i in range(n)]
    inner_names = [layer.inner.name for layer in layers]
    assert len(set(inner_names)) == n  # auto names stay unique across threads

    def build(i):
        for _ in range(3):
            time.sleep(0.001)
        layers[i](torch.ones(2, 5))

    _run_threads(n, build)
    for i, layer in enumerate(layers):
        paths = sorted(w.path for w in layer.weights)
        assert paths == sorted(
            [f"outer{i}/scale", f"outer{i}/{inner_names[i]}/kernel", f"outer{i}/{inner_names[i]}/bias"]
        )


def test_concurrent_auto_names_are_unique():
    names = [[] for _ in range(8)]

    def make(i):
        for _ in range(50):
            names[i].append(keras.layers.Dense(1).name)

    _run_threads(8, make)
    flat = [n for per in names for n in per]
    assert len(set(flat)) == len(flat) == 400


def test_mixed_precision_cast_does_not_leak_to_other_threads():
    """While a mixed_bfloat16 layer's call runs in one thread, another thread
    reading the same layer's weights gets the float32 variables."""
    layer = keras.layers.Dense(4, dtype="mixed_bfloat16")
    layer.build((None, 4))
    inside = threading.Event()
    release = threading.Event()
    seen = {}

    class Hold(keras.layers.Layer):
        def call(self, x):
            inside.set()
            release.wait(5)
            return x

    hold = Hold()
    original_call = layer.call

    def slow_call(x, **kwargs):  # (Dense.call takes Keras's `training` argument)
        out = original_call(x, **kwargs)
        seen["inside"] = layer.kernel.dtype
        hold(x)
        return out

    layer.call = slow_call
    t = threading.Thread(target=lambda: layer(torch.ones(1, 4)))
    t.start()
    inside.wait(5)
    seen["other thread"] = layer.kernel.dtype
    release.set()
    t.join()
    assert seen == {"inside": torch.bfloat16, "other thread": torch.float32}


def test_asyncio_tasks_keep_their_modes():
    model = keras.Sequential([keras.Input((3,)), Nest()])
    x = torch.ones(1, 3)
    with torch.no_grad():
        expected = {m: model(x, training=m) for m in (True, False)}

    async def task(mode, out):
        for _ in range(50):
            with torch.no_grad():
                out.append(torch.equal(model(x, training=mode), expected[mode]))
            await asyncio.sleep(0)

    async def main():
        a, b = [], []
        await asyncio.gather(task(True, a), task(False, b))
        return a + b

    results = asyncio.run(main())
    assert len(results) == 100 and all(results)
