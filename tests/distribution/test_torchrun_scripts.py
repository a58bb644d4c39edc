"""Training scripts run by the real launcher, `torchrun --standalone
--nproc_per_node=2 train.py` (`python -m torch.distributed.run`, gloo, CPU,
one thread per rank), compared with one process on the global batch in the
test process; and the ways such runs fail (a rank dying, an exception on
one rank), with bounded timeouts. The scripts are in `torchrun_scripts.py`.
"""

import csv
import json
import os
import sys
import time

import numpy as np
import pytest
import torch

import kerasish as keras

sys.path.insert(0, os.path.dirname(__file__))

import torchrun_scripts  # noqa: E402
from test_data_parallel import REPO  # noqa: E402
from test_data_parallel import port_was_taken  # noqa: E402
from test_data_parallel import start_process  # noqa: E402
from test_data_parallel import wait_processes  # noqa: E402

from kerasish.trainers import distributed  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 5)).astype("float32")
Y = RNG.normal(size=(32, 3)).astype("float32")
SW = RNG.uniform(0.5, 2.0, size=32).astype("float32")
YC = RNG.integers(0, 3, size=32)


def model_fn(*extra):
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), *extra,
                             keras.layers.Dense(3)])


def fresh(w0, loss="mse"):
    model = model_fn()
    model.set_weights(w0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    return model


def torchrun(tmp_path, script, *flags, timeout=150, expect_ok=True, attempts=3):
    """Writes `script` and the shared inputs to `tmp_path` and runs
    `python -m torch.distributed.run --standalone --nproc_per_node=2` on
    it; returns the launcher's output (the ranks' output included) and
    its exit code. `--standalone` binds its store on a port the kernel
    picks; a job whose port was taken meanwhile is started again."""
    torch.manual_seed(0)
    w0 = model_fn().get_weights()
    np.savez(tmp_path / "inputs.npz", x=X, y=Y, sw=SW, yc=YC, **{f"w{i}": w for i, w in enumerate(w0)})
    path = tmp_path / "train.py"
    path.write_text(script)
    env = dict(os.environ, OMP_NUM_THREADS="1", KERAS_BACKEND="torch",
               PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--monitor-interval=0.1", *flags, str(path), str(tmp_path)]
    for attempt in range(attempts):
        (output,), (code,) = wait_processes([start_process(cmd, env, tmp_path / "torchrun.log")],
                                            [tmp_path / "torchrun.log"], timeout, "torchrun")
        if code and attempt + 1 < attempts and port_was_taken(output):
            continue
        break
    if expect_ok:
        assert code == 0, f"torchrun failed (exit {code}):\n{output[-12000:]}"
    return output, code, w0


def ranks(tmp_path):
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


def assert_weights(got, expected, rtol=1e-5, atol=1e-6, what=""):
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(np.asarray(g), e, rtol=rtol, atol=atol, err_msg=f"{what} weight {i}")


def sampler_order(seed, epoch):
    """The rows of DistributedSampler(shuffle=True, seed) at `epoch`, in
    global-batch order: rank r reads perm[r::2], so local batch i of both
    ranks is perm[8i:8i+8] (torch's documented sampler: randperm from a
    generator seeded `seed + epoch`)."""
    return torch.randperm(len(X), generator=torch.Generator().manual_seed(seed + epoch)).numpy()


def test_torchrun_script_trains_like_one_process(tmp_path):
    start = time.monotonic()
    output, code, _ = torchrun(tmp_path, torchrun_scripts.PARITY, timeout=240, expect_ok=False)
    got = ranks(tmp_path)  # (written before the script's last fit)
    # 12. the last fit's callback raising on rank 0 only ends the job with that error, not a hang
    assert code != 0 and "checkpoint storage unavailable (on purpose)" in output, output[-6000:]
    assert time.monotonic() - start < 240
    w0 = list(np.load(tmp_path / "inputs.npz")[f"w{i}"] for i in range(4))

    # 1. DistributedSampler under auto_shard_dataset=True: all the data, reshuffled each epoch
    ref, losses, snapshots = fresh(w0), [], []
    for epoch in range(2):
        order = sampler_order(0, epoch)
        losses += ref.fit(X[order], Y[order], batch_size=8, epochs=1, shuffle=False, verbose=0).history["loss"]
        snapshots.append(ref.get_weights())
    for r in got:
        assert_weights(r["sampler"], ref.get_weights(), what="DistributedSampler")
        np.testing.assert_allclose(r["sampler_history"]["loss"], losses, rtol=1e-5)
    with open(tmp_path / "log.csv") as f:  # rank 0 wrote it once, complete
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    np.testing.assert_allclose([float(row["loss"]) for row in rows], losses, rtol=1e-5)
    best = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8), keras.layers.Dense(3)])
    best.load_weights(tmp_path / "best.weights.h5")
    assert_weights(best.get_weights(), snapshots[int(np.argmin(losses))], what="best checkpoint")

    # 2.-4. validation_split + sample_weight, class_weight, mixed_bfloat16
    ref = fresh(w0)
    h = ref.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.25, sample_weight=SW)
    for r in got:
        assert_weights(r["split"], ref.get_weights(), what="validation_split")
        for key in ("loss", "val_loss"):
            np.testing.assert_allclose(r["split_history"][key], h.history[key], rtol=1e-5)
    ref = fresh(w0, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    h = ref.fit(X, YC, batch_size=8, epochs=2, shuffle=False, verbose=0, class_weight={0: 1.0, 1: 3.0, 2: 0.5})
    for r in got:
        assert_weights(r["class_weight"], ref.get_weights(), what="class_weight")
        np.testing.assert_allclose(r["class_weight_history"]["loss"], h.history["loss"], rtol=1e-5)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        ref = fresh(w0)
        h = ref.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for r in got:
        # bfloat16 keeps 8 bits of mantissa: each rank's half-batch gradient is rounded on its own
        assert_weights(r["bf16"], ref.get_weights(), rtol=1e-2, atol=3e-3, what="mixed_bfloat16")
        np.testing.assert_allclose(r["bf16_history"]["loss"], h.history["loss"], rtol=2e-3)

    # 5.-6. PyDataset with worker processes; every rank saving the same files at once
    ref = fresh(w0)
    h = ref.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for r in got:
        assert_weights(r["pydataset"], ref.get_weights(), what="PyDataset")
        assert_weights(r["saved_model"], ref.get_weights(), what="model.save by every rank")
        assert_weights(r["saved_weights"], ref.get_weights(), what="save_weights by every rank")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".all", "all"))) == [
        "all.keras", "all.weights.h5"]  # no temporary file left behind

    # 7. uneven per-rank generators: both ranks stop after the shorter one's 2 batches (both ranks hold
    #    the same rows of X, so each global batch's gradient is that of one process on those 8 rows)
    ref = fresh(w0)
    ref.fit(X[:16], Y[:16], batch_size=8, epochs=1, shuffle=False, verbose=0)
    for r in got:
        assert_weights(r["uneven"], ref.get_weights(), what="uneven generators")

    # 8. Dropout with `set_random_seed(seed + rank)`: the ranks' weights stay identical
    assert_weights(got[1]["dropout"], [np.array(w) for w in got[0]["dropout"]], rtol=0, atol=0, what="dropout")

    # 9. a backup restored on rank 0 only: both ranks raise, naming the cause
    for rank, r in enumerate(got):
        assert f"(process {rank}) at epoch {1 - rank}, step 0" in r["unshared_backup"]
        assert "epochs range over 0..1" in r["unshared_backup"] and "backup_dir" in r["unshared_backup"]

    # 10. generators running out on one rank under auto_shard_dataset=True: both ranks raise
    for r in got:
        assert "ran out on 1 of 2 ranks after 3 steps" in r["ran_out"] and "auto_shard_dataset=False" in r["ran_out"]

    # 11. a DataLoader over each rank's own subset: a warning when the lengths agree, an error when not
    for r in got:
        assert len(r["own_subset_warnings"]) == 1 and "auto_shard_dataset=False" in r["own_subset_warnings"][0]
        assert "different number of batches on each rank ([2, 4])" in r["own_subset_lengths"]
    # 13. shuffled arrays / PyDataset / DataLoader: a fit resumed at epoch 2 ends where the uninterrupted one does
    for r in got:
        for name in ("arrays", "pydataset", "loader"):
            assert_weights(r["resumed_" + name], [np.array(w) for w in r["whole_" + name]], rtol=1e-6, atol=1e-7,
                           what=f"shuffled {name} resumed at epoch 2")
    # ... and none of the data read alike by the ranks above (DistributedSampler, PyDataset, ...) warned
    for r in got:
        assert r["quiet"] == [], r["quiet"]


