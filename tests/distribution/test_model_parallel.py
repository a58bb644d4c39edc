"""`keras.distribution.ModelParallel` on two CPU processes (gloo): sharded
(DTensor) weights train, evaluate, predict, save and load like one process
on the global batch.

The per-rank program is `mp_worker.py` (started twice with torchrun's
environment, as in test_data_parallel.py); the models and layouts are in
`mp_models.py`. Single-process checks of the layout errors are here too.
"""

import json
import os
import shutil
import sys
import warnings

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.distribution import model_parallel

sys.path.insert(0, os.path.dirname(__file__))

import dp_models  # noqa: E402
import mp_models  # noqa: E402
from test_data_parallel import run_ranks  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "mp_worker.py")
WORKER4 = os.path.join(os.path.dirname(__file__), "mp4_worker.py")
dist = keras.distribution

needs_dist = pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed")


@pytest.fixture(autouse=True)
def _no_distribution():
    yield
    dist.set_distribution(None)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp("mp")
    rng = np.random.default_rng(0)
    arrays = {
        # 33 samples at global batch 8: on the (2, 1) mesh the last batch leaves rank 1 an empty share
        "x": rng.normal(size=(33, 5)).astype("float32"), "y": rng.normal(size=(33, 3)).astype("float32"),
        "xv": rng.normal(size=(12, 5)).astype("float32"), "yv": rng.normal(size=(12, 3)).astype("float32"),
        "cnn_x": rng.normal(size=(8, 6, 6, 2)).astype("float32"), "cnn_y": rng.normal(size=(8, 2)).astype("float32"),
        "emb_x": rng.integers(0, 12, size=(8, 5)).astype("int32"), "emb_y": rng.normal(size=(8, 2)).astype("float32"),
    }
    torch.manual_seed(0)
    init = {name: getattr(mp_models, name)().get_weights() for name in ("mlp", "cnn", "emb", "mha")}
    arrays["mha_x"] = rng.normal(size=(8, 6, 8)).astype("float32")
    arrays["mha_y"] = rng.normal(size=(8, 3)).astype("float32")
    init["bn"] = dp_models.local_bn_model().get_weights()
    for name, ws in init.items():
        arrays.update({f"{name}_w{i}": w for i, w in enumerate(ws)})
    np.savez(out / "inputs.npz", **arrays)
    run_ranks(WORKER, out, timeout=120)
    ranks = [dict(np.load(out / f"rank{r}.npz")) for r in range(2)]

    # the single-process references, on the global batch
    ref = {}
    model = mp_models.mlp()
    model.set_weights(init["mlp"])
    mp_models.compile_mlp(model)
    ref["history"] = model.fit(arrays["x"], arrays["y"], batch_size=8, epochs=2, shuffle=False, verbose=0,
                               validation_data=(arrays["xv"], arrays["yv"])).history
    ref["mlp"] = model.get_weights()
    ref["evaluate"] = np.array(model.evaluate(arrays["xv"], arrays["yv"], batch_size=4, verbose=0))
    ref["predict"] = model.predict(arrays["x"], batch_size=8, verbose=0)
    for name in ("cnn", "emb"):
        m = getattr(mp_models, name)()
        m.set_weights(init[name])
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        ref[f"{name}_loss"] = m.fit(arrays[f"{name}_x"], arrays[f"{name}_y"], batch_size=4, epochs=2,
                                    shuffle=False, verbose=0).history["loss"]
        ref[name] = m.get_weights()
        ref[f"{name}_predict"] = m.predict(arrays[f"{name}_x"], verbose=0)
    m = mp_models.cnn()
    m.set_weights(init["cnn"])
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ref["cnn_dp_loss"] = m.fit(arrays["cnn_x"], arrays["cnn_y"], batch_size=7, epochs=2, shuffle=False,
                               verbose=0).history["loss"]
    ref["cnn_dp"] = m.get_weights()
    for batch_size in (7, 8):
        m = mp_models.act_mlp()
        m.set_weights(init["mlp"])
        mp_models.compile_mlp(m)
        ref[f"act{batch_size}_history"] = m.fit(arrays["x"], arrays["y"], batch_size=batch_size, epochs=2,
                                                shuffle=False, verbose=0).history
        ref[f"act{batch_size}"] = m.get_weights()
    m = mp_models.mha()
    m.set_weights(init["mha"])
    # (SGD: the key bias's gradient is zero up to rounding, which Adam would blow up to its step size)
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ref["mha_loss"] = m.fit(arrays["mha_x"], arrays["mha_y"], batch_size=4, epochs=2, shuffle=False,
                            verbose=0).history["loss"]
    ref["mha"] = m.get_weights()
    m = mp_models.mlp()
    m.set_weights(init["mlp"])
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    ref["step_loss"] = m.fit(arrays["x"][:32], arrays["y"][:32], batch_size=8, epochs=2, shuffle=False,
                             verbose=0).history["loss"]
    ref["step"] = m.get_weights()
    m = dp_models.local_bn_model()
    m.set_weights(init["bn"])
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    ref["bn_dp7_loss"] = m.fit(arrays["x"], arrays["y"], batch_size=7, epochs=2, shuffle=False,
                               verbose=0).history["loss"]
    ref["bn_dp7"] = m.get_weights()
    return out, arrays, ranks, ref


