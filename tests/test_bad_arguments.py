"""Audit, part 2 (issue #7): more user mistakes — negative sizes, complex
values, axes out of range or of the wrong type, None and string inputs,
attention masks of the wrong shape, broken `from_config`/`set_weights`
arguments, an RNN built on a 2-D shape, a metric called on a KerasTensor.

Each must raise Keras's error type with a message naming the layer (or the
class) and the argument, and saying what was received. Decisions where Keras
itself differs by backend are documented here:

* out-of-range ids are `IndexError` everywhere (Embedding ids < 0 or
  >= input_dim, CategoryEncoding values >= num_tokens, sparse labels);
* complex inputs to built-in layers are `TypeError` (Keras silently drops
  the imaginary part);
* an invalid axis *value* is `ValueError`, an axis of the wrong *type* is
  `TypeError`.
"""

import numpy as np
import pytest
import torch

import kerasish as keras

L = keras.layers


def f32(*shape):
    return np.random.default_rng(0).random(shape).astype("float32")


def built(layer, *args, **kwargs):
    layer(*args, **kwargs)
    return layer


CASES = [
    # --- negative sizes
    ("zero_padding2d_negative", lambda: L.ZeroPadding2D(-1), ValueError, r"`padding` cannot be negative.*ZeroPadding2D.*padding=-1"),
    ("zero_padding3d_negative", lambda: L.ZeroPadding3D(-2), ValueError, r"`padding` cannot be negative.*ZeroPadding3D"),
    ("zero_padding2d_negative_pair", lambda: L.ZeroPadding2D((1, -1)), ValueError, r"padding.*-1"),
    ("cropping2d_negative_pair", lambda: L.Cropping2D(((0, 1), (-1, 0))), ValueError, r"cropping.*-1"),
    ("layer_norm_epsilon_string", lambda: L.LayerNormalization(epsilon="2"), TypeError, r"LayerNormalization.*`epsilon` must be a number.*'2'"),
    ("layer_norm_epsilon_negative", lambda: L.LayerNormalization(epsilon=-1.0), ValueError, r"`epsilon` must be in \[0.0, inf\]"),
    ("group_norm_epsilon_none", lambda: L.GroupNormalization(2, epsilon=None), TypeError, r"GroupNormalization.*epsilon=None"),
    ("rms_norm_epsilon_bool", lambda: L.RMSNormalization(epsilon=True), TypeError, r"RMSNormalization.*epsilon=True"),
    ("batch_norm_momentum_range", lambda: L.BatchNormalization(momentum=1.5), ValueError, r"BatchNormalization.*`momentum` must be in \[0.0, 1.0\].*1.5"),
    ("batch_norm_momentum_string", lambda: L.BatchNormalization(momentum="0.9"), TypeError, r"`momentum` must be a number"),
    ("batch_norm_zero_size_axis", lambda: L.BatchNormalization(axis=0)(f32(0, 3)), ValueError, r"BatchNormalization.*non-zero size.*\(0, 3\)"),
    # --- complex values
    ("complex_tensor_dense", lambda: L.Dense(3)(torch.ones(2, 4, dtype=torch.complex64)), TypeError, r"'dense' \(Dense\).*complex.*complex64.*\(2, 4\)"),
    ("complex_tensor_dense_built", lambda: built(L.Dense(3), f32(2, 4))(torch.ones(2, 4, dtype=torch.complex64)), TypeError, r"'dense'.*complex"),
    ("complex_array_conv1d", lambda: L.Conv1D(2, 1)(np.ones((1, 4, 2), np.complex128)), TypeError, r"'conv1d'.*complex128"),
    ("complex_embedding_ids", lambda: L.Embedding(5, 2)(torch.ones(2, 3, dtype=torch.complex64)), TypeError, r"'embedding'.*complex"),
    ("complex_in_merge_list", lambda: L.Add()([f32(2, 3), np.ones((2, 3), np.complex64)]), TypeError, r"'add'.*complex"),
    ("complex_set_weights", lambda: built(L.Dense(3), f32(2, 4)).set_weights([np.ones((4, 3), np.complex64), np.zeros(3)]), TypeError, r"'dense'.*real numeric.*dense/kernel.*complex64"),
    # --- out-of-range ids
    ("embedding_negative_id", lambda: L.Embedding(10, 3)(np.array([[2, -1]])), IndexError, r"'embedding'.*0 <= id < input_dim.*input_dim=10.*from -1 to 2"),
    ("embedding_negative_id_built", lambda: built(L.Embedding(10, 3), np.array([[1]]))(torch.tensor([[-3]])), IndexError, r"'embedding'.*from -3 to -3"),
    # --- axes: out of range (ValueError) / wrong type (TypeError)
    ("concatenate_axis_out_of_range", lambda: L.Concatenate(axis=5)([f32(2, 3), f32(2, 3)]), ValueError, r"'concatenate'.*`axis`.*rank 2.*\[-2, 1\].*axis=5"),
    ("concatenate_axis_string", lambda: L.Concatenate(axis="x"), TypeError, r"Concatenate.*`axis` must be an integer.*'x'"),
    ("concatenate_axis_list", lambda: L.Concatenate(axis=[1]), TypeError, r"Concatenate.*`axis` must be an integer\."),
    ("softmax_axis_out_of_range", lambda: L.Softmax(axis=5)(f32(2, 3)), ValueError, r"'softmax'.*`axis`.*rank 2.*axis=5"),
    ("softmax_axis_string", lambda: L.Softmax(axis="x"), TypeError, r"Softmax.*axis='x'"),
    ("softmax_axis_repeated", lambda: L.Softmax(axis=[1, -1])(f32(2, 3)), ValueError, r"'softmax'.*same axis twice.*axis=\[1, -1\]"),
    ("dot_axes_out_of_range", lambda: L.Dot(axes=5)([f32(2, 3), f32(2, 3)]), ValueError, r"'dot'.*`axes`.*rank 2.*axes=5"),
    ("mha_attention_axes_out_of_range", lambda: L.MultiHeadAttention(2, 4, attention_axes=5)(f32(2, 3, 4), f32(2, 3, 4)), ValueError, r"'multi_head_attention'.*`attention_axes`.*\[1, 1\].*\(2, 3, 4\).*\(5,\)"),
    ("mha_attention_axes_batch", lambda: L.MultiHeadAttention(2, 4, attention_axes=0)(f32(2, 3, 4), f32(2, 3, 4)), ValueError, r"attention_axes.*batch axis"),
    ("mha_attention_axes_string", lambda: L.MultiHeadAttention(2, 4, attention_axes=["x"]), TypeError, r"`attention_axes` must hold integers.*\['x'\]"),
    ("relu_threshold_bool", lambda: L.ReLU(threshold=True), TypeError, r"`ReLU`: `threshold` must be a number.*True"),
    ("mha_inner_axis_mismatch", lambda: L.MultiHeadAttention(1, 1, attention_axes=2)(f32(1, 1, 1, 1), f32(1, 2, 1, 1)), ValueError, r"'multi_head_attention'.*not attended.*\(1, 1, 1, 1\).*\(1, 2, 1, 1\)"),
    ("mha_output_shape_bool", lambda: L.MultiHeadAttention(2, 2, output_shape=True), ValueError, r"Invalid `output_shape`: expected positive integers.*\(True,\)"),
    ("layer_norm_axis_empty", lambda: L.LayerNormalization(axis=()), ValueError, r"LayerNormalization.*at least one axis.*axis=\(\)"),
    ("layer_norm_axis_string", lambda: L.LayerNormalization(axis="x")(f32(2, 3)), TypeError, r"axis"),
    # --- None, strings, Python lists
    ("none_input_unbuilt", lambda: L.Dense(3)(None), ValueError, r"Inputs to a layer should be tensors.*None.*'dense'"),
    ("none_input_built", lambda: built(L.Dense(3), f32(2, 4))(None), ValueError, r"should be tensors.*'dense'"),
    ("string_array_input", lambda: L.Dense(3)(np.array([["a", "b"]])), ValueError, r"'dense' \(Dense\) expects numeric inputs.*<U1.*\(1, 2\)"),
    ("object_array_input", lambda: L.LayerNormalization()(np.array([[1, "b"]], dtype=object)), ValueError, r"'layer_normalization'.*numeric.*object"),
    ("string_input", lambda: L.Flatten()("text"), ValueError, r"'flatten'.*numeric.*'text'"),
    ("string_array_in_merge_list", lambda: L.Concatenate()([f32(1, 2), np.array([["a", "b"]])]), ValueError, r"'concatenate'.*numeric"),
    ("nested_python_list", lambda: L.Dense(2)([[1.0, 2.0]]), ValueError, r"Only input tensors.*'dense'.*nested Python list.*1.0"),
    # --- attention masks
    ("attention_query_mask_shape", lambda: L.Attention()([f32(2, 3, 4), f32(2, 5, 4)], mask=[np.ones((2, 4), bool), None]), ValueError, r"'attention'.*query_mask of shape \(2, 3\).*query_mask.shape=\(2, 4\)"),
    ("attention_value_mask_shape", lambda: L.Attention()([f32(2, 3, 4), f32(2, 5, 4)], mask=[None, np.ones((2, 6), bool)]), ValueError, r"'attention'.*value_mask of shape \(2, 5\).*\(2, 6\)"),
    ("additive_attention_mask_shape", lambda: L.AdditiveAttention()([f32(2, 3, 4), f32(2, 5, 4)], mask=[None, np.ones((5,), bool)]), ValueError, r"'additive_attention'.*value_mask.*\(5,\)"),
    ("mha_attention_mask_source_len", lambda: L.MultiHeadAttention(2, 4)(f32(2, 3, 4), f32(2, 5, 4), attention_mask=np.ones((2, 3, 6), bool)), ValueError, r"'multi_head_attention'.*attention_mask.*\(2, 3, 5\).*\(2, 3, 6\)"),
    ("mha_attention_mask_target_len", lambda: L.MultiHeadAttention(2, 4)(f32(2, 3, 4), f32(2, 5, 4), attention_mask=np.ones((2, 4, 5), bool)), ValueError, r"attention_mask.shape=\(2, 4, 5\)"),
    ("mha_attention_mask_rank", lambda: L.MultiHeadAttention(2, 4)(f32(2, 3, 4), f32(2, 5, 4), attention_mask=np.ones((1, 2, 3, 5), bool)), ValueError, r"attention_mask.shape=\(1, 2, 3, 5\)"),
    ("attention_rank2_inputs", lambda: L.Attention()([f32(2, 4), f32(2, 4)]), ValueError, r"'attention'.*same rank, at least 3"),
    ("attention_rank_mismatch", lambda: L.Attention()([f32(2, 3, 4), f32(2, 1, 3, 4)]), ValueError, r"'attention'.*same rank"),
    ("attention_inner_axes", lambda: L.Attention()([f32(1, 1, 2, 4), f32(1, 2, 2, 4)]), ValueError, r"'attention'.*every axis before the sequence"),
    # --- set_weights / from_config arguments
    ("set_weights_none", lambda: built(L.Dense(3), f32(2, 4)).set_weights(None), TypeError, r"'dense'.*`set_weights` expects a list of arrays.*weights=None"),
    ("set_weights_dict", lambda: built(L.Dense(3), f32(2, 4)).set_weights({"kernel": 1}), TypeError, r"'dense'.*list of arrays.*dict"),
    ("set_weights_strings", lambda: built(L.Dense(3), f32(2, 4)).set_weights([np.full((4, 3), "a"), np.zeros(3)]), TypeError, r"'dense'.*real numeric.*<U1"),
    ("from_config_none", lambda: L.Dense.from_config(None), TypeError, r"`Dense.from_config` expects a config dict.*config=None"),
    ("from_config_string", lambda: L.Conv2D.from_config("conv2d"), TypeError, r"`Conv2D.from_config`.*'conv2d'.*str"),
    ("from_config_list", lambda: L.LSTM.from_config([("units", 3)]), TypeError, r"`LSTM.from_config`.*list"),
    ("from_config_unknown_key", lambda: L.Dense.from_config({"units": 3, "bogus": 1}), TypeError, r"deserializing class 'Dense'.*bogus"),
    # --- builds and metrics
    ("lstm_build_2d", lambda: L.LSTM(3).build((2, 4)), ValueError, r"'lstm' \(LSTM\).*rank 3.*expected ndim=3, found ndim=2.*\(2, 4\)"),
    ("gru_build_2d", lambda: L.GRU(3).build((2, 4)), ValueError, r"'gru' \(GRU\).*ndim=2"),
    ("simple_rnn_build_1d", lambda: L.SimpleRNN(3).build((4,)), ValueError, r"'simple_rnn'.*found ndim=1"),
    ("conv_lstm2d_build_4d", lambda: L.ConvLSTM2D(2, 3).build((1, 6, 6, 2)), ValueError, r"'conv_lstm2d'.*expected ndim=5, found ndim=4"),
    ("metric_on_keras_tensor", lambda: keras.metrics.Mean()(keras.Input((3,))), ValueError, r"Metric 'mean' \(Mean\).*KerasTensor.*compile"),
    ("metric_two_keras_tensors", lambda: keras.metrics.Accuracy()(keras.Input((3,)), keras.Input((3,))), ValueError, r"Metric 'accuracy'.*KerasTensor"),
    ("category_encoding_id_too_large", lambda: L.CategoryEncoding(3, output_mode="count")(np.array([[0, 3]])), IndexError, r"'category_encoding'.*num_tokens=3.*from 0 to 3"),
]


