"""CUDA: built-in layers moved to the GPU compute there and agree with the
CPU. Skipped, with the reason, on machines without a GPU (the CPU checks of
every layer run in each family's own tests)."""

import pytest
from layer_harness import requires_cuda
from layer_harness import run_cuda_check

import kerasish as keras

L = keras.layers

CASES = [
    ("dense", L.Dense, {"units": 3}, (2, 4)),
    ("einsum_dense", L.EinsumDense, {"equation": "ab,bc->ac", "output_shape": 3}, (2, 4)),
    ("embedding", L.Embedding, {"input_dim": 10, "output_dim": 3}, None),
    ("conv1d", L.Conv1D, {"filters": 2, "kernel_size": 3}, (1, 8, 3)),
    ("conv2d", L.Conv2D, {"filters": 2, "kernel_size": 3}, (1, 8, 8, 3)),
    ("conv2d_transpose", L.Conv2DTranspose, {"filters": 2, "kernel_size": 3}, (1, 8, 8, 3)),
    ("depthwise_conv2d", L.DepthwiseConv2D, {"kernel_size": 3}, (1, 8, 8, 3)),
    ("max_pooling2d", L.MaxPooling2D, {}, (1, 8, 8, 3)),
    ("batch_norm", L.BatchNormalization, {}, (4, 3)),
    ("layer_norm", L.LayerNormalization, {}, (2, 4)),
    ("group_norm", L.GroupNormalization, {"groups": 2}, (2, 4)),
    ("lstm", L.LSTM, {"units": 3, "return_sequences": True}, (2, 5, 4)),
    ("gru", L.GRU, {"units": 3}, (2, 5, 4)),
    ("simple_rnn", L.SimpleRNN, {"units": 3}, (2, 5, 4)),
    ("multi_head_attention", L.MultiHeadAttention, {"num_heads": 2, "key_dim": 4}, None),
    ("attention", L.Attention, {}, [(2, 3, 4), (2, 5, 4)]),
    ("concatenate", L.Concatenate, {}, [(2, 3), (2, 4)]),
]


@requires_cuda
@pytest.mark.parametrize("cls, kwargs, shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_layer_on_cuda(cls, kwargs, shape):
    import torch

    if cls is L.Embedding:
        run_cuda_check(cls, kwargs, input_data=torch.randint(0, 10, (2, 5)))
    elif cls is L.MultiHeadAttention:
        q, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
        layer = cls(**kwargs)
        expected = layer(q, v)
        import copy

        gpu = copy.deepcopy(layer).to("cuda")
        out = gpu(q.cuda(), v.cuda())
        assert out.device.type == "cuda"
        torch.testing.assert_close(out.cpu(), expected, atol=1e-3, rtol=1e-3)
    else:
        run_cuda_check(cls, kwargs, input_shape=shape)
