"""Keras optimizers inside torch's optimizer tooling (optleft round).

1. torch's momentum-cycling schedulers (OneCycleLR's default `cycle_momentum=True`, CyclicLR) drive a Keras
   optimizer's `beta_1` / `momentum` through the param groups' "betas" / "momentum", read back before the
   next update as torch's own optimizers read them. Checked against torch's Adam / SGD under the same
   scheduler (the lr and beta/momentum sequences, and Adam's weights) and against real Keras 3 fed the
   same per-step learning rate and beta_1 / momentum through its own attributes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish as keras

STEPS = 12


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 3, generator=g), torch.randn(16, 4, generator=g), torch.randn(16, 3, generator=g)


def _grad(w, x, y):
    return 2.0 * x.T @ (x @ w - y) / y.numel()


def _scheduler(kind, opt):
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=STEPS)
    return torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.005, max_lr=0.05, step_size_up=4, cycle_momentum=True,
                                             base_momentum=0.8, max_momentum=0.9)


def _run_scheduled(make_opt, kind, key):
    """Trains one weight matrix for STEPS steps under the scheduler; returns the final weight and the
    (lr, betas-or-momentum) sequence each update ran with."""
    w0, x, y = _data()
    w = torch.nn.Parameter(w0.clone())
    opt = make_opt([w])
    sched = _scheduler(kind, opt)
    seq = []
    for _ in range(STEPS):
        group = opt.param_groups[0]
        seq.append((group["lr"], group[key]))
        w.grad = _grad(w.detach(), x, y)
        opt.step()
        sched.step()
    return w.detach().clone(), seq


def _keras_reference(keras_ref, make_keras_opt, seq, attr):
    """Real Keras 3 given the same per-step learning rate and beta_1 / momentum on its own attributes."""
    w0, x, y = _data()
    v = keras_ref.Variable(w0.numpy())
    opt = make_keras_opt()
    opt.build([v])
    for lr, hp in seq:
        opt.learning_rate.assign(lr)
        setattr(opt, attr, hp[0] if isinstance(hp, tuple) else hp)
        g = _grad(torch.as_tensor(np.asarray(v.numpy())), x, y)
        opt.apply([g], [v])
    return torch.as_tensor(np.asarray(v.numpy()))


@pytest.mark.parametrize("kind", ["onecycle", "cyclic"])
def test_cycled_betas_drive_keras_adam_as_torch_adam(kind, keras_ref):
    ours, seq = _run_scheduled(lambda p: keras.optimizers.Adam(p, lr=0.01, epsilon=1e-8), kind, "betas")
    theirs, torch_seq = _run_scheduled(lambda p: torch.optim.Adam(p, lr=0.01, eps=1e-8), kind, "betas")
    assert seq == torch_seq  # the scheduler drove the same lr and betas
    assert len({b[0] for _, b in seq}) > 3  # (beta_1 really moves)
    # torch's Adam adds eps after the bias correction, Keras's before: otherwise the same maths
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=2e-5)
    keras_w = _keras_reference(keras_ref, lambda: keras_ref.optimizers.Adam(0.01, epsilon=1e-8), seq, "beta_1")
    torch.testing.assert_close(ours, keras_w, rtol=1e-5, atol=1e-6)
    # the betas mattered: the same lr sequence with a constant beta_1 ends elsewhere
    fixed, _ = _run_scheduled(lambda p: keras.optimizers.Adam(p, lr=0.01, epsilon=1e-8), kind, "betas")
    const = _keras_reference(keras_ref, lambda: keras_ref.optimizers.Adam(0.01, epsilon=1e-8),
                             [(lr, (0.9, 0.999)) for lr, _ in seq], "beta_1")
    assert (fixed - const).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["AdamW", "Adamax", "Nadam", "Lion"])
def test_cycled_betas_drive_the_other_beta_optimizers_as_keras(name, keras_ref):
    """The other optimizers exposing "betas" against real Keras fed the same lr / beta_1 per step (Nadam's
    momentum schedule and Lion's interpolation read the current beta_1 too)."""
    ours, seq = _run_scheduled(lambda p: getattr(keras.optimizers, name)(p, lr=0.01), "onecycle", "betas")
    keras_w = _keras_reference(keras_ref, lambda: getattr(keras_ref.optimizers, name)(0.01), seq, "beta_1")
    torch.testing.assert_close(ours, keras_w, rtol=1e-5, atol=1e-6)
    const = _keras_reference(keras_ref, lambda: getattr(keras_ref.optimizers, name)(0.01),
                             [(lr, 0.9) for lr, _ in seq], "beta_1")
    assert (ours - const).abs().max() > 1e-5


@pytest.mark.parametrize("kind", ["onecycle", "cyclic"])
@pytest.mark.parametrize("name", ["sgd", "rmsprop"])
def test_cycled_momentum_drives_keras_momentum(kind, name, keras_ref):
    make = {"sgd": lambda p: keras.optimizers.SGD(p, lr=0.01, momentum=0.9),
            "rmsprop": lambda p: keras.optimizers.RMSprop(p, lr=0.01, momentum=0.9)}[name]
    ours, seq = _run_scheduled(make, kind, "momentum")
    _, torch_seq = _run_scheduled(lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), kind, "momentum")
    assert seq == torch_seq
    assert len({m for _, m in seq}) > 3
    ref_cls = {"sgd": keras_ref.optimizers.SGD, "rmsprop": keras_ref.optimizers.RMSprop}[name]
    keras_w = _keras_reference(keras_ref, lambda: ref_cls(0.01, momentum=0.9), seq, "momentum")
    torch.testing.assert_close(ours, keras_w, rtol=1e-5, atol=1e-6)
    fixed_momentum = _keras_reference(keras_ref, lambda: ref_cls(0.01, momentum=0.9),
                                      [(lr, 0.9) for lr, _ in seq], "momentum")
    assert (ours - fixed_momentum).abs().max() > 1e-4


