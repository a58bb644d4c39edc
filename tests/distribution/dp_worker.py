"""Per-rank program of tests/distribution/test_data_parallel.py.

Launched once per rank with torchrun's environment (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT, LOCAL_RANK). Reads the shared inputs from
`<out>/inputs.npz`, trains under `DataParallel`, and writes what it saw to
`<out>/rank<r>.npz`.
"""

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))

import dp_models  # noqa: E402

import kerasish as keras  # noqa: E402
from kerasish.distribution import grad_buckets  # noqa: E402


def build_model():
    return keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.BatchNormalization(synchronized=True),
        keras.layers.Dense(3),
    ])


class GradStep(keras.Model):
    """Takes gradients with `torch.autograd.grad` (never reaches `.grad`)."""

    def train_step(self, data):
        x, y = data
        loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
        grads = torch.autograd.grad(loss, self.trainable_weights)
        self.optimizer.apply(list(grads), self.trainable_weights)
        return {"loss": loss.detach()}


class Keras2Step(keras.Model):
    def train_step(self, data):
        x, y = data
        y_pred = self(x, training=True)
        loss = self.compiled_loss(y, y_pred, regularization_losses=self.losses)
        self.zero_grad()
        loss.backward()
        self.optimizer.apply([w.grad for w in self.trainable_weights], self.trainable_weights)
        return {m.name: m.result() for m in self.metrics}


