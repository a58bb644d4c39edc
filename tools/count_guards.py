"""Counts the guards torch.compile installs for the compiled 4x16 rows of
`bench_overhead.py`: the kerasish layer and the hand-written `nn.Module`, and
`keras.layers.Dense(16)` and `torch.nn.Linear(16, 16)` (deterministic, unlike
the timings; the guards are evaluated on every call). `--layers` adds the
`--layers` pairs of `bench_overhead.py`: BatchNormalization (eval, train) vs
`nn.BatchNorm1d`, Embedding vs `nn.Embedding`, Add vs a module adding.

    python tools/count_guards.py [--show] [--layers]

`--show` prints every guard (as `TORCH_LOGS=guards` does, one per line).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import torch

import kerasish as keras

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_overhead import KerasLinear  # noqa: E402
from bench_overhead import TorchLinear  # noqa: E402
from bench_overhead import layer_pairs  # noqa: E402


def guards(module, x) -> list[str]:
    """The leaf guards of `module`'s compiled forward (one cache entry)."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    compiled(x)
    compiled(x)
    entries = _debug_get_cache_entry_list(type(module).forward.__code__)
    if not entries:  # a torch.nn module: torch.compile runs its `__call__` through a wrapper
        from torch._dynamo import external_utils

        entries = _debug_get_cache_entry_list(external_utils.wrap_inline(lambda: None).__code__)
    if len(entries) != 1:
        raise RuntimeError(f"expected one compiled entry, found {len(entries)}")
    lines = str(entries[0].guard_manager).splitlines()
    return [line.split("#")[0].rstrip() for line in lines if re.search(r"\+- (?!GuardManager|RootGuardManager)", line)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--show", action="store_true")
    parser.add_argument("--layers", action="store_true")
    args = parser.parse_args(argv)
    x = torch.randn(4, 16)
    ours = KerasLinear(16)
    ours(x)
    dense = keras.layers.Dense(16)
    dense(x)
    linear = torch.nn.Linear(16, 16)
    counts = {}
    for name, module in (("kerasish layer", ours), ("torch module", TorchLinear(ours.w, ours.b)),
                         ("kerasish Dense", dense), ("torch nn.Linear", linear)):
        found = guards(module, x)
        counts[name] = len(found)
        print(f"{name}: {len(found)} guards")
        if args.show:
            print("\n".join(found))
    if args.layers:
        for name, ours, ref, x, _ in layer_pairs(torch.device("cpu")):
            for label, module in ((f"kerasish {name}", ours), (f"torch {name}", ref)):
                found = guards(module, x)
                counts[label] = len(found)
                print(f"{label}: {len(found)} guards")
                if args.show:
                    print("\n".join(found))
    return counts


if __name__ == "__main__":
    main()
