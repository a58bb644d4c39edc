"""Quantized dtype policies and DTypePolicyMap vs real Keras 3."""

import pytest

import kerasish
from kerasish import dtype_policies as dp

NAMES = ["int8_from_float32", "int8_from_mixed_bfloat16", "int4_from_float32", "int4/128_from_bfloat16",
         "int4/-1_from_float32", "float8_from_mixed_float16", "float8_from_float32"]


@pytest.mark.parametrize("name", NAMES)
def test_quantized_policies_match_keras(keras_ref, name):
    ref, ours = keras_ref.dtype_policies.get(name), dp.get(name)
    assert type(ours).__name__ == type(ref).__name__
    assert (ours.name, ours.compute_dtype, ours.variable_dtype, ours.quantization_mode) == (
        ref.name, ref.compute_dtype, ref.variable_dtype, ref.quantization_mode)
    assert ours.get_config() == ref.get_config()
    assert dp.serialize(ours) == keras_ref.dtype_policies.serialize(ref)
    assert repr(ours) == repr(ref)
    back = dp.deserialize(keras_ref.dtype_policies.serialize(ref))
    assert back == ours and back.name == name
    assert keras_ref.dtype_policies.deserialize(dp.serialize(ours)) == ref
    assert ours != dp.get("float32") and (ours == dp.get(name))


def test_policy_attributes_and_errors_match_keras(keras_ref):
    for lib in (keras_ref, kerasish):
        d = lib.dtype_policies
        assert d.QuantizedFloat8DTypePolicy("float8", "float32", amax_history_length=16).amax_history_length == 16
        assert d.Int4DTypePolicy("int4/64", "float32").block_size == 64
        assert d.DTypePolicy("float32").quantization_mode is None
        with pytest.raises(ValueError, match="Invalid quantization mode"):
            d.QuantizedDTypePolicy("int2", "float32")
        with pytest.raises(ValueError, match="doesn't work well with compute_dtype='float16'"):
            d.QuantizedDTypePolicy("int8", "float16")
        with pytest.raises(TypeError, match="amax_history_length"):
            d.QuantizedFloat8DTypePolicy("float8", "float32", amax_history_length=1.5)
        with pytest.raises(ValueError, match="Expected format 'int4/<block_size>'"):
            d.Int4DTypePolicy("int4", "float32")
        with pytest.raises(ValueError, match="<block_size> must be an integer"):
            d.Int4DTypePolicy("int4/x", "float32")
        with pytest.raises(ValueError, match="Invalid block_size in mode"):
            d.Int4DTypePolicy("int4/0", "float32")
        with pytest.raises(ValueError, match="valid pair"):
            d.get("int8_float32")
    assert dp.QuantizedDTypePolicy("int8").name == "int8_from_float32"  # the global policy is the source


def test_dtype_policy_map_matches_keras(keras_ref):
    outcomes = []
    for lib in (keras_ref, kerasish):
        d = lib.dtype_policies
        m = d.DTypePolicyMap(default_policy="mixed_bfloat16")
        m["encoder/dense"] = "int8_from_mixed_bfloat16"
        m["decoder/.*"] = "float16"
        record = [m.name, m.compute_dtype, m.variable_dtype, m.quantization_mode, len(m), list(m),
                  "encoder/dense" in m, "decoder/x" in m, m["encoder/dense"].name, m["decoder/layer_3"].name,
                  m["other"].name]
        with pytest.raises(ValueError, match="already exist in the DTypePolicyMap"):
            m["encoder/dense"] = "float32"
        m["deco.*"] = "float32"
        with pytest.raises(ValueError, match="matches multiple dtype policy"):
            m["decoder/layer_3"]  # noqa: B018
        del m["deco.*"]
        with pytest.raises(ValueError, match="Cannot interpret the assigned value"):
            m["x"] = 3
        with pytest.raises(ValueError, match="cannot be a `DTypePolicyMap`"):
            d.DTypePolicyMap(default_policy=m)
        with pytest.raises(TypeError, match="must be a dict"):
            d.DTypePolicyMap(policy_map=[1])
        record.append(d.serialize(m))
        outcomes.append(record)
    assert outcomes[1] == outcomes[0]
    ours = dp.deserialize(outcomes[0][-1])
    assert isinstance(ours, dp.DTypePolicyMap) and ours["encoder/dense"].name == "int8_from_mixed_bfloat16"
    ref = keras_ref.dtype_policies.deserialize(dp.serialize(ours))
    assert ref["decoder/a"].name == "float16"


