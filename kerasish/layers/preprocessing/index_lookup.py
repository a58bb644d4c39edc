"""`IndexLookup`: the machinery of `StringLookup` and `IntegerLookup`.

Index layout (Keras's): `[mask] [OOV x num_oov_indices] [vocabulary...]` —
the mask slot exists only when `mask_token` is set and `output_mode="int"`.
Out-of-vocabulary values go to the single OOV index, or with several OOV
indices to `hash(value) % num_oov_indices` (FarmHash Fingerprint64 of the
string, SipHash-2-4 with `salt`; integers by `value % num_oov_indices` unless
`oov_method="farmhash"`). The vocabulary lives on the Python side (a list
and a dict); integer tensors are looked up on torch (`searchsorted` over
the sorted vocabulary), so IntegerLookup on tensors stays on the device.
"""

from __future__ import annotations

import collections
import math
import os

import numpy as np
import torch

from kerasish.layers import call_context
from kerasish.layers.preprocessing.encoding import encode
from kerasish.layers.preprocessing.encoding import encoded_shape
from kerasish.layers.preprocessing.host_inputs import HostInputLayer
from kerasish.layers.preprocessing.host_inputs import to_host_array
from kerasish.layers.preprocessing.string_hashing import as_hash_bytes
from kerasish.layers.preprocessing.string_hashing import fingerprint64
from kerasish.layers.preprocessing.string_hashing import siphash24


def _shape_probe() -> bool:
    """Whether this call is kerasish's shape inference running a user layer on placeholder inputs (zeros,
    empty strings): values out of a `num_oov_indices=0` vocabulary are expected there, not an error."""
    return call_context.state().symbolic

_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")
VOCABULARY_FILE = "vocabulary.txt"  # Keras's asset name in .keras archives


def _listify(value):
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return list(value)


