"""Tensor-parallel `fit` (ModelParallel on a (1, 2) mesh) vs one process, CPU/gloo.

A wide MLP, 256 -> Dense(4096, relu) -> Dense(256) -> Dense(10), whose two
big kernels are column- and row-sharded over the "model" axis: each process
holds half of them and does half of their multiplications, at the price of
one all-gather and one all-reduce of activations per layer and step. The same
global batch runs once in one process and on `--nproc` processes (one thread
each), with and without the column -> row hand-off (without it the wide
layer's output is all-gathered); prints step time and the weight bytes each
process holds.

    python tools/bench_model_parallel.py [--nproc 2] [--batch 256] [--steps 20]

On a machine with fewer free cores than processes this mostly measures
contention; the memory column is exact.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(batch, steps, nproc, no_handoff=False):
    import numpy as np
    import torch

    import kerasish as keras

    if no_handoff:  # for comparison: every sharded Dense gathers its output (no column -> row hand-off)
        from kerasish.distribution import model_parallel

        model_parallel._handoffs = lambda model, native: set()

    torch.set_num_threads(1)
    keras.distribution.initialize()
    dist = torch.distributed.is_initialized()
    if dist:
        mesh = keras.distribution.DeviceMesh((1, nproc), ["batch", "model"])
        layout_map = keras.distribution.LayoutMap(mesh)
        layout_map[".*wide/kernel"] = (None, "model")
        layout_map[".*wide/bias"] = ("model",)
        layout_map[".*narrow/kernel"] = ("model", None)
        keras.distribution.set_distribution(keras.distribution.ModelParallel(layout_map=layout_map))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * steps, 256)).astype("float32")
    y = rng.integers(0, 10, size=(batch * steps,))
    model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(4096, activation="relu", name="wide"),
                              keras.layers.Dense(256, activation="relu", name="narrow"), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:batch * 2], y[:batch * 2], batch_size=batch, epochs=1, verbose=0)  # warm-up, lays weights out
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    elapsed = time.perf_counter() - start
    local = sum((w.to_local() if hasattr(w, "to_local") else w).numel() * 4 for w in model.weights)
    if not dist or torch.distributed.get_rank() == 0:
        print(f"RESULT {1000 * elapsed / steps:.1f} {local / 2**20:.2f}")


def launch(nproc, args, no_handoff=False):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(nproc):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="")
        if nproc > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "--worker", "--batch", str(args.batch), "--steps", str(args.steps),
             "--nproc", str(nproc)] + (["--no-handoff"] if no_handoff else []), env=env, stdout=subprocess.PIPE, text=True))
    out = [p.communicate()[0] for p in procs]
    line = next(line for o in out for line in o.splitlines() if line.startswith("RESULT"))
    ms, mib = line.split()[1:]
    return float(ms), float(mib)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--no-handoff", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(args.batch, args.steps, args.nproc, args.no_handoff)
        return
    one = launch(1, args)
    many = launch(args.nproc, args)
    gathered = launch(args.nproc, args, no_handoff=True)
    print(f"1 process:                           {one[0]:7.1f} ms/step, weights {one[1]:.2f} MiB")
    print(f"{args.nproc} processes, (1, {args.nproc}):              {many[0]:7.1f} ms/step, weights {many[1]:.2f} MiB "
          "per process")
    print(f"{args.nproc} processes, (1, {args.nproc}), no hand-off: {gathered[0]:7.1f} ms/step")


if __name__ == "__main__":
    main()