def test_map_without_default_serializes_like_keras(keras_ref):
    configs = []
    for lib in (keras_ref, kerasish):
        m = lib.dtype_policies.DTypePolicyMap()
        m["a"] = "int8_from_float32"
        m["b"] = "bfloat16"
        configs.append(lib.dtype_policies.serialize(m))
    assert configs[1] == configs[0]
    back = dp.deserialize(configs[0])
    assert back["a"].quantization_mode == "int8" and back["a"].name == "int8_from_float32"


def test_global_quantized_policy_builds_quantized_layers_like_keras(keras_ref):
    built = []
    for lib in (keras_ref, kerasish):
        lib.config.set_dtype_policy("int8_from_float32")
        try:
            dense, embedding = lib.layers.Dense(3), lib.layers.Embedding(5, 3)
            dense.build((None, 4))
            embedding.build()
            built.append([(w.name, str(w.dtype).replace("torch.", "")) for w in dense.weights + embedding.weights]
                         + [dense.dtype_policy.name, dense.quantization_mode])
        finally:
            lib.config.set_dtype_policy("float32")
    assert built[1] == built[0]
    assert built[0][-2:] == ["int8_from_float32", "int8"]


def test_gptq_and_awq_policies_match_keras(keras_ref):
    for name in ("gptq/4/128_from_float32", "gptq/3/-1_from_mixed_bfloat16", "awq/4/64_from_float32"):
        ref, ours = keras_ref.dtype_policies.get(name), dp.get(name)
        assert type(ours).__name__ == type(ref).__name__
        assert dp.serialize(ours) == keras_ref.dtype_policies.serialize(ref)
        assert (ours.weight_bits, ours.group_size, ours.quantization_mode) == (
            ref.weight_bits, ref.group_size, ref.quantization_mode)
        assert dp.deserialize(keras_ref.dtype_policies.serialize(ref)) == ours
    for lib in (keras_ref, kerasish):
        with pytest.raises(ValueError, match="AWQ only supports 4-bit"):
            lib.dtype_policies.get("awq/8/128_from_float32")
        with pytest.raises(ValueError, match="Supported values are 2, 3, 4, and 8"):
            lib.dtype_policies.get("gptq/5/128_from_float32")


def test_layer_with_a_policy_map_takes_its_entry():
    import numpy as np
    import torch

    policy_map = dp.DTypePolicyMap(default_policy="float32", policy_map={"proj": "int8_from_float32"})
    mapped = kerasish.layers.Dense(3, name="proj", dtype=policy_map)
    mapped.build((None, 4))
    other = kerasish.layers.Dense(3, name="other", dtype=policy_map)
    other.build((None, 4))
    assert mapped.quantization_mode == "int8" and str(mapped.kernel.dtype) == "torch.int8"
    assert other.quantization_mode is None and other.kernel.dtype == torch.float32
    # the same values as a float layer quantized in place (the Keras-checked path)
    reference = kerasish.layers.Dense(3)
    reference.build((None, 4))
    reference.quantize("int8")
    mapped.set_weights(reference.get_weights())
    x = torch.tensor(np.random.default_rng(0).standard_normal((2, 4)).astype("float32"))
    torch.testing.assert_close(mapped(x), reference(x), rtol=0, atol=0)
    clone = kerasish.layers.Dense.from_config(mapped.get_config())
    clone.build((None, 4))
    assert isinstance(clone.dtype_policy, dp.DTypePolicyMap) and clone.quantization_mode == "int8"
