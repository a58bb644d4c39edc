"""Fused RNNs under `torch.compile`: compile time and step time vs eager.

For LSTM and GRU (64 units, batch 32, 100 time steps, 32 features):
the first compiled training step (compile time included), then compiled and
eager forward+backward steps timed in interleaved rounds (median of the
per-round ratios). The fused kernel must stay one opaque op for inductor
(`kerasish::fused_rnn`); unrolled, it took ~68 s to compile and ran ~3x
slower than eager on the CPU.

    python tools/bench_rnn_compile.py [--threads 1] [--rounds 7] [--steps 100]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch._functorch.config
import torch._inductor.config

import kerasish as keras


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    # compile time from scratch: no inductor/AOT caches from earlier runs
    torch._inductor.config.fx_graph_cache = False
    torch._functorch.config.enable_autograd_cache = False
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"torch {torch.__version__}, device {device}, {args.threads} thread(s), {args.steps} time steps")
    print(f"{'layer':<8}{'compile s':>10}{'eager ms':>10}{'compiled ms':>12}{'ratio':>8}")
    for name in ("LSTM", "GRU"):
        torch._dynamo.reset()
        layer = getattr(keras.layers, name)(64, return_sequences=True).to(device)
        x = torch.randn(32, args.steps, 32, device=device, requires_grad=True)
        layer(x)
        compiled = torch.compile(layer)

        def eager():
            layer(x, training=True).sum().backward()

        def comp():
            compiled(x, training=True).sum().backward()

        t0 = time.perf_counter()
        comp()
        sync()
        compile_s = time.perf_counter() - t0
        eager()
        comp()
        ratios, te, tc = [], [], []
        for _ in range(args.rounds):
            sync()
            t0 = time.perf_counter()
            eager()
            sync()
            t1 = time.perf_counter()
            comp()
            sync()
            t2 = time.perf_counter()
            te.append(t1 - t0)
            tc.append(t2 - t1)
            ratios.append((t2 - t1) / (t1 - t0))
        print(f"{name:<8}{compile_s:>10.1f}{statistics.median(te) * 1e3:>10.2f}{statistics.median(tc) * 1e3:>12.2f}"
              f"{statistics.median(ratios):>8.2f}", flush=True)


if __name__ == "__main__":
    main()
