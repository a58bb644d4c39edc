"""`optimizer.variables` are Keras variables named as Keras 3 names them
(`iteration`, `learning_rate`, `<weight path with _>_<slot>`, path
`<optimizer name>/<name>`), in Keras's order, and they are the optimizer's
state: writing one changes the next update."""

import numpy as np
import pytest
import torch

import kerasish as keras


def _fit_one_step(K, make_optimizer, mixed=False):
    if mixed:
        K.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = K.Sequential([K.Input((3,)), K.layers.Dense(2, name="head"), K.layers.Dense(1, name="out")],
                             name="net")
        model.compile(optimizer=make_optimizer(K), loss="mse")
        model.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), batch_size=4, verbose=0)
    finally:
        if mixed:
            K.mixed_precision.set_global_policy("float32")
    return model.optimizer


CASES = {
    "adam": lambda K: K.optimizers.Adam(0.01),
    "sgd_momentum": lambda K: K.optimizers.SGD(0.01, momentum=0.9),
    "adamw_ema_accumulation": lambda K: K.optimizers.AdamW(0.01, use_ema=True, gradient_accumulation_steps=2),
    "rmsprop_centered_schedule": lambda K: K.optimizers.RMSprop(
        K.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9), momentum=0.5, centered=True),
    "adam_amsgrad": lambda K: K.optimizers.Adam(amsgrad=True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_names_paths_and_order_match_keras(keras_ref, case):
    ours = _fit_one_step(keras, CASES[case])
    ref = _fit_one_step(keras_ref, CASES[case])
    assert [v.name for v in ours.variables] == [v.name for v in ref.variables]
    # paths: `<optimizer name>/<name>` (the optimizer names count per session in both)
    assert [v.path for v in ours.variables] == [f"{ours.name}/{v.name}" for v in ours.variables]
    assert [v.path for v in ref.variables] == [f"{ref.name}/{v.name}" for v in ref.variables]
    assert [tuple(v.shape) for v in ours.variables] == [tuple(v.shape) for v in ref.variables]
    assert all(isinstance(v, keras.Variable) and not v.trainable for v in ours.variables)


def test_loss_scale_optimizer_names_match_keras(keras_ref):
    ours = _fit_one_step(keras, lambda K: K.optimizers.Adam(0.01), mixed=True)
    ref = _fit_one_step(keras_ref, lambda K: K.optimizers.Adam(0.01), mixed=True)
    assert type(ours).__name__ == type(ref).__name__ == "LossScaleOptimizer"
    assert [v.name for v in ours.variables] == [v.name for v in ref.variables]
    strip = lambda opt: [v.path.replace(opt.name, "<lso>").replace(opt.inner_optimizer.name, "<inner>")
                         for v in opt.variables]
    assert strip(ours) == strip(ref)


def test_optimizer_names_count_per_session_as_keras(keras_ref):
    def names(K):
        K.utils.clear_session()
        return [K.optimizers.Adam().name, K.optimizers.Adam().name, K.optimizers.SGD().name,
                K.optimizers.Adam(name="mine").name]
    assert names(keras) == names(keras_ref) == ["adam", "adam_1", "sgd", "mine"]


def test_variables_are_the_state():
    opt = _fit_one_step(keras, CASES["sgd_momentum"])
    variables = opt.variables
    assert opt.variables[2] is variables[2]  # one view per state tensor
    momentum = variables[2]
    assert momentum.name == "net_head_kernel_momentum"
    kernel = opt._trainable_variables[0]
    assert kernel.path == "net/head/kernel"
    # zero the momentum through the variable: the next SGD step is then -lr * grad exactly
    momentum.assign(np.zeros((3, 2), "float32"))
    before = kernel.detach().clone()
    grad = torch.full((3, 2), 2.0)
    opt.apply([grad] + [torch.zeros_like(p) for p in opt._trainable_variables[1:]])
    torch.testing.assert_close(kernel.detach(), before - 0.01 * grad)
    # the learning rate variable writes through to the optimizer
    variables[1].assign(0.5)
    assert float(opt.learning_rate) == pytest.approx(0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    # numpy() is a snapshot, as for any Keras variable
    snap = momentum.numpy()
    expected = snap.copy()
    momentum.assign(np.ones((3, 2), "float32"))
    np.testing.assert_array_equal(snap, expected)
    assert not np.array_equal(snap, momentum.numpy())


def test_optimizer_pickles_and_copies_after_reading_variables():
    import copy
    import pickle

    opt = _fit_one_step(keras, CASES["adam"])
    names = [v.name for v in opt.variables]
    for clone in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt)):
        assert [v.name for v in clone.variables] == names
        for mine, theirs in zip(clone.variables[2:], opt.variables[2:]):
            torch.testing.assert_close(mine.detach(), theirs.detach())
            assert mine.untyped_storage().data_ptr() != theirs.untyped_storage().data_ptr()


def test_torch_parameters_get_positional_names_and_plain_pickles(tmp_path):
    linear = torch.nn.Linear(3, 2)
    opt = keras.optimizers.Adam(0.01)
    opt.build(list(linear.parameters()))
    linear(torch.ones(1, 3)).sum().backward()
    opt.apply([p.grad for p in linear.parameters()])
    names = [v.name for v in opt.variables]
    assert names == ["iteration", "learning_rate", "param_0_momentum", "param_0_velocity",
                     "param_1_momentum", "param_1_velocity"]
    torch.save(opt.variables, tmp_path / "state.pt")
    loaded = torch.load(tmp_path / "state.pt", weights_only=True)
    assert [type(t) for t in loaded] == [torch.Tensor] * len(names)
    for got, want in zip(loaded, opt.variables):
        torch.testing.assert_close(got, want.detach().clone().as_subclass(torch.Tensor))
