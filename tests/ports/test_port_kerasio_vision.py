"""keras.io examples (Keras 3, backend-agnostic versions), vision and
timeseries, ported as a user would: the model/layer/training code is the
example's own, only `import keras` became `import kerasish as keras` (here:
the same builder runs once with real Keras 3 on torch, once with kerasish),
the dataset is small deterministic synthetic data, sizes are shrunk.

Both runs start from the same weights (get_weights/set_weights) and see the
same batches (shuffle=False); History, final weights, evaluate() and
predict() are compared with the tolerances stated at each assertion.
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


@pytest.fixture(autouse=True)
def _seeded(keras_ref):
    """Keras's unseeded initializers draw from the global RNGs: seed them so
    that each run starts from the same weights (the float32 noise that the
    tolerances below allow for then does not vary from run to run)."""
    keras_ref.utils.set_random_seed(1337)


def assert_weights_bn(ours, ref, noise_atol, rtol=1e-4, atol=1e-5):
    """Final weights of a model whose conv layers feed BatchNormalization.

    Such a conv's bias has a zero gradient in exact arithmetic (BatchNorm
    subtracts the batch mean); Adam divides the float32 rounding noise by
    sqrt(v) and moves the bias by up to lr per step, in both frameworks,
    differently. Those biases and the BatchNorm moving means that track them
    are compared with `noise_atol` (lr x steps); every other weight with
    `rtol`/`atol`.
    """
    noisy, index = set(), 0
    layers = ref.layers
    for i, layer in enumerate(layers):
        names = [w.path.split("/")[-1] for w in layer.weights]
        feeds_bn = i + 1 < len(layers) and type(layers[i + 1]).__name__ == "BatchNormalization"
        for k, name in enumerate(names):
            if name == "moving_mean" or (name == "bias" and feeds_bn):
                noisy.add(index + k)
        index += len(names)
    a, b = ours.get_weights(), ref.get_weights()
    assert len(a) == len(b) == index
    for i, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=noise_atol if i in noisy else atol, err_msg=f"weight {i}")


# --------------------- 1. "Timeseries classification from scratch" (FCN)
def _fcn(keras, input_shape, num_classes):
    def make_model(input_shape):
        input_layer = keras.layers.Input(input_shape)

        conv1 = keras.layers.Conv1D(filters=8, kernel_size=3, padding="same")(input_layer)
        conv1 = keras.layers.BatchNormalization()(conv1)
        conv1 = keras.layers.ReLU()(conv1)

        conv2 = keras.layers.Conv1D(filters=8, kernel_size=3, padding="same")(conv1)
        conv2 = keras.layers.BatchNormalization()(conv2)
        conv2 = keras.layers.ReLU()(conv2)

        conv3 = keras.layers.Conv1D(filters=8, kernel_size=3, padding="same")(conv2)
        conv3 = keras.layers.BatchNormalization()(conv3)
        conv3 = keras.layers.ReLU()(conv3)

        gap = keras.layers.GlobalAveragePooling1D()(conv3)

        output_layer = keras.layers.Dense(num_classes, activation="softmax")(gap)

        return keras.models.Model(inputs=input_layer, outputs=output_layer)

    return make_model(input_shape)


def test_timeseries_classification_from_scratch(keras_ref, tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(40, 24)).astype("float32")
    y_train = np.where(x_train[:, :12].mean(axis=1) > 0, 1, -1)
    x_train = x_train.reshape((x_train.shape[0], x_train.shape[1], 1))
    y_train[y_train == -1] = 0
    num_classes = len(np.unique(y_train))

    models = [_fcn(keras, x_train.shape[1:], num_classes) for keras in (keras_ref, kerasish)]
    copy_weights(models[1], models[0])
    histories = []
    for name, keras, model in (("ref", keras_ref, models[0]), ("ours", kerasish, models[1])):
        callbacks = [
            keras.callbacks.ModelCheckpoint(
                str(tmp_path / f"best_model_{name}.keras"), save_best_only=True, monitor="val_loss"
            ),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=0.0001),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, verbose=0),
        ]
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        histories.append(
            model.fit(x_train, y_train, batch_size=8, epochs=4, callbacks=callbacks,
                      validation_split=0.2, shuffle=False, verbose=0)
        )
    ref, ours = models
    # BatchNorm + Adam over 12 steps: float32 summation order differs, and
    # val_loss reads the moving statistics, which carry the conv-bias noise
    # described below
    assert_history(histories[1], histories[0], rtol=1e-3, atol=1e-5)
    assert_weights_bn(ours, ref, noise_atol=1e-3)  # 12 Adam steps of lr 1e-3
    best_ref = keras_ref.models.load_model(str(tmp_path / "best_model_ref.keras"))
    best_ours = kerasish.models.load_model(str(tmp_path / "best_model_ours.keras"))
    assert_weights(best_ours, best_ref, rtol=1e-4, atol=1e-3)
    # inference reads (bias - moving_mean): the bias noise above shows up
    # in the probabilities at ~ lr x steps
    assert_same(best_ours.predict(x_train, verbose=0), best_ref.predict(x_train, verbose=0), rtol=1e-3, atol=1e-3)
    assert_same(ours.evaluate(x_train, y_train, verbose=0), ref.evaluate(x_train, y_train, verbose=0),
                rtol=1e-3, atol=1e-3)


# ------------- 2. "Image classification from scratch" (mini Xception)
def _xception_mini(keras, input_shape, num_classes, seed=1337):
    layers = keras.layers

    data_augmentation_layers = [
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.1, seed=seed + 1),
    ]

    def data_augmentation(images):
        for layer in data_augmentation_layers:
            images = layer(images)
        return images

    def make_model(input_shape, num_classes):
        inputs = keras.Input(shape=input_shape)

        # Entry block
        x = layers.Rescaling(1.0 / 255)(inputs)
        x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)

        previous_block_activation = x  # Set aside residual

        for size in [8, 16]:
            x = layers.Activation("relu")(x)
            x = layers.SeparableConv2D(size, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)

            x = layers.Activation("relu")(x)
            x = layers.SeparableConv2D(size, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)

            x = layers.MaxPooling2D(3, strides=2, padding="same")(x)

            # Project residual
            residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
            x = layers.add([x, residual])  # Add back residual
            previous_block_activation = x  # Set aside next residual

        x = layers.SeparableConv2D(24, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)

        x = layers.GlobalAveragePooling2D()(x)
        if num_classes == 2:
            units = 1
        else:
            units = num_classes

        x = layers.Dropout(0.25)(x)
        # We specify activation=None so as to return logits
        outputs = layers.Dense(units, activation=None)(x)
        return keras.Model(inputs, outputs)

    return data_augmentation, make_model(input_shape, num_classes)


def test_image_classification_from_scratch(keras_ref):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(16, 12, 12, 3)).astype("float32")
    labels = (images[..., 0].mean(axis=(1, 2)) > 127).astype("float32")
    _, ref = _xception_mini(keras_ref, (12, 12, 3), 2)
    _, ours = _xception_mini(kerasish, (12, 12, 3), 2)
    copy_weights(ours, ref)

    # The example maps `data_augmentation` over the dataset; random draws
    # are not Keras's bit for bit, so both models train on the same
    # (un-augmented) images here; the test below checks the standalone
    # call itself.
    x = images
    for keras, model in ((keras_ref, ref), (kerasish, ours)):
        model.compile(
            optimizer=keras.optimizers.Adam(3e-4),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[keras.metrics.BinaryAccuracy(name="acc")],
        )
    # Dropout(0.25) as written: inference agrees
    assert_same(ours.evaluate(x, labels, verbose=0), ref.evaluate(x, labels, verbose=0), rtol=1e-4, atol=1e-5)
    assert_same(ours.predict(x, verbose=0), ref.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    for model in (ref, ours):
        model.layers[-2].rate = 0.0  # deterministic training comparison
    h_ref = ref.fit(x, labels, epochs=2, batch_size=8, shuffle=False, verbose=0, validation_data=(x, labels))
    h_ours = ours.fit(x, labels, epochs=2, batch_size=8, shuffle=False, verbose=0, validation_data=(x, labels))
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-5)
    assert_weights_bn(ours, ref, noise_atol=1.2e-3)  # 4 Adam steps of lr 3e-4
    # inference reads (bias - moving_mean): that noise reaches the logits
    assert_same(ours.predict(x, verbose=0), ref.predict(x, verbose=0), rtol=1e-3, atol=1e-4)
    # inference: the example's score = float(keras.ops.sigmoid(predictions[0][0]))
    p_ours = float(kerasish.ops.sigmoid(ours.predict(x[:1], verbose=0)[0][0]))
    p_ref = float(keras_ref.ops.sigmoid(ref.predict(x[:1], verbose=0)[0][0]))
    assert abs(p_ours - p_ref) < 1e-4


def test_image_classification_from_scratch_augmentation_standalone(keras_ref):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(4, 12, 12, 3)).astype("float32")
    aug_ref, _ = _xception_mini(keras_ref, (12, 12, 3), 2)
    aug_ours, _ = _xception_mini(kerasish, (12, 12, 3), 2)
    assert not np.allclose(aug_ref(images).cpu().numpy(), images)  # Keras augments
    assert not np.allclose(aug_ours(images).cpu().numpy(), images)  # so does kerasish


# ----------------------- 3. "Convolutional autoencoder for image denoising"
def _denoiser(keras):
    layers = keras.layers
    input = layers.Input(shape=(8, 8, 1))

    # Encoder
    x = layers.Conv2D(4, (3, 3), activation="relu", padding="same")(input)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(4, (3, 3), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)

    # Decoder
    x = layers.Conv2DTranspose(4, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(4, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)

    # Autoencoder
    autoencoder = keras.Model(input, x)
    autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
    return autoencoder


def test_denoising_autoencoder(keras_ref):
    rng = np.random.default_rng(2)

    def preprocess(array):
        array = array.astype("float32") / 255.0
        array = np.reshape(array, (len(array), 8, 8, 1))
        return array

    def noise(array):
        noise_factor = 0.4
        noisy_array = array + noise_factor * rng.normal(loc=0.0, scale=1.0, size=array.shape)
        return np.clip(noisy_array, 0.0, 1.0).astype("float32")

    train_data = preprocess(rng.integers(0, 256, size=(24, 8, 8)))
    test_data = preprocess(rng.integers(0, 256, size=(8, 8, 8)))
    noisy_train_data, noisy_test_data = noise(train_data), noise(test_data)

    ref, ours = _denoiser(keras_ref), _denoiser(kerasish)
    copy_weights(ours, ref)
    histories = []
    for model in (ref, ours):
        # first: the autoencoder on clean data, then the denoising fit
        model.fit(x=train_data, y=train_data, epochs=1, batch_size=8, shuffle=False,
                  validation_data=(test_data, test_data), verbose=0)
        histories.append(model.fit(x=noisy_train_data, y=train_data, epochs=2, batch_size=8, shuffle=False,
                                   validation_data=(noisy_test_data, test_data), verbose=0))
    assert_history(histories[1], histories[0], rtol=1e-4, atol=1e-5)
    # Adam divides by sqrt(v): a weight whose gradient is ~0 (dead ReLUs)
    # moves by float32 noise / sqrt(noise), up to lr per step; seen once in
    # many runs at 2e-5 on the first kernel
    assert_weights(ours, ref, rtol=1e-3, atol=1e-4)
    assert_same(ours.evaluate(noisy_test_data, test_data, verbose=0),
                ref.evaluate(noisy_test_data, test_data, verbose=0), rtol=1e-4, atol=1e-5)
    assert_same(ours.predict(noisy_test_data, verbose=0), ref.predict(noisy_test_data, verbose=0),
                rtol=1e-4, atol=1e-5)


# ------- 4. "Image similarity estimation using a Siamese Network with a
#            contrastive loss"
def _siamese(keras, margin=1):
    ops, layers = keras.ops, keras.layers

    def euclidean_distance(vects):
        x, y = vects
        sum_square = ops.sum(ops.square(x - y), axis=1, keepdims=True)
        return ops.sqrt(ops.maximum(sum_square, keras.backend.epsilon()))

    input = keras.layers.Input((8, 8, 1))
    x = keras.layers.BatchNormalization()(input)
    x = keras.layers.Conv2D(4, (3, 3), activation="tanh")(x)
    x = keras.layers.AveragePooling2D(pool_size=(2, 2))(x)
    x = keras.layers.Conv2D(6, (2, 2), activation="tanh")(x)
    x = keras.layers.AveragePooling2D(pool_size=(2, 2))(x)
    x = keras.layers.Flatten()(x)

    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dense(10, activation="tanh")(x)
    embedding_network = keras.Model(input, x)

    input_1 = keras.layers.Input((8, 8, 1))
    input_2 = keras.layers.Input((8, 8, 1))

    tower_1 = embedding_network(input_1)
    tower_2 = embedding_network(input_2)

    merge_layer = keras.layers.Lambda(euclidean_distance, output_shape=(1,))([tower_1, tower_2])
    normal_layer = keras.layers.BatchNormalization()(merge_layer)
    output_layer = keras.layers.Dense(1, activation="sigmoid")(normal_layer)
    siamese = keras.Model(inputs=[input_1, input_2], outputs=output_layer)

    def loss(margin=1):
        def contrastive_loss(y_true, y_pred):
            square_pred = ops.square(y_pred)
            margin_square = ops.square(ops.maximum(margin - (y_pred), 0))
            return ops.mean((1 - y_true) * square_pred + (y_true) * margin_square)

        return contrastive_loss

    siamese.compile(loss=loss(margin=margin), optimizer="RMSprop", metrics=["accuracy"])
    return siamese


def test_siamese_contrastive(keras_ref):
    rng = np.random.default_rng(3)
    x = rng.random((32, 8, 8)).astype("float32")
    digits = rng.integers(0, 3, 32)

    def make_pairs(x, y):
        num_classes = max(y) + 1
        digit_indices = [np.where(y == i)[0] for i in range(num_classes)]
        pairs, labels = [], []
        for idx1 in range(len(x)):
            x1 = x[idx1]
            label1 = y[idx1]
            idx2 = digit_indices[label1][(idx1 * 7) % len(digit_indices[label1])]  # deterministic "random"
            pairs += [[x1, x[idx2]]]
            labels += [0]
            label2 = (label1 + 1 + idx1 % (num_classes - 1)) % num_classes
            idx2 = digit_indices[label2][idx1 % len(digit_indices[label2])]
            pairs += [[x1, x[idx2]]]
            labels += [1]
        return np.array(pairs), np.array(labels).astype("float32")

    pairs_train, labels_train = make_pairs(x, digits)
    x_train_1, x_train_2 = pairs_train[:, 0], pairs_train[:, 1]
    ref, ours = _siamese(keras_ref), _siamese(kerasish)
    copy_weights(ours, ref)
    histories = [
        m.fit([x_train_1, x_train_2], labels_train,
              validation_data=([x_train_1[:16], x_train_2[:16]], labels_train[:16]),
              batch_size=16, epochs=2, shuffle=False, verbose=0)
        for m in (ref, ours)
    ]
    assert_history(histories[1], histories[0], rtol=1e-4, atol=1e-5)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    assert_same(ours.evaluate([x_train_1, x_train_2], labels_train, verbose=0),
                ref.evaluate([x_train_1, x_train_2], labels_train, verbose=0), rtol=1e-4, atol=1e-5)
    assert_same(ours.predict([x_train_1, x_train_2], verbose=0), ref.predict([x_train_1, x_train_2], verbose=0),
                rtol=1e-4, atol=1e-5)


# ------------------- 5. "Image classification with Vision Transformer"
def _vit(keras, x_train, *, dropout=0.1, head_dropout=0.5):
    ops, layers = keras.ops, keras.layers
    num_classes = 5
    input_shape = (8, 8, 3)
    image_size = 8
    patch_size = 4
    num_patches = (image_size // patch_size) ** 2
    projection_dim = 8
    num_heads = 2
    transformer_units = [projection_dim * 2, projection_dim]
    transformer_layers = 2
    mlp_head_units = [16]

    data_augmentation = keras.Sequential(
        [
            layers.Normalization(),
            layers.Resizing(image_size, image_size),
        ],
        name="data_augmentation",
    )
    data_augmentation.layers[0].adapt(x_train)

    def mlp(x, hidden_units, dropout_rate):
        for units in hidden_units:
            x = layers.Dense(units, activation=keras.activations.gelu)(x)
            x = layers.Dropout(dropout_rate)(x)
        return x

    class Patches(layers.Layer):
        def __init__(self, patch_size):
            super().__init__()
            self.patch_size = patch_size

        def call(self, images):
            input_shape = ops.shape(images)
            batch_size = input_shape[0]
            height = input_shape[1]
            width = input_shape[2]
            channels = input_shape[3]
            num_patches_h = height // self.patch_size
            num_patches_w = width // self.patch_size
            patches = keras.ops.image.extract_patches(images, size=self.patch_size)
            patches = ops.reshape(
                patches,
                (batch_size, num_patches_h * num_patches_w, self.patch_size * self.patch_size * channels),
            )
            return patches

        def get_config(self):
            config = super().get_config()
            config.update({"patch_size": self.patch_size})
            return config

    class PatchEncoder(layers.Layer):
        def __init__(self, num_patches, projection_dim):
            super().__init__()
            self.num_patches = num_patches
            self.projection = layers.Dense(units=projection_dim)
            self.position_embedding = layers.Embedding(input_dim=num_patches, output_dim=projection_dim)

        def call(self, patch):
            positions = ops.expand_dims(ops.arange(start=0, stop=self.num_patches, step=1), axis=0)
            projected_patches = self.projection(patch)
            encoded = projected_patches + self.position_embedding(positions)
            return encoded

        def get_config(self):
            config = super().get_config()
            config.update({"num_patches": self.num_patches})
            return config

    inputs = keras.Input(shape=input_shape)
    augmented = data_augmentation(inputs)
    patches = Patches(patch_size)(augmented)
    encoded_patches = PatchEncoder(num_patches, projection_dim)(patches)
    for _ in range(transformer_layers):
        x1 = layers.LayerNormalization(epsilon=1e-6)(encoded_patches)
        attention_output = layers.MultiHeadAttention(
            num_heads=num_heads, key_dim=projection_dim, dropout=dropout
        )(x1, x1)
        x2 = layers.Add()([attention_output, encoded_patches])
        x3 = layers.LayerNormalization(epsilon=1e-6)(x2)
        x3 = mlp(x3, hidden_units=transformer_units, dropout_rate=dropout)
        encoded_patches = layers.Add()([x3, x2])
    representation = layers.LayerNormalization(epsilon=1e-6)(encoded_patches)
    representation = layers.Flatten()(representation)
    representation = layers.Dropout(head_dropout)(representation)
    features = mlp(representation, hidden_units=mlp_head_units, dropout_rate=head_dropout)
    logits = layers.Dense(num_classes)(features)
    model = keras.Model(inputs=inputs, outputs=logits)

    optimizer = keras.optimizers.AdamW(learning_rate=0.001, weight_decay=0.0001)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(3, name="top-3-accuracy"),
        ],
    )
    return model, Patches


def test_vision_transformer(keras_ref, tmp_path):
    rng = np.random.default_rng(4)
    x_train = (rng.random((20, 8, 8, 3)) * 255).astype("float32")
    y_train = rng.integers(0, 5, (20, 1))

    # the example's dropouts (0.1 / 0.5) as written: inference must agree
    ref, _ = _vit(keras_ref, x_train)
    ours, patches_cls = _vit(kerasish, x_train)
    copy_weights(ours, ref)
    assert_same(ours.predict(x_train, verbose=0), ref.predict(x_train, verbose=0), rtol=1e-4, atol=1e-5)
    assert_same(ours.evaluate(x_train, y_train, verbose=0), ref.evaluate(x_train, y_train, verbose=0),
                rtol=1e-4, atol=1e-5)
    # Patches as the example displays them
    image = x_train[0]
    resized = kerasish.ops.image.resize(kerasish.ops.convert_to_tensor([image], dtype="float32"), size=(8, 8))
    resized_ref = keras_ref.ops.image.resize(keras_ref.ops.convert_to_tensor([image], dtype="float32"), size=(8, 8))
    assert_same(patches_cls(4)(resized), _vit(keras_ref, x_train)[1](4)(resized_ref), rtol=1e-5, atol=1e-4)

    # training with dropout 0 is deterministic: History and weights agree
    ref, _ = _vit(keras_ref, x_train, dropout=0.0, head_dropout=0.0)
    ours, _ = _vit(kerasish, x_train, dropout=0.0, head_dropout=0.0)
    copy_weights(ours, ref)
    histories = []
    for name, keras, model in (("ref", keras_ref, ref), ("ours", kerasish, ours)):
        checkpoint_filepath = str(tmp_path / f"checkpoint_{name}.weights.h5")
        checkpoint_callback = keras.callbacks.ModelCheckpoint(
            checkpoint_filepath, monitor="val_accuracy", save_best_only=True, save_weights_only=True
        )
        histories.append(model.fit(x=x_train, y=y_train, batch_size=8, epochs=2, validation_split=0.2,
                                   callbacks=[checkpoint_callback], shuffle=False, verbose=0))
        model.load_weights(checkpoint_filepath)
    # attention softmax + AdamW over 4 steps
    assert_history(histories[1], histories[0], rtol=1e-4, atol=1e-5)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    assert_same(ours.evaluate(x_train, y_train, verbose=0), ref.evaluate(x_train, y_train, verbose=0),
                rtol=1e-4, atol=1e-5)
    assert_same(ours.predict(x_train, verbose=0), ref.predict(x_train, verbose=0), rtol=1e-4, atol=1e-5)


# ----------------------------------------------- 6. "Knowledge Distillation"
def _distillation(keras):
    ops, layers = keras.ops, keras.layers

    class Distiller(keras.Model):
        def __init__(self, student, teacher):
            super().__init__()
            self.teacher = teacher
            self.student = student

        def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha=0.1, temperature=3):
            super().compile(optimizer=optimizer, metrics=metrics)
            self.student_loss_fn = student_loss_fn
            self.distillation_loss_fn = distillation_loss_fn
            self.alpha = alpha
            self.temperature = temperature

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False):
            teacher_pred = self.teacher(x, training=False)
            student_loss = self.student_loss_fn(y, y_pred)

            distillation_loss = self.distillation_loss_fn(
                ops.softmax(teacher_pred / self.temperature, axis=1),
                ops.softmax(y_pred / self.temperature, axis=1),
            ) * (self.temperature**2)

            loss = self.alpha * student_loss + (1 - self.alpha) * distillation_loss
            return loss

        def call(self, x):
            return self.student(x)

    teacher = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            layers.Conv2D(8, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
            layers.Conv2D(16, (3, 3), strides=(2, 2), padding="same"),
            layers.Flatten(),
            layers.Dense(10),
        ],
        name="teacher",
    )
    student = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            layers.Conv2D(4, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
            layers.Conv2D(8, (3, 3), strides=(2, 2), padding="same"),
            layers.Flatten(),
            layers.Dense(10),
        ],
        name="student",
    )
    student_scratch = keras.models.clone_model(student)
    return Distiller, teacher, student, student_scratch


def test_knowledge_distillation(keras_ref):
    rng = np.random.default_rng(5)
    x_train = rng.random((24, 8, 8, 1)).astype("float32")
    y_train = rng.integers(0, 10, 24)
    runs = {}
    for name, keras in (("ref", keras_ref), ("ours", kerasish)):
        runs[name] = _distillation(keras)
    d_ref, t_ref, s_ref, sc_ref = runs["ref"]
    d_ours, t_ours, s_ours, sc_ours = runs["ours"]
    for a, b in ((t_ours, t_ref), (s_ours, s_ref), (sc_ours, sc_ref)):
        copy_weights(a, b)

    out = {}
    for name, keras in (("ref", keras_ref), ("ours", kerasish)):
        Distiller, teacher, student, student_scratch = runs[name]
        teacher.compile(
            optimizer=keras.optimizers.Adam(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy()],
        )
        h_teacher = teacher.fit(x_train, y_train, epochs=2, batch_size=8, shuffle=False, verbose=0)
        e_teacher = teacher.evaluate(x_train, y_train, verbose=0)

        distiller = Distiller(student=student, teacher=teacher)
        distiller.compile(
            optimizer=keras.optimizers.Adam(),
            metrics=[keras.metrics.SparseCategoricalAccuracy()],
            student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            distillation_loss_fn=keras.losses.KLDivergence(),
            alpha=0.1,
            temperature=10,
        )
        h_distill = distiller.fit(x_train, y_train, epochs=2, batch_size=8, shuffle=False, verbose=0)
        e_distill = distiller.evaluate(x_train, y_train, verbose=0)

        student_scratch.compile(
            optimizer=keras.optimizers.Adam(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy()],
        )
        h_scratch = student_scratch.fit(x_train, y_train, epochs=2, batch_size=8, shuffle=False, verbose=0)
        e_scratch = student_scratch.evaluate(x_train, y_train, verbose=0)
        out[name] = (h_teacher, e_teacher, h_distill, e_distill, h_scratch, e_scratch, distiller)

    ref, ours = out["ref"], out["ours"]
    for i in (0, 2, 4):
        assert_history(ours[i], ref[i], rtol=1e-4, atol=1e-5)
    for i in (1, 3, 5):
        assert_same(ours[i], ref[i], rtol=1e-4, atol=1e-5)
    for a, b in ((t_ours, t_ref), (s_ours, s_ref), (sc_ours, sc_ref)):
        assert_weights(a, b, rtol=1e-4, atol=1e-5)
    assert_same(ours[6].predict(x_train, verbose=0), ref[6].predict(x_train, verbose=0), rtol=1e-4, atol=1e-5)


# ---- 7. "Customizing what happens in fit() with PyTorch": the GAN part
def _gan(keras, latent_dim=4):
    ops, layers = keras.ops, keras.layers

    discriminator = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            layers.Conv2D(8, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(8, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.GlobalMaxPooling2D(),
            layers.Dense(1),
        ],
        name="discriminator",
    )
    generator = keras.Sequential(
        [
            keras.Input(shape=(latent_dim,)),
            layers.Dense(2 * 2 * 8),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Reshape((2, 2, 8)),
            layers.Conv2DTranspose(8, (4, 4), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2DTranspose(8, (4, 4), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(1, (3, 3), padding="same", activation="sigmoid"),
        ],
        name="generator",
    )

    class GAN(keras.Model):
        def __init__(self, discriminator, generator, latent_dim):
            super().__init__()
            self.discriminator = discriminator
            self.generator = generator
            self.latent_dim = latent_dim
            self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
            self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
            self.seed_generator = keras.random.SeedGenerator(1337)
            self.built = True

        @property
        def metrics(self):
            return [self.d_loss_tracker, self.g_loss_tracker]

        def compile(self, d_optimizer, g_optimizer, loss_fn):
            super().compile()
            self.d_optimizer = d_optimizer
            self.g_optimizer = g_optimizer
            self.loss_fn = loss_fn

        def train_step(self, real_images):
            device = "cuda" if torch.cuda.is_available() else "cpu"
            if isinstance(real_images, tuple) or isinstance(real_images, list):
                real_images = real_images[0]
            # Sample random points in the latent space
            batch_size = real_images.shape[0]
            random_latent_vectors = keras.random.normal(
                shape=(batch_size, self.latent_dim), seed=self.seed_generator
            )

            # Decode them to fake images
            generated_images = self.generator(random_latent_vectors)

            # Combine them with real images
            real_images = torch.tensor(real_images, device=device)
            combined_images = torch.concat([generated_images, real_images], axis=0)

            # Assemble labels discriminating real from fake images
            labels = torch.concat(
                [torch.ones((batch_size, 1), device=device), torch.zeros((batch_size, 1), device=device)],
                axis=0,
            )
            # Add random noise to the labels - important trick!
            labels += 0.05 * keras.random.uniform(labels.shape, seed=self.seed_generator)

            # Train the discriminator
            self.zero_grad()
            predictions = self.discriminator(combined_images)
            d_loss = self.loss_fn(labels, predictions)
            d_loss.backward()
            grads = [v.value.grad for v in self.discriminator.trainable_weights]
            with torch.no_grad():
                self.d_optimizer.apply(grads, self.discriminator.trainable_weights)

            # Sample random points in the latent space
            random_latent_vectors = keras.random.normal(
                shape=(batch_size, self.latent_dim), seed=self.seed_generator
            )

            # Assemble labels that say "all real images"
            misleading_labels = torch.zeros((batch_size, 1), device=device)

            # Train the generator (note that we should *not* update the weights
            # of the discriminator)!
            self.zero_grad()
            predictions = self.discriminator(self.generator(random_latent_vectors))
            g_loss = self.loss_fn(misleading_labels, predictions)
            grads = g_loss.backward()
            grads = [v.value.grad for v in self.generator.trainable_weights]
            with torch.no_grad():
                self.g_optimizer.apply(grads, self.generator.trainable_weights)

            # Update metrics and return their value.
            self.d_loss_tracker.update_state(d_loss)
            self.g_loss_tracker.update_state(g_loss)
            return {
                "d_loss": self.d_loss_tracker.result(),
                "g_loss": self.g_loss_tracker.result(),
            }

    gan = GAN(discriminator=discriminator, generator=generator, latent_dim=latent_dim)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(learning_rate=0.0003),
        g_optimizer=keras.optimizers.Adam(learning_rate=0.0003),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return gan


def test_gan_custom_train_step_torch(keras_ref):
    rng = np.random.default_rng(6)
    all_digits = rng.random((24, 8, 8, 1)).astype("float32")
    ref, ours = _gan(keras_ref), _gan(kerasish)
    copy_weights(ours.discriminator, ref.discriminator)
    copy_weights(ours.generator, ref.generator)
    # the example feeds a torch DataLoader of the images
    loader = torch.utils.data.DataLoader(torch.from_numpy(all_digits), batch_size=8, shuffle=False)
    h_ref = ref.fit(loader, epochs=2, verbose=0)
    h_ours = ours.fit(loader, epochs=2, verbose=0)
    # keras.random.normal/uniform from the same SeedGenerator draw Keras's
    # own numbers: the noisy training matches
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-5)
    assert_weights(ours.discriminator, ref.discriminator, rtol=1e-4, atol=1e-5)
    assert_weights(ours.generator, ref.generator, rtol=1e-4, atol=1e-5)
    z = rng.normal(size=(4, 4)).astype("float32")
    assert_same(ours.generator.predict(z, verbose=0), ref.generator.predict(z, verbose=0), rtol=1e-4, atol=1e-5)


# ------------------------------ 8. "MixUp augmentation for image classification"
def _mixup_fns(keras, seed):
    seed_generator = keras.random.SeedGenerator(seed)

    def sample_beta_distribution(size, concentration_0=0.2, concentration_1=0.2):
        # (the example draws unseeded; a SeedGenerator makes the runs comparable)
        gamma_1_sample = keras.random.gamma(shape=[size], alpha=concentration_1, seed=seed_generator)
        gamma_2_sample = keras.random.gamma(shape=[size], alpha=concentration_0, seed=seed_generator)
        return gamma_1_sample / (gamma_1_sample + gamma_2_sample)

    def mix_up(ds_one, ds_two, alpha=0.2):
        # Unpack two datasets
        images_one, labels_one = ds_one
        images_two, labels_two = ds_two
        batch_size = keras.ops.shape(images_one)[0]

        # Sample lambda and reshape it to do the mixup
        l = sample_beta_distribution(batch_size, alpha, alpha)  # noqa: E741
        x_l = keras.ops.reshape(l, (batch_size, 1, 1, 1))
        y_l = keras.ops.reshape(l, (batch_size, 1))

        # Perform mixup on both images and labels by combining a pair of images/labels
        # (one from each dataset) into one image/label
        images = images_one * x_l + images_two * (1 - x_l)
        labels = labels_one * y_l + labels_two * (1 - y_l)
        return (images, labels)

    def get_training_model():
        layers = keras.layers
        model = keras.Sequential(
            [
                layers.Input(shape=(12, 12, 1)),
                layers.Conv2D(4, (3, 3), activation="relu"),
                layers.MaxPooling2D(pool_size=(2, 2)),
                layers.Conv2D(8, (3, 3), activation="relu"),
                layers.MaxPooling2D(pool_size=(2, 2)),
                layers.Dropout(0.2),
                layers.GlobalAvgPool2D(),
                layers.Dense(16, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ]
        )
        return model

    return mix_up, get_training_model


def test_mixup(keras_ref, tmp_path):
    rng = np.random.default_rng(11)
    x_train = rng.random((16, 12, 12, 1)).astype("float32")
    y_train = keras_ref.utils.to_categorical(rng.integers(0, 10, 16), 10).astype("float32")
    np.testing.assert_array_equal(kerasish.utils.to_categorical(np.argmax(y_train, -1), 10), y_train)

    results = {}
    for name, keras in (("ref", keras_ref), ("ours", kerasish)):
        mix_up, get_training_model = _mixup_fns(keras, seed=42)
        # two shuffled copies of the training set, one batch of 8 at a time
        order = np.random.default_rng(3).permutation(16)
        batches = []
        for start in (0, 8):
            one = (keras.ops.convert_to_tensor(x_train[start:start + 8]),
                   keras.ops.convert_to_tensor(y_train[start:start + 8]))
            two = (keras.ops.convert_to_tensor(x_train[order][start:start + 8]),
                   keras.ops.convert_to_tensor(y_train[order][start:start + 8]))
            batches.append(mix_up(one, two, alpha=0.2))
        images = np.concatenate([keras.ops.convert_to_numpy(b[0]) for b in batches])
        labels = np.concatenate([keras.ops.convert_to_numpy(b[1]) for b in batches])

        path = str(tmp_path / "initial_weights.weights.h5")
        if name == "ref":
            initial_model = get_training_model()
            initial_model.save_weights(path)  # the Keras file, read by both
        model = get_training_model()
        model.load_weights(path)
        assert type(model.layers[4]).__name__ == "Dropout"
        model.layers[4].rate = 0.0  # Dropout(0.2): deterministic training comparison
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        history = model.fit(images, labels, batch_size=8, epochs=2, validation_data=(x_train, y_train),
                            shuffle=False, verbose=0)
        results[name] = (images, labels, history, model)

    # keras.random.gamma from a seeded SeedGenerator: Keras's own draws
    assert_same(results["ours"][0], results["ref"][0], rtol=1e-5, atol=1e-6)
    assert_same(results["ours"][1], results["ref"][1], rtol=1e-5, atol=1e-6)
    ref, ours = results["ref"][3], results["ours"][3]
    assert_history(results["ours"][2], results["ref"][2], rtol=1e-4, atol=1e-5)
    assert_weights(ours, ref, rtol=1e-3, atol=1e-4)  # Adam on dead-ReLU gradients (see the autoencoder)
    assert_same(ours.evaluate(x_train, y_train, verbose=0), ref.evaluate(x_train, y_train, verbose=0),
                rtol=1e-4, atol=1e-5)
    assert_same(ours.predict(x_train, verbose=0), ref.predict(x_train, verbose=0), rtol=1e-4, atol=1e-5)


# ------------------------------------- 9. "Point cloud classification with PointNet"
def _pointnet(keras, num_points, num_classes):
    ops, layers = keras.ops, keras.layers

    def conv_bn(x, filters):
        x = layers.Conv1D(filters, kernel_size=1, padding="valid")(x)
        x = layers.BatchNormalization(momentum=0.0)(x)
        return layers.Activation("relu")(x)

    def dense_bn(x, filters):
        x = layers.Dense(filters)(x)
        x = layers.BatchNormalization(momentum=0.0)(x)
        return layers.Activation("relu")(x)

    class OrthogonalRegularizer(keras.regularizers.Regularizer):
        def __init__(self, num_features, l2reg=0.001):
            self.num_features = num_features
            self.l2reg = l2reg
            self.eye = ops.eye(num_features)

        def __call__(self, x):
            x = ops.reshape(x, (-1, self.num_features, self.num_features))
            xxt = ops.tensordot(x, x, axes=(2, 2))
            xxt = ops.reshape(xxt, (-1, self.num_features, self.num_features))
            return ops.sum(self.l2reg * ops.square(xxt - self.eye))

        def get_config(self):
            config = super().get_config()
            config.update({"num_features": self.num_features, "l2reg_strength": self.l2reg})
            return config

    def tnet(inputs, num_features):
        # Initialise bias as the identity matrix
        bias = keras.initializers.Constant(np.eye(num_features).flatten())
        reg = OrthogonalRegularizer(num_features)

        x = conv_bn(inputs, 4)
        x = conv_bn(x, 8)
        x = layers.GlobalMaxPooling1D()(x)
        x = dense_bn(x, 8)
        x = layers.Dense(
            num_features * num_features,
            kernel_initializer="zeros",
            bias_initializer=bias,
            activity_regularizer=reg,
        )(x)
        feat_T = layers.Reshape((num_features, num_features))(x)
        # Apply affine transformation to input features
        return layers.Dot(axes=(2, 1))([inputs, feat_T])

    inputs = keras.Input(shape=(num_points, 3))

    x = tnet(inputs, 3)
    x = conv_bn(x, 4)
    x = tnet(x, 4)
    x = conv_bn(x, 8)
    x = layers.GlobalMaxPooling1D()(x)
    x = dense_bn(x, 8)
    x = layers.Dropout(0.3)(x)

    outputs = layers.Dense(num_classes, activation="softmax")(x)

    model = keras.Model(inputs=inputs, outputs=outputs, name="pointnet")
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate=0.001),
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def test_pointnet(keras_ref):
    rng = np.random.default_rng(12)
    num_points, num_classes = 16, 3
    points = rng.normal(size=(24, num_points, 3)).astype("float32")
    labels = rng.integers(0, num_classes, 24)

    # the example's augment(): jitter and shuffle points, drawn once here
    points = points + rng.uniform(-0.005, 0.005, points.shape).astype("float32")

    ref, ours = _pointnet(keras_ref, num_points, num_classes), _pointnet(kerasish, num_points, num_classes)
    copy_weights(ours, ref)
    # Dropout(0.3) as written: inference agrees (and the activity
    # regularizers' losses enter evaluate())
    assert_same(ours.evaluate(points, labels, verbose=0), ref.evaluate(points, labels, verbose=0),
                rtol=1e-4, atol=1e-5)
    assert_same(ours.predict(points, verbose=0), ref.predict(points, verbose=0), rtol=1e-4, atol=1e-5)
    for model in (ref, ours):
        [lyr for lyr in model.layers if type(lyr).__name__ == "Dropout"][0].rate = 0.0

    # one plain SGD step (no Adam normalisation of tiny gradients): the
    # gradients of the loss and of both OrthogonalRegularizers agree
    sgd_ref, sgd_ours = _pointnet(keras_ref, num_points, num_classes), _pointnet(kerasish, num_points, num_classes)
    copy_weights(sgd_ours, sgd_ref)
    for keras, model in ((keras_ref, sgd_ref), (kerasish, sgd_ours)):
        [lyr for lyr in model.layers if type(lyr).__name__ == "Dropout"][0].rate = 0.0
        model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(1.0),
                      metrics=["sparse_categorical_accuracy"])
    assert_same(sgd_ours.train_on_batch(points[:8], labels[:8]), sgd_ref.train_on_batch(points[:8], labels[:8]),
                rtol=1e-5, atol=1e-6)
    assert_weights(sgd_ours, sgd_ref, rtol=1e-4, atol=1e-5)

    h_ref = ref.fit(points, labels, epochs=2, batch_size=8, validation_data=(points, labels), shuffle=False,
                    verbose=0)
    h_ours = ours.fit(points, labels, epochs=2, batch_size=8, validation_data=(points, labels), shuffle=False,
                      verbose=0)
    # BatchNorm(momentum=0.0): inference uses the last batch's statistics
    assert_history(h_ours, h_ref, rtol=1e-3, atol=1e-5)
    # Adam: a weight whose gradient is ~0 (conv/dense biases feeding
    # BatchNorm, BatchNorm betas before dead ReLUs and max pooling) moves by
    # up to lr per step on float32 noise: 6 steps of lr 1e-3
    assert_weights(ours, ref, rtol=1e-3, atol=6e-3)
    assert_same(ours.predict(points, verbose=0), ref.predict(points, verbose=0), rtol=1e-3, atol=1e-3)
