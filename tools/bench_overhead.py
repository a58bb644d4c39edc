"""Per-call overhead of a kerasish Layer vs the same maths in a hand-written
nn.Module (issue: foundation benchmark).

Both compute `x @ w + b` with the same weights, in the same process, eager and
under `torch.compile`, for a small (4x16) and a large (256x1024) input. The
two are timed in interleaved rounds (A, B, A, B, ...) after a warm-up, and the
reported ratio is the median of the per-round ratios, which is robust to a
noisy shared machine.

    python tools/bench_overhead.py [--threads 1] [--rounds 15] [--device cpu] [--clock wall|cpu]

Targets: small eager <= 1.3x, large eager <= 1.02x, compiled <= 1.05x.

`--clock cpu` times with this thread's CPU time (`time.thread_time`), which
a shared, oversubscribed machine does not inflate (CPU, `--threads 1` only).
The extra "compiled 4x16, torch module, kerasish weights" row runs the
hand-written module with its two parameters replaced by kerasish
`TrainableVariable`s (the `nn.Parameter` subclass every kerasish weight is):
its ratio is the part of the compiled overhead that comes from the weight
class alone, not from the Keras call pipeline.
The "Dense 4x16" rows time `keras.layers.Dense(16)` against `nn.Linear(16, 16)`
with the same weights, eager (explanatory) and compiled (issue 10's goal:
compiled tiny Dense <= 1.05x compiled nn.Linear).
The "eager 4x16, Sequential of 3 Dense" row times a container's call (the
model's own pipeline around its layers' calls) against `nn.Sequential` of
three `nn.Linear` with the same weights; no target (explanatory).
`--layers` adds explanatory rows, eager and compiled, for
`BatchNormalization` (4x16, inference and training) vs `nn.BatchNorm1d`
(same statistics and epsilon), `Embedding(100, 16)` on 4x8 ids vs
`nn.Embedding`, and `Add` on two 4x16 tensors vs a module adding them.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import kerasish as keras
from kerasish.variables import TrainableVariable


class KerasLinear(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal", name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")

    def call(self, x):
        return x @ self.w + self.b


class TorchLinear(nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w = nn.Parameter(w.detach().clone())
        self.b = nn.Parameter(b.detach().clone())

    def forward(self, x):
        return x @ self.w + self.b


# the clock every row reads (`--clock cpu` swaps in `time.thread_time`)
_clock = time.perf_counter


def _time(fn, x, iters, sync):
    sync()
    start = _clock()
    for _ in range(iters):
        fn(x)
    sync()
    return (_clock() - start) / iters


def compare(a, b, x, rounds, iters, sync):
    for _ in range(max(3, iters // 5)):  # warm-up (and compile)
        a(x), b(x)
    ratios, ta, tb = [], [], []
    for _ in range(rounds):
        t_b = _time(b, x, iters, sync)
        t_a = _time(a, x, iters, sync)
        ta.append(t_a)
        tb.append(t_b)
        ratios.append(t_a / t_b)
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def main(argv=None):
    global _clock
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this thread's CPU time (CPU device, --threads 1 only)")
    parser.add_argument("--layers", action="store_true", help="also BatchNormalization, Embedding and Add rows")
    parser.add_argument("--only-layers", action="store_true", help="only the --layers rows")
    args = parser.parse_args(argv)
    if args.clock == "cpu":
        if args.threads != 1 or args.device != "cpu":
            parser.error("--clock cpu measures this thread only: it needs --device cpu --threads 1")
        _clock = time.thread_time
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else f", {args.threads} thread(s)"))
    print(f"{'case':<34}{'kerasish':>12}{'torch':>12}{'ratio':>8}  target")
    rows = []
    if args.layers or args.only_layers:
        _layer_rows(args, device, sync)
        if args.only_layers:
            return rows
    for (n, d), iters in (((4, 16), 2000), ((256, 1024), 40 if device.type == "cpu" else 500)):
        x = torch.randn(n, d, device=device)
        ours = KerasLinear(d).to(device)
        ours(x)
        ref = TorchLinear(ours.w, ours.b).to(device)
        modes = [("eager", ours, ref, 1.3 if n == 4 else 1.02)]
        if not args.no_compile:
            modes.append(("compiled", torch.compile(ours, fullgraph=True), torch.compile(ref, fullgraph=True), 1.05))
            if n == 4:  # the weight class's share of the compiled overhead (see the docstring)
                with_vars = TorchLinear(ours.w, ours.b).to(device)
                with_vars.w = TrainableVariable(ours.w.detach().clone(), name="w")
                with_vars.b = TrainableVariable(ours.b.detach().clone(), name="b")
                modes.append(("compiled, Variable weights", torch.compile(with_vars, fullgraph=True),
                              torch.compile(ref, fullgraph=True), None))
        for mode, a, b, target in modes:
            ta, tb, ratio = compare(a, b, x, args.rounds, iters, sync)
            name = f"{mode} {n}x{d}"
            if target is None:  # an explanatory row, no target
                print(f"{name:<34}{ta * 1e6:>10.1f}us{tb * 1e6:>10.1f}us{ratio:>8.3f}")
                continue
            rows.append((name, ratio, target))
            flag = "ok" if ratio <= target else "OVER"
            print(f"{name:<34}{ta * 1e6:>10.1f}us{tb * 1e6:>10.1f}us{ratio:>8.3f}  <= {target} {flag}")
    # keras.layers.Dense vs nn.Linear (the same weights)
    x = torch.randn(4, 16, device=device)
    dense = keras.layers.Dense(16).to(device)
    dense(x)
    linear = nn.Linear(16, 16).to(device)
    with torch.no_grad():
        linear.weight.copy_(dense.kernel.T)
        linear.bias.copy_(dense.bias)
    modes = [("eager", dense, linear, None)]
    if not args.no_compile:
        modes.append(("compiled", torch.compile(dense, fullgraph=True), torch.compile(linear, fullgraph=True), 1.05))
    for mode, a, b, target in modes:
        ta, tb, ratio = compare(a, b, x, args.rounds, 2000, sync)
        name = f"{mode} 4x16 Dense vs nn.Linear"
        if target is None:
            print(f"{name:<34}{ta * 1e6:>10.1f}us{tb * 1e6:>10.1f}us{ratio:>8.3f}")
            continue
        rows.append((name, ratio, target))
        flag = "ok" if ratio <= target else "OVER"
        print(f"{name:<34}{ta * 1e6:>10.1f}us{tb * 1e6:>10.1f}us{ratio:>8.3f}  <= {target} {flag}")
    # a container's call: the model's pipeline around three hot-path Dense calls
    seq = keras.Sequential([keras.layers.Dense(16) for _ in range(3)]).to(device)
    seq(x)
    ref = nn.Sequential(*(nn.Linear(16, 16) for _ in range(3))).to(device)
    with torch.no_grad():
        for dense, linear in zip(seq.layers, ref):
            linear.weight.copy_(dense.kernel.T)
            linear.bias.copy_(dense.bias)
    ta, tb, ratio = compare(seq, ref, x, args.rounds, 2000, sync)
    print(f"{'eager 4x16, Sequential of 3 Dense':<34}{ta * 1e6:>10.1f}us{tb * 1e6:>10.1f}us{ratio:>8.3f}")
    return rows


class _TorchAdd(nn.Module):
    def forward(self, inputs):
        return inputs[0] + inputs[1]


def layer_pairs(device):
    """(name, kerasish layer, torch module, input, mode) for the `--layers` rows (and
    `count_guards.py`): the same weights and statistics in both."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 16, generator=g).to(device)
    pairs = []
    for mode in ("eval", "train"):
        bn = keras.layers.BatchNormalization(epsilon=1e-3).to(device)
        bn(x)
        ref = nn.BatchNorm1d(16, eps=1e-3, momentum=0.01).to(device)
        with torch.no_grad():
            for w in bn.weights:
                w.copy_(torch.rand(w.shape, generator=g) + 0.5)
            ref.weight.copy_(bn.gamma)
            ref.bias.copy_(bn.beta)
            ref.running_mean.copy_(bn.moving_mean)
            ref.running_var.copy_(bn.moving_variance)
        getattr(bn, mode)()
        getattr(ref, mode)()
        pairs.append((f"BatchNormalization {mode}", bn, ref, x, mode))
    ids = torch.randint(0, 100, (4, 8), generator=g).to(device)
    emb = keras.layers.Embedding(100, 16).to(device)
    emb(ids)
    ref = nn.Embedding(100, 16).to(device)
    with torch.no_grad():
        ref.weight.copy_(emb.embeddings)
    pairs.append(("Embedding 4x8 ids", emb, ref, ids, "eval"))
    add = keras.layers.Add()
    add([x, x])
    pairs.append(("Add 2x(4x16)", add, _TorchAdd(), [x, x * 2.0], "eval"))
    return pairs


def _layer_rows(args, device, sync):
    for name, ours, ref, x, mode in layer_pairs(device):
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
        cases = [("eager", ours, ref)]
        if not args.no_compile:
            cases.append(("compiled", torch.compile(ours, fullgraph=True), torch.compile(ref, fullgraph=True)))
        for kind, a, b in cases:
            context = torch.no_grad() if mode == "eval" else torch.enable_grad()
            with context:
                ta, tb, ratio = compare(a, b, x, args.rounds, 2000, sync)
            label = f"{kind} {name}"
            print(f"{label:<34}{ta * 1e6:>10.1f}us{tb * 1e6:>10.1f}us{ratio:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
