"""`TextVectorization`."""

from __future__ import annotations

import re

import numpy as np
import torch

from kerasish.layers.preprocessing.host_inputs import HostInputLayer
from kerasish.layers.preprocessing.host_inputs import to_host_array
from kerasish.layers.preprocessing.string_lookup import StringLookup

# Keras's DEFAULT_STRIP_REGEX: ASCII punctuation removed by "strip_punctuation"
_STRIP = re.compile(r"[!\"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~']")
_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
_SPLIT = ("whitespace", "character")


def _check_choice(value, name, allowed):
    if value is None or callable(value) or value in allowed:
        return
    raise ValueError(
        f"The `{name}` argument of TextVectorization must be one of {allowed}, None or a callable. "
        f"Received: {name}={value!r}"
    )


class TextVectorization(HostInputLayer):
    """Turns raw strings into token indices or encodings (`keras.layers.TextVectorization`).

    Each string is standardized (lower-cased and/or stripped of ASCII
    punctuation), split into tokens (on whitespace, or into characters),
    optionally expanded to n-grams (joined by a space, all n-grams of each
    width in turn), then looked up in the vocabulary by an inner
    `StringLookup` with `mask_token=""` — so in "int" mode index 0 is
    padding and 1 the OOV token `[UNK]`. Strings stay on the Python side; the
    result is a torch tensor: `int64` `(batch, sequence_length)` in "int"
    mode (padded with 0 / truncated to `output_sequence_length`, or padded to
    the longest sequence of the batch), float `(batch, vocabulary_size)`
    encodings otherwise.

    Args:
        max_tokens: Maximum vocabulary size (padding and OOV included), or None.
        standardize: "lower_and_strip_punctuation" (default), "lower",
            "strip_punctuation", None, or a callable on a NumPy array of strings.
        split: "whitespace" (default), "character", None, or a callable
            mapping one string to a list of tokens.
        ngrams: None, an int `n` (widths 1..n) or a tuple of widths.
        output_mode: "int", "multi_hot", "count" or "tf_idf" (and "one_hot").
            Defaults to "int".
        output_sequence_length: "int" mode: pad / truncate to this length.
        pad_to_max_tokens: Encodings have `max_tokens` columns. Defaults to False.
        vocabulary: A list of strings or a text file path (else `adapt`).
        idf_weights: IDF weights with `vocabulary` in "tf_idf" mode.
        sparse, ragged: Only False (torch tensors are dense and rectangular).
        encoding: Encoding of bytes inputs. Defaults to "utf-8".

    Input: a list of strings, a NumPy array of shape `(batch,)` or
    `(batch, 1)`.

    Example:
        >>> layer = keras.layers.TextVectorization(output_sequence_length=4)
        >>> layer.adapt(["the cat sat", "the dog"])
        >>> layer(["The cat!", "a dog sat"])
        tensor([[2, 5, 0, 0],
                [1, 4, 3, 0]])
    """

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation", split="whitespace", ngrams=None,
                 output_mode="int", output_sequence_length=None, pad_to_max_tokens=False, vocabulary=None,
                 idf_weights=None, sparse=False, ragged=False, encoding="utf-8", name=None, **kwargs):
        if sparse or ragged:
            raise ValueError("`sparse=True` and `ragged=True` can only be used with the TensorFlow backend.")
        _check_choice(standardize, "standardize", _STANDARDIZE)
        _check_choice(split, "split", _SPLIT)
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if output_mode not in ("int", "one_hot", "multi_hot", "count", "tf_idf"):
            raise ValueError(
                "The `output_mode` argument of TextVectorization must be one of 'int', 'one_hot', 'multi_hot', "
                f"'count', 'tf_idf'. Received: output_mode={output_mode!r}"
            )
        if not (ngrams is None or (isinstance(ngrams, int) and not isinstance(ngrams, bool))
                or (isinstance(ngrams, tuple) and all(isinstance(n, int) for n in ngrams))):
            raise ValueError(f"`ngrams` must be None, an integer, or a tuple of integers. Received: ngrams={ngrams}")
        if output_mode == "int" and not (output_sequence_length is None or isinstance(output_sequence_length, int)):
            raise ValueError(
                "`output_sequence_length` must be either None or an integer when `output_mode` is 'int'. "
                f"Received: output_sequence_length={output_sequence_length}"
            )
        if output_mode != "int" and output_sequence_length is not None:
            raise ValueError(
                "`output_sequence_length` must not be set if `output_mode` is not 'int'. "
                f"Received output_sequence_length={output_sequence_length}."
            )
        has_input_vocabulary = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        vocabulary_size = kwargs.pop("vocabulary_size", None)
        super().__init__(name=name, **kwargs)
        self._standardize = standardize
        self._split = split
        self._ngrams_arg = ngrams
        self._ngrams = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
        self._output_mode = output_mode
        self._output_sequence_length = output_sequence_length
        self._encoding = encoding
        self._lookup_layer = StringLookup(
            max_tokens=max_tokens, vocabulary=vocabulary, idf_weights=idf_weights,
            pad_to_max_tokens=pad_to_max_tokens, mask_token="", output_mode=output_mode, encoding=encoding,
            has_input_vocabulary=has_input_vocabulary, vocabulary_size=vocabulary_size,
        )
        self.built = True

    # ------------------------------------------------------------- tokens
    def _standardize_all(self, texts: np.ndarray) -> np.ndarray:
        if callable(self._standardize):
            return to_host_array(self._standardize(texts), self._encoding)
        out = texts.copy()
        for i, text in enumerate(out.tolist()):
            if self._standardize in ("lower", "lower_and_strip_punctuation"):
                text = text.lower()
            if self._standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
                text = _STRIP.sub("", text)
            out[i] = text
        return out

    def _tokens(self, inputs) -> list:
        """One list of tokens (n-grams included) per input string."""
        arr = to_host_array(inputs, self._encoding)
        if arr.ndim > 1:
            if arr.shape[-1] != 1:
                raise ValueError(
                    "When using `TextVectorization` to tokenize strings, the input rank must be 1 or the last "
                    f"shape dimension must be 1. Received: inputs.shape={arr.shape} with rank={arr.ndim}"
                )
            arr = arr.reshape(arr.shape[:-1])
        if arr.dtype != object or arr.ndim != 1:
            if arr.ndim == 0 and arr.dtype == object:
                arr = arr.reshape(1)
            else:
                raise TypeError(
                    f"Layer '{self.name}' (TextVectorization) expects a batch of strings. Received: {inputs!r}"
                )
        texts = self._standardize_all(arr)
        rows = []
        for text in texts.tolist():
            if self._split is None:
                tokens = [text]
            elif self._split == "whitespace":
                tokens = text.split()
            elif self._split == "character":
                tokens = list(text)
            else:
                tokens = list(self._split(text))
            if self._ngrams is not None:
                tokens = [" ".join(tokens[i:i + n]) for n in self._ngrams for i in range(len(tokens) - n + 1)]
            rows.append(tokens)
        return rows

    # -------------------------------------------------------------- adapt
    def adapt(self, data, batch_size=None, steps=None):
        """Learns the vocabulary (and IDF weights) from strings: a list or
        array, or an iterable of such batches."""
        lookup = self._lookup_layer
        lookup.reset_state()
        if isinstance(data, (list, tuple, np.ndarray, str, bytes)):
            batches = [data]
        else:
            batches = data
        for i, batch in enumerate(batches):
            if steps is not None and i >= steps:
                break
            self.update_state(batch)
        self.finalize_state()

    def update_state(self, data):
        if self._lookup_layer._has_input_vocabulary:
            raise ValueError(
                f"Cannot adapt layer '{self.name}' after setting a static vocabulary via `vocabulary` argument "
                "or `set_vocabulary()` method."
            )
        self._lookup_layer._update_rows(self._tokens(data))

    def finalize_state(self):
        self._lookup_layer.finalize_state()

    def reset_state(self):
        self._lookup_layer.reset_state()

    def get_vocabulary(self, include_special_tokens=True):
        return self._lookup_layer.get_vocabulary(include_special_tokens)

    def vocabulary_size(self):
        return self._lookup_layer.vocabulary_size()

    def set_vocabulary(self, vocabulary, idf_weights=None):
        self._lookup_layer.set_vocabulary(vocabulary, idf_weights=idf_weights)

    # --------------------------------------------------------------- call
    def call(self, inputs):
        rows = self._tokens(inputs)
        length = max((len(r) for r in rows), default=0)
        if self._output_mode == "int" and self._output_sequence_length is not None:
            length = self._output_sequence_length
        width = max(length, max((len(r) for r in rows), default=0), 1)
        padded = np.empty((len(rows), width), dtype=object)
        padded[:] = ""  # the mask token: index 0 in "int" mode, no count otherwise
        for i, row in enumerate(rows):
            padded[i, : len(row)] = row
        out = self._lookup_layer.call(padded)
        if self._output_mode == "int":
            out = out[:, :length] if length else out[:, :0]
            return out.contiguous()
        return out

    def _symbolic_output_dtype(self) -> str:
        return "int64" if self._output_mode == "int" else self.compute_dtype

    def compute_output_shape(self, input_shape):
        batch = input_shape[0] if len(input_shape) else None
        if self._output_mode == "int":
            return (batch, self._output_sequence_length)
        lookup = self._lookup_layer
        depth = lookup.max_tokens if lookup.pad_to_max_tokens else lookup._frozen_vocab_size
        return (batch, depth)

    # ------------------------------------------------------------- saving
    def save_assets(self, dir_path):
        self._lookup_layer.save_assets(dir_path)

    def load_assets(self, dir_path):
        self._lookup_layer.load_assets(dir_path)

    def get_config(self):
        lookup = self._lookup_layer
        config = super().get_config()
        config.update({
            "max_tokens": lookup.max_tokens,
            "standardize": self._standardize,
            "split": self._split,
            "ngrams": self._ngrams_arg,
            "output_mode": self._output_mode,
            "output_sequence_length": self._output_sequence_length,
            "pad_to_max_tokens": lookup.pad_to_max_tokens,
            "sparse": False,
            "ragged": False,
            "vocabulary": lookup.get_config()["vocabulary"],
            "idf_weights": lookup.get_config()["idf_weights"],
            "encoding": self._encoding,
            "vocabulary_size": lookup.vocabulary_size(),
        })
        return config
