"""`keras.engine` (multi-backend Keras 2.0-2.4, `keras` 2.6-2.12): the base
classes Keras 2 programs import from here (`keras.engine.Layer`, `from
keras.engine.topology import Layer, InputSpec`), as the kerasish classes of
the same name. Its submodules: `topology`, `base_layer`, `input_layer`,
`training`, `sequential`, `network`, `functional`, `saving`."""

from kerasish.utils.keras2_modules import install

install(
    globals(),
    {"Layer": "kerasish.layers:Layer", "InputSpec": "kerasish.layers:InputSpec", "Input": "kerasish.layers:Input",
     "InputLayer": "kerasish.layers:InputLayer", "Model": "kerasish.models:Model",
     "get_source_inputs": "kerasish.utils:get_source_inputs"},
)