class IndexLookup(HostInputLayer):
    """Maps values to indices (and back with `invert=True`); see module doc."""

    _string = True  # StringLookup; IntegerLookup sets False

    def __init__(self, max_tokens, num_oov_indices, mask_token, oov_token, vocabulary_dtype, vocabulary=None,
                 idf_weights=None, invert=False, output_mode="int", sparse=False, pad_to_max_tokens=False,
                 oov_method="floormod", salt=None, name=None, **kwargs):
        cls = type(self).__name__
        if max_tokens is not None and max_tokens <= 1:
            raise ValueError(f"If set, `max_tokens` must be greater than 1. Received: max_tokens={max_tokens}")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(f"If pad_to_max_tokens is True, must set `max_tokens`. Received: max_tokens={max_tokens}")
        if num_oov_indices < 0:
            raise ValueError(
                f"`num_oov_indices` must be greater than or equal to 0. Received: num_oov_indices={num_oov_indices}"
            )
        if oov_method not in ("floormod", "farmhash"):
            raise ValueError(
                f"The `oov_method` argument of {cls} must be one of 'floormod', 'farmhash'. "
                f"Received: oov_method={oov_method!r}"
            )
        if salt is not None:
            if not self._string and oov_method != "farmhash":
                raise ValueError(f"`salt` can only be used when `oov_method='farmhash'`. Received: oov_method={oov_method}")
            if isinstance(salt, (tuple, list)) and len(salt) == 2:
                salt = list(salt)
            elif isinstance(salt, int) and not isinstance(salt, bool):
                salt = [salt, salt]
            else:
                raise ValueError(
                    f"The `salt` argument for `{cls}` can only be a tuple of 2 integers, or a single integer. "
                    f"Received: salt={salt}."
                )
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if output_mode not in _MODES:
            raise ValueError(
                f"The `output_mode` argument of {cls} must be one of {', '.join(repr(m) for m in _MODES)}. "
                f"Received: output_mode={output_mode!r}"
            )
        if invert and output_mode != "int":
            raise ValueError(f"`output_mode` must be `'int'` when `invert` is true. Received: output_mode={output_mode}")
        if sparse:
            raise ValueError("`sparse=True` can only be used with the TensorFlow backend.")
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError(
                "`idf_weights` should only be set if `output_mode` is `'tf_idf'`. "
                f"Received: idf_weights={idf_weights} and output_mode={output_mode}"
            )
        frozen_size = kwargs.pop("vocabulary_size", None)
        has_input_vocabulary = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        kwargs.pop("trainable", None)
        kwargs.pop("dtype", None)
        if kwargs:
            raise ValueError(f"Unrecognized keyword argument(s): {kwargs}")
        super().__init__(name=name)
        self.invert = invert
        self.max_tokens = max_tokens
        self.num_oov_indices = num_oov_indices
        self.mask_token = mask_token
        self.oov_token = oov_token
        self.output_mode = output_mode
        self.sparse = sparse
        self.pad_to_max_tokens = pad_to_max_tokens
        self.vocabulary_dtype = vocabulary_dtype
        self.oov_method = oov_method
        self.salt = salt
        self.input_vocabulary = vocabulary if not isinstance(vocabulary, str) else None
        self.input_idf_weights = idf_weights
        self._has_input_vocabulary = has_input_vocabulary
        self._frozen_vocab_size = frozen_size
        self._tokens: list = []
        self._index: dict = {}
        self._sorted_keys = self._sorted_ids = torch.zeros(0, dtype=torch.int64)
        self.idf_weights = None
        self._counts = collections.Counter()
        self._doc_counts = collections.Counter()
        self._num_documents = 0
        if output_mode == "tf_idf" and has_input_vocabulary and idf_weights is None:
            raise ValueError(
                "When specifying the `vocabulary` argument, in TF-IDF output mode, the `idf_weights` argument "
                "must also be provided."
            )
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        self.built = True

    # ------------------------------------------------------------ indices
    def _oov_start_index(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start_index(self) -> int:
        return self._oov_start_index() + self.num_oov_indices

    def vocabulary_size(self) -> int:
        """Size of the vocabulary, special tokens included."""
        return len(self._tokens) + self._token_start_index()

    def get_vocabulary(self, include_special_tokens=True) -> list:
        """The vocabulary in index order (Keras's layout, see module doc)."""
        vocab = [self.oov_token] * self._token_start_index() + list(self._tokens)
        if self.mask_token is not None and self.output_mode == "int":
            vocab[0] = self.mask_token
        if not include_special_tokens:
            vocab = vocab[self._token_start_index():]
        return vocab

    def _norm(self, token):
        if self._string:
            return token.decode("utf-8") if isinstance(token, bytes) else str(token)
        return int(token)

    def set_vocabulary(self, vocabulary, idf_weights=None):
        """Sets the vocabulary (a list, array or tensor, or a text file path
        with one token per line) and, for "tf_idf", its IDF weights."""
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError("`idf_weights` must be set if output_mode is 'tf_idf'.")
        elif idf_weights is not None:
            raise ValueError(
                "`idf_weights` should only be set if output_mode is `'tf_idf'`. "
                f"Received: output_mode={self.output_mode} and idf_weights={idf_weights}"
            )
        if isinstance(vocabulary, str):
            if not os.path.exists(vocabulary):
                raise ValueError(f"Vocabulary file {vocabulary} does not exist.")
            if self.output_mode == "tf_idf":
                raise ValueError("output_mode `'tf_idf'` does not support loading a vocabulary from file.")
            with open(vocabulary, encoding="utf-8") as f:
                lines = f.read().splitlines()
            vocabulary = lines
        vocabulary = [self._norm(t) for t in _listify(vocabulary)]
        if not vocabulary:
            raise ValueError(f"Cannot set an empty vocabulary. Received: vocabulary={vocabulary}")
        oov_start, token_start = self._oov_start_index(), self._token_start_index()
        special = [self.mask_token] * oov_start + [self.oov_token] * self.num_oov_indices
        found_special = vocabulary[:token_start] == special
        tokens = vocabulary[token_start:] if found_special else vocabulary
        repeated = [t for t, c in collections.Counter(tokens).items() if c > 1]
        if repeated:
            raise ValueError(
                "The passed vocabulary has at least one repeated term. Please uniquify your dataset. "
                f"The repeated terms are: {repeated}"
            )
        if self.mask_token is not None and self.mask_token in tokens:
            raise ValueError(
                f"Found reserved mask token at unexpected location in `vocabulary`. Note that passed `vocabulary` "
                "does not need to include the OOV and mask tokens. Either remove all mask and OOV tokens, or "
                f"include them only at the start of the vocabulary in precisely this order: {special}. "
                f"Received: mask_token={self.mask_token} at vocabulary index {tokens.index(self.mask_token)}"
            )
        if self.oov_token is not None and self.invert and self.oov_token in tokens:
            raise ValueError(
                "Found reserved OOV token at unexpected location in `vocabulary`. Note that passed `vocabulary` "
                "does not need to include the OOV and mask tokens. Either remove all mask and OOV tokens, or "
                f"include them only at the start of the vocabulary in precisely this order: {special}. "
                f"Received: oov_token={self.oov_token} at vocabulary index {tokens.index(self.oov_token)}"
            )
        if self.max_tokens is not None and token_start + len(tokens) > self.max_tokens:
            raise ValueError(
                "Attempted to set a vocabulary larger than the maximum vocab size. Received vocabulary size is "
                f"{token_start + len(tokens)}; `max_tokens` is {self.max_tokens}."
            )
        self._set_tokens(tokens)
        if self.output_mode == "tf_idf":
            weights = np.asarray(_listify(idf_weights), dtype="float32")
            if weights.ndim != 1:
                raise ValueError(f"TF-IDF data must be a 1-index array. Received: type(idf_weights)={type(idf_weights)}")
            if len(weights) != len(vocabulary):
                raise ValueError(
                    f"`idf_weights` must be the same length as vocabulary. len(idf_weights) is {len(weights)}; "
                    f"len(vocabulary) is {len(vocabulary)}"
                )
            front = 0 if found_special else token_start
            self._set_idf(weights, front, float(np.average(weights)))

    def _set_tokens(self, tokens):
        start = self._token_start_index()
        self._tokens = list(tokens)
        self._index = {t: i + start for i, t in enumerate(self._tokens)}
        self._frozen_vocab_size = self.vocabulary_size()
        if not self._string:
            # sorted keys and their indices, for torch lookups of integer tensors
            keys = torch.tensor(self._tokens, dtype=torch.int64)
            order = torch.argsort(keys)
            self._sorted_keys = keys[order]
            self._sorted_ids = torch.arange(start, start + len(keys), dtype=torch.int64)[order]

    def _set_idf(self, weights, front, front_value):
        back = self.max_tokens - front - len(weights) if self.pad_to_max_tokens and self.max_tokens else 0
        weights = np.pad(weights, (front, back), constant_values=(front_value, 0.0))
        self.idf_weights = torch.as_tensor(weights, dtype=torch.float32)

    # -------------------------------------------------------------- adapt
    def adapt(self, data, steps=None):
        """Learns the vocabulary (tokens by decreasing frequency, ties by
        decreasing value, as Keras) from an array / tensor / list of values,
        or an iterable of batches."""
        self.reset_state()
        if isinstance(data, (list, tuple, np.ndarray, torch.Tensor, str, bytes)):
            arr = to_host_array(data)
            self.update_state(arr.reshape(-1, 1) if arr.ndim <= 1 else arr)
        else:
            for i, batch in enumerate(data):
                if steps is not None and i >= steps:
                    break
                self.update_state(batch)
        self.finalize_state()

    def update_state(self, data):
        if self._has_input_vocabulary:
            raise ValueError(
                f"Cannot adapt layer '{self.name}' after setting a static vocabulary via `vocabulary` argument "
                "or `set_vocabulary()` method."
            )
        arr = to_host_array(data)
        if arr.ndim < 2:
            arr = arr.reshape(1, -1)
        self._update_rows(arr.reshape(arr.shape[0], -1).tolist())

    def _update_rows(self, rows):
        """Counts the tokens of `rows` (lists of tokens, possibly ragged);
        each row is one document for "tf_idf"."""
        rows = [[self._norm(t) for t in row] for row in rows]
        for row in rows:
            self._counts.update(row)
        if self.output_mode == "tf_idf":
            for row in rows:
                self._doc_counts.update(set(row))
            self._num_documents += len(rows)

    def finalize_state(self):
        if self._has_input_vocabulary or not self._counts:
            return
        for special in (self.mask_token, self.oov_token):
            if special is not None:
                self._counts.pop(self._norm(special), None)
        ranked = sorted(self._counts.items(), key=lambda item: (item[1], item[0]), reverse=True)
        if self.max_tokens:
            ranked = ranked[: self.max_tokens - self._token_start_index()]
        tokens = [t for t, _ in ranked]
        self._set_tokens(tokens)
        if self.output_mode == "tf_idf":
            idf = np.array([math.log(1 + self._num_documents / (1 + self._doc_counts[t])) for t in tokens],
                           dtype="float32")
            self._set_idf(idf, self._token_start_index(), float(np.mean(idf)) if len(idf) else 0.0)
        self.reset_state()

    def reset_state(self):
        if self._has_input_vocabulary:
            return
        self._counts = collections.Counter()
        self._doc_counts = collections.Counter()
        self._num_documents = 0

    # --------------------------------------------------------------- call
    def _oov_bucket(self, value) -> int:
        if not self._string and self.oov_method == "floormod":
            return int(value) % self.num_oov_indices
        data = as_hash_bytes(value)
        h = siphash24(self.salt[0], self.salt[1], data) if self.salt is not None else fingerprint64(data)
        return h % self.num_oov_indices

    def _lookup_host(self, arr: np.ndarray) -> np.ndarray:
        """Indices of the values in `arr` (any shape), Python side."""
        default = self._oov_start_index() if self.num_oov_indices == 1 else -1
        mask_value = 0 if self.output_mode == "int" else -1
        cache = {}
        oov = []

        def one(value):
            value = self._norm(value)
            hit = cache.get(value)
            if hit is None:
                if self.mask_token is not None and value == self.mask_token:
                    hit = mask_value
                else:
                    hit = self._index.get(value)
                    if hit is None:
                        if self.num_oov_indices == 0:
                            oov.append(value)
                            hit = -1
                        elif self.num_oov_indices == 1:
                            hit = default
                        else:
                            hit = self._oov_bucket(value) + self._oov_start_index()
                cache[value] = hit
            return hit

        flat = [one(v) for v in arr.reshape(-1).tolist()]
        if oov and _shape_probe():
            flat = [0 if v == -1 else v for v in flat]  # placeholder values of a shape probe: any index will do
        elif oov:
            raise ValueError(
                "When `num_oov_indices=0` all inputs should be in vocabulary, found OOV values "
                f"{sorted(set(oov), key=str)}, consider setting `num_oov_indices=1`."
            )
        return np.asarray(flat, dtype=np.int64).reshape(arr.shape)

    def _lookup_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Integer tensors on torch: searchsorted over the sorted vocabulary."""
        x = x.to(torch.int64)
        keys, ids = self._sorted_keys.to(x.device), self._sorted_ids.to(x.device)
        if len(keys):
            pos = torch.searchsorted(keys, x).clamp(max=len(keys) - 1)
            found = keys[pos] == x
            out = torch.where(found, ids[pos], torch.full_like(x, -1))
        else:
            found = torch.zeros_like(x, dtype=torch.bool)
            out = torch.full_like(x, -1)
        if self.num_oov_indices == 1:
            out = torch.where(found, out, torch.full_like(x, self._oov_start_index()))
        elif self.num_oov_indices > 1:
            out = torch.where(found, out, torch.remainder(x, self.num_oov_indices) + self._oov_start_index())
        elif _shape_probe():
            out = out.clamp_min(0)  # placeholder values of a shape probe: any index will do
        elif not bool(found.all()):
            raise ValueError(
                "When `num_oov_indices=0` all inputs should be in vocabulary, found OOV values "
                f"{sorted(set(x[~found].tolist()))}, consider setting `num_oov_indices=1`."
            )
        if self.mask_token is not None:
            mask_value = 0 if self.output_mode == "int" else -1
            out = torch.where(x == int(self.mask_token), torch.full_like(x, mask_value), out)
        return out

    def _invert(self, inputs):
        vocab = self.get_vocabulary()
        arr = to_host_array(inputs).astype(np.int64)
        mask = self.mask_token is not None

        def one(i):
            if mask and i == 0:
                return self.mask_token
            if 0 <= i < len(vocab) and i >= self._token_start_index():
                return vocab[i]
            return self.oov_token

        flat = [one(i) for i in arr.reshape(-1).tolist()]
        if self._string:
            out = np.empty(len(flat), dtype=object)
            out[:] = flat
            return out.reshape(arr.shape)
        device = self._output_device(inputs)
        return torch.tensor(flat, dtype=torch.int64, device=device).reshape(arr.shape)

    def call(self, inputs):
        if self.invert:
            return self._invert(inputs)
        if self.output_mode != "int" and not self.pad_to_max_tokens and not self._tokens:
            raise RuntimeError(
                f"When using `output_mode={self.output_mode}` and `pad_to_max_tokens=False`, you must set the "
                f"layer's vocabulary before calling it. Either pass a `vocabulary` argument to the layer, or call "
                f"`adapt` with some sample data. (layer '{self.name}')"
            )
        if isinstance(inputs, torch.Tensor) and not self._string and not inputs.is_floating_point():
            indices = self._lookup_tensor(inputs)
        else:
            arr = to_host_array(inputs)
            if self._string and arr.dtype != object:
                raise TypeError(
                    f"Layer '{self.name}' ({type(self).__name__}) expects string inputs. "
                    f"Received values of dtype {arr.dtype}"
                )
            device = self._output_device(inputs)
            indices = torch.as_tensor(self._lookup_host(arr), device=device)
        if self.output_mode == "int":
            return indices
        depth = self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size
        if self.output_mode == "tf_idf":
            counts = encode(indices if indices.ndim else indices.reshape(1), "count", depth, torch.float32)
            return counts * self.idf_weights.to(counts.device)
        return encode(indices if indices.ndim else indices.reshape(1), self.output_mode, depth, torch.float32)

    def _symbolic_output_dtype(self) -> str:
        if self.invert:
            return self.vocabulary_dtype
        return "int64" if self.output_mode == "int" else "float32"

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        depth = self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size
        mode = "count" if self.output_mode == "tf_idf" else self.output_mode
        if mode in ("multi_hot", "count"):
            return tuple(input_shape)[:-1] + (depth,)
        return encoded_shape(input_shape, mode, depth)

    # ------------------------------------------------------------- saving
    def save_assets(self, dir_path):
        """Writes an adapted vocabulary to `dir_path/vocabulary.txt` (Keras's
        .keras asset); a constructor vocabulary lives in the config instead."""
        if self.input_vocabulary is not None:
            return
        with open(os.path.join(dir_path, VOCABULARY_FILE), "w", encoding="utf-8") as f:
            f.write("\n".join(str(w) for w in self.get_vocabulary(include_special_tokens=True)))

    def load_assets(self, dir_path):
        if self.input_vocabulary is not None:
            return
        with open(os.path.join(dir_path, VOCABULARY_FILE), encoding="utf-8") as f:
            lines = f.read().splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        values = lines if self._string else [int(v) for v in lines]
        if self.output_mode == "tf_idf":
            self.set_vocabulary(values, idf_weights=self.idf_weights.numpy())
        else:
            self.set_vocabulary(values)

    def save_own_variables(self, store):
        if self.output_mode == "tf_idf" and self.idf_weights is not None:
            store["0"] = self.idf_weights.numpy()

    def load_own_variables(self, store):
        if self.output_mode == "tf_idf" and len(store) >= 1:
            self.idf_weights = torch.as_tensor(np.asarray(store["0"]), dtype=torch.float32)

    def get_config(self):
        config = super().get_config()
        config.update({
            "invert": self.invert,
            "max_tokens": self.max_tokens,
            "num_oov_indices": self.num_oov_indices,
            "oov_token": self.oov_token,
            "mask_token": self.mask_token,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
            "pad_to_max_tokens": self.pad_to_max_tokens,
            "vocabulary_dtype": self.vocabulary_dtype,
            "idf_weights": _listify(self.input_idf_weights),
            "vocabulary": _listify(self.input_vocabulary),
            "vocabulary_size": self._frozen_vocab_size,
            "oov_method": self.oov_method,
            "salt": self.salt,
        })
        return config
