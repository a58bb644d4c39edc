"""The CUDA data path of the trainer (`kerasish/trainers/device_feed.py`):
pinned non-blocking copies, the one-batch-ahead prefetcher, predict's
per-batch host copies. The logic is checked on the CPU through seams
(recorded `.to`/`pin_memory` calls, a fake side stream); the CUDA tests run
the real thing and skip without a GPU."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.trainers import data_adapters
from kerasish.trainers import device_feed

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def _model(d=4):
    model = keras.Sequential([keras.Input((d,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return model


def test_host_to_device_pins_and_copies_without_blocking_for_cuda(monkeypatch):
    calls = []
    real_to = torch.Tensor.to

    def fake_pin(self):
        calls.append("pin")
        return self.clone()

    def fake_to(self, *args, **kwargs):
        if args and str(args[0]).startswith("cuda"):
            calls.append(("to", str(args[0]), kwargs.get("non_blocking", False)))
            return self
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self: False)
    monkeypatch.setattr(torch.Tensor, "to", fake_to)
    batch = (np.ones((3, 4), np.float32), {"a": torch.zeros(3)})
    data_adapters.move_to_device(batch, torch.device("cuda"))
    assert calls == ["pin", ("to", "cuda", True), "pin", ("to", "cuda", True)]


def test_host_to_device_is_plain_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pytest.fail("pinned on the CPU path"))
    t = torch.ones(2)
    assert device_feed.host_to_device(t, torch.device("cpu")) is t


def test_prefetcher_is_the_identity_on_cpu():
    pulled = []

    def source():
        for i in range(3):
            pulled.append(i)
            yield i

    it = iter(device_feed.Prefetcher(source(), torch.device("cpu")))
    assert next(it) == 0 and pulled == [0]  # no lookahead
    assert list(it) == [1, 2]


class _FakeStreams:
    """Records the prefetcher's stream protocol instead of using CUDA."""

    log: list = []

    def __init__(self, device):
        self.device = device

    def producing(self):
        log = self.log

        class Ctx:
            def __enter__(self):
                log.append("side>")

            def __exit__(self, *exc):
                log.append("<side")

        return Ctx()

    def hand_over(self, batch):
        self.log.append(("wait", batch))
        return batch


def test_prefetcher_reads_one_batch_ahead_on_a_side_stream(monkeypatch):
    monkeypatch.setattr(device_feed.Prefetcher, "streams_class", _FakeStreams)
    _FakeStreams.log = log = []

    def source():
        for i in range(3):
            log.append(("produce", i))
            yield i

    it = iter(device_feed.Prefetcher(source(), torch.device("cuda")))
    assert next(it) == 0
    # batch 1 was produced (on the side stream) before batch 0 was handed out to the step
    assert log == ["side>", ("produce", 0), "<side", ("wait", 0), "side>", ("produce", 1), "<side"]
    assert list(it) == [1, 2]
    assert [e for e in log if isinstance(e, tuple) and e[0] == "wait"] == [("wait", 0), ("wait", 1), ("wait", 2)]


def test_array_adapter_prefetches_only_for_cuda(monkeypatch):
    monkeypatch.setattr(device_feed.Prefetcher, "streams_class", _FakeStreams)
    _FakeStreams.log = log = []
    moved = []
    monkeypatch.setattr(data_adapters, "move_to_device", lambda b, d: moved.append(d) or b)
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    # the dataset is above the device-resident size: every batch is copied
    monkeypatch.setattr(data_adapters, "_DEVICE_RESIDENT_BYTES", 0)
    adapter = data_adapters.ArrayDataAdapter(x, batch_size=4, device="cuda")
    batches = list(adapter)
    assert [tuple(b.shape) for b in batches] == [(4, 2), (4, 2), (2, 2)]
    assert len([e for e in log if isinstance(e, tuple)]) == 3
    assert moved == [torch.device("cuda")] * 3
    _FakeStreams.log = log = []
    assert len(list(data_adapters.ArrayDataAdapter(x, batch_size=4, device="cpu"))) == 3
    assert log == []


