"""Keras 3's stateless and JAX-style APIs against real Keras 3 (torch backend):
`Layer.stateless_call` + `Trainer.stateless_compute_loss` +
`Optimizer.stateless_apply` + `Metric.stateless_update_state` in a training
loop, `Model.get_state_tree` / `set_state_tree`, `make_train_function` and
friends, `Variable.aggregation` / `synchronization`, `Layer.symbolic_call` /
`rematerialized_call` / `call_signature_parameters`."""

import copy
import pickle

import numpy as np
import pytest
import torch

import kerasish


def _np(t):
    if isinstance(t, torch.Tensor):
        return torch.Tensor.detach(t).cpu().numpy()
    return np.asarray(t)  # a Keras variable, a NumPy array or a number


def _close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol, equal_nan=True)


def _model(lib, compile_metrics=None):
    """Dense (L2-regularized; no bias: BatchNormalization would cancel its gradient, which Adam then
    amplifies from rounding noise) -> BatchNormalization -> Dense, compiled with Adam and MSE."""
    inp = lib.Input((4,), name="x")
    h = lib.layers.Dense(5, use_bias=False, kernel_regularizer=lib.regularizers.L2(0.01), name="d1")(inp)
    h = lib.layers.BatchNormalization(name="bn")(h)
    out = lib.layers.Dense(2, name="d2")(h)
    model = lib.Model(inp, out, name="net")
    model.compile(optimizer=lib.optimizers.Adam(learning_rate=0.05, name="adam"), loss="mse",
                  metrics=compile_metrics)
    return model


def _pair(keras_ref, rng, compile_metrics=None):
    ref, ours = _model(keras_ref, compile_metrics), _model(kerasish, compile_metrics)
    weights = [rng.standard_normal(w.shape).astype("float32") for w in ref.get_weights()]
    ref.set_weights(weights)
    ours.set_weights(weights)
    return ref, ours


def _data(rng, n=8):
    return rng.standard_normal((n, 4)).astype("float32"), rng.standard_normal((n, 2)).astype("float32")


# ------------------------------------------------------ the JAX-style loop


def _stateless_loop(lib, model, metric, batches):
    """A keras.io-style JAX training loop on torch: gradients of the given values by torch.autograd."""
    opt = model.optimizer
    opt.build(model.trainable_variables)
    tv = [torch.as_tensor(_np(v)) for v in model.trainable_variables]
    ntv = [torch.as_tensor(_np(v)) for v in model.non_trainable_variables]
    mv = [torch.as_tensor(_np(v)) for v in model.metrics_variables]
    ov = [torch.as_tensor(_np(v)) for v in opt.variables]
    metric_vars = [torch.as_tensor(_np(v)) for v in metric.variables]
    record = []
    for x, y in batches:
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        tv_in = [t.clone().requires_grad_() for t in tv]
        y_pred, ntv = model.stateless_call(tv_in, [t.clone() for t in ntv], x, training=True)
        loss, (_, ntv, mv) = model.stateless_compute_loss(tv_in, ntv, [t.clone() for t in mv], x=x, y=y,
                                                          y_pred=y_pred)
        grads = torch.autograd.grad(loss, tv_in)
        # (clones: Keras 3.15 on torch writes into the tensors given to stateless_apply)
        tv, ov = opt.stateless_apply([t.clone() for t in ov], [g.clone() for g in grads],
                                     [t.detach().clone() for t in tv_in])
        metric_vars = metric.stateless_update_state([t.clone() for t in metric_vars], y, y_pred.detach())
        record.append([loss, *tv, *ntv, *ov, *metric_vars, metric.stateless_result(metric_vars)])
    return record


