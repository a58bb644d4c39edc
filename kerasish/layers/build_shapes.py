"""Which shapes a layer's automatic build receives (Keras 3's rule).

Keras 3 builds a layer on its first call with the shapes of all the tensor
arguments of `call`: a `build` with one argument gets the first one; a
`build(self, decoder_sequence_shape, encoder_sequence_shape=None)` gets each
`<arg>_shape` by the name of the `call` argument it belongs to (KerasHub's
TransformerDecoder builds its cross-attention only when it sees
`encoder_sequence_shape`). Keras's `mask` argument is never a build shape.

kerasish's own layers are written for the one-shape build (MultiHeadAttention
finishes its build in its own `call`), so the rule applies where `build` or
`call` is defined outside kerasish: users' and libraries' layers, written for
Keras (KerasHub's CachedMultiHeadAttention keeps MultiHeadAttention's `build`
but has its own `call`, so its projections are built from all three shapes).
"""

from __future__ import annotations

import inspect

import torch

from kerasish.utils import tree

_NOT_NAMED = ()


def shape_names(cls) -> tuple:
    """The `build` arguments to fill by name for `cls`, or `()` (once per
    class, from `Layer.__init_subclass__`: nothing to work out, nor a class
    attribute to write, inside a `torch.compile` trace)."""
    build = inspect.unwrap(cls.build)
    # (`__module__` is None for functions made by `exec` of a user's program)
    if (str(getattr(build, "__module__", None)).startswith("kerasish.")
            and str(getattr(cls.call, "__module__", None)).startswith("kerasish.")):
        return _NOT_NAMED
    try:
        params = [p for p in list(inspect.signature(build).parameters.values())[1:]
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        call_params = inspect.signature(cls.call).parameters
    except (TypeError, ValueError):  # a builtin or C-implemented callable: no signature to read
        return _NOT_NAMED
    if len(params) > 1 and all(p.name.endswith("_shape") and p.name[: -len("_shape")] in call_params
                               for p in params):
        return tuple(p.name for p in params)
    return _NOT_NAMED


def _is_tensor(x) -> bool:
    return isinstance(x, torch.Tensor) or (hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, type))


def named_build_shapes(layer, args, kwargs) -> dict | None:
    """`{"<arg>_shape": shape}` for `layer.build(**...)` from the first call's
    `args` / `kwargs`, or None when the layer builds from the first shape alone."""
    names = type(layer)._kerasish_build_shape_names
    if not names:
        return None
    signature = inspect.signature(layer.call)
    given = {k: v for k, v in kwargs.items() if k in signature.parameters}
    try:
        bound = signature.bind_partial(*args, **given).arguments
    except TypeError:
        return None  # the call itself will say what is wrong with its arguments
    shapes = {}
    for name in names:
        arg = name[: -len("_shape")]
        value = bound.get(arg)
        if arg == "mask" or value is None:
            continue
        if _is_tensor(value):
            shapes[name] = tuple(value.shape)
        elif isinstance(value, (list, tuple, dict)) and value and all(
                v is None or _is_tensor(v) for v in tree.flatten(value)):
            shapes[name] = tree.map_shapes(value)
    return shapes
