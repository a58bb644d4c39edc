"""Shared machinery of the N-D zero-padding, cropping and up-sampling layers.

Each base works for 1, 2 or 3 spatial dimensions; the public layers only fix
the rank, the argument defaults and the docstring. Everything derived from
the arguments (F.pad amounts, slices, axis positions) is computed once in
`__init__`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer


def spatial_axes(data_format: str, rank: int) -> tuple:
    """Positions of the `rank` spatial axes in a `rank + 2`-D input."""
    start = 2 if data_format == "channels_first" else 1
    return tuple(range(start, start + rank))


class BaseZeroPadding(Layer):
    """Zero padding of `rank` spatial dimensions with `F.pad`.

    Subclasses set `self.padding` (Keras's form) and pass the (before,
    after) pairs to `_setup`.
    """

    def _setup(self, pairs: tuple, data_format: str, rank: int) -> None:
        self.data_format = data_format
        self.input_spec = InputSpec(ndim=rank + 2)
        self._pairs = pairs
        self._axes = spatial_axes(data_format, rank)
        # F.pad lists (before, after) from the last axis backwards
        pad = [] if data_format == "channels_first" else [0, 0]
        for before, after in reversed(pairs):
            pad.extend((before, after))
        self._pad = tuple(pad)

    def call(self, inputs):
        return F.pad(inputs, self._pad)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for axis, (before, after) in zip(self._axes, self._pairs):
            if shape[axis] is not None:
                shape[axis] += before + after
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding, "data_format": self.data_format})
        return config


class BaseCropping(Layer):
    """Cropping of `rank` spatial dimensions by slicing (a view, no copy)."""

    def _setup(self, pairs: tuple, data_format: str, rank: int) -> None:
        self.data_format = data_format
        self.input_spec = InputSpec(ndim=rank + 2)
        self._pairs = pairs
        self._axes = spatial_axes(data_format, rank)
        index = [slice(None)] * (rank + 2)
        for axis, (before, after) in zip(self._axes, pairs):
            index[axis] = slice(before, -after if after else None)
        self._index = tuple(index)

    def _check(self, shape, what: str) -> None:
        for axis, pair in zip(self._axes, self._pairs):
            if shape[axis] is not None and sum(pair) >= shape[axis]:
                raise ValueError(self._error(shape, what))

    def _error(self, shape, what: str) -> str:
        return (
            "Values in `cropping` argument should be smaller than the corresponding spatial dimension of "
            f"the input. Received: {what}={shape}, cropping={self.cropping}"
        )

    def call(self, inputs):
        self._check(tuple(inputs.shape), "inputs.shape")
        return inputs[self._index]

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        self._check(shape, "input_shape")
        for axis, pair in zip(self._axes, self._pairs):
            if shape[axis] is not None:
                shape[axis] -= sum(pair)
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update({"cropping": self.cropping, "data_format": self.data_format})
        return config


def repeat_spatial(inputs: torch.Tensor, axes: tuple, sizes: tuple) -> torch.Tensor:
    """Repeats each element `sizes[i]` times along `axes[i]` (Keras's
    `ops.repeat` per axis, i.e. nearest up-sampling by integer factors),
    in one copy: insert a broadcast axis after each, expand, reshape."""
    shape = list(inputs.shape)
    view, expand, out = [], [], []
    for i, d in enumerate(shape):
        view.append(d)
        expand.append(d)
        if i in axes:
            s = sizes[axes.index(i)]
            view.append(1)
            expand.append(s)
            out.append(d * s)
        else:
            out.append(d)
    return inputs.reshape(view).expand(expand).reshape(out)


class BaseUpSampling(Layer):
    """Nearest up-sampling of `rank` spatial dimensions by integer factors."""

    def _setup(self, size: tuple, data_format: str, rank: int) -> None:
        self.data_format = data_format
        self.input_spec = InputSpec(ndim=rank + 2)
        self._axes = spatial_axes(data_format, rank)
        self._sizes = tuple(size)

    def call(self, inputs):
        return repeat_spatial(inputs, self._axes, self._sizes)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for axis, s in zip(self._axes, self._sizes):
            if shape[axis] is not None:
                shape[axis] *= s
        return tuple(shape)
