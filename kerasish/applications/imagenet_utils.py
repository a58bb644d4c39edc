"""ImageNet helpers shared by the applications (Keras 3's
`keras.applications.imagenet_utils`): input preprocessing, prediction
decoding, input-shape validation."""

from __future__ import annotations

import json
import warnings

import numpy as np
import torch

from kerasish import activations
from kerasish.applications import _weights
from kerasish.backend import config as _config

CLASS_INDEX = None
CLASS_INDEX_PATH = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
CLASS_INDEX_HASH = "c2c37ea517e94d9795004a39431a14cb"

# ImageNet statistics of the three preprocessing modes (Keras's constants)
_CAFFE_MEAN = (103.939, 116.779, 123.68)  # BGR order, 0..255 scale
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

PREPROCESS_INPUT_DOC = """Preprocesses a tensor or NumPy array encoding a batch of images.

    Args:
        x: A floating point NumPy array or torch tensor (or a symbolic
            `keras.Input` tensor), 3D or 4D with 3 color channels, values in
            [0, 255]. A float NumPy array, or a float torch tensor in "tf" and
            "torch" modes, is overwritten in place and returned, as in Keras
            (use `np.copy(x)` / `x.clone()` to keep it). Integer inputs are
            converted to `floatx` first.{mode}
        data_format: Optional data format of the image tensor/array. None
            means `keras.config.image_data_format()` ("channels_last" unless
            changed). Defaults to None.

    Returns:
        Preprocessed array or tensor (float; the input's float dtype).{ret}

    Raises:
        {error}
    """

PREPROCESS_INPUT_MODE_DOC = """
        mode: One of "caffe", "tf" or "torch".
            - caffe: RGB to BGR, then each channel zero-centered with the
              ImageNet means, without scaling.
            - tf: scaled to [-1, 1], sample-wise.
            - torch: scaled to [0, 1], then each channel normalized with the
              ImageNet means and standard deviations.
            Defaults to "caffe"."""

PREPROCESS_INPUT_DEFAULT_ERROR_DOC = "ValueError: In case of unknown `mode` or `data_format` argument."
PREPROCESS_INPUT_ERROR_DOC = "ValueError: In case of unknown `data_format` argument."
PREPROCESS_INPUT_RET_DOC_TF = "\n        The pixel values are scaled between -1 and 1, sample-wise."
PREPROCESS_INPUT_RET_DOC_TORCH = ("\n        The pixel values are scaled between 0 and 1 and each channel is "
                                  "normalized with respect to the ImageNet dataset.")
PREPROCESS_INPUT_RET_DOC_CAFFE = ("\n        The images are converted from RGB to BGR, then each color channel is "
                                  "zero-centered with respect to the ImageNet dataset, without scaling.")


def preprocess_input(x, data_format=None, mode="caffe"):
    if mode not in {"caffe", "tf", "torch"}:
        raise ValueError(f"Expected mode to be one of `caffe`, `tf` or `torch`. Received: mode={mode}")
    if data_format is None:
        data_format = _config.image_data_format()
    elif data_format not in {"channels_first", "channels_last"}:
        raise ValueError(
            f"Expected data_format to be one of `channels_first` or `channels_last`. Received: data_format={data_format}"
        )
    if isinstance(x, np.ndarray):
        return _preprocess_numpy_input(x, data_format, mode)
    if isinstance(x, torch.Tensor):
        return _preprocess_torch_input(x, data_format, mode)
    return _preprocess_symbolic_input(x, data_format, mode)


preprocess_input.__doc__ = PREPROCESS_INPUT_DOC.format(
    mode=PREPROCESS_INPUT_MODE_DOC, ret="", error=PREPROCESS_INPUT_DEFAULT_ERROR_DOC
)


def _stats(mode):
    """(scale, mean, std, to_bgr): x * scale, then per channel (x - mean) / std."""
    if mode == "tf":
        return None, None, None, False
    if mode == "torch":
        return 1.0 / 255.0, _TORCH_MEAN, _TORCH_STD, False
    return None, _CAFFE_MEAN, None, True


