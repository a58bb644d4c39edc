"""Training scripts as a team writes them, run by tests/distribution/
test_torchrun_scripts.py under the real launcher
(`python -m torch.distributed.run --standalone --nproc_per_node=2 ...`).

Each script is the text of a file: the test writes it to its tmp_path and
launches it. Every rank reads `<out>/inputs.npz`; rank 0 (and for the
checks of agreement, rank 1) writes what it saw under `<out>`.
"""

COMMON = r'''
import json
import os
import sys

import numpy as np
import torch

import kerasish as keras

OUT = sys.argv[1]
keras.distribution.initialize()  # RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT from torchrun
RANK = torch.distributed.get_rank()
DATA = np.load(os.path.join(OUT, "inputs.npz"))
X, Y, W0 = DATA["x"], DATA["y"], [DATA[f"w{i}"] for i in range(4)]


def model_fn(*extra):
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), *extra,
                             keras.layers.Dense(3)])


def fresh(loss="mse", *extra):
    model = model_fn(*extra)
    model.set_weights(W0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    return model


def put(result, name, model, history=None):
    result[name] = [w.tolist() for w in model.get_weights()]
    if history is not None:
        result[name + "_history"] = history.history
'''

# fit / files / data pipelines as one process would, DataParallel over 2 ranks
PARITY = COMMON + r'''
import warnings

keras.distribution.set_distribution(keras.distribution.DataParallel())
result = {}
differ = []  # warnings that the ranks' data differ, from the data the ranks read alike (1.-10.)
show = warnings.showwarning
warnings.showwarning = lambda message, *args, **kwargs: (
    differ.append(str(message)) if "differs between the ranks" in str(message) else show(message, *args, **kwargs))

# 1. the torch habit: a DataLoader over a DistributedSampler (per-rank batches of 4), with
#    auto_shard_dataset=True; fit sets the sampler's epoch; rank 0 writes the CSV and checkpoint
ds = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
loader = torch.utils.data.DataLoader(ds, sampler=torch.utils.data.distributed.DistributedSampler(ds, seed=0),
                                     batch_size=4)
model = fresh()
history = model.fit(loader, epochs=2, verbose=0, callbacks=[
    keras.callbacks.CSVLogger(os.path.join(OUT, "log.csv")),
    keras.callbacks.ModelCheckpoint(os.path.join(OUT, "best.weights.h5"), monitor="loss", save_best_only=True,
                                    save_weights_only=True)])
put(result, "sampler", model, history)

# 2. validation_split (the same rows as one process) with sample weights
model = fresh()
history = model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.25,
                    sample_weight=DATA["sw"])
put(result, "split", model, history)

# 3. class_weight
model = fresh(keras.losses.SparseCategoricalCrossentropy(from_logits=True))
history = model.fit(X, DATA["yc"], batch_size=8, epochs=2, shuffle=False, verbose=0,
                    class_weight={0: 1.0, 1: 3.0, 2: 0.5})
put(result, "class_weight", model, history)

# 4. mixed_bfloat16
keras.mixed_precision.set_global_policy("mixed_bfloat16")
model = fresh()
history = model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
keras.mixed_precision.set_global_policy("float32")
put(result, "bf16", model, history)


# 5. a PyDataset of global batches read by 2 worker processes on each rank
class Batches(keras.utils.PyDataset):
    def __len__(self):
        return len(X) // 8

    def __getitem__(self, i):
        return X[8 * i:8 * i + 8], Y[8 * i:8 * i + 8]


model = fresh()
history = model.fit(Batches(workers=2, use_multiprocessing=True), epochs=2, verbose=0, shuffle=False)
put(result, "pydataset", model, history)

# 6. every rank saves at once (user code, no rank check)
model.save(os.path.join(OUT, "all.keras"))
model.save_weights(os.path.join(OUT, "all.weights.h5"))
torch.distributed.barrier()
loaded = keras.saving.load_model(os.path.join(OUT, "all.keras"))
result["saved_model"] = [w.tolist() for w in loaded.get_weights()]
probe = model_fn()
probe.load_weights(os.path.join(OUT, "all.weights.h5"))
result["saved_weights"] = [w.tolist() for w in probe.get_weights()]

# 7. per-rank generators of unknown and unequal length (auto_shard_dataset=False): no hang
with keras.distribution.DataParallel(auto_shard_dataset=False).scope():
    def batches():
        for i in range(4 if RANK == 0 else 2):
            yield X[8 * i:8 * i + 8], Y[8 * i:8 * i + 8]

    model = fresh()
    history = model.fit(batches(), epochs=1, verbose=0)
    put(result, "uneven", model, history)

# 8. Dropout + RandomFlip with `set_random_seed(seed + rank)` (the documented recipe): the weights stay
#    identical on the ranks
keras.utils.set_random_seed(7 + RANK)
model = fresh("mse", keras.layers.Dropout(0.5))
model.fit(X, Y, batch_size=8, epochs=1, shuffle=True, verbose=0)
put(result, "dropout", model)

# 9. a BackupAndRestore backup that only rank 0 can read (per-rank directories, as node-local disks
#    would be): the second fit would resume on rank 0 only; every rank raises instead
backup = os.path.join(OUT, f"backup{RANK}")
model = fresh()
model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[
    keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False)])
try:
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(backup)])
    result["unshared_backup"] = ""
except RuntimeError as e:
    result["unshared_backup"] = str(e)

# 10. per-rank generators of unequal length under auto_shard_dataset=True (a rank-local pipeline left
#     on the default): every rank raises when one runs out, instead of the others hanging
def own_batches():
    for i in range(4 if RANK == 0 else 3):
        yield X[8 * i:8 * i + 8], Y[8 * i:8 * i + 8]


try:
    fresh().fit(own_batches(), epochs=1, verbose=0)
    result["ran_out"] = ""
except ValueError as e:
    result["ran_out"] = str(e)

# 11. a DataLoader over each rank's own subset (torch's habit without a DistributedSampler) under
#     auto_shard_dataset=True: equal lengths warn (the first batches differ), unequal lengths raise
result["quiet"] = list(differ)
warnings.showwarning = show
own = torch.utils.data.Subset(ds, list(range(RANK, len(ds), 2)))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fresh().fit(torch.utils.data.DataLoader(own, batch_size=8), epochs=1, verbose=0)
result["own_subset_warnings"] = [str(w.message) for w in caught if "differs between the ranks" in str(w.message)]
try:
    fresh().fit(torch.utils.data.DataLoader(own, batch_size=8 if RANK == 0 else 4), epochs=1, verbose=0)
    result["own_subset_lengths"] = ""
except ValueError as e:
    result["own_subset_lengths"] = str(e)

# 13. shuffled arrays, a shuffled PyDataset and a DataLoader(shuffle=True): a fit resumed at epoch 2 (`initial_epoch`, where
#     BackupAndRestore and a torchrun restart resume, the RNG as a restarted script has it) shuffles
#     epoch 2 as the uninterrupted fit does, not as epoch 0
class Quarters(keras.utils.PyDataset):  # 8 global batches of 4 (8! orders)
    def __len__(self):
        return len(X) // 4

    def __getitem__(self, i):
        return X[4 * i:4 * i + 4], Y[4 * i:4 * i + 4]


for name, data in (("arrays", (X, Y)), ("pydataset", (Quarters(),)),
                   ("loader", (torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True),))):
    keras.utils.set_random_seed(5)
    model = fresh()
    model.fit(*data, batch_size=None if name != "arrays" else 8, epochs=3, shuffle=True, verbose=0)
    put(result, "whole_" + name, model)
    keras.utils.set_random_seed(5)
    model = fresh()
    model.fit(*data, batch_size=None if name != "arrays" else 8, epochs=2, shuffle=True, verbose=0)
    keras.utils.set_random_seed(5)
    model.fit(*data, batch_size=None if name != "arrays" else 8, epochs=3, initial_epoch=2, shuffle=True,
              verbose=0)
    put(result, "resumed_" + name, model)

with open(os.path.join(OUT, f"rank{RANK}.json"), "w") as f:
    json.dump(result, f)


# 12. last: a callback raising on rank 0 only ends the job with its error (rank 1 fails in its next
#     collective or is stopped by torchrun's agent), not a hang
class RaiseOnRankZero(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if RANK == 0:
            raise RuntimeError("checkpoint storage unavailable (on purpose)")


fresh().fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[RaiseOnRankZero()])
'''

