"""More keras.io examples (Keras 3 versions; continued from
test_port_kerasio_examples_11.py), ported the same way: the example's code
with `import keras` changed to `import kerasish as keras` (one builder runs
with real Keras 3 on torch and with kerasish), `tf.*` rewritten with
`keras.ops` or `torch.*`, small deterministic synthetic data, shrunk sizes,
the same initial weights and the same batches (shuffle=False) in both runs.

Covered here:

44. "Image segmentation with a U-Net-like architecture" (vision/
    oxford_pets_image_segmentation): the Xception-style U-Net
    (`SeparableConv2D`, `Conv2DTranspose`, `MaxPooling2D(3, strides=2,
    padding="same")`, `UpSampling2D`, residual projections with
    `layers.add`), a per-pixel softmax trained with
    "sparse_categorical_crossentropy" on uint8 `(h, w, 1)` masks, the
    example's `keras.utils.Sequence` of batches (its `__init__` does not
    call `super().__init__()`) for `fit`, `validation_data` and `predict`,
    `optimizer="rmsprop"`, a best-only `ModelCheckpoint` (`.keras` in
    Keras 3) loaded by both frameworks, and the predicted masks' argmax.
45. "Classification with Neural Decision Forests" (structured_data/
    deep_neural_decision_forests): `keras.Model` subclasses with an
    `add_weight` in `__init__` and a NumPy feature mask held as a tensor,
    a forest holding its trees in a Python list, `ops.tile` /
    `ops.reshape` on the dynamic batch size, `layers.concatenate` inside
    `call`, `keras.activations.softmax` on a weight, a dict of scalar
    `Input(shape=())` features (int32 ones through `Embedding`,
    `ops.expand_dims` for the float ones) and BatchNormalization;
    `SparseCategoricalAccuracy`. (The example's StringLookup needs
    TensorFlow in Keras 3: the categorical features arrive as indices.)
46. "Structured data learning with Wide, Deep, and Cross networks"
    (structured_data/wide_deep_cross_networks): the baseline, Wide & Deep
    and Deep & Cross models over a dict of scalar Inputs; one-hot
    ("binary") categorical encodings with `CategoryEncoding(output_mode=
    "multi_hot")` on `ops.expand_dims(...)` (the example's
    `StringLookup(output_mode="binary")` needs TensorFlow: the strings
    arrive as indices), `Embedding` for the deep part, `x0 * x + cross` on
    KerasTensors, `ReLU`, Dropout(0.1) with Keras's seeded draws, and
    `SparseCategoricalCrossentropy`.
47. "Image classification with EANet (External Attention Transformer)"
    (vision/eanet): a functional model whose external-attention blocks
    reshape and transpose KerasTensors with `ops.reshape` /
    `ops.transpose`, `Softmax(axis=2)` then a division by `ops.sum(...,
    keepdims=True)`, a patch layer over `ops.image.extract_patches`, a
    patch embedding adding `Embedding(ops.arange(...))`, a Sequential
    holding an adapted `Normalization`, `GlobalAvgPool1D`,
    `CategoricalCrossentropy(label_smoothing=0.1)`, `AdamW` (tfa's in the
    example), `TopKCategoricalAccuracy(5, name="top-5-accuracy")`,
    `validation_split` and a three-value `evaluate`, with the example's
    Dropout 0.2 (kerasish draws Keras's seeded masks).
48. "Density estimation using Real NVP" (generative/real_nvp): a
    `keras.Model` whose `call(x, training=True)` defaults to training (the
    inverse direction when called plainly and in `train_step` /
    `test_step`, the generative one in `predict`), couplings made of
    functional two-output Models with l2-regularized Dense layers held in
    a list, a Mean tracker listed by an overridden `metrics` property,
    x-only data with `validation_split`, an adapted `Normalization`, and a
    torch `train_step` (`zero_grad` / `backward` / `optimizer.apply`). The
    tfp MultivariateNormalDiag is written out with `ops` and seeded
    `keras.random.normal`. Two lines of the TensorFlow example fail on
    torch (in Keras as in kerasish) and are rewritten, see the comments:
    `s *= mask` is in place on a torch tensor, and a NumPy mask on the
    left of `*` turns the tensor into an array.

(Found: "sparse_categorical_crossentropy" on the U-Net's per-pixel
probabilities failed in backward, "grad_input must be contiguous", in
kerasish and in Keras 3.15 on torch; kerasish fixed, the Keras reference
computes the same losses on flat rows.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import kerasish

from tests.ports.test_port_programs import assert_history as assert_history_close
from tests.ports.test_port_programs import assert_same

# the same autouse fixtures as the earlier files: Keras seeded, one torch thread
from tests.ports.test_port_kerasio_examples_2 import _one_thread  # noqa: F401
from tests.ports.test_port_kerasio_examples_2 import _seeded  # noqa: F401


def _weights_by_path(keras, model):
    return {w.path: np.array(keras.ops.convert_to_numpy(w.value)) for w in model.weights}


def _assert_weights_by_path(ours, theirs, rtol=1e-5, atol=1e-6, atol_for=None):
    assert sorted(ours) == sorted(theirs)
    for path, value in theirs.items():
        atol_here = atol_for(path) if atol_for is not None else atol
        np.testing.assert_allclose(ours[path], value, rtol=rtol, atol=atol_here, err_msg=path)


# ------------------------------------------------------------ 44. U-Net segmentation
_SEG_IMG_SIZE = (16, 16)  # (160, 160)
_SEG_CLASSES = 3


def _unet(keras, img_size, num_classes):
    layers = keras.layers
    keras.utils.clear_session()  # (the example's "Free up RAM"; also the same auto names in both)
    inputs = keras.Input(shape=img_size + (3,))

    # Entry block
    x = layers.Conv2D(4, 3, strides=2, padding="same")(inputs)  # (32)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous_block_activation = x  # Set aside residual

    for filters in [4, 8, 8]:  # ([64, 128, 256])
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(filters, 1, strides=2, padding="same")(previous_block_activation)
        x = layers.add([x, residual])  # Add back residual
        previous_block_activation = x  # Set aside next residual

    for filters in [8, 8, 4, 4]:  # ([256, 128, 64, 32])
        x = layers.Activation("relu")(x)
        x = layers.Conv2DTranspose(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2DTranspose(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.UpSampling2D(2)(x)
        residual = layers.UpSampling2D(2)(previous_block_activation)
        residual = layers.Conv2D(filters, 1, padding="same")(residual)
        x = layers.add([x, residual])  # Add back residual
        previous_block_activation = x  # Set aside next residual

    # Add a per-pixel classification layer
    outputs = layers.Conv2D(num_classes, 3, activation="softmax", padding="same")(x)
    return keras.Model(inputs, outputs)


def _oxford_pets_class(keras):
    class OxfordPets(keras.utils.Sequence):
        """Helper to iterate over the data (as Numpy arrays)."""

        def __init__(self, batch_size, img_size, input_imgs, target_imgs):
            # (no super().__init__(), as in the example; the images are arrays, not paths)
            self.batch_size = batch_size
            self.img_size = img_size
            self.input_imgs = input_imgs
            self.target_imgs = target_imgs

        def __len__(self):
            return len(self.target_imgs) // self.batch_size

        def __getitem__(self, idx):
            """Returns tuple (input, target) correspond to batch #idx."""
            i = idx * self.batch_size
            batch_inputs = self.input_imgs[i: i + self.batch_size]
            batch_targets = self.target_imgs[i: i + self.batch_size]
            x = np.zeros((self.batch_size,) + self.img_size + (3,), dtype="float32")
            for j, img in enumerate(batch_inputs):
                x[j] = img
            y = np.zeros((self.batch_size,) + self.img_size + (1,), dtype="uint8")
            for j, img in enumerate(batch_targets):
                y[j] = np.expand_dims(img, 2)
                # Ground truth labels are 1, 2, 3. Subtract one to make them 0, 1, 2:
                y[j] -= 1
            return x, y

    return OxfordPets


