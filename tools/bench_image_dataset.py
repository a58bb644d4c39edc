"""One pass over `image_dataset_from_directory` vs a hand-written torch input
pipeline over the same files.

The hand-written pipeline is what a PyTorch user writes: a map-style
`torch.utils.data.Dataset` that opens each file with Pillow, converts it to
RGB, makes a float32 tensor and resizes it with `F.interpolate(bilinear,
align_corners=False)`, read by a `DataLoader(batch_size, shuffle=True)` in
the main process. Both read the same JPEG/PNG files (made here, in a
temporary folder, of mixed sizes), produce `(batch, h, w, 3)` float32
images and int labels, and run in interleaved rounds after a warm-up pass;
the ratio is the median over rounds of (kerasish pass / torch pass).

    PYTHONPATH=. python tools/bench_image_dataset.py [--threads 1] [--clock cpu] [--files 256] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

import kerasish as keras

_clock = time.perf_counter


def make_files(root, n, rng):
    from PIL import Image

    for c in ("a", "b", "c", "d"):
        os.makedirs(os.path.join(root, c))
    for i in range(n):
        h, w = rng.randint(120, 260), rng.randint(120, 260)
        arr = rng.randint(0, 256, size=(h, w, 3), dtype=np.uint8)
        ext = "jpg" if i % 2 else "png"
        Image.fromarray(arr).save(os.path.join(root, "abcd"[i % 4], f"{i}.{ext}"))


class TorchFolder(torch.utils.data.Dataset):
    def __init__(self, paths, labels, size):
        self.paths, self.labels, self.size = paths, labels, size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as img:
            arr = np.array(img.convert("RGB"))
        x = torch.from_numpy(arr).float().permute(2, 0, 1).unsqueeze(0)
        x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return x[0].permute(1, 2, 0), int(self.labels[i])


def one_pass(iterable):
    t0 = _clock()
    n = 0
    for x, _y in iterable:
        n += x.shape[0]
    return _clock() - t0, n


def main():
    global _clock
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--files", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if args.clock == "cpu":
        if args.threads != 1:
            parser.error("--clock cpu measures this thread only: it needs --threads 1")
        _clock = time.thread_time
    torch.set_num_threads(args.threads)
    size = (180, 180)
    with tempfile.TemporaryDirectory() as root:
        make_files(root, args.files, np.random.RandomState(0))
        ds = keras.utils.image_dataset_from_directory(root, image_size=size, batch_size=args.batch_size, seed=1,
                                                      verbose=False)
        from kerasish.utils.dataset_utils import index_directory

        paths, labels, _ = index_directory(root, "inferred", (".jpg", ".png"), seed=1, verbose=False)
        loader = torch.utils.data.DataLoader(TorchFolder(paths, labels, size), batch_size=args.batch_size,
                                             shuffle=True)
        one_pass(ds), one_pass(loader)  # warm-up (file cache, allocator)
        ours, theirs, ratios = [], [], []
        for _ in range(args.rounds):
            a, n_a = one_pass(ds)
            b, n_b = one_pass(loader)
            assert n_a == n_b == args.files
            ours.append(a)
            theirs.append(b)
            ratios.append(a / b)
    print(f"torch {torch.__version__}, threads={args.threads}, clock={args.clock}, files={args.files}, "
          f"image_size={size}, batch_size={args.batch_size}, rounds={args.rounds}")
    print(f"kerasish pass {statistics.median(ours) * 1e3:.1f} ms, torch pass {statistics.median(theirs) * 1e3:.1f} ms, "
          f"median ratio {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
