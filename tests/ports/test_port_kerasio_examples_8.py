"""More keras.io examples (Keras 3 versions; continued from
test_port_kerasio_examples_7.py), ported the same way: the example's code
with `import keras` changed to `import kerasish as keras` (one builder runs
with real Keras 3 on torch and with kerasish), `tf.*` rewritten with
`keras.ops` or `torch.*`, small deterministic synthetic data, shrunk sizes,
the same initial weights and the same batches (shuffle=False) in both runs.

Covered here:

26. "Conditional GAN" (generative/conditional_gan): a `keras.Model` with
    `compile(d_optimizer, g_optimizer, loss_fn)` and a `train_step` feeding
    one-hot labels to both networks (`ops.repeat(labels[:, :, None, None],
    repeats=[h * w])` reshaped into label maps), seeded `keras.random.normal`
    from a `SeedGenerator`, two optimizers, `tf.GradientTape` ->
    `backward()`, a torch DataLoader of (images, labels), and the example's
    class interpolation (`ops.linspace`, `to_categorical`, `ops.cast`).
    (Keras 3.15's torch `ops.repeat` raises "Invalid dtype: object" for the
    example's one-element `repeats` list, which kerasish takes as NumPy
    does; and it cannot `fit` the call-less model unless marked built.)
27. "Denoising Diffusion Implicit Models" (generative/ddim): a U-Net with a
    registered sinusoidal-embedding function in a `Lambda(output_shape=)`,
    `UpSampling2D` (nearest and bilinear), residual blocks with
    `BatchNormalization(center=False, scale=False)` and swish, an EMA copy
    made by `clone_model` and updated with `assign` over all weights, an
    adapted `Normalization` used in `denormalize`, `AdamW`, a per-pixel
    compiled loss read back as `self.loss` in a torch `train_step`, a
    `test_step`, seeded noise, and generation from a `LambdaCallback`.
    (The KID metric, which needs a pretrained InceptionV3, is left out.
    Keras 3.15 on torch cannot fit the example as written, see the test.)
28. "Involutional neural networks" (vision/involution): a layer creating a
    Sequential and Reshape layers in `build` and returning an (output,
    kernel) pair, `ops.image.extract_patches` in place of
    `tf.image.extract_patches`, `keras.layers.Identity` in place of
    `tf.identity`, the example's conv and involution classifiers, their
    `summary()` tables (equal to Keras's), and the visualisation model on
    the three layers' tuple outputs.
29. "Feature engineering using Keras Functional API and custom Feature
    layer" (structured_data/feature_engineering_with_custom_layer): a dict
    of `Input(shape=(1,), name=..., dtype=...)`, a layer computing features
    from the dict (`ops.logical_and`, comparisons cast to float, ratios) and
    joining them with `keras.layers.concatenate` inside `call`,
    BatchNormalization, `BinaryAccuracy` and `AUC`, the example's
    `plot_model(model, to_file=...)` (no Graphviz here: the same message
    from both), training on `dict(dataframe)` of pandas Series read from a
    CSV (the example's `make_csv_dataset` needs TensorFlow), and the saved
    `.keras` pipeline loaded by both with `custom_objects` and evaluated as
    the example does, `dict(zip(model.metrics_names, model.evaluate(...)))`
    (Keras 3's names are ["loss", "compile_metrics"]; kerasish's too). The
    string feature "thal" arrives as its category's index (no string tensors
    in Keras 3 without TensorFlow).
30. "Graph attention network (GAT) for node classification" (graph/
    gat_node_classification, Keras 3 version): GraphAttention layers
    (`add_weight` in `build` from a list input shape, `ops.take`,
    `ops.leaky_relu`, `ops.clip`, `ops.segment_sum` attention
    normalisation), a multi-head layer holding a list of them, a
    `keras.Model` keeping the graph as tensors and called on node indices,
    SGD with momentum, `validation_split` with EarlyStopping on
    `val_accuracy` (restore_best_weights), the `verbose=2` epoch lines, and
    softmax probabilities from `predict`; the Cora tables are small pandas
    frames prepared as the example does.
31. "Reproducibility in Keras Models" (keras_recipes/reproducibility_recipes):
    `keras.utils.set_random_seed`, the eleven built-in initializers called
    twice with `seed=42`, two seeded and two unseeded GlorotNormal objects,
    and the recipe's seeded training (a Sequential with no Input, Dropout,
    `fit(shuffle=True)`, `jit_compile=False`) run twice and compared through
    a JSON file. No weights are copied: the seed alone must give Keras's
    numbers. The initializers do, and the rerun is identical; the training
    does not yet (xfail, strict): unseeded `Dropout` after `MaxPooling2D`
    draws other masks than Keras, as `F.dropout` fills its mask in memory
    order and Keras's pooling output is a permuted NCHW-contiguous view
    where kerasish's is NHWC-contiguous.
32. "Text generation with a miniature GPT" (generative/
    text_generation_with_miniature_gpt): a causal mask built with
    `ops.arange` / `ops.expand_dims` on the dynamic batch size /
    `ops.tile`, `MultiHeadAttention(attention_mask=...)`, a token and
    position embedding layer, a two-output model `[logits, embeddings]`
    compiled with `loss=[loss_fn, None]` and fitted on one `y`, and the
    example's top-k sampling loop (`ops.top_k`, `keras.activations.softmax`,
    NumPy's choice seeded). (Found: kerasish raised "y_true and y_pred have
    different structures" for the one `y`, which Keras gives to the outputs
    that have a loss; fixed.)
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


# ------------------------------------------- 29. Feature engineering with a custom layer
_BINARY = ["sex", "fbs", "exang"]
_NUMERIC = ["trestbps", "chol", "thalach", "oldpeak", "slope", "cp", "restecg", "ca"]
_THAL = {"fixed": 0, "normal": 1, "reversible": 2}


def _feature_engineering_model(keras):
    ops = keras.ops
    # (tf.float32 / tf.string: Keras 3 has no string tensors without TensorFlow, so "thal" arrives
    # as its category's index, _THAL)
    dtype_mapper = {"age": "float32", "sex": "float32", "cp": "float32", "trestbps": "float32", "chol": "float32",
                    "fbs": "float32", "restecg": "float32", "thalach": "float32", "exang": "float32",
                    "oldpeak": "float32", "slope": "float32", "ca": "float32", "thal": "int64"}

    def create_inputs(data_type_mapper):
        return {feature: keras.Input(shape=(1,), name=feature, dtype=dtype)
                for feature, dtype in data_type_mapper.items()}

    class FeatureLayer(keras.layers.Layer):
        """Custom Layer for Feature engineering steps"""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

        def call(self, inputs):
            # (tf.cast / tf.math.logical_and -> keras.ops; `inputs["thal"] == "fixed"` -> the index)
            age_and_gender = ops.cast(ops.logical_and(inputs["age"] > 50, inputs["sex"] == 1), dtype="float32")
            thal_fixed_category = ops.cast(inputs["thal"] == _THAL["fixed"], dtype="float32")
            thal_reversible_category = ops.cast(inputs["thal"] == _THAL["reversible"], dtype="float32")
            thal_normal_category = ops.cast(inputs["thal"] == _THAL["normal"], dtype="float32")
            trest_chol_ratio = inputs["trestbps"] / inputs["chol"]
            trest_cross_thalach = inputs["trestbps"] * inputs["thalach"]
            feature_list = [thal_fixed_category, thal_reversible_category, thal_normal_category, age_and_gender,
                            trest_chol_ratio, trest_cross_thalach]
            engineered_feature_layer = keras.layers.concatenate(feature_list)
            numeric_feature_layer = keras.layers.concatenate([inputs[feature] for feature in _NUMERIC])
            binary_feature_layer = keras.layers.concatenate([inputs[feature] for feature in _BINARY])
            feature_layer = keras.layers.concatenate(
                [engineered_feature_layer, numeric_feature_layer, binary_feature_layer])
            return feature_layer

    feature_layer_inputs = create_inputs(dtype_mapper)
    feature_layer = FeatureLayer(name="feature_layer")(feature_layer_inputs)
    x = keras.layers.BatchNormalization(name="batch_norm")(feature_layer)
    output = keras.layers.Dense(1, activation="sigmoid", name="target")(x)
    model = keras.Model(inputs=feature_layer_inputs, outputs=output)
    model.compile(loss=keras.losses.BinaryCrossentropy(), optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")])
    return model, FeatureLayer


def _heart_csv(path, rng, n=96):
    """A heart.csv-like file (the example downloads it)."""
    import pandas as pd

    frame = pd.DataFrame({
        "age": rng.integers(29, 78, n), "sex": rng.integers(0, 2, n), "cp": rng.integers(0, 5, n),
        "trestbps": rng.integers(94, 200, n), "chol": rng.integers(126, 565, n), "fbs": rng.integers(0, 2, n),
        "restecg": rng.integers(0, 3, n), "thalach": rng.integers(71, 203, n), "exang": rng.integers(0, 2, n),
        "oldpeak": np.round(rng.random(n) * 6.2, 1), "slope": rng.integers(1, 4, n), "ca": rng.integers(0, 4, n),
        "thal": rng.choice(list(_THAL), n),
    })
    frame["target"] = ((frame["age"] > 55) ^ (frame["thal"] == "reversible")).astype("int64")
    frame.to_csv(path, index=False)


def test_feature_engineering_custom_layer(keras_ref, tmp_path, capsys):
    pd = pytest.importorskip("pandas", reason="the port reads the CSV with pandas")
    rng = np.random.default_rng(29)
    _heart_csv(tmp_path / "heart.csv", rng)
    # (tf.data.experimental.make_csv_dataset(heart_dir, batch_size=64, label_name="target") -> pandas)
    dataframe = pd.read_csv(tmp_path / "heart.csv")
    dataframe["thal"] = dataframe["thal"].map(_THAL)
    target = dataframe.pop("target")
    features = {name: column for name, column in dict(dataframe).items()}
    features = {name: (column.astype("float32") if name != "thal" else column) for name, column in features.items()}
    (ref, FeatureLayerRef), (ours, FeatureLayer) = _feature_engineering_model(keras_ref), \
        _feature_engineering_model(kerasish)
    copy_weights(ours, ref)

    # the example's `plot_model(model, to_file=...)`: no Graphviz here, and both say so the same way
    printed = []
    for keras, model in ((keras_ref, ref), (kerasish, ours)):
        capsys.readouterr()
        try:
            keras.utils.plot_model(model, to_file=str(tmp_path / "complete_model_graph.png"))
            printed.append(("printed", capsys.readouterr().out))
        except ImportError as e:  # (raised where not under IPython)
            printed.append(("raised", str(e)))
    assert printed[1] == printed[0]
    assert "graphviz" in printed[0][1]

    histories = [model.fit(features, target, batch_size=64, epochs=2, shuffle=False, verbose=0)
                 for model in (ref, ours)]
    assert sorted(histories[0].history) == ["accuracy", "auc", "loss"]
    assert_history(histories[1], histories[0])
    assert_weights(ours, ref)

    # the saved model is the whole inference pipeline: raw columns in, probabilities out
    expected = ref.evaluate(features, target, verbose=0, return_dict=True)
    assert sorted(expected) == ["accuracy", "auc", "loss"]
    assert_same(ours.evaluate(features, target, verbose=0, return_dict=True), expected)
    # Keras 3's `metrics_names` is ["loss", "compile_metrics"] (the compiled metrics as one
    # object), fitted or loaded; kerasish's too
    assert ours.metrics_names == ref.metrics_names == ["loss", "compile_metrics"]
    for saver, name in ((ref, "ref"), (ours, "ours")):
        path = str(tmp_path / f"{name}_heart.keras")
        saver.save(path)
        for keras, cls in ((keras_ref, FeatureLayerRef), (kerasish, FeatureLayer)):
            loaded_model = keras.models.load_model(path, custom_objects={"FeatureLayer": cls})
            # the example's last line: with those names the zip pairs "compile_metrics" with the
            # accuracy and drops the AUC, in both
            results = dict(zip(loaded_model.metrics_names, loaded_model.evaluate(features, target, verbose=0)))
            assert list(results) == ["loss", "compile_metrics"]
            assert_same(results, {"loss": expected["loss"], "compile_metrics": expected["accuracy"]})
            assert_same(loaded_model.evaluate(features, target, verbose=0, return_dict=True), expected)
    # the engineered features themselves, against NumPy
    engineered = ours.get_layer("feature_layer")({k: np.asarray(v)[:, None] for k, v in features.items()})
    engineered = kerasish.ops.convert_to_numpy(engineered)
    column = {k: np.asarray(v, dtype="float64") for k, v in features.items()}
    np.testing.assert_array_equal(engineered[:, 0], column["thal"] == 0)
    np.testing.assert_array_equal(engineered[:, 3], (column["age"] > 50) & (column["sex"] == 1))
    np.testing.assert_allclose(engineered[:, 4], column["trestbps"] / column["chol"], rtol=1e-6)
    np.testing.assert_allclose(engineered[:, 6:14], np.stack([column[k] for k in _NUMERIC], axis=1), rtol=1e-7)


# ------------------------------------------- 30. Graph attention networks (GAT)
def _gat(keras, node_states, edges, hidden_units=4, num_heads=2, num_layers=2, output_dim=3):
    layers, ops = keras.layers, keras.ops

    class GraphAttention(layers.Layer):
        def __init__(self, units, kernel_initializer="glorot_uniform", kernel_regularizer=None, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.kernel_initializer = keras.initializers.get(kernel_initializer)
            self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[0][-1], self.units), trainable=True,
                                          initializer=self.kernel_initializer,
                                          regularizer=self.kernel_regularizer, name="kernel")
            self.kernel_attention = self.add_weight(shape=(self.units * 2, 1), trainable=True,
                                                    initializer=self.kernel_initializer,
                                                    regularizer=self.kernel_regularizer, name="kernel_attention")
            self.built = True

        def call(self, inputs):
            node_states, edges = inputs
            z = ops.matmul(node_states, self.kernel)
            source_indices = edges[:, 1]
            target_indices = edges[:, 0]
            z_target = ops.take(z, target_indices, axis=0)
            z_source = ops.take(z, source_indices, axis=0)
            z_concat = ops.concatenate([z_target, z_source], axis=-1)
            attention_scores = ops.leaky_relu(ops.matmul(z_concat, self.kernel_attention))
            attention_scores = ops.squeeze(attention_scores, -1)
            attention_scores = ops.exp(ops.clip(attention_scores, -2, 2))
            num_nodes = ops.shape(node_states)[0]
            attention_sum = ops.segment_sum(attention_scores, target_indices, num_segments=num_nodes)
            attention_sum_per_edge = ops.take(attention_sum, target_indices, axis=0)
            attention_norm = attention_scores / (attention_sum_per_edge + 1e-8)
            node_states_neighbors = ops.take(z, source_indices, axis=0)
            weighted_neighbors = node_states_neighbors * ops.expand_dims(attention_norm, axis=-1)
            return ops.segment_sum(weighted_neighbors, target_indices, num_segments=num_nodes)

    class MultiHeadGraphAttention(layers.Layer):
        def __init__(self, units, num_heads=8, merge_type="concat", **kwargs):
            super().__init__(**kwargs)
            self.num_heads = num_heads
            self.merge_type = merge_type
            self.attention_layers = [GraphAttention(units) for _ in range(num_heads)]

        def call(self, inputs):
            node_states, edges = inputs
            outputs = [layer([node_states, edges]) for layer in self.attention_layers]
            if self.merge_type == "concat":
                outputs = ops.concatenate(outputs, axis=-1)
            else:
                outputs = ops.mean(ops.stack(outputs, axis=0), axis=0)
            return ops.relu(outputs)

    class GraphAttentionNetwork(keras.Model):
        def __init__(self, node_states, edges, hidden_units, num_heads, num_layers, output_dim, **kwargs):
            super().__init__(**kwargs)
            self.node_states = node_states
            self.edges = edges
            self.preprocess = layers.Dense(hidden_units * num_heads, activation="relu")
            self.attention_layers = [MultiHeadGraphAttention(hidden_units, num_heads) for _ in range(num_layers)]
            self.output_layer = layers.Dense(output_dim)

        def call(self, inputs, training=False):
            indices = inputs
            x = self.preprocess(self.node_states)
            for attention_layer in self.attention_layers:
                x = attention_layer([x, self.edges]) + x
            outputs = self.output_layer(x)
            return ops.take(outputs, indices, axis=0)

    node_states = ops.convert_to_tensor(node_states, dtype="float32")
    edges = ops.convert_to_tensor(edges)
    gat_model = GraphAttentionNetwork(node_states, edges, hidden_units, num_heads, num_layers, output_dim)
    gat_model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      optimizer=keras.optimizers.SGD(learning_rate=0.03, momentum=0.9),  # (0.003)
                      metrics=["accuracy"])
    return gat_model


def test_gat_node_classification(keras_ref, capsys):
    pd = pytest.importorskip("pandas", reason="the example prepares the Cora tables with pandas")
    rng = np.random.default_rng(30)
    num_papers, num_words, num_classes = 40, 12, 3
    # Cora in miniature: papers (id, word flags, subject) and citations (target, source)
    subjects = rng.integers(0, num_classes, num_papers)
    words = (rng.random((num_papers, num_words)) < 0.2) | (np.arange(num_words)[None] % num_classes
                                                           == subjects[:, None])
    papers = pd.DataFrame(words.astype("int64"), columns=[f"term_{i}" for i in range(num_words)])
    papers.insert(0, "paper_id", rng.permutation(num_papers) + 1000)
    papers["subject"] = subjects
    pairs = rng.integers(0, num_papers, size=(90, 2))
    citations = pd.DataFrame({"target": papers["paper_id"].to_numpy()[pairs[:, 0]],
                              "source": papers["paper_id"].to_numpy()[pairs[:, 1]]})
    # the example's preparation: ids and subjects to indices, papers sorted by id
    paper_idx = {name: idx for idx, name in enumerate(sorted(papers["paper_id"].unique()))}
    papers["paper_id"] = papers["paper_id"].apply(lambda name: paper_idx[name])
    citations["source"] = citations["source"].apply(lambda name: paper_idx[name])
    citations["target"] = citations["target"].apply(lambda name: paper_idx[name])
    train_data, test_data = papers.iloc[:30], papers.iloc[30:]
    train_indices, test_indices = train_data["paper_id"].to_numpy(), test_data["paper_id"].to_numpy()
    train_labels, test_labels = train_data["subject"].to_numpy(), test_data["subject"].to_numpy()
    edges = citations[["target", "source"]].to_numpy()
    node_states = papers.sort_values("paper_id").iloc[:, 1:-1].to_numpy()

    ref, ours = _gat(keras_ref, node_states, edges), _gat(kerasish, node_states, edges)
    ref(train_indices[:2])
    ours(train_indices[:2])
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in ref.weights]
    copy_weights(ours, ref)
    histories, logs = [], []
    for model, keras in ((ref, keras_ref), (ours, kerasish)):
        capsys.readouterr()
        histories.append(model.fit(x=train_indices, y=train_labels, validation_split=0.1, batch_size=8, epochs=3,
                                   callbacks=[keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=5,
                                                                            restore_best_weights=True)],
                                   shuffle=False, verbose=2))
        logs.append(capsys.readouterr().out)
    assert_history(histories[1], histories[0])
    assert_weights(ours, ref)
    # the `verbose=2` epoch lines read as Keras's, values to the printed 4 digits (clock parts aside;
    # the runs are deterministic, so a rounding tie cannot flicker)
    import re

    def numbers(log):
        return [re.sub(r"\d+m?s(/step)?", "T", line) for line in log.splitlines()]

    assert len(numbers(logs[0])) == 6
    assert numbers(logs[1]) == numbers(logs[0])
    results = [model.evaluate(x=test_indices, y=test_labels, verbose=0) for model in (ref, ours)]
    assert_same(results[1], results[0])
    probs = []
    for model, keras in ((ref, keras_ref), (ours, kerasish)):
        test_logits = model.predict(x=test_indices, verbose=0)
        test_probs = keras.ops.softmax(test_logits)
        probs.append(keras.ops.convert_to_numpy(test_probs))
    assert probs[0].shape == (10, num_classes)
    np.testing.assert_allclose(probs[0].sum(axis=1), 1.0, rtol=1e-5)
    assert_same(probs[1], probs[0])


# ------------------------------------------------- 31. Reproducibility recipes
_INITIALIZERS = ["RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling", "GlorotNormal",
                 "GlorotUniform", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal"]


def _reproducible_run(keras, train, test):
    """The recipe's `train_model`, after `keras.utils.set_random_seed(812)`:
    no weights are copied between the frameworks here, the seed alone must
    give the same initial weights, dropout masks and shuffles."""
    layers = keras.layers
    keras.utils.set_random_seed(812)
    # (the recipe's initializer checks)
    results = {}
    for name in _INITIALIZERS:
        initializer = getattr(keras.initializers, name)
        results[name] = [float(keras.ops.convert_to_numpy(initializer(seed=42)(shape=(1, 1)))[0, 0])
                         for _ in range(2)]
    glorot_normal_1 = keras.initializers.GlorotNormal(seed=42)
    glorot_normal_2 = keras.initializers.GlorotNormal(seed=42)
    results["seeded"] = [keras.ops.convert_to_numpy(init(shape=(3, 5))) for init in (glorot_normal_1,
                                                                                      glorot_normal_2)]
    glorot_normal_3 = keras.initializers.GlorotNormal()
    glorot_normal_4 = keras.initializers.GlorotNormal()
    results["unseeded"] = [keras.ops.convert_to_numpy(init(shape=(3, 5))) for init in (glorot_normal_3,
                                                                                        glorot_normal_4)]

    model = keras.Sequential([
        layers.Conv2D(4, (3, 3), activation="relu"),  # (32 filters, 32x32 images)
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.2),
        layers.Conv2D(4, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.2),
        layers.GlobalAveragePooling2D(),  # (a third Conv2D in the recipe: 12x12 images here)
        layers.Dense(8, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=False)
    # (a tf.data pipeline shuffled with the seed in the recipe: `fit(shuffle=True)` on arrays here)
    history = model.fit(*train, batch_size=16, epochs=2, validation_data=test, verbose=0)
    results["history"] = history.history
    results["test"] = model.evaluate(*test, verbose=0)
    results["weights"] = model.get_weights()
    return results


def _reproducibility_data():
    rng = np.random.default_rng(31)
    train = (rng.random((64, 12, 12, 1)).astype("float32"), rng.integers(0, 10, 64))
    test = (rng.random((32, 12, 12, 1)).astype("float32"), rng.integers(0, 10, 32))
    return train, test


def test_reproducibility_recipes_initializers_and_rerun(keras_ref, tmp_path):
    import json

    train, test = _reproducibility_data()
    ref = _reproducible_run(keras_ref, train, test)
    ours = _reproducible_run(kerasish, train, test)
    for name in _INITIALIZERS:
        # the same seed draws the same value each time, and Keras's value
        assert ours[name][0] == ours[name][1], name
        np.testing.assert_allclose(ours[name], ref[name], rtol=1e-6, err_msg=name)
    np.testing.assert_array_equal(ours["seeded"][0], ours["seeded"][1])
    np.testing.assert_allclose(ours["seeded"], ref["seeded"], rtol=1e-6)
    # unseeded initializers differ from each other, and each equals Keras's after the same global seed
    assert not np.allclose(ours["unseeded"][0], ours["unseeded"][1])
    np.testing.assert_allclose(ours["unseeded"], ref["unseeded"], rtol=1e-6)
    # the recipe's point: a second run is the first one again (compared through a JSON file)
    with open(tmp_path / "history.json", "w") as fp:
        json.dump(ours["history"], fp)
    again = _reproducible_run(kerasish, train, test)
    with open(tmp_path / "history.json") as fp:
        history_loaded = json.load(fp)
    for key in again["history"]:
        for i in range(len(again["history"][key])):
            assert again["history"][key][i] == history_loaded[key][i], key
    for a, b in zip(again["weights"], ours["weights"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.xfail(strict=True, reason=(
    "unseeded Dropout after a pooling layer draws other masks than Keras 3 (torch): both call F.dropout, "
    "which fills its mask in the input's memory order; Keras's pooling returns a permuted NCHW-contiguous "
    "view, kerasish's an NHWC-contiguous tensor (giving kerasish's MaxPooling2D output Keras's strides "
    "makes this run equal Keras's)"))
def test_reproducibility_recipes_training_equals_keras(keras_ref):
    train, test = _reproducibility_data()
    ref = _reproducible_run(keras_ref, train, test)
    ours = _reproducible_run(kerasish, train, test)
    # the initial weights are Keras's (no copy: the seed alone)
    # and the seeded training (dropout masks, shuffled batches) should be Keras's too
    assert_same(ours["history"], ref["history"])
    assert_same(ours["test"], ref["test"])
    for a, b in zip(ours["weights"], ref["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------ 32. Text generation with a miniature GPT
def _miniature_gpt(keras, vocab_size=30, maxlen=10, embed_dim=8, num_heads=2, feed_forward_dim=16):
    layers, ops = keras.layers, keras.ops

    def causal_attention_mask(batch_size, n_dest, n_src, dtype):
        i = ops.arange(n_dest)[:, None]
        j = ops.arange(n_src)
        m = i >= j - n_src + n_dest
        mask = ops.cast(m, dtype)
        mask = ops.reshape(mask, [1, n_dest, n_src])
        mult = ops.concatenate([ops.expand_dims(batch_size, -1), ops.convert_to_tensor([1, 1])], 0)
        return ops.tile(mask, mult)

    class TransformerBlock(layers.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.0):  # (rate 0.1 in the example)
            super().__init__()
            self.att = layers.MultiHeadAttention(num_heads, embed_dim)
            self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = layers.Dropout(rate)
            self.dropout2 = layers.Dropout(rate)

        def call(self, inputs):
            input_shape = ops.shape(inputs)
            batch_size = input_shape[0]
            seq_len = input_shape[1]
            causal_mask = causal_attention_mask(batch_size, seq_len, seq_len, "bool")
            attention_output = self.att(inputs, inputs, attention_mask=causal_mask)
            attention_output = self.dropout1(attention_output)
            out1 = self.layernorm1(inputs + attention_output)
            ffn_output = self.ffn(out1)
            ffn_output = self.dropout2(ffn_output)
            return self.layernorm2(out1 + ffn_output)

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim):
            super().__init__()
            self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x):
            maxlen = ops.shape(x)[-1]
            positions = ops.arange(0, maxlen, 1)
            positions = self.pos_emb(positions)
            x = self.token_emb(x)
            return x + positions

    inputs = layers.Input(shape=(maxlen,), dtype="int32")
    embedding_layer = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)
    x = embedding_layer(inputs)
    transformer_block = TransformerBlock(embed_dim, num_heads, feed_forward_dim)
    x = transformer_block(x)
    outputs = layers.Dense(vocab_size)(x)
    model = keras.Model(inputs=inputs, outputs=[outputs, x])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss=[loss_fn, None])  # No loss and optimization based on word embeddings
    return model, causal_attention_mask


def _generate(keras, model, start_tokens, max_tokens, maxlen=10, k=5, seed=0):
    """The example's TextGenerator callback: top-k sampling from the first
    output, NumPy's choice seeded here (the example's is global)."""
    ops = keras.ops
    rng = np.random.default_rng(seed)

    def sample_from(logits):
        logits, indices = ops.top_k(logits, k=k, sorted=True)
        indices = np.asarray(ops.convert_to_numpy(indices)).astype("int32")
        preds = keras.activations.softmax(ops.expand_dims(logits, 0))[0]
        preds = np.asarray(ops.convert_to_numpy(preds)).astype("float64")
        preds = preds / preds.sum()
        return rng.choice(indices, p=preds)

    start_tokens = list(start_tokens)
    num_tokens_generated, tokens_generated = 0, []
    while num_tokens_generated <= max_tokens:
        pad_len = maxlen - len(start_tokens)
        sample_index = len(start_tokens) - 1
        if pad_len < 0:
            x = start_tokens[:maxlen]
            sample_index = maxlen - 1
        elif pad_len > 0:
            x = start_tokens + [0] * pad_len
        else:
            x = start_tokens
        x = np.array([x])
        y, _ = model.predict(x, verbose=0)
        sample_token = sample_from(y[0][sample_index])
        tokens_generated.append(int(sample_token))
        start_tokens.append(sample_token)
        num_tokens_generated = len(tokens_generated)
    return tokens_generated


def test_miniature_gpt_text_generation(keras_ref):
    rng = np.random.default_rng(32)
    # (IMDB text through TextVectorization, a TensorFlow layer in Keras 3: token ids here; the
    # example's `prepare_lm_inputs_labels` shifts them by one)
    tokens = rng.integers(1, 30, size=(40, 11))
    x, y = tokens[:, :-1].astype("int32"), tokens[:, 1:]
    (ref, mask_ref), (ours, mask) = _miniature_gpt(keras_ref), _miniature_gpt(kerasish)
    # the causal mask: lower triangular, tiled over the batch
    expected = np.tril(np.ones((4, 4), bool))[None].repeat(3, axis=0)
    np.testing.assert_array_equal(kerasish.ops.convert_to_numpy(mask(3, 4, 4, "bool")), expected)
    np.testing.assert_array_equal(keras_ref.ops.convert_to_numpy(mask_ref(3, 4, 4, "bool")), expected)
    copy_weights(ours, ref)
    # `fit` with one target for two outputs: the `None` loss leaves the second out
    histories = [model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0) for model in (ref, ours)]
    assert_history(histories[1], histories[0])
    assert_weights(ours, ref)
    predictions = [model.predict(x[:4], verbose=0) for model in (ref, ours)]
    assert isinstance(predictions[1], list) and len(predictions[1]) == 2
    assert predictions[0][0].shape == (4, 10, 30) and predictions[0][1].shape == (4, 10, 8)
    assert_same(predictions[1], predictions[0])
    # the example's generation from a prompt (top-k sampling, NumPy's choice seeded the same)
    generated = [_generate(keras, model, [3, 7], 12) for keras, model in ((keras_ref, ref), (kerasish, ours))]
    assert len(generated[0]) == 13
    assert generated[1] == generated[0]