def main(out):
    keras.distribution.initialize()
    rank = torch.distributed.get_rank()
    torch.manual_seed(100 + rank)  # ranks start from different random weights
    data = np.load(os.path.join(out, "inputs.npz"))
    x, y, xv, yv = data["x"], data["y"], data["xv"], data["yv"]
    result = {}

    # 1. no distribution set: a clear error, not silently diverging ranks
    model = build_model()
    model.compile(optimizer="sgd", loss="mse")
    try:
        model.fit(x, y, epochs=1, verbose=0)
        result["no_dist_error"] = ""
    except RuntimeError as e:
        result["no_dist_error"] = str(e)

    keras.distribution.set_distribution(keras.distribution.DataParallel())

    # 2. DataParallel fit / evaluate / predict (uneven: the last global batch has 1 sample)
    model = build_model()
    if rank == 0:
        model.set_weights([data[f"w{i}"] for i in range(len(model.get_weights()))])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    history = model.fit(
        x, y, batch_size=8, epochs=3, shuffle=False, verbose=1, validation_data=(xv, yv),
        callbacks=[keras.callbacks.CSVLogger(os.path.join(out, "log.csv")),
                   keras.callbacks.CSVLogger(os.path.join(out, f"log_rank{rank}.csv")),
                   keras.callbacks.ModelCheckpoint(os.path.join(out, "ckpt.weights.h5"), save_weights_only=True),
                   keras.callbacks.EarlyStopping(monitor="val_loss", mode="max", patience=0)],
    )
    for i, w in enumerate(model.get_weights()):
        result[f"fit_w{i}"] = w
    result["history"] = json.dumps(history.history)
    result["evaluate"] = np.array(model.evaluate(xv, yv, batch_size=4, verbose=0))
    result["predict"] = model.predict(x, batch_size=8, verbose=0)

    # 2a. a non-synchronized BatchNormalization (global batch statistics, as Keras on JAX), the last
    # global batch leaving rank 1 an empty share, a weight with no gradient, one bucket per weight
    grad_buckets._FIRST_BUCKET_BYTES = grad_buckets._BUCKET_BYTES = 1
    bn_model = dp_models.local_bn_model()
    if rank == 0:
        bn_model.set_weights([data[f"b{i}"] for i in range(len(bn_model.get_weights()))])
    bn_model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    batch_logs = dp_models.BatchLogs()
    h = bn_model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv),
                     callbacks=[batch_logs])
    result["bn_loss"] = np.array(h.history["loss"])
    result["bn_batch_train"], result["bn_batch_test"] = np.array(batch_logs.train), np.array(batch_logs.test)
    for i, w in enumerate(bn_model.get_weights()):
        result[f"bn_w{i}"] = w
    # 2b. an LSTM, whose strided (torch-layout) kernel gradients go through the buckets too
    lstm_model = dp_models.lstm_model()
    if rank == 0:
        lstm_model.set_weights([data[f"l{i}"] for i in range(len(lstm_model.get_weights()))])
    lstm_model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    h = lstm_model.fit(x[..., None], y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    result["lstm_loss"] = np.array(h.history["loss"])
    for i, w in enumerate(lstm_model.get_weights()):
        result[f"lstm_w{i}"] = w
    grad_buckets._FIRST_BUCKET_BYTES, grad_buckets._BUCKET_BYTES = 1 << 20, 25 << 20
    # a batch-log callback given to rank 0 only: every rank still joins the per-batch reductions
    rank0_logs = dp_models.BatchLogs()
    bn_model.evaluate(xv, yv, batch_size=4, verbose=0, callbacks=[rank0_logs] if rank == 0 else [])
    bn_model.fit(x[:16], y[:16], batch_size=8, epochs=1, shuffle=False, verbose=0,
                 callbacks=[rank0_logs] if rank == 0 else [])
    result["rank0_only_logs"] = np.array([len(rank0_logs.test), len(rank0_logs.train)])

    # 2b. resume from rank 0's checkpoint: the same next epoch as the model that wrote it
    resumed = build_model()
    resumed.load_weights(os.path.join(out, "ckpt.weights.h5"))
    for m in (model, resumed):
        m.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for i, (a, b) in enumerate(zip(model.get_weights(), resumed.get_weights())):
        result[f"r0resume_a{i}"], result[f"r0resume_b{i}"] = a, b

    # 3. a shuffled DataLoader: every rank must draw the same order (weights stay equal)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=6, shuffle=True
    )
    model.fit(loader, epochs=2, verbose=0)
    for i, w in enumerate(model.get_weights()):
        result[f"loader_w{i}"] = w

    # 4. per-rank data of different lengths (auto_shard_dataset=False) must not hang
    keras.distribution.set_distribution(keras.distribution.DataParallel(auto_shard_dataset=False))
    n = 10 if rank == 0 else 17
    h = model.fit(x[:n], y[:n], batch_size=4, epochs=2, shuffle=True, verbose=0)
    result["own_shard_loss"] = np.array(h.history["loss"])
    for i, w in enumerate(model.get_weights()):
        result[f"own_w{i}"] = w

    # 5. a Keras 2-style custom train_step (gradients averaged by hooks), even batches
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    inp = keras.Input((5,))
    custom = Keras2Step(inp, keras.layers.Dense(3)(keras.layers.Dense(8, activation="relu")(inp)))
    if rank == 0:
        custom.set_weights([data[f"c{i}"] for i in range(4)])
    custom.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    h = custom.fit(x[:32], y[:32], batch_size=8, epochs=2, shuffle=False, verbose=0)
    result["custom_loss"] = np.array(h.history["loss"])
    for i, w in enumerate(custom.get_weights()):
        result[f"custom_w{i}"] = w

    # 5b. a custom step whose gradients never reach `.grad` would not be averaged: refused
    grad_model = GradStep(inp, keras.layers.Dense(3)(inp))
    grad_model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    try:
        grad_model.fit(x[:16], y[:16], batch_size=8, epochs=1, verbose=0)
        result["autograd_grad_error"] = ""
    except RuntimeError as e:
        result["autograd_grad_error"] = str(e)

    # 6. FSDP2: `fully_shard(model)` + fit, no distribution set, each rank feeding its own 16 samples
    keras.distribution.set_distribution(None)
    from torch.distributed.fsdp import fully_shard

    def named_model():
        inp = keras.Input((5,))
        hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inp)
        return keras.Model(inp, keras.layers.Dense(3, name="out")(hidden))

    sharded = named_model()
    sharded.set_weights([data[f"c{i}"] for i in range(4)])
    fully_shard(sharded)
    sharded.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    mine = slice(16 * rank, 16 * rank + 16)
    ckpt_dir = os.path.join(out, "sharded_ckpt")
    h = sharded.fit(x[mine], y[mine], batch_size=8, epochs=2, shuffle=False, verbose=0,
                    callbacks=[keras.callbacks.ModelCheckpoint(ckpt_dir, save_weights_only=True)])
    # resume: a fresh sharded model reads the sharded checkpoint, then both take the same next epoch
    import torch.distributed.checkpoint as dcp

    resumed = named_model()
    fully_shard(resumed)
    state = {"model": resumed.state_dict()}
    dcp.load(state, checkpoint_id=ckpt_dir)
    resumed.load_state_dict(state["model"])
    resumed.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    result["fsdp_loss"] = np.array(h.history["loss"])
    for i, w in enumerate(sharded.trainable_weights):
        result[f"fsdp_w{i}"] = w.full_tensor().detach().numpy()
    result["fsdp_predict"] = sharded.predict(x[mine], batch_size=8, verbose=0)  # this rank's own rows
    fsdp_gw = sharded.get_weights()  # gathered from the shards
    for i, w in enumerate(fsdp_gw):
        result[f"fsdp_gw{i}"] = w
    for model_ in (sharded, resumed):
        model_.fit(x[mine], y[mine], batch_size=8, epochs=1, shuffle=False, verbose=0)
    for i, (a, b) in enumerate(zip(sharded.get_weights(), resumed.get_weights())):
        result[f"resume_a{i}"], result[f"resume_b{i}"] = a, b
    # a regularizer and a constraint survive `fully_shard` (its new parameters lack them: restored)
    reg = keras.Sequential([keras.Input((5,)), keras.layers.Dense(
        3, kernel_regularizer=keras.regularizers.L2(0.5), kernel_constraint=keras.constraints.NonNeg())])
    reg.set_weights([data["c2"][:5], data["c3"]])
    fully_shard(reg)
    reg.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    h = reg.fit(x[mine], y[mine], batch_size=8, epochs=2, shuffle=False, verbose=0)
    result["fsdp_reg_loss"] = np.array(h.history["loss"])
    for i, w in enumerate(reg.get_weights()):
        result[f"fsdp_reg_w{i}"] = w
    sharded.set_weights([w * 2 for w in fsdp_gw])  # scattered back to the shards
    for i, w in enumerate(sharded.trainable_weights):
        result[f"fsdp_sw{i}"] = w.full_tensor().detach().numpy()

    np.savez(os.path.join(out, f"rank{rank}.npz"), **result)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    # torch 2.13 + gloo sometimes aborts in interpreter teardown after torch.distributed.checkpoint
    # ("terminate called without an active exception"); the results are written, so leave now
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
