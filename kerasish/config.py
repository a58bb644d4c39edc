"""`keras.config`: global settings."""

from kerasish.backend.config import enable_unsafe_deserialization
from kerasish.backend.config import enable_flash_attention
from kerasish.backend.config import disable_flash_attention
from kerasish.backend.config import is_flash_attention_enabled
from kerasish.backend.config import enable_traceback_filtering
from kerasish.backend.config import disable_traceback_filtering
from kerasish.backend.config import is_traceback_filtering_enabled
from kerasish.backend.config import max_epochs
from kerasish.backend.config import set_max_epochs
from kerasish.backend.config import max_steps_per_epoch
from kerasish.backend.config import set_max_steps_per_epoch
from kerasish.backend.config import epsilon
from kerasish.backend.config import image_data_format
from kerasish.backend.config import is_unsafe_deserialization_enabled
from kerasish.backend.config import set_epsilon
from kerasish.backend.config import set_image_data_format
from kerasish.backend.dtypes import floatx
from kerasish.backend.dtypes import set_floatx
from kerasish.dtype_policies import global_policy as dtype_policy
from kerasish.utils.io_utils import disable_interactive_logging
from kerasish.utils.io_utils import enable_interactive_logging
from kerasish.utils.io_utils import is_interactive_logging_enabled
from kerasish.dtype_policies import set_global_policy as set_dtype_policy


def backend() -> str:
    """The backend name: always "torch" (`keras.config.backend()`)."""
    return "torch"

__all__ = [
    "enable_flash_attention",
    "disable_flash_attention",
    "is_flash_attention_enabled",
    "enable_traceback_filtering",
    "disable_traceback_filtering",
    "is_traceback_filtering_enabled",
    "max_epochs",
    "set_max_epochs",
    "max_steps_per_epoch",
    "set_max_steps_per_epoch",
    "disable_interactive_logging",
    "enable_interactive_logging",
    "is_interactive_logging_enabled",
    "backend",
    "dtype_policy",
    "set_dtype_policy",
    "enable_unsafe_deserialization",
    "epsilon",
    "floatx",
    "image_data_format",
    "is_unsafe_deserialization_enabled",
    "set_epsilon",
    "set_floatx",
    "set_image_data_format",
]
