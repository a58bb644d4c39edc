"""More keras.io examples (Keras 3 versions; continued from
test_port_kerasio_examples_9.py), ported the same way: the example's code
with `import keras` changed to `import kerasish as keras` (one builder runs
with real Keras 3 on torch and with kerasish), `tf.*` rewritten with
`keras.ops` or `torch.*`, small deterministic synthetic data, shrunk sizes,
the same initial weights and the same batches (shuffle=False) in both runs.

Covered here:

33. "Image Super-Resolution using an Efficient Sub-Pixel CNN" (vision/
    super_resolution_sub_pixel): a fully convolutional model over
    `Input(shape=(None, None, 1))` with the string initializer
    "Orthogonal", the example's `DepthToSpace` layer (`ops.shape` unpacked
    into four dynamic sizes, `ops.reshape` / `ops.transpose`) and the
    built-in `ops.depth_to_space`, a PSNR callback reading `logs["loss"]`
    in `on_test_batch_end`, EarlyStopping on `loss`, a weights-only best
    ModelCheckpoint reloaded with `load_weights`, and the example's
    `upscale_image` (PIL YCbCr, `img_to_array`, `predict` on an image of
    another size).
34. "Gradient Centralization for Better Training Performance" (vision/
    gradient_centralization): the example overrides tf.keras 2's
    `get_gradients`, which Keras 3 never calls; ported to the Keras 3 hook,
    an `RMSprop` subclass overriding `apply(grads, trainable_variables)`
    (`ops.mean(..., keepdims=True)` per gradient of rank > 1); a Sequential
    whose first Conv2D gets `input_shape=`, its `summary()`, a TimeHistory
    callback with the example's `logs={}` signatures, and the model compiled
    a second time with the new optimizer and trained on.
35. "3D image classification from CT scans" (vision/3D_image_classification):
    Conv3D / MaxPool3D / BatchNormalization over 5-D volumes, a staircase
    `ExponentialDecay` schedule, `metrics=["acc"]` (History keys "acc" and
    "val_acc"), EarlyStopping on "val_acc", a best-only `.keras`
    ModelCheckpoint reloaded with `load_weights` (each framework loads the
    other's file), `model.history.history`, and a prediction on one scan.
36. "Deep Deterministic Policy Gradient (DDPG)" (rl/ddpg_pendulum): actor and
    critic (two Inputs, Concatenate, `outputs * upper_bound` on a
    KerasTensor, a `RandomUniform` last-layer initializer), target networks
    softly updated by `assign` over `model.variables`, two tapes rewritten
    as `zero_grad` / `backward` / `apply_gradients` on `.value.grad`,
    an Ornstein-Uhlenbeck noise and replay sampling from NumPy's seeded
    global RNG, against gym's pendulum dynamics written in NumPy. The
    example's `Input(shape=(num_states))` (an int) raises Keras 3's error in
    both; its `save_weights("pendulum_actor.h5")` raises in Keras 3, while
    kerasish writes Keras 2's HDF5 layout there, which Keras 3 loads.
37. "Approximating non-Function Mappings with Mixture Density Networks"
    (keras_recipes/approximating_non_function_mappings): Sequentials with
    no Input built by `build((None, 1))`, a layer making Dense sublayers in
    `__init__`, building them in its own `build` and overriding the
    `trainable_weights` / `non_trainable_weights` properties, a plain
    function as an activation (`keras.backend.epsilon()`), `call(x,
    mask=None)` with `layers.concatenate(..., name=...)`, the example's
    tfp mixture log-likelihood rewritten with `ops.split` / `ops.logsumexp`
    / `ops.log_softmax` (checked against NumPy), `validation_split`,
    EarlyStopping(restore_best_weights) stopping early, ReduceLROnPlateau
    cutting the rate (History's "learning_rate"), and the example's NumPy
    sampling from the predicted mixtures.
38. "Float8 training and inference with a simple Transformer model"
    (keras_recipes/float8_training_and_inference_with_transformer): the
    KerasHub TokenAndPositionEmbedding / TransformerDecoder written with core
    layers, `model.quantize("float8")`, the example's regex over
    `trainable_variables` paths for the `*_scale` / `*_amax_history`
    variables (equal before fit, moved equally by fit), the layers whose
    `dtype_policy` reads "float8", fit with validation data and evaluate.
    (Found: kerasish's MultiHeadAttention projections had no `quantize`, so
    `model.quantize("float8")` left the attention in float32 with a
    warning; they now take float8 as Keras's EinsumDense projections do
    (int8 / int4 on them are still not implemented). And the float8
    variables of a nested layer had paths without the outer layers
    ("query/inputs_scale" for Keras's "multi_head_attention/query/
    inputs_scale"), so the example's regex found none; fixed.) The
    example's first run under the global "mixed_bfloat16" policy is not
    ported.
39. "Enhanced Deep Residual Networks for single-image super-resolution"
    (vision/edsr): a functional `keras.Model` subclass overriding
    `train_step` (the example's `compiled_loss` / `compiled_metrics` ->
    `compute_loss` and the Keras 3 guides' metric loop, the tape -> torch)
    and `predict_step`, called directly on one uint8 image (`ops.cast`,
    `ops.clip`, `ops.round`, a uint8 result); residual blocks with `Add`,
    `Rescaling` in and out, `ops.depth_to_space` twice, a PSNR metric
    function (`tf.image.psnr` -> `ops.psnr`), `PiecewiseConstantDecay`, and
    an endless generator with `steps_per_epoch`. (Found: kerasish logged the
    metric function `PSNR` as "PSNR"; Keras snake-cases it, "psnr"; fixed.)

Programs 40-43 are in test_port_kerasio_examples_11.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import kerasish

from tests.ports.test_port_programs import assert_history
from tests.ports.test_port_programs import assert_same
from tests.ports.test_port_programs import assert_weights

# the same autouse fixtures as the earlier files: Keras seeded, one torch thread
from tests.ports.test_port_kerasio_examples_2 import _one_thread  # noqa: F401
from tests.ports.test_port_kerasio_examples_2 import _seeded  # noqa: F401


# --------------------------------------------- 33. Super-resolution with a sub-pixel CNN
_UPSCALE = 3


def _espcn_model(keras, builtin_depth_to_space=False):
    layers, ops = keras.layers, keras.ops

    class DepthToSpace(layers.Layer):
        def __init__(self, block_size):
            super().__init__()
            self.block_size = block_size

        def call(self, input):
            batch, height, width, depth = ops.shape(input)
            depth = depth // (self.block_size**2)
            x = ops.reshape(input, [batch, height, width, self.block_size, self.block_size, depth])
            x = ops.transpose(x, [0, 1, 3, 2, 4, 5])
            x = ops.reshape(x, [batch, height * self.block_size, width * self.block_size, depth])
            return x

    conv_args = {"activation": "relu", "kernel_initializer": "Orthogonal", "padding": "same"}
    inputs = keras.Input(shape=(None, None, 1))
    x = layers.Conv2D(16, 5, **conv_args)(inputs)  # (64, 64, 32 in the example)
    x = layers.Conv2D(16, 3, **conv_args)(x)
    x = layers.Conv2D(8, 3, **conv_args)(x)
    x = layers.Conv2D(1 * (_UPSCALE**2), 3, **conv_args)(x)
    if builtin_depth_to_space:
        outputs = ops.depth_to_space(x, _UPSCALE)
    else:
        outputs = DepthToSpace(_UPSCALE)(x)
    return keras.Model(inputs, outputs)


def _rgb_to_y(rgb):
    """The Y channel of `tf.image.rgb_to_yuv` (its first kernel row)."""
    return rgb @ np.array([[0.299], [0.587], [0.114]], "float32")


def _espcn_run(keras, initial, data, tmp_path):
    import PIL.Image

    (x_train, y_train), (x_val, y_val), test_img = data
    model = _espcn_model(keras)
    model.set_weights(initial)

    class ESPCNCallback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs_psnr = []

        def on_epoch_begin(self, epoch, logs=None):
            self.psnr = []

        def on_epoch_end(self, epoch, logs=None):
            self.epochs_psnr.append(np.mean(self.psnr))

        def on_test_batch_end(self, batch, logs=None):
            self.psnr.append(10 * math.log10(1 / logs["loss"]))

    early_stopping_callback = keras.callbacks.EarlyStopping(monitor="loss", patience=10)
    # (the example's "/tmp/checkpoint": Keras 3 wants a `.weights.h5` name for weights only)
    checkpoint_filepath = str(tmp_path / f"{keras.__name__}_checkpoint.weights.h5")
    model_checkpoint_callback = keras.callbacks.ModelCheckpoint(
        filepath=checkpoint_filepath, save_weights_only=True, monitor="loss", mode="min", save_best_only=True)
    espcn = ESPCNCallback()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss=keras.losses.MeanSquaredError())
    history = model.fit(x_train, y_train, epochs=3, batch_size=8, shuffle=False,
                        callbacks=[espcn, early_stopping_callback, model_checkpoint_callback],
                        validation_data=(x_val, y_val), verbose=0)
    trained = model.get_weights()
    model.load_weights(checkpoint_filepath)

    def upscale_image(model, img):
        ycbcr = img.convert("YCbCr")
        y, cb, cr = ycbcr.split()
        y = keras.utils.img_to_array(y)
        y = y.astype("float32") / 255.0
        input = np.expand_dims(y, axis=0)
        out = np.asarray(model.predict(input, verbose=0))
        out_img_y = out[0]
        out_img_y *= 255.0
        out_img_y = out_img_y.clip(0, 255)
        out_img_y = out_img_y.reshape((np.shape(out_img_y)[0], np.shape(out_img_y)[1]))
        out_img_y = PIL.Image.fromarray(np.uint8(out_img_y), mode="L")
        out_img_cb = cb.resize(out_img_y.size, PIL.Image.BICUBIC)
        out_img_cr = cr.resize(out_img_y.size, PIL.Image.BICUBIC)
        return PIL.Image.merge("YCbCr", (out_img_y, out_img_cb, out_img_cr)).convert("RGB")

    raw = np.asarray(model.predict(x_val, verbose=0))
    upscaled = keras.utils.img_to_array(upscale_image(model, test_img))
    return history, espcn.epochs_psnr, trained, model.get_weights(), raw, upscaled, model.output.shape


def test_super_resolution_sub_pixel(keras_ref, tmp_path):
    import PIL.Image

    rng = np.random.default_rng(33)
    crop, small = 12, 12 // _UPSCALE

    def pairs(n):
        images = rng.random((n, crop, crop, 3)).astype("float32")
        target = _rgb_to_y(images)
        # tf.image.resize(y, ..., method="area") at an integer factor: the mean of each 3x3 block
        lowres = target.reshape(n, small, _UPSCALE, small, _UPSCALE, 1).mean(axis=(2, 4))
        return lowres, target, images

    x_train, y_train, train_images = pairs(32)
    x_val, y_val, _ = pairs(16)
    # kerasish's ops.image.resize(area) (Keras's torch backend has no "area") equals that block mean
    np.testing.assert_allclose(
        kerasish.ops.image.resize(_rgb_to_y(train_images), [small, small], interpolation="area").numpy(),
        x_train, rtol=1e-6, atol=1e-6)
    test_img = PIL.Image.fromarray((rng.random((5, 7, 3)) * 255).astype("uint8"))
    data = (x_train, y_train), (x_val, y_val), test_img

    theirs_model = _espcn_model(keras_ref)
    initial = theirs_model.get_weights()
    # "Orthogonal" resolved to an orthogonal initializer in both: each kernel's (kh*kw*in, out)
    # matrix has orthonormal columns
    ours_model = _espcn_model(kerasish)
    for w in ours_model.get_weights()[0::2]:
        flat = w.reshape(-1, w.shape[-1])
        np.testing.assert_allclose(flat.T @ flat, np.eye(w.shape[-1]), atol=1e-5)

    theirs = _espcn_run(keras_ref, initial, data, tmp_path)
    ours = _espcn_run(kerasish, initial, data, tmp_path)
    assert ours[-1] == theirs[-1] == (None, None, None, 1)
    assert_history(ours[0], theirs[0])
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5)  # the PSNR of each epoch
    assert_weights_list = list(zip(ours[2], theirs[2])) + list(zip(ours[3], theirs[3]))
    for a, b in assert_weights_list:
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert_same(ours[4], theirs[4])
    assert ours[5].shape == theirs[5].shape == (15, 21, 3)
    # uint8 pixels: a prediction within 1e-5 of Keras's may still round to the next integer
    np.testing.assert_allclose(ours[5], theirs[5], atol=1)

    # ops.depth_to_space equals the example's layer (the same weights)
    builtin = _espcn_model(kerasish, builtin_depth_to_space=True)
    builtin.set_weights(initial)
    ours_model.set_weights(initial)
    x = rng.random((2, 5, 6, 1)).astype("float32")
    np.testing.assert_allclose(builtin.predict(x, verbose=0), ours_model.predict(x, verbose=0), rtol=1e-6)


def _summary_lines(model):
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    return "\n".join(lines).splitlines()


# ------------------------------------------------------- 34. Gradient centralization
def _gc_program(keras, initial, x, y, fit=True, centralize=True):
    import time

    layers, ops = keras.layers, keras.ops
    keras.utils.clear_session()  # (the same auto names in both: "sequential", "conv2d", ...)
    # (tf.keras.Sequential; Dropout rates 0.5 -> 0, input (300, 300, 3) -> (20, 20, 3))
    model = keras.Sequential([
        layers.Conv2D(4, (3, 3), activation="relu", input_shape=(20, 20, 3)),
        layers.MaxPooling2D(2, 2),
        layers.Conv2D(8, (3, 3), activation="relu"),
        layers.Dropout(0.0),
        layers.MaxPooling2D(2, 2),
        layers.Flatten(),
        layers.Dropout(0.0),
        layers.Dense(16, activation="relu"),
        layers.Dense(1, activation="sigmoid"),
    ])
    if initial is not None:
        model.set_weights(initial)

    # The example overrides tf.keras 2's `get_gradients`, which Keras 3's optimizers never call
    # (the override would be silently unused); the Keras 3 hook every trainer calls is `apply`.
    class GCRMSprop(keras.optimizers.RMSprop):
        def apply(self, grads, trainable_variables=None):
            if not centralize:  # (the test's control run)
                return super().apply(grads, trainable_variables)
            centralized = []
            for grad in grads:
                grad_len = len(grad.shape)
                if grad_len > 1:
                    axis = list(range(grad_len - 1))
                    grad -= ops.mean(grad, axis=axis, keepdims=True)
                centralized.append(grad)
            return super().apply(centralized, trainable_variables)

    optimizer = GCRMSprop(learning_rate=1e-3)
    if not fit:
        return (model,)

    class TimeHistory(keras.callbacks.Callback):
        def on_train_begin(self, logs={}):  # noqa: B006 (the example's signatures)
            self.times = []

        def on_epoch_begin(self, batch, logs={}):  # noqa: B006
            self.epoch_time_start = time.time()

        def on_epoch_end(self, batch, logs={}):  # noqa: B006
            self.times.append(time.time() - self.epoch_time_start)

    time_callback_no_gc = TimeHistory()
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.RMSprop(learning_rate=1e-3),
                  metrics=["accuracy"])
    summary = _summary_lines(model)
    history_no_gc = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
                              callbacks=[time_callback_no_gc])
    after_no_gc = model.get_weights()
    time_callback_gc = TimeHistory()
    model.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    history_gc = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, callbacks=[time_callback_gc])
    assert len(time_callback_no_gc.times) == len(time_callback_gc.times) == 2
    return model, summary, history_no_gc, after_no_gc, history_gc, optimizer


def test_gradient_centralization_optimizer_subclass(keras_ref):
    rng = np.random.default_rng(34)
    x = rng.random((64, 20, 20, 3)).astype("float32")
    y = (x[:, :10].mean(axis=(1, 2, 3)) > x[:, 10:].mean(axis=(1, 2, 3))).astype("float32")
    initial = _gc_program(keras_ref, None, x[:0], y[:0], fit=False)[0].get_weights()
    theirs = _gc_program(keras_ref, initial, x, y)
    ours = _gc_program(kerasish, initial, x, y)
    assert ours[1] == theirs[1]  # the summary table (a Sequential built from `input_shape=`)
    assert_history(ours[2], theirs[2])
    assert_history(ours[4], theirs[4])
    for a, b in zip(ours[3], theirs[3]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert_weights(ours[0], theirs[0])
    assert int(ours[5].iterations) == int(theirs[5].iterations) == 8
    # the override ran: without it the second fit would have moved the weights elsewhere
    plain = _gc_program(kerasish, initial, x, y, centralize=False)
    assert_history(plain[2], theirs[2])
    assert not np.allclose(plain[0].get_weights()[0], ours[0].get_weights()[0], rtol=1e-3, atol=1e-5)


# ------------------------------------------------------- 35. 3D image classification
def _cnn3d_model(keras, img_size):
    layers = keras.layers
    inputs = keras.Input(img_size)
    x = layers.Conv3D(filters=4, kernel_size=3, activation="relu")(inputs)
    x = layers.MaxPool3D(pool_size=2)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Conv3D(filters=8, kernel_size=3, activation="relu")(x)
    x = layers.MaxPool3D(pool_size=2)(x)
    x = layers.BatchNormalization()(x)
    x = layers.GlobalAveragePooling3D()(x)
    x = layers.Dense(units=16, activation="relu")(x)
    x = layers.Dropout(0.0)(x)  # (0.3)
    outputs = layers.Dense(units=1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="3dcnn")


def _cnn3d_run(keras, initial, data, tmp_path):
    (x_train, y_train), (x_test, y_test) = data
    model = _cnn3d_model(keras, x_train.shape[1:])
    model.set_weights(initial)
    initial_learning_rate = 0.0001
    lr_schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate, decay_steps=3, decay_rate=0.5, staircase=True)  # (100000, 0.96)
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=lr_schedule),
                  metrics=["acc"])
    path = str(tmp_path / f"{keras.__name__}_3d_image_classification.keras")
    checkpoint_cb = keras.callbacks.ModelCheckpoint(path, save_best_only=True)
    early_stopping_cb = keras.callbacks.EarlyStopping(monitor="val_acc", patience=1)
    model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=6, batch_size=4, shuffle=False,
              verbose=0, callbacks=[checkpoint_cb, early_stopping_cb])
    history = model.history  # (the example plots `model.history.history[met]`)
    trained = model.get_weights()
    learning_rate = float(np.asarray(model.optimizer.learning_rate))
    model.load_weights(path)  # (the example's `load_weights` of the whole-model checkpoint)
    prediction = np.asarray(model.predict(np.expand_dims(x_test[0], axis=0), verbose=0))[0]
    scores = [1 - prediction[0], prediction[0]]
    return history, trained, model.get_weights(), scores, learning_rate, early_stopping_cb.stopped_epoch, path


def test_3d_image_classification(keras_ref, tmp_path):
    rng = np.random.default_rng(35)

    def scans(n):
        volume = rng.random((n, 12, 12, 12, 1)).astype("float32")
        labels = np.arange(n) % 2
        volume[labels == 1, :, 6:] += 0.5  # "cancer in the right side"
        return np.clip(volume, 0, 1), labels

    data = scans(24), scans(8)
    initial = _cnn3d_model(keras_ref, (12, 12, 12, 1)).get_weights()
    theirs = _cnn3d_run(keras_ref, initial, data, tmp_path)
    ours = _cnn3d_run(kerasish, initial, data, tmp_path)
    assert sorted(ours[0].history) == ["acc", "loss", "val_acc", "val_loss"]
    assert_history(ours[0], theirs[0])
    assert ours[5] == theirs[5]  # the epoch EarlyStopping stopped at (0: it ran all 6)
    # Each Conv3D's bias and the first BatchNormalization's beta feed a BatchNormalization (through
    # a "valid" Conv3D for beta), which removes any per-channel constant: their true gradient is 0
    # and the computed one is rounding noise of either sign, which Adam normalises into steps of up
    # to the learning rate (1e-4). Those three get atol = lr * the 12 steps; the rest 1e-4/1e-5.
    noise_driven = {1, 3, 7}
    for weights_ours, weights_theirs in ((ours[1], theirs[1]), (ours[2], theirs[2])):
        for i, (a, b) in enumerate(zip(weights_ours, weights_theirs)):
            atol = 1e-4 * 12 if i in noise_driven else 1e-5
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol, err_msg=f"weight {i}")
    np.testing.assert_allclose(ours[3], theirs[3], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours[4], theirs[4], rtol=1e-6)  # the decayed learning rate after fit
    # each framework loads the other's best checkpoint: the same weights, the same prediction
    x0 = data[1][0][:2]
    for path in (theirs[6], ours[6]):
        mine, other = kerasish.saving.load_model(path), keras_ref.saving.load_model(path)
        assert_weights(mine, other, rtol=0, atol=0)
        assert_same(mine.predict(x0, verbose=0), other.predict(x0, verbose=0), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------- 36. DDPG on a pendulum
class _Pendulum:
    """gym's Pendulum-v1 dynamics (g=10, m=l=1, dt=0.05, |torque| <= 2), deterministic start."""

    max_speed, max_torque, dt = 8.0, 2.0, 0.05

    def __init__(self, steps):
        self.steps = steps

    def reset(self, episode):
        self.theta, self.theta_dot, self.t = np.pi - 0.3 * (episode + 1), 0.5 * episode, 0
        return self._obs()

    def _obs(self):
        return np.array([np.cos(self.theta), np.sin(self.theta), self.theta_dot], "float32")

    def step(self, action):
        u = float(np.clip(action[0], -self.max_torque, self.max_torque))
        angle = ((self.theta + np.pi) % (2 * np.pi)) - np.pi
        cost = angle**2 + 0.1 * self.theta_dot**2 + 0.001 * u**2
        self.theta_dot = np.clip(self.theta_dot + (3 * 10 / 2 * np.sin(self.theta) + 3.0 * u) * self.dt,
                                 -self.max_speed, self.max_speed)
        self.theta = self.theta + self.theta_dot * self.dt
        self.t += 1
        return self._obs(), -cost, self.t >= self.steps, {}


