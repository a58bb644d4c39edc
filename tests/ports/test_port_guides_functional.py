"""keras.io developer guide "The Functional API" (guides/functional_api.py),
shrunk to small sizes, run with real Keras 3 (torch backend) and kerasish.

What the guide prints or relies on is compared: `model.summary()` text,
layer names and order, output shapes, History of `fit` with
`validation_split`, multi-input/multi-output training with list and dict
losses and `loss_weights`, feature extraction from `layer.output`, configs of
a custom layer and the weight paths of layers made with unnamed `add_weight`.
Weights are drawn once and copied into both; data is generated here.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import kerasish as keras
from tests.ports.test_port_programs import assert_history
from tests.ports.test_port_programs import assert_same


@pytest.fixture(autouse=True)
def _fresh_keras_names(keras_ref):
    """Both sides start from fresh name counters (the guide's printed names)."""
    keras_ref.utils.clear_session()


def _summary(model, **kwargs):
    lines = []
    model.summary(print_fn=lambda s, *a, **k: lines.append(s), **kwargs)
    return "\n".join(lines).splitlines()


def _draw_weights(model, scale=0.2):
    return [np.random.default_rng(i).normal(0, scale, w.shape).astype("float32")
            for i, w in enumerate(model.get_weights())]


# ------------------------------------------------- intro, autoencoder, nesting
def _mnist_model(K):
    inputs = K.Input(shape=(784,))
    x = K.layers.Dense(64, activation="relu")(inputs)
    x = K.layers.Dense(64, activation="relu")(x)
    outputs = K.layers.Dense(10)(x)
    return inputs, K.Model(inputs=inputs, outputs=outputs, name="mnist_model")


def _nested_autoencoder(K):
    encoder_input = K.Input(shape=(28, 28, 1), name="original_img")
    x = K.layers.Conv2D(16, 3, activation="relu")(encoder_input)
    x = K.layers.MaxPooling2D(3)(x)
    x = K.layers.Conv2D(16, 3, activation="relu")(x)
    encoder_output = K.layers.GlobalMaxPooling2D()(x)
    encoder = K.Model(encoder_input, encoder_output, name="encoder")
    decoder_input = K.Input(shape=(16,), name="encoded_img")
    x = K.layers.Reshape((4, 4, 1))(decoder_input)
    x = K.layers.Conv2DTranspose(16, 3, activation="relu")(x)
    x = K.layers.UpSampling2D(3)(x)
    decoder_output = K.layers.Conv2DTranspose(1, 3, activation="relu")(x)
    decoder = K.Model(decoder_input, decoder_output, name="decoder")
    autoencoder_input = K.Input(shape=(28, 28, 1), name="img")
    decoded_img = decoder(encoder(autoencoder_input))
    return K.Model(autoencoder_input, decoded_img, name="autoencoder")


def test_intro_and_nested_models_summaries(keras_ref):
    (ref_in, ref), (our_in, ours) = _mnist_model(keras_ref), _mnist_model(keras)
    assert tuple(our_in.shape) == tuple(ref_in.shape) == (None, 784)
    assert str(our_in.dtype) == str(ref_in.dtype)
    assert _summary(ours) == _summary(ref)
    ref_ae, our_ae = _nested_autoencoder(keras_ref), _nested_autoencoder(keras)
    assert [layer.name for layer in our_ae.layers] == [layer.name for layer in ref_ae.layers]
    assert _summary(our_ae) == _summary(ref_ae)
    assert _summary(our_ae, expand_nested=True, show_trainable=True) == _summary(
        ref_ae, expand_nested=True, show_trainable=True
    )
    our_ae.set_weights(ref_ae.get_weights())
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    assert_same(our_ae.predict(x, verbose=0), ref_ae.predict(x, verbose=0))


def _ensemble(K):
    def get_model():
        inputs = K.Input(shape=(16,))
        return K.Model(inputs, K.layers.Dense(1)(inputs))

    models = [get_model() for _ in range(3)]
    inputs = K.Input(shape=(16,))
    outputs = K.layers.average([m(inputs) for m in models])
    return K.Model(inputs=inputs, outputs=outputs)


def test_ensembling_models(keras_ref):
    ref, ours = _ensemble(keras_ref), _ensemble(keras)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in ref.layers]
    assert _summary(ours) == _summary(ref)
    ours.set_weights(ref.get_weights())
    x = np.random.default_rng(1).random((4, 16)).astype("float32")
    assert_same(ours(x), ref(x))


# ------------------------------------------------ multiple inputs and outputs
def _ticket_model(K):
    num_tags, num_words, num_departments = 12, 100, 4
    title_input = K.Input(shape=(None,), name="title")
    body_input = K.Input(shape=(None,), name="body")
    tags_input = K.Input(shape=(num_tags,), name="tags")
    title_features = K.layers.LSTM(8)(K.layers.Embedding(num_words, 8)(title_input))
    body_features = K.layers.LSTM(4)(K.layers.Embedding(num_words, 8)(body_input))
    x = K.layers.concatenate([title_features, body_features, tags_input])
    priority_pred = K.layers.Dense(1, name="priority")(x)
    department_pred = K.layers.Dense(num_departments, name="department")(x)
    return K.Model(
        inputs=[title_input, body_input, tags_input],
        outputs={"priority": priority_pred, "department": department_pred},
    )


