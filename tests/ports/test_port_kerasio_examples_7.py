"""More keras.io examples (Keras 3 versions; continued from
test_port_kerasio_examples_6.py), ported the same way: the example's code
with `import keras` changed to `import kerasish as keras` (one builder runs
with real Keras 3 on torch and with kerasish), `tf.*` rewritten with
`keras.ops` or `torch.*`, small deterministic synthetic data, shrunk sizes,
the same initial weights and the same batches (shuffle=False) in both runs.

Covered here:

22. "Automatic Speech Recognition using CTC" (audio/ctc_asr, DeepSpeech2):
    a functional model over variable-length spectrograms (`Input((None,
    dim))`, `Reshape((-1, dim, 1))`, strided Conv2D without bias,
    BatchNormalization, `Reshape((-1, x.shape[-2] * x.shape[-1]))`), stacked
    `Bidirectional(GRU(reset_after=True))`, a CTC loss function given to
    `compile` (`keras.backend.ctc_batch_cost` -> `keras.ops.ctc_loss` with
    the blank last), and the example's decoding with beam search
    (`keras.backend.ctc_decode(greedy=False)` -> `keras.ops.ctc_decode(
    strategy="beam_search", mask_index=blank)`) inside a callback.
23. "Imbalanced classification: credit card fraud detection"
    (structured_data/imbalanced_classification): the CSV read with pandas
    and the DataFrame (features) and Series (targets) given to `fit` as they
    are, NumPy normalization, confusion-matrix metrics (`FalseNegatives` ...
    `Recall`), `class_weight`, a `ModelCheckpoint("..._{epoch}.keras")`
    whose files both frameworks load, and the example's `verbose=2` epoch
    lines. (Found in Keras 3.15, not kerasish: Keras logs the validation
    counts as the training `fn`/`fp`/`tn`/`tp`, as a count's `result()` is
    a view of its variable that the epoch's evaluation resets; those four
    keys are checked against the training set's size instead.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish

from tests.ports.test_port_programs import assert_history
from tests.ports.test_port_programs import assert_same
from tests.ports.test_port_programs import assert_weights
from tests.ports.test_port_programs import copy_weights

# the same autouse fixtures as the earlier files: Keras seeded, one torch thread
from tests.ports.test_port_kerasio_examples_2 import _one_thread  # noqa: F401
from tests.ports.test_port_kerasio_examples_2 import _seeded  # noqa: F401


# ------------------------------------------------------------- 22. CTC ASR
def _deepspeech2(keras, input_dim, output_dim, rnn_layers=2, rnn_units=8, filters=4, dropout=0.0):
    layers, ops = keras.layers, keras.ops
    blank = output_dim  # (ctc_batch_cost's blank is the last class)

    def CTCLoss(y_true, y_pred):
        # (keras.backend.ctc_batch_cost(y_true, y_pred, input_length, label_length) -> ops.ctc_loss;
        # ctc_batch_cost takes probabilities, ops.ctc_loss logits: log(softmax) is its own log_softmax)
        batch_len = ops.shape(y_true)[0]
        input_length = ops.shape(y_pred)[1]
        label_length = ops.shape(y_true)[1]
        input_length = input_length * ops.ones((batch_len,), dtype="int32")
        label_length = label_length * ops.ones((batch_len,), dtype="int32")
        return ops.ctc_loss(ops.cast(y_true, "int32"), ops.log(y_pred + 1e-7), label_length, input_length,
                            mask_index=blank)

    input_spectrogram = layers.Input((None, input_dim), name="input")
    x = layers.Reshape((-1, input_dim, 1), name="expand_dim")(input_spectrogram)
    # (kernels [11, 41] and [11, 21], 32 filters in the example)
    x = layers.Conv2D(filters=filters, kernel_size=[5, 9], strides=[2, 2], padding="same", use_bias=False,
                      name="conv_1")(x)
    x = layers.BatchNormalization(name="conv_1_bn")(x)
    x = layers.ReLU(name="conv_1_relu")(x)
    x = layers.Conv2D(filters=filters, kernel_size=[5, 5], strides=[1, 2], padding="same", use_bias=False,
                      name="conv_2")(x)
    x = layers.BatchNormalization(name="conv_2_bn")(x)
    x = layers.ReLU(name="conv_2_relu")(x)
    x = layers.Reshape((-1, x.shape[-2] * x.shape[-1]))(x)
    for i in range(1, rnn_layers + 1):
        recurrent = layers.GRU(units=rnn_units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                               return_sequences=True, reset_after=True, name=f"gru_{i}")
        x = layers.Bidirectional(recurrent, name=f"bidirectional_{i}", merge_mode="concat")(x)
        if i < rnn_layers:
            x = layers.Dropout(rate=dropout)(x)
    x = layers.Dense(units=rnn_units * 2, name="dense_1")(x)
    x = layers.ReLU(name="dense_1_relu")(x)
    x = layers.Dropout(rate=dropout)(x)
    output = layers.Dense(units=output_dim + 1, activation="softmax")(x)
    model = keras.Model(input_spectrogram, output, name="DeepSpeech_2")
    opt = keras.optimizers.Adam(learning_rate=1e-3)  # (1e-4 in the example: a few steps here)
    model.compile(optimizer=opt, loss=CTCLoss)
    return model


def _decode_batch_predictions(keras, pred, blank, beam_width=4, top_paths=1):
    """The example's decoding (`keras.backend.ctc_decode(pred, input_length=input_len,
    greedy=False, beam_width=..., top_paths=...)[0][0]`), with `keras.ops`."""
    input_len = np.ones(pred.shape[0]) * pred.shape[1]
    decoded, log_probs = keras.ops.ctc_decode(keras.ops.log(pred), sequence_lengths=input_len,
                                              strategy="beam_search", beam_width=beam_width, top_paths=top_paths,
                                              mask_index=blank)
    results = keras.ops.convert_to_numpy(decoded)[0]
    # (num_to_char + tf.strings.reduce_join: indices back to characters, padding -1 dropped)
    return ["".join(_CHARS[i] for i in row if i >= 0) for row in results], keras.ops.convert_to_numpy(log_probs)


_CHARS = "#abcdefghijklmnopqrstuvwxyz'?! "  # (index 0 is StringLookup's OOV "")


def test_ctc_asr_deepspeech2_beam_search(keras_ref):
    rng = np.random.default_rng(22)
    input_dim, output_dim, frames, label_len = 17, len(_CHARS), 24, 4
    # (spectrograms of 24 frames of 17 bins; transcripts of 4 characters, 1..len-1)
    x_train = rng.random((24, frames, input_dim)).astype("float32")
    y_train = rng.integers(1, output_dim, size=(24, label_len)).astype("int64")
    x_val = rng.random((8, frames, input_dim)).astype("float32")
    y_val = rng.integers(1, output_dim, size=(8, label_len)).astype("int64")
    ref, ours = _deepspeech2(keras_ref, input_dim, output_dim), _deepspeech2(kerasish, input_dim, output_dim)
    copy_weights(ours, ref)

    decoded_each_epoch = {}

    def callback(keras, key):
        class CallbackEval(keras.callbacks.Callback):
            """The example's callback: decode a validation batch after each epoch."""

            def on_epoch_end(self, epoch, logs=None):
                predictions = self.model.predict(x_val, verbose=0)
                decoded_each_epoch.setdefault(key, []).append(
                    (predictions, _decode_batch_predictions(keras, predictions, blank=output_dim)))

        return CallbackEval()

    histories = []
    for model, keras, key in ((ref, keras_ref, "ref"), (ours, kerasish, "ours")):
        histories.append(model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=2, batch_size=8,
                                   callbacks=[callback(keras, key)], shuffle=False, verbose=0))
    assert_history(histories[1], histories[0])
    assert_weights(ours, ref)
    # the model takes spectrograms of any length (Input((None, dim)))
    x_long = rng.random((2, 2 * frames, input_dim)).astype("float32")
    pred_ref = ref.predict(x_long, verbose=0)
    assert pred_ref.shape == (2, frames, output_dim + 1)
    assert_same(ours.predict(x_long, verbose=0), pred_ref)
    # the callback's transcripts: Keras's decoder reads the same from kerasish's predictions, and the beam
    # scores equal Keras's run. (The texts themselves are not compared across the runs: on these barely
    # trained, flat outputs two beams can tie to 1e-6, and predictions that differ by 2e-8 (float32
    # summation order) were seen to flip "o on " / "o onq" between the runs, in both decoders alike.)
    assert len(decoded_each_epoch["ours"]) == len(decoded_each_epoch["ref"]) == 2
    for (pred, (texts, scores)), (pred_ref, (_, scores_ref)) in zip(decoded_each_epoch["ours"],
                                                                   decoded_each_epoch["ref"]):
        assert_same(pred, pred_ref)
        texts_by_keras, scores_by_keras = _decode_batch_predictions(keras_ref, pred, blank=output_dim)
        assert texts == texts_by_keras
        np.testing.assert_allclose(scores, scores_by_keras, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(scores, scores_ref, rtol=1e-4, atol=1e-4)
        assert all(len(t) <= frames for t in texts)
    # kerasish's decoder on Keras's own predictions, several paths
    pred = ref.predict(x_val, verbose=0)
    for top_paths in (1, 3):
        decoded_ref, log_probs_ref = keras_ref.ops.ctc_decode(
            keras_ref.ops.log(pred), np.full(len(pred), pred.shape[1]), strategy="beam_search", beam_width=6,
            top_paths=top_paths, mask_index=output_dim)
        decoded, log_probs = kerasish.ops.ctc_decode(
            kerasish.ops.log(pred), np.full(len(pred), pred.shape[1]), strategy="beam_search", beam_width=6,
            top_paths=top_paths, mask_index=output_dim)
        np.testing.assert_array_equal(kerasish.ops.convert_to_numpy(decoded),
                                      keras_ref.ops.convert_to_numpy(decoded_ref))
        np.testing.assert_allclose(kerasish.ops.convert_to_numpy(log_probs),
                                   keras_ref.ops.convert_to_numpy(log_probs_ref), rtol=1e-5, atol=1e-5)


# ------------------------------------------- 23. Imbalanced classification
def _fraud_model(keras, input_shape, width=16):
    model = keras.Sequential([
        keras.Input(shape=input_shape),
        keras.layers.Dense(width, activation="relu"),  # (256 in the example)
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dropout(0.0),  # (0.3 in the example)
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dropout(0.0),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    metrics = [
        keras.metrics.FalseNegatives(name="fn"),
        keras.metrics.FalsePositives(name="fp"),
        keras.metrics.TrueNegatives(name="tn"),
        keras.metrics.TruePositives(name="tp"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
    ]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=metrics)
    return model


def _normalize_times(text):
    """The parts of a `verbose=2` line that depend on the clock."""
    import re

    return re.sub(r"\d+(\.\d+)?(ms|s|us)(/step)?", "T", text)


def test_imbalanced_classification_pandas(keras_ref, tmp_path, capsys):
    pd = pytest.importorskip("pandas", reason="the example reads its CSV with pandas")
    keras_ref.utils.clear_session()
    rng = np.random.default_rng(23)
    # a creditcard.csv-like file: "Time", V1..V6, "Amount", "Class" (about 5% frauds)
    n = 240
    labels = (rng.random(n) < 0.05).astype("int64")
    features = rng.normal(size=(n, 8)) + labels[:, None] * np.linspace(0.5, 2.0, 8)[None, :]
    features[:, 0] = np.arange(n) * 3.0
    features[:, -1] = np.abs(features[:, -1]) * 50.0
    columns = ["Time"] + [f"V{i}" for i in range(1, 7)] + ["Amount"]
    frame = pd.DataFrame(features, columns=columns)
    frame["Class"] = labels
    csv = tmp_path / "creditcard.csv"
    frame.to_csv(csv, index=False)

    # the example's preparation (it parses the CSV by hand into NumPy; pandas users keep the frame)
    df = pd.read_csv(csv)
    features_df = df.drop(columns=["Class"]).astype("float32")
    targets = df["Class"]
    num_val_samples = int(len(features_df) * 0.2)
    train_features, train_targets = features_df[:-num_val_samples], targets[:-num_val_samples]
    val_features, val_targets = features_df[-num_val_samples:], targets[-num_val_samples:]
    counts = np.bincount(train_targets)
    assert counts[1] > 0
    weight_for_0 = 1.0 / counts[0]
    weight_for_1 = 1.0 / counts[1]
    mean = np.mean(train_features, axis=0)
    train_features = train_features - mean
    val_features = val_features - mean
    std = np.std(train_features, axis=0)
    train_features = train_features / std
    val_features = val_features / std
    assert isinstance(train_features, pd.DataFrame) and isinstance(train_targets, pd.Series)

    ref = _fraud_model(keras_ref, train_features.shape[1:])
    ours = _fraud_model(kerasish, train_features.shape[1:])
    copy_weights(ours, ref)
    class_weight = {0: weight_for_0, 1: weight_for_1}
    histories, logs = [], []
    for model, keras, name in ((ref, keras_ref, "ref"), (ours, kerasish, "ours")):
        callbacks = [keras.callbacks.ModelCheckpoint(str(tmp_path / (name + "_fraud_model_at_epoch_{epoch}.keras")))]
        capsys.readouterr()
        histories.append(model.fit(train_features, train_targets, batch_size=64, epochs=2, verbose=2,
                                   callbacks=callbacks, validation_data=(val_features, val_targets),
                                   class_weight=class_weight, shuffle=False))
        logs.append(capsys.readouterr().out)
    # Keras 3.15 (torch) logs the *validation* counts as the training `fn`/`fp`/`tn`/`tp` of each
    # epoch: a single-threshold count's `result()` is a view of the metric's variable, which the
    # epoch's evaluation resets and refills before the History reads it (here train "tn" was 37 of
    # the 48 validation rows; Precision/Recall, computed anew by `result()`, are right). kerasish
    # logs the training counts: they add up to the 192 training rows and to its 9 frauds, and
    # every other key equals Keras's.
    train_counts = ("fn", "fp", "tn", "tp")
    history_ours, history_ref = histories[1].history, histories[0].history
    for epoch in range(2):
        assert sum(history_ours[k][epoch] for k in train_counts) == len(train_features)
        assert history_ours["tp"][epoch] + history_ours["fn"][epoch] == counts[1]
    assert sorted(history_ours) == sorted(history_ref)
    for key in sorted(set(history_ref) - set(train_counts)):
        np.testing.assert_allclose(history_ours[key], history_ref[key], rtol=1e-4, atol=1e-5, err_msg=key)
    assert_weights(ours, ref)
    # the epoch lines (`verbose=2`) read as Keras's, up to the clock and the last digits of the numbers
    ours_lines, ref_lines = _normalize_times(logs[1]).splitlines(), _normalize_times(logs[0]).splitlines()
    assert len(ours_lines) == len(ref_lines) == 4
    for a, b in zip(ours_lines, ref_lines):
        assert a.split(" - ")[0] == b.split(" - ")[0]
        assert [part.split(":")[0] for part in a.split(" - ")] == [part.split(":")[0] for part in b.split(" - ")]
    # the per-epoch `.keras` checkpoints load in both frameworks and predict as the trained models
    for name in ("ref", "ours"):
        for epoch in (1, 2):
            assert (tmp_path / f"{name}_fraud_model_at_epoch_{epoch}.keras").exists()
        path = str(tmp_path / f"{name}_fraud_model_at_epoch_2.keras")
        expected = ref.predict(val_features, verbose=0)
        assert_same(kerasish.saving.load_model(path).predict(val_features, verbose=0), expected)
        assert_same(keras_ref.saving.load_model(path).predict(val_features, verbose=0), expected)
    results = [m.evaluate(val_features, val_targets, verbose=0, return_dict=True) for m in (ref, ours)]
    assert_same(results[1], results[0])


# ------------------------------------------- 24. Next-frame prediction (ConvLSTM)
def _conv_lstm(keras, frame_shape, filters=4):
    layers = keras.layers
    inp = layers.Input(shape=(None, *frame_shape))
    # (64 filters in the example)
    x = layers.ConvLSTM2D(filters=filters, kernel_size=(5, 5), padding="same", return_sequences=True,
                          activation="relu")(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ConvLSTM2D(filters=filters, kernel_size=(3, 3), padding="same", return_sequences=True,
                          activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.ConvLSTM2D(filters=filters, kernel_size=(1, 1), padding="same", return_sequences=True,
                          activation="relu")(x)
    x = layers.Conv3D(filters=1, kernel_size=(3, 3, 3), activation="sigmoid", padding="same")(x)
    model = keras.models.Model(inp, x)
    model.compile(loss=keras.losses.binary_crossentropy, optimizer=keras.optimizers.Adam())
    return model


def _moving_squares(rng, n, frames=6, size=8):
    """Moving MNIST in miniature: a 2x2 square walking one pixel a frame."""
    data = np.zeros((n, frames, size, size, 1), "float32")
    for i in range(n):
        r, c = rng.integers(0, size - 2, size=2)
        dr, dc = rng.choice([-1, 1], size=2)
        for t in range(frames):
            data[i, t, r:r + 2, c:c + 2, 0] = 1.0
            if not 0 <= r + dr <= size - 2:
                dr = -dr
            if not 0 <= c + dc <= size - 2:
                dc = -dc
            r, c = r + dr, c + dc
    return data


def _create_shifted_frames(data):
    x = data[:, 0: data.shape[1] - 1, :, :]
    y = data[:, 1: data.shape[1], :, :]
    return x, y


def test_conv_lstm_next_frame_prediction(keras_ref):
    keras_ref.utils.clear_session()
    rng = np.random.default_rng(24)
    dataset = _moving_squares(rng, 20)
    train_dataset, val_dataset = dataset[:16], dataset[16:]
    x_train, y_train = _create_shifted_frames(train_dataset)
    x_val, y_val = _create_shifted_frames(val_dataset)
    ref, ours = _conv_lstm(keras_ref, x_train.shape[2:]), _conv_lstm(kerasish, x_train.shape[2:])
    assert [w.path for w in ours.weights] == [w.path for w in ref.weights]
    copy_weights(ours, ref)
    histories = []
    for model, keras in ((ref, keras_ref), (ours, kerasish)):
        early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10)
        # (patience 5 in the example: 1 here, so that the learning rate is cut in the second epoch)
        reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=1, min_delta=1.0)
        histories.append(model.fit(x_train, y_train, batch_size=8, epochs=2, validation_data=(x_val, y_val),
                                   callbacks=[early_stopping, reduce_lr], shuffle=False, verbose=0))
    assert_history(histories[1], histories[0])
    for model in (ref, ours):
        np.testing.assert_allclose(float(model.optimizer.learning_rate), 1e-4, rtol=1e-6)  # (0.001 * 0.1)
    assert_weights(ours, ref)

    # the example's frame-by-frame prediction: the first 3 frames in, 2 frames predicted
    predicted = []
    for model in (ref, ours):
        example = val_dataset[0]
        frames = example[:3, ...]
        for _ in range(2):
            new_prediction = model.predict(np.expand_dims(frames, axis=0), verbose=0)
            new_prediction = np.squeeze(new_prediction, axis=0)
            predicted_frame = np.expand_dims(new_prediction[-1, ...], axis=0)
            frames = np.concatenate((frames, predicted_frame), axis=0)
        predicted.append(frames)
    assert predicted[0].shape == (5, 8, 8, 1)
    assert_same(predicted[1], predicted[0])


# ------------------------------------------------------------ 25. Antirectifier
def _antirectifier(keras, width=16):
    layers, ops = keras.layers, keras.ops

    class Antirectifier(layers.Layer):
        def __init__(self, initializer="he_normal", **kwargs):
            super().__init__(**kwargs)
            self.initializer = keras.initializers.get(initializer)

        def build(self, input_shape):
            output_dim = input_shape[-1]
            self.kernel = self.add_weight(shape=(output_dim * 2, output_dim), initializer=self.initializer,
                                          name="kernel", trainable=True)

        def call(self, inputs):
            inputs -= ops.mean(inputs, axis=-1, keepdims=True)
            pos = ops.relu(inputs)
            neg = ops.relu(-inputs)
            concatenated = ops.concatenate([pos, neg], axis=-1)
            mixed = ops.matmul(concatenated, self.kernel)
            return mixed

        def get_config(self):
            # Implement get_config to enable serialization. This is optional.
            base_config = super().get_config()
            config = {"initializer": keras.initializers.serialize(self.initializer)}
            return dict(list(base_config.items()) + list(config.items()))

    model = keras.Sequential([
        keras.Input(shape=(64,)),  # (784 MNIST pixels in the example)
        layers.Dense(width),  # (256)
        Antirectifier(),
        layers.Dense(width),
        Antirectifier(),
        layers.Dropout(0.0),  # (0.5)
        layers.Dense(10),
    ])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=keras.optimizers.RMSprop(), metrics=[keras.metrics.SparseCategoricalAccuracy()])
    return model, Antirectifier


def _residual_block_class(keras, Antirectifier):
    """(Added) a custom layer holding other layers, serialized the Keras 3
    way: `get_config` stores them with `serialize_keras_object`, `from_config`
    rebuilds them with `deserialize_keras_object`."""

    class ResidualAntirectifier(keras.layers.Layer):
        def __init__(self, inner, projection, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner
            self.projection = projection

        def call(self, inputs):
            return inputs + self.projection(self.inner(inputs))

        def get_config(self):
            config = super().get_config()
            config.update({"inner": keras.saving.serialize_keras_object(self.inner),
                           "projection": keras.saving.serialize_keras_object(self.projection)})
            return config

        @classmethod
        def from_config(cls, config):
            config["inner"] = keras.saving.deserialize_keras_object(config["inner"])
            config["projection"] = keras.saving.deserialize_keras_object(config["projection"])
            return cls(**config)

    return ResidualAntirectifier


def _strip_module(config):
    """Serialized configs name where a class lives: `keras.layers` in Keras,
    `kerasish.layers` in kerasish; the rest must be equal."""
    if isinstance(config, dict):
        return {k: ("<module>" if k == "module" else _strip_module(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [_strip_module(v) for v in config]
    return config


def test_antirectifier_and_nested_layer_serialization(keras_ref, tmp_path):
    keras_ref.utils.clear_session()
    rng = np.random.default_rng(25)
    x_train = rng.random((120, 64)).astype("float32")
    y_train = (x_train[:, :10].argmax(axis=1)).astype("int64")
    x_test = rng.random((30, 64)).astype("float32")
    y_test = (x_test[:, :10].argmax(axis=1)).astype("int64")
    (ref, AntirectifierRef), (ours, Antirectifier) = _antirectifier(keras_ref), _antirectifier(kerasish)
    assert [w.path for w in ours.weights] == [w.path for w in ref.weights]
    copy_weights(ours, ref)
    histories = [model.fit(x_train, y_train, batch_size=32, epochs=2, validation_split=0.15, shuffle=False,
                           verbose=0) for model in (ref, ours)]
    assert_history(histories[1], histories[0])
    assert_weights(ours, ref)
    assert_same(ours.evaluate(x_test, y_test, verbose=0), ref.evaluate(x_test, y_test, verbose=0))
    # `inputs -= ...` changes the layer's input tensor in place (a torch tensor): the Dense output
    # it came from is not needed for the backward pass, and the result is the same as Keras's
    assert_same(ours.predict(x_test, verbose=0), ref.predict(x_test, verbose=0))

    # the example's get_config: equal configs, and a `.keras` round trip with custom_objects
    layer_ref, layer = ref.layers[1], ours.layers[1]
    assert layer.get_config() == layer_ref.get_config()
    assert _strip_module(kerasish.saving.serialize_keras_object(layer)) == _strip_module(
        keras_ref.saving.serialize_keras_object(layer_ref))
    expected = ref.predict(x_test, verbose=0)
    for saver, name in ((ref, "ref"), (ours, "ours")):
        path = str(tmp_path / f"antirectifier_{name}.keras")
        saver.save(path)
        for loader, cls in ((keras_ref, AntirectifierRef), (kerasish, Antirectifier)):
            loaded = loader.saving.load_model(path, custom_objects={"Antirectifier": cls})
            assert type(loaded.layers[1]) is cls
            assert_same(loaded.predict(x_test, verbose=0), expected)

    # (added) a custom layer holding layers, serialized with serialize_keras_object
    blocks = []
    for keras, cls in ((keras_ref, AntirectifierRef), (kerasish, Antirectifier)):
        Residual = _residual_block_class(keras, cls)
        block = Residual(cls(initializer="glorot_uniform", name="inner"), keras.layers.Dense(64, name="proj"),
                         name="residual")
        block(x_test)
        blocks.append((keras, cls, Residual, block))
    (_, _, ResidualRef, block_ref), (_, _, Residual, block) = blocks
    block.set_weights(block_ref.get_weights())
    config_ref = keras_ref.saving.serialize_keras_object(block_ref)
    config = kerasish.saving.serialize_keras_object(block)
    assert _strip_module(config) == _strip_module(config_ref)
    assert config["config"]["inner"]["class_name"] == "Antirectifier"
    assert config["config"]["projection"]["config"]["units"] == 64
    # each framework rebuilds the other's config (with the custom classes in scope)
    for keras, cls, cls_residual, source in ((kerasish, Antirectifier, Residual, config_ref),
                                             (keras_ref, AntirectifierRef, ResidualRef, config)):
        with keras.saving.custom_object_scope({"Antirectifier": cls, "ResidualAntirectifier": cls_residual}):
            rebuilt = keras.saving.deserialize_keras_object(source)
        assert type(rebuilt) is cls_residual and type(rebuilt.inner) is cls
        assert rebuilt.inner.get_config()["initializer"]["class_name"] == "GlorotUniform"
        rebuilt(x_test)
        rebuilt.set_weights(block_ref.get_weights())
        assert_same(rebuilt(x_test), block_ref(x_test))


# --------------------------------------------------------- 26. Conditional GAN
def _conditional_gan(keras, image_size=8, num_channels=1, num_classes=3, latent_dim=6, width=8,
                     repeats_as_list=True):
    layers, ops = keras.layers, keras.ops
    generator_in_channels = latent_dim + num_classes
    discriminator_in_channels = num_channels + num_classes
    base = image_size // 4  # (7 for 28x28 MNIST)

    discriminator = keras.Sequential([
        keras.layers.InputLayer((image_size, image_size, discriminator_in_channels)),
        layers.Conv2D(width, (3, 3), strides=(2, 2), padding="same"),  # (64 and 128 filters)
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(2 * width, (3, 3), strides=(2, 2), padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.GlobalMaxPooling2D(),
        layers.Dense(1),
    ], name="discriminator")
    generator = keras.Sequential([
        keras.layers.InputLayer((generator_in_channels,)),
        layers.Dense(base * base * generator_in_channels),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Reshape((base, base, generator_in_channels)),
        layers.Conv2DTranspose(width, (4, 4), strides=(2, 2), padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2DTranspose(width, (4, 4), strides=(2, 2), padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Conv2D(1, (7, 7), padding="same", activation="sigmoid"),
    ], name="generator")

    class ConditionalGAN(keras.Model):
        def __init__(self, discriminator, generator, latent_dim):
            super().__init__()
            self.discriminator = discriminator
            self.generator = generator
            self.latent_dim = latent_dim
            self.seed_generator = keras.random.SeedGenerator(1337)
            self.gen_loss_tracker = keras.metrics.Mean(name="generator_loss")
            self.disc_loss_tracker = keras.metrics.Mean(name="discriminator_loss")

        @property
        def metrics(self):
            return [self.gen_loss_tracker, self.disc_loss_tracker]

        def compile(self, d_optimizer, g_optimizer, loss_fn):
            super().compile()
            self.d_optimizer = d_optimizer
            self.g_optimizer = g_optimizer
            self.loss_fn = loss_fn

        def train_step(self, data):
            real_images, one_hot_labels = data
            image_one_hot_labels = one_hot_labels[:, :, None, None]
            # (Keras 3.15's torch `ops.repeat` raises "Invalid dtype: object" for the example's
            # one-element list; the Keras run passes the int, which NumPy treats the same way)
            repeats = [image_size * image_size] if repeats_as_list else image_size * image_size
            image_one_hot_labels = ops.repeat(image_one_hot_labels, repeats=repeats)
            image_one_hot_labels = ops.reshape(image_one_hot_labels, (-1, image_size, image_size, num_classes))

            batch_size = ops.shape(real_images)[0]
            random_latent_vectors = keras.random.normal(shape=(batch_size, self.latent_dim),
                                                        seed=self.seed_generator)
            random_vector_labels = ops.concatenate([random_latent_vectors, one_hot_labels], axis=1)
            generated_images = self.generator(random_vector_labels)
            fake_image_and_labels = ops.concatenate([generated_images, image_one_hot_labels], -1)
            real_image_and_labels = ops.concatenate([real_images, image_one_hot_labels], -1)
            combined_images = ops.concatenate([fake_image_and_labels, real_image_and_labels], axis=0)
            labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)

            # (tf.GradientTape -> torch autograd: the generator is outside the tape in the example)
            self.zero_grad()
            predictions = self.discriminator(combined_images)
            d_loss = self.loss_fn(labels, predictions)
            d_loss.backward()
            grads = [v.value.grad for v in self.discriminator.trainable_weights]
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))

            random_latent_vectors = keras.random.normal(shape=(batch_size, self.latent_dim),
                                                        seed=self.seed_generator)
            random_vector_labels = ops.concatenate([random_latent_vectors, one_hot_labels], axis=1)
            misleading_labels = ops.zeros((batch_size, 1))
            self.zero_grad()
            fake_images = self.generator(random_vector_labels)
            fake_image_and_labels = ops.concatenate([fake_images, image_one_hot_labels], -1)
            predictions = self.discriminator(fake_image_and_labels)
            g_loss = self.loss_fn(misleading_labels, predictions)
            g_loss.backward()
            grads = [v.value.grad for v in self.generator.trainable_weights]
            self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))

            self.gen_loss_tracker.update_state(g_loss)
            self.disc_loss_tracker.update_state(d_loss)
            return {"g_loss": self.gen_loss_tracker.result(), "d_loss": self.disc_loss_tracker.result()}

    cond_gan = ConditionalGAN(discriminator=discriminator, generator=generator, latent_dim=latent_dim)
    cond_gan.compile(d_optimizer=keras.optimizers.Adam(learning_rate=0.0003),
                     g_optimizer=keras.optimizers.Adam(learning_rate=0.0003),
                     loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
    return cond_gan


def _interpolate_class(keras, trained_gen, first_number, second_number, num_classes=3, latent_dim=6,
                       num_interpolation=4):
    """The example's class interpolation, with a seeded draw (it draws unseeded)."""
    ops = keras.ops
    interpolation_noise = keras.random.normal(shape=(1, latent_dim), seed=7)
    interpolation_noise = ops.repeat(interpolation_noise, repeats=num_interpolation)
    interpolation_noise = ops.reshape(interpolation_noise, (num_interpolation, latent_dim))
    first_label = keras.utils.to_categorical([first_number], num_classes)
    second_label = keras.utils.to_categorical([second_number], num_classes)
    first_label = ops.cast(first_label, "float32")
    second_label = ops.cast(second_label, "float32")
    percent_second_label = ops.linspace(0, 1, num_interpolation)[:, None]
    percent_second_label = ops.cast(percent_second_label, "float32")
    interpolation_labels = first_label * (1 - percent_second_label) + second_label * percent_second_label
    noise_and_labels = ops.concatenate([interpolation_noise, interpolation_labels], 1)
    return trained_gen.predict(noise_and_labels, verbose=0)


def test_conditional_gan(keras_ref):
    rng = np.random.default_rng(26)
    num_classes = 3
    all_digits = rng.random((24, 8, 8, 1)).astype("float32")
    all_labels = keras_ref.utils.to_categorical(rng.integers(0, num_classes, 24), num_classes).astype("float32")
    assert_same(kerasish.utils.to_categorical(np.argmax(all_labels, axis=1), num_classes), all_labels)
    # the example's `ops.repeat(labels[:, :, None, None], repeats=[n])` (flattened, each element n
    # times) against NumPy's
    labels_4d = all_labels[:4, :, None, None]
    np.testing.assert_array_equal(kerasish.ops.convert_to_numpy(kerasish.ops.repeat(labels_4d, repeats=[64])),
                                  np.repeat(labels_4d, [64]))
    ref, ours = _conditional_gan(keras_ref, repeats_as_list=False), _conditional_gan(kerasish)
    copy_weights(ours.discriminator, ref.discriminator)
    copy_weights(ours.generator, ref.generator)
    # (a tf.data.Dataset of (images, one-hot labels) in the example: a torch DataLoader here)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(all_digits), torch.from_numpy(all_labels))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=False)
    # (Keras 3.15's torch fit builds a model through its `call`; the example's has none and Keras
    # raises "Unable to automatically build the model": its parts are built, so it is marked built.
    # kerasish fits it as it is.)
    ref.built = True
    histories = [model.fit(loader, epochs=2, shuffle=False, verbose=0) for model in (ref, ours)]
    # the seeded keras.random.normal draws are Keras's own: the noisy training matches
    assert sorted(histories[0].history) == ["d_loss", "g_loss"]
    assert_history(histories[1], histories[0])
    assert_weights(ours.discriminator, ref.discriminator)
    assert_weights(ours.generator, ref.generator)
    fake = [_interpolate_class(keras, model.generator, 0, 2) for keras, model in ((keras_ref, ref),
                                                                                   (kerasish, ours))]
    assert fake[0].shape == (4, 8, 8, 1)
    assert_same(fake[1], fake[0])


# ---------------------------------------------------- 27. Denoising Diffusion Implicit Models
def _ddim(keras, image_size=8, widths=(4, 8), block_depth=1, embedding_dims=8, embedding_max_frequency=1000.0,
          min_signal_rate=0.02, max_signal_rate=0.95, ema=0.999):
    layers, ops = keras.layers, keras.ops
    import math

    @keras.saving.register_keras_serializable(package="ports7_ddim")
    def sinusoidal_embedding(x):
        embedding_min_frequency = 1.0
        frequencies = ops.exp(ops.linspace(ops.log(embedding_min_frequency), ops.log(embedding_max_frequency),
                                           embedding_dims // 2))
        angular_speeds = ops.cast(2.0 * math.pi * frequencies, "float32")
        embeddings = ops.concatenate([ops.sin(angular_speeds * x), ops.cos(angular_speeds * x)], axis=3)
        return embeddings

    def ResidualBlock(width):
        def apply(x):
            input_width = x.shape[3]
            if input_width == width:
                residual = x
            else:
                residual = layers.Conv2D(width, kernel_size=1)(x)
            x = layers.BatchNormalization(center=False, scale=False)(x)
            x = layers.Conv2D(width, kernel_size=3, padding="same", activation="swish")(x)
            x = layers.Conv2D(width, kernel_size=3, padding="same")(x)
            x = layers.Add()([x, residual])
            return x

        return apply

    def DownBlock(width, block_depth):
        def apply(x):
            x, skips = x
            for _ in range(block_depth):
                x = ResidualBlock(width)(x)
                skips.append(x)
            x = layers.AveragePooling2D(pool_size=2)(x)
            return x

        return apply

    def UpBlock(width, block_depth):
        def apply(x):
            x, skips = x
            x = layers.UpSampling2D(size=2, interpolation="bilinear")(x)
            for _ in range(block_depth):
                x = layers.Concatenate()([x, skips.pop()])
                x = ResidualBlock(width)(x)
            return x

        return apply

    def get_network(image_size, widths, block_depth):
        noisy_images = keras.Input(shape=(image_size, image_size, 3))
        noise_variances = keras.Input(shape=(1, 1, 1))
        e = layers.Lambda(sinusoidal_embedding, output_shape=(1, 1, embedding_dims))(noise_variances)
        e = layers.UpSampling2D(size=image_size, interpolation="nearest")(e)
        x = layers.Conv2D(widths[0], kernel_size=1)(noisy_images)
        x = layers.Concatenate()([x, e])
        skips = []
        for width in widths[:-1]:
            x = DownBlock(width, block_depth)([x, skips])
        for _ in range(block_depth):
            x = ResidualBlock(widths[-1])(x)
        for width in reversed(widths[:-1]):
            x = UpBlock(width, block_depth)([x, skips])
        x = layers.Conv2D(3, kernel_size=1, kernel_initializer="zeros")(x)
        return keras.Model([noisy_images, noise_variances], x, name="residual_unet")

    class DiffusionModel(keras.Model):
        def __init__(self, image_size, widths, block_depth):
            super().__init__()
            self.normalizer = layers.Normalization()
            self.network = get_network(image_size, widths, block_depth)
            self.ema_network = keras.models.clone_model(self.network)
            # (the example draws unseeded; a SeedGenerator makes the runs comparable)
            self.seed_generator = keras.random.SeedGenerator(27)

        def compile(self, **kwargs):
            super().compile(**kwargs)
            self.noise_loss_tracker = keras.metrics.Mean(name="n_loss")
            self.image_loss_tracker = keras.metrics.Mean(name="i_loss")
            # (the KID metric needs a pretrained InceptionV3: left out)

        @property
        def metrics(self):
            return [self.noise_loss_tracker, self.image_loss_tracker]

        def denormalize(self, images):
            images = self.normalizer.mean + images * self.normalizer.variance**0.5
            return ops.clip(images, 0.0, 1.0)

        def diffusion_schedule(self, diffusion_times):
            start_angle = ops.cast(ops.arccos(max_signal_rate), "float32")
            end_angle = ops.cast(ops.arccos(min_signal_rate), "float32")
            diffusion_angles = start_angle + diffusion_times * (end_angle - start_angle)
            signal_rates = ops.cos(diffusion_angles)
            noise_rates = ops.sin(diffusion_angles)
            return noise_rates, signal_rates

        def denoise(self, noisy_images, noise_rates, signal_rates, training):
            if training:
                network = self.network
            else:
                network = self.ema_network
            pred_noises = network([noisy_images, noise_rates**2], training=training)
            pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates
            return pred_noises, pred_images

        def reverse_diffusion(self, initial_noise, diffusion_steps):
            num_images = initial_noise.shape[0]
            step_size = 1.0 / diffusion_steps
            next_noisy_images = initial_noise
            for step in range(diffusion_steps):
                noisy_images = next_noisy_images
                diffusion_times = ops.ones((num_images, 1, 1, 1)) - step * step_size
                noise_rates, signal_rates = self.diffusion_schedule(diffusion_times)
                pred_noises, pred_images = self.denoise(noisy_images, noise_rates, signal_rates, training=False)
                next_diffusion_times = diffusion_times - step_size
                next_noise_rates, next_signal_rates = self.diffusion_schedule(next_diffusion_times)
                next_noisy_images = next_signal_rates * pred_images + next_noise_rates * pred_noises
            return pred_images

        def generate(self, num_images, diffusion_steps):
            initial_noise = keras.random.normal(shape=(num_images, image_size, image_size, 3),
                                                seed=self.seed_generator)
            generated_images = self.reverse_diffusion(initial_noise, diffusion_steps)
            generated_images = self.denormalize(generated_images)
            return generated_images

        def train_step(self, images):
            images = self.normalizer(images, training=True)
            noises = keras.random.normal(shape=(ops.shape(images)[0], image_size, image_size, 3),
                                         seed=self.seed_generator)
            diffusion_times = keras.random.uniform(shape=(ops.shape(images)[0], 1, 1, 1), minval=0.0, maxval=1.0,
                                                   seed=self.seed_generator)
            noise_rates, signal_rates = self.diffusion_schedule(diffusion_times)
            noisy_images = signal_rates * images + noise_rates * noises

            # (tf.GradientTape -> torch autograd)
            self.zero_grad()
            pred_noises, pred_images = self.denoise(noisy_images, noise_rates, signal_rates, training=True)
            noise_loss = self.loss(noises, pred_noises)  # used for training
            image_loss = self.loss(images, pred_images)  # only used as metric
            # (`self.loss` is the compiled `mean_absolute_error`: one loss per pixel; tape.gradient
            # of a non-scalar is the gradient of its sum)
            ops.sum(noise_loss).backward()
            gradients = [v.value.grad for v in self.network.trainable_weights]
            self.optimizer.apply_gradients(zip(gradients, self.network.trainable_weights))

            self.noise_loss_tracker.update_state(noise_loss)
            self.image_loss_tracker.update_state(image_loss)

            # track the exponential moving averages of the weights
            for weight, ema_weight in zip(self.network.weights, self.ema_network.weights):
                ema_weight.assign(ema * ema_weight + (1 - ema) * weight)

            return {m.name: m.result() for m in self.metrics}

        def test_step(self, images):
            images = self.normalizer(images, training=False)
            noises = keras.random.normal(shape=(ops.shape(images)[0], image_size, image_size, 3),
                                         seed=self.seed_generator)
            diffusion_times = keras.random.uniform(shape=(ops.shape(images)[0], 1, 1, 1), minval=0.0, maxval=1.0,
                                                   seed=self.seed_generator)
            noise_rates, signal_rates = self.diffusion_schedule(diffusion_times)
            noisy_images = signal_rates * images + noise_rates * noises
            pred_noises, pred_images = self.denoise(noisy_images, noise_rates, signal_rates, training=False)
            noise_loss = self.loss(noises, pred_noises)
            image_loss = self.loss(images, pred_images)
            self.image_loss_tracker.update_state(image_loss)
            self.noise_loss_tracker.update_state(noise_loss)
            return {m.name: m.result() for m in self.metrics}

    return DiffusionModel(image_size, widths, block_depth)


def test_ddim_diffusion(keras_ref):
    rng = np.random.default_rng(27)
    # (flowers 64x64 in the example: smooth 8x8 colour blobs here)
    yy, xx = np.mgrid[0:8, 0:8] / 7.0
    centres = rng.random((24, 2))
    colours = rng.random((24, 1, 1, 3))
    blobs = np.exp(-((xx[None] - centres[:, :1, None]) ** 2 + (yy[None] - centres[:, 1:, None]) ** 2) * 4)
    images = (blobs[..., None] * colours).astype("float32")
    train_images, val_images = images[:16], images[16:]
    models = []
    for keras in (keras_ref, kerasish):
        model = _ddim(keras)
        if keras is kerasish:
            model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=1e-4),
                          loss=keras.losses.mean_absolute_error)
        else:
            # Keras 3.15 (torch) cannot fit the example as written: a model compiled with a loss is
            # built by running its `call` (this one has none: "Unable to automatically build the
            # model") and the compiled loss on the batch's `y`, here None ("Invalid dtype: object").
            # The Keras run keeps the loss out of `compile` and is marked built (its parts are).
            model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=1e-4))
            model.loss = keras.losses.mean_absolute_error
            model.built = True
        # calculate mean and variance of training dataset for normalization
        model.normalizer.adapt(train_images)
        models.append(model)
    ref, ours = models
    assert_same(ours.normalizer.mean, ref.normalizer.mean, rtol=1e-6, atol=1e-7)
    assert_same(ours.normalizer.variance, ref.normalizer.variance, rtol=1e-6, atol=1e-7)
    copy_weights(ours.network, ref.network)
    copy_weights(ours.ema_network, ref.ema_network)
    ema_start = ref.ema_network.get_weights()

    generated = {}

    def plot_images(keras, model, key):
        # (the example's LambdaCallback(on_epoch_end=model.plot_images): the generated images kept)
        def on_epoch_end(epoch, logs=None):
            generated.setdefault(key, []).append(keras.ops.convert_to_numpy(model.generate(4, 3)))

        return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)

    histories = [model.fit(train_images, epochs=2, batch_size=8, validation_data=(val_images,), shuffle=False,
                           callbacks=[plot_images(keras, model, key)], verbose=0)
                 for model, keras, key in ((ref, keras_ref, "ref"), (ours, kerasish, "ours"))]
    assert sorted(histories[0].history) == ["i_loss", "n_loss", "val_i_loss", "val_n_loss"]
    assert_history(histories[1], histories[0])
    assert_weights(ours.network, ref.network)
    # the EMA network moved away from its start by (1 - ema) steps, as Keras's did
    assert max(np.abs(a - b).max() for a, b in zip(ours.ema_network.get_weights(), ema_start)) > 1e-4
    assert_weights(ours.ema_network, ref.ema_network)
    assert len(generated["ours"]) == len(generated["ref"]) == 2
    for a, b in zip(generated["ours"], generated["ref"]):
        assert a.shape == (4, 8, 8, 3) and a.min() >= 0.0 and a.max() <= 1.0
        assert_same(a, b)


# ------------------------------------------------------------- 28. Involution
def _involution_models(keras, image_size=8):
    ops = keras.ops

    class Involution(keras.layers.Layer):
        def __init__(self, channel, group_number, kernel_size, stride, reduction_ratio, name):
            super().__init__(name=name)
            self.channel = channel
            self.group_number = group_number
            self.kernel_size = kernel_size
            self.stride = stride
            self.reduction_ratio = reduction_ratio

        def build(self, input_shape):
            (_, height, width, num_channels) = input_shape
            height = height // self.stride
            width = width // self.stride
            # (tf.identity -> keras.layers.Identity(): `keras.ops.identity(n)` is NumPy's identity
            # matrix, not tf.identity)
            self.stride_layer = (
                keras.layers.AveragePooling2D(pool_size=self.stride, strides=self.stride, padding="same")
                if self.stride > 1 else keras.layers.Identity()
            )
            self.kernel_gen = keras.Sequential([
                keras.layers.Conv2D(filters=self.channel // self.reduction_ratio, kernel_size=1),
                keras.layers.BatchNormalization(),
                keras.layers.ReLU(),
                keras.layers.Conv2D(filters=self.kernel_size * self.kernel_size * self.group_number, kernel_size=1),
            ])
            self.kernel_reshape = keras.layers.Reshape(
                target_shape=(height, width, self.kernel_size * self.kernel_size, 1, self.group_number))
            self.input_patches_reshape = keras.layers.Reshape(
                target_shape=(height, width, self.kernel_size * self.kernel_size, num_channels // self.group_number,
                              self.group_number))
            self.output_reshape = keras.layers.Reshape(target_shape=(height, width, num_channels))

        def call(self, x):
            kernel_input = self.stride_layer(x)
            kernel = self.kernel_gen(kernel_input)
            kernel = self.kernel_reshape(kernel)
            # (tf.image.extract_patches(images=x, sizes=[1, k, k, 1], strides=[1, s, s, 1],
            # rates=[1, 1, 1, 1], padding="SAME") -> keras.ops.image.extract_patches)
            input_patches = ops.image.extract_patches(x, size=(self.kernel_size, self.kernel_size),
                                                      strides=(self.stride, self.stride), dilation_rate=1,
                                                      padding="same")
            input_patches = self.input_patches_reshape(input_patches)
            output = ops.multiply(kernel, input_patches)
            output = ops.sum(output, axis=3)
            output = self.output_reshape(output)
            return output, kernel

    conv_model = keras.Sequential([
        keras.Input(shape=(image_size, image_size, 3)),  # (input_shape= on the first layer in the example)
        keras.layers.Conv2D(8, (3, 3), padding="same"),  # (32, 64, 64 filters)
        keras.layers.ReLU(name="relu1"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(8, (3, 3), padding="same"),
        keras.layers.ReLU(name="relu2"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(8, (3, 3), padding="same"),
        keras.layers.ReLU(name="relu3"),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10),
    ])
    inputs = keras.Input(shape=(image_size, image_size, 3))
    x, _ = Involution(channel=3, group_number=1, kernel_size=3, stride=1, reduction_ratio=2, name="inv_1")(inputs)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x, _ = Involution(channel=3, group_number=1, kernel_size=3, stride=1, reduction_ratio=2, name="inv_2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x, _ = Involution(channel=3, group_number=1, kernel_size=3, stride=1, reduction_ratio=2, name="inv_3")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    outputs = keras.layers.Dense(10)(x)
    inv_model = keras.Model(inputs=[inputs], outputs=[outputs], name="inv_model")
    for model in (conv_model, inv_model):
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    return conv_model, inv_model, Involution


def _summary_lines(model):
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    return "\n".join(lines).splitlines()


def test_involution(keras_ref):
    keras_ref.utils.clear_session()
    rng = np.random.default_rng(28)
    train_images = rng.random((32, 8, 8, 3)).astype("float32")
    train_labels = rng.integers(0, 10, size=(32, 1))
    test_images = rng.random((16, 8, 8, 3)).astype("float32")
    test_labels = rng.integers(0, 10, size=(16, 1))
    (conv_ref, inv_ref, InvolutionRef), (conv, inv, Involution) = _involution_models(keras_ref), \
        _involution_models(kerasish)

    # the example's stand-alone checks of the layer (strides 1 and 2, 16 channels, reduction 2)
    input_tensor = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    for kwargs in (dict(channel=3, group_number=1, kernel_size=5, stride=1, reduction_ratio=1),
                   dict(channel=3, group_number=1, kernel_size=5, stride=2, reduction_ratio=1),
                   dict(channel=16, group_number=1, kernel_size=5, stride=1, reduction_ratio=2)):
        layer_ref, layer = InvolutionRef(name="inv", **kwargs), Involution(name="inv", **kwargs)
        layer_ref(input_tensor)
        layer(input_tensor)
        layer.set_weights(layer_ref.get_weights())
        assert_same(layer(input_tensor), layer_ref(input_tensor))
        assert tuple(layer(input_tensor)[0].shape) == (2, 8 // kwargs["stride"], 8 // kwargs["stride"], 3)

    histories = []
    for ref, ours in ((conv_ref, conv), (inv_ref, inv)):
        copy_weights(ours, ref)
        for model in (ref, ours):
            histories.append(model.fit(train_images, train_labels, batch_size=8, epochs=2, shuffle=False,
                                       validation_data=(test_images, test_labels), verbose=0))
        assert_history(histories[-1], histories[-2])
        # The bias of each kernel generator's first Conv2D feeds a BatchNormalization, which takes
        # the batch mean out: its true gradient is 0 and the computed one float32 round-off (of
        # either sign), which Adam scales to steps of up to its learning rate. Those
        # biases differ by round-off amplified so (seen: 4e-4); each stays within Adam's bound
        # of lr per step (8 steps of 1e-3), and the BatchNormalization's moving mean, an average
        # of batch means that include the bias, within (1 - 0.99**8) of that. Every other weight
        # equals Keras's.
        paths = [w.path for w in ref.weights]
        pre_bn = [i for i, path in enumerate(paths[:-1])
                  if path.endswith("/bias") and "/batch_normalization" in paths[i + 1]
                  and paths[i + 1].endswith("/gamma")]
        assert len(pre_bn) == (3 if ref is inv_ref else 0)
        for i, (a, b) in enumerate(zip(ours.get_weights(), ref.get_weights())):
            if i in pre_bn:
                assert np.abs(a - b).max() <= 8 * 1e-3
            elif i - 3 in pre_bn:
                assert paths[i].endswith("/moving_mean")
                assert np.abs(a - b).max() <= 8 * 1e-3 * (1 - 0.99**8)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=paths[i])
    # the example's `summary()` of both models: the same table as Keras's
    for ours, ref in ((conv, conv_ref), (inv, inv_ref)):
        assert _summary_lines(ours) == _summary_lines(ref)

    # the kernels' visualisation model: each involution's (output, kernel) pair (from Keras's trained
    # weights: the pre-BatchNormalization biases above differ, and in inference they count)
    inv.set_weights(inv_ref.get_weights())
    kernels = []
    for keras, model in ((keras_ref, inv_ref), (kerasish, inv)):
        layer_names = ["inv_1", "inv_2", "inv_3"]
        outputs = [model.get_layer(name).output for name in layer_names]
        vis_model = keras.Model(model.input, outputs)
        (inv1_out, inv2_out, inv3_out) = vis_model.predict(test_images[:1], verbose=0)
        # (tf.reduce_sum -> keras.ops.sum)
        kernels.append([keras.ops.convert_to_numpy(keras.ops.sum(out[1], axis=[-1, -2, -3]))
                        for out in (inv1_out, inv2_out, inv3_out)])
    assert [k.shape for k in kernels[0]] == [(1, 8, 8), (1, 4, 4), (1, 2, 2)]
    assert_same(kernels[1], kernels[0])
