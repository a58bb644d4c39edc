"""`keras.utils.text_dataset_from_directory` without TensorFlow."""

from __future__ import annotations

import functools

import numpy as np

from kerasish.utils.image_dataset_utils import check_format
from kerasish.utils.image_dataset_utils import check_labels_args
from kerasish.utils.image_dataset_utils import index_files
from kerasish.utils.image_dataset_utils import make_datasets


def read_text(path, max_length=None) -> str:
    """A text file's contents as a `str` (UTF-8), cut to `max_length` characters."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return text if max_length is None else text[:max_length]


def text_dataset_from_directory(
    directory,
    labels="inferred",
    label_mode="int",
    class_names=None,
    batch_size=32,
    max_length=None,
    shuffle=True,
    seed=None,
    validation_split=None,
    subset=None,
    follow_links=False,
    format="tf",
    verbose=True,
):
    """A dataset of `(texts, labels)` batches from `.txt` files in class subfolders.

    Keras 3.15's function, arguments, defaults, checks and messages, on
    torch; files are found, ordered, shuffled with `seed` and split as in
    Keras (see `image_dataset_from_directory`, whose arguments of the same
    name mean the same). Only files ending in `.txt` are read.

    Args:
        directory: The folder of the text files.
        labels: "inferred", None, or a list/tuple of integer labels, one per
            file in sorted path order. Defaults to "inferred".
        label_mode: "int", "categorical", "binary" or None. Defaults to "int".
        class_names: With `labels="inferred"`, the subfolders to use, in
            label order. Defaults to None.
        batch_size: Texts per batch, or None for single texts. Defaults to 32.
        max_length: Texts longer than this many characters are truncated.
            (TensorFlow's dataset cuts bytes; this one, like Keras's
            `format="grain"`, cuts characters of the decoded text.)
            Defaults to None.
        shuffle: Whether to shuffle the files (again on every pass).
            Defaults to True.
        seed: Seed of the shuffling. Defaults to None.
        validation_split: Fraction of the files kept for validation.
        subset: "training", "validation" or "both".
        follow_links: Whether to walk into symlinked folders. Defaults to False.
        format: "tf" or "grain", as in Keras; both return the torch dataset.
        verbose: Whether to print "Found N files belonging to M classes.".
            Defaults to True.

    Returns:
        A `FileDataset` (see `image_dataset_from_directory`) whose text
        batches are NumPy object arrays of `str` `(batch,)` (torch has no
        string tensors; `TextVectorization` and `fit` take them), read as
        UTF-8; a single text (`batch_size=None`) is a `str`. It has
        `class_names` and `file_paths`.
    """
    labels, label_mode = check_labels_args(labels, label_mode, class_names, "text")
    check_format(format)
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer))
                                   or max_length < 0):
        raise ValueError(f"`max_length` must be a non-negative integer or None. Received: max_length={max_length}")
    file_paths, labels, class_names, seed = index_files(
        directory, labels, label_mode, class_names, (".txt",), batch_size, validation_split, subset, shuffle, seed,
        follow_links, verbose)
    loader = functools.partial(read_text, max_length=max_length)
    return make_datasets(directory, file_paths, labels, class_names, label_mode, batch_size, shuffle, seed,
                         validation_split, subset, loader, "text files", "Allowed format: .txt")
