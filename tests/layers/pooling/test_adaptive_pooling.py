"""AdaptiveAveragePooling1D/2D/3D and AdaptiveMaxPooling1D/2D/3D: harness,
Keras parity (both data formats, sizes that do not divide the input), a NumPy
reference from the definition, and bad input."""

import numpy as np
import pytest
import torch

import kerasish as keras
from layer_harness import run_layer_test
from parity import assert_keras_parity

L = keras.layers

CASES = [
    (1, 4, (2, 10, 3)),
    (1, (3,), (2, 7, 3)),
    (2, (2, 3), (2, 7, 9, 3)),
    (2, 4, (1, 6, 6, 2)),
    (3, (2, 3, 2), (1, 5, 7, 4, 2)),
]


def _numpy_adaptive(x, size, reduce):
    """From the definition: cell i over [floor(i*L/n), ceil((i+1)*L/n)) on
    every spatial axis of channels_first data."""
    spatial = x.shape[2:]
    out = np.zeros(x.shape[:2] + tuple(size), dtype=np.float64)
    for idx in np.ndindex(*size):
        sl = tuple(slice((i * n_in) // n, -((-(i + 1) * n_in) // n)) for i, n, n_in in zip(idx, size, spatial))
        region = x[(slice(None), slice(None)) + sl]
        out[(slice(None), slice(None)) + idx] = reduce(region.reshape(*x.shape[:2], -1), axis=-1)
    return out


@pytest.mark.parametrize("mode", ["Average", "Max"])
@pytest.mark.parametrize("rank,size,shape", CASES)
def test_adaptive_pooling(keras_ref, mode, rank, size, shape):
    name = f"Adaptive{mode}Pooling{rank}D"
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(rank))
    full = (size,) * rank if isinstance(size, int) else tuple(size)
    expected = (shape[0], *full, shape[-1])
    run_layer_test(getattr(L, name), {"output_size": size}, input_shape=shape, expected_output_shape=expected,
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)
    for data_format in ("channels_last", "channels_first"):
        ours, theirs = assert_keras_parity(keras_ref, name, {"output_size": size, "data_format": data_format}, x)
        got, want = ours.get_config(), theirs.get_config()
        got.pop("name"), want.pop("name")
        assert got == want
    # NumPy reference from the definition (channels_first view of the data)
    xf = np.moveaxis(x.numpy().astype(np.float64), -1, 1)
    ref = _numpy_adaptive(xf, full, np.mean if mode == "Average" else np.max)
    np.testing.assert_allclose(np.moveaxis(getattr(L, name)(size)(x).numpy(), -1, 1), ref, rtol=1e-5, atol=1e-6)


def test_adaptive_pooling_bad_input():
    with pytest.raises(TypeError, match="output_size"):
        L.AdaptiveAveragePooling2D((2, 3, 4))
    with pytest.raises(ValueError, match="output_size"):
        L.AdaptiveMaxPooling1D(0)
    with pytest.raises(ValueError, match="data_format"):
        L.AdaptiveMaxPooling2D(2, data_format="nhwc")
    with pytest.raises(ValueError, match="ndim=4"):
        L.AdaptiveAveragePooling2D(2)(torch.rand(2, 3, 4))