def _segmentation_run(keras, initial, data, checkpoint_path):
    (train_inputs, train_targets), (val_inputs, val_targets) = data
    model = _unet(keras, _SEG_IMG_SIZE, _SEG_CLASSES)
    model.set_weights(initial)
    summary = []
    model.summary(print_fn=lambda line, **kwargs: summary.append(line))
    OxfordPets = _oxford_pets_class(keras)
    batch_size = 8  # (32)
    train_gen = OxfordPets(batch_size, _SEG_IMG_SIZE, train_inputs, train_targets)
    val_gen = OxfordPets(batch_size, _SEG_IMG_SIZE, val_inputs, val_targets)
    loss = "sparse_categorical_crossentropy"
    if keras is not kerasish:
        # Keras 3.15's torch loss hands `nll_loss` the (batch, classes, h, w) permuted view of the
        # log-probabilities, whose backward fails in torch 2.13 ("grad_input must be contiguous");
        # the reference computes the same per-pixel losses (mean over batch * h * w) on flat rows.
        def loss(y_true, y_pred):
            return keras.losses.sparse_categorical_crossentropy(
                keras.ops.reshape(y_true, (-1, 1)), keras.ops.reshape(y_pred, (-1, num_classes)))
    num_classes = _SEG_CLASSES
    model.compile(optimizer="rmsprop", loss=loss)
    callbacks = [keras.callbacks.ModelCheckpoint(checkpoint_path, save_best_only=True)]
    history = model.fit(train_gen, epochs=2, validation_data=val_gen, callbacks=callbacks, shuffle=False,
                        verbose=0)
    val_gen = OxfordPets(batch_size, _SEG_IMG_SIZE, val_inputs, val_targets)
    val_preds = np.asarray(model.predict(val_gen, verbose=0))
    masks = [np.expand_dims(np.argmax(val_preds[i], axis=-1), axis=-1) for i in range(len(val_preds))]
    return history, _weights_by_path(keras, model), val_preds, np.stack(masks), "\n".join(summary)


