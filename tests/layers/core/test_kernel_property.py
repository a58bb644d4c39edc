"""`Dense.kernel`, `EinsumDense.kernel`, `Embedding.embeddings` read as Keras
3.15 computes them (plain, LoRA, int8, int4, float8, with LoRA on top), the
stored variable staying `_kernel` / `_embeddings` under its state_dict key.
Every expected value comes from real Keras (torch backend) holding the same
stored weights."""

import numpy as np
import pytest
import torch

import kerasish

# (kind, mode, lora): every mode Keras quantizes the layer to, with and without LoRA
CASES = [
    (kind, mode, lora)
    for kind, modes in (("dense", (None, "int8", "int4", "float8")), ("einsum", (None, "int8", "int4", "float8")),
                        ("embedding", (None, "int8", "int4")), ("reversible", (None, "int8", "int4")))
    for mode in modes
    for lora in (False, True)
]
ATTR = {"dense": "kernel", "einsum": "kernel", "embedding": "embeddings", "reversible": "embeddings"}


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _layer(lib, kind, **kwargs):
    if kind == "dense":
        layer = lib.layers.Dense(5, **kwargs)  # odd units: int4 packing pads a column
        layer.build((None, 6))
    elif kind == "einsum":
        layer = lib.layers.EinsumDense("abc,cde->abde", output_shape=(None, 3, 5), bias_axes="de", **kwargs)
        layer.build((None, 2, 6))
    elif kind == "embedding":
        layer = lib.layers.Embedding(7, 5, **kwargs)
        layer.build()
    else:
        layer = lib.layers.ReversibleEmbedding(7, 5, tie_weights=False, **kwargs)
        layer.build()
    return layer


