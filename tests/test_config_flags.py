"""keras.config flags: flash attention (feeds torch's SDPA kernel choice),
traceback filtering (a flag only), and the debugging caps on fit's epochs and
steps, checked against real Keras."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import kerasish


def _counting_callback(lib):
    class Count(lib.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.train = self.test = self.predict = 0
            self.epochs = 0

        def on_train_batch_end(self, batch, logs=None):
            self.train += 1

        def on_test_batch_end(self, batch, logs=None):
            self.test += 1

        def on_predict_batch_end(self, batch, logs=None):
            self.predict += 1

        def on_epoch_end(self, epoch, logs=None):
            self.epochs += 1

    return Count()


def _run(lib, max_epochs, max_steps, **fit_kwargs):
    lib.config.set_max_epochs(max_epochs)
    lib.config.set_max_steps_per_epoch(max_steps)
    try:
        model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        x = np.random.default_rng(0).random((40, 3)).astype("float32")
        y = x.sum(1, keepdims=True)
        count = _counting_callback(lib)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(x, y, verbose=0, callbacks=[count], validation_data=(x, y), **fit_kwargs)
            eval_count = _counting_callback(lib)
            model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[eval_count])
            pred = model.predict(x, batch_size=4, verbose=0)
        messages = sorted({str(w.message) for w in caught if "Limiting" in str(w.message)})
        return (len(history.history["loss"]), history.epoch, count.train, count.test, count.epochs,
                history.params.get("epochs"), history.params.get("steps"), eval_count.test, len(pred), messages)
    finally:
        lib.config.set_max_epochs(None)
        lib.config.set_max_steps_per_epoch(None)


@pytest.mark.parametrize(("max_epochs", "max_steps", "fit_kwargs"), [
    (2, 3, {"epochs": 5, "batch_size": 4}),
    (None, 3, {"epochs": 2}),  # no batch_size: Keras batches arrays by ceil(n / cap)
    (3, None, {"epochs": 5, "batch_size": 8, "initial_epoch": 1}),
    (10, 20, {"epochs": 2, "batch_size": 8, "steps_per_epoch": 4}),  # caps above the request change nothing
    (2, 3, {"epochs": 3, "batch_size": 8, "steps_per_epoch": 5, "validation_steps": 4}),
])
def test_fit_caps_match_keras(keras_ref, max_epochs, max_steps, fit_kwargs):
    ref = _run(keras_ref, max_epochs, max_steps, **fit_kwargs)
    ours = _run(kerasish, max_epochs, max_steps, **fit_kwargs)
    assert ours == ref


def test_caps_default_and_environment_variables(keras_ref):
    assert kerasish.config.max_epochs() is keras_ref.config.max_epochs() is None
    assert kerasish.config.max_steps_per_epoch() is keras_ref.config.max_steps_per_epoch() is None
    env = dict(os.environ, KERAS_MAX_EPOCHS="2", KERAS_MAX_STEPS_PER_EPOCH="3", PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = ("import kerasish as k, numpy as np; m = k.Sequential([k.Input((1,)), k.layers.Dense(1)]); "
            "m.compile('sgd', 'mse'); h = m.fit(np.ones((20, 1)), np.ones((20, 1)), epochs=9, batch_size=2, "
            "verbose=0); print(k.config.max_epochs(), k.config.max_steps_per_epoch(), len(h.epoch), "
            "h.params['steps'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "3", "2", "3"]


def test_traceback_filtering_flag_matches_keras(keras_ref):
    assert kerasish.config.is_traceback_filtering_enabled() is keras_ref.config.is_traceback_filtering_enabled()
    try:
        kerasish.config.disable_traceback_filtering()
        keras_ref.config.disable_traceback_filtering()
        assert kerasish.config.is_traceback_filtering_enabled() is keras_ref.config.is_traceback_filtering_enabled()
    finally:
        kerasish.config.enable_traceback_filtering()
        keras_ref.config.enable_traceback_filtering()
    assert kerasish.config.is_traceback_filtering_enabled() is True


def _sdpa_kernels(layer, *args):
    with torch.profiler.profile() as prof:
        layer(*args)
    return {e.name for e in prof.events() if e.name.startswith("aten::_scaled_dot_product")}


def test_flash_attention_switch_drives_sdpa_kernel(keras_ref):
    x = np.random.default_rng(1).random((2, 6, 8)).astype("float32")
    values = []
    try:
        for lib in (keras_ref, kerasish):
            values.append(lib.config.is_flash_attention_enabled())
            lib.config.disable_flash_attention()
            values.append(lib.config.is_flash_attention_enabled())
        off = kerasish.layers.MultiHeadAttention(2, 4)
        forced = kerasish.layers.MultiHeadAttention(2, 4, flash_attention=True)
    finally:
        for lib in (keras_ref, kerasish):
            lib.config.enable_flash_attention()
            values.append(lib.config.is_flash_attention_enabled())
    assert values[:2] == values[2:4] and values[4:] == [values[4]] * 2
    auto = kerasish.layers.MultiHeadAttention(2, 4)
    assert (off._flash_attention, forced._flash_attention, auto._flash_attention) == (False, True, None)
    # CPU: torch's default choice is its CPU flash kernel; disabled -> math
    assert _sdpa_kernels(auto, x, x) == {"aten::_scaled_dot_product_flash_attention_for_cpu"}
    assert _sdpa_kernels(off, x, x) == {"aten::_scaled_dot_product_attention_math"}
    assert _sdpa_kernels(forced, x, x) == {"aten::_scaled_dot_product_flash_attention_for_cpu"}
    # the numbers do not depend on the kernel
    off.set_weights(auto.get_weights())
    np.testing.assert_allclose(off(x, x).detach().numpy(), auto(x, x).detach().numpy(), rtol=1e-5, atol=1e-6)
    gqa = kerasish.layers.GroupedQueryAttention(4, 4, 2, flash_attention=False)
    assert _sdpa_kernels(gqa, x, x) <= {"aten::_scaled_dot_product_attention_math"}


def test_dot_product_attention_flash_argument():
    q = torch.randn(2, 5, 2, 4)
    kernels = {}
    for flag in (None, False, True):
        with torch.profiler.profile() as prof:
            out = kerasish.ops.dot_product_attention(q, q, q, flash_attention=flag)
        kernels[flag] = {e.name for e in prof.events() if e.name.startswith("aten::_scaled_dot_product")}
        kernels[(flag, "out")] = out
    assert kernels[False] == {"aten::_scaled_dot_product_attention_math"}
    assert kernels[True] == kernels[None] == {"aten::_scaled_dot_product_flash_attention_for_cpu"}
    torch.testing.assert_close(kernels[(False, "out")], kernels[(None, "out")], rtol=1e-5, atol=1e-6)