def test_oxford_pets_unet_segmentation(keras_ref, tmp_path):
    rng = np.random.default_rng(44)

    def pets(n):
        images = rng.integers(0, 256, (n,) + _SEG_IMG_SIZE + (3,)).astype("float32")
        # trimaps 1, 2, 3: a bright blob is the pet (1), its rim the border (3), the rest background (2)
        brightness = images.mean(axis=-1)
        trimaps = np.where(brightness > 150, 1, np.where(brightness > 120, 3, 2)).astype("uint8")
        return images, trimaps

    data = pets(24), pets(16)
    initial = _unet(keras_ref, _SEG_IMG_SIZE, _SEG_CLASSES).get_weights()
    theirs_path, ours_path = str(tmp_path / "theirs.keras"), str(tmp_path / "ours.keras")
    theirs = _segmentation_run(keras_ref, initial, data, theirs_path)
    ours = _segmentation_run(kerasish, initial, data, ours_path)

    assert ours[4] == theirs[4]  # the summary table, line for line
    assert_history_close(ours[0], theirs[0], rtol=1e-4, atol=1e-5)
    _assert_weights_by_path(ours[1], theirs[1], rtol=1e-4, atol=1e-5)
    assert_same(ours[2], theirs[2], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ours[3], theirs[3])
    assert ours[3].shape == (16,) + _SEG_IMG_SIZE + (1,)

    # the best checkpoint of each framework, loaded by the other one
    val_x = data[1][0][:8]
    # (Keras's file holds the reference's stand-in loss function: loaded without compiling)
    for path, compile in ((theirs_path, False), (ours_path, True)):
        reloaded_ref = keras_ref.models.load_model(path, compile=compile)
        reloaded = kerasish.models.load_model(path, compile=compile)
        assert (reloaded.loss == "sparse_categorical_crossentropy") is compile
        assert_same(reloaded.predict(val_x, verbose=0), reloaded_ref.predict(val_x, verbose=0), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------ 45. Neural decision forests
_DNDF_NUMERIC = ["age", "education_num", "hours_per_week"]
_DNDF_VOCABULARY = {
    "workclass": ["Private", "Self-emp", "Gov", "Never-worked"],
    "marital_status": ["Married", "Never-married", "Divorced"],
    "native_country": ["US", "Mexico", "India", "Germany", "Canada", "Other", "Cuba", "Peru", "Japan"],
}
_DNDF_TARGET_LABELS = [" <=50K", " >50K"]


def _dndf_models(keras, mask_seed):
    """The example's tree model (depth 10 -> 3, all features) and forest model (25 trees of depth 5
    -> 3 of depth 2, half the features each). `np.random.choice` picks each tree's features, as in
    the example; seeded here so both frameworks pick the same ones."""
    layers, ops = keras.layers, keras.ops
    keras.utils.clear_session()
    np.random.seed(mask_seed)
    feature_names = _DNDF_NUMERIC + list(_DNDF_VOCABULARY)
    num_classes = len(_DNDF_TARGET_LABELS)
    # (the example sizes every Embedding by the loop variable `lookup` left over from building the
    # lookups: the last feature's vocabulary, "native_country")
    last_vocabulary_size = len(_DNDF_VOCABULARY["native_country"])

    def create_model_inputs():
        inputs = {}
        for feature_name in feature_names:
            if feature_name in _DNDF_NUMERIC:
                inputs[feature_name] = layers.Input(name=feature_name, shape=(), dtype="float32")
            else:
                inputs[feature_name] = layers.Input(name=feature_name, shape=(), dtype="int32")
        return inputs

    def encode_inputs(inputs):
        encoded_features = []
        for feature_name in inputs:
            if feature_name in _DNDF_VOCABULARY:
                value_index = inputs[feature_name]
                embedding_dims = int(math.sqrt(last_vocabulary_size))
                embedding = layers.Embedding(input_dim=last_vocabulary_size, output_dim=embedding_dims)
                encoded_feature = embedding(value_index)
            else:
                encoded_feature = inputs[feature_name]
                if inputs[feature_name].shape[-1] is None:
                    encoded_feature = keras.ops.expand_dims(encoded_feature, -1)
            encoded_features.append(encoded_feature)
        return layers.concatenate(encoded_features)

    class NeuralDecisionTree(keras.Model):
        def __init__(self, depth, num_features, used_features_rate, num_classes):
            super().__init__()
            self.depth = depth
            self.num_leaves = 2**depth
            self.num_classes = num_classes
            num_used_features = int(num_features * used_features_rate)
            one_hot = np.eye(num_features)
            sampled_feature_indices = np.random.choice(np.arange(num_features), num_used_features, replace=False)
            self.used_features_mask = ops.convert_to_tensor(one_hot[sampled_feature_indices], dtype="float32")
            self.pi = self.add_weight(initializer="random_normal", shape=[self.num_leaves, self.num_classes],
                                      dtype="float32", trainable=True)
            self.decision_fn = layers.Dense(units=self.num_leaves, activation="sigmoid", name="decision")

        def call(self, features):
            batch_size = ops.shape(features)[0]
            features = ops.matmul(features, ops.transpose(self.used_features_mask))
            decisions = ops.expand_dims(self.decision_fn(features), axis=2)
            decisions = layers.concatenate([decisions, 1 - decisions], axis=2)
            mu = ops.ones([batch_size, 1, 1])
            begin_idx = 1
            end_idx = 2
            for level in range(self.depth):
                mu = ops.reshape(mu, [batch_size, -1, 1])
                mu = ops.tile(mu, (1, 1, 2))
                level_decisions = decisions[:, begin_idx:end_idx, :]
                mu = mu * level_decisions
                begin_idx = end_idx
                end_idx = begin_idx + 2 ** (level + 1)
            mu = ops.reshape(mu, [batch_size, self.num_leaves])
            probabilities = keras.activations.softmax(self.pi)
            return ops.matmul(mu, probabilities)

    class NeuralDecisionForest(keras.Model):
        def __init__(self, num_trees, depth, num_features, used_features_rate, num_classes):
            super().__init__()
            self.ensemble = []
            for _ in range(num_trees):
                self.ensemble.append(NeuralDecisionTree(depth, num_features, used_features_rate, num_classes))

        def call(self, inputs):
            batch_size = ops.shape(inputs)[0]
            outputs = ops.zeros([batch_size, num_classes])
            for tree in self.ensemble:
                outputs += tree(inputs)
            outputs /= len(self.ensemble)
            return outputs

    def create_tree_model(depth, used_features_rate):
        inputs = create_model_inputs()
        features = encode_inputs(inputs)
        features = layers.BatchNormalization()(features)
        num_features = features.shape[1]
        tree = NeuralDecisionTree(depth, num_features, used_features_rate, num_classes)
        outputs = tree(features)
        return keras.Model(inputs=inputs, outputs=outputs)

    def create_forest_model(num_trees, depth, used_features_rate):
        inputs = create_model_inputs()
        features = encode_inputs(inputs)
        features = layers.BatchNormalization()(features)
        num_features = features.shape[1]
        forest_model = NeuralDecisionForest(num_trees, depth, num_features, used_features_rate, num_classes)
        outputs = forest_model(features)
        return keras.Model(inputs=inputs, outputs=outputs)

    tree_model = create_tree_model(depth=3, used_features_rate=1.0)
    forest_model = create_forest_model(num_trees=3, depth=2, used_features_rate=0.5)
    return tree_model, forest_model


def _dndf_run(keras, initial, data):
    (x_train, y_train), (x_test, y_test) = data
    results = []
    for model, weights in zip(_dndf_models(keras, mask_seed=45), initial):
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=[keras.metrics.SparseCategoricalAccuracy()])
        history = model.fit(x_train, y_train, batch_size=32, epochs=2, shuffle=False, verbose=0)
        _, accuracy = model.evaluate(x_test, y_test, batch_size=32, verbose=0)
        masks = [np.array(keras.ops.convert_to_numpy(layer.used_features_mask))
                 for layer in _trees(model)]
        results.append((history, accuracy, _weights_by_path(keras, model),
                        np.asarray(model.predict(x_test, verbose=0)), masks))
    return results


