"""LoRA on `Conv1D` / `Conv2D` / `Conv3D`, as in Keras 3.15's `BaseConv`.

`enable_lora(rank)` (or `lora_rank=` at construction, applied at build)
freezes the kernel and adds two float32 factors, `lora_kernel_a` of shape
`(*kernel_size, in_channels // groups, rank)` (he_uniform) and
`lora_kernel_b` of shape `(rank, filters)` (zeros). The layer then convolves
with the merged kernel `kernel + (lora_alpha / lora_rank) * a @ b`, computed
once per call in the compute dtype, as Keras does (measured faster than the
factored form, `tools/bench_conv_lora.py`).

As for `Dense`, `layer.kernel` is computed (the stored variable itself
without LoRA, the merged kernel with it) and the stored variable is
`layer._kernel`, registered under the state_dict key `kernel`
(`kerasish.layers.core.stored_weights`). The frozen kernel stays in
`parameters()` with `requires_grad=False` (Keras on torch does the same).

Weight files hold what Keras's `save_own_variables` writes: the merged
kernel and the bias, not the factors; loading one assigns the base kernel
and bias and zeroes the factors (Keras's `load_own_variables`), so files go
both ways between LoRA and plain layers, kerasish and Keras.

The transposed, depthwise and separable convolutions have no LoRA in Keras
(`lora_rank=` is an unrecognized keyword there); neither do they here.
"""

from __future__ import annotations

import torch

from kerasish.layers.core.dense_quantization import add_lora
from kerasish.layers.core.dense_quantization import check_lora_allowed
from kerasish.layers.core.stored_weights import lora_merged
from kerasish.layers.core.stored_weights import plain_attribute
from kerasish.layers.core.stored_weights import stored_property
from kerasish.layers.core.stored_weights import stored_weight


class ConvLoRA:
    """LoRA and the computed `kernel` for `BaseConv` (mixed into the layer)."""

    _computed_weights = frozenset({"kernel"})
    _kernel = stored_property("kernel")

    def _get_kernel(self):
        if not self.__dict__.get("lora_enabled"):
            return stored_weight(self, "kernel")  # the variable itself
        return lora_merged(self, stored_weight(self, "kernel"), "lora_kernel")

    kernel = property(_get_kernel, *plain_attribute("kernel"))
    kernel.__doc__ = """The kernel `(*kernel_size, in_channels // groups, filters)`, as Keras 3 reads it:
        the stored variable itself, or with LoRA enabled the merged
        `_kernel + (lora_alpha / lora_rank) * lora_kernel_a @ lora_kernel_b`
        in the compute dtype. The stored variable is `layer._kernel`
        (state_dict key `kernel`); assigning `layer.kernel` stores the
        variable (see `kerasish.layers.core.stored_weights`)."""

    def enable_lora(self, rank, lora_alpha=None, a_initializer="he_uniform", b_initializer="zeros"):
        """Freezes the kernel and adds the trainable float32 factors
        `lora_kernel_a` `(*kernel_size, in_channels // groups, rank)` and
        `lora_kernel_b` `(rank, filters)`; the layer then computes with
        `kernel + (lora_alpha / rank) * lora_kernel_a @ lora_kernel_b`.

        Args:
            rank: The rank of the update.
            lora_alpha: The scale numerator. Defaults to `rank`.
            a_initializer: Defaults to "he_uniform".
            b_initializer: Defaults to "zeros" (the layer starts unchanged).

        Raises `ValueError`, as Keras, for a layer with a `kernel_constraint`,
        a layer not yet built, or LoRA already enabled.
        """
        check_lora_allowed(self, self.kernel_constraint, "kernel")
        shape = tuple(self._kernel.shape)
        add_lora(self, "_kernel", "lora_kernel", shape[:-1] + (rank,), (rank, self.filters), rank, lora_alpha,
                 a_initializer, b_initializer, self.kernel_regularizer)

    # ------------------------------------------------------ Keras file order
    def _keras_saved_variables(self):
        """With LoRA: `[merged kernel, bias]`, what Keras's conv saves; None
        (the plain order) otherwise."""
        if not self.built or not self.lora_enabled:
            return None
        with torch.no_grad():
            merged = self.kernel.detach()
        return [merged] if self.bias is None else [merged, self.bias]

    def _keras_loaded_variables(self):
        """With LoRA: the base kernel and the bias, which a Keras file assigns."""
        if not self.built or not self.lora_enabled:
            return None
        return [self._kernel] if self.bias is None else [self._kernel, self.bias]

    def _after_keras_load(self):
        if self.lora_enabled:  # the file held the merged kernel: the factors start again from zero, as Keras
            with torch.no_grad():
                self.lora_kernel_a.zero_()
                self.lora_kernel_b.zero_()
