"""Pieces shared by the attention layers: the projection sublayer that holds
Keras's EinsumDense weights, attention-equation building and masked softmax."""

from __future__ import annotations

import string

import torch
import torch.nn.functional as F

from kerasish import constraints
from kerasish import initializers
from kerasish.initializers.random_initializers import with_fan_axes
from kerasish import regularizers
from kerasish.layers.core.einsum_dense_quantization import EinsumDenseQuantization
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer

# Keras's torch `dot_product_attention` turns a boolean mask into an additive
# one with this value (`-0.7 * 3.38953e38`, or `-0.7 * 65500` for float16).
# A fully-masked row then gets uniform weights, as in Keras.
_LARGE_NEGATIVE = {torch.float16: -0.7 * 65500.0}
_LARGE_NEGATIVE_DEFAULT = -0.7 * 3.38953e38
# Keras's `Softmax` layer fills masked scores with -1e9 (-3e4 in float16) and
# zeroes the masked weights afterwards.
_SOFTMAX_FILL = {torch.float16: -3e4}
_SOFTMAX_FILL_DEFAULT = -1e9


def clone_initializer(init):
    """A fresh copy (new seed state) of a Keras initializer; others unchanged."""
    if isinstance(init, initializers.Initializer):
        return type(init).from_config(init.get_config())
    return init


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean mask (True = attend) -> additive float mask for SDPA."""
    return torch.where(mask, 0.0, _LARGE_NEGATIVE.get(dtype, _LARGE_NEGATIVE_DEFAULT)).to(dtype)


def masked_softmax(scores: torch.Tensor, mask, dims) -> torch.Tensor:
    """Keras's `Softmax(axis=dims)(scores, mask)`: masked entries get weight 0."""
    if mask is not None:
        scores = torch.where(mask, scores, _SOFTMAX_FILL.get(scores.dtype, _SOFTMAX_FILL_DEFAULT))
    if len(dims) == 1:
        weights = torch.softmax(scores, dim=dims[0])
    else:
        weights = torch.exp(scores - torch.logsumexp(scores, dim=dims, keepdim=True))
    if mask is not None:
        weights = torch.where(mask, weights, 0.0)
    return weights


def attention_equations(rank: int, attn_axes: tuple) -> tuple[str, str, int]:
    """Einsum equations for scores (`key, query -> scores`) and for combining
    (`scores, value -> output`) of projected tensors of rank `rank` whose last
    two axes are (heads, dim), attending over `attn_axes` (Keras's layout:
    scores are batch axes, heads, query attention axes, key attention axes)."""
    letters = string.ascii_lowercase
    target = letters[:rank]
    batch_dims = [i for i in range(rank) if i not in attn_axes and i != rank - 1]
    source = list(target)
    nxt = rank
    for i in attn_axes:
        source[i] = letters[nxt]
        nxt += 1
    source = "".join(source)
    product = "".join([target[i] for i in batch_dims] + [target[i] for i in attn_axes] + [source[i] for i in attn_axes])
    return f"{source},{target}->{product}", f"{product},{source}->{target}", len(product)


