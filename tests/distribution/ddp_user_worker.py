"""A torch user's DDP script around a kerasish model (run once per rank with
torchrun's environment by tests/test_user_patterns_2.py): the model is built
before wrapping, a DistributedSampler feeds a hand-written loop with a kerasish
optimizer, `clip_grad_norm_` and a `StepLR`, and rank 0 saves
`model.state_dict()` with `torch.save`. Reads `init.pt` (initial weights and
data) from the output folder and writes `final.pt` there."""

import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import kerasish as keras


def build():
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])


def main(out):
    dist.init_process_group("gloo")
    init = torch.load(os.path.join(out, "init.pt"))
    model = build()
    model.set_weights([w.numpy() for w in init["weights"]])
    ddp = DDP(model)
    ds = TensorDataset(init["x"], init["y"])
    sampler = DistributedSampler(ds, shuffle=True, seed=0)
    loader = DataLoader(ds, batch_size=4, sampler=sampler)
    opt = keras.optimizers.Adam(0.05)
    opt.build(model.trainable_variables)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(ddp(xb), yb)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            sched.step()
    del ddp  # (its reducer talks to the process group: release it while the group is alive)
    if dist.get_rank() == 0:
        torch.save(model.state_dict(), os.path.join(out, "final.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
