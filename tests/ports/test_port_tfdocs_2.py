"""The second round of tensorflow.org Keras tutorials (tensorflow/docs site/en/tutorials: images/classification,
images/data_augmentation, images/transfer_learning, images/segmentation, audio/simple_audio), ported by changing
`tf.keras` to `keras` (`import kerasish as keras`) and `tf.*` ops to torch / `keras.ops`. Each replays the tf.keras 2
run recorded by tools/fixtures/make_tfdocs_programs_2.py (whose docstring lists the tutorials and what was shrunk)
from the same initial weights on the same batches. The data is the fixture's data.py, shared with the generator.

What the ports change besides the imports (each named where it happens):
- `image_dataset_from_directory`: the tutorial's shuffled call is compared by its class names and file lists (both
  shuffle the file list with NumPy's RandomState(seed)); training uses the same call with `shuffle=False`, in the
  generator too (tf.data's per-epoch shuffle draws from TensorFlow's own generator);
- `tf.signal.stft` -> `keras.ops.stft(center=False)` given TensorFlow's window explicitly (for an odd
  frame_length, tf's "periodic" Hann window is the symmetric one; Keras 3's and kerasish's `"hann"` is not);
- random augmentation layers: tf.keras's draws cannot be reproduced, so they are compared at inference (the
  identity in both), by deterministic checks of what they draw, and in training against real Keras 3 after the
  same `set_random_seed` (kerasish draws Keras 3's streams); Dropout rates are `DROP` (0.0).

Initial and final weights are per leaf layer (`_leaf_weights`): tf.keras 2's `Model.get_weights()` puts all
trainable weights before all non-trainable ones, Keras 3 (and kerasish) keep layer order.
Tolerances: TensorFlow's float32 kernels against torch's over a few steps: rtol 2e-4 / atol 2e-5 unless a test
says why; file names, counts and class names exactly.
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish import layers

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "tfdocs2")
META = json.load(open(os.path.join(HERE, "metadata.json")))["programs"]
TOL = {"rtol": 2e-4, "atol": 2e-5}
DROP = 0.0

_spec = importlib.util.spec_from_file_location("tfdocs2_data", os.path.join(HERE, "data.py"))
data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one torch thread runs them fastest on the shared machine (see test_port_tfdocs.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _arrays(name):
    with np.load(os.path.join(HERE, name + ".npz"), allow_pickle=False) as f:
        arrays = dict(f)

    def listed(key):
        return [arrays[f"{key}.{i}"] for i in range(META[name][key + "#len"])]

    return arrays, listed


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _leaves(layer):
    if hasattr(layer, "layers"):
        return [leaf for sub in layer.layers for leaf in _leaves(sub)]
    return [layer] if layer.weights else []


def _leaf_weights(model):
    return [w for leaf in _leaves(model) for w in leaf.get_weights()]


def _set_leaf_weights(model, weights):
    weights = list(weights)
    for leaf in _leaves(model):
        n = len(leaf.weights)
        leaf.set_weights(weights[:n])
        weights = weights[n:]
    assert not weights, "weights left over"


def _assert_list(got, want, tol=TOL, what=""):
    assert len(got) == len(want), what
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(_np(a), np.asarray(b), err_msg=f"{what}[{i}]", **tol)


def _assert_history(history, want, tol=TOL):
    assert sorted(history.history) == sorted(want)
    for key, values in want.items():
        np.testing.assert_allclose(history.history[key], values, err_msg=key, **tol)


# ------------------------------------------------------------------------------------------------ images
def test_classification_image_dataset_from_directory_and_cnn(tmp_path):
    arrays, listed = _arrays("classification")
    meta = META["classification"]
    data_dir = data.write_flowers(str(tmp_path / "flower_photos"))
    batch_size, img_height, img_width = 4, 8, 8
    train_ds = keras.utils.image_dataset_from_directory(
        data_dir, validation_split=0.2, subset="training", seed=123, image_size=(img_height, img_width),
        batch_size=batch_size, verbose=False)
    val_ds = keras.utils.image_dataset_from_directory(
        data_dir, validation_split=0.2, subset="validation", seed=123, image_size=(img_height, img_width),
        batch_size=batch_size, verbose=False)
    assert list(train_ds.class_names) == meta["class_names"]
    assert [os.path.relpath(p, data_dir) for p in train_ds.file_paths] == meta["train_files"]
    assert [os.path.relpath(p, data_dir) for p in val_ds.file_paths] == meta["val_files"]

    train_ds, val_ds = keras.utils.image_dataset_from_directory(  # shuffle=False: see the module docstring
        data_dir, validation_split=0.2, subset="both", seed=123, shuffle=False, image_size=(img_height, img_width),
        batch_size=batch_size, verbose=False)
    assert [os.path.relpath(p, data_dir) for p in train_ds.file_paths] == meta["train_files_unshuffled"]
    for image_batch, labels_batch in train_ds:
        np.testing.assert_array_equal(_np(image_batch), arrays["first_batch"])
        np.testing.assert_array_equal(_np(labels_batch), arrays["first_labels"])
        break
    num_classes = len(train_ds.class_names)
    model = keras.Sequential([
        layers.Rescaling(1. / 255, input_shape=(img_height, img_width, 3)),
        layers.Conv2D(4, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Conv2D(8, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(16, activation='relu'),
        layers.Dense(num_classes)
    ])
    _set_leaf_weights(model, listed("init"))
    model.compile(optimizer='adam', loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    _assert_history(model.fit(train_ds, validation_data=val_ds, epochs=3, verbose=0), meta["history"])
    _assert_list(_leaf_weights(model), listed("final"), what="final")
    val_images = np.concatenate([_np(x) for x, _ in val_ds])
    np.testing.assert_allclose(_np(model.predict(val_images, verbose=0)), arrays["val_logits"], **TOL)


def _augmentation_model(num_classes, img_height=8, img_width=8):
    data_augmentation = keras.Sequential([
        layers.RandomFlip("horizontal", input_shape=(img_height, img_width, 3)),
        layers.RandomRotation(0.1),
        layers.RandomZoom(0.1),
    ])
    model = keras.Sequential([
        data_augmentation,
        layers.Rescaling(1. / 255),
        layers.Conv2D(4, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Conv2D(8, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Dropout(DROP),
        layers.Flatten(),
        layers.Dense(16, activation='relu'),
        layers.Dense(num_classes, name="outputs")
    ])
    return data_augmentation, model


def test_data_augmentation_model_is_the_identity_at_inference(tmp_path):
    """The augmentation model's predictions / evaluate equal tf.keras's: RandomFlip / RandomRotation / RandomZoom
    pass the images through untouched outside training."""
    arrays, listed = _arrays("classification")
    meta = META["classification"]
    data_dir = data.write_flowers(str(tmp_path / "flower_photos"))
    _, val_ds = keras.utils.image_dataset_from_directory(
        data_dir, validation_split=0.2, subset="both", seed=123, shuffle=False, image_size=(8, 8), batch_size=4,
        verbose=False)
    val_images = np.concatenate([_np(x) for x, _ in val_ds])
    _, model = _augmentation_model(len(meta["class_names"]))
    _set_leaf_weights(model, listed("aug_init"))
    model.compile(optimizer='adam', loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    logits = _np(model.predict(val_images, verbose=0))
    np.testing.assert_allclose(logits, arrays["aug_val_logits"], **TOL)
    np.testing.assert_allclose(model.evaluate(val_ds, verbose=0), meta["aug_evaluate"], **TOL)
    score = _np(keras.ops.softmax(logits[0]))  # tf.nn.softmax
    assert meta["class_names"][int(np.argmax(score))] == meta["aug_first_class"]
    np.testing.assert_allclose(100 * np.max(score), meta["aug_first_confidence"], rtol=2e-4)


def test_data_augmentation_draws_are_valid_augmentations():
    """What the random layers draw in training cannot be compared with tf.keras's draws; check what they must be:
    RandomFlip('horizontal') gives each image either unchanged or mirrored left-right, and both occur;
    RandomRotation / RandomZoom change the images but keep them in the input's range; the Sequential of all three
    is the identity with training=False."""
    keras.utils.set_random_seed(7)
    x = torch.from_numpy(np.random.RandomState(0).rand(64, 8, 8, 3).astype("float32") * 255)
    flipped = _np(layers.RandomFlip("horizontal")(x, training=True))
    xs = _np(x)
    same = np.all(flipped == xs, axis=(1, 2, 3))
    mirrored = np.all(flipped == xs[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(same | mirrored) and same.any() and mirrored.any()
    for layer in (layers.RandomRotation(0.1), layers.RandomZoom(0.1)):
        out = _np(layer(x, training=True))
        assert out.shape == xs.shape
        assert not np.allclose(out, xs)
        assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3
    augmentation, _ = _augmentation_model(3)
    np.testing.assert_array_equal(_np(augmentation(x, training=False)), xs)


def _small_base(img_shape):
    inputs = keras.Input(shape=img_shape)
    x = layers.Conv2D(4, 3, strides=2, padding='same', use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(6., name="relu1")(x)
    x = layers.Conv2D(6, 3, padding='same', use_bias=False, name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.ReLU(6., name="relu2")(x)
    return keras.Model(inputs, x, name="small_base")


def test_transfer_learning_frozen_base_then_fine_tuning():
    """Frozen base called with training=False (its BatchNormalization uses the moving statistics and keeps them),
    then `trainable = True` with the first layers frozen again, RMSprop at a tenth of the rate,
    `initial_epoch=history.epoch[-1]`."""
    arrays, listed = _arrays("transfer_learning")
    meta = META["transfer_learning"]
    x, y = data.pets()
    x_val, y_val = data.pets(seed=25, n=8)
    img_shape = (8, 8, 3)
    preprocess_input = layers.Rescaling(1. / 127.5, offset=-1)
    base_model = _small_base(img_shape)
    inputs = keras.Input(shape=img_shape)
    h = preprocess_input(inputs)
    h = base_model(h, training=False)
    h = layers.GlobalAveragePooling2D()(h)
    h = layers.Dropout(DROP)(h)
    outputs = layers.Dense(1)(h)
    model = keras.Model(inputs, outputs)
    _set_leaf_weights(model, listed("init"))
    np.testing.assert_allclose(_np(base_model(preprocess_input(x[:4]))), arrays["feature_batch"], **TOL)
    base_model.trainable = False
    assert len(model.trainable_variables) == meta["n_trainable_frozen"]
    base_learning_rate = 0.01
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=base_learning_rate),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0, name='accuracy')])
    np.testing.assert_allclose(model.evaluate(x_val, y_val, batch_size=4, verbose=0), meta["initial_evaluate"], **TOL)
    initial_epochs = 3
    h1 = model.fit(x, y, batch_size=4, epochs=initial_epochs, validation_data=(x_val, y_val), shuffle=False,
                   verbose=0)
    _assert_history(h1, meta["history"])
    _assert_list(_leaf_weights(model), listed("after_frozen"), what="after_frozen")

    base_model.trainable = True
    for layer in base_model.layers[:3]:
        layer.trainable = False
    model.compile(loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  optimizer=keras.optimizers.RMSprop(learning_rate=base_learning_rate / 10),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0, name='accuracy')])
    assert len(model.trainable_variables) == meta["n_trainable_fine"]
    h2 = model.fit(x, y, batch_size=4, epochs=initial_epochs + 2, initial_epoch=h1.epoch[-1],
                   validation_data=(x_val, y_val), shuffle=False, verbose=0)
    assert list(h2.epoch) == meta["fine_epochs"]
    _assert_history(h2, meta["fine_history"])
    _assert_list(_leaf_weights(model), listed("final"), what="final")
    np.testing.assert_allclose(model.evaluate(x_val, y_val, batch_size=4, verbose=0), meta["evaluate"], **TOL)
    predictions = torch.sigmoid(torch.as_tensor(_np(model.predict_on_batch(x_val[:4])).flatten()))
    np.testing.assert_allclose(_np(predictions), arrays["predictions"], **TOL)


def _upsample(filters, size):
    """pix2pix.upsample(filters, size, apply_dropout=False)."""
    initializer = keras.initializers.RandomNormal(0., 0.02)  # tf.random_normal_initializer
    result = keras.Sequential()
    result.add(layers.Conv2DTranspose(filters, size, strides=2, padding='same', kernel_initializer=initializer,
                                      use_bias=False))
    result.add(layers.BatchNormalization())
    result.add(layers.ReLU())
    return result


def test_segmentation_unet():
    arrays, listed = _arrays("segmentation")
    meta = META["segmentation"]
    x, y = data.segmentation()
    x_test, y_test = data.segmentation(seed=26, n=8)
    base_in = keras.Input(shape=[8, 8, 3])
    a = layers.Conv2D(4, 3, strides=2, padding='same', activation='relu', name="block_1_expand_relu")(base_in)
    b = layers.Conv2D(8, 3, strides=2, padding='same', activation='relu', name="block_3_expand_relu")(a)
    down_stack = keras.Model(inputs=base_in, outputs=[a, b])
    down_stack.trainable = False
    up_stack = [_upsample(4, 3)]

    def unet_model(output_channels):
        inputs = layers.Input(shape=[8, 8, 3])
        skips = down_stack(inputs)
        h = skips[-1]
        skips = reversed(skips[:-1])
        for up, skip in zip(up_stack, skips):
            h = up(h)
            h = layers.Concatenate()([h, skip])
        last = layers.Conv2DTranspose(filters=output_channels, kernel_size=3, strides=2, padding='same')
        return keras.Model(inputs=inputs, outputs=last(h))

    model = unet_model(output_channels=3)
    _set_leaf_weights(model, listed("init"))
    model.compile(optimizer='adam', loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    _assert_history(model.fit(x, y, batch_size=4, epochs=3, validation_data=(x_test, y_test), shuffle=False,
                              verbose=0), meta["history"])
    _assert_list(_leaf_weights(model), listed("final"), what="final")
    pred_mask = _np(model.predict(x_test[:2], verbose=0))
    np.testing.assert_allclose(pred_mask, arrays["pred_logits"], **TOL)
    np.testing.assert_array_equal(np.argmax(pred_mask, axis=-1)[..., None], arrays["create_mask"])
    np.testing.assert_allclose(model.evaluate(x_test, y_test, batch_size=4, verbose=0), meta["evaluate"], **TOL)


# ------------------------------------------------------------------------------------------------ audio
# tf.signal.stft's default window, `hann_window(255, periodic=True)`: TensorFlow makes a "periodic" window of odd
# length symmetric (cos(2 pi n / 254)), which is np.hanning(255); Keras 3's torch backend (scipy's get_window) and
# kerasish make window="hann" truly periodic (cos(2 pi n / 255)): see test_stft_hann_window_is_keras3s
TF_HANN_255 = np.hanning(255).astype("float32")


def get_spectrogram(waveform):
    """tf.signal.stft(frame_length=255, frame_step=128) -> keras.ops.stft(center=False) with TensorFlow's window:
    each frame of 255 samples windowed and zero-padded to fft_length 256, no centring."""
    real, imag = keras.ops.stft(waveform, sequence_length=255, sequence_stride=128, fft_length=256,
                                window=TF_HANN_255, center=False)
    spectrogram = torch.sqrt(real ** 2 + imag ** 2)  # tf.abs
    return spectrogram[..., None]


def test_stft_hann_window_is_keras3s(keras_ref):
    """Documented difference: `window="hann"` follows Keras 3 (checked here against Keras 3.15's torch backend),
    whose odd-length Hann window is not tf.signal's (the recorded spectrogram is ~0.16 away with it, about
    6e-6 with TensorFlow's window passed explicitly, as the port does)."""
    arrays, _ = _arrays("simple_audio")
    x, _ = data.waveforms()
    real, imag = keras.ops.stft(torch.from_numpy(x), 255, 128, 256, window="hann", center=False)
    k_real, k_imag = keras_ref.ops.stft(x, 255, 128, 256, window="hann", center=False)
    np.testing.assert_allclose(_np(real), keras_ref.ops.convert_to_numpy(k_real), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(imag), keras_ref.ops.convert_to_numpy(k_imag), rtol=1e-5, atol=1e-5)
    magnitude = np.sqrt(_np(real) ** 2 + _np(imag) ** 2)
    assert np.abs(magnitude - arrays["train_spec"][..., 0]).max() > 0.05
    n = np.arange(255)
    np.testing.assert_allclose(TF_HANN_255, 0.5 - 0.5 * np.cos(2 * np.pi * n / 254), atol=1e-6)


def test_simple_audio_stft_resizing_normalization():
    arrays, listed = _arrays("simple_audio")
    meta = META["simple_audio"]
    x, y = data.waveforms()
    x_val, y_val = data.waveforms(seed=27, n=9)
    train_spec = _np(get_spectrogram(torch.from_numpy(x)))
    val_spec = _np(get_spectrogram(torch.from_numpy(x_val)))
    np.testing.assert_allclose(train_spec, arrays["train_spec"], rtol=1e-4, atol=1e-4)  # float32 FFTs, |X| up to ~75
    input_shape = train_spec.shape[1:]
    norm_layer = layers.Normalization()
    norm_layer.adapt(data=[train_spec[i:i + 6] for i in range(0, len(train_spec), 6)])  # Dataset.batch(6)
    np.testing.assert_allclose(_np(norm_layer.mean), arrays["norm_mean"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_np(norm_layer.variance), arrays["norm_variance"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_np(layers.Resizing(8, 8)(val_spec[:2])), arrays["resized"], rtol=1e-4, atol=1e-4)
    model = keras.models.Sequential([
        layers.Input(shape=input_shape),
        layers.Resizing(8, 8),
        norm_layer,
        layers.Conv2D(4, 3, activation='relu'),
        layers.Conv2D(8, 3, activation='relu'),
        layers.MaxPooling2D(),
        layers.Dropout(DROP),
        layers.Flatten(),
        layers.Dense(16, activation='relu'),
        layers.Dropout(DROP),
        layers.Dense(3),
    ])
    _set_leaf_weights(model, listed("init"))
    model.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    h = model.fit(train_spec, y, batch_size=6, validation_data=(val_spec, y_val), epochs=6, shuffle=False,
                  callbacks=keras.callbacks.EarlyStopping(verbose=0, patience=2), verbose=0)
    _assert_history(h, meta["history"])
    _assert_list(_leaf_weights(model), listed("final"), what="final")
    got = model.evaluate(val_spec, y_val, return_dict=True, verbose=0)
    assert sorted(got) == sorted(meta["evaluate"])
    np.testing.assert_allclose([got[k] for k in sorted(got)], [meta["evaluate"][k] for k in sorted(got)], **TOL)
    np.testing.assert_allclose(_np(model.predict(val_spec, verbose=0)), arrays["y_pred"], **TOL)



def test_simple_audio_input_pipeline_audio_dataset_from_directory(tmp_path):
    """simple_audio's pipeline: audio_dataset_from_directory(validation_split, seed, output_sequence_length,
    subset='both') on 16-bit WAVs (class names; the seeded split sends the same files to validation), then on the
    unshuffled datasets `map(squeeze)`, `shard(2, 0)` / `shard(2, 1)`, `take(1)` and the spectrograms through
    `map` equal tf.data's."""
    arrays, _ = _arrays("speech_commands_dataset")
    meta = META["speech_commands_dataset"]
    data_dir = data.write_commands(str(tmp_path / "mini_speech_commands"))
    train_ds, val_ds = keras.utils.audio_dataset_from_directory(
        directory=data_dir, batch_size=2, validation_split=0.2, seed=0, output_sequence_length=1000, subset='both',
        verbose=False)
    assert [str(v) for v in np.array(train_ds.class_names)] == meta["label_names"]
    members = sorted((int(l), float(_np(a).sum())) for x, y in val_ds for a, l in zip(x, _np(y)))
    assert [m[0] for m in members] == [m[0] for m in meta["val_members"]]
    np.testing.assert_allclose([m[1] for m in members], [m[1] for m in meta["val_members"]], atol=1e-3)
    for x, _ in train_ds.take(1):
        assert list(x.shape[1:]) == meta["element_spec_shape"][1:2] + [1]  # (batch, 1000, channels=1)

    train_ds, val_ds = keras.utils.audio_dataset_from_directory(
        directory=data_dir, batch_size=2, validation_split=0.2, seed=0, output_sequence_length=1000, subset='both',
        shuffle=False, verbose=False)

    def squeeze(audio, labels):
        audio = torch.squeeze(audio, dim=-1)  # tf.squeeze
        return audio, labels

    train_ds = train_ds.map(squeeze)  # num_parallel_calls=tf.data.AUTOTUNE dropped
    val_ds = val_ds.map(squeeze)
    test_ds = val_ds.shard(num_shards=2, index=0)
    val_ds = val_ds.shard(num_shards=2, index=1)
    assert (len(test_ds), len(val_ds)) == (meta["test_batches"], meta["val_batches"])
    for example_audio, example_labels in train_ds.take(1):
        np.testing.assert_allclose(_np(example_audio), arrays["example_audio"], rtol=0, atol=1e-7)
        np.testing.assert_array_equal(_np(example_labels), arrays["example_labels"])

    def make_spec_ds(ds):
        return ds.map(map_func=lambda audio, label: (get_spectrogram(audio), label))

    test_spec = [(_np(s), _np(l)) for s, l in make_spec_ds(test_ds)]
    np.testing.assert_allclose(np.concatenate([s for s, _ in test_spec]), arrays["test_spec"], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.concatenate([l for _, l in test_spec]), arrays["test_labels"])



# ------------------------------------------------------------------------------------------------ structured
def test_imbalanced_data_oversampling(tmp_path):
    """imbalanced_data's "Oversample the minority class": NumPy oversampling, the resampled dataset as an endless
    stream of batches (a generator in both frameworks, in place of `sample_from_datasets`), steps_per_epoch,
    initial weights saved / loaded and the output bias set to 0, the 11 METRICS, EarlyStopping(val_prc, max,
    restore_best_weights)."""
    arrays, listed = _arrays("imbalanced_oversampling")
    meta = META["imbalanced_oversampling"]
    x, y = data.fraud()
    train_features, train_labels = x[:150], y[:150]
    val_features, val_labels = x[150:], y[150:]
    neg, pos = np.bincount(train_labels.astype(int))
    METRICS = [
        keras.metrics.BinaryCrossentropy(name='cross entropy'),
        keras.metrics.MeanSquaredError(name='Brier score'),
        keras.metrics.TruePositives(name='tp'),
        keras.metrics.FalsePositives(name='fp'),
        keras.metrics.TrueNegatives(name='tn'),
        keras.metrics.FalseNegatives(name='fn'),
        keras.metrics.BinaryAccuracy(name='accuracy'),
        keras.metrics.Precision(name='precision'),
        keras.metrics.Recall(name='recall'),
        keras.metrics.AUC(name='auc'),
        keras.metrics.AUC(name='prc', curve='PR'),
    ]

    def make_model(metrics=METRICS, output_bias=None):
        if output_bias is not None:
            output_bias = keras.initializers.Constant(output_bias)
        model = keras.Sequential([
            keras.layers.Dense(8, activation='relu', input_shape=(train_features.shape[-1],)),
            keras.layers.Dropout(DROP),
            keras.layers.Dense(1, activation='sigmoid', bias_initializer=output_bias),
        ])
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2), loss=keras.losses.BinaryCrossentropy(),
                      metrics=metrics)
        return model

    BATCH_SIZE = 16
    resampled_features, resampled_labels = data.oversampled(train_features, train_labels)
    np.testing.assert_array_equal(resampled_labels, arrays["resampled_labels"])
    resampled_ds = data.repeat_batches(resampled_features, resampled_labels, BATCH_SIZE)
    resampled_steps_per_epoch = int(np.ceil(2.0 * neg / BATCH_SIZE))
    assert resampled_steps_per_epoch == meta["steps_per_epoch"]
    resampled_model = make_model(output_bias=np.log([pos / neg]))
    resampled_model.set_weights(listed("init"))  # the first Dense's draw is tf.keras's
    initial_weights = str(tmp_path / 'initial.weights.h5')
    resampled_model.save_weights(initial_weights)
    resampled_model = make_model()
    resampled_model.load_weights(initial_weights)
    output_layer = resampled_model.layers[-1]
    output_layer.bias.assign([0])
    early_stopping = keras.callbacks.EarlyStopping(monitor='val_prc', verbose=0, patience=2, mode='max',
                                                   restore_best_weights=True)
    h = resampled_model.fit(resampled_ds, epochs=8, steps_per_epoch=resampled_steps_per_epoch,
                            callbacks=[early_stopping], validation_data=(val_features, val_labels), verbose=0)
    _assert_history(h, meta["history"])
    assert early_stopping.stopped_epoch == meta["stopped_epoch"]
    _assert_list(resampled_model.get_weights(), listed("final"), what="final")
    got = resampled_model.evaluate(val_features, val_labels, batch_size=BATCH_SIZE, verbose=0, return_dict=True)
    assert sorted(got) == sorted(meta["evaluate"])
    np.testing.assert_allclose([got[k] for k in sorted(got)], [meta["evaluate"][k] for k in sorted(got)], **TOL)


# ------------------------------------------------------------------------------------------------ text
UNITS, VOCAB = 8, 12


def _nmt(keras):
    """The tutorial's classes and functions over a Keras module: kerasish, or real Keras 3 (torch backend) where
    the two are compared."""

    class Encoder(keras.layers.Layer):
        def __init__(self, vocab_size, units):
            super(Encoder, self).__init__()
            self.vocab_size = vocab_size
            self.units = units
            self.embedding = keras.layers.Embedding(self.vocab_size, units, mask_zero=True)
            self.rnn = keras.layers.Bidirectional(
                merge_mode='sum', layer=keras.layers.GRU(units, return_sequences=True,
                                                         recurrent_initializer='glorot_uniform'))

        def call(self, x):
            x = self.embedding(x)
            x = self.rnn(x)
            return x

    class CrossAttention(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__()
            self.mha = keras.layers.MultiHeadAttention(key_dim=units, num_heads=1, **kwargs)
            self.layernorm = keras.layers.LayerNormalization()
            self.add = keras.layers.Add()

        def call(self, x, context):
            attn_output, attn_scores = self.mha(query=x, value=context, return_attention_scores=True)
            attn_scores = keras.ops.mean(attn_scores, axis=1)  # tf.reduce_mean
            self.last_attention_weights = attn_scores
            x = self.add([x, attn_output])
            x = self.layernorm(x)
            return x

    class Decoder(keras.layers.Layer):
        def __init__(self, vocab_size, units):
            super(Decoder, self).__init__()
            self.vocab_size = vocab_size
            self.units = units
            self.embedding = keras.layers.Embedding(self.vocab_size, units, mask_zero=True)
            self.rnn = keras.layers.GRU(units, return_sequences=True, return_state=True,
                                        recurrent_initializer='glorot_uniform')
            self.attention = CrossAttention(units)
            self.output_layer = keras.layers.Dense(self.vocab_size)

        def call(self, context, x, state=None, return_state=False):
            x = self.embedding(x)
            x, state = self.rnn(x, initial_state=state)
            x = self.attention(x, context)
            self.last_attention_weights = self.attention.last_attention_weights
            logits = self.output_layer(x)
            if return_state:
                return logits, state
            else:
                return logits

    class Translator(keras.Model):
        def __init__(self, units, vocab_size):
            super().__init__()
            self.encoder = Encoder(vocab_size, units)
            self.decoder = Decoder(vocab_size, units)

        def call(self, inputs):
            context, x = inputs
            context = self.encoder(context)
            logits = self.decoder(context, x)
            try:
                del logits._keras_mask
            except AttributeError:
                pass
            return logits

    def masked_loss(y_true, y_pred):
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction='none')
        loss = loss_fn(y_true, y_pred)
        mask = keras.ops.cast(y_true != 0, loss.dtype)
        loss *= mask
        return keras.ops.sum(loss) / keras.ops.sum(mask)

    def masked_acc(y_true, y_pred):
        y_pred = keras.ops.argmax(y_pred, axis=-1)
        y_pred = keras.ops.cast(y_pred, y_true.dtype)
        match = keras.ops.cast(y_true == y_pred, "float32")
        mask = keras.ops.cast(y_true != 0, "float32")
        return keras.ops.sum(match) / keras.ops.sum(mask)

    return Translator, masked_loss, masked_acc


def _nmt_leaves(model):
    enc, dec = model.encoder, model.decoder
    return [enc.embedding, enc.rnn, dec.embedding, dec.rnn, dec.attention.mha, dec.attention.layernorm,
            dec.output_layer]


def _nmt_model(keras_module, weights):
    Translator, masked_loss, masked_acc = _nmt(keras_module)
    context, target_in, _ = data.translation_pairs()
    model = Translator(UNITS, VOCAB)
    model((context[:4], target_in[:4]))
    weights = list(weights)
    for leaf in _nmt_leaves(model):
        n = len(leaf.weights)
        leaf.set_weights(weights[:n])
        weights = weights[n:]
    assert not weights
    return model, masked_loss, masked_acc


def _translate(model, context, steps=4, reencode=False):
    """The tutorial's translate(): greedy (temperature 0.0) from [START], the decoder's GRU state carried;
    `reencode` runs the encoder again before every step (see test_nmt_translate_loop_follows_keras3)."""
    enc = model.encoder(context)
    next_token = torch.full((len(context), 1), 2)  # tf.fill([batch, 1], start_token)
    state, tokens, attention = None, [], []
    for _ in range(steps):
        if reencode:
            enc = model.encoder(context)
        logits, state = model.decoder(enc, next_token, state=state, return_state=True)
        next_token = torch.argmax(torch.as_tensor(_np(logits))[:, -1:, :], dim=-1)  # tf.argmax
        tokens.append(_np(next_token))
        attention.append(_np(model.decoder.last_attention_weights))
    return np.concatenate(tokens, axis=1), np.concatenate(attention, axis=1)


def test_nmt_with_attention_translator():
    """tensorflow/text's nmt_with_attention: Embedding(mask_zero) + Bidirectional(GRU, merge_mode='sum') encoder,
    GRU decoder with a MultiHeadAttention cross attention whose padding mask comes from the encoder's output,
    masked loss / accuracy as loss and metrics (the logits' mask deleted, as the tutorial does), then the greedy
    translate() loop: its first step equals tf.keras's; the later ones follow Keras 3 (next test)."""
    arrays, listed = _arrays("nmt_with_attention")
    meta = META["nmt_with_attention"]
    context, target_in, target_out = data.translation_pairs()
    v_context, v_in, v_out = data.translation_pairs(seed=29, n=6)
    model, masked_loss, masked_acc = _nmt_model(keras, listed("init"))
    logits = model((context[:4], target_in[:4]))
    np.testing.assert_allclose(_np(logits), arrays["first_logits"], **TOL)
    np.testing.assert_allclose(_np(model.decoder.last_attention_weights), arrays["first_attention"], **TOL)
    model.compile(optimizer='adam', loss=masked_loss, metrics=[masked_acc, masked_loss])
    got = model.evaluate((v_context, v_in), v_out, batch_size=3, return_dict=True, verbose=0)
    assert sorted(got) == sorted(meta["evaluate0"])
    np.testing.assert_allclose([got[k] for k in sorted(got)], [meta["evaluate0"][k] for k in sorted(got)], **TOL)
    h = model.fit((context, target_in), target_out, batch_size=4, epochs=3, shuffle=False,
                  validation_data=((v_context, v_in), v_out), validation_batch_size=3,
                  callbacks=[keras.callbacks.EarlyStopping(patience=3)], verbose=0)
    _assert_history(h, meta["history"])
    _assert_list([w for leaf in _nmt_leaves(model) for w in leaf.get_weights()], listed("final"), what="final")
    tokens, attention = _translate(model, v_context[:3], steps=1)
    np.testing.assert_array_equal(tokens, arrays["tokens"][:, :1])
    np.testing.assert_allclose(attention, arrays["attention"][:, :1], **TOL)
    # with the encoder run again before each step, every step is tf.keras's
    tokens, attention = _translate(model, v_context[:3], reencode=True)
    np.testing.assert_array_equal(tokens, arrays["tokens"])
    np.testing.assert_allclose(attention, arrays["attention"], **TOL)


@pytest.mark.filterwarnings("ignore:Layer .* does not support masking")  # Keras 3's own, for the custom layers
def test_nmt_translate_loop_follows_keras3(keras_ref):
    """Documented difference: Keras 3's MultiHeadAttention takes the Keras mask off its query / value / key
    tensors (`set_keras_mask(value, None)`), so the tutorial's loop, which reuses one encoder output for every
    step, masks the padded context only in the first step; from the second on the attention spreads over the
    padding. tf.keras 2 kept the mask (recorded attention: 0 on padded keys at every step). kerasish follows
    Keras 3 exactly (tokens and attention compared with Keras 3.15 from tf.keras's trained weights)."""
    arrays, listed = _arrays("nmt_with_attention")
    v_context, _, _ = data.translation_pairs(seed=29, n=6)
    tokens, attention = _translate(_nmt_model(keras, listed("final"))[0], v_context[:3])
    k_tokens, k_attention = _translate(_nmt_model(keras_ref, listed("final"))[0], v_context[:3])
    np.testing.assert_array_equal(tokens, k_tokens)
    np.testing.assert_allclose(attention, k_attention, **TOL)
    padded = v_context[:3] == 0
    assert np.all(arrays["attention"][:, 1:][np.broadcast_to(padded[:, None], arrays["attention"][:, 1:].shape)] == 0)
    assert np.all(attention[:, 1:][np.broadcast_to(padded[:, None], attention[:, 1:].shape)] > 0.1)


def test_data_augmentation_training_matches_keras3_seeded(tmp_path, keras_ref):
    """Training through RandomFlip / RandomRotation / RandomZoom cannot reproduce tf.keras's draws; against real
    Keras 3 (torch backend) after the same `set_random_seed`, kerasish draws the same augmentations: History and
    final weights agree."""
    _, listed = _arrays("classification")
    data_dir = data.write_flowers(str(tmp_path / "flower_photos"))
    train_ds, _ = keras.utils.image_dataset_from_directory(
        data_dir, validation_split=0.2, subset="both", seed=123, shuffle=False, image_size=(8, 8), batch_size=4,
        verbose=False)
    x = np.concatenate([_np(a) for a, _ in train_ds])
    y = np.concatenate([_np(b) for _, b in train_ds])
    results = []
    for k, seed in ((keras, 42), (keras_ref, 42), (keras, 43)):
        k.utils.set_random_seed(seed)  # before the layers: an unseeded layer takes its seed when it is made
        model = k.Sequential([
            k.Sequential([layers_.RandomFlip("horizontal"), layers_.RandomRotation(0.1), layers_.RandomZoom(0.1)])
            for layers_ in [k.layers]] + [
            k.layers.Rescaling(1. / 255), k.layers.Conv2D(4, 3, padding='same', activation='relu'),
            k.layers.MaxPooling2D(), k.layers.Conv2D(8, 3, padding='same', activation='relu'),
            k.layers.MaxPooling2D(), k.layers.Dropout(DROP), k.layers.Flatten(),
            k.layers.Dense(16, activation='relu'), k.layers.Dense(3, name="outputs")])
        model.build((None, 8, 8, 3))
        _set_leaf_weights(model, listed("aug_init"))
        model.compile(optimizer='adam', loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=['accuracy'])
        h = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        results.append((h.history, [_np(k.ops.convert_to_numpy(w)) for w in _leaf_weights(model)]))
    (h_ours, w_ours), (h_keras, w_keras), (h_other, _) = results
    assert abs(h_other["loss"][0] - h_ours["loss"][0]) > 1e-3  # the draws matter: another seed, another loss
    assert sorted(h_ours) == sorted(h_keras)
    for key in h_keras:
        np.testing.assert_allclose(h_ours[key], h_keras[key], err_msg=key, **TOL)
    _assert_list(w_ours, w_keras, what="final")


@pytest.mark.parametrize("make", [
    lambda k: k.layers.RandomFlip("horizontal_and_vertical"),
    lambda k: k.layers.RandomRotation(0.2),
    lambda k: k.layers.RandomContrast(0.5),
    lambda k: k.layers.RandomZoom(0.2),
    lambda k: k.Sequential([k.layers.Resizing(6, 6), k.layers.Rescaling(1. / 255),
                            k.layers.RandomFlip("horizontal_and_vertical"), k.layers.RandomRotation(0.2)]),
], ids=["flip_hv", "rotation", "contrast", "zoom", "resize_rescale_augment"])
def test_data_augmentation_layers_draw_keras3s_augmentations(make, keras_ref):
    """images/data_augmentation's layers (RandomContrast and 'horizontal_and_vertical' too, and its
    `resize_and_rescale` + `data_augmentation` pipeline) called with training=True, twice: equal to Keras 3's
    after the same `set_random_seed`, and the two calls differ."""
    x = np.random.RandomState(1).rand(6, 8, 8, 3).astype("float32") * 255
    outs = []
    for k in (keras, keras_ref):
        k.utils.set_random_seed(5)
        layer = make(k)
        outs.append([k.ops.convert_to_numpy(layer(x, training=True)) for _ in range(2)])
    (a1, a2), (b1, b2) = outs
    np.testing.assert_allclose(a1, b1, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(a2, b2, rtol=1e-5, atol=1e-3)
    assert not np.allclose(a1, a2)
