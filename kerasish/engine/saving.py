"""`keras.engine.saving` (Keras 2.2-2.12): `save_model`, `load_model`,
`model_from_config` / `model_from_json` / `model_from_yaml`, as
`keras.models`'s. The `.h5` group helpers were internals."""

from kerasish.engine._common import WEIGHTS_IO
from kerasish.utils.keras2_modules import install

install(
    globals(),
    {name: f"kerasish.models:{name}" for name in ("save_model", "load_model", "model_from_config",
                                                   "model_from_json", "model_from_yaml")},
    {name: WEIGHTS_IO for name in ("preprocess_weights_for_loading", "load_weights_from_hdf5_group",
                                   "load_weights_from_hdf5_group_by_name", "save_weights_to_hdf5_group",
                                   "save_attributes_to_hdf5_group", "load_attributes_from_hdf5_group")},
)
