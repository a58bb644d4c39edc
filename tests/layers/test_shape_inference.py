"""Symbolic output shapes with unknown (None) dimensions.

Shape inference runs a layer on the meta device at two probe sizes; an
output size that differs between them is unknown. If the meta run fails it
falls back to small real tensors, where a strided layer can map both probe
sizes to the same output and report a wrong static size (a functional model
then refuses valid inputs). These tests compare with real Keras 3 and check
that the everyday layers never need the fallback.
"""

import numpy as np
import pytest

import kerasish
from kerasish.layers import shape_inference

CASES = [
    ("Conv1D", dict(filters=4, kernel_size=3, strides=3), (None, None, 8)),
    ("Conv1D", dict(filters=4, kernel_size=5, strides=4, padding="same"), (None, None, 8)),
    ("Conv2D", dict(filters=4, kernel_size=3, strides=2), (None, None, None, 3)),
    ("SeparableConv1D", dict(filters=4, kernel_size=3, strides=3), (None, None, 8)),
    ("Conv1DTranspose", dict(filters=4, kernel_size=3, strides=3), (None, None, 8)),
    ("MaxPooling1D", dict(pool_size=4), (None, None, 8)),
    ("AveragePooling2D", dict(pool_size=3), (None, None, None, 3)),
    ("Dense", dict(units=3), (None, None, 8)),
    ("LSTM", dict(units=3, return_sequences=True), (None, None, 8)),
]


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_unknown_dims_stay_unknown_as_in_keras(keras_ref, monkeypatch, name, kwargs, shape):
    devices = []
    run = shape_inference._run

    def spy(layer, args, kw, size, device):
        devices.append(device)
        return run(layer, args, kw, size, device)

    monkeypatch.setattr(shape_inference, "_run", spy)
    ours = getattr(kerasish.layers, name)(**kwargs)(kerasish.Input(batch_shape=shape))
    theirs = getattr(keras_ref.layers, name)(**kwargs)(keras_ref.Input(batch_shape=shape))
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert devices and set(devices) == {"meta"}, f"{name} fell back to real tensors: {devices}"


def test_functional_model_with_strided_conv_takes_any_length(keras_ref):
    """keras.io's text_classification_from_scratch: Embedding -> Conv1D(strides=3)."""
    import numpy as np

    def build(K):
        inputs = K.Input(shape=(None,), dtype="int64")
        x = K.layers.Embedding(20, 8)(inputs)
        x = K.layers.Conv1D(4, 3, strides=3)(x)
        x = K.layers.Conv1D(4, 3)(x)
        return K.Model(inputs, K.layers.GlobalMaxPooling1D()(x))

    ours, theirs = build(kerasish), build(keras_ref)
    theirs.set_weights(ours.get_weights())
    ids = np.random.default_rng(0).integers(0, 20, size=(2, 40))
    np.testing.assert_allclose(ours.predict(ids, verbose=0), theirs.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_call_that_cannot_run_symbolically_names_the_layer_as_keras_does(keras_ref):
    """A custom layer whose call only works for one batch size (the keras.io MPNN example's GRUCell
    fed `num_segments` rows against batch-sized states): Keras re-raises the error with the same
    type, naming the layer and compute_output_shape; kerasish raised the bare torch error."""

    def run(keras):
        class FixedRows(keras.layers.Layer):
            def call(self, x):
                return keras.ops.zeros((5, 2)) + x[:, :2]  # (5 rows against the batch)

        with pytest.raises(RuntimeError) as info:
            FixedRows(name="fixed_rows")(keras.Input(shape=(3,)))
        return str(info.value)

    for message in (run(keras_ref), run(kerasish)):
        assert "Could not automatically infer the output shape / dtype of 'fixed_rows' (of type FixedRows)" in message
        assert "compute_output_shape()" in message and "must match the size of tensor" in message


def test_an_own_output_shape_stands_in_for_a_call_that_cannot_run_symbolically(keras_ref):
    """Keras 3 takes the shape of a layer that overrides `compute_output_shape` from it, never
    running `call` on placeholders: the remedy its error names. kerasish always probed `call` and
    raised for such a layer (a functional model could not be built); it now falls back to the
    layer's own shape, and the model runs on real batches."""

    def run(keras):
        class FixedRows(keras.layers.Layer):
            def call(self, x):
                return keras.ops.zeros((5, 2)) + x[:, :2]

            def compute_output_shape(self, input_shape):
                return (input_shape[0], 2)

        inputs = keras.Input(shape=(3,))
        outputs = FixedRows()(inputs)
        model = keras.Model(inputs, outputs)
        return outputs.shape, str(outputs.dtype), model(np.ones((5, 3), "float32"))

    theirs, ours = run(keras_ref), run(kerasish)
    assert tuple(ours[0]) == tuple(theirs[0]) == (None, 2)
    assert "float32" in ours[1] and "float32" in theirs[1]
    np.testing.assert_array_equal(ours[2].detach().numpy(), theirs[2].detach().numpy())
