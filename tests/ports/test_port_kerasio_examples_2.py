"""More keras.io examples (Keras 3 versions), ported as a user would: the
example's model/layer/training code with `import keras` changed to
`import kerasish as keras` (here one builder runs with real Keras 3 on torch
and with kerasish), `tf.*` / `tf.GradientTape` code rewritten with `torch.*`
and `torch.autograd` (the same torch code runs under Keras's torch backend),
small deterministic synthetic data, shrunk sizes, the same initial weights
(get_weights/set_weights) and the same batches (shuffle=False) in both runs.

Covered here (not in the other port files):

1. "WGAN-GP overriding `Model.train_step`" (generative/wgan_gp): extra
   critic steps, a gradient penalty through `torch.autograd.grad(...,
   create_graph=True)` (double backward through Conv2D/LeakyReLU/Dense),
   two optimizers applied by hand, seeded `keras.random.normal` noise.
2. "Image classification with ConvMixer" (vision/convmixer): grouped
   (depthwise) Conv2D, gelu, BatchNormalization, residual Add, AdamW,
   best-only ModelCheckpoint reloaded before evaluate, and the example's
   `layer.get_config()["kernel_size"] == (5, 5)` layer lookup.
3. "Image classification with modern MLP models" (vision/mlp_image_classification):
   MLP-Mixer, FNet (`ops.fft2` on a (real, imag) pair) and gMLP blocks over
   `ops.image.extract_patches`, an adapted Normalization, a hand-written
   PositionEmbedding (`ops.slice`, `ops.broadcast_to`), AdamW, top-k metric,
   ReduceLROnPlateau and EarlyStopping(restore_best_weights) on a
   validation_split.
4. "Named Entity Recognition using Transformers" (nlp/ner_transformers): a
   subclassed model (TokenAndPositionEmbedding, TransformerBlock with
   MultiHeadAttention) and the example's `CustomNonPaddingTokenLoss`
   (`SparseCategoricalCrossentropy(reduction=None)` masked by hand).
5. "OCR model for reading Captchas" (vision/captcha_ocr): Conv2D/Reshape/
   bidirectional LSTMs, a `CTCLayer` adding its loss (`tf.compat.v1.nn.
   ctc_loss` -> `keras.ops.ctc_loss`), a model compiled without a loss, dict
   inputs, EarlyStopping, the inference sub-model `Model(model.input[0],
   model.get_layer("dense2").output)` and `keras.ops.ctc_decode`.

Programs 6-9 are in test_port_kerasio_examples_3.py.
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
    """Keras's unseeded initializers draw from the global RNGs: seeded, each
    run starts from the same weights (kerasish gets Keras's weights anyway)."""
    keras_ref.utils.set_random_seed(1337)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These programs run many tiny kernels; on the shared 2-core machine two
    intra-op threads per kernel made them ~30x slower than one (measured on
    the WGAN-GP test: 7 s vs 0.25 s per fit). The numbers do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------- 1. WGAN-GP
def _wgan(keras, img_shape=(12, 12, 1), noise_dim=8):
    layers = keras.layers

    def conv_block(x, filters, activation, kernel_size=(3, 3), strides=(1, 1), padding="same",
                   use_bias=True, use_bn=False, use_dropout=False, drop_value=0.5):
        x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias)(x)
        if use_bn:
            x = layers.BatchNormalization()(x)
        x = activation(x)
        if use_dropout:
            x = layers.Dropout(drop_value)(x)
        return x

    def get_discriminator_model():
        img_input = layers.Input(shape=img_shape)
        # Zero pad the input to make the input images size to (16, 16, 1).
        x = layers.ZeroPadding2D((2, 2))(img_input)
        # (the example's Dropout(0.3)/(0.2) draw unseeded noise: rate 0 here)
        x = conv_block(x, 4, kernel_size=(5, 5), strides=(2, 2), activation=layers.LeakyReLU(0.2))
        x = conv_block(x, 8, kernel_size=(5, 5), strides=(2, 2), activation=layers.LeakyReLU(0.2),
                       use_dropout=True, drop_value=0.0)
        x = conv_block(x, 8, kernel_size=(5, 5), strides=(2, 2), activation=layers.LeakyReLU(0.2))
        x = layers.Flatten()(x)
        x = layers.Dropout(0.0)(x)
        x = layers.Dense(1)(x)
        return keras.models.Model(img_input, x, name="discriminator")

    def upsample_block(x, filters, activation, kernel_size=(3, 3), strides=(1, 1), up_size=(2, 2),
                       padding="same", use_bn=False, use_bias=True):
        x = layers.UpSampling2D(up_size)(x)
        x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias)(x)
        if use_bn:
            x = layers.BatchNormalization()(x)
        if activation:
            x = activation(x)
        return x

    def get_generator_model():
        noise = layers.Input(shape=(noise_dim,))
        x = layers.Dense(4 * 4 * 8, use_bias=False)(noise)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.Reshape((4, 4, 8))(x)
        x = upsample_block(x, 8, layers.LeakyReLU(0.2), use_bias=False, use_bn=True)
        x = upsample_block(x, 1, layers.Activation("tanh"), use_bias=False, use_bn=True)
        # (16, 16, 1) -> (12, 12, 1)
        x = layers.Cropping2D((2, 2))(x)
        return keras.models.Model(noise, x, name="generator")

    class WGAN(keras.Model):
        def __init__(self, discriminator, generator, latent_dim, discriminator_extra_steps=3, gp_weight=10.0):
            super().__init__()
            self.discriminator = discriminator
            self.generator = generator
            self.latent_dim = latent_dim
            self.d_steps = discriminator_extra_steps
            self.gp_weight = gp_weight
            # (tf.random.normal -> keras.random.normal with a SeedGenerator)
            self.seed_generator = keras.random.SeedGenerator(1337)
            # (Keras 3 cannot build a model without `call` by calling it: the
            # Keras 3 GAN examples mark it built)
            self.built = True

        def compile(self, d_optimizer, g_optimizer, d_loss_fn, g_loss_fn):
            super().compile()
            self.d_optimizer = d_optimizer
            self.g_optimizer = g_optimizer
            self.d_loss_fn = d_loss_fn
            self.g_loss_fn = g_loss_fn

        def gradient_penalty(self, batch_size, real_images, fake_images):
            alpha = keras.random.normal([batch_size, 1, 1, 1], 0.0, 1.0, seed=self.seed_generator)
            diff = fake_images - real_images
            interpolated = real_images + alpha * diff
            # 1. the discriminator output for this interpolated image
            pred = self.discriminator(interpolated, training=True)
            # 2. the gradients w.r.t. this interpolated image (GradientTape ->
            # torch.autograd.grad, kept in the graph for the critic's update)
            grads = torch.autograd.grad(pred, interpolated, grad_outputs=torch.ones_like(pred),
                                        create_graph=True)[0]
            # 3. the norm of the gradients
            norm = torch.sqrt(torch.sum(torch.square(grads), dim=[1, 2, 3]))
            return torch.mean((norm - 1.0) ** 2)

        def train_step(self, real_images):
            if isinstance(real_images, (tuple, list)):
                real_images = real_images[0]
            batch_size = real_images.shape[0]
            for _ in range(self.d_steps):
                random_latent_vectors = keras.random.normal(shape=(batch_size, self.latent_dim),
                                                            seed=self.seed_generator)
                self.zero_grad()
                fake_images = self.generator(random_latent_vectors, training=True)
                fake_logits = self.discriminator(fake_images, training=True)
                real_logits = self.discriminator(real_images, training=True)
                d_cost = self.d_loss_fn(real_img=real_logits, fake_img=fake_logits)
                gp = self.gradient_penalty(batch_size, real_images, fake_images)
                d_loss = d_cost + gp * self.gp_weight
                d_loss.backward()
                d_vars = self.discriminator.trainable_weights
                with torch.no_grad():
                    self.d_optimizer.apply([v.value.grad for v in d_vars], d_vars)

            random_latent_vectors = keras.random.normal(shape=(batch_size, self.latent_dim),
                                                        seed=self.seed_generator)
            self.zero_grad()
            generated_images = self.generator(random_latent_vectors, training=True)
            gen_img_logits = self.discriminator(generated_images, training=True)
            g_loss = self.g_loss_fn(gen_img_logits)
            g_loss.backward()
            g_vars = self.generator.trainable_weights
            with torch.no_grad():
                self.g_optimizer.apply([v.value.grad for v in g_vars], g_vars)
            return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}

    def discriminator_loss(real_img, fake_img):
        return torch.mean(fake_img) - torch.mean(real_img)

    def generator_loss(fake_img):
        return -torch.mean(fake_img)

    wgan = WGAN(get_discriminator_model(), get_generator_model(), latent_dim=noise_dim, discriminator_extra_steps=3)
    wgan.compile(
        d_optimizer=keras.optimizers.Adam(learning_rate=0.0002, beta_1=0.5, beta_2=0.9),
        g_optimizer=keras.optimizers.Adam(learning_rate=0.0002, beta_1=0.5, beta_2=0.9),
        g_loss_fn=generator_loss,
        d_loss_fn=discriminator_loss,
    )
    return wgan


