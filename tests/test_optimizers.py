"""Optimizers vs real Keras 3 (torch backend): same weights, same gradients."""

import copy
import warnings

import numpy as np
import pytest
import torch

import kerasish
import kerasish.optimizers as optimizers
from kerasish.optimizers import schedules

RTOL, ATOL = 1e-5, 1e-6


def _data(seed=0, steps=5):
    rng = np.random.default_rng(seed)
    w0 = [rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal(4).astype("float32")]
    grads = [[rng.standard_normal(w.shape).astype("float32") * 2 for w in w0] for _ in range(steps)]
    return w0, grads


def _compare(keras_ref, name, kwargs, ref_kwargs=None):
    w0, grads = _data()
    kv = [keras_ref.Variable(w) for w in w0]
    ko = getattr(keras_ref.optimizers, name)(**(ref_kwargs or kwargs))
    tv = [torch.nn.Parameter(torch.tensor(w)) for w in w0]
    to = getattr(optimizers, name)(**kwargs)
    for step, g in enumerate(grads):
        ko.apply_gradients(zip([keras_ref.ops.convert_to_tensor(x) for x in g], kv))
        to.apply_gradients(zip([torch.tensor(x) for x in g], tv))
        for a, b in zip(kv, tv):
            np.testing.assert_allclose(
                b.detach().numpy(), keras_ref.ops.convert_to_numpy(a), rtol=RTOL, atol=ATOL, err_msg=f"step {step}"
            )
    assert int(to.iterations) == int(keras_ref.ops.convert_to_numpy(ko.iterations))
    return to, ko


CASES = [
    ("SGD", {}), ("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("Adam", {}), ("Adam", {"amsgrad": True}), ("Adam", {"weight_decay": 0.1}),
    ("Adam", {"clipnorm": 1.0}), ("Adam", {"clipvalue": 0.5}), ("Adam", {"global_clipnorm": 1.5}),
    ("Adam", {"use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": 2}),
    ("Adam", {"gradient_accumulation_steps": 2}), ("Adam", {"loss_scale_factor": 4.0}),
    ("AdamW", {}), ("AdamW", {"weight_decay": 0.05, "amsgrad": True}),
    ("RMSprop", {}), ("RMSprop", {"momentum": 0.9}), ("RMSprop", {"centered": True, "momentum": 0.5}),
    ("Adagrad", {}), ("Adagrad", {"initial_accumulator_value": 0.5, "learning_rate": 0.1}),
    ("Adadelta", {"learning_rate": 1.0}), ("Adamax", {}), ("Nadam", {}), ("Nadam", {"weight_decay": 0.01}),
    ("Lion", {}), ("SGD", {"momentum": 0.5, "global_clipnorm": 1.0, "weight_decay": 0.01}),
    ("Ftrl", {"learning_rate": 0.1, "l1_regularization_strength": 0.01}), ("Adafactor", {}), ("Lamb", {}),
    ("Adam", {"amsgrad": True, "use_ema": True, "gradient_accumulation_steps": 2}),
    ("RMSprop", {"centered": True, "momentum": 0.5, "use_ema": True}),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=lambda v: str(v))
def test_matches_keras(keras_ref, name, kwargs):
    to, ko = _compare(keras_ref, name, kwargs)
    cfg = to.get_config()
    ref_cfg = ko.get_config()
    assert set(cfg) == set(ref_cfg)
    for k, v in ref_cfg.items():
        if k == "name":  # Keras uniquifies names ("adam_3"); we keep the plain snake-case name
            assert v.startswith(cfg[k])
        elif isinstance(v, float):
            assert cfg[k] == pytest.approx(v, rel=1e-6), k
        else:
            assert cfg[k] == v, k
    clone = type(to).from_config(cfg)
    assert clone.get_config() == cfg
    assert len(to.variables) == len(ko.variables)
    # the same variables in the same order: `.keras` files store them by index
    for i, (t, k) in enumerate(zip(to.variables, ko.variables)):
        t = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        np.testing.assert_allclose(
            t, keras_ref.ops.convert_to_numpy(k), rtol=RTOL, atol=ATOL, err_msg=f"optimizer variable {i} ({k.path})"
        )


@pytest.mark.parametrize(
    "schedule",
    [
        ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5}),
        ("CosineDecay", {"initial_learning_rate": 0.01, "decay_steps": 4, "warmup_target": 0.1, "warmup_steps": 2}),
        ("PiecewiseConstantDecay", {"boundaries": [1, 3], "values": [0.1, 0.01, 0.001]}),
    ],
    ids=lambda s: s[0],
)
def test_schedule_as_learning_rate_matches_keras(keras_ref, schedule):
    name, kw = schedule
    to, _ = _compare(
        keras_ref, "SGD", {"learning_rate": getattr(schedules, name)(**kw), "momentum": 0.9},
        {"learning_rate": getattr(keras_ref.optimizers.schedules, name)(**kw), "momentum": 0.9},
    )
    cfg = to.get_config()
    assert cfg["learning_rate"]["class_name"] == name
    restored = optimizers.SGD.from_config(cfg)
    assert isinstance(restored._schedule, getattr(schedules, name))
    with pytest.raises(TypeError):
        to.learning_rate = 0.5


