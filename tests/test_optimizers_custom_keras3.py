"""Optimizers written the Keras 3 way (`build` creating slots with
`add_variable_from_reference` / `add_optimizer_variables` / `add_variable`,
`update_step(gradient, variable, learning_rate)` updating them with `assign` /
`assign_add` / `assign_sub`, `_get_variable_index`): kerasish had none of
these methods, so such an optimizer could not be ported. Against real Keras 3
(torch backend): Histories, weights, the optimizer's variables (names, paths,
values), `.keras` files both ways; `state_dict()` round trips in place."""

import numpy as np
import pytest
import torch

import kerasish as keras

X = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
Y = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")
TOL = {"rtol": 1e-6, "atol": 1e-6}


def _optimizer_classes(k):
    ops = k.ops

    class MomentumSGD(k.optimizers.Optimizer):
        """Keras's own docstring example of a custom optimizer."""

        def __init__(self, learning_rate=0.05, momentum=0.9, name="momentum_sgd", **kwargs):
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)
            self.momentum = momentum

        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            self.momentums = [self.add_variable_from_reference(v, "momentum") for v in variables]

        def update_step(self, gradient, variable, learning_rate):
            learning_rate = ops.cast(learning_rate, variable.dtype)
            gradient = ops.cast(gradient, variable.dtype)
            m = self.momentums[self._get_variable_index(variable)]
            self.assign(m, ops.subtract(ops.multiply(m, ops.cast(self.momentum, variable.dtype)),
                                        ops.multiply(gradient, learning_rate)))
            self.assign_add(variable, m)

        def get_config(self):
            return {**super().get_config(), "momentum": self.momentum}

    class TwoSlots(k.optimizers.Optimizer):
        """Two slots made at once, one starting at 1, and an optimizer-wide counter."""

        def __init__(self, learning_rate=0.01, name="two_slots", **kwargs):
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)

        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            self.first, self.scale = self.add_optimizer_variables(variables, ["first", "scale"],
                                                                  initializer=["zeros", "ones"])
            self.count = self.add_variable((), initializer="zeros", dtype="float32", name="count")

        def update_step(self, gradient, variable, learning_rate):
            i = self._get_variable_index(variable)
            self.assign(self.first[i], 0.5 * self.first[i] + 0.5 * gradient)
            self.assign(self.scale[i], self.scale[i] * 0.99 + ops.square(gradient) * 0.01)
            self.assign_sub(variable, ops.cast(learning_rate, variable.dtype) * self.first[i] / ops.sqrt(self.scale[i]))
            self.assign_add(self.count, 1.0)

    return {"MomentumSGD": MomentumSGD, "TwoSlots": TwoSlots}


def _train(k, name, epochs=3):
    model = k.Sequential([k.Input((3,), name="inp"), k.layers.Dense(4, activation="tanh", name="d1"),
                          k.layers.Dense(2, name="d2")], name="net")
    rng = np.random.default_rng(2)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.get_weights()])
    model.compile(optimizer=_optimizer_classes(k)[name](), loss="mse")
    history = model.fit(X, Y, batch_size=4, epochs=epochs, shuffle=False, verbose=0).history
    return model, history


@pytest.mark.parametrize("name", ["MomentumSGD", "TwoSlots"])
def test_custom_optimizer_trains_as_in_keras(keras_ref, name):
    ours, h_ours = _train(keras, name)
    ref, h_ref = _train(keras_ref, name)
    np.testing.assert_allclose(h_ours["loss"], h_ref["loss"], **TOL)
    for a, b in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, **TOL)
    ours_vars, ref_vars = ours.optimizer.variables, ref.optimizer.variables
    assert [v.path for v in ours_vars] == [v.path for v in ref_vars]
    for a, b in zip(ours_vars, ref_vars):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)


def test_keras_files_carry_the_custom_state_both_ways(keras_ref, tmp_path):
    ours, _ = _train(keras, "MomentumSGD")
    ref, _ = _train(keras_ref, "MomentumSGD")
    ours.save(tmp_path / "ours.keras")
    ref.save(tmp_path / "ref.keras")
    for path, lib, want in ((tmp_path / "ours.keras", keras_ref, ours), (tmp_path / "ref.keras", keras, ref)):
        restored = lib.saving.load_model(path, custom_objects=_optimizer_classes(lib))
        restored.fit(X[:4], Y[:4], epochs=1, verbose=0, shuffle=False)  # builds the optimizer, loads its state
        reloaded = lib.saving.load_model(path, custom_objects=_optimizer_classes(lib))
        reloaded.optimizer.build(reloaded.trainable_variables)
        reloaded.load_weights(path)
        got = [np.asarray(v) for v in reloaded.optimizer.variables]
        assert len(got) == len(want.optimizer.variables) == 2 + 4
        for a, b in zip(got, want.optimizer.variables):
            np.testing.assert_allclose(a, np.asarray(b), **TOL)


def test_state_dict_round_trip_writes_the_subclass_slots_in_place():
    model, _ = _train(keras, "TwoSlots", epochs=1)
    opt = model.optimizer
    state = opt.state_dict()
    before = [v.detach().clone() for v in opt.variables]
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    slots = opt.first[0]
    opt.load_state_dict(state)
    assert opt.first[0] is slots  # the subclass's own lists still point at the optimizer's variables
    for a, b in zip(opt.variables, before):
        torch.testing.assert_close(a.detach(), b)
    opt.set_weights([np.zeros(tuple(v.shape), dtype=np.asarray(v).dtype) for v in opt.variables])
    assert float(opt.count) == 0.0 and float(opt.first[0].abs().sum()) == 0.0


def test_an_optimizer_without_update_step_says_what_to_write():
    class Incomplete(keras.optimizers.Optimizer):
        pass

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=Incomplete(learning_rate=0.1), loss="mse")
    with pytest.raises(NotImplementedError, match="update_step"):
        model.fit(X, Y, verbose=0)


def test_building_on_lazy_weights_says_to_call_the_model_first():
    """A torch user's habit: the optimizer built on `model.parameters()` before
    the first call. A Keras 3 style `build` makes slots shaped like the
    variables, which do not have shapes yet: a clear error, not torch's."""
    model = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(1)])
    opt = _optimizer_classes(keras)["MomentumSGD"]()
    with pytest.raises(ValueError, match="Call the model once"):
        opt.build(list(model.parameters()))
    model(torch.zeros(2, 3))
    opt.build(list(model.parameters()))
    assert len(opt.momentums) == 4
