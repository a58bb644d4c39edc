"""Quantized layers stay torch citizens: state_dict round trips, deepcopy,
pickling, and torch.compile(fullgraph=True) give the eager (Keras-checked)
outputs."""

import copy
import pickle

import pytest
import torch

import kerasish


def _make(kind, mode, seed=0):
    torch.manual_seed(seed)
    if kind == "Dense":
        layer, x = kerasish.layers.Dense(8, activation="relu"), torch.randn(4, 16)
        layer.build((None, 16))
    elif kind == "EinsumDense":
        layer, x = kerasish.layers.EinsumDense("abc,cd->abd", (3, 8), bias_axes="d"), torch.randn(4, 3, 16)
        layer.build((None, 3, 16))
    else:
        layer, x = kerasish.layers.Embedding(10, 8), torch.randint(0, 10, (4, 3))
        layer.build()
    layer.set_weights([torch.randn(tuple(w.shape)).numpy() for w in layer.get_weights()])
    layer.quantize(mode)
    return layer, x


CASES = [("Dense", "int8"), ("Dense", "int4"), ("Dense", "float8"), ("EinsumDense", "int8"), ("EinsumDense", "int4"),
         ("Embedding", "int8"), ("Embedding", "int4")]


@pytest.mark.parametrize(("kind", "mode"), CASES)
def test_state_dict_deepcopy_and_pickle(kind, mode):
    layer, x = _make(kind, mode)
    expected = layer(x)
    fresh, _ = _make(kind, mode, seed=1)
    assert not torch.equal(fresh(x), expected)
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fresh(x), expected, rtol=0, atol=0)
    assert {k: v.dtype for k, v in fresh.state_dict().items()} == {k: v.dtype for k, v in layer.state_dict().items()}
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        torch.testing.assert_close(clone(x), expected, rtol=0, atol=0)
        assert clone.dtype_policy == layer.dtype_policy


@pytest.mark.parametrize(("kind", "mode"), [("Dense", "int8"), ("EinsumDense", "int4"), ("Embedding", "int4")])
def test_compile_fullgraph(kind, mode):
    torch._dynamo.reset()
    layer, x = _make(kind, mode)
    compiled = torch.compile(layer, fullgraph=True)
    torch.testing.assert_close(compiled(x), layer(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["int8", "int4", "float8"])
def test_dtype_moves_keep_the_quantization(mode):
    layer, x = _make("Dense", mode)
    layer.to(torch.bfloat16)
    assert layer.dtype_policy.name.endswith("_from_bfloat16")
    assert layer.quantization_mode == mode
    expected = layer(x)
    assert expected.dtype == torch.bfloat16
    layer.to(torch.float32)
    assert layer.dtype_policy.name.endswith("_from_float32") and layer(x).dtype == torch.float32
    layer.to("cpu")
    assert layer.dtype_policy.name.endswith("_from_float32")


def test_int8_half_is_refused_before_any_cast():
    layer, _ = _make("Dense", "int8")
    with pytest.raises(ValueError, match="doesn't work well with compute_dtype='float16'"):
        layer.half()
    assert layer.kernel_scale.dtype == torch.float32 and layer.bias.dtype == torch.float32