def _channel_shape(ndim, data_format):
    # where the 3 channels sit: last axis, or axis 0 (3D) / 1 (4D+) for channels_first
    if data_format == "channels_first":
        return (3, 1, 1) if ndim == 3 else (1, 3) + (1,) * (ndim - 2)
    return (1,) * (ndim - 1) + (3,)


def _preprocess_numpy_input(x, data_format, mode):
    # as Keras: float arrays are modified in place, others converted to floatx
    if not issubclass(x.dtype.type, np.floating):
        from kerasish.backend import dtypes

        x = x.astype(dtypes.floatx(), copy=False)
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x
    _, mean, std, to_bgr = _stats(mode)
    if mode == "torch":
        x /= 255.0
    if to_bgr:
        channel_axis = -1 if data_format == "channels_last" else (0 if x.ndim == 3 else 1)
        x = np.flip(x, axis=channel_axis)  # a view, written in place below, as Keras's x[..., ::-1]
    shape = _channel_shape(x.ndim, data_format)
    x -= np.asarray(mean, dtype=x.dtype).reshape(shape)
    if std is not None:
        x /= np.asarray(std, dtype=x.dtype).reshape(shape)
    return x


def _preprocess_torch_input(x, data_format, mode):
    if not (x.is_floating_point() or x.is_complex()):
        # Keras on torch: a RuntimeError for "tf"/"torch" and uint8 wrap-around for "caffe"
        from kerasish.backend import dtypes

        x = x.to(getattr(torch, dtypes.floatx()))
    # Keras writes float tensors over in "tf" and "torch" modes (`x /= 127.5`); a
    # tensor that needs its autograd history is computed out of place instead
    inplace = not x.requires_grad
    if mode == "tf":
        return x.div_(127.5).sub_(1.0) if inplace else x / 127.5 - 1.0
    _, mean, std, to_bgr = _stats(mode)
    if mode == "torch":
        x = x.div_(255.0) if inplace else x / 255.0
    if to_bgr:
        channel_axis = -1 if data_format == "channels_last" else (0 if x.ndim == 3 else 1)
        x = x.flip(channel_axis)  # a new tensor: Keras's caffe mode leaves the input alone
        inplace = True
    shape = _channel_shape(x.ndim, data_format)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).reshape(shape)
    x = x.sub_(mean_t) if inplace else x - mean_t
    if std is not None:
        std_t = torch.tensor(std, dtype=x.dtype, device=x.device).reshape(shape)
        x = x.div_(std_t) if inplace else x / std_t
    return x


def _preprocess_symbolic_input(x, data_format, mode):
    # a KerasTensor (inside a functional model): the same maths as ops
    from kerasish import ops

    ndim = len(x.shape)
    if mode == "tf":
        return x / 127.5 - 1.0
    _, mean, std, to_bgr = _stats(mode)
    if mode == "torch":
        x = x / 255.0
    if to_bgr:
        channel_axis = -1 if data_format == "channels_last" else (0 if ndim == 3 else 1)
        x = ops.flip(x, axis=channel_axis)
    shape = _channel_shape(ndim, data_format)
    x = x - ops.reshape(ops.convert_to_tensor(np.asarray(mean), dtype=x.dtype), shape)
    if std is not None:
        x = x / ops.reshape(ops.convert_to_tensor(np.asarray(std), dtype=x.dtype), shape)
    return x