def _linear_problem():
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    y = x @ torch.randn(5, 2) + 0.1
    return x, y


def test_torch_loop_trains_and_equals_apply_gradients():
    x, y = _linear_problem()
    torch.manual_seed(1)
    m1 = torch.nn.Linear(5, 2)
    m2 = torch.nn.Linear(5, 2)
    m2.load_state_dict(m1.state_dict())
    opt1 = optimizers.Adam(learning_rate=0.05).build(m1.parameters())
    opt2 = optimizers.Adam(learning_rate=0.05)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(m1(x), y)
        loss.backward()
        opt1.step()
        opt1.zero_grad()
        losses.append(loss.item())
        loss2 = torch.nn.functional.mse_loss(m2(x), y)
        params = list(m2.parameters())
        grads = torch.autograd.grad(loss2, params)
        opt2.apply_gradients(zip(grads, params))
    assert losses[-1] < 0.5 * losses[0]
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert int(opt1.iterations) == 30
    assert all(p.grad is None for p in m1.parameters())


def test_step_skips_frozen_and_missing_grads():
    a = torch.nn.Parameter(torch.ones(3))
    b = torch.nn.Parameter(torch.ones(3), requires_grad=False)
    c = torch.nn.Parameter(torch.ones(3))
    opt = optimizers.SGD(learning_rate=0.1).build([a, b, c])
    (a * 2).sum().backward()
    opt.step()
    torch.testing.assert_close(a.detach(), torch.full((3,), 0.8))
    torch.testing.assert_close(b.detach(), torch.ones(3))
    torch.testing.assert_close(c.detach(), torch.ones(3))
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        opt.apply([torch.ones(3), None, None], [a, b, c])
    with pytest.raises(ValueError, match="No gradients"):
        opt.apply([None, None, None], [a, b, c])
    with pytest.raises(ValueError, match="Unknown variable"):
        opt.apply([torch.ones(3)], [torch.nn.Parameter(torch.ones(3))])


def test_constraint_attribute_applied():
    p = torch.nn.Parameter(torch.zeros(4))
    p.constraint = lambda w: torch.clamp(w, min=0.0, max=0.05)
    q = torch.nn.Parameter(torch.zeros(4))
    opt = optimizers.SGD(learning_rate=1.0)
    opt.apply_gradients([(torch.tensor([-1.0, 1.0, -0.01, 0.0]), p), (torch.tensor([-1.0, 1.0, 0.0, 0.0]), q)])
    torch.testing.assert_close(p.detach(), torch.tensor([0.05, 0.0, 0.01, 0.0]))
    torch.testing.assert_close(q.detach(), torch.tensor([1.0, -1.0, 0.0, 0.0]))


@pytest.mark.parametrize("name", ["Adam", "Nadam", "RMSprop"])
def test_state_dict_round_trip_resumes_identically(name):
    x, y = _linear_problem()
    kwargs = {"momentum": 0.9, "centered": True} if name == "RMSprop" else {}

    def train(model, opt, n):
        for _ in range(n):
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            opt.zero_grad()

    torch.manual_seed(2)
    ref = torch.nn.Linear(5, 2)
    ref_opt = getattr(optimizers, name)(learning_rate=0.01, **kwargs).build(ref.parameters())
    train(ref, ref_opt, 3)
    # state dicts hold references to live tensors: snapshot them, as a checkpoint file would
    saved_model, saved_opt = copy.deepcopy(ref.state_dict()), copy.deepcopy(ref_opt.state_dict())
    train(ref, ref_opt, 4)

    other = torch.nn.Linear(5, 2)
    other.load_state_dict(saved_model)
    opt = getattr(optimizers, name)(learning_rate=0.01, **kwargs).build(other.parameters())
    opt.load_state_dict(saved_opt)
    assert int(opt.iterations) == 3
    train(other, opt, 4)
    for a, b in zip(ref.parameters(), other.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_torch_lr_scheduler_and_learning_rate_property():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = optimizers.SGD(learning_rate=0.1).build([p])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    p.grad = torch.ones(2)
    opt.step()
    sched.step()
    assert float(opt.learning_rate) == pytest.approx(0.05)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((2,), -0.15))
    opt.learning_rate = 0.2
    assert opt.param_groups[0]["lr"] == 0.2
    assert opt.get_config()["learning_rate"] == 0.2


def test_get_serialize_deserialize():
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    assert isinstance(optimizers.get("RMSprop"), optimizers.RMSprop)
    sgd = optimizers.SGD(momentum=0.5)
    assert optimizers.get(sgd) is sgd
    torch_opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    assert optimizers.get(torch_opt) is torch_opt
    cfg = optimizers.serialize(optimizers.Adam(learning_rate=0.01, amsgrad=True))
    assert cfg["module"] == "keras.optimizers" and cfg["class_name"] == "Adam"
    restored = optimizers.deserialize(cfg)
    assert isinstance(restored, optimizers.Adam) and restored.amsgrad and float(restored.learning_rate) == pytest.approx(0.01)
    assert optimizers.get({"class_name": "SGD", "config": {"learning_rate": 0.3}}).get_config()["learning_rate"] == 0.3
    with pytest.raises(ValueError, match="nope"):
        optimizers.get("nope")
    with pytest.raises(ValueError):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="not recognized"):
        optimizers.Adam(foo=1)
    kerasish.utils.clear_session()  # optimizer names count per session, as Keras's auto_name
    assert optimizers.RMSprop().name == "rm_sprop" and optimizers.Adam().name == "adam"