# elastic restarts (`--max-restarts=2`): each of the first two attempts fails mid-fit in its own
# way, torchrun restarts the job and BackupAndRestore (a backup every 2 steps) resumes it
RESTARTS = COMMON + r"""
keras.distribution.set_distribution(keras.distribution.DataParallel())
ATTEMPT = int(os.environ["TORCHELASTIC_RESTART_COUNT"])


def collate(rows):
    x, y = torch.utils.data.default_collate(rows)
    if ATTEMPT == 0 and RANK == 1 and model.optimizer.iterations.numpy() == 3:
        x = x[:, :4]  # attempt 0: a bad batch on rank 1 only (step 4)
    return x, y


class Fail(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if ATTEMPT == 1 and RANK == 1 and int(self.model.optimizer.iterations.numpy()) == 7:
            os._exit(17)  # attempt 1: rank 1 crashes, no exception, no cleanup


ds = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
loader = torch.utils.data.DataLoader(ds, sampler=torch.utils.data.distributed.DistributedSampler(ds, seed=3),
                                     batch_size=4, collate_fn=collate)
model = fresh()
history = model.fit(loader, epochs=3, verbose=0, callbacks=[
    keras.callbacks.BackupAndRestore(os.path.join(OUT, "backup"), save_freq=2),
    keras.callbacks.CSVLogger(os.path.join(OUT, "log.csv"), append=True),
    Fail()])
result = {"attempt": ATTEMPT}
put(result, "weights", model, history)
with open(os.path.join(OUT, f"rank{RANK}.json"), "w") as f:
    json.dump(result, f)
"""
