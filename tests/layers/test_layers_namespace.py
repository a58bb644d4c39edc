"""Every public name of Keras 3's `keras.layers` exists in `kerasish.layers`,
except the reasoned allow-list below. The test also fails when an
allow-listed name appears in kerasish (so the list only shrinks) or when a
name is allow-listed that Keras does not have."""

import pytest

import kerasish

# Names that will not exist in kerasish, and why.
NOT_APPLICABLE = {
    "JaxLayer": "wraps a JAX function; kerasish runs on PyTorch only (no JAX backend)",
    "FlaxLayer": "wraps a Flax module; kerasish runs on PyTorch only (no JAX backend)",
    "TFSMLayer": "loads a TensorFlow SavedModel; kerasish never depends on TensorFlow",
}

# Keras 3.15 names not implemented yet (issue #9, remaining part). A layer
# exists and works or is listed here: no stubs.
NOT_YET = {
}


def _public(module):
    return {n for n in dir(module) if not n.startswith("_")}


def test_every_keras_layer_name_exists(keras_ref):
    missing = sorted(_public(keras_ref.layers) - _public(kerasish.layers) - set(NOT_APPLICABLE) - set(NOT_YET))
    assert not missing, f"keras.layers names missing from kerasish.layers: {missing}"


def test_allow_list_is_current(keras_ref):
    allowed = set(NOT_APPLICABLE) | set(NOT_YET)
    assert allowed <= _public(keras_ref.layers), sorted(allowed - _public(keras_ref.layers))
    implemented = sorted(allowed & _public(kerasish.layers))
    assert not implemented, f"implemented now, remove from the allow-list: {implemented}"


@pytest.mark.parametrize("name", sorted(_public(kerasish.layers) & {
    "AdaptiveAveragePooling2D", "GroupQueryAttention", "SpectralNormalization", "Wrapper", "RandomFlip",
    "StringLookup", "Hashing", "Discretization"}))
def test_new_names_are_layer_classes(name):
    cls = getattr(kerasish.layers, name)
    assert isinstance(cls, type) and issubclass(cls, kerasish.layers.Layer)