def test_wgan_gp_gradient_penalty_train_step(keras_ref):
    rng = np.random.default_rng(1)
    train_images = ((rng.integers(0, 256, (32, 12, 12, 1)) - 127.5) / 127.5).astype("float32")
    ref, ours = _wgan(keras_ref), _wgan(kerasish)
    copy_weights(ours.discriminator, ref.discriminator)
    copy_weights(ours.generator, ref.generator)
    h_ref = ref.fit(train_images, batch_size=16, epochs=2, shuffle=False, verbose=0)
    h_ours = ours.fit(train_images, batch_size=16, epochs=2, shuffle=False, verbose=0)
    # the same seeded noise, the same second-order gradients: float32 noise only
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-5)
    assert_weights(ours.discriminator, ref.discriminator, rtol=1e-4, atol=1e-5)
    assert_weights(ours.generator, ref.generator, rtol=1e-4, atol=1e-5)
    z = rng.normal(size=(3, 8)).astype("float32")
    assert_same(ours.generator.predict(z, verbose=0), ref.generator.predict(z, verbose=0), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ 2. ConvMixer
def _conv_mixer(keras, image_size=8, filters=8, depth=2, kernel_size=5, patch_size=2, num_classes=4):
    layers = keras.layers

    def activation_block(x):
        x = layers.Activation("gelu")(x)
        return layers.BatchNormalization()(x)

    def conv_stem(x, filters: int, patch_size: int):
        x = layers.Conv2D(filters, kernel_size=patch_size, strides=patch_size)(x)
        return activation_block(x)

    def conv_mixer_block(x, filters: int, kernel_size: int):
        # Depthwise convolution.
        x0 = x
        x = layers.Conv2D(filters, kernel_size=kernel_size, groups=filters, padding="same")(x)
        x = layers.Add()([activation_block(x), x0])  # Residual.
        # Pointwise convolution.
        x = layers.Conv2D(filters, kernel_size=1)(x)
        x = activation_block(x)
        return x

    inputs = keras.Input((image_size, image_size, 3))
    x = layers.Rescaling(scale=1.0 / 255)(inputs)
    x = conv_stem(x, filters, patch_size)
    for _ in range(depth):
        x = conv_mixer_block(x, filters, kernel_size)
    x = layers.GlobalAvgPool2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _run_conv_mixer(keras, model, data, checkpoint_filepath):
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    optimizer = keras.optimizers.AdamW(learning_rate=0.001, weight_decay=0.0001)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    checkpoint_callback = keras.callbacks.ModelCheckpoint(
        checkpoint_filepath, monitor="val_accuracy", save_best_only=True, save_weights_only=True
    )
    history = model.fit(x_train, y_train, batch_size=16, validation_data=(x_val, y_val), epochs=3,
                        callbacks=[checkpoint_callback], shuffle=False, verbose=0)
    model.load_weights(checkpoint_filepath)
    _, accuracy = model.evaluate(x_test, y_test, batch_size=16, verbose=0)
    return history, accuracy


def test_conv_mixer(keras_ref, tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (80, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, (80, 1))
    data = ((x[:48], y[:48]), (x[48:64], y[48:64]), (x[64:], y[64:]))
    ref, ours = _conv_mixer(keras_ref), _conv_mixer(kerasish)
    copy_weights(ours, ref)
    h_ref, acc_ref = _run_conv_mixer(keras_ref, ref, data, str(tmp_path / "ref.weights.h5"))
    h_ours, acc_ours = _run_conv_mixer(kerasish, ours, data, str(tmp_path / "ours.weights.h5"))
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-5)
    assert acc_ours == pytest.approx(acc_ref, abs=1e-6)
    # (the best-only checkpoint, reloaded by both before evaluate, is epoch 1's)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    assert_same(ours.predict(x[64:], verbose=0), ref.predict(x[64:], verbose=0), rtol=1e-4, atol=1e-5)
    # each file reloads into the other framework's model
    ours.load_weights(str(tmp_path / "ref.weights.h5"))
    ref.load_weights(str(tmp_path / "ref.weights.h5"))
    assert_same(ours.predict(x[64:], verbose=0), ref.predict(x[64:], verbose=0), rtol=1e-5, atol=1e-6)

    # The example's visualisation: the patch-embedding kernel is layers[2],
    # and the depthwise kernels are found by their config's kernel_size tuple.
    assert ours.layers[2].get_weights()[0].shape == ref.layers[2].get_weights()[0].shape == (2, 2, 3, 8)

    def depthwise(model, conv2d):
        return [i for i, layer in enumerate(model.layers)
                if isinstance(layer, conv2d) and layer.get_config()["kernel_size"] == (5, 5)]

    assert depthwise(ours, kerasish.layers.Conv2D) == depthwise(ref, keras_ref.layers.Conv2D) != []


# ------------------------------------------- 3. MLP-Mixer, FNet and gMLP
def _mlp_models(keras, blocks_kind, x_train, num_classes=4, image_size=8, patch_size=2, embedding_dim=8,
                num_blocks=2, dropout_rate=0.0):
    layers = keras.layers
    num_patches = (image_size // patch_size) ** 2
    input_shape = x_train.shape[1:]

    data_augmentation = keras.Sequential(
        [
            layers.Normalization(),
            layers.Resizing(image_size, image_size),
            # (the example's RandomFlip/RandomZoom draw unseeded noise: left out)
        ],
        name="data_augmentation",
    )
    # Compute the mean and the variance of the training data for normalization.
    data_augmentation.layers[0].adapt(x_train)

    class Patches(layers.Layer):
        def __init__(self, patch_size, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size

        def call(self, x):
            patches = keras.ops.image.extract_patches(x, self.patch_size)
            batch_size = keras.ops.shape(patches)[0]
            num_patches = keras.ops.shape(patches)[1] * keras.ops.shape(patches)[2]
            patch_dim = keras.ops.shape(patches)[3]
            out = keras.ops.reshape(patches, (batch_size, num_patches, patch_dim))
            return out

    class PositionEmbedding(keras.layers.Layer):
        def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
            super().__init__(**kwargs)
            if sequence_length is None:
                raise ValueError("`sequence_length` must be an Integer, received `None`.")
            self.sequence_length = int(sequence_length)
            self.initializer = keras.initializers.get(initializer)

        def build(self, input_shape):
            feature_size = input_shape[-1]
            self.position_embeddings = self.add_weight(
                name="embeddings", shape=[self.sequence_length, feature_size],
                initializer=self.initializer, trainable=True,
            )
            super().build(input_shape)

        def call(self, inputs, start_index=0):
            shape = keras.ops.shape(inputs)
            feature_length = shape[-1]
            sequence_length = shape[-2]
            position_embeddings = keras.ops.convert_to_tensor(self.position_embeddings)
            position_embeddings = keras.ops.slice(
                position_embeddings, (start_index, 0), (sequence_length, feature_length)
            )
            return keras.ops.broadcast_to(position_embeddings, shape)

        def compute_output_shape(self, input_shape):
            return input_shape

    class MLPMixerLayer(layers.Layer):
        def __init__(self, num_patches, hidden_units, dropout_rate, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.mlp1 = keras.Sequential([
                layers.Dense(units=num_patches, activation="gelu"),
                layers.Dense(units=num_patches),
                layers.Dropout(rate=dropout_rate),
            ])
            self.mlp2 = keras.Sequential([
                layers.Dense(units=num_patches, activation="gelu"),
                layers.Dense(units=hidden_units),
                layers.Dropout(rate=dropout_rate),
            ])
            self.normalize = layers.LayerNormalization(epsilon=1e-6)

        def build(self, input_shape):
            return super().build(input_shape)

        def call(self, inputs):
            x = self.normalize(inputs)
            x_channels = keras.ops.transpose(x, axes=(0, 2, 1))
            mlp1_outputs = self.mlp1(x_channels)
            mlp1_outputs = keras.ops.transpose(mlp1_outputs, axes=(0, 2, 1))
            x = mlp1_outputs + inputs
            x_patches = self.normalize(x)
            mlp2_outputs = self.mlp2(x_patches)
            x = x + mlp2_outputs
            return x

    class FNetLayer(layers.Layer):
        def __init__(self, embedding_dim, dropout_rate, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.ffn = keras.Sequential([
                layers.Dense(units=embedding_dim, activation="gelu"),
                layers.Dropout(rate=dropout_rate),
                layers.Dense(units=embedding_dim),
            ])
            self.normalize1 = layers.LayerNormalization(epsilon=1e-6)
            self.normalize2 = layers.LayerNormalization(epsilon=1e-6)

        def call(self, inputs):
            real_part = inputs
            im_part = keras.ops.zeros_like(inputs)
            x = keras.ops.fft2((real_part, im_part))[0]
            x = x + inputs
            x = self.normalize1(x)
            x_ffn = self.ffn(x)
            x = x + x_ffn
            return self.normalize2(x)

    class gMLPLayer(layers.Layer):
        def __init__(self, num_patches, embedding_dim, dropout_rate, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.channel_projection1 = keras.Sequential([
                layers.Dense(units=embedding_dim * 2, activation="gelu"),
                layers.Dropout(rate=dropout_rate),
            ])
            self.channel_projection2 = layers.Dense(units=embedding_dim)
            self.spatial_projection = layers.Dense(units=num_patches, bias_initializer="Ones")
            self.normalize1 = layers.LayerNormalization(epsilon=1e-6)
            self.normalize2 = layers.LayerNormalization(epsilon=1e-6)

        def spatial_gating_unit(self, x):
            u, v = keras.ops.split(x, indices_or_sections=2, axis=2)
            v = self.normalize2(v)
            v_channels = keras.ops.transpose(v, axes=(0, 2, 1))
            v_projected = self.spatial_projection(v_channels)
            v_projected = keras.ops.transpose(v_projected, axes=(0, 2, 1))
            return u * v_projected

        def call(self, inputs):
            x = self.normalize1(inputs)
            x_projected = self.channel_projection1(x)
            x_spatial = self.spatial_gating_unit(x_projected)
            x_projected = self.channel_projection2(x_spatial)
            return x + x_projected

    def build_classifier(blocks, positional_encoding=False):
        inputs = layers.Input(shape=input_shape)
        augmented = data_augmentation(inputs)
        patches = Patches(patch_size)(augmented)
        x = layers.Dense(units=embedding_dim)(patches)
        if positional_encoding:
            x = x + PositionEmbedding(sequence_length=num_patches)(x)
        x = blocks(x)
        representation = layers.GlobalAveragePooling1D()(x)
        representation = layers.Dropout(rate=dropout_rate)(representation)
        logits = layers.Dense(num_classes)(representation)
        return keras.Model(inputs=inputs, outputs=logits)

    if blocks_kind == "mlpmixer":
        blocks = keras.Sequential([MLPMixerLayer(num_patches, embedding_dim, dropout_rate) for _ in range(num_blocks)])
        return build_classifier(blocks)
    if blocks_kind == "fnet":
        blocks = keras.Sequential([FNetLayer(embedding_dim, dropout_rate) for _ in range(num_blocks)])
        return build_classifier(blocks, positional_encoding=True)
    blocks = keras.Sequential([gMLPLayer(num_patches, embedding_dim, dropout_rate) for _ in range(num_blocks)])
    return build_classifier(blocks)


def _run_mlp_experiment(keras, model, x_train, y_train, x_test, y_test):
    optimizer = keras.optimizers.AdamW(learning_rate=0.005, weight_decay=0.0001)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="acc"),
            keras.metrics.SparseTopKCategoricalAccuracy(2, name="top2-acc"),
        ],
    )
    reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1)
    early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x_train, y_train, batch_size=16, epochs=4, validation_split=0.25,
                        callbacks=[early_stopping, reduce_lr], shuffle=False, verbose=0)
    _, accuracy, top_2_accuracy = model.evaluate(x_test, y_test, verbose=0)
    return history, accuracy, top_2_accuracy


@pytest.mark.parametrize("kind", ["mlpmixer", "fnet", "gmlp"])
def test_mlp_mixer_fnet_gmlp(keras_ref, kind):
    rng = np.random.default_rng(3)
    x_train = rng.integers(0, 256, (64, 8, 8, 3)).astype("float32")
    y_train = rng.integers(0, 4, (64, 1))
    x_test = rng.integers(0, 256, (16, 8, 8, 3)).astype("float32")
    y_test = rng.integers(0, 4, (16, 1))
    ref = _mlp_models(keras_ref, kind, x_train)
    ours = _mlp_models(kerasish, kind, x_train)
    # the adapted Normalization statistics come first in both weight lists
    assert_same(ours.get_weights()[:3], ref.get_weights()[:3], rtol=1e-6, atol=1e-6)
    copy_weights(ours, ref)
    h_ref, acc_ref, top2_ref = _run_mlp_experiment(keras_ref, ref, x_train, y_train, x_test, y_test)
    h_ours, acc_ours, top2_ours = _run_mlp_experiment(kerasish, ours, x_train, y_train, x_test, y_test)
    # ReduceLROnPlateau's "learning_rate" entry is part of both histories
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-5)
    assert (acc_ours, top2_ours) == pytest.approx((acc_ref, top2_ref), abs=1e-6)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    assert_same(ours.predict(x_test, verbose=0), ref.predict(x_test, verbose=0), rtol=1e-4, atol=1e-5)