def _close(a, b, **kw):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, **kw)


@needs_dist
def test_tensor_parallel_mlp_equals_one_process(job):
    _, _, ranks, ref = job
    for r in ranks:
        assert json.loads(str(r["tp_placements"])) == ["(Shard(dim=1),)", "(Shard(dim=0),)", "(Replicate(),)"]
        assert tuple(r["tp_local_shape"]) == (5, 8)  # each rank holds half of the (5, 16) kernel's columns
        assert str(r["row_input"]) == "(Shard(dim=1),)"  # col hands its output on sharded (relu kept it so)
        assert str(r["col_alone"]) == "Tensor"
        for weight_layout, grad_layout in json.loads(str(r["tp_grad_layouts"])):
            assert grad_layout == weight_layout
        for i, w in enumerate(ref["mlp"]):
            _close(r[f"tp_w{i}"], w, err_msg=f"weight {i}")
        history = json.loads(str(r["tp_history"]))
        assert sorted(history) == sorted(ref["history"])
        for key, values in ref["history"].items():
            _close(history[key], values, err_msg=key)
        _close(r["tp_evaluate"], ref["evaluate"])
        _close(r["tp_predict"], ref["predict"])


@needs_dist
def test_batch_axis_is_data_parallel(job):
    _, _, ranks, ref = job
    for r in ranks:
        for i, w in enumerate(ref["mlp"]):
            _close(r[f"dp_w{i}"], w, err_msg=f"weight {i}")
        history = json.loads(str(r["dp_history"]))
        for key, values in ref["history"].items():
            _close(history[key], values, err_msg=key)
        assert r["dp_predict"].shape == ref["predict"].shape
        _close(r["dp_predict"], ref["predict"])


@needs_dist
def test_weights_sharded_along_the_batch_axis_equal_one_process(job):
    """A LayoutMap putting kernels on "batch" of a (2, 1) mesh: FSDP2
    shards them (each rank holds half), gathers them per layer, and the
    fit (uneven last batch: rank 1's share is empty; an L2-regularized
    sharded kernel), evaluate and predict equal one process."""
    _, _, ranks, ref = job
    for r in ranks:
        assert json.loads(str(r["fsdp_placements"])) == ["(Shard(dim=1),)", "(Shard(dim=0),)"]
        assert tuple(r["fsdp_local_shape"]) == (5, 8)  # half of the (5, 16) kernel's columns
        history = json.loads(str(r["fsdp_history"]))
        assert sorted(history) == sorted(ref["history"])
        for key, values in ref["history"].items():
            _close(history[key], values, err_msg=key)
        for i, w in enumerate(ref["mlp"]):
            _close(r[f"fsdp_w{i}"], w, err_msg=f"weight {i}")
        _close(r["fsdp_evaluate"], ref["evaluate"])
        _close(r["fsdp_predict"], ref["predict"])