def test_keras_attribute_write_reaches_groups_and_update(keras_ref):
    """Keras's way (`optimizer.beta_1 = ...`) still drives the update, and the groups show it."""
    w0, x, y = _data()
    w = torch.nn.Parameter(w0.clone())
    opt = keras.optimizers.Adam(learning_rate=0.01)
    opt.build([w])
    assert opt.defaults["betas"] == opt.param_groups[0]["betas"] == (0.9, 0.999)
    opt.beta_1 = 0.5
    w.grad = _grad(w.detach(), x, y)
    opt.step()
    assert opt.param_groups[0]["betas"] == (0.5, 0.999)
    keras_w = _keras_reference(keras_ref, lambda: keras_ref.optimizers.Adam(0.01), [(0.01, (0.5, 0.999))], "beta_1")
    torch.testing.assert_close(w.detach(), keras_w, rtol=1e-5, atol=1e-6)


def test_scheduled_momentum_without_momentum_slots_is_refused():
    w = torch.nn.Parameter(torch.zeros(3))
    opt = keras.optimizers.SGD([w], lr=0.01)  # momentum=0: no momentum slot to drive
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=4)
    w.grad = torch.ones(3)
    with pytest.raises(ValueError, match=r"SGD .*momentum=0\.0.*cycle_momentum=False"):
        opt.step()
    assert torch.equal(w.detach(), torch.zeros(3))  # nothing updated
    del sched


