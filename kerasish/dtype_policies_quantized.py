"""Quantized dtype policies (`keras.dtype_policies.QuantizedDTypePolicy`,
`QuantizedFloat8DTypePolicy`, `Int4DTypePolicy`) and `DTypePolicyMap`.

A quantized policy is named `"<mode>_from_<source>"` (`"int8_from_float32"`,
`"int4/128_from_mixed_bfloat16"`): the layer computes in the source policy's
dtypes and stores its quantized weights as the mode says.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping

from kerasish.dtype_policies import QUANTIZATION_MODES
from kerasish.dtype_policies import DTypePolicy


class QuantizedDTypePolicy(DTypePolicy):
    """A dtype policy for a quantized layer.

    Args:
        mode: "int8", "int4" or "float8" ("gptq"/"awq" are not implemented
            in kerasish).
        source_name: The float policy the layer had before quantization
            (its compute and variable dtypes). Defaults to the global policy.

    Example:
        >>> keras.dtype_policies.get("int8_from_mixed_bfloat16").compute_dtype
        'bfloat16'
    """

    def __init__(self, mode, source_name=None):
        from kerasish.dtype_policies import global_policy

        if source_name is None:
            source_name = global_policy().name
        source = DTypePolicy(source_name)
        if mode not in QUANTIZATION_MODES:
            raise ValueError(f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. Received: mode={mode}")
        if source.compute_dtype == "float16" and mode == "int8":
            raise ValueError(f"Quantization mode='{mode}' doesn't work well with compute_dtype='float16'.")
        super().__init__(source_name)
        self._name = f"{mode}_from_{source_name}"
        self._source_name = source_name
        self._quantization_mode = mode

    @property
    def quantization_mode(self):
        return self._quantization_mode

    def get_config(self):
        return {"mode": self._quantization_mode, "source_name": self._source_name}

    def __eq__(self, other):
        if type(other) is not type(self):
            return False
        return self.get_config() == other.get_config() and self._name == other._name

    def __hash__(self):
        return hash(self._name)

    def __repr__(self):
        return f'<{type(self).__name__} "{self._name}">'


class QuantizedFloat8DTypePolicy(QuantizedDTypePolicy):
    """The float8 policy; `amax_history_length` is the length of the amax
    histories the scales are computed from. Defaults to 1024."""

    default_amax_history_length = 1024

    def __init__(self, mode, source_name=None, amax_history_length=1024):
        super().__init__(mode=mode, source_name=source_name)
        if not isinstance(amax_history_length, int):
            raise TypeError(
                f"`amax_history_length` must be an integer. Received: amax_history_length={amax_history_length}"
            )
        self._amax_history_length = amax_history_length

    @property
    def amax_history_length(self):
        return self._amax_history_length

    def get_config(self):
        return {**super().get_config(), "amax_history_length": self._amax_history_length}


class Int4DTypePolicy(QuantizedDTypePolicy):
    """The int4 policy with its block size: `mode` is `"int4/<block_size>"`,
    -1 for per-channel, a positive size for sub-channel quantization."""

    def __init__(self, mode, source_name=None):
        parts = mode.split("/") if isinstance(mode, str) else []
        expected = "'int4/<block_size>'"
        if len(parts) != 2 or parts[0] != "int4":
            raise ValueError(f"Invalid mode for Int4DTypePolicy. Expected format {expected}, but got '{mode}'.")
        try:
            block_size = int(parts[1])
        except ValueError:
            raise ValueError(
                "Invalid mode for Int4DTypePolicy. <block_size> must be an integer. "
                f"Expected format {expected}, but got '{mode}'."
            ) from None
        if block_size < -1 or block_size == 0:
            raise ValueError(
                "Invalid block_size in mode. Supported values are -1 (per-channel) or a positive integer "
                f"(sub-channel), but got {block_size} from '{mode}'."
            )
        super().__init__(mode="int4", source_name=source_name)
        self._name = f"{mode}_from_{self._source_name}"
        self.mode = "int4"
        self.block_size = block_size

    def get_config(self):
        return {"mode": f"int4/{self.block_size}", "source_name": self._source_name}


class GPTQDTypePolicy(QuantizedDTypePolicy):
    """The GPTQ policy: `mode` is `"gptq/<weight_bits>/<group_size>"` (bits
    2, 3, 4 or 8; group size -1 or positive)."""

    def __init__(self, mode, source_name=None):
        parts = mode.split("/") if isinstance(mode, str) else []
        expected = "'gptq/<weight_bits>/<group_size>'"
        if len(parts) != 3 or parts[0] != "gptq":
            raise ValueError(f"Invalid mode for GPTQDTypePolicy. Expected format {expected}, but got '{mode}'.")
        try:
            weight_bits, group_size = int(parts[1]), int(parts[2])
        except ValueError:
            raise ValueError(
                "Invalid mode for GPTQDTypePolicy. <weight_bits> and <group_size> must be integers. "
                f"Expected format {expected}, but got '{mode}'."
            ) from None
        if weight_bits not in [2, 3, 4, 8]:
            raise ValueError(
                f"Invalid weight_bits in mode. Supported values are 2, 3, 4, and 8, but got {weight_bits} from '{mode}'."
            )
        if group_size < -1 or group_size == 0:
            raise ValueError(
                "Invalid group_size in mode. Supported values are -1 (whole-tensor) or a positive integer, "
                f"but got {group_size} from '{mode}'."
            )
        super().__init__(mode="gptq", source_name=source_name)
        self._name = f"{mode}_from_{self._source_name}"
        self.mode = "gptq"
        self.weight_bits = weight_bits
        self.group_size = group_size

    def get_config(self):
        return {"mode": f"gptq/{self.weight_bits}/{self.group_size}", "source_name": self._source_name}


class AWQDTypePolicy(QuantizedDTypePolicy):
    """The AWQ policy: `mode` is `"awq/<weight_bits>/<group_size>"` (4 bits
    only; group size -1 or positive)."""

    def __init__(self, mode, source_name=None):
        parts = mode.split("/") if isinstance(mode, str) else []
        expected = "'awq/<weight_bits>/<group_size>'"
        if len(parts) != 3 or parts[0] != "awq":
            raise ValueError(f"Invalid mode for AWQDTypePolicy. Expected format {expected}, but got '{mode}'.")
        try:
            weight_bits, group_size = int(parts[1]), int(parts[2])
        except ValueError:
            raise ValueError(
                "Invalid mode for AWQDTypePolicy. <weight_bits> and <group_size> must be integers. "
                f"Expected format {expected}, but got '{mode}'."
            ) from None
        if weight_bits != 4:
            raise ValueError(
                f"Invalid weight_bits in mode. AWQ only supports 4-bit quantization, but got {weight_bits} from '{mode}'."
            )
        if group_size < -1 or group_size == 0:
            raise ValueError(
                "Invalid group_size in mode. Supported values are -1 (per-channel) or a positive integer, "
                f"but got {group_size} from '{mode}'."
            )
        super().__init__(mode="awq", source_name=source_name)
        self._name = f"{mode}_from_{self._source_name}"
        self.mode = "awq"
        self.weight_bits = weight_bits
        self.group_size = group_size

    def get_config(self):
        return {"mode": f"awq/{self.weight_bits}/{self.group_size}", "source_name": self._source_name}


def quantized_policy_from_name(policy):
    """`"int8_from_float32"` -> `QuantizedDTypePolicy("int8", "float32")`, etc."""
    if not isinstance(policy, str):
        raise TypeError(f"`policy` must be a string. Received: policy={policy}")
    if not policy.startswith(QUANTIZATION_MODES):
        raise ValueError("`policy` is incompatible with the current supported quantization.")
    parts = policy.split("_from_")
    if len(parts) != 2:
        raise ValueError(
            "Cannot convert `policy` into a valid pair (`mode`, `source_name`) to instantiate "
            f"`QuantizedDTypePolicy`. Received: policy={policy}"
        )
    mode, source_name = parts
    if mode.startswith("int4") and "/" in mode:
        return Int4DTypePolicy(mode, source_name)
    if mode.startswith("float8"):
        return QuantizedFloat8DTypePolicy(mode, source_name)
    if mode.startswith("gptq"):
        return GPTQDTypePolicy(mode, source_name)
    if mode.startswith("awq"):
        return AWQDTypePolicy(mode, source_name)
    return QuantizedDTypePolicy(mode, source_name)


class DTypePolicyMap(DTypePolicy, MutableMapping):
    """A dict from layer paths (or regexes over them) to dtype policies,
    with a default for the paths it does not name.

    Args:
        default_policy: Policy for unlisted paths. Defaults to the global
            policy.
        policy_map: Initial `{path: policy}` dict.

    Example:
        >>> policy_map = keras.dtype_policies.DTypePolicyMap()
        >>> policy_map["encoder/dense"] = "int8_from_float32"
        >>> policy_map["encoder/dense"].quantization_mode
        'int8'
    """

    def __init__(self, default_policy=None, policy_map=None):
        from kerasish import dtype_policies

        if isinstance(default_policy, DTypePolicyMap):
            raise ValueError("`default_policy` cannot be a `DTypePolicyMap`.")
        if policy_map is not None and not isinstance(policy_map, dict):
            raise TypeError(
                f"If specified, `policy_map` must be a dict. Received: policy_map={policy_map} "
                f"of type {type(policy_map)}"
            )
        self._default_policy_arg = default_policy
        self._default_policy = dtype_policies.get(default_policy)
        self._policy_map = {}
        for key, value in (policy_map or {}).items():
            self._policy_map[key] = dtype_policies.get(value)

    # dtypes and fast-path attributes follow the default policy
    @property
    def name(self):
        return f"map_{self.default_policy.name}"

    @property
    def default_policy(self):
        return self._default_policy

    @property
    def variable_dtype(self):
        return self._default_policy.variable_dtype

    @property
    def compute_dtype(self):
        return self._default_policy.compute_dtype

    @property
    def compute_torch_dtype(self):
        return self._default_policy.compute_torch_dtype

    @property
    def variable_torch_dtype(self):
        return self._default_policy.variable_torch_dtype

    @property
    def quantization_mode(self):
        return self._default_policy.quantization_mode

    def __getitem__(self, key):
        if key in self._policy_map:
            return self._policy_map[key]
        matches = [pattern for pattern in self._policy_map if re.fullmatch(pattern, key)]
        if len(matches) > 1:
            raise ValueError(
                f"Path '{key}' matches multiple dtype policy specification keys: {matches}. Please make sure "
                "each path only matches at most one dtype policy specification key in the DTypePolicyMap."
            )
        if matches:
            return self._policy_map[matches[0]]
        return self.default_policy

    def __setitem__(self, key, policy):
        from kerasish import dtype_policies

        if key in self._policy_map:
            raise ValueError(
                f"{key} already exist in the DTypePolicyMap with value {self._policy_map[key]}. Please make "
                "sure to not use duplicated keys."
            )
        try:
            policy = dtype_policies.get(policy)
        except Exception:
            raise ValueError(
                "Cannot interpret the assigned value by `keras.dtype_policies.get`. "
                f"Received: {policy} of type {type(policy)}"
            ) from None
        self._policy_map[key] = policy

    def __delitem__(self, key):
        return self._policy_map.pop(key)

    def __contains__(self, key):
        return key in self._policy_map

    def __len__(self):
        return len(self._policy_map)

    def __iter__(self):
        return iter(self._policy_map)

    def __eq__(self, other):
        return other is self

    def __hash__(self):
        return id(self)

    def get_config(self):
        from kerasish import dtype_policies

        policy_map = {}
        for key, policy in self._policy_map.items():
            config = dtype_policies.serialize(policy)
            if self._default_policy_arg is None:
                # As Keras: without an explicit default, the map records no
                # source policy (a loading layer supplies its own)
                inner = dict(config["config"])
                if "source_name" in inner:
                    inner["source_name"] = None
                else:
                    inner["name"] = None
                config = {**config, "config": inner}
            policy_map[key] = config
        return {"default_policy": self._default_policy_arg, "policy_map": policy_map}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from kerasish import dtype_policies

        config = dict(config)
        config["policy_map"] = {
            key: dtype_policies.deserialize(value, custom_objects=custom_objects)
            for key, value in (config.get("policy_map") or {}).items()
        }
        return cls(**config)

    def __repr__(self):
        mapping = [(k, v.name) for k, v in self._policy_map.items()]
        return f"<DTypePolicyMap at {hex(id(self))} default_policy={self._default_policy.name}, mapping={mapping}>"


POLICY_CLASSES = {
    "QuantizedDTypePolicy": QuantizedDTypePolicy,
    "QuantizedFloat8DTypePolicy": QuantizedFloat8DTypePolicy,
    "Int4DTypePolicy": Int4DTypePolicy,
    "GPTQDTypePolicy": GPTQDTypePolicy,
    "AWQDTypePolicy": AWQDTypePolicy,
    "DTypePolicyMap": DTypePolicyMap,
}
