"""LossScaleOptimizer vs real Keras 3 (torch backend) and vs torch.amp.GradScaler:
scaling, skipping non-finite steps, growth after `dynamic_growth_steps`,
`fit` under mixed_float16, a plain torch loop, configs and `.keras` files."""

import copy
import warnings

import numpy as np
import pytest
import torch

import kerasish
import kerasish.optimizers as optimizers

RTOL, ATOL = 1e-5, 1e-6


def _grad_sequence(scale_hint):
    """Scaled gradients: finite ones, an inf, a NaN, then finite again."""
    rng = np.random.default_rng(0)
    seq = []
    for i in range(9):
        g = [rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal(4).astype("float32")]
        if i == 2:
            g[0][1, 2] = np.inf
        if i == 5:
            g[1][0] = np.nan
        seq.append(g)
    return seq


@pytest.mark.parametrize("inner", [("Adam", {}), ("SGD", {"momentum": 0.9, "learning_rate": 0.1})])
def test_matches_keras_with_skipped_steps_and_growth(keras_ref, inner):
    name, kw = inner
    rng = np.random.default_rng(1)
    w0 = [rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal(4).astype("float32")]
    kv = [keras_ref.Variable(w) for w in w0]
    tv = [torch.nn.Parameter(torch.tensor(w)) for w in w0]
    ko = keras_ref.optimizers.LossScaleOptimizer(getattr(keras_ref.optimizers, name)(**kw), initial_scale=64.0,
                                                  dynamic_growth_steps=2)
    to = optimizers.LossScaleOptimizer(getattr(optimizers, name)(**kw), initial_scale=64.0, dynamic_growth_steps=2)
    scales = []
    for step, g in enumerate(_grad_sequence(64.0)):
        ko.apply(
            [keras_ref.ops.convert_to_tensor(x) for x in g], kv)
        to.apply([torch.tensor(x) for x in g], tv)
        for a, b in zip(kv, tv):
            np.testing.assert_allclose(b.detach().numpy(), keras_ref.ops.convert_to_numpy(a), rtol=RTOL, atol=ATOL,
                                       err_msg=f"step {step}")
        assert float(to.dynamic_scale) == float(keras_ref.ops.convert_to_numpy(ko.dynamic_scale))
        assert int(to.step_counter) == int(keras_ref.ops.convert_to_numpy(ko.step_counter))
        assert int(to.iterations) == int(keras_ref.ops.convert_to_numpy(ko.iterations))
        scales.append(float(to.dynamic_scale))
    # 2 finite -> x2, inf -> /2, 2 finite -> x2, nan -> /2, 3 finite -> x2 after the 2nd
    assert scales == [64.0, 128.0, 64.0, 64.0, 128.0, 64.0, 64.0, 128.0, 128.0]
    assert int(to.iterations) == 7  # the two non-finite steps were skipped
    assert len(to.variables) == len(ko.variables)
    for a, b in zip(ko.variables, to.variables):
        np.testing.assert_allclose(np.asarray(b.detach()), keras_ref.ops.convert_to_numpy(a), rtol=RTOL, atol=ATOL)