def test_per_group_momenta_are_refused():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = keras.optimizers.Adam([{"params": [a]}, {"params": [b]}], lr=0.01)
    torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=4, max_momentum=[0.95, 0.9])
    a.grad, b.grad = torch.ones(2), torch.ones(2)
    with pytest.raises(ValueError, match=r"Adam .*different 'betas'"):
        opt.step()


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`:UserWarning")
def test_cycled_betas_under_compiled_fullgraph_update_equal_eager():
    """A compiled (fullgraph) update reads the scheduled betas too; each new value is a new graph, as a new
    learning rate is (both are Python floats in the param groups)."""
    from torch._dynamo.testing import CompileCounter

    def make():
        w = torch.nn.Parameter(torch.ones(3, 4))
        opt = keras.optimizers.Adam([w], lr=0.01)
        return w, opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=6)

    (w, opt, sched), (ref_w, ref, ref_sched) = make(), make()
    torch._dynamo.reset()
    counter = CompileCounter()
    step = torch.compile(lambda g: opt.apply([g], [w]), backend=counter, fullgraph=True)
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        g = torch.randn(3, 4, generator=gen)
        step(g)
        ref.apply([g], [ref_w])
        sched.step()
        ref_sched.step()
    assert counter.frame_count >= 2  # (a constant-beta graph would not have seen the new betas)
    torch.testing.assert_close(w.detach(), ref_w.detach(), rtol=1e-5, atol=1e-6)
    # eager reference with the betas held constant ends elsewhere
    const_w = torch.nn.Parameter(torch.ones(3, 4))
    const = keras.optimizers.Adam([const_w], lr=0.01)
    const_sched = torch.optim.lr_scheduler.OneCycleLR(const, max_lr=0.05, total_steps=6, cycle_momentum=False)
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        const.apply([torch.randn(3, 4, generator=gen)], [const_w])
        const_sched.step()
    assert (const_w.detach() - ref_w.detach()).abs().max() > 1e-4


def test_multi_group_build_and_unscheduled_groups_unchanged():
    """Exposing "betas" keeps a plain multi-group build working and torch-style groups that carry the
    optimizer's own betas accepted; a group with other betas is refused as before."""
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = keras.optimizers.Adam(learning_rate=0.01)
    opt.build([{"params": [a]}, {"params": [b], "lr": 0.1, "betas": (0.9, 0.999)}])
    assert [g["betas"] for g in opt.param_groups] == [(0.9, 0.999)] * 2
    with pytest.raises(ValueError, match="betas"):
        keras.optimizers.Adam(learning_rate=0.01).build([{"params": [a], "betas": (0.5, 0.999)}])


# ---------------------------------------------- 2. MultiOptimizer through torch.distributed.checkpoint
def _multi_setup():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="first"), keras.layers.Dense(1, name="head")])
    opt = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(
        keras.optimizers.SGD(0.05, momentum=0.9), {".*first/.*": keras.optimizers.Adam(0.05)}))
    opt.build(model.trainable_variables)
    return model, opt


def _multi_steps(model, opt, batches):
    for x, y in batches:
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.apply(torch.autograd.grad(loss, model.trainable_variables), model.trainable_variables)


def test_multi_optimizer_resumes_through_dcp_state_dict_helpers(tmp_path):
    """torch's `get_state_dict(model, optimizer)` / `set_state_dict` need a torch-layout optimizer state
    dict (`state` + `param_groups`): a MultiOptimizer raised KeyError 'state'. Resumed == uninterrupted:
    its iterations, each inner optimizer's iterations and slots, and the weights two steps later."""
    import copy
    import warnings

    dcp = pytest.importorskip("torch.distributed.checkpoint", reason="needs torch.distributed.checkpoint")
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from torch.distributed.checkpoint.state_dict import set_state_dict

    g = torch.Generator().manual_seed(3)
    data = [(torch.randn(8, 3, generator=g), torch.randn(8, 1, generator=g)) for _ in range(5)]
    model, opt = _multi_setup()
    straight = copy.deepcopy(model)
    straight_opt = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(
        keras.optimizers.SGD(0.05, momentum=0.9), {".*first/.*": keras.optimizers.Adam(0.05)}))
    straight_opt.build(straight.trainable_variables)
    _multi_steps(model, opt, data[:3])
    _multi_steps(straight, straight_opt, data[:3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch.distributed.checkpoint's own notes: no process group)
        msd, osd = get_state_dict(model, opt)
        assert int(opt.iterations) == 3  # (no zero-lr step taken to create state)
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(tmp_path))
        resumed, resumed_opt = _multi_setup()
        msd, osd = get_state_dict(resumed, resumed_opt)
        state = {"model": msd, "optim": osd}
        dcp.load(state, checkpoint_id=str(tmp_path))
        set_state_dict(resumed, resumed_opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    assert int(resumed_opt.iterations) == 3
    assert [int(o.iterations) for o in resumed_opt.optimizers] == [int(o.iterations) for o in opt.optimizers] == [3, 3]
    for ours, theirs in zip(resumed_opt.variables, opt.variables):
        torch.testing.assert_close(torch.as_tensor(ours).detach(), torch.as_tensor(theirs).detach(), rtol=0, atol=0)
    _multi_steps(resumed, resumed_opt, data[3:])
    _multi_steps(straight, straight_opt, data[3:])
    for ours, theirs in zip(resumed.trainable_variables, straight.trainable_variables):
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=0, atol=0)


def test_multi_optimizer_state_dict_round_trip_and_old_layout(tmp_path):
    model, opt = _multi_setup()
    g = torch.Generator().manual_seed(4)
    _multi_steps(model, opt, [(torch.randn(8, 3, generator=g), torch.randn(8, 1, generator=g)) for _ in range(2)])
    sd = opt.state_dict()
    assert sorted(sd["state"]) == list(range(4)) and sum(len(g["params"]) for g in sd["param_groups"]) == 4
    path = tmp_path / "opt.pt"
    torch.save(sd, path)
    other_model, other = _multi_setup()
    other.load_state_dict(torch.load(path, weights_only=True))
    assert int(other.iterations) == 2 and [int(o.iterations) for o in other.optimizers] == [2, 2]
    for ours, theirs in zip(other.variables, opt.variables):
        torch.testing.assert_close(torch.as_tensor(ours).detach(), torch.as_tensor(theirs).detach(), rtol=0, atol=0)
    # the layout written before (one state dict per inner optimizer) still loads
    old = {"optimizers": [o.state_dict() for o in opt.optimizers], "keras": {"iterations": 2}}
    third = _multi_setup()[1]
    third.load_state_dict(old)
    assert int(third.iterations) == 2 and [int(o.iterations) for o in third.optimizers] == [2, 2]


# ------------------------------------------------ 3. LossScaleOptimizer.dynamic_scale is a Keras variable
def test_loss_scale_dynamic_scale_is_a_keras_variable_like_keras(keras_ref):
    """Keras users write the scale with `optimizer.dynamic_scale.assign(...)` and read it with `.numpy()`; it
    is the variable in `optimizer.variables`. kerasish had a plain tensor (no `assign`)."""
    w0, x, y = _data()

    def run(k, variable, to_numpy):
        opt = k.optimizers.LossScaleOptimizer(k.optimizers.SGD(0.1), initial_scale=2.0**7, dynamic_growth_steps=2)
        opt.build([variable])
        assert isinstance(opt.dynamic_scale, k.Variable)
        assert any(v is opt.dynamic_scale for v in opt.variables)
        assert any(v is opt.step_counter for v in opt.variables)
        opt.dynamic_scale.assign(4.0)
        seen = [float(np.asarray(opt.dynamic_scale.numpy()))]
        for _ in range(3):
            w = torch.as_tensor(to_numpy(variable))
            opt.apply([_grad(w, x, y) * float(np.asarray(opt.dynamic_scale.numpy()))], [variable])
            seen.append(float(np.asarray(opt.dynamic_scale.numpy())))
        opt.apply([torch.full((4, 3), float("inf"))], [variable])  # a non-finite step halves it
        seen.append(float(np.asarray(opt.dynamic_scale.numpy())))
        seen.append(int(np.asarray(opt.step_counter.numpy())))
        return seen, torch.as_tensor(to_numpy(variable))

    ours = torch.nn.Parameter(w0.clone())
    seen, w = run(keras, ours, lambda v: v.detach().numpy())
    ref_seen, ref_w = run(keras_ref, keras_ref.Variable(w0.numpy()), lambda v: np.asarray(v.numpy()))
    assert seen == ref_seen == [4.0, 4.0, 8.0, 8.0, 4.0, 0]
    torch.testing.assert_close(w, ref_w, rtol=1e-6, atol=1e-7)


def test_loss_scale_state_dict_keeps_plain_numbers_after_assign():
    """The torch state dict (GradScaler-like plain numbers) is unchanged, and loads into the variable."""
    w = torch.nn.Parameter(torch.zeros(2))
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    opt.build([w])
    opt.dynamic_scale.assign(256.0)
    sd = opt.state_dict()
    assert sd["loss_scale"] == {"step_counter": 0, "dynamic_scale": 256.0}
    other = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    other.build([torch.nn.Parameter(torch.zeros(2))])
    other.load_state_dict(sd)
    assert float(other.dynamic_scale.numpy()) == 256.0
    assert float(other.scale_loss(torch.tensor(1.0))) == 256.0


def test_cycled_betas_through_a_loss_scale_optimizer_equal_the_inner_one():
    """LossScaleOptimizer shares its inner optimizer's groups and defaults: OneCycleLR drives the inner
    Adam's betas through it (torch's scheduler refused it before: no "betas" in its defaults)."""
    w0, x, y = _data()
    runs = []
    for wrap in (False, True):
        w = torch.nn.Parameter(w0.clone())
        opt = keras.optimizers.Adam(learning_rate=0.01)
        if wrap:
            opt = keras.optimizers.LossScaleOptimizer(opt, initial_scale=2.0**4)
        opt.build([w])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=STEPS)
        for _ in range(STEPS - 1):
            scale = float(opt.dynamic_scale.numpy()) if wrap else 1.0
            w.grad = _grad(w.detach(), x, y) * scale
            opt.step()
            sched.step()
        runs.append((w.detach().clone(), opt.param_groups[0]["betas"]))
    assert runs[0][1] == runs[1][1] and runs[0][1][0] != 0.9
    torch.testing.assert_close(runs[1][0], runs[0][0], rtol=1e-6, atol=1e-7)


def test_state_dict_round_trip_carries_scheduled_betas_and_old_dicts_still_schedule():
    w0, x, y = _data()
    w = torch.nn.Parameter(w0.clone())
    opt = keras.optimizers.Adam([w], lr=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=STEPS)
    for _ in range(3):
        w.grad = _grad(w.detach(), x, y)
        opt.step()
        sched.step()
    sd = opt.state_dict()
    resumed = keras.optimizers.Adam([torch.nn.Parameter(w0.clone())], lr=0.01)
    resumed.load_state_dict(sd)
    assert resumed.beta_1 == sd["param_groups"][0]["betas"][0] != 0.9  # as torch's Adam restores its betas
    # a state dict written before "betas" was exposed: the groups get the optimizer's own, a scheduler works
    old = {**sd, "param_groups": [{k: v for k, v in g.items() if k not in ("betas", "initial_lr", "max_lr",
                                                                          "min_lr", "max_momentum", "base_momentum")}
                                  for g in sd["param_groups"]]}
    again = keras.optimizers.Adam([torch.nn.Parameter(w0.clone())], lr=0.01)
    again.load_state_dict(old)
    assert again.beta_1 == 0.9 and again.param_groups[0]["betas"] == (0.9, 0.999)
    torch.optim.lr_scheduler.OneCycleLR(again, max_lr=0.05, total_steps=STEPS)
    assert again.param_groups[0]["betas"][0] == 0.95


def test_cycled_betas_through_a_multi_optimizer_of_adams_equal_one_adam():
    """A MultiOptimizer whose inner optimizers all expose "betas" exposes it too (OneCycleLR refused it);
    one of Adam and SGD exposes nothing, and torch's own refusal stays."""
    w0, x, y = _data()
    runs = []
    for multi in (False, True):
        a, b = keras.Variable(w0[:2].numpy(), name="first"), keras.Variable(w0[2:].numpy(), name="second")
        if multi:
            opt = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(
                keras.optimizers.Adam(0.01), {"first": keras.optimizers.Adam(0.01)}))
            assert opt.defaults["betas"] == (0.9, 0.999)
        else:
            opt = keras.optimizers.Adam(0.01)
        opt.build([a, b])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=STEPS)
        for _ in range(STEPS - 1):
            w = torch.cat([a.detach(), b.detach()])
            g = _grad(w, x, y)
            a.grad, b.grad = g[:2], g[2:]
            opt.step()
            sched.step()
        runs.append(torch.cat([a.detach(), b.detach()]))
        if multi:
            first, second = (o.beta_1 for o in opt.optimizers)  # (what the last update ran with)
            assert first == second and 0.85 <= first < 0.95 and first != 0.9
    torch.testing.assert_close(runs[1], runs[0], rtol=0, atol=0)
    mixed = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(
        keras.optimizers.SGD(0.01, momentum=0.9), {"x": keras.optimizers.Adam(0.01)}))
    assert "betas" not in mixed.defaults and "momentum" not in mixed.defaults
