"""`keras.layers.cudnn_recurrent` (multi-backend Keras 2.1-2.4, `keras` 2.6-2.8):
`CuDNNLSTM` / `CuDNNGRU`, which Keras 3 removed."""

from kerasish.utils.keras2_modules import install

_INSTEAD = ("use `keras.layers.{rnn}` with its defaults (the same maths: kerasish runs it with cuDNN on CUDA); "
            "Keras 2 `.h5` files holding a `{name}` load as `{rnn}`{extra}")

install(
    globals(),
    {},
    {"CuDNNLSTM": _INSTEAD.format(rnn="LSTM", name="CuDNNLSTM", extra=""),
     "CuDNNGRU": _INSTEAD.format(rnn="GRU", name="CuDNNGRU", extra=" (`reset_after=True`)")},
)
