"""More keras.io examples (Keras 3 versions; continued from
test_port_kerasio_examples_2.py), ported as a user would: the example's
model/layer/training code with `import keras` changed to `import kerasish
as keras` (here one builder runs with real Keras 3 on torch
and with kerasish), `tf.*` / `tf.GradientTape` code rewritten with `torch.*`
and `torch.autograd` (the same torch code runs under Keras's torch backend),
small deterministic synthetic data, shrunk sizes, the same initial weights
(get_weights/set_weights) and the same batches (shuffle=False) in both runs.

Covered here:

6. "PixelCNN" (generative/pixelcnn): a layer that re-masks its Conv2D kernel
   with `kernel.assign(kernel * mask)` inside `call`, `Input(batch_size=...)`
   with a smaller last batch, and the pixel-by-pixel sampling loop (seeded).
7. "Actor Critic Method" (rl/actor_critic_cartpole): the hand-written episode
   loop (`tf.GradientTape` -> `backward()`, `apply_gradients`), a two-output
   model, Huber loss on scalars, against a small deterministic cart-pole.
8. "Compact Convolutional Transformers" (vision/cct): a Sequential built
   with `.add` inside a layer, `encoded_patches += PositionEmbedding(...)`
   on KerasTensors, `activation=keras.ops.gelu`, StochasticDepth drawing
   seeded `keras.random.uniform`, label smoothing, a top-k metric, a
   best-only weights checkpoint reloaded before evaluate.
9. "Timeseries forecasting for weather prediction" (timeseries/
   timeseries_weather_forecasting): `keras.preprocessing.
   timeseries_dataset_from_array` with a sampling rate (Keras's needs
   TensorFlow: the Keras run gets the same windows from a NumPy reference,
   which kerasish's dataset is checked against), `dataset.take(n)`, LSTM,
   EarlyStopping and a verbose best-only ModelCheckpoint whose messages must
   read as Keras's.
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

# the same autouse fixtures as the first file: Keras seeded, one torch thread
from tests.ports.test_port_kerasio_examples_2 import _one_thread  # noqa: F401
from tests.ports.test_port_kerasio_examples_2 import _seeded  # noqa: F401


# --------------------------------------------------------- 6. PixelCNN
def _pixel_cnn(keras, input_shape=(6, 6, 1), filters=8, n_residual_blocks=2):
    layers, ops = keras.layers, keras.ops

    class PixelConvLayer(layers.Layer):
        def __init__(self, mask_type, **kwargs):
            super().__init__()
            self.mask_type = mask_type
            self.conv = layers.Conv2D(**kwargs)

        def build(self, input_shape):
            # Build the conv2d layer to initialize kernel variables
            self.conv.build(input_shape)
            # Use the initialized kernel to create the mask
            kernel_shape = ops.shape(self.conv.kernel)
            self.mask = np.zeros(shape=kernel_shape)
            self.mask[: kernel_shape[0] // 2, ...] = 1.0
            self.mask[kernel_shape[0] // 2, : kernel_shape[1] // 2, ...] = 1.0
            if self.mask_type == "B":
                self.mask[kernel_shape[0] // 2, kernel_shape[1] // 2, ...] = 1.0

        def call(self, inputs):
            self.conv.kernel.assign(self.conv.kernel * self.mask)
            return self.conv(inputs)

    class ResidualBlock(keras.layers.Layer):
        def __init__(self, filters, **kwargs):
            super().__init__(**kwargs)
            self.conv1 = keras.layers.Conv2D(filters=filters, kernel_size=1, activation="relu")
            self.pixel_conv = PixelConvLayer(
                mask_type="B", filters=filters // 2, kernel_size=3, activation="relu", padding="same"
            )
            self.conv2 = keras.layers.Conv2D(filters=filters, kernel_size=1, activation="relu")

        def call(self, inputs):
            x = self.conv1(inputs)
            x = self.pixel_conv(x)
            x = self.conv2(x)
            return keras.layers.add([inputs, x])

    inputs = keras.Input(shape=input_shape, batch_size=16)
    x = PixelConvLayer(mask_type="A", filters=filters, kernel_size=5, activation="relu", padding="same")(inputs)
    for _ in range(n_residual_blocks):
        x = ResidualBlock(filters=filters)(x)
    for _ in range(2):
        x = PixelConvLayer(mask_type="B", filters=filters, kernel_size=1, strides=1, activation="relu",
                           padding="valid")(x)
    out = keras.layers.Conv2D(filters=1, kernel_size=1, strides=1, activation="sigmoid", padding="valid")(x)
    pixel_cnn = keras.Model(inputs, out)
    adam = keras.optimizers.Adam(learning_rate=0.0005)
    pixel_cnn.compile(optimizer=adam, loss="binary_crossentropy")
    return pixel_cnn


def test_pixel_cnn_masked_kernel_assign(keras_ref):
    rng = np.random.default_rng(6)
    data = (rng.random((40, 6, 6, 1)) > 0.5).astype("float32")
    ref, ours = _pixel_cnn(keras_ref), _pixel_cnn(kerasish)
    copy_weights(ours, ref)
    # (batch_size=16 in Input, 36 training rows: the last batch has 4)
    h_ref = ref.fit(x=data, y=data, batch_size=16, epochs=2, validation_split=0.1, shuffle=False, verbose=0)
    h_ours = ours.fit(x=data, y=data, batch_size=16, epochs=2, validation_split=0.1, shuffle=False, verbose=0)
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-5)
    # the masked kernel entries get gradients and Adam steps after the
    # last assign: both keep them the same way
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    assert ours.input_shape == ref.input_shape == (16, 6, 6, 1)

    # the example's pixel-by-pixel sampling (seeded here), 4 images
    def sample(keras, pixel_cnn):
        seed = keras.random.SeedGenerator(7)
        pixels = np.zeros(shape=(4,) + (pixel_cnn.input_shape)[1:])
        batch, rows, cols, channels = pixels.shape
        for row in range(rows):
            for col in range(cols):
                for channel in range(channels):
                    probs = pixel_cnn.predict(pixels, verbose=0)[:, row, col, channel]
                    # (`probs - keras.random.uniform(...)`, NumPy minus a torch
                    # tensor, is a TypeError on Keras's torch backend too)
                    pixels[:, row, col, channel] = keras.ops.convert_to_numpy(
                        keras.ops.ceil(keras.ops.subtract(probs, keras.random.uniform(probs.shape, seed=seed))))
        return pixels

    s_ref, s_ours = sample(keras_ref, ref), sample(kerasish, ours)
    np.testing.assert_array_equal(s_ours, s_ref)
    assert 0 < s_ref.mean() < 1


# ------------------------------------------- 7. Actor-critic (CartPole)
class _CartPole:
    """A small deterministic cart-pole (the classic equations of motion,
    Euler steps), standing in for gym's CartPole-v0: `reset()` and `step()`
    return what gym's do."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def reset(self):
        self.state = self.rng.uniform(-0.05, 0.05, 4)
        return self.state.astype("float32"), {}

    def step(self, action):
        x, x_dot, theta, theta_dot = self.state
        force = 10.0 if action == 1 else -10.0
        total_mass, pole_mass_length, length = 1.1, 0.05, 0.5
        temp = (force + pole_mass_length * theta_dot**2 * np.sin(theta)) / total_mass
        theta_acc = (9.8 * np.sin(theta) - np.cos(theta) * temp) / (
            length * (4.0 / 3.0 - 0.1 * np.cos(theta) ** 2 / total_mass))
        x_acc = temp - pole_mass_length * theta_acc * np.cos(theta) / total_mass
        tau = 0.02
        self.state = np.array([x + tau * x_dot, x_dot + tau * x_acc, theta + tau * theta_dot,
                               theta_dot + tau * theta_acc])
        done = bool(abs(self.state[0]) > 2.4 or abs(self.state[2]) > 12 * 2 * np.pi / 360)
        return self.state.astype("float32"), 1.0, done, False, {}