def decode_predictions(preds, top=5):
    """Decodes the prediction of an ImageNet model.

    The class index (`imagenet_class_index.json`) is read from Keras's cache
    (`$KERAS_HOME/models`, else `~/.keras/models`), where Keras's own
    `decode_predictions` downloads it; kerasish does not download it.

    Args:
        preds: NumPy array or torch tensor of shape `(samples, 1000)`.
        top: Integer, how many top-guesses to return. Defaults to 5.

    Returns:
        A list (one per sample) of lists of `(class_name, class_description,
        score)` tuples, best first.

    Raises:
        ValueError: `preds` is not 2D with 1000 columns.
        FileNotFoundError: the class index is not in the cache (the message
            says where to get it and where to put it).
    """
    global CLASS_INDEX
    if isinstance(preds, torch.Tensor):
        preds = preds.detach().cpu().numpy()
    elif not hasattr(preds, "shape"):
        preds = np.asarray(preds)
    if len(preds.shape) != 2 or preds.shape[1] != 1000:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape (samples, 1000)). "
            f"Received array with shape: {preds.shape}"
        )
    if CLASS_INDEX is None:
        path = _weights.get_cached_file("imagenet_class_index.json", CLASS_INDEX_PATH, file_hash=CLASS_INDEX_HASH,
                                        cache_subdir="models")
        with open(path) as f:
            CLASS_INDEX = json.load(f)
    results = []
    for pred in np.asarray(preds):
        top_indices = pred.argsort()[-top:][::-1]
        result = [tuple(CLASS_INDEX[str(i)]) + (pred[i],) for i in top_indices]
        result.sort(key=lambda r: r[2], reverse=True)
        results.append(result)
    return results


def obtain_input_shape(input_shape, default_size, min_size, data_format, require_flatten, weights=None):
    """Validates an application's `input_shape` and fills in the default
    (Keras's rules and errors).

    Args:
        input_shape: None (the default shape) or a user-provided shape.
        default_size: Default input width/height of the model.
        min_size: Minimum input width/height the model accepts.
        data_format: "channels_last" or "channels_first".
        require_flatten: Whether the model has its classifier top (then the
            shape must be static).
        weights: None, "imagenet" (3 channels required) or a path.

    Returns:
        A shape tuple, possibly with None entries.

    Raises:
        ValueError: a shape the model cannot take.
    """
    channels_first = data_format == "channels_first"
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        channels = input_shape[0] if channels_first else input_shape[-1]
        if channels not in {1, 3}:
            warnings.warn(
                "This model usually expects 1 or 3 input channels. However, it was passed an input_shape "
                f"with {channels} input channels.",
                stacklevel=2,
            )
        if channels_first:
            default_shape = (input_shape[0], default_size, default_size)
        else:
            default_shape = (default_size, default_size, input_shape[-1])
    else:
        default_shape = (3, default_size, default_size) if channels_first else (default_size, default_size, 3)
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
        channels = input_shape[0] if channels_first else input_shape[-1]
        if channels != 3 and weights == "imagenet":
            raise ValueError(f"The input must have 3 channels; Received `input_shape={input_shape}`")
        rows, cols = (input_shape[1], input_shape[2]) if channels_first else (input_shape[0], input_shape[1])
        if (rows is not None and rows < min_size) or (cols is not None and cols < min_size):
            raise ValueError(f"Input size must be at least {min_size}x{min_size}; Received: input_shape={input_shape}")
    elif require_flatten:
        input_shape = default_shape
    else:
        input_shape = (3, None, None) if channels_first else (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError(
            f"If `include_top` is True, you should specify a static `input_shape`. Received: input_shape={input_shape}"
        )
    return input_shape


def correct_pad(inputs, kernel_size):
    """The ((top, bottom), (left, right)) zero padding that makes a strided
    "valid" convolution match TensorFlow's "same" one (Keras's helper)."""
    img_dim = 2 if _config.image_data_format() == "channels_first" else 1
    input_size = inputs.shape[img_dim: img_dim + 2]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    adjust = (1, 1) if input_size[0] is None else (1 - input_size[0] % 2, 1 - input_size[1] % 2)
    correct = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


def validate_activation(classifier_activation, weights):
    """Pretrained weights allow only a None or "softmax" classifier activation.

    Raises:
        ValueError: another activation with `weights` not None.
    """
    if weights is None:
        return
    classifier_activation = activations.get(classifier_activation)
    if classifier_activation not in {activations.get("softmax"), activations.get(None)}:
        raise ValueError(
            "Only `None` and `softmax` activations are allowed for the `classifier_activation` argument when "
            "using pretrained weights, with `include_top=True`; Received: "
            f"classifier_activation={classifier_activation}"
        )