def test_sampler_detection_and_set_epoch_in_one_process():
    """The detection logic, without a process group: a DataLoader over a
    DistributedSampler (as its sampler or its batch sampler's) is read as
    per-rank data, never sliced again; a sampler that splits the data
    differently from the run is refused with both splits named."""
    from torch.utils.data import BatchSampler, DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    ds = TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    by_sampler = DataLoader(ds, sampler=DistributedSampler(ds, num_replicas=2, rank=1), batch_size=4)
    by_batches = DataLoader(ds, batch_sampler=BatchSampler(DistributedSampler(ds, num_replicas=2, rank=1), 4, False))
    assert distributed.distributed_sampler(by_sampler) is by_sampler.sampler
    assert distributed.distributed_sampler(by_batches) is by_batches.batch_sampler.sampler
    assert distributed.distributed_sampler(DataLoader(ds, shuffle=True)) is None
    assert distributed.distributed_sampler(X) is None

    class Run:  # the attributes of a DataParallelRun on rank 1 of 2, auto_shard_dataset=True
        rank, world, auto_shard = 1, 2, True
        model = model_fn()
        check_sampler = distributed.DataParallelRun.check_sampler

        def shared_seed(self):
            return 0

    model = fresh(model_fn().get_weights())
    iterator = model._epoch_iterator(by_sampler, run=Run())
    assert iterator.per_rank and iterator.sampler is by_sampler.sampler
    rows = torch.cat([b[0] for _, b in iterator])
    np.testing.assert_array_equal(rows.numpy(), X[list(by_sampler.sampler)])  # rank 1's whole share
    class PerRankRun(Run):  # auto_shard_dataset=False: the sampler is found (and its epoch set) all the same
        auto_shard = False

    iterator = model._epoch_iterator(by_batches, run=PerRankRun())
    assert iterator.per_rank and iterator.sampler is by_batches.batch_sampler.sampler
    plain = model._epoch_iterator(X, Y, batch_size=8, run=Run())
    assert not plain.per_rank and plain.sampler is None
    assert torch.cat([b[0] for _, b in plain]).shape[0] == 16  # arrays: rank 1's half of each global batch

    wrong = DataLoader(ds, sampler=DistributedSampler(ds, num_replicas=4, rank=1), batch_size=4)
    with pytest.raises(ValueError, match=r"num_replicas=4 shares.*over 2 processes.*num_replicas=2, rank=1"):
        model._epoch_iterator(wrong, run=Run())
    wrong = DataLoader(ds, sampler=DistributedSampler(ds, num_replicas=2, rank=0), batch_size=4)
    with pytest.raises(ValueError, match=r"reads share rank=0.*holds share 1"):
        model._epoch_iterator(wrong, run=Run())


