"""`keras.utils.audio_dataset_from_directory` without TensorFlow.

`.wav` files are read with the standard library's `wave` module and
decoded as `tf.audio.decode_wav` does: PCM samples scaled to float32 in
[-1, 1) (16-bit: `int16 / 32768`), shape `(samples, channels)`; with
`output_sequence_length` cut or zero-padded to that length, otherwise each
batch zero-padded to its longest file (`tf.data`'s `padded_batch`). 8-, 24-
and 32-bit PCM are read too, scaled by their own full range.
"""

from __future__ import annotations

import functools
import wave

import numpy as np
import torch

from kerasish.utils.image_dataset_utils import index_files
from kerasish.utils.image_dataset_utils import make_datasets

ALLOWED_FORMATS = (".wav",)


def read_wav(path, output_sequence_length=None) -> torch.Tensor:
    """A PCM `.wav` file as float32 `(samples, channels)` in [-1, 1)."""
    try:
        with wave.open(str(path), "rb") as f:
            width, channels, n = f.getsampwidth(), f.getnchannels(), f.getnframes()
            raw = f.readframes(n)
    except (wave.Error, EOFError) as e:
        raise ValueError(f"Could not decode {path} as a PCM WAV file: {e}") from None
    if width == 1:  # unsigned 8-bit
        audio = (np.frombuffer(raw, dtype=np.uint8).astype("float32") - 128.0) / 128.0
    elif width == 3:  # 24-bit little-endian: sign-extend into int32
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        audio = ints.astype("float32") / float(1 << 23)
    else:
        dtype = {2: "<i2", 4: "<i4"}[width]
        audio = (np.frombuffer(raw, dtype=dtype).astype("float64") / float(1 << (8 * width - 1))).astype("float32")
    audio = audio.reshape(-1, channels)
    if output_sequence_length is not None:
        if audio.shape[0] >= output_sequence_length:
            audio = audio[:output_sequence_length]
        else:
            audio = np.concatenate([audio, np.zeros((output_sequence_length - audio.shape[0], channels), "float32")])
    return torch.from_numpy(np.ascontiguousarray(audio))


def _padded_collate(samples):
    """A batch of `(samples, channels)` tensors zero-padded to the longest
    (with its labels, stacked)."""
    if isinstance(samples[0], tuple):
        columns = list(zip(*samples))
        return (_padded_collate(list(columns[0])),) + tuple(torch.stack(list(c)) for c in columns[1:])
    longest = max(s.shape[0] for s in samples)
    out = samples[0].new_zeros((len(samples), longest) + tuple(samples[0].shape[1:]))
    for i, s in enumerate(samples):
        out[i, : s.shape[0]] = s
    return out


def audio_dataset_from_directory(
    directory,
    labels="inferred",
    label_mode="int",
    class_names=None,
    batch_size=32,
    sampling_rate=None,
    output_sequence_length=None,
    ragged=False,
    shuffle=True,
    seed=None,
    validation_split=None,
    subset=None,
    follow_links=False,
    verbose=True,
):
    """A dataset of `(audio, labels)` batches from `.wav` files in class subfolders.

    Keras 3.15's function, arguments, checks and messages, on torch; files
    are found, ordered, shuffled with `seed` and split as in Keras (see
    `image_dataset_from_directory`, whose arguments of the same name mean
    the same).

    Args:
        directory: The folder of the `.wav` files.
        labels: "inferred", None, or a list/tuple of integer labels.
        label_mode: "int", "categorical", "binary" or None. Defaults to "int".
        class_names: With `labels="inferred"`, the subfolders to use, in order.
        batch_size: Files per batch, or None for single files. Defaults to 32.
        sampling_rate: Resampling needs `tensorflow_io` in Keras; kerasish
            does not resample: any value other than None raises (after
            Keras's own checks of the value).
        output_sequence_length: Length every file is cut or zero-padded to.
            Defaults to None: each batch is zero-padded to its longest file.
        ragged: Keras's `tf.RaggedTensor` batches; torch has none, so True
            raises ValueError.
        shuffle, seed, validation_split, subset, follow_links, verbose: As
            in `image_dataset_from_directory`.

    Returns:
        A `FileDataset` of float32 `(batch, samples, channels)` tensors in
        [-1, 1) and labels, with `class_names` and `file_paths`.
    """
    from kerasish.utils.image_dataset_utils import check_labels_args

    labels, label_mode = check_labels_args(labels, label_mode, class_names, "audio")
    if ragged and output_sequence_length is not None:
        raise ValueError("Cannot set both `ragged` and `output_sequence_length`")
    if sampling_rate is not None:
        if not isinstance(sampling_rate, int):
            raise ValueError(f"`sampling_rate` should have an integer value. Received: sampling_rate={sampling_rate}")
        if sampling_rate <= 0:
            raise ValueError(f"`sampling_rate` should be higher than 0. Received: sampling_rate={sampling_rate}")
        raise NotImplementedError(
            "Resampling audio (`sampling_rate`) needs tensorflow_io in Keras and is not provided by kerasish. "
            f"Resample the files beforehand, or pass sampling_rate=None. Received: sampling_rate={sampling_rate}"
        )
    if ragged:
        raise ValueError(
            "`ragged=True` makes tf.RaggedTensor batches, which torch has no equivalent of. Use "
            "`output_sequence_length`, or `ragged=False` (batches zero-padded to their longest file). "
            f"Received: ragged={ragged}"
        )
    if output_sequence_length is not None and (
            isinstance(output_sequence_length, bool) or not isinstance(output_sequence_length, (int, np.integer))
            or output_sequence_length < 1):
        raise ValueError(
            f"`output_sequence_length` must be a positive integer or None. Received: "
            f"output_sequence_length={output_sequence_length}"
        )
    file_paths, labels, class_names, seed = index_files(
        directory, labels, label_mode, class_names, ALLOWED_FORMATS, batch_size, validation_split, subset, shuffle, seed,
        follow_links, verbose)
    loader = functools.partial(read_wav, output_sequence_length=output_sequence_length)
    return make_datasets(directory, file_paths, labels, class_names, label_mode, batch_size, shuffle, seed,
                         validation_split, subset, loader, "audio files", f"Allowed format(s): {ALLOWED_FORMATS}",
                         collate=_padded_collate if output_sequence_length is None else None)
