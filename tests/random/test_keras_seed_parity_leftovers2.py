"""After `set_random_seed`, an unseeded `Dropout` fed by a layer that Keras 3's
torch backend leaves channels-first in memory draws Keras's mask.

Keras's pooling layers, and its rank-1 and transposed convolutions, on
channels_last data copy their input to channels-first and return a permuted
view; torch's `F.dropout` (Keras's unseeded dropout) fills its mask in memory
order, so the same torch RNG state gave other masks on kerasish's
channels_last outputs. A Dropout called symbolically (Sequential, functional)
after such a layer, directly or through activations / BatchNormalization /
Dropout, now draws its mask in that order (no copy of the input on the CPU).

Reference: real Keras 3 (torch backend) with the same weights copied in, both
seeded by `set_random_seed` before the training call; the zeros of the outputs
(the masks) exactly, values and input gradients to rtol 1e-5 / atol 1e-6
(BatchNormalization's batch statistics sum in another order).
Without `set_random_seed`, kerasish keeps torch's plain `F.dropout` (its fastest
path; no Keras parity is claimed there).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kerasish

CASES = {
    "maxpool2d": ((6, 6, 3), lambda k: [k.layers.Conv2D(4, 3, padding="same"), k.layers.MaxPooling2D(2),
                                        k.layers.Dropout(0.4)]),
    "avgpool1d": ((8, 3), lambda k: [k.layers.AveragePooling1D(2), k.layers.Dropout(0.3)]),
    "adaptive_maxpool2d": ((6, 6, 3), lambda k: [k.layers.AdaptiveMaxPooling2D(3), k.layers.Dropout(0.3)]),
    "maxpool3d_relu_bn": ((4, 4, 4, 2), lambda k: [k.layers.MaxPooling3D(2), k.layers.ReLU(),
                                                   k.layers.BatchNormalization(), k.layers.Dropout(0.5)]),
    "conv1d": ((9, 2), lambda k: [k.layers.Conv1D(5, 3, activation="relu"), k.layers.Dropout(0.3),
                                  k.layers.Dropout(0.2)]),
    "conv2d_transpose": ((3, 3, 2), lambda k: [k.layers.Conv2DTranspose(4, 2, strides=2),
                                               k.layers.Activation("tanh"), k.layers.Dropout(0.3)]),
    "separable_conv1d": ((9, 2), lambda k: [k.layers.SeparableConv1D(3, 3), k.layers.Dropout(0.5)]),
    "conv2d_transpose_same_no_bias": ((3, 3, 2), lambda k: [k.layers.Conv2DTranspose(4, 3, strides=2, padding="same",
                                                                                     use_bias=False),
                                                            k.layers.Dropout(0.5)]),
    "conv2d_unchanged": ((5, 5, 2), lambda k: [k.layers.Conv2D(4, 3), k.layers.Dropout(0.3)]),
    "maxpool2d_softmax": ((4, 4, 3), lambda k: [k.layers.MaxPooling2D(2), k.layers.Activation("softmax"),
                                                k.layers.Dropout(0.5)]),
    # channels_first data: Keras's outputs are contiguous there, as kerasish's
    "channels_first": ((2, 9), lambda k: [k.layers.Conv1D(3, 3, data_format="channels_first"),
                                          k.layers.MaxPooling1D(2, data_format="channels_first"),
                                          k.layers.Dropout(0.4)]),
}


def _model(k, name, functional):
    shape, make = CASES[name]
    layers = make(k)
    if not functional:
        return k.Sequential([k.Input(shape), *layers, k.layers.Flatten()])
    inputs = k.Input(shape)
    x = inputs
    for layer in layers:
        x = layer(x)
    return k.Model(inputs, k.layers.Flatten()(x))


def _run(k, model, x, seed):
    k.utils.set_random_seed(seed)
    xt = torch.from_numpy(x).requires_grad_(True)
    y = model(xt, training=True)
    (y * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_dropout_mask_equals_keras_after_set_random_seed(keras_ref, name, functional):
    ours, theirs = _model(kerasish, name, functional), _model(keras_ref, name, functional)
    theirs.set_weights(ours.get_weights())
    x = np.random.default_rng(3).standard_normal((2, *CASES[name][0])).astype("float32")
    for seed in (0, 7):
        want_y, want_g = _run(keras_ref, theirs, x, seed)
        got_y, got_g = _run(kerasish, ours, x, seed)
        assert (want_y == 0).any()  # the masks are in play
        np.testing.assert_array_equal(got_y == 0, want_y == 0)  # the same mask, exactly
        # (values: BatchNormalization's batch statistics sum in another order, ~2e-7)
        np.testing.assert_allclose(got_y, want_y, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_g, want_g, rtol=1e-5, atol=1e-6)


def test_without_set_random_seed_plain_f_dropout():
    model = _model(kerasish, "maxpool2d", False)
    dropout = model.layers[-2]
    assert dropout._keras_cf_input
    x = torch.randn(2, 6, 6, 3)
    pooled = model.layers[1](model.layers[0](x))
    torch.manual_seed(5)
    got = dropout(pooled, training=True)
    torch.manual_seed(5)
    want = F.dropout(pooled, 0.4, training=True)
    assert torch.equal(got, want)
    assert got.is_contiguous()


def test_shared_dropout_on_both_layouts_keeps_torch_order():
    k = kerasish
    inputs = k.Input((6, 6, 3))
    drop = k.layers.Dropout(0.5)
    a = drop(k.layers.MaxPooling2D(2)(inputs))
    b = drop(k.layers.Conv2D(3, 3, padding="same")(k.layers.MaxPooling2D(2)(inputs)))
    k.Model(inputs, [a, b])
    assert not drop._keras_cf_input
