"""keras.io developer guide "Multi-GPU distributed training with PyTorch"
(guides/distributed_training_with_torch.py), shrunk to 2 CPU processes on the
gloo backend: each process builds the guide's convnet with kerasish, wraps it
in `torch.nn.parallel.DistributedDataParallel`, feeds it through a
`DistributedSampler` DataLoader and trains it with a torch Adam and
`CrossEntropyLoss` in the guide's hand-written loop, launched with
`torch.multiprocessing.start_processes`. The guide forks (it is written for
notebooks); the test spawns. Forked from pytest-xdist's worker, which runs
threads of its own, one rank in about 12 hung for good in gloo's process-group
destructor after its loop had finished (the CI run of stop 17 never ended).

Reference: the same loop run by real Keras 3 (torch backend) in one process
on the global batches, from the same weights (each DDP step averages the two
half-batch gradients, which equals the full-batch mean loss's gradient). As
in the guide, the model is called without `training=`: both frameworks run
BatchNormalization and Dropout in inference mode there.
"""

from __future__ import annotations

import gc
import os
import time

import numpy as np
import pytest
import torch

import kerasish as keras
from tests.ports.test_port_programs import assert_same

WORLD, PER_RANK_BATCH, STEPS = 2, 4, 3
RNG = np.random.default_rng(0)
X = (RNG.random((WORLD * PER_RANK_BATCH * STEPS, 12, 12, 1)) * 255).astype("float32")
LABELS = RNG.integers(0, 10, len(X))


def _get_model(K):
    inputs = K.Input(shape=(12, 12, 1))
    x = K.layers.Rescaling(1.0 / 255.0)(inputs)
    x = K.layers.Conv2D(filters=4, kernel_size=3, padding="same", use_bias=False)(x)
    x = K.layers.BatchNormalization(scale=False, center=True)(x)
    x = K.layers.ReLU()(x)
    x = K.layers.Conv2D(filters=6, kernel_size=3, padding="same", use_bias=False)(x)
    x = K.layers.BatchNormalization(scale=False, center=True)(x)
    x = K.layers.ReLU()(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    x = K.layers.Dropout(0.5)(x)
    outputs = K.layers.Dense(10)(x)
    model = K.Model(inputs, outputs)
    weights = [np.random.default_rng(i).normal(0, 0.3, w.shape).astype("float32")
               for i, w in enumerate(model.get_weights())]
    weights[3] = np.abs(weights[3]) + 0.5  # moving variances
    weights[7] = np.abs(weights[7]) + 0.5
    model.set_weights(weights)
    return model


def _train_model(model, dataloader, optimizer, loss_fn):
    losses = []
    for inputs, targets in dataloader:
        outputs = model(inputs)
        loss = loss_fn(outputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def _dataset():
    return torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(LABELS))


def _per_device_launch_fn(rank, world, port, out_dir):
    os.environ["MASTER_ADDR"] = "localhost"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    torch.distributed.init_process_group(backend="gloo", init_method="env://", world_size=world, rank=rank)
    try:
        model = _get_model(keras)
        sampler = torch.utils.data.distributed.DistributedSampler(_dataset(), num_replicas=world, rank=rank,
                                                                  shuffle=False)
        dataloader = torch.utils.data.DataLoader(_dataset(), sampler=sampler, batch_size=PER_RANK_BATCH,
                                                 shuffle=False)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        ddp_model = torch.nn.parallel.DistributedDataParallel(model)
        losses = _train_model(ddp_model, dataloader, optimizer, torch.nn.CrossEntropyLoss())
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), losses=np.array(losses), *model.get_weights())
        # DDP's reducer holds the process group: release it before the group goes
        del ddp_model, optimizer
        gc.collect()
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_ddp_around_a_kerasish_model_equals_keras_on_the_global_batch(keras_ref, tmp_path):
    from tests.distribution.test_data_parallel import _free_port
    from tests.distribution.test_data_parallel import port_was_taken

    for attempt in range(3):
        context = torch.multiprocessing.start_processes(_per_device_launch_fn,
                                                        args=(WORLD, _free_port(), str(tmp_path)),
                                                        nprocs=WORLD, join=False, start_method="spawn")
        deadline = time.monotonic() + 180
        try:
            while not context.join(timeout=1):
                if time.monotonic() > deadline:
                    for process in context.processes:
                        process.kill()
                    for process in context.processes:
                        process.join(10)
                    pytest.fail("the 2 ranks did not finish within 180 s (a collective hung)")
            break
        except torch.multiprocessing.ProcessRaisedException as e:
            # join() has ended the other rank; the store's port was taken between choosing and binding
            if attempt == 2 or not port_was_taken(str(e)):
                raise
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(WORLD)]
    rank_weights = [[f[f"arr_{i}"] for i in range(len(f.files) - 1)] for f in ranks]
    # DDP kept the replicas equal
    assert_same(rank_weights[1], rank_weights[0])

    reference = _get_model(keras_ref)
    # the samplers interleave (rank r reads r, r + 2, ...): at each step the two
    # ranks' batches together are the next contiguous global batch
    loader = torch.utils.data.DataLoader(_dataset(), batch_size=WORLD * PER_RANK_BATCH, shuffle=False)
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
    losses = _train_model(reference, loader, optimizer, torch.nn.CrossEntropyLoss())
    mean_rank_losses = np.mean([f["losses"] for f in ranks], axis=0)
    np.testing.assert_allclose(mean_rank_losses, losses, rtol=1e-4, atol=1e-5)
    assert_same(rank_weights[0], reference.get_weights())
