"""Optimizers held in attributes (a GAN's `d_optimizer` / `g_optimizer`, a
layer's own optimizer) are part of a Keras 3 weights file: Keras's walk
visits every attribute and writes such an optimizer's state (iterations,
learning rate, slots) under `<path>/<attribute>/vars`. kerasish wrote only
the compiled optimizer, so a checkpoint of a GAN lost its Adam states: a
resumed run silently restarted them, and Keras warned "Skipping variable
loading for optimizer" on kerasish's files. Checked against real Keras 3.
"""

import numpy as np
import pytest
import torch

import kerasish

h5py = pytest.importorskip("h5py")


def _program(keras):
    layers = keras.layers

    class Tower(layers.Layer):
        """A layer with its own optimizer (keras.io's Forward-Forward `FFDense`)."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(units)
            self.optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)

        def call(self, x):
            return self.dense(x)

    class Gan(keras.Model):
        def __init__(self):
            super().__init__()
            self.generator = keras.Sequential([keras.Input((3,)), layers.Dense(4, name="g")], name="generator")
            self.discriminator = keras.Sequential([keras.Input((4,)), layers.Dense(1, name="d")],
                                                  name="discriminator")
            self.tower = Tower(2)
            self.d_optimizer = keras.optimizers.Adam(1e-2)
            self.g_optimizer = keras.optimizers.Adam(2e-2, beta_1=0.5)
            self.built = True

        def step(self, z):
            for optimizer, model in ((self.d_optimizer, self.discriminator), (self.g_optimizer, self.generator)):
                loss = keras.ops.mean(self.discriminator(self.generator(z)) ** 2)
                weights = model.trainable_weights
                grads = torch.autograd.grad(loss, [v.value for v in weights])
                optimizer.apply_gradients(zip(grads, weights))
            loss = keras.ops.mean(self.tower(z) ** 2)
            grads = torch.autograd.grad(loss, [v.value for v in self.tower.trainable_weights])
            self.tower.optimizer.apply_gradients(zip(grads, self.tower.trainable_weights))

    keras.utils.clear_session()
    gan = Gan()
    gan.tower(np.zeros((1, 3), "float32"))
    return gan


def _contents(path):
    with h5py.File(path, "r") as f:
        names = []
        f.visit(names.append)
        return {n: np.array(f[n]) for n in names if isinstance(f[n], h5py.Dataset)}


def test_attribute_optimizers_saved_and_loaded_as_keras(keras_ref, tmp_path):
    ref, ours = _program(keras_ref), _program(kerasish)
    ours.set_weights(ref.get_weights())
    z = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    for model in (ref, ours):
        model.step(torch.from_numpy(z))
        model.step(torch.from_numpy(z))
    ref.save_weights(tmp_path / "keras.weights.h5")
    ours.save_weights(tmp_path / "kerasish.weights.h5")
    theirs, mine = _contents(tmp_path / "keras.weights.h5"), _contents(tmp_path / "kerasish.weights.h5")
    assert sorted(mine) == sorted(theirs)
    assert "d_optimizer/vars/2" in theirs and "layers/tower/optimizer/vars/2" in theirs  # (the tower: through `layers` first)
    for name, value in theirs.items():
        np.testing.assert_allclose(mine[name], value, rtol=1e-5, atol=1e-7, err_msg=name)
    # each file resumed by the other framework, the optimizers built on their weights first
    for framework, path, expected in ((kerasish, "keras", theirs), (keras_ref, "kerasish", mine)):
        fresh = _program(framework)
        fresh.d_optimizer.build(fresh.discriminator.trainable_weights)
        fresh.g_optimizer.build(fresh.generator.trainable_weights)
        fresh.tower.optimizer.build(fresh.tower.trainable_weights)
        fresh.load_weights(tmp_path / f"{path}.weights.h5")
        for prefix, optimizer in (("d_optimizer", fresh.d_optimizer), ("g_optimizer", fresh.g_optimizer),
                                  ("layers/tower/optimizer", fresh.tower.optimizer)):
            assert len(optimizer.variables) == len([n for n in expected if n.startswith(prefix + "/vars/")])
            for i, variable in enumerate(optimizer.variables):
                np.testing.assert_array_equal(framework.ops.convert_to_numpy(variable), expected[f"{prefix}/vars/{i}"])
