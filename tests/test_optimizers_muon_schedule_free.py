"""Muon and ScheduleFreeAdamW vs real Keras 3 (torch backend): same initial
weights, same gradient sequence, weights and optimizer variables equal after
every step; configs both ways; optimizer state through `.keras` files."""

import warnings

import numpy as np
import pytest
import torch

import kerasish
import kerasish.optimizers as optimizers
from kerasish.optimizers import schedules

RTOL, ATOL = 1e-5, 1e-6
# a matrix (Muon step), a vector, a tall matrix, a 3-D kernel and an "embedding" matrix (Adam steps)
SHAPES = {"dense_kernel": (3, 4), "dense_bias": (4,), "out_kernel": (6, 3), "conv_kernel": (2, 3, 2),
          "embedding_embeddings": (5, 3)}


def _data(steps=6):
    rng = np.random.default_rng(0)
    w0 = {k: rng.standard_normal(s).astype("float32") for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s).astype("float32") * 2 for k, s in SHAPES.items()} for _ in range(steps)]
    return w0, grads


def _compare(keras_ref, name, kwargs, ref_kwargs=None, prepare=None):
    w0, grads = _data()
    kv = [keras_ref.Variable(w, name=k) for k, w in w0.items()]
    tv = []
    for k, w in w0.items():
        p = torch.nn.Parameter(torch.tensor(w))
        p.path = k  # what a kerasish layer weight answers; Muon and weight-decay exclusion match on it
        tv.append(p)
    ko = getattr(keras_ref.optimizers, name)(**(ref_kwargs or kwargs))
    to = getattr(optimizers, name)(**kwargs)
    if prepare:
        prepare(ko, kv)
        prepare(to, tv)
    for step, g in enumerate(grads):
        ko.apply_gradients(zip([keras_ref.ops.convert_to_tensor(g[k]) for k in SHAPES], kv))
        to.apply_gradients(zip([torch.tensor(g[k]) for k in SHAPES], tv))
        for a, b in zip(kv, tv):
            np.testing.assert_allclose(b.detach().numpy(), keras_ref.ops.convert_to_numpy(a), rtol=RTOL, atol=ATOL,
                                       err_msg=f"{name} {kwargs} step {step} {b.path}")
    assert int(to.iterations) == int(keras_ref.ops.convert_to_numpy(ko.iterations))
    assert len(to.variables) == len(ko.variables)
    for a, b in zip(ko.variables, to.variables):
        np.testing.assert_allclose(np.asarray(b.detach()), keras_ref.ops.convert_to_numpy(a), rtol=RTOL, atol=ATOL,
                                   err_msg=a.path)
    return to, ko


def _exclude_wd(opt, variables):
    opt.exclude_from_weight_decay(var_names=["bias"])


CASES = [
    ("Muon", {}),
    ("Muon", {"nesterov": False, "rms_rate": None, "learning_rate": 0.02, "momentum": 0.9}),
    ("Muon", {"exclude_layers": ["out"], "weight_decay": 0.1, "adam_weight_decay": 0.01, "adam_lr_ratio": 0.5}),
    ("Muon", {"exclude_embeddings": False, "ns_steps": 3, "adam_beta_1": 0.8, "epsilon": 1e-5}),
    ("Muon", {"learning_rate": schedules.ExponentialDecay(0.01, 2, 0.5)}),
    ("Muon", {"global_clipnorm": 1.0, "use_ema": True, "ema_momentum": 0.9}),
    ("Muon", {"gradient_accumulation_steps": 2}),
    ("ScheduleFreeAdamW", {}),
    ("ScheduleFreeAdamW", {"warmup_steps": 3, "weight_decay": 0.01, "learning_rate": 0.01}),
    ("ScheduleFreeAdamW", {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-6, "clipvalue": 0.5}),
    ("ScheduleFreeAdamW", {"learning_rate": schedules.CosineDecay(0.01, 10)}),
    ("ScheduleFreeAdamW", {"gradient_accumulation_steps": 3, "loss_scale_factor": 8.0}),
]