def _ddpg_program(keras, initial, episodes=2, steps=12):
    import torch

    layers, ops = keras.layers, keras.ops
    env = _Pendulum(steps)
    num_states, num_actions, upper_bound, lower_bound = 3, 1, 2.0, -2.0
    np.random.seed(36)  # (the example's unseeded np.random: the OU noise and the replay sampling)

    class OUActionNoise:
        def __init__(self, mean, std_deviation, theta=0.15, dt=1e-2, x_initial=None):
            self.theta = theta
            self.mean = mean
            self.std_dev = std_deviation
            self.dt = dt
            self.x_initial = x_initial
            self.reset()

        def __call__(self):
            x = (self.x_prev + self.theta * (self.mean - self.x_prev) * self.dt
                 + self.std_dev * np.sqrt(self.dt) * np.random.normal(size=self.mean.shape))
            self.x_prev = x
            return x

        def reset(self):
            self.x_prev = self.x_initial if self.x_initial is not None else np.zeros_like(self.mean)

    class Buffer:
        def __init__(self, buffer_capacity=100000, batch_size=64):
            self.buffer_capacity = buffer_capacity
            self.batch_size = batch_size
            self.buffer_counter = 0
            self.state_buffer = np.zeros((self.buffer_capacity, num_states))
            self.action_buffer = np.zeros((self.buffer_capacity, num_actions))
            self.reward_buffer = np.zeros((self.buffer_capacity, 1))
            self.next_state_buffer = np.zeros((self.buffer_capacity, num_states))

        def record(self, obs_tuple):
            index = self.buffer_counter % self.buffer_capacity
            self.state_buffer[index] = obs_tuple[0]
            self.action_buffer[index] = obs_tuple[1]
            self.reward_buffer[index] = obs_tuple[2]
            self.next_state_buffer[index] = obs_tuple[3]
            self.buffer_counter += 1

        # (@tf.function and two tf.GradientTape blocks -> torch autograd, the Keras torch guide's
        # `zero_grad` / `backward` / `apply` on the weights' `.value.grad`)
        def update(self, state_batch, action_batch, reward_batch, next_state_batch):
            with torch.no_grad():  # (the tape did not differentiate through the targets either)
                target_actions = target_actor(next_state_batch, training=True)
                y = reward_batch + gamma * target_critic([next_state_batch, target_actions], training=True)
            critic_model.zero_grad()
            critic_value = critic_model([state_batch, action_batch], training=True)
            critic_loss = ops.mean(ops.square(y - critic_value))
            critic_loss.backward()
            critic_grad = [v.value.grad for v in critic_model.trainable_variables]
            with torch.no_grad():
                critic_optimizer.apply_gradients(zip(critic_grad, critic_model.trainable_variables))

            actor_model.zero_grad()
            critic_model.zero_grad()
            actions = actor_model(state_batch, training=True)
            critic_value = critic_model([state_batch, actions], training=True)
            actor_loss = -ops.mean(critic_value)
            actor_loss.backward()
            actor_grad = [v.value.grad for v in actor_model.trainable_variables]
            with torch.no_grad():
                actor_optimizer.apply_gradients(zip(actor_grad, actor_model.trainable_variables))
            losses.append((float(critic_loss), float(actor_loss)))

        def learn(self):
            record_range = min(self.buffer_counter, self.buffer_capacity)
            batch_indices = np.random.choice(record_range, self.batch_size)
            state_batch = ops.convert_to_tensor(self.state_buffer[batch_indices], dtype="float32")
            action_batch = ops.convert_to_tensor(self.action_buffer[batch_indices], dtype="float32")
            reward_batch = ops.convert_to_tensor(self.reward_buffer[batch_indices])
            reward_batch = ops.cast(reward_batch, dtype="float32")
            next_state_batch = ops.convert_to_tensor(self.next_state_buffer[batch_indices], dtype="float32")
            self.update(state_batch, action_batch, reward_batch, next_state_batch)

    def update_target(target_weights, weights, tau):
        for a, b in zip(target_weights, weights):
            a.assign(b * tau + a * (1 - tau))

    def get_actor():
        # (tf.random_uniform_initializer -> keras.initializers.RandomUniform)
        last_init = keras.initializers.RandomUniform(minval=-0.003, maxval=0.003)
        inputs = layers.Input(shape=(num_states,))
        out = layers.Dense(32, activation="relu")(inputs)  # (256)
        out = layers.Dense(32, activation="relu")(out)
        outputs = layers.Dense(1, activation="tanh", kernel_initializer=last_init)(out)
        outputs = outputs * upper_bound
        return keras.Model(inputs, outputs)

    def get_critic():
        # (the example's `shape=(num_states)` is an int, which Keras 3 refuses: see the test)
        state_input = layers.Input(shape=(num_states,))
        state_out = layers.Dense(16, activation="relu")(state_input)
        state_out = layers.Dense(32, activation="relu")(state_out)
        action_input = layers.Input(shape=(num_actions,))
        action_out = layers.Dense(32, activation="relu")(action_input)
        concat = layers.Concatenate()([state_out, action_out])
        out = layers.Dense(32, activation="relu")(concat)
        out = layers.Dense(32, activation="relu")(out)
        outputs = layers.Dense(1)(out)
        return keras.Model([state_input, action_input], outputs)

    def policy(state, noise_object):
        sampled_actions = ops.squeeze(actor_model(state))
        noise = noise_object()
        # (`.numpy()` of a torch tensor that requires grad fails: convert_to_numpy)
        sampled_actions = ops.convert_to_numpy(sampled_actions) + noise
        legal_action = np.clip(sampled_actions, lower_bound, upper_bound)
        return [np.squeeze(legal_action)]

    ou_noise = OUActionNoise(mean=np.zeros(1), std_deviation=0.2 * np.ones(1))
    actor_model, critic_model = get_actor(), get_critic()
    target_actor, target_critic = get_actor(), get_critic()
    if initial is None:
        return actor_model, critic_model
    actor_model.set_weights(initial[0])
    critic_model.set_weights(initial[1])
    target_actor.set_weights(actor_model.get_weights())
    target_critic.set_weights(critic_model.get_weights())
    critic_optimizer = keras.optimizers.Adam(0.002)
    actor_optimizer = keras.optimizers.Adam(0.001)
    gamma, tau = 0.99, 0.05  # (tau 0.005: a larger step, so that the targets visibly move)
    buffer = Buffer(50000, 8)
    losses, ep_reward_list, avg_reward_list = [], [], []
    for ep in range(episodes):
        prev_state = env.reset(ep)
        episodic_reward = 0
        while True:
            tf_prev_state = ops.expand_dims(ops.convert_to_tensor(prev_state), 0)
            action = policy(tf_prev_state, ou_noise)
            state, reward, done, info = env.step(action)
            buffer.record((prev_state, action, reward, state))
            episodic_reward += reward
            buffer.learn()
            update_target(target_actor.variables, actor_model.variables, tau)
            update_target(target_critic.variables, critic_model.variables, tau)
            if done:
                break
            prev_state = state
        ep_reward_list.append(episodic_reward)
        avg_reward_list.append(np.mean(ep_reward_list[-40:]))
    models = (actor_model, critic_model, target_actor, target_critic)
    return losses, avg_reward_list, [m.get_weights() for m in models], models


