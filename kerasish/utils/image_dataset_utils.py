"""`keras.utils.image_dataset_from_directory` without TensorFlow.

Files are found, ordered, shuffled and split exactly as Keras 3.15 does
(`kerasish.utils.dataset_utils.index_directory`), images are decoded with
Pillow (imported when the first image is read) and resized with
`keras.ops.image.resize` semantics, as Keras's own TensorFlow-free path
(`format="grain"`) does on the torch backend.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from kerasish.utils import dataset_utils
from kerasish.utils.argument_validation import standardize_data_format
from kerasish.utils.file_dataset import FileDataset

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")

# Keras accepts all of these; the last four are TensorFlow resize kernels
# (Keras's torch backend refuses them too)
_KERAS_INTERPOLATIONS = (
    "bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic",
)
_TORCH_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area")


def _pil_image():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "`image_dataset_from_directory` reads images with Pillow. Install it (`pip install pillow`)."
        ) from None
    return Image


def load_image(path, image_size, num_channels, interpolation, data_format, crop_to_aspect_ratio=False,
               pad_to_aspect_ratio=False) -> torch.Tensor:
    """One image file as a float32 tensor `(h, w, c)` (or `(c, h, w)`),
    resized to `image_size` (Keras's `_load_image_grain`: a grayscale image
    that is already 8-, 16- or 32-bit keeps its values, others are converted
    with Pillow; animated GIFs give their first frame)."""
    from kerasish.ops import image as image_ops

    Image = _pil_image()
    with Image.open(path) as img:
        modes = {1: ("L", "I;16", "I"), 3: ("RGB",), 4: ("RGBA",)}[num_channels]
        img = img.convert({1: "L", 3: "RGB", 4: "RGBA"}[num_channels]) if img.mode not in modes else img
        array = np.array(img)
    x = torch.from_numpy(array.astype("float32", copy=False))
    if x.ndim == 2:
        x = x.unsqueeze(-1)
    if data_format == "channels_first":
        x = x.permute(2, 0, 1)
    return image_ops.resize(
        x, size=image_size, interpolation=interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio,
        pad_to_aspect_ratio=pad_to_aspect_ratio, data_format=data_format,
    ).contiguous()


def check_labels_args(labels, label_mode, class_names, what):
    """Keras's checks of `labels` / `class_names` / `label_mode`; returns
    `(labels, label_mode)` with both None when either is."""
    if not (isinstance(labels, str) and labels == "inferred") and labels is not None:
        if not isinstance(labels, (list, tuple)):
            contents = {"image": "images", "text": "text samples", "audio": "audio samples"}[what]
            raise ValueError(
                f"{'The ' if what == 'audio' else ''}`labels` argument should be a list/tuple of integer labels, of "
                f"the same size as the number of {what} files in the target directory. If you wish to infer the "
                'labels from the subdirectory names in the target directory, pass `labels="inferred"`. If you wish '
                f"to get a dataset that only contains {contents} (no labels), pass `labels=None`. "
                f"Received: labels={labels}"
            )
        if class_names:
            raise ValueError(
                f'You can only pass `class_names` if `labels="inferred"`. Received: labels={labels}, and '
                f"class_names={class_names}"
            )
    if label_mode not in {"int", "categorical", "binary", None}:
        raise ValueError(
            f'`label_mode` argument must be one of "int", "categorical", "binary", or None. Received: '
            f"label_mode={label_mode}"
        )
    if labels is None or label_mode is None:
        return None, None
    return labels, label_mode


def check_format(format):
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: format={format}')


def check_batch_size(batch_size):
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size}")


def index_files(directory, labels, label_mode, class_names, formats, batch_size, validation_split, subset, shuffle,
                seed, follow_links, verbose):
    """The argument checks and file indexing the image, text and audio
    directory datasets share, in Keras's order: `(file_paths, labels,
    class_names, seed)`, the seed drawn when None (as Keras does)."""
    check_batch_size(batch_size)
    dataset_utils.check_validation_split_arg(validation_split, subset, shuffle, seed)
    if seed is None:
        seed = np.random.randint(1e6)
    file_paths, labels, class_names = dataset_utils.index_directory(
        directory, labels, formats=formats, class_names=class_names, shuffle=shuffle, seed=seed,
        follow_links=follow_links, verbose=verbose,
    )
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(
            f'When passing `label_mode="binary"`, there must be exactly 2 class_names. Received: '
            f"class_names={class_names}"
        )
    return file_paths, labels, class_names, seed


def make_datasets(directory, file_paths, labels, class_names, label_mode, batch_size, shuffle, seed,
                  validation_split, subset, loader, what, allowed, collate=None):
    """The dataset (or `[training, validation]` for `subset="both"`) over
    the indexed files, with Keras's split and its empty-split errors."""
    num_classes = len(class_names) if class_names else 0

    def build(paths, labs, shuffled):
        return FileDataset(paths, loader, labs, label_mode, num_classes, batch_size, shuffled, seed, class_names,
                           collate=collate)

    if subset == "both":
        train = dataset_utils.get_training_or_validation_split(file_paths, labels, validation_split, "training")
        val = dataset_utils.get_training_or_validation_split(file_paths, labels, validation_split, "validation")
        if not train[0]:
            raise ValueError(f"No training {what} found in directory {directory}. {allowed}")
        if not val[0]:
            raise ValueError(f"No validation {what} found in directory {directory}. {allowed}")
        # Keras never shuffles the validation dataset
        return [build(*train, shuffle), build(*val, False)]
    file_paths, labels = dataset_utils.get_training_or_validation_split(file_paths, labels, validation_split, subset)
    if not file_paths:
        raise ValueError(f"No {what} found in directory {directory}. {allowed}")
    return build(file_paths, labels, shuffle)


def image_dataset_from_directory(
    directory,
    labels="inferred",
    label_mode="int",
    class_names=None,
    color_mode="rgb",
    batch_size=32,
    image_size=(256, 256),
    shuffle=True,
    seed=None,
    validation_split=None,
    subset=None,
    interpolation="bilinear",
    follow_links=False,
    crop_to_aspect_ratio=False,
    pad_to_aspect_ratio=False,
    data_format=None,
    format="tf",
    verbose=True,
):
    """A dataset of `(images, labels)` batches from image files in class subfolders.

    Keras 3.15's function, arguments, defaults, checks and messages, on
    torch: with `directory/class_a/*.jpg` and `directory/class_b/*.png`,
    labels are 0 for `class_a` and 1 for `class_b` (subfolders in sorted
    order, or the order of `class_names`). Files ending in `.bmp`, `.gif`,
    `.jpeg`, `.jpg` or `.png` (any case) are read, also in nested folders.
    The file list is shuffled with `seed` exactly as in Keras, so
    `validation_split` puts the same files in the same subset as Keras does.

    Args:
        directory: The folder of the images.
        labels: "inferred" (from the subfolders), None (no labels), or a
            list/tuple of integer labels, one per image file in sorted path
            order. Defaults to "inferred".
        label_mode: "int" (int32 `(batch,)`), "categorical" (float32 one-hot
            `(batch, num_classes)`), "binary" (float32 `(batch, 1)`, exactly
            2 classes) or None (images only). Defaults to "int".
        class_names: With `labels="inferred"`, the subfolders to use, in
            label order. Defaults to None (all, sorted).
        color_mode: "grayscale", "rgb" or "rgba" (1, 3 or 4 channels).
            Defaults to "rgb".
        batch_size: Images per batch, or None for single images. Defaults to 32.
        image_size: `(height, width)` (or one int) every image is resized
            to. Defaults to `(256, 256)`.
        shuffle: Whether to shuffle the files (again on every pass).
            Defaults to True.
        seed: Seed of the shuffling. Defaults to None (a random one).
        validation_split: Fraction of the files (the last ones of the
            shuffled list) kept for validation. Defaults to None.
        subset: "training", "validation" or "both" (returns
            `[training, validation]`). Defaults to None.
        interpolation: "bilinear", "nearest", "bicubic" or "area" (as
            `keras.ops.image.resize` on torch; Keras's TensorFlow-only
            "lanczos3", "lanczos5", "gaussian", "mitchellcubic" raise a
            ValueError). Defaults to "bilinear".
        follow_links: Whether to walk into symlinked folders. Defaults to False.
        crop_to_aspect_ratio: Resize the largest centred crop of the target
            aspect ratio (no distortion). Defaults to False.
        pad_to_aspect_ratio: Pad with zeros to the target aspect ratio
            before resizing (no distortion). Defaults to False.
        data_format: "channels_last" (`(batch, h, w, c)`) or
            "channels_first"; None means `keras.config.image_data_format()`.
        format: "tf" or "grain", as in Keras; both return the torch dataset
            described below (a ported program's default `format="tf"` keeps
            working; no TensorFlow or Grain object is made).
        verbose: Whether to print "Found N files belonging to M classes."
            Defaults to True.

    Returns:
        A `kerasish.utils.file_dataset.FileDataset` (a `PyDataset`): `len()`
        is the number of batches; iterating gives `(images, labels)` (or
        `images` when `label_mode` is None) as CPU torch tensors, images
        float32 with values 0-255; `class_names` and `file_paths` as in
        Keras; `map`, `take`, `cache`, `prefetch`, `unbatch`, `batch` as in
        tf.data. `fit(train_ds, validation_data=val_ds)` takes it. See
        `kerasish/utils/file_dataset.py` for what differs from `tf.data`
        (notably the shuffled order, which is kerasish's own).

    Example:
        >>> train_ds, val_ds = keras.utils.image_dataset_from_directory(
        ...     "PetImages", validation_split=0.2, subset="both", seed=1337,
        ...     image_size=(180, 180), batch_size=128)
        >>> model.fit(train_ds, validation_data=val_ds, epochs=25)
    """
    labels, label_mode = check_labels_args(labels, label_mode, class_names, "image")
    channels = {"rgb": 3, "rgba": 4, "grayscale": 1}
    if color_mode not in channels:
        raise ValueError(f'`color_mode` must be one of {{"rgb", "rgba", "grayscale"}}. Received: color_mode={color_mode}')
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if (not isinstance(image_size, (list, tuple)) or len(image_size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in image_size)):
        raise ValueError(f"Invalid `image_size` value. Expected a tuple of 2 integers. Received: image_size={image_size}")
    image_size = (int(image_size[0]), int(image_size[1]))
    interpolation = str(interpolation).lower()
    if interpolation not in _KERAS_INTERPOLATIONS:
        raise ValueError(
            f"Argument `interpolation` should be one of {_KERAS_INTERPOLATIONS}. Received: interpolation={interpolation}"
        )
    if interpolation not in _TORCH_INTERPOLATIONS:
        raise ValueError(
            f"Argument `interpolation`: {interpolation!r} is a TensorFlow resize method, which kerasish (like "
            f"Keras on its torch backend) does not provide. Use one of {_TORCH_INTERPOLATIONS}. "
            f"Received: interpolation={interpolation}"
        )
    check_format(format)
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be set to `True`.")
    file_paths, labels, class_names, seed = index_files(
        directory, labels, label_mode, class_names, ALLOWLIST_FORMATS, batch_size, validation_split, subset, shuffle, seed,
        follow_links, verbose)
    data_format = standardize_data_format(data_format)
    loader = functools.partial(
        load_image, image_size=image_size, num_channels=channels[color_mode], interpolation=interpolation,
        data_format=data_format, crop_to_aspect_ratio=bool(crop_to_aspect_ratio),
        pad_to_aspect_ratio=bool(pad_to_aspect_ratio),
    )
    return make_datasets(directory, file_paths, labels, class_names, label_mode, batch_size, shuffle, seed,
                         validation_split, subset, loader, "images", f"Allowed formats: {ALLOWLIST_FORMATS}")
