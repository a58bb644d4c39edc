"""Unknown (None) dimensions whose two probe sizes collide.

Shape inference probes a layer at two sizes (83 and 89) for each unknown
dimension; a stride or pool of 10 maps both to 8, so the output looked fixed.
Keras 3 takes a layer's symbolic shape from its own `compute_output_shape`;
kerasish now lets that shape mark the unknown dimensions. Each case here is
compared with real Keras 3: `layer(Input)`, `model.output_shape`, the
`summary()` shape column, and a following layer that needs the true size.
"""

import numpy as np
import pytest
import torch

import kerasish

# (layer name, constructor arguments, input shape without the batch): each
# maps the probe sizes 83 and 89 (or the derived sizes) to one output size
CASES = [
    ("MaxPooling1D", dict(pool_size=10), (None, 3)),
    ("AveragePooling1D", dict(pool_size=3, strides=20, padding="same"), (None, 3)),
    ("Conv1D", dict(filters=2, kernel_size=3, strides=10), (None, 3)),
    ("SeparableConv1D", dict(filters=2, kernel_size=3, strides=16), (None, 3)),
    ("DepthwiseConv1D", dict(kernel_size=3, strides=16), (None, 3)),
    ("Conv2D", dict(filters=2, kernel_size=3, strides=(10, 1)), (None, 5, 3)),
    ("Conv2D", dict(filters=2, kernel_size=3, strides=10, data_format="channels_first"), (3, None, 12)),
    ("Conv3D", dict(filters=2, kernel_size=1, strides=(1, 20, 1)), (4, None, 4, 3)),
    ("MaxPooling2D", dict(pool_size=(10, 2)), (None, 4, 3)),
    ("AveragePooling3D", dict(pool_size=(1, 10, 1)), (4, None, 4, 3)),
    ("MelSpectrogram", dict(fft_length=64, sequence_stride=16, sequence_length=32, num_mel_bins=8), (None,)),
    ("STFTSpectrogram", dict(frame_length=64, frame_step=40, fft_length=64), (None, 1)),
]


def _probe_sizes_collide(layer_name, kwargs, shape):
    """The case is a real collision: kerasish's layer gives one output size for both probes."""
    layer = getattr(kerasish.layers, layer_name)(**kwargs)
    sizes = []
    for n in (83, 89):
        x = torch.zeros((1,) + tuple(n if d is None else d for d in shape))
        sizes.append(tuple(layer(x).shape))
    return sizes[0] == sizes[1]


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_colliding_probe_sizes_stay_unknown_as_in_keras(keras_ref, name, kwargs, shape):
    assert _probe_sizes_collide(name, kwargs, shape)
    ours_in = kerasish.Input(shape)
    ours = kerasish.Model(ours_in, getattr(kerasish.layers, name)(**kwargs)(ours_in))
    theirs_in = keras_ref.Input(shape)
    theirs = keras_ref.Model(theirs_in, getattr(keras_ref.layers, name)(**kwargs)(theirs_in))
    assert tuple(ours.output.shape) == tuple(theirs.output.shape)
    assert ours.output_shape == theirs.output_shape
    assert None in ours.output_shape[1:]
    lines = []
    ours.summary(print_fn=lines.append)
    assert str(theirs.output_shape) in "\n".join(lines)


def test_a_model_over_a_colliding_layer_takes_any_length(keras_ref):
    """Strided Conv1D, MaxPooling1D, then Cropping1D / ZeroPadding1D / UpSampling1D
    on an unknown length: the model takes inputs of several lengths, and its
    outputs equal Keras's with the same weights."""
    def build(k):
        inputs = k.Input((None, 3))
        x = k.layers.Conv1D(4, 3, strides=10, name="conv")(inputs)
        x = k.layers.MaxPooling1D(2)(x)
        x = k.layers.ZeroPadding1D(1)(x)
        x = k.layers.Cropping1D((0, 1))(x)
        x = k.layers.UpSampling1D(3)(x)
        return k.Model(inputs, k.layers.Dense(2, name="head")(x))

    ours, theirs = build(kerasish), build(keras_ref)
    assert ours.output_shape == theirs.output_shape == (None, None, 2)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    for length in (83, 89, 200):
        x = np.random.default_rng(length).normal(size=(2, length, 3)).astype("float32")
        got = ours(torch.as_tensor(x)).detach().numpy()
        want = keras_ref.ops.convert_to_numpy(theirs(x))
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_user_layers_own_compute_output_shape_marks_unknown_dims(keras_ref):
    """A user layer keeping every 10th step: its `compute_output_shape` says the
    length is unknown, as Keras then reports, though 83 and 89 steps both give 9."""
    def make(k):
        class EveryTenth(k.layers.Layer):
            def call(self, x):
                return x[:, ::10]

            def compute_output_shape(self, input_shape):
                length = None if input_shape[1] is None else -(-input_shape[1] // 10)
                return (input_shape[0], length, input_shape[2])

        return EveryTenth()

    ours = make(kerasish)(kerasish.Input((None, 3)))
    theirs = make(keras_ref)(keras_ref.Input((None, 3)))
    assert tuple(ours.shape) == tuple(theirs.shape) == (None, None, 3)
    # a known length still comes from the probe (and agrees with the layer's own shape)
    assert tuple(make(kerasish)(kerasish.Input((95, 3))).shape) == (None, 10, 3)


def test_a_compute_output_shape_that_probes_itself_does_not_recurse():
    """Lambda without `output_shape` answers `compute_output_shape` by probing."""
    layer = kerasish.layers.Lambda(lambda x: x[:, ::10])
    assert tuple(layer(kerasish.Input((None, 3))).shape) == (None, 9, 3)  # no declared shape: probe's