@needs_dist
def test_lstm_weights_sharded_along_the_batch_axis_equal_one_process(job):
    """FSDP2 refuses strided parameters, and LSTM keeps its kernels in
    torch's layout (transposed views): the batch-axis layout lays them
    back contiguous first; the masked Embedding + LSTM trains as one process."""
    _, _, ranks, ref = job
    for r in ranks:
        _close(r["emb_fsdp_loss"], ref["emb_loss"])
        for i, w in enumerate(ref["emb"]):
            _close(r[f"emb_fsdp_w{i}"], w, err_msg=f"weight {i}")


@needs_dist
def test_sharded_checkpoint_resumes_to_the_same_next_step(job):
    """`save_sharded_checkpoint` (torch.distributed.checkpoint, each rank
    its shards, Adam's moments and step count included), read back into a
    fresh model and into one already laid out, on the tensor-parallel
    (1, 2) mesh and with kernels sharded along the batch axis (FSDP2): the
    next epoch equals the model that wrote it. `ModelCheckpoint(sharded=True)`
    writes the same format during fit (every rank its shards): its epoch-2
    directory resumes like rank 0's whole-file checkpoint of that epoch."""
    _, _, ranks, ref = job
    for r in ranks:
        for i in range(len(ref["mlp"])):
            # ModelCheckpoint(sharded=True)'s epoch-2 directory resumes like rank 0's whole-file checkpoint
            np.testing.assert_allclose(r[f"dcp_callback_w{i}"], r[f"resumed_w{i}"], rtol=1e-6, atol=1e-7,
                                       err_msg=f"callback weight {i}")
            for name in ("fresh", "laid"):
                np.testing.assert_allclose(r[f"dcp_{name}_w{i}"], r[f"dcp_cont_w{i}"], rtol=1e-6, atol=1e-7,
                                           err_msg=f"{name} weight {i}")
            np.testing.assert_allclose(r[f"fsdp_dcp_fresh_w{i}"], r[f"fsdp_dcp_cont_w{i}"], rtol=1e-6, atol=1e-7,
                                       err_msg=f"fsdp weight {i}")
        assert not np.allclose(r["fsdp_dcp_cont_w0"], r["fsdp_w0"])  # the next epoch did train


@needs_dist
@pytest.mark.parametrize("name", ["cnn", "emb"])
def test_conv2d_and_embedding_shards_equal_one_process(job, name):
    """Conv2D + BatchNormalization (gathered per call) and a masked
    Embedding (computed on its row shards) feeding an LSTM."""
    _, _, ranks, ref = job
    for r in ranks:
        placements = json.loads(str(r[f"{name}_placements"]))
        assert placements[0] == ("(Shard(dim=3),)" if name == "cnn" else "(Shard(dim=0),)")
        if name == "cnn":  # conv kernel, bias, then BatchNormalization's four per-channel weights
            assert placements[1:6] == ["(Shard(dim=0),)"] * 5
        else:  # the LSTM kernel's columns; recurrent kernel and bias replicated
            assert placements[1:4] == ["(Shard(dim=1),)", "(Replicate(),)", "(Replicate(),)"]
        _close(r[f"{name}_loss"], ref[f"{name}_loss"])
        for i, w in enumerate(ref[name]):
            _close(r[f"{name}_w{i}"], w, err_msg=f"weight {i}")
        _close(r[f"{name}_predict"], ref[f"{name}_predict"])