class EinsumProjection(EinsumDenseQuantization, Layer):
    """The weights of one Keras `EinsumDense` projection of `MultiHeadAttention`
    (`query`, `key`, `value`, `gate`: kernel `(dim, heads, size)`, bias
    `(heads, size)`; `attention_output`: kernel `(heads, size, *out)`, bias
    `(*out)`), applied with `F.linear` over flat views of those weights.

    Created unbuilt with its owner (so its weights are uninitialized
    parameters an early optimizer holds); the owner's `build` gives it the
    kernel shape and its input rank (`configure`) and builds it. The bias has
    the kernel's trailing `kernel_shape[contracted:]` shape.

    Quantization (`quantize("int8" | "int4" | "float8")`) is EinsumDense's
    (`EinsumDenseQuantization`), over Keras's einsum equation of this
    projection (`equation`), so the variables, outputs and saved files are
    those of Keras's quantized EinsumDense projections. A quantized projection
    runs through its own `__call__` (Keras's MHA calls its EinsumDense
    layers), so under a mixed policy its bias and scales are autocast as
    Keras's are."""

    _built_by_owner = True  # (an unbuilt owner's `load_state_dict` builds it)
    _act = None  # (no activation: read by EinsumDense's quantized call)
    activation = None  # (read at call time by the quantized call's `apply_activation`)

    def __init__(self, contracted, common, use_bias=True, kernel_shape=None, **kwargs):
        super().__init__(**kwargs)
        self._contracted = contracted  # 1: input projection, 2: output projection
        self._common = common
        self._use_bias = bool(use_bias)
        self.lora_enabled = False
        self.__dict__["_is_quantized"] = False
        if kernel_shape is not None:
            self.configure(kernel_shape)

    kernel_regularizer = property(lambda self: self._common["kernel_regularizer"])
    kernel_constraint = property(lambda self: self._common["kernel_constraint"])

    def configure(self, kernel_shape, input_rank=None) -> None:
        """Sets the kernel shape `build` will create (before `build`) and,
        given the rank of the projection's input, Keras's einsum equation
        (`_build_proj_equation`: free axes, then the contracted ones, then the
        kernel's output axes; e.g. "abc,cde->abde", "abcd,cde->abe")."""
        self._kernel_shape = tuple(kernel_shape)
        self._out_shape = self._kernel_shape[self._contracted:]
        self._bias_shape = self._out_shape if self._use_bias else None
        self._flat_in = 1
        for n in self._kernel_shape[: self._contracted]:
            self._flat_in *= n
        if input_rank is not None:
            letters = string.ascii_lowercase
            free = input_rank - self._contracted
            outs = letters[input_rank: input_rank + len(self._out_shape)]
            self.equation = f"{letters[:input_rank]},{letters[free:input_rank]}{outs}->{letters[:free]}{outs}"
            self.__dict__.pop("_qinfo", None)
            self.input_spec = InputSpec(ndim=input_rank)

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return ("kernel", "bias") if self._use_bias else ("kernel",)

    def build(self, input_shape=None):
        c = self._common
        self.kernel = self.add_weight(
            name="kernel",
            shape=self._kernel_shape,
            # Keras 3's EinsumDense: fans from the contracted (input) and the
            # other (output) kernel axes, e.g. fan_in=dim, fan_out=heads*size
            initializer=with_fan_axes(
                clone_initializer(c["kernel_initializer"]),
                range(self._contracted),
                range(self._contracted, len(self._kernel_shape)),
            ),
            regularizer=c["kernel_regularizer"],
            constraint=c["kernel_constraint"],
        )
        self.bias = None
        if self._bias_shape is not None:
            self.bias = self.add_weight(
                name="bias",
                shape=self._bias_shape,
                initializer=clone_initializer(c["bias_initializer"]),
                regularizer=c["bias_regularizer"],
                constraint=c["bias_constraint"],
            )

    def quantize(self, mode=None, config=None, type_check=True):
        """`model.quantize("int8" | "int4" | "float8")` on a MultiHeadAttention
        quantizes its projections as Keras quantizes the EinsumDense layers it
        holds (EinsumDense's own `quantize`, over this projection's equation):
        int8 / int4 replace the float kernel by Keras's int8 (int4: packed)
        `kernel` and `kernel_scale` (int4 with a block size: `kernel_zero`,
        `g_idx`), frozen; float8 keeps the float kernel with Keras's
        `*_scale` / `*_amax_history` variables; the policy becomes
        "<mode>_from_<policy>". GPTQ / AWQ are not implemented for these
        projections (NotImplementedError: `model.quantize` warns and leaves
        the layer float)."""
        return super().quantize(mode, config, type_check=False)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        if self.__dict__.get("_is_quantized"):
            # EinsumDense's quantized call, through this layer's own `__call__` (as Keras's MHA calls its
            # EinsumDense projections), so a mixed-precision bias and scales are read in the compute dtype
            return self(x)
        # (with LoRA on: Keras's merged kernel `kernel + (alpha / rank) * a @ b`)
        kernel = self._merged_kernel() if self.lora_enabled else self._parameters["kernel"]
        bias = self._parameters.get("bias")
        if kernel.dtype != x.dtype:
            kernel = kernel.to(x.dtype)
            bias = bias.to(x.dtype) if bias is not None else None
        if self._contracted == 2:
            x = x.flatten(-2)
        try:
            if bias is not None and x.dim() == 3 and x.is_contiguous():
                # what F.linear runs for a contiguous 3-D input with a bias (one `addmm` on the rows),
                # written out on the Keras-layout kernel: no transpose views of it, three fewer ops a
                # projection (a Transformer block's attention pays four)
                b, t, n = x.shape
                y = torch.addmm(bias.reshape(-1), x.view(b * t, n), kernel.reshape(self._flat_in, -1))
                return y.view(b, t, *self._out_shape)
            w = kernel.reshape(self._flat_in, -1).t()
            return F.linear(x, w, bias.reshape(-1) if bias is not None else None).unflatten(-1, self._out_shape)
        except RuntimeError:
            if x.shape[-1] != self._flat_in:
                raise ValueError(
                    f"Layer '{self.name}': the projection was built for inputs whose last axis has size "
                    f"{self._flat_in}. Received an input with shape {tuple(x.shape)}"
                ) from None
            raise

    def call(self, inputs):
        if self.__dict__.get("_is_quantized"):
            from kerasish.layers import call_context

            return self._quantized_call(inputs, call_context.current_training())
        return self.project(inputs)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable}


def common_sublayer_args(
    kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint
) -> dict:
    return {
        "kernel_initializer": initializers.get(kernel_initializer),
        "bias_initializer": initializers.get(bias_initializer),
        "kernel_regularizer": regularizers.get(kernel_regularizer),
        "bias_regularizer": regularizers.get(bias_regularizer),
        "kernel_constraint": constraints.get(kernel_constraint),
        "bias_constraint": constraints.get(bias_constraint),
    }
