"""`keras.layers.recurrent` (multi-backend Keras 2.0-2.4, `keras` 2.6-2.8): the
RNN layers and cells, as aliases of `keras.layers.*`.

Defaults follow Keras 3, as everywhere in kerasish: `GRU(reset_after=True)`
and `recurrent_activation="sigmoid"`. Multi-backend Keras 2.x built
`GRU(reset_after=False)`, and before 2.3.0 LSTM/GRU used
`recurrent_activation="hard_sigmoid"`: a ported program that relies on those
defaults builds a different network unless it passes them (saved `.h5` /
`.json` files carry them in their configs, so loading is unaffected).
"""

from kerasish.utils.keras2_modules import install, layer_aliases

install(
    globals(),
    layer_aliases("RNN", "SimpleRNN", "SimpleRNNCell", "GRU", "GRUCell", "LSTM", "LSTMCell", "StackedRNNCells"),
    {"Recurrent": "Keras 1's RNN base class; subclass `keras.layers.RNN` with a cell instead"},
)
