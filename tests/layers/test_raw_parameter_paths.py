"""A plain `nn.Parameter` set on a kerasish layer (`self.alpha = nn.Parameter(t)`
in `build` or `__init__`, `register_parameter`) is a Keras weight with the name
and path `add_weight(name=...)` gives in real Keras 3 ("scale/alpha"): the
weights' paths, the optimizer's slot paths and `get_state_tree` equal those of
the Keras layer written with `add_weight`, and `.keras` files move both ways."""

import numpy as np
import pytest
import torch

import kerasish

pytest.importorskip("h5py")


class TorchStyleScale(kerasish.layers.Layer):
    """The torch habit: raw Parameters, one made in `__init__`, one in `build`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.beta = torch.nn.Parameter(torch.full((3,), 0.25))

    def build(self, input_shape):
        self.alpha = torch.nn.Parameter(torch.full((input_shape[-1],), 0.5))

    def call(self, x):
        return x * self.alpha + self.beta


def _keras_scale(keras):
    class TorchStyleScale(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.beta = self.add_weight(shape=(3,), initializer=keras.initializers.Constant(0.25), name="beta")

        def build(self, input_shape):
            self.alpha = self.add_weight(shape=(input_shape[-1],), initializer=keras.initializers.Constant(0.5),
                                         name="alpha")

        def call(self, x):
            return x * self.alpha + self.beta

    return TorchStyleScale


def _model(k, scale_cls):
    inputs = k.Input((3,))
    return k.Model(inputs, scale_cls(name="scale")(k.layers.Dense(3, name="d")(inputs)))


X = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
Y = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")


def _trained(k, scale_cls, weights=None):
    model = _model(k, scale_cls)
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=k.optimizers.Adam(0.01), loss="mse")
    model.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return model


def test_paths_slots_and_state_tree_equal_keras_add_weight(keras_ref):
    ours = _trained(kerasish, TorchStyleScale)
    theirs = _trained(keras_ref, _keras_scale(keras_ref), weights=None)
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    assert ours.get_layer("scale").alpha.path == "scale/alpha"
    assert ours.get_layer("scale").alpha.name == "alpha"
    assert _slot_paths(ours) == _slot_paths(theirs)
    assert "scale_alpha_momentum" in _slot_paths(ours)
    ours_tree, theirs_tree = ours.get_state_tree(), theirs.get_state_tree()
    assert set(ours_tree["trainable_variables"]["scale"]) == set(theirs_tree["trainable_variables"]["scale"])
    assert set(ours_tree["optimizer_variables"][ours.optimizer.name]) == set(
        theirs_tree["optimizer_variables"][theirs.optimizer.name])


def _slot_paths(model):
    """The optimizer variables' paths without the optimizer's name (numbered per process: "adam_3")."""
    return [v.path.split("/", 1)[-1] for v in model.optimizer.variables]


def test_keras_files_move_both_ways(keras_ref, tmp_path):
    scale_cls = _keras_scale(keras_ref)
    ours = _trained(kerasish, TorchStyleScale)
    path = str(tmp_path / "ours.keras")
    ours.save(path)
    theirs = keras_ref.saving.load_model(path, custom_objects={"TorchStyleScale": scale_cls})
    np.testing.assert_allclose(keras_ref.ops.convert_to_numpy(theirs(X)), ours(torch.as_tensor(X)).detach().numpy(),
                               rtol=1e-6, atol=1e-6)
    assert _slot_paths(theirs) == _slot_paths(ours)

    theirs = _trained(keras_ref, scale_cls)
    path = str(tmp_path / "theirs.keras")
    theirs.save(path)
    again = kerasish.saving.load_model(path, custom_objects={"TorchStyleScale": TorchStyleScale})
    np.testing.assert_allclose(again(torch.as_tensor(X)).detach().numpy(), keras_ref.ops.convert_to_numpy(theirs(X)),
                               rtol=1e-6, atol=1e-6)
    for a, b in zip(again.optimizer.variables, theirs.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a.numpy(), dtype="float64"),
                                   np.asarray(keras_ref.ops.convert_to_numpy(b), dtype="float64"), rtol=1e-6)


def test_register_parameter_and_model_level_parameter():
    layer = kerasish.layers.Dense(2, name="dense_rp")
    layer.build((None, 3))
    layer.register_parameter("temperature", torch.nn.Parameter(torch.tensor(1.5)))
    assert layer.temperature.path == "dense_rp/temperature"
    assert isinstance(layer.temperature, torch.nn.Parameter)
    inputs = kerasish.Input((3,))
    model = kerasish.Model(inputs, kerasish.layers.Dense(2, name="dd")(inputs), name="net")
    model.logit_scale = torch.nn.Parameter(torch.tensor(2.0))
    assert model.logit_scale.path == "net/logit_scale"
    assert "logit_scale" in model.get_state_tree()["trainable_variables"]["net"]


def test_frozen_layer_freezes_a_new_parameter():
    layer = TorchStyleScale(name="frozen_scale", trainable=False)
    layer(torch.ones(1, 3))
    assert not layer.alpha.requires_grad and not layer.beta.requires_grad
    assert [w.path for w in layer.non_trainable_weights] == ["frozen_scale/beta", "frozen_scale/alpha"]


def test_state_tree_names_a_torch_submodules_parameter_it_cannot_key():
    """A plain torch module inside a layer keeps plain Parameters (no Keras path): `get_state_tree`
    raises a ValueError naming the parameter and the way out (was: AttributeError 'path')."""
    class WithLinear(kerasish.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.lin = torch.nn.Linear(3, 2)

        def call(self, x):
            return self.lin(x)

    inputs = kerasish.Input((3,))
    model = kerasish.Model(inputs, WithLinear(name="with_linear")(inputs))
    with pytest.raises(ValueError, match=r"'with_linear\.lin\.weight'.*TorchModuleWrapper"):
        model.get_state_tree()
