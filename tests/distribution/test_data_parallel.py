"""`keras.distribution.DataParallel` with `fit`/`evaluate`/`predict` on two
CPU processes (gloo), compared with one process on the global batch.

The per-rank program is `dp_worker.py`; it is started twice with the
environment torchrun gives each rank, so `keras.distribution.initialize()`
is exercised as under `torchrun --nproc_per_node=2`.
"""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import torch

import kerasish as keras

sys.path.insert(0, os.path.dirname(__file__))

import dp_models  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "dp_worker.py")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed")


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_port() -> int:
    """A port to bind a rendezvous store on. Not one the kernel hands out as
    an ephemeral port (an outgoing connection, e.g. another rank's gloo pair,
    can take a port freed by `bind(0)` before our rank 0 binds it), and a
    separate band per pytest-xdist worker, so that two workers running
    multi-process tests at once never pick the same port. The caller still
    retries on EADDRINUSE (another program on the machine may bind it)."""
    import random

    low = min(_ephemeral_low(), 32768)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), index + 1)
    band = (low - 10000) // count
    if band >= 100:
        first = 10000 + index * band
        for _ in range(50):
            port = random.randrange(first, first + band)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_was_taken(text: str) -> bool:
    """Whether a failed job's output says its store's port was already bound."""
    return "EADDRINUSE" in text or "Address already in use" in text or "address already in use" in text


def start_process(args, env, log_path):
    """Starts `args` in a new session (so that a kill reaches its children,
    e.g. torchrun's ranks), its output going to `log_path`."""
    with open(log_path, "w") as log:
        return subprocess.Popen(args, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)


def _kill(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass


def wait_processes(procs, log_paths, timeout, what="the processes", grace=15):
    """Waits for every process with one deadline; returns their outputs and
    return codes. On the deadline, or `grace` seconds after one failed (the
    others then wait in a collective that never completes), kills every
    process group. Never leaves a process behind."""
    deadline = time.monotonic() + timeout
    hung = False
    try:
        while True:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes):
                break
            now = time.monotonic()
            if any(c not in (None, 0) for c in codes):
                deadline = min(deadline, now + grace)
            if now > deadline:
                hung = not any(c not in (None, 0) for c in codes)
                break
            time.sleep(0.1)
    finally:
        _kill(procs)
    outputs = []
    for path in log_paths:
        with open(path) as f:
            outputs.append(f.read())
    if hung:
        tails = "\n".join(f"process {i} output:\n{o[-4000:]}" for i, o in enumerate(outputs))
        pytest.fail(f"{what} did not finish within {timeout} s (a collective hung); killed\n{tails}")
    return outputs, [p.returncode for p in procs]


def check_processes(outputs, codes, what="process"):
    failed = [i for i, c in enumerate(codes) if c != 0]
    assert not failed, "\n".join(f"{what} {i} failed (exit {codes[i]}):\n{outputs[i][-12000:]}" for i in failed)


def run_ranks(script, out, world=2, timeout=90, attempts=3):
    """Runs `script out` once per rank with torchrun's environment; fails
    (and kills every rank) when one fails or the job hangs. Retries on a
    fresh port when the store's port was taken between choosing and binding."""
    for attempt in range(attempts):
        port = _free_port()
        procs, logs, log_dir = [], [], tempfile.mkdtemp(prefix="ranks-")
        for rank in range(world):
            env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                       LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                       OMP_NUM_THREADS="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
            logs.append(os.path.join(log_dir, f"rank{rank}.log"))
            procs.append(start_process([sys.executable, script, str(out)], env, logs[-1]))
        try:
            outputs, codes = wait_processes(procs, logs, timeout, f"the {world} ranks")
        finally:
            shutil.rmtree(log_dir, ignore_errors=True)
        if any(codes) and attempt + 1 < attempts and any(port_was_taken(o) for o in outputs):
            continue
        check_processes(outputs, codes, "rank")
        return outputs