# ------------------------------------------ 4. NER with a Transformer
def _ner(keras, num_tags, vocab_size, maxlen, embed_dim=8, num_heads=2, ff_dim=8, rate=0.0):
    layers, ops = keras.layers, keras.ops

    class TransformerBlock(layers.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
            super().__init__()
            self.att = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = keras.Sequential(
                [keras.layers.Dense(ff_dim, activation="relu"), keras.layers.Dense(embed_dim)]
            )
            self.layernorm1 = keras.layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = keras.layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = keras.layers.Dropout(rate)
            self.dropout2 = keras.layers.Dropout(rate)

        def call(self, inputs, training=False):
            attn_output = self.att(inputs, inputs)
            attn_output = self.dropout1(attn_output, training=training)
            out1 = self.layernorm1(inputs + attn_output)
            ffn_output = self.ffn(out1)
            ffn_output = self.dropout2(ffn_output, training=training)
            return self.layernorm2(out1 + ffn_output)

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim):
            super().__init__()
            self.token_emb = keras.layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = keras.layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, inputs):
            maxlen = ops.shape(inputs)[-1]
            positions = ops.arange(start=0, stop=maxlen, step=1)
            position_embeddings = self.pos_emb(positions)
            token_embeddings = self.token_emb(inputs)
            return token_embeddings + position_embeddings

    class NERModel(keras.Model):
        def __init__(self, num_tags, vocab_size, maxlen=128, embed_dim=32, num_heads=2, ff_dim=32):
            super().__init__()
            self.embedding_layer = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)
            self.transformer_block = TransformerBlock(embed_dim, num_heads, ff_dim, rate)
            self.dropout1 = layers.Dropout(rate)
            self.ff = layers.Dense(ff_dim, activation="relu")
            self.dropout2 = layers.Dropout(rate)
            self.ff_final = layers.Dense(num_tags, activation="softmax")

        def call(self, inputs, training=False):
            x = self.embedding_layer(inputs)
            x = self.transformer_block(x)
            x = self.dropout1(x, training=training)
            x = self.ff(x)
            x = self.dropout2(x, training=training)
            x = self.ff_final(x)
            return x

    class CustomNonPaddingTokenLoss(keras.losses.Loss):
        def __init__(self, name="custom_ner_loss"):
            super().__init__(name=name)

        def call(self, y_true, y_pred):
            loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=False, reduction=None)
            loss = loss_fn(y_true, y_pred)
            mask = ops.cast((y_true > 0), dtype="float32")
            loss = loss * mask
            return ops.sum(loss) / ops.sum(mask)

    model = NERModel(num_tags, vocab_size, maxlen=maxlen, embed_dim=embed_dim, num_heads=num_heads, ff_dim=ff_dim)
    return model, CustomNonPaddingTokenLoss()