def test_jax_style_training_loop_matches_keras_and_moves_nothing(keras_ref, rng):
    ref, ours = _pair(keras_ref, rng)
    batches = [_data(rng) for _ in range(3)]
    before = [w.copy() for w in ours.get_weights()]
    results = []
    for lib, model in ((keras_ref, ref), (kerasish, ours)):
        metric = lib.metrics.MeanAbsoluteError()
        results.append(_stateless_loop(lib, model, metric, batches))
        # nothing of the model, its optimizer or the metric moved
        for w, w0 in zip(model.get_weights(), before):
            np.testing.assert_array_equal(w, w0)
        assert int(_np(model.optimizer.iterations)) == 0
        assert all(float(_np(v).sum()) == 0.0 for v in metric.variables)
    assert [v.path for v in ours.metrics_variables] == [v.path for v in ref.metrics_variables]
    assert [v.path for v in ours.optimizer.variables] == [v.path for v in ref.optimizer.variables]
    for step_ref, step_ours in zip(*results):
        assert len(step_ref) == len(step_ours)
        for a, b in zip(step_ref, step_ours):
            _close(b, a, rtol=1e-4, atol=1e-5)
    # the loop trained: the last loss is below the first
    assert float(results[1][-1][0]) < float(results[1][0][0])


def test_stateless_gradients_with_torch_func_grad_equal_autograd(rng):
    model = _model(kerasish)
    x, y = (torch.as_tensor(a) for a in _data(rng))
    tv = [v.detach().clone() for v in model.trainable_variables]
    ntv = [v.detach().clone() for v in model.non_trainable_variables]
    mv = [v.detach().clone() for v in model.metrics_variables]

    def loss_of(trainable):
        y_pred, new_ntv = model.stateless_call(trainable, ntv, x, training=True)
        loss, _ = model.stateless_compute_loss(trainable, new_ntv, mv, x=x, y=y, y_pred=y_pred)
        return loss

    functional = torch.func.grad(loss_of)(tv)
    leaves = [t.clone().requires_grad_() for t in tv]
    autograd = torch.autograd.grad(loss_of(leaves), leaves)
    for a, b in zip(functional, autograd):
        torch.testing.assert_close(a, b)
    # the regularization term is differentiated at the given kernel, not the model's
    kernel = model.get_layer("d1").kernel
    assert kernel.grad is None
    zero = [torch.zeros_like(t) for t in tv]
    y_pred, _ = model.stateless_call(zero, ntv, x, training=True)
    loss, _ = model.stateless_compute_loss(zero, ntv, mv, x=x, y=y, y_pred=y_pred)
    torch.testing.assert_close(loss, torch.mean(y ** 2))  # zero weights: no penalty, zero predictions


def test_stateless_compute_loss_updates_and_validates(keras_ref, rng):
    ref, ours = _pair(keras_ref, rng)
    x, y = _data(rng)
    results = []
    for model in (ref, ours):
        tv = [torch.as_tensor(_np(v)) * 0.5 for v in model.trainable_variables]  # the penalty reads these
        ntv = [torch.as_tensor(_np(v)) for v in model.non_trainable_variables]
        mv = [torch.as_tensor(_np(v)) for v in model.metrics_variables]
        y_pred = torch.as_tensor(y) + 0.25
        loss, (tv2, ntv2, mv2) = model.stateless_compute_loss(tv, ntv, mv, x=torch.as_tensor(x),
                                                              y=torch.as_tensor(y), y_pred=y_pred)
        assert tv2 is tv or all(a is b for a, b in zip(tv2, tv))
        results.append([loss, *ntv2, *mv2])
    for a, b in zip(*results):
        _close(b, a)
    with pytest.raises(ValueError, match="must be a list of tensors corresponding 1:1"):
        ours.stateless_compute_loss([], [], [], x=x, y=y, y_pred=y)


# ----------------------------------------------------------------- metrics


