"""`keras.utils.generic_utils` (multi-backend Keras 2.0-2.4, `keras` 2.6-2.12):
its public names, as the kerasish objects of the same name.

`serialize_keras_object` / `deserialize_keras_object` here are Keras 2's
(`keras.utils.legacy`'s: the `{"class_name", "config"}` format), as this
module's were. Keras 2's internal helpers raise an ImportError saying what to
write instead.
"""

from kerasish.utils.keras2_modules import install

_INTERNAL = "a Keras 2 internal helper that Keras 3 does not export; {instead}"

install(
    globals(),
    {"Progbar": "kerasish.utils:Progbar",
     "CustomObjectScope": "kerasish.utils:CustomObjectScope",
     "custom_object_scope": "kerasish.utils:custom_object_scope",
     "get_custom_objects": "kerasish.utils:get_custom_objects",
     "serialize_keras_object": "kerasish.utils.legacy:serialize_keras_object",
     "deserialize_keras_object": "kerasish.utils.legacy:deserialize_keras_object"},
    {"has_arg": _INTERNAL.format(instead="use `name in inspect.signature(fn).parameters`"),
     "getargspec": _INTERNAL.format(instead="use `inspect.getfullargspec`"),
     "to_list": _INTERNAL.format(instead="use `x if isinstance(x, list) else [x]`"),
     "unpack_singleton": _INTERNAL.format(instead="use `x[0] if len(x) == 1 else x`"),
     "func_dump": _INTERNAL.format(instead="a `Lambda` serializes its function itself when the model is saved"),
     "func_load": _INTERNAL.format(instead="a `Lambda` loads its function itself (`safe_mode=False`)"),
     "object_list_uid": _INTERNAL.format(instead="there is no counterpart"),
     "is_all_none": _INTERNAL.format(instead="use `all(x is None for x in values)`"),
     "slice_arrays": _INTERNAL.format(instead="index the arrays yourself"),
     "transpose_shape": _INTERNAL.format(instead="there is no counterpart"),
     "check_for_unexpected_keys": _INTERNAL.format(instead="there is no counterpart")},
)