@pytest.mark.parametrize("make, error, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_raises(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: L.ReLU(), (2, 3)),
        (lambda: L.LeakyReLU(), (2, 3)),
        (lambda: L.ELU(), (2, 3)),
        (lambda: L.Softmax(), (2, 3)),
        (lambda: L.Activation("relu"), (2, 3)),
        (lambda: L.MaxPooling1D(2), (1, 4, 2)),
        (lambda: L.GlobalAveragePooling1D(), (1, 4, 2)),
    ],
)
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_inputs_to_activation_and_pooling_layers_are_cast(make, shape, dtype):
    """torch's relu/softmax/avg-pool kernels reject int/bool tensors; these
    layers cast them to the compute dtype, so the result equals the float call."""
    layer = make()
    x = torch.randint(0, 2, shape).to(dtype)
    out = layer(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, layer(x.float()))


def test_float64_inputs_to_layer_and_group_normalization(keras_ref):
    """F.layer_norm/group_norm need one dtype; a float64 input gave a torch
    'mixed dtype' error. Keras computes in float64 and returns float32."""
    x = np.random.default_rng(1).random((2, 4))
    for name, kwargs in (("LayerNormalization", {}), ("GroupNormalization", {"groups": 2})):
        ref = getattr(keras_ref.layers, name)(**kwargs)
        expected = ref(x).detach().cpu().numpy()
        weights = [w.detach().cpu().numpy() if hasattr(w, 'detach') else np.asarray(w) for w in ref.get_weights()]
        layer = getattr(L, name)(**kwargs)
        layer(x.astype("float32"))
        layer.set_weights(weights)
        out = layer(x)
        assert out.dtype == torch.float32
        np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_zero_dim_array_keeps_its_shape(keras_ref):
    """A 0-d NumPy array became shape (1,) on the way in (np.ascontiguousarray)."""
    x = np.array(0.5, "float32")
    assert tuple(L.ReLU()(x).shape) == tuple(keras_ref.layers.ReLU()(x).shape) == ()
    assert tuple(L.CategoryEncoding(4, output_mode="one_hot").compute_output_shape(())) == tuple(
        keras_ref.layers.CategoryEncoding(4, output_mode="one_hot")(np.array(3)).shape
    )