@pytest.mark.parametrize("name,kwargs,kind", [
    ("Mean", {}, "values"),
    ("MeanAbsoluteError", {}, "pair"),
    ("CategoricalAccuracy", {}, "pair"),
    ("AUC", {"num_thresholds": 7}, "binary"),
    ("MeanIoU", {"num_classes": 3}, "ids"),
])
def test_metric_stateless_api_matches_keras(keras_ref, rng, name, kwargs, kind):
    y_true = rng.random((6, 3)).astype("float32")
    y_pred = rng.random((6, 3)).astype("float32")
    args = {"values": (y_pred,), "pair": (y_true, y_pred), "binary": ((y_true > 0.5).astype("float32"), y_pred),
            "ids": (rng.integers(0, 3, 6), rng.integers(0, 3, 6))}[kind]
    results = []
    for lib in (keras_ref, kerasish):
        metric = getattr(lib.metrics, name)(**kwargs)
        metric.update_state(*args)
        own = [_np(v).copy() for v in metric.variables]
        given = [torch.as_tensor(v.copy()) for v in own]
        new = metric.stateless_update_state(given, *args)
        result = metric.stateless_result(new)
        reset = metric.stateless_reset_state()
        for v, v0 in zip(metric.variables, own):  # the metric did not move
            np.testing.assert_array_equal(_np(v), v0)
        results.append((new, result, reset, given, own))
        with pytest.raises(ValueError, match="must be a list of tensors corresponding 1:1"):
            metric.stateless_result(new[:-1])
        with pytest.raises(ValueError, match="must be a list of tensors corresponding 1:1"):
            metric.stateless_update_state([], *args)
    (new_r, res_r, reset_r, _, _), (new_o, res_o, reset_o, given_o, own_o) = results
    for a, b in zip(new_r + reset_r, new_o + reset_o):
        _close(b, a)
    _close(res_o, res_r)
    for g, v0 in zip(given_o, own_o):  # kerasish leaves the given tensors alone
        np.testing.assert_array_equal(_np(g), v0)


# -------------------------------------------------------------- optimizers


def _optimizer(lib, which):
    if which == "adam":
        return lib.optimizers.Adam(learning_rate=0.1)
    if which == "sgd_momentum":
        return lib.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    if which == "multi":  # the map's optimizer (for w1) before the default one (w0)
        return lib.optimizers.MultiOptimizer(lib.optimizers.OptimizerMap(
            lib.optimizers.SGD(learning_rate=0.1, momentum=0.5), {"w1": lib.optimizers.Adam(learning_rate=0.1)}))
    return lib.optimizers.LossScaleOptimizer(lib.optimizers.Adam(learning_rate=0.1), initial_scale=8.0,
                                             dynamic_growth_steps=2)


@pytest.mark.parametrize("which", ["adam", "sgd_momentum", "loss_scale", "multi"])
def test_optimizer_stateless_apply_matches_keras(keras_ref, rng, which):
    shapes = [(3, 2), (2,)]
    start = [rng.standard_normal(s).astype("float32") for s in shapes]
    grads = [[rng.standard_normal(s).astype("float32") for s in shapes] for _ in range(5)]
    grads[2][0][1, 1] = np.inf  # a non-finite step: LossScaleOptimizer skips it and halves the scale
    results = []
    for lib in (keras_ref, kerasish):
        variables = [lib.Variable(w, name=f"w{i}") for i, w in enumerate(start)]
        opt = _optimizer(lib, which)
        with pytest.raises(ValueError, match="must be built"):
            opt.stateless_apply([], [], [])
        opt.build(variables)
        own = [_np(v).copy() for v in opt.variables]
        ov = [torch.as_tensor(v.copy()) for v in own]
        tv = [torch.as_tensor(w.copy()) for w in start]
        steps = []
        for g in grads:
            g = [torch.as_tensor(a) for a in g]
            if lib is kerasish:  # without clones: nothing given is written into
                given = ([t.clone() for t in ov], [t.clone() for t in tv])
                tv_new, ov_new = opt.stateless_apply(ov, g, tv)
                for a, b in zip(ov + tv, given[0] + given[1]):
                    torch.testing.assert_close(a, b, equal_nan=True, rtol=0, atol=0)
            else:
                tv_new, ov_new = opt.stateless_apply([t.clone() for t in ov], [a.clone() for a in g],
                                                     [t.clone() for t in tv])
            tv = [torch.as_tensor(_np(t)) for t in tv_new]
            ov = [torch.as_tensor(_np(t)) for t in ov_new]
            steps.append(tv + ov)
        for v, v0 in zip(opt.variables, own):  # own state unchanged
            np.testing.assert_array_equal(_np(v), v0)
        for v, w in zip(variables, start):
            np.testing.assert_array_equal(_np(v), w)
        if which == "loss_scale":
            finite = [torch.ones(2), torch.tensor([1.0, np.nan])]
            assert bool(opt.check_finite(finite[:1])) and not bool(opt.check_finite(finite))
            # a stateless step scales the loss by the scale it was given (Keras's JAX trainer does this)
            with lib.StatelessScope(state_mapping=list(zip(opt.variables, ov))):
                scaled = opt.scale_loss(torch.tensor(2.0))
            steps.append([scaled, opt.scale_loss(torch.tensor(2.0))])
        if lib is kerasish or which not in ("loss_scale", "multi"):  # (Keras's wrappers do not check)
            with pytest.raises(ValueError, match="`optimizer_variables` must be a list of tensors"):
                opt.stateless_apply(ov[:-1], grads[0], tv)
        results.append(steps)
    for step_ref, step_ours in zip(*results):
        for a, b in zip(step_ref, step_ours):
            _close(b, a, rtol=1e-5, atol=1e-6)
    ours = _optimizer(kerasish, which).build([kerasish.Variable(w) for w in start])
    with pytest.raises(ValueError, match="must be a list of tensors corresponding 1:1 to the trainable"):
        ours.stateless_apply([_np(v) for v in ours.variables], grads[0], [start[0]])
    with pytest.raises(ValueError, match=r"shaped like the variables.*\(3, 2\)"):
        ours.stateless_apply([_np(v) for v in ours.variables], grads[0], [start[1], start[1]])
    with kerasish.StatelessScope(), pytest.raises(RuntimeError, match="outside the scope"):
        ours.stateless_apply([_np(v) for v in ours.variables], grads[0], start)


