"""`model.quantize("float8")` over MultiHeadAttention, against Keras 3: its
query/key/value/attention_output projections are quantized as Keras's
EinsumDense projections are (variables, paths, policies, outputs, a fit step
and its scale / amax-history updates, `.weights.h5` files both ways). int8 /
int4: tests/layers/attention/test_attention_int_quantization.py."""

import warnings

import numpy as np

import kerasish


def _mha_model(lib):
    lib.utils.clear_session()
    inputs = lib.Input((5, 4))
    attended = lib.layers.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")(inputs, inputs)
    outputs = lib.layers.Dense(1)(lib.layers.GlobalAveragePooling1D()(attended))
    return lib.Model(inputs, outputs)


def _quantized(lib, mode, initial=None):
    model = _mha_model(lib)
    if initial is not None:
        model.set_weights(initial)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.quantize(mode)
    return model, [str(w.message) for w in caught]


def _values(lib, model):
    return {w.path: np.array(lib.ops.convert_to_numpy(w.value)) for w in model.weights}


def test_float8_multi_head_attention_matches_keras(keras_ref, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((8, 5, 4)).astype("float32")
    y = rng.random((8, 1)).astype("float32")
    initial = _mha_model(keras_ref).get_weights()
    theirs, _ = _quantized(keras_ref, "float8", initial)
    ours, _ = _quantized(kerasish, "float8", initial)
    # Keras's variables, in Keras's order and paths ("mha/query/inputs_scale", ...)
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    assert "mha/query/kernel_amax_history" in [w.path for w in ours.weights]
    policies = {layer.name: str(layer.dtype_policy) for layer in ours._flatten_layers(recursive=True)}
    assert policies["query"] == policies["attention_output"] == '<QuantizedFloat8DTypePolicy "float8_from_float32">'
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    for model in (theirs, ours):
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    mine, ref = _values(kerasish, ours), _values(keras_ref, theirs)
    assert not np.array_equal(ref["mha/query/inputs_amax_history"], np.zeros(1024))  # fit recorded amaxes
    for path, value in ref.items():
        np.testing.assert_allclose(mine[path], value, rtol=1e-5, atol=1e-6, err_msg=path)
    # `.weights.h5` files load both ways
    for src, dst_lib, name in ((ours, keras_ref, "ours"), (theirs, kerasish, "theirs")):
        path = str(tmp_path / f"{name}.weights.h5")
        src.save_weights(path)
        dst, _ = _quantized(dst_lib, "float8")
        dst.load_weights(path)
        for a, b in zip(dst.get_weights(), src.get_weights()):
            np.testing.assert_array_equal(a, b)
