"""Indexing folders of files and splitting datasets, as Keras 3's
`keras/src/utils/dataset_utils.py` does, without TensorFlow.

`index_directory` lists the files the `*_dataset_from_directory` functions
read: class subfolders in sorted order (or the order of `class_names`), each
walked recursively with `os.walk`, folders in sorted order, files sorted by
name and kept when their lower-cased name ends with one of `formats`; then
the whole list is shuffled with `np.random.RandomState(seed)` (the labels
with a second generator of the same seed), so the same seed gives Keras's
file order and hence Keras's training/validation split.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from kerasish.utils import io_utils


def check_validation_split_arg(validation_split, subset, shuffle, seed) -> None:
    """Keras's checks of `validation_split` / `subset` / `seed`."""
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be between 0 and 1, received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f'`subset` must be either "training", "validation" or "both", received: {subset}')
    if validation_split and shuffle and seed is None:
        raise ValueError(
            "If using `validation_split` and shuffling the data, you must provide a `seed` argument, to make "
            "sure that there is no overlap between the training and validation subset."
        )


def _walk_files(directory, follow_links, formats):
    """(root, file name) of every file under `directory` with an allowed
    extension: folders in sorted order, file names sorted in each."""
    walk = os.walk(directory, followlinks=bool(follow_links))
    for root, _, files in sorted(walk, key=lambda entry: entry[0]):
        for fname in sorted(files):
            if fname.lower().endswith(formats):
                yield root, fname


def _index_subdirectory(directory, class_index, follow_links, formats):
    """Paths relative to the parent of `directory` (they start with its
    name) and the label `class_index` for each."""
    dirname = os.path.basename(directory)
    paths = []
    for root, fname in _walk_files(directory, follow_links, formats):
        rel = os.path.relpath(os.path.join(root, fname), directory)
        paths.append(os.path.join(dirname, rel))
    return paths, [class_index] * len(paths)


