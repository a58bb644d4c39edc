"""ImageNet helpers shared by the applications (`keras.applications.imagenet_utils`).

A minimal version for the apps2 families: `preprocess_input`,
`decode_predictions`, `obtain_input_shape` and `validate_activation` with
Keras 3's signatures, results and errors.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import torch

from kerasish.applications._weights import resolve_weights
from kerasish.backend import config as _config

CLASS_INDEX = None
CLASS_INDEX_PATH = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"

# Keras's ImageNet statistics: "caffe" subtracts BGR means in [0, 255];
# "torch" scales to [0, 1] and standardises with RGB mean / std.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
_TORCH_STD_RGB = (0.229, 0.224, 0.225)


def preprocess_input(x, data_format=None, mode="caffe"):
    """Preprocesses a batch of images (NumPy array or tensor) for ImageNet models.

    Args:
        x: A float NumPy array or torch tensor, 3D or 4D with 3 colour
            channels, values in [0, 255]. NumPy float arrays are modified in
            place, as Keras does; tensors are not.
        data_format: "channels_last" or "channels_first"; None uses
            `keras.config.image_data_format()`.
        mode: "caffe" (RGB to BGR, subtract the ImageNet means), "tf" (scale
            to [-1, 1]) or "torch" (scale to [0, 1], standardise per channel).
            Defaults to "caffe".

    Returns:
        The preprocessed array or tensor (float32 for integer NumPy input).
    """
    if mode not in {"caffe", "tf", "torch"}:
        raise ValueError(f"Expected mode to be one of `caffe`, `tf` or `torch`. Received: mode={mode}")
    if data_format is None:
        data_format = _config.image_data_format()
    elif data_format not in {"channels_first", "channels_last"}:
        raise ValueError(
            "Expected data_format to be one of `channels_first` or `channels_last`. "
            f"Received: data_format={data_format}"
        )
    is_numpy = isinstance(x, np.ndarray)
    if is_numpy:
        if not issubclass(x.dtype.type, np.floating):
            x = x.astype("float32", copy=False)
    else:
        x = torch.as_tensor(x)
        if not x.is_floating_point():
            x = x.float()
    if mode == "tf":
        if is_numpy:
            x /= 127.5
            x -= 1.0
            return x
        return x / 127.5 - 1.0
    if mode == "torch":
        x = x / 255.0 if not is_numpy else _inplace_div(x, 255.0)
        mean, std = _TORCH_MEAN_RGB, _TORCH_STD_RGB
    else:
        channel_axis = (0 if x.ndim == 3 else 1) if data_format == "channels_first" else x.ndim - 1
        x = np.flip(x, axis=channel_axis) if is_numpy else torch.flip(x, dims=(channel_axis,))
        mean, std = _CAFFE_MEAN_BGR, None
    shape = [1] * x.ndim
    shape[(0 if x.ndim == 3 else 1) if data_format == "channels_first" else x.ndim - 1] = 3
    if is_numpy:
        x -= np.asarray(mean, dtype=x.dtype).reshape(shape)
        if std is not None:
            x /= np.asarray(std, dtype=x.dtype).reshape(shape)
        return x
    x = x - torch.tensor(mean, dtype=x.dtype, device=x.device).reshape(shape)
    if std is not None:
        x = x / torch.tensor(std, dtype=x.dtype, device=x.device).reshape(shape)
    return x


def _inplace_div(x, value):
    x /= value
    return x


def decode_predictions(preds, top=5):
    """Decodes a batch of ImageNet predictions.

    Args:
        preds: Array or tensor of shape `(samples, 1000)`.
        top: How many top guesses to return. Defaults to 5.

    Returns:
        One list per sample of `(class_name, class_description, score)`
        tuples, best first. The class index file is read from the Keras
        cache (`models/imagenet_class_index.json`); kerasish does not
        download it.
    """
    global CLASS_INDEX
    if len(preds.shape) != 2 or preds.shape[1] != 1000:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape "
            f"(samples, 1000)). Received array with shape: {tuple(preds.shape)}"
        )
    if CLASS_INDEX is None:
        fpath = resolve_weights(
            "imagenet", "imagenet_class_index.json", CLASS_INDEX_PATH,
            file_hash="c2c37ea517e94d9795004a39431a14cb",
        )
        with open(fpath) as f:
            CLASS_INDEX = json.load(f)
    if isinstance(preds, torch.Tensor):
        preds = preds.detach().cpu().numpy()
    preds = np.asarray(preds)
    results = []
    for pred in preds:
        top_indices = pred.argsort()[-top:][::-1]
        result = [tuple(CLASS_INDEX[str(i)]) + (pred[i],) for i in top_indices]
        result.sort(key=lambda r: r[2], reverse=True)
        results.append(result)
    return results


def obtain_input_shape(input_shape, default_size, min_size, data_format, require_flatten, weights=None):
    """A model's input shape from the user's `input_shape`, validated as Keras does.

    Returns:
        A shape tuple without the batch dimension (entries may be None).

    Raises:
        ValueError: a shape that is not 3 integers, smaller than `min_size`,
            not 3 channels with ImageNet weights, not the default with
            `include_top` and ImageNet weights, or not static with a top.
    """
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        channels = input_shape[0] if data_format == "channels_first" else input_shape[-1]
        if channels not in {1, 3}:
            warnings.warn(
                "This model usually expects 1 or 3 input channels. However, it was passed an input_shape "
                f"with {channels} input channels.",
                stacklevel=2,
            )
        default_shape = (
            (input_shape[0], default_size, default_size)
            if data_format == "channels_first"
            else (default_size, default_size, input_shape[-1])
        )
    else:
        default_shape = (3, default_size, default_size) if data_format == "channels_first" else (
            default_size, default_size, 3)
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and input_shape != default_shape:
            raise ValueError(
                "When setting `include_top=True` and loading `imagenet` weights, "
                f"`input_shape` should be {default_shape}.  Received: input_shape={input_shape}"
            )
        return default_shape
    if input_shape:
        if len(input_shape) != 3:
            raise ValueError("`input_shape` must be a tuple of three integers.")
        if data_format == "channels_first":
            channels, spatial = input_shape[0], input_shape[1:]
        else:
            channels, spatial = input_shape[-1], input_shape[:2]
        if channels != 3 and weights == "imagenet":
            raise ValueError(f"The input must have 3 channels; Received `input_shape={input_shape}`")
        if any(s is not None and s < min_size for s in spatial):
            raise ValueError(f"Input size must be at least {min_size}x{min_size}; Received: input_shape={input_shape}")
    elif require_flatten:
        input_shape = default_shape
    else:
        input_shape = (3, None, None) if data_format == "channels_first" else (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError(
            "If `include_top` is True, you should specify a static `input_shape`. "
            f"Received: input_shape={input_shape}"
        )
    return input_shape


def validate_activation(classifier_activation, weights):
    """Pretrained weights allow only a softmax or linear classifier (Keras's ValueError)."""
    if weights is None:
        return
    from kerasish import activations

    fn = activations.get(classifier_activation)
    if fn not in {activations.get("softmax"), activations.get(None)}:
        raise ValueError(
            "Only `None` and `softmax` activations are allowed for the `classifier_activation` argument "
            "when using pretrained weights, with `include_top=True`; Received: "
            f"classifier_activation={fn}"
        )