def _actor_critic(keras, env, episodes=4, max_steps_per_episode=25, num_hidden=16, weights=None):
    layers, ops = keras.layers, keras.ops
    gamma = 0.99
    eps = np.finfo(np.float32).eps.item()
    num_inputs, num_actions = 4, 2

    inputs = layers.Input(shape=(num_inputs,))
    common = layers.Dense(num_hidden, activation="relu")(inputs)
    action = layers.Dense(num_actions, activation="softmax")(common)
    critic = layers.Dense(1)(common)
    model = keras.Model(inputs=inputs, outputs=[action, critic])
    if weights is not None:
        model.set_weights(weights)
    initial = model.get_weights()

    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    huber_loss = keras.losses.Huber()
    action_probs_history, critic_value_history, rewards_history = [], [], []
    running_reward, losses, actions = 0, [], []
    rng = np.random.RandomState(0)  # (np.random.choice, seeded)

    for _ in range(episodes):
        state = env.reset()[0]
        episode_reward = 0
        # (tf.GradientTape -> torch autograd: the graph is recorded anyway)
        for timestep in range(1, max_steps_per_episode):
            state = ops.convert_to_tensor(state)
            state = ops.expand_dims(state, 0)
            # Predict action probabilities and estimated future rewards
            action_probs, critic_value = model(state)
            critic_value_history.append(critic_value[0, 0])
            # Sample action from action probability distribution
            # (np.squeeze of a tensor that requires grad fails on torch: detach)
            action = rng.choice(num_actions, p=np.squeeze(action_probs.detach().cpu().numpy()))
            actions.append(action)
            action_probs_history.append(ops.log(action_probs[0, action]))
            state, reward, done, *_ = env.step(action)
            rewards_history.append(reward)
            episode_reward += reward
            if done:
                break
        running_reward = 0.05 * episode_reward + (1 - 0.05) * running_reward

        returns, discounted_sum = [], 0
        for r in rewards_history[::-1]:
            discounted_sum = r + gamma * discounted_sum
            returns.insert(0, discounted_sum)
        returns = np.array(returns)
        returns = (returns - np.mean(returns)) / (np.std(returns) + eps)
        returns = returns.tolist()

        history = zip(action_probs_history, critic_value_history, returns)
        actor_losses, critic_losses = [], []
        for log_prob, value, ret in history:
            diff = ret - value
            actor_losses.append(-log_prob * diff)
            critic_losses.append(huber_loss(ops.expand_dims(value, 0), ops.expand_dims(ret, 0)))

        loss_value = sum(actor_losses) + sum(critic_losses)
        # (tape.gradient -> backward; the gradients are the variables' .grad)
        for v in model.trainable_variables:
            v.value.grad = None
        loss_value.backward()
        grads = [v.value.grad for v in model.trainable_variables]
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss_value))

        action_probs_history.clear()
        critic_value_history.clear()
        rewards_history.clear()
    return model, initial, running_reward, losses, actions


