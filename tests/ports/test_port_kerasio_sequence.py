"""keras.io examples (Keras 3, backend-agnostic versions), text and
sequence models, ported as a user would: the example's model/layer/training
code, only the import changed (the same builder runs once with real Keras 3
on torch, once with kerasish), small deterministic synthetic data, shrunk
sizes. Both runs start from the same weights (get_weights/set_weights) and
see the same batches (shuffle=False).

Keras 3's string layers (TextVectorization, StringLookup, IntegerLookup)
need TensorFlow, which this environment does not have: where an example
uses them, the lookups run in kerasish only and are checked against the
vocabulary Keras documents; the numeric model is compared with Keras.
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

TEXT = (
    "the cat sat on the mat. the dog ate the cat food. a bird sang on the tree and the cat watched the bird. "
    "then the dog barked at the bird and the bird flew away from the tree. "
)


# ------------------- 8. "Character-level text generation with LSTM"
def test_character_level_text_generation_lstm(keras_ref):
    text = TEXT.lower()
    chars = sorted(list(set(text)))
    char_indices = dict((c, i) for i, c in enumerate(chars))
    indices_char = dict((i, c) for i, c in enumerate(chars))

    maxlen = 10
    step = 6
    sentences = []
    next_chars = []
    for i in range(0, len(text) - maxlen, step):
        sentences.append(text[i : i + maxlen])
        next_chars.append(text[i + maxlen])

    x = np.zeros((len(sentences), maxlen, len(chars)), dtype="bool")
    y = np.zeros((len(sentences), len(chars)), dtype="bool")
    for i, sentence in enumerate(sentences):
        for t, char in enumerate(sentence):
            x[i, t, char_indices[char]] = 1
        y[i, char_indices[next_chars[i]]] = 1

    def build(keras):
        layers = keras.layers
        model = keras.Sequential(
            [
                keras.Input(shape=(maxlen, len(chars))),
                layers.LSTM(16),
                layers.Dense(len(chars), activation="softmax"),
            ]
        )
        optimizer = keras.optimizers.RMSprop(learning_rate=0.01)
        model.compile(loss="categorical_crossentropy", optimizer=optimizer)
        return model

    def sample(preds, rng, temperature=1.0):
        preds = np.asarray(preds).astype("float64")
        preds = np.log(preds) / temperature
        exp_preds = np.exp(preds)
        preds = exp_preds / np.sum(exp_preds)
        probas = rng.multinomial(1, preds, 1)
        return np.argmax(probas)

    ref, ours = build(keras_ref), build(kerasish)
    copy_weights(ours, ref)
    generated = {}
    histories = {}
    for name, model in (("ref", ref), ("ours", ours)):
        rng = np.random.default_rng(7)  # the example's np.random, seeded
        histories[name] = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        start_index = 3
        sentence = text[start_index : start_index + maxlen]
        out = ""
        for i in range(8):
            x_pred = np.zeros((1, maxlen, len(chars)))
            for t, char in enumerate(sentence):
                x_pred[0, t, char_indices[char]] = 1.0
            preds = model.predict(x_pred, verbose=0)[0]
            next_index = sample(preds, rng, 0.5)
            next_char = indices_char[next_index]
            sentence = sentence[1:] + next_char
            out += next_char
        generated[name] = out
    assert_history(histories["ours"], histories["ref"], rtol=1e-4, atol=1e-5)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    assert generated["ours"] == generated["ref"]
    assert_same(ours.predict(x, verbose=0), ref.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
    assert_same(ours.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0), rtol=1e-4, atol=1e-5)


# ----------------- 9. "Character-level recurrent sequence-to-sequence model"
def test_lstm_seq2seq_with_encoder_states(keras_ref, tmp_path):
    input_texts = ["go.", "hi.", "run!", "wow!", "fire!", "help!", "stop!", "wait!", "go on.", "hello!"]
    target_texts = ["va !", "salut !", "cours !", "ça alors !", "au feu !", "à l'aide !", "arrête !", "attends !",
                    "poursuis.", "bonjour !"]
    target_texts = ["\t" + t + "\n" for t in target_texts]
    input_characters = sorted(set("".join(input_texts)))
    target_characters = sorted(set("".join(target_texts)))
    num_encoder_tokens = len(input_characters)
    num_decoder_tokens = len(target_characters)
    max_encoder_seq_length = max([len(txt) for txt in input_texts])
    max_decoder_seq_length = max([len(txt) for txt in target_texts])
    latent_dim = 8

    input_token_index = dict([(char, i) for i, char in enumerate(input_characters)])
    target_token_index = dict([(char, i) for i, char in enumerate(target_characters)])

    encoder_input_data = np.zeros((len(input_texts), max_encoder_seq_length, num_encoder_tokens), dtype="float32")
    decoder_input_data = np.zeros((len(input_texts), max_decoder_seq_length, num_decoder_tokens), dtype="float32")
    decoder_target_data = np.zeros((len(input_texts), max_decoder_seq_length, num_decoder_tokens), dtype="float32")
    for i, (input_text, target_text) in enumerate(zip(input_texts, target_texts)):
        for t, char in enumerate(input_text):
            encoder_input_data[i, t, input_token_index[char]] = 1.0
        encoder_input_data[i, t + 1 :, input_token_index[" "]] = 1.0
        for t, char in enumerate(target_text):
            decoder_input_data[i, t, target_token_index[char]] = 1.0
            if t > 0:
                decoder_target_data[i, t - 1, target_token_index[char]] = 1.0
        decoder_input_data[i, t + 1 :, target_token_index[" "]] = 1.0
        decoder_target_data[i, t:, target_token_index[" "]] = 1.0

    def build(keras):
        encoder_inputs = keras.Input(shape=(None, num_encoder_tokens))
        encoder = keras.layers.LSTM(latent_dim, return_state=True)
        encoder_outputs, state_h, state_c = encoder(encoder_inputs)
        encoder_states = [state_h, state_c]
        decoder_inputs = keras.Input(shape=(None, num_decoder_tokens))
        decoder_lstm = keras.layers.LSTM(latent_dim, return_sequences=True, return_state=True)
        decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
        decoder_dense = keras.layers.Dense(num_decoder_tokens, activation="softmax")
        decoder_outputs = decoder_dense(decoder_outputs)
        model = keras.Model([encoder_inputs, decoder_inputs], decoder_outputs)
        model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    def inference_models(keras, path):
        model = keras.models.load_model(path)
        encoder_inputs = model.input[0]  # input_1
        encoder_outputs, state_h_enc, state_c_enc = model.layers[2].output  # lstm_1
        encoder_states = [state_h_enc, state_c_enc]
        encoder_model = keras.Model(encoder_inputs, encoder_states)

        decoder_inputs = model.input[1]  # input_2
        decoder_state_input_h = keras.Input(shape=(latent_dim,))
        decoder_state_input_c = keras.Input(shape=(latent_dim,))
        decoder_states_inputs = [decoder_state_input_h, decoder_state_input_c]
        decoder_lstm = model.layers[3]
        decoder_outputs, state_h_dec, state_c_dec = decoder_lstm(decoder_inputs, initial_state=decoder_states_inputs)
        decoder_states = [state_h_dec, state_c_dec]
        decoder_dense = model.layers[4]
        decoder_outputs = decoder_dense(decoder_outputs)
        decoder_model = keras.Model([decoder_inputs] + decoder_states_inputs, [decoder_outputs] + decoder_states)
        return encoder_model, decoder_model

    reverse_target_char_index = dict((i, char) for char, i in target_token_index.items())

    def decode_sequence(input_seq, encoder_model, decoder_model):
        states_value = encoder_model.predict(input_seq, verbose=0)
        target_seq = np.zeros((1, 1, num_decoder_tokens))
        target_seq[0, 0, target_token_index["\t"]] = 1.0
        stop_condition = False
        decoded_sentence = ""
        while not stop_condition:
            output_tokens, h, c = decoder_model.predict([target_seq] + states_value, verbose=0)
            sampled_token_index = np.argmax(output_tokens[0, -1, :])
            sampled_char = reverse_target_char_index[sampled_token_index]
            decoded_sentence += sampled_char
            if sampled_char == "\n" or len(decoded_sentence) > max_decoder_seq_length:
                stop_condition = True
            target_seq = np.zeros((1, 1, num_decoder_tokens))
            target_seq[0, 0, sampled_token_index] = 1.0
            states_value = [h, c]
        return decoded_sentence

    ref, ours = build(keras_ref), build(kerasish)
    copy_weights(ours, ref)
    histories, decoded, states = [], [], []
    for name, keras, model in (("ref", keras_ref, ref), ("ours", kerasish, ours)):
        histories.append(model.fit([encoder_input_data, decoder_input_data], decoder_target_data, batch_size=4,
                                   epochs=2, validation_split=0.2, shuffle=False, verbose=0))
        path = str(tmp_path / f"s2s_model_{name}.keras")
        model.save(path)
        encoder_model, decoder_model = inference_models(keras, path)
        states.append(encoder_model.predict(encoder_input_data, verbose=0))
        decoded.append([decode_sequence(encoder_input_data[i : i + 1], encoder_model, decoder_model)
                        for i in range(3)])
    assert_history(histories[1], histories[0], rtol=1e-4, atol=1e-5)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    assert_same(states[1], states[0], rtol=1e-4, atol=1e-6)
    assert decoded[1] == decoded[0]
    x = [encoder_input_data, decoder_input_data]
    assert_same(ours.predict(x, verbose=0), ref.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
    assert_same(ours.evaluate(x, decoder_target_data, verbose=0), ref.evaluate(x, decoder_target_data, verbose=0),
                rtol=1e-4, atol=1e-5)


# ----------- 10. "Sequence to sequence learning for performing number addition"
def test_addition_rnn(keras_ref):
    class CharacterTable:
        def __init__(self, chars):
            self.chars = sorted(set(chars))
            self.char_indices = dict((c, i) for i, c in enumerate(self.chars))
            self.indices_char = dict((i, c) for i, c in enumerate(self.chars))

        def encode(self, C, num_rows):
            x = np.zeros((num_rows, len(self.chars)))
            for i, c in enumerate(C):
                x[i, self.char_indices[c]] = 1
            return x

        def decode(self, x, calc_argmax=True):
            if calc_argmax:
                x = x.argmax(axis=-1)
            return "".join(self.indices_char[x] for x in x)

    TRAINING_SIZE = 32
    DIGITS = 2
    REVERSE = True
    MAXLEN = DIGITS + 1 + DIGITS
    chars = "0123456789+ "
    ctable = CharacterTable(chars)

    rng = np.random.default_rng(8)
    questions, expected, seen = [], [], set()
    while len(questions) < TRAINING_SIZE:
        f = lambda: int(  # noqa: E731
            "".join(rng.choice(list("0123456789")) for i in range(rng.integers(1, DIGITS + 1)))
        )
        a, b = f(), f()
        key = tuple(sorted((a, b)))
        if key in seen:
            continue
        seen.add(key)
        q = "{}+{}".format(a, b)
        query = q + " " * (MAXLEN - len(q))
        ans = str(a + b)
        ans += " " * (DIGITS + 1 - len(ans))
        if REVERSE:
            query = query[::-1]
        questions.append(query)
        expected.append(ans)

    x = np.zeros((len(questions), MAXLEN, len(chars)), dtype=bool)
    y = np.zeros((len(questions), DIGITS + 1, len(chars)), dtype=bool)
    for i, sentence in enumerate(questions):
        x[i] = ctable.encode(sentence, MAXLEN)
    for i, sentence in enumerate(expected):
        y[i] = ctable.encode(sentence, DIGITS + 1)
    split_at = len(x) - len(x) // 4
    (x_train, x_val) = x[:split_at], x[split_at:]
    (y_train, y_val) = y[:split_at], y[split_at:]

    def build(keras):
        layers = keras.layers
        num_layers = 1
        model = keras.Sequential()
        model.add(layers.Input((MAXLEN, len(chars))))
        model.add(layers.LSTM(16))
        model.add(layers.RepeatVector(DIGITS + 1))
        for _ in range(num_layers):
            model.add(layers.LSTM(16, return_sequences=True))
        model.add(layers.Dense(len(chars), activation="softmax"))
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        return model

    ref, ours = build(keras_ref), build(kerasish)
    copy_weights(ours, ref)
    histories, guesses = [], []
    for model in (ref, ours):
        h = None
        for epoch in range(1, 3):
            h = model.fit(x_train, y_train, batch_size=8, epochs=1, validation_data=(x_val, y_val),
                          shuffle=False, verbose=0)
            histories.append(h.history)
            rowx = x_val[:3]
            preds = np.argmax(model.predict(rowx, verbose=0), axis=-1)
            guesses.append([ctable.decode(p, calc_argmax=False) for p in preds])
    n = len(histories) // 2
    for a, b in zip(histories[n:], histories[:n]):
        assert sorted(a) == sorted(b)
        for key in b:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5, err_msg=key)
    assert guesses[n:] == guesses[:n]
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    assert_same(ours.predict(x_val, verbose=0), ref.predict(x_val, verbose=0), rtol=1e-4, atol=1e-6)
    assert_same(ours.evaluate(x_val, y_val, verbose=0), ref.evaluate(x_val, y_val, verbose=0), rtol=1e-4, atol=1e-5)


# ---- 11. "English-to-Spanish translation with a sequence-to-sequence Transformer"
def _nmt(keras, sequence_length, vocab_size, embed_dim=8, latent_dim=16, num_heads=2):
    ops, layers = keras.ops, keras.layers

    class TransformerEncoder(layers.Layer):
        def __init__(self, embed_dim, dense_dim, num_heads, **kwargs):
            super().__init__(**kwargs)
            self.embed_dim = embed_dim
            self.dense_dim = dense_dim
            self.num_heads = num_heads
            self.attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.dense_proj = keras.Sequential(
                [
                    layers.Dense(dense_dim, activation="relu"),
                    layers.Dense(embed_dim),
                ]
            )
            self.layernorm_1 = layers.LayerNormalization()
            self.layernorm_2 = layers.LayerNormalization()
            self.supports_masking = True

        def call(self, inputs, mask=None):
            if mask is not None:
                padding_mask = ops.cast(mask[:, None, :], dtype="int32")
            else:
                padding_mask = None

            attention_output = self.attention(query=inputs, value=inputs, key=inputs, attention_mask=padding_mask)
            proj_input = self.layernorm_1(inputs + attention_output)
            proj_output = self.dense_proj(proj_input)
            return self.layernorm_2(proj_input + proj_output)

        def get_config(self):
            config = super().get_config()
            config.update({"embed_dim": self.embed_dim, "dense_dim": self.dense_dim, "num_heads": self.num_heads})
            return config

    class PositionalEmbedding(layers.Layer):
        def __init__(self, sequence_length, vocab_size, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.token_embeddings = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.position_embeddings = layers.Embedding(input_dim=sequence_length, output_dim=embed_dim)
            self.sequence_length = sequence_length
            self.vocab_size = vocab_size
            self.embed_dim = embed_dim

        def call(self, inputs):
            length = ops.shape(inputs)[-1]
            positions = ops.arange(0, length, 1)
            embedded_tokens = self.token_embeddings(inputs)
            embedded_positions = self.position_embeddings(positions)
            return embedded_tokens + embedded_positions

        def compute_mask(self, inputs, mask=None):
            return ops.not_equal(inputs, 0)

        def get_config(self):
            config = super().get_config()
            config.update(
                {"sequence_length": self.sequence_length, "vocab_size": self.vocab_size, "embed_dim": self.embed_dim}
            )
            return config

    class TransformerDecoder(layers.Layer):
        def __init__(self, embed_dim, latent_dim, num_heads, **kwargs):
            super().__init__(**kwargs)
            self.embed_dim = embed_dim
            self.latent_dim = latent_dim
            self.num_heads = num_heads
            self.attention_1 = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.attention_2 = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.dense_proj = keras.Sequential(
                [
                    layers.Dense(latent_dim, activation="relu"),
                    layers.Dense(embed_dim),
                ]
            )
            self.layernorm_1 = layers.LayerNormalization()
            self.layernorm_2 = layers.LayerNormalization()
            self.layernorm_3 = layers.LayerNormalization()
            self.supports_masking = True

        def call(self, inputs, mask=None):
            inputs, encoder_outputs = inputs
            causal_mask = self.get_causal_attention_mask(inputs)

            if mask is None:
                inputs_padding_mask, encoder_outputs_padding_mask = None, None
            else:
                inputs_padding_mask, encoder_outputs_padding_mask = mask

            attention_output_1 = self.attention_1(
                query=inputs,
                value=inputs,
                key=inputs,
                attention_mask=causal_mask,
                query_mask=inputs_padding_mask,
            )
            out_1 = self.layernorm_1(inputs + attention_output_1)

            attention_output_2 = self.attention_2(
                query=out_1,
                value=encoder_outputs,
                key=encoder_outputs,
                query_mask=inputs_padding_mask,
                key_mask=encoder_outputs_padding_mask,
            )
            out_2 = self.layernorm_2(out_1 + attention_output_2)

            proj_output = self.dense_proj(out_2)
            return self.layernorm_3(out_2 + proj_output)

        def get_causal_attention_mask(self, inputs):
            input_shape = ops.shape(inputs)
            batch_size, sequence_length = input_shape[0], input_shape[1]
            i = ops.arange(sequence_length)[:, None]
            j = ops.arange(sequence_length)
            mask = ops.cast(i >= j, dtype="int32")
            mask = ops.reshape(mask, (1, input_shape[1], input_shape[1]))
            mult = ops.concatenate(
                [ops.expand_dims(batch_size, -1), ops.convert_to_tensor([1, 1])],
                axis=0,
            )
            return ops.tile(mask, mult)

        def get_config(self):
            config = super().get_config()
            config.update({"embed_dim": self.embed_dim, "latent_dim": self.latent_dim, "num_heads": self.num_heads})
            return config

    encoder_inputs = keras.Input(shape=(None,), dtype="int64", name="encoder_inputs")
    x = PositionalEmbedding(sequence_length, vocab_size, embed_dim)(encoder_inputs)
    encoder_outputs = TransformerEncoder(embed_dim, latent_dim, num_heads)(x)
    encoder = keras.Model(encoder_inputs, encoder_outputs)

    decoder_inputs = keras.Input(shape=(None,), dtype="int64", name="decoder_inputs")
    encoded_seq_inputs = keras.Input(shape=(None, embed_dim), name="decoder_state_inputs")
    x = PositionalEmbedding(sequence_length, vocab_size, embed_dim)(decoder_inputs)
    x = TransformerDecoder(embed_dim, latent_dim, num_heads)([x, encoded_seq_inputs])
    x = layers.Dropout(0.5)(x)
    decoder_outputs = layers.Dense(vocab_size, activation="softmax")(x)
    decoder = keras.Model([decoder_inputs, encoded_seq_inputs], decoder_outputs)

    decoder_outputs = decoder([decoder_inputs, encoder_outputs])
    transformer = keras.Model(
        {"encoder_inputs": encoder_inputs, "decoder_inputs": decoder_inputs},
        decoder_outputs,
        name="transformer",
    )
    transformer.compile(
        "rmsprop",
        loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=0),
        metrics=["accuracy"],
    )
    return transformer, encoder, decoder


# the example passes `query_mask=` to MultiHeadAttention, which Keras 3
# ignores (the query's own mask is used); kerasish does the same and warns
@pytest.mark.filterwarnings("ignore:.*`query_mask` is ignored")
@pytest.mark.filterwarnings("ignore:.*does not support masking")
def test_nmt_transformer_with_causal_mask(keras_ref):
    vocab_size, sequence_length = 20, 8
    rng = np.random.default_rng(9)
    n = 16
    eng = np.zeros((n, sequence_length), dtype="int64")
    spa = np.zeros((n, sequence_length + 1), dtype="int64")
    for i in range(n):  # right-padded token ids, 0 = padding; 2 = [start], 3 = [end]
        le, ls = int(rng.integers(3, sequence_length + 1)), int(rng.integers(2, sequence_length - 1))
        eng[i, :le] = rng.integers(4, vocab_size, le)
        spa[i, 0] = 2
        spa[i, 1 : ls + 1] = rng.integers(4, vocab_size, ls)
        spa[i, ls + 1] = 3
    inputs = {"encoder_inputs": eng, "decoder_inputs": spa[:, :-1]}
    targets = spa[:, 1:]

    ref, enc_ref, dec_ref = _nmt(keras_ref, sequence_length, vocab_size)
    ours, enc_ours, dec_ours = _nmt(kerasish, sequence_length, vocab_size)
    copy_weights(ours, ref)
    # Dropout(0.5) as written: inference agrees
    assert_same(ours.predict(inputs, verbose=0), ref.predict(inputs, verbose=0), rtol=1e-4, atol=1e-6)
    assert_same(ours.evaluate(inputs, targets, verbose=0), ref.evaluate(inputs, targets, verbose=0),
                rtol=1e-4, atol=1e-5)
    # the encoder alone (padding mask from PositionalEmbedding.compute_mask)
    assert_same(enc_ours.predict(eng, verbose=0), enc_ref.predict(eng, verbose=0), rtol=1e-4, atol=1e-5)

    # training: Dropout set to 0 so that both runs are deterministic
    for model in (ref, ours):
        [lyr for lyr in model.layers[-1].layers if type(lyr).__name__ == "Dropout"][0].rate = 0.0
    h_ref = ref.fit(inputs, targets, batch_size=8, epochs=2, shuffle=False, verbose=0,
                    validation_data=(inputs, targets))
    h_ours = ours.fit(inputs, targets, batch_size=8, epochs=2, shuffle=False, verbose=0,
                      validation_data=(inputs, targets))
    # attention + RMSprop over 4 steps; accuracies are on 80-odd tokens
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-5)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-4)
    assert_same(ours.predict(inputs, verbose=0), ref.predict(inputs, verbose=0), rtol=1e-4, atol=1e-5)

    # the example's greedy decoding loop
    def decode_sequence(transformer, tokenized_input_sentence):
        decoded = [2]
        for i in range(sequence_length - 1):
            tokenized_target_sentence = np.zeros((1, sequence_length), dtype="int64")
            tokenized_target_sentence[0, : len(decoded)] = decoded
            predictions = transformer(
                {"encoder_inputs": tokenized_input_sentence, "decoder_inputs": tokenized_target_sentence}
            )
            sampled_token_index = int(np.argmax(np.asarray(predictions.detach().cpu())[0, i, :]))
            decoded.append(sampled_token_index)
            if sampled_token_index == 3:
                break
        return decoded

    for i in range(3):
        assert decode_sequence(ours, eng[i : i + 1]) == decode_sequence(ref, eng[i : i + 1])


# ------------------ 12. "Structured data classification from scratch"
HEART = {
    "age": [63, 67, 41, 56, 62, 57, 63, 53, 57, 56, 44, 52, 48, 54, 48, 49, 64, 58, 58, 60],
    "sex": [1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1],
    "cp": [1, 4, 2, 2, 4, 4, 4, 4, 4, 2, 2, 3, 2, 4, 3, 2, 1, 1, 2, 4],
    "thalach": [150, 108, 172, 178, 160, 163, 147, 155, 148, 153, 173, 172, 168, 160, 139, 171, 144, 162, 160, 142],
    "oldpeak": [2.3, 1.5, 1.4, 0.8, 3.6, 0.6, 1.4, 3.1, 0.4, 1.3, 0.0, 0.5, 1.6, 1.2, 0.2, 0.6, 1.8, 1.0, 1.8, 2.8],
    "thal": ["fixed", "normal", "normal", "normal", "normal", "normal", "reversible", "reversible", "normal",
             "normal", "reversible", "reversible", "fixed", "normal", "normal", "normal", "normal", "normal",
             "reversible", "reversible"],
    "target": [0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1],
}


def test_structured_data_classification_from_scratch(keras_ref):
    data = {k: np.asarray(v) for k, v in HEART.items()}
    labels = data.pop("target").astype("float32")
    n = len(labels)

    # --- preprocessing, as the example writes it, in kerasish (Keras's
    # lookup layers need TensorFlow): lookups in one_hot mode, Normalization
    # adapted on the training column
    def encode_numerical_feature(keras, name):
        normalizer = keras.layers.Normalization()
        normalizer.adapt(np.expand_dims(data[name].astype("float32"), -1))
        return normalizer

    def encode_categorical_feature(keras, name, is_string):
        lookup_class = keras.layers.StringLookup if is_string else keras.layers.IntegerLookup
        lookup = lookup_class(output_mode="one_hot")
        lookup.adapt(data[name])
        return lookup

    sex_lookup = encode_categorical_feature(kerasish, "sex", False)
    cp_lookup = encode_categorical_feature(kerasish, "cp", False)
    thal_lookup = encode_categorical_feature(kerasish, "thal", True)
    # Keras's vocabulary order: OOV token first, then by decreasing frequency
    assert sex_lookup.get_vocabulary() == [-1, 1, 0]
    assert cp_lookup.get_vocabulary() == [-1, 4, 2, 1, 3]
    assert thal_lookup.get_vocabulary() == ["[UNK]", "normal", "reversible", "fixed"]
    one_hot = {
        "sex": np.asarray(sex_lookup(data["sex"])),
        "cp": np.asarray(cp_lookup(data["cp"])),
        "thal": np.asarray(thal_lookup(data["thal"])),
    }
    assert one_hot["thal"].shape == (n, 4)
    np.testing.assert_array_equal(one_hot["thal"].argmax(-1), [3 if t == "fixed" else 1 if t == "normal" else 2
                                                                for t in data["thal"]])
    # the categorical index the lookups produced, so that Keras's side can
    # one-hot it with the backend-native CategoryEncoding
    indices = {k: v.argmax(-1).astype("int32")[:, None] for k, v in one_hot.items()}

    def build(keras):
        numeric = {name: keras.Input(shape=(1,), name=name) for name in ("age", "thalach", "oldpeak")}
        categorical = {name: keras.Input(shape=(1,), name=name, dtype="int32") for name in ("sex", "cp", "thal")}
        depth = {"sex": 3, "cp": 5, "thal": 4}
        encoded = [encode_numerical_feature(keras, name)(numeric[name]) for name in numeric]
        encoded += [keras.layers.CategoryEncoding(num_tokens=depth[name], output_mode="one_hot")(categorical[name])
                    for name in categorical]
        all_features = keras.layers.concatenate(encoded)
        x = keras.layers.Dense(8, activation="relu")(all_features)
        x = keras.layers.Dropout(0.5)(x)
        output = keras.layers.Dense(1, activation="sigmoid")(x)
        model = keras.Model({**numeric, **categorical}, output)
        model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        return model

    x = {name: data[name].astype("float32")[:, None] for name in ("age", "thalach", "oldpeak")}
    x.update(indices)
    ref, ours = build(keras_ref), build(kerasish)
    copy_weights(ours, ref)  # includes the adapted mean/variance/count
    # Dropout(0.5) as written: inference agrees
    assert_same(ours.predict(x, verbose=0), ref.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
    for model in (ref, ours):
        [lyr for lyr in model.layers if type(lyr).__name__ == "Dropout"][0].rate = 0.0
    h_ref = ref.fit(x, labels, batch_size=8, epochs=3, validation_data=(x, labels), shuffle=False, verbose=0)
    h_ours = ours.fit(x, labels, batch_size=8, epochs=3, validation_data=(x, labels), shuffle=False, verbose=0)
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-5)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    assert_same(ours.evaluate(x, labels, verbose=0), ref.evaluate(x, labels, verbose=0), rtol=1e-4, atol=1e-5)
    # the example's inference on one sample dict (batch of one)
    sample = {name: np.asarray([x[name][0]]) for name in x}
    p_ours = ours.predict(sample, verbose=0)
    p_ref = ref.predict(sample, verbose=0)
    assert_same(p_ours, p_ref, rtol=1e-4, atol=1e-6)


# -------------- 13. "Collaborative Filtering for Movie Recommendations"
def _recommender(keras, num_users, num_movies, embedding_size=4):
    ops, layers = keras.ops, keras.layers

    class RecommenderNet(keras.Model):
        def __init__(self, num_users, num_movies, embedding_size, **kwargs):
            super().__init__(**kwargs)
            self.num_users = num_users
            self.num_movies = num_movies
            self.embedding_size = embedding_size
            self.user_embedding = layers.Embedding(
                num_users,
                embedding_size,
                embeddings_initializer="he_normal",
                embeddings_regularizer=keras.regularizers.l2(1e-6),
            )
            self.user_bias = layers.Embedding(num_users, 1)
            self.movie_embedding = layers.Embedding(
                num_movies,
                embedding_size,
                embeddings_initializer="he_normal",
                embeddings_regularizer=keras.regularizers.l2(1e-6),
            )
            self.movie_bias = layers.Embedding(num_movies, 1)

        def call(self, inputs):
            user_vector = self.user_embedding(inputs[:, 0])
            user_bias = self.user_bias(inputs[:, 0])
            movie_vector = self.movie_embedding(inputs[:, 1])
            movie_bias = self.movie_bias(inputs[:, 1])
            dot_user_movie = ops.tensordot(user_vector, movie_vector, 2)
            # Add all the components (including bias)
            x = dot_user_movie + user_bias + movie_bias
            # The sigmoid activation forces the rating to between 0 and 1
            return ops.nn.sigmoid(x)

    model = RecommenderNet(num_users, num_movies, embedding_size)
    model.compile(
        loss=keras.losses.BinaryCrossentropy(),
        optimizer=keras.optimizers.Adam(learning_rate=0.001),
    )
    return model


def test_collaborative_filtering(keras_ref):
    rng = np.random.default_rng(10)
    num_users, num_movies = 7, 9
    x = np.stack([rng.integers(0, num_users, 40), rng.integers(0, num_movies, 40)], axis=1).astype("int64")
    min_rating, max_rating = 0.5, 5.0
    ratings = rng.integers(1, 11, 40) / 2.0
    y = ((ratings - min_rating) / (max_rating - min_rating)).astype("float32")
    train_indices = 32
    x_train, x_val, y_train, y_val = x[:train_indices], x[train_indices:], y[:train_indices], y[train_indices:]

    ref, ours = _recommender(keras_ref, num_users, num_movies), _recommender(kerasish, num_users, num_movies)
    ref(x_train[:2])  # subclassed models build on their first call
    ours(x_train[:2])
    copy_weights(ours, ref)
    h_ref = ref.fit(x=x_train, y=y_train, batch_size=8, epochs=2, verbose=0, shuffle=False,
                    validation_data=(x_val, y_val))
    h_ours = ours.fit(x=x_train, y=y_train, batch_size=8, epochs=2, verbose=0, shuffle=False,
                      validation_data=(x_val, y_val))
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-6)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-6)
    assert_same(ours.evaluate(x_val, y_val, verbose=0), ref.evaluate(x_val, y_val, verbose=0), rtol=1e-4, atol=1e-6)
    # the example's top-k recommendation for one user
    user_movie_array = np.hstack(([[3]] * num_movies, np.arange(num_movies)[:, None])).astype("int64")
    r_ours = ours.predict(user_movie_array, verbose=0).flatten()
    r_ref = ref.predict(user_movie_array, verbose=0).flatten()
    assert_same(r_ours, r_ref, rtol=1e-4, atol=1e-6)
    assert list(r_ours.argsort()[-3:][::-1]) == list(r_ref.argsort()[-3:][::-1])