# -------------------------------------------------------------- state tree


def test_state_tree_matches_keras_and_round_trips(keras_ref, rng):
    ref, ours = _pair(keras_ref, rng, compile_metrics=["mae"])
    x, y = _data(rng, 16)
    for model in (ref, ours):
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    tree_ref = ref.get_state_tree("numpy_array")
    tree_ours = ours.get_state_tree("numpy_array")
    flat_ref = kerasish.tree.flatten_with_path(tree_ref)
    flat_ours = kerasish.tree.flatten_with_path(tree_ours)
    assert [p for p, _ in flat_ours] == [p for p, _ in flat_ref]
    assert set(tree_ours["optimizer_variables"]["adam"]) >= {"iteration", "learning_rate", "d1_kernel_momentum"}
    for (_, a), (_, b) in zip(flat_ref, flat_ours):
        assert isinstance(b, np.ndarray)
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    # backend tensors share the variables' storage, as `variable.value` on Keras's torch backend
    live = ours.get_state_tree()
    assert isinstance(live["trainable_variables"]["d1"]["kernel"], torch.Tensor)
    assert live["trainable_variables"]["d1"]["kernel"].data_ptr() == ours.get_layer("d1").kernel.data_ptr()

    # Keras's tree into a fresh kerasish model, and ours into Keras: every variable restored
    fresh = _model(kerasish, compile_metrics=["mae"])
    fresh.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0)  # builds the optimizer and the metrics
    fresh.set_state_tree(tree_ref)
    for (_, a), (_, b) in zip(flat_ref, kerasish.tree.flatten_with_path(fresh.get_state_tree("numpy_array"))):
        np.testing.assert_array_equal(b, a)
    changed = copy.deepcopy(tree_ours)
    changed["trainable_variables"]["d2"]["bias"] = np.array([1.5, -2.0], "float32")
    changed["optimizer_variables"]["adam"]["learning_rate"] = np.array(0.5, "float32")
    ref.set_state_tree(changed)
    ours.set_state_tree(changed)
    for model in (ref, ours):
        np.testing.assert_array_equal(_np(model.get_layer("d2").bias), [1.5, -2.0])
        assert float(_np(model.optimizer.learning_rate)) == 0.5

    for lib_model in (ref, ours):
        with pytest.raises(ValueError, match="Unknown variable name: weights"):
            lib_model.set_state_tree({"weights": {}})
        with pytest.raises(ValueError, match="Invalid `value_format` argument"):
            lib_model.get_state_tree("list")
    with pytest.raises(ValueError, match="no variable of the model's `trainable_variables` has the path 'd9/kernel'"):
        ours.set_state_tree({"trainable_variables": {"d9": {"kernel": np.zeros((4, 5), "float32")}}})
    torch_opt = _model(kerasish)
    torch_opt.compile(optimizer=torch.optim.SGD(torch_opt.parameters(), lr=0.1), loss="mse")
    assert torch_opt.get_state_tree()["optimizer_variables"] == {}
    with pytest.raises(ValueError, match="torch optimizer with no Keras variables"):
        torch_opt.set_state_tree({"optimizer_variables": tree_ref["optimizer_variables"]})
    # an uncompiled model: no optimizer entry to restore, skipped as in Keras
    bare = _model(kerasish)
    bare.__dict__["_optimizer"] = None
    assert bare.get_state_tree()["optimizer_variables"] == {}
    bare.set_state_tree({"trainable_variables": tree_ref["trainable_variables"],
                         "optimizer_variables": tree_ref["optimizer_variables"]})
    np.testing.assert_array_equal(_np(bare.get_layer("d1").kernel), tree_ref["trainable_variables"]["d1"]["kernel"])