def test_ddpg_pendulum_hand_written_loop(keras_ref, tmp_path):
    actor, critic = _ddpg_program(keras_ref, None)
    initial = actor.get_weights(), critic.get_weights()
    theirs = _ddpg_program(keras_ref, initial)
    ours = _ddpg_program(kerasish, initial)
    assert len(ours[0]) == len(theirs[0]) == 24
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-4, atol=1e-5)  # critic / actor loss per step
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5)  # the average episodic rewards
    for model_ours, model_theirs in zip(ours[2], theirs[2]):
        for a, b in zip(model_ours, model_theirs):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # the targets moved (update_target's `assign` on `.variables`) but are not the trained models
    assert not np.allclose(ours[2][2][0], initial[0][0]) and not np.allclose(ours[2][2][0], ours[2][0][0])
    # the example's `save_weights("pendulum_actor.h5")`: Keras 3 refuses the name (it wants
    # `.weights.h5`); kerasish, which also reads and writes Keras 2's files, writes Keras 2's
    # HDF5 weights layout there, and Keras 3's `load_weights` reads that file
    with pytest.raises(ValueError, match="must end in `.weights.h5`"):
        theirs[3][0].save_weights(str(tmp_path / "pendulum_actor.h5"))
    ours[3][0].save_weights(str(tmp_path / "pendulum_actor.h5"))
    reloaded = _ddpg_program(keras_ref, None)[0]
    reloaded.load_weights(str(tmp_path / "pendulum_actor.h5"))
    assert_weights(reloaded, ours[3][0], rtol=0, atol=0)
    # `Input(shape=(num_states))` (an int) as the example writes it: the same error as Keras 3's
    errors = []
    for keras in (keras_ref, kerasish):
        with pytest.raises(ValueError) as info:
            keras.layers.Input(shape=(3))
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    ours[3][0].save_weights(str(tmp_path / "pendulum_actor.weights.h5"))
    theirs[3][0].load_weights(str(tmp_path / "pendulum_actor.weights.h5"))
    assert_weights(ours[3][0], theirs[3][0], rtol=0, atol=0)