@needs_dist
def test_batch_norm_statistics_over_the_batch_axis_group(job):
    """BatchNormalization's global statistics are summed over the batch
    axis's process group only: on a (2, 1) mesh (uneven batches, an empty
    share) they are the global batch's; on a (1, 2) mesh (a batch group of
    one) a `synchronized` layer keeps its local statistics; a
    group of one keeps the local moments, the default group mixes both
    processes' rows. Everything equals one process."""
    _, arrays, ranks, ref = job
    x = arrays["x"]
    for rank, r in enumerate(ranks):
        _close(r["cnn_dp_loss"], ref["cnn_dp_loss"])
        for i, w in enumerate(ref["cnn_dp"]):
            _close(r[f"cnn_dp_w{i}"], w, err_msg=f"(2, 1) weight {i}")
        _close(r["cnn_sync_loss"], ref["cnn_loss"])
        for i, w in enumerate(ref["cnn"]):
            _close(r[f"cnn_sync_w{i}"], w, err_msg=f"(1, 2) synchronized weight {i}")
        own = x[6 * rank:6 * rank + 6].astype("float64")
        both = x[:12].astype("float64")
        _close(r["bn_own_group_mean"], own.mean(0))
        _close(r["bn_own_group_var"], own.var(0))
        _close(r["bn_default_group_mean"], both.mean(0))
        _close(r["bn_default_group_var"], both.var(0))


@needs_dist
@pytest.mark.parametrize("name,batch_size", [("dp", 7), ("dp", 8), ("fsdp", 7), ("fsdp", 8), ("tp", 8)])
def test_activity_regularizers_and_add_loss_on_uneven_shares(job, name, batch_size):
    """Activity regularizers (Keras divides them by the batch size) and a
    mean `add_loss` term weigh each rank by its rows, under DataParallel
    and under FSDP2 (kernels sharded along the batch axis): an uneven step
    (batches of 7: 4 and 3 rows) and an empty share (batches of 8: the last
    leaves rank 1 none) give one process's History and weights. Under
    tensor parallelism ((1, 2) mesh) the activity regularizer of a
    column-sharded output joins the loss whole."""
    _, _, ranks, ref = job
    expected = ref[f"act{batch_size}_history"]
    for r in ranks:
        history = json.loads(str(r[f"act_{name}{batch_size}_history"]))
        assert sorted(history) == sorted(expected)
        for key, values in expected.items():
            _close(history[key], values, err_msg=key)
        for i, w in enumerate(ref[f"act{batch_size}"]):
            _close(r[f"act_{name}{batch_size}_w{i}"], w, err_msg=f"weight {i}")


@needs_dist
@pytest.mark.parametrize("tag", ["2x1", "1x2"])
def test_custom_train_step_under_tensor_parallel(job, tag):
    """Keras 3's torch-guide `train_step` (backward, `optimizer.apply` on
    `.value.grad`) on sharded weights: averaged over the batch axis by the
    default step's buckets on a (2, 1) mesh, laid out like the weights on a
    (1, 2) one; both equal one process."""
    _, _, ranks, ref = job
    for r in ranks:
        _close(r[f"step_{tag}_loss"], ref["step_loss"])
        for i, w in enumerate(ref["step"]):
            _close(r[f"step_{tag}_w{i}"], w, err_msg=f"weight {i}")


@needs_dist
def test_keras_hub_style_attention_layout_equals_one_process(job):
    """Regex keys over MultiHeadAttention's query/key/value/output kernels
    (heads on "model", the one-device batch axis named on a dimension, as
    keras_hub's layout maps do): the projections are sharded by heads and
    the fit equals one process."""
    _, _, ranks, ref = job
    for r in ranks:
        # query kernel (in, heads, head_dim) and bias (heads, head_dim), then the key's: heads sharded
        assert json.loads(str(r["mha_placements"])) == ["(Shard(dim=1),)", "(Shard(dim=0),)"] * 2
        _close(r["mha_loss"], ref["mha_loss"])
        for i, w in enumerate(ref["mha"]):
            _close(r[f"mha_w{i}"], w, err_msg=f"weight {i}")


@needs_dist
def test_batch_norm_data_parallel_on_uneven_shares(job):
    """BatchNormalization's global statistics couple the ranks' losses: on
    uneven (non-empty) shares plain DataParallel still equals one process."""
    _, _, ranks, ref = job
    for r in ranks:
        _close(r["bn_dp7_loss"], ref["bn_dp7_loss"])
        for i, w in enumerate(ref["bn_dp7"]):
            _close(r[f"bn_dp7_w{i}"], w, err_msg=f"weight {i}")