def test_same_policy_as_torch_grad_scaler():
    """Same weights and the same scale trajectory as GradScaler with Keras's settings (power-of-two
    scales: dividing by the scale equals multiplying by its inverse exactly)."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    twin = torch.nn.Linear(4, 3)
    twin.load_state_dict(net.state_dict())
    opt = optimizers.LossScaleOptimizer(optimizers.SGD(0.1), initial_scale=2.0**10, dynamic_growth_steps=3)
    opt.build(net.parameters())
    ref_opt = optimizers.SGD(0.1).build(twin.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)
    x, y = torch.randn(8, 4), torch.randn(8, 3)
    for i in range(10):
        poison = float("inf") if i in (3, 7) else 1.0
        opt.zero_grad()
        opt.scale_loss(torch.nn.functional.mse_loss(net(x), y) * poison).backward()
        opt.step()
        ref_opt.zero_grad()
        scaler.scale(torch.nn.functional.mse_loss(twin(x), y) * poison).backward()
        scaler.step(ref_opt)
        scaler.update()
        assert float(opt.dynamic_scale) == scaler.get_scale(), i
        for a, b in zip(net.parameters(), twin.parameters()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert int(opt.iterations) == int(ref_opt.iterations) == 8


def test_fit_mixed_float16_uses_it_and_matches_keras(keras_ref):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((32, 5)).astype("float32"), rng.standard_normal((32, 1)).astype("float32")

    def build(k):
        k.mixed_precision.set_global_policy("mixed_float16")
        try:
            return k.Sequential([k.Input((5,)), k.layers.Dense(8, activation="relu"), k.layers.Dense(1)])
        finally:
            k.mixed_precision.set_global_policy("float32")

    torch.manual_seed(0)
    q, k = build(kerasish), build(keras_ref)
    k.set_weights(q.get_weights())
    q.compile(optimizer=optimizers.LossScaleOptimizer(optimizers.SGD(0.01), dynamic_growth_steps=3), loss="mse")
    k.compile(optimizer=keras_ref.optimizers.LossScaleOptimizer(keras_ref.optimizers.SGD(0.01),
                                                                dynamic_growth_steps=3), loss="mse")
    hq = q.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    hk = k.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    assert q.dtype_policy.name == "mixed_float16"
    assert q._grad_scaler is None  # the optimizer scales, no GradScaler on top
    np.testing.assert_allclose(hq, hk, rtol=2e-3)  # float16 forward on two implementations
    # the same steps overflow in float16 (the initial 2**15 is too high here) and are skipped in both
    assert int(q.optimizer.iterations) == int(keras_ref.ops.convert_to_numpy(k.optimizer.iterations)) < 8
    assert float(q.optimizer.dynamic_scale) == float(keras_ref.ops.convert_to_numpy(k.optimizer.dynamic_scale))
    assert int(q.optimizer.step_counter) == int(keras_ref.ops.convert_to_numpy(k.optimizer.step_counter))
    for a, b in zip(q.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_compile_wraps_mixed_float16_optimizer_and_fit_matches_keras(keras_ref, optimizer):
    """`compile(optimizer="sgd")` on a mixed_float16 model: both wrap it in a LossScaleOptimizer; fit
    skips the same overflowing steps, halves and regrows the scale the same way, ends on the same
    weights; the inner optimizer counts only the applied steps."""
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((48, 5)).astype("float32"), rng.standard_normal((48, 1)).astype("float32")

    def build(k):
        k.mixed_precision.set_global_policy("mixed_float16")
        try:
            return k.Sequential([k.Input((5,)), k.layers.Dense(8, activation="relu"), k.layers.Dense(1)])
        finally:
            k.mixed_precision.set_global_policy("float32")

    torch.manual_seed(0)
    q, k = build(kerasish), build(keras_ref)
    k.set_weights(q.get_weights())
    q.compile(optimizer=optimizer, loss="mse")
    k.compile(optimizer=optimizer, loss="mse")
    assert type(q.optimizer).__name__ == type(k.optimizer).__name__ == "LossScaleOptimizer"
    assert type(q.optimizer.inner_optimizer).__name__ == type(k.optimizer.inner_optimizer).__name__
    for m in (q, k):  # regrow within the test (the default is 2000 steps)
        m.optimizer.dynamic_growth_steps = 2
    hq = q.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
    hk = k.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
    assert q.__dict__["_grad_scaler"] is None  # scaled once, by the optimizer
    np.testing.assert_allclose(hq, hk, rtol=2e-3)

    def num(v):
        return float(keras_ref.ops.convert_to_numpy(v))

    applied = int(q.optimizer.inner_optimizer.iterations)
    assert 0 < applied == int(num(k.optimizer.iterations)) < 18  # some of the 18 steps were skipped
    assert float(q.optimizer.dynamic_scale) == num(k.optimizer.dynamic_scale)
    assert int(q.optimizer.step_counter) == int(num(k.optimizer.step_counter))
    for a, b in zip(q.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


def _guide_model(k, scale):
    """The Keras 3 torch guide's custom `train_step`, optionally backpropagating `scale_loss(loss)`."""

    class GuideModel(k.Model):
        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            (self.optimizer.scale_loss(loss) if scale else loss).backward()
            weights = list(self.trainable_weights)
            grads = [v.value.grad for v in weights]
            with torch.no_grad():
                self.optimizer.apply(grads, weights)
            return {}

    k.mixed_precision.set_global_policy("mixed_float16")
    try:
        inp = k.Input((5,))
        return GuideModel(inp, k.layers.Dense(1)(k.layers.Dense(4, activation="relu")(inp)))
    finally:
        k.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("scale", [False, True], ids=["plain_backward", "scale_loss"])