# ------------------------------------------------------- 37. Mixture density network
_N_HIDDEN, _OUTPUT_DIMS, _N_MIXES = 16, 1, 5


def _mdn_models(keras):
    layers = keras.layers

    model = keras.Sequential([
        layers.Dense(_N_HIDDEN, activation="relu"),
        layers.Dense(_N_HIDDEN, activation="relu"),
        layers.Dense(1),
    ])

    def elu_plus_one_plus_epsilon(x):
        return keras.activations.elu(x) + 1 + keras.backend.epsilon()

    class MixtureDensityOutput(layers.Layer):
        def __init__(self, output_dimension, num_mixtures, **kwargs):
            super().__init__(**kwargs)
            self.output_dim = output_dimension
            self.num_mix = num_mixtures
            self.mdn_mus = layers.Dense(self.num_mix * self.output_dim, name="mdn_mus")
            self.mdn_sigmas = layers.Dense(self.num_mix * self.output_dim, activation=elu_plus_one_plus_epsilon,
                                           name="mdn_sigmas")
            self.mdn_pi = layers.Dense(self.num_mix, name="mdn_pi")

        def build(self, input_shape):
            self.mdn_mus.build(input_shape)
            self.mdn_sigmas.build(input_shape)
            self.mdn_pi.build(input_shape)
            super().build(input_shape)

        @property
        def trainable_weights(self):
            return self.mdn_mus.trainable_weights + self.mdn_sigmas.trainable_weights + self.mdn_pi.trainable_weights

        @property
        def non_trainable_weights(self):
            return (self.mdn_mus.non_trainable_weights + self.mdn_sigmas.non_trainable_weights
                    + self.mdn_pi.non_trainable_weights)

        def call(self, x, mask=None):
            return layers.concatenate([self.mdn_mus(x), self.mdn_sigmas(x), self.mdn_pi(x)], name="mdn_outputs")

    mdn_network = keras.Sequential([
        layers.Dense(_N_HIDDEN, activation="relu"),
        layers.Dense(_N_HIDDEN, activation="relu"),
        MixtureDensityOutput(_OUTPUT_DIMS, _N_MIXES),
    ])
    return model, mdn_network


