"""The word-id sequence processing shared by imdb and reuters (Keras's order
of steps, so that the same seed gives the same order and the same ids)."""

from __future__ import annotations

import json

import numpy as np


def shuffle(rng, *arrays):
    """Permutes `arrays` (of one length) by one `rng.shuffle` of their indices."""
    indices = np.arange(len(arrays[0]))
    rng.shuffle(indices)
    return [a[indices] for a in arrays]


def offset(xs, start_char, index_from):
    """Each sequence as a list of ints: `index_from` added, `start_char`
    prepended (unless None)."""
    if start_char is not None:
        return [[start_char] + [w + index_from for w in x] for x in xs]
    if index_from:
        return [[w + index_from for w in x] for x in xs]
    return [list(x) for x in xs]


def drop_long(maxlen, xs, labels):
    """Keeps the sequences shorter than `maxlen` (strictly, as Keras)."""
    kept = [(x, y) for x, y in zip(xs, labels) if len(x) < maxlen]
    return [x for x, _ in kept], [y for _, y in kept]


def limit_vocabulary(xs, num_words, skip_top, oov_char):
    """Ids outside `[skip_top, num_words)` become `oov_char`, or are dropped
    when it is None. `num_words` None (or 0) keeps every id."""
    if not num_words:
        num_words = max(max(x) for x in xs if len(x)) if any(len(x) for x in xs) else 0
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]


def object_array(seqs):
    """A 1-D object array of lists, one per sequence."""
    out = np.empty(len(seqs), dtype="object")
    for i, seq in enumerate(seqs):  # element by element: equal lengths must not make a 2-D array
        out[i] = seq
    return out


def check_kwargs(fn_name, kwargs, num_words):
    """Keras 2's `nb_words` alias of `num_words`; any other keyword is an error."""
    if "nb_words" in kwargs:
        import warnings

        warnings.warn("The `nb_words` argument in `load_data` has been renamed `num_words`.", stacklevel=3)
        num_words = kwargs.pop("nb_words")
    if kwargs:
        raise TypeError(f"`{fn_name}` got unexpected keyword arguments: {sorted(kwargs)}")
    return num_words


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