# ---------------------------------------------------------- step functions


def test_make_train_function_and_calling_it_as_keras_does(keras_ref, rng):
    ref, ours = _pair(keras_ref, rng, compile_metrics=["mae"])
    x, y = _data(rng)
    logs = []
    for model in (ref, ours):
        assert model.train_function is None and model.test_function is None and model.predict_function is None
        made = model.make_train_function()
        if model is ours:  # Keras 3.15 on torch returns None from the call that makes it
            assert made is model.train_function
        assert model.make_train_function() is model.train_function is not None
        model.make_test_function()
        model.make_predict_function()
        # the way Keras's torch backend calls them: a list of (one) batch
        step_logs = [model.train_function([(torch.as_tensor(x), torch.as_tensor(y))]) for _ in range(2)]
        test_logs = model.test_function([(torch.as_tensor(x), torch.as_tensor(y))])
        pred = model.predict_function([(torch.as_tensor(x),)])
        logs.append((step_logs, test_logs, pred, model.get_weights()))
    for (s_r, t_r, p_r, w_r), (s_o, t_o, p_o, w_o) in zip([logs[0]], [logs[1]]):
        for a, b in zip(s_r + [t_r], s_o + [t_o]):
            assert set(a) == set(b)
            for k in a:
                _close(b[k], a[k], rtol=1e-4, atol=1e-5)
        _close(p_o, p_r, rtol=1e-4, atol=1e-5)
        for a, b in zip(w_r, w_o):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)

    # fit makes the function as Keras does, and runs a function the user put in its place
    for model in (ref, ours):
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        assert model.train_function is not None
        seen = []
        made = model.train_function

        def counting(data, made=made, seen=seen):
            seen.append(len(data))
            return made(data)

        model.train_function = counting
        model.fit(x, y, batch_size=2, epochs=1, verbose=0)
        assert seen == [1, 1, 1, 1]
        model.train_function = made
        model.evaluate(x, y, verbose=0)
        assert model.test_function is not None

    # also an iterator of batches (Keras's TF/JAX backends), NumPy batches moved to tensors
    logs_iter = ours.make_test_function(force=True)(iter([(x, y)]))
    assert set(logs_iter) == {"loss", "mae"}
    with pytest.raises(TypeError, match="takes a list of batches"):
        ours.train_function(torch.as_tensor(x))
    with pytest.raises(StopIteration):
        ours.train_function(iter([]))
    # dropped by compile (as Keras), by deepcopy and by pickling (closures over the model)
    assert copy.deepcopy(ours).train_function is None
    assert pickle.loads(pickle.dumps(ours)).train_function is None
    ours.compile(optimizer="sgd", loss="mse")
    assert ours.train_function is None
    uncompiled = kerasish.Sequential([kerasish.layers.Dense(1)])
    with pytest.raises(ValueError, match="compile"):
        uncompiled.make_train_function()([(x, y[:, :1])])


