"""Normalization layers: harness, parity with Keras 3 (outputs, moving
statistics, masks, configs), Keras 2 definitions where Keras 3 crashes, and
argument errors."""

import warnings

import numpy as np
import pytest
import torch

import kerasish as keras
from tests.layer_harness import run_layer_test
from tests.parity import assert_close
from tests.parity import assert_keras_parity

RS = np.random.RandomState(0)
X3 = (RS.randn(4, 5, 6) * 2 + 1).astype("float32")
X4 = (RS.randn(2, 3, 4, 6) * 2 - 1).astype("float32")


def _config_equal(ours, theirs):
    a, b = ours.get_config(), theirs.get_config()
    a.pop("name")
    b.pop("name")  # Keras's name counters are global
    assert a == b, {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}


def _perturbed_pair(keras_ref, name, kwargs, x):
    """Both layers built, with the same non-trivial weights."""
    theirs = getattr(keras_ref.layers, name)(**kwargs)
    ours = getattr(keras.layers, name)(**kwargs)
    theirs(x)
    ours(torch.tensor(x))
    weights = [w + RS.rand(*w.shape).astype("float32") * 0.5 for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    return ours, theirs


# ------------------------------------------------------------ BatchNormalization
@pytest.mark.parametrize(
    "kwargs, shape, training",
    [
        ({}, (4, 6), False),
        ({}, (2, 3, 4, 6), True),
        ({"axis": 1}, (2, 3, 4, 5), True),
        ({"center": False, "scale": False, "momentum": 0.9}, (4, 5, 6), True),
    ],
)
def test_batch_norm_harness(kwargs, shape, training):
    n = int(kwargs.get("center", True)) + int(kwargs.get("scale", True))
    run_layer_test(
        keras.layers.BatchNormalization,
        kwargs,
        input_shape=shape,
        expected_output_shape=shape,
        expected_num_trainable_weights=n,
        expected_num_non_trainable_weights=2,
        training=training,
    )


@pytest.mark.parametrize(
    "kwargs, x",
    [
        ({}, X3),
        ({}, X4),
        ({"axis": 1, "momentum": 0.8}, X4),
        ({"axis": 2, "epsilon": 0.1}, X4),
        ({"center": False}, X3),
        ({"renorm": True, "renorm_clipping": {"rmax": 1.5, "rmin": 0.5, "dmax": 0.5}}, X3),
    ],
)
def test_batch_norm_parity_moving_stats(keras_ref, kwargs, x):
    ours, theirs = _perturbed_pair(keras_ref, "BatchNormalization", kwargs, x)
    for step in range(4):
        batch = x * (step + 1) + step
        assert_close(ours(torch.tensor(batch), training=True), theirs(batch, training=True))
    assert_close(ours.get_weights(), theirs.get_weights())  # moving statistics included
    assert_close(ours(torch.tensor(x)), theirs(x))  # inference with the moving statistics
    _config_equal(ours, theirs)


def test_batch_norm_mask_parity(keras_ref):
    mask = RS.rand(4, 5) > 0.4
    ours, theirs = _perturbed_pair(keras_ref, "BatchNormalization", {}, X3)
    for _ in range(2):
        assert_close(
            ours(torch.tensor(X3), training=True, mask=torch.tensor(mask)), theirs(X3, training=True, mask=mask)
        )
    assert_close(ours.get_weights(), theirs.get_weights())
    with pytest.raises(ValueError, match="one dimension less"):
        ours(torch.tensor(X3), training=True, mask=torch.ones(4, dtype=torch.bool))


def test_batch_norm_gradients_match_keras(keras_ref):
    ours, theirs = _perturbed_pair(keras_ref, "BatchNormalization", {}, X4)
    xo = torch.tensor(X4, requires_grad=True)
    xt = torch.tensor(X4, requires_grad=True)
    (ours(xo, training=True) ** 2).sum().backward()
    (theirs(xt, training=True) ** 2).sum().backward()
    assert_close(xo.grad, xt.grad, rtol=1e-3, atol=1e-4)
    assert_close(ours.gamma.grad, theirs.gamma.value.grad, rtol=1e-3, atol=1e-4)


def test_batch_norm_moving_variance_is_biased(keras_ref):
    layer = keras.layers.BatchNormalization(momentum=0.0)
    ref = keras_ref.layers.BatchNormalization(momentum=0.0)
    x = torch.randn(5, 3)
    layer(x, training=True)
    ref(x, training=True)
    np.testing.assert_allclose(layer.moving_variance.numpy(), x.var(0, unbiased=False).numpy(), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), x.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    assert_close(layer.get_weights(), ref.get_weights())  # real Keras 3 keeps the same statistics


def test_batch_norm_frozen_runs_inference(keras_ref):
    layer = keras.layers.BatchNormalization()
    ref = keras_ref.layers.BatchNormalization()
    x = torch.randn(8, 3) * 3 + 2
    layer(x)
    ref(x)
    layer.set_weights([np.random.default_rng(i).uniform(0.5, 1.5, 3).astype("float32") for i in range(4)])
    ref.set_weights(layer.get_weights())
    layer.trainable = False
    ref.trainable = False
    before = [w.copy() for w in layer.get_weights()]
    out = layer(x, training=True)
    assert_close(out, layer(x, training=False))
    assert_close(layer.get_weights(), before)
    assert_close(out, ref(x, training=True))  # real Keras 3: a frozen BatchNormalization runs inference
    assert_close(ref.get_weights(), before)


def test_batch_norm_compile_training_updates_stats():
    layer = keras.layers.BatchNormalization()
    x = torch.randn(2, 3, 3, 4)
    layer(x)
    eager = keras.layers.BatchNormalization()
    eager(x)
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    for _ in range(3):
        assert_close(compiled(x, training=True), eager(x, training=True))
    assert_close(layer.get_weights(), eager.get_weights())


def test_batch_norm_moving_stats_follow_momentum_epsilon_and_dtype_changes():
    """Eager training keeps momentum, 1 - momentum and epsilon as 0-d tensors
    on the layer; they must follow a new momentum, a new epsilon, a dtype
    move and calls made inside `torch.inference_mode`. Reference: Keras's rule
    in float64 NumPy (biased batch variance, `moving * m + batch * (1 - m)`)."""
    layer = keras.layers.BatchNormalization(momentum=0.9)
    rs = np.random.RandomState(3)
    xs = [(rs.randn(6, 5) * (i + 1) + i).astype("float32") for i in range(6)]
    layer(torch.from_numpy(xs[0]))
    mean, var = np.zeros(5), np.ones(5)
    for i, x in enumerate(xs):
        if i == 2:
            layer.momentum = 0.5
        if i == 3:
            layer.epsilon = 0.5  # the batch variance comes back from 1/sqrt(var + epsilon)
        if i == 4:
            layer.double()
        t = torch.from_numpy(x).to(layer.moving_mean.dtype)
        if i == 5:
            with torch.inference_mode():
                layer(t, training=True)
        else:
            layer(t, training=True)
        m = layer.momentum
        mean = mean * m + x.astype("float64").mean(0) * (1 - m)
        var = var * m + x.astype("float64").var(0) * (1 - m)
        np.testing.assert_allclose(layer.moving_mean.detach().double().numpy(), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.moving_variance.detach().double().numpy(), var, rtol=1e-5, atol=1e-6)
    assert layer.moving_mean.dtype == torch.float64
    layer(torch.from_numpy(xs[0]).double(), training=True)  # outside inference mode again: still updates
    assert not layer.moving_mean.is_inference()


def test_batch_norm_channels_last_no_copy():
    layer = keras.layers.BatchNormalization()
    x = torch.randn(2, 3, 3, 4)
    layer(x)
    view, _ = layer._to_channel_dim1(x)
    assert view.data_ptr() == x.data_ptr()


def test_batch_norm_keras2_axis_list_and_bad_args():
    layer = keras.layers.BatchNormalization(axis=[3], fused=True)
    assert layer.get_config()["axis"] == 3
    with pytest.raises(ValueError, match="out of bounds"):
        keras.layers.BatchNormalization(axis=3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="single axis"):
        keras.layers.BatchNormalization(axis=[1, 2])
    with pytest.raises(TypeError, match="axis"):
        keras.layers.BatchNormalization(axis="x")
    with pytest.raises(ValueError, match="renorm_clipping"):
        keras.layers.BatchNormalization(renorm=True, renorm_clipping={"bad": 1})
    with pytest.raises(ValueError, match="rmax"):
        keras.layers.BatchNormalization(renorm=True, renorm_clipping={"rmax": 0.5, "rmin": 1.0})
    with pytest.raises(ValueError, match="expected axis -1"):
        layer = keras.layers.BatchNormalization()
        layer(torch.randn(2, 3))
        layer(torch.randn(2, 4))


# ------------------------------------------------------------ LayerNormalization
@pytest.mark.parametrize(
    "kwargs, shape",
    [({}, (2, 3, 4)), ({"axis": [1, 3], "center": False}, (2, 3, 4, 5)), ({"axis": 1}, (2, 3, 4))],
)
def test_layer_norm_harness(kwargs, shape):
    # Keras 3.15's torch LayerNormalization crashes on a single non-trailing
    # axis (F.layer_norm over the wrong dims); that case has a NumPy reference below
    parity = kwargs.get("axis") != 1
    run_layer_test(keras.layers.LayerNormalization, kwargs, input_shape=shape, expected_output_shape=shape,
                   keras_parity=parity)


@pytest.mark.parametrize(
    "kwargs, x",
    [
        ({}, X3),
        ({"axis": [1, 2], "epsilon": 1e-5}, X3),
        ({"axis": (-2, -1)}, X4),
        ({"axis": [1, 3], "scale": False}, X4),
        ({"rms_scaling": True}, X3),
    ],
)
def test_layer_norm_parity(keras_ref, kwargs, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rms_scaling is deprecated (both warn)
        ours, theirs = _perturbed_pair(keras_ref, "LayerNormalization", kwargs, x)
        assert_close(ours(torch.tensor(x)), theirs(x))
    _config_equal(ours, theirs)


def _keras2_layer_norm(x, axes, gamma, beta, eps):
    """Keras 2's definition (NumPy, float64): moments over `axes`, gamma and
    beta broadcast over those axes."""
    x = x.astype(np.float64)
    mean = x.mean(axis=tuple(axes), keepdims=True)
    var = x.var(axis=tuple(axes), keepdims=True)
    shape = [1] * x.ndim
    for a in axes:
        shape[a] = x.shape[a]
    return (x - mean) / np.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)


def test_layer_norm_axis1_3d_matches_keras2_definition():
    # Keras 3's torch backend crashes here (F.layer_norm on a non-trailing axis)
    layer = keras.layers.LayerNormalization(axis=1)
    layer(torch.tensor(X3))
    gamma, beta = RS.randn(5).astype("float32"), RS.randn(5).astype("float32")
    layer.set_weights([gamma, beta])
    expected = _keras2_layer_norm(X3, [1], gamma, beta, 1e-3)
    assert_close(layer(torch.tensor(X3)), expected)


def test_layer_norm_bad_args():
    with pytest.raises(TypeError, match="axis"):
        keras.layers.LayerNormalization(axis="a")
    with pytest.raises(ValueError, match="out of bounds"):
        keras.layers.LayerNormalization(axis=3)(torch.randn(2, 3))


# ------------------------------------------------------------ GroupNormalization
@pytest.mark.parametrize(
    "kwargs, shape",
    [({"groups": 2}, (2, 3, 4)), ({"groups": 3, "axis": 1}, (2, 6, 4, 4)), ({"groups": -1}, (2, 3, 3, 4))],
)
def test_group_norm_harness(kwargs, shape):
    run_layer_test(keras.layers.GroupNormalization, kwargs, input_shape=shape, expected_output_shape=shape)


@pytest.mark.parametrize(
    "kwargs, x",
    [
        ({"groups": 2}, X4),
        ({"groups": 3, "axis": 1}, X4),
        ({"groups": -1, "epsilon": 1e-5}, X3),
        ({"groups": 2, "axis": 2}, X4),
        ({"groups": 1, "center": False}, X3),
    ],
)
def test_group_norm_parity(keras_ref, kwargs, x):
    ours, theirs = _perturbed_pair(keras_ref, "GroupNormalization", kwargs, x)
    assert_close(ours(torch.tensor(x)), theirs(x))
    _config_equal(ours, theirs)


def test_group_norm_bad_args():
    with pytest.raises(ValueError, match="groups"):
        keras.layers.GroupNormalization(groups=0)
    with pytest.raises(ValueError, match="must be a multiple"):
        keras.layers.GroupNormalization(groups=4)(torch.randn(2, 6))
    with pytest.raises(ValueError, match="cannot be more than"):
        keras.layers.GroupNormalization(groups=8)(torch.randn(2, 6))
    with pytest.raises(TypeError, match="axis"):
        keras.layers.GroupNormalization(groups=2, axis=[1])


# ------------------------------------------------- Unit / RMS normalization
@pytest.mark.parametrize("kwargs", [{}, {"axis": [1, 2]}])
def test_unit_norm(keras_ref, kwargs):
    run_layer_test(keras.layers.UnitNormalization, kwargs, input_shape=(2, 3, 4), expected_output_shape=(2, 3, 4))
    assert_keras_parity(keras_ref, "UnitNormalization", kwargs, torch.tensor(X3))
    ours, theirs = keras.layers.UnitNormalization(**kwargs), keras_ref.layers.UnitNormalization(**kwargs)
    _config_equal(ours, theirs)
    with pytest.raises(TypeError, match="axis"):
        keras.layers.UnitNormalization(axis="x")


@pytest.mark.parametrize("kwargs", [{}, {"axis": [-2, -1], "epsilon": 1e-3}])
def test_rms_norm(keras_ref, kwargs):
    run_layer_test(keras.layers.RMSNormalization, kwargs, input_shape=(2, 3, 4), expected_output_shape=(2, 3, 4))
    ours, theirs = _perturbed_pair(keras_ref, "RMSNormalization", kwargs, X4)
    assert_close(ours(torch.tensor(X4)), theirs(X4))
    _config_equal(ours, theirs)


def test_rms_norm_non_trailing_axes():
    # Keras 3 fails to broadcast `scale` here; reference: the RMSNorm definition
    layer = keras.layers.RMSNormalization(axis=1)
    layer(torch.tensor(X3))
    scale = RS.rand(5).astype("float32") + 0.5
    layer.set_weights([scale])
    x = X3.astype(np.float64)
    expected = x / np.sqrt((x**2).mean(axis=1, keepdims=True) + 1e-6) * scale.reshape(1, 5, 1)
    assert_close(layer(torch.tensor(X3)), expected)


@pytest.mark.parametrize("axis", [-1, [1, 2]])
def test_unit_normalization_is_bitwise_keras(keras_ref, axis):
    """Keras's `ops.normalize` formula, not torch's `F.normalize` (which differs in the last bit for ~1 in 3
    elements): values and gradients equal Keras's exactly."""
    x = np.random.default_rng(0).standard_normal((64, 5, 7)).astype("float32")
    xt = torch.tensor(x, requires_grad=True)
    ours = keras.layers.UnitNormalization(axis=axis)(xt)
    (ours * torch.arange(7.0)).sum().backward()
    xk = torch.tensor(x, requires_grad=True)
    theirs = keras_ref.layers.UnitNormalization(axis=axis)(xk)
    (theirs * torch.arange(7.0)).sum().backward()
    assert torch.equal(ours.detach(), theirs.detach().cpu())
    assert torch.equal(xt.grad, xk.grad)
