"""`model.fit` vs a hand-written PyTorch training loop, and a model call vs
`nn.Sequential` of the same layers.

fit rows: the same model (a deep copy, same initial weights), the same
optimizer class and settings, batch size and shuffling; the hand loop does
`zero_grad / forward / loss / backward / step` with torch's fused loss. Each
epoch is timed (a callback for `fit`, a clock for the loop); the two run in
interleaved rounds and the reported ratio is the median over rounds of
(fit epoch time / loop epoch time), robust to a noisy shared machine.

call rows: a built functional model and a `Sequential` of three small Dense
layers called eagerly on a tiny batch vs `nn.Sequential` of the same layers.

    python tools/bench_fit.py [--threads 1] [--rounds 7] [--device cpu] [--clock wall|cpu] [--only tiny]

`--clock cpu` times with this thread's CPU time (`time.thread_time`) instead
of the wall clock: on a shared, oversubscribed machine the wall clock also
counts the time other processes held the core, which swamps a 5% difference.
It is only meaningful on the CPU with `--threads 1` (all the work then runs
in this thread). `--only SUBSTRING` runs the rows whose name contains it.

Targets: fit <= 1.1x (jit_compile=True vs a torch.compile'd hand loop: <= 1.05x),
model call <= 1.5x.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import kerasish as keras
import kerasish.callbacks  # noqa: F401  (keras.callbacks until kerasish/__init__ imports it)
from kerasish.trainers.trainer import Trainer


class _Net(Trainer, keras.layers.Layer):
    """A subclassed model (works whether or not `keras.Model` is available)."""

    def __init__(self, layers):
        super().__init__()
        self.body = nn.ModuleList(layers)

    def call(self, x):
        for layer in self.body:
            x = layer(x)
        return x


def _model_class():
    try:
        from kerasish.models.model import Model  # noqa: F401

        class Net(Model):
            def __init__(self, layers):
                super().__init__()
                self.body = nn.ModuleList(layers)

            def call(self, x):
                for layer in self.body:
                    x = layer(x)
                return x

        probe = Net([keras.layers.Dense(2)])
        probe(torch.zeros(1, 2))
        probe.losses  # noqa: B018 (the trainer reads it)
        return Net
    except Exception:
        return _Net


def mlp():
    L = keras.layers
    return [L.Dense(256, activation="relu"), L.Dense(256, activation="relu"), L.Dense(10)]


def tiny_mlp():
    L = keras.layers
    return [L.Dense(32, activation="relu"), L.Dense(10)]


def cnn():
    L = keras.layers
    return [
        L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(2), L.Conv2D(32, 3, activation="relu"),
        L.GlobalAveragePooling2D(), L.Dense(10),
    ]


# the clock every row reads (`--clock cpu` swaps in `time.thread_time`)
_clock = time.perf_counter


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._sync()
        self._t = _clock()

    def on_epoch_end(self, epoch, logs=None):
        self._sync()
        self.times.append(_clock() - self._t)

    @staticmethod
    def _sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()


def hand_loop_epoch(model, opt, x, y, batch_size, device, accuracy=False, forward=None):
    """One epoch of the idiomatic PyTorch loop (running loss, and accuracy
    when the fit row tracks it, accumulated on the device)."""
    model.train()
    n = x.shape[0]
    perm = torch.randperm(n, device=x.device)
    total = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        opt.zero_grad()
        out = (forward if forward is not None else model)(xb)
        loss = F.cross_entropy(out, yb)
        loss.backward()
        opt.step()
        total += loss.detach() * len(yb)
        if accuracy:
            correct += (out.detach().argmax(-1) == yb).sum()
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_fit(name, make_layers, x, y, batch_size, opt_kind, rounds, device, metrics=None, jit=False):
    torch._dynamo.reset()  # each row compiles from scratch
    Net = _model_class()
    model = Net(make_layers()).to(device)
    model(torch.as_tensor(x[:2], device=device))
    twin = copy.deepcopy(model)
    if opt_kind == "torch.optim.Adam":
        opt_a = torch.optim.Adam(model.parameters(), lr=1e-3)
        opt_b = torch.optim.Adam(twin.parameters(), lr=1e-3)
    else:
        opt_a = keras.optimizers.Adam(1e-3)
        opt_b = keras.optimizers.Adam(1e-3).build(list(twin.parameters()))
    model.compile(optimizer=opt_a, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=metrics, jit_compile=jit)
    # jit rows: the hand loop runs a torch.compile'd model (the usual PyTorch way)
    forward = torch.compile(twin) if jit else None
    xt = torch.as_tensor(x, device=device)
    yt = torch.as_tensor(y, device=device)
    timer = _EpochTimer()
    model.fit(xt, yt, batch_size=batch_size, epochs=1, verbose=0)  # warm-up both
    acc = bool(metrics)
    hand_loop_epoch(twin, opt_b, xt, yt, batch_size, device, acc, forward)
    ratios, fit_t, loop_t = [], [], []
    for _ in range(rounds):
        timer.times.clear()
        model.fit(xt, yt, batch_size=batch_size, epochs=2, verbose=0, callbacks=[timer])
        f = min(timer.times)  # best of the 2 epochs, like the loop below
        t0 = _clock()
        hand_loop_epoch(twin, opt_b, xt, yt, batch_size, device, acc, forward)
        t1 = _clock()
        hand_loop_epoch(twin, opt_b, xt, yt, batch_size, device, acc, forward)
        t = min(t1 - t0, _clock() - t1)
        fit_t.append(f)
        loop_t.append(t)
        ratios.append(f / t)
    steps = -(-x.shape[0] // batch_size)
    return (name, opt_kind, statistics.median(fit_t), statistics.median(loop_t), statistics.median(ratios), steps)


def bench_call(rounds, device, n_calls=2000):
    L = keras.layers
    x = torch.randn(4, 16, device=device)
    rows = []

    def layers():
        return [L.Dense(32, activation="relu"), L.Dense(32, activation="relu"), L.Dense(8)]

    import kerasish.models as models

    Input = getattr(keras, "Input", None) or getattr(keras.layers, "Input", None)
    Model = getattr(keras, "Model", None) or getattr(models, "Model", None)
    Sequential = getattr(keras, "Sequential", None) or getattr(models, "Sequential", None)
    candidates = {}
    try:
        inp = Input(shape=(16,))
        ls = layers()
        h = inp
        for layer in ls:
            h = layer(h)
        candidates["functional Model"] = (Model(inp, h), ls)
    except Exception as e:  # pragma: no cover - depends on the models package
        rows.append(("functional Model", f"n/a ({type(e).__name__})"))
    try:
        ls = layers()
        seq = Sequential(ls)
        seq(x)
        candidates["Sequential"] = (seq, ls)
    except Exception as e:  # pragma: no cover
        rows.append(("Sequential", f"n/a ({type(e).__name__})"))
    for name, (model, ls) in candidates.items():
        model.to(device)
        ref = nn.Sequential(*ls)
        with torch.no_grad():
            if not torch.allclose(model(x), ref(x)):
                rows.append((name, "outputs differ!"))
                continue
        ratios, a_t, b_t = [], [], []
        with torch.no_grad():
            for _ in range(rounds):
                t0 = _clock()
                for _ in range(n_calls):
                    model(x)
                a = (_clock() - t0) / n_calls
                t0 = _clock()
                for _ in range(n_calls):
                    ref(x)
                b = (_clock() - t0) / n_calls
                ratios.append(a / b)
                a_t.append(a)
                b_t.append(b)
        rows.append((name, statistics.median(a_t), statistics.median(b_t), statistics.median(ratios)))
    return rows


def main(argv=None):
    global _clock
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small data, 2 rounds (smoke test)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this thread's CPU time (CPU device, --threads 1 only)")
    parser.add_argument("--only", default=None, help="run only the rows whose name contains this")
    args = parser.parse_args(argv)
    if args.clock == "cpu":
        if args.threads != 1 or args.device != "cpu":
            parser.error("--clock cpu measures this thread only: it needs --device cpu --threads 1")
        _clock = time.thread_time
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    n_mlp, n_cnn = (1024, 256) if args.quick else (16384, 2048)
    rounds = 2 if args.quick else args.rounds
    x_mlp = rng.normal(size=(n_mlp, 64)).astype("float32")
    y_mlp = rng.integers(0, 10, n_mlp).astype("int64")
    x_cnn = rng.normal(size=(n_cnn, 28, 28, 1)).astype("float32")
    y_cnn = rng.integers(0, 10, n_cnn).astype("int64")
    print(f"torch {torch.__version__}, device={device}, threads={args.threads}, rounds={rounds}, clock={args.clock}")
    specs = [
        ("MLP 64-256-256-10, bs 128", mlp, x_mlp, y_mlp, 128, "torch.optim.Adam", {}),
        ("MLP 64-256-256-10, bs 128", mlp, x_mlp, y_mlp, 128, "keras Adam", {}),
        ("MLP + accuracy metric", mlp, x_mlp, y_mlp, 128, "keras Adam", {"metrics": ["accuracy"]}),
        ("tiny MLP 64-32-10, bs 32 (overhead-bound)", tiny_mlp, x_mlp[: n_mlp // 4], y_mlp[: n_mlp // 4], 32,
         "torch.optim.Adam", {}),
        ("CNN 28x28 conv16-pool-conv32-gap-10, bs 64", cnn, x_cnn, y_cnn, 64, "torch.optim.Adam", {}),
        ("jit_compile=True MLP vs compiled loop", mlp, x_mlp, y_mlp, 128, "torch.optim.Adam", {"jit": True}),
        ("jit_compile=True CNN vs compiled loop", cnn, x_cnn, y_cnn, 64, "torch.optim.Adam", {"jit": True}),
    ]
    rows = [bench_fit(name, make, x, y, bs, opt, rounds, device, **kw)
            for name, make, x, y, bs, opt, kw in specs if args.only is None or args.only in name]
    print(f"\n{'fit benchmark':45s} {'optimizer':18s} {'steps':>5s} {'fit s/epoch':>12s} {'loop s/epoch':>13s} "
          f"{'ratio':>6s}")
    for name, opt, f, t, r, steps in rows:
        print(f"{name:45s} {opt:18s} {steps:5d} {f:12.4f} {t:13.4f} {r:6.3f}x")
    if args.only is not None and args.only not in "model call":
        return
    print(f"\n{'model call (4x16 -> 32 -> 32 -> 8, eager)':45s} {'model us':>10s} {'nn.Sequential us':>17s} {'ratio':>6s}")
    for row in bench_call(rounds, device):
        if len(row) == 2:
            print(f"{row[0]:45s} {row[1]}")
        else:
            name, a, b, r = row
            print(f"{name:45s} {a * 1e6:10.1f} {b * 1e6:17.1f} {r:6.3f}x")


if __name__ == "__main__":
    main()