def test_fit_sets_a_distributed_samplers_epoch_in_one_process_too():
    """`torchrun --nproc_per_node=1` (no DataParallel run): `fit` still calls
    `set_epoch(epoch)` before each epoch's callbacks, so the sampler
    reshuffles every epoch as torch's loop with `set_epoch` does."""
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    ds = TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    sampler = DistributedSampler(ds, num_replicas=1, rank=0, seed=5)
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(sampler.epoch))
    w0 = model_fn().get_weights()
    model = fresh(w0)
    model.fit(DataLoader(ds, sampler=sampler, batch_size=8), epochs=3, initial_epoch=1, verbose=0,
              callbacks=[record])
    assert seen == [1, 2]
    ref = fresh(w0)
    for epoch in (1, 2):
        order = sampler_order(5, epoch)
        ref.fit(X[order], Y[order], batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert_weights(model.get_weights(), ref.get_weights(), what="one process")


def test_failures_end_each_attempt_and_restarts_resume_to_the_uninterrupted_run(tmp_path):
    """`torchrun --max-restarts=2` on a 3-epoch fit of 12 steps with
    BackupAndRestore (every 2 steps): attempt 0 meets a bad batch on rank 1
    only (step 4), attempt 1 a crash of rank 1 (`os._exit`, step 7). The
    error is raised at once on its rank (not swallowed, no hang in a
    collective: the agent then stops the other rank), each restart resumes
    from the last backup, and the job ends where an uninterrupted run ends."""
    start = time.monotonic()
    output, _, w0 = torchrun(tmp_path, torchrun_scripts.RESTARTS, "--max-restarts=2", timeout=300)
    assert "expected axis -1 of input shape to have value 5, but received input with shape (4, 4)" in output
    assert "exitcode: 17" in output.replace("exitcode  : 17", "exitcode: 17")
    got = ranks(tmp_path)
    assert [r["attempt"] for r in got] == [2, 2], output[-4000:]
    ref, means = fresh(w0), []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: means[-1].append(logs["loss"]))
    for epoch in range(3):
        order = sampler_order(3, epoch)
        means.append([])
        ref.fit(X[order], Y[order], batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[record])
    for r in got:
        assert_weights(r["weights"], ref.get_weights(), what="resumed run")
    assert not (tmp_path / "backup").exists()  # deleted once, by rank 0, at the end of the successful fit
    with open(tmp_path / "log.csv") as f:  # rank 0's log over the attempts: each epoch once
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    # an epoch resumed at batch k (0 or 2: a backup every 2 steps) logs the mean loss of its batches
    # k..3 (Keras's running means m: (4 m[3] - k m[k-1]) / (4 - k))
    for row, m in zip(rows, means):
        suffixes = [m[3], (4 * m[3] - 2 * m[1]) / 2]
        assert np.isclose(suffixes, float(row["loss"]), rtol=1e-5).any(), (row, suffixes)
    assert time.monotonic() - start < 300


