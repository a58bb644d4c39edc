"""One rank of tests/test_user_patterns_9.py's DDP habit (started twice with
torchrun's environment, gloo on CPU): a kerasish Dense -> BatchNormalization
-> Dense model and its `torch.nn` twin (the BatchNormalization written from
Keras's maths: biased batch variance, moving statistics updated with
`momentum=0.99`, `epsilon=1e-3`), each trained three SGD steps on this rank's
rows under `DDP(broadcast_buffers=True)` (rank 0's moving statistics are
copied to every rank before each forward) and `broadcast_buffers=False`.
Reads `init.pt` (the kerasish weights and the data) from the output folder
and writes `final_<rank>.pt` (weights, moving statistics and eval outputs)."""

import gc
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import kerasish as keras

L = keras.layers


class KerasBatchNormTwin(nn.Module):
    """Keras's BatchNormalization over the last axis, from its maths."""

    def __init__(self, gamma, beta, momentum=0.99, epsilon=1e-3):
        super().__init__()
        self.gamma, self.beta = nn.Parameter(gamma.clone()), nn.Parameter(beta.clone())
        self.register_buffer("moving_mean", torch.zeros_like(gamma))
        self.register_buffer("moving_variance", torch.ones_like(gamma))
        self.momentum, self.epsilon = momentum, epsilon

    def forward(self, x):
        if self.training:
            mean, var = x.mean(0), x.var(0, unbiased=False)
            with torch.no_grad():
                self.moving_mean.mul_(self.momentum).add_(mean * (1 - self.momentum))
                self.moving_variance.mul_(self.momentum).add_(var * (1 - self.momentum))
        else:
            mean, var = self.moving_mean, self.moving_variance
        return (x - mean) * torch.rsqrt(var + self.epsilon) * self.gamma + self.beta


def build_kerasish(weights):
    model = keras.Sequential([keras.Input((4,)), L.Dense(6, activation="tanh"), L.BatchNormalization(),
                              L.Dense(2)])
    model.set_weights([w.numpy() for w in weights])  # (moving statistics: zeros and ones)
    return model


def build_twin(weights):
    k1, b1, gamma, beta, _, _, k2, b2 = weights
    twin = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), KerasBatchNormTwin(gamma, beta), nn.Linear(6, 2))
    with torch.no_grad():
        twin[0].weight.copy_(k1.T), twin[0].bias.copy_(b1)
        twin[3].weight.copy_(k2.T), twin[3].bias.copy_(b2)
    return twin


def state_of(model):
    if isinstance(model, keras.Sequential):
        return [w.detach().clone() for w in model.weights]  # Keras order: kernel, bias, gamma, beta, moving...
    t = model
    return [w.detach().clone() for w in (t[0].weight.T, t[0].bias, t[2].gamma, t[2].beta, t[2].moving_mean,
                                         t[2].moving_variance, t[3].weight.T, t[3].bias)]


def train(model, x, y, rank, broadcast_buffers):
    model.train()
    ddp = DDP(model, broadcast_buffers=broadcast_buffers)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xs, ys = x[rank::2], y[rank::2]  # this rank's rows (the ranks' batch statistics differ)
    for step in range(3):
        opt.zero_grad()
        rows = slice(5 * step, 5 * step + 5)
        torch.nn.functional.mse_loss(ddp(xs[rows]), ys[rows]).backward()
        opt.step()
    ddp.eval()
    with torch.no_grad():
        outputs = ddp(x)  # with the moving statistics this rank ended with
    del ddp, opt
    gc.collect()
    return state_of(model), outputs


def main(out):
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    init = torch.load(os.path.join(out, "init.pt"))
    result = {}
    for broadcast in (True, False):
        result[broadcast] = {
            "kerasish": train(build_kerasish(init["weights"]), init["x"], init["y"], rank, broadcast),
            "torch": train(build_twin(init["weights"]), init["x"], init["y"], rank, broadcast),
        }
    torch.save(result, os.path.join(out, f"final_{rank}.pt"))
    dist.barrier()
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