def test_custom_train_step_on_compile_wrapped_optimizer_matches_keras(keras_ref, scale):
    """A custom train_step that backpropagates the plain loss hands the LossScaleOptimizer unscaled
    gradients, which it divides by 2**15 all the same: Keras does it, kerasish does it too (same
    weights) and warns once; with `scale_loss` both train normally and nothing is said."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((16, 5)).astype("float32"), rng.standard_normal((16, 1)).astype("float32") * 0.1
    torch.manual_seed(3)
    q, k = _guide_model(kerasish, scale), _guide_model(keras_ref, scale)
    k.set_weights(q.get_weights())
    start = q.get_weights()
    q.compile(optimizer=optimizers.SGD(0.5), loss="mse")
    k.compile(optimizer=keras_ref.optimizers.SGD(0.5), loss="mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    k.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    said = [w for w in caught if "`scale_loss` was not called" in str(w.message)]
    assert len(said) == (0 if scale else 1)
    moved = max(np.abs(a - b).max() for a, b in zip(q.get_weights(), start))
    assert (moved > 1e-3) if scale else (moved < 1e-3)  # 2**15 times too small a step without scaling
    for a, b in zip(q.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)  # float16 forwards: a few float16 ulps


@pytest.mark.parametrize("custom_step", [False, True], ids=["fit_step", "custom_train_step"])
def test_jit_compile_fit_mixed_float16_says_nothing_and_matches_keras(keras_ref, monkeypatch, custom_step):
    """`fit(jit_compile=True)` on a "mixed_float16" model: `scale_loss` runs inside the compiled step,
    and dynamo drops attribute writes on an optimizer made there, so the LossScaleOptimizer used to
    warn that `scale_loss` was never called (the weights were right). Nothing is said now; the weights
    equal Keras's (Keras compiled none: its torch `jit_compile` is a different compiler run)."""
    from kerasish.trainers import trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "_compile_backend", lambda: "eager")  # dynamo is what drops it
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((32, 5)).astype("float32"), rng.standard_normal((32, 1)).astype("float32") * 0.1
    torch.manual_seed(4)
    def build(m):
        if custom_step:  # the Keras torch guide's train_step, backpropagating `scale_loss(loss)`
            return _guide_model(m, True)
        m.mixed_precision.set_global_policy("mixed_float16")
        try:
            return m.Sequential([m.Input((5,)), m.layers.Dense(8, activation="relu"), m.layers.Dense(1)])
        finally:
            m.mixed_precision.set_global_policy("float32")

    q, k = build(kerasish), build(keras_ref)
    k.set_weights(q.get_weights())
    q.compile(optimizer=optimizers.SGD(0.1), loss="mse", jit_compile=True)
    k.compile(optimizer=keras_ref.optimizers.SGD(0.1), loss="mse")
    assert type(q.optimizer).__name__ == "LossScaleOptimizer"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    k.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert [str(w.message) for w in caught if "scale_loss" in str(w.message)] == []
    assert int(q.optimizer.iterations) == int(keras_ref.ops.convert_to_numpy(k.optimizer.iterations))
    for a, b in zip(q.get_weights(), k.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


def test_float16_loss_is_scaled_in_float32():
    opt = optimizers.LossScaleOptimizer(optimizers.SGD())
    loss = torch.tensor(4.0, dtype=torch.float16)
    scaled = opt.scale_loss(loss)  # 4 * 32768 overflows float16
    assert scaled.dtype == torch.float32 and float(scaled) == 4.0 * 2**15


def test_delegates_learning_rate_and_iterations():
    inner = optimizers.Adam(0.01, loss_scale_factor=8.0)
    opt = optimizers.LossScaleOptimizer(inner)
    assert inner.loss_scale_factor is None  # switched off: no double unscaling
    assert float(opt.learning_rate) == pytest.approx(0.01)
    opt.learning_rate = 0.5
    assert float(inner.learning_rate) == 0.5
    w = torch.nn.Parameter(torch.ones(3))
    opt.apply([torch.ones(3) * 2.0**15], [w])
    assert int(opt.iterations) == int(inner.iterations) == 1


def test_config_round_trips_and_keras_reads_it(keras_ref):
    opt = optimizers.LossScaleOptimizer(optimizers.Adam(0.01), initial_scale=128.0, dynamic_growth_steps=10)
    cfg = opt.get_config()
    again = optimizers.LossScaleOptimizer.from_config(cfg)
    assert again.get_config() == cfg and type(again.inner_optimizer) is optimizers.Adam
    ko = keras_ref.optimizers.deserialize(kerasish.saving.serialization_lib.serialize_keras_object(opt))
    assert isinstance(ko, keras_ref.optimizers.LossScaleOptimizer)
    assert ko.initial_scale == 128.0 and ko.dynamic_growth_steps == 10
    back = optimizers.deserialize(keras_ref.optimizers.serialize(ko))
    assert isinstance(back, optimizers.LossScaleOptimizer) and back.get_config()["initial_scale"] == 128.0
    assert kerasish.mixed_precision.LossScaleOptimizer is optimizers.LossScaleOptimizer


def test_bad_arguments():
    with pytest.raises(ValueError, match="dynamic=False"):
        optimizers.LossScaleOptimizer(optimizers.SGD(), dynamic=False)
    with pytest.raises(ValueError, match="does not support `clipnorm`"):
        optimizers.LossScaleOptimizer(optimizers.SGD(), clipnorm=1.0)
    optimizers.LossScaleOptimizer(optimizers.SGD(), clipnorm=None)  # the default, from old configs: accepted
    with pytest.raises(TypeError, match="inner_optimizer"):
        optimizers.LossScaleOptimizer(torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1))
    with pytest.raises(ValueError, match="dynamic_growth_steps"):
        optimizers.LossScaleOptimizer(optimizers.SGD(), dynamic_growth_steps=0)


