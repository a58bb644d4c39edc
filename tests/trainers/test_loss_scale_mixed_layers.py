"""fit scales the loss when mixed_float16 layers sit inside a float32 model.

A Keras `mixed_float16` model loaded under the default float32 policy is a
float32 model of mixed_float16 layers. Without loss scaling its float16
backward underflows: a loss gradient of 1e-9 per output is below float16's
smallest subnormal (6e-8), so no weight before the last layer trains. The
reference is the same model in float32, trained from the same weights.
"""

import numpy as np
import torch

import kerasish as keras


def _model(dtype):
    inp = keras.Input((4,))
    h = keras.layers.Dense(8, dtype=dtype, name="d1")(inp)
    out = keras.layers.Dense(1, dtype=dtype, name="d2")(h)
    return keras.Model(inp, out)


def _tiny_loss(y_true, y_pred):
    return 1e-9 * torch.sum(y_pred.float(), dim=-1)


def _fit(model, weights, x, y):
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e6), loss=_tiny_loss)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model.get_layer("d1").get_weights()[0]


def test_mixed_layers_in_float32_model_get_loss_scaling():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.0, (8, 4)).astype("float32")
    y = np.zeros((8, 1), "float32")
    ref_model = _model("float32")
    weights = [rng.normal(size=w.shape).astype("float32") * 0.5 for w in ref_model.get_weights()]
    start = weights[0]
    ref = _fit(ref_model, weights, x, y) - start
    mixed = _model("mixed_float16")
    assert mixed.dtype_policy.name == "float32"  # the model itself is float32, as after loading
    got = _fit(mixed, weights, x, y) - start
    assert np.abs(ref).max() > 1e-4  # the float32 reference does train d1
    np.testing.assert_allclose(got, ref, rtol=2e-2, atol=1e-5)


def test_policy_changed_between_fits_gets_loss_scaling():
    """fit decides once per call that no layer is mixed_float16 (to skip a
    module walk per step); a layer made mixed_float16 before the next fit
    call is seen by that call."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 1.0, (8, 4)).astype("float32")
    y = np.zeros((8, 1), "float32")
    ref_model = _model("float32")
    weights = [rng.normal(size=w.shape).astype("float32") * 0.5 for w in ref_model.get_weights()]
    ref = _fit(ref_model, weights, x, y) - weights[0]
    model = _model("float32")
    _fit(model, weights, x, y)
    assert model._grad_scaler is None and not model._no_fp16_layers  # the per-fit decision is dropped
    for name in ("d1", "d2"):
        model.get_layer(name).dtype_policy = "mixed_float16"
    got = _fit(model, weights, x, y) - weights[0]
    assert model._grad_scaler is not None
    np.testing.assert_allclose(got, ref, rtol=2e-2, atol=1e-5)
