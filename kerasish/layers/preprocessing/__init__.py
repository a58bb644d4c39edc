"""Keras preprocessing layers that models contain: rescaling, normalization,
category encoding, resizing and center cropping; random image augmentation."""

from kerasish.layers.preprocessing.category_encoding import CategoryEncoding
from kerasish.layers.preprocessing.center_crop import CenterCrop
from kerasish.layers.preprocessing.discretization import Discretization
from kerasish.layers.preprocessing.hashed_crossing import HashedCrossing
from kerasish.layers.preprocessing.hashing import Hashing
from kerasish.layers.preprocessing.integer_lookup import IntegerLookup
from kerasish.layers.preprocessing.string_lookup import StringLookup
from kerasish.layers.preprocessing.text_vectorization import TextVectorization
from kerasish.layers.preprocessing.normalization import Normalization
from kerasish.layers.preprocessing.pipeline import Pipeline
from kerasish.layers.preprocessing.random_grayscale import RandomGrayscale
from kerasish.layers.preprocessing.random_invert import RandomInvert
from kerasish.layers.preprocessing.rescaling import Rescaling
from kerasish.layers.preprocessing.resizing import Resizing
from kerasish.layers.preprocessing.random_brightness import RandomBrightness
from kerasish.layers.preprocessing.random_contrast import RandomContrast
from kerasish.layers.preprocessing.random_crop import RandomCrop
from kerasish.layers.preprocessing.random_flip import RandomFlip
from kerasish.layers.preprocessing.random_rotation import RandomRotation
from kerasish.layers.preprocessing.random_translation import RandomTranslation
from kerasish.layers.preprocessing.random_zoom import RandomZoom
from kerasish.layers.preprocessing.auto_contrast import AutoContrast
from kerasish.layers.preprocessing.clahe import ContrastLimitedAdaptiveHistogramEqualization
from kerasish.layers.preprocessing.equalization import Equalization
from kerasish.layers.preprocessing.random_posterization import RandomPosterization
from kerasish.layers.preprocessing.solarization import Solarization
from kerasish.layers.preprocessing.random_color_degeneration import RandomColorDegeneration
from kerasish.layers.preprocessing.random_saturation import RandomSaturation
from kerasish.layers.preprocessing.random_hue import RandomHue
from kerasish.layers.preprocessing.random_sharpness import RandomSharpness
from kerasish.layers.preprocessing.random_gaussian_blur import RandomGaussianBlur
from kerasish.layers.preprocessing.random_erasing import RandomErasing
from kerasish.layers.preprocessing.mix_up import MixUp
from kerasish.layers.preprocessing.cut_mix import CutMix
from kerasish.layers.preprocessing.random_shear import RandomShear
from kerasish.layers.preprocessing.random_perspective import RandomPerspective
from kerasish.layers.preprocessing.random_elastic_transform import RandomElasticTransform
from kerasish.layers.preprocessing.random_color_jitter import RandomColorJitter
from kerasish.layers.preprocessing.aug_mix import AugMix
from kerasish.layers.preprocessing.rand_augment import RandAugment

__all__ = ["CategoryEncoding", "CenterCrop", "Normalization", "Rescaling", "Resizing"]
__all__ += ["Pipeline", "RandomGrayscale", "RandomInvert"]
__all__ += ["Discretization", "HashedCrossing", "Hashing", "IntegerLookup", "StringLookup", "TextVectorization"]
__all__ += ["RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip"]
__all__ += ["RandomRotation", "RandomTranslation", "RandomZoom"]

# audio preprocessing
from kerasish.layers.preprocessing.mel_spectrogram import MelSpectrogram  # noqa: E402
from kerasish.layers.preprocessing.stft_spectrogram import STFTSpectrogram  # noqa: E402

__all__ += ["MelSpectrogram", "STFTSpectrogram"]

# bounding-box preprocessing
from kerasish.layers.preprocessing.max_num_bounding_boxes import MaxNumBoundingBoxes  # noqa: E402

__all__ += ["MaxNumBoundingBoxes"]
__all__ += ["AutoContrast", "ContrastLimitedAdaptiveHistogramEqualization", "Equalization", "RandomPosterization"]
__all__ += ["Solarization"]
__all__ += ["CutMix", "MixUp", "RandomColorDegeneration", "RandomErasing", "RandomGaussianBlur", "RandomHue"]
__all__ += ["RandomSaturation", "RandomSharpness"]
__all__ += ["RandomElasticTransform", "RandomPerspective", "RandomShear"]
__all__ += ["AugMix", "RandAugment", "RandomColorJitter"]
