"""tf.keras 2 names a ported Keras 2 program uses and Keras 3 dropped:
`keras.layers.experimental(.preprocessing)`, `keras.optimizers.experimental`,
`keras.losses.Reduction` (`keras.optimizers.legacy`: tests/optimizers/
test_legacy_optimizers.py).

The name lists are tf-keras 2.21's public API (its goldens,
tf_keras/api/golden/v2/tensorflow.keras.layers.experimental*.pbtxt and
tensorflow.keras.optimizers.experimental*.pbtxt).
"""

import numpy as np
import pytest
import torch

import kerasish as keras

TF_KERAS_PREPROCESSING = [
    "CategoryEncoding", "CenterCrop", "Discretization", "HashedCrossing", "Hashing", "IntegerLookup",
    "Normalization", "PreprocessingLayer", "RandomContrast", "RandomCrop", "RandomFlip", "RandomHeight",
    "RandomRotation", "RandomTranslation", "RandomWidth", "RandomZoom", "Rescaling", "Resizing", "StringLookup",
    "TextVectorization",
]
TF_KERAS_EXPERIMENTAL_LAYERS = ["EinsumDense", "RandomFourierFeatures", "SyncBatchNormalization"]
TF_KERAS_EXPERIMENTAL_OPTIMIZERS = [
    "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Nadam", "Optimizer", "RMSprop", "SGD",
]


@pytest.mark.parametrize("name", TF_KERAS_PREPROCESSING)
def test_experimental_preprocessing_names_are_the_layers_or_say_what_to_use(name):
    from kerasish.layers.experimental import preprocessing

    if hasattr(keras.layers, name):
        assert getattr(preprocessing, name) is getattr(keras.layers, name)
    else:  # removed in Keras 3: a clear error, not a bare AttributeError
        with pytest.raises(AttributeError, match=f"preprocessing.{name}` is a tf.keras 2 name"):
            getattr(preprocessing, name)


@pytest.mark.parametrize("name", TF_KERAS_EXPERIMENTAL_LAYERS)
def test_experimental_layer_names(name):
    if hasattr(keras.layers, name):
        assert getattr(keras.layers.experimental, name) is getattr(keras.layers, name)
    else:
        with pytest.raises(AttributeError, match=f"experimental.{name}` is a tf.keras 2 layer"):
            getattr(keras.layers.experimental, name)
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchLayer'"):
        keras.layers.experimental.NoSuchLayer  # noqa: B018


@pytest.mark.parametrize("name", TF_KERAS_EXPERIMENTAL_OPTIMIZERS)
def test_experimental_optimizers_are_the_keras3_ones(name):
    assert getattr(keras.optimizers.experimental, name) is getattr(keras.optimizers, name)


def test_reduction_constants_reduce_as_tf_keras():
    """`reduction=keras.losses.Reduction.X` against the maths of tf.keras 2's reductions (AUTO: the mean
    over the batch outside a distribution strategy)."""
    rng = np.random.RandomState(0)
    y_true, y_pred = rng.randn(6, 3).astype("float32"), rng.randn(6, 3).astype("float32")
    sw = rng.rand(6).astype("float32")
    per_sample = ((y_true - y_pred) ** 2).mean(-1) * sw
    Reduction = keras.losses.Reduction
    expected = {Reduction.NONE: per_sample, Reduction.SUM: per_sample.sum(),
                Reduction.SUM_OVER_BATCH_SIZE: per_sample.sum() / 6, Reduction.AUTO: per_sample.sum() / 6}
    for reduction, want in expected.items():
        loss = keras.losses.MeanSquaredError(reduction=reduction)
        got = loss(torch.tensor(y_true), torch.tensor(y_pred), sample_weight=torch.tensor(sw))
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, err_msg=reduction)
    for key in ("auto", "none", "sum", "sum_over_batch_size"):
        Reduction.validate(key)
    with pytest.raises(ValueError, match="Invalid Reduction Key: mean_of_sums"):
        Reduction.validate("mean_of_sums")


def test_a_keras2_program_with_experimental_names_saves_files_keras3_loads(tmp_path, keras_ref):
    """A TF 2.4-era program (`layers.experimental.preprocessing.Rescaling`, `optimizers.experimental.AdamW`)
    trains, and its `.keras` file names Keras 3's classes: real Keras 3 loads it and predicts the same."""
    from kerasish.layers.experimental import preprocessing

    rng = np.random.RandomState(1)
    x, y = rng.randint(0, 255, (16, 4)).astype("float32"), rng.randn(16, 1).astype("float32")
    model = keras.Sequential([keras.Input((4,)), preprocessing.Rescaling(1.0 / 255), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.experimental.AdamW(learning_rate=0.01), loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    theirs = keras_ref.saving.load_model(tmp_path / "m.keras")
    assert type(theirs.optimizer).__name__ == "AdamW"
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)), model.predict(x, verbose=0), rtol=1e-6)