def _pair(keras, kind, mode, lora, seed=0, **kwargs):
    """Keras's layer and ours with the same float weights, quantized the same
    way, with the same (non-zero) LoRA factors."""
    rng = np.random.default_rng(seed)
    ref, ours = _layer(keras, kind, **kwargs), _layer(kerasish, kind, **kwargs)
    weights = [rng.standard_normal(tuple(w.shape)).astype("float32") * 0.5 for w in ref.get_weights()]
    ref.set_weights(weights)
    ours.set_weights(weights)
    if mode:
        ref.quantize(mode)
        ours.quantize(mode)
    if lora:
        ref.enable_lora(2, lora_alpha=3)
        ours.enable_lora(2, lora_alpha=3)
        for name in ("a", "b"):
            var = getattr(ref, f"lora_{ATTR[kind]}_{name}")
            value = rng.standard_normal(tuple(var.shape)).astype("float32")
            var.assign(value)
            getattr(ours, f"lora_{ATTR[kind]}_{name}").assign(value)
    for r, o in zip(ref.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(_np(o), r)  # the same stored variables
    return ref, ours


@pytest.mark.parametrize("kind,mode,lora", CASES, ids=lambda v: str(v))
def test_computed_weight_matches_keras(keras_ref, kind, mode, lora):
    ref, ours = _pair(keras_ref, kind, mode, lora)
    attr = ATTR[kind]
    want, got = getattr(ref, attr), getattr(ours, attr)
    assert tuple(got.shape) == tuple(want.shape)
    assert str(got.dtype).replace("torch.", "") == keras_ref.backend.standardize_dtype(want.dtype)
    np.testing.assert_allclose(_np(got), keras_ref.ops.convert_to_numpy(want), rtol=1e-6, atol=1e-6)
    # the variable itself exactly where Keras returns its variable
    is_variable = want is getattr(ref, "_" + attr)
    assert (got is getattr(ours, "_" + attr)) == is_variable
    assert is_variable == (not lora and mode != "int4")
    # the stored variable: Keras's `_kernel`, registered under the unchanged state_dict key
    stored = getattr(ours, "_" + attr)
    np.testing.assert_array_equal(_np(stored), keras_ref.ops.convert_to_numpy(getattr(ref, "_" + attr)))
    assert ours.state_dict(keep_vars=True)[attr] is stored
    assert [w.name for w in ours.weights] == [w.name for w in ref.weights]
    assert [w.path.split("/", 1)[1] for w in ours.weights] == [w.path.split("/", 1)[1] for w in ref.weights]
    assert sorted(ours.state_dict()) == sorted(w.name for w in ref.weights)
    if kind == "reversible":  # a plain attribute in Keras: the stored (packed for int4) variable
        np.testing.assert_array_equal(_np(ours.reverse_embeddings),
                                      keras_ref.ops.convert_to_numpy(ref.reverse_embeddings))


@pytest.mark.parametrize("kind", ["dense", "einsum", "embedding"])
def test_lora_kernel_under_mixed_precision_matches_keras(keras_ref, kind):
    ref, ours = _pair(keras_ref, kind, None, True, dtype="mixed_bfloat16")
    attr = ATTR[kind]
    want, got = getattr(ref, attr), getattr(ours, attr)
    assert str(got.dtype).replace("torch.", "") == keras_ref.backend.standardize_dtype(want.dtype)
    np.testing.assert_allclose(_np(got.float()), keras_ref.ops.convert_to_numpy(keras_ref.ops.cast(want, "float32")),
                               rtol=1e-2, atol=1e-2)
    assert getattr(ours, "_" + attr).dtype == torch.float32  # outside a call: the stored float32 variable


def test_plain_kernel_is_the_variable_optimizer_and_assign_keep_working():
    layer = kerasish.layers.Dense(3)
    layer.build((None, 4))
    kernel = layer.kernel
    assert kernel is layer._kernel is layer._parameters["kernel"]
    kernel.assign(torch.ones(4, 3))
    np.testing.assert_array_equal(_np(layer._kernel), np.ones((4, 3), "float32"))
    opt = torch.optim.SGD([layer.kernel, layer.bias], lr=0.5)
    layer(torch.ones(2, 4)).sum().backward()
    opt.step()
    np.testing.assert_allclose(_np(layer.kernel), np.ones((4, 3)) - 0.5 * 2.0, rtol=0, atol=1e-6)


def test_lora_fit_trains_only_the_factors_and_kernel_reads_merged(keras_ref):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 6)).astype("float32"), rng.standard_normal((8, 5)).astype("float32")
    weights = [rng.standard_normal((6, 5)).astype("float32"), np.zeros(5, "float32")]
    models = []
    for lib in (keras_ref, kerasish):
        model = lib.Sequential([lib.Input((6,)), lib.layers.Dense(5)])
        model.set_weights(weights)
        model.layers[0].enable_lora(2)
        models.append(model)
    ref, ours = models
    ours.layers[0].lora_kernel_a.assign(_np_value(keras_ref, ref.layers[0].lora_kernel_a))
    assert [w.name for w in ours.trainable_weights] == [w.name for w in ref.trainable_weights]
    base = _np(ours.layers[0]._kernel).copy()
    for model in models:
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    dense = ours.layers[0]
    np.testing.assert_array_equal(_np(dense._kernel), base)  # frozen
    assert np.abs(_np(dense.lora_kernel_b)).max() > 0  # trained (it starts at zeros)
    delta = _np(dense.lora_kernel_a) @ _np(dense.lora_kernel_b) * (dense.lora_alpha / dense.lora_rank)
    np.testing.assert_allclose(_np(dense.kernel), base + delta, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(dense.kernel), keras_ref.ops.convert_to_numpy(ref.layers[0].kernel),
                               rtol=1e-5, atol=1e-5)


def _np_value(keras, variable):
    return keras.ops.convert_to_numpy(variable)