def _ticket_program(K, weights, data):
    # the guide's list of losses follows the flattened (sorted-key) outputs: BCE goes to
    # "department" and CCE to "priority"; both frameworks warn about the latter alike
    model = _ticket_model(K)
    model.set_weights(weights)
    inputs, targets = data
    out = {"summary": _summary(model), "layers": [layer.name for layer in model.layers]}
    model.compile(
        optimizer=K.optimizers.RMSprop(1e-3),
        loss=[K.losses.BinaryCrossentropy(from_logits=True), K.losses.CategoricalCrossentropy(from_logits=True)],
        loss_weights=[1.0, 0.2],
    )
    out["list"] = model.fit(inputs, targets, epochs=2, batch_size=8, verbose=0, shuffle=False)
    model.compile(
        optimizer=K.optimizers.RMSprop(1e-3),
        loss={
            "priority": K.losses.BinaryCrossentropy(from_logits=True),
            "department": K.losses.CategoricalCrossentropy(from_logits=True),
        },
        loss_weights={"priority": 1.0, "department": 0.2},
    )
    out["dict"] = model.fit(inputs, targets, epochs=2, batch_size=8, verbose=0, shuffle=False)
    out["evaluate"] = model.evaluate(inputs, targets, verbose=0, return_dict=True)
    out["predict"] = model.predict(inputs, verbose=0)
    return out


def test_multiple_inputs_and_outputs(keras_ref):
    rng = np.random.default_rng(0)
    inputs = {
        "title": rng.integers(0, 100, (16, 5)),
        "body": rng.integers(0, 100, (16, 6)),
        "tags": rng.integers(0, 2, (16, 12)).astype("float32"),
    }
    targets = {
        "priority": rng.random((16, 1)).astype("float32"),
        "department": rng.integers(0, 2, (16, 4)).astype("float32"),
    }
    weights = _draw_weights(_ticket_model(keras_ref))
    keras_ref.utils.clear_session()
    ref = _ticket_program(keras_ref, weights, (inputs, targets))
    ours = _ticket_program(keras, weights, (inputs, targets))
    assert ours["summary"] == ref["summary"]
    assert ours["layers"] == ref["layers"]
    assert_history(ours["list"], ref["list"])
    assert_history(ours["dict"], ref["dict"])
    assert_same(ours["evaluate"], ref["evaluate"])
    assert_same(ours["predict"], ref["predict"])


# --------------------------------------------------------------- toy ResNet
def _toy_resnet(K):
    layers = K.layers
    inputs = K.Input(shape=(16, 16, 3), name="img")
    x = layers.Conv2D(8, 3, activation="relu")(inputs)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    block_1_output = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(block_1_output)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    block_2_output = layers.add([x, block_1_output])
    x = layers.Conv2D(16, 3, activation="relu")(block_2_output)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.Dropout(0.0)(x)
    outputs = layers.Dense(10)(x)
    return K.Model(inputs, outputs, name="toy_resnet")


def test_toy_resnet_fit_with_validation_split(keras_ref):
    rng = np.random.default_rng(0)
    x_train = rng.random((30, 16, 16, 3)).astype("float32")
    labels = rng.integers(0, 10, 30)
    ref, ours = _toy_resnet(keras_ref), _toy_resnet(keras)
    assert _summary(ours) == _summary(ref)
    weights = _draw_weights(ref, 0.1)
    histories = []
    for K, model in ((keras_ref, ref), (keras, ours)):
        model.set_weights(weights)
        y_train = K.utils.to_categorical(labels, 10)
        model.compile(
            optimizer=K.optimizers.RMSprop(1e-3),
            loss=K.losses.CategoricalCrossentropy(from_logits=True),
            metrics=["acc"],
        )
        histories.append(model.fit(x_train, y_train, batch_size=8, epochs=2, validation_split=0.2, verbose=0,
                                   shuffle=False))
    assert_history(histories[1], histories[0])


# -------------------------------------------- shared layers, feature extraction
def test_shared_embedding_and_feature_extraction(keras_ref):
    def shared(K):
        shared_embedding = K.layers.Embedding(1000, 8)
        text_input_a = K.Input(shape=(None,), dtype="int32")
        text_input_b = K.Input(shape=(None,), dtype="int32")
        model = K.Model([text_input_a, text_input_b], [shared_embedding(text_input_a), shared_embedding(text_input_b)])
        return model, text_input_a

    (ref, ref_in), (ours, our_in) = shared(keras_ref), shared(keras)
    assert str(our_in.dtype) == str(ref_in.dtype) == "int32"
    assert len(ours.weights) == len(ref.weights) == 1
    assert _summary(ours) == _summary(ref)

    def extractor(K):
        base = K.Sequential([
            K.Input(shape=(13, 13, 3)),
            K.layers.Conv2D(4, 3, strides=2, activation="relu"),
            K.layers.Conv2D(4, 3, activation="relu", name="my_intermediate_layer"),
            K.layers.Conv2D(4, 3, activation="relu"),
        ])
        all_features = K.Model(inputs=base.inputs, outputs=[layer.output for layer in base.layers])
        one = K.Model(inputs=base.inputs, outputs=base.get_layer(name="my_intermediate_layer").output)
        return base, all_features, one

    ref_base, ref_all, ref_one = extractor(keras_ref)
    our_base, our_all, our_one = extractor(keras)
    our_base.set_weights(ref_base.get_weights())
    x = np.random.default_rng(2).random((2, 13, 13, 3)).astype("float32")
    assert [layer.name for layer in our_all.layers] == [layer.name for layer in ref_all.layers]
    assert_same(our_all(x), ref_all(x))
    assert_same(our_one(x), ref_one(x))