# ------------------------------------------------------------ small names


def test_variable_aggregation_and_synchronization_match_keras(keras_ref, rng):
    ref, ours = _pair(keras_ref, rng, compile_metrics=["mae"])
    x, y = _data(rng)
    for model in (ref, ours):
        model.fit(x, y, epochs=1, verbose=0)

    def table(model):
        variables = model.variables + model.optimizer.variables + model.metrics_variables
        return [(v.path, v.aggregation, v.synchronization, v.overwrite_with_gradient) for v in variables]

    assert table(ours) == table(ref)
    for lib in (keras_ref, kerasish):
        v = lib.Variable(1.0, aggregation="mean", synchronization="on_write")
        assert (v.aggregation, v.synchronization) == ("mean", "on_write")
        assert (lib.Variable(1.0).aggregation, lib.Variable(1.0).synchronization) == ("none", "auto")
        assert lib.Variable(1.0, aggregation=None, synchronization=None).synchronization == "none"
        with pytest.raises(ValueError, match="Invalid value for argument `aggregation`.*Received: aggregation=max"):
            lib.Variable(1.0, aggregation="max")
        with pytest.raises(ValueError, match="Invalid value for argument `synchronization`"):
            lib.Variable(1.0, synchronization="always")
        with pytest.raises(TypeError, match="`overwrite_with_gradient` must be a boolean"):
            v.overwrite_with_gradient = "yes"
        layer = lib.layers.Dense(1)
        w = layer.add_weight(shape=(2,), aggregation="sum", name="acc")
        assert (w.aggregation, w.synchronization) == ("sum", "auto")
    w = kerasish.layers.Dense(1).add_weight(shape=(), synchronization="on_read", trainable=False, name="s")
    assert w.synchronization == "on_read"


