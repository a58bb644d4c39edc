"""What `SimpleRNN`, `LSTM` and `GRU` share on top of `RNN`: the cell's
arguments read through the layer, their config, and `use_cudnn`."""

from __future__ import annotations

from kerasish import activations
from kerasish import constraints
from kerasish import initializers
from kerasish import regularizers
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.rnn.rnn import RNN

_CELL_ATTRS = (
    "units", "activation", "recurrent_activation", "use_bias", "kernel_initializer", "recurrent_initializer",
    "bias_initializer", "kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "kernel_constraint",
    "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout", "unit_forget_bias", "reset_after",
)


def _cell_property(name):
    return property(lambda self: getattr(self.cell, name), doc=f"The cell's `{name}`.")


class BaseRNNLayer(RNN):
    """`RNN` over one built-in cell, with the cell's arguments as layer
    attributes (`layer.units`, `layer.dropout`, ...)."""

    _has_use_cudnn = True

    def __init__(self, cell, use_cudnn="auto", **kwargs):
        super().__init__(cell, **kwargs)
        self.input_spec = InputSpec(ndim=3)
        if use_cudnn not in ("auto", True, False):
            raise ValueError(
                "Invalid valid received for argument `use_cudnn`. Expected one of {'auto', True, False}. "
                f"Received: use_cudnn={use_cudnn}"
            )
        self.use_cudnn = use_cudnn
        self._allow_fused = use_cudnn is not False

    def _check_loop_allowed(self):
        if self.use_cudnn is True:
            raise ValueError(
                "use_cudnn=True was specified, but cuDNN is not supported for this layer configuration "
                "with this backend. Pass use_cudnn='auto' to fallback to a non-cuDNN implementation."
            )

    def call(self, sequences, initial_state=None, mask=None, training=False):
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def get_config(self) -> dict:
        cell = self.cell
        config = {
            "units": cell.units,
            "activation": activations.serialize(cell.activation),
            "use_bias": cell.use_bias,
            "kernel_initializer": initializers.serialize(cell.kernel_initializer),
            "recurrent_initializer": initializers.serialize(cell.recurrent_initializer),
            "bias_initializer": initializers.serialize(cell.bias_initializer),
            "kernel_regularizer": regularizers.serialize(cell.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(cell.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(cell.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(cell.kernel_constraint),
            "recurrent_constraint": constraints.serialize(cell.recurrent_constraint),
            "bias_constraint": constraints.serialize(cell.bias_constraint),
            "dropout": cell.dropout,
            "recurrent_dropout": cell.recurrent_dropout,
        }
        base = super().get_config()
        del base["cell"]
        return {**base, **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


for _name in _CELL_ATTRS:
    setattr(BaseRNNLayer, _name, _cell_property(_name))