def test_a_restarted_single_node_job_keeps_its_keys_apart_from_the_previous_attempt():
    """Under one torchrun agent (LOCAL_WORLD_SIZE == WORLD_SIZE, the agent's
    store shared), `initialize` gives the process group the agent's store
    under a prefix naming the attempt, so a restarted rank never reads a
    dead rank's address from the previous attempt; elsewhere torch's
    default rendezvous is kept."""
    from kerasish.distribution import distribution_lib

    agent = torch.distributed.TCPStore("127.0.0.1", 0, 1, is_master=True, wait_for_workers=False)
    env = {"TORCHELASTIC_RESTART_COUNT": "2", "TORCHELASTIC_USE_AGENT_STORE": "True", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(agent.port)}
    store = distribution_lib._restart_store(env, 2)
    store.set("default_pg/0//cpu/rank_1", "address of attempt 2")
    assert agent.get("kerasish_attempt_2/default_pg/0//cpu/rank_1") == b"address of attempt 2"
    assert not agent.check(["default_pg/0//cpu/rank_1"])
    assert distribution_lib._restart_store(dict(env, LOCAL_WORLD_SIZE="1"), 2) is None  # 2 nodes: 2 agents
    assert distribution_lib._restart_store(dict(env, TORCHELASTIC_USE_AGENT_STORE="False"), 2) is None
    assert distribution_lib._restart_store({k: v for k, v in env.items() if "RESTART" not in k}, 2) is None
