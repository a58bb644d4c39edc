"""`model.quantize("int8" | "int4")` over MultiHeadAttention and
GroupedQueryAttention, against Keras 3: the query/key/(gate)/value/
attention_output projections are quantized as Keras's EinsumDense
projections are (variables with Keras's paths, shapes and dtypes, the int8
values and scales themselves, policies), outputs, a fit step (the quantized
kernels frozen), LoRA on a quantized projection, `.weights.h5` files both
ways, and Keras's errors.

Tolerance: on CPU Keras's int8 einsum is exact (int8 x int8 accumulated in
int32, as kerasish's), and the kernels, scales and input scales are computed
by the same float32 formulas, so the only differences are float32 rounding of
the rescaling, bias, softmax and mean (a few ulps): rtol=1e-5, atol=1e-6.
Weights (int8 values, scales) must be equal exactly."""

import warnings
from unittest import mock

import numpy as np
import pytest

import kerasish

_ATOL, _RTOL = 1e-6, 1e-5


def _model(lib, kind):
    lib.utils.clear_session()
    if kind == "mha":
        inputs = lib.Input((5, 8))
        attended = lib.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(inputs, inputs)
    elif kind == "mha_axes":  # rank-4 inputs: 5-letter equations ("abcd,def->abcef")
        inputs = lib.Input((3, 4, 8))
        mha = lib.layers.MultiHeadAttention(num_heads=2, key_dim=4, attention_axes=(2,), name="mha")
        attended = lib.layers.Reshape((12, 8))(mha(inputs, inputs))
    else:
        inputs = lib.Input((5, 8))
        attended = lib.layers.GroupQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2,
                                                  name="mha")(inputs, inputs)
    outputs = lib.layers.Dense(1)(lib.layers.GlobalAveragePooling1D()(attended))
    return lib.Model(inputs, outputs)


def _config(lib, mode):
    if mode == "int4_per_channel":
        return {"config": lib.quantizers.Int4QuantizationConfig(block_size=-1)}
    return {"mode": mode}


def _quantized(lib, kind, mode, initial=None):
    model = _model(lib, kind)
    if initial is not None:
        model.set_weights(initial)
    # Keras's `Layer.__delattr__` runs `gc.collect()` for each replaced kernel (~0.3 s each in a test
    # process's large heap): skipped here, it only frees memory sooner
    with warnings.catch_warnings(), mock.patch("gc.collect", lambda *args: 0):
        warnings.simplefilter("ignore")  # (Keras's "no `quantize` method" warnings for the other layers)
        model.quantize(**_config(lib, mode))
    return model


def _data(kind):
    rng = np.random.default_rng(0)
    shape = (8, 3, 4, 8) if kind == "mha_axes" else (8, 5, 8)
    return rng.normal(size=shape).astype("float32"), rng.normal(size=(8, 1)).astype("float32")


def _described(model):
    return [(w.path, tuple(w.shape), str(w.dtype).replace("torch.", ""), w.trainable) for w in model.weights]