@pytest.mark.parametrize("kind,mode", [("dense", None), ("dense", "int4"), ("einsum", "int8"), ("embedding", "int8")])
def test_weights_file_round_trip_matches_keras(keras_ref, tmp_path, kind, mode):
    """A LoRA layer's file holds the merged (requantized) weights, as Keras's;
    loaded into a fresh LoRA layer, `kernel` reads what Keras's does."""
    ref, ours = _pair(keras_ref, kind, mode, True)
    attr = ATTR[kind]
    def model(lib, layer):
        shape, dtype = {"dense": ((6,), "float32"), "einsum": ((2, 6), "float32")}.get(kind, ((3,), "int32"))
        return lib.Sequential([lib.Input(shape, dtype=dtype), layer])

    model(keras_ref, ref).save_weights(tmp_path / "ref.weights.h5")
    model(kerasish, ours).save_weights(tmp_path / "ours.weights.h5")
    ref2, ours2 = _pair(keras_ref, kind, mode, True, seed=1)
    model(keras_ref, ref2).load_weights(tmp_path / "ours.weights.h5")  # our file, into Keras
    model(kerasish, ours2).load_weights(tmp_path / "ref.weights.h5")  # Keras's file, into ours
    np.testing.assert_allclose(_np(getattr(ours2, attr)), keras_ref.ops.convert_to_numpy(getattr(ref2, attr)),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(_np(getattr(ours2, "_" + attr)),
                                  keras_ref.ops.convert_to_numpy(getattr(ref2, "_" + attr)))


def test_state_dict_round_trip_of_a_lora_int4_layer():
    ours = _layer(kerasish, "dense")
    ours.quantize("int4")
    ours.enable_lora(2)
    with torch.no_grad():
        ours.lora_kernel_b.normal_()
    twin = _layer(kerasish, "dense")
    twin.quantize("int4")
    twin.enable_lora(2)
    twin.load_state_dict(ours.state_dict())
    torch.testing.assert_close(twin.kernel, ours.kernel, rtol=0, atol=0)
    twin.load_state_dict(ours.state_dict(), assign=True)  # torch assigns `module.kernel`
    assert twin._kernel.dtype == torch.int8 and tuple(twin._kernel.shape) == (6, 3)
    torch.testing.assert_close(twin.kernel, ours.kernel, rtol=0, atol=0)


def test_assigning_kernel_stores_the_variable():
    """Keras's property has no setter; kerasish stores the variable (as
    `_kernel = v` does), because torch assigns `module.kernel` itself."""
    layer = _layer(kerasish, "dense")
    new = kerasish.Variable(np.full((6, 5), 2.0, "float32"), name="kernel")
    layer.kernel = new
    assert layer._kernel is new and layer.kernel is new
    assert layer.state_dict(keep_vars=True)["kernel"] is new
    np.testing.assert_array_equal(_np(layer(torch.ones(1, 6))), np.full((1, 5), 12.0, "float32"))


def test_tied_reverse_call_with_lora_matches_keras(keras_ref):
    """Tied `ReversibleEmbedding(reverse=True)` multiplies by Keras's
    `embeddings`, LoRA update included."""
    ref = keras_ref.layers.ReversibleEmbedding(7, 5)
    ours = kerasish.layers.ReversibleEmbedding(7, 5)
    ref.build()
    ours.build()
    ours.set_weights(ref.get_weights())
    ref.enable_lora(2)
    ours.enable_lora(2)
    rng = np.random.default_rng(4)
    for name in ("a", "b"):
        value = rng.standard_normal(tuple(getattr(ref, f"lora_embeddings_{name}").shape)).astype("float32")
        getattr(ref, f"lora_embeddings_{name}").assign(value)
        getattr(ours, f"lora_embeddings_{name}").assign(value)
    x = rng.standard_normal((3, 5)).astype("float32")
    np.testing.assert_allclose(_np(ours(torch.tensor(x), reverse=True)),
                               keras_ref.ops.convert_to_numpy(ref(keras_ref.ops.convert_to_tensor(x), reverse=True)),
                               rtol=1e-5, atol=1e-5)


def test_torch_pruning_still_reaches_the_kernel():
    from torch.nn.utils import prune

    layer = _layer(kerasish, "dense")
    prune.l1_unstructured(layer, "kernel", amount=0.5)
    assert layer.kernel is layer.__dict__["kernel"]  # torch's masked tensor
    x = torch.randn(2, 6)
    torch.testing.assert_close(layer(x), x @ layer.kernel + layer.bias)
    prune.remove(layer, "kernel")
    assert sorted(layer.state_dict()) == ["bias", "kernel"]
    assert (layer._kernel == 0).sum() == 15


def test_enable_lora_on_a_gptq_dense_is_refused_like_keras(keras_ref):
    class Tokenizer:
        def tokenize(self, text):
            return np.array([ord(c) % 50 for c in text], dtype="int32")

    errors = []
    for lib in (keras_ref, kerasish):
        layer = lib.layers.Dense(4)
        layer.build((None, 8))
        layer.quantize("gptq", config=lib.quantizers.GPTQConfig(["some calibration text " * 3], Tokenizer()))
        with pytest.raises(NotImplementedError) as info:
            layer.enable_lora(2)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
