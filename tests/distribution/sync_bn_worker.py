"""A torch user's DDP script with `SyncBatchNorm.convert_sync_batchnorm` over a
kerasish model holding BatchNormalization (run once per rank with torchrun's
environment by tests/test_user_patterns_4.py): each rank trains one SGD step
on its half of the batch; rank 0 saves the state_dict. Reads `init.pt`
(initial weights and data) from the output folder, writes `final.pt`."""

import gc
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

import kerasish as keras


def build():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(6), keras.layers.BatchNormalization(momentum=0.9),
                             keras.layers.Dense(2)])


def main(out):
    # a rendezvous file in this test's own folder: no TCP port that another job on the machine may take
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", init_method=f"file://{os.path.join(out, 'rendezvous')}", rank=rank,
                            world_size=world)
    init = torch.load(os.path.join(out, "init.pt"))
    model = build()
    model.set_weights([w.numpy() for w in init["weights"]])
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp = DDP(model)
    ddp.train()
    n = init["x"].shape[0] // world
    xb, yb = init["x"][rank * n:(rank + 1) * n], init["y"][rank * n:(rank + 1) * n]
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    loss = torch.nn.functional.mse_loss(ddp(xb), yb)
    loss.backward()
    opt.step()
    if rank == 0:
        torch.save(model.state_dict(), os.path.join(out, "final.pt"))
    # DDP's reducer holds the gloo group: drop it before the group goes (a DDP object collected after
    # destroy_process_group can hang the process at exit under load)
    del ddp, opt, loss
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
