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


# ------------------------------------------ 4. Memory-efficient embeddings
# Keras 3's StringLookup needs TensorFlow (not installed with the torch backend), so the reference runs
# the same program on integer ids with the lookups replaced by their tables (StringLookup's documented
# mapping: vocabulary position + num_oov_indices, OOV -> 0), and kerasish runs the string program.
USERS = [f"user_{i}" for i in range(40)]
MOVIES = [f"movie_{i}" for i in range(30)]
BASE_DIM = 8


def _lookup(keras, vocabulary, num_oov_indices, universe, strings):
    if strings:
        return keras.layers.StringLookup(vocabulary=vocabulary, mask_token=None, num_oov_indices=num_oov_indices)
    position = {v: i + num_oov_indices for i, v in enumerate(vocabulary)}
    assert num_oov_indices or all(u in position for u in universe)
    table = np.asarray([position.get(u, 0) for u in universe], dtype="int32")

    class TableLookup(keras.layers.Layer):
        def call(self, ids):
            return keras.ops.take(keras.ops.convert_to_tensor(table), ids)

    return TableLookup()


def _memory_efficient_model(keras, strings):
    layers, ops = keras.layers, keras.ops

    def embedding_encoder(vocabulary, embedding_dim, universe, num_oov_indices=0, name=None):
        return keras.Sequential([
            _lookup(keras, vocabulary, num_oov_indices, universe, strings),
            layers.Embedding(input_dim=len(vocabulary) + num_oov_indices, output_dim=embedding_dim),
        ], name=f"{name}_embedding" if name else None)

    class QREmbedding(layers.Layer):
        def __init__(self, vocabulary, embedding_dim, num_buckets, name=None):
            super().__init__(name=name)
            self.num_buckets = num_buckets
            self.index_lookup = _lookup(keras, vocabulary, 0, USERS, strings)
            self.q_embeddings = layers.Embedding(num_buckets, embedding_dim)
            self.r_embeddings = layers.Embedding(num_buckets, embedding_dim)

        def call(self, inputs):
            embedding_index = self.index_lookup(inputs)
            quotient_index = ops.floor_divide(embedding_index, self.num_buckets)
            remainder_index = ops.mod(embedding_index, self.num_buckets)
            return self.q_embeddings(quotient_index) * self.r_embeddings(remainder_index)

    class MDEmbedding(layers.Layer):
        def __init__(self, blocks_vocabulary, blocks_embedding_dims, base_embedding_dim, name=None):
            super().__init__(name=name)
            self.num_blocks = len(blocks_vocabulary)
            keys, values = [], []
            for block_idx, block_vocab in enumerate(blocks_vocabulary):
                keys.extend(block_vocab)
                values.extend([block_idx] * len(block_vocab))
            # (tf.lookup.StaticHashTable in the TF original): index 0 is the OOV token -> block -1
            self.vocab_index = _lookup(keras, keys, 1, MOVIES, strings)
            self.block_of_index = np.asarray([-1] + values, dtype="int32")
            self.block_embedding_encoders = []
            self.block_embedding_projectors = []
            for idx in range(self.num_blocks):
                self.block_embedding_encoders.append(embedding_encoder(
                    blocks_vocabulary[idx], blocks_embedding_dims[idx], MOVIES, num_oov_indices=1))
                if blocks_embedding_dims[idx] == base_embedding_dim:
                    self.block_embedding_projectors.append(layers.Lambda(lambda x: x))
                else:
                    self.block_embedding_projectors.append(layers.Dense(units=base_embedding_dim))

        def call(self, inputs):
            block_indices = ops.take(ops.convert_to_tensor(self.block_of_index), self.vocab_index(inputs))
            embeddings = None
            for idx in range(self.num_blocks):
                block_embeddings = self.block_embedding_projectors[idx](self.block_embedding_encoders[idx](inputs))
                mask = ops.expand_dims(ops.cast(block_indices == idx, "float32"), 1)
                block_embeddings = block_embeddings * mask
                embeddings = block_embeddings if embeddings is None else embeddings + block_embeddings
            return embeddings

    dtype = "string" if strings else "int32"
    user_input = layers.Input(name="user_id", shape=(), dtype=dtype)
    user_embedding = QREmbedding(USERS, BASE_DIM, num_buckets=len(USERS) // 5, name="user_embedding")(user_input)
    movie_input = layers.Input(name="movie_id", shape=(), dtype=dtype)
    blocks = [MOVIES[:6], MOVIES[6:18], MOVIES[18:]]
    movie_embedding = MDEmbedding(blocks, [8, 4, 2], BASE_DIM, name="movie_embedding")(movie_input)
    logits = layers.Dot(axes=1, name="dot_similarity")([user_embedding, movie_embedding])
    prediction = keras.activations.sigmoid(logits) * 5
    return keras.Model(inputs=[user_input, movie_input], outputs=prediction, name="memory_efficient_model")


def test_memory_efficient_embeddings(keras_ref, tmp_path):
    rng = np.random.default_rng(0)
    n = 96
    users, movies = rng.integers(0, len(USERS), n), rng.integers(0, len(MOVIES), n)
    strings = {"user_id": np.asarray([USERS[i] for i in users], dtype=object),
               "movie_id": np.asarray([MOVIES[i] for i in movies], dtype=object)}
    ids = {"user_id": users.astype("int32"), "movie_id": movies.astype("int32")}
    ratings = rng.integers(1, 6, n).astype("float32")
    ours, ref = _memory_efficient_model(kerasish, True), _memory_efficient_model(keras_ref, False)
    copy_weights(ours, ref)
    assert ours.count_params() == ref.count_params()
    for m, lib in ((ours, kerasish), (ref, keras_ref)):
        m.compile(optimizer=lib.optimizers.Adam(0.01), loss=lib.losses.MeanSquaredError(),
                  metrics=[lib.metrics.MeanAbsoluteError(name="mae")])
    split = 72

    def part(d, sl):
        return {k: v[sl] for k, v in d.items()}

    h_ours = ours.fit(part(strings, slice(None, split)), ratings[:split], batch_size=24, epochs=2, shuffle=False,
                      validation_data=(part(strings, slice(split, None)), ratings[split:]), verbose=0)
    h_ref = ref.fit(part(ids, slice(None, split)), ratings[:split], batch_size=24, epochs=2, shuffle=False,
                    validation_data=(part(ids, slice(split, None)), ratings[split:]), verbose=0)
    assert_history(h_ours, h_ref)
    assert_weights(ours, ref)
    np.testing.assert_allclose(ours.predict(strings, verbose=0), ref.predict(ids, verbose=0), rtol=1e-5, atol=1e-5)
