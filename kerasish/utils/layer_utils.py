"""`keras.utils.layer_utils` (multi-backend Keras 2.0-2.4, `keras` 2.6-2.12):
`count_params`, `print_summary`, `get_source_inputs`.

`print_summary` is Keras 3's: a `print_fn` receives the whole summary at once
(Keras 2 called it once per line)."""

from kerasish.utils.keras2_modules import install

_THEANO = ("it converted Theano-era kernels (`channels_first` / flipped); kerasish reads Keras 2 `.h5` files in "
           "their saved layout and needs no conversion")

install(
    globals(),
    {"count_params": "kerasish.models.summary_utils:count_params",
     "print_summary": "kerasish.models.summary_utils:print_summary",
     "get_source_inputs": "kerasish.utils:get_source_inputs"},
    {"convert_all_kernels_in_model": _THEANO, "convert_dense_weights_data_format": _THEANO},
)
