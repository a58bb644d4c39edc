"""Eager training steps of small models vs their hand-written PyTorch twins.

Where the per-call Python work of the layers shows: small batches, a torch
training loop (`zero_grad / forward / loss / backward / step`, the same
`torch.optim.SGD` on both sides), eager. Each kerasish model has a torch twin
doing the same arithmetic with torch modules (channels-last NCHW for the
kerasish NHWC convolutions). Rows:

- `cnn`: Conv2D-BatchNormalization-ReLU x3 + GlobalAveragePooling2D + Dense
  (a `keras.Sequential`, 8x16x16x3, 16 channels) vs `nn.Conv2d`/`nn.BatchNorm2d`;
- `transformer`: one encoder block, MultiHeadAttention + LayerNormalization +
  a Dense feed-forward (a subclassed Layer, 8x16x64, 4 heads) vs `nn.Linear`
  projections + `F.scaled_dot_product_attention` + `nn.LayerNorm`;
- `lstm` / `gru`: Embedding(1000, 32) + LSTM(64) / GRU(64) + Dense(5) on 8x20
  ids (a `keras.Sequential`) vs `nn.Embedding` + `nn.LSTM` / `nn.GRU`;
- `concat`: a functional model of four Dense + Concatenate blocks (a
  DenseNet-like feature stack) and a Dot of two heads, 8x32 input, vs the
  same with `torch.cat` and a batched dot product;
- `bn_train`: one BatchNormalization in training mode on 8x4x4x16 vs
  `nn.BatchNorm2d` (forward only, no_grad: the per-call cost);
- `gru_infer` / `lstm_infer`: one no-grad GRU(64) / LSTM(64) call on 8x20x32
  vs `nn.GRU` / `nn.LSTM` (the weights re-laid per call: nothing is cached).

The two sides run in interleaved rounds after a warm-up; a row reports the
median time of each and the median of the per-round ratios (robust on a
noisy shared machine).

    python tools/bench_train_steps.py [--rounds 15] [--clock cpu|wall] [--only cnn,lstm] [--profile cnn]
    python tools/bench_train_steps.py --callgrind [--steps 30] [--only cnn,lstm]

`--clock cpu` (the default) reads this thread's CPU time (`time.thread_time`),
which other processes on an oversubscribed machine do not inflate; the script
runs on the CPU with one thread. `--profile NAME` prints the top of a cProfile
of the kerasish step instead of timing.

`--callgrind` counts instructions instead (valgrind's callgrind, each side
in a child process, instrumentation switched on only around `--steps` steps
after a warm-up): deterministic, so a 2% change shows on a loaded machine
where the timed ratios move by 10%. Instructions are not time (the kernels'
memory traffic counts less), but the per-call Python and dispatch work that
this script is about follows them. Needs Linux and valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

import kerasish as keras

_clock = time.thread_time


# ------------------------------------------------------------------ models
def cnn_pair():
    layers = []
    for _ in range(3):
        layers += [keras.layers.Conv2D(16, 3, padding="same"), keras.layers.BatchNormalization(),
                   keras.layers.ReLU()]
    ours = keras.Sequential([keras.Input((16, 16, 3)), *layers, keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(10)])
    mods = []
    cin = 3
    for _ in range(3):
        mods += [nn.Conv2d(cin, 16, 3, padding=1), nn.BatchNorm2d(16, eps=1e-3, momentum=0.01), nn.ReLU()]
        cin = 16
    ref = nn.Sequential(*mods, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    ref = ref.to(memory_format=torch.channels_last)
    x = torch.randn(8, 16, 16, 3)
    xr = x.permute(0, 3, 1, 2)  # the same bytes, channels_last NCHW
    y = torch.randint(0, 10, (8,))
    return ours, ref, (x, y), (xr, y), F.cross_entropy


class KerasBlock(keras.layers.Layer):
    def __init__(self, dim, heads, **kwargs):
        super().__init__(**kwargs)
        self.mha = keras.layers.MultiHeadAttention(heads, dim // heads)
        self.ln1 = keras.layers.LayerNormalization()
        self.ff1 = keras.layers.Dense(4 * dim, activation="relu")
        self.ff2 = keras.layers.Dense(dim)
        self.ln2 = keras.layers.LayerNormalization()

    def call(self, x):
        x = self.ln1(x + self.mha(x, x))
        return self.ln2(x + self.ff2(self.ff1(x)))


class TorchBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.ln1 = nn.LayerNorm(dim, eps=1e-3)
        self.ff1 = nn.Linear(dim, 4 * dim)
        self.ff2 = nn.Linear(4 * dim, dim)
        self.ln2 = nn.LayerNorm(dim, eps=1e-3)

    def forward(self, x):
        b, t, c = x.shape
        h = self.heads

        def split(z):
            return z.view(b, t, h, c // h).transpose(1, 2)

        a = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        x = self.ln1(x + self.o(a.transpose(1, 2).reshape(b, t, c)))
        return self.ln2(x + self.ff2(F.relu(self.ff1(x))))


def transformer_pair():
    ours = KerasBlock(64, 4)
    ref = TorchBlock(64, 4)
    x = torch.randn(8, 16, 64)
    target = torch.randn(8, 16, 64)
    return ours, ref, (x, target), (x, target), F.mse_loss


class TorchRNN(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.emb = nn.Embedding(1000, 32)
        self.rnn = cell(32, 64, batch_first=True)
        self.head = nn.Linear(64, 5)

    def forward(self, ids):
        out, _ = self.rnn(self.emb(ids))
        return self.head(out[:, -1])


def _rnn_pair(kind):
    layer = keras.layers.LSTM(64) if kind == "lstm" else keras.layers.GRU(64)
    ours = keras.Sequential([keras.Input((20,), dtype="int64"), keras.layers.Embedding(1000, 32), layer,
                             keras.layers.Dense(5)])
    ref = TorchRNN(nn.LSTM if kind == "lstm" else nn.GRU)
    ids = torch.randint(0, 1000, (8, 20))
    y = torch.randint(0, 5, (8,))
    return ours, ref, (ids, y), (ids, y), F.cross_entropy


def concat_pair():
    inp = keras.Input((32,))
    h = inp
    for _ in range(4):
        h = keras.layers.Concatenate()([h, keras.layers.Dense(16, activation="relu")(h)])
    a = keras.layers.Dense(8)(h)
    b = keras.layers.Dense(8)(h)
    out = keras.layers.Dot(axes=1)([a, b])
    ours = keras.Model(inp, out)

    class TorchConcat(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(nn.Linear(32 + 16 * i, 16) for i in range(4))
            self.a = nn.Linear(96, 8)
            self.b = nn.Linear(96, 8)

        def forward(self, x):
            for block in self.blocks:
                x = torch.cat([x, F.relu(block(x))], dim=-1)
            return (self.a(x) * self.b(x)).sum(dim=1, keepdim=True)

    x = torch.randn(8, 32)
    y = torch.randn(8, 1)
    return ours, TorchConcat(), (x, y), (x, y), F.mse_loss


PAIRS = {"cnn": cnn_pair, "transformer": transformer_pair, "lstm": lambda: _rnn_pair("lstm"),
         "gru": lambda: _rnn_pair("gru"), "concat": concat_pair}


def train_step_fn(model, batch, loss_fn):
    x, y = batch
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    return step


def bn_train_pair():
    bn = keras.layers.BatchNormalization()
    x = torch.randn(8, 4, 4, 16)
    bn(x)
    bn.train()
    ref = nn.BatchNorm2d(16, eps=1e-3, momentum=0.01).train()
    xr = x.permute(0, 3, 1, 2)

    def a():
        with torch.no_grad():
            bn(x)

    def b():
        with torch.no_grad():
            ref(xr)

    return a, b


def rnn_infer_pair(kind):
    layer = keras.layers.GRU(64) if kind == "gru" else keras.layers.LSTM(64)
    ref = (nn.GRU if kind == "gru" else nn.LSTM)(32, 64, batch_first=True)
    x = torch.randn(8, 20, 32)
    layer(x)

    def a():
        with torch.no_grad():
            layer(x)

    def b():
        with torch.no_grad():
            ref(x)

    return a, b


# ----------------------------------------------------------------- timing
def _time(fn, iters):
    start = _clock()
    for _ in range(iters):
        fn()
    return (_clock() - start) / iters


def compare(a, b, rounds, iters):
    for _ in range(max(5, iters // 2)):  # warm-up
        a()
        b()
    ta, tb, ratios = [], [], []
    for _ in range(rounds):
        t_b = _time(b, iters)
        t_a = _time(a, iters)
        ta.append(t_a)
        tb.append(t_b)
        ratios.append(t_a / t_b)
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def steps(name):
    if name == "bn_train":
        return bn_train_pair()
    if name in ("gru_infer", "lstm_infer"):
        return rnn_infer_pair(name[:-6])
    ours, ref, batch_ours, batch_ref, loss_fn = PAIRS[name]()
    ours(batch_ours[0])  # build
    return train_step_fn(ours, batch_ours, loss_fn), train_step_fn(ref, batch_ref, loss_fn)


def _callgrind_child(name: str, side: str, n: int) -> None:
    a, b = steps(name)
    fn = a if side == "kerasish" else b
    for _ in range(10):  # warm every cache
        fn()
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=False)
    for _ in range(n):
        fn()
    subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True, check=False)


def callgrind_count(name: str, side: str, n: int) -> float:
    """Instructions per step of one side of a row (a child process under callgrind)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             os.path.realpath(sys.executable), os.path.abspath(__file__), "--child", f"{name}:{side}",
             "--steps", str(n)],
            capture_output=True, text=True, check=False, env=env,
        )
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or found is None:
            raise RuntimeError(f"callgrind run of {name}:{side} failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
        return int(found.group(1)) / n


ITERS = {"cnn": 20, "transformer": 20, "lstm": 20, "gru": 20, "concat": 50, "bn_train": 300, "gru_infer": 50,
         "lstm_infer": 50}


def main(argv=None):
    global _clock
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    parser.add_argument("--only", default=",".join(ITERS), help="comma-separated subset of " + ", ".join(ITERS))
    parser.add_argument("--profile", choices=tuple(ITERS), help="cProfile the kerasish step of this row")
    parser.add_argument("--callgrind", action="store_true", help="count instructions per step (valgrind)")
    parser.add_argument("--steps", type=int, default=30, help="steps counted per side with --callgrind")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.child:
        name, side = args.child.split(":")
        _callgrind_child(name, side, args.steps)
        return None
    if args.callgrind:
        if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
            parser.error("--callgrind needs valgrind (callgrind and callgrind_control) on PATH")
        print(f"torch {torch.__version__}, cpu, 1 thread, instructions per step (callgrind, {args.steps} steps)")
        print(f"{'train step':<14}{'kerasish':>14}{'torch':>14}{'ratio':>8}")
        rows = {}
        for name in args.only.split(","):
            steps_n = args.steps if name != "bn_train" else args.steps * 10
            ours = callgrind_count(name, "kerasish", steps_n)
            ref = callgrind_count(name, "torch", steps_n)
            rows[name] = ours / ref
            print(f"{name:<14}{ours:>14.0f}{ref:>14.0f}{ours / ref:>8.3f}", flush=True)
        return rows
    if args.profile:
        import cProfile
        import pstats

        a, _ = steps(args.profile)
        for _ in range(20):
            a()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(200):
            a()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(35)
        return None
    print(f"torch {torch.__version__}, cpu, 1 thread, clock {args.clock}")
    print(f"{'train step':<14}{'kerasish':>12}{'torch':>12}{'ratio':>8}")
    rows = {}
    for name in args.only.split(","):
        a, b = steps(name)
        ta, tb, ratio = compare(a, b, args.rounds, ITERS[name])
        rows[name] = ratio
        print(f"{name:<14}{ta * 1e6:>10.0f}us{tb * 1e6:>10.0f}us{ratio:>8.3f}", flush=True)
    return rows


if __name__ == "__main__":
    main()
