"""Legacy Nadam (`keras.optimizers.legacy.Nadam`) on float64 / float16 / bfloat16 weights against recorded
tf.keras 2.21 runs (tests/fixtures/keras2_optimizers/legacy_nadam_dtypes.*, made by
tools/fixtures/make_keras2_legacy_nadam_dtypes.py).

tf.keras 2 makes `momentum_cache` (kerasish's `u_product`) in the first weight's dtype and computes the momentum
schedule in it; kerasish kept it float32, so a float64 model's schedule carried float32 rounding (~3e-8 relative)
and files held a float32 cache. Keras 3's Nadam does the same with its `u_product` (checked live below).
"""

import json
import pathlib

import numpy as np
import pytest
import torch

import kerasish as keras

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "keras2_optimizers"
META = json.loads((FIXTURES / "legacy_nadam_dtypes.json").read_text())
ARRAYS = dict(np.load(FIXTURES / "legacy_nadam_dtypes.npz"))
# (weights rtol, weights atol, cache rtol). The cache: float64 to a few ulps (pow implementations); float16 /
# bfloat16 to the dtype's rounding. The weights: tf.keras 2 reads `learning_rate`, `beta_1`, `beta_2` from
# float32 variables in every legacy optimizer (kerasish's legacy update steps use the Python floats), which
# moves a float64 step by up to ~7e-6 of its size where the gradient is near epsilon: the float32 legacy
# tests' tolerance (1e-5, 1e-6). float16 groups the update's operations differently (kerasish folds the
# schedule into one scalar per term): an ulp or two of float16 after 8 steps
TOLERANCES = {"float64": (1e-5, 1e-6, 1e-14), "float16": (2e-3, 2e-3, 1e-3), "bfloat16": (None, None, 8e-3)}


def _run(case):
    spec = META["cases"][case]
    dtype = getattr(torch, spec["dtype"])
    opt = keras.optimizers.legacy.Nadam(**spec["kwargs"])
    w = keras.Variable(torch.tensor(ARRAYS["w0"]).to(dtype), name="w", dtype=spec["dtype"])
    b = keras.Variable(torch.tensor(ARRAYS["b0"]).to(dtype), name="b", dtype=spec["dtype"])
    steps = []
    for t in range(META["steps"]):
        opt.apply_gradients([(torch.tensor(ARRAYS["g1"][t]).to(dtype), w), (torch.tensor(ARRAYS["g2"][t]).to(dtype), b)])
        steps.append((w.value.detach().double().numpy().copy(), b.value.detach().double().numpy().copy(),
                      float(opt._u_product)))
    return opt, steps


@pytest.mark.parametrize("case", sorted(META["cases"]))
def test_momentum_cache_dtype_and_steps_like_tf_keras(case):
    spec = META["cases"][case]
    opt, steps = _run(case)
    assert opt._u_product.dtype == getattr(torch, spec["cache_dtype"])
    assert opt.variables[-1].dtype == getattr(torch, spec["cache_dtype"])
    rtol, atol, cache_rtol = TOLERANCES[spec["dtype"]]
    for t, (w, b, cache) in enumerate(steps):
        np.testing.assert_allclose(cache, ARRAYS[f"{case}/momentum_cache"][t], rtol=cache_rtol, err_msg=f"step {t}")
        if rtol is None:
            # tf.keras 2's bfloat16 run is NaN from the first step: `1 - beta_2 ** 1` is 0 in bfloat16 (0.999
            # rounds to 1.0) and it divides by it. kerasish's bias correction is a float: finite weights
            assert np.isnan(ARRAYS[f"{case}/w"][t]).all() and np.isfinite(w).all() and np.isfinite(b).all()
            continue
        np.testing.assert_allclose(w, ARRAYS[f"{case}/w"][t], rtol=rtol, atol=atol, err_msg=f"{case} step {t}")
        np.testing.assert_allclose(b, ARRAYS[f"{case}/b"][t], rtol=rtol, atol=atol, err_msg=f"{case} step {t}")


