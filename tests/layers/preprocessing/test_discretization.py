"""Discretization: harness, Keras parity for fixed boundaries (every output
mode) and for adapt() (Keras's own quantile summary run through its
update_state/finalize_state, since Keras's adapt() needs TensorFlow), a NumPy
digitize reference, config round trip, errors."""

import numpy as np
import pytest
import torch

import kerasish as keras
from layer_harness import run_layer_test
from parity import assert_close

L = keras.layers
BOUNDS = [-1.0, 0.0, 0.5, 2.0]


@pytest.mark.parametrize("mode,shape,out", [("int", (4, 3), (4, 3)), ("one_hot", (6, 1), (6, 5)),
                                            ("multi_hot", (4, 3), (4, 5)), ("count", (4, 3), (4, 5))])
def test_discretization(keras_ref, mode, shape, out):
    kwargs = {"bin_boundaries": BOUNDS, "output_mode": mode}
    run_layer_test(L.Discretization, kwargs, input_shape=shape, expected_output_shape=out,
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    x.flat[0] = 0.5  # exactly on a boundary: goes to the upper bin
    ours = L.Discretization(**kwargs)(torch.as_tensor(x))
    theirs = keras_ref.layers.Discretization(**kwargs)(x)
    assert_close(ours, theirs)
    assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
    if mode == "int":
        np.testing.assert_array_equal(ours.numpy(), np.digitize(x, BOUNDS))


@pytest.mark.parametrize("num_bins,epsilon", [(4, 0.01), (7, 0.01), (3, 0.1)])
def test_discretization_adapt_matches_keras(keras_ref, num_bins, epsilon):
    data = np.random.default_rng(num_bins).normal(size=(500, 2)).astype("float32")
    theirs = keras_ref.layers.Discretization(num_bins=num_bins, epsilon=epsilon)
    theirs.reset_state()
    for batch in (data[:120], data[120:]):
        theirs.update_state(batch)
    theirs.finalize_state()
    for source in ([data[:120], data[120:]], [torch.as_tensor(data[:120]), torch.as_tensor(data[120:])]):
        ours = L.Discretization(num_bins=num_bins, epsilon=epsilon)
        ours.adapt(source)
        np.testing.assert_allclose(ours.bin_boundaries, theirs.bin_boundaries, rtol=1e-6)
        assert_close(ours(torch.as_tensor(data)), theirs(data))
    ours = L.Discretization(num_bins=num_bins, epsilon=epsilon)
    ours.adapt(data)
    assert len(ours.bin_boundaries) == num_bins - 1
    # quantiles: each bin holds about 1/num_bins of the data
    counts = np.bincount(ours(torch.as_tensor(data)).numpy().ravel(), minlength=num_bins) / data.size
    np.testing.assert_allclose(counts, 1 / num_bins, atol=0.05)
    # an adapted layer round-trips through its config with its boundaries
    clone = L.Discretization.from_config(ours.get_config())
    assert clone.bin_boundaries == ours.bin_boundaries and clone.num_bins == num_bins
    assert torch.equal(clone(torch.as_tensor(data)), ours(torch.as_tensor(data)))


def test_discretization_errors():
    with pytest.raises(ValueError, match="either"):
        L.Discretization()
    with pytest.raises(ValueError, match="Both"):
        L.Discretization(bin_boundaries=[0.0], num_bins=2)
    with pytest.raises(ValueError, match="output_mode"):
        L.Discretization(bin_boundaries=[0.0], output_mode="tf_idf")
    with pytest.raises(ValueError, match="sorted"):
        L.Discretization(bin_boundaries=[1.0, 0.0])
    with pytest.raises(ValueError, match="adapt"):
        L.Discretization(num_bins=3)(torch.rand(2))
    with pytest.raises(ValueError, match="adapt"):
        L.Discretization(bin_boundaries=[0.0]).adapt(np.zeros(3))
    assert torch.equal(L.Discretization(bin_boundaries=[0.0])(torch.tensor([-1, 0, 3])), torch.tensor([0, 1, 1],
                                                                                                      dtype=torch.int32))
