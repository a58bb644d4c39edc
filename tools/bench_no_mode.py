"""Cost of the "no mode" warning's watch (`kerasish/layers/no_mode_warning.py`).

A Sequential of Dense(16) -> BatchNormalization -> Dropout(0.5) -> Dense(16)
on a 4x16 input, called with no mode set and no `training=` (Keras's
inference), against the same network in torch (`nn.Linear`, `nn.BatchNorm1d`
in eval mode, `nn.Dropout` in eval mode) holding the same weights. Three
kerasish variants are interleaved with the torch twin in the same process,
each round timing every one of them:

- "armed": the warning not yet given (the state of a process that never
  stepped an optimizer after such a backward pass): each forward pass under
  grad mode hooks one tensor;
- "disarmed": the warning already given (or a process that never ran such a
  forward pass): the watch returns at once;
- "mode set": `model.eval()`: the pipeline never reaches the watch.

Rows: forward under grad mode (a Keras user's `model(x)` for predictions
without `no_grad`), forward + backward (the torch-loop habit, before its
first step), forward under `torch.no_grad()`. Medians of per-round ratios.

    OMP_NUM_THREADS=1 python tools/bench_no_mode.py [--rounds 21] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import kerasish as keras
from kerasish.layers import no_mode_warning


def _pair():
    torch.manual_seed(0)
    ours = keras.Sequential([keras.Input((16,)), keras.layers.Dense(16), keras.layers.BatchNormalization(),
                             keras.layers.Dropout(0.5), keras.layers.Dense(16)])
    twin = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16, eps=1e-3), nn.Dropout(0.5), nn.Linear(16, 16))
    with torch.no_grad():
        for lin, dense in ((twin[0], ours.layers[0]), (twin[3], ours.layers[3])):
            lin.weight.copy_(dense.kernel.T)
            lin.bias.copy_(dense.bias)
    twin.eval()
    return ours, twin


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--number", type=int, default=300)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    ours, twin = _pair()
    eval_copy, _ = _pair()
    eval_copy.eval()
    x = torch.randn(4, 16)

    def forward(m):
        return lambda: m(x)

    def backward(m):
        def run():
            m(x).sum().backward()
            no_mode_warning._PENDING.clear()  # (as the step after it would: the next forward watches again)
        return run

    def no_grad(m):
        def run():
            with torch.no_grad():
                m(x)
        return run

    def timed(fn, armed):
        no_mode_warning.reset()
        if not armed:
            no_mode_warning.WATCHING[0] = False
        for _ in range(20):
            fn()
        start = clock()
        for _ in range(args.number):
            fn()
        return (clock() - start) / args.number * 1e6

    print(f"torch {torch.__version__}, 1 thread, {args.clock} clock, {args.rounds} rounds of {args.number} calls")
    print(f"{'case':34s} {'armed':>8s} {'disarmed':>9s} {'mode set':>9s} {'torch':>8s}   armed/disarmed  disarmed/torch")
    for label, make in (("forward under grad", forward), ("forward + backward", backward), ("forward under no_grad", no_grad)):
        cols = {"armed": [], "disarmed": [], "mode set": [], "torch": []}
        for _ in range(args.rounds):
            cols["armed"].append(timed(make(ours), True))
            cols["torch"].append(timed(make(twin), True))
            cols["disarmed"].append(timed(make(ours), False))
            cols["mode set"].append(timed(make(eval_copy), True))
        ratio = statistics.median(a / d for a, d in zip(cols["armed"], cols["disarmed"]))
        vs_torch = statistics.median(d / t for d, t in zip(cols["disarmed"], cols["torch"]))
        med = {k: statistics.median(v) for k, v in cols.items()}
        print(f"{label:34s} {med['armed']:7.1f}us {med['disarmed']:8.1f}us {med['mode set']:8.1f}us "
              f"{med['torch']:7.1f}us   {ratio:14.3f}  {vs_torch:14.3f}")
    no_mode_warning.reset()


if __name__ == "__main__":
    main()