def _get_mixture_loss_func(keras, output_dim, num_mixes):
    ops = keras.ops

    def mdn_loss_func(y_true, y_pred):
        y_pred = ops.reshape(y_pred, [-1, (2 * num_mixes * output_dim) + num_mixes])
        y_true = ops.reshape(y_true, [-1, output_dim])
        # (tf.split by sizes -> ops.split at indices)
        out_mu, out_sigma, out_pi = ops.split(y_pred, [num_mixes * output_dim, 2 * num_mixes * output_dim], axis=-1)
        # (tfd.Mixture(Categorical(logits), [MultivariateNormalDiag(...)]).log_prob -> its formula)
        mus = ops.reshape(out_mu, [-1, num_mixes, output_dim])
        sigs = ops.reshape(out_sigma, [-1, num_mixes, output_dim])
        z = (ops.expand_dims(y_true, 1) - mus) / sigs
        component_log_prob = ops.sum(-0.5 * ops.square(z) - ops.log(sigs) - 0.5 * np.log(2 * np.pi), axis=-1)
        loss = ops.logsumexp(ops.log_softmax(out_pi, axis=-1) + component_log_prob, axis=-1)
        loss = ops.negative(loss)
        return ops.mean(loss)

    return mdn_loss_func


def _mdn_numpy_nll(y_pred, y_true):
    """-log p(y) of the mixture, written from the maths in float64 (the example's tfp Mixture)."""
    y_pred, y_true = y_pred.astype("float64"), y_true.astype("float64").reshape(-1, 1)
    mus, sigs, logits = y_pred[:, :_N_MIXES], y_pred[:, _N_MIXES:2 * _N_MIXES], y_pred[:, 2 * _N_MIXES:]
    pis = np.exp(logits - logits.max(axis=1, keepdims=True))
    pis /= pis.sum(axis=1, keepdims=True)
    densities = np.exp(-0.5 * ((y_true - mus) / sigs) ** 2) / (sigs * np.sqrt(2 * np.pi))
    return -np.log((pis * densities).sum(axis=1)).mean()


