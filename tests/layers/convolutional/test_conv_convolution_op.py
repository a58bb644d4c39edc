"""`convolution_op(inputs, kernel)` (Keras 3's BaseConv hook): callable on any
Conv1D/2D/3D with a Keras-layout kernel, and honoured by `call` when a subclass
overrides it (bias and activation added after it, as Keras does; Keras 3.15's
Conv1D ignores an override, kerasish does not). Reference: real Keras 3 with the
same weights."""

import numpy as np
import pytest
import torch

import kerasish


def _scaled(lib, base):
    class Scaled(base):
        def convolution_op(self, inputs, kernel):
            return super().convolution_op(inputs, kernel * 0.5) + 1.0

    return Scaled


CASES = [
    ("Conv1D", (2, 9, 3), {"padding": "causal", "dilation_rate": 2}),
    ("Conv2D", (2, 7, 8, 3), {"strides": 2, "padding": "same"}),
    ("Conv2D", (2, 3, 7, 8), {"data_format": "channels_first", "groups": 3}),
    ("Conv3D", (1, 5, 5, 5, 2), {}),
]


@pytest.mark.parametrize("name,shape,kwargs", CASES)
def test_convolution_op_matches_keras(keras_ref, name, shape, kwargs):
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    filters = 6
    ours_base, ref_base = getattr(kerasish.layers, name), getattr(keras_ref.layers, name)
    ours = _scaled(kerasish, ours_base)(filters, 3, activation="relu", **kwargs)
    ref = _scaled(keras_ref, ref_base)(filters, 3, activation="relu", **kwargs)
    ref_out = keras_ref.ops.convert_to_numpy(ref(x))
    ours(x)
    ours.set_weights(ref.get_weights())
    if name == "Conv1D":
        # Keras 3.15's Conv1D.call never calls convolution_op (an override is silently ignored);
        # kerasish honours it: the reference is Keras's own convolution with the halved kernel, + 1
        linear = ref_base(filters, 3, **kwargs)
        linear(x)
        kernel, bias = ref.get_weights()
        linear.set_weights([kernel * 0.5, bias])
        ref_out = np.maximum(keras_ref.ops.convert_to_numpy(linear(x)) + 1.0, 0.0)
    np.testing.assert_allclose(ours(x).detach().numpy(), ref_out, rtol=1e-5, atol=1e-5)
    # the base hook itself, on the plain layer, equals Keras's
    plain, plain_ref = ours_base(filters, 3, **kwargs), ref_base(filters, 3, **kwargs)
    plain_ref(x)
    plain(x)
    kernel = np.random.default_rng(1).standard_normal(tuple(plain_ref.kernel.shape)).astype("float32")
    if kwargs.get("padding") == "causal":
        return  # Keras's convolution_op passes "causal" to ops.conv, which refuses it
    want = keras_ref.ops.convert_to_numpy(plain_ref.convolution_op(keras_ref.ops.convert_to_tensor(x),
                                                                  keras_ref.ops.convert_to_tensor(kernel)))
    got = plain.convolution_op(torch.as_tensor(x), torch.as_tensor(kernel))
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-5, atol=1e-5)
