"""Shared helpers for the legacy HDF5 tests: the tf-keras fixtures and the
kerasish twin of their custom layer."""

import json
import os

import numpy as np

import kerasish as keras

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "legacy_h5")


def metadata() -> dict:
    with open(os.path.join(FIXTURES, "metadata.json")) as f:
        return json.load(f)


def path(name: str) -> str:
    return os.path.join(FIXTURES, name)


def arrays(name: str) -> dict:
    with np.load(path(f"{name}.npz"), allow_pickle=False) as data:
        return dict(data)


def inputs(name: str, entry: dict):
    data = arrays(name)
    xs = [data[f"x{i}"] for i in range(entry["n_inputs"])]
    return xs if len(xs) > 1 else xs[0]


def targets(name: str, entry: dict):
    data = arrays(name)
    ys = [data[f"y{i}"] for i in range(entry["n_targets"])]
    return ys if len(ys) > 1 else ys[0]


def as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


class ScaleShift(keras.layers.Layer):
    """The fixture's custom layer (`y = x * scale + shift`), in kerasish."""

    def __init__(self, init_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.init_scale = init_scale

    def build(self, input_shape):
        n = input_shape[-1]
        self.scale = self.add_weight(name="scale", shape=(n,), initializer="ones")
        self.shift = self.add_weight(name="shift", shape=(n,), initializer="zeros")

    def call(self, x):
        return x * self.scale + self.shift

    def get_config(self):
        return {**super().get_config(), "init_scale": self.init_scale}


CUSTOM = {"ScaleShift": ScaleShift}