def _trees(model):
    for layer in model.layers:
        if hasattr(layer, "ensemble"):
            yield from layer.ensemble
        elif hasattr(layer, "used_features_mask"):
            yield layer


def test_deep_neural_decision_forests(keras_ref):
    rng = np.random.default_rng(45)

    def census(n):
        x = {"age": rng.integers(17, 90, n).astype("float32"),
             "education_num": rng.integers(1, 16, n).astype("float32"),
             "hours_per_week": rng.integers(1, 99, n).astype("float32")}
        for name, vocabulary in _DNDF_VOCABULARY.items():
            x[name] = rng.integers(0, len(vocabulary), n).astype("int32")  # (the StringLookup's index)
        y = ((x["age"] > 40) & (x["marital_status"] == 0)).astype("int32")  # (target_label_lookup)
        return x, y

    data = census(96), census(32)
    initial = [model.get_weights() for model in _dndf_models(keras_ref, mask_seed=45)]
    theirs = _dndf_run(keras_ref, initial, data)
    ours = _dndf_run(kerasish, initial, data)
    # Adam at lr 0.01 divides each step by the gradient's running RMS, so the last-bit differences
    # of the two frameworks' float32 sums show up relative to the step, not to the weight: the
    # routing kernels end up to 1.9e-5 apart (measured), the moving variances of the raw "age"
    # column (~500) 1.1e-5. Weights get rtol 1e-4 / atol 3e-5; History and outputs stay at 1e-5.
    for mine, ref in zip(ours, theirs):
        assert_history_close(mine[0], ref[0], rtol=1e-5, atol=1e-6)
        assert mine[1] == pytest.approx(ref[1], rel=1e-6)
        _assert_weights_by_path(mine[2], ref[2], rtol=1e-4, atol=3e-5)
        assert_same(mine[3], ref[3], rtol=1e-5, atol=1e-6)
        assert len(mine[4]) == len(ref[4]) > 0
        for a, b in zip(mine[4], ref[4]):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ 46. Wide, Deep and Cross networks
_WDC_NUMERIC = ["Aspect", "Elevation", "Hillshade_3pm", "Slope"]
_WDC_VOCABULARY = {
    "Soil_Type": [f"soil_type_{idx + 1}" for idx in range(9)],  # (40)
    "Wilderness_Area": [f"area_type_{idx + 1}" for idx in range(4)],
}
_WDC_CLASSES = 7


