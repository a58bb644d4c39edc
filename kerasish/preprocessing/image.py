"""Keras 2's image preprocessing (`keras.preprocessing.image`):
`ImageDataGenerator` with `flow`, the affine helpers, and the PIL helpers
`array_to_img` / `img_to_array` / `load_img` / `save_img`.

The generator follows tf.keras 2.x draw for draw: random parameters come
from NumPy's global generator in Keras 2's order (`np.random.seed(seed +
batches_seen)` per batch when `flow(seed=...)`), so a seeded Keras 2 program
sees the same augmented batches. Like Keras 2, the affine transforms need
SciPy (`scipy.ndimage.affine_transform`, order-1 interpolation) and the
brightness shift needs Pillow; both are imported only when used.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from kerasish.backend import config as _config
from kerasish.preprocessing.image_resize import smart_resize  # noqa: F401 (public name)
from kerasish.utils.py_dataset import PyDataset


def _scipy_ndimage():
    try:
        from scipy import ndimage
    except ImportError:
        raise ImportError("Image transformations require SciPy. Install SciPy (`pip install scipy`).") from None
    return ndimage


def _pil():
    try:
        from PIL import Image, ImageEnhance
    except ImportError:
        raise ImportError("Using brightness shifts and image files requires PIL. Install Pillow.") from None
    return Image, ImageEnhance


# ---------------------------------------------------------------- helpers


def transform_matrix_offset_center(matrix, x, y):
    """`matrix` conjugated by a shift to the centre of an `x` by `y` image."""
    o_x, o_y = float(x) / 2 - 0.5, float(y) / 2 - 0.5
    to_center = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    back = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return to_center @ matrix @ back


def apply_affine_transform(x, theta=0, tx=0, ty=0, shear=0, zx=1, zy=1, row_axis=1, col_axis=2, channel_axis=0,
                           fill_mode="nearest", cval=0.0, order=1):
    """Rotation (`theta`, degrees), shift (`tx` rows, `ty` columns), shear
    (degrees) and zoom (`zx`, `zy`) of one image about its centre."""
    steps = []
    if theta != 0:
        t = np.deg2rad(theta)
        steps.append(np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]]))
    if tx != 0 or ty != 0:
        steps.append(np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]]))
    if shear != 0:
        s = np.deg2rad(shear)
        steps.append(np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]]))
    if zx != 1 or zy != 1:
        steps.append(np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]]))
    if not steps:
        return x
    matrix = steps[0]
    for step in steps[1:]:
        matrix = matrix @ step
    ndimage = _scipy_ndimage()
    h, w = x.shape[row_axis], x.shape[col_axis]
    matrix = transform_matrix_offset_center(matrix, h, w)
    if col_axis > row_axis:
        # the matrix is written for (x, y) coordinates; arrays index (row, col): conjugate by the swap
        matrix[:, [0, 1]] = matrix[:, [1, 0]]
        matrix[[0, 1]] = matrix[[1, 0]]
    x = np.rollaxis(x, channel_axis, 0)
    channels = [
        ndimage.affine_transform(c, matrix[:2, :2], matrix[:2, 2], order=order, mode=fill_mode, cval=cval)
        for c in x
    ]
    return np.rollaxis(np.stack(channels, axis=0), 0, channel_axis + 1)


def apply_channel_shift(x, intensity, channel_axis=0):
    """Adds `intensity` to every channel, clipped to the image's original range."""
    x = np.rollaxis(x, channel_axis, 0)
    lo, hi = np.min(x), np.max(x)
    x = np.stack([np.clip(c + intensity, lo, hi) for c in x], axis=0)
    return np.rollaxis(x, 0, channel_axis + 1)


def flip_axis(x, axis):
    return np.flip(np.asarray(x), axis).copy()


