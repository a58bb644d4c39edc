"""`keras.utils`."""

from kerasish.callbacks.progbar_logger import Progbar
from kerasish.utils import bounding_boxes
from kerasish.utils.data_utils import normalize
from kerasish.utils.data_utils import pad_sequences
from kerasish.utils.data_utils import set_random_seed
from kerasish.utils.data_utils import to_categorical
from kerasish.utils.file_utils import get_file
from kerasish.utils import legacy
from kerasish.utils.naming import reset_uids as _reset_uids
from kerasish.utils.py_dataset import PyDataset
from kerasish.utils.py_dataset import Sequence
from kerasish.utils.timeseries import timeseries_dataset_from_array


def clear_session(free_memory: bool = True) -> None:
    """Resets the layer-name counters (so the next Dense is `dense` again)
    and the calling thread's call state, as `keras.utils.clear_session()`."""
    from kerasish.layers import call_context
    from kerasish.random import seed_generator

    _reset_uids()
    call_context.reset()
    # Keras drops its global SeedGenerator (recreated from `random` on the next
    # unseeded draw); the Keras-exact seeding mode of set_random_seed stays on
    seed_generator._GLOBAL.clear()
    if free_memory:
        import gc

        gc.collect()


def get_custom_objects():
    """The global custom-object registry (`keras.utils.get_custom_objects`)."""
    from kerasish.saving import get_custom_objects as _get

    return _get()


def custom_object_scope(*args):
    """`keras.utils.custom_object_scope` (alias of `keras.saving.CustomObjectScope`)."""
    from kerasish.saving import CustomObjectScope

    return CustomObjectScope(*args)


def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Alias of `keras.saving.register_keras_serializable`."""
    from kerasish.saving import register_keras_serializable as _register

    return _register(package, name)


# Keras re-exports these in `keras.utils`; they live elsewhere in kerasish and
# are resolved on first access (importing them here would be circular).
_LAZY = {
    "FeatureSpace": ("kerasish.layers.preprocessing.feature_space", "FeatureSpace"),
    "Config": ("kerasish.utils.config", "Config"),
    # kerasish's own (no Keras name): kernels back in Keras's contiguous storage for torch tools
    "contiguous_weights": ("kerasish.layers.weight_layout", "contiguous_weights"),
    "get_source_inputs": ("kerasish.utils.graph_utils", "get_source_inputs"),
    "disable_interactive_logging": ("kerasish.utils.io_utils", "disable_interactive_logging"),
    "enable_interactive_logging": ("kerasish.utils.io_utils", "enable_interactive_logging"),
    "is_interactive_logging_enabled": ("kerasish.utils.io_utils", "is_interactive_logging_enabled"),
    "CustomObjectScope": ("kerasish.saving.object_registration", "CustomObjectScope"),
    "get_registered_name": ("kerasish.saving.object_registration", "get_registered_name"),
    "get_registered_object": ("kerasish.saving.object_registration", "get_registered_object"),
    "serialize_keras_object": ("kerasish.saving.serialization_lib", "serialize_keras_object"),
    "deserialize_keras_object": ("kerasish.saving.serialization_lib", "deserialize_keras_object"),
    "is_keras_tensor": ("kerasish.backend.keras_tensor", "is_keras_tensor"),
    "standardize_dtype": ("kerasish.backend.dtypes", "standardize_dtype"),
    "pack_x_y_sample_weight": ("kerasish.trainers.data_adapters", "pack_x_y_sample_weight"),
    "unpack_x_y_sample_weight": ("kerasish.trainers.data_adapters", "unpack_x_y_sample_weight"),
    "array_to_img": ("kerasish.preprocessing.image", "array_to_img"),
    "img_to_array": ("kerasish.preprocessing.image", "img_to_array"),
    "load_img": ("kerasish.preprocessing.image", "load_img"),
    "save_img": ("kerasish.preprocessing.image", "save_img"),
    "model_to_dot": ("kerasish.utils.model_visualization", "model_to_dot"),
    "plot_model": ("kerasish.utils.model_visualization", "plot_model"),
    "image_dataset_from_directory": ("kerasish.utils.image_dataset_utils", "image_dataset_from_directory"),
    "text_dataset_from_directory": ("kerasish.utils.text_dataset_utils", "text_dataset_from_directory"),
    "split_dataset": ("kerasish.utils.dataset_utils", "split_dataset"),
    "audio_dataset_from_directory": ("kerasish.utils.audio_dataset_utils", "audio_dataset_from_directory"),
}


# Keras 2's utils submodules (`keras.utils.np_utils.to_categorical(y)`), imported on first use
_KERAS2_SUBMODULES = {"np_utils", "generic_utils", "layer_utils", "vis_utils", "conv_utils", "multi_gpu_utils"}


def __getattr__(name):
    if name in _KERAS2_SUBMODULES:
        import importlib

        return importlib.import_module(f"kerasish.utils.{name}")
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kerasish.utils' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    *_LAZY,
    "bounding_boxes",
    "Progbar",
    "legacy",
    "PyDataset",
    "Sequence",
    "clear_session",
    "custom_object_scope",
    "get_file",
    "get_custom_objects",
    "normalize",
    "pad_sequences",
    "register_keras_serializable",
    "set_random_seed",
    "timeseries_dataset_from_array",
    "to_categorical",
]