def _wdc_models(keras, dropout_rate=0.1):
    layers = keras.layers
    keras.utils.clear_session()
    hidden_units = [8, 8]  # ([32, 32])
    feature_names = _WDC_NUMERIC + list(_WDC_VOCABULARY)

    def create_model_inputs():
        inputs = {}
        for feature_name in feature_names:
            if feature_name in _WDC_NUMERIC:
                inputs[feature_name] = layers.Input(name=feature_name, shape=(), dtype="float32")
            else:
                # (dtype="string" in the example; the StringLookup's index here)
                inputs[feature_name] = layers.Input(name=feature_name, shape=(), dtype="int32")
        return inputs

    def encode_inputs(inputs, use_embedding=False):
        encoded_features = []
        for feature_name in inputs:
            if feature_name in _WDC_VOCABULARY:
                vocabulary = _WDC_VOCABULARY[feature_name]
                if use_embedding:
                    embedding_dims = int(math.sqrt(len(vocabulary)))
                    embedding = layers.Embedding(input_dim=len(vocabulary), output_dim=embedding_dims)
                    encoded_feature = embedding(inputs[feature_name])
                else:
                    # (StringLookup(output_mode="binary") on the strings)
                    lookup = layers.CategoryEncoding(num_tokens=len(vocabulary), output_mode="multi_hot")
                    encoded_feature = lookup(keras.ops.expand_dims(inputs[feature_name], -1))
            else:
                encoded_feature = keras.ops.expand_dims(inputs[feature_name], -1)
            encoded_features.append(encoded_feature)
        return layers.concatenate(encoded_features)

    def create_baseline_model():
        inputs = create_model_inputs()
        features = encode_inputs(inputs)
        for units in hidden_units:
            features = layers.Dense(units)(features)
            features = layers.BatchNormalization()(features)
            features = layers.ReLU()(features)
            features = layers.Dropout(dropout_rate)(features)
        outputs = layers.Dense(units=_WDC_CLASSES, activation="softmax")(features)
        return keras.Model(inputs=inputs, outputs=outputs)

    def create_wide_and_deep_model():
        inputs = create_model_inputs()
        wide = encode_inputs(inputs)
        wide = layers.BatchNormalization()(wide)
        deep = encode_inputs(inputs, use_embedding=True)
        for units in hidden_units:
            deep = layers.Dense(units)(deep)
            deep = layers.BatchNormalization()(deep)
            deep = layers.ReLU()(deep)
            deep = layers.Dropout(dropout_rate)(deep)
        merged = layers.concatenate([wide, deep])
        outputs = layers.Dense(units=_WDC_CLASSES, activation="softmax")(merged)
        return keras.Model(inputs=inputs, outputs=outputs)

    def create_deep_and_cross_model():
        inputs = create_model_inputs()
        x0 = encode_inputs(inputs, use_embedding=True)
        cross = x0
        for _ in hidden_units:
            units = cross.shape[-1]
            x = layers.Dense(units)(cross)
            cross = x0 * x + cross
        cross = layers.BatchNormalization()(cross)
        deep = x0
        for units in hidden_units:
            deep = layers.Dense(units)(deep)
            deep = layers.BatchNormalization()(deep)
            deep = layers.ReLU()(deep)
            deep = layers.Dropout(dropout_rate)(deep)
        merged = layers.concatenate([cross, deep])
        outputs = layers.Dense(units=_WDC_CLASSES, activation="softmax")(merged)
        return keras.Model(inputs=inputs, outputs=outputs)

    return create_baseline_model(), create_wide_and_deep_model(), create_deep_and_cross_model()


def _wdc_run(keras, initial, data, dropout_rate):
    (x_train, y_train), (x_test, y_test) = data
    results = []
    for model, weights in zip(_wdc_models(keras, dropout_rate), initial):
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                      loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=[keras.metrics.SparseCategoricalAccuracy()])
        keras.utils.set_random_seed(46)  # (the Dropout draws)
        history = model.fit(x_train, y_train, batch_size=32, epochs=2, shuffle=False, verbose=0)
        _, accuracy = model.evaluate(x_test, y_test, verbose=0)
        results.append((history, accuracy, _weights_by_path(keras, model), np.asarray(model.predict(x_test, verbose=0)),
                        [layer.output.shape for layer in model.layers[-3:]]))
    return results