def build_model():
    return keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(3),
    ])


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp("dp")
    rng = np.random.default_rng(0)
    # 33 samples at global batch 8: the last batch has 1 sample, so rank 1's share is empty
    x = rng.normal(size=(33, 5)).astype("float32")
    y = rng.normal(size=(33, 3)).astype("float32")
    xv = rng.normal(size=(11, 5)).astype("float32")
    yv = rng.normal(size=(11, 3)).astype("float32")
    torch.manual_seed(0)  # fixed initial weights: with them EarlyStopping ends the run after 2 epochs
    init = build_model().get_weights()
    inp = keras.Input((5,))
    plain = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Dense(8, activation="relu")(inp)))
    init_c = plain.get_weights()
    init_b = dp_models.local_bn_model().get_weights()
    init_l = dp_models.lstm_model().get_weights()
    np.savez(out / "inputs.npz", x=x, y=y, xv=xv, yv=yv, **{f"w{i}": w for i, w in enumerate(init)},
             **{f"l{i}": w for i, w in enumerate(init_l)},
             **{f"c{i}": w for i, w in enumerate(init_c)}, **{f"b{i}": w for i, w in enumerate(init_b)})
    logs = run_ranks(WORKER, out)
    ranks = [dict(np.load(out / f"rank{r}.npz")) for r in range(2)]

    # the single-process reference on the global batch
    ref = build_model()
    ref.set_weights(init)
    ref.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    hist = ref.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_data=(xv, yv),
                   callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", mode="max", patience=0)])
    plain.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    h_plain = plain.fit(x[:32], y[:32], batch_size=8, epochs=2, shuffle=False, verbose=0)
    # FSDP2 reference: the global batch of step i is rank 0's batch i then rank 1's batch i
    fsdp_ref = keras.Model.from_config(plain.get_config())
    fsdp_ref.set_weights(init_c)
    fsdp_ref.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    order = np.concatenate([np.r_[8 * i:8 * i + 8, 16 + 8 * i:16 + 8 * i + 8] for i in range(2)])
    h_fsdp = fsdp_ref.fit(x[order], y[order], batch_size=16, epochs=2, shuffle=False, verbose=0)
    bn_ref = dp_models.local_bn_model()
    bn_ref.set_weights(init_b)
    bn_ref.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    batch_logs = dp_models.BatchLogs()
    h_bn = bn_ref.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv),
                      callbacks=[batch_logs])
    reg_ref = keras.Sequential([keras.Input((5,)), keras.layers.Dense(
        3, kernel_regularizer=keras.regularizers.L2(0.5), kernel_constraint=keras.constraints.NonNeg())])
    reg_ref.set_weights([init_c[2][:5], init_c[3]])
    reg_ref.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    h_reg = reg_ref.fit(x[order], y[order], batch_size=16, epochs=2, shuffle=False, verbose=0)
    lstm_ref = dp_models.lstm_model()
    lstm_ref.set_weights(init_l)
    lstm_ref.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    h_lstm = lstm_ref.fit(x[..., None], y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    reference = {
        "lstm_weights": lstm_ref.get_weights(), "lstm_loss": h_lstm.history["loss"],
        "fsdp_reg_weights": reg_ref.get_weights(), "fsdp_reg_loss": h_reg.history["loss"],
        "bn_batch_train": batch_logs.train, "bn_batch_test": batch_logs.test,
        "bn_weights": bn_ref.get_weights(), "bn_loss": h_bn.history["loss"], "bn_init": init_b,
        "fsdp_weights": fsdp_ref.get_weights(), "fsdp_loss": h_fsdp.history["loss"],
        "custom_weights": plain.get_weights(), "custom_loss": h_plain.history["loss"],
        "weights": ref.get_weights(), "history": hist.history,
        "evaluate": np.array(ref.evaluate(xv, yv, batch_size=4, verbose=0)),
        "predict": ref.predict(x, batch_size=8, verbose=0),
    }
    return out, ranks, reference, logs


def test_fit_without_distribution_in_a_process_group_raises(job):
    _, ranks, _, _ = job
    for r in ranks:
        assert "no `keras.distribution` is set" in str(r["no_dist_error"])


def test_fit_equals_one_process_on_the_global_batch(job):
    _, ranks, reference, _ = job
    for r in ranks:
        for i, w in enumerate(reference["weights"]):  # includes the SyncBN moving statistics
            np.testing.assert_allclose(r[f"fit_w{i}"], w, rtol=1e-4, atol=1e-5)


def test_lstm_fit_equals_one_process(job):
    """LSTM kernels live in torch's layout (transposed views): their strided
    gradients are bucketed and averaged like any other."""
    _, ranks, reference, _ = job
    for r in ranks:
        np.testing.assert_allclose(r["lstm_loss"], reference["lstm_loss"], rtol=1e-5, atol=1e-6)
        for i, w in enumerate(reference["lstm_weights"]):
            np.testing.assert_allclose(r[f"lstm_w{i}"], w, rtol=1e-4, atol=1e-5, err_msg=f"weight {i}")


def test_history_and_early_stopping_agree_with_one_process(job):
    _, ranks, reference, _ = job
    expected = reference["history"]
    assert len(expected["loss"]) == 2  # EarlyStopping stopped after 2 of 3 epochs
    for r in ranks:
        got = json.loads(str(r["history"]))
        assert sorted(got) == sorted(expected)
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_evaluate_and_predict_equal_one_process(job):
    _, ranks, reference, _ = job
    for r in ranks:
        np.testing.assert_allclose(r["evaluate"], reference["evaluate"], rtol=1e-4, atol=1e-5)
        assert r["predict"].shape == reference["predict"].shape
        np.testing.assert_allclose(r["predict"], reference["predict"], rtol=1e-4, atol=1e-5)


def test_rank_zero_writes_logs_and_checkpoints(job):
    out, _, reference, logs = job
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    np.testing.assert_allclose([float(row["loss"]) for row in rows], reference["history"]["loss"], rtol=1e-4)
    ckpt = build_model()
    ckpt.load_weights(str(out / "ckpt.weights.h5"))
    for got, want in zip(ckpt.get_weights(), reference["weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert (out / "log_rank0.csv").exists()
    assert not (out / "log_rank1.csv").exists()  # rank 1 never writes
    # one progress bar per job: only rank 0 prints epoch lines
    assert "Epoch 1/3" in logs[0]
    assert "Epoch 1/3" not in logs[1]


def test_shuffled_loader_and_per_rank_data_keep_ranks_identical(job):
    _, ranks, _, _ = job
    names = sorted(k for k in ranks[0] if k.startswith(("loader_w", "own_w")))
    assert names
    for name in names:
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=name)
    # per-rank arrays of 10 and 17 samples: both ranks ran 2 epochs in lockstep, same logged loss
    np.testing.assert_allclose(ranks[0]["own_shard_loss"], ranks[1]["own_shard_loss"], rtol=1e-6)
    assert len(ranks[0]["own_shard_loss"]) == 2


def test_custom_train_step_gradients_are_averaged(job):
    _, ranks, reference, _ = job
    for r in ranks:
        for i, w in enumerate(reference["custom_weights"]):
            np.testing.assert_allclose(r[f"custom_w{i}"], w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(r["custom_loss"], reference["custom_loss"], rtol=1e-4, atol=1e-5)


def test_fully_shard_fit_equals_one_process(job):
    """FSDP2 (`fully_shard`, DTensor parameters on gloo/CPU) under plain `fit`."""
    _, ranks, reference, _ = job
    for r in ranks:
        for i, w in enumerate(reference["fsdp_weights"]):
            np.testing.assert_allclose(r[f"fsdp_w{i}"], w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(r["fsdp_loss"], reference["fsdp_loss"], rtol=1e-4, atol=1e-5)


def test_fully_shard_keeps_regularizers_and_constraints(job):
    """`fully_shard` replaces the weights by parameters without the Keras
    regularizer and constraint; `fit` restores them (L2 in the loss,
    NonNeg applied), so the numbers equal one process."""
    _, ranks, reference, _ = job
    assert (reference["fsdp_reg_weights"][0] == 0).any()  # the constraint clipped something
    for r in ranks:
        np.testing.assert_allclose(r["fsdp_reg_loss"], reference["fsdp_reg_loss"], rtol=1e-4, atol=1e-5)
        for i, w in enumerate(reference["fsdp_reg_weights"]):
            np.testing.assert_allclose(r[f"fsdp_reg_w{i}"], w, rtol=1e-4, atol=1e-5, err_msg=f"weight {i}")


def test_get_and_set_weights_on_sharded_weights(job):
    _, ranks, _, _ = job
    x = np.load(job[0] / "inputs.npz")["x"]
    for rank, r in enumerate(ranks):
        # predict on a sharded model: each rank's own rows, computed with the gathered weights
        w = [r[f"fsdp_gw{i}"] for i in range(4)]
        rows = x[16 * rank:16 * rank + 16]
        expected = np.maximum(rows @ w[0] + w[1], 0) @ w[2] + w[3]
        np.testing.assert_allclose(r["fsdp_predict"], expected, rtol=1e-4, atol=1e-5)
        for i in range(4):
            np.testing.assert_array_equal(r[f"fsdp_gw{i}"], r[f"fsdp_w{i}"])
            np.testing.assert_array_equal(r[f"fsdp_sw{i}"], 2 * r[f"fsdp_w{i}"])


def test_sharded_checkpoint_resumes_to_the_same_next_step(job):
    _, ranks, reference, _ = job
    for r in ranks:
        for i in range(4):
            np.testing.assert_array_equal(r[f"resume_a{i}"], r[f"resume_b{i}"])
        assert not np.array_equal(r["resume_a0"], r["fsdp_w0"])  # the next epoch did train


def test_rank_zero_checkpoint_resumes_to_the_same_next_step(job):
    _, ranks, reference, _ = job
    for r in ranks:
        n = len(reference["weights"])
        for i in range(n):
            np.testing.assert_allclose(r[f"r0resume_b{i}"], r[f"r0resume_a{i}"], rtol=1e-6, atol=1e-7)
        assert not np.allclose(r["r0resume_a0"], r["fit_w0"])  # the next epoch did train


def test_local_batch_norm_uses_the_global_batch_and_an_empty_share_is_fine(job):
    """A non-synchronized BatchNormalization normalizes with the global
    batch's moments (Keras's data-parallel step on JAX sees the whole
    batch), so its moving statistics and every weight equal one process,
    also when the last global batch leaves rank 1 no rows; a weight no loss
    depends on keeps its value (its gradient stays None). Gradients
    travel one bucket per weight here (buckets start in order)."""
    _, ranks, reference, _ = job
    for r in ranks:
        np.testing.assert_allclose(r["bn_loss"], reference["bn_loss"], rtol=1e-4, atol=1e-5)
        for i, w in enumerate(reference["bn_weights"]):  # kernels, gamma/beta, moving stats, spare
            np.testing.assert_allclose(r[f"bn_w{i}"], w, rtol=1e-4, atol=1e-5, err_msg=f"weight {i}")
    spare = len(reference["bn_weights"]) - 3  # Dense(3)'s kernel and bias follow it
    np.testing.assert_array_equal(reference["bn_weights"][spare], reference["bn_init"][spare])
    np.testing.assert_array_equal(ranks[1][f"bn_w{spare}"], reference["bn_init"][spare])


def test_batch_log_callbacks_on_rank_zero_only_do_not_hang(job):
    _, ranks, _, _ = job
    np.testing.assert_array_equal(ranks[0]["rank0_only_logs"], [3, 2])  # 11 rows / 4, 16 rows / 8
    np.testing.assert_array_equal(ranks[1]["rank0_only_logs"], [0, 0])


def test_callbacks_reading_batch_logs_get_the_global_batch_values(job):
    """A callback reading `logs` in `on_train_batch_end` / `on_test_batch_end`
    gets what one process logs (metric states summed over the ranks for
    that batch), the same on every rank, so batch-level decisions agree."""
    _, ranks, reference, _ = job
    assert len(reference["bn_batch_train"]) == 10 and len(reference["bn_batch_test"]) == 4
    for r in ranks:
        np.testing.assert_allclose(r["bn_batch_train"], reference["bn_batch_train"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(r["bn_batch_test"], reference["bn_batch_test"], rtol=1e-4, atol=1e-5)


def test_custom_step_without_backward_raises_instead_of_diverging(job):
    _, ranks, _, _ = job
    for r in ranks:
        assert "updated the weights without calling `backward()`" in str(r["autograd_grad_error"])


def test_store_ports_avoid_ephemeral_ports_and_the_other_xdist_worker(monkeypatch):
    """The helper's ports: below the kernel's ephemeral range (an outgoing
    connection cannot take one between choosing and binding) and in disjoint
    bands for pytest-xdist's workers (two multi-process tests at once never
    pick the same port)."""
    low = _ephemeral_low()
    if low - 10000 < 200:
        pytest.skip(f"the ephemeral range starts at {low}: no room below it for two bands")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    bands = {}
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        bands[worker] = {_free_port() for _ in range(20)}
        assert all(10000 <= p < low for p in bands[worker])
    assert max(bands["gw0"]) < min(bands["gw1"])
    # torch's TCPStore message for a port bound by someone else
    assert port_was_taken("The server socket has failed to listen on any local network address. port: 29500, "
                          "useIpv6: false, code: -98, name: EADDRINUSE, message: address already in use")
    assert not port_was_taken("RuntimeError: Connection reset by peer")
