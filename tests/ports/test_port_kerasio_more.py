"""More keras.io examples (Keras 3 versions), ported as a user would: the
example's code with only the import changed (one builder, run with real
Keras 3 on torch and with kerasish), small deterministic synthetic data,
shrunk sizes, the same initial weights (get_weights/set_weights) and the
same batches (shuffle=False) in both runs.
"""

from __future__ import annotations

import numpy as np
import pytest

import kerasish

from tests.ports.test_port_programs import assert_history
from tests.ports.test_port_programs import assert_same
from tests.ports.test_port_programs import assert_weights
from tests.ports.test_port_programs import copy_weights


@pytest.fixture(autouse=True)
def _seeded(keras_ref):
    """Keras's unseeded initializers draw from the global RNGs: seed them so
    that each run starts from the same weights (the float32 noise that the
    tolerances below allow for then does not vary from run to run)."""
    keras_ref.utils.set_random_seed(1337)


# ----------------------- 17. "Timeseries classification with a Transformer model"
def _ts_transformer(keras, input_shape, n_classes, dropout, mlp_dropout):
    layers = keras.layers

    def transformer_encoder(inputs, head_size, num_heads, ff_dim, dropout=0):
        # Attention and Normalization
        x = layers.MultiHeadAttention(key_dim=head_size, num_heads=num_heads, dropout=dropout)(inputs, inputs)
        x = layers.Dropout(dropout)(x)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
        res = x + inputs

        # Feed Forward Part
        x = layers.Conv1D(filters=ff_dim, kernel_size=1, activation="relu")(res)
        x = layers.Dropout(dropout)(x)
        x = layers.Conv1D(filters=inputs.shape[-1], kernel_size=1)(x)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
        return x + res

    def build_model(input_shape, head_size, num_heads, ff_dim, num_transformer_blocks, mlp_units, dropout=0,
                    mlp_dropout=0):
        inputs = keras.Input(shape=input_shape)
        x = inputs
        for _ in range(num_transformer_blocks):
            x = transformer_encoder(x, head_size, num_heads, ff_dim, dropout)

        x = layers.GlobalAveragePooling1D(data_format="channels_last")(x)
        for dim in mlp_units:
            x = layers.Dense(dim, activation="relu")(x)
            x = layers.Dropout(mlp_dropout)(x)
        outputs = layers.Dense(n_classes, activation="softmax")(x)
        return keras.Model(inputs, outputs)

    model = build_model(input_shape, head_size=4, num_heads=2, ff_dim=4, num_transformer_blocks=2, mlp_units=[8],
                        mlp_dropout=mlp_dropout, dropout=dropout)
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def test_timeseries_transformer_classification(keras_ref):
    rng = np.random.default_rng(20)
    x_train = rng.normal(size=(30, 12)).astype("float32")
    y_train = (x_train[:, :6].mean(axis=1) > 0).astype("int64")
    x_train = x_train.reshape((x_train.shape[0], x_train.shape[1], 1))
    n_classes = len(np.unique(y_train))

    # the example's dropouts (0.25 / 0.4) as written: inference agrees
    ref = _ts_transformer(keras_ref, x_train.shape[1:], n_classes, 0.25, 0.4)
    ours = _ts_transformer(kerasish, x_train.shape[1:], n_classes, 0.25, 0.4)
    copy_weights(ours, ref)
    assert_same(ours.predict(x_train, verbose=0), ref.predict(x_train, verbose=0), rtol=1e-4, atol=1e-6)
    assert_same(ours.evaluate(x_train, y_train, verbose=0), ref.evaluate(x_train, y_train, verbose=0),
                rtol=1e-4, atol=1e-5)

    # one plain SGD step: gradients agree exactly (Adam below amplifies the
    # float32 noise of near-zero attention gradients)
    sgd = [_ts_transformer(keras, x_train.shape[1:], n_classes, 0.0, 0.0) for keras in (keras_ref, kerasish)]
    copy_weights(sgd[1], sgd[0])
    for keras, model in zip((keras_ref, kerasish), sgd):
        model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(1.0),
                      metrics=["sparse_categorical_accuracy"])
    assert_same(sgd[1].train_on_batch(x_train[:8], y_train[:8]), sgd[0].train_on_batch(x_train[:8], y_train[:8]),
                rtol=1e-5, atol=1e-6)
    assert_weights(sgd[1], sgd[0], rtol=1e-4, atol=1e-5)

    # training with dropout 0 (deterministic), EarlyStopping restoring the
    # best weights
    ref = _ts_transformer(keras_ref, x_train.shape[1:], n_classes, 0.0, 0.0)
    ours = _ts_transformer(kerasish, x_train.shape[1:], n_classes, 0.0, 0.0)
    copy_weights(ours, ref)
    histories = []
    for keras, model in ((keras_ref, ref), (kerasish, ours)):
        callbacks = [keras.callbacks.EarlyStopping(patience=1, restore_best_weights=True)]
        histories.append(model.fit(x_train, y_train, validation_split=0.2, epochs=3, batch_size=8,
                                   callbacks=callbacks, shuffle=False, verbose=0))
    assert_history(histories[1], histories[0], rtol=1e-4, atol=1e-5)
    # Adam normalises near-zero gradients (the attention's query/key biases
    # see ~1e-6): their float32 noise moves them by up to lr (1e-3) per
    # step, 9 steps; the SGD step above checks the gradients themselves
    assert_weights(ours, ref, rtol=1e-3, atol=5e-3)
    assert_same(ours.evaluate(x_train, y_train, verbose=0), ref.evaluate(x_train, y_train, verbose=0),
                rtol=1e-4, atol=1e-5)