@pytest.mark.parametrize("kind,mode", [
    ("mha", "int8"), ("mha_axes", "int4"), ("gqa", "int8"), ("gqa", "int4_per_channel"),
])
def test_int_quantized_attention_matches_keras(keras_ref, kind, mode):
    x, y = _data(kind)
    initial = _model(keras_ref, kind).get_weights()
    theirs = _quantized(keras_ref, kind, mode, initial)
    ours = _quantized(kerasish, kind, mode, initial)
    # Keras's variables: `kernel` int8 (int4: packed two per byte), `kernel_scale`, frozen
    assert _described(ours) == _described(theirs)
    assert "mha/query/kernel_scale" in [w.path for w in ours.weights]
    policies = {layer.name: layer.dtype_policy.name for layer in ours._flatten_layers(recursive=True)}
    expected = {"int8": "int8_from_float32", "int4": "int4/128_from_float32",
                "int4_per_channel": "int4/-1_from_float32"}[mode]
    assert policies["query"] == policies["attention_output"] == expected
    for a, b, w in zip(ours.get_weights(), theirs.get_weights(), theirs.weights):
        np.testing.assert_array_equal(a, b, err_msg=w.path)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=_RTOL, atol=_ATOL)
    # a fit step: the biases and the Dense layer train, the quantized kernels stay
    frozen = ours.get_layer("mha").query_dense._kernel.numpy().copy()
    for model in (theirs, ours):
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b, w in zip(ours.get_weights(), theirs.get_weights(), theirs.weights):
        np.testing.assert_allclose(a, b, rtol=_RTOL, atol=_ATOL, err_msg=w.path)
    assert not np.array_equal(ours.get_layer("mha").query_dense.bias.numpy(), initial[1])  # it trained
    kernel = [w.path for w in ours.weights].index("mha/query/kernel")
    np.testing.assert_array_equal(ours.get_weights()[kernel], frozen)  # the quantized kernel did not move


@pytest.mark.parametrize("mode", ["int8", "float8"])
def test_mixed_bfloat16_quantized_attention_matches_keras_bit_for_bit(keras_ref, mode):
    """The projections' bias and scales in bfloat16 inside the call, as Keras autocasts them (int8: a
    float32 bias added to the bfloat16 einsum moved outputs by a bfloat16 ulp; float8: its own F.linear
    over float32 weights moved them by ~3%)."""
    import torch

    x, _ = _data("mha")
    outputs, initial = [], None
    for lib in (keras_ref, kerasish):
        lib.utils.clear_session()
        inputs = lib.Input((5, 8))
        mha = lib.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha", dtype="mixed_bfloat16")
        model = lib.Model(inputs, mha(inputs, inputs))
        initial = model.get_weights() if initial is None else initial
        model.set_weights(initial)
        with warnings.catch_warnings(), mock.patch("gc.collect", lambda *args: 0):
            warnings.simplefilter("ignore")
            model.quantize(mode)
        assert mha.query_dense.dtype_policy.name == f"{mode}_from_mixed_bfloat16"
        outputs.append(torch.as_tensor(model(torch.tensor(x))).float().detach().numpy())
    np.testing.assert_array_equal(outputs[1], outputs[0])


def test_int8_attention_gradients_reach_the_inputs(keras_ref):
    """Keras's custom gradient: through the dequantized kernel to the inputs."""
    import torch

    x, _ = _data("mha")
    initial = _model(keras_ref, "mha").get_weights()
    grads = []
    for lib in (keras_ref, kerasish):
        model = _quantized(lib, "mha", "int8", initial)
        inputs = torch.tensor(x, requires_grad=True)
        model(inputs).sum().backward()
        grads.append(inputs.grad.numpy())
        assert all(w.path.endswith("/bias") for w in model.trainable_weights)  # every kernel is frozen int8
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-4, atol=1e-6)
    assert np.abs(grads[1]).max() > 0


def test_weights_files_load_both_ways(keras_ref, tmp_path):
    x, _ = _data("mha")
    initial = _model(keras_ref, "mha").get_weights()
    theirs = _quantized(keras_ref, "mha", "int4", initial)
    ours = _quantized(kerasish, "mha", "int4", initial)
    theirs_file, ours_file = str(tmp_path / "theirs.weights.h5"), str(tmp_path / "ours.weights.h5")
    theirs.save_weights(theirs_file)
    theirs_weights = theirs.get_weights()
    # other values in ours (a bias, a packed int4 kernel, its scale), so that each load is seen
    mha = ours.get_layer("mha")
    mha.query_dense.bias.assign(np.full((2, 4), 0.5, "float32"))
    mha.key_dense._kernel.assign(np.asarray(mha.key_dense._kernel.numpy())[::-1].copy())
    mha.value_dense.kernel_scale.assign(mha.value_dense.kernel_scale.numpy() * 2)
    ours.save_weights(ours_file)
    theirs.load_weights(ours_file)  # kerasish's file into Keras
    for a, b in zip(theirs.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=_RTOL, atol=_ATOL)
    ours.load_weights(theirs_file)  # Keras's file into kerasish
    for a, b in zip(ours.get_weights(), theirs_weights):
        np.testing.assert_array_equal(a, b)


