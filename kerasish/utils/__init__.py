"""`keras.utils`."""

from kerasish.utils.data_utils import normalize
from kerasish.utils.data_utils import pad_sequences
from kerasish.utils.data_utils import set_random_seed
from kerasish.utils.data_utils import to_categorical
from kerasish.utils.naming import reset_uids as _reset_uids
from kerasish.utils.py_dataset import PyDataset
from kerasish.utils.py_dataset import Sequence


def clear_session(free_memory: bool = True) -> None:
    """Resets the layer-name counters (so the next Dense is `dense` again)
    and kerasish's global call state, as `keras.utils.clear_session()`."""
    from kerasish.layers import call_context

    _reset_uids()
    call_context.CALL_STACK.clear()
    call_context.clear_call_losses()
    call_context.SYMBOLIC[0] = False
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


__all__ = [
    "PyDataset",
    "Sequence",
    "clear_session",
    "custom_object_scope",
    "get_custom_objects",
    "normalize",
    "pad_sequences",
    "register_keras_serializable",
    "set_random_seed",
    "to_categorical",
]
