"""GPTQ vs Keras 3.15 (torch backend).

Keras 3.15's own `model.quantize("gptq")` never sees calibration data on the
torch backend: its Hessian hooks replace `layer.call`, which Keras's torch
layers do not dispatch through, so every Hessian stays zero and the result is
plain rounding (checked below, so this test notices when Keras fixes it).
The references here are therefore Keras's GPTQ pieces driven by hand with the
same calibration inputs (`get_dataloader`, `GPTQ.update_hessian_with_batch`,
`GPTQ.quantize_and_correct_layer`), and Keras's loading of the files.
"""

import warnings

import numpy as np
import pytest
import torch

import kerasish
from tests.quantizers.calibration_common import DATA
from tests.quantizers.calibration_common import Tokenizer
from tests.quantizers.calibration_common import assert_calibrated_model_matches_keras


SETTINGS = [
    {},
    {"weight_bits": 8, "group_size": -1},
    {"weight_bits": 4, "group_size": 4, "symmetric": True},
    {"weight_bits": 3, "group_size": 5, "activation_order": True},
    {"weight_bits": 2, "per_channel": False, "group_size": -1},
]


def _model(lib, seed=0):
    rng = np.random.default_rng(seed)
    emb = lib.layers.Embedding(50, 12, name="emb")
    block1 = lib.Sequential([lib.layers.Dense(20, activation="relu", name="b1a"), lib.layers.Dense(12, name="b1b")],
                            name="block1")
    block2 = lib.Sequential([lib.layers.Dense(12, activation="tanh", name="b2a")], name="block2")
    head = lib.layers.Dense(50, name="head")
    inputs = lib.Input((None,), dtype="int32")
    model = lib.Model(inputs, head(block2(block1(emb(inputs)))))
    model.set_weights([rng.standard_normal(tuple(w.shape)).astype("float32") * 0.5 for w in model.get_weights()])
    return model, {"pre_block_layers": [emb], "sequential_blocks": [block1, block2]}


def _keras_reference(keras, settings):
    """Keras's GPTQ with the calibration inputs fed by hand (what its
    `apply_gptq_layerwise` means to do)."""
    from keras.src.quantizers import gptq_core
    from keras.src.quantizers.gptq import GPTQ

    model, structure = _model(keras)
    # (no structure in the config: Keras could not save a config holding layers)
    config = keras.quantizers.GPTQConfig(DATA, Tokenizer(), num_samples=6, sequence_length=10, **settings)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Dense):
            layer.quantize("gptq", config=config)
    loader = gptq_core.get_dataloader(Tokenizer(), 10, DATA, num_samples=6)
    inputs = [structure["pre_block_layers"][0](keras.ops.convert_to_tensor(b, dtype="int32")) for b in loader]
    for index, block in enumerate(structure["sequential_blocks"]):
        layers = block.layers
        objects = [GPTQ(layer, config) for layer in layers]
        for x in inputs:
            h = x
            for layer, obj in zip(layers, objects):
                obj.update_hessian_with_batch(keras.ops.reshape(h, (-1, obj.rows)))
                h = layer(h)  # (the float kernel: nothing is quantized yet)
        for obj in objects:
            obj.quantize_and_correct_layer()
        if index < len(structure["sequential_blocks"]) - 1:
            inputs = [block(x)[0][None] for x in inputs]
    return model


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()) or "default")
def test_gptq_matches_keras_gptq_driven_with_the_calibration_data(keras_ref, settings):
    ref = _keras_reference(keras_ref, settings)
    ours, structure = _model(kerasish)
    config = kerasish.quantizers.GPTQConfig(DATA, Tokenizer(), num_samples=6, sequence_length=10,
                                            quantization_layer_structure=structure, **settings)
    ours.quantize("gptq", config=config)
    assert_calibrated_model_matches_keras(ours, ref, keras_ref)


def test_keras_torch_gptq_still_ignores_its_calibration_data(keras_ref):
    """Documents the Keras 3.15 bug the reference above works around; when
    Keras fixes it, this fails and the comparison can use `model.quantize`."""
    from keras.src.quantizers import gptq

    seen = []
    original = gptq.GPTQ.quantize_and_correct_layer

    def spy(self, *args, **kwargs):
        seen.append(self.num_samples)
        return original(self, *args, **kwargs)

    model, structure = _model(keras_ref)
    gptq.GPTQ.quantize_and_correct_layer = spy
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.quantize("gptq", config=keras_ref.quantizers.GPTQConfig(
                DATA, Tokenizer(), num_samples=6, sequence_length=10, quantization_layer_structure=structure))
    finally:
        gptq.GPTQ.quantize_and_correct_layer = original
    assert seen == [0, 0, 0]