def test_ner_transformer_masked_custom_loss(keras_ref):
    rng = np.random.default_rng(4)
    num_tags, vocab_size, maxlen = 5, 30, 10
    # padded token ids (0 = padding) with tags 1..4 on real tokens, 0 on padding
    lengths = rng.integers(4, maxlen + 1, 48)
    x = np.zeros((48, maxlen), "int64")
    y = np.zeros((48, maxlen), "int64")
    for i, n in enumerate(lengths):
        x[i, :n] = rng.integers(1, vocab_size, n)
        y[i, :n] = 1 + x[i, :n] % 4
    ref, loss_ref = _ner(keras_ref, num_tags, vocab_size, maxlen)
    ours, loss_ours = _ner(kerasish, num_tags, vocab_size, maxlen)
    ref(x[:2])
    ours(x[:2])
    copy_weights(ours, ref)
    ref.compile(optimizer="adam", loss=loss_ref)
    ours.compile(optimizer="adam", loss=loss_ours)
    h_ref = ref.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    h_ours = ours.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-5)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(ref.evaluate(x, y, verbose=0), rel=1e-5)
    # the example's inference: argmax over the tag probabilities
    p_ref, p_ours = ref.predict(x[:8], verbose=0), ours.predict(x[:8], verbose=0)
    assert_same(p_ours, p_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np.argmax(p_ours, axis=-1), np.argmax(p_ref, axis=-1))
    # the loss ignores padding: the same loss whatever the padded predictions are
    y_pred = torch.softmax(torch.randn(2, maxlen, num_tags, generator=torch.Generator().manual_seed(0)), -1)
    y_pad = y_pred.clone()
    y_pad[torch.from_numpy(y[:2] == 0)] = 1.0 / num_tags
    y_true = torch.from_numpy(y[:2])
    assert float(loss_ours(y_true, y_pred)) == pytest.approx(float(loss_ours(y_true, y_pad)), rel=1e-6)


