"""`keras.ops.rearrange`: einops-style axis rearrangement (split, merge,
transpose), written as one reshape, one permute and one reshape."""

from __future__ import annotations

import math
import re

from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import to_tensor


def _parse(side):
    tokens = re.findall(r"\(|\)|[A-Za-z_][A-Za-z0-9_]*|1", side)
    out, group = [], None
    for tok in tokens:
        if tok == "(":
            if group is not None:
                raise ValueError(f"Nested parentheses are not allowed in a rearrange pattern. Received: {side!r}")
            group = []
        elif tok == ")":
            if group is None:
                raise ValueError(f"Unbalanced parentheses in rearrange pattern. Received: {side!r}")
            out.append(group)
            group = None
        else:
            (group if group is not None else out).append([tok] if group is None else tok)
    if group is not None:
        raise ValueError(f"Unbalanced parentheses in rearrange pattern. Received: {side!r}")
    return [g if isinstance(g, list) else [g] for g in out]


@keras_op
def rearrange(tensor, pattern, **axes_lengths):
    """Rearranges axes by an einops pattern, e.g. `"b (h w) c -> b h w c"`.

    Args:
        tensor: Input tensor.
        pattern: `"left -> right"`; parentheses group axes to split or merge.
        **axes_lengths: Sizes of axes that cannot be inferred (`h=4`).
    """
    x = to_tensor(tensor)
    if "->" not in pattern:
        raise ValueError(f"Pattern must contain '->'. Received: pattern={pattern!r}")
    left, right = (_parse(s) for s in pattern.split("->"))
    if len(left) != x.ndim:
        raise ValueError(f"The pattern's left side has {len(left)} axes but the tensor has {x.ndim}. "
                         f"Received: pattern={pattern!r}, tensor.shape={tuple(x.shape)}")
    sizes = {k: int(v) for k, v in axes_lengths.items()}
    elementary = []
    for group, dim in zip(left, x.shape):
        names = [n for n in group if n != "1"]
        unknown = [n for n in names if n not in sizes]
        known = math.prod(sizes[n] for n in names if n in sizes)
        if len(unknown) > 1:
            raise ValueError(f"Could not infer sizes for {unknown}. Pass them as keyword arguments.")
        if unknown:
            sizes[unknown[0]] = dim // known
        elif known != dim and names:
            raise ValueError(f"Shape mismatch: {group} has size {known} but the axis has size {dim}.")
        elementary.extend(names)
    x = x.reshape([sizes[n] for n in elementary])
    order = [n for group in right for n in group if n != "1"]
    if sorted(order) != sorted(elementary):
        raise ValueError(f"The two sides of the pattern must name the same axes. Received: pattern={pattern!r}")
    x = x.permute([elementary.index(n) for n in order])
    return x.reshape([math.prod(sizes[n] for n in group if n != "1") for group in right])

