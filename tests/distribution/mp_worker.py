"""Per-rank program of tests/distribution/test_model_parallel.py.

Launched once per rank with torchrun's environment. Reads the shared inputs
and initial weights from `<out>/inputs.npz`, trains under `ModelParallel`
and writes what it saw to `<out>/rank<r>.npz` (models are built by
`mp_models.py`, shared with the single-process reference).
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


def weights_of(data, prefix):
    return [data[k] for k in sorted((k for k in data if k.startswith(prefix + "_w")), key=lambda k: int(k.split("_w")[1]))]


def main(out):
    dist.initialize()
    rank = torch.distributed.get_rank()
    torch.manual_seed(100 + rank)  # ranks start from different random weights: rank 0's must win
    data = dict(np.load(os.path.join(out, "inputs.npz")))
    x, y, xv, yv = data["x"], data["y"], data["xv"], data["yv"]
    result = {}

    # 1. an MLP, column- then row-sharded Dense kernels, on a (1, 2) mesh (tensor parallel)
    mp = dist.ModelParallel(layout_map=mp_models.mlp_layout(dist.DeviceMesh((1, 2), ["batch", "model"])),
                            batch_dim_name="batch")
    dist.set_distribution(mp)
    model = mp_models.mlp()
    model.set_weights(weights_of(data, "mlp"))
    mp_models.compile_mlp(model)
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv),
                        callbacks=[keras.callbacks.ModelCheckpoint(os.path.join(out, "ckpt.weights.h5"),
                                                                   save_weights_only=True),
                                   keras.callbacks.ModelCheckpoint(os.path.join(out, "tp_ckpt_{epoch}"),
                                                                   save_weights_only=True, sharded=True),
                                   keras.callbacks.BackupAndRestore(os.path.join(out, "backup"),
                                                                    delete_checkpoint=False),
                                   keras.callbacks.TensorBoard(os.path.join(out, "tb"), histogram_freq=1)])
    # gradients come back laid out like their weights (col/bias is replicated, DTensor hands its gradient
    # back sharded like col's output: it is gathered before the optimizer and the batch-axis all-reduce)
    result["tp_grad_layouts"] = json.dumps([[repr(w.placements), repr(w.grad.placements)]
                                            for w in model.trainable_weights])
    tp_model = model
    # inside the model the column-parallel output reaches the row-parallel layer still sharded (no
    # all-gather in between); called alone, a layer returns a whole plain tensor
    seen = []
    probe = model.get_layer("row").register_forward_pre_hook(lambda m, a: seen.append(repr(a[0].placements) if hasattr(
        a[0], "placements") else "plain"), prepend=True)
    model.predict(x[:4], verbose=0)
    probe.remove()
    result["row_input"] = seen[0]
    result["col_alone"] = type(model.get_layer("col")(torch.from_numpy(x[:4]))).__name__
    result["tp_history"] = json.dumps(history.history)
    for i, w in enumerate(model.get_weights()):
        result[f"tp_w{i}"] = w
    result["tp_evaluate"] = np.array(model.evaluate(xv, yv, batch_size=4, verbose=0))
    result["tp_predict"] = model.predict(x, batch_size=8, verbose=0)
    col = model.get_layer("col").kernel
    result["tp_placements"] = json.dumps([str(model.get_layer(n).kernel.placements) for n in ("col", "row", "out")])
    result["tp_local_shape"] = np.array(col.to_local().shape)
    result["tp_col_numpy"] = col.numpy()  # the whole kernel
    result["tp_col_path"] = col.path
    model.save(os.path.join(out, "mlp.keras"))
    model.save_weights(os.path.join(out, "mlp.weights.h5"))
    # set_weights / load_weights on sharded weights: each rank keeps its slice of the whole value
    before = model.get_weights()
    model.set_weights([w * 2 for w in before])
    result["tp_set_w0"] = model.get_weights()[0]
    result["tp_set_local"] = col.to_local().detach().numpy().copy()
    model.load_weights(os.path.join(out, "mlp.weights.h5"))
    result["tp_loaded_w0"] = model.get_weights()[0]
    col.assign(np.ones(tuple(col.shape), "float32"))
    result["tp_assign_local"] = col.to_local().detach().numpy().copy()
    # a fresh model resumes from rank 0's checkpoint, optimizer state included (compiled and its optimizer
    # built first, on the unsharded weights: as in Keras, `load_weights` skips the state of an optimizer not
    # built yet; the state moves to the DTensors when fit lays the weights out)
    resumed = mp_models.mlp()
    mp_models.compile_mlp(resumed)
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.load_weights(os.path.join(out, "ckpt.weights.h5"))
    resumed.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for i, w in enumerate(resumed.get_weights()):
        result[f"resumed_w{i}"] = w

    # 1b. a sharded checkpoint (torch.distributed.checkpoint: each rank writes its shards, Adam's moments
    # and step count included) resumes to the same next step, into a fresh model (whole values, laid out
    # by its fit) and into one already laid out
    from kerasish.distribution import model_parallel

    sharded_dir = os.path.join(out, "tp_sharded")
    model_parallel.save_sharded_checkpoint(tp_model, sharded_dir)
    fresh = mp_models.mlp()
    mp_models.compile_mlp(fresh)
    fresh.build((None, 5))
    model_parallel.load_sharded_checkpoint(fresh, sharded_dir)
    laid_out = resumed  # laid out and trained above, holding other values
    model_parallel.load_sharded_checkpoint(laid_out, sharded_dir)
    # ModelCheckpoint(sharded=True) wrote the same state at the end of epoch 2 (every rank its shards)
    from_callback = mp_models.mlp()
    mp_models.compile_mlp(from_callback)
    from_callback.build((None, 5))
    model_parallel.load_sharded_checkpoint(from_callback, os.path.join(out, "tp_ckpt_2"))
    for name, m in (("cont", tp_model), ("fresh", fresh), ("laid", laid_out), ("callback", from_callback)):
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        for i, w in enumerate(m.get_weights()):
            result[f"dcp_{name}_w{i}"] = w

    # 2. the same MLP on a (2, 1) mesh: data parallel along "batch"
    dp = dist.ModelParallel(layout_map=mp_models.mlp_layout(dist.DeviceMesh((2, 1), ["batch", "model"])),
                            batch_dim_name="batch")
    dist.set_distribution(dp)
    model = mp_models.mlp()
    model.set_weights(weights_of(data, "mlp"))
    mp_models.compile_mlp(model)
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv))
    result["dp_history"] = json.dumps(history.history)
    for i, w in enumerate(model.get_weights()):
        result[f"dp_w{i}"] = w
    result["dp_predict"] = model.predict(x, batch_size=8, verbose=0)

    # 2b. kernels sharded along the batch axis of a (2, 1) mesh: FSDP2, same numbers as one process
    fsdp = dist.ModelParallel(layout_map=mp_models.fsdp_layout(dist.DeviceMesh((2, 1), ["batch", "model"])),
                              batch_dim_name="batch")
    dist.set_distribution(fsdp)
    model = mp_models.mlp()
    model.set_weights(weights_of(data, "mlp"))
    mp_models.compile_mlp(model)
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv))
    result["fsdp_history"] = json.dumps(history.history)
    col = model.get_layer("col").kernel
    result["fsdp_placements"] = json.dumps([str(col.placements), str(model.get_layer("row").kernel.placements)])
    result["fsdp_local_shape"] = np.array(col.to_local().shape)
    for i, w in enumerate(model.get_weights()):
        result[f"fsdp_w{i}"] = w
    result["fsdp_evaluate"] = np.array(model.evaluate(xv, yv, batch_size=4, verbose=0))
    result["fsdp_predict"] = model.predict(x, batch_size=8, verbose=0)
    fsdp_dir = os.path.join(out, "fsdp_sharded")
    model_parallel.save_sharded_checkpoint(model, fsdp_dir)
    fresh = mp_models.mlp()
    mp_models.compile_mlp(fresh)
    fresh.build((None, 5))
    model_parallel.load_sharded_checkpoint(fresh, fsdp_dir)
    for name, m in (("cont", model), ("fresh", fresh)):
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        for i, w in enumerate(m.get_weights()):
            result[f"fsdp_dcp_{name}_w{i}"] = w

    # 3. Conv2D (output channels sharded) and Embedding (rows sharded) on the (1, 2) mesh
    dist.set_distribution(mp_models.other_distribution(dist.DeviceMesh((1, 2), ["batch", "model"])))
    for name in ("cnn", "emb"):
        model = getattr(mp_models, name)()
        model.set_weights(weights_of(data, name))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        h = model.fit(data[f"{name}_x"], data[f"{name}_y"], batch_size=4, epochs=2, shuffle=False, verbose=0)
        result[f"{name}_loss"] = np.array(h.history["loss"])
        for i, w in enumerate(model.get_weights()):
            result[f"{name}_w{i}"] = w
        result[f"{name}_predict"] = model.predict(data[f"{name}_x"], verbose=0)
        result[f"{name}_placements"] = json.dumps([str(getattr(w, "placements", None)) for w in model.weights])

    # 3b. the masked Embedding + LSTM with weights sharded along the batch axis (FSDP2): LSTM's
    # torch-layout kernels are laid back contiguous for fully_shard; the numbers are one process's
    layout_map = dist.LayoutMap(dist.DeviceMesh((2, 1), ["batch", "model"]))
    layout_map[".*embedding/embeddings"] = ("batch", None)
    layout_map[".*lstm.*/kernel"] = (None, "batch")
    dist.set_distribution(dist.ModelParallel(layout_map=layout_map, batch_dim_name="batch"))
    model = mp_models.emb()
    model.set_weights(weights_of(data, "emb"))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    h = model.fit(data["emb_x"], data["emb_y"], batch_size=4, epochs=2, shuffle=False, verbose=0)
    result["emb_fsdp_loss"] = np.array(h.history["loss"])
    for i, w in enumerate(model.get_weights()):
        result[f"emb_fsdp_w{i}"] = w

    # 4. keras.distribution.distribute_tensor: a DTensor sharded as the layout says
    mesh = dist.DeviceMesh((1, 2), ["batch", "model"])
    t = dist.distribute_tensor(np.arange(8, dtype="float32").reshape(2, 4), dist.TensorLayout((None, "model"), mesh))
    result["dt_local"] = t.to_local().numpy().copy()
    result["dt_full"] = t.full_tensor().numpy().copy()
    result["data_layout"] = json.dumps(mp.get_data_layout((8, 5)).axes)
    result["var_layout"] = json.dumps([mp.get_variable_layout(w).axes for w in mp_models.mlp().weights])

    # 5. a layout that does not fit: the same error on every rank, before any step
    bad = dist.LayoutMap(dist.DeviceMesh((1, 2), ["batch", "model"]))
    bad[".*kernel"] = (None, "model")
    dist.set_distribution(dist.ModelParallel(layout_map=bad))
    odd = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    odd.compile(optimizer="sgd", loss="mse")
    try:
        odd.fit(x, y, epochs=1, verbose=0)
        result["bad_error"] = ""
    except ValueError as e:
        result["bad_error"] = str(e)

    # per-process data (auto_shard_dataset=False) on a model axis of 2: both processes are one batch
    # shard and feed the same rows: one process's numbers; shuffles drawn by kerasish agree
    own = dist.ModelParallel(layout_map=mp_models.mlp_layout(dist.DeviceMesh((1, 2), ["batch", "model"])),
                             auto_shard_dataset=False)
    dist.set_distribution(own)
    model = mp_models.mlp()
    model.set_weights(weights_of(data, "mlp"))
    mp_models.compile_mlp(model)
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv))
    result["own_history"] = json.dumps(history.history)
    for i, w in enumerate(model.get_weights()):
        result[f"own_w{i}"] = w
    torch.manual_seed(rank)  # the processes' own random states differ
    model.fit(x, y, batch_size=8, epochs=1, shuffle=True, verbose=0)
    for i, w in enumerate(model.get_weights()):
        result[f"own_shuffled_w{i}"] = w
    # ... and feeding them different rows is a clear error on every rank, before any update
    try:
        model.fit(x * (1 + rank), y, batch_size=8, epochs=1, verbose=0)
        result["own_data_error"] = ""
    except ValueError as e:
        result["own_data_error"] = str(e)
    result["own_after_error_w0"] = model.get_weights()[0]
    # the fingerprint covers y and sample_weight too, and later batches' shapes
    sw = np.ones(len(x), "float32")
    feeds = {
        "own_y_error": dict(x=x, y=y * (1 + rank)),
        "own_sw_error": dict(x=x, y=y, sample_weight=sw if rank == 0 else None),
        "own_later_error": dict(x=x[:16] if rank == 0 else x[:12], y=y[:16] if rank == 0 else y[:12]),
    }
    for key, feed in feeds.items():
        try:
            model.fit(batch_size=8, epochs=1, shuffle=False, verbose=0, **feed)
            result[key] = ""
        except ValueError as e:
            result[key] = str(e)
    dist.set_distribution(dist.ModelParallel(layout_map=bad))

    # a model laid out by one ModelParallel refuses to run under another
    try:
        tp_model.predict(x, verbose=0)
        result["other_dist_error"] = ""
    except ValueError as e:
        result["other_dist_error"] = str(e)

    # 6. BatchNormalization's global statistics are summed over the batch axis's group only. Conv2D + BN on
    # a (2, 1) mesh (uneven batches of 7: the last leaves rank 1 no rows) through the mesh's batch group...
    dist.set_distribution(mp_models.other_distribution(dist.DeviceMesh((2, 1), ["batch", "model"])))
    model = mp_models.cnn()
    model.set_weights(weights_of(data, "cnn"))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    h = model.fit(data["cnn_x"], data["cnn_y"], batch_size=7, epochs=2, shuffle=False, verbose=0)
    result["cnn_dp_loss"] = np.array(h.history["loss"])
    for i, w in enumerate(model.get_weights()):
        result[f"cnn_dp_w{i}"] = w
    # ... and `synchronized=True` on the (1, 2) mesh (a batch group of one: the two processes hold the same
    # rows, their statistics are local)
    dist.set_distribution(mp_models.other_distribution(dist.DeviceMesh((1, 2), ["batch", "model"])))
    model = mp_models.cnn(synchronized=True)
    model.set_weights(weights_of(data, "cnn"))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    h = model.fit(data["cnn_x"], data["cnn_y"], batch_size=4, epochs=2, shuffle=False, verbose=0)
    result["cnn_sync_loss"] = np.array(h.history["loss"])
    for i, w in enumerate(model.get_weights()):
        result[f"cnn_sync_w{i}"] = w
    # the group is honoured: each process its own group of one (local moments) vs the default group
    from kerasish.distribution import distribution_lib

    singles = [torch.distributed.new_group([0]), torch.distributed.new_group([1])]
    rows = torch.from_numpy(x[6 * rank:6 * rank + 6])
    for name, group in (("bn_own_group", singles[rank]), ("bn_default_group", None)):
        bn = keras.layers.BatchNormalization(momentum=0.0)
        distribution_lib.set_sync_batch_stats(True, group)
        try:
            bn(rows, training=True)
        finally:
            distribution_lib.set_sync_batch_stats(False)
        result[f"{name}_mean"] = bn.moving_mean.numpy()
        result[f"{name}_var"] = bn.moving_variance.numpy()
    dist.set_distribution(None)

    # 7. activity regularizers and `add_loss` terms are means over the rows: on an uneven step (batches of
    # 7: shares of 4 and 3) and with an empty share (batches of 8: the last leaves rank 1 no rows) the loss
    # and the gradients equal one process on the global batch, under DataParallel and under FSDP2
    # (ModelParallel with the kernels on the batch axis), as Keras on JAX computes them
    fsdp_act = dist.ModelParallel(layout_map=mp_models.fsdp_layout(dist.DeviceMesh((2, 1), ["batch", "model"])),
                                  batch_dim_name="batch")
    tp_act = dist.ModelParallel(layout_map=mp_models.mlp_layout(dist.DeviceMesh((1, 2), ["batch", "model"])),
                                batch_dim_name="batch")  # (an activity regularizer on a sharded output)
    for name, distribution in (("dp", dist.DataParallel()), ("fsdp", fsdp_act), ("tp", tp_act)):
        dist.set_distribution(distribution)
        for batch_size in (7, 8) if name != "tp" else (8,):
            model = mp_models.act_mlp()
            model.set_weights(weights_of(data, "mlp"))
            mp_models.compile_mlp(model)
            h = model.fit(x, y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0)
            result[f"act_{name}{batch_size}_history"] = json.dumps(h.history)
            for i, w in enumerate(model.get_weights()):
                result[f"act_{name}{batch_size}_w{i}"] = w
    # 8. a custom train_step (Keras 3's torch guide) under tensor parallelism: on a (2, 1) mesh its
    # gradients are averaged over the batch axis by the same buckets as the default step's (even shares:
    # the unweighted mean is the global batch's), on a (1, 2) mesh only laid out like their weights
    for shape in ((2, 1), (1, 2)):
        dist.set_distribution(dist.ModelParallel(
            layout_map=mp_models.mlp_layout(dist.DeviceMesh(shape, ["batch", "model"])), batch_dim_name="batch"))
        model = mp_models.guide_step_mlp()
        model.set_weights(weights_of(data, "mlp"))
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        h = model.fit(x[:32], y[:32], batch_size=8, epochs=2, shuffle=False, verbose=0)
        tag = "x".join(map(str, shape))
        result[f"step_{tag}_loss"] = np.array(h.history["loss"])
        for i, w in enumerate(model.get_weights()):
            result[f"step_{tag}_w{i}"] = w
    # 9. a keras_hub-style LayoutMap over MultiHeadAttention's projections on the (1, 2) mesh
    dist.set_distribution(mp_models.mha_layout(dist.DeviceMesh((1, 2), ["batch", "model"])))
    model = mp_models.mha()
    model.set_weights(weights_of(data, "mha"))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    h = model.fit(data["mha_x"], data["mha_y"], batch_size=4, epochs=2, shuffle=False, verbose=0)
    result["mha_loss"] = np.array(h.history["loss"])
    for i, w in enumerate(model.get_weights()):
        result[f"mha_w{i}"] = w
    result["mha_placements"] = json.dumps([str(getattr(w, "placements", None)) for w in model.weights[:4]])
    # ... and BatchNormalization's global statistics under plain DataParallel on uneven shares (its
    # gradient flows into every rank's rows: the losses are weighted before backward)
    import dp_models

    dist.set_distribution(dist.DataParallel())
    model = dp_models.local_bn_model()
    model.set_weights(weights_of(data, "bn"))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    h = model.fit(x, y, batch_size=7, epochs=2, shuffle=False, verbose=0)
    result["bn_dp7_loss"] = np.array(h.history["loss"])
    for i, w in enumerate(model.get_weights()):
        result[f"bn_dp7_w{i}"] = w
    dist.set_distribution(None)

    np.savez(os.path.join(out, f"rank{rank}.npz"), **result)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
