"""Cost of Keras-exact seeded dropout vs torch's `nn.Dropout` (issue: seeds).

A kerasish `Dropout(seed=...)` (or any Dropout with `noise_shape`, or with
`seed=None` after `keras.utils.set_random_seed`) draws as Keras 3's torch
backend does: a fresh `torch.Generator` per call seeded from the layer's
SeedGenerator, a float32 Bernoulli mask, then `where(mask, x / keep, 0)`.
This times, in the same process and in interleaved rounds after a warm-up,
three training-mode calls against `nn.Dropout(0.5)` (the fused `F.dropout`):

- `Dropout(0.5)` unseeded, no `set_random_seed` (the common training case:
  the fused kernel on the global RNG; target <= 1.3x small, ~1.0x large);
- `Dropout(0.5, seed=1)`: the Keras-exact seeded path (explanatory);
- the bare `torch.Generator()` + `manual_seed` cost per call (explanatory).

Ratios are medians of per-round ratios, robust to a noisy shared machine.

    python tools/bench_seeded_dropout.py [--threads 1] [--rounds 15] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import kerasish as keras

_clock = time.perf_counter


def _time(fn, x, iters):
    start = _clock()
    for _ in range(iters):
        fn(x)
    return (_clock() - start) / iters


def compare(a, b, x, rounds, iters):
    for _ in range(max(3, iters // 5)):
        a(x), b(x)
    ratios, ta, tb = [], [], []
    for _ in range(rounds):
        t_b = _time(b, x, iters)
        t_a = _time(a, x, iters)
        ratios.append(t_a / t_b)
        ta.append(t_a)
        tb.append(t_b)
    return statistics.median(ratios), statistics.median(ta), statistics.median(tb)


def main():
    global _clock
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        if args.threads != 1:
            parser.error("--clock cpu needs --threads 1 (it reads this thread's CPU time)")
        _clock = time.thread_time

    torch_drop = nn.Dropout(0.5).train()
    unseeded = keras.layers.Dropout(0.5)
    seeded = keras.layers.Dropout(0.5, seed=1)

    def generator_only(x):
        torch.Generator().manual_seed(1)

    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, clock={args.clock}")
    print(f"{'case':48s} {'ratio':>7s} {'kerasish us':>12s} {'torch us':>9s}")
    for shape, iters in (((4, 16), 2000), ((256, 1024), 100)):
        x = torch.randn(*shape)
        rows = (
            ("Dropout(0.5) unseeded", lambda t: unseeded(t, training=True)),
            ("Dropout(0.5, seed=1) Keras-exact", lambda t: seeded(t, training=True)),
            ("torch.Generator().manual_seed only", generator_only),
        )
        for name, fn in rows:
            ratio, t_a, t_b = compare(fn, torch_drop, x, args.rounds, iters)
            label = f"{name} {shape[0]}x{shape[1]}"
            print(f"{label:48s} {ratio:7.2f} {t_a * 1e6:12.1f} {t_b * 1e6:9.1f}")


if __name__ == "__main__":
    main()
