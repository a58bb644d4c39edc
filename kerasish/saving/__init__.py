"""`keras.saving`: custom-object registration and (de)serialization."""

from kerasish.saving.object_registration import CustomObjectScope
from kerasish.saving.object_registration import custom_object_scope
from kerasish.saving.object_registration import get_custom_objects
from kerasish.saving.object_registration import get_registered_name
from kerasish.saving.object_registration import get_registered_object
from kerasish.saving.object_registration import register_keras_serializable

__all__ = [
    "CustomObjectScope",
    "custom_object_scope",
    "get_custom_objects",
    "get_registered_name",
    "get_registered_object",
    "register_keras_serializable",
]

from kerasish.saving.serialization_lib import deserialize_keras_object  # noqa: E402
from kerasish.saving.serialization_lib import serialize_keras_object  # noqa: E402

__all__ += ["deserialize_keras_object", "serialize_keras_object"]

from kerasish.saving.saving_api import load_model  # noqa: E402
from kerasish.saving.saving_api import load_weights  # noqa: E402
from kerasish.saving.saving_api import save_model  # noqa: E402
from kerasish.saving.saving_api import save_weights  # noqa: E402

__all__ += ["load_model", "load_weights", "save_model", "save_weights"]

from kerasish.saving.file_editor import KerasFileEditor  # noqa: E402

__all__ += ["KerasFileEditor"]

# Registers `kerasish>keras2_hard_sigmoid` (Keras 2's hard_sigmoid, kept by
# models loaded from Keras 2 files) so a `.keras` file holding it reloads.
from kerasish.saving import legacy_config as _legacy_config  # noqa: E402,F401
