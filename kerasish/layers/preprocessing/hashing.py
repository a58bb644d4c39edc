"""`Hashing`."""

from __future__ import annotations

import numpy as np
import torch

from kerasish.layers.preprocessing.encoding import OUTPUT_MODES
from kerasish.layers.preprocessing.encoding import encode
from kerasish.layers.preprocessing.host_inputs import HostInputLayer
from kerasish.layers.preprocessing.host_inputs import to_host_array
from kerasish.layers.preprocessing.string_hashing import as_hash_bytes
from kerasish.layers.preprocessing.string_hashing import fingerprint64
from kerasish.layers.preprocessing.string_hashing import siphash24


class Hashing(HostInputLayer):
    """Hashes values into `num_bins` bins (`keras.layers.Hashing`).

    The bin of a value is `Fingerprint64(s) % num_bins` (FarmHash, the hash
    of TensorFlow's `to_hash_bucket_fast`, which Keras 3 uses on every
    backend), or `SipHash-2-4(salt, s) % num_bins` with `salt`
    (`to_hash_bucket_strong`), where `s` is the string itself, or the decimal
    form of an integer (floats are truncated to integers first, as Keras).
    Both hashes are implemented here in pure Python (no TensorFlow), so bins
    agree with Keras's. With `mask_value`, that value goes to bin 0 and the
    others to `1 + hash % (num_bins - 1)`.

    Inputs: a `str`, (nested) lists, NumPy arrays (strings or numbers) or
    integer tensors. Each distinct value is hashed once per call, on the
    Python side; the result is a torch tensor (`int64`, or the `dtype`).

    Args:
        num_bins: Number of hash bins (mask bin included).
        mask_value: Value that maps to bin 0, or None. Defaults to None.
        salt: An int or a pair of ints: use keyed SipHash-2-4. Defaults to None.
        output_mode: "int", "one_hot", "multi_hot" or "count". Defaults to "int".
        sparse: Only False (torch). Defaults to False.
        dtype: Output dtype: "int64" (default) or "int32" in "int" mode,
            floatx otherwise.

    Example:
        >>> keras.layers.Hashing(num_bins=3)([["A"], ["B"], ["C"], ["D"], ["E"]])
        tensor([[1],
                [0],
                [1],
                [1],
                [2]])
    """

    def __init__(self, num_bins, mask_value=None, salt=None, output_mode="int", sparse=False, **kwargs):
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = "int64" if output_mode == "int" else "float32"
        super().__init__(**kwargs)
        if num_bins is None or isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins <= 0:
            raise ValueError(
                "The `num_bins` for `Hashing` cannot be `None` or non-positive values. "
                f"Received: num_bins={num_bins}."
            )
        if output_mode == "int" and self.dtype_policy.name not in ("int32", "int64"):
            raise ValueError(
                "When `output_mode=\"int\"`, `dtype` should be an integer type, 'int32' or 'in64'. "
                f"Received: dtype={kwargs['dtype']}"
            )
        if output_mode not in OUTPUT_MODES:
            raise ValueError(
                f"Invalid value for argument `output_mode`. Expected one of {OUTPUT_MODES}. "
                f"Received: output_mode={output_mode}"
            )
        if sparse:
            raise ValueError("`sparse=True` can only be used with the TensorFlow backend.")
        self.num_bins = num_bins
        self.mask_value = mask_value
        self.strong_hash = salt is not None
        self.output_mode = output_mode
        self.sparse = sparse
        self.salt = None
        if salt is not None:
            if isinstance(salt, (tuple, list)) and len(salt) == 2:
                self.salt = list(salt)
            elif isinstance(salt, int) and not isinstance(salt, bool):
                self.salt = [salt, salt]
            else:
                raise ValueError(
                    "The `salt` argument for `Hashing` can only be a tuple of size 2 integers, or a single integer. "
                    f"Received: salt={salt}."
                )
        self.built = True

    def _bin(self, value, bins: int) -> int:
        data = as_hash_bytes(value)
        h = siphash24(self.salt[0], self.salt[1], data) if self.strong_hash else fingerprint64(data)
        return h % bins

    def call(self, inputs):
        device = self._output_device(inputs)
        arr = to_host_array(inputs)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.int64)  # Keras casts floats to int64 before hashing
        bins = self.num_bins
        masked = self.mask_value is not None and bins > 1
        if masked:
            bins -= 1
        cache = {}
        out = []
        for value in arr.reshape(-1).tolist():
            hit = cache.get(value)
            if hit is None:
                if masked and value == self.mask_value:
                    hit = 0
                else:
                    hit = self._bin(value, bins) + (1 if masked else 0)
                cache[value] = hit
            out.append(hit)
        indices = torch.tensor(out, dtype=torch.int64, device=device).reshape(arr.shape)
        if self.output_mode == "int":
            return indices.to(self._compute_torch_dtype)
        return encode(indices, self.output_mode, self.num_bins, self._compute_torch_dtype)

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        if len(input_shape) == 0:
            return (self.num_bins,)
        return tuple(input_shape[:-1]) + (self.num_bins,)

    def get_config(self):
        config = super().get_config()
        config.update({"num_bins": self.num_bins, "salt": self.salt, "mask_value": self.mask_value,
                       "output_mode": self.output_mode, "sparse": self.sparse})
        return config