def _keras_kwargs(keras_ref, kwargs):
    """The same arguments for Keras: schedules rebuilt from their configs."""
    out = dict(kwargs)
    lr = kwargs.get("learning_rate")
    if isinstance(lr, schedules.LearningRateSchedule):
        out["learning_rate"] = getattr(keras_ref.optimizers.schedules, type(lr).__name__).from_config(lr.get_config())
    return out


def _case_id(v):
    """Deterministic ids (pytest-xdist workers must collect the same names): schedules by class."""
    if isinstance(v, dict):
        return str({k: (type(x).__name__ if hasattr(x, "get_config") else x) for k, x in v.items()})
    return str(v)


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=_case_id)
def test_matches_keras(keras_ref, name, kwargs):
    to, ko = _compare(keras_ref, name, kwargs, _keras_kwargs(keras_ref, kwargs))
    cfg, ref_cfg = to.get_config(), ko.get_config()
    assert set(cfg) == set(ref_cfg)
    for k, v in ref_cfg.items():
        if k in ("name", "learning_rate"):
            continue
        assert cfg[k] == v, k


@pytest.mark.parametrize("name", ["Muon", "ScheduleFreeAdamW"])
def test_weight_decay_exclusion_matches_keras(keras_ref, name):
    _compare(keras_ref, name, {"weight_decay": 0.2, "learning_rate": 0.05}, prepare=_exclude_wd)


def test_muon_splits_variables_like_keras(keras_ref):
    """Which variables get a velocity (the Adam ones) follows Keras exactly."""
    to, ko = _compare(keras_ref, "Muon", {"exclude_layers": ["conv"]})
    suffix = "_velocity"
    with_velocity = sorted(v.path.split("/")[-1][: -len(suffix)] for v in ko.variables if v.path.endswith(suffix))
    assert with_velocity == sorted(p.path for p in to._trainable_variables if "velocity" in to.state[p])
    # Muon matrices: dense/kernel and out/kernel; the embedding, bias and 3-D kernel are Adam's
    assert [bool(to._should_use_adamw(p)) for p in to._trainable_variables] == [False, True, False, True, True]
    assert with_velocity == ["conv_kernel", "dense_bias", "embedding_embeddings"]


def test_newton_schulz_orthogonalises():
    """NS5 drives the singular values of a random matrix towards 1 (about 0.7-1.2 for 5 steps)."""
    g = torch.Generator().manual_seed(0)
    for shape in [(8, 5), (5, 8)]:
        x = torch.randn(*shape, generator=g)
        u = optimizers.muon.zeropower_via_newtonschulz5(x, 5, 3.4445, -4.7750, 2.0315)
        s = torch.linalg.svdvals(u)
        assert u.shape == x.shape and float(s.min()) > 0.5 and float(s.max()) < 1.3
        # same singular vectors as the exact polar factor U V^T
        U, _, Vh = torch.linalg.svd(x, full_matrices=False)
        cos = torch.nn.functional.cosine_similarity(u.flatten(), (U @ Vh).flatten(), dim=0)
        assert float(cos) > 0.95


@pytest.mark.parametrize("name", ["Muon", "ScheduleFreeAdamW"])
def test_config_round_trip_both_ways(keras_ref, name):
    kw = {"Muon": {"exclude_layers": ["out"], "momentum": 0.9, "rms_rate": None},
          "ScheduleFreeAdamW": {"warmup_steps": 5, "beta_1": 0.8}}[name]
    to = getattr(optimizers, name)(learning_rate=0.01, **kw)
    again = optimizers.deserialize(optimizers.serialize(to))
    assert type(again) is type(to) and again.get_config() == to.get_config()
    ko = keras_ref.optimizers.deserialize(kerasish.saving.serialization_lib.serialize_keras_object(to))
    assert type(ko).__name__ == name
    ref = ko.get_config()
    for k, v in to.get_config().items():
        assert ref[k] == pytest.approx(v) if isinstance(v, float) else ref[k] == v, k
    back = optimizers.deserialize(keras_ref.optimizers.serialize(ko))
    assert type(back) is type(to) and back.get_config()["warmup_steps" if name != "Muon" else "exclude_layers"] == (
        to.get_config()["warmup_steps" if name != "Muon" else "exclude_layers"])