def test_keras_file_both_ways(keras_ref, tmp_path):
    pytest.importorskip("h5py")
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((16, 4)).astype("float32"), rng.standard_normal((16, 2)).astype("float32")
    q = kerasish.Sequential([kerasish.Input((4,)), kerasish.layers.Dense(2)])
    q.compile(optimizer=optimizers.LossScaleOptimizer(optimizers.Adam(0.01), dynamic_growth_steps=3), loss="mse")
    q.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = str(tmp_path / "q.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kerasish.saving.save_model(q, path)
        k = keras_ref.saving.load_model(path)
    assert isinstance(k.optimizer, keras_ref.optimizers.LossScaleOptimizer)
    assert len(k.optimizer.variables) == len(q.optimizer.variables)
    for a, b in zip(k.optimizer.variables, q.optimizer.variables):
        np.testing.assert_allclose(keras_ref.ops.convert_to_numpy(a), np.asarray(b.detach()), rtol=1e-6, err_msg=a.path)
    assert float(keras_ref.ops.convert_to_numpy(k.optimizer.dynamic_scale)) == 2.0**16  # 4 steps: grew once
    k.fit(x, y, batch_size=4, epochs=1, verbose=0)
    k.save(str(tmp_path / "k.keras"))
    q2 = kerasish.saving.load_model(str(tmp_path / "k.keras"))
    assert isinstance(q2.optimizer, optimizers.LossScaleOptimizer) and int(q2.optimizer.iterations) == 8
    for a, b in zip(k.optimizer.variables, q2.optimizer.variables):
        np.testing.assert_allclose(np.asarray(b.detach()), keras_ref.ops.convert_to_numpy(a), rtol=1e-6)


def test_state_dict_round_trip():
    w = torch.nn.Parameter(torch.ones(3))
    opt = optimizers.LossScaleOptimizer(optimizers.Adam(0.1), dynamic_growth_steps=2).build([w])
    for g in ([1.0] * 3, [float("nan")] * 3, [2.0] * 3):
        opt.apply([torch.tensor(g) * float(opt.dynamic_scale)], [w])
    sd = copy.deepcopy(opt.state_dict())  # torch's load_state_dict keeps the saved tensors (no copy)
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = optimizers.LossScaleOptimizer(optimizers.Adam(0.1), dynamic_growth_steps=2).build([w2])
    opt2.load_state_dict(sd)
    assert float(opt2.dynamic_scale) == float(opt.dynamic_scale) and int(opt2.step_counter) == int(opt.step_counter)
    assert opt2.param_groups is opt2.inner_optimizer.param_groups  # torch schedulers on the wrapper reach the inner lr
    g = torch.tensor([0.5, -1.0, 2.0])
    opt.apply([g * float(opt.dynamic_scale)], [w])
    opt2.apply([g * float(opt2.dynamic_scale)], [w2])
    torch.testing.assert_close(w, w2, rtol=0, atol=0)


def test_apply_inside_torch_compile_runs_eagerly():
    """The skip-or-apply decision reads finiteness on the host; inside a compiled function (fit's
    jit_compile=True) `apply` runs eagerly: same numbers as eager, skipped step included."""
    from torch._dynamo.testing import CompileCounter

    results = []
    for compiled in (False, True):
        w = torch.nn.Parameter(torch.ones(3))
        opt = optimizers.LossScaleOptimizer(optimizers.Adam(0.1), initial_scale=8.0, dynamic_growth_steps=2)
        opt.build([w])

        def step(g, opt=opt, w=w):
            opt.apply([g * 2.0], [w])

        if compiled:
            torch._dynamo.reset()
            step = torch.compile(step, backend=CompileCounter())
        for g in ([1.0, 2.0, 3.0], [float("inf"), 0.0, 0.0], [0.5, -1.0, 2.0], [1.0, 1.0, 1.0]):
            step(torch.tensor(g) * float(opt.dynamic_scale))
        results.append((w.detach().clone(), float(opt.dynamic_scale), int(opt.iterations)))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    # 8, finite (counter 1), inf: halve to 4 (counter 0), finite, finite: double to 8; 3 applied steps
    assert results[0][1:] == results[1][1:] == (8.0, 3)


def test_keras_mixed_float16_checkpoint_resumes_optimizer_state(keras_ref, tmp_path):
    """Keras wraps a "mixed_float16" model's optimizer in a LossScaleOptimizer and saves its 4 own
    variables before the inner optimizer's; compiled back with the plain optimizer (the file's compile
    config), kerasish loads the inner optimizer's state from that layout."""
    pytest.importorskip("h5py")
    rng = np.random.default_rng(5)
    x, y = rng.random((16, 4)).astype("float32"), rng.random((16, 1)).astype("float32")
    keras_ref.mixed_precision.set_global_policy("mixed_float16")
    try:
        k = keras_ref.Sequential([keras_ref.Input((4,)), keras_ref.layers.Dense(3), keras_ref.layers.Dense(1)])
    finally:
        keras_ref.mixed_precision.set_global_policy("float32")
    k.compile(optimizer="adam", loss="mse")
    k.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert isinstance(k.optimizer, keras_ref.optimizers.LossScaleOptimizer)
    k.save(str(tmp_path / "k.keras"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "Skipping variable loading" warning
        q = kerasish.saving.load_model(str(tmp_path / "k.keras"))
    # (Keras may have skipped an overflowing float16 step: compare with its count)
    assert type(q.optimizer) is optimizers.Adam
    assert int(q.optimizer.iterations) == int(keras_ref.ops.convert_to_numpy(k.optimizer.iterations)) > 0
    inner = k.optimizer.inner_optimizer.variables
    assert len(inner) == len(q.optimizer.variables)
    for a, b in zip(inner, q.optimizer.variables):
        np.testing.assert_allclose(np.asarray(b.detach()), keras_ref.ops.convert_to_numpy(a), rtol=1e-6, err_msg=a.path)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"))]


@pytest.mark.parametrize("device", DEVICES)
def test_torch_loop_and_mixed_float16_fit_on_device(device):
    """Scale and counter stay host tensors; gradients on `device` are checked and unscaled there;
    the same numbers as on the CPU."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    results = []
    for dev in ("cpu", device):
        torch.manual_seed(1)
        net = torch.nn.Linear(4, 2).to(dev)
        opt = optimizers.LossScaleOptimizer(optimizers.Adam(0.05), initial_scale=2.0**8, dynamic_growth_steps=2)
        opt.build(net.parameters())
        for i in range(5):
            opt.zero_grad()
            poison = float("nan") if i == 2 else 1.0
            opt.scale_loss(torch.nn.functional.mse_loss(net(x.to(dev)), y.to(dev)) * poison).backward()
            opt.step()
        results.append(([p.detach().cpu() for p in net.parameters()], float(opt.dynamic_scale), int(opt.iterations)))
    for a, b in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # 256: finite, finite (x2 = 512), nan (/2 = 256, skipped), finite, finite (x2 = 512); 4 applied
    assert results[0][1:] == results[1][1:] == (2.0**9, 4)

    kerasish.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = kerasish.Sequential([kerasish.Input((4,)), kerasish.layers.Dense(8, activation="relu"),
                                     kerasish.layers.Dense(2)])
    finally:
        kerasish.mixed_precision.set_global_policy("float32")
    model.to(device)
    model.compile(optimizer=optimizers.LossScaleOptimizer(optimizers.Adam(0.01)), loss="mse")
    history = model.fit(x.numpy(), y.numpy(), batch_size=4, epochs=4, verbose=0).history["loss"]
    assert model.__dict__["_grad_scaler"] is None and model.layers[0].kernel.device.type == device
    assert int(model.optimizer.iterations) > 0 and history[-1] < history[0]


def test_float16_gradients_unscale_in_float32():
    """Float16 (scaled) gradients of float32 weights are unscaled in float32, as Keras's type promotion
    does: 2**-11 / 2**15 = 2**-26 underflows to 0 in float16 (smallest subnormal 2**-24)."""
    w = torch.nn.Parameter(torch.zeros(2))
    opt = optimizers.LossScaleOptimizer(optimizers.SGD(2.0**20)).build([w])
    g = torch.tensor([2.0**-26, 2.0**-25]) * 2.0**15  # scaled gradients, normal float16 numbers
    opt.apply([g.half()], [w])
    torch.testing.assert_close(w.detach(), torch.tensor([-(2.0**-6), -(2.0**-5)]), rtol=0, atol=0)


def test_tf_keras2_spellings():
    opt = optimizers.LossScaleOptimizer(optimizers.SGD(1.0), initial_scale=4.0, dynamic_growth_steps=1)
    w = torch.nn.Parameter(torch.zeros(1))
    loss = (w - 1.0).pow(2).sum()
    scaled = opt.get_scaled_loss(loss)  # tf.keras 2 name of scale_loss
    torch.testing.assert_close(scaled, loss * 4.0)
    (g,) = torch.autograd.grad(scaled, [w])
    with pytest.raises(NotImplementedError, match="scaled"):
        opt.get_unscaled_gradients([g])  # would divide twice with Keras 3's apply_gradients
    opt.apply_gradients([(g, w)])
    torch.testing.assert_close(w.detach(), torch.tensor([2.0]))  # -lr * (-2) after unscaling by 4
    assert opt.dynamic and float(opt.loss_scale) == 8.0 and int(opt.dynamic_counter) == 0
