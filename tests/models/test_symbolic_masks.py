"""Masks in the functional API are graph values, as in Keras 3: `x._keras_mask`
on KerasTensors, the mask ops (`NotEqual`, `Any`) as graph nodes, the mask
passed as `mask=` to the layers that take it, and configs / summaries equal
to Keras's. Also: a Keras 3 config's recorded `training=False` no longer
switches Dropout off for good."""

import json

import numpy as np
import pytest
import torch

import kerasish


@pytest.fixture(autouse=True)
def _terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


def _embedding_model(lib):
    lib.utils.clear_session()
    inp = lib.Input((5,), dtype="int32")
    x = lib.layers.Embedding(10, 4, mask_zero=True)(inp)
    x = lib.layers.LSTM(3, return_sequences=True)(x)
    x = lib.layers.Dropout(0.5)(x)
    return lib.Model(inp, lib.layers.Dense(2)(x)), inp


def _masking_model(lib):
    lib.utils.clear_session()
    inp = lib.Input((5, 3))
    x = lib.layers.Masking()(inp)
    x = lib.layers.Dense(4)(x)
    x = lib.layers.LSTM(2, return_sequences=True)(x)
    x = lib.layers.GlobalAveragePooling1D()(x)
    return lib.Model(inp, x), inp


def _sequential_model(lib):
    lib.utils.clear_session()
    return lib.Sequential([lib.Input((5,), dtype="int32"), lib.layers.Embedding(10, 4, mask_zero=True),
                           lib.layers.GRU(3)]), None


BUILDERS = [_embedding_model, _masking_model, _sequential_model]


def _normalize(config):
    config = json.loads(json.dumps(config))
    for layer in config["layers"]:
        layer.get("config", {}).pop("dtype", None)
        for key in ("kernel_initializer", "recurrent_initializer", "bias_initializer", "embeddings_initializer"):
            layer.get("config", {}).get(key, {}).pop("module", None)
    return config


def test_keras_mask_on_keras_tensors(keras_ref):
    for lib in (kerasish, keras_ref):
        lib.utils.clear_session()
        i = lib.Input((5,), dtype="int32")
        e = lib.layers.Embedding(10, 4, mask_zero=True)(i)
        j = lib.Input((5, 3))
        m = lib.layers.Masking()(j)
        d = lib.layers.Dense(2)(m)  # supports masking: passes it through
        for x in (e, m, d):
            assert x._keras_mask.shape == (None, 5) and x._keras_mask.dtype == "bool", lib
        assert d._keras_mask is m._keras_mask
        assert type(e._keras_mask._keras_history.operation).__name__ in ("NotEqual", "KerasOpLayer")
        assert e._keras_mask._keras_history.operation.name == "not_equal"
        assert m._keras_mask._keras_history.operation.name == "any"
        # no mask where Keras has none
        assert getattr(lib.layers.Dense(2)(lib.Input((3,))), "_keras_mask", None) is None
        assert getattr(lib.layers.LSTM(2)(m), "_keras_mask", None) is None


@pytest.mark.parametrize("build", BUILDERS)
def test_config_and_summary_equal_keras(keras_ref, build):
    ours, _ = build(kerasish)
    ours_config, ours_summary = _normalize(ours.get_config()), _summary(ours)
    theirs, _ = build(keras_ref)
    assert ours_config == _normalize(theirs.get_config())
    assert ours_summary == _summary(theirs)


def _summary(model):
    out = []
    model.summary(print_fn=lambda text, **_: out.append(text))
    return out[0]


@pytest.mark.parametrize("build", BUILDERS)
def test_masked_outputs_equal_keras_and_survive_configs(keras_ref, build):
    ours, _ = build(kerasish)
    theirs, _ = build(keras_ref)
    theirs.set_weights(ours.get_weights())
    rng = np.random.default_rng(0)
    if build is _masking_model:
        x = rng.normal(size=(3, 5, 3)).astype("float32")
        x[0, 3:] = 0.0
        x[2, 1] = 0.0
    else:
        x = rng.integers(1, 10, size=(3, 5)).astype("int32")
        x[0, 2:] = 0
        x[1, :1] = 0
    expected = keras_ref.ops.convert_to_numpy(theirs(x, training=False))
    with torch.no_grad():
        got = ours(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    for config in (ours.get_config(), theirs.get_config()):
        rebuilt = type(ours).from_config(json.loads(json.dumps(config)))
        rebuilt.set_weights(ours.get_weights())
        with torch.no_grad():
            np.testing.assert_allclose(rebuilt(torch.as_tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    # Keras reads kerasish's config and computes the same
    again = type(theirs).from_config(ours.get_config())
    again.set_weights(ours.get_weights())
    np.testing.assert_allclose(keras_ref.ops.convert_to_numpy(again(x, training=False)), expected, rtol=1e-5,
                               atol=1e-6)


def test_graph_mask_can_be_passed_explicitly(keras_ref):
    """`x._keras_mask` is a graph value: it can feed another layer."""
    results = []
    for lib in (kerasish, keras_ref):
        lib.utils.clear_session()
        i = lib.Input((4,), dtype="int32")
        e = lib.layers.Embedding(6, 3, mask_zero=True, embeddings_initializer="ones")(i)
        pooled = lib.layers.GlobalAveragePooling1D()(e * 1.0, mask=e._keras_mask)
        results.append(lib.Model(i, pooled))
    x = np.array([[1, 2, 0, 0], [3, 0, 0, 0]], dtype="int32")
    with torch.no_grad():
        got = results[0](torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, keras_ref.ops.convert_to_numpy(results[1](x)), rtol=1e-6)


def test_dropout_trains_after_loading_a_keras_config(keras_ref):
    """Keras 3 records `training=False` for Dropout while building; its
    model overrides it at run time. Loaded into kerasish, the model's mode
    decides too (before, Dropout stayed off even in `fit`)."""
    keras_ref.utils.clear_session()
    i = keras_ref.Input((4,))
    ref = keras_ref.Model(i, keras_ref.layers.Dropout(0.9)(i))
    assert ref.get_config()["layers"][1]["inbound_nodes"][0]["kwargs"] == {"training": False}
    model = kerasish.Model.from_config(ref.get_config())
    x = torch.ones(200, 4)
    assert (model(x, training=True) == 0).float().mean() > 0.5
    torch.testing.assert_close(model(x), x)
