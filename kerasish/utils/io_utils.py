"""Interactive logging switch (`keras.config.enable_interactive_logging` & co.).

With interactive logging on (the default), progress bars and messages go to
stdout. Off (for jobs on servers), each message goes to the Python logger
"kerasish" at INFO level instead; Keras sends them to absl logging.
"""

from __future__ import annotations

import logging
import sys

_settings = {"interactive_logging": True}  # process-wide, as a config setting
_logger = logging.getLogger("kerasish")


def enable_interactive_logging() -> None:
    """Messages (progress bars) go to stdout."""
    _settings["interactive_logging"] = True


def disable_interactive_logging() -> None:
    """Messages go to the "kerasish" logger at INFO level instead of stdout."""
    _settings["interactive_logging"] = False


def is_interactive_logging_enabled() -> bool:
    """Whether messages go to stdout (True, the default) or to logging."""
    return _settings["interactive_logging"]


def print_msg(message: str, line_break: bool = True) -> None:
    """Writes `message` to stdout, or logs it when interactive logging is off."""
    message = str(message)
    if is_interactive_logging_enabled():
        sys.stdout.write(f"{message}\n" if line_break else message)
        sys.stdout.flush()
    else:
        _logger.info(message)


# Keras 2's `keras.utils.io_utils` module held `HDF5Matrix` (removed in TensorFlow 2.4).
from kerasish.utils.keras2_modules import install as _install  # noqa: E402

_install(
    globals(),
    {},
    {"HDF5Matrix": "TensorFlow 2.4 removed it; read the arrays with h5py (`h5py.File(path, 'r')['x'][:]`) or wrap "
                   "the open dataset in a `keras.utils.PyDataset`"},
)
