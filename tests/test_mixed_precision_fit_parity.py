"""`fit` of a small CNN (Conv2D, BatchNormalization, pooling, Dense) under
`mixed_float16` and `mixed_bfloat16` against Keras 3 (torch backend, CPU),
the same initial weights in both.

- `mixed_float16`: a `LossScaleOptimizer` whose initial scale overflows the
  float16 backward pass: the same steps are skipped, the scale halves and
  regrows after `dynamic_growth_steps` on the same batches as Keras's (the
  `(dynamic_scale, iterations)` trajectory compared batch by batch, exactly),
  and the losses and weights stay close (float16 kernels on two
  implementations: Dense and Conv2D add their bias differently, see
  tests/layers/test_low_precision_parity.py).
- `mixed_bfloat16`: no loss scaling in either (the optimizer stays unwrapped),
  float32 variables (BatchNormalization's moving statistics included),
  bfloat16 predictions.

(The MLP case with skipped steps is in tests/test_loss_scale_optimizer.py.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish


def _cnn(k, policy):
    k.mixed_precision.set_global_policy(policy)
    try:
        return k.Sequential([
            k.Input((8, 8, 2)),
            k.layers.Conv2D(4, 3, activation="relu"),
            k.layers.BatchNormalization(),
            k.layers.MaxPooling2D(),
            k.layers.Flatten(),
            k.layers.Dense(3, activation="softmax"),
        ])
    finally:
        k.mixed_precision.set_global_policy("float32")


def _numpy(k, v):
    return np.asarray(k.ops.convert_to_numpy(v))


def _fit(k, model, optimizer, x, y):
    trajectory = []

    class Record(k.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            opt = self.model.optimizer
            scale = float(_numpy(k, opt.dynamic_scale)) if hasattr(opt, "dynamic_scale") else None
            trajectory.append((scale, int(_numpy(k, opt.iterations))))

    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[Record()])
    return history.history["loss"], trajectory


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8, 8, 2)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 32)]
    return x, y


def test_mixed_float16_cnn_fit_skips_and_regrows_the_scale_as_keras(keras_ref):
    x, y = _data()
    torch.manual_seed(0)
    ours, theirs = _cnn(kerasish, "mixed_float16"), _cnn(keras_ref, "mixed_float16")
    theirs.set_weights(ours.get_weights())

    def optimizer(k):
        # 2**15 overflows the float16 gradients of this model: the first steps are skipped
        return k.optimizers.LossScaleOptimizer(k.optimizers.Adam(1e-3), initial_scale=2.0**15,
                                               dynamic_growth_steps=2)

    loss_q, traj_q = _fit(kerasish, ours, optimizer(kerasish), x, y)
    loss_k, traj_k = _fit(keras_ref, theirs, optimizer(keras_ref), x, y)
    assert traj_q == traj_k
    scales = [s for s, _ in traj_k]
    assert scales[0] < 2.0**15 and any(b > a for a, b in zip(scales, scales[1:]))  # skipped, then regrown
    assert traj_k[-1][1] < len(traj_k)  # some steps were skipped
    np.testing.assert_allclose(loss_q, loss_k, rtol=2e-3)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-3)


def test_mixed_bfloat16_cnn_fit_matches_keras_without_loss_scaling(keras_ref):
    x, y = _data()
    torch.manual_seed(0)
    ours, theirs = _cnn(kerasish, "mixed_bfloat16"), _cnn(keras_ref, "mixed_bfloat16")
    theirs.set_weights(ours.get_weights())
    loss_q, traj_q = _fit(kerasish, ours, kerasish.optimizers.Adam(1e-3), x, y)
    loss_k, traj_k = _fit(keras_ref, theirs, keras_ref.optimizers.Adam(1e-3), x, y)
    assert type(ours.optimizer).__name__ == type(theirs.optimizer).__name__ == "Adam"
    assert traj_q == traj_k == [(None, i) for i in range(1, 17)]
    np.testing.assert_allclose(loss_q, loss_k, rtol=2e-3)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-3)
    pred_q, pred_k = ours.predict(x[:4], verbose=0), theirs.predict(x[:4], verbose=0)
    assert pred_q.dtype == pred_k.dtype
    np.testing.assert_allclose(np.asarray(pred_q, np.float32), np.asarray(pred_k, np.float32), atol=2e-2)


def _model_with_a_float16_layer(k, policy="float32"):
    k.mixed_precision.set_global_policy(policy)
    try:
        return k.Sequential([
            k.Input((6,)),
            k.layers.Dense(8, activation="relu", dtype="mixed_float16"),
            k.layers.Dense(3, dtype="float16"),
        ])
    finally:
        k.mixed_precision.set_global_policy("float32")


def test_float32_model_with_float16_and_mixed_float16_layers_fits_unscaled_as_keras(keras_ref):
    """A float32 model holding a mixed_float16 layer and a `dtype="float16"` layer (float16 variables):
    Keras scales no loss there (its optimizer stays unwrapped). kerasish's fit gave such models a
    torch GradScaler, which refuses float16 gradients: fit raised "Attempting to unscale FP16
    gradients". Now it trains unscaled, as Keras."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 6)).astype("float32"), rng.standard_normal((16, 3)).astype("float32")
    ours, theirs = _model_with_a_float16_layer(kerasish), _model_with_a_float16_layer(keras_ref)
    assert [str(v.dtype).replace("torch.", "") for v in ours.weights] == [v.dtype for v in theirs.weights]
    ours.compile(optimizer=kerasish.optimizers.SGD(0.1), loss="mse")
    theirs.compile(optimizer=keras_ref.optimizers.SGD(0.1), loss="mse")
    assert type(ours.optimizer).__name__ == type(theirs.optimizer).__name__ == "SGD"
    before = ours.get_weights()
    history = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    assert ours._grad_scaler is None
    assert np.isfinite(history).all() and history[1] < history[0]
    for a, b in zip(before, ours.get_weights()):
        assert a.dtype == b.dtype and not np.array_equal(a, b)


def test_mixed_float16_model_with_float16_weights_and_torch_optimizer_warns_and_trains():
    """The same model under a mixed_float16 policy with a torch optimizer (fit's GradScaler would
    scale it): torch's GradScaler cannot unscale float16 gradients, so fit says it does not scale."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 6)).astype("float32"), rng.standard_normal((16, 3)).astype("float32")
    model = _model_with_a_float16_layer(kerasish, "mixed_float16")
    model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss="mse")
    with pytest.warns(UserWarning, match="GradScaler cannot unscale"):
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    assert np.isfinite(history).all() and history[1] < history[0]
