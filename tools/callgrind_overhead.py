"""Instructions per call of the compiled 4x16 rows of `bench_overhead.py`,
counted by valgrind's callgrind: deterministic and unaffected by the load of a
shared machine, where the timed ratios move by +-3% from run to run.

    python tools/callgrind_overhead.py [--calls 2000] [--only torch,variables,kerasish]

Each variant runs in a child process under `valgrind --tool=callgrind
--instr-atstart=no` (so importing torch and compiling run uninstrumented, at
about 5x slowdown instead of 50x): the child compiles and warms the module
(`torch.compile(fullgraph=True)`, CPU, one thread), switches instrumentation on
with `callgrind_control -i on`, makes `--calls` calls on a 4x16 input and
switches it off. The count includes the two `callgrind_control` subprocess
calls (~0.5M instructions, ~250 per call at 2000 calls, the same for every
variant). Variants:

- `torch`: the hand-written `nn.Module` (`x @ w + b`, `nn.Parameter` weights);
- `variables`: the same module holding kerasish `TrainableVariable`s (the
  weight class's share: torch's argument parser checks tensor subclasses for
  `__torch_function__` and runs `isinstance` through the metaclass);
- `kerasish`: the kerasish layer (`Layer.__call__` pipeline, its guards);
- `linear`: `torch.nn.Linear(16, 16)`;
- `dense`: `keras.layers.Dense(16)` with the same weights (issue 10's goal:
  compiled tiny Dense <= 1.05x compiled `nn.Linear`; its ratio is printed
  against `linear`, the others against `torch`);
- `batchnorm` / `bn`: `nn.BatchNorm1d(16)` / `keras.layers.BatchNormalization()`
  in inference mode on the 4x16 input, the same statistics (`bn` vs `batchnorm`);
- `nn_embedding` / `embedding`: `nn.Embedding(100, 16)` / `keras.layers.Embedding`
  on 4x8 ids, the same table (`embedding` vs `nn_embedding`).

Instruction counts are not time, but on this per-call path (no heavy kernel)
they follow it; each variant takes 1-3 minutes. Needs Linux and valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

VARIANTS = ("torch", "variables", "kerasish", "linear", "dense", "batchnorm", "bn", "nn_embedding", "embedding")
# the variant each one's ratio is printed against
_BASE = {"dense": "linear", "bn": "batchnorm", "embedding": "nn_embedding", "linear": None, "batchnorm": None,
         "nn_embedding": None}


def child(variant: str, calls: int) -> None:
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_overhead import KerasLinear
    from bench_overhead import TorchLinear

    from kerasish.variables import TrainableVariable

    torch.set_num_threads(1)
    x = torch.randn(4, 16)
    if variant in ("batchnorm", "bn", "nn_embedding", "embedding"):
        from bench_overhead import layer_pairs

        pairs = {name: (ours, ref, inp) for name, ours, ref, inp, _ in layer_pairs(torch.device("cpu"))}
        ours, ref, inp = pairs["BatchNormalization eval" if variant in ("batchnorm", "bn") else "Embedding 4x8 ids"]
        _run(ours if variant in ("bn", "embedding") else ref, inp, calls)
        return
    if variant in ("linear", "dense"):
        import kerasish as keras

        dense = keras.layers.Dense(16)
        dense(x)
        module = dense
        if variant == "linear":
            module = torch.nn.Linear(16, 16)
            with torch.no_grad():
                module.weight.copy_(dense.kernel.T)
                module.bias.copy_(dense.bias)
        _run(module, x, calls)
        return
    ours = KerasLinear(16)
    ours(x)
    module = ours
    if variant != "kerasish":
        module = TorchLinear(ours.w, ours.b)
        if variant == "variables":
            module.w = TrainableVariable(ours.w.detach().clone(), name="w")
            module.b = TrainableVariable(ours.b.detach().clone(), name="b")
    _run(module, x, calls)


def _run(module, x, calls: int) -> None:
    import torch

    fn = torch.compile(module, fullgraph=True)
    for _ in range(50):  # compile, then warm every cache
        fn(x)
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=False)
    for _ in range(calls):
        fn(x)
    subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True, check=False)


def count(variant: str, calls: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             os.path.realpath(sys.executable), os.path.abspath(__file__), "--child", variant, "--calls", str(calls)],
            capture_output=True, text=True, check=False,
        )
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or found is None:
            raise RuntimeError(f"callgrind run of {variant!r} failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
        return int(found.group(1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.calls)
        return None
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        parser.error("needs valgrind (callgrind and callgrind_control) on PATH")
    chosen = [v for v in args.only.split(",") if v]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; expected some of {list(VARIANTS)}")
    per_call = {}
    print(f"{'compiled 4x16':<14}{'instr/call':>12}{'vs torch':>10}  (dense: vs linear)")
    for variant in chosen:
        per_call[variant] = count(variant, args.calls) / args.calls
        base = per_call.get(_BASE.get(variant, "torch"))
        ratio = f"{per_call[variant] / base:>10.4f}" if base else f"{'':>10}"
        print(f"{variant:<14}{per_call[variant]:>12.0f}{ratio}", flush=True)
    return per_call


if __name__ == "__main__":
    main()
