"""A torch LR scheduler made on an unbuilt MultiOptimizer (before its first
step, as `get_scheduler(...)` right after the optimizer does): the
MultiOptimizer lists its inner optimizers' pending learning-rate groups from
the start, so the scheduler records and drives each inner rate, and the build
keeps what it wrote. Before, the unbuilt MultiOptimizer had no group: LambdaLR
failed at `step()` with a zip error (and base_lrs-driven schedulers changed
nothing). A callable map whose optimizers are found only at the build raises
a ValueError instead of leaving their rates unscheduled.

Reference: the same model trained with the inner optimizers built first and
one LambdaLR each (the single-optimizer path, itself checked against Keras).
"""

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.optimizers.multi_optimizer import MultiOptimizer, OptimizerMap


def _model(seed=0):
    torch.manual_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="enc"), keras.layers.Dense(2, name="head")])


def _halving(epoch):
    return 0.5**epoch


def _train(model, optimizer, schedulers, steps=3):
    rng = np.random.default_rng(1)
    for _ in range(steps):
        x = torch.from_numpy(rng.standard_normal((5, 3)).astype("float32"))
        optimizer.zero_grad()
        (model(x) ** 2).mean().backward()
        optimizer.step()
        for s in schedulers:
            s.step()


def _reference(steps=3):
    """Inner optimizers built first, one LambdaLR each, stepped on their own variables."""
    model = _model()
    sgd, adam = keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.Adam(0.01)
    head = [v for v in model.trainable_variables if v.path.startswith("sequential/head") or "head/" in v.path]
    rest = [v for v in model.trainable_variables if all(v is not h for h in head)]
    sgd.build(rest)
    adam.build(head)
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, _halving) for o in (sgd, adam)]

    class Both:
        def zero_grad(self):
            sgd.zero_grad()
            adam.zero_grad()

        def step(self):
            sgd.step()
            adam.step()

    _train(model, Both(), scheds, steps)
    return model, sgd, adam


def test_lambda_lr_made_before_build_drives_each_inner_rate():
    model = _model()
    sgd, adam = keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.Adam(0.01)
    multi = MultiOptimizer(OptimizerMap(sgd, {".*head/.*": adam}))
    sched = torch.optim.lr_scheduler.LambdaLR(multi, _halving)  # unbuilt: no variables yet
    assert sorted(sched.base_lrs) == pytest.approx([0.01, 0.1])
    multi.build(model.trainable_variables)
    _train(model, multi, [sched])
    ref_model, ref_sgd, ref_adam = _reference()
    np.testing.assert_allclose(float(sgd.learning_rate), 0.1 * 0.5**3, rtol=1e-6)
    np.testing.assert_allclose(float(adam.learning_rate), 0.01 * 0.5**3, rtol=1e-6)
    for got, want in zip(model.get_weights(), ref_model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert int(sgd.iterations) == int(adam.iterations) == 3


def test_scheduler_through_loss_scale_optimizer_and_an_unused_inner_optimizer():
    """LossScaleOptimizer(MultiOptimizer) shares the groups; an inner optimizer the map lists but no variable
    reaches keeps its pending group, so the scheduler still lines up group for group."""
    model = _model()
    sgd, adam, unused = keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.Adam(0.01), keras.optimizers.SGD(1.0)
    multi = MultiOptimizer(OptimizerMap(sgd, {".*head/.*": adam, ".*nothing/.*": unused}))
    lso = keras.optimizers.LossScaleOptimizer(multi, initial_scale=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(lso, _halving)
    assert len(sched.base_lrs) == 3
    lso.build(model.trainable_variables)
    assert len(lso.param_groups) == 3 and not unused.built
    _train(model, lso, [sched])
    ref_model, _, _ = _reference()
    np.testing.assert_allclose(float(sgd.learning_rate), 0.1 * 0.5**3, rtol=1e-6)
    np.testing.assert_allclose(float(adam.learning_rate), 0.01 * 0.5**3, rtol=1e-6)
    for got, want in zip(model.get_weights(), ref_model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_callable_map_with_scheduler_before_build_raises():
    model = _model()
    sgd, adam = keras.optimizers.SGD(0.1), keras.optimizers.Adam(0.01)
    multi = MultiOptimizer(lambda v: adam if "head" in v.path else sgd)
    torch.optim.lr_scheduler.LambdaLR(multi, _halving)
    with pytest.raises(ValueError, match="LR scheduler was attached before the build.*Build the optimizer first"):
        multi.build(model.trainable_variables)


def test_callable_map_scheduler_after_build_works():
    model = _model()
    sgd, adam = keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.Adam(0.01)
    multi = MultiOptimizer(lambda v: adam if "head" in v.path else sgd)
    multi.build(model.trainable_variables)
    sched = torch.optim.lr_scheduler.LambdaLR(multi, _halving)
    _train(model, multi, [sched])
    ref_model, _, _ = _reference()
    for got, want in zip(model.get_weights(), ref_model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
