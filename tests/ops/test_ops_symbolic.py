"""kerasish.ops on KerasTensors: graph nodes with Keras's output shape and
dtype, saved in configs as Keras saves its operations, so functional models
using ops load in kerasish and in real Keras (both ways)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import kerasish
import kerasish.ops as kops

SPECS = [
    ("sum", ((None, 4, 3), "float32"), {"axis": -1, "keepdims": True}),
    ("mean", ((None, 4, 3), "int32"), {"axis": 1}),
    ("reshape", ((None, 4, 3), "float32"), {"newshape": (-1, 12)}),
    ("transpose", ((None, 4, 3), "float32"), {"axes": (0, 2, 1)}),
    ("expand_dims", ((None, 4), "float32"), {"axis": 1}),
    ("argmax", ((None, 4, 3), "float32"), {"axis": -1}),
    ("one_hot", ((None, 4), "int32"), {"num_classes": 5}),
    ("sqrt", ((None, 4), "int32"), {}),
    ("softmax", ((None, 4, 3), "float32"), {"axis": 1}),
    ("cast", ((None, 4), "float32"), {"dtype": "int8"}),
    ("top_k", ((None, 6), "float32"), {"k": 2}),  # dtype checked below
    ("split", ((None, 6), "float32"), {"indices_or_sections": 3, "axis": 1}),
]


@pytest.mark.parametrize("name,spec,kwargs", SPECS)
def test_symbolic_shape_and_dtype_match_keras(keras_ref, name, spec, kwargs):
    shape, dtype = spec
    ours = getattr(kops, name)(kerasish.Input(shape[1:], dtype=dtype), **kwargs)
    theirs = getattr(keras_ref.ops, name)(keras_ref.Input(shape[1:], dtype=dtype), **kwargs)
    ours = ours if isinstance(ours, (list, tuple)) else [ours]
    theirs = theirs if isinstance(theirs, (list, tuple)) else [theirs]
    if name == "top_k":
        # Keras's symbolic TopK says int32 indices while its torch eager op
        # returns int64; kerasish's symbolic dtype follows its eager op
        eager = kops.top_k(torch.zeros(2, 6), 2)[1]
        assert ours[1].dtype == kerasish.backend.standardize_dtype(eager.dtype) == "int64"
        ours, theirs = ours[:1], theirs[:1]
    assert [(t.shape, t.dtype) for t in ours] == [(tuple(t.shape), t.dtype) for t in theirs]


def test_binary_op_with_scalar_and_two_tensors(keras_ref):
    a, b = kerasish.Input((3,), dtype="int32"), kerasish.Input((1,))
    out = kops.add(kops.multiply(a, 2), b)
    ka, kb = keras_ref.Input((3,), dtype="int32"), keras_ref.Input((1,))
    ref = keras_ref.ops.add(keras_ref.ops.multiply(ka, 2), kb)
    assert (out.shape, out.dtype) == (tuple(ref.shape), ref.dtype)


def _model(lib):
    ops = lib.ops
    x = lib.Input((4, 3), name="x")
    h = lib.layers.Dense(5, name="dense")(x)
    h = ops.relu(h)
    s = ops.sum(h, axis=-1, keepdims=True)
    c = ops.concatenate([s, ops.mean(x, axis=-1, keepdims=True)], axis=-1)
    c = ops.add(c, 1.0)
    w = ops.softmax(ops.transpose(c, (0, 2, 1)), axis=-1)
    img = ops.image.resize(ops.expand_dims(x, -1), (8, 6))
    return lib.Model(x, [w, ops.reshape(img, (-1, 48))])


def _strip(config):
    """The model config without build-time details that legitimately differ,
    and with layer names replaced by their position (both libraries
    uniquify names per process, so `reshape` may be `reshape_3`)."""
    index = {layer["name"]: i for i, layer in enumerate(config["layers"])}
    text = json.dumps(config)
    for name in sorted(index, key=len, reverse=True):
        text = text.replace(f'"{name}"', f'"#{index[name]}"')
    config = json.loads(text)
    layers = []
    for layer in config["layers"]:
        entry = {k: layer[k] for k in ("module", "class_name", "name", "inbound_nodes")}
        if layer["module"].startswith("keras.src.ops"):
            entry["config"] = layer["config"]
        layers.append(entry)
    return {"layers": layers, "input_layers": config["input_layers"], "output_layers": config["output_layers"]}


def test_model_config_matches_keras(keras_ref):
    ours = json.loads(json.dumps(_model(kerasish).get_config()))
    theirs = json.loads(json.dumps(_model(keras_ref).get_config()))
    assert _strip(ours) == _strip(theirs)


def test_ops_model_round_trips_through_kerasish_and_keras(keras_ref):
    model = _model(kerasish)
    x = torch.randn(2, 4, 3)
    expected = model(x)
    config = json.loads(json.dumps(model.get_config()))

    again = kerasish.Model.from_config(config)
    again.set_weights(model.get_weights())
    for a, b in zip(again(x), expected):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-6)

    in_keras = keras_ref.Model.from_config(config)
    in_keras.set_weights(model.get_weights())
    for a, b in zip(in_keras(x), expected):
        np.testing.assert_allclose(a.detach().cpu().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)

    # and a config written by Keras loads back into kerasish
    back = kerasish.Model.from_config(json.loads(json.dumps(in_keras.get_config())))
    back.set_weights(model.get_weights())
    for a, b in zip(back(x), expected):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_keras_file_saved_by_kerasish_loads_in_keras(keras_ref, tmp_path):
    model = _model(kerasish)
    x = torch.randn(2, 4, 3)
    path = str(tmp_path / "ops_model.keras")
    model.save(path)
    loaded = keras_ref.saving.load_model(path)
    for a, b in zip(loaded(x), model(x)):
        np.testing.assert_allclose(a.detach().cpu().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
    ours = kerasish.saving.load_model(path)
    for a, b in zip(ours(x), model(x)):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_symbolic_error_names_the_op():
    with pytest.raises(ValueError):
        kops.reshape(kerasish.Input((4, 3)), (5, -1))


# single-op functional models: (op, input specs, call) -> saved by kerasish,
# loaded by real Keras (and back), same outputs
SINGLE = [
    ("einsum", [(4, 3), (3, 5)], lambda o, a, b: o.einsum("bij,bjk->bik", a, b)),
    ("where", [(4,), (4,)], lambda o, a, b: o.where(o.greater(a, 0.0), a, b)),
    ("take", [(6,)], lambda o, a: o.take(a, [0, 2, 5], axis=1)),
    ("one_hot", [((3,), "int32")], lambda o, a: o.one_hot(a, 5)),
    ("extract_patches", [(8, 8, 3)], lambda o, a: o.image.extract_patches(a, 4)),
    ("dot_product_attention", [(5, 2, 4), (6, 2, 4), (6, 2, 4)],
     lambda o, q, k, v: o.dot_product_attention(q, k, v, is_causal=False)),
    ("conv", [(8, 8, 3)], lambda o, a: o.conv(a, o.ones((3, 3, 3, 2)), padding="same")),
    ("pad", [(4, 3)], lambda o, a: o.pad(a, ((0, 0), (1, 2), (0, 1)), constant_values=1.5)),
    ("stack+split", [(4,), (4,)], lambda o, a, b: o.split(o.stack([a, b], axis=1), 2, axis=-1)),
    ("cumsum+argsort", [(5,)], lambda o, a: o.argsort(o.cumsum(a, axis=-1), axis=-1)),
    ("layer_normalization", [(6,)], lambda o, a: o.layer_normalization(a, axis=-1, epsilon=1e-5)),
    ("top_k+max", [(6,)], lambda o, a: o.max(o.top_k(a, 3)[0], axis=-1)),
]


def _single(lib, specs, fn):
    inputs = [lib.Input(s[0], dtype=s[1]) if isinstance(s[0], tuple) else lib.Input(s) for s in specs]
    out = fn(lib.ops, *inputs)
    return lib.Model(inputs, out)


@pytest.mark.parametrize("name,specs,fn", SINGLE, ids=[s[0] for s in SINGLE])
def test_single_op_models_load_in_keras(keras_ref, name, specs, fn):
    model = _single(kerasish, specs, fn)
    gen = torch.Generator().manual_seed(0)
    data = []
    for s in specs:
        shape, dtype = (s if isinstance(s[0], tuple) else (s, "float32"))
        data.append(torch.randint(0, 5, (2, *shape), generator=gen, dtype=torch.int32) if dtype == "int32"
                    else torch.randn((2, *shape), generator=gen))
    expected = model(data)
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    config = json.loads(json.dumps(model.get_config()))
    in_keras = keras_ref.Model.from_config(config)
    got = in_keras(data)
    got = got if isinstance(got, (list, tuple)) else [got]
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.detach().cpu().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-5)
    back = kerasish.Model.from_config(json.loads(json.dumps(in_keras.get_config())))
    again = back(data)
    again = again if isinstance(again, (list, tuple)) else [again]
    for a, b in zip(again, expected):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-6)
