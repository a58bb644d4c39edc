"""GPTQ (Frantar et al., 2022) as Keras 3.15 runs it: a layer's Hessian
`2/n X^T X` is accumulated from calibration inputs, then the kernel is
quantized column by column (blocks of 128), each column's rounding error
spread over the columns not yet quantized through the inverse Hessian.

Every step follows Keras's operation order on the same torch kernels, so the
quantized kernels, scales and zero points match Keras bit for bit. Note that
Keras 3.15 propagates the errors with rows of the plain inverse Hessian, not
the upper Cholesky factor of the inverse that the GPTQ paper uses; kerasish
reproduces Keras (on strongly correlated inputs this can do worse than plain
rounding). Unlike Keras 3.15 on torch, whose hooks never see the calibration
inputs (its Hessians stay zero), kerasish feeds them (tests/quantizers/test_gptq.py).
"""

from __future__ import annotations

import torch

from kerasish.backend import dtypes
from kerasish.quantizers.quantizers import compute_quantization_parameters


def quantize_with_zero_point(x, scale, zero, maxq):
    """`clip(round(x / scale + zero), 0, maxq)` (a zero scale counts as 1e-8)."""
    safe = torch.where(scale == 0, torch.tensor(1e-8, dtype=scale.dtype), scale)
    return torch.clamp(torch.round(x / safe + zero.to(scale.dtype)), 0, maxq)


def dequantize_with_zero_point(q, scale, zero):
    return scale * (q - zero.to(scale.dtype))


def _stable_permutation(metric):
    n = metric.shape[0]
    jitter = torch.arange(n, dtype=torch.int32).to(torch.float32) / torch.tensor(float(n))
    return torch.argsort(-(metric + jitter * 1e-12), stable=True)


def gptq_quantize_matrix(weights, inv_hessian, *, blocksize=128, group_size=-1, activation_order=False,
                         order_metric=None, find_params):
    """Quantizes `weights` `(out_features, in_features)`; returns
    `(quantized int32, scale, zero, g_idx)` with `(out, n_groups)` scales."""
    in_features = weights.shape[1]
    if activation_order:
        if order_metric is None:
            order_metric = torch.reciprocal(torch.diagonal(inv_hessian) + 1e-12)
        else:
            order_metric = order_metric.to(torch.float32)
            order_metric = torch.where(torch.isfinite(order_metric), order_metric, torch.zeros_like(order_metric))
        perm = _stable_permutation(order_metric)
        inv_perm = torch.argsort(perm, stable=True)
        weights = weights[:, perm]
        inv_hessian = inv_hessian[perm][:, perm]
    buffer = weights
    quantized = torch.zeros_like(weights, dtype=torch.int32)
    scales, zeros = [], []
    group = in_features if group_size == -1 else group_size
    for start in range(0, in_features, blocksize):
        end = min(start + blocksize, in_features)
        size = end - start
        block = buffer[:, start:end].clone()
        errors = torch.zeros_like(block)
        block_inv = inv_hessian[start:end, start:end]
        cached = None
        cached_start = -1
        for j in range(size):
            index = start + j
            column = block[:, j]
            if group != in_features:
                group_start = (index // group) * group
                if group_start != cached_start:
                    cached = find_params(buffer[:, group_start:min(group_start + group, in_features)])
                    scales.append(cached[0])
                    zeros.append(cached[1])
                    cached_start = group_start
            elif cached is None:
                cached = find_params(buffer)
                scales.append(cached[0])
                zeros.append(cached[1])
                cached_start = 0
            scale, zero, maxq = cached
            q = quantize_with_zero_point(column[:, None], scale, zero, maxq)
            quantized[:, index] = q[:, 0].to(torch.int32)
            dequantized = dequantize_with_zero_point(q, scale, zero)[:, 0]
            err = (column - dequantized) / block_inv[j, j]
            errors[:, j] = err
            if j < size - 1:
                update = torch.matmul(err[:, None], block_inv[j, j + 1:][None, :])
                block[:, j + 1:] = block[:, j + 1:] - update
        if end < in_features:
            total = torch.matmul(errors, inv_hessian[start:end, end:])
            buffer = torch.cat([buffer[:, :end], buffer[:, end:] - total], dim=1)
    # Keras divides (no floor): g_idx holds index / group_size, truncated when used
    g_idx = (torch.arange(in_features, dtype=torch.int32) / group).to(torch.float32)
    if activation_order:
        g_idx = g_idx[inv_perm]
        quantized = quantized[:, inv_perm]
    if not scales:
        scale, zero, _ = find_params(weights)
    else:
        scale, zero = torch.cat(scales, dim=1), torch.cat(zeros, dim=1)
    return quantized, scale, zero, g_idx


class GPTQ:
    """The calibration state of one `Dense` layer: its Hessian from the
    inputs seen so far, and the quantize-and-correct step."""

    def __init__(self, layer, config):
        self.layer = layer
        self.config = config
        self.num_samples = 0
        self.compute_dtype = layer.variable_dtype
        self.rows, self.columns = layer._kernel.shape
        self.hessian = torch.zeros((self.rows, self.rows), dtype=torch.float32)

    def find_params(self, x):
        c = self.config
        return compute_quantization_parameters(x, bits=c.weight_bits, symmetric=c.symmetric,
                                               per_channel=c.per_channel, group_size=c.group_size,
                                               compute_dtype=self.compute_dtype)

    def observe(self, batch):
        self.update_hessian_with_batch(batch)

    def update_hessian_with_batch(self, batch):
        if batch is None:
            raise ValueError("Input tensor cannot be None.")
        x = batch.detach().reshape(-1, batch.shape[-1]).to(torch.float32).cpu()
        if x.shape[-1] != self.rows:
            raise ValueError(f"Hessian dimensions ({self.rows}) do not match input features ({x.shape[-1]}).")
        new = x.shape[0]
        total = torch.tensor(self.num_samples + new, dtype=torch.int32)
        gram = torch.matmul(x.T, x)
        gram = (gram + gram.T) / torch.tensor(2.0)
        if self.num_samples > 0:
            self.hessian = self.hessian * (torch.tensor(self.num_samples, dtype=torch.int32) / total)
        self.hessian = self.hessian + (torch.tensor(2.0) / total) * gram
        self.num_samples += new

    def quantize_and_correct_layer(self, blocksize=128):
        from kerasish import quantizers

        layer = self.layer
        weights = layer._kernel.detach().cpu().T
        diag = torch.diagonal(self.hessian)
        dead = diag == 0.0
        diag = torch.where(dead, torch.tensor(1.0), diag)
        hessian = self.hessian + torch.diag(torch.where(dead, torch.tensor(1.0), torch.zeros_like(diag)))
        diag = diag + self.config.hessian_damping * torch.mean(diag)
        hessian = (hessian - torch.diag(torch.diagonal(hessian))) + torch.diag(diag)
        inverse = torch.linalg.inv(hessian)
        quantized, scale, zero, g_idx = gptq_quantize_matrix(
            weights, inverse, blocksize=blocksize, group_size=self.config.group_size,
            activation_order=self.config.activation_order, order_metric=torch.diagonal(hessian),
            find_params=self.find_params)
        quantized = quantized.to(torch.uint8)
        if self.config.weight_bits == 4:
            quantized = quantizers.pack_int4(quantized, axis=0, dtype="uint8")[0]
        layer._finish_calibration(quantized, scale.to(dtypes.to_torch_dtype(self.compute_dtype)), zero, g_idx)