def index_directory(directory, labels, formats, class_names=None, shuffle=True, seed=None, follow_links=False,
                    verbose=True):
    """`(file_paths, labels, class_names)` of the files under `directory`.

    `labels` is "inferred" (from the class subfolders), None, or a
    list/tuple of integer labels, one per file in sorted path order.
    `labels` comes back as an int32 NumPy array ("inferred"), the given
    labels (shuffled with the paths), or None. See the module docstring for
    the order of the files.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"`directory` must be an existing directory. Received: directory={directory}")
    if labels == "inferred":
        subdirs = []
        for subdir in sorted(os.listdir(directory)):
            if os.path.isdir(os.path.join(directory, subdir)) and not subdir.startswith("."):
                subdirs.append(subdir.rstrip("/"))
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ValueError(
                    "The `class_names` passed did not match the names of the subdirectories of the target "
                    f"directory. Expected: {subdirs} (or a subset of it), but received: class_names={class_names}"
                )
            subdirs = list(class_names)  # the order given
    else:
        # explicit labels or none: the folder structure is ignored
        subdirs = [""]
        if class_names is not None:
            if labels is None:
                raise ValueError("When `labels=None` (no labels), argument `class_names` cannot be specified.")
            raise ValueError(
                "When argument `labels` is specified, argument `class_names` cannot be specified (the "
                "`class_names` will be the sorted list of labels)."
            )
    class_names = subdirs
    filenames, label_lists = [], []
    for index, subdir in enumerate(subdirs):
        paths, sub_labels = _index_subdirectory(os.path.join(directory, subdir), index, follow_links, formats)
        filenames += paths
        label_lists += sub_labels
    if labels == "inferred":
        labels = np.asarray(label_lists, dtype="int32").reshape(-1)
    elif labels is None:
        class_names = None
    else:
        if len(labels) != len(filenames):
            raise ValueError(
                "Expected the lengths of `labels` to match the number of files in the target directory. "
                f"len(labels) is {len(labels)} while we found {len(filenames)} files in directory {directory}."
            )
        class_names = [str(label) for label in sorted(set(labels))]
    if verbose:
        if labels is None:
            io_utils.print_msg(f"Found {len(filenames)} files.")
        else:
            io_utils.print_msg(f"Found {len(filenames)} files belonging to {len(class_names)} classes.")
    file_paths = [os.path.join(directory, fname) for fname in filenames]
    if shuffle:
        # Keras shuffles the paths, then the labels, each with a fresh
        # RandomState(seed): the same permutation for both
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(file_paths)
        if labels is not None:
            if not isinstance(labels, np.ndarray):
                labels = list(labels)  # Keras shuffles the caller's list in place; a copy here
            np.random.RandomState(seed).shuffle(labels)
    return file_paths, labels, class_names


def get_training_or_validation_split(samples, labels, validation_split, subset):
    """The last `int(validation_split * n)` samples are the validation
    subset, the others the training subset (Keras's rule, with its
    "Using N files for ..." message)."""
    if not validation_split:
        return samples, labels
    num_val = int(validation_split * len(samples))
    start = len(samples) - num_val
    # Keras slices `[:-num_val]` / `[-num_val:]`: when `validation_split`
    # is too small for one file (num_val == 0) that makes the training
    # subset empty and the validation subset every file. Here the training
    # subset is then every file and the validation subset empty (an error).
    if subset == "training":
        io_utils.print_msg(f"Using {start} files for training.")
        samples = samples[:start]
        labels = labels[:start] if labels is not None else None
    elif subset == "validation":
        io_utils.print_msg(f"Using {num_val} files for validation.")
        samples = samples[start:]
        labels = labels[start:] if labels is not None else None
    else:
        raise ValueError(f'`subset` must be either "training" or "validation", received: {subset}')
    return samples, labels


def encode_labels(labels, label_mode, num_classes) -> torch.Tensor:
    """A batch of integer labels as Keras's datasets yield them: int32
    `(n,)` ("int"), float32 `(n, 1)` ("binary"), float32 one-hot
    `(n, num_classes)` ("categorical")."""
    idx = torch.as_tensor(np.asarray(labels, dtype="int64"))
    if label_mode == "binary":
        return idx.to(torch.float32).unsqueeze(-1)
    if label_mode == "categorical":
        # tf.one_hot gives an all-zero row for an index outside [0, num_classes)
        valid = (idx >= 0) & (idx < num_classes)
        out = torch.zeros((idx.shape[0], num_classes), dtype=torch.float32)
        rows = torch.nonzero(valid).reshape(-1)
        out[rows, idx[rows]] = 1.0
        return out
    return idx.to(torch.int32)


# ------------------------------------------------------------ split_dataset


class _DictDataset(torch.utils.data.Dataset):
    """Rows of a dict of equal-length tensors, each a dict (kerasish's
    extension: Keras's `split_dataset` refuses dicts)."""

    def __init__(self, tensors: dict):
        self.tensors = tensors
        self._n = len(next(iter(tensors.values())))

    def __len__(self):
        return self._n

    def __getitem__(self, index):
        return {k: v[index] for k, v in self.tensors.items()}


def _as_tensor(x, where):
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise TypeError(
        f"The `dataset` argument must be a `torch.utils.data.Dataset` object, or a list/tuple/dict of arrays. "
        f"Received: {where} of type {type(x)}"
    )


def _to_torch_dataset(dataset):
    if isinstance(dataset, torch.utils.data.Dataset):
        return dataset
    if isinstance(dataset, (np.ndarray, torch.Tensor)):
        return torch.utils.data.TensorDataset(_as_tensor(dataset, "dataset"))
    if isinstance(dataset, (list, tuple, dict)):
        if len(dataset) == 0:
            raise ValueError(f"Received an empty {type(dataset).__name__} dataset. Please provide a non-empty "
                             f"{type(dataset).__name__} of arrays.")
        items = dataset.items() if isinstance(dataset, dict) else enumerate(dataset)
        tensors = {k: _as_tensor(v, f"dataset[{k!r}]") for k, v in items}
        lengths = {k: (t.shape[0] if t.ndim else None) for k, t in tensors.items()}
        if len(set(lengths.values())) != 1 or None in lengths.values():
            raise ValueError(
                f"All arrays of `dataset` must have the same length (first dimension). Received lengths: "
                f"{lengths}"
            )
        if isinstance(dataset, dict):
            return _DictDataset(tensors)
        return torch.utils.data.TensorDataset(*tensors.values())
    raise TypeError(
        "The `dataset` argument must be a `torch.utils.data.Dataset` object, or a list/tuple of arrays. "
        f"Received: dataset={dataset} of type {type(dataset)}"
    )


def _rescale_split_sizes(left_size, right_size, total_length):
    """Keras's checks of `left_size` / `right_size` (types, ranges, sums)
    and the integer sizes they give; floats are rounded."""
    lt, rt = type(left_size), type(right_size)
    if (left_size is not None and lt not in (int, float)) and (right_size is not None and rt not in (int, float)):
        raise TypeError(
            "Invalid `left_size` and `right_size` Types. Expected: integer or float or None, Received: "
            f"type(left_size)={lt} and type(right_size)={rt}"
        )
    if left_size is not None and lt not in (int, float):
        raise TypeError(f"Invalid `left_size` Type. Expected: int or float or None, Received: type(left_size)={lt}.")
    if right_size is not None and rt not in (int, float):
        raise TypeError(
            f"Invalid `right_size` Type. Expected: int or float or None, Received: type(right_size)={rt}."
        )
    if left_size == 0 and right_size == 0:
        raise ValueError(
            "Both `left_size` and `right_size` are zero. At least one of the split sizes must be non-zero."
        )
    if (lt is int and (left_size <= 0 or left_size >= total_length)) or (
            lt is float and (left_size <= 0 or left_size >= 1)):
        raise ValueError(
            f"`left_size` should be either a positive integer smaller than {total_length}, or a float within the "
            f"range `[0, 1]`. Received: left_size={left_size}"
        )
    if (rt is int and (right_size <= 0 or right_size >= total_length)) or (
            rt is float and (right_size <= 0 or right_size >= 1)):
        raise ValueError(
            f"`right_size` should be either a positive integer and smaller than {total_length} or a float within "
            f"the range `[0, 1]`. Received: right_size={right_size}"
        )
    if lt is float and rt is float and left_size + right_size > 1:
        raise ValueError("The sum of `left_size` and `right_size` is greater than 1. It must be less than or "
                         "equal to 1.")
    # as Keras: fractions rounded, counts made floats (its messages show them so)
    left = round(left_size * total_length) if lt is float else (float(left_size) if lt is int else None)
    right = round(right_size * total_length) if rt is float else (float(right_size) if rt is int else None)
    if left is None:
        left = total_length - right
    elif right is None:
        right = total_length - left
    if left + right > total_length:
        raise ValueError(
            f"The sum of `left_size` and `right_size` should be smaller than the {total_length}. Received: "
            f"left_size + right_size = {left + right} and total_length = {total_length}"
        )
    for split, side in ((left, "left"), (right, "right")):
        if split == 0:
            raise ValueError(
                f"With `dataset` of length={total_length}, `left_size`={left} and `right_size`={right}. "
                f"Resulting {side} side dataset split will be empty. Adjust any of the aforementioned parameters"
            )
    return int(left), int(right)


def _split_order(total, shuffle, seed) -> list:
    """The order the samples are split in: Keras's `random_split` draws
    `torch.randperm(left + right)` from `torch.Generator().manual_seed(seed)`;
    with `left + right == total` that is this permutation."""
    if not shuffle:
        return list(range(total))
    generator = torch.Generator()
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    return torch.randperm(total, generator=generator).tolist()


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None, preferred_backend=None):
    """Splits a dataset into a left and a right part (e.g. train / test).

    As Keras 3 on its torch backend: `dataset` is a NumPy array, a tensor,
    a list/tuple of arrays of the same length, or a
    `torch.utils.data.Dataset`; the two parts are
    `torch.utils.data.Subset`s of a `TensorDataset` (elements are tuples of
    tensors) or of the given Dataset. A dict of arrays is accepted too
    (kerasish's extension; its elements are dicts).

    Args:
        dataset: The data to split.
        left_size: Float in `(0, 1)`: the fraction of the samples in the
            left part (rounded); int: their number. None: the complement of
            `right_size`. Defaults to None.
        right_size: Likewise for the right part. Defaults to None.
        shuffle: Whether to split a random permutation of the samples.
            Defaults to False.
        seed: Seed of the permutation: `torch.Generator().manual_seed(seed)`
            and `torch.randperm`, as Keras's `random_split`, so a seed gives
            Keras's split. Defaults to None (a random permutation).
        preferred_backend: None or "torch" (the only backend here).

    Returns:
        `(left, right)`. When the sizes add up to less than the data (Keras
        on torch then fails in `random_split`), `left` is the first
        `left_size` samples of the (shuffled) order and `right` the last
        `right_size`, as Keras's TensorFlow path does.

        A dataset made by `image_dataset_from_directory` & co. (or derived
        from one by `map`, `take`, ...) is read once into memory, as Keras
        reads a `tf.data` dataset, and split into two in-memory datasets
        batched as it was (each with its `class_names`).
    """
    if preferred_backend not in (None, "torch"):
        raise ValueError(
            "kerasish runs on torch only: `preferred_backend` must be None or 'torch'. "
            f"Received: preferred_backend={preferred_backend}"
        )
    from kerasish.utils import file_dataset

    if isinstance(dataset, file_dataset._DatasetOps):
        return _split_file_dataset(dataset, left_size, right_size, shuffle, seed)
    data = _to_torch_dataset(dataset)
    if left_size is None and right_size is None:
        raise ValueError(
            "At least one of the `left_size` or `right_size` must be specified. Received: left_size=None and "
            "right_size=None"
        )
    total = len(data)
    left, right = _rescale_split_sizes(left_size, right_size, total)
    order = _split_order(total, shuffle, seed)
    Subset = torch.utils.data.Subset
    return Subset(data, order[:left]), Subset(data, order[total - right:])


def _split_file_dataset(dataset, left_size, right_size, shuffle, seed):
    from kerasish.utils.file_dataset import InMemoryDataset

    if left_size is None and right_size is None:
        raise ValueError(
            "At least one of the `left_size` or `right_size` must be specified. Received: left_size=None and "
            "right_size=None"
        )
    samples = list(dataset.unbatch() if dataset._element_batch is not None else dataset)
    if not samples:
        raise ValueError("Received an empty dataset. Argument `dataset` must be a non-empty dataset.")
    total = len(samples)
    left, right = _rescale_split_sizes(left_size, right_size, total)
    order = _split_order(total, shuffle, seed)
    names = getattr(dataset, "class_names", None)
    parts = [[samples[i] for i in order[:left]], [samples[i] for i in order[total - right:]]]
    return tuple(InMemoryDataset(p, dataset._element_batch, dataset._collate_fn, names) for p in parts)
