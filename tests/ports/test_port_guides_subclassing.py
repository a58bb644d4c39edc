"""keras.io developer guide "Making new layers and models via subclassing"
(guides/making_new_layers_and_models_via_subclassing.py), shrunk, run with
real Keras 3 (torch backend) and kerasish: weights made in `__init__` and in
`build`, non-trainable weights updated in `call`, nested layers, `add_loss`
(reset per call, regularizers, with and without a compiled loss), get_config /
from_config, the privileged `training` argument with `keras.random.dropout`,
and the guide's VAE trained end to end with `fit` (the sampling noise of
`keras.random.normal` included).
"""

from __future__ import annotations

import numpy as np
import pytest

import kerasish as keras
from tests.ports.test_port_programs import assert_history
from tests.ports.test_port_programs import assert_same


@pytest.fixture(autouse=True)
def _fresh_keras_names(keras_ref):
    keras_ref.utils.clear_session()


def _layers_program(K):
    ops = K.ops
    out = {}

    class Linear(K.layers.Layer):
        def __init__(self, units=32, input_dim=32):
            super().__init__()
            self.w = self.add_weight(shape=(input_dim, units), initializer="random_normal", trainable=True)
            self.b = self.add_weight(shape=(units,), initializer="zeros", trainable=True)

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

    linear_layer = Linear(4, 2)
    out["linear_shape"] = tuple(linear_layer(ops.ones((2, 2))).shape)
    out["linear_same_objects"] = all(a is b for a, b in zip(linear_layer.weights, [linear_layer.w, linear_layer.b]))
    out["linear_paths"] = [w.path for w in linear_layer.weights]

    class ComputeSum(K.layers.Layer):
        def __init__(self, input_dim):
            super().__init__()
            self.total = self.add_weight(initializer="zeros", shape=(input_dim,), trainable=False)

        def call(self, inputs):
            self.total.assign_add(ops.sum(inputs, axis=0))
            return self.total

    my_sum = ComputeSum(2)
    out["sum_1"] = np.array(my_sum(ops.ones((2, 2))))
    out["sum_2"] = np.array(my_sum(ops.ones((2, 2))))
    out["sum_counts"] = [len(my_sum.weights), len(my_sum.non_trainable_weights), len(my_sum.trainable_weights)]

    class MLPBlock(K.layers.Layer):
        def __init__(self):
            super().__init__()
            self.linear_1 = K.layers.Dense(32)
            self.linear_2 = K.layers.Dense(32)
            self.linear_3 = K.layers.Dense(1)

        def call(self, inputs):
            x = K.activations.relu(self.linear_1(inputs))
            x = K.activations.relu(self.linear_2(x))
            return self.linear_3(x)

    mlp = MLPBlock()
    mlp(ops.ones(shape=(3, 64)))
    out["mlp"] = [len(mlp.weights), len(mlp.trainable_weights), [w.path for w in mlp.weights]]

    class ActivityRegularizationLayer(K.layers.Layer):
        def __init__(self, rate=1e-2):
            super().__init__()
            self.rate = rate

        def call(self, inputs):
            self.add_loss(self.rate * ops.mean(inputs))
            return inputs

    class OuterLayer(K.layers.Layer):
        def __init__(self):
            super().__init__()
            self.activity_reg = ActivityRegularizationLayer(1e-2)

        def call(self, inputs):
            return self.activity_reg(inputs)

    layer = OuterLayer()
    counts = [len(layer.losses)]
    layer(ops.zeros((1, 1)))
    counts.append(len(layer.losses))
    layer(ops.zeros((1, 1)))
    counts.append(len(layer.losses))
    out["loss_counts"] = counts

    class OuterLayerWithKernelRegularizer(K.layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense = K.layers.Dense(32, kernel_regularizer=K.regularizers.l2(1e-3))

        def call(self, inputs):
            return self.dense(inputs)

    layer = OuterLayerWithKernelRegularizer()
    layer(ops.zeros((1, 1)))
    out["kernel_reg"] = [len(layer.losses), float(layer.losses[0] / ops.sum(layer.dense.kernel**2))]
    return out, ActivityRegularizationLayer


def test_layers_weights_and_losses(keras_ref):
    (ref, _), (ours, _) = _layers_program(keras_ref), _layers_program(keras)
    assert ref.keys() == ours.keys()
    for key in ref:
        if isinstance(ref[key], np.ndarray):
            np.testing.assert_allclose(ours[key], ref[key], err_msg=key)
        elif key == "kernel_reg":
            assert ours[key][0] == ref[key][0]
            np.testing.assert_allclose(ours[key][1], ref[key][1], rtol=1e-6)
        else:
            assert ours[key] == ref[key], key


def test_add_loss_with_and_without_a_compiled_loss(keras_ref):
    """The guide compiles with `loss="mse"`, fits, then recompiles with no loss
    and fits again: Keras 3 keeps the previous compile's loss (and `model.loss`)
    when `compile` is called without one, so the second fit still minimises
    mse + the layer's loss. kerasish dropped the compiled loss."""
    rng = np.random.default_rng(0)
    x, y = rng.random((2, 3)), rng.random((2, 3))
    results = []
    for K in (keras_ref, keras):
        _, ActivityRegularizationLayer = _layers_program(K)
        row = []
        for recompiled in (False, True):
            inputs = K.Input(shape=(3,))
            model = K.Model(inputs, ActivityRegularizationLayer()(inputs))
            if recompiled:
                model.compile(optimizer="adam", loss="mse")
                row.append(model.fit(x, y, verbose=0))
            model.compile(optimizer="adam")
            row.append(model.fit(x, y, verbose=0))
            row.append(model.evaluate(x, y, verbose=0))
            row.append(model.loss)
        results.append(row)
    ref, ours = results
    assert len(ref) == len(ours) == 7
    for a, b in zip(ours, ref):
        if hasattr(b, "history"):
            assert_history(a, b)
        elif isinstance(b, float):
            np.testing.assert_allclose(a, b, rtol=1e-5)
        else:
            assert a == b
    # the recompiled model still reports its first loss; a fresh one has none
    assert ours[2] is None and ours[6] == "mse"


def test_recompile_keeps_loss_but_new_loss_replaces_it(keras_ref):
    x = np.ones((4, 2), "float32")
    y = np.zeros((4, 1), "float32")
    results = []
    for K in (keras_ref, keras):
        model = K.Sequential([K.Input((2,)), K.layers.Dense(1, kernel_initializer="ones")])
        model.compile(optimizer="sgd", loss="mae")
        model.compile(optimizer="sgd")
        kept = model.evaluate(x, y, verbose=0)
        model.compile(optimizer="sgd", loss="mse")
        replaced = model.evaluate(x, y, verbose=0)
        results.append((kept, replaced, model.loss))
    assert results[1][2] == results[0][2] == "mse"
    np.testing.assert_allclose(results[1][:2], results[0][:2], rtol=1e-6)
    np.testing.assert_allclose(results[1][:2], [2.0, 4.0], rtol=1e-6)  # |1+1| and (1+1)**2


def test_serialization_and_training_argument(keras_ref):
    def program(K):
        ops = K.ops

        class Linear(K.layers.Layer):
            def __init__(self, units=32, **kwargs):
                super().__init__(**kwargs)
                self.units = units

            def build(self, input_shape):
                self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal")
                self.b = self.add_weight(shape=(self.units,), initializer="random_normal")

            def call(self, inputs):
                return ops.matmul(inputs, self.w) + self.b

            def get_config(self):
                config = super().get_config()
                config.update({"units": self.units})
                return config

        layer = Linear(64)
        config = layer.get_config()
        new_config = Linear.from_config(config).get_config()

        class CustomDropout(K.layers.Layer):
            def __init__(self, rate, **kwargs):
                super().__init__(**kwargs)
                self.rate = rate
                self.seed_generator = K.random.SeedGenerator(1337)

            def call(self, inputs, training=None):
                if training:
                    return K.random.dropout(inputs, rate=self.rate, seed=self.seed_generator)
                return inputs

        dropout = CustomDropout(0.5)
        x = ops.ones((4, 8))
        return {
            "config": config,
            "new_config": new_config,
            "inference": np.array(dropout(x)),
            "training": np.array(dropout(x, training=True)),
            "seed_weights": [(w.path, w.trainable) for w in dropout.weights],
        }

    ref, ours = program(keras_ref), program(keras)
    assert ours["config"] == ref["config"]
    assert ours["new_config"] == ref["new_config"]
    np.testing.assert_array_equal(ours["inference"], ref["inference"])
    # kept values are scaled by 1 / (1 - rate), dropped ones are zero, as in Keras
    assert set(np.unique(ours["training"])) <= {0.0, 2.0}
    assert set(np.unique(ref["training"])) <= {0.0, 2.0}
    assert ours["seed_weights"] == ref["seed_weights"]


# --------------------------------------------------------------- the VAE
def _vae(K):
    layers, ops = K.layers, K.ops

    class Sampling(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = K.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            batch, dim = ops.shape(z_mean)[0], ops.shape(z_mean)[1]
            epsilon = K.random.normal(shape=(batch, dim), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    class Encoder(layers.Layer):
        def __init__(self, latent_dim=32, intermediate_dim=64, name="encoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = layers.Dense(intermediate_dim, activation="relu")
            self.dense_mean = layers.Dense(latent_dim)
            self.dense_log_var = layers.Dense(latent_dim)
            self.sampling = Sampling()

        def call(self, inputs):
            x = self.dense_proj(inputs)
            z_mean, z_log_var = self.dense_mean(x), self.dense_log_var(x)
            return z_mean, z_log_var, self.sampling((z_mean, z_log_var))

    class Decoder(layers.Layer):
        def __init__(self, original_dim, intermediate_dim=64, name="decoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = layers.Dense(intermediate_dim, activation="relu")
            self.dense_output = layers.Dense(original_dim, activation="sigmoid")

        def call(self, inputs):
            return self.dense_output(self.dense_proj(inputs))

    class VariationalAutoEncoder(K.Model):
        def __init__(self, original_dim, intermediate_dim=64, latent_dim=32, name="autoencoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.original_dim = original_dim
            self.encoder = Encoder(latent_dim=latent_dim, intermediate_dim=intermediate_dim)
            self.decoder = Decoder(original_dim, intermediate_dim=intermediate_dim)

        def call(self, inputs):
            z_mean, z_log_var, z = self.encoder(inputs)
            reconstructed = self.decoder(z)
            kl_loss = -0.5 * ops.mean(z_log_var - ops.square(z_mean) - ops.exp(z_log_var) + 1)
            self.add_loss(kl_loss)
            return reconstructed

    return VariationalAutoEncoder(20, 16, 4)


def test_vae_end_to_end(keras_ref):
    x = np.random.default_rng(0).random((32, 20)).astype("float32")
    results = []
    for K in (keras_ref, keras):
        vae = _vae(K)
        vae(x[:1])
        vae.set_weights(
            [np.random.default_rng(i).normal(0, 0.2, w.shape).astype("float32")
             for i, w in enumerate(vae.get_weights())]
        )
        lines = []
        vae.summary(print_fn=lambda s, *a, **k: lines.append(s))
        z = vae.encoder(x[:2])[2]
        vae.compile(K.optimizers.Adam(1e-3), loss=K.losses.MeanSquaredError())
        history = vae.fit(x, x, epochs=2, batch_size=8, verbose=0, shuffle=False)
        results.append({
            "paths": [w.path for w in vae.weights],
            "summary": "\n".join(lines).splitlines(),
            "z": z,
            "history": history,
            "weights": vae.get_weights(),
            "losses": len(vae.losses),
        })
    ref, ours = results
    assert ours["paths"] == ref["paths"]
    # the custom Encoder/Decoder define no compute_output_shape: Keras shows "?" for
    # them (kerasish showed the shapes of the eager call it had inferred)
    assert ours["summary"] == ref["summary"]
    # the same SeedGenerator(1337) draws the same noise on both sides
    assert_same(ours["z"], ref["z"])
    assert_history(ours["history"], ref["history"])
    assert_same(ours["weights"], ref["weights"])
    assert ours["losses"] == ref["losses"] == 1


def test_numpy_snapshots_of_a_weight_are_copies(keras_ref):
    """The guide's `ComputeSum` returns its weight from `call`; a NumPy array
    taken from the result (`np.array(y)`, `keras.ops.convert_to_numpy(y)`) is a
    snapshot in Keras. kerasish's were views of the live weight, so the next
    call changed an array already taken."""
    results = []
    for K in (keras_ref, keras):
        layer = K.layers.Dense(2, kernel_initializer="zeros")
        layer.build((None, 2))
        snapshots = [np.array(layer.kernel), K.ops.convert_to_numpy(layer.kernel), layer.get_weights()[0]]
        plain = K.ops.convert_to_numpy(K.ops.zeros((2,)) + layer.bias)
        layer.kernel.assign(np.ones((2, 2)))
        results.append([s.tolist() for s in snapshots] + [plain.tolist()])
    assert results[1] == results[0] == [[[0.0, 0.0], [0.0, 0.0]]] * 3 + [[0.0, 0.0]]
    # np.asarray and variable.numpy() are snapshots too, and writing into them leaves the weight alone
    taken = []
    for K in (keras_ref, keras):
        v = K.Variable(np.zeros((2,), "float32"))
        views = [np.asarray(v), v.numpy()]
        v.assign(np.ones((2,)))
        for view in views:
            view[0] = 5.0
        taken.append([view.tolist() for view in views] + [K.ops.convert_to_numpy(v).tolist()])
    assert taken[1] == taken[0] == [[5.0, 0.0], [5.0, 0.0], [1.0, 1.0]]
