"""`keras.layers`: the Layer base class and the Keras layer catalogue.

Each family lives in its own subpackage and lists its public names in
`__all__`; they are re-exported here.
"""

from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer

from kerasish.layers.activations import *  # noqa: F401,F403
from kerasish.layers.attention import *  # noqa: F401,F403
from kerasish.layers.convolutional import *  # noqa: F401,F403
from kerasish.layers.core import *  # noqa: F401,F403
from kerasish.layers.merging import *  # noqa: F401,F403
from kerasish.layers.normalization import *  # noqa: F401,F403
from kerasish.layers.pooling import *  # noqa: F401,F403
from kerasish.layers.preprocessing import *  # noqa: F401,F403
from kerasish.layers.regularization import *  # noqa: F401,F403
from kerasish.layers.reshaping import *  # noqa: F401,F403
from kerasish.layers.rnn import *  # noqa: F401,F403
from kerasish.layers import activations as _a, attention as _at, convolutional as _c, core as _co
from kerasish.layers import merging as _m, normalization as _n, pooling as _p, preprocessing as _pr
from kerasish.layers import regularization as _r, reshaping as _re, rnn as _rn

try:  # the functional API's Input / InputLayer
    from kerasish.layers.input_layer import Input, InputLayer  # noqa: F401
except ImportError:  # pragma: no cover - until the models package provides it
    pass


# Keras 2's layer modules (`keras.layers.recurrent.LSTM` after `import keras`), imported on first use
_KERAS2_SUBMODULES = {"recurrent", "embeddings", "merge", "advanced_activations", "noise", "wrappers", "local",
                      "convolutional_recurrent", "cudnn_recurrent"}


def __getattr__(name):
    if name in _KERAS2_SUBMODULES:
        import importlib

        return importlib.import_module(f"kerasish.layers.{name}")
    raise AttributeError(f"module 'kerasish.layers' has no attribute '{name}'")


def serialize(layer):
    """A layer's Keras 3 config dict (`{"module", "class_name", "config", ...}`)."""
    from kerasish.saving import serialize_keras_object

    return serialize_keras_object(layer)


def deserialize(config, custom_objects=None):
    """A layer from its serialized config; class names are looked up among
    kerasish's layers and registered custom objects only (no code is run)."""
    from kerasish.saving import deserialize_keras_object

    return deserialize_keras_object(config, module_objects=globals(), custom_objects=custom_objects, printable_module_name="layer")


__all__ = ["InputSpec", "Layer", "serialize", "deserialize"]
for _mod in (_a, _at, _c, _co, _m, _n, _p, _pr, _r, _re, _rn):
    __all__ += list(_mod.__all__)
if "Input" in globals():
    __all__ += ["Input", "InputLayer"]

from kerasish.layers import experimental  # noqa: E402,F401  (tf.keras 2's experimental names)