def _mdn_run(keras, initial, x, y):
    model, mdn_network = _mdn_models(keras)
    model.build((None, 1))
    mdn_network.build((None, 1))
    model.set_weights(initial[0])
    mdn_network.set_weights(initial[1])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, epochs=3, batch_size=32, validation_split=0.15, shuffle=False, verbose=0,
                        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=5)])
    y_pred = np.asarray(model.predict(x, verbose=0))
    loss_fn = _get_mixture_loss_func(keras, _OUTPUT_DIMS, _N_MIXES)
    mdn_network.compile(loss=loss_fn, optimizer=keras.optimizers.Adam(learning_rate=0.05))  # ("adam")
    mdn_history = mdn_network.fit(
        x, y, epochs=6, batch_size=32, validation_split=0.15, shuffle=False, verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True),
                   keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=0)])
    y_pred_mixture = np.asarray(mdn_network.predict(x, verbose=0))
    return (history, y_pred, mdn_history, y_pred_mixture, model.get_weights(), mdn_network.get_weights(),
            len(mdn_network.layers[-1].trainable_weights), len(mdn_network.trainable_weights),
            float(np.asarray(mdn_network.optimizer.learning_rate)))


def test_mixture_density_network(keras_ref):
    rng = np.random.default_rng(37)

    def create_noisy_spiral(n, jitter_std=0.2, revolutions=2):
        angle_step = 2 * np.pi / n * revolutions
        t = np.arange(n) * angle_step
        out = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) + rng.normal(0, jitter_std, (n, 2))
        out = out.astype("float32")

        def normalize(v):
            return (v - v.min()) / (v.max() - v.min())

        return (normalize(out[:, 0]) * 10) - 5, (normalize(out[:, 1]) * 10) - 5

    x, y = create_noisy_spiral(320)
    x = np.expand_dims(x, axis=1)
    ref_model, ref_mdn = _mdn_models(keras_ref)
    ref_model.build((None, 1))
    ref_mdn.build((None, 1))
    initial = ref_model.get_weights(), ref_mdn.get_weights()
    theirs = _mdn_run(keras_ref, initial, x, y)
    ours = _mdn_run(kerasish, initial, x, y)
    assert_history(ours[0], theirs[0])
    assert_same(ours[1], theirs[1])
    assert sorted(ours[2].history) == ["learning_rate", "loss", "val_loss"]
    assert_history(ours[2], theirs[2])
    assert ours[3].shape == (320, 2 * _N_MIXES * _OUTPUT_DIMS + _N_MIXES)
    assert_same(ours[3], theirs[3])
    for a, b in list(zip(ours[4], theirs[4])) + list(zip(ours[5], theirs[5])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # the overridden `trainable_weights` property: 6 weights in the layer, 10 in the model
    assert ours[6:8] == theirs[6:8] == (6, 10)
    assert ours[8] == pytest.approx(theirs[8], rel=1e-6)
    # the ops-written loss is the mixture's negative log-likelihood (NumPy, float64)
    loss_fn = _get_mixture_loss_func(kerasish, _OUTPUT_DIMS, _N_MIXES)
    np.testing.assert_allclose(float(loss_fn(y, ours[3])), _mdn_numpy_nll(ours[3], y), rtol=1e-5)

    # the example's sampling, NumPy's global RNG seeded: the same samples from both predictions
    def sample_from_output(params, output_dim, num_mixes, temp=1.0, sigma_temp=1.0):
        mus, sigs, pi_logits = (params[: num_mixes * output_dim],
                                params[num_mixes * output_dim: 2 * num_mixes * output_dim], params[-num_mixes:])
        e = np.array(pi_logits) / temp
        e -= e.max()
        pis = np.exp(e) / np.sum(np.exp(e))
        m = int(np.searchsorted(np.cumsum(pis), np.random.rand(1))[0])
        scale_matrix = np.identity(output_dim) * sigs[m * output_dim: (m + 1) * output_dim]
        cov_matrix = np.matmul(scale_matrix, scale_matrix.T) * sigma_temp
        return np.random.multivariate_normal(mus[m * output_dim: (m + 1) * output_dim], cov_matrix, 1)

    samples = []
    for prediction in (ours[3], theirs[3]):
        np.random.seed(37)
        samples.append(np.apply_along_axis(sample_from_output, 1, prediction, 1, _N_MIXES, temp=1.0))
    np.testing.assert_allclose(samples[0], samples[1], rtol=1e-4, atol=1e-4)


# ------------------------------------------- 38. Float8 training and inference (a small transformer)
def _float8_model(keras, attention):
    """The example's model with KerasHub's TokenAndPositionEmbedding and TransformerDecoder written
    out with core layers (no KerasHub here); dropout 0. `attention=False` keeps only the decoder's
    feed-forward half."""
    layers, ops = keras.layers, keras.ops
    keras.utils.clear_session()  # (the same auto names, "dense" ..., in both)

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, vocabulary_size, sequence_length, embedding_dim, **kwargs):
            super().__init__(**kwargs)
            self.token_embedding = layers.Embedding(vocabulary_size, embedding_dim, name="token_embedding")
            self.position_embedding = layers.Embedding(sequence_length, embedding_dim, name="position_embedding")

        def call(self, inputs):
            positions = ops.arange(0, ops.shape(inputs)[-1])
            return self.token_embedding(inputs) + self.position_embedding(positions)

    token_id_input = layers.Input(shape=(None,), dtype="int32", name="input_ids")
    x = TokenAndPositionEmbedding(vocabulary_size=40, sequence_length=12, embedding_dim=8)(token_id_input)
    if attention:
        attended = layers.MultiHeadAttention(num_heads=2, key_dim=4, name="multi_head_attention")(
            x, x, use_causal_mask=True)
        x = layers.LayerNormalization(epsilon=1e-5)(x + attended)
    feed_forward = layers.Dense(8, activation="relu", name="ffn_intermediate")(x)
    x = layers.LayerNormalization(epsilon=1e-5)(x + layers.Dense(8, name="ffn_output")(feed_forward))
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dense(8, activation="relu")(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs=token_id_input, outputs=outputs)


