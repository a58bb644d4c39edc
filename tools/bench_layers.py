"""kerasish layers vs the equivalent hand-written PyTorch, same process.

For each layer: forward (inference) and forward+backward (training mode),
realistic sizes, fixed thread count. kerasish and torch are timed in
interleaved rounds after a warm-up; the ratio is the median of per-round
ratios (robust on a noisy shared machine).

Both sides see the same bytes: kerasish gets channels-last (NHWC) data, the
torch module gets the same memory viewed as NCHW (torch's channels_last
memory format), so neither pays for a layout copy the other avoids.

    python tools/bench_layers.py [--threads 2] [--rounds 7] [--device cpu] [--small] [--clock cpu]

`--clock cpu` (with `--threads 1` on the CPU) times the calling thread's CPU
time (`time.thread_time`) instead of wall time: on a shared machine another
process's load then does not count as ours (wall-time ratios moved by +-5%
between runs on the shared 2-core development machine, CPU-time ratios by
about 1%). Only valid when all the work runs on the calling thread.

Target: ratio <= 1.05 for every row at realistic sizes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import kerasish as keras


class TorchMHA(nn.Module):
    """Hand-written multi-head self-attention: 4 projections + SDPA."""

    def __init__(self, dim, heads, key_dim):
        super().__init__()
        self.h, self.k = heads, key_dim
        self.q = nn.Linear(dim, heads * key_dim)
        self.kp = nn.Linear(dim, heads * key_dim)
        self.v = nn.Linear(dim, heads * key_dim)
        self.o = nn.Linear(heads * key_dim, dim)

    def forward(self, x):
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.h, self.k).transpose(1, 2)
        k = self.kp(x).view(b, t, self.h, self.k).transpose(1, 2)
        v = self.v(x).view(b, t, self.h, self.k).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.o(out.transpose(1, 2).reshape(b, t, self.h * self.k))


def cases(small: bool):
    s = 4 if small else 1
    b = 32 // s
    out = []

    def dense():
        ours = keras.layers.Dense(1024 // s)
        ref = nn.Linear(1024 // s, 1024 // s)
        x = torch.randn(256 // s, 1024 // s)
        return ours, ref, x, x

    def conv1d():
        ours = keras.layers.Conv1D(128 // s, 3, padding="same")
        ref = nn.Conv1d(128 // s, 128 // s, 3, padding=1)
        x = torch.randn(b, 256 // s, 128 // s)
        return ours, ref, x, x.permute(0, 2, 1)

    def conv2d():
        ours = keras.layers.Conv2D(64, 3, padding="same")
        ref = nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
        x = torch.randn(b, 56 // s, 56 // s, 64)
        return ours, ref, x, x.permute(0, 3, 1, 2)

    def conv2d_wide():  # ResNet50's last stage at batch 2, 96x96 input: large kernel, small activation
        ours = keras.layers.Conv2D(512 // s, 3, padding="same")
        ref = nn.Conv2d(512 // s, 512 // s, 3, padding=1).to(memory_format=torch.channels_last)
        x = torch.randn(2, 12, 12, 512 // s)
        return ours, ref, x, x.permute(0, 3, 1, 2)

    def conv2d_1x1():  # ResNet50's last expansion: 1x1, 512 -> 2048 at 3x3
        ours = keras.layers.Conv2D(2048 // s, 1)
        ref = nn.Conv2d(512 // s, 2048 // s, 1).to(memory_format=torch.channels_last)
        x = torch.randn(2, 3, 3, 512 // s)
        return ours, ref, x, x.permute(0, 3, 1, 2)

    def conv2d_transpose():  # a U-Net decoder upsampling
        ours = keras.layers.Conv2DTranspose(256 // s, 2, strides=2)
        ref = nn.ConvTranspose2d(512 // s, 256 // s, 2, stride=2).to(memory_format=torch.channels_last)
        x = torch.randn(2, 12, 12, 512 // s)
        return ours, ref, x, x.permute(0, 3, 1, 2)

    def depthwise():
        ours = keras.layers.DepthwiseConv2D(3, padding="same")
        ref = nn.Conv2d(64, 64, 3, padding=1, groups=64).to(memory_format=torch.channels_last)
        x = torch.randn(b, 56 // s, 56 // s, 64)
        return ours, ref, x, x.permute(0, 3, 1, 2)

    def lstm():
        ours = keras.layers.LSTM(256 // s, return_sequences=True)
        ref = nn.LSTM(128 // s, 256 // s, batch_first=True)
        x = torch.randn(b, 64 // s, 128 // s)
        return ours, (lambda t: ref(t)[0], ref), x, x

    def gru():
        ours = keras.layers.GRU(256 // s, return_sequences=True)
        ref = nn.GRU(128 // s, 256 // s, batch_first=True)
        x = torch.randn(b, 64 // s, 128 // s)
        return ours, (lambda t: ref(t)[0], ref), x, x

    def mha():
        ours = keras.layers.MultiHeadAttention(num_heads=8, key_dim=64 // s)
        ref = TorchMHA(512 // s, 8, 64 // s)
        x = torch.randn(b, 128 // s, 512 // s)
        return (lambda t: ours(t, t), ours), ref, x, x

    def batchnorm():
        ours = keras.layers.BatchNormalization()
        ref = nn.BatchNorm2d(64, momentum=0.01, eps=1e-3).to(memory_format=torch.channels_last)
        x = torch.randn(b, 56 // s, 56 // s, 64)
        return ours, ref, x, x.permute(0, 3, 1, 2)

    def layernorm():
        ours = keras.layers.LayerNormalization()
        ref = nn.LayerNorm(512 // s, eps=1e-3)
        x = torch.randn(b, 128 // s, 512 // s)
        return ours, ref, x, x

    for name, make in [
        ("Dense", dense), ("Conv1D", conv1d), ("Conv2D", conv2d),
        ("Conv2D 3x3 512 12x12", conv2d_wide), ("Conv2D 1x1 512->2048 3x3", conv2d_1x1),
        ("Conv2DTranspose 2x2/2 512->256", conv2d_transpose), ("DepthwiseConv2D", depthwise), ("LSTM", lstm), ("GRU", gru),
        ("MultiHeadAttention", mha), ("BatchNormalization", batchnorm), ("LayerNormalization", layernorm),
    ]:
        out.append((name, make))
    return out


def _split(obj):
    return obj if isinstance(obj, tuple) else (obj, obj)


def _timeit(fn, iters, sync, clock=time.perf_counter):
    sync()
    start = clock()
    for _ in range(iters):
        fn()
    sync()
    return (clock() - start) / iters


def bench_pair(fa, fb, rounds, sync, clock=time.perf_counter):
    fa(), fb()  # warm-up
    probe = _timeit(fb, 1, sync, clock)
    iters = max(1, min(50, int(0.2 / max(probe, 1e-6))))
    fa(), fb()
    ratios, ta, tb = [], [], []
    for _ in range(rounds):
        b = _timeit(fb, iters, sync, clock)
        a = _timeit(fa, iters, sync, clock)
        ta.append(a)
        tb.append(b)
        ratios.append(a / b)
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="smaller sizes (quick check)")
    parser.add_argument("--only", default=None, help="comma-separated layer names")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: the calling thread's CPU time (needs --threads 1 on the CPU)")
    args = parser.parse_args(argv)
    if args.clock == "cpu" and (args.threads != 1 or args.device != "cpu"):
        parser.error(f"--clock cpu times only the calling thread: it needs --threads 1 --device cpu. "
                     f"Received: --threads {args.threads} --device {args.device}")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"torch {torch.__version__} on {where}, {args.clock} clock")
    print(f"{'layer':<20}{'pass':<10}{'kerasish':>11}{'torch':>11}{'ratio':>8}")
    rows = []
    only = set(args.only.split(",")) if args.only else None
    for name, make in cases(args.small):
        if only and name not in only:
            continue
        ours, ref, x_ours, x_ref = make()
        ours_fn, ours_mod = _split(ours)
        ref_fn, ref_mod = _split(ref)
        x_ours, x_ref = x_ours.to(device), x_ref.to(device)
        ours_mod.to(device), ref_mod.to(device)
        ours_fn(x_ours)  # build
        # same bytes: NHWC seen as NCHW (channels_last), NLC seen as NCL
        x_ref = x_ours.permute(0, 3, 1, 2) if x_ours.dim() == 4 else x_ours.transpose(1, 2) if name == "Conv1D" else x_ours
        for mode in ("forward", "fwd+bwd"):
            training = mode == "fwd+bwd"
            ours_mod.train(training)
            ref_mod.train(training)
            xa = x_ours.detach().requires_grad_(training)
            xb = x_ref.detach().requires_grad_(training)

            if training:
                def fa(f=ours_fn, x=xa):
                    f(x).sum().backward()

                def fb(f=ref_fn, x=xb):
                    f(x).sum().backward()
            else:
                def fa(f=ours_fn, x=xa):
                    with torch.no_grad():
                        f(x)

                def fb(f=ref_fn, x=xb):
                    with torch.no_grad():
                        f(x)

            ta, tb, ratio = bench_pair(fa, fb, args.rounds, sync, clock)
            rows.append((name, mode, ta, tb, ratio))
            print(f"{name:<20}{mode:<10}{ta * 1e3:>9.3f}ms{tb * 1e3:>9.3f}ms{ratio:>8.3f}", flush=True)
    return rows


if __name__ == "__main__":
    main()
