"""`SpectralNormalization`."""

from __future__ import annotations

import torch

from kerasish import initializers
from kerasish.layers import call_context
from kerasish.layers.core.wrapper import Wrapper
from kerasish.layers.input_spec import InputSpec

# Keras's `ops.normalize` (order 2): x * min(rsqrt(sum(x**2)), 1 / epsilon), epsilon = backend.epsilon()
_EPSILON = 1e-7


def _l2_normalize(x: torch.Tensor) -> torch.Tensor:
    inv_norm = torch.rsqrt(x.square().sum()).clamp(max=1.0 / _EPSILON)
    return x * inv_norm


class SpectralNormalization(Wrapper):
    """Spectral normalization of a layer's kernel (`keras.layers.SpectralNormalization`).

    In training mode, before the wrapped layer runs, its kernel (reshaped to
    `(-1, out)`) is divided by an estimate of its largest singular value,
    computed by `power_iterations` steps of the power method from the stored
    vector `vector_u`; the kernel and `vector_u` are overwritten with the new
    values, as Keras does (so gradients reach the stored kernel directly, not
    through the normalization). An all-zero kernel is left unchanged. In
    inference mode the wrapped layer runs with its current kernel.

    Args:
        layer: A layer with a `kernel` (Dense, Conv*, ...) or `embeddings`
            (Embedding) weight.
        power_iterations: Positive int, power-method steps per training call.
            Defaults to 1.

    Weights: the wrapped layer's, plus the non-trainable `vector_u` of shape
    `(1, out)`; `weights` order is Keras's (kernel, vector_u, the rest).

    Example:
        >>> sn = keras.layers.SpectralNormalization(keras.layers.Dense(8))
        >>> y = sn(torch.rand(4, 3), training=True)

    Differs from torch: `torch.nn.utils.parametrizations.spectral_norm`
    differentiates through the normalization; this layer follows Keras and
    rewrites the kernel in place instead.
    """

    def __init__(self, layer, power_iterations=1, **kwargs):
        super().__init__(layer, **kwargs)
        if isinstance(power_iterations, bool) or not isinstance(power_iterations, int) or power_iterations <= 0:
            raise ValueError(
                "`power_iterations` should be greater than zero. "
                f"Received: `power_iterations={power_iterations}`"
            )
        self.power_iterations = power_iterations

    def build(self, input_shape):
        super().build(input_shape)
        self.input_spec = InputSpec(min_ndim=1, axes={-1: input_shape[-1]})
        if self._target() is None:
            raise ValueError(f"{type(self.layer).__name__} object has no attribute 'kernel' nor 'embeddings'")
        kernel = self._target()
        self.kernel_shape = tuple(kernel.shape)
        self.vector_u = self.add_weight(
            shape=(1, self.kernel_shape[-1]),
            initializer=initializers.TruncatedNormal(stddev=0.02),
            trainable=False,
            name="vector_u",
            dtype=kernel.dtype,
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # an unbuilt wrapper builds from the wrapped layer's weights (its input
        # shape is the wrapped layer's, e.g. `layer.kernel` of a Dense)
        if not self.built:
            inner_prefix = prefix + "layer."
            inner = {k[len(inner_prefix):]: tuple(v.shape) for k, v in state_dict.items() if k.startswith(inner_prefix)}
            shape = self.layer._infer_build_shape(inner) if inner else None
            if shape is not None:
                self.build(shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _target(self):
        """The wrapped layer's kernel (or embeddings) variable, or None (the
        stored variable of a Keras 3 computed `kernel`: `Dense._kernel`)."""
        for name in ("kernel", "embeddings"):
            key = "_" + name if name in getattr(type(self.layer), "_computed_weights", ()) else name
            # the variable itself, from the registries: an attribute read inside this wrapper's mixed-precision
            # call gives a cast copy (Keras's autocast scope), which the power iteration must not update
            registries = (self.layer._parameters, self.layer._buffers)
            weight = next((r[k] for k in (key, name) for r in registries if r.get(k) is not None), None)
            if weight is None:
                weight = getattr(self.layer, key, None)
            if isinstance(weight, torch.Tensor):
                return weight
        return None

    def _vector_u(self):
        """The `vector_u` variable itself (an attribute read inside a mixed-precision call is a cast copy)."""
        found = self._parameters.get("vector_u")
        return found if found is not None else self._buffers.get("vector_u", self.vector_u)

    @property
    def kernel(self):
        return self._target()

    @property
    def weights(self) -> list:
        # Keras tracks `self.kernel = layer.kernel` first, then vector_u, then the rest
        weights = super().weights
        kernel = self._target()
        if kernel is None:
            return weights
        return [kernel] + [w for w in weights if w is not kernel]

    def normalized_weights(self):
        """(new vector_u, new kernel) by Keras's power iteration (no gradients)."""
        kernel = self._target()
        w = kernel.detach().reshape(-1, self.kernel_shape[-1])
        vector_u = self._vector_u()
        u = vector_u.detach().to(w.dtype)
        # in the variables' dtype: a mixed-precision call's autocast would run these matmuls in float16,
        # whose range cannot hold the normalization's 1 / epsilon clamp
        with torch.autocast(w.device.type, enabled=False):
            for _ in range(self.power_iterations):
                v = _l2_normalize(u @ w.T)
                u = _l2_normalize(v @ w)
            sigma = (v @ w) @ u.T
        return u.to(vector_u.dtype), (kernel.detach() / sigma).reshape(self.kernel_shape).to(kernel.dtype)

    def call(self, inputs, training=False):
        # (not again when torch.utils.checkpoint recomputes the call in the backward pass: the
        # recomputation must see the kernel the forward used)
        if training and not call_context.in_backward():
            kernel = self._target()
            with torch.no_grad():
                new_u, new_kernel = self.normalized_weights()
                keep = torch.all(kernel == 0)  # Keras leaves an all-zero kernel (and u) alone
                vector_u = self._vector_u()
                vector_u.copy_(torch.where(keep, vector_u, new_u))
                kernel.copy_(torch.where(keep, kernel, new_kernel))
        output = self.layer(inputs)
        return output.to(inputs.dtype) if inputs.is_floating_point() else output

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}
