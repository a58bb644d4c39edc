"""`keras.utils.vis_utils` (multi-backend Keras 2.0-2.4, `keras` 2.6-2.12):
`plot_model`, `model_to_dot`, as `keras.utils`'s."""

from kerasish.utils.keras2_modules import install

install(globals(), {"plot_model": "kerasish.utils:plot_model", "model_to_dot": "kerasish.utils:model_to_dot"})
