"""ModelParallel on a (2, 2) mesh equals one process (4 CPU processes, gloo).

Too slow for the 2-core CI (tests/distribution/test_model_parallel.py runs
the (1, 2) and (2, 1) meshes there); run it by hand:

    torchrun --nproc_per_node=4 tools/check_model_parallel.py

Every rank first trains the model alone (before joining the process group),
then under `ModelParallel` with batch and model axes of size 2 (uneven batch
shares, column/row-parallel Dense, a Conv1D with sharded output channels,
Adam), and prints the largest weight / prediction differences; it exits 1
when they exceed 1e-5.
"""

import sys

import numpy as np
import torch

import kerasish as keras

dist = keras.distribution


def build():
    inp = keras.Input((5,))
    h = keras.layers.Dense(16, activation="relu", name="col")(inp)
    h = keras.layers.Dense(8, name="row")(h)
    h = keras.layers.Reshape((8, 1))(h)
    h = keras.layers.Conv1D(4, 3, name="conv")(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(inp, keras.layers.Dense(3, name="out")(h))


def fit(model, x, y):
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model.get_weights(), history.history, model.predict(x, verbose=0)


def main():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(35, 5)).astype("float32")
    y = rng.normal(size=(35, 3)).astype("float32")
    torch.manual_seed(0)
    init = build().get_weights()
    reference = build()
    reference.set_weights(init)
    ref_w, ref_h, ref_p = fit(reference, x, y)

    dist.initialize()
    mesh = dist.DeviceMesh((2, 2), ["batch", "model"])
    layout_map = dist.LayoutMap(mesh)
    layout_map[".*col/kernel"] = (None, "model")
    layout_map[".*row/kernel"] = ("model", None)
    layout_map[".*conv/kernel"] = (None, None, "model")
    dist.set_distribution(dist.ModelParallel(layout_map=layout_map))
    model = build()
    model.set_weights(init)
    w, h, p = fit(model, x, y)
    w_err = max(float(np.abs(a - b).max()) for a, b in zip(w, ref_w))
    h_err = max(abs(a - b) for k in ref_h for a, b in zip(h[k], ref_h[k]))
    p_err = float(np.abs(p - ref_p).max())
    rank = torch.distributed.get_rank()
    print(f"rank {rank}: max |weight diff| {w_err:.2e}, |history diff| {h_err:.2e}, |predict diff| {p_err:.2e}")
    return 0 if max(w_err, h_err, p_err) < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