def _float8_run(keras, initial, attention, data):
    import re
    import warnings

    (x_train, y_train), (x_test, y_test) = data
    model = _float8_model(keras, attention)
    model.set_weights(initial)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ("Layer ... does not have a `quantize` method implemented.")
        model.quantize("float8")
    pattern = r"(ffn_intermediate|query).+(scale|amax_history)"
    before = {v.path: np.array(keras.ops.convert_to_numpy(v.value)) for v in model.trainable_variables
              if re.findall(pattern, v.path)}
    policies = {layer.name: str(layer.dtype_policy) for layer in model._flatten_layers(recursive=True)
                if "float8" in str(layer.dtype_policy)}
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = model.fit(x_train, y_train, batch_size=16, epochs=2, shuffle=False, verbose=0,
                            validation_data=(x_test, y_test))
    result = model.evaluate(x_test, y_test, verbose=0)
    after = {v.path: np.array(keras.ops.convert_to_numpy(v.value)) for v in model.trainable_variables
             if re.findall(pattern, v.path)}
    return history, result, before, after, policies, model.get_weights()


@pytest.mark.parametrize("attention", [False, True])
def test_float8_training_and_inference(keras_ref, attention):
    rng = np.random.default_rng(38)

    def reviews(n):
        ids = rng.integers(1, 40, (n, 12)).astype("int32")
        return ids, (ids[:, :6].mean(axis=1) > ids[:, 6:].mean(axis=1)).astype("float32")

    data = reviews(64), reviews(32)
    initial = _float8_model(keras_ref, attention).get_weights()
    theirs = _float8_run(keras_ref, initial, attention, data)
    ours = _float8_run(kerasish, initial, attention, data)
    # the quantized layers and their float8 policies, and the scale / amax-history variables
    assert ours[4] == theirs[4]
    assert "<QuantizedFloat8DTypePolicy \"float8_from_float32\">" in ours[4].values()
    assert sorted(ours[2]) == sorted(theirs[2]) and len(ours[2]) >= 6
    for path in theirs[2]:
        np.testing.assert_array_equal(ours[2][path], theirs[2][path], err_msg=path)
        np.testing.assert_allclose(ours[3][path], theirs[3][path], rtol=1e-5, atol=1e-6, err_msg=path)
    assert any(not np.array_equal(theirs[2][p], theirs[3][p]) for p in theirs[2])  # fit moved them
    assert_history(ours[0], theirs[0])
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5)
    for a, b in zip(ours[5], theirs[5]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------- 39. EDSR super-resolution
def _edsr_model(keras, num_filters=8, num_of_residual_blocks=2):
    import torch

    layers, ops = keras.layers, keras.ops

    def PSNR(super_resolution, high_resolution):
        """Compute the peak signal-to-noise ratio, measures quality of image."""
        # (tf.image.psnr(...)[0], the first image's -> ops.psnr over the batch)
        return ops.psnr(high_resolution, super_resolution, max_val=255)

    class EDSRModel(keras.Model):
        def train_step(self, data):
            # (tf.GradientTape -> the Keras torch guide; `compiled_loss` / `compiled_metrics` are
            # gone in Keras 3 -> `compute_loss` and the guide's metric loop)
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            loss.backward()
            trainable_vars = self.trainable_weights
            gradients = [v.value.grad for v in trainable_vars]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_vars)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

        def predict_step(self, x):
            x = ops.cast(ops.expand_dims(x, axis=0), "float32")
            super_resolution_img = self(x, training=False)
            super_resolution_img = ops.clip(super_resolution_img, 0, 255)
            super_resolution_img = ops.round(super_resolution_img)
            return ops.squeeze(ops.cast(super_resolution_img, "uint8"), axis=0)

    def ResBlock(inputs):
        x = layers.Conv2D(num_filters, 3, padding="same", activation="relu")(inputs)
        x = layers.Conv2D(num_filters, 3, padding="same")(x)
        return layers.Add()([inputs, x])

    def Upsampling(inputs, factor=2, **kwargs):
        x = layers.Conv2D(num_filters * (factor**2), 3, padding="same", **kwargs)(inputs)
        x = ops.depth_to_space(x, block_size=factor)  # (tf.nn.depth_to_space)
        x = layers.Conv2D(num_filters * (factor**2), 3, padding="same", **kwargs)(x)
        x = ops.depth_to_space(x, block_size=factor)
        return x

    input_layer = layers.Input(shape=(None, None, 3))
    x = layers.Rescaling(scale=1.0 / 255)(input_layer)
    x = x_new = layers.Conv2D(num_filters, 3, padding="same")(x)
    for _ in range(num_of_residual_blocks):
        x_new = ResBlock(x_new)
    x_new = layers.Conv2D(num_filters, 3, padding="same")(x_new)
    x = layers.Add()([x, x_new])
    x = Upsampling(x)
    x = layers.Conv2D(3, 3, padding="same")(x)
    output_layer = layers.Rescaling(scale=255)(x)
    return EDSRModel(input_layer, output_layer), PSNR


