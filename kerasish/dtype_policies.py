"""Dtype policies (`keras.mixed_precision.Policy` / `keras.DTypePolicy`).

A policy has a variable dtype (weights are stored in it) and a compute dtype
(inputs are cast to it, the computation and the outputs run in it).
"mixed_float16" and "mixed_bfloat16" keep float32 weights and compute in half
precision, as in Keras.
"""

from __future__ import annotations

import threading

import torch

from kerasish.backend import dtypes

_MIXED = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


class DTypePolicy:
    """A dtype policy for a Keras layer.

    Args:
        name: "float32", "float64", "float16", "bfloat16", "mixed_float16" or
            "mixed_bfloat16" (or any other float dtype name). Defaults to
            `floatx()`.

    Example:
        >>> layer = keras.layers.Dense(4, dtype="mixed_bfloat16")
        >>> layer.compute_dtype, layer.variable_dtype
        ('bfloat16', 'float32')
    """

    def __init__(self, name: str | None = None):
        if name is None:
            name = dtypes.floatx()
        if isinstance(name, torch.dtype):
            name = dtypes.standardize_dtype(name)
        if not isinstance(name, str):
            raise TypeError(
                "'name' must be a string, such as 'mixed_float16'. "
                f"Received: name={name} (of type {type(name)})"
            )
        if name in _MIXED:
            compute, variable = _MIXED[name], "float32"
        else:
            try:
                compute = variable = dtypes.standardize_dtype(name)
            except ValueError:
                raise ValueError(
                    f"Cannot convert '{name}' to a mixed precision DTypePolicy. "
                    "Valid policies include 'mixed_float16', 'mixed_bfloat16', "
                    "and the name of any float dtype such as 'float32'."
                ) from None
        self._name = name
        self._compute_dtype = compute
        self._variable_dtype = variable
        self.compute_torch_dtype = dtypes.to_torch_dtype(compute)
        self.variable_torch_dtype = dtypes.to_torch_dtype(variable)

    @property
    def name(self) -> str:
        return self._name

    @property
    def compute_dtype(self) -> str:
        return self._compute_dtype

    @property
    def variable_dtype(self) -> str:
        return self._variable_dtype

    @property
    def quantization_mode(self):
        """The quantization mode ("int8", "int4", "float8"...), None when not quantized."""
        return None

    def get_config(self) -> dict:
        return {"name": self._name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        if isinstance(other, DTypePolicy):
            return self._name == other._name
        if isinstance(other, str):
            return self._name == other
        return NotImplemented

    def __hash__(self):
        return hash(self._name)

    def __repr__(self):
        return f'<DTypePolicy "{self._name}">'


Policy = DTypePolicy


class _GlobalPolicy(threading.local):
    """The global policy, one per thread as in Keras 3 (its `global_state` is a `threading.local`):
    a thread that sets "mixed_bfloat16" never changes the layers another thread creates, and a new
    thread starts from `floatx()`."""

    policy: DTypePolicy | None = None


_GLOBAL = _GlobalPolicy()


def set_global_policy(policy) -> None:
    """Sets the default policy of layers this thread creates afterwards (per thread, as in Keras 3)."""
    if policy is None:
        _GLOBAL.policy = None
        return
    if isinstance(policy, str):
        policy = get(policy)  # (quantized names such as "int8_from_float32" too, as Keras)
    if not isinstance(policy, DTypePolicy):
        raise ValueError(
            "Invalid `policy` argument. Expected the string name of a policy "
            f"(such as 'mixed_float16') or a `DTypePolicy` instance. Received: policy={policy}"
        )
    if not dtypes.is_float_dtype(policy.compute_dtype):
        raise ValueError(
            "set_global_policy can only be used to set the global policy to "
            f"floating-point policies, such as 'float32' and 'mixed_float16', but got policy: {policy.name}"
        )
    _GLOBAL.policy = policy


def global_policy() -> DTypePolicy:
    """This thread's global policy (`floatx()`, float32 by default, unless set in this thread)."""
    policy = _GLOBAL.policy
    if policy is None:
        return DTypePolicy(dtypes.floatx())
    return policy


def get(identifier) -> DTypePolicy:
    """A policy from None (global), a name, a torch dtype, a config dict or a policy."""
    if identifier is None:
        return global_policy()
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):
        if "class_name" in identifier:
            return deserialize(identifier)
        return DTypePolicy(**identifier.get("config", identifier))
    if isinstance(identifier, str) and identifier.startswith(QUANTIZATION_MODES):
        return _quantized_policy_from_name(identifier)
    if isinstance(identifier, (str, torch.dtype)):
        return DTypePolicy(identifier)
    raise ValueError(
        "Cannot interpret `dtype` argument. Expected a string, a torch dtype or a "
        f"DTypePolicy instance. Received: dtype={identifier}"
    )


def serialize(policy: DTypePolicy) -> dict:
    """Keras 3's config form of a policy."""
    if type(policy) in (DTypePolicy, FloatDTypePolicy):
        return {"module": "keras", "class_name": "DTypePolicy", "config": policy.get_config(), "registered_name": None}
    return {
        "module": "keras.dtype_policies", "class_name": type(policy).__name__, "config": policy.get_config(),
        "registered_name": None,
    }


class FloatDTypePolicy(DTypePolicy):
    """Keras 3's legacy name of the float `DTypePolicy` (kept for old code and configs)."""


def deserialize(config, custom_objects=None) -> DTypePolicy:
    """A policy from `serialize`'s output (or a name): the inverse of `serialize`."""
    if isinstance(config, dict) and "class_name" in config:
        name = config["class_name"]
        if name in (None, "DTypePolicy", "FloatDTypePolicy"):
            return DTypePolicy(**config.get("config", {}))
        from kerasish.dtype_policies_quantized import POLICY_CLASSES

        cls = (custom_objects or {}).get(name) or POLICY_CLASSES.get(name)
        if cls is None:
            raise ValueError(f"Unknown dtype policy class: {name!r}. Received: config={config}")
        if name == "DTypePolicyMap":
            return cls.from_config(config.get("config", {}), custom_objects=custom_objects)
        return cls.from_config(config.get("config", {}))
    return get(config)


QUANTIZATION_MODES = ("int8", "float8", "int4", "gptq", "awq")


def _quantized_policy_from_name(name):
    from kerasish.dtype_policies_quantized import quantized_policy_from_name

    return quantized_policy_from_name(name)



from kerasish.dtype_policies_quantized import DTypePolicyMap  # noqa: E402  (they subclass DTypePolicy)
from kerasish.dtype_policies_quantized import AWQDTypePolicy  # noqa: E402
from kerasish.dtype_policies_quantized import GPTQDTypePolicy  # noqa: E402
from kerasish.dtype_policies_quantized import Int4DTypePolicy  # noqa: E402
from kerasish.dtype_policies_quantized import QuantizedDTypePolicy  # noqa: E402
from kerasish.dtype_policies_quantized import QuantizedFloat8DTypePolicy  # noqa: E402
