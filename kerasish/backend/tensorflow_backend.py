"""`keras.backend.tensorflow_backend` (multi-backend Keras 2.0-2.4): the `K`
functions, as `keras.backend`'s (`from keras.backend.tensorflow_backend import
...`). TensorFlow 1 sessions do not exist in kerasish."""

from kerasish.backend import *  # noqa: F401,F403
from kerasish.backend import __all__  # noqa: F401
from kerasish.utils.keras2_modules import install

from kerasish.backend import _TF_SESSION_REMOVED

install(globals(), {}, {**_TF_SESSION_REMOVED, "_get_available_gpus": "use `torch.cuda.device_count()` / "
                                                                      "`keras.distribution.list_devices('gpu')`"})