@needs_dist
def test_batch_norm_on_a_two_by_two_mesh_four_processes(job, tmp_path):
    """Four processes on a (2, 2) mesh (model axes of two devices and two
    batch shards): Conv2D with sharded output channels feeding a local and
    a `synchronized` BatchNormalization whose statistics are summed over
    the batch axis's group only, on uneven shares (4/3, then 1/0 rows),
    equal one process."""
    out, _, _, ref = job
    shutil.copy(out / "inputs.npz", tmp_path / "inputs.npz")
    run_ranks(WORKER4, tmp_path, world=4, timeout=240)
    for rank in range(4):
        r = dict(np.load(tmp_path / f"rank{rank}.npz"))
        for tag in ("local", "sync"):
            assert json.loads(str(r[f"{tag}_placements"])) == "(Shard(dim=3),)"
            _close(r[f"{tag}_loss"], ref["cnn_dp_loss"])
            for i, w in enumerate(ref["cnn_dp"]):
                _close(r[f"{tag}_w{i}"], w, err_msg=f"rank {rank} {tag} weight {i}")


@needs_dist
def test_sharded_variable_api_and_set_weights(job):
    _, _, ranks, ref = job
    for rank, r in enumerate(ranks):
        assert str(r["tp_col_path"]) == "col/kernel"  # Keras's path for a functional model's layer
        _close(r["tp_col_numpy"], ref["mlp"][0])
        np.testing.assert_array_equal(r["tp_set_w0"], 2 * r["tp_w0"])
        np.testing.assert_array_equal(r["tp_set_local"], 2 * r["tp_w0"][:, 8 * rank:8 * rank + 8])
        np.testing.assert_array_equal(r["tp_loaded_w0"], r["tp_w0"])
        np.testing.assert_array_equal(r["tp_assign_local"], np.ones((5, 8), "float32"))


@needs_dist
def test_saved_files_hold_whole_weights_and_load_in_one_process(job, keras_ref):
    out, arrays, ranks, ref = job
    loaded = keras.saving.load_model(str(out / "mlp.keras"))
    for i, w in enumerate(loaded.get_weights()):
        np.testing.assert_array_equal(w, ranks[0][f"tp_w{i}"])
    real = keras_ref.saving.load_model(str(out / "mlp.keras"))
    _close(keras_ref.ops.convert_to_numpy(real.predict(arrays["x"], verbose=0)), ref["predict"])
    # save_weights, and the callbacks writing weights during fit (ModelCheckpoint is checked below)
    for path in ("mlp.weights.h5", "backup/latest.weights.h5"):
        plain = mp_models.mlp()
        plain.load_weights(str(out / path))
        for i, w in enumerate(plain.get_weights()):
            np.testing.assert_array_equal(w, ranks[0][f"tp_w{i}"], err_msg=path)
    events = [f for f in os.listdir(out / "tb" / "train") if f.startswith("events")]
    assert len(events) == 1  # rank 0's TensorBoard writer (weight histograms gathered on every rank)


