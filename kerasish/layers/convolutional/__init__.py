"""Keras convolutional layers."""

from kerasish.layers.convolutional.conv1d import Conv1D
from kerasish.layers.convolutional.conv2d import Conv2D
from kerasish.layers.convolutional.conv3d import Conv3D
from kerasish.layers.convolutional.conv1d_transpose import Conv1DTranspose
from kerasish.layers.convolutional.conv2d_transpose import Conv2DTranspose
from kerasish.layers.convolutional.conv3d_transpose import Conv3DTranspose
from kerasish.layers.convolutional.depthwise_conv1d import DepthwiseConv1D
from kerasish.layers.convolutional.depthwise_conv2d import DepthwiseConv2D
from kerasish.layers.convolutional.separable_conv1d import SeparableConv1D
from kerasish.layers.convolutional.separable_conv2d import SeparableConv2D

# Keras aliases
Convolution1D = Conv1D
Convolution2D = Conv2D
Convolution3D = Conv3D
Convolution1DTranspose = Conv1DTranspose
Convolution2DTranspose = Conv2DTranspose
Convolution3DTranspose = Conv3DTranspose
SeparableConvolution1D = SeparableConv1D
SeparableConvolution2D = SeparableConv2D

__all__: list[str] = [
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Convolution1D",
    "Convolution2D",
    "Convolution3D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "Convolution1DTranspose",
    "Convolution2DTranspose",
    "Convolution3DTranspose",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
    "SeparableConvolution1D",
    "SeparableConvolution2D",
]

# Keras 2's `keras.layers.convolutional` module also held the pooling, up-sampling, padding and cropping
# layers and the `Deconvolution` aliases (`from keras.layers.convolutional import MaxPooling2D`): served
# lazily as the `keras.layers` classes (kerasish/utils/keras2_modules.py).
from kerasish.utils.keras2_modules import install as _install, layer_aliases as _layer_aliases  # noqa: E402

_ATROUS = "Keras 2.0's legacy atrous convolutions; use `{conv}(dilation_rate=...)`"
_install(
    globals(),
    {**_layer_aliases(*(f"{kind}{rank}D" for kind in ("MaxPooling", "AveragePooling", "UpSampling", "ZeroPadding",
                                                      "Cropping") for rank in (1, 2, 3))),
     "Deconvolution2D": "kerasish.layers:Conv2DTranspose", "Deconv2D": "kerasish.layers:Conv2DTranspose",
     "Deconvolution3D": "kerasish.layers:Conv3DTranspose", "Deconv3D": "kerasish.layers:Conv3DTranspose"},
    {"AtrousConvolution1D": _ATROUS.format(conv="Conv1D"), "AtrousConv1D": _ATROUS.format(conv="Conv1D"),
     "AtrousConvolution2D": _ATROUS.format(conv="Conv2D"), "AtrousConv2D": _ATROUS.format(conv="Conv2D")},
)
