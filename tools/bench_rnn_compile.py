"""Fused RNNs under `torch.compile`: compile time and step time vs eager.

For LSTM and GRU (64 units, batch 32, 100 time steps, 32 features):
the first compiled training step (compile time included), then compiled and
eager forward+backward steps timed in interleaved rounds (median of the
per-round ratios). The fused kernel must stay one opaque op for inductor
(`kerasish::fused_rnn`); unrolled, it took ~68 s to compile and ran ~3x
slower than eager on the CPU.

    python tools/bench_rnn_compile.py [--threads 1] [--rounds 7] [--steps 100]

`--varying`: sequence lengths that change every step (10 lengths, 5 to 50,
batch 32, right-padded ids through Embedding(mask_zero=True)). For each
model: the number of compiled graphs (dynamo frames), the compile time (the
compiled steps of the first round minus eager's), and the steady-state
fwd+bwd time per round of all lengths: compiled kerasish, eager kerasish,
and a hand-written torch model (Embedding + nn.LSTM/nn.GRU on the padded
input, no mask) under torch.compile with the same lengths (mark_dynamic on
the time dim, as the trainer does).
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
    parser.add_argument("--varying", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.varying:
        return varying(args)
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


class _TorchRNN(torch.nn.Module):
    def __init__(self, kind, units=64):
        super().__init__()
        self.emb = torch.nn.Embedding(1000, 32)
        self.rnn = getattr(torch.nn, kind)(32, units, batch_first=True)
        self.out = torch.nn.Linear(units, 1)

    def forward(self, x):
        return self.out(self.rnn(self.emb(x))[0][:, -1])


def _keras_model(kind):
    layers = {
        "LSTM": lambda: [keras.layers.LSTM(64)],
        "GRU": lambda: [keras.layers.GRU(64)],
        "GRU(reset_after=False)": lambda: [keras.layers.GRU(64, reset_after=False)],
        "RNN([LSTMCell,GRUCell])": lambda: [keras.layers.RNN([keras.layers.LSTMCell(64), keras.layers.GRUCell(64)])],
    }[kind]()
    return keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(1000, 32, mask_zero=True),
                             *layers, keras.layers.Dense(1)])


def varying(args):
    from torch._dynamo.testing import CompileCounterWithBackend

    gen = torch.Generator().manual_seed(0)
    batches = []
    for n in [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]:
        x = torch.randint(1, 1000, (32, n), generator=gen)
        pad = torch.randint(0, n // 2 + 1, (32,), generator=gen)
        x[torch.arange(n)[None] >= (n - pad)[:, None]] = 0
        batches.append(x)
    print(f"torch {torch.__version__}, cpu, {args.threads} thread(s), lengths 5..50 (10), batch 32, units 64")
    print(f"{'model':<26}{'graphs':>7}{'compile s':>10}{'eager ms':>10}{'compiled ms':>12}{'c/e':>6}"
          f"{'torch c ms':>11}{'c/torch':>8}")
    for kind in ("LSTM", "GRU", "GRU(reset_after=False)", "RNN([LSTMCell,GRUCell])"):
        torch._dynamo.reset()
        model = _keras_model(kind)
        model(batches[0])
        counter = CompileCounterWithBackend("inductor")
        compiled = torch.compile(model, backend=counter)

        def run(fn, mark=False):
            t0 = time.perf_counter()
            for x in batches:
                if mark:
                    torch._dynamo.mark_dynamic(x, 1)
                fn(x).sum().backward()
            return time.perf_counter() - t0

        def keras_compiled(x):
            return compiled(x, training=True)

        def keras_eager(x):
            return model(x, training=True)

        first = run(keras_compiled)
        eager_first = run(keras_eager)
        ref_name = "GRU" if kind.startswith("GRU") else "LSTM"
        ref = _TorchRNN(ref_name)
        ref_compiled = torch.compile(ref)
        run(ref_compiled, mark=True)
        ratios, te, tc, tr = [], [], [], []
        for _ in range(args.rounds):
            e = run(keras_eager)
            c = run(keras_compiled)
            r = run(ref_compiled, mark=True)
            te.append(e)
            tc.append(c)
            tr.append(r)
            ratios.append((c / e, c / r))
        n = len(batches)
        ce = statistics.median(r[0] for r in ratios)
        cr = statistics.median(r[1] for r in ratios)
        print(f"{kind:<26}{counter.frame_count:>7}{first - eager_first:>10.1f}{statistics.median(te) / n * 1e3:>10.2f}"
              f"{statistics.median(tc) / n * 1e3:>12.2f}{ce:>6.2f}{statistics.median(tr) / n * 1e3:>11.2f}"
              f"{cr:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