def apply_brightness_shift(x, brightness, scale=True):
    """Brightness change through Pillow's `ImageEnhance.Brightness` (as Keras 2)."""
    _, ImageEnhance = _pil()
    lo, hi = np.min(x), np.max(x)
    local_scale = (lo < 0) or (hi > 255)
    img = array_to_img(x, scale=local_scale or scale)
    img = ImageEnhance.Brightness(img).enhance(brightness)
    x = img_to_array(img)
    if not scale and local_scale:
        x = x / 255 * (hi - lo) + lo
    return x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A 3D array as a PIL image (scaled to 0-255 when `scale`)."""
    Image, _ = _pil()
    data_format = data_format or _config.image_data_format()
    x = np.asarray(x, dtype=dtype or "float32")
    if x.ndim != 3:
        raise ValueError(f"Expected image array to have rank 3 (single image). Got array with shape: {x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        top = np.max(x)
        if top != 0:
            x /= top
        x *= 255
    channels = x.shape[2]
    if channels == 4:
        return Image.fromarray(x.astype("uint8"), "RGBA")
    if channels == 3:
        return Image.fromarray(x.astype("uint8"), "RGB")
    if channels == 1:
        if np.max(x) > 255:
            return Image.fromarray(x[:, :, 0].astype("int32"), "I")
        return Image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"Unsupported channel number: {channels}")


def img_to_array(img, data_format=None, dtype=None):
    """A PIL image as a 3D float array."""
    data_format = data_format or _config.image_data_format()
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 2:
        x = x[:, :, None]
    elif x.ndim != 3:
        raise ValueError(f"Unsupported image shape: {x.shape}")
    return x.transpose(2, 0, 1) if data_format == "channels_first" else x


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False):
    """Loads an image file into a PIL image (`color_mode` "grayscale", "rgb" or "rgba")."""
    Image, _ = _pil()
    with open(path, "rb") as f:
        img = Image.open(f)
        img.load()
    modes = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
    if color_mode not in modes:
        raise ValueError(f'color_mode must be "grayscale", "rgb", or "rgba". Received: color_mode={color_mode!r}')
    if img.mode != modes[color_mode]:
        img = img.convert(modes[color_mode])
    if target_size is not None:
        size = (target_size[1], target_size[0])
        if img.size != size:
            methods = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
            if interpolation not in methods:
                raise ValueError(f"Invalid interpolation method {interpolation!r}. Supported: {sorted(methods)}")
            img = img.resize(size, methods[interpolation])
    return img


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and (file_format == "jpeg" or str(path).lower().endswith((".jpg", ".jpeg"))):
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)


# ------------------------------------------------------------- generator


class ImageDataGenerator:
    """Real-time data augmentation of image batches (tf.keras 2's `ImageDataGenerator`).

    Args mirror Keras 2: `featurewise_center`, `samplewise_center`,
    `featurewise_std_normalization`, `samplewise_std_normalization`,
    `zca_whitening`, `zca_epsilon`, `rotation_range` (degrees),
    `width_shift_range` / `height_shift_range` (fraction if < 1, pixels
    otherwise; an int `n` draws an integer in [-(n-1), n-1]; a list draws one of its values with a random sign),
    `brightness_range`, `shear_range` (degrees), `zoom_range` (float `z`
    means [1 - z, 1 + z]), `channel_shift_range`, `fill_mode` ("constant",
    "nearest", "reflect", "wrap"), `cval`, `horizontal_flip`,
    `vertical_flip`, `rescale`, `preprocessing_function` (applied after
    augmentation, per image), `data_format`, `validation_split`,
    `interpolation_order`, `dtype`.

    `flow(x, y)` returns a `NumpyArrayIterator`, a `keras.utils.PyDataset`
    that `fit` takes directly; `next(iterator)` also gives batches forever,
    as in Keras 2.
    """

    def __init__(self, featurewise_center=False, samplewise_center=False, featurewise_std_normalization=False,
                 samplewise_std_normalization=False, zca_whitening=False, zca_epsilon=1e-6, rotation_range=0,
                 width_shift_range=0.0, height_shift_range=0.0, brightness_range=None, shear_range=0.0,
                 zoom_range=0.0, channel_shift_range=0.0, fill_mode="nearest", cval=0.0, horizontal_flip=False,
                 vertical_flip=False, rescale=None, preprocessing_function=None, data_format=None,
                 validation_split=0.0, interpolation_order=1, dtype=None):
        data_format = data_format or _config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                '`data_format` should be `"channels_last"` (channel after row and column) or '
                f'`"channels_first"` (channel before row and column). Received: {data_format}'
            )
        if fill_mode not in ("constant", "nearest", "reflect", "wrap"):
            raise ValueError(
                f"`fill_mode` must be one of 'constant', 'nearest', 'reflect', 'wrap'. Received: fill_mode={fill_mode!r}"
            )
        if not 0 <= validation_split < 1:
            raise ValueError(f"`validation_split` must be strictly between 0 and 1. Received: {validation_split}")
        if brightness_range is not None and (
            not isinstance(brightness_range, (tuple, list, np.ndarray)) or len(brightness_range) != 2
        ):
            raise ValueError(f"`brightness_range should be tuple or list of two floats. Received: {brightness_range}")
        if np.isscalar(zoom_range):
            zoom_range = [1 - zoom_range, 1 + zoom_range]
        elif len(zoom_range) == 2:
            zoom_range = [zoom_range[0], zoom_range[1]]
        else:
            raise ValueError(f"`zoom_range` should be a float or a tuple or list of two floats. Received: {zoom_range}")
        if zca_whitening:
            if not featurewise_center:
                featurewise_center = True
                warnings.warn("This ImageDataGenerator specifies `zca_whitening`, which overrides setting of "
                              "`featurewise_center`.", stacklevel=2)
            if featurewise_std_normalization:
                featurewise_std_normalization = False
                warnings.warn("This ImageDataGenerator specifies `zca_whitening` which overrides setting of"
                              "`featurewise_std_normalization`.", stacklevel=2)
        if featurewise_std_normalization and not featurewise_center:
            featurewise_center = True
            warnings.warn("This ImageDataGenerator specifies `featurewise_std_normalization`, which overrides "
                          "setting of `featurewise_center`.", stacklevel=2)
        if samplewise_std_normalization and not samplewise_center:
            samplewise_center = True
            warnings.warn("This ImageDataGenerator specifies `samplewise_std_normalization`, which overrides "
                          "setting of `samplewise_center`.", stacklevel=2)
        self.featurewise_center = featurewise_center
        self.samplewise_center = samplewise_center
        self.featurewise_std_normalization = featurewise_std_normalization
        self.samplewise_std_normalization = samplewise_std_normalization
        self.zca_whitening = zca_whitening
        self.zca_epsilon = zca_epsilon
        self.rotation_range = rotation_range
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        self.shear_range = shear_range
        self.zoom_range = zoom_range
        self.channel_shift_range = channel_shift_range
        self.fill_mode = fill_mode
        self.cval = cval
        self.horizontal_flip = horizontal_flip
        self.vertical_flip = vertical_flip
        self.rescale = rescale
        self.preprocessing_function = preprocessing_function
        self.brightness_range = brightness_range
        self.data_format = data_format
        self.validation_split = validation_split
        self.interpolation_order = interpolation_order
        self.dtype = dtype or _config_floatx()
        if data_format == "channels_first":
            self.channel_axis, self.row_axis, self.col_axis = 1, 2, 3
        else:
            self.channel_axis, self.row_axis, self.col_axis = 3, 1, 2
        self.mean = None
        self.std = None
        self.zca_whitening_matrix = None

    # -- flows
    def flow(self, x, y=None, batch_size=32, shuffle=True, sample_weight=None, seed=None, save_to_dir=None,
             save_prefix="", save_format="png", ignore_class_split=False, subset=None):
        return NumpyArrayIterator(
            x, y, self, batch_size=batch_size, shuffle=shuffle, sample_weight=sample_weight, seed=seed,
            data_format=self.data_format, save_to_dir=save_to_dir, save_prefix=save_prefix,
            save_format=save_format, ignore_class_split=ignore_class_split, subset=subset, dtype=self.dtype,
        )

    def flow_from_directory(self, *args, **kwargs):
        raise NotImplementedError(
            "`flow_from_directory` is not implemented in kerasish: load the images with "
            "`keras.preprocessing.image.load_img` + `img_to_array` into an array and use `flow(x, y)`, or use "
            "a torch `Dataset`."
        )

    # -- per-image steps
    def standardize(self, x):
        """Normalisation of one image (or a batch), in Keras 2's order:
        preprocessing_function, rescale, samplewise, featurewise, ZCA."""
        if self.preprocessing_function:
            x = self.preprocessing_function(x)
        if self.rescale:
            x *= self.rescale
        if self.samplewise_center:
            x -= np.mean(x, keepdims=True)
        if self.samplewise_std_normalization:
            x /= np.std(x, keepdims=True) + 1e-6
        if self.featurewise_center:
            if self.mean is not None:
                x -= self.mean
            else:
                warnings.warn("This ImageDataGenerator specifies `featurewise_center`, but it hasn't been fit on "
                              "any training data. Fit it first by calling `.fit(numpy_data)`.", stacklevel=2)
        if self.featurewise_std_normalization:
            if self.std is not None:
                x /= self.std + 1e-6
            else:
                warnings.warn("This ImageDataGenerator specifies `featurewise_std_normalization`, but it hasn't "
                              "been fit on any training data. Fit it first by calling `.fit(numpy_data)`.",
                              stacklevel=2)
        if self.zca_whitening:
            if self.zca_whitening_matrix is not None:
                flat = x.reshape(-1, int(np.prod(x.shape[-3:])))
                x = np.reshape(flat @ self.zca_whitening_matrix, x.shape)
            else:
                warnings.warn("This ImageDataGenerator specifies `zca_whitening`, but it hasn't been fit on any "
                              "training data. Fit it first by calling `.fit(numpy_data)`.", stacklevel=2)
        return x

    @staticmethod
    def _shift(value, size):
        """One random shift, as Keras 2 draws it (see the class docstring)."""
        if isinstance(value, (list, tuple, np.ndarray)) or (isinstance(value, (int, np.integer)) and value > 0):
            options = np.asarray(value) if not isinstance(value, (int, np.integer)) else int(value)
            shift = np.random.choice(options) * np.random.choice([-1, 1])
        else:
            shift = np.random.uniform(-value, value)
        if np.max(value) < 1:
            shift *= size
        return shift

    def get_random_transform(self, img_shape, seed=None):
        """Random transformation parameters for one image of shape `img_shape`."""
        row, col = self.row_axis - 1, self.col_axis - 1
        if seed is not None:
            np.random.seed(seed)
        theta = np.random.uniform(-self.rotation_range, self.rotation_range) if self.rotation_range else 0
        tx = self._shift(self.height_shift_range, img_shape[row]) if _truthy(self.height_shift_range) else 0
        ty = self._shift(self.width_shift_range, img_shape[col]) if _truthy(self.width_shift_range) else 0
        shear = np.random.uniform(-self.shear_range, self.shear_range) if self.shear_range else 0
        if self.zoom_range[0] == 1 and self.zoom_range[1] == 1:
            zx, zy = 1, 1
        else:
            zx, zy = np.random.uniform(self.zoom_range[0], self.zoom_range[1], 2)
        flip_horizontal = (np.random.random() < 0.5) * self.horizontal_flip
        flip_vertical = (np.random.random() < 0.5) * self.vertical_flip
        channel_shift = None
        if self.channel_shift_range != 0:
            channel_shift = np.random.uniform(-self.channel_shift_range, self.channel_shift_range)
        brightness = None
        if self.brightness_range is not None:
            brightness = np.random.uniform(self.brightness_range[0], self.brightness_range[1])
        return {
            "theta": theta, "tx": tx, "ty": ty, "shear": shear, "zx": zx, "zy": zy,
            "flip_horizontal": flip_horizontal, "flip_vertical": flip_vertical,
            "channel_shift_intensity": channel_shift, "brightness": brightness,
        }

    def apply_transform(self, x, transform_parameters):
        """Applies parameters from `get_random_transform` to one 3D image."""
        row, col, channel = self.row_axis - 1, self.col_axis - 1, self.channel_axis - 1
        p = transform_parameters
        x = apply_affine_transform(
            x, p.get("theta", 0), p.get("tx", 0), p.get("ty", 0), p.get("shear", 0), p.get("zx", 1), p.get("zy", 1),
            row_axis=row, col_axis=col, channel_axis=channel, fill_mode=self.fill_mode, cval=self.cval,
            order=self.interpolation_order,
        )
        if p.get("channel_shift_intensity") is not None:
            x = apply_channel_shift(x, p["channel_shift_intensity"], channel)
        if p.get("flip_horizontal", False):
            x = flip_axis(x, col)
        if p.get("flip_vertical", False):
            x = flip_axis(x, row)
        if p.get("brightness") is not None:
            x = apply_brightness_shift(x, p["brightness"], False)
        return x

    def random_transform(self, x, seed=None):
        return self.apply_transform(x, self.get_random_transform(x.shape, seed))

    def fit(self, x, augment=False, rounds=1, seed=None):
        """Computes the feature-wise mean, std and ZCA matrix from sample images (rank 4)."""
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError(f"Input to `.fit()` should have rank 4. Got array with shape: {x.shape}")
        if x.shape[self.channel_axis] not in {1, 3, 4}:
            warnings.warn(
                f"Expected input to be images (as Numpy array) following the data format convention "
                f'"{self.data_format}" (channels on axis {self.channel_axis}), i.e. expected either 1, 3 or 4 '
                f"channels on axis {self.channel_axis}. However, it was passed an array with shape {x.shape} "
                f"({x.shape[self.channel_axis]} channels).", stacklevel=2,
            )
        if seed is not None:
            np.random.seed(seed)
        x = np.copy(x)
        if self.rescale:
            x *= self.rescale
        if augment:
            ax = np.zeros((rounds * x.shape[0],) + x.shape[1:], dtype=self.dtype)
            for r in range(rounds):
                for i in range(x.shape[0]):
                    ax[i + r * x.shape[0]] = self.random_transform(x[i])
            x = ax
        axes = (0, self.row_axis, self.col_axis)
        shape = [1, 1, 1]
        shape[self.channel_axis - 1] = x.shape[self.channel_axis]
        if self.featurewise_center:
            self.mean = np.reshape(np.mean(x, axis=axes), shape)
            x -= self.mean
        if self.featurewise_std_normalization:
            self.std = np.reshape(np.std(x, axis=axes), shape)
            x /= self.std + 1e-6
        if self.zca_whitening:
            n = len(x)
            flat = np.reshape(x, (n, -1))
            u, s, _ = np.linalg.svd(flat.T / np.sqrt(n))
            s_inv = 1.0 / np.sqrt(s[np.newaxis] ** 2 + self.zca_epsilon)
            self.zca_whitening_matrix = (u * s_inv).dot(u.T)


def _truthy(value) -> bool:
    # Keras 2 tests `if self.width_shift_range:`: a non-empty list is on even if it holds only 0
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) > 0
    return bool(value)


def _config_floatx():
    from kerasish.backend.dtypes import floatx

    return floatx()


class NumpyArrayIterator(PyDataset):
    """Batches of augmented images from arrays (what `ImageDataGenerator.flow` returns).

    As a `PyDataset`, `len(it)` batches per epoch and `it[i]` is batch `i`;
    `next(it)` yields batches forever (Keras 2's iterator protocol).
    Batches are `x`, `(x, y)` or `(x, y, sample_weight)` NumPy arrays.
    """

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=False, sample_weight=None, seed=None,
                 data_format=None, save_to_dir=None, save_prefix="", save_format="png", subset=None,
                 ignore_class_split=False, dtype=None):
        super().__init__()
        self.dtype = dtype or _config_floatx()
        if isinstance(x, (tuple, list)) and not isinstance(x, np.ndarray) and len(x) == 2 and isinstance(
            x[1], (list, tuple, np.ndarray)
        ) and np.ndim(x[0]) == 4 and isinstance(x[1], list):
            x, x_misc = x[0], [np.asarray(a) for a in x[1]]
        else:
            x_misc = []
        if y is not None and len(x) != len(y):
            raise ValueError(
                "`x` (images tensor) and `y` (labels) should have the same length. "
                f"Found: x.shape = {np.asarray(x).shape}, y.shape = {np.asarray(y).shape}"
            )
        if sample_weight is not None and len(x) != len(sample_weight):
            raise ValueError(
                "`x` (images tensor) and `sample_weight` should have the same length. "
                f"Found: x.shape = {np.asarray(x).shape}, sample_weight.shape = {np.asarray(sample_weight).shape}"
            )
        if subset is not None:
            if subset not in {"training", "validation"}:
                raise ValueError(f'Invalid subset name: {subset}; expected "training" or "validation".')
            split_idx = int(len(x) * image_data_generator.validation_split)
            if y is not None and not ignore_class_split and not np.array_equal(
                np.unique(y[:split_idx]), np.unique(y[split_idx:])
            ):
                raise ValueError(
                    "Training and validation subsets have different number of classes after the split. If your "
                    "numpy arrays are sorted by the label, you might want to shuffle them."
                )
            sel = slice(None, split_idx) if subset == "validation" else slice(split_idx, None)
            x = x[sel]
            x_misc = [a[sel] for a in x_misc]
            if y is not None:
                y = y[sel]
            if sample_weight is not None:
                sample_weight = sample_weight[sel]
        self.x = np.asarray(x, dtype=self.dtype)
        if self.x.ndim != 4:
            raise ValueError(
                f"Input data in `NumpyArrayIterator` should have rank 4. You passed an array with shape {self.x.shape}"
            )
        self.x_misc = x_misc
        self.y = np.asarray(y) if y is not None else None
        self.sample_weight = np.asarray(sample_weight) if sample_weight is not None else None
        self.image_data_generator = image_data_generator
        self.data_format = data_format or _config.image_data_format()
        self.save_to_dir, self.save_prefix, self.save_format = save_to_dir, save_prefix, save_format
        self.n = len(self.x)
        self.batch_size = int(batch_size)
        self.seed = seed
        self.shuffle = bool(shuffle)
        self.batch_index = 0
        self.total_batches_seen = 0
        self.lock = threading.Lock()
        self.index_array = None
        self._index_generator = self._flow_index()

    def _set_index_array(self):
        self.index_array = np.arange(self.n)
        if self.shuffle:
            self.index_array = np.random.permutation(self.n)

    def __len__(self):
        return (self.n + self.batch_size - 1) // self.batch_size

    def __getitem__(self, idx):
        if idx >= len(self):
            raise ValueError(f"Asked to retrieve element {idx}, but the Sequence has length {len(self)}")
        if self.seed is not None:
            np.random.seed(self.seed + self.total_batches_seen)
        self.total_batches_seen += 1
        if self.index_array is None:
            self._set_index_array()
        rows = self.index_array[self.batch_size * idx:self.batch_size * (idx + 1)]
        return self._get_batches_of_transformed_samples(rows)

    def on_epoch_end(self):
        self._set_index_array()

    def reset(self):
        self.batch_index = 0

    def _flow_index(self):
        self.reset()
        while True:
            if self.seed is not None:
                np.random.seed(self.seed + self.total_batches_seen)
            if self.batch_index == 0:
                self._set_index_array()
            current = 0 if self.n == 0 else (self.batch_index * self.batch_size) % self.n
            if self.n > current + self.batch_size:
                self.batch_index += 1
            else:
                self.batch_index = 0
            self.total_batches_seen += 1
            yield self.index_array[current:current + self.batch_size]

    def __next__(self):
        with self.lock:
            rows = next(self._index_generator)
        return self._get_batches_of_transformed_samples(rows)

    def next(self):
        return self.__next__()

    def _get_batches_of_transformed_samples(self, rows):
        gen = self.image_data_generator
        batch_x = np.zeros((len(rows),) + self.x.shape[1:], dtype=self.dtype)
        for i, j in enumerate(rows):
            params = gen.get_random_transform(self.x[j].shape)
            img = gen.apply_transform(self.x[j].astype(self.dtype), params)
            batch_x[i] = gen.standardize(img)
        if self.save_to_dir:
            import os

            for i, j in enumerate(rows):
                name = f"{self.save_prefix}_{j}_{np.random.randint(int(1e4))}.{self.save_format}"
                save_img(os.path.join(self.save_to_dir, name), batch_x[i], data_format=self.data_format)
        inputs = batch_x if not self.x_misc else [batch_x] + [a[rows] for a in self.x_misc]
        if self.y is None:
            return inputs
        out = (inputs, self.y[rows])
        if self.sample_weight is not None:
            out += (self.sample_weight[rows],)
        return out


__all__ = [
    "ImageDataGenerator", "NumpyArrayIterator", "apply_affine_transform", "apply_brightness_shift",
    "apply_channel_shift", "array_to_img", "flip_axis", "img_to_array", "load_img", "save_img",
    "smart_resize", "transform_matrix_offset_center",
]