@needs_dist
def test_checkpoint_resumes_into_a_sharded_model(job):
    out, arrays, ranks, ref = job
    # one process resumes from the same file (weights and Adam's moments) for one more epoch
    plain = mp_models.mlp()
    mp_models.compile_mlp(plain)
    plain.optimizer.build(plain.trainable_variables)  # (an unbuilt optimizer's state is skipped, as in Keras)
    plain.load_weights(str(out / "ckpt.weights.h5"))
    for i, w in enumerate(plain.get_weights()):
        np.testing.assert_array_equal(w, ranks[0][f"tp_w{i}"])  # the checkpoint holds epoch 2's weights
    plain.fit(arrays["x"], arrays["y"], batch_size=8, epochs=1, shuffle=False, verbose=0)
    fresh = mp_models.mlp()
    fresh.set_weights([ranks[0][f"tp_w{i}"] for i in range(len(ref["mlp"]))])
    mp_models.compile_mlp(fresh)
    fresh.fit(arrays["x"], arrays["y"], batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert not np.allclose(fresh.get_weights()[0], plain.get_weights()[0], atol=1e-6)  # the moments matter
    for r in ranks:
        for i, w in enumerate(plain.get_weights()):
            _close(r[f"resumed_w{i}"], w, err_msg=f"weight {i}")


@needs_dist
def test_distribute_tensor_and_layout_queries(job):
    _, _, ranks, _ = job
    whole = np.arange(8, dtype="float32").reshape(2, 4)
    for rank, r in enumerate(ranks):
        np.testing.assert_array_equal(r["dt_local"], whole[:, 2 * rank:2 * rank + 2])
        np.testing.assert_array_equal(r["dt_full"], whole)
        assert json.loads(str(r["data_layout"])) == ["batch", None]
        # kernels and biases of col, row (matched) then out (replicated), as in Keras
        assert json.loads(str(r["var_layout"])) == [[None, "model"], [None], ["model", None], [None],
                                                    [None, None], [None]]


@needs_dist
def test_a_layout_that_does_not_fit_raises_on_every_rank(job):
    _, _, ranks, _ = job
    for r in ranks:
        assert "not divisible by the size of mesh axis 'model' (2)" in str(r["bad_error"])
        assert "was laid out by <ModelParallel" in str(r["other_dist_error"])
        assert "fed different first batches" in str(r["own_data_error"])
        assert "Processes [0, 1] (batch shard 0 of axis 'batch')" in str(r["own_data_error"])
        assert "fed different first batches" in str(r["own_y_error"])  # y is compared too
        # a sample_weight on one process only: the step's digest of shapes and dtypes differs at once
        assert "at step 0 the processes fed batches of different shapes" in str(r["own_sw_error"])
        # same first batch (8 rows), then 8 rows on rank 0 and 4 on rank 1: the step's shape digest differs
        assert "at step 1 the processes fed batches of different shapes" in str(r["own_later_error"])


@needs_dist
def test_per_process_data_along_a_model_axis(job):
    """`auto_shard_dataset=False` on a (1, 2) mesh: the two processes form
    one batch shard and feed the same rows (Keras's rule), which equals one
    process; their shuffles agree; different rows raise before any update."""
    _, _, ranks, ref = job
    for r in ranks:
        history = json.loads(str(r["own_history"]))
        for key, values in ref["history"].items():
            _close(history[key], values, err_msg=key)
        for i, w in enumerate(ref["mlp"]):
            _close(r[f"own_w{i}"], w, err_msg=f"weight {i}")
        np.testing.assert_array_equal(r["own_after_error_w0"], r["own_shuffled_w0"])
    for i in range(len(ref["mlp"])):
        np.testing.assert_array_equal(ranks[0][f"own_shuffled_w{i}"], ranks[1][f"own_shuffled_w{i}"])
    assert not np.allclose(ranks[0]["own_shuffled_w0"], ranks[0]["own_w0"])  # the shuffled epoch trained


# ---------------------------------------------------------------- single process
def _two_device_mp(**layouts):
    mesh = dist.DeviceMesh((1, 2), ["batch", "model"], devices=["cpu:0", "cpu:1"])
    layout_map = dist.LayoutMap(mesh)
    for key, value in layouts.items():
        layout_map[key] = value
    return dist.ModelParallel(layout_map=layout_map)


def test_layout_placements_follow_keras_kernel_layout():
    mp = _two_device_mp()
    mp._layout_map["k"] = (None, "model")
    placements = model_parallel.placements_for(mp, "d/kernel", (4, 6), mp._layout_map["k"])
    assert [repr(p) for p in placements] == ["Shard(dim=1)"]  # (in, out): the output units
    assert model_parallel.placements_for(mp, "d/bias", (6,), dist.TensorLayout((None,), mp.device_mesh)) is None


@pytest.mark.parametrize("axes,shape,match", [
    ((None, "model"), (4, 5), "dimension 1 \\(size 5\\) is not divisible by the size of mesh axis 'model' \\(2\\)"),
    ((None,), (4, 6), "does not match its rank"),
    (("model", "model"), (4, 6), "at most one dimension"),
])
def test_bad_layouts_raise_value_error(axes, shape, match):
    mp = _two_device_mp()
    with pytest.raises(ValueError, match=match):
        model_parallel.placements_for(mp, "d/kernel", shape, dist.TensorLayout(axes, mp.device_mesh))


def test_unknown_mesh_axis_raises():
    with pytest.raises(ValueError, match="Invalid axis names"):
        _two_device_mp(**{".*kernel": (None, "tensor")})


def test_single_process_model_parallel_is_plain_fit_and_checks_layouts():
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = x @ np.ones((3, 2), "float32")
    mesh = dist.DeviceMesh((1, 1), ["batch", "model"], devices=["cpu:0"])
    layout_map = dist.LayoutMap(mesh)
    layout_map[".*dense.*kernel"] = (None, "model")
    a = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    b = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile(optimizer="sgd", loss="mse")
    a.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    with dist.ModelParallel(layout_map=layout_map).scope():
        b.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    bad = dist.LayoutMap(mesh)
    bad[".*dense.*kernel"] = ("model",)
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    unbuilt.compile(optimizer="sgd", loss="mse")
    with dist.ModelParallel(layout_map=bad).scope():
        with pytest.raises(ValueError, match="does not match its rank"):
            b.fit(x, y, epochs=1, verbose=0)
        with pytest.raises(ValueError, match="does not match its rank"):
            unbuilt.fit(x, y, epochs=1, verbose=0)  # checked once the first call built it
    assert not unbuilt._forward_hooks


def test_sharded_model_checkpoint_in_one_process(tmp_path):
    """`ModelCheckpoint(sharded=True)` writes `save_sharded_checkpoint`'s
    format in a single process too (no process group): a fresh model
    resumes from it to the same next epoch (weights and Adam's moments);
    without `save_weights_only` it is a ValueError."""
    from kerasish.distribution import model_parallel

    with pytest.raises(ValueError, match="pass `save_weights_only=True`"):
        keras.callbacks.ModelCheckpoint(str(tmp_path / "c"), sharded=True)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 5)).astype("float32"), rng.normal(size=(16, 3)).astype("float32")
    model = mp_models.mlp()
    mp_models.compile_mlp(model)
    ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt_{epoch}"), save_weights_only=True, sharded=True)
    last = keras.callbacks.ModelCheckpoint(str(tmp_path / "last"), save_weights_only=True, sharded=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[ckpt, last])
    # (torch's notes on a single-process save and on overwriting "last" each epoch are expected, not shown)
    assert not [str(w.message) for w in caught if "checkpoint" in str(w.message) or "torch.distributed" in
                str(w.message)]
    assert (tmp_path / "ckpt_2").is_dir()
    overwritten = mp_models.mlp()
    overwritten.build((None, 5))
    model_parallel.load_sharded_checkpoint(overwritten, str(tmp_path / "last"))
    for a, b in zip(model.get_weights(), overwritten.get_weights()):
        np.testing.assert_array_equal(b, a)  # the last epoch's weights
    fresh = mp_models.mlp()
    mp_models.compile_mlp(fresh)
    fresh.build((None, 5))
    model_parallel.load_sharded_checkpoint(fresh, str(tmp_path / "ckpt_2"))
    for m in (model, fresh):
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_batch_axis_sharding_with_a_model_axis_raises():
    mesh = dist.DeviceMesh((2, 2), ["batch", "model"], devices=[f"cpu:{i}" for i in range(4)])
    mp = dist.ModelParallel(layout_map=dist.LayoutMap(mesh))
    layout = dist.TensorLayout(("batch", None), mesh)
    with pytest.raises(NotImplementedError, match="batch axis 'batch' .* also has a model axis"):
        model_parallel.placements_for(mp, "d/kernel", (4, 6), layout)
    one = dist.DeviceMesh((2, 1), ["batch", "model"], devices=["cpu:0", "cpu:1"])
    fsdp = dist.ModelParallel(layout_map=dist.LayoutMap(one))
    # FSDP2's job (`fully_shard_model`), no tensor-parallel placements
    assert model_parallel.placements_for(fsdp, "d/kernel", (4, 6), dist.TensorLayout(("batch", None), one)) is None
