"""kerasish's `applications.ResNet50` vs the same network hand-written in
PyTorch (nn.Conv2d / nn.BatchNorm2d / nn.MaxPool2d on channels_last memory),
with the same weights, in the same process.

Forward in inference mode, and forward+backward in training mode, timed in
interleaved rounds after a warm-up; the ratio is the median of per-round
ratios. The outputs are checked equal before timing.

    PYTHONPATH=. python tools/bench_applications.py [--threads 1] [--clock cpu] [--size 128] [--batch 4]
        [--rounds 5] [--device cpu] [--ab]

`--ab` also times a copy of the kerasish model whose conv kernels are stored
in Keras's contiguous order (`contiguous_kernels`, the layout before
`kerasish.layers.weight_layout`), interleaved in the same rounds: the
before/after of keeping kernels in torch's memory order.

`--clock cpu` (with `--threads 1` on the CPU) times the calling thread's CPU
time, so other processes' load on a shared machine does not count.

`--vs-keras NAME` instead times kerasish's `applications.NAME` against the
same application in real Keras 3 (torch backend, `KERAS_BACKEND=torch` set
here), built with the same arguments (`--size`, no top unless `--top`) and
Keras's weights copied into kerasish, in the same interleaved rounds:

    PYTHONPATH=. python tools/bench_applications.py --vs-keras NASNetMobile --size 224 --batch 1 --clock cpu

(Keras 3.15 refuses `NASNetMobile` on torch; its `NASNet` builder with
Mobile's numbers is used, the graph kerasish builds.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

import kerasish as keras

DEPTHS = (3, 4, 6, 3)
EPS = 1.001e-5  # Keras's ResNet BatchNormalization epsilon


class TorchResNet50(nn.Module):
    """ResNet50 (v1, Keras's layout: stride on the first 1x1 of a block)."""

    def __init__(self, classes):
        super().__init__()
        self.convs = nn.ModuleDict()
        self.bns = nn.ModuleDict()

        def conv_bn(name, cin, cout, k, stride=1, padding=0):
            self.convs[name] = nn.Conv2d(cin, cout, k, stride, padding)
            self.bns[name] = nn.BatchNorm2d(cout, eps=EPS, momentum=0.01)

        conv_bn("conv1", 3, 64, 7, 2, 3)
        self.blocks = []
        cin = 64
        for stage, (filters, blocks) in enumerate(zip((64, 128, 256, 512), DEPTHS), start=2):
            for b in range(1, blocks + 1):
                name = f"conv{stage}_block{b}"
                stride = 2 if b == 1 and stage > 2 else 1
                if b == 1:
                    conv_bn(f"{name}_0", cin, 4 * filters, 1, stride)
                conv_bn(f"{name}_1", cin, filters, 1, stride)
                conv_bn(f"{name}_2", filters, filters, 3, 1, 1)
                conv_bn(f"{name}_3", filters, 4 * filters, 1)
                self.blocks.append((name, b == 1))
                cin = 4 * filters
        self.pool = nn.MaxPool2d(3, 2, padding=1)  # after a ReLU: equal to Keras's zero padding + valid pool
        self.fc = nn.Linear(2048, classes)

    def _cb(self, name, x):
        return self.bns[name](self.convs[name](x))

    def forward(self, x):
        x = self.pool(torch.relu(self._cb("conv1", x)))
        for name, has_shortcut in self.blocks:
            shortcut = self._cb(f"{name}_0", x) if has_shortcut else x
            h = torch.relu(self._cb(f"{name}_1", x))
            h = torch.relu(self._cb(f"{name}_2", h))
            x = torch.relu(shortcut + self._cb(f"{name}_3", h))
        return torch.softmax(self.fc(x.mean((2, 3))), dim=-1)

    @torch.no_grad()
    def copy_from(self, model):
        for name, conv in self.convs.items():
            layer = model.get_layer(f"{name}_conv")
            conv.weight.copy_(layer.kernel.detach().permute(3, 2, 0, 1))
            conv.bias.copy_(layer.bias.detach())
            bn = model.get_layer(f"{name}_bn")
            self.bns[name].weight.copy_(bn.gamma.detach())
            self.bns[name].bias.copy_(bn.beta.detach())
            self.bns[name].running_mean.copy_(bn.moving_mean.detach())
            self.bns[name].running_var.copy_(bn.moving_variance.detach())
        dense = model.get_layer("predictions")
        self.fc.weight.copy_(dense.kernel.detach().t())
        self.fc.bias.copy_(dense.bias.detach())


def _timer(clock):
    return time.thread_time if clock == "cpu" else time.perf_counter


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ab", action="store_true")
    parser.add_argument("--vs-keras", metavar="NAME", default=None)
    parser.add_argument("--top", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.vs_keras:
        return vs_keras(args)
    now = _timer(args.clock)
    device = torch.device(args.device)

    ours = keras.applications.ResNet50(weights=None, input_shape=(args.size, args.size, 3), classes=100)
    ref = TorchResNet50(100)
    ref.copy_from(ours)
    ours.to(device)
    ref.to(device).to(memory_format=torch.channels_last)
    models = [ours, ref]
    if args.ab:
        old = keras.applications.ResNet50(weights=None, input_shape=(args.size, args.size, 3), classes=100)
        keras.utils.contiguous_weights(old)
        old.set_weights(ours.get_weights())
        old.to(device)
        models.append(old)
    x = torch.randn(args.batch, args.size, args.size, 3, device=device)
    x_ref = x.permute(0, 3, 1, 2)  # the same bytes, NCHW view in channels_last memory
    y = torch.randint(0, 100, (args.batch,), device=device)

    ours.eval()
    ref.eval()
    with torch.no_grad():
        diff = (ours(x) - ref(x_ref)).abs().max().item()
    print(f"ResNet50 {args.size}x{args.size} batch {args.batch}, {args.device}, {args.threads} thread(s), "
          f"{args.clock} clock; max |kerasish - torch| = {diff:.2e}")

    def infer(model, inp):
        with torch.no_grad():
            model(inp)

    def train_step(model, inp):
        out = model(inp) if model is ref else model(inp, training=True)
        torch.nn.functional.nll_loss(torch.log(out), y).backward()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for label, fn, mode in (("inference", infer, "eval"), ("train step", train_step, "train")):
        for model in models:
            getattr(model, mode)()
        inputs = [x_ref if model is ref else x for model in models]
        for model, inp in zip(models, inputs):  # warm-up
            fn(model, inp)
        times = [[] for _ in models]
        for _ in range(args.rounds):
            for model, inp, t in zip(models, inputs, times):
                sync()
                t0 = now()
                fn(model, inp)
                sync()
                t.append(now() - t0)
        ratios = [statistics.median(a / b for a, b in zip(t, times[1])) for t in times]
        line = (f"  {label:10s} kerasish {statistics.median(times[0]) * 1e3:8.1f} ms  torch "
                f"{statistics.median(times[1]) * 1e3:8.1f} ms  ratio {ratios[0]:.3f}")
        if args.ab:
            line += f"  | Keras-order kernels {statistics.median(times[2]) * 1e3:8.1f} ms  ratio {ratios[2]:.3f}"
        print(line, flush=True)

def _keras_application(name, kwargs):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras as real_keras

    if real_keras.backend.backend() != "torch":
        raise SystemExit(f"Keras runs on {real_keras.backend.backend()}; set KERAS_BACKEND=torch")
    real_keras.backend.clear_session()
    if name == "NASNetMobile":  # Keras 3.15 raises for it on torch; its builder makes the same graph
        from keras.src.applications import nasnet

        return nasnet.NASNet(kwargs.pop("input_shape"), penultimate_filters=1056, num_blocks=4,
                             stem_block_filters=32, skip_reduction=False, filter_multiplier=2, default_size=224,
                             name="nasnet_mobile", **kwargs)
    return getattr(real_keras.applications, name)(**kwargs)


def vs_keras(args):
    """kerasish's application vs Keras 3's (torch backend), same weights, interleaved rounds."""
    kwargs = {"weights": None, "include_top": args.top, "input_shape": (args.size, args.size, 3)}
    theirs = _keras_application(args.vs_keras, dict(kwargs))
    keras.backend.clear_session()
    ours = getattr(keras.applications, args.vs_keras)(**kwargs)
    ours.set_weights(theirs.get_weights())
    now = _timer(args.clock)
    x = torch.rand(args.batch, args.size, args.size, 3) * 2 - 1
    with torch.no_grad():
        diff = (ours(x) - theirs(x)).abs().max().item()
    print(f"{args.vs_keras} {args.size}x{args.size} batch {args.batch}, top={args.top}, cpu, {args.threads} "
          f"thread(s), {args.clock} clock; max |kerasish - Keras| = {diff:.2e}")

    def infer(model):
        with torch.no_grad():
            model(x, training=False)

    def train_step(model):
        model(x, training=True).float().square().mean().backward()

    for label, fn in (("inference", infer), ("train step", train_step)):
        for model in (ours, theirs):  # warm-up
            fn(model)
        times = ([], [])
        for _ in range(args.rounds):
            for model, t in zip((ours, theirs), times):
                t0 = now()
                fn(model)
                t.append(now() - t0)
        ratio = statistics.median(a / b for a, b in zip(*times))
        print(f"  {label:10s} kerasish {statistics.median(times[0]) * 1e3:8.1f} ms  Keras "
              f"{statistics.median(times[1]) * 1e3:8.1f} ms  ratio {ratio:.3f}", flush=True)


if __name__ == "__main__":
    main()
