"""ResNet101 / ResNet101V2 against Keras 3.15:
layer names and types in order, weight paths and shapes, parameter counts and
the model config. Outputs are not compared here (building each pair costs
~10-25 s of CPU); they share every block builder with ResNet50 / ResNet50V2,
whose outputs test_apps_resnet_vgg.py compares. ResNet152 / ResNet152V2 differ from
these only in the block counts they pass to the same stack builders; they are not
built here (CI time)."""

import pytest

from apps_parity import assert_same_config
from apps_parity import assert_same_structure
from apps_parity import build_both


@pytest.mark.parametrize("name", ["ResNet101", "ResNet101V2"])
def test_deep_resnets_structure(keras_ref, name):
    kwargs = {"include_top": False, "input_shape": (32, 32, 3)} if "V2" in name else {
        "input_shape": (32, 32, 3), "classes": 3}
    ref, ours = build_both(keras_ref, name, weights=None, **kwargs)
    assert_same_structure(ref, ours)
    assert_same_config(ref, ours)