# ---------------------- 18. "Timeseries anomaly detection using an Autoencoder"
def test_timeseries_anomaly_detection(keras_ref):
    rng = np.random.default_rng(21)
    t = np.arange(200, dtype="float32")
    df_small_noise = np.sin(t / 6.0) + 0.05 * rng.normal(size=t.shape).astype("float32")
    df_daily_jumpsup = df_small_noise.copy()
    df_daily_jumpsup[120:126] += 3.0

    training_mean = df_small_noise.mean()
    training_std = df_small_noise.std()
    df_training_value = (df_small_noise - training_mean) / training_std

    TIME_STEPS = 16

    # Generated training sequences for use in the model.
    def create_sequences(values, time_steps=TIME_STEPS):
        output = []
        for i in range(len(values) - time_steps + 1):
            output.append(values[i : (i + time_steps)])
        return np.stack(output)

    x_train = create_sequences(df_training_value[:, None])[::4].astype("float32")

    def build(keras):
        layers = keras.layers
        model = keras.Sequential(
            [
                layers.Input(shape=(x_train.shape[1], x_train.shape[2])),
                layers.Conv1D(filters=8, kernel_size=7, padding="same", strides=2, activation="relu"),
                layers.Dropout(rate=0.2),
                layers.Conv1D(filters=4, kernel_size=7, padding="same", strides=2, activation="relu"),
                layers.Conv1DTranspose(filters=4, kernel_size=7, padding="same", strides=2, activation="relu"),
                layers.Dropout(rate=0.2),
                layers.Conv1DTranspose(filters=8, kernel_size=7, padding="same", strides=2, activation="relu"),
                layers.Conv1DTranspose(filters=1, kernel_size=7, padding="same"),
            ]
        )
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
        return model

    ref, ours = build(keras_ref), build(kerasish)
    copy_weights(ours, ref)
    # Dropout(0.2) as written: inference agrees
    assert_same(ours.predict(x_train, verbose=0), ref.predict(x_train, verbose=0), rtol=1e-4, atol=1e-6)
    for model in (ref, ours):
        model.layers[1].rate = model.layers[4].rate = 0.0  # deterministic training comparison
    histories = []
    for keras, model in ((keras_ref, ref), (kerasish, ours)):
        histories.append(model.fit(
            x_train, x_train, epochs=3, batch_size=8, validation_split=0.1, shuffle=False, verbose=0,
            callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, mode="min")],
        ))
    assert_history(histories[1], histories[0], rtol=1e-4, atol=1e-6)
    assert_weights(ours, ref, rtol=1e-3, atol=1e-4)  # Adam, 15 steps

    # the example's threshold and anomaly detection
    results = []
    for model in (ref, ours):
        x_train_pred = np.asarray(model.predict(x_train, verbose=0))
        train_mae_loss = np.mean(np.abs(x_train_pred - x_train), axis=1)
        threshold = np.max(train_mae_loss)
        df_test_value = (df_daily_jumpsup - training_mean) / training_std
        x_test = create_sequences(df_test_value[:, None]).astype("float32")
        x_test_pred = np.asarray(model.predict(x_test, verbose=0))
        test_mae_loss = np.mean(np.abs(x_test_pred - x_test), axis=1).reshape((-1))
        anomalies = test_mae_loss > threshold
        results.append((threshold, test_mae_loss, np.where(anomalies)[0]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-4)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(results[1][2], results[0][2])


# ------------------------------------------ 19. "Text classification from scratch"
def _text_classification_from_scratch(keras_ref):
    """The example's TextVectorization runs in kerasish only (Keras's needs
    TensorFlow): its integer output feeds both the Keras and the kerasish
    model, and kerasish's end-to-end string model must predict what Keras's
    integer model predicts. The example's `custom_standardization` is written
    with `tf.strings`; the built-in "lower_and_strip_punctuation" (the
    same, minus the `<br />` removal) stands in."""
    max_features = 50
    embedding_dim = 8
    sequence_length = 12
    words = ["good", "great", "fun", "bad", "awful", "boring", "the", "movie", "was", "a", "plot", "acting"]
    rng = np.random.default_rng(22)
    texts, labels = [], []
    for i in range(32):
        n = int(rng.integers(3, 10))
        chosen = [words[j] for j in rng.integers(0, len(words), n)]
        texts.append(" ".join(chosen).capitalize() + ("!" if i % 3 == 0 else "."))
        labels.append(int(sum(w in ("good", "great", "fun") for w in chosen) >
                          sum(w in ("bad", "awful", "boring") for w in chosen)))
    labels = np.asarray(labels, "float32")

    vectorize_layer = kerasish.layers.TextVectorization(
        standardize="lower_and_strip_punctuation",
        max_tokens=max_features,
        output_mode="int",
        output_sequence_length=sequence_length,
    )
    vectorize_layer.adapt(texts)
    vocab = vectorize_layer.get_vocabulary()
    assert vocab[:2] == ["", "[UNK]"] and set(vocab[2:]) <= set(words)
    x = np.asarray(vectorize_layer(texts)).astype("int64")
    assert x.shape == (32, sequence_length)
    first = texts[0].lower().strip("!.").split()
    np.testing.assert_array_equal(x[0, : len(first)], [vocab.index(w) for w in first])

    def build(keras):
        layers = keras.layers
        # A integer input for vocab indices.
        inputs = keras.Input(shape=(None,), dtype="int64")

        # Next, we add a layer to map those vocab indices into a space of dimensionality
        # 'embedding_dim'.
        x = layers.Embedding(max_features, embedding_dim)(inputs)
        x = layers.Dropout(0.5)(x)

        # Conv1D + global max pooling
        x = layers.Conv1D(8, 3, padding="valid", activation="relu", strides=3)(x)
        x = layers.Conv1D(8, 3, padding="valid", activation="relu", strides=1)(x)
        x = layers.GlobalMaxPooling1D()(x)

        # We add a vanilla hidden layer:
        x = layers.Dense(8, activation="relu")(x)
        x = layers.Dropout(0.5)(x)

        # We project onto a single unit output layer, and squash it with a sigmoid:
        predictions = layers.Dense(1, activation="sigmoid", name="predictions")(x)

        model = keras.Model(inputs, predictions)

        # Compile the model with binary crossentropy loss and an adam optimizer.
        model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
        return model

    ref, ours = build(keras_ref), build(kerasish)
    copy_weights(ours, ref)
    for model in (ref, ours):
        for layer in model.layers:
            if type(layer).__name__ == "Dropout":
                layer.rate = 0.0  # deterministic training comparison
    h_ref = ref.fit(x, labels, validation_data=(x[:8], labels[:8]), epochs=2, batch_size=8, shuffle=False,
                    verbose=0)
    h_ours = ours.fit(x, labels, validation_data=(x[:8], labels[:8]), epochs=2, batch_size=8, shuffle=False,
                      verbose=0)
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-6)
    assert_weights(ours, ref, rtol=1e-3, atol=1e-4)  # Adam, 8 steps
    assert_same(ours.evaluate(x, labels, verbose=0), ref.evaluate(x, labels, verbose=0), rtol=1e-4, atol=1e-5)

    return vectorize_layer, ours, texts, labels, ref.predict(x, verbose=0)