def _edsr_run(keras, initial, data):
    (lowres, highres), (val_lowres, val_highres), test_image = data
    model, PSNR = _edsr_model(keras)
    model.set_weights(initial)

    def train_ds():  # (the example's repeated tf.data pipeline: endless batches of 8)
        while True:
            for i in range(0, len(lowres), 8):
                yield lowres[i:i + 8], highres[i:i + 8]

    optim_edsr = keras.optimizers.Adam(learning_rate=keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=[5], values=[1e-3, 5e-4]))  # ([5000], [1e-4, 5e-5])
    model.compile(optimizer=optim_edsr, loss="mae", metrics=[PSNR])
    history = model.fit(train_ds(), epochs=2, steps_per_epoch=4, validation_data=(val_lowres, val_highres),
                        verbose=0)
    preds = keras.ops.convert_to_numpy(model.predict_step(test_image))
    learning_rate = float(np.asarray(model.optimizer.learning_rate))
    return history, model.get_weights(), preds, learning_rate, int(model.optimizer.iterations)


def test_edsr_super_resolution(keras_ref):
    rng = np.random.default_rng(39)

    def images(n):
        highres = (rng.random((n, 16, 16, 3)) * 255).astype("float32")
        lowres = highres.reshape(n, 4, 4, 4, 4, 3).mean(axis=(2, 4))  # (the example's 4x-downscaled DIV2K)
        return lowres, highres

    test_image = (rng.random((6, 5, 3)) * 255).astype("uint8")
    data = images(16), images(8), test_image
    initial = _edsr_model(keras_ref)[0].get_weights()
    theirs = _edsr_run(keras_ref, initial, data)
    ours = _edsr_run(kerasish, initial, data)
    assert sorted(ours[0].history) == ["loss", "psnr", "val_loss", "val_psnr"]  # (Keras snake-cases `PSNR`)
    assert_history(ours[0], theirs[0])
    for a, b in zip(ours[1], theirs[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # `predict_step` called on one uint8 image: a (24, 20, 3) uint8 image (rounding may flip one step)
    assert ours[2].dtype == theirs[2].dtype == np.uint8 and ours[2].shape == theirs[2].shape == (24, 20, 3)
    np.testing.assert_allclose(ours[2].astype(int), theirs[2].astype(int), atol=1)
    assert ours[3:] == theirs[3:]  # PiecewiseConstantDecay past its boundary after 8 steps
    assert ours[3] == pytest.approx(5e-4) and ours[4] == 8
