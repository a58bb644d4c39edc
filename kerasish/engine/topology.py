"""`keras.engine.topology` (multi-backend Keras 2.0-2.4, where 2.2 kept it "for
backwards compatibility"): `Layer`, `InputSpec`, `Input`, `InputLayer`,
`get_source_inputs` as the kerasish classes (`from keras.engine.topology
import Layer` in old custom-layer tutorials)."""

from kerasish.engine._common import NETWORK, NODE, WEIGHTS_IO
from kerasish.utils.keras2_modules import install

install(
    globals(),
    {"Layer": "kerasish.layers:Layer", "InputSpec": "kerasish.layers:InputSpec", "Input": "kerasish.layers:Input",
     "InputLayer": "kerasish.layers:InputLayer", "get_source_inputs": "kerasish.utils:get_source_inputs"},
    {"Network": NETWORK, "Container": NETWORK, "Node": NODE,
     "preprocess_weights_for_loading": WEIGHTS_IO, "load_weights_from_hdf5_group": WEIGHTS_IO,
     "load_weights_from_hdf5_group_by_name": WEIGHTS_IO, "save_weights_to_hdf5_group": WEIGHTS_IO},
)
