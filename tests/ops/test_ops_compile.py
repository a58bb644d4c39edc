"""A sample of kerasish.ops under `torch.compile(fullgraph=True)`: the ops
trace into one graph (no graph breaks) and give the eager numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish.ops as ops


def _block(x, w, idx):
    # a Transformer-ish mix of the ops keras.io programs use most
    h = ops.matmul(x, w)
    h = ops.reshape(h, (x.shape[0], x.shape[1], 2, -1))
    h = ops.transpose(h, (0, 2, 1, 3))
    scores = ops.softmax(ops.einsum("bhqd,bhkd->bhqk", h, h) / ops.sqrt(ops.cast(h.shape[-1], "float32")), axis=-1)
    h = ops.matmul(scores, h)
    h = ops.concatenate([ops.gelu(h), ops.silu(h)], axis=-1)
    h = ops.mean(h, axis=1) + ops.max(h, axis=1) - ops.sum(h, axis=1, keepdims=False) * 0.1
    h = ops.where(h > 0, h, ops.zeros_like(h))
    onehot = ops.one_hot(idx, h.shape[-1])
    h = h + ops.expand_dims(ops.take(onehot, ops.arange(h.shape[1]) % idx.shape[0], axis=0), 0)
    vals, _ = ops.top_k(ops.squeeze(ops.stack([h], axis=0), axis=0), 2)
    flat = ops.reshape(vals, (-1,))
    seg = ops.segment_sum(flat, ops.floor_divide(ops.arange(flat.shape[0]), 2), num_segments=flat.shape[0] // 2)
    return ops.erf(ops.clip(seg, -1.0, 1.0)) + ops.log1p(ops.exp(-ops.abs(ops.std(vals)))), ops.argmax(vals, axis=-1)


def _conv_block(img, k):
    y = ops.conv(img, k, strides=1, padding="same")
    y = ops.max_pool(ops.relu(y), 2)
    y = ops.image.resize(y, (8, 8))
    p = ops.image.extract_patches(y, 4)
    return ops.layer_normalization(p, axis=-1, epsilon=1e-5)


@pytest.mark.parametrize("fn,args", [
    (_block, (torch.randn(2, 5, 8), torch.randn(8, 8), torch.tensor([1, 3, 0]))),
    (_conv_block, (torch.rand(2, 6, 6, 3), torch.randn(3, 3, 3, 4))),
])
def test_ops_compile_fullgraph_matches_eager(fn, args):
    torch._dynamo.reset()
    eager = fn(*args)
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")(*args)
    eager = eager if isinstance(eager, tuple) else (eager,)
    compiled = compiled if isinstance(compiled, tuple) else (compiled,)
    for a, b in zip(eager, compiled):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-5)


def test_cond_on_a_tensor_predicate_compiles_without_graph_break():
    def f(x):
        return ops.cond(ops.sum(x) > 0, lambda: ops.exp(x), lambda: ops.negative(x))

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    for x in (torch.ones(3), -torch.ones(3)):
        np.testing.assert_allclose(compiled(x).numpy(), f(x).numpy(), rtol=1e-6)
