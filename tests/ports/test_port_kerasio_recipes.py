"""keras.io "Keras recipes", ported as a user would (Keras 3 idioms on the
torch backend, `tf.*` calls replaced by `keras.ops`): each program runs with
real Keras 3 and with kerasish from the same initial weights on the same data,
and must give the same History, weights and predictions.

- "Endpoint layer pattern": a layer that takes the targets and sample weights
  as inputs and adds the loss itself (`add_loss`), compiled without a loss;
  an inference model sharing the weights; the subclassed-model variant.
- "Trainer pattern": one `keras.Model` subclass holding another model, whose
  custom `train_step` is shared by a Sequential and a functional model.
- "Customizing the convolution operation of a Conv2D layer": `Conv2D`
  subclasses overriding `convolution_op()` or calling it from `call()`.
- "Memory-efficient embeddings for recommendation systems": a
  quotient-remainder embedding and a mixed-dimension embedding (custom layers
  holding `StringLookup`s, lists of Sequential encoders, `Lambda` and `Dense`
  projectors) on string inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import kerasish
from tests.ports.test_port_programs import assert_history
from tests.ports.test_port_programs import assert_weights
from tests.ports.test_port_programs import copy_weights


def _np(lib, x):
    return np.asarray(lib.ops.convert_to_numpy(x))


# --------------------------------------------------------- 1. Endpoint layer
def _endpoint_classes(keras):
    class LogisticEndpoint(keras.layers.Layer):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

        def call(self, logits, targets=None, sample_weight=None):
            if targets is not None:
                # the training-time loss, added to the layer
                self.add_loss(self.loss_fn(targets, logits, sample_weight))
            return keras.ops.softmax(logits)

    class LogReg(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)
            self.logistic_endpoint = LogisticEndpoint()

        def call(self, inputs):
            logits = self.dense(inputs["inputs"])
            return self.logistic_endpoint(logits=logits, targets=inputs["targets"],
                                          sample_weight=inputs["sample_weight"])

    return LogisticEndpoint, LogReg


def _endpoint_data():
    rng = np.random.default_rng(0)
    return {"inputs": rng.random((64, 24)).astype("float32"), "targets": rng.random((64, 1)).astype("float32"),
            "sample_weight": rng.random((64, 1)).astype("float32")}


def _endpoint_functional(keras):
    LogisticEndpoint, _ = _endpoint_classes(keras)
    inputs = keras.Input((24,), name="inputs")
    logits = keras.layers.Dense(1)(inputs)
    targets = keras.Input((1,), name="targets")
    sample_weight = keras.Input((1,), name="sample_weight")
    preds = LogisticEndpoint()(logits, targets, sample_weight)
    model = keras.Model([inputs, targets, sample_weight], preds)
    inputs = keras.Input((24,), name="inputs")
    logits = keras.layers.Dense(1)(inputs)
    inference_model = keras.Model(inputs, LogisticEndpoint()(logits, targets=None, sample_weight=None))
    return model, inference_model


def test_endpoint_layer_pattern(keras_ref):
    data = _endpoint_data()
    (ours, ours_inf), (ref, ref_inf) = _endpoint_functional(kerasish), _endpoint_functional(keras_ref)
    copy_weights(ours, ref)
    ours.compile(kerasish.optimizers.Adam(1e-2))
    ref.compile(keras_ref.optimizers.Adam(1e-2))
    h_ours = ours.fit(data, epochs=2, batch_size=16, shuffle=False, verbose=0)
    h_ref = ref.fit(data, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert_history(h_ours, h_ref)
    assert_weights(ours, ref)
    ours_inf.set_weights(ours.get_weights())
    ref_inf.set_weights(ref.get_weights())
    x = np.random.default_rng(1).random((8, 24)).astype("float32")
    np.testing.assert_allclose(ours_inf.predict(x, verbose=0), ref_inf.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_endpoint_layer_in_subclassed_model(keras_ref):
    data = _endpoint_data()
    ours, ref = _endpoint_classes(kerasish)[1](), _endpoint_classes(keras_ref)[1]()
    first = {k: v[:2] for k, v in data.items()}
    ref(first)
    ours(first)
    copy_weights(ours, ref)
    ours.compile(kerasish.optimizers.Adam(1e-2))
    ref.compile(keras_ref.optimizers.Adam(1e-2))
    h_ours = ours.fit(data, epochs=2, batch_size=16, shuffle=False, verbose=0)
    h_ref = ref.fit(data, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert_history(h_ours, h_ref)
    assert_weights(ours, ref)


# ---------------------------------------------------------- 2. Trainer pattern
def _trainer(keras):
    class MyTrainer(keras.Model):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self.model(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            import torch

            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

        def call(self, x):
            return self.model(x)

    model_a = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                                keras.layers.Dense(32, activation="relu"), keras.layers.Dropout(0.2),
                                keras.layers.Dense(10, activation="softmax")])
    func_input = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Flatten()(func_input)
    x = keras.layers.Dense(24, activation="relu")(x)
    x = keras.layers.Dropout(0.4)(x)
    model_b = keras.Model(func_input, keras.layers.Dense(10, activation="softmax")(x))
    return MyTrainer(model_a), MyTrainer(model_b)


def test_trainer_pattern(keras_ref):
    rng = np.random.default_rng(0)
    x = rng.random((96, 28, 28)).astype("float32")
    y = rng.integers(0, 10, 96)
    x_val, y_val = rng.random((32, 28, 28)).astype("float32"), rng.integers(0, 10, 32)
    ours, ref = _trainer(kerasish), _trainer(keras_ref)
    for (o, r), opt in zip(zip(ours, ref), ("sgd", "adam")):
        r(x[:1].reshape((1, 28, 28) if r is ref[0] else (1, 28, 28, 1)))
        o(x[:1].reshape((1, 28, 28) if o is ours[0] else (1, 28, 28, 1)))
        copy_weights(o, r)
        # Dropout draws differ between frameworks: rate 0 keeps the comparison exact
        for lib_model in (o, r):
            for layer in lib_model.model.layers:
                if type(layer).__name__ == "Dropout":
                    layer.rate = 0.0
        o.compile(opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        r.compile(opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        xs = x if o is ours[0] else x[..., None]
        xv = x_val if o is ours[0] else x_val[..., None]
        h_ours = o.fit(xs, y, epochs=2, batch_size=32, shuffle=False, validation_data=(xv, y_val), verbose=0)
        h_ref = r.fit(xs, y, epochs=2, batch_size=32, shuffle=False, validation_data=(xv, y_val), verbose=0)
        assert_history(h_ours, h_ref)
        assert_weights(o, r)


# --------------------------------------- 3. Customizing the convolution op
def _standardized_convs(keras):
    ops = keras.ops

    class StandardizedConv2DWithOverride(keras.layers.Conv2D):
        def convolution_op(self, inputs, kernel):
            mean, var = ops.moments(kernel, axes=[0, 1, 2], keepdims=True)
            return ops.conv(inputs, (kernel - mean) / ops.sqrt(var + 1e-10), padding="valid",
                            strides=list(self.strides))

    class StandardizedConv2DWithCall(keras.layers.Conv2D):
        def call(self, inputs):
            mean, var = ops.moments(self.kernel, axes=[0, 1, 2], keepdims=True)
            result = self.convolution_op(inputs, (self.kernel - mean) / ops.sqrt(var + 1e-10))
            if self.use_bias:
                result = result + self.bias
            return result

    return keras.Sequential([
        keras.Input((12, 12, 1)),
        StandardizedConv2DWithCall(6, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        StandardizedConv2DWithOverride(8, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(4, activation="softmax"),
    ])


def test_standardized_conv2d_convolution_op(keras_ref):
    rng = np.random.default_rng(0)
    x, y = rng.random((48, 12, 12, 1)).astype("float32"), np.eye(4, dtype="float32")[rng.integers(0, 4, 48)]
    ours, ref = _standardized_convs(kerasish), _standardized_convs(keras_ref)
    copy_weights(ours, ref)
    for m in (ours, ref):
        m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    h_ours = ours.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, shuffle=False, verbose=0)
    h_ref = ref.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, shuffle=False, verbose=0)
    assert_history(h_ours, h_ref)
    assert_weights(ours, ref)