def test_complex_inputs_still_reach_user_layers():
    """Only built-in layers reject complex inputs; a user's layer may do
    complex maths."""

    class Conj(keras.layers.Layer):
        def call(self, x):
            return torch.conj(x)

    z = torch.tensor([[1 + 2j]], dtype=torch.complex64)
    torch.testing.assert_close(Conj()(z), torch.conj(z))


def test_attention_masks_as_arrays_match_tensor_masks(keras_ref):
    """Array masks were passed to `.to()` (AttributeError); now converted."""
    q, v = f32(2, 3, 4), f32(2, 5, 4)
    vm = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    att = L.Attention()
    out = att([q, v], mask=[None, vm])
    torch.testing.assert_close(out, att([q, v], mask=[None, torch.from_numpy(vm)]))
    theirs = keras_ref.layers.Attention()([q, v], mask=[None, vm])  # real Keras 3, the same array mask
    np.testing.assert_allclose(out.numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
    mha = L.MultiHeadAttention(2, 4)
    am = np.ones((2, 3, 5), bool)
    am[:, :, -1] = False
    out = mha(q, v, attention_mask=am)
    torch.testing.assert_close(out, mha(q, v, attention_mask=torch.from_numpy(am)))
    ref = keras_ref.layers.MultiHeadAttention(2, 4)
    ref(q, v)
    ref.set_weights(mha.get_weights())
    np.testing.assert_allclose(out.detach().numpy(), ref(q, v, attention_mask=am).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
