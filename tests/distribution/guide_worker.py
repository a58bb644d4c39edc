"""Per-rank program of tests/distribution/test_guide.py: Keras 3's
distribution guide (keras-io `guides/distribution.py`) and the usual
Keras-on-JAX multi-device program, ported by changing `import keras` to
`import kerasish as keras` and `tf.data` to a torch `DataLoader`.

Modes (argv[2]):
- "torchrun": started by the real `torchrun --nproc_per_node=2`;
  `keras.distribution.initialize()` reads torchrun's environment. Runs the
  whole guide: DataParallel (both constructors, a scope), ModelParallel
  with the guide's LayoutMap (regex keys, an output layout, a (1, 2) and a
  (2, 1) mesh), distribute_tensor.
- "explicit": started as two plain processes with no torchrun environment;
  rank 0 calls `initialize(job_addresses=..., num_processes=2,
  process_id=0)`, rank 1 sets Keras's `KERAS_DISTRIBUTION_*` variables and
  calls `initialize()` (the two forms of Keras's docstring); then a
  DataParallel fit.

The initial weights come from `<out>/inputs.npz` (the single-process
reference in the test starts from them); results go to `<out>/rank<r>.npz`.
"""

import contextlib
import io
import json
import os
import sys
import warnings

import numpy as np
import torch

import kerasish as keras
from kerasish import layers


def guide_functional(dropout=0.4, use_bias=True, names=(None, None)):
    """The guide's functional model (Flatten, Dense 200, Dropout, Dense 10 softmax)."""
    inputs = layers.Input(shape=(28, 28, 1))
    y = layers.Flatten()(inputs)
    y = layers.Dense(units=200, use_bias=use_bias, activation="relu", name=names[0])(y)
    y = layers.Dropout(dropout)(y)
    y = layers.Dense(units=10, activation="softmax", name=names[1])(y)
    return keras.Model(inputs=inputs, outputs=y)


def guide_sequential():
    """The newer guide's Sequential model (d1, d2)."""
    return keras.Sequential([
        layers.Input(shape=(784,)),
        layers.Dense(200, activation="relu", name="d1"),
        layers.Dense(10, activation="softmax", name="d2"),
    ])


def dataset(x, y, batch_size=16):
    """The guide's `tf.data.Dataset.from_tensor_slices((x, y)).batch(16)`, in torch."""
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                       batch_size=batch_size)


def weights_of(data, prefix):
    keys = sorted((k for k in data if k.startswith(prefix + "_w")), key=lambda k: int(k.split("_w")[1]))
    return [data[k] for k in keys]


def fit_and_record(result, name, model, data, prefix, **fit_kwargs):
    model.set_weights(weights_of(data, prefix))
    model.compile(loss="mse")  # the guide's compile: Keras's default optimizer (rmsprop)
    history = model.fit(dataset(data["x"], data["y"]), epochs=3, **fit_kwargs)
    result[f"{name}_loss"] = np.array(history.history["loss"])
    result[f"{name}_evaluate"] = np.array(model.evaluate(dataset(data["x"], data["y"]), verbose=0))
    for i, w in enumerate(model.get_weights()):
        result[f"{name}_w{i}"] = w