@pytest.mark.parametrize("dropout_rate", [0.1])  # (the example's rate; 0.0 passes too)
def test_wide_deep_cross_networks(keras_ref, dropout_rate):
    rng = np.random.default_rng(46)

    def covertype(n):
        x = {"Aspect": rng.uniform(0, 360, n).astype("float32"),
             "Elevation": rng.uniform(1.8, 3.8, n).astype("float32"),  # (km: kept small, no normalization)
             "Hillshade_3pm": rng.uniform(0, 2.5, n).astype("float32"),
             "Slope": rng.uniform(0, 0.6, n).astype("float32")}
        x["Aspect"] /= 360.0
        for name, vocabulary in _WDC_VOCABULARY.items():
            x[name] = rng.integers(0, len(vocabulary), n).astype("int32")
        y = ((x["Elevation"] * 2).astype("int32") + x["Wilderness_Area"]) % _WDC_CLASSES
        return x, y.astype("int32")

    data = covertype(96), covertype(32)
    initial = [model.get_weights() for model in _wdc_models(keras_ref, dropout_rate)]
    theirs = _wdc_run(keras_ref, initial, data, dropout_rate)
    ours = _wdc_run(kerasish, initial, data, dropout_rate)
    # The hidden Dense layers feeding a BatchNormalization have biases whose true gradient is 0 (the
    # normalization removes any per-feature constant): Adam turns their rounding-noise gradients into
    # steps of up to lr = 1e-3 of either sign (measured 7.7e-5 apart), so they get atol = lr * 6
    # steps; the moving means carry them in at 1% a step (atol 1e-4, measured 3.4e-5), and so do
    # the predictions, made in inference mode (rtol 1e-3, measured 5.4e-4). Everything trained in training mode (History, the other weights) stays
    # within 1e-5, with Dropout(0.1) too: kerasish draws Keras's masks from the same seed.
    # (names count on across the three models: the baseline's dense..dense_2, then dense_3..dense_5,
    # and the cross network's dense_6, dense_7 before its deep part's)
    feeding_batchnorm = (("dense", "dense_1"), ("dense_3", "dense_4"), ("dense_8", "dense_9"))
    for mine, ref, noisy in zip(ours, theirs, feeding_batchnorm):
        assert_history_close(mine[0], ref[0], rtol=1e-5, atol=1e-6)
        assert mine[1] == pytest.approx(ref[1], rel=1e-6)
        _assert_weights_by_path(mine[2], ref[2], rtol=1e-5, atol=1e-6,
                                atol_for=lambda path: 6e-3 if path in [f"{n}/bias" for n in noisy]
                                else 1e-4 if path.endswith("/moving_mean") else 2e-6)
        assert_same(mine[3], ref[3], rtol=1e-3, atol=1e-6)
        assert [tuple(s) for s in mine[4]] == [tuple(s) for s in ref[4]]


# ------------------------------------------------------------ 47. EANet (external attention)
_EA_INPUT_SHAPE = (8, 8, 3)  # (32, 32, 3)
_EA_CLASSES = 10  # (100)


