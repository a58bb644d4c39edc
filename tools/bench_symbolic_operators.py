"""Per-call cost of a functional model built with Python operators on
KerasTensors (`x * 2 + 1`, `x / 3`, `x[:, 1:]`, `x > 0`, recorded as Keras 3's
ops) vs the same maths in a hand-written nn.Module, in the same process.

Both are timed in interleaved rounds (A, B, A, B, ...) after a warm-up; the
reported ratio is the median of the per-round ratios.

    python tools/bench_symbolic_operators.py [--threads 1] [--rounds 15] [--clock wall|cpu] [--size 4x16]

`--clock cpu` times with this thread's CPU time (`time.thread_time`), which a
shared, oversubscribed machine does not inflate (`--threads 1` only).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import kerasish as keras


class TorchOps(nn.Module):
    def forward(self, x):
        y = (x * 2 + 1) * x - x / 3
        return y[:, 1:] * (x[:, 1:] > 0)


def build_model(features):
    x = keras.Input((features,))
    y = (x * 2 + 1) * x - x / 3
    return keras.Model(x, y[:, 1:] * (x[:, 1:] > 0))


def _time(fn, x, calls, clock):
    start = clock()
    for _ in range(calls):
        fn(x)
    return (clock() - start) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--size", default="4x16", help="batch x features")
    args = parser.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu needs --threads 1")
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    batch, features = (int(v) for v in args.size.split("x"))
    x = torch.randn(batch, features)
    model, reference = build_model(features), TorchOps()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))
        for fn in (model, reference):
            _time(fn, x, args.calls, clock)  # warm-up
        ratios, ours, theirs = [], [], []
        for _ in range(args.rounds):
            a = _time(model, x, args.calls, clock)
            b = _time(reference, x, args.calls, clock)
            ours.append(a)
            theirs.append(b)
            ratios.append(a / b)
    print(
        f"{args.size} functional operators model: kerasish {statistics.median(ours) * 1e6:.1f} us, "
        f"torch {statistics.median(theirs) * 1e6:.1f} us, ratio {statistics.median(ratios):.2f}x "
        f"({args.rounds} rounds, {args.calls} calls, --threads {args.threads} --clock {args.clock})"
    )


if __name__ == "__main__":
    main()