def test_actor_critic_hand_written_loop(keras_ref):
    ref, initial, reward_ref, losses_ref, actions_ref = _actor_critic(keras_ref, _CartPole(0))
    ours, _, reward_ours, losses_ours, actions_ours = _actor_critic(kerasish, _CartPole(0), weights=initial)
    assert actions_ours == actions_ref
    assert reward_ours == reward_ref
    np.testing.assert_allclose(losses_ours, losses_ref, rtol=1e-4, atol=1e-5)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    state = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    assert_same(ours.predict(state, verbose=0), ref.predict(state, verbose=0), rtol=1e-4, atol=1e-5)


# ------------------------------- 8. Compact Convolutional Transformer
def _cct(keras, image_size=8, num_classes=4, projection_dim=8, num_heads=2, transformer_layers=2,
         stochastic_depth_rate=0.3):
    layers = keras.layers
    transformer_units = [projection_dim, projection_dim]
    input_shape = (image_size, image_size, 3)

    class CCTTokenizer(layers.Layer):
        def __init__(self, kernel_size=3, stride=1, padding=1, pooling_kernel_size=3, pooling_stride=2,
                     num_conv_layers=2, num_output_channels=[4, 8], positional_emb=True, **kwargs):
            super().__init__(**kwargs)
            self.conv_model = keras.Sequential()
            for i in range(num_conv_layers):
                self.conv_model.add(layers.Conv2D(num_output_channels[i], kernel_size, stride, padding="valid",
                                                  use_bias=False, activation="relu", kernel_initializer="he_normal"))
                self.conv_model.add(layers.ZeroPadding2D(padding))
                self.conv_model.add(layers.MaxPooling2D(pooling_kernel_size, pooling_stride, "same"))
            self.positional_emb = positional_emb

        def call(self, images):
            outputs = self.conv_model(images)
            reshaped = keras.ops.reshape(
                outputs, (-1, keras.ops.shape(outputs)[1] * keras.ops.shape(outputs)[2], keras.ops.shape(outputs)[-1])
            )
            return reshaped

    class PositionEmbedding(keras.layers.Layer):
        def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
            super().__init__(**kwargs)
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
            feature_length, sequence_length = shape[-1], shape[-2]
            position_embeddings = keras.ops.convert_to_tensor(self.position_embeddings)
            position_embeddings = keras.ops.slice(position_embeddings, (start_index, 0),
                                                  (sequence_length, feature_length))
            return keras.ops.broadcast_to(position_embeddings, shape)

        def compute_output_shape(self, input_shape):
            return input_shape

    class SequencePooling(layers.Layer):
        def __init__(self):
            super().__init__()
            self.attention = layers.Dense(1)

        def call(self, x):
            attention_weights = keras.ops.softmax(self.attention(x), axis=1)
            attention_weights = keras.ops.transpose(attention_weights, axes=(0, 2, 1))
            weighted_representation = keras.ops.matmul(attention_weights, x)
            return keras.ops.squeeze(weighted_representation, -2)

    class StochasticDepth(layers.Layer):
        def __init__(self, drop_prop, **kwargs):
            super().__init__(**kwargs)
            self.drop_prob = drop_prop
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, x, training=None):
            if training:
                keep_prob = 1 - self.drop_prob
                shape = (keras.ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
                random_tensor = keep_prob + keras.random.uniform(shape, 0, 1, seed=self.seed_generator)
                random_tensor = keras.ops.floor(random_tensor)
                return (x / keep_prob) * random_tensor
            return x

    def mlp(x, hidden_units, dropout_rate):
        for units in hidden_units:
            x = layers.Dense(units, activation=keras.ops.gelu)(x)
            x = layers.Dropout(dropout_rate)(x)
        return x

    data_augmentation = keras.Sequential(
        [
            layers.Rescaling(scale=1.0 / 255),
            layers.RandomCrop(image_size, image_size),
            # (RandomFlip("horizontal") draws unseeded noise: left out)
        ],
        name="data_augmentation",
    )

    inputs = layers.Input(input_shape)
    augmented = data_augmentation(inputs)
    cct_tokenizer = CCTTokenizer()
    encoded_patches = cct_tokenizer(augmented)
    sequence_length = encoded_patches.shape[1]
    encoded_patches += PositionEmbedding(sequence_length=sequence_length)(encoded_patches)
    dpr = [x for x in np.linspace(0, stochastic_depth_rate, transformer_layers)]
    for i in range(transformer_layers):
        x1 = layers.LayerNormalization(epsilon=1e-5)(encoded_patches)
        # (dropout=0.1 / Dropout(0.1) in the example: unseeded noise, 0 here)
        attention_output = layers.MultiHeadAttention(num_heads=num_heads, key_dim=projection_dim, dropout=0.0)(x1, x1)
        attention_output = StochasticDepth(dpr[i])(attention_output)
        x2 = layers.Add()([attention_output, encoded_patches])
        x3 = layers.LayerNormalization(epsilon=1e-5)(x2)
        x3 = mlp(x3, hidden_units=transformer_units, dropout_rate=0.0)
        x3 = StochasticDepth(dpr[i])(x3)
        encoded_patches = layers.Add()([x3, x2])
    representation = layers.LayerNormalization(epsilon=1e-5)(encoded_patches)
    weighted_representation = SequencePooling()(representation)
    logits = layers.Dense(num_classes)(weighted_representation)
    return keras.Model(inputs=inputs, outputs=logits)


def _run_cct(keras, model, x_train, y_train, x_test, y_test, checkpoint_filepath):
    optimizer = keras.optimizers.AdamW(learning_rate=0.001, weight_decay=0.0001)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(2, name="top-2-accuracy"),
        ],
    )
    checkpoint_callback = keras.callbacks.ModelCheckpoint(
        checkpoint_filepath, monitor="val_accuracy", save_best_only=True, save_weights_only=True
    )
    history = model.fit(x=x_train, y=y_train, batch_size=16, epochs=3, validation_split=0.25,
                        callbacks=[checkpoint_callback], shuffle=False, verbose=0)
    model.load_weights(checkpoint_filepath)
    _, accuracy, top_2_accuracy = model.evaluate(x_test, y_test, verbose=0)
    return history, accuracy, top_2_accuracy