class _Scale(kerasish.layers.Layer):
    """Counts its `call`s: a rematerialized call runs again in the backward pass."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x, training=None):
        self.calls += 1
        return torch.tanh(x * self.w)


def test_layer_symbolic_call_rematerialized_call_and_signature(keras_ref, rng):
    x = torch.as_tensor(rng.standard_normal((3, 4)).astype("float32"))
    for lib in (keras_ref, kerasish):
        dense = lib.layers.Dense(3)
        dense.build((None, 4))
        assert dense.rematerialized_call(dense.call) == dense.call  # no RematScope: the call itself
        out = dense.symbolic_call(lib.KerasTensor((None, 4)))
        assert tuple(out.shape) == (None, 3) and not getattr(out, "_keras_history", None)
        assert dense.supports_jit is True
    for cls in ("Dense", "BatchNormalization", "Dropout", "LSTM"):
        args = (3,) if cls in ("Dense", "LSTM") else (0.5,) if cls == "Dropout" else ()
        assert (getattr(kerasish.layers, cls)(*args).call_signature_parameters
                == getattr(keras_ref.layers, cls)(*args).call_signature_parameters)

    plain = _Scale()
    plain(x)
    with kerasish.RematScope(mode="full"):
        remat = _Scale()
    remat(x)
    fn = remat.rematerialized_call(remat.call)
    assert fn is not remat.call
    xs = [x.clone().requires_grad_() for _ in range(2)]
    y_plain = plain.call(xs[0])
    y_remat = fn(xs[1])
    torch.testing.assert_close(y_remat, y_plain)
    calls = remat.calls
    y_remat.sum().backward()
    y_plain.sum().backward()
    assert remat.calls == calls + 1  # recomputed in the backward pass
    torch.testing.assert_close(xs[1].grad, xs[0].grad)
    torch.testing.assert_close(remat.w.grad, plain.w.grad)

    model = _model(kerasish)
    model.get_layer("d1").supports_jit = False
    with pytest.warns(UserWarning, match="Model doesn't support `jit_compile=True`"):
        model.compile(optimizer="adam", loss="mse", jit_compile=True)
    assert model.jit_compile is False


def test_stateless_compute_loss_multi_output_updates_loss_trackers_as_keras(keras_ref, rng):
    """With two losses, compute_loss updates the per-output loss trackers: new values come back, and
    their variables have Keras's paths (`compile_loss/a_loss/total`), so state trees agree."""
    models = []
    for lib in (keras_ref, kerasish):
        inp = lib.Input((3,), name="x")
        outputs = {"a": lib.layers.Dense(2, name="a")(inp), "b": lib.layers.Dense(1, name="b")(inp)}
        model = lib.Model(inp, outputs)
        model.compile(optimizer="sgd", loss={"a": "mse", "b": "mae"})
        models.append(model)
    ref, ours = models
    weights = [rng.standard_normal(w.shape).astype("float32") for w in ref.get_weights()]
    ref.set_weights(weights)
    ours.set_weights(weights)
    x = rng.standard_normal((4, 3)).astype("float32")
    y = {"a": rng.standard_normal((4, 2)).astype("float32"), "b": rng.standard_normal((4, 1)).astype("float32")}
    results = []
    for model in (ref, ours):
        model.fit(x, y, epochs=1, verbose=0)
        tv = [torch.as_tensor(_np(v)) for v in model.trainable_variables]
        mv = [torch.as_tensor(_np(v)) for v in model.metrics_variables]
        y_pred, ntv = model.stateless_call(tv, [], torch.as_tensor(x))
        loss, (_, _, new_mv) = model.stateless_compute_loss(
            tv, ntv, mv, x=torch.as_tensor(x), y={k: torch.as_tensor(v) for k, v in y.items()}, y_pred=y_pred)
        results.append(([v.path for v in model.metrics_variables], loss, new_mv,
                         [_np(v).copy() for v in model.metrics_variables], mv))
    (paths_r, loss_r, new_r, _, _), (paths_o, loss_o, new_o, own_o, given_o) = results
    assert paths_o == paths_r
    assert "compile_loss/a_loss/total" in paths_o
    _close(loss_o, loss_r, rtol=1e-5)
    for a, b in zip(new_r, new_o):
        _close(b, a, rtol=1e-5)
    assert any(not np.array_equal(_np(n), g) for n, g in zip(new_o, own_o))  # the trackers did update...
    for v, v0 in zip(ours.metrics_variables, own_o):  # ...in the returned values only
        np.testing.assert_array_equal(_np(v), v0)


def test_stateless_call_losses_stay_out_of_the_layer_as_keras(keras_ref, rng):
    """`add_loss` inside `stateless_call` goes to the returned losses only: the model's `losses` do
    not change, so `stateless_compute_loss` adds no activity loss (the caller adds the returned ones),
    as in Keras 3 on torch."""
    models = []
    for lib in (keras_ref, kerasish):
        inp = lib.Input((3,))
        model = lib.Model(inp, lib.layers.Dense(2, activity_regularizer="l2", name="d")(inp))
        model.compile(optimizer="sgd", loss="mse")
        models.append(model)
    weights = [rng.standard_normal(w.shape).astype("float32") for w in models[0].get_weights()]
    x = torch.as_tensor(rng.standard_normal((4, 3)).astype("float32"))
    y = torch.zeros(4, 2)
    results = []
    for model in models:
        model.set_weights(weights)
        tv = [torch.as_tensor(w) * 2 for w in weights]
        mv = [torch.as_tensor(_np(v)) for v in model.metrics_variables]
        y_pred, ntv, losses = model.stateless_call(tv, [], x, return_losses=True)
        assert len(losses) == 1 and len(model.losses) == 0
        loss, _ = model.stateless_compute_loss(tv, ntv, mv, x=x, y=y, y_pred=y_pred)
        results.append((loss, losses[0]))
    _close(results[1][0], results[0][0])
    _close(results[1][1], results[0][1])
    _close(results[1][0], torch.mean(torch.as_tensor(_np(y_pred)) ** 2))
