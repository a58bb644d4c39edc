"""`HashedCrossing`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.encoding import encode
from kerasish.layers.preprocessing.host_inputs import HostInputLayer
from kerasish.layers.preprocessing.host_inputs import to_host_array
from kerasish.layers.preprocessing.string_hashing import fingerprint64
from kerasish.utils import tree

_MASK = (1 << 64) - 1
# TensorFlow's `sparse.cross_hashed` defaults (sparse_ops.py / sparse_cross_op.cc)
_DEFAULT_HASH_KEY = 0xDECAFCAFFE
_CAT_MUL = 0xC6A4A7935BD1E995


def _shift_mix(v: int) -> int:
    return v ^ (v >> 47)


def fingerprint_cat64(fp1: int, fp2: int) -> int:
    """TensorFlow's `FingerprintCat64`: combines two 64-bit fingerprints."""
    result = fp1 ^ _CAT_MUL
    result ^= (_shift_mix((fp2 * _CAT_MUL) & _MASK) * _CAT_MUL) & _MASK
    result = (result * _CAT_MUL) & _MASK
    result = (_shift_mix(result) * _CAT_MUL) & _MASK
    return _shift_mix(result)


def _feature_hash(value) -> int:
    # strings are fingerprinted; integers enter the cross as their own 64 bits
    if isinstance(value, str):
        return fingerprint64(value.encode("utf-8"))
    return int(value) & _MASK


class HashedCrossing(HostInputLayer):
    """Crosses categorical features by hashing (`keras.layers.HashedCrossing`).

    For each example, the features' values are combined as TensorFlow's
    `tf.sparse.cross_hashed` does (FarmHash `Fingerprint64` of strings, the
    integers themselves, chained with `FingerprintCat64` from the default key)
    and taken modulo `num_bins`, so bins agree with Keras's; implemented in
    pure Python (no TensorFlow), one hash per distinct tuple.

    Args:
        num_bins: Number of hash bins.
        output_mode: "int" or "one_hot". Defaults to "int".
        sparse: Only False (torch). Defaults to False.
        dtype: Output dtype; "int64" by default in "int" mode.

    Call arguments:
        inputs: A list or tuple of at least two features, each of shape `()`,
            `(batch,)` or `(batch, 1)`, all the same shape, integer or string.

    Output: the first input's shape (int), with a `num_bins` axis for "one_hot".

    Example:
        >>> layer = keras.layers.HashedCrossing(num_bins=5)
        >>> layer((["A", "B", "A", "B", "A"], torch.tensor([101, 101, 101, 102, 102])))
        tensor([1, 4, 1, 1, 3])
    """

    def __init__(self, num_bins, output_mode="int", sparse=False, name=None, dtype=None, **kwargs):
        if output_mode == "int" and dtype is None:
            dtype = "int64"
        super().__init__(name=name, dtype=dtype, **kwargs)
        if sparse:
            raise ValueError("`sparse=True` can only be used with the TensorFlow backend.")
        if output_mode not in ("int", "one_hot"):
            raise ValueError(
                "The `output_mode` argument of HashedCrossing must be one of 'int', 'one_hot'. "
                f"Received: output_mode={output_mode!r}"
            )
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins <= 0:
            raise ValueError(f"`num_bins` must be a positive integer. Received: num_bins={num_bins}")
        self.num_bins = num_bins
        self.output_mode = output_mode
        self.sparse = sparse
        self.built = True

    def forward(self, inputs, *args, **kwargs):
        if tree.any_symbolic(inputs):
            return super().forward(inputs, *args, **kwargs)
        kwargs.pop("training", None)
        return self.call(inputs)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"`HashedCrossing` should be called on a list or tuple of inputs. Received: inputs={inputs}")
        if len(inputs) < 2:
            raise ValueError(f"`HashedCrossing` should be called on at least two inputs. Received: inputs={inputs}")
        device = self._output_device(inputs)
        arrays = [to_host_array(x) for x in inputs]
        shape = arrays[0].shape
        if len(shape) > 2 or (len(shape) == 2 and shape[-1] != 1):
            raise ValueError(
                "All `HashedCrossing` inputs should have shape `()`, `(batch_size)` or `(batch_size, 1)`. "
                f"Received: inputs={inputs}"
            )
        if any(a.shape != shape for a in arrays[1:]):
            raise ValueError(f"All `HashedCrossing` inputs should have equal shape. Received: inputs={inputs}")
        if not all(a.dtype.kind in "iu" or a.dtype == object for a in arrays):
            raise ValueError(
                f"All `HashedCrossing` inputs should have an integer or string dtype. Received: inputs={inputs}"
            )
        columns = [a.reshape(-1).tolist() for a in arrays]
        cache = {}
        out = []
        for row in zip(*columns):
            hit = cache.get(row)
            if hit is None:
                h = _DEFAULT_HASH_KEY
                for value in row:
                    h = fingerprint_cat64(h, _feature_hash(value))
                hit = cache[row] = h % self.num_bins
            out.append(hit)
        indices = torch.tensor(out, dtype=torch.int64, device=device).reshape(shape)
        if self.output_mode == "int":
            return indices.to(self._compute_torch_dtype)
        return encode(indices, "one_hot", self.num_bins, self._compute_torch_dtype)

    def compute_output_shape(self, input_shape):
        first = tuple(input_shape[0])
        if self.output_mode == "int":
            return first
        if not first:
            return (self.num_bins,)
        if first[-1] != 1:
            return first + (self.num_bins,)
        return first[:-1] + (self.num_bins,)

    def get_config(self):
        config = super().get_config()
        config.update({"num_bins": self.num_bins, "output_mode": self.output_mode, "sparse": self.sparse})
        return config