def test_kerasish_gptq_uses_its_calibration_data(monkeypatch):
    from kerasish.quantizers import gptq

    seen = []
    original = gptq.GPTQ.quantize_and_correct_layer

    def spy(self, *args, **kwargs):
        seen.append((self.layer.name, self.num_samples, bool(self.hessian.abs().sum() > 0)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(gptq.GPTQ, "quantize_and_correct_layer", spy)
    model, structure = _model(kerasish)
    model.quantize("gptq", config=kerasish.quantizers.GPTQConfig(
        DATA, Tokenizer(), num_samples=6, sequence_length=10, quantization_layer_structure=structure))
    assert seen == [("b1a", 60, True), ("b1b", 60, True), ("b2a", 60, True)]  # 6 windows x 10 tokens each
    assert "call" not in model.get_layer("block1").layers[0].__dict__  # the hooks are gone
    assert model.get_layer("head").quantization_mode == "gptq" and model.get_layer("head")._calibration_pending


@pytest.mark.parametrize("settings", [{}, {"weight_bits": 8, "group_size": -1}])
def test_gptq_files(keras_ref, tmp_path, settings):
    """kerasish writes all five GPTQ variables, which Keras 3.15 loads. Keras
    3.15 itself saves GPTQ layers without `kernel_zero` (its save skips the
    zero points), files that neither Keras nor kerasish can load: kerasish
    refuses them with a ValueError instead of guessing zero points."""
    ids = np.random.default_rng(2).integers(0, 50, (2, 7))
    ours, structure = _model(kerasish)
    config = kerasish.quantizers.GPTQConfig(DATA, Tokenizer(), num_samples=6, sequence_length=10,
                                            quantization_layer_structure=structure, **settings)
    ours.quantize("gptq", config=config, filters="^b")  # (not the head: outside the blocks it is never calibrated)
    assert ours.get_layer("head").quantization_mode is None
    config.quantization_layer_structure = None  # (a config holding layers cannot be saved, in Keras either)
    expected = np.asarray(ours.predict(ids, verbose=0))
    ours.save(tmp_path / "ours.keras")
    back = keras_ref.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(keras_ref.ops.convert_to_numpy(back.predict(ids, verbose=0)), expected,
                               rtol=1e-5, atol=1e-5)
    again = kerasish.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_array_equal(np.asarray(again.predict(ids, verbose=0)), expected)
    ref = _keras_reference(keras_ref, settings)
    ref.save(tmp_path / "ref.keras")
    with pytest.raises(ValueError, match="expected 5 variables, but received 4"):
        kerasish.saving.load_model(tmp_path / "ref.keras")


def test_gptq_dataloader_matches_keras(keras_ref):
    from keras.src.quantizers import gptq_core as keras_core

    from kerasish.quantizers import gptq_core

    for kwargs in ({}, {"strategy": "random"}, {"strategy": "linspace"}, {"eos_id": 3, "stride": 7}):
        np.testing.assert_array_equal(gptq_core.get_dataloader(Tokenizer(), 9, DATA, num_samples=5, **kwargs),
                                      keras_core.get_dataloader(Tokenizer(), 9, DATA, num_samples=5, **kwargs))
    arrays = [np.arange(30), np.arange(40, 55)]
    np.testing.assert_array_equal(gptq_core.get_dataloader(None, 8, arrays, num_samples=4),
                                  keras_core.get_dataloader(None, 8, arrays, num_samples=4))


def test_gptq_config_and_errors_match_keras(keras_ref):
    for lib in (keras_ref, kerasish):
        config = lib.quantizers.GPTQConfig(DATA, Tokenizer(), weight_bits=3, group_size=32)
        assert config.mode == "gptq" and config.dtype_policy_string() == "gptq/3/32"
        with pytest.raises(ValueError, match="Unsupported weight_bits"):
            lib.quantizers.GPTQConfig(DATA, Tokenizer(), weight_bits=5)
        with pytest.raises(ValueError, match="hessian_damping"):
            lib.quantizers.GPTQConfig(DATA, Tokenizer(), hessian_damping=2)
        model, _ = _model(lib)
        with pytest.raises(ValueError, match="valid quantization structure"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.quantize("gptq", config=lib.quantizers.GPTQConfig(DATA, Tokenizer()))
    ours = kerasish.quantizers.GPTQConfig(DATA, Tokenizer(), weight_bits=3)
    ref = keras_ref.quantizers.GPTQConfig(DATA, Tokenizer(), weight_bits=3)
    assert kerasish.quantizers.serialize(ours) == keras_ref.quantizers.serialize(ref)
    policy = kerasish.dtype_policies.get("gptq/4/64_from_float32")
    assert keras_ref.dtype_policies.serialize(keras_ref.dtype_policies.get("gptq/4/64_from_float32")) == \
        kerasish.dtype_policies.serialize(policy)
    assert (policy.weight_bits, policy.group_size, policy.quantization_mode) == (4, 64, "gptq")


def test_einsum_dense_gptq_is_refused_clearly():
    layer = kerasish.layers.EinsumDense("ab,bc->ac", (4,))
    layer.build((None, 3))
    with pytest.raises(NotImplementedError, match="GPTQ quantization of EinsumDense is not implemented"):
        layer.quantize("gptq", config=kerasish.quantizers.GPTQConfig(DATA, Tokenizer()))
    assert layer.quantization_mode is None and layer.kernel.dtype == torch.float32
