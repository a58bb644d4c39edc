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
