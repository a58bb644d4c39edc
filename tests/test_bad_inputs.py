"""Audit: BUILT layers and models called with a user's wrong inputs.

Every case builds a layer (or model) on good data, then calls it the wrong
way and checks for Keras's error type with a message naming the layer or the
argument and the shapes — never a crash deep inside torch, never silently
wrong numbers. Where Keras (torch backend) computes a result instead of
raising (integer inputs, negative Embedding ids) the numbers are checked.
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


def _two_input_model():
    a = keras.Input((3,), name="a")
    b = keras.Input((4,), name="b")
    return keras.Model([a, b], L.Concatenate()([a, b]))


def _two_input_dense_model():
    a = keras.Input((3,), name="a")
    b = keras.Input((4,), name="b")
    return keras.Model([a, b], L.Concatenate()([a, L.Dense(2)(b)]))


def _sequential():
    return keras.Sequential([keras.Input((3,)), L.Dense(1)])


def _fit(model, x, y, loss="mse"):
    model.compile("sgd", loss)
    model.fit(x, y, epochs=1, verbose=0, batch_size=4)


def _classifier():
    return keras.Sequential([keras.Input((3,)), L.Dense(4, activation="softmax")])


def _normalization_adapted():
    layer = L.Normalization()
    layer.adapt(f32(10, 4))
    return layer


# (id, callable that makes the mistake, Keras's error type, match=)
CASES = [
    # --- wrong size of the feature / channel axis after the build
    (
        "dense_features",
        lambda: built(L.Dense(3), f32(2, 4))(f32(2, 5)),
        ValueError,
        r"'dense'.*axis -1.*value 4.*\(2, 5\)",
    ),
    (
        "einsum_dense_features",
        lambda: built(L.EinsumDense("ab,bc->ac", output_shape=3), f32(2, 4))(f32(2, 5)),
        ValueError,
        r"'einsum_dense'.*value 4.*\(2, 5\)",
    ),
    (
        "conv2d_channels_first_data",
        lambda: built(L.Conv2D(2, 3), f32(1, 8, 8, 3))(f32(1, 3, 8, 8)),
        ValueError,
        r"'conv2d'.*axis -1.*value 3.*\(1, 3, 8, 8\)",
    ),
    ("conv1d_channels", lambda: built(L.Conv1D(2, 3), f32(1, 8, 3))(f32(1, 8, 4)), ValueError, r"'conv1d'.*value 3"),
    (
        "conv1d_cf_channels_last_data",
        lambda: built(L.Conv1D(2, 3, data_format="channels_first"), f32(1, 3, 8))(f32(1, 8, 3)),
        ValueError,
        r"'conv1d'.*axis 1.*value 3",
    ),
    (
        "conv3d_channels",
        lambda: built(L.Conv3D(2, 3), f32(1, 5, 5, 5, 3))(f32(1, 5, 5, 5, 2)),
        ValueError,
        r"'conv3d'.*value 3",
    ),
    (
        "conv2d_transpose_channels",
        lambda: built(L.Conv2DTranspose(2, 3), f32(1, 8, 8, 3))(f32(1, 8, 8, 4)),
        ValueError,
        r"'conv2d_transpose'.*value 3",
    ),
    (
        "depthwise_conv2d_channels",
        lambda: built(L.DepthwiseConv2D(3), f32(1, 8, 8, 3))(f32(1, 8, 8, 4)),
        ValueError,
        r"'depthwise_conv2d'.*value 3",
    ),
    (
        "separable_conv2d_channels",
        lambda: built(L.SeparableConv2D(2, 3), f32(1, 8, 8, 3))(f32(1, 8, 8, 4)),
        ValueError,
        r"'separable_conv2d'.*value 3",
    ),
    (
        "batch_norm_channels",
        lambda: built(L.BatchNormalization(), f32(2, 4))(f32(2, 5)),
        ValueError,
        r"'batch_normalization'.*value 4",
    ),
    (
        "layer_norm_features",
        lambda: built(L.LayerNormalization(), f32(2, 4))(f32(2, 5)),
        ValueError,
        r"'layer_normalization'.*value 4.*\(2, 5\)",
    ),
    (
        "rms_norm_features",
        lambda: built(L.RMSNormalization(), f32(2, 4))(f32(2, 5)),
        ValueError,
        r"'rms_normalization'.*value 4",
    ),
    (
        "group_norm_channels",
        lambda: built(L.GroupNormalization(2), f32(2, 4))(f32(2, 6)),
        ValueError,
        r"'group_normalization'.*value 4",
    ),
    ("prelu_features", lambda: built(L.PReLU(), f32(2, 4))(f32(2, 5)), ValueError, r"'p_re_lu'.*value 4.*\(2, 5\)"),
    (
        "normalization_features",
        lambda: _normalization_adapted()(f32(2, 5)),
        ValueError,
        r"'normalization'.*value 4.*\(2, 5\)",
    ),
    (
        "lstm_features",
        lambda: built(L.LSTM(3), f32(2, 5, 4))(f32(2, 5, 6)),
        ValueError,
        r"'lstm'.*value 4.*\(2, 5, 6\)",
    ),
    ("gru_features", lambda: built(L.GRU(3), f32(2, 5, 4))(f32(2, 5, 6)), ValueError, r"'gru'.*value 4"),
    (
        "simple_rnn_features",
        lambda: built(L.SimpleRNN(3), f32(2, 5, 4))(f32(2, 5, 6)),
        ValueError,
        r"'simple_rnn'.*value 4",
    ),
    (
        "bidirectional_features",
        lambda: built(L.Bidirectional(L.LSTM(3)), f32(2, 5, 4))(f32(2, 5, 6)),
        ValueError,
        r"'forward_lstm'.*value 4",
    ),
    (
        "conv_lstm2d_channels",
        lambda: built(L.ConvLSTM2D(2, 3), f32(1, 3, 6, 6, 2))(f32(1, 3, 6, 6, 3)),
        ValueError,
        r"'conv_lstm2d'.*value 2",
    ),
    (
        "time_distributed_features",
        lambda: built(L.TimeDistributed(L.Dense(3)), f32(2, 5, 4))(f32(2, 5, 6)),
        ValueError,
        r"'dense'.*value 4",
    ),
    (
        "mha_query_features",
        lambda: built(L.MultiHeadAttention(2, 4), f32(2, 3, 4), f32(2, 5, 6))(f32(2, 3, 5), f32(2, 5, 6)),
        ValueError,
        r"'multi_head_attention'.*value 4",
    ),
    (
        "mha_value_features",
        lambda: built(L.MultiHeadAttention(2, 4), f32(2, 3, 4), f32(2, 5, 6))(f32(2, 3, 4), f32(2, 5, 7)),
        ValueError,
        r"'key'.*size 6.*\(2, 5, 7\)",
    ),
    # --- wrong rank
    ("dense_rank1", lambda: built(L.Dense(3), f32(2, 4))(f32(4)), ValueError, r"'dense'.*min_ndim=2.*ndim=1"),
    (
        "conv2d_unbatched",
        lambda: built(L.Conv2D(2, 3), f32(1, 8, 8, 3))(f32(8, 8, 3)),
        ValueError,
        r"'conv2d'.*ndim=4.*ndim=3",
    ),
    ("lstm_rank2", lambda: built(L.LSTM(3), f32(2, 5, 4))(f32(2, 4)), ValueError, r"'lstm'.*ndim=3.*ndim=2"),
    ("conv_lstm2d_rank", lambda: L.ConvLSTM2D(2, 3)(f32(1, 6, 6, 2)), ValueError, r"'conv_lstm2d'.*ndim=5.*ndim=4"),
    ("max_pooling2d_rank", lambda: L.MaxPooling2D()(f32(8, 8, 3)), ValueError, r"'max_pooling2d'.*ndim=4"),
    (
        "global_avg_pooling2d_rank",
        lambda: L.GlobalAveragePooling2D()(f32(8, 3)),
        ValueError,
        r"'global_average_pooling2d'.*ndim=4",
    ),
    ("permute_rank", lambda: built(L.Permute((2, 1)), f32(2, 3, 4))(f32(2, 3, 4, 5)), ValueError, r"'permute'.*ndim=3"),
    ("repeat_vector_rank", lambda: L.RepeatVector(3)(f32(2, 3, 4)), ValueError, r"'repeat_vector'.*ndim=2"),
    ("zero_padding2d_rank", lambda: L.ZeroPadding2D()(f32(2, 3, 4)), ValueError, r"'zero_padding2d'.*ndim=4"),
    ("up_sampling2d_rank", lambda: L.UpSampling2D()(f32(2, 3, 4)), ValueError, r"'up_sampling2d'.*ndim=4"),
    (
        "time_distributed_rank",
        lambda: L.TimeDistributed(L.Dense(3))(f32(2, 4)),
        ValueError,
        r"TimeDistributed.*at least 3.*\(2, 4\)",
    ),
    ("resizing_rank", lambda: L.Resizing(4, 4)(f32(3, 3)), ValueError, r"rank 3.*rank 4.*\(3, 3\)"),
    # --- spatial size too small for the kernel
    (
        "conv2d_too_small",
        lambda: L.Conv2D(2, 3)(f32(1, 2, 2, 3)),
        ValueError,
        r"'conv2d'.*zero or negative.*\(1, 2, 2, 3\)",
    ),
    (
        "conv2d_too_small_built",
        lambda: built(L.Conv2D(2, 3), f32(1, 8, 8, 3))(f32(1, 2, 2, 3)),
        ValueError,
        r"'conv2d'.*zero or negative.*\(1, 2, 2, 3\)",
    ),
    (
        "max_pooling2d_too_small",
        lambda: L.MaxPooling2D(3)(f32(1, 2, 2, 1)),
        ValueError,
        r"'max_pooling2d'.*zero or negative",
    ),
    (
        "avg_pooling1d_too_small_built",
        lambda: built(L.AveragePooling1D(3), f32(1, 6, 1))(f32(1, 2, 1)),
        ValueError,
        r"'average_pooling1d'.*zero or negative.*\(1, 2, 1\)",
    ),
    ("cropping2d_too_much", lambda: L.Cropping2D(3)(f32(1, 4, 4, 1)), ValueError, r"cropping.*\(1, 4, 4, 1\)"),
    ("reshape_size", lambda: L.Reshape((5,))(f32(2, 4)), ValueError, r"total size.*target_shape=\(5,\)"),
    # --- a list where one tensor is expected and vice versa
    ("add_one_tensor", lambda: L.Add()(f32(2, 3)), ValueError, r"merge layer should be called on a list.*\(2, 3\)"),
    ("concatenate_one_tensor", lambda: L.Concatenate()(f32(2, 3)), ValueError, r"Concatenate.*list.*\(2, 3\)"),
    ("dot_one_tensor", lambda: L.Dot(axes=1)(f32(2, 3)), ValueError, r"Dot.*list of 2 inputs.*\(2, 3\)"),
    ("subtract_three", lambda: L.Subtract()([f32(2, 3)] * 3), ValueError, r"Subtract.*exactly 2 inputs"),
    (
        "attention_one_tensor",
        lambda: L.Attention()(f32(2, 3, 4)),
        ValueError,
        r"Attention.*list of inputs.*\(2, 3, 4\)",
    ),
    (
        "attention_list_of_one",
        lambda: L.Attention()([f32(2, 3, 4)]),
        ValueError,
        r"Attention.*length 2 or 3.*length: 1",
    ),
    (
        "additive_attention_one_tensor",
        lambda: L.AdditiveAttention()(f32(2, 3, 4)),
        ValueError,
        r"AdditiveAttention.*list of inputs.*\(2, 3, 4\)",
    ),
    ("mha_without_value", lambda: L.MultiHeadAttention(2, 4)(f32(2, 3, 4)), TypeError, r"value"),
    (
        "sequential_list_for_one_input",
        lambda: _sequential()([f32(2, 3), f32(2, 3)]),
        ValueError,
        r"expects 1 input\(s\).*received 2",
    ),
    # --- mismatched batch sizes / shapes between inputs
    ("add_batch", lambda: L.Add()([f32(2, 3), f32(3, 3)]), ValueError, r"different batch sizes.*\(2, 3\), \(3, 3\)"),
    ("multiply_batch", lambda: L.Multiply()([f32(2, 3), f32(3, 3)]), ValueError, r"different batch sizes"),
    ("add_shapes", lambda: L.Add()([f32(2, 3), f32(2, 4)]), ValueError, r"incompatible shapes.*\(3,\) and \(4,\)"),
    (
        "add_shapes_built",
        lambda: built(L.Add(), [f32(2, 3), f32(2, 3)])([f32(2, 3), f32(2, 4)]),
        ValueError,
        r"'add'.*incompatible shapes.*\(3,\) and \(4,\)",
    ),
    (
        "concatenate_batch",
        lambda: L.Concatenate()([f32(2, 3), f32(3, 3)]),
        ValueError,
        r"matching shapes.*\(2, 3\), \(3, 3\)",
    ),
    (
        "concatenate_batch_built",
        lambda: built(L.Concatenate(), [f32(2, 3), f32(2, 3)])([f32(2, 3), f32(3, 3)]),
        ValueError,
        r"'concatenate'.*matching shapes",
    ),
    ("dot_axis_sizes", lambda: L.Dot(axes=1)([f32(2, 3), f32(2, 4)]), ValueError, r"axis values 3.*!= 4"),
    (
        "dot_axis_sizes_built",
        lambda: built(L.Dot(axes=1), [f32(2, 3), f32(2, 3)])([f32(2, 3), f32(2, 4)]),
        ValueError,
        r"batch_dot.*\(2, 3\) and \(2, 4\)",
    ),
    (
        "dot_batch",
        lambda: L.Dot(axes=1)([f32(2, 3), f32(3, 3)]),
        ValueError,
        r"different batch sizes.*\(2, 3\) and \(3, 3\)",
    ),
    (
        "attention_batch",
        lambda: L.Attention()([f32(2, 3, 4), f32(3, 3, 4)]),
        ValueError,
        r"'attention'.*batch size.*query.shape=\(2, 3, 4\), value.shape=\(3, 3, 4\)",
    ),
    (
        "attention_batch_built",
        lambda: built(L.Attention(), [f32(2, 3, 4), f32(2, 5, 4)])([f32(2, 3, 4), f32(3, 5, 4)]),
        ValueError,
        r"'attention'.*batch size",
    ),
    (
        "attention_feature_dims",
        lambda: L.Attention()([f32(2, 3, 4), f32(2, 3, 5)]),
        ValueError,
        r"'attention'.*last dimension",
    ),
    (
        "attention_value_key_lengths",
        lambda: L.Attention()([f32(2, 3, 4), f32(2, 5, 4), f32(2, 6, 4)]),
        ValueError,
        r"'attention'.*sequence length.*value.shape=\(2, 5, 4\), key.shape=\(2, 6, 4\)",
    ),
    (
        "additive_attention_feature_dims",
        lambda: L.AdditiveAttention()([f32(2, 3, 4), f32(2, 3, 5)]),
        ValueError,
        r"'additive_attention'.*last dimension",
    ),
    (
        "mha_batch",
        lambda: L.MultiHeadAttention(2, 4)(f32(2, 3, 4), f32(3, 3, 4)),
        ValueError,
        r"'multi_head_attention'.*batch size.*query_shape=\(2, 3, 4\), value_shape=\(3, 3, 4\)",
    ),
    (
        "lstm_initial_state_batch",
        lambda: L.LSTM(3)(f32(2, 5, 4), initial_state=[f32(3, 3), f32(3, 3)]),
        ValueError,
        r"'lstm'.*initial_state.*\[\(2, 3\), \(2, 3\)\].*\[\(3, 3\), \(3, 3\)\]",
    ),
    (
        "lstm_initial_state_units",
        lambda: L.LSTM(3)(f32(2, 5, 4), initial_state=[f32(2, 4), f32(2, 4)]),
        ValueError,
        r"'lstm'.*initial_state.*\(2, 4\)",
    ),
    (
        "lstm_initial_state_count",
        lambda: L.LSTM(3)(f32(2, 5, 4), initial_state=[f32(2, 3)]),
        ValueError,
        r"'lstm'.*initial_state",
    ),
    (
        "gru_initial_state_batch",
        lambda: L.GRU(3)(f32(2, 5, 4), initial_state=[f32(3, 3)]),
        ValueError,
        r"'gru'.*initial_state",
    ),
    (
        "bidirectional_initial_state",
        lambda: L.Bidirectional(L.LSTM(3))(f32(2, 5, 4), initial_state=[f32(2, 3)] * 2),
        ValueError,
        r"'forward_lstm'.*initial_state",
    ),
    (
        "lstm_mask_shape",
        lambda: L.LSTM(3)(f32(2, 5, 4), mask=np.ones((2, 6), bool)),
        ValueError,
        r"'lstm'.*mask.*\(2, 5\).*\(2, 6\)",
    ),
    (
        "lstm_mask_rank",
        lambda: L.LSTM(3)(f32(2, 5, 4), mask=np.ones((2,), bool)),
        ValueError,
        r"'lstm'.*mask.shape=\(2,\)",
    ),
    (
        "softmax_mask_shape",
        lambda: L.Softmax()(f32(2, 4), mask=np.ones((2, 5), bool)),
        ValueError,
        r"mask.*broadcastable",
    ),
    # --- indices out of range
    (
        "embedding_id_too_large",
        lambda: built(L.Embedding(10, 3), np.array([[1]]))(np.array([[1, 12]])),
        IndexError,
        r"'embedding'.*input_dim=10",
    ),
    (
        "embedding_id_below_minus_input_dim",
        lambda: L.Embedding(10, 3)(np.array([[-11]])),
        IndexError,
        r"'embedding'.*input_dim=10",
    ),
    (
        "category_encoding_one_hot_range",
        lambda: L.CategoryEncoding(5, output_mode="one_hot")(np.array([1, 7])),
        IndexError,
        r"'category_encoding'.*num_tokens=5",
    ),
    (
        "category_encoding_multi_hot_range",
        lambda: L.CategoryEncoding(5, output_mode="multi_hot")(np.array([[1, 7]])),
        IndexError,
        r"'category_encoding'.*num_tokens=5",
    ),
    # --- models: wrong number of inputs, wrong keys, wrong shapes
    (
        "model_too_few_inputs",
        lambda: _two_input_model()([f32(2, 3)]),
        ValueError,
        r"(?s)'functional'.*Expected: \['a', 'b'\]",
    ),
    (
        "model_too_many_inputs",
        lambda: _two_input_model()([f32(2, 3), f32(2, 4), f32(2, 4)]),
        ValueError,
        r"(?s)Expected: \['a', 'b'\].*shape=\(2, 4\)",
    ),
    (
        "model_wrong_dict_keys",
        lambda: _two_input_model()({"a": f32(2, 3), "zz": f32(2, 4)}),
        ValueError,
        r"(?s)Expected: \['a', 'b'\].*'zz'",
    ),
    (
        "model_wrong_feature_size",
        # the model warns (Keras 2's "was constructed with shape") and runs
        # its layers; the Dense built for 4 features refuses 5, as in Keras
        lambda: _two_input_dense_model()([f32(2, 3), f32(2, 5)]),
        ValueError,
        r"layer 'dense'.*axis -1 of input shape to have value 4.*\(2, 5\)",
    ),
    (
        "sequential_wrong_feature_size",
        lambda: _sequential()(f32(2, 5)),
        ValueError,
        # Keras 3's Sequential checks the rank only; its Dense names the size
        r"layer 'dense'.*expected axis -1 of input shape to have value 3.*\(2, 5\)",
    ),
    (
        "predict_wrong_feature_size",
        lambda: _sequential().predict(f32(8, 5), verbose=0),
        ValueError,
        r"layer 'dense'.*value 3.*\(8, 5\)",
    ),
    # --- fit / evaluate with bad data
    (
        "fit_x_y_lengths",
        lambda: _fit(_sequential(), f32(8, 3), f32(6, 1)),
        ValueError,
        r"(?s)cardinality.*'x' sizes: 8.*'y' sizes: 6",
    ),
    ("fit_wrong_x_features", lambda: _fit(_sequential(), f32(8, 5), f32(8, 1)), ValueError, r"layer 'dense'.*value 3.*\(4, 5\)"),
    (
        "fit_two_x_for_one_input",
        lambda: _fit(_sequential(), [f32(8, 3), f32(8, 3)], f32(8, 1)),
        ValueError,
        r"expects 1 input",
    ),
    (
        "fit_dict_wrong_key",
        lambda: _fit(_two_input_model(), {"a": f32(8, 3), "zz": f32(8, 4)}, f32(8, 7)),
        ValueError,
        r"'zz'",
    ),
    (
        "fit_sparse_ce_one_hot_y",
        lambda: _fit(
            _classifier(), f32(8, 3), np.eye(4, dtype="float32")[np.arange(8) % 4], "sparse_categorical_crossentropy"
        ),
        ValueError,
        r"target.*output.*shape",
    ),
    (
        "fit_ce_integer_y",
        lambda: _fit(_classifier(), f32(8, 3), np.arange(8) % 4, "categorical_crossentropy"),
        ValueError,
        r"same shape.*target.shape=\(4,\), output.shape=\(4, 4\)",
    ),
    (
        "fit_binary_ce_y_shape",
        lambda: _fit(_classifier(), f32(8, 3), f32(8, 3), "binary_crossentropy"),
        ValueError,
        r"same shape.*\(4, 3\).*\(4, 4\)",
    ),
    (
        "fit_sparse_ce_label_range",
        lambda: _fit(_classifier(), f32(8, 3), np.arange(8), "sparse_categorical_crossentropy"),
        IndexError,
        r"out of bounds",
    ),
]


@pytest.mark.parametrize("make, error, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises(make, error, match):
    with pytest.raises(error, match=match):
        make()


# Integer inputs to float layers: Keras's ops promote them (the result is float);
# kerasish casts them to the compute dtype, so the numbers equal the float call.
# Where Keras 3.15 on torch computes them (Dense, RNNs, BatchNormalization) its
# numbers are the reference too; elsewhere it raises ("expected scalar type
# Long": convolutions, EinsumDense) or computes in the integer dtype
# (LayerNormalization's moments, RMSNormalization returns int64), so the float
# call is the reference.
INT_CASES = [
    ("dense", lambda lib: lib.layers.Dense(3), (2, 4), True),
    ("einsum_dense", lambda lib: lib.layers.EinsumDense("ab,bc->ac", output_shape=3), (2, 4), False),
    ("conv1d", lambda lib: lib.layers.Conv1D(2, 3), (1, 8, 3), False),
    ("separable_conv1d", lambda lib: lib.layers.SeparableConv1D(2, 3), (1, 8, 3), False),
    ("lstm", lambda lib: lib.layers.LSTM(3), (2, 5, 4), True),
    ("gru", lambda lib: lib.layers.GRU(3), (2, 5, 4), True),
    ("layer_norm", lambda lib: lib.layers.LayerNormalization(), (2, 4), False),
    ("batch_norm", lambda lib: lib.layers.BatchNormalization(), (2, 4), True),
    ("rms_norm", lambda lib: lib.layers.RMSNormalization(), (2, 4), False),
]


@pytest.mark.parametrize("make, shape, keras_agrees", [c[1:] for c in INT_CASES], ids=[c[0] for c in INT_CASES])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_input_to_float_layer(make, shape, keras_agrees, dtype, keras_ref):
    layer = make(keras)
    x = torch.randint(0, 3, shape).to(dtype)
    out = layer(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, layer(x.to(torch.float32)))
    if keras_agrees:
        ref = make(keras_ref)
        ref(x.to(torch.float32))
        ref.set_weights(layer.get_weights())
        theirs = ref(x)
        assert theirs.dtype == torch.float32
        np.testing.assert_allclose(out.detach().numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_float_ids_to_embedding_and_category_encoding(keras_ref):
    emb = L.Embedding(10, 3)
    ids = np.array([[1, 2, 9]])
    torch.testing.assert_close(emb(ids.astype("float32")), emb(ids))
    ref = keras_ref.layers.Embedding(10, 3)
    ref(ids)
    ref.set_weights(emb.get_weights())
    np.testing.assert_array_equal(emb(ids.astype("float32")).detach().numpy(),
                                  ref(ids.astype("float32")).detach().numpy())  # real Keras 3 casts the ids too
    enc = L.CategoryEncoding(5, output_mode="one_hot")
    torch.testing.assert_close(enc(np.array([1.0, 2.0], "float32")), enc(np.array([1, 2])))
    theirs = keras_ref.layers.CategoryEncoding(5, output_mode="one_hot")(np.array([1.0, 2.0], "float32"))
    np.testing.assert_array_equal(enc(np.array([1.0, 2.0], "float32")).numpy(), keras_ref.ops.convert_to_numpy(theirs))


def test_embedding_negative_ids_are_rejected_where_keras_backends_disagree(keras_ref):
    """Keras on torch reads id -1 as the last row, TensorFlow rejects it, JAX
    clamps: kerasish raises IndexError (as for ids >= input_dim). In-range ids
    give Keras's numbers."""
    ids = np.array([[1, 9, 0]])
    ref = keras_ref.layers.Embedding(10, 3)
    expected = ref(ids).detach().numpy()
    layer = L.Embedding(10, 3)
    layer(ids)
    layer.set_weights(ref.get_weights())
    np.testing.assert_allclose(layer(ids).detach().numpy(), expected, rtol=0, atol=0)
    wrapped = ref(np.array([[-1]])).detach().numpy()  # the torch backend's wrap-around
    np.testing.assert_array_equal(wrapped, expected[:, 1:2])
    with pytest.raises(IndexError, match=r"'embedding'.*0 <= id < input_dim.*input_dim=10.*from -1 to -1"):
        layer(np.array([[-1]]))