def test_generators_are_never_read_ahead(monkeypatch):
    monkeypatch.setattr(device_feed.Prefetcher, "streams_class", _FakeStreams)
    _FakeStreams.log = []
    monkeypatch.setattr(data_adapters, "move_to_device", lambda b, d: b)

    def gen():
        for i in range(5):
            yield torch.full((2, 1), float(i))

    adapter = data_adapters.IterableDataAdapter(gen(), device="cuda")
    it = iter(data_adapters.EpochIterator(adapter, steps_per_epoch=2))
    assert [float(b[0, 0]) for _, b in it] == [0.0, 1.0]
    assert _FakeStreams.log == []
    # a new pass replays the two batches peeked at up front (Keras 3), then
    # continues exactly where the generator stopped: nothing read ahead
    assert [float(b[0, 0]) for _, b in data_adapters.EpochIterator(adapter, steps_per_epoch=3)] == [0.0, 1.0, 2.0]


def test_predict_does_not_keep_each_batch_output(monkeypatch):
    """The loop keeps host copies only: the step's output tensors are freed
    batch by batch (on CUDA they are device memory)."""
    model = _model()
    x = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    expected = model.predict(x, batch_size=4, verbose=0)
    refs = []

    class Probe(keras.callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            refs.append(weakref.ref(logs["outputs"]))

    monkeypatch.setattr(device_feed.DeviceToHost, "__call__", lambda self, t: t.detach().clone())
    out = model.predict(x, batch_size=4, verbose=0, callbacks=[Probe()])
    gc.collect()
    assert len(refs) == 3 and all(r() is None for r in refs)
    np.testing.assert_array_equal(out, expected)


def test_predict_output_matches_direct_call():
    model = _model()
    x = np.random.default_rng(1).normal(size=(10, 4)).astype(np.float32)
    out = model.predict(x, batch_size=3, verbose=0)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-6)


@CUDA
def test_cuda_predict_memory_stays_flat():
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(4096)]).to("cuda")
    x = np.ones((64 * 64, 64), np.float32)  # outputs: 64 MiB in total, 1 MiB per batch
    model.predict(x[:64], batch_size=64, verbose=0)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = model.predict(x, batch_size=64, verbose=0)
    peak = torch.cuda.max_memory_allocated() - base
    assert out.shape == (4096, 4096)
    assert peak < 16 * 2**20, f"predict held {peak / 2**20:.1f} MiB on the GPU"
    with torch.no_grad():
        ref = model(torch.from_numpy(x[:64]).cuda()).cpu().numpy()
    np.testing.assert_allclose(out[:64], ref, rtol=1e-5, atol=1e-5)


@CUDA
def test_cuda_fit_with_prefetch_equals_resident_data(monkeypatch):
    x = np.random.default_rng(2).normal(size=(256, 4)).astype(np.float32)
    y = x.sum(1, keepdims=True).repeat(2, 1)
    a = _model().to("cuda")
    b = _model().to("cuda")
    b.set_weights(a.get_weights())
    ha = a.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    monkeypatch.setattr(data_adapters, "_DEVICE_RESIDENT_BYTES", 0)  # copy + prefetch every batch
    hb = b.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6)


@CUDA
def test_cuda_fit_steps_do_not_sync_the_host_every_batch():
    """With torch's sync debug mode, a fit epoch of 16 batches (data resident
    on the GPU, no progress bar) must not synchronize once per batch."""
    import warnings

    x = np.random.default_rng(3).normal(size=(512, 4)).astype(np.float32)
    y = x[:, :2].copy()
    model = _model().to("cuda")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # builds the optimizer and metrics
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) < 16, f"{len(syncs)} host syncs in 16 steps: {[str(w.message)[:80] for w in syncs[:3]]}"