def test_float64_schedule_is_not_float32_rounded():
    """The recorded float64 cache differs from its float32 rounding by more than the test's tolerance, so the
    float64 test above can tell the two apart."""
    cache = ARRAYS["float64/momentum_cache"]
    assert np.abs(cache.astype(np.float32).astype(np.float64) / cache - 1).max() > 1e-9


def test_legacy_h5_file_holds_the_cache_in_its_dtype(tmp_path):
    h5py = pytest.importorskip("h5py")
    keras.backend.set_floatx("float64")
    try:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer=keras.optimizers.legacy.Nadam(0.01), loss="mse")
        model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
        path = tmp_path / "m.h5"
        model.save(path)
        with h5py.File(path, "r") as f:
            cache = f["optimizer_weights/Nadam/momentum_cache:0"][()]
        assert cache.dtype == np.float64
        np.testing.assert_allclose(cache, float(model.optimizer._u_product), rtol=0)
        loaded = keras.saving.load_model(path)
        assert loaded.optimizer._u_product.dtype == torch.float64
        assert float(loaded.optimizer._u_product) == float(model.optimizer._u_product)
    finally:
        keras.backend.set_floatx("float32")


@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_keras3_nadam_u_product_follows_the_first_weight_as_keras(keras_ref, dtype):
    """Keras 3.15's Nadam makes `u_product` in the first weight's dtype too: the same dtype and value here.
    (Keras 3.15's torch Nadam cannot step bfloat16 weights: `torch._foreach_div` refuses its NumPy bfloat16
    scalar, a TypeError; kerasish's bfloat16 path is checked against tf.keras 2 above.)"""
    w0 = ARRAYS["w0"]
    grads = ARRAYS["g1"][:4]
    theirs = keras_ref.optimizers.Nadam(0.01)
    tv = keras_ref.Variable(w0, dtype=dtype)
    ours = keras.optimizers.Nadam(0.01)
    ov = keras.Variable(torch.tensor(w0).to(getattr(torch, dtype)), dtype=dtype)
    for g in grads:
        theirs.apply_gradients([(keras_ref.ops.cast(g, dtype), tv)])
        ours.apply_gradients([(torch.tensor(g).to(getattr(torch, dtype)), ov)])
    assert str(ours._u_product.dtype).split(".")[-1] == theirs._u_product.dtype == dtype
    rtol = {"float64": 1e-12, "float16": 1e-3}[dtype]
    np.testing.assert_allclose(float(ours._u_product), float(keras_ref.ops.convert_to_numpy(
        keras_ref.ops.cast(theirs._u_product.value, "float64"))), rtol=rtol)


def test_compiled_step_keeps_the_dtype_and_the_recorded_schedule():
    """`torch.compile(opt.apply)` (the path `fit(jit_compile=True)` takes after its first eager step): the
    product stays float64 and follows the tf.keras 2 recording (its schedule is traced in float64; the exponent
    `schedule_decay * t` is float32-rounded there, ~1e-12 of the product)."""
    opt = keras.optimizers.legacy.Nadam(**META["cases"]["float64"]["kwargs"])
    w = keras.Variable(torch.tensor(ARRAYS["w0"]).double(), name="w", dtype="float64")
    b = keras.Variable(torch.tensor(ARRAYS["b0"]).double(), name="b", dtype="float64")
    opt.build([w, b])
    torch._dynamo.reset()
    compiled = torch.compile(lambda grads: opt.apply(grads, [w, b]), backend="eager", fullgraph=True)
    for t in range(4):
        grads = [torch.tensor(ARRAYS["g1"][t]).double(), torch.tensor(ARRAYS["g2"][t]).double()]
        (opt.apply if t == 0 else compiled)(grads, *([[w, b]] if t == 0 else []))
        assert opt._u_product.dtype == torch.float64
        np.testing.assert_allclose(float(opt._u_product), ARRAYS["float64/momentum_cache"][t], rtol=1e-10)
    np.testing.assert_allclose(w.value.detach().numpy(), ARRAYS["float64/w"][3], rtol=1e-5, atol=1e-6)
