"""`keras.preprocessing`: Keras 2's `image`, `sequence` and `text` utilities
and Keras 3's `timeseries_dataset_from_array`, `image_dataset_from_directory`
and `text_dataset_from_directory` (which return a torch-native dataset here,
see `kerasish.utils.file_dataset`).
"""

from kerasish.preprocessing import image
from kerasish.preprocessing import sequence
from kerasish.preprocessing import text
from kerasish.utils.image_dataset_utils import image_dataset_from_directory
from kerasish.utils.text_dataset_utils import text_dataset_from_directory
from kerasish.utils.timeseries import timeseries_dataset_from_array

__all__ = [
    "image",
    "image_dataset_from_directory",
    "sequence",
    "text",
    "text_dataset_from_directory",
    "timeseries_dataset_from_array",
]