def test_text_classification_from_scratch(keras_ref):
    """The integer model trains, evaluates and predicts as Keras's (the checks
    are in `_text_classification_from_scratch`, shared with the end-to-end test)."""
    _text_classification_from_scratch(keras_ref)


def test_text_classification_from_scratch_end_to_end(keras_ref, tmp_path):
    """The example's end-to-end export model: raw strings in, TextVectorization
    inside the graph; it predicts and evaluates what Keras's integer model
    does on the vectorized text, and survives a `.keras` round trip."""
    vectorize_layer, model, texts, labels, expected = _text_classification_from_scratch(keras_ref)
    keras = kerasish
    # A string input
    inputs = keras.Input(shape=(1,), dtype="string")
    # Turn strings into vocab indices
    indices = vectorize_layer(inputs)
    # Turn vocab indices into predictions
    outputs = model(indices)

    # Our end to end model
    end_to_end_model = keras.Model(inputs, outputs)
    end_to_end_model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    raw = np.asarray(texts, dtype=object)[:, None]
    assert_same(end_to_end_model.predict(raw, verbose=0), expected, rtol=1e-4, atol=1e-6)
    # Test it with `raw_test_ds`, which yields raw strings
    loss, accuracy = end_to_end_model.evaluate(np.asarray(texts)[:, None], labels, verbose=0)  # a NumPy str array too
    p = np.clip(expected[:, 0].astype("float64"), 1e-7, 1 - 1e-7)
    bce = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    np.testing.assert_allclose(loss, bce, rtol=1e-4)
    np.testing.assert_allclose(accuracy, np.mean((expected[:, 0] > 0.5) == (labels > 0.5)), rtol=1e-6)
    path = str(tmp_path / "end_to_end.keras")
    end_to_end_model.save(path)
    reloaded = keras.models.load_model(path)
    assert_same(reloaded.predict(raw, verbose=0), expected, rtol=1e-4, atol=1e-6)


