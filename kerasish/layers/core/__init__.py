"""Keras core layers."""

from kerasish.layers.core.activation import Activation
from kerasish.layers.core.dense import Dense
from kerasish.layers.core.einsum_dense import EinsumDense
from kerasish.layers.core.embedding import Embedding
from kerasish.layers.core.identity import Identity
from kerasish.layers.core.lambda_layer import Lambda
from kerasish.layers.core.masking import Masking
from kerasish.layers.core.reversible_embedding import ReversibleEmbedding
from kerasish.layers.core.torch_module_wrapper import TorchModuleWrapper
from kerasish.layers.core.wrapper import Wrapper

__all__: list[str] = ["Activation", "Dense", "EinsumDense", "Embedding", "Identity", "Lambda", "Masking", "ReversibleEmbedding", "TorchModuleWrapper", "Wrapper"]

# Keras 2's `keras.layers.core` module also held these (`from keras.layers.core import Dropout, Flatten`):
# served lazily as the `keras.layers` classes (kerasish/utils/keras2_modules.py).
from kerasish.utils.keras2_modules import install as _install, layer_aliases as _layer_aliases  # noqa: E402

_install(globals(), _layer_aliases("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "Reshape",
                                   "Permute", "Flatten", "RepeatVector", "ActivityRegularization"))
