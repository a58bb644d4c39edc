"""`Merge`: the shared base of the elementwise merge layers (Add, Average, ...).

Shape validation, rank alignment and mask combination follow Keras 3's
`base_merge.py`: shapes broadcast pairwise after the batch axis (a mismatch
is a ValueError naming both shapes); inputs of different ranks get size-1
axes inserted after the batch axis; the output mask is the logical OR of the
input masks (None when any input is unmasked).
"""

from __future__ import annotations

import torch

from kerasish.layers.layer import Layer


def elementwise_output_shape(shape1, shape2):
    """Broadcast two shapes (batch axis excluded) the Keras way; None is unknown."""
    if shape1 is None or shape2 is None:
        return None
    if len(shape1) < len(shape2):
        shape1, shape2 = shape2, shape1
    if not shape2:
        return tuple(shape1)
    out = list(shape1[: len(shape1) - len(shape2)])
    for i, j in zip(shape1[len(shape1) - len(shape2):], shape2):
        if i is None or j is None:
            out.append(None)
        elif i == 1 or j == 1:
            out.append(j if i == 1 else i)
        elif i != j:
            raise ValueError(f"Inputs have incompatible shapes. Received shapes {tuple(shape1)} and {tuple(shape2)}")
        else:
            out.append(i)
    return tuple(out)


def _check_list(inputs) -> None:
    if not isinstance(inputs, (list, tuple)):
        raise ValueError(
            f"A merge layer should be called on a list of inputs. Received: inputs={inputs} (not a list of tensors)"
        )


def or_masks(inputs, mask):
    """Keras's default merge mask: the OR of all masks, None if any is None."""
    if mask is None:
        return None
    if not isinstance(mask, (tuple, list)):
        raise ValueError(f"`mask` should be a list. Received: mask={mask}")
    if not isinstance(inputs, (tuple, list)):
        raise ValueError(f"`inputs` should be a list. Received: inputs={inputs}")
    if len(mask) != len(inputs):
        raise ValueError(
            "The lists `inputs` and `mask` should have the same length. "
            f"Received: inputs={inputs} of length {len(inputs)}, and mask={mask} of length {len(mask)}"
        )
    if any(m is None for m in mask):
        return None
    out = mask[0]
    for m in mask[1:]:
        out = torch.logical_or(out, m)
    return out


def expand_mask(mask, x):
    """A (batch, ...) mask as a boolean tensor broadcastable against `x`."""
    return mask.unsqueeze(-1) if mask.ndim < x.ndim else mask


class Merge(Layer):
    """Generic merge layer for elementwise merge functions.

    Subclasses implement `_merge_function(inputs, masks)`; `masks` is None or
    a list with one mask (or None) per input.
    """

    # Keras's merge layers take no `mask=` argument (they read the inputs'
    # masks): a functional graph records no mask argument for them either
    _symbolic_mask_kwarg = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self._reshape_required = False

    def _merge_function(self, inputs, masks=None):
        raise NotImplementedError

    def _hot_mask_mode(self):
        # a list of unmasked tensors of the compute dtype takes the hot path: no mask to pass to
        # `call` and none for the output (`or_masks` of no masks; a class's own `compute_mask` that
        # also gives None for unmasked inputs names itself in `_hot_compute_mask`: Concatenate, Dot);
        # masked or other inputs the full one. A subclass overriding `compute_mask` again stays on
        # the full path
        cls = type(self)
        if cls.compute_mask is not cls._hot_compute_mask or cls._call_arg_masks:
            return None
        return 4

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not isinstance(input_shape[0], (tuple, list)):
            raise ValueError(
                "A merge layer should be called on a list of inputs. "
                f"Received: input_shape={input_shape} (not a list of shapes)"
            )
        batch_sizes = {s[0] for s in input_shape if s} - {None}
        if len(batch_sizes) > 1:
            raise ValueError(f"Cannot merge tensors with different batch sizes. Received tensors with shapes {input_shape}")
        out = None if input_shape[0] is None else tuple(input_shape[0][1:])
        for shape in input_shape[1:]:
            out = elementwise_output_shape(out, None if shape is None else tuple(shape[1:]))
        self._reshape_required = len({len(s) for s in input_shape}) != 1

    def call(self, inputs, mask=None):
        _check_list(inputs)
        if self._reshape_required:
            # different ranks: insert size-1 axes after the batch axis (Keras)
            max_ndim = max(x.ndim for x in inputs)
            inputs = [x.reshape(x.shape[:1] + (1,) * (max_ndim - x.ndim) + x.shape[1:]) for x in inputs]
        try:
            return self._merge_function(list(inputs), mask)
        except RuntimeError:
            self._raise_if_incompatible(inputs)
            raise

    def _raise_if_incompatible(self, inputs):
        """After a torch error: Keras's ValueError, naming the layer, when the
        shapes of a built layer's new inputs do not fit together."""
        reshape_required = self._reshape_required
        try:
            self.build([tuple(x.shape) for x in inputs])  # validation only: merge layers have no weights
        except ValueError as e:
            raise ValueError(f"Layer '{self.name}': {e}") from None
        finally:
            self._reshape_required = reshape_required

    def compute_output_shape(self, input_shape):
        out = None if input_shape[0] is None else tuple(input_shape[0][1:])
        for shape in input_shape[1:]:
            out = elementwise_output_shape(out, None if shape is None else tuple(shape[1:]))
        batch_sizes = {s[0] for s in input_shape if s is not None} - {None}
        return (batch_sizes.pop() if len(batch_sizes) == 1 else None, *out)

    def compute_mask(self, inputs, mask=None):
        return or_masks(inputs, mask)

    _hot_compute_mask = compute_mask  # (see `_hot_mask_mode`)

    def _apply_merge_op_and_or_mask(self, op, inputs, masks):
        """Keras's Maximum/Minimum: a masked-out value of one input never wins
        over an unmasked value of another."""
        if masks is None:
            masks = [None] * len(inputs)
        output, output_mask = None, None
        for x, mask in zip(inputs, masks):
            if mask is not None:
                mask = expand_mask(mask, x)
            if output is None:
                output, output_mask = x, mask
                continue
            if mask is not None:
                x = torch.where(mask, x, output)
            if output_mask is not None:
                output = torch.where(output_mask, output, x)
            output_mask = torch.logical_or(output_mask, mask) if mask is not None and output_mask is not None else None
            output = op(output, x)
        return output
