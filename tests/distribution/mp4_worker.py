"""Per-rank program of test_model_parallel.py's four-process test: a (2, 2)
["batch", "model"] mesh, where the model axis has two devices and the batch
axis two batch shards. Reads `<out>/inputs.npz`, writes `<out>/rank<r>.npz`.
"""

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))

import mp_models  # noqa: E402

import kerasish as keras  # noqa: E402

dist = keras.distribution


def main(out):
    dist.initialize()
    rank = torch.distributed.get_rank()
    torch.manual_seed(100 + rank)
    data = dict(np.load(os.path.join(out, "inputs.npz")))
    init = [data[f"cnn_w{i}"] for i in range(sum(k.startswith("cnn_w") for k in data))]
    result = {}
    # Conv2D (output channels sharded on "model") + BatchNormalization, local and `synchronized`: the
    # statistics are summed over the batch axis's group (ranks {0, 2} and {1, 3}), batches of 7 give
    # shares of 4 and 3, then 1 and 0
    for synchronized in (False, True):
        dist.set_distribution(mp_models.other_distribution(dist.DeviceMesh((2, 2), ["batch", "model"])))
        model = mp_models.cnn(synchronized=synchronized)
        model.set_weights(init)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        h = model.fit(data["cnn_x"], data["cnn_y"], batch_size=7, epochs=2, shuffle=False, verbose=0)
        tag = "sync" if synchronized else "local"
        result[f"{tag}_loss"] = np.array(h.history["loss"])
        for i, w in enumerate(model.get_weights()):
            result[f"{tag}_w{i}"] = w
        result[f"{tag}_placements"] = json.dumps(str(model.get_layer("conv2d").kernel.placements))
    np.savez(os.path.join(out, f"rank{rank}.npz"), **result)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