# ------------------------------------------------------- custom layer config
def _custom_dense_class(K):
    class CustomDense(K.layers.Layer):
        def __init__(self, units=32):
            super().__init__()
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal", trainable=True)
            self.b = self.add_weight(shape=(self.units,), initializer="random_normal", trainable=True)

        def call(self, inputs):
            return K.ops.matmul(inputs, self.w) + self.b

        def get_config(self):
            return {"units": self.units}

    return CustomDense


def test_custom_layer_config_round_trip_and_weight_paths(keras_ref):
    """Unnamed `add_weight`s get distinct names from one counter ("variable",
    "variable_1", ...), as Keras's `auto_name`: kerasish named them all
    "variable", so a layer's two weights shared one path."""
    results = []
    for K in (keras_ref, keras):
        CustomDense = _custom_dense_class(K)
        inputs = K.Input((4,))
        model = K.Model(inputs, CustomDense(10)(inputs))
        config = model.get_config()
        # Keras's from_config consumes the dict it is given
        new_model = K.Model.from_config(copy.deepcopy(config), custom_objects={"CustomDense": CustomDense})
        results.append((model, new_model, config))
    (ref, ref_new, ref_config), (ours, our_new, our_config) = results
    assert our_config == ref_config
    assert [w.path for w in ours.weights] == [w.path for w in ref.weights]
    assert [w.path for w in our_new.weights] == [w.path for w in ref_new.weights]
    assert len({w.path for w in our_new.weights}) == 2
    our_new.set_weights(ref_new.get_weights())
    x = np.random.default_rng(3).random((2, 4)).astype("float32")
    assert_same(our_new(x), ref_new(x))


def test_unnamed_variables_take_keras_auto_names(keras_ref):
    def names(K):
        a, b = K.Variable(np.zeros(3)), K.Variable(np.zeros(3))

        class L(K.layers.Layer):
            def __init__(self):
                super().__init__()
                self.w0 = self.add_weight(shape=(2,))

            def build(self, shape):
                self.w1 = self.add_weight(shape=(2,))
                self.w2 = self.add_weight(shape=(2,), name="kernel")

        layer = L()
        layer.build((2,))
        return [a.name, b.name, a.path, b.path] + [(w.name, w.path) for w in layer.weights]

    keras_ref.utils.clear_session()
    assert names(keras) == names(keras_ref)
    # the torch-side keys stay what the attributes say, not the Keras names
    keras.utils.clear_session()

    class M(keras.layers.Layer):
        def build(self, shape):
            self.add_weight(shape=(2,))
            self.add_weight(shape=(2,))

    m = M()
    m.build((2,))
    assert list(m.state_dict()) == ["variable", "variable_1"]
    assert [w.name for w in m.weights] == ["variable", "variable_1"]


# -------------------------------- subclassed layer holding a functional model
def test_functional_model_inside_a_custom_rnn(keras_ref):
    def program(K):
        units, timesteps, input_dim = 8, 5, 3
        inputs = K.Input((None, units))
        x = K.layers.GlobalAveragePooling1D()(inputs)
        classifier = K.Model(inputs, K.layers.Dense(1)(x))

        class CustomRNN(K.layers.Layer):
            def __init__(self):
                super().__init__()
                self.units = units
                self.projection_1 = K.layers.Dense(units=units, activation="tanh")
                self.projection_2 = K.layers.Dense(units=units, activation="tanh")
                self.classifier = classifier

            def call(self, inputs):
                outputs = []
                state = K.ops.zeros(shape=(inputs.shape[0], self.units))
                for t in range(inputs.shape[1]):
                    y = self.projection_1(inputs[:, t, :]) + self.projection_2(state)
                    state = y
                    outputs.append(y)
                return self.classifier(K.ops.stack(outputs, axis=1))

        inputs = K.Input(batch_shape=(1, timesteps, input_dim))
        x = K.layers.Conv1D(units, 3)(inputs)
        return K.Model(inputs, CustomRNN()(x))

    ref, ours = program(keras_ref), program(keras)
    assert _summary(ours) == _summary(ref)
    ours.set_weights(ref.get_weights())
    x = np.random.default_rng(4).random((1, 5, 3)).astype("float32")
    assert_same(ours(x), ref(x))