def test_exclude_from_weight_decay_and_ema_finalize(keras_ref):
    """Decay on `a` only, EMA on both, then `finalize_variable_values`:
    step for step what Keras 3 gives (weights, iterations)."""
    kwargs = {"learning_rate": 0.1, "weight_decay": 0.5, "use_ema": True}
    w0 = [np.array([1.0, -2.0], "float32"), np.array([0.5, 3.0], "float32")]
    grads = [[np.array([0.3, -0.1], "float32"), np.array([0.0, 0.2], "float32")],
             [np.array([-0.2, 0.4], "float32"), np.array([0.1, -0.3], "float32")]]
    ours = [torch.nn.Parameter(torch.tensor(w)) for w in w0]
    theirs = [keras_ref.Variable(w) for w in w0]
    opt, ref = optimizers.SGD(**kwargs), keras_ref.optimizers.SGD(**kwargs)
    opt.exclude_from_weight_decay(var_list=[ours[1]])
    ref.exclude_from_weight_decay(var_list=[theirs[1]])
    for g in grads:
        opt.apply_gradients(zip([torch.tensor(x) for x in g], ours))
        ref.apply_gradients(zip([keras_ref.ops.convert_to_tensor(x) for x in g], theirs))
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.detach().numpy(), keras_ref.ops.convert_to_numpy(b), rtol=RTOL, atol=ATOL)
    opt.finalize_variable_values(ours)
    ref.finalize_variable_values(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.detach().numpy(), keras_ref.ops.convert_to_numpy(b), rtol=RTOL, atol=ATOL)
    # the EMA changed the values: they are not the plain SGD ones
    assert not np.allclose(ours[1].detach().numpy(), w0[1] - 0.1 * (grads[0][1] + grads[1][1]))


def test_param_groups_and_devices_dtypes():
    a = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(2))
    opt = optimizers.Adam(learning_rate=0.1).build([{"params": [a]}, {"params": [b], "lr": 0.01}])
    a.grad = torch.ones(2, dtype=torch.float64)
    b.grad = torch.ones(2)
    opt.step()
    assert a.dtype == torch.float64 and opt.state[a]["momentum"].dtype == torch.float64
    assert float(1 - a[0].detach()) == pytest.approx(0.1, rel=1e-5)
    assert float(1 - b[0].detach()) == pytest.approx(0.01, rel=1e-4)


def test_torch_style_construction_builds_on_the_parameters():
    """`Adam(model.parameters(), lr=...)` (torch's order, as skorch and ZeroRedundancyOptimizer build
    optimizers) is `Adam(learning_rate=...).build(params)`; the parameters used to be taken for
    `learning_rate` and dropped for `lr=`, leaving an optimizer with nothing to update."""
    torch.manual_seed(0)
    nets = [torch.nn.Linear(3, 2) for _ in range(4)]
    for net in nets[1:]:
        net.load_state_dict(nets[0].state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (torch's `lr` here: no Keras 2 deprecation warning)
        opts = [optimizers.Adam(learning_rate=0.1, beta_1=0.8).build(nets[0].parameters()),
                optimizers.Adam(nets[1].parameters(), lr=0.1, beta_1=0.8),
                optimizers.Adam(params=list(nets[2].named_parameters()), learning_rate=0.1, beta_1=0.8),
                optimizers.Adam([{"params": nets[3].parameters()}], lr=0.1, beta_1=0.8)]
    x = torch.randn(5, 3)
    initial = nets[0].weight.detach().clone()
    for net, opt in zip(nets, opts):
        for _ in range(3):
            net(x).square().sum().backward()
            opt.step()
            opt.zero_grad()
    for net in nets[1:]:
        torch.testing.assert_close(net.weight, nets[0].weight, rtol=0, atol=0)
    assert not torch.allclose(nets[0].weight, initial)
    with pytest.raises(TypeError, match=r"by keyword.*Keras's order"):
        optimizers.Adam(nets[0].parameters(), 0.1)  # would have been beta_1=0.1
    assert optimizers.SGD(nets[0].parameters()).learning_rate == pytest.approx(0.01)  # Keras's default
    # a param group may repeat an optimizer-wide setting (ZeroRedundancyOptimizer copies the constructor's
    # arguments into its groups); another value would be ignored, so it is refused
    optimizers.Adam(beta_1=0.8).build([{"params": nets[0].parameters(), "beta_1": 0.8, "amsgrad": False}])
    with pytest.raises(ValueError, match=r"\['beta_1'\] would be silently ignored"):
        optimizers.Adam(beta_1=0.8).build([{"params": nets[0].parameters(), "beta_1": 0.9}])