def test_lora_on_an_int8_projection_matches_keras(keras_ref, tmp_path):
    x, y = _data("mha")
    initial = _model(keras_ref, "mha").get_weights()
    models = []
    for lib in (keras_ref, kerasish):
        model = _quantized(lib, "mha", "int8", initial)
        model.get_layer("mha").query_dense.enable_lora(2)
        models.append(model)
    theirs, ours = models
    assert _described(ours) == _described(theirs)
    ours.set_weights(theirs.get_weights())  # (the lora_kernel_a draws differ)
    for model in models:
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b, w in zip(ours.get_weights(), theirs.get_weights(), theirs.weights):
        np.testing.assert_allclose(a, b, rtol=_RTOL, atol=_ATOL, err_msg=w.path)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=_RTOL, atol=_ATOL)
    # the file holds the LoRA update merged and requantized (Keras's format): a plain int8 model loads it
    path = str(tmp_path / "lora.weights.h5")
    ours.save_weights(path)
    plain = _quantized(keras_ref, "mha", "int8")
    plain.load_weights(path)
    np.testing.assert_allclose(plain.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=0.05, atol=0.02)


def test_lora_on_a_float_projection_matches_keras(keras_ref):
    x, _ = _data("mha")
    initial = _model(keras_ref, "mha").get_weights()
    models = []
    for lib in (keras_ref, kerasish):
        model = _model(lib, "mha")
        model.set_weights(initial)
        model.get_layer("mha").key_dense.enable_lora(2)
        models.append(model)
    theirs, ours = models
    assert _described(ours) == _described(theirs)
    weights = theirs.get_weights()
    b = [w.path for w in theirs.weights].index("mha/key/lora_kernel_b")
    weights[b] = np.random.default_rng(1).normal(size=weights[b].shape).astype("float32")  # a non-zero update
    for model in models:
        model.set_weights(weights)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=_RTOL, atol=_ATOL)


def _error(call):
    try:
        call()
    except Exception as e:  # noqa: BLE001 (the type and message are compared)
        return type(e), str(e)
    return None


def _errors(lib):
    model = _quantized(lib, "mha", "int8")
    mha = model.get_layer("mha")
    unbuilt = lib.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="fresh")
    fresh = _model(lib, "mha")
    float8 = _quantized(lib, "mha", "float8")
    float8.get_layer("mha").query_dense.enable_lora(2)
    x, _ = _data("mha")
    return [
        _error(lambda: mha.query_dense.quantize("int8")),  # twice
        _error(lambda: mha.value_dense.quantize("int4")),
        _error(lambda: model.get_layer("dense").quantize("int8")),
        _error(lambda: mha.key_dense.quantize("int2")),  # unsupported mode
        _error(lambda: fresh.quantize("int2")),
        _error(lambda: unbuilt.quantize("int8")),  # unbuilt
        _error(lambda: mha.quantize("int4")),  # the attention layer itself
        _error(lambda: float8(x)),  # float8 with LoRA
    ]


def test_errors_equal_keras(keras_ref):
    theirs, ours = _errors(keras_ref), _errors(kerasish)
    assert all(e is not None for e in theirs)
    for (our_type, our_message), (their_type, their_message) in zip(ours, theirs):
        assert our_type is their_type
        # (Keras wraps an error raised in `call` in "Exception encountered when calling ...")
        assert our_message == their_message or our_message in their_message
    assert theirs[0][0] is ValueError and "already quantized" in theirs[0][1]
