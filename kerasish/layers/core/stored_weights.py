"""Keras 3's computed weights: `Dense.kernel`, `EinsumDense.kernel` and
`Embedding.embeddings` are properties computed from a stored variable.

In Keras 3.15 the variable a layer builds is `layer._kernel` (`_embeddings`)
and `layer.kernel` is what the layer computes with, in Keras's own terms:

- plain (and float8, and int8 without LoRA): the stored variable itself;
- int4: the *unpacked* int8 values (not dequantized), Keras's layout;
- calibrated GPTQ/AWQ (Dense): the uint8 `quantized_kernel` (unpacked when
  4-bit), not dequantized; before calibration the float kernel;
- with LoRA on: the above plus `(lora_alpha / lora_rank) * a @ b`, cast to the
  compute dtype (for int8/int4 that is the raw integer values plus the
  update, as Keras computes it).

kerasish keeps the stored variable where it always was: the `nn.Parameter`
(or buffer) registered under `kernel` (`embeddings`), so `state_dict` keys,
`weights` order and paths, saved files and optimizer slots do not change.
`layer._kernel` reads it (autocast inside a mixed-precision call, as every
weight read there is); `layer._kernel = v` and `del layer._kernel` store and
remove it (`Layer.__setattr__`/`__delattr__` route `_<name>` of the class's
`_computed_weights` to the `<name>` registration).

Assignment differs from Keras on purpose: Keras's property has no setter
(`layer.kernel = v` raises `AttributeError`), but torch's own machinery
assigns `module.kernel` (`load_state_dict(assign=True)`, lazy modules,
`torch.nn.utils.prune`, `register_parametrization`'s `del`), so in kerasish
`layer.kernel = v` stores `v` exactly as `layer._kernel = v` does (the
Keras 2 meaning), and `del layer.kernel` removes the stored variable. A
parametrized weight reads through torch's property as before.
"""

from __future__ import annotations

import torch

from kerasish.layers.cast_reads import read_in_mixed_call


def stored_weight(layer, name: str):
    """The stored variable `name` of `layer` (a parameter or buffer; a
    mixed-precision float weight as its compute dtype while the layer's call
    runs, as `Layer.__getattr__` reads weights)."""
    d = layer.__dict__
    value = d["_parameters"].get(name)
    if value is not None:
        return layer._cast_weight(name, value) if d["_mixed"] else value
    value = d["_buffers"].get(name)
    if value is not None:
        return value
    value = d.get(name)  # a plain tensor set under the name (torch's pruning)
    if value is not None:
        return value
    if torch.nn.utils.parametrize.is_parametrized(layer, name):
        return getattr(layer, name)  # torch's parametrization property computes it
    if not d.get("built"):
        raise AttributeError(f"You must build the layer before accessing `{name}`.")
    raise AttributeError(f"Layer '{d.get('name')}' of type {type(layer).__name__} has no stored `_{name}` variable.")


def computed_variable(layer, name: str):
    """The stored variable as the computed property (`layer.kernel`, `layer.embeddings`) hands it out
    when the layer is neither quantized nor LoRA-enabled: `stored_weight`, and, for a layer that is not
    mixed (a float32-policy one), cast to the compute dtype of a mixed layer's call that reads it (a tied
    output projection: `cast_reads.read_in_mixed_call`, Keras's autocast scope). The layers' own calls
    read `stored_weight` (or the registry) instead: no check on their hot paths."""
    value = stored_weight(layer, name)
    return value if layer.__dict__["_mixed"] else read_in_mixed_call(layer, name, value)


def stored_property(name: str) -> property:
    """`layer._<name>`: the stored variable (assignment and deletion are
    routed to the `<name>` registration by `Layer.__setattr__`/`__delattr__`)."""

    def fget(self):
        return stored_weight(self, name)

    return property(fget, doc=f"The stored `{name}` variable (Keras's `_{name}`), registered under `{name}`.")


def plain_attribute(name: str):
    """The setter and deleter a computed weight's property gets for a plain
    tensor assigned under its name while no variable is registered there
    (`Layer.__setattr__` registers variables, parameters and buffers under
    `name` first; torch's pruning sets `module.kernel = masked tensor`):
    it lives in the instance dict, where `stored_weight` finds it."""

    def fset(self, value):
        self.__dict__[name] = value

    def fdel(self):
        if self.__dict__.pop(name, None) is None:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    return fset, fdel


def lora_merged(layer, base, prefix):
    """`base` plus the LoRA update `(lora_alpha / lora_rank) * <prefix>_a @
    <prefix>_b`, in the compute dtype (`base` itself when LoRA is off). An
    integer `base` (int8, unpacked int4) is promoted to float first, as
    Keras's `ops.add` does."""
    if not layer.lora_enabled:
        return base
    a, b = getattr(layer, prefix + "_a"), getattr(layer, prefix + "_b")
    return (base + (layer.lora_alpha / layer.lora_rank) * torch.matmul(a, b)).to(layer._compute_torch_dtype)


def variable(layer, name: str, default=None):
    """The variable a layer stores under `name` (a Keras serialization-spec
    name): the stored one for a computed weight (`kernel` -> `_kernel`),
    else the attribute; `default` when absent."""
    if name in type(layer)._computed_weights:
        name = "_" + name
    return getattr(layer, name, default)
