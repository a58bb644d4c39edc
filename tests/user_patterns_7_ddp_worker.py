"""One rank of tests/test_user_patterns_7.py's DDP habits (started twice with
torchrun's environment, gloo on CPU): a kerasish subclassed model with a
branch its forward never uses, and its `torch.nn` twin holding the same
weights, each trained the same way under `DDP(find_unused_parameters=True)`
with `no_sync()` gradient accumulation, and under `DDP(static_graph=True)`.
Reads `init.pt` (the kerasish weights and the data) from the output folder
and writes `final_<rank>.pt` (every weight after each run) there."""

import gc
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

import kerasish as keras

L = keras.layers


class WithAux(keras.Model):
    """A trunk and a head; `aux` is built (by `build_aux`) but its output never reaches the loss."""

    def __init__(self):
        super().__init__()
        self.trunk = L.Dense(6, activation="tanh")
        self.head = L.Dense(2)
        self.aux = L.Dense(3)

    def call(self, x):
        return self.head(self.trunk(x))

    def build_aux(self, x):
        self.aux(self.trunk(x))


class WithAuxTwin(torch.nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.trunk = torch.nn.Linear(4, 6)
        self.head = torch.nn.Linear(6, 2)
        self.aux = torch.nn.Linear(6, 3)
        with torch.no_grad():
            for i, name in enumerate(("trunk", "head", "aux")):
                getattr(self, name).weight.copy_(weights[2 * i].T)
                getattr(self, name).bias.copy_(weights[2 * i + 1])

    def forward(self, x):
        return self.head(torch.tanh(self.trunk(x)))


def build_kerasish(weights):
    model = WithAux()
    model(torch.zeros(1, 4))
    model.build_aux(torch.zeros(1, 4))
    model.set_weights([w.numpy() for w in weights])
    return model


def weights_of(model):
    if isinstance(model, WithAux):
        return [t.detach().clone() for t in (model.trunk.kernel, model.trunk.bias, model.head.kernel,
                                             model.head.bias, model.aux.kernel, model.aux.bias)]
    return [t.detach().clone() for t in (model.trunk.weight.T, model.trunk.bias, model.head.weight.T,
                                         model.head.bias, model.aux.weight.T, model.aux.bias)]


def train(model, x, y, rank, accumulate, **ddp_kwargs):
    """Three SGD steps on this rank's rows; with `accumulate`, each step sums two micro-batches'
    gradients, the first under `no_sync()` (torch refuses `no_sync` on a `static_graph` model's
    first iteration, so that run takes whole batches)."""
    ddp = DDP(model, **ddp_kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    xs, ys = x[rank::2], y[rank::2]  # this rank's rows
    for step in range(3):
        opt.zero_grad()
        if accumulate:
            for micro in range(2):
                rows = slice(6 * step + 3 * micro, 6 * step + 3 * micro + 3)
                if micro == 0:
                    with ddp.no_sync():
                        torch.nn.functional.mse_loss(ddp(xs[rows]), ys[rows]).backward()
                else:
                    torch.nn.functional.mse_loss(ddp(xs[rows]), ys[rows]).backward()
        else:
            rows = slice(6 * step, 6 * step + 6)
            torch.nn.functional.mse_loss(ddp(xs[rows]), ys[rows]).backward()
        opt.step()
    unused_grad = model.aux.kernel.grad if isinstance(model, WithAux) else model.aux.weight.grad
    del ddp, opt
    gc.collect()
    return weights_of(model), unused_grad is None


def main(out):
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    init = torch.load(os.path.join(out, "init.pt"))
    result = {}
    for how, accumulate, kwargs in (("find_unused", True, {"find_unused_parameters": True}),
                                    ("static_graph", False, {"static_graph": True})):
        result[how] = {
            "kerasish": train(build_kerasish(init["weights"]), init["x"], init["y"], rank, accumulate, **kwargs),
            "torch": train(WithAuxTwin(init["weights"]), init["x"], init["y"], rank, accumulate, **kwargs),
        }
    torch.save(result, os.path.join(out, f"final_{rank}.pt"))
    dist.barrier()
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