def test_array_value_and_mask_arguments_are_converted(keras_ref):
    """Keras converts array arguments besides the first; so does kerasish."""
    mha = L.MultiHeadAttention(2, 4)
    out = mha(torch.ones(2, 3, 4), f32(2, 5, 4))
    assert tuple(out.shape) == (2, 3, 4)
    ref_mha = keras_ref.layers.MultiHeadAttention(2, 4)
    ref_mha(torch.ones(2, 3, 4), f32(2, 5, 4))
    ref_mha.set_weights(mha.get_weights())
    np.testing.assert_allclose(out.detach().numpy(), ref_mha(torch.ones(2, 3, 4), f32(2, 5, 4)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    lstm = L.LSTM(3)
    x = f32(2, 5, 4)
    mask = np.ones((2, 5), bool)
    mask[1, 3:] = False
    ref_lstm = keras_ref.layers.LSTM(3)
    ref_lstm(x)
    lstm(x)
    ref_lstm.set_weights(lstm.get_weights())
    np.testing.assert_allclose(lstm(x, mask=mask).detach().numpy(), ref_lstm(x, mask=mask).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lstm(x, mask=np.ones((2, 5), bool)), lstm(x))


def test_layer_built_on_one_rank_accepts_others_where_keras_does(keras_ref):
    """The new feature-size specs count from the end: other leading ranks work."""
    shapes = {}
    for lib in (keras_ref, keras):  # the same calls in real Keras 3
        ln = built(lib.layers.LayerNormalization(), f32(2, 4))
        add = built(lib.layers.Add(), [f32(2, 3), f32(2, 3)])
        shapes[lib] = (tuple(ln(f32(2, 3, 4)).shape), tuple(add([f32(2, 3), f32(2, 1)]).shape))
    assert shapes[keras] == shapes[keras_ref] == ((2, 3, 4), (2, 3))