def run_guide(data, result):
    dist = keras.distribution
    # "Keras distribution initialized." (the guide wraps this in try/except)
    dist.initialize()
    devices = dist.list_devices()
    result["devices"] = json.dumps(devices)
    # the guide's (2, 4) mesh of 8 devices, on 2
    mesh_1d = dist.DeviceMesh(shape=(2,), axis_names=["data"], devices=devices)
    mesh_2d = dist.DeviceMesh(shape=(1, 2), axis_names=["data", "model"], devices=devices)
    layout_2d = dist.TensorLayout(axes=("model", "data"), device_mesh=mesh_2d)
    result["layout_repr"] = repr(layout_2d)

    # --- DataParallel: both constructors; the guide's model as written (Dropout 0.4)
    data_parallel = dist.DataParallel(device_mesh=mesh_1d)
    result["dp_mesh_batch_dim"] = data_parallel.batch_dim_name
    data_parallel = dist.DataParallel(devices=devices)
    dist.set_distribution(data_parallel)
    result["active"] = repr(dist.distribution())
    model = guide_functional()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        model.summary()
    result["summary"] = summary.getvalue()
    fit_and_record(result, "dp_dropout", model, data, "f")  # progress bar on rank 0, as in the guide

    # ... and without dropout, so the numbers can equal one process; under a scope of the 1-D mesh
    dist.set_distribution(None)
    with dist.DataParallel(device_mesh=mesh_1d).scope():
        fit_and_record(result, "dp", guide_functional(dropout=0.0), data, "f", verbose=0)
    # a (2, 1) mesh: Keras's DataParallel warns and splits along the first axis
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tall = dist.DataParallel(device_mesh=dist.DeviceMesh((2, 1), ["data", "model"], devices=devices))
    with tall.scope():
        fit_and_record(result, "dp2d", guide_functional(dropout=0.0), data, "f", verbose=0)

    # --- ModelParallel with the guide's LayoutMap: "d1/kernel" on the model axis of a (1, 2) mesh
    layout_map = dist.LayoutMap(mesh_2d)
    layout_map["d1/kernel"] = dist.TensorLayout([None, "model"])
    layout_map["d1/bias"] = dist.TensorLayout(["model"])
    layout_map["d2/output"] = dist.TensorLayout([None, "model"])  # an activation layout: a hint, no numbers change
    model_parallel = dist.ModelParallel(layout_map=layout_map, batch_dim_name="data")
    dist.set_distribution(model_parallel)
    model = guide_functional(dropout=0.0, use_bias=False, names=("d1", "d2"))
    fit_and_record(result, "mp", model, data, "m", verbose=0)
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        model.summary()  # on sharded (DTensor) weights: whole shapes are counted
    result["mp_summary"] = summary.getvalue()
    result["mp_d1_placements"] = str(model.get_layer("d1").kernel.placements)
    result["mp_d1_local_shape"] = np.array(model.get_layer("d1").kernel.to_local().shape)

    # --- the newer guide: (len(devices), 1) mesh, "d1/kernel", ".*bias", an output layout on "data"
    mesh = dist.DeviceMesh(shape=(len(devices), 1), axis_names=["data", "model"], devices=devices)
    layout_map = dist.LayoutMap(mesh)
    layout_map["d1/kernel"] = (None, "model")
    layout_map[".*bias"] = ("model",)
    layout_map["d2/output"] = ("data", None)
    with dist.ModelParallel(layout_map=layout_map, batch_dim_name="data").scope():
        model = guide_sequential()
        model.set_weights(weights_of(data, "s"))
        model.compile(loss="mse")
        flat = data["x"].reshape(len(data["x"]), -1)
        history = model.fit(flat, data["y"], batch_size=16, epochs=2, shuffle=False, verbose=0)
        result["seq_loss"] = np.array(history.history["loss"])
        result["seq_predict"] = model.predict(flat, batch_size=16, verbose=0)
        for i, w in enumerate(model.get_weights()):
            result[f"seq_w{i}"] = w

    # --- keras.distribution.distribute_tensor with a distribution_lib.TensorLayout
    from kerasish.distribution import distribution_lib

    t = dist.distribute_tensor(np.arange(8, dtype="float32").reshape(2, 4),
                               distribution_lib.TensorLayout((None, "model"), mesh_2d))
    result["dt_local"] = t.to_local().numpy().copy()


def run_explicit(data, result, rank, addresses):
    dist = keras.distribution
    if rank == 0:
        dist.initialize(job_addresses=addresses, num_processes=2, process_id=0)
    else:
        os.environ.update(KERAS_DISTRIBUTION_JOB_ADDRESSES=addresses, KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                          KERAS_DISTRIBUTION_PROCESS_ID="1")
        dist.initialize()
    result["world"] = torch.distributed.get_world_size()
    result["devices"] = json.dumps(dist.list_devices())
    dist.set_distribution(dist.DataParallel())
    fit_and_record(result, "dp", guide_functional(dropout=0.0), data, "f", verbose=0)


def main(out, mode, addresses=None):
    data = dict(np.load(os.path.join(out, "inputs.npz")))
    result = {}
    if mode == "torchrun":
        torch.manual_seed(100 + int(os.environ["RANK"]))  # ranks start from different random weights
        run_guide(data, result)
    else:
        rank = int(os.environ["GUIDE_RANK"])  # (the test's own variable: no torchrun environment here)
        assert "RANK" not in os.environ and "MASTER_ADDR" not in os.environ
        run_explicit(data, result, rank, addresses)
    rank = torch.distributed.get_rank()
    np.savez(os.path.join(out, f"rank{rank}.npz"), **result)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:])
