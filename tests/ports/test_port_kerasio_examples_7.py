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
    lines.
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
