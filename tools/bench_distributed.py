"""Data-parallel `fit` throughput per rank vs one process, on CPU (gloo).

Runs the same `fit` (MLP 64-256-256-10, Adam, per-rank batch `--batch`)
once in a single process and once under `keras.distribution.DataParallel`
on `--nproc` processes with a global batch of `nproc * batch`, and reports
samples/s per rank and the scaling ratio (per-rank throughput of the
distributed run / throughput of one process). Each process uses one thread.

    python tools/bench_distributed.py [--nproc 2] [--batch 64] [--epochs 3]

Goal (issue #10): ratio >= 0.8 on 2 CPU processes. On a shared machine with
fewer free cores than processes the ratio mostly measures contention.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(batch, epochs, steps):
    import numpy as np
    import torch

    import kerasish as keras

    torch.set_num_threads(1)
    keras.distribution.initialize()
    world = keras.distribution.get_device_count("cpu") if torch.distributed.is_initialized() else 1
    if world > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    global_batch = batch * world
    rng = np.random.default_rng(0)
    x = rng.normal(size=(global_batch * steps, 64)).astype("float32")
    y = rng.integers(0, 10, size=(global_batch * steps,))
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=global_batch, epochs=1, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(x, y, batch_size=global_batch, epochs=epochs, verbose=0)
    elapsed = time.perf_counter() - start
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        print(f"RESULT {batch * steps * epochs / elapsed:.1f}")


def launch(nproc, args):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(nproc):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="")  # CPU / gloo
        if nproc > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
        cmd = [sys.executable, __file__, "--worker", "--batch", str(args.batch), "--epochs", str(args.epochs),
               "--steps", str(args.steps)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    line = next(line for line in outs[0].splitlines() if line.startswith("RESULT"))
    return float(line.split()[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64, help="per-rank batch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch")
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(args.batch, args.epochs, args.steps)
        return
    single = launch(1, args)
    multi = launch(args.nproc, args)
    print(f"1 process            : {single:9.1f} samples/s")
    print(f"{args.nproc} processes (per rank): {multi:9.1f} samples/s")
    print(f"scaling per rank     : {multi / single:.2f}  (goal >= 0.8)")


if __name__ == "__main__":
    main()
