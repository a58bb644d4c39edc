"""Everyday Keras 2 user programs (tf.keras 2 idioms), ported by changing the
imports to kerasish: same initial weights as the recorded tf.keras 2 run
(tools/fixtures/make_keras2_user_programs.py), same Histories, learning rates,
features, checkpoints, predictions and final weights. See the generator's
docstring for the idioms each program exercises."""

from __future__ import annotations

import json
import os

import numpy as np

import kerasish as keras
from kerasish import backend as K

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras2_user_programs")
META = json.load(open(os.path.join(HERE, "metadata.json")))["programs"]
TOL = {"rtol": 2e-4, "atol": 2e-5}  # TensorFlow's kernels against torch's, a few epochs
# After ~20 Adam steps, weights whose gradients are nearly zero move by about +-lr per step on the sign of
# float noise, in either framework: features and weights then agree to a few lr-sized steps, not to 1e-5
# (the Histories, averaged over batches, stay within TOL)
ADAM_TOL = {"rtol": 1e-2, "atol": 3e-3}


def _expected(name):
    with np.load(os.path.join(HERE, name + ".npz"), allow_pickle=False) as f:
        arrays = dict(f)
    meta = META[name]

    def listed(key):
        return [arrays[f"{key}.{i}"] for i in range(meta[key + "#len"])]

    return arrays, meta, listed


def data(seed):
    """The generator's synthetic data, rebuilt with the same code."""
    rng = np.random.RandomState(seed)
    x_img = rng.rand(40, 8, 8, 1).astype("float32")
    brightness = x_img.mean(axis=(1, 2, 3))
    y_cls = np.digitize(brightness, np.quantile(brightness, [1 / 3, 2 / 3])).astype("int64")  # 3 balanced classes
    x_vec = rng.randn(48, 10).astype("float32")
    y_bin = (x_vec[:, :3].sum(axis=1) > 0).astype("float32")
    return x_img, y_cls, x_vec, y_bin


def _assert_history(got, want):
    want = {("learning_rate" if k == "lr" else k): v for k, v in want.items()}  # Keras 3's log name
    assert sorted(got.history) == sorted(want)
    for key, values in want.items():
        np.testing.assert_allclose(got.history[key], values, err_msg=key, **TOL)


def _assert_list(got, want, tol=TOL):
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, err_msg=f"weight {i}", **tol)


def test_feature_extractor_program(tmp_path):
    from kerasish.callbacks import ModelCheckpoint, ReduceLROnPlateau
    from kerasish.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
    from kerasish.models import Model, load_model

    arrays, meta, listed = _expected("feature_extractor")
    x, y, _, _ = data(0)
    x_train, y_train, x_test = x[:32], keras.utils.to_categorical(y[:32], 3), x[32:]
    inp = Input(shape=(8, 8, 1))
    h = Conv2D(4, (3, 3), activation="relu", name="conv")(inp)
    h = MaxPooling2D(pool_size=(2, 2))(h)
    h = Flatten()(h)
    feat = Dense(8, activation="relu", name="feat")(h)
    out = Dense(3, activation="softmax", name="out")(feat)
    model = Model(inp, out)
    model.set_weights(listed("init"))
    model.compile(optimizer=keras.optimizers.Adam(lr=0.02), loss="categorical_crossentropy", metrics=["accuracy"])
    best = str(tmp_path / "best.h5")
    callbacks = [ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=0, min_lr=1e-3, verbose=0),
                 ModelCheckpoint(best, monitor="val_loss", save_best_only=True, verbose=0)]
    h1 = model.fit(x_train, y_train, batch_size=8, epochs=4, validation_split=0.25, shuffle=False,
                   callbacks=callbacks, verbose=0)
    _assert_history(h1, meta["history_1"])
    np.testing.assert_allclose(float(K.get_value(model.optimizer.lr)), meta["lr_after_fit"], rtol=1e-6)
    K.set_value(model.optimizer.lr, 0.005)
    h2 = model.fit(x_train, y_train, batch_size=8, epochs=1, shuffle=False, verbose=0)
    _assert_history(h2, meta["history_2"])
    get_feat = K.function([model.input], [model.get_layer("feat").output])
    feats = get_feat([x_test])[0]
    np.testing.assert_allclose(feats, arrays["feats_kfunction"], **ADAM_TOL)
    extractor = Model(inputs=model.input, outputs=model.get_layer("feat").output)
    np.testing.assert_allclose(extractor.predict(x_test, verbose=0), feats, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(extractor.predict(x_test, verbose=0), arrays["feats_model"], **ADAM_TOL)
    np.testing.assert_allclose(load_model(best).predict(x_test, verbose=0), arrays["best_pred"], **ADAM_TOL)
    np.testing.assert_array_equal(np.argmax(model.predict(x_test, verbose=0), axis=-1), arrays["classes"])
    _assert_list(model.get_weights(), listed("final"), ADAM_TOL)


def test_generator_training_program():
    from kerasish.layers import BatchNormalization, Conv2D, Dense, Flatten
    from kerasish.models import Sequential
    from kerasish.preprocessing.image import ImageDataGenerator

    arrays, meta, listed = _expected("generator_training")
    x_img, y_cls, x, y = data(1)
    x_train, y_train, x_val, y_val = x[:32], y[:32], x[32:], y[32:]

    def batch_generator(features, labels, batch_size):
        while True:
            for i in range(0, len(features), batch_size):
                yield features[i:i + batch_size], labels[i:i + batch_size]

    model = Sequential([Dense(16, activation="relu", input_dim=10), BatchNormalization(),
                        Dense(1, activation="sigmoid")])
    model.set_weights(listed("init"))
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    h = model.fit(batch_generator(x_train, y_train, 8), steps_per_epoch=len(x_train) // 8, epochs=3,
                  validation_data=batch_generator(x_val, y_val, 8), validation_steps=2,
                  class_weight={0: 1.0, 1: 2.0}, verbose=0)
    _assert_history(h, meta["history_1"])
    np.testing.assert_allclose(model.evaluate(batch_generator(x_val, y_val, 8), steps=2, verbose=0),
                               arrays["evaluate"], **TOL)
    np.testing.assert_allclose(model.predict(batch_generator(x_val, y_val, 8), steps=2, verbose=0),
                               arrays["predict"], **TOL)
    _assert_list(model.get_weights(), listed("final"))

    images = (x_img * 255.0).astype("float32")
    cnn = Sequential([Conv2D(3, (3, 3), activation="relu", input_shape=(8, 8, 1)), Flatten(),
                      Dense(3, activation="softmax")])
    cnn.set_weights(listed("init_cnn"))
    cnn.compile(optimizer=keras.optimizers.SGD(lr=0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    datagen = ImageDataGenerator(rescale=1.0 / 255)
    # (fit shuffles a Sequence's batch order by default, differently in each framework: shuffle=False)
    h2 = cnn.fit(datagen.flow(images, y_cls, batch_size=8, shuffle=False), epochs=2, shuffle=False, verbose=0)
    _assert_history(h2, meta["history_2"])
    _assert_list(cnn.get_weights(), listed("final_cnn"))
