"""`keras.preprocessing`: Keras 2's `image`, `sequence` and `text` utilities
and Keras 3's `timeseries_dataset_from_array`.

`keras.preprocessing.image_dataset_from_directory` /
`text_dataset_from_directory` build TensorFlow datasets from folders in
Keras and are not provided (load files into arrays, or use a torch
`Dataset`).
"""

from kerasish.preprocessing import image
from kerasish.preprocessing import sequence
from kerasish.preprocessing import text
from kerasish.utils.timeseries import timeseries_dataset_from_array

__all__ = ["image", "sequence", "text", "timeseries_dataset_from_array"]
