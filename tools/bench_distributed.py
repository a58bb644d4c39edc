"""Data-parallel `fit` throughput per rank vs one process, on CPU (gloo),
for kerasish `DataParallel` and for hand-written torch DDP side by side.

For each per-rank batch (default 64, 512, 2048) it runs, one thread per
process, the same training (MLP 64-256-256-10, softmax cross-entropy, Adam
lr=1e-3, eps=1e-7 as in Keras):

- kerasish: `model.fit(...)` in one process on that batch, then under
  `keras.distribution.DataParallel` on `--nproc` processes with the global
  batch `nproc * batch`;
- torch: a hand-written loop (`zero_grad`, forward, loss, `backward`,
  `torch.optim.Adam.step`) in one process, then around
  `DistributedDataParallel(model)` on `--nproc` processes, each rank
  slicing its rows of the same global batch.

Both run in the same processes, alternately (`--repeats` timed rounds
each, best kept), so they see the same machine load. It prints samples/s
per rank, the per-rank scaling (distributed / one process, same
implementation) and kerasish / DDP (per-rank throughput of kerasish
DataParallel over that of DDP, and the ratio of the two scalings), then
the CPU time per step of each process (all its threads, gloo's included;
the lowest of the rounds): the work each implementation does per step,
which a busy shared machine disturbs much less than wall-clock rates.

    python tools/bench_distributed.py [--nproc 2] [--batches 64,512,2048] [--repeats 3]

Goal (issue #10): per-rank scaling >= 0.8. On a machine with fewer free
cores than processes (the 2-core CI box) gloo's all-reduce competes with
compute for the cores, which bounds the scaling of DDP itself; the
kerasish / DDP ratio is what kerasish controls.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _steps_for(batch: int) -> int:
    """Steps per epoch: ~40k samples per rank per epoch, at least 20 steps."""
    return max(20, 40960 // batch)


def _data(world, batch, steps):
    import numpy as np

    rng = np.random.default_rng(0)
    n = batch * world * steps
    return rng.normal(size=(n, 64)).astype("float32"), rng.integers(0, 10, size=(n,))


def worker(batch, epochs, rounds):
    """Times kerasish `fit` and the torch loop alternately in this process
    (`rounds` times each, best kept), so both see the same machine load."""
    import torch

    import kerasish as keras

    torch.set_num_threads(1)
    keras.distribution.initialize()
    world, rank = 1, 0
    if torch.distributed.is_initialized():
        world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    steps = _steps_for(batch)
    global_batch = batch * world
    x, y = _data(world, batch, steps)

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def kerasish_epochs(n):
        model.fit(x, y, batch_size=global_batch, epochs=n, shuffle=False, verbose=0)

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                              torch.nn.ReLU(), torch.nn.Linear(256, 10))
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)  # Keras's Adam defaults
    loss_fn = torch.nn.CrossEntropyLoss()

    def torch_epochs(n):
        for _ in range(n):
            for s in range(steps):
                rows = slice(s * global_batch + rank * batch, s * global_batch + (rank + 1) * batch)
                opt.zero_grad(set_to_none=True)
                loss_fn(net(xt[rows]), yt[rows]).backward()
                opt.step()

    best, cpu = {}, {}
    for name, fn in (("kerasish", kerasish_epochs), ("torch", torch_epochs)):
        fn(1)  # warm-up
    for _ in range(rounds):
        for name, fn in (("kerasish", kerasish_epochs), ("torch", torch_epochs)):
            if world > 1:
                torch.distributed.barrier()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn(epochs)
            rate = batch * steps * epochs / (time.perf_counter() - start)
            best[name] = max(best.get(name, 0.0), rate)
            # CPU time of this process (all its threads, gloo's included) per step: the work done,
            # which other load on a shared machine changes much less than wall time
            per_step = 1e3 * (time.process_time() - start_cpu) / (steps * epochs)
            cpu[name] = min(cpu.get(name, float("inf")), per_step)
    return best, cpu


def launch(nproc, batch, epochs, rounds):
    """`{"kerasish": samples/s, "torch": samples/s}` per rank, on rank 0 of
    `nproc` processes."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(nproc):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="",  # CPU / gloo
                   KERAS_BACKEND="torch")
        for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(key, None)
        if nproc > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--batches", str(batch),
               "--epochs", str(epochs), "--repeats", str(rounds)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=900)[0] for p in procs]
    for rank, p in enumerate(procs):
        if p.returncode != 0:
            raise RuntimeError(f"rank {rank} of {nproc} failed (exit {p.returncode})")
    line = next(line for line in outs[0].splitlines() if line.startswith("RESULT"))
    _, k, t, kc, tc = line.split()
    return {"kerasish": float(k), "torch": float(t), "kerasish_cpu": float(kc), "torch_cpu": float(tc)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--batches", default="64,512,2048", help="per-rank batches, comma-separated")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per implementation (best kept)")
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.worker:
        best, cpu = worker(batches[0], args.epochs, args.repeats)
        if os.environ.get("RANK", "0") == "0":
            print(f"RESULT {best['kerasish']:.1f} {best['torch']:.1f} {cpu['kerasish']:.4f} {cpu['torch']:.4f}")
        if "RANK" in os.environ:
            import torch

            torch.distributed.destroy_process_group()
        return
    for batch in batches:
        one = launch(1, batch, args.epochs, args.repeats)
        many = launch(args.nproc, batch, args.epochs, args.repeats)
        k1, kn, t1, tn = one["kerasish"], many["kerasish"], one["torch"], many["torch"]
        print(f"batch {batch:5d}/rank: kerasish 1p {k1:8.0f}  DP {kn:8.0f} samples/s/rank  scaling {kn / k1:.2f} | "
              f"torch 1p {t1:8.0f}  DDP {tn:8.0f}  scaling {tn / t1:.2f} | kerasish/DDP throughput {kn / tn:.2f}, "
              f"scaling {(kn / k1) / (tn / t1):.2f}", flush=True)
        print(f"            CPU ms/step/rank: kerasish 1p {one['kerasish_cpu']:.3f}  DP {many['kerasish_cpu']:.3f} | "
              f"torch 1p {one['torch_cpu']:.3f}  DDP {many['torch_cpu']:.3f} | DP - DDP "
              f"{many['kerasish_cpu'] - many['torch_cpu']:+.3f} ms (1p difference "
              f"{one['kerasish_cpu'] - one['torch_cpu']:+.3f} ms)", flush=True)
    print(f"(per-rank samples/s, {args.nproc} processes vs 1, one thread each; goal: scaling >= 0.8; kerasish and "
          f"torch alternate in the same processes, best of {args.repeats} rounds)")


if __name__ == "__main__":
    main()
