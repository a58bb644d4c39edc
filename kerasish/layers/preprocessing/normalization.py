"""`Normalization`."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer

# Keras's `backend.epsilon()`: the floor of the standard deviation.
_EPSILON = 1e-7


def _first(batch):
    """The features of a batch: `x` of an `(x, y, ...)` tuple (Keras), or of
    an `[x, y]` list as a torch `DataLoader` yields."""
    if isinstance(batch, tuple) or (isinstance(batch, list) and batch and hasattr(batch[0], "shape")):
        return batch[0]
    return batch


class Normalization(Layer):
    """Shifts and scales inputs to zero mean and unit variance per feature
    (`keras.layers.Normalization`): `(x - mean) / max(sqrt(var), 1e-7)`.

    The statistics come from `mean` / `variance` given to the constructor,
    or from `adapt(data)`. Adapted statistics are non-trainable weights
    (`adapt_mean`, `adapt_variance`, `count`, Keras's names, shapes and
    order), so they are in `state_dict()` and `get_weights()`; fixed
    `mean` / `variance` are not weights (as in Keras), only config.

    Args:
        axis: Int, tuple of ints or None: the axes that keep separate
            statistics (the feature axes); the others are reduced. None
            means one scalar mean / variance. Defaults to -1.
        mean: Mean to use instead of adapting. Defaults to None.
        variance: Variance to use instead of adapting. Defaults to None.
        invert: If True, applies the inverse transformation
            `x * max(sqrt(var), 1e-7) + mean`. Defaults to False.

    Input: any dtype (cast to the compute dtype). Output shape: same as
    the input. Masks pass through.

    Example:
        >>> layer = keras.layers.Normalization()
        >>> layer.adapt(np.array([[0.0, 10.0], [2.0, 30.0]]))
        >>> layer(torch.tensor([[1.0, 20.0]]))  # tensor([[0., 0.]])
    """

    _float_inputs = True  # integer inputs are cast to the compute dtype

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif isinstance(axis, int):
            axis = (axis,)
        else:
            axis = tuple(axis)
        self.axis = axis
        self.input_mean = mean
        self.input_variance = variance
        self.invert = invert
        self.supports_masking = True
        if (mean is not None) != (variance is not None):
            raise ValueError(
                "When setting values directly, both `mean` and `variance` must be set. "
                f"Received: mean={mean} and variance={variance}"
            )
        if mean is not None:
            if np.shape(mean) != np.shape(variance):
                raise ValueError(
                    "When setting values directly, `mean` and `variance` must have the same shape. Received: "
                    f"mean shape {np.shape(mean)} and variance shape {np.shape(variance)}"
                )
            if len(np.shape(mean)) > len(self.axis):
                raise ValueError(
                    f"The rank of `mean` must be less than or equal to the number of axes ({len(self.axis)}). "
                    f"Received: mean shape {np.shape(mean)} for axis {self.axis}"
                )

    # ----------------------------------------------------------------- build
    def build(self, input_shape):
        input_shape = tuple(input_shape)
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(
                "All `axis` values must be in the range [-ndim, ndim). "
                f"Received inputs with ndim={ndim}, while axis={self.axis}"
            )
        self._keep_axis = tuple(sorted(d if d >= 0 else d + ndim for d in self.axis))
        for d in self._keep_axis:
            if input_shape[d] is None:
                raise ValueError(
                    f"All `axis` values to be kept must have a known shape. Received axis={self.axis}, "
                    f"inputs.shape={input_shape}, with unknown axis at index {d}"
                )
        self._reduce_axis = tuple(d for d in range(ndim) if d not in self._keep_axis)
        self._broadcast_shape = tuple(input_shape[d] if d in self._keep_axis else 1 for d in range(ndim))
        self._mean_and_var_shape = tuple(input_shape[d] for d in self._keep_axis)
        self._build_input_shape = input_shape
        # the statistics fix the kept axes' sizes (counted from the end)
        self.input_spec = InputSpec(axes={d - ndim: input_shape[d] for d in self._keep_axis})
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(
                name="mean", shape=self._mean_and_var_shape, initializer="zeros", trainable=False
            )
            self.adapt_variance = self.add_weight(
                name="variance", shape=self._mean_and_var_shape, initializer="ones", trainable=False
            )
            self.count = self.add_weight(name="count", shape=(), dtype="int32", initializer="zeros", trainable=False)
        else:
            dtype = self._compute_torch_dtype
            self.register_buffer("_fixed_mean", self._broadcast(self.input_mean).to(dtype), persistent=False)
            self.register_buffer("_fixed_variance", self._broadcast(self.input_variance).to(dtype), persistent=False)

    def _constant_buffer_value(self, name):
        values = {"_fixed_mean": self.input_mean, "_fixed_variance": self.input_variance}
        return self._broadcast(values[name]) if values.get(name) is not None else None

    def _broadcast(self, value) -> torch.Tensor:
        """A fixed mean/variance aligned with the kept axes (Keras's rules)."""
        t = torch.as_tensor(np.asarray(value, dtype=np.float64) if not isinstance(value, torch.Tensor) else value)
        if t.ndim > 0:
            expanded = [1] * len(self._broadcast_shape)
            for i in range(1, t.ndim + 1):
                expanded[self._keep_axis[-i]] = t.shape[-i]
            t = t.reshape(expanded)
        return torch.broadcast_to(t, self._broadcast_shape).clone()

    def _infer_build_shape(self, weight_shapes: dict):
        shape = weight_shapes.get("adapt_mean")
        if shape is None or any(a >= 0 for a in self.axis) or len(shape) != len(self.axis):
            return None
        ndim = max([-a for a in self.axis] + [0]) + 1
        out = [None] * ndim
        for a, d in zip(sorted(a + ndim for a in self.axis), shape):
            out[a] = d
        return tuple(out)

    # ----------------------------------------------------------- statistics
    @property
    def mean(self):
        """The mean in the broadcast shape and compute dtype (None before build)."""
        if not self.built:
            return None
        if self.input_mean is not None:
            return self._fixed_mean
        return self.adapt_mean.reshape(self._broadcast_shape).to(self._compute_torch_dtype)

    @property
    def variance(self):
        """The variance in the broadcast shape and compute dtype (None before build)."""
        if not self.built:
            return None
        if self.input_variance is not None:
            return self._fixed_variance
        return self.adapt_variance.reshape(self._broadcast_shape).to(self._compute_torch_dtype)

    def call(self, inputs):
        dtype = self._compute_torch_dtype
        inputs = inputs.to(dtype)
        mean = self.mean.to(dtype)
        std = torch.clamp_min(torch.sqrt(self.variance.to(dtype)), _EPSILON)
        if self.invert:
            return mean + inputs * std
        return (inputs - mean) / std

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    # ----------------------------------------------------------------- adapt
    def adapt(self, data):
        """Computes the mean and variance of `data` over the reduced axes.

        Args:
            data: A NumPy array, a torch tensor, or an iterable of batches
                (arrays / tensors, or `(x, ...)` tuples, e.g. a torch
                `DataLoader`). Arrays are reduced with NumPy and tensors
                with torch, as Keras does; batches are merged with Keras's
                running-mean formula. `tf.data` and `PyDataset` are not
                supported.
        """
        iterable = False
        if isinstance(data, (np.ndarray, torch.Tensor)):
            input_shape = tuple(data.shape)
        elif hasattr(data, "__iter__") and not isinstance(data, (str, bytes, dict)):
            iterable = True
            data_iter = iter(data)
            first = next(data_iter, None)
            if first is None:
                raise ValueError(
                    "adapt() received an empty iterable (no batches). Expected at least one batch. Pass a "
                    "non-empty iterable of arrays or tensors, e.g. layer.adapt([x]) or "
                    "layer.adapt(list_of_batches)."
                )
            first = _first(first)
            input_shape = getattr(first, "shape", None)
            if input_shape is None:
                raise TypeError(
                    "adapt() expects an iterable that yields arrays or tensors with a `.shape` attribute (e.g. "
                    f"numpy arrays or backend tensors). Got an element of type {type(first).__name__}. Ensure "
                    "each yielded element is array-like with a `.shape` attribute."
                )
            input_shape = tuple(input_shape)
            data = itertools.chain([first], data_iter)
        else:
            raise TypeError(
                f"Unsupported data type: {type(data)}. `adapt` supports `np.ndarray`, torch tensors and "
                "iterables of batches (e.g. list, generator, DataLoader)."
            )
        if not self.built:
            self.build(input_shape)
        else:
            for d in self._keep_axis:
                if input_shape[d] != self._build_input_shape[d]:
                    raise ValueError(
                        f"The layer was built with input_shape={self._build_input_shape}, but adapt() is being "
                        f"called with data with an incompatible shape, data.shape={input_shape}"
                    )
        if self.input_mean is not None:
            return
        reduce = self._reduce_axis
        if isinstance(data, np.ndarray):
            total_mean, total_var = np.mean(data, axis=reduce), np.var(data, axis=reduce)
        elif not iterable:
            x = data.detach()
            if not x.is_floating_point():
                x = x.to(torch.float32)
            total_mean, total_var = self._moments(x)
        else:
            total_mean, total_var = self._merge_batches(data)
        with torch.no_grad():
            self.adapt_mean.copy_(torch.as_tensor(np.asarray(total_mean) if not isinstance(total_mean, torch.Tensor) else total_mean))
            self.adapt_variance.copy_(torch.as_tensor(np.asarray(total_var) if not isinstance(total_var, torch.Tensor) else total_var))

    def _moments(self, x: torch.Tensor):
        if not self._reduce_axis:
            return x, torch.zeros_like(x)
        return torch.mean(x, dim=self._reduce_axis), torch.var(x, dim=self._reduce_axis, correction=0)

    def _merge_batches(self, batches):
        """Keras's running merge of per-batch means and variances."""
        total_mean = torch.zeros(self._mean_and_var_shape)
        total_var = torch.zeros(self._mean_and_var_shape)
        total_count = 0
        for batch in batches:
            batch = torch.as_tensor(np.asarray(_first(batch)) if not isinstance(_first(batch), torch.Tensor) else _first(batch))
            batch = batch.detach().cpu().to(self._compute_torch_dtype)
            for d in self._keep_axis:
                if batch.shape[d] != self._build_input_shape[d]:
                    raise ValueError(
                        f"adapt() yielded a batch with incompatible shape. Expected {self._build_input_shape}, "
                        f"got {tuple(batch.shape)}."
                    )
            batch_mean, batch_var = self._moments(batch)
            batch_count = math.prod(batch.shape[d] for d in self._reduce_axis) if self._reduce_axis else 1
            total_count += batch_count
            batch_weight = float(batch_count) / total_count
            existing_weight = 1.0 - batch_weight
            new_total_mean = total_mean * existing_weight + batch_mean * batch_weight
            total_var = (total_var + (total_mean - new_total_mean) ** 2) * existing_weight + (
                batch_var + (batch_mean - new_total_mean) ** 2
            ) * batch_weight
            total_mean = new_total_mean
        return total_mean, total_var

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "invert": self.invert,
                "mean": np.array(self.input_mean).tolist(),
                "variance": np.array(self.input_variance).tolist(),
            }
        )
        return config
