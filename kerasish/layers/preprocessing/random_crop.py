"""`RandomCrop`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import BaseImageAugmentation
from kerasish.layers.preprocessing.base_image import aspect_crop_box
from kerasish.layers.preprocessing.base_image import resize


class RandomCrop(BaseImageAugmentation):
    """Randomly crops images to `(height, width)` during training
    (`keras.layers.RandomCrop`).

    Training: when the input is larger than the target in both dimensions, one
    random window (the same for the whole batch, as Keras) is cut out;
    otherwise the largest centred window with the target's aspect ratio is
    taken and resized bilinearly. Inference: the largest centred window with
    the target's aspect ratio, resized to `(height, width)` — Keras 3's
    documented behaviour (Keras 3.15's code returns the input uncropped at
    inference, contradicting its own docstring and `compute_output_shape`;
    kerasish always returns the target size).

    Args:
        height: Integer, the output height.
        width: Integer, the output width.
        seed: Integer seed for a reproducible layer. Defaults to None (the
            global torch RNG; Keras stores a random default seed instead).
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: the input's shape with
    height and width replaced.

    Example:
        >>> crop = keras.layers.RandomCrop(4, 4, seed=0)
        >>> crop(torch.rand(2, 8, 8, 3), training=True).shape
        torch.Size([2, 4, 4, 3])
    """

    _keras_default_seed_draws = 2  # (Keras 3.15: its own default seed and its SeedGenerator's)

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        for arg, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{arg}` of RandomCrop must be a positive integer. Received: {arg}={value}")
        self.height = height
        self.width = width

    def call(self, inputs, training=True):
        self._check_rank(inputs)
        images = inputs.to(self._compute_torch_dtype)
        squeeze = images.ndim == 3
        if squeeze:
            images = images.unsqueeze(0)
        out = self._crop(images, bool(training))
        return out.squeeze(0) if squeeze else out

    def _offset(self, count, device):
        """An offset in [0, count), drawn as Keras draws it (shape (1,), int64)."""
        u = torch.rand((1,), generator=self._generator(device), device=device)
        # (clamped: a float32 draw just below 1 can round up to `count`)
        return (float(count) * u).to(torch.int64).clamp_(max=count - 1)

    def _crop(self, images, training):
        in_h, in_w = images.shape[self._h_axis], images.shape[self._w_axis]
        if training and in_h > self.height and in_w > self.width:
            # one random window for the batch; offsets stay tensors (index_select)
            # so torch.compile traces this without a data-dependent graph break
            # Keras: each offset is int(uniform(0, n + 1)), a float32 draw with its own seed step
            h0 = self._offset(in_h - self.height + 1, images.device)
            w0 = self._offset(in_w - self.width + 1, images.device)
            rows = h0 + torch.arange(self.height, device=images.device)
            cols = w0 + torch.arange(self.width, device=images.device)
            return images.index_select(self._h_axis, rows).index_select(self._w_axis, cols)
        h0, w0, ch, cw = aspect_crop_box(in_h, in_w, self.height, self.width)
        if training:  # Keras's training fallback slices `height x width` from the aspect box's corner
            ch, cw = min(self.height, in_h - h0), min(self.width, in_w - w0)
        # (inference: the aspect-ratio window itself, resized below)
        crop = images.narrow(self._h_axis, h0, ch).narrow(self._w_axis, w0, cw)
        if (ch, cw) == (self.height, self.width):
            return crop
        return resize(crop, (self.height, self.width), self.data_format, interpolation="bilinear")

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        offset = len(shape) - 4
        shape[self._h_axis + offset] = self.height
        shape[self._w_axis + offset] = self.width
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update({"height": self.height, "width": self.width, "seed": self.seed})
        return config