def _eanet(keras, x_adapt, dropout):
    layers, ops = keras.layers, keras.ops
    keras.utils.clear_session()
    patch_size = 2
    num_patches = (_EA_INPUT_SHAPE[0] // patch_size) ** 2
    embedding_dim = 16  # (64)
    mlp_dim = 16  # (64)
    dim_coefficient = 4
    num_heads = 2  # (4)
    num_transformer_blocks = 2  # (8)

    # (the example's RandomFlip / RandomRotation / RandomContrast / RandomZoom are left out: the
    # comparison needs the same images in both runs; the adapted Normalization stays)
    data_augmentation = keras.Sequential([layers.Normalization()], name="data_augmentation")
    data_augmentation.layers[0].adapt(x_adapt)

    class PatchExtract(layers.Layer):
        def __init__(self, patch_size, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size

        def call(self, images):
            batch_size = ops.shape(images)[0]
            # (tf.image.extract_patches -> ops.image.extract_patches)
            patches = ops.image.extract_patches(images, size=self.patch_size, strides=self.patch_size,
                                                padding="valid")
            patch_dim = patches.shape[-1]
            patch_num = patches.shape[1]
            return ops.reshape(patches, (batch_size, patch_num * patch_num, patch_dim))

    class PatchEmbedding(layers.Layer):
        def __init__(self, num_patch, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.num_patch = num_patch
            self.proj = layers.Dense(embed_dim)
            self.pos_embed = layers.Embedding(input_dim=num_patch, output_dim=embed_dim)

        def call(self, patch):
            pos = ops.arange(start=0, stop=self.num_patch, step=1)
            return self.proj(patch) + self.pos_embed(pos)

    def external_attention(x, dim, num_heads, dim_coefficient=4, attention_dropout=0, projection_dropout=0):
        _, num_patch, channel = x.shape
        assert dim % num_heads == 0
        num_heads = num_heads * dim_coefficient
        x = layers.Dense(dim * dim_coefficient)(x)
        x = ops.reshape(x, (-1, num_patch, num_heads, dim * dim_coefficient // num_heads))
        x = ops.transpose(x, axes=[0, 2, 1, 3])
        attn = layers.Dense(dim // dim_coefficient)(x)  # a linear layer M_k
        attn = layers.Softmax(axis=2)(attn)  # normalize attention map
        attn = attn / (1e-9 + ops.sum(attn, axis=-1, keepdims=True))  # double-normalization
        attn = layers.Dropout(attention_dropout)(attn)
        x = layers.Dense(dim * dim_coefficient // num_heads)(attn)  # a linear layer M_v
        x = ops.transpose(x, axes=[0, 2, 1, 3])
        x = ops.reshape(x, [-1, num_patch, dim * dim_coefficient])
        x = layers.Dense(dim)(x)
        x = layers.Dropout(projection_dropout)(x)
        return x

    def mlp(x, embedding_dim, mlp_dim, drop_rate=0.2):
        x = layers.Dense(mlp_dim, activation=ops.gelu)(x)  # (tf.nn.gelu)
        x = layers.Dropout(drop_rate)(x)
        x = layers.Dense(embedding_dim)(x)
        x = layers.Dropout(drop_rate)(x)
        return x

    def transformer_encoder(x, embedding_dim, mlp_dim, num_heads, dim_coefficient, attention_dropout,
                            projection_dropout, attention_type="external_attention"):
        residual_1 = x
        x = layers.LayerNormalization(epsilon=1e-5)(x)
        if attention_type == "external_attention":
            x = external_attention(x, embedding_dim, num_heads, dim_coefficient, attention_dropout,
                                   projection_dropout)
        elif attention_type == "self_attention":
            x = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embedding_dim,
                                          dropout=attention_dropout)(x, x)
        x = layers.add([x, residual_1])
        residual_2 = x
        x = layers.LayerNormalization(epsilon=1e-5)(x)
        x = mlp(x, embedding_dim, mlp_dim, drop_rate=dropout)
        x = layers.add([x, residual_2])
        return x

    inputs = layers.Input(shape=_EA_INPUT_SHAPE)
    x = data_augmentation(inputs)
    x = PatchExtract(patch_size)(x)
    x = PatchEmbedding(num_patches, embedding_dim)(x)
    for _ in range(num_transformer_blocks):
        x = transformer_encoder(x, embedding_dim, mlp_dim, num_heads, dim_coefficient, dropout, dropout)
    x = layers.GlobalAvgPool1D()(x)
    outputs = layers.Dense(_EA_CLASSES, activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def _eanet_run(keras, initial, data, dropout):
    (x_train, y_train), (x_test, y_test) = data
    model = _eanet(keras, x_train, dropout)
    adapted = [np.array(keras.ops.convert_to_numpy(v)) for v in model.get_layer("data_augmentation").weights]
    model.set_weights(initial)
    model.compile(
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        optimizer=keras.optimizers.AdamW(learning_rate=0.001, weight_decay=0.0001),  # (tfa.optimizers.AdamW)
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                 keras.metrics.TopKCategoricalAccuracy(5, name="top-5-accuracy")],
    )
    keras.utils.set_random_seed(47)  # (the Dropout draws)
    history = model.fit(x_train, y_train, batch_size=16, epochs=2, validation_split=0.2, shuffle=False, verbose=0)
    loss, accuracy, top_5_accuracy = model.evaluate(x_test, y_test, verbose=0)
    return (history, (loss, accuracy, top_5_accuracy), _weights_by_path(keras, model), adapted,
            model.count_params())


@pytest.mark.parametrize("dropout", [0.2])  # (the example's rate; 0.0 passes too)
def test_eanet_external_attention(keras_ref, dropout):
    rng = np.random.default_rng(47)
    x_train = rng.integers(0, 256, (80,) + _EA_INPUT_SHAPE).astype("float32")
    y_train = keras_ref.utils.to_categorical(rng.integers(0, _EA_CLASSES, 80), _EA_CLASSES)
    x_test = rng.integers(0, 256, (32,) + _EA_INPUT_SHAPE).astype("float32")
    y_test = keras_ref.utils.to_categorical(rng.integers(0, _EA_CLASSES, 32), _EA_CLASSES)
    data = (x_train, y_train), (x_test, y_test)
    initial = _eanet(keras_ref, x_train, dropout).get_weights()
    theirs = _eanet_run(keras_ref, initial, data, dropout)
    ours = _eanet_run(kerasish, initial, data, dropout)
    assert sorted(theirs[0].history) == ["accuracy", "loss", "top-5-accuracy", "val_accuracy", "val_loss",
                                         "val_top-5-accuracy"]
    assert_history_close(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    assert ours[1] == pytest.approx(theirs[1], rel=1e-5)
    # (atol 3e-5: a weight whose gradient is float noise, e.g. a bias feeding a softmax whose classes
    # are all but absent from the batch, moves by about the learning rate (1e-3) times the noise's sign
    # under AdamW, and that noise's rounding differs between CPUs: such biases, ~1e-5 here, were seen
    # 1.1e-5 apart on one machine while the History matched to 1e-5)
    _assert_weights_by_path(ours[2], theirs[2], rtol=1e-4, atol=3e-5)
    assert_same(ours[3], theirs[3], rtol=1e-6, atol=1e-6)  # the adapted mean and variance
    assert ours[4] == theirs[4]


# ------------------------------------------------------------ 48. Real NVP
def _real_nvp_model(keras, num_coupling_layers=4, output_dim=16, reg=0.01):
    ops, regularizers = keras.ops, keras.regularizers
    keras.utils.clear_session()

    def Coupling(input_shape):
        input = keras.layers.Input(shape=(input_shape,))  # (shape=input_shape: an int; Keras 3 wants a tuple)

        def dense_stack(x, last_activation):
            for _ in range(4):
                x = keras.layers.Dense(output_dim, activation="relu", kernel_regularizer=regularizers.l2(reg))(x)
            return keras.layers.Dense(input_shape, activation=last_activation,
                                      kernel_regularizer=regularizers.l2(reg))(x)

        t_layer_5 = dense_stack(input, "linear")
        s_layer_5 = dense_stack(input, "tanh")
        return keras.Model(inputs=input, outputs=[s_layer_5, t_layer_5])

    class MultivariateNormalDiag:
        """tfp.distributions.MultivariateNormalDiag(loc=[0, 0], scale_diag=[1, 1]), by its formula."""

        def __init__(self, seed):
            self.seed_generator = keras.random.SeedGenerator(seed)

        def log_prob(self, y):
            return -0.5 * ops.sum(ops.square(y), axis=-1) - ops.log(2.0 * math.pi)

        def sample(self, n):
            return keras.random.normal((n, 2), seed=self.seed_generator)

    class RealNVP(keras.Model):
        def __init__(self, num_coupling_layers):
            super().__init__()
            self.num_coupling_layers = num_coupling_layers
            self.distribution = MultivariateNormalDiag(seed=48)
            # (a NumPy array in the example; as the left operand of `reversed_mask * (...)` NumPy
            # would turn the torch tensor into an array, which fails on one that requires grad, in
            # Keras on torch as in kerasish: held as a tensor)
            self.masks = ops.convert_to_tensor(
                np.array([[0, 1], [1, 0]] * (num_coupling_layers // 2), dtype="float32"))
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.layers_list = [Coupling(2) for i in range(num_coupling_layers)]

        @property
        def metrics(self):
            return [self.loss_tracker]

        def call(self, x, training=True):
            log_det_inv = 0
            direction = 1
            if training:
                direction = -1
            for i in range(self.num_coupling_layers)[::direction]:
                x_masked = x * self.masks[i]
                reversed_mask = 1 - self.masks[i]
                s, t = self.layers_list[i](x_masked)
                # (`s *= reversed_mask` in the example: on a torch tensor that is in place, on the
                # saved output of tanh, and backward fails, with Keras as with kerasish)
                s = s * reversed_mask
                t = t * reversed_mask
                gate = (direction - 1) / 2
                x = reversed_mask * (x * ops.exp(direction * s) + direction * t * ops.exp(gate * s)) + x_masked
                log_det_inv += gate * ops.sum(s, [1])
            return x, log_det_inv

        def log_loss(self, x):
            y, logdet = self(x)
            log_likelihood = self.distribution.log_prob(y) + logdet
            return -ops.mean(log_likelihood)

        def train_step(self, data):
            # (tf.GradientTape -> the Keras 3 torch guide's zero_grad / backward / optimizer.apply)
            self.zero_grad()
            loss = self.log_loss(data)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            self.optimizer.apply(gradients, trainable_weights)
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

        def test_step(self, data):
            loss = self.log_loss(data)
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

    return RealNVP(num_coupling_layers=num_coupling_layers)


def _double_moons(n, rng, noise=0.05):
    """sklearn's make_moons(n, noise=0.05), written out."""
    n_out = n // 2
    n_in = n - n_out
    outer = np.stack([np.cos(np.linspace(0, np.pi, n_out)), np.sin(np.linspace(0, np.pi, n_out))], axis=1)
    inner = np.stack([1 - np.cos(np.linspace(0, np.pi, n_in)), 1 - np.sin(np.linspace(0, np.pi, n_in)) - 0.5],
                     axis=1)
    data = np.concatenate([outer, inner]) + rng.normal(scale=noise, size=(n, 2))
    return data[rng.permutation(n)].astype("float32")


def _real_nvp_run(keras, initial, data):
    import torch

    norm = keras.layers.Normalization()
    norm.adapt(data)
    normalized_data = keras.ops.convert_to_numpy(norm(data))
    model = _real_nvp_model(keras)
    model(normalized_data[:2])  # (builds the couplings; the example's first call is inside fit)
    model.set_weights(initial)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001))  # (0.0001)
    history = model.fit(normalized_data, batch_size=32, epochs=2, verbose=0, validation_split=0.2, shuffle=False)
    # From data to latent space (`training` defaults to True in `call`: the inverse direction).
    with torch.no_grad():
        z, _ = model(normalized_data)
    # From latent space to data (predict calls with training=False: the generative direction).
    samples = model.distribution.sample(64)
    x, _ = model.predict(samples, verbose=0)
    return (history, np.array(keras.ops.convert_to_numpy(normalized_data)), np.array(keras.ops.convert_to_numpy(z)),
            np.array(keras.ops.convert_to_numpy(samples)), np.asarray(x), _weights_by_path(keras, model),
            len(model.losses))


def test_real_nvp_density_estimation(keras_ref):
    data = _double_moons(160, np.random.default_rng(48))
    reference_model = _real_nvp_model(keras_ref)
    reference_model(data[:2])
    initial = reference_model.get_weights()
    theirs = _real_nvp_run(keras_ref, initial, data)
    ours = _real_nvp_run(kerasish, initial, data)
    assert sorted(theirs[0].history) == ["loss", "val_loss"]
    assert_history_close(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    assert_same(ours[1], theirs[1], rtol=1e-6, atol=1e-6)  # Normalization.adapt
    assert_same(ours[2], theirs[2], rtol=1e-5, atol=1e-5)  # z, inverse direction
    np.testing.assert_array_equal(ours[3], theirs[3])  # seeded keras.random.normal samples
    assert_same(ours[4], theirs[4], rtol=1e-5, atol=1e-5)  # generated points
    _assert_weights_by_path(ours[5], theirs[5], rtol=1e-4, atol=1e-5)
    # the couplings' l2 regularizers: collected, but this train_step (as the example's) adds none
    assert ours[6] == theirs[6] == 40
