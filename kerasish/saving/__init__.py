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