def test_compact_convolutional_transformer(keras_ref, tmp_path):
    rng = np.random.default_rng(8)
    x = rng.integers(0, 256, (80, 8, 8, 3)).astype("float32")
    y = np.eye(4, dtype="float32")[rng.integers(0, 4, 80)]
    ref, ours = _cct(keras_ref), _cct(kerasish)
    copy_weights(ours, ref)
    h_ref, acc_ref, top2_ref = _run_cct(keras_ref, ref, x[:64], y[:64], x[64:], y[64:], str(tmp_path / "r.weights.h5"))
    h_ours, acc_ours, top2_ours = _run_cct(kerasish, ours, x[:64], y[:64], x[64:], y[64:],
                                           str(tmp_path / "o.weights.h5"))
    # StochasticDepth draws keras.random.uniform from its SeedGenerator: the
    # same numbers in both frameworks, so the noisy training matches
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-5)
    assert (acc_ours, top2_ours) == pytest.approx((acc_ref, top2_ref), abs=1e-6)
    # SequencePooling's Dense(1) bias shifts every score before a softmax over
    # the sequence: its gradient is zero in exact arithmetic, and AdamW turns
    # the float32 rounding noise into steps of up to lr (9 steps here), in
    # both frameworks differently. Every other weight agrees to 1e-5.
    pooling_bias = [i for i, w in enumerate(ref.weights) if w.path.startswith("sequence_pooling")][-1]
    for i, (a, b) in enumerate(zip(ours.get_weights(), ref.get_weights())):
        atol = 9 * 0.001 if i == pooling_bias else 1e-5
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol, err_msg=f"weight {i}")
    assert_same(ours.predict(x[64:], verbose=0), ref.predict(x[64:], verbose=0), rtol=1e-4, atol=1e-5)


