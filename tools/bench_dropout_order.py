"""Cost of drawing an unseeded Dropout's mask in Keras's memory order.

After `keras.utils.set_random_seed`, a Dropout that follows (in a Sequential
or functional model) a layer Keras 3's torch backend leaves channels-first in
memory (pooling, rank-1 and transposed convolutions on channels_last data)
draws its mask channels-first, as Keras does (`kerasish/layers/regularization/
dropout.py`). This script times, in interleaved rounds on this thread's CPU
time (`time.thread_time`, one thread), three sides:

- `keras order`: kerasish with that path on (the Dropout's `_keras_cf_input`);
- `torch order`: the same kerasish model with it off (plain `F.dropout`, what
  runs without `set_random_seed`);
- `torch twin`: hand-written torch modules on the same bytes (channels_last).

Rows: the dropout call alone (forward+backward) on a pooled activation, and
training steps (SGD, cross-entropy) of Conv-MaxPool-Dropout x2 CNNs, 2-D
(64x28x28x1, MNIST-like) and 1-D (64x128x1, FordA-like).

    OMP_NUM_THREADS=1 python tools/bench_dropout_order.py [--rounds 11]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import kerasish as keras
from kerasish.layers.regularization.dropout import _dropout_channels_first

_clock = time.thread_time


def _time(fn, iters):
    start = _clock()
    for _ in range(iters):
        fn()
    return (_clock() - start) / iters


def compare(fns, rounds, iters):
    for f in fns:
        f()
        f()
    times = [[] for _ in fns]
    for _ in range(rounds):
        for i, f in enumerate(fns):
            times[i].append(_time(f, iters))
    medians = [statistics.median(t) for t in times]
    # per-round ratios against the last side (robust on a loaded machine)
    ratios = [statistics.median([a / b for a, b in zip(times[i], times[-1])]) for i in range(len(fns) - 1)]
    return medians, ratios


def _set_keras_order(model, on):
    for m in model.modules():
        if "_keras_cf_input" in m.__dict__:
            m.__dict__.setdefault("_bench_flag", m._keras_cf_input)
            m._keras_cf_input = m.__dict__["_bench_flag"] and on


def cnn_pair(rank):
    if rank == 2:
        ours = keras.Sequential([
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(2), keras.layers.Dropout(0.25),
            keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(2), keras.layers.Dropout(0.25),
            keras.layers.Flatten(), keras.layers.Dense(10)])
        ref = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
                            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
                            nn.Flatten(), nn.Linear(64 * 5 * 5, 10)).to(memory_format=torch.channels_last)
        x = torch.randn(64, 28, 28, 1)
        xr = x.permute(0, 3, 1, 2)
        y = torch.randint(0, 10, (64,))
    else:
        ours = keras.Sequential([
            keras.Input((128, 1)),
            keras.layers.Conv1D(64, 3, padding="same", activation="relu"), keras.layers.MaxPooling1D(2),
            keras.layers.Dropout(0.3),
            keras.layers.Conv1D(64, 3, padding="same", activation="relu"), keras.layers.MaxPooling1D(2),
            keras.layers.Dropout(0.3),
            keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
        ref = nn.Sequential(nn.Conv1d(1, 64, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.Dropout(0.3),
                            nn.Conv1d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.Dropout(0.3),
                            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, 2))
        x = torch.randn(64, 128, 1)
        xr = x.transpose(1, 2)
        y = torch.randint(0, 2, (64,))
    return ours, ref, x, xr, y


def train_row(rank, rounds):
    ours, ref, x, xr, y = cnn_pair(rank)
    ours(x)

    def step_fn(model, inp, keras_order=None):
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        model.train()

        def step():
            if keras_order is not None:
                _set_keras_order(model, keras_order)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(inp), y).backward()
            opt.step()

        return step

    return compare([step_fn(ours, x, True), step_fn(ours, x, False), step_fn(ref, xr)], rounds, 10)


def dropout_row(rounds):
    x = torch.randn(64, 13, 13, 32, requires_grad=True)  # the first pooled activation of the 2-D CNN

    def keras_order():
        _dropout_channels_first(x, 0.25).sum().backward()

    def torch_order():
        F.dropout(x, 0.25, True).sum().backward()

    ref = nn.Dropout(0.25).train()
    xr = x.detach().permute(0, 3, 1, 2).requires_grad_(True)

    def twin():
        ref(xr).sum().backward()

    return compare([keras_order, torch_order, twin], rounds, 20)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    keras.utils.set_random_seed(0)  # the Keras-order path runs only after it
    print(f"torch {torch.__version__}, cpu, 1 thread, thread CPU time; ratios are medians of per-round ratios")
    print(f"{'row':<26}{'keras order':>12}{'torch order':>12}{'torch twin':>12}{'k/twin':>8}{'t/twin':>8}{'k/t':>7}")
    rows = {}
    for name, run in (("dropout 64x13x13x32 f+b", lambda: dropout_row(args.rounds)),
                      ("train cnn2d pool+dropout", lambda: train_row(2, args.rounds)),
                      ("train cnn1d pool+dropout", lambda: train_row(1, args.rounds))):
        (tk, tt, tw), (rk, rt) = run()
        rows[name] = (rk, rt)
        print(f"{name:<26}{tk * 1e3:>10.2f}ms{tt * 1e3:>10.2f}ms{tw * 1e3:>10.2f}ms{rk:>8.3f}{rt:>8.3f}{tk / tt:>7.3f}",
              flush=True)
    return rows


if __name__ == "__main__":
    main()
