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
