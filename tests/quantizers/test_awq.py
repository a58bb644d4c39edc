"""AWQ vs Keras 3.15 (torch backend), with Keras's AWQ pieces driven by hand
with the same calibration inputs (Keras's own torch `model.quantize("awq")`
never sees them, as for GPTQ: see test_gptq.py)."""

import warnings

import numpy as np
import pytest

import kerasish
from tests.quantizers.calibration_common import DATA
from tests.quantizers.calibration_common import Tokenizer
from tests.quantizers.calibration_common import assert_calibrated_model_matches_keras


SETTINGS = [{}, {"group_size": -1}, {"group_size": 4, "num_grid_points": 7}]


def _model(lib, seed=0):
    rng = np.random.default_rng(seed)
    emb = lib.layers.Embedding(50, 12, name="emb")
    block1 = lib.Sequential([lib.layers.Dense(20, activation="relu", name="b1a"), lib.layers.Dense(12, name="b1b")],
                            name="block1")
    block2 = lib.Sequential([lib.layers.Dense(9, activation="tanh", name="b2a")], name="block2")
    inputs = lib.Input((None,), dtype="int32")
    model = lib.Model(inputs, block2(block1(emb(inputs))))
    model.set_weights([rng.standard_normal(tuple(w.shape)).astype("float32") * 0.5 for w in model.get_weights()])
    return model, {"pre_block_layers": [emb], "sequential_blocks": [block1, block2]}


def _keras_reference(keras, settings):
    from keras.src.quantizers import gptq_core
    from keras.src.quantizers.awq import AWQ

    model, structure = _model(keras)
    config = keras.quantizers.AWQConfig(DATA, Tokenizer(), num_samples=6, sequence_length=10, **settings)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Dense):
            layer.quantize("awq", config=config)
    loader = gptq_core.get_dataloader(Tokenizer(), 10, DATA, num_samples=6)
    inputs = [structure["pre_block_layers"][0](keras.ops.convert_to_tensor(b, dtype="int32")) for b in loader]
    for index, block in enumerate(structure["sequential_blocks"]):
        objects = [AWQ(layer, config) for layer in block.layers]
        for x in inputs:
            h = x
            for layer, obj in zip(block.layers, objects):
                obj.update_activation_magnitudes(keras.ops.reshape(h, (-1, obj.rows)))
                h = layer(h)
        for obj in objects:
            obj.quantize_layer()
        if index < len(structure["sequential_blocks"]) - 1:
            inputs = [block(x)[0][None] for x in inputs]
    return model


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()) or "default")
def test_awq_matches_keras_awq_driven_with_the_calibration_data(keras_ref, settings):
    ref = _keras_reference(keras_ref, settings)
    ours, structure = _model(kerasish)
    config = kerasish.quantizers.AWQConfig(DATA, Tokenizer(), num_samples=6, sequence_length=10,
                                           quantization_layer_structure=structure, **settings)
    ours.quantize("awq", config=config)
    assert_calibrated_model_matches_keras(ours, ref, keras_ref)


def test_keras_torch_awq_still_ignores_its_calibration_data(keras_ref):
    from keras.src.quantizers import awq

    seen = []
    original = awq.AWQ.quantize_layer

    def spy(self, *args, **kwargs):
        seen.append(self.num_samples)
        return original(self, *args, **kwargs)

    model, structure = _model(keras_ref)
    awq.AWQ.quantize_layer = spy
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.quantize("awq", config=keras_ref.quantizers.AWQConfig(
                DATA, Tokenizer(), num_samples=6, sequence_length=10, quantization_layer_structure=structure))
    finally:
        awq.AWQ.quantize_layer = original
    assert seen == [0, 0, 0]


def test_awq_files_are_loaded_by_keras(keras_ref, tmp_path):
    ids = np.random.default_rng(2).integers(0, 50, (2, 7))
    ours, structure = _model(kerasish)
    config = kerasish.quantizers.AWQConfig(DATA, Tokenizer(), num_samples=6, sequence_length=10,
                                           quantization_layer_structure=structure, group_size=4)
    ours.quantize("awq", config=config)
    config.quantization_layer_structure = None
    expected = np.asarray(ours.predict(ids, verbose=0))
    ours.save(tmp_path / "ours.keras")
    back = keras_ref.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(keras_ref.ops.convert_to_numpy(back.predict(ids, verbose=0)), expected,
                               rtol=1e-5, atol=1e-5)
    again = kerasish.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_array_equal(np.asarray(again.predict(ids, verbose=0)), expected)


def test_awq_config_matches_keras(keras_ref):
    for lib in (keras_ref, kerasish):
        config = lib.quantizers.AWQConfig(DATA, Tokenizer(), group_size=32)
        assert config.mode == "awq" and config.dtype_policy_string() == "awq/4/32"
        with pytest.raises(ValueError, match="AWQ only supports 4-bit"):
            lib.quantizers.AWQConfig(DATA, Tokenizer(), weight_bits=8)
        with pytest.raises(ValueError, match="num_grid_points"):
            lib.quantizers.AWQConfig(DATA, Tokenizer(), num_grid_points=0)
    assert kerasish.quantizers.serialize(kerasish.quantizers.AWQConfig(DATA, Tokenizer())) == \
        keras_ref.quantizers.serialize(keras_ref.quantizers.AWQConfig(DATA, Tokenizer()))
    layer = kerasish.layers.EinsumDense("ab,bc->ac", (4,))
    layer.build((None, 3))
    with pytest.raises(NotImplementedError, match="AWQ quantization of EinsumDense is not implemented"):
        layer.quantize("awq", config=kerasish.quantizers.AWQConfig(DATA, Tokenizer()))
