"""keras.io developer guide "The Sequential model" (guides/sequential_model.py),
run with real Keras 3 (torch backend) and kerasish: `add` / `pop`, names,
deferred build (no weights and a summary of an unbuilt model), `summary()`
after an `Input` and as layers are added, feature extraction from
`model.layers[...].output` / `get_layer(...).output`, and freezing all but the
last layer for transfer learning. Summaries, layer names, weight counts and
outputs (weights copied) are compared.
"""

from __future__ import annotations

import numpy as np
import pytest

import kerasish as keras
from tests.ports.test_port_programs import assert_same


@pytest.fixture(autouse=True)
def _fresh_keras_names(keras_ref):
    keras_ref.utils.clear_session()


def _summary(model, **kwargs):
    lines = []
    model.summary(print_fn=lambda s, *a, **k: lines.append(s), **kwargs)
    return lines


def _basics(K):
    layers, out = K.layers, {}
    model = K.Sequential([layers.Dense(2, activation="relu", name="layer1"),
                          layers.Dense(3, activation="relu", name="layer2"), layers.Dense(4, name="layer3")])
    out["call_shape"] = tuple(model(K.ops.ones((3, 3))).shape)
    out["names"] = [layer.name for layer in model.layers]
    model = K.Sequential()
    model.add(layers.Dense(2, activation="relu"))
    model.add(layers.Dense(3, activation="relu"))
    model.add(layers.Dense(4))
    out["added"] = [layer.name for layer in model.layers]
    model.pop()
    out["popped"] = len(model.layers)
    out["named"] = K.Sequential(name="my_sequential").name

    layer = layers.Dense(3)
    counts = [len(layer.weights)]
    layer(K.ops.ones((1, 4)))
    counts.append(len(layer.weights))
    out["deferred_layer"] = counts
    model = K.Sequential([layers.Dense(2, activation="relu"), layers.Dense(3, activation="relu"), layers.Dense(4)])
    out["unbuilt_summary"] = _summary(model)
    model(K.ops.ones((1, 4)))
    out["built_weights"] = len(model.weights)
    out["built_summary"] = _summary(model)
    model = K.Sequential()
    model.add(K.Input(shape=(4,)))
    model.add(layers.Dense(2, activation="relu"))
    out["input_summary"] = _summary(model)
    out["input_names"] = [layer.name for layer in model.layers]
    return out


def test_add_pop_names_and_deferred_build(keras_ref):
    ref, ours = _basics(keras_ref), _basics(keras)
    assert ours.keys() == ref.keys()
    for key in ref:
        assert ours[key] == ref[key], key


def _feature_extraction(K):
    layers, out = K.layers, {}
    model = K.Sequential()
    model.add(K.Input(shape=(26, 26, 3)))
    model.add(layers.Conv2D(4, 5, strides=2, activation="relu"))
    model.add(layers.Conv2D(4, 3, activation="relu"))
    model.add(layers.MaxPooling2D(3))
    out["summary_1"] = _summary(model)
    model.add(layers.Conv2D(4, 3, activation="relu"))
    model.add(layers.GlobalMaxPooling2D())
    model.add(layers.Dense(10))
    out["summary_2"] = _summary(model)

    initial_model = K.Sequential([K.Input(shape=(13, 13, 3)), layers.Conv2D(4, 3, strides=2, activation="relu"),
                                  layers.Conv2D(4, 3, activation="relu", name="my_intermediate_layer"),
                                  layers.Conv2D(4, 3, activation="relu")])
    all_features = K.Model(inputs=initial_model.inputs, outputs=[layer.output for layer in initial_model.layers])
    one_feature = K.Model(inputs=initial_model.inputs,
                          outputs=initial_model.get_layer(name="my_intermediate_layer").output)

    frozen = K.Sequential([K.Input(shape=(8,)), layers.Dense(4, activation="relu"), layers.Dense(4, activation="relu"),
                           layers.Dense(2)])
    for layer in frozen.layers[:-1]:
        layer.trainable = False
    out["frozen_summary"] = _summary(frozen, show_trainable=True)
    out["frozen_counts"] = [len(frozen.trainable_weights), len(frozen.non_trainable_weights)]
    return out, initial_model, all_features, one_feature


def test_feature_extraction_and_freezing(keras_ref):
    ref, ref_base, ref_all, ref_one = _feature_extraction(keras_ref)
    ours, our_base, our_all, our_one = _feature_extraction(keras)
    for key in ref:
        assert ours[key] == ref[key], key
    our_base.set_weights(ref_base.get_weights())
    x = np.random.default_rng(0).random((2, 13, 13, 3)).astype("float32")
    assert_same(our_all(x), ref_all(x))
    assert_same(our_one(x), ref_one(x))
