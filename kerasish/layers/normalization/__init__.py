"""Keras normalization layers."""

from kerasish.layers.normalization.batch_normalization import BatchNormalization
from kerasish.layers.normalization.group_normalization import GroupNormalization
from kerasish.layers.normalization.layer_normalization import LayerNormalization
from kerasish.layers.normalization.rms_normalization import RMSNormalization
from kerasish.layers.normalization.unit_normalization import UnitNormalization
from kerasish.layers.normalization.spectral_normalization import SpectralNormalization

__all__: list[str] = [
    "BatchNormalization",
    "GroupNormalization",
    "LayerNormalization",
    "RMSNormalization",
    "UnitNormalization",
    "SpectralNormalization",
]
