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
    the blank last), and the example's decoding callback, here with the beam
    search its comment suggests (`keras.backend.ctc_decode(greedy=True)` in
    the example -> `keras.ops.ctc_decode(strategy="beam_search",
    mask_index=blank)`), checked against Keras's decoder on the same outputs.
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
24. "Next-frame video prediction with convolutional LSTMs" (vision/
    conv_lstm): three `ConvLSTM2D(return_sequences=True)` layers over
    `Input((None, h, w, c))` with BatchNormalization, a `Conv3D` head,
    binary cross-entropy, EarlyStopping and ReduceLROnPlateau (the learning
    rate cut once), and the example's frame-by-frame prediction loop.
    (Found: building this model took kerasish 2.3 s, as each ConvLSTM's
    symbolic call ran its cell on meta tensors through 83 + 89 probe time
    steps; it now takes its outputs from `compute_output_shape`, as Keras.)
25. "Simple custom layer example: Antirectifier" (keras_recipes/
    antirectifier): a layer with `add_weight` in `build`, an in-place
    `inputs -= ops.mean(...)` on its input, and `get_config` with
    `initializers.serialize`; RMSprop, `validation_split`, equal configs and
    `serialize_keras_object` dicts, `.keras` files loaded by both with
    `custom_objects`; (added) a custom layer holding layers that it
    serializes with `serialize_keras_object` and rebuilds in `from_config`
    with `deserialize_keras_object`, each framework rebuilding the other's
    config.

Programs 26-28 are in test_port_kerasio_examples_8.py, 29-32 in _9.py.
"""

from __future__ import annotations

import numpy as np
import pytest

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
    greedy=True)[0][0]`, "for complex tasks, you can use beam search"), with
    `keras.ops` and beam search."""
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
        # the same texts, except where Keras's two best beams tie (to 1e-5: which one wins then depends
        # on float32 rounding, which differs between CPUs): then kerasish's text is one of the tied two
        top2 = keras_ref.ops.ctc_decode(keras_ref.ops.log(pred), np.full(len(pred), pred.shape[1]),
                                        strategy="beam_search", beam_width=4, top_paths=2, mask_index=output_dim)
        paths = keras_ref.ops.convert_to_numpy(top2[0])
        top2_scores = keras_ref.ops.convert_to_numpy(top2[1])
        for i, (text, text_by_keras) in enumerate(zip(texts, texts_by_keras)):
            if text != text_by_keras:
                assert abs(top2_scores[i, 0] - top2_scores[i, 1]) < 1e-5, (i, text, text_by_keras, top2_scores[i])
                assert text in ["".join(_CHARS[c] for c in paths[k][i] if c >= 0) for k in range(2)]
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
