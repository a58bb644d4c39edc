"""Keras classes with no public `keras.*` name (ConvNeXt's LayerScale and
StochasticDepth, InceptionResNetV2's CustomScaleLayer, a nested Functional,
FeatureSpace's Feature) serialize as Keras 3.15 writes them (their module under
`keras.src` and the class name as `registered_name`) and load back, in
kerasish and in Keras, with no `custom_objects`."""

import numpy as np
import pytest
import torch

import kerasish
from kerasish.applications import convnext as ours_convnext
from kerasish.applications import inception_resnet_v2 as ours_irv2

pytest.importorskip("h5py")

X = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")


def _entries(config):
    """(module, class_name, registered_name) of every object in a config, in order."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "class_name" in node and "module" in node:
                found.append((node["module"], node["class_name"], node.get("registered_name")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def _block(k, classes):
    """input -> LayerScale -> StochasticDepth; CustomScaleLayer([input, that]); then a Dense."""
    layer_scale, stochastic_depth, custom_scale = classes
    inputs = k.Input((3, 4))
    x = layer_scale(0.5, 4, name="ls")(inputs)
    x = stochastic_depth(0.2, name="sd")(x)
    x = custom_scale(0.3, name="csl")([inputs, x])
    return k.Model(inputs, k.layers.Dense(2, name="out")(x))


def _theirs(keras_ref):
    from keras.src.applications import convnext, inception_resnet_v2

    return _block(keras_ref, (convnext.LayerScale, convnext.StochasticDepth, inception_resnet_v2.CustomScaleLayer))


def _ours():
    return _block(kerasish, (ours_convnext.LayerScale, ours_convnext.StochasticDepth, ours_irv2.CustomScaleLayer))


def _randomize(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])


def _out(model, x):
    y = model(torch.as_tensor(x))
    return y.detach().cpu().numpy()


def test_configs_name_the_class_as_keras_writes_it(keras_ref):
    theirs, ours = _theirs(keras_ref), _ours()
    keras_entries = _entries(keras_ref.saving.serialize_keras_object(theirs))
    ours_entries = _entries(kerasish.saving.serialize_keras_object(ours))
    assert ours_entries == keras_entries
    assert ("keras.src.applications.convnext", "LayerScale", "LayerScale") in ours_entries
    assert ("keras.src.applications.inception_resnet_v2", "CustomScaleLayer", "CustomScaleLayer") in ours_entries


def test_nested_functional_and_feature_space_entries_match_keras(keras_ref):
    """Siblings: a nested Functional and FeatureSpace's Feature are Keras classes
    without a public name too."""
    def nested(k):
        inner_in = k.Input((4,))
        inner = k.Model(inner_in, k.layers.Dense(2)(inner_in))
        outer_in = k.Input((4,))
        return k.Model(outer_in, inner(outer_in))

    def feature_space(k):
        fs = k.utils.FeatureSpace
        return fs(features={"a": fs.float_normalized(), "b": fs.float_rescaled()}, output_mode="concat")

    for build in (nested, feature_space):
        theirs = _entries(keras_ref.saving.serialize_keras_object(build(keras_ref)))
        ours = _entries(kerasish.saving.serialize_keras_object(build(kerasish)))
        assert ours == theirs
    assert ("keras.src.models.functional", "Functional", "Functional") in _entries(
        kerasish.saving.serialize_keras_object(nested(kerasish)))


def test_kerasish_file_loads_in_kerasish_and_keras_without_custom_objects(keras_ref, tmp_path):
    ours = _ours()
    _randomize(ours, seed=1)
    path = str(tmp_path / "ours.keras")
    ours.save(path)

    again = kerasish.saving.load_model(path)
    assert isinstance(again.get_layer("ls"), ours_convnext.LayerScale)
    assert isinstance(again.get_layer("csl"), ours_irv2.CustomScaleLayer)
    np.testing.assert_array_equal(_out(again, X), _out(ours, X))

    from keras.src.applications import convnext

    theirs = keras_ref.saving.load_model(path)
    assert isinstance(theirs.get_layer("ls"), convnext.LayerScale)
    np.testing.assert_allclose(_out(theirs, X), _out(ours, X), rtol=1e-6, atol=1e-6)


def test_keras_file_loads_in_kerasish_without_custom_objects(keras_ref, tmp_path):
    theirs = _theirs(keras_ref)
    _randomize(theirs, seed=2)
    path = str(tmp_path / "theirs.keras")
    theirs.save(path)
    ours = kerasish.saving.load_model(path)
    assert isinstance(ours.get_layer("sd"), ours_convnext.StochasticDepth)
    assert ours.get_layer("sd").drop_path_rate == 0.2
    np.testing.assert_allclose(_out(ours, X), _out(theirs, X), rtol=1e-6, atol=1e-6)


def test_only_the_named_keras_module_is_searched():
    """A Keras-internal module path finds only the class kerasish keeps for that
    module: LayerScale under InceptionResNetV2's module is unknown, and a module
    kerasish does not know is never imported."""
    entry = {"module": "keras.src.applications.inception_resnet_v2", "class_name": "LayerScale",
             "config": {"init_values": 0.1, "projection_dim": 2}, "registered_name": "LayerScale"}
    with pytest.raises(Exception, match="LayerScale"):
        kerasish.saving.deserialize_keras_object(entry)
    entry = dict(entry, module="keras.src.applications.convnext")
    assert isinstance(kerasish.saving.deserialize_keras_object(entry), ours_convnext.LayerScale)
    entry = dict(entry, module="keras.src.applications.not_a_module")
    with pytest.raises(Exception, match="LayerScale"):
        kerasish.saving.deserialize_keras_object(entry)
