"""AWQ (Lin et al., 2023) as Keras 3.15 runs it: each input channel's
largest calibration activation `x_max` is recorded; a grid search over
`s = x_max ** ratio` (normalized) picks the per-channel scales whose scaled
4-bit weights, scaled back, minimize `mean((W - W_q / s)^2 * x_max^2)`; the
weights are stored quantized with the scales folded out at call time.

Keras's operation order is followed on the same torch kernels.
"""

from __future__ import annotations

import torch

from kerasish.quantizers.gptq import dequantize_with_zero_point
from kerasish.quantizers.gptq import quantize_with_zero_point
from kerasish.quantizers.quantizers import compute_quantization_parameters
from kerasish.quantizers.quantizers import dequantize_with_sz_map


def quantize_with_sz_map(weights, scale, zero, g_idx, maxq, group_axis=-1):
    groups = g_idx.to(torch.int64)
    axis = group_axis % scale.dim()
    return quantize_with_zero_point(weights, torch.index_select(scale, axis, groups),
                                    torch.index_select(zero, axis, groups), maxq)


def _params(weights, group_size):
    return compute_quantization_parameters(weights, bits=4, symmetric=False, per_channel=True, group_size=group_size,
                                           compute_dtype="float32")


def awq_search_optimal_scales(weights, activation_magnitudes, *, num_grid_points=20, group_size=-1):
    in_features = weights.shape[1]
    x_max = activation_magnitudes.to(torch.float32)
    x_max = torch.where(x_max < 1e-8, torch.ones_like(x_max), x_max)
    best_loss = None
    best_scales = torch.ones((in_features,), dtype=torch.float32)
    for i in range(num_grid_points + 1):
        ratio = i / num_grid_points
        scales = torch.ones_like(x_max) if ratio == 0 else torch.pow(x_max, torch.tensor(ratio, dtype=torch.float32))
        scales = torch.maximum(scales, torch.tensor(1e-4))
        mean = torch.sqrt(torch.max(scales) * torch.min(scales))
        mean = torch.maximum(mean, torch.tensor(1e-8))
        scales = scales / mean
        scaled = weights * scales
        scale_q, zero_q, maxq = _params(scaled, group_size)
        if group_size == -1:
            dequantized = dequantize_with_zero_point(quantize_with_zero_point(scaled, scale_q, zero_q, maxq),
                                                     scale_q, zero_q)
        else:
            g_idx = (torch.arange(0, in_features) // group_size).to(torch.int32)
            quantized = quantize_with_sz_map(scaled, scale_q, zero_q, g_idx, maxq)
            dequantized = dequantize_with_sz_map(quantized, scale_q, zero_q, g_idx)
        reconstructed = dequantized / scales
        loss = torch.mean(torch.square(weights - reconstructed) * torch.square(x_max))
        if best_loss is None or bool(loss < best_loss):
            best_loss, best_scales = loss, scales
    return best_scales


def awq_quantize_matrix(weights, activation_magnitudes, *, num_grid_points=20, group_size=-1):
    """`(quantized, scale, zero, awq_scales, g_idx)` of `weights` `(out, in)`."""
    in_features = weights.shape[1]
    awq_scales = awq_search_optimal_scales(weights, activation_magnitudes, num_grid_points=num_grid_points,
                                           group_size=group_size)
    scaled = weights * awq_scales
    scale_q, zero_q, maxq = _params(scaled, group_size)
    if group_size == -1:
        quantized = quantize_with_zero_point(scaled, scale_q, zero_q, maxq)
        g_idx = torch.zeros((in_features,), dtype=torch.float32)
    else:
        g_idx = (torch.arange(0, in_features) // group_size).to(torch.int32)
        quantized = quantize_with_sz_map(scaled, scale_q, zero_q, g_idx, maxq)
        g_idx = g_idx.to(torch.float32)
    return quantized, scale_q, zero_q, awq_scales, g_idx


class AWQ:
    """The calibration state of one `Dense` layer: the largest absolute
    activation seen per input channel, and the quantization step."""

    def __init__(self, layer, config):
        self.layer = layer
        self.config = config
        self.num_samples = 0
        self.rows, self.columns = layer._kernel.shape
        self.activation_magnitudes = torch.zeros((self.rows,), dtype=torch.float32)

    def observe(self, batch):
        self.update_activation_magnitudes(batch)

    def update_activation_magnitudes(self, batch):
        if batch is None:
            raise ValueError("Input tensor cannot be None.")
        x = batch.detach().reshape(-1, batch.shape[-1]).to(torch.float32).cpu()
        self.activation_magnitudes = torch.maximum(self.activation_magnitudes, torch.amax(x.abs(), dim=0))
        self.num_samples += x.shape[0]

    def quantize_layer(self):
        from kerasish import quantizers

        layer = self.layer
        quantized, scale, zero, awq_scales, g_idx = awq_quantize_matrix(
            layer._kernel.detach().cpu().T, self.activation_magnitudes, num_grid_points=self.config.num_grid_points,
            group_size=self.config.group_size)
        packed = quantizers.pack_int4(quantized.to(torch.uint8), axis=0, dtype="uint8")[0]
        layer._finish_calibration(packed, scale, zero, g_idx, awq_scales=awq_scales)
