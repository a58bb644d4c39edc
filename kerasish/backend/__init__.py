"""`keras.backend`: Keras 3's backend API, plus Keras 2's tensor functions.

Keras 3 names: `backend()` (always "torch"), `floatx` / `set_floatx`,
`epsilon` / `set_epsilon`, `image_data_format` / `set_image_data_format`,
`standardize_dtype`, `is_float_dtype`, `is_int_dtype`, `is_keras_tensor`,
`get_uid`, `clear_session`, `result_type` (Keras 3's dtype promotion).

Keras 2 programs use this module as `K` (`from keras import backend as K`):
`K.mean`, `K.square`, `K.batch_dot`, `K.int_shape`, `K.set_value`, ... live in
`kerasish.backend.keras2` (`K.rnn`, the convolution, pooling and
batch-normalization functions in `kerasish.backend.keras2_nn`; the local convolutions, `K.ctc_decode`
and the focal cross-entropies in `kerasish.backend.keras2_extra`) and are re-exported here (see that module's
docstring for the few deliberate differences).
"""

from kerasish.backend.config import epsilon
from kerasish.backend.config import image_data_format
from kerasish.backend.config import set_epsilon
from kerasish.backend.config import set_image_data_format
from kerasish.backend.dtypes import floatx
from kerasish.backend.dtypes import is_float_dtype
from kerasish.backend.dtypes import set_floatx
from kerasish.backend.dtypes import standardize_dtype
from kerasish.backend.dtypes import to_torch_dtype
from kerasish.backend.keras2 import *  # noqa: F401,F403 - Keras 2's K functions
from kerasish.backend.keras2 import __all__ as _keras2_names
from kerasish.backend.keras2 import backend
from kerasish.backend.keras2 import is_keras_tensor
from kerasish.backend.keras2_extra import *  # noqa: F401,F403 - Keras 2's local conv / CTC decoding / focal losses
from kerasish.backend.keras2_extra import __all__ as _keras2_extra_names
from kerasish.backend.keras2_nn import *  # noqa: F401,F403 - Keras 2's loop / conv / normalization K functions
from kerasish.backend.keras2_nn import __all__ as _keras2_nn_names
from kerasish.backend.promotion import result_type


def is_int_dtype(dtype) -> bool:
    """True for signed and unsigned integer dtypes (any spelling)."""
    name = standardize_dtype(dtype)
    return name.startswith("int") or name.startswith("uint")


def get_uid(prefix: str = "") -> int:
    """1, 2, 3, ... per `prefix`, shared with layer auto-naming (Keras 3's `get_uid`)."""
    from kerasish.utils import naming

    naming._name_uids[prefix] += 1
    return naming._name_uids[prefix]


def clear_session(free_memory: bool = True) -> None:
    """Resets layer-name counters and call state (`keras.backend.clear_session`)."""
    from kerasish.utils import clear_session as _clear

    _clear(free_memory=free_memory)


__all__ = sorted(
    {
        "backend", "clear_session", "epsilon", "floatx", "get_uid", "image_data_format", "is_float_dtype",
        "is_int_dtype", "is_keras_tensor", "result_type", "set_epsilon", "set_floatx", "set_image_data_format",
        "standardize_dtype", "to_torch_dtype", *_keras2_names, *_keras2_nn_names, *_keras2_extra_names,
    }
)


# Keras 2's TensorFlow-1 session functions (`K.get_session()`, `K.set_session(tf.Session(config=...))` in GPU
# memory snippets): a clear ImportError instead of a bare AttributeError (kerasish/utils/keras2_modules.py).
from kerasish.utils.keras2_modules import install as _install  # noqa: E402

_SESSION = ("kerasish runs on PyTorch, which has no TensorFlow session; GPU memory settings are "
            "`torch.cuda.set_per_process_memory_fraction` (no allow_growth needed: PyTorch's caching allocator "
            "grows on demand)")
_TF_SESSION_REMOVED = {"get_session": _SESSION, "set_session": _SESSION}
_install(globals(), {}, _TF_SESSION_REMOVED)