# ------------------------------------ 9. Weather forecasting with an LSTM
def _windows(data, targets, sequence_length, sampling_rate):
    """NumPy reference of Keras's windows: x[i] = data[i + k * sampling_rate],
    y[i] = targets[i] (Keras 3's timeseries_dataset_from_array needs
    TensorFlow, so the Keras run gets these arrays)."""
    n = min(len(data) - (sequence_length - 1) * sampling_rate, len(targets))
    idx = np.arange(n)[:, None] + np.arange(sequence_length) * sampling_rate
    return data[idx], targets[:n]


def test_weather_forecasting_lstm(keras_ref, tmp_path, capsys):
    rng = np.random.default_rng(9)
    t = np.arange(420)
    raw = np.stack([np.sin(t / (5 + k)) + 0.1 * rng.normal(size=t.size) for k in range(7)], axis=1)
    split_fraction, step, past, future = 0.7, 2, 12, 4
    learning_rate, batch_size, epochs = 0.001, 16, 3
    train_split = int(split_fraction * int(raw.shape[0]))

    def normalize(data, train_split):
        data_mean = data[:train_split].mean(axis=0)
        data_std = data[:train_split].std(axis=0)
        return (data - data_mean) / data_std

    features = normalize(raw, train_split).astype("float32")
    train_data, val_data = features[:train_split], features[train_split:]
    start = past + future
    end = start + train_split
    x_train = train_data[:, :7]
    y_train = features[start:end][:, [1]]
    sequence_length = int(past / step)
    x_end = len(val_data) - past - future
    label_start = train_split + past + future
    x_val = val_data[:x_end][:, :7]
    y_val = features[label_start:][:, [1]]

    keras = kerasish
    dataset_train = keras.preprocessing.timeseries_dataset_from_array(
        x_train, y_train, sequence_length=sequence_length, sampling_rate=step, batch_size=batch_size)
    dataset_val = keras.preprocessing.timeseries_dataset_from_array(
        x_val, y_val, sequence_length=sequence_length, sampling_rate=step, batch_size=batch_size)
    # the kerasish dataset holds the reference windows, in order
    wx, wy = _windows(x_train, y_train, sequence_length, step)
    vx, vy = _windows(x_val, y_val, sequence_length, step)
    got = list(dataset_train)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in got]), wx)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in got]), wy)
    for batch in dataset_train.take(1):
        inputs, targets = batch
    assert tuple(inputs.shape) == (batch_size, sequence_length, 7) and tuple(targets.shape) == (batch_size, 1)

    def build(keras):
        inputs_ = keras.layers.Input(shape=(inputs.shape[1], inputs.shape[2]))
        lstm_out = keras.layers.LSTM(8)(inputs_)
        outputs = keras.layers.Dense(1)(lstm_out)
        model = keras.Model(inputs=inputs_, outputs=outputs)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
        return model

    def callbacks(keras, path_checkpoint):
        es_callback = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0, patience=5)
        modelckpt_callback = keras.callbacks.ModelCheckpoint(
            monitor="val_loss", filepath=path_checkpoint, verbose=1, save_weights_only=True, save_best_only=True)
        return [es_callback, modelckpt_callback]

    ref, ours = build(keras_ref), build(kerasish)
    copy_weights(ours, ref)
    capsys.readouterr()
    h_ref = ref.fit(wx, wy, batch_size=batch_size, epochs=epochs, validation_data=(vx, vy), shuffle=False,
                    callbacks=callbacks(keras_ref, str(tmp_path / "ref.weights.h5")), verbose=0)
    out_ref = capsys.readouterr().out
    h_ours = ours.fit(dataset_train, epochs=epochs, validation_data=dataset_val,
                      callbacks=callbacks(kerasish, str(tmp_path / "ours.weights.h5")), verbose=0)
    out_ours = capsys.readouterr().out
    assert_history(h_ours, h_ref, rtol=1e-4, atol=1e-5)
    assert_weights(ours, ref, rtol=1e-4, atol=1e-5)
    # ModelCheckpoint(verbose=1) says the same thing; its numbers (5 decimals) equal to the History's
    # tolerance (a loss 1e-6 apart can print 1.04380 / 1.04381)
    import re

    number = r"-?\d+\.\d+"
    text_ours = out_ours.replace("ours.weights", "ref.weights")
    assert re.sub(number, "#", text_ours) == re.sub(number, "#", out_ref) and out_ref != ""
    np.testing.assert_allclose([float(v) for v in re.findall(number, text_ours)],
                               [float(v) for v in re.findall(number, out_ref)], rtol=1e-4, atol=2e-5)

    for x, y in dataset_val.take(5):
        np.testing.assert_allclose(ours.predict(x, verbose=0)[0], ref.predict(x.numpy(), verbose=0)[0],
                                   rtol=1e-4, atol=1e-5)