# ---------------------------------------------- 5. Captcha OCR with CTC
def _ocr(keras, img_width=24, img_height=8, num_classes=6):
    layers, ops = keras.layers, keras.ops

    class CTCLayer(layers.Layer):
        def __init__(self, name=None):
            super().__init__(name=name)
            # (tf.compat.v1.nn.ctc_loss on log(y_pred + eps) -> keras.ops.ctc_loss,
            # which takes logits: log-probabilities are their own log_softmax)
            self.loss_fn = keras.ops.ctc_loss

        def call(self, y_true, y_pred):
            batch_len = ops.shape(y_true)[0]
            input_length = ops.shape(y_pred)[1] * ops.ones((batch_len,), dtype="int32")
            label_length = ops.sum(ops.cast(y_true > 0, "int32"), axis=-1)
            loss = self.loss_fn(ops.cast(y_true, "int32"), ops.log(y_pred + keras.backend.epsilon()),
                                label_length, input_length, mask_index=0)
            self.add_loss(ops.mean(loss))
            # At test time, just return the computed predictions
            return y_pred

    input_img = layers.Input(shape=(img_width, img_height, 1), name="image", dtype="float32")
    labels = layers.Input(name="label", shape=(None,), dtype="float32")
    x = layers.Conv2D(4, (3, 3), activation="relu", kernel_initializer="he_normal", padding="same",
                      name="Conv1")(input_img)
    x = layers.MaxPooling2D((2, 2), name="pool1")(x)
    x = layers.Conv2D(8, (3, 3), activation="relu", kernel_initializer="he_normal", padding="same", name="Conv2")(x)
    x = layers.MaxPooling2D((2, 2), name="pool2")(x)
    new_shape = ((img_width // 4), (img_height // 4) * 8)
    x = layers.Reshape(target_shape=new_shape, name="reshape")(x)
    x = layers.Dense(8, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.0)(x)  # (0.2 in the example: unseeded noise)
    x = layers.Bidirectional(layers.LSTM(8, return_sequences=True, dropout=0.0))(x)
    x = layers.Bidirectional(layers.LSTM(4, return_sequences=True, dropout=0.0))(x)
    x = layers.Dense(num_classes + 1, activation="softmax", name="dense2")(x)
    output = CTCLayer(name="ctc_loss")(labels, x)
    model = keras.models.Model(inputs=[input_img, labels], outputs=output, name="ocr_model_v1")
    model.compile(optimizer=keras.optimizers.Adam())
    return model


def test_captcha_ocr_ctc(keras_ref):
    rng = np.random.default_rng(5)
    max_length = 3
    images = rng.random((40, 24, 8, 1)).astype("float32")
    label_ids = rng.integers(1, 7, (40, max_length)).astype("float32")
    label_ids[::4, -1] = 0  # some shorter labels, padded with 0
    train = {"image": images[:32], "label": label_ids[:32]}
    val = {"image": images[32:], "label": label_ids[32:]}
    ref, ours = _ocr(keras_ref), _ocr(kerasish)
    copy_weights(ours, ref)
    runs = []
    for keras, model in ((keras_ref, ref), (kerasish, ours)):
        early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
        runs.append(model.fit(train, validation_data=(val,), batch_size=8, epochs=2, shuffle=False,
                              callbacks=[early_stopping], verbose=0))
    assert_history(runs[1], runs[0], rtol=1e-4, atol=1e-5)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    assert ours.evaluate(val, verbose=0) == pytest.approx(ref.evaluate(val, verbose=0), rel=1e-5)

    # the example's inference model and greedy decoding
    def decode_batch_predictions(keras, model, images):
        prediction_model = keras.models.Model(model.input[0], model.get_layer(name="dense2").output)
        pred = prediction_model.predict(images, verbose=0)
        input_len = np.ones(pred.shape[0]) * pred.shape[1]
        decoded = keras.ops.ctc_decode(pred, sequence_lengths=input_len, strategy="greedy")[0][0][:, :max_length]
        return pred, np.asarray(keras.ops.convert_to_numpy(decoded))

    p_ref, d_ref = decode_batch_predictions(keras_ref, ref, images[32:])
    p_ours, d_ours = decode_batch_predictions(kerasish, ours, images[32:])
    assert_same(p_ours, p_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(d_ours, d_ref)
