"""ReversibleEmbedding.quantize vs real Keras 3 (torch backend): both call
directions, tied and untied weights, and .keras files both ways."""

import warnings

import numpy as np
import pytest
import torch

import kerasish

CONFIGS = {
    "int8": lambda lib: None,
    "int8_weight_only": lambda lib: lib.quantizers.Int8QuantizationConfig(activation_quantizer=None),
    "int4": lambda lib: None,
    "int4_per_channel": lambda lib: lib.quantizers.Int4QuantizationConfig(block_size=-1),
    "int4_block_3": lambda lib: lib.quantizers.Int4QuantizationConfig(block_size=3),
}


@pytest.mark.parametrize("tie_weights", [True, False])
@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_quantized_reversible_embedding_matches_keras(keras_ref, case, tie_weights):
    rng = np.random.default_rng(0)
    ids, hidden = rng.integers(0, 10, (4, 5)), rng.standard_normal((4, 5, 7)).astype("float32")
    results, weights = [], None
    for lib in (keras_ref, kerasish):
        layer = lib.layers.ReversibleEmbedding(10, 7, tie_weights=tie_weights, logit_soft_cap=5.0)
        layer.build()
        if weights is None:
            weights = [rng.standard_normal(tuple(w.shape)).astype("float32") for w in layer.get_weights()]
        layer.set_weights(weights)
        layer.quantize(case.split("_")[0], config=CONFIGS[case](lib))
        convert = (lambda t: keras_ref.ops.convert_to_numpy(t)) if lib is keras_ref else (lambda t: t.detach().numpy())
        forward = layer(ids if lib is keras_ref else torch.tensor(ids))
        reverse = layer(hidden if lib is keras_ref else torch.tensor(hidden), reverse=True)
        results.append((layer.dtype_policy.name,
                        [(w.name, str(w.dtype).replace("torch.", ""), tuple(w.shape)) for w in layer.weights],
                        [np.asarray(w) for w in layer.get_weights()], convert(forward), convert(reverse)))
    ref, ours = results
    assert ours[:2] == ref[:2]
    for r, o in zip(ref[2], ours[2]):
        np.testing.assert_array_equal(o, r)
    np.testing.assert_array_equal(ours[3], ref[3])
    np.testing.assert_array_equal(ours[4], ref[4])


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantized_reversible_embedding_files_move_both_ways(keras_ref, tmp_path, mode):
    rng = np.random.default_rng(1)
    hidden = rng.standard_normal((2, 3, 7)).astype("float32")
    ref = keras_ref.Sequential([keras_ref.Input((3,), dtype="int32"),
                                keras_ref.layers.ReversibleEmbedding(10, 7, tie_weights=False)])
    layer = ref.layers[0]
    layer.set_weights([rng.standard_normal(tuple(w.shape)).astype("float32") for w in layer.get_weights()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.quantize(mode)
    expected = keras_ref.ops.convert_to_numpy(layer(hidden, reverse=True))
    ref.save(tmp_path / "ref.keras")
    ours = kerasish.saving.load_model(tmp_path / "ref.keras")
    np.testing.assert_array_equal(ours.layers[0](torch.tensor(hidden), reverse=True).detach().numpy(), expected)
    ours.save(tmp_path / "ours.keras")
    back = keras_ref.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_array_equal(keras_ref.ops.convert_to_numpy(back.layers[0](hidden, reverse=True)), expected)