def test_keras2_lr_argument():
    with pytest.warns(UserWarning, match="lr"):
        opt = optimizers.Muon(lr=0.05)
    assert float(opt.learning_rate) == pytest.approx(0.05)


def test_bad_arguments():
    with pytest.raises(ValueError, match="ns_steps"):
        optimizers.Muon(ns_steps=-1)
    with pytest.raises(TypeError, match="exclude_layers"):
        optimizers.Muon(exclude_layers="out")
    with pytest.raises(ValueError, match="warmup_steps"):
        optimizers.ScheduleFreeAdamW(warmup_steps=1.5)
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.ScheduleFreeAdamW(beta_1=0.0)


def _model(k):
    return k.Sequential([k.Input((4,)), k.layers.Dense(8, name="hidden"), k.layers.Dense(2, name="head")])


@pytest.mark.parametrize("name", ["Muon", "ScheduleFreeAdamW"])
def test_fit_then_keras_file_loads_in_keras(keras_ref, tmp_path, name):
    pytest.importorskip("h5py")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 4)).astype("float32"), rng.standard_normal((16, 2)).astype("float32")
    torch.manual_seed(0)
    q, k = _model(kerasish), _model(keras_ref)
    k.set_weights(q.get_weights())
    kw = {"exclude_layers": ["head"]} if name == "Muon" else {}
    q.compile(optimizer=getattr(kerasish.optimizers, name)(learning_rate=0.01, **kw), loss="mse")
    k.compile(optimizer=getattr(keras_ref.optimizers, name)(learning_rate=0.01, **kw), loss="mse")
    hq = q.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    hk = k.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(hq, hk, rtol=1e-5)
    for a, b in zip(q.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kerasish.saving.save_model(q, path)
        loaded = keras_ref.saving.load_model(path)
    assert type(loaded.optimizer).__name__ == name and int(loaded.optimizer.iterations) == 4
    for a, b in zip(k.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_allclose(keras_ref.ops.convert_to_numpy(b), keras_ref.ops.convert_to_numpy(a),
                                   rtol=1e-5, atol=1e-6, err_msg=a.path)
    # and Keras's file back into kerasish
    k.save(str(tmp_path / "k.keras"))
    q2 = kerasish.saving.load_model(str(tmp_path / "k.keras"))
    assert type(q2.optimizer) is getattr(kerasish.optimizers, name)
    for a, b in zip(k.optimizer.variables, q2.optimizer.variables):
        np.testing.assert_allclose(np.asarray(b.detach()), keras_ref.ops.convert_to_numpy(a), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["Muon", "ScheduleFreeAdamW"])
def test_torch_loop_equals_apply_and_state_dict_resumes(name):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    twin = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    twin.load_state_dict(net.state_dict())
    opt = getattr(optimizers, name)(learning_rate=0.01).build(net.parameters())
    ref = getattr(optimizers, name)(learning_rate=0.01)
    x, y = torch.randn(8, 4), torch.randn(8, 2)
    for i in range(4):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        loss = torch.nn.functional.mse_loss(twin(x), y)
        grads = torch.autograd.grad(loss, list(twin.parameters()))
        ref.apply(grads, list(twin.parameters()))
        if i == 1:  # resume the reference from a state dict half-way
            sd = ref.state_dict()
            ref = getattr(optimizers, name)(learning_rate=0.01).build(twin.parameters())
            ref.load_state_dict(sd)
    for a, b in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["Muon", "ScheduleFreeAdamW"])
def test_update_on_device_equals_cpu(name, device):
    """State is created on the weights' device; a device update equals the CPU one (NS5 matmuls included)."""
    w0, grads = _data(steps=4)
    results = []
    for dev in ("cpu", device):
        ws = [torch.nn.Parameter(torch.tensor(w, device=dev)) for w in w0.values()]
        for p, k in zip(ws, w0):
            p.path = k
        opt = getattr(optimizers, name)(learning_rate=0.01, weight_decay=0.01).build(ws)
        for g in grads:
            opt.apply([torch.tensor(g[k], device=dev) for k in w0], ws)
        assert all(s.device.type == dev for p in ws for s in opt.state[p].values())
        results.append([p.detach().cpu() for p in ws])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
