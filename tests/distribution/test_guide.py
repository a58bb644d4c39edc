"""Keras 3's distribution guide, ported to kerasish, on two CPU processes
(gloo), compared with one process on the global batch.

`guide_worker.py` is the per-rank program. One job is started by the real
`torchrun` executable (how users launch), one as two plain processes that
call `keras.distribution.initialize(job_addresses=..., num_processes=2,
process_id=...)` themselves (Keras's multi-host form).
"""

import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch

import kerasish as keras

sys.path.insert(0, os.path.dirname(__file__))

import guide_worker  # noqa: E402
from test_data_parallel import REPO  # noqa: E402
from test_data_parallel import _free_port  # noqa: E402
from test_data_parallel import check_processes  # noqa: E402
from test_data_parallel import port_was_taken  # noqa: E402
from test_data_parallel import start_process  # noqa: E402
from test_data_parallel import wait_processes  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "guide_worker.py")
TORCHRUN = shutil.which("torchrun")

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed")


@pytest.fixture(autouse=True)
def _no_distribution():
    yield
    keras.distribution.set_distribution(None)


def _clean_env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
           and not k.startswith(("KERAS_DISTRIBUTION_", "TORCHELASTIC_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def _run(commands, timeout, log_dir, attempts=3):
    """Runs `commands()` (a list of (args, env), fresh ports each call) at
    once, bounded by `timeout`; retries when a store's port was taken between
    choosing and binding. Every process (and its children) is killed on a
    hang or a failure."""
    for attempt in range(attempts):
        procs, logs = [], []
        for i, (args, env) in enumerate(commands()):
            logs.append(os.path.join(str(log_dir), f"try{attempt}_process{i}.log"))
            procs.append(start_process(args, env, logs[-1]))
        outputs, codes = wait_processes(procs, logs, timeout, "the job")
        if any(codes) and attempt + 1 < attempts and any(port_was_taken(o) for o in outputs):
            continue
        check_processes(outputs, codes)
        return outputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    rng = np.random.default_rng(0)
    # the guide's data: 128 images of 28x28x1, 10 regression targets, batches of 16
    data = {"x": rng.normal(size=(128, 28, 28, 1)).astype("float32"),
            "y": rng.normal(size=(128, 10)).astype("float32")}
    torch.manual_seed(0)
    for prefix, model in (("f", guide_worker.guide_functional()),
                          ("m", guide_worker.guide_functional(use_bias=False)),
                          ("s", guide_worker.guide_sequential())):
        data.update({f"{prefix}_w{i}": w for i, w in enumerate(model.get_weights())})
    return data


def _reference(data, model, prefix, epochs=3):
    """One process on the global batch (the guide's batches of 16)."""
    model.set_weights(guide_worker.weights_of(data, prefix))
    model.compile(loss="mse")
    history = model.fit(guide_worker.dataset(data["x"], data["y"]), epochs=epochs, verbose=0)
    evaluate = np.array(model.evaluate(guide_worker.dataset(data["x"], data["y"]), verbose=0))
    return history.history["loss"], evaluate, model.get_weights()


@pytest.fixture(scope="module")
def guide_job(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("guide")
    np.savez(out / "inputs.npz", **inputs)
    # the `torchrun` console script, or the module it runs where the script is not on PATH
    launcher = [TORCHRUN] if TORCHRUN is not None else [sys.executable, "-m", "torch.distributed.run"]
    log = _run(lambda: [([*launcher, "--nnodes=1", "--nproc_per_node=2", "--rdzv-backend=c10d",
                          f"--rdzv-endpoint=127.0.0.1:{_free_port()}", WORKER, str(out), "torchrun"], _clean_env())],
               timeout=150, log_dir=tmp_path_factory.mktemp("guide_logs"))[0]
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(2)], log


def _close(a, b, **kw):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, **kw)


def test_guide_prints_what_keras_prints(guide_job, keras_ref):
    ranks, log = guide_job
    kd = keras_ref.distribution
    mesh = kd.DeviceMesh(shape=(1, 2), axis_names=["data", "model"], devices=["cpu:0", "cpu:1"])
    expected_layout = repr(kd.TensorLayout(axes=("model", "data"), device_mesh=mesh))
    expected_active = repr(kd.DataParallel(devices=["cpu:0", "cpu:1"]))
    for r in ranks:
        assert json.loads(str(r["devices"])) == ["cpu:0", "cpu:1"]
        assert str(r["layout_repr"]) == expected_layout
        assert str(r["active"]) == expected_active
        assert str(r["dp_mesh_batch_dim"]) == "data"
        assert "Total params: 159,010" in str(r["summary"])
    assert "Epoch 1/3" in log  # the guide's fit prints its progress bar (rank 0 only)
    assert log.count("Epoch 1/3") == 1


def test_guide_data_parallel_with_dropout_keeps_ranks_identical(guide_job):
    ranks, _ = guide_job
    r0, r1 = ranks
    for key in sorted(k for k in r0 if k.startswith("dp_dropout_")):
        np.testing.assert_array_equal(r0[key], r1[key], err_msg=key)
    assert np.isfinite(r0["dp_dropout_loss"]).all()


@pytest.mark.parametrize("name", ["dp", "dp2d"])
def test_guide_data_parallel_equals_one_process(guide_job, inputs, name):
    """From the guide's 1-D mesh (in a scope), and from a (2, 1) mesh."""
    ranks, _ = guide_job
    loss, evaluate, weights = _reference(inputs, guide_worker.guide_functional(dropout=0.0), "f")
    for r in ranks:
        _close(r[f"{name}_loss"], loss)
        _close(r[f"{name}_evaluate"], evaluate)
        for i, w in enumerate(weights):
            _close(r[f"{name}_w{i}"], w, err_msg=f"weight {i}")


def test_guide_model_parallel_shards_d1_and_equals_one_process(guide_job, inputs):
    ranks, _ = guide_job
    loss, evaluate, weights = _reference(
        inputs, guide_worker.guide_functional(dropout=0.0, use_bias=False, names=("d1", "d2")), "m")
    for r in ranks:
        assert str(r["mp_d1_placements"]) == "(Shard(dim=1),)"
        assert tuple(r["mp_d1_local_shape"]) == (784, 100)  # each rank holds half of d1's 200 units
        assert "Trainable params: 158,810" in str(r["mp_summary"])  # 784 * 200 + 200 * 10 + 10, whole
        _close(r["mp_loss"], loss)
        _close(r["mp_evaluate"], evaluate)
        for i, w in enumerate(weights):
            _close(r[f"mp_w{i}"], w, err_msg=f"weight {i}")


def test_newer_guide_sequential_on_a_data_axis_mesh_equals_one_process(guide_job, inputs):
    ranks, _ = guide_job
    model = guide_worker.guide_sequential()
    model.set_weights(guide_worker.weights_of(inputs, "s"))
    model.compile(loss="mse")
    flat = inputs["x"].reshape(len(inputs["x"]), -1)
    loss = model.fit(flat, inputs["y"], batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    predict = model.predict(flat, batch_size=16, verbose=0)
    for r in ranks:
        _close(r["seq_loss"], loss)
        _close(r["seq_predict"], predict)
        for i, w in enumerate(model.get_weights()):
            _close(r[f"seq_w{i}"], w, err_msg=f"weight {i}")


def test_guide_distribute_tensor(guide_job):
    ranks, _ = guide_job
    full = np.arange(8, dtype="float32").reshape(2, 4)
    for rank, r in enumerate(ranks):
        np.testing.assert_array_equal(r["dt_local"], full[:, 2 * rank:2 * rank + 2])


def test_initialize_with_explicit_job_addresses(inputs, tmp_path):
    """Keras's multi-host form: rank 0 passes `job_addresses`,
    `num_processes` and `process_id`; rank 1 sets the same through
    `KERAS_DISTRIBUTION_*`; no torchrun environment at all."""
    np.savez(tmp_path / "inputs.npz", **inputs)

    def commands():
        addresses = f"127.0.0.1:{_free_port()},127.0.0.1:{_free_port()}"
        return [([sys.executable, WORKER, str(tmp_path), "explicit", addresses], dict(_clean_env(), GUIDE_RANK=str(rank)))
                for rank in range(2)]

    logs = tmp_path / "logs"
    logs.mkdir()
    _run(commands, timeout=120, log_dir=logs)
    loss, evaluate, weights = _reference(inputs, guide_worker.guide_functional(dropout=0.0), "f")
    for rank in range(2):
        r = dict(np.load(tmp_path / f"rank{rank}.npz"))
        assert int(r["world"]) == 2
        assert json.loads(str(r["devices"])) == ["cpu:0", "cpu:1"]
        _close(r["dp_loss"], loss)
        _close(r["dp_evaluate"], evaluate)
        for i, w in enumerate(weights):
            _close(r[f"dp_w{i}"], w, err_msg=f"weight {i}")
