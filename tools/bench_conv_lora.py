"""LoRA on convolutions: which form to compute, and what kerasish's costs.

Rows (each a ratio of medians of interleaved rounds, as `bench_layers.py`):

- `merged/plain`: hand-written torch, conv with the merged kernel
  `W + s * (A @ B)` (computed per call, gradients to A and B) vs a plain conv
  of a frozen W: what LoRA costs at all.
- `factored/merged`: hand-written torch, `conv(x, W) + s * conv(x, A) @ B`
  (W frozen) vs the merged form: below 1 would favour the factored form.
- `kerasish/merged`: the kerasish layer after `enable_lora` vs the
  hand-written merged form: the layer's own overhead.

    python tools/bench_conv_lora.py [--threads 1] [--clock cpu] [--rank 4] [--small]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_layers import bench_pair  # noqa: E402

import kerasish as keras  # noqa: E402


def make_case(rank_spatial, channels, size, batch, rank, device):
    """kerasish layer with LoRA on, and the three hand-written forms (NHWC / NLC inputs)."""
    conv = {1: F.conv1d, 2: F.conv2d}[rank_spatial]
    cls = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D}[rank_spatial]
    shape = (batch, *(size,) * rank_spatial, channels)
    x = torch.randn(shape, device=device)
    layer = cls(channels, 3, padding="same")
    layer(x)
    layer.enable_lora(rank)
    with torch.no_grad():
        layer.lora_kernel_b.normal_(0, 0.05)
    layer.to(device)
    w, bias = layer._kernel, layer.bias
    a, b = layer.lora_kernel_a, layer.lora_kernel_b
    scale = layer.lora_alpha / layer.lora_rank
    # Keras (*k, in, out) -> torch (out, in, *k); NHWC/NLC data viewed channels-first
    perm = (rank_spatial + 1, rank_spatial, *range(rank_spatial))
    to_cf = (0, rank_spatial + 1, *range(1, rank_spatial + 1))
    to_cl = (0, *range(2, rank_spatial + 2), 1)

    def plain(t):
        return conv(t.permute(to_cf), w.permute(perm), bias, padding=1).permute(to_cl)

    def merged(t):
        kernel = w + scale * (a.reshape(-1, rank) @ b).reshape(w.shape)
        return conv(t.permute(to_cf), kernel.permute(perm), bias, padding=1).permute(to_cl)

    def factored(t):
        tc = t.permute(to_cf)
        y = conv(tc, w.permute(perm), bias, padding=1).permute(to_cl)
        z = conv(tc, a.permute(perm), None, padding=1).permute(to_cl)
        return y + scale * (z @ b)

    torch.testing.assert_close(merged(x), layer(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(factored(x), layer(x), rtol=1e-4, atol=1e-4)
    return x, {"kerasish": layer, "plain": plain, "merged": merged, "factored": factored}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--small", action="store_true", help="smaller sizes (quick check)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: the calling thread's CPU time (needs --threads 1 on the CPU)")
    args = parser.parse_args(argv)
    if args.clock == "cpu" and (args.threads != 1 or args.device != "cpu"):
        parser.error("--clock cpu needs --threads 1 --device cpu")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    s = 4 if args.small else 1
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"torch {torch.__version__} on {where}, {args.clock} clock, LoRA rank {args.rank}")
    print(f"{'layer':<10}{'pass':<10}{'pair':<18}{'a':>11}{'b':>11}{'ratio':>8}")
    for name, spec in (("Conv1D", (1, 128 // s, 256 // s, 32 // s)), ("Conv2D", (2, 64, 56 // s, 32 // s))):
        x, forms = make_case(*spec, args.rank, device)
        for mode in ("forward", "fwd+bwd"):
            training = mode == "fwd+bwd"
            xt = x.detach().requires_grad_(training)

            def run(f, t=xt, training=training):
                if training:
                    f(t).sum().backward()
                else:
                    with torch.no_grad():
                        f(t)

            for left, right in (("merged", "plain"), ("factored", "merged"), ("kerasish", "merged")):
                ta, tb, ratio = bench_pair(lambda f=forms[left]: run(f), lambda f=forms[right]: run(f),
                                           args.rounds, sync, clock)
                print(f"{name:<10}{mode:<10}{left + '/' + right:<18}{ta * 1e3:>9.3f}ms{tb * 1e3:>9.3f}ms{ratio:>8.3f}",
                      flush=True)


if __name__ == "__main__":
    main()
