"""Keras rnn layers: cells, `RNN`, `SimpleRNN`, `LSTM`, `GRU`, `ConvLSTM*D`
and the `Bidirectional` / `TimeDistributed` wrappers."""

from kerasish.layers.rnn.base_rnn_cell import contiguous_kernels
from kerasish.layers.rnn.bidirectional import Bidirectional
from kerasish.layers.rnn.conv_lstm1d import ConvLSTM1D
from kerasish.layers.rnn.conv_lstm2d import ConvLSTM2D
from kerasish.layers.rnn.conv_lstm3d import ConvLSTM3D
from kerasish.layers.rnn.gru import GRU
from kerasish.layers.rnn.gru_cell import GRUCell
from kerasish.layers.rnn.lstm import LSTM
from kerasish.layers.rnn.lstm_cell import LSTMCell
from kerasish.layers.rnn.rnn import RNN
from kerasish.layers.rnn.simple_rnn import SimpleRNN
from kerasish.layers.rnn.simple_rnn_cell import SimpleRNNCell
from kerasish.layers.rnn.stacked_rnn_cells import StackedRNNCells
from kerasish.layers.rnn.time_distributed import TimeDistributed

__all__: list[str] = [
    "Bidirectional",
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "RNN",
    "SimpleRNN",
    "SimpleRNNCell",
    "StackedRNNCells",
    "contiguous_kernels",
    "TimeDistributed",
]
