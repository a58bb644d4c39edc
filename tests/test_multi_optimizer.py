"""MultiOptimizer / OptimizerMap vs real Keras 3 (torch backend): per-variable
optimizers give the same weights and variables, configs both ways, fit and
`.keras` files, a torch loop."""

import copy
import warnings

import numpy as np
import pytest
import torch

import kerasish
import kerasish.optimizers as optimizers


def _model(k):
    return k.Sequential([k.Input((4,)), k.layers.Dense(6, name="encoder"), k.layers.Dense(2, name="head")])


def _both(keras_ref, make):
    """(kerasish, keras) MultiOptimizers from `make(optimizers_module)`."""
    return make(optimizers), make(keras_ref.optimizers)


def _map_make(o):
    return o.MultiOptimizer(o.OptimizerMap(o.SGD(0.1, momentum=0.9), {".*head/.*": o.Adam(0.01)}))


def _callable_make(o):
    adam, sgd = o.Adam(0.02), o.SGD(0.05)
    return o.MultiOptimizer(lambda v: adam if "kernel" in v.path else sgd)


@pytest.mark.parametrize("make", [_map_make, _callable_make], ids=["map", "callable"])
def test_apply_matches_keras(keras_ref, make):
    torch.manual_seed(0)
    q, k = _model(kerasish), _model(keras_ref)
    k.set_weights(q.get_weights())
    qo, ko = _both(keras_ref, make)
    rng = np.random.default_rng(0)
    for step in range(4):
        grads = [rng.standard_normal(w.shape).astype("float32") for w in q.get_weights()]
        qo.apply([torch.tensor(g) for g in grads], q.trainable_variables)
        ko.apply([keras_ref.ops.convert_to_tensor(g) for g in grads], k.trainable_variables)
        for a, b in zip(q.get_weights(), k.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
    assert int(qo.iterations) == int(keras_ref.ops.convert_to_numpy(ko.iterations)) == 4
    def base_names(opts):
        return [o.name.rstrip("_0123456789") for o in opts]

    assert base_names(qo.optimizers) == base_names(ko.optimizers)
    assert [int(o.iterations) for o in qo.optimizers] == [int(keras_ref.ops.convert_to_numpy(o.iterations))
                                                          for o in ko.optimizers]
    assert len(qo.variables) == len(ko.variables)
    for a, b in zip(ko.variables, qo.variables):
        np.testing.assert_allclose(np.asarray(b.detach()), keras_ref.ops.convert_to_numpy(a), rtol=1e-5, atol=1e-6)


def test_optimizer_map_lookup_like_keras(keras_ref):
    for o in (optimizers, keras_ref.optimizers):
        adam, sgd, rms = o.Adam(), o.SGD(), o.RMSprop()
        m = o.OptimizerMap(default_optimizer=rms)
        m["encoder/layer_0/dense"] = adam
        m["encoder/.*"] = sgd
        m["decoder"] = adam
        assert m["decoder"] is adam and m["encoder/layer_0/dense"] is adam
        assert m["encoder/layer_0/attention/query"] is sgd and m["decoder/layer_0/dense"] is rms
        m[".*query"] = adam
        with pytest.raises(ValueError, match="Multiple optimizers"):
            m["encoder/attention/query"]
        with pytest.raises(ValueError, match="already exists"):
            m["decoder"] = sgd
        with pytest.raises(ValueError, match="LossScaleOptimizer"):
            m["x"] = o.LossScaleOptimizer(o.SGD())
        with pytest.raises(TypeError, match="default_optimizer"):
            o.OptimizerMap("adam")


def test_learning_rate_is_not_defined():
    opt = optimizers.MultiOptimizer(optimizers.OptimizerMap(optimizers.SGD()))
    with pytest.raises(AttributeError, match="sub-optimizers"):
        opt.learning_rate  # noqa: B018
    with pytest.raises(AttributeError, match="sub-optimizers"):
        opt.learning_rate = 0.1


def test_loss_scale_factor_reaches_inner_optimizers():
    a, b = optimizers.SGD(1.0), optimizers.SGD(1.0)
    opt = optimizers.MultiOptimizer(optimizers.OptimizerMap(a, {"w1": b}), loss_scale_factor=4.0)
    assert a.loss_scale_factor == b.loss_scale_factor == 4.0
    w0, w1 = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    w0.path, w1.path = "w0", "w1"
    opt.apply([torch.ones(2) * 4, torch.ones(2) * 8], [w0, w1])
    torch.testing.assert_close(w0.detach(), -torch.ones(2))
    torch.testing.assert_close(w1.detach(), -2 * torch.ones(2))
    assert int(a.iterations) == int(b.iterations) == int(opt.iterations) == 1


def test_nested_wrappers_refused():
    opt = optimizers.MultiOptimizer(lambda v: optimizers.LossScaleOptimizer(optimizers.SGD()))
    with pytest.raises(ValueError, match="LossScaleOptimizer cannot be used inside"):
        opt.build([torch.nn.Parameter(torch.ones(1))])
    with pytest.raises(TypeError, match="optimizer_map"):
        optimizers.MultiOptimizer("adam")


def test_config_both_ways(keras_ref):
    qo = _map_make(optimizers)
    cfg = kerasish.saving.serialization_lib.serialize_keras_object(qo)
    ko = keras_ref.optimizers.deserialize(copy.deepcopy(cfg))
    assert isinstance(ko, keras_ref.optimizers.MultiOptimizer)
    assert [type(o).__name__ for o in ko.optimizers] == ["Adam", "SGD"]
    back = optimizers.deserialize(keras_ref.optimizers.serialize(ko))
    assert isinstance(back, optimizers.MultiOptimizer)
    assert [type(o).__name__ for o in back.optimizers] == ["Adam", "SGD"]
    assert back.optimizers[1].momentum == 0.9
    assert optimizers.deserialize(cfg).get_config() == qo.get_config()


def test_fit_and_keras_file_both_ways(keras_ref, tmp_path):
    pytest.importorskip("h5py")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 4)).astype("float32"), rng.standard_normal((16, 2)).astype("float32")
    torch.manual_seed(0)
    q, k = _model(kerasish), _model(keras_ref)
    k.set_weights(q.get_weights())
    q.compile(optimizer=_map_make(optimizers), loss="mse")
    k.compile(optimizer=_map_make(keras_ref.optimizers), loss="mse")
    hq = q.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    hk = k.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(hq, hk, rtol=1e-5)
    path = str(tmp_path / "q.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kerasish.saving.save_model(q, path)
        k2 = keras_ref.saving.load_model(path)
    assert isinstance(k2.optimizer, keras_ref.optimizers.MultiOptimizer)
    for a, b in zip(k.optimizer.variables, k2.optimizer.variables):
        np.testing.assert_allclose(keras_ref.ops.convert_to_numpy(b), keras_ref.ops.convert_to_numpy(a),
                                   rtol=1e-5, atol=1e-6, err_msg=a.path)
    k.save(str(tmp_path / "k.keras"))
    q2 = kerasish.saving.load_model(str(tmp_path / "k.keras"))
    assert isinstance(q2.optimizer, optimizers.MultiOptimizer)
    for a, b in zip(k.optimizer.variables, q2.optimizer.variables):
        np.testing.assert_allclose(np.asarray(b.detach()), keras_ref.ops.convert_to_numpy(a), rtol=1e-5, atol=1e-6)


def test_torch_loop_step_zero_grad_and_state_dict():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    twin = copy.deepcopy(net)
    first = {id(p) for p in net[0].parameters()}

    def make(model):
        ids = {id(p) for p in model[0].parameters()}
        adam, sgd = optimizers.Adam(0.05), optimizers.SGD(0.1)
        return optimizers.MultiOptimizer(lambda v: adam if id(v) in ids else sgd)

    opt = make(net).build(net.parameters())
    assert sum(len(g["params"]) for g in opt.param_groups) == 4
    assert {id(p) for p in opt.optimizers[0].param_groups[0]["params"]} == first
    ref = make(twin).build(twin.parameters())
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    for i in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        grads = torch.autograd.grad(torch.nn.functional.mse_loss(twin(x), y), list(twin.parameters()))
        ref.apply(grads, list(twin.parameters()))
    for a, b in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert all(p.grad is not None for p in net.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    sd = copy.deepcopy(opt.state_dict())
    fresh = make(net).build(net.parameters())
    fresh.load_state_dict(sd)
    assert int(fresh.iterations) == 3 and [int(o.iterations) for o in fresh.optimizers] == [3, 3]
    assert sum(len(g["params"]) for g in fresh.param_groups) == 4


def test_update_compiles_fullgraph_once_and_equals_eager():
    from torch._dynamo.testing import CompileCounter

    def setup():
        torch.manual_seed(0)
        ws = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(4))]
        adam, sgd = optimizers.Adam(0.01), optimizers.SGD(0.1, momentum=0.9)
        first = id(ws[0])
        return ws, optimizers.MultiOptimizer(lambda v: adam if id(v) == first else sgd).build(ws)

    ws, opt = setup()
    ref_ws, ref = setup()
    torch._dynamo.reset()
    counter = CompileCounter()
    step = torch.compile(lambda g: opt.apply(g, ws), backend=counter, fullgraph=True)
    for i in range(4):
        g = [torch.randn(w.shape, generator=torch.Generator().manual_seed(i)) for w in ws]
        step(g)
        ref.apply([x.clone() for x in g], ref_ws)
    assert counter.frame_count == 1 and int(opt.iterations) == 4
    for a, b in zip(ws, ref_ws):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)
