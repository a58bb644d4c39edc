"""Weight initializers, as `keras.initializers`.

`get` accepts what Keras 3 accepts: `None`, a name (class name or its
snake_case alias, e.g. `"GlorotUniform"` / `"glorot_uniform"`, plus Keras's
legacy aliases `"normal"`, `"uniform"`, `"one"`, `"zero"`), a config dict
(Keras 3 or Keras 2 layout), an instance, a class, a callable, or a tensor /
NumPy array holding the values themselves.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from kerasish.backend.dtypes import to_torch_dtype
from kerasish.initializers.constant_initializers import (
    STFT,
    Constant,
    Identity,
    Ones,
    Zeros,
)
from kerasish.initializers.initializer import Initializer
from kerasish.initializers.random_initializers import (
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    LecunNormal,
    LecunUniform,
    Orthogonal,
    RandomInitializer,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    compute_fans,
)
from kerasish.saving.serialization_lib import (
    deserialize_keras_object,
    serialize_keras_object,
)

# Compatibility class aliases Keras 3 exports.
IdentityInitializer = Identity
OrthogonalInitializer = Orthogonal
STFTInitializer = STFT

# Lowercase function-style aliases (Keras 3 exports the classes under these names).
constant = Constant
zeros = Zeros
ones = Ones
identity = Identity
stft = STFT
random_normal = RandomNormal
random_uniform = RandomUniform
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling
glorot_normal = GlorotNormal
glorot_uniform = GlorotUniform
he_normal = HeNormal
he_uniform = HeUniform
lecun_normal = LecunNormal
lecun_uniform = LecunUniform
orthogonal = Orthogonal

ALL_OBJECTS = (
    Initializer,
    Constant,
    Identity,
    Ones,
    STFT,
    Zeros,
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    LecunNormal,
    LecunUniform,
    Orthogonal,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
)


def _snake(name: str) -> str:
    import re

    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


ALL_OBJECTS_DICT: dict[str, type] = {cls.__name__: cls for cls in ALL_OBJECTS}
ALL_OBJECTS_DICT.update({_snake(cls.__name__): cls for cls in ALL_OBJECTS})
ALL_OBJECTS_DICT.update(
    {
        "IdentityInitializer": Identity,
        "OrthogonalInitializer": Orthogonal,
        "STFTInitializer": STFT,
        "normal": RandomNormal,
        "uniform": RandomUniform,
        "one": Ones,
        "zero": Zeros,
    }
)


def serialize(initializer) -> dict | str | None:
    """Returns the Keras 3 config dict of an initializer.

    Args:
        initializer: An `Initializer` (or registered function).
    """
    return serialize_keras_object(initializer)


def deserialize(config, custom_objects: dict | None = None):
    """Builds an initializer from its config dict (Keras 3 or Keras 2 layout).

    Args:
        config: The dict from `serialize`, or a name.
        custom_objects: Extra `{name: class}` to look names up in.
            Defaults to `None`.
    """
    if isinstance(config, str):
        config = {"class_name": config, "config": {}}
    return deserialize_keras_object(
        config, module_objects=ALL_OBJECTS_DICT, custom_objects=custom_objects, printable_module_name="initializer"
    )


def get(identifier):
    """Returns an initializer from an identifier.

    Args:
        identifier: `None`, a name, a config dict, an `Initializer` instance
            or class, a callable `(shape, dtype=None)`, or a tensor / array
            of the exact values (the returned function checks the shape).

    Returns:
        An initializer (or callable), or `None` for `None`.

    Raises:
        ValueError: if the identifier cannot be interpreted.
    """
    if identifier is None:
        return None
    if isinstance(identifier, (dict, str)):
        try:
            obj = deserialize(identifier)
        except ValueError as e:
            raise ValueError(f"Could not interpret initializer identifier: {identifier}") from e
    elif torch.is_tensor(identifier) or isinstance(identifier, (np.ndarray, np.generic)):
        obj = _from_values(identifier)
    else:
        obj = identifier
    if callable(obj):
        return obj() if inspect.isclass(obj) else obj
    raise ValueError(f"Could not interpret initializer identifier: {identifier}")


def _from_values(values):
    values = torch.as_tensor(values)

    def initialize_fn(shape, dtype=None):
        if tuple(shape) != tuple(values.shape):
            raise ValueError(
                f"Expected `shape` to be {tuple(values.shape)} for direct "
                f"tensor as initializer. Received shape={shape}"
            )
        return values.detach().to(device=torch.get_default_device(), dtype=to_torch_dtype(dtype)).clone()

    return initialize_fn


__all__ = [
    "ALL_OBJECTS",
    "ALL_OBJECTS_DICT",
    "STFT",
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Identity",
    "IdentityInitializer",
    "Initializer",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "Orthogonal",
    "OrthogonalInitializer",
    "RandomInitializer",
    "RandomNormal",
    "RandomUniform",
    "STFTInitializer",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
    "compute_fans",
    "constant",
    "deserialize",
    "get",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "identity",
    "lecun_normal",
    "lecun_uniform",
    "ones",
    "orthogonal",
    "random_normal",
    "random_uniform",
    "serialize",
    "stft",
    "truncated_normal",
    "variance_scaling",
    "zeros",
]