# ------------------- 20. "Structured data classification from scratch" (2020 version)
def test_structured_data_classification_from_scratch(keras_ref, tmp_path):
    """The example's end-to-end model: raw features (ints, floats and the
    string `thal`) into `keras.Input`s, IntegerLookup/StringLookup
    (`output_mode="binary"`) and Normalization adapted inside the model.
    Keras's lookups need TensorFlow, so the Keras run gets the encoded
    features (kerasish's lookups are checked against Keras in
    tests/models/test_string_inputs.py) and the two models train and predict
    alike; the example's single-sample inference and a `.keras` round trip
    run on the string model."""
    rng = np.random.default_rng(20)
    n = 48
    thal_values = np.array(["fixed", "normal", "reversible", "1", "2"], dtype=object)
    columns = {
        "sex": rng.integers(0, 2, n), "cp": rng.integers(0, 5, n), "fbs": rng.integers(0, 2, n),
        "restecg": rng.integers(0, 3, n), "exang": rng.integers(0, 2, n), "ca": rng.integers(0, 4, n),
        "thal": thal_values[rng.integers(0, 5, n)],
        "age": rng.uniform(29, 77, n), "trestbps": rng.uniform(94, 200, n), "chol": rng.uniform(126, 564, n),
        "thalach": rng.uniform(71, 202, n), "oldpeak": rng.uniform(0, 6.2, n), "slope": rng.integers(1, 4, n),
    }
    target = ((columns["age"] > 55) ^ (columns["thal"] == "reversible")).astype("float32")[:, None]
    dataset = {k: v[:, None] for k, v in columns.items()}  # tf.data's expand_dims(x, -1), one column each
    keras = kerasish
    layers = keras.layers

    def encode_numerical_feature(feature, name, dataset):
        # Create a Normalization layer for our feature
        normalizer = layers.Normalization()
        # Learn the statistics of the data
        normalizer.adapt(dataset[name].astype("float32"))
        # Normalize the input feature
        encoded_feature = normalizer(feature)
        return encoded_feature

    def encode_categorical_feature(feature, name, dataset, is_string):
        lookup_class = layers.StringLookup if is_string else layers.IntegerLookup
        # Create a lookup layer which will turn strings into integer indices
        lookup = lookup_class(output_mode="binary")
        # Learn the set of possible string values and assign them a fixed integer index
        lookup.adapt(dataset[name])
        # Turn the string input into integer indices
        encoded_feature = lookup(feature)
        return encoded_feature

    # Categorical features encoded as integers
    int_names = ["sex", "cp", "fbs", "restecg", "exang", "ca"]
    int_inputs = [keras.Input(shape=(1,), name=name, dtype="int64") for name in int_names]
    # Categorical feature encoded as string
    thal = keras.Input(shape=(1,), name="thal", dtype="string")
    # Numerical features
    num_names = ["age", "trestbps", "chol", "oldpeak", "slope"]
    num_inputs = [keras.Input(shape=(1,), name=name) for name in num_names]
    all_inputs = int_inputs + [thal] + num_inputs
    encoded = [encode_categorical_feature(x, name, dataset, False) for x, name in zip(int_inputs, int_names)]
    encoded.append(encode_categorical_feature(thal, "thal", dataset, True))
    encoded += [encode_numerical_feature(x, name, dataset) for x, name in zip(num_inputs, num_names)]
    all_features = layers.concatenate(encoded)

    def head(keras, features):
        x = keras.layers.Dense(32, activation="relu")(features)
        x = keras.layers.Dropout(0.0)(x)  # the example's 0.5, off for a deterministic comparison
        output = keras.layers.Dense(1, activation="sigmoid")(x)
        return output

    model = keras.Model(all_inputs, head(keras, all_features))
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    assert {t.name: t.dtype for t in model.inputs}["thal"] == "string"

    # the Keras reference: the same head on the encoded features
    encoder = keras.Model(all_inputs, all_features)
    x_raw = {name: dataset[name] for name in int_names + ["thal"] + num_names}
    x_encoded = encoder.predict(x_raw, verbose=0)
    assert x_encoded.shape == (n, all_features.shape[-1])
    feats = keras_ref.Input(shape=(x_encoded.shape[1],))
    ref = keras_ref.Model(feats, head(keras_ref, feats))
    ref.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    ours_dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    ref_dense = [layer for layer in ref.layers if type(layer).__name__ == "Dense"]
    for mine, theirs in zip(ours_dense, ref_dense):
        mine.set_weights(theirs.get_weights())

    h_ref = ref.fit(x_encoded, target, epochs=3, batch_size=16, shuffle=False, verbose=0,
                    validation_data=(x_encoded[:16], target[:16]))
    x_val = {k: v[:16] for k, v in x_raw.items()}
    h_ours = model.fit(x_raw, target, epochs=3, batch_size=16, shuffle=False, verbose=0,
                       validation_data=(x_val, target[:16]))
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-6)
    assert_same(model.predict(x_raw, verbose=0), ref.predict(x_encoded, verbose=0), rtol=1e-4, atol=1e-5)

    # Inference on new data: one sample, scalars wrapped in a batch of one
    sample = {
        "age": 60, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "fbs": 1, "restecg": 2, "thalach": 150,
        "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": "fixed",
    }
    input_dict = {name: np.asarray([value]) for name, value in sample.items() if name != "thalach"}
    predictions = model.predict(input_dict, verbose=0)
    sample_encoded = encoder.predict(input_dict, verbose=0)
    assert_same(predictions, ref.predict(sample_encoded, verbose=0), rtol=1e-4, atol=1e-6)
    path = str(tmp_path / "structured.keras")
    model.save(path)
    assert_same(keras.models.load_model(path).predict(input_dict, verbose=0), predictions, rtol=1e-6, atol=1e-7)
