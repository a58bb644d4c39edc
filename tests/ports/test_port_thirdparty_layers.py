"""Third-party Keras 2 layer libraries ported to kerasish by changing their
imports: CyberZHG's keras-self-attention (SeqSelfAttention,
SeqWeightedAttention, ScaledDotProductAttention), keras-multi-head,
keras-layer-normalization, keras-position-wise-feed-forward, keras-pos-embd,
keras-embed-sim, philipperemy's keras-tcn, titu1994's keras-coordconv and
keras-contrib's CRF (on `K.rnn`). They are written against Keras 2's backend API (`K.dot`,
`K.batch_dot`, `K.shape`, `K.tile`, `K.permute_dimensions`, `K.rnn`,
`K.in_train_phase`, `K.name_scope`, ...), `InputSpec`, `compute_mask`,
`get_config` and the `*.get` / `*.serialize` helpers. The vendored copies and
every edit are listed in tests/fixtures/thirdparty/README.md.

Each case (tests/fixtures/thirdparty/models.py, shared with the recorder
tools/fixtures/make_thirdparty_layers.py) was run under tf-keras 2.21 with
seeded weights; here kerasish builds the same model from the same library
code, takes the recorded weights (assigned through `models.library_weights`,
an order both frameworks agree on; `model.weights` order is tested on its
own) and must reproduce the predictions, the Keras masks, the added losses,
the gradients, three `fit` epochs, the layers' configs; it loads the tf-keras
`.h5` file with `custom_objects`, and its own `.keras` / `.h5` files reload
with the same predictions.

Tolerances: float32 forward passes through different kernels rtol 1e-5 /
atol 2e-6; gradients rtol 1e-4 / atol 1e-5; three fit epochs rtol 2e-4 /
atol 2e-5 (as the other Keras 2 program ports).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys

import numpy as np
import pytest
import torch

import kerasish as keras

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "thirdparty")
RECORDS = os.path.join(HERE, "records")
with open(os.path.join(RECORDS, "metadata.json")) as _meta:
    META = json.load(_meta)["cases"]
FORWARD = {"rtol": 1e-5, "atol": 2e-6}
GRAD = {"rtol": 1e-4, "atol": 1e-5}
FIT = {"rtol": 2e-4, "atol": 2e-5}

if HERE not in sys.path:  # the vendored libraries import one another by their package names
    sys.path.insert(0, HERE)
_spec = importlib.util.spec_from_file_location("thirdparty_models", os.path.join(HERE, "models.py"))
models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(models)

with np.load(os.path.join(RECORDS, "records.npz"), allow_pickle=False) as _f:
    ARRAYS = dict(_f)

CASES = sorted(models.CASES)
FIT_CASES = [name for name in CASES if "fit_loss" in META[name]]


def _listed(name, key):
    out, i = [], 0
    while f"{name}.{key}.{i}" in ARRAYS:
        out.append(ARRAYS[f"{name}.{key}.{i}"])
        i += 1
    return out


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _custom_objects():
    import keras_embed_sim
    import keras_layer_normalization
    import keras_multi_head
    import keras_pos_embd
    import keras_position_wise_feed_forward
    import keras_self_attention
    import tcn
    from keras_contrib.layers import crf
    from keras_coordconv import coord

    objects = {}
    for module in (coord, crf, keras_embed_sim, keras_layer_normalization, keras_multi_head, keras_pos_embd,
                   keras_position_wise_feed_forward, keras_self_attention, tcn):
        objects.update({k: v for k, v in vars(module).items() if isinstance(v, type)})
    return objects


def _assign(model, values):
    weights = models.library_weights(model)
    assert len(weights) == len(values)
    for w, v in zip(weights, values):
        w.assign(v)


def _trainable(model):
    ids = {id(w) for w in model.trainable_weights}
    return [w for w in models.library_weights(model) if id(w) in ids]


def _fresh(name):
    keras.backend.clear_session()
    model, inputs, fit_model, fit_data = models.CASES[name](keras)
    _assign(model, _listed(name, "weight"))
    return model, _as_list(inputs), fit_model, fit_data


@functools.cache
def _built(name):
    """Built once per case for the tests that leave its weights alone (test_fit builds its own)."""
    return _fresh(name)


def _call(model, inputs):
    return _as_list(model(inputs if len(inputs) > 1 else inputs[0], training=False))


def _assert_outputs(name, outputs, tol=FORWARD):
    want = _listed(name, "output")
    assert len(outputs) == len(want)
    for i, (got, ref) in enumerate(zip(outputs, want)):
        np.testing.assert_allclose(got.detach().numpy(), ref, err_msg=f"{name} output {i}", **tol)


@pytest.mark.parametrize("name", CASES)
def test_forward_masks_and_losses(name):
    model, inputs, _, _ = _built(name)
    assert len(model.weights) == META[name]["weights"]
    assert len(model.trainable_weights) == META[name]["trainable_weights"]
    outputs = _call(model, inputs)
    _assert_outputs(name, outputs)
    masked = [i for i, o in enumerate(outputs) if getattr(o, "_keras_mask", None) is not None]
    assert masked == META[name]["masked_outputs"]
    for i in masked:
        np.testing.assert_array_equal(outputs[i]._keras_mask.numpy(), ARRAYS[f"{name}.mask.{i}"])
    np.testing.assert_allclose([float(v.detach()) for v in model.losses], META[name]["losses"], **FORWARD)


@pytest.mark.parametrize("name", [n for n in CASES if n != "self_attention"])
def test_gradients(name):
    model, inputs, _, _ = _built(name)
    outputs = _call(model, inputs)
    coefs = _listed(name, "coef")
    total = sum((o * torch.from_numpy(c)).sum() for o, c in zip(outputs, coefs))
    if model.losses:
        total = total + sum(model.losses)
    trainable = _trainable(model)
    weights = [w.value if hasattr(w, "value") else w for w in trainable]
    grads = torch.autograd.grad(total, weights, allow_unused=True)
    want = _listed(name, "grad")
    assert len(grads) == len(want)
    for i, (g, ref) in enumerate(zip(grads, want)):
        got = np.zeros_like(ref) if g is None else g.numpy()
        np.testing.assert_allclose(got, ref, err_msg=f"{name} grad {i} ({trainable[i].path})", **GRAD)


@pytest.mark.parametrize("name", FIT_CASES)
def test_fit(name):
    model, _, fit_model, (x, y, optimizer, learning_rate, loss, epochs, batch_size) = _fresh(name)
    _assign(fit_model, _listed(name, "fit_init"))
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    fit_model.compile(optimizer=optimizers[optimizer](learning_rate=learning_rate), loss=loss)
    history = fit_model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], META[name]["fit_loss"], **FIT)
    want = _listed(name, "fitted")
    got = [w.numpy() for w in models.library_weights(fit_model)]
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, err_msg=f"{name} fitted weight {i}", **FIT)


# tf.keras 2 base-layer keys with no Keras 3 counterpart (Keras 3 writes `batch_shape` on the InputLayer
# only, and dropped Embedding's `input_length`) and the dtype (a string in Keras 2, a policy in Keras 3).
_KERAS2_ONLY_KEYS = {"dtype", "batch_input_shape", "input_length"}


def _assert_subset(got, want, where):
    """Every key of `want` is in `got` with the same value; nested dicts (a serialized initializer)
    may have more keys in `got` (Keras 3's GlorotNormal adds `input_axes` / `output_axes`)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        for k, v in want.items():
            assert k in got, f"{where}.{k}"
            _assert_subset(got[k], v, f"{where}.{k}")
    else:
        assert got == want, where


@pytest.mark.parametrize("name", CASES)
def test_get_config_round_trip(name):
    model, _, _, _ = _built(name)
    recorded = META[name]["configs"]
    layers = {layer.name: layer for layer in model.layers}
    assert recorded
    for layer_name, entry in recorded.items():
        layer = layers[layer_name]
        assert type(layer).__name__ == entry["class_name"]
        want = {k: v for k, v in entry["config"].items() if k not in _KERAS2_ONLY_KEYS}
        config = json.loads(json.dumps(layer.get_config()))  # tuples as lists, as the recorded JSON
        _assert_subset(config, want, layer_name)
        # the tf-keras config (with its Keras 2 keys) builds the same layer in kerasish
        clone = type(layer).from_config(entry["config"])
        # built first: keras-contrib's CRF sets `input_dim` (a config key) in `build` only, so an
        # unbuilt one's get_config raises AttributeError (in tf.keras too)
        clone.build(layer._build_input_shape)
        _assert_subset(json.loads(json.dumps(clone.get_config())), want, layer_name + " (from_config)")


@pytest.mark.parametrize("name", CASES)
def test_weight_order_is_keras2s(name):
    """`model.weights` in tf.keras 2's order, which the legacy `.h5` files keep. keras-tcn's TCN is the
    exception: tf.keras 2 lists the weights of sublayers held in lists reassigned in `build` after the
    others (its attribute tracking), kerasish (as Keras 3) in the order the sublayers were first
    tracked; the `.h5` loader follows Keras 2 (test_load_tf_keras_h5_and_resave)."""
    model, _, _, _ = _built(name)
    position = {id(w): i for i, w in enumerate(models.library_weights(model))}
    order = [position[id(w)] for w in model.weights]
    if name == "tcn":
        assert sorted(order) == sorted(META[name]["keras2_weight_order"])
    else:
        assert order == META[name]["keras2_weight_order"]


def test_in_place_update_after_activation_breaks_backward():
    """A genuine TensorFlow dependency: keras-self-attention writes `e = self.attention_activation(e)`
    then `e -= 10000.0 * (...)`. TensorFlow tensors are immutable (`-=` makes a new tensor); a torch
    tensor is updated in place, and the sigmoid's output is what its backward pass needs, so with an
    attention activation autograd refuses (loudly, never a wrong gradient). The forward pass matches
    (test_forward_masks_and_losses); without an activation gradients and training match
    (test_gradients, test_fit); the port fix is `e = e - 10000.0 * (...)`."""
    model, inputs, _, _ = _built("self_attention")
    total = sum(o.sum() for o in _call(model, inputs))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        total.backward()


@pytest.mark.parametrize("name", CASES)
def test_load_tf_keras_h5(name):
    model = keras.models.load_model(os.path.join(RECORDS, f"{name}.h5"), custom_objects=_custom_objects())
    _assert_outputs(name, _call(model, _as_list(_built(name)[1])))


@pytest.mark.parametrize("name", CASES)
def test_resave(name, tmp_path):
    """Saved as `.keras` and as Keras 2 `.h5` (the masks Keras 3 spells out as op nodes and `mask=`
    arguments, Keras 2 propagates itself), reloaded with the same predictions."""
    objects = _custom_objects()
    model, inputs, _, _ = _built(name)
    for path in (str(tmp_path / "resaved.keras"), str(tmp_path / "resaved.h5")):
        model.save(path)
        _assert_outputs(name, _call(keras.models.load_model(path, custom_objects=objects), inputs))
    # the Keras 2 file reads as tf.keras 2 wrote it: no mask op nodes, no `mask` in the nodes, and
    # the libraries' layers (keras-multi-head's MultiHeadAttention too) keep exactly their own configs
    import h5py

    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
    by_name = {layer.name: layer for layer in model.layers}
    for entry in config["config"]["layers"]:
        assert not entry["class_name"].startswith(("NotEqual", "Any", "LogicalOr")), entry["name"]
        for node in entry["inbound_nodes"]:
            assert all(call[3].get("mask") is None for call in node), entry["name"]
        if entry["class_name"] in objects and entry["name"] in META[name]["configs"]:
            # (Keras 3-only base arguments such as Embedding's `quantization_config` are left out)
            own = json.loads(json.dumps(by_name[entry["name"]].get_config()))
            assert set(entry["config"]) <= set(own), entry["name"]
