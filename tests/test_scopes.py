"""Top-level scopes and graph helpers: keras.name_scope, keras.device,
keras.StatelessScope, keras.SymbolicScope, keras.remat / keras.RematScope,
keras.Operation and keras.Function, against real Keras and torch."""

import numpy as np
import pytest
import torch

import kerasish

# ------------------------------------------------------------------ name_scope


def _paths(lib):
    out = []
    with lib.name_scope("outer"):
        out.append(lib.Variable(1.0, name="a").path)
        with lib.name_scope("inner"):
            out.append(lib.Variable(1.0, name="b").path)
            with lib.name_scope("abs", override_parent="x/y"):
                out.append(lib.Variable(1.0, name="c").path)
            out.append(lib.Variable(1.0, name="d").path)
        caller = object()
        with lib.name_scope("dup", caller=caller):
            with lib.name_scope("dup", caller=caller):
                out.append(lib.Variable(1.0, name="e").path)
            with lib.name_scope("dup", caller=caller, deduplicate=False):
                out.append(lib.Variable(1.0, name="f").path)
        layer = lib.layers.Dense(2, name="dense_in_scope")
        layer.build((None, 3))
        out.append([w.path for w in layer.weights])
    out.append(lib.Variable(1.0, name="g").path)
    return out


def test_name_scope_paths_match_keras(keras_ref):
    assert _paths(kerasish) == _paths(keras_ref)


def _late_built_paths(lib):
    """A sublayer first built in a later call than its parent's first: Keras scopes every call of a
    layer under the path of its first call (`Layer._parent_path`), so a LayerNormalization the
    symbolic call never reached (the keras.io MPNN example's) is "block/layer_normalization/...",
    not "functional/block/..." (kerasish stacked the names of the calls it ran in)."""

    class Block(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = lib.layers.Dense(3)
            self.norm = lib.layers.LayerNormalization()
            self.use_norm = False

        def call(self, x):
            x = self.dense(x)
            if self.use_norm:  # (a branch the symbolic call did not take)
                x = self.norm(x)
            return x

    lib.utils.clear_session()
    inputs = lib.Input((2,))
    block = Block(name="block")
    model = lib.Model(inputs, block(inputs), name="outer_model")
    block.use_norm = True
    with lib.name_scope("scoped"):
        model(np.ones((1, 2), "float32"))
    return [w.path for w in model.weights]


def test_a_sublayer_built_in_a_later_call_has_the_keras_path(keras_ref):
    theirs = _late_built_paths(keras_ref)
    assert "block/layer_normalization/gamma" in theirs
    assert _late_built_paths(kerasish) == theirs


@pytest.mark.parametrize("bad", ["a/b", 3, None])
def test_name_scope_rejects_bad_names(keras_ref, bad):
    with pytest.raises(ValueError, match="cannot contain character `/`") as ref:
        keras_ref.name_scope(bad)
    with pytest.raises(ValueError, match="cannot contain character `/`") as ours:
        kerasish.name_scope(bad)
    assert ours.type is ref.type


# ---------------------------------------------------------------------- device


def test_device_scope_places_weights_and_factories():
    with kerasish.device("cpu") as dev:
        assert dev == torch.device("cpu")
        assert torch.zeros(2).device.type == "cpu"
        v = kerasish.Variable(np.ones(3, "float32"))
        layer = kerasish.layers.Dense(2)
        layer.build((None, 3))
    assert v.device.type == "cpu" and layer.kernel.device.type == "cpu"
    assert kerasish.backend.device_scope.parse_device("GPU:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match="Expected a string like 'gpu:0' or 'cpu'"):
        kerasish.device(3)
    with pytest.raises(ValueError, match="Received: device_name='tpu:0'"):
        kerasish.device("tpu:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU to place weights off the CPU")
def test_device_scope_on_cuda():
    x = np.ones((2, 3), "float32")
    with kerasish.device("gpu:0"):
        layer = kerasish.layers.Dense(2)
        y = layer(x)  # NumPy input converted onto the scope's device
        v = kerasish.Variable(1.0)
        with kerasish.device("cpu"):
            w = kerasish.Variable(1.0)
    assert layer.kernel.device.type == y.device.type == v.device.type == "cuda"
    assert w.device.type == "cpu"


# -------------------------------------------------------------- StatelessScope


def _dense_pair(keras_ref, rng):
    k = keras_ref.layers.Dense(3)
    k.build((None, 4))
    o = kerasish.layers.Dense(3)
    o.build((None, 4))
    weights = [rng.standard_normal(w.shape).astype("float32") for w in o.get_weights()]
    k.set_weights(weights)
    o.set_weights(weights)
    return k, o, weights


def test_stateless_scope_reads_mapping_and_collects_updates(keras_ref, rng):
    k, o, weights = _dense_pair(keras_ref, rng)
    x = rng.standard_normal((5, 4)).astype("float32")
    new_kernel = rng.standard_normal((4, 3)).astype("float32")
    results = []
    for lib, layer in ((keras_ref, k), (kerasish, o)):
        mapping = [(layer.kernel, lib.ops.convert_to_tensor(new_kernel)), (layer.bias, lib.ops.ones((3,)))]
        with lib.StatelessScope(state_mapping=mapping) as scope:
            y = layer(x)
            layer.bias.assign(lib.ops.zeros((3,)) + 2.0)
            layer.kernel.assign_add(lib.ops.ones((4, 3)))
            y2 = layer(x)
        results.append((np.asarray(y.detach().cpu()), np.asarray(y2.detach().cpu()),
                        np.asarray(scope.get_current_value(layer.bias).cpu()),
                        np.asarray(scope.get_current_value(layer.kernel).cpu()),
                        [np.asarray(w) for w in layer.get_weights()]))
    ref, ours = results
    np.testing.assert_allclose(ours[0], x @ new_kernel + 1.0, rtol=1e-5, atol=1e-5)
    for a, b in zip(ours[:4], ref[:4]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for w, w_ref, w0 in zip(ours[4], ref[4], weights):  # nothing applied
        np.testing.assert_array_equal(w, w0)
        np.testing.assert_array_equal(w_ref, w0)


def test_stateless_scope_gradients_reach_the_values_and_moving_stats_are_collected(rng):
    dense = kerasish.layers.Dense(2)
    dense.build((None, 3))
    kernel = torch.ones(3, 2, requires_grad=True)
    x = torch.as_tensor(rng.standard_normal((4, 3)).astype("float32"))
    with kerasish.StatelessScope([(dense.kernel, kernel)]):
        dense(x).sum().backward()
    torch.testing.assert_close(kernel.grad, x.sum(0)[:, None].expand(3, 2))
    assert dense.kernel.grad is None

    bn = kerasish.layers.BatchNormalization()
    bn.build((None, 3))
    before = bn.moving_mean.detach().clone()
    with kerasish.StatelessScope() as scope:
        bn(x, training=True)
    torch.testing.assert_close(bn.moving_mean.detach(), before)  # untouched
    expected = before * 0.99 + x.mean(0) * 0.01
    torch.testing.assert_close(scope.get_current_value(bn.moving_mean), expected)


def test_stateless_scope_collects_losses_and_validates(keras_ref):
    class WithLoss(kerasish.layers.Layer):
        def call(self, x):
            self.add_loss(x.sum())
            return x

    with kerasish.StatelessScope(collect_losses=True) as scope:
        WithLoss()(torch.ones(2, 2))
    assert [float(v) for v in scope.losses] == [4.0]
    v = kerasish.Variable(np.zeros(2, "float32"))
    with pytest.raises(ValueError, match="must be Variable instances"):
        kerasish.StatelessScope([(torch.zeros(2), torch.ones(2))])
    with pytest.raises(ValueError, match="shape that matches"):
        kerasish.StatelessScope([(v, torch.ones(3))])
    assert not kerasish.backend.stateless_scope.in_stateless_scope()
    with kerasish.SymbolicScope():
        WithLoss()(torch.ones(2, 2))  # records nothing while symbolic
        assert kerasish.backend.stateless_scope.in_symbolic_scope()
    assert not kerasish.backend.stateless_scope.in_symbolic_scope()


# ----------------------------------------------------------------------- remat


class _Counting(kerasish.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1], shape[-1]), initializer="glorot_uniform")

    def call(self, x, training=None):
        self.calls += 1
        return torch.tanh(x @ self.w)


def _grads(model, x):
    model.zero_grad()
    model(x, training=True).square().sum().backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("mode", ["full", "list_of_layers", "larger_than", "activations", None])
def test_remat_scope_gradients_equal_and_recompute(mode):
    x = torch.randn(8, 6)
    plain = kerasish.Sequential([kerasish.Input((6,)), _Counting(name="c1"), kerasish.layers.Dropout(0.3),
                                 kerasish.layers.Dense(6, activation="relu", name="d1"), _Counting(name="c2")])
    with kerasish.RematScope(mode=mode, layer_names=["c2"], output_size_threshold=10):
        layers = [_Counting(name="c1"), kerasish.layers.Dropout(0.3),
                  kerasish.layers.Dense(6, activation="relu", name="d1"), _Counting(name="c2")]
    remat = kerasish.Sequential([kerasish.Input((6,)), *layers])
    remat.set_weights(plain.get_weights())
    remat(x)  # "larger_than" infers each layer's output size on the first call
    torch.manual_seed(0)
    expected = _grads(plain, x)
    before = [layer.calls for layer in (layers[0], layers[3])]
    torch.manual_seed(0)
    got = _grads(remat, x)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
    calls = [layer.calls - b for layer, b in zip((layers[0], layers[3]), before)]
    expected_calls = {"full": [2, 2], "list_of_layers": [1, 2], "larger_than": [2, 2], "activations": [1, 1],
                      None: [1, 1]}[mode]
    assert calls == expected_calls


def test_remat_function_recomputes_with_equal_gradients():
    calls = []

    def f(x, scale=1.0):
        calls.append(1)
        return torch.sin(x).exp() * scale

    x1 = torch.randn(5, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    f(x1, scale=2.0).sum().backward()
    kerasish.remat(f)(x2, scale=2.0).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad)
    assert len(calls) == 3  # plain once, remat forward + recompute
    with pytest.raises(TypeError):
        kerasish.remat(3)
    with pytest.raises(ValueError, match="Invalid mode"):
        kerasish.RematScope(mode="some")


# ----------------------------------------------------------- Operation, Function


def _scale_op(lib):
    class Scale(lib.Operation):
        def __init__(self, factor, name=None):
            super().__init__(name=name)
            self.factor = factor

        def call(self, x):
            return x * self.factor + 1.0

        def compute_output_spec(self, x):
            return lib.KerasTensor(x.shape, x.dtype)

    return Scale


def test_operation_subclass_eager_and_symbolic(keras_ref):
    x = np.arange(6, dtype="float32").reshape(2, 3)
    outs = []
    for lib in (keras_ref, kerasish):
        op = _scale_op(lib)(3.0)
        eager = op(lib.ops.convert_to_tensor(x))
        inp = lib.Input((3,))
        sym = op(inp)
        model = lib.Model(inp, lib.layers.Dense(2, kernel_initializer="ones")(sym))
        outs.append((np.asarray(eager.cpu()), tuple(sym.shape), np.asarray(model.predict(x, verbose=0))))
    np.testing.assert_allclose(outs[1][0], outs[0][0])
    assert outs[1][1] == outs[0][1] == (None, 3)
    np.testing.assert_allclose(outs[1][2], outs[0][2], rtol=1e-6)

    class NoSpec(kerasish.Operation):
        def call(self, x):
            return x.sum(-1)

    assert NoSpec()(kerasish.Input((4, 5))).shape == (None, 4)
    with pytest.raises(ValueError, match="cannot contain character"):
        NoSpec(name="a/b")


def test_function_matches_keras(keras_ref):
    x = np.random.default_rng(0).random((2, 3)).astype("float32")
    results = []
    for lib in (keras_ref, kerasish):
        a, b = lib.Input((3,), name="a"), lib.Input((3,), name="b")
        s = lib.ops.sum(lib.ops.square(a) * b, axis=-1)
        c = lib.ops.concatenate([a, b], axis=-1)
        fn = lib.Function(inputs=[a, b], outputs={"s": s, "c": c})
        out = fn([x, 2 * x])
        spec = fn([lib.KerasTensor((None, 3)), lib.KerasTensor((None, 3))])
        results.append((np.asarray(out["s"].cpu()), np.asarray(out["c"].cpu()), spec["s"].shape, spec["c"].shape,
                        len(fn.inputs), len(fn.outputs)))
    ref, ours = results
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-6)
    np.testing.assert_allclose(ours[1], ref[1])
    assert ours[2:] == ref[2:]


def _bn_model(lib):
    return lib.Sequential([
        lib.Input((4,)),
        lib.layers.Dense(5, activity_regularizer=lib.regularizers.L2(0.1)),
        lib.layers.BatchNormalization(),
        lib.layers.Dense(2),
    ])


def test_stateless_call_matches_keras(keras_ref, rng):
    ours, ref = _bn_model(kerasish), _bn_model(keras_ref)
    ours.set_weights([np.asarray(w) for w in ref.get_weights()])
    x = rng.standard_normal((6, 4)).astype("float32")
    trainable = [rng.standard_normal(tuple(v.shape)).astype("float32") for v in ref.trainable_variables]
    non_trainable = [rng.random(tuple(v.shape)).astype("float32") + 0.5 for v in ref.non_trainable_variables]
    before = [np.asarray(w) for w in ours.get_weights()]
    results = []
    for lib, model in ((keras_ref, ref), (kerasish, ours)):
        conv = lib.ops.convert_to_tensor
        out, new_nt, losses = model.stateless_call([conv(v) for v in trainable], [conv(v) for v in non_trainable],
                                                   conv(x), training=True, return_losses=True)
        results.append((np.asarray(out.detach().cpu()), [np.asarray(v.cpu()) for v in new_nt],
                        [float(v) for v in losses]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(results[1][1], results[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[1][2], results[0][2], rtol=1e-4)
    for w, w0 in zip(ours.get_weights(), before):
        np.testing.assert_array_equal(w, w0)
    # gradients reach the given values
    values = [torch.tensor(v, requires_grad=True) for v in trainable]
    out, _ = ours.stateless_call(values, [torch.tensor(v) for v in non_trainable], torch.as_tensor(x))
    out.sum().backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in values)
    with pytest.raises(ValueError, match="must be a list of tensors corresponding 1:1"):
        ours.stateless_call(values[:1], [], torch.as_tensor(x))
    with pytest.raises(ValueError, match="must be built"):
        kerasish.layers.Dense(2).stateless_call([], [], torch.ones(1, 2))


def _op_model(lib):
    """A functional model calling one custom Operation twice (auto-config: no get_config) and a custom
    layer without get_config, as in Keras 3's guides."""

    class Layer1(lib.layers.Layer):
        def call(self, x):
            return x - 0.5

    scale = _scale_op(lib)(2.0)
    inp = lib.Input((3,))
    out = lib.layers.Dense(2)(Layer1()(scale(scale(inp))))
    return lib.Model(inp, out), {"Scale": type(scale), "Layer1": Layer1}


@pytest.mark.parametrize("writer", ["keras", "kerasish"])
def test_model_with_operation_saves_and_loads_both_ways(keras_ref, tmp_path, writer):
    """Keras 3 saves a functional model's custom Operation (its class, auto-config, two calls) and loads
    it back with `custom_objects`; kerasish writes the same entry and reads Keras's, both ways."""
    x = np.arange(6, dtype="float32").reshape(2, 3)
    ours, our_objects = _op_model(kerasish)
    ref, ref_objects = _op_model(keras_ref)
    ours.set_weights(ref.get_weights())
    want = keras_ref.ops.convert_to_numpy(ref(x))
    np.testing.assert_allclose(ours(x).detach().numpy(), want, rtol=1e-6)
    assert [type(op).__name__ for op in ours.operations] == [type(op).__name__ for op in ref.operations]
    entry_ours = ours.get_config()["layers"][1]
    entry_ref = ref.get_config()["layers"][1]
    for key in ("module", "class_name", "registered_name"):
        assert entry_ours[key] == entry_ref[key], key
    strip = lambda c: {k: v for k, v in c.items() if k != "name"}  # noqa: E731 (auto-name counters differ)
    assert strip(entry_ours["config"]) == strip(entry_ref["config"]) == {"factor": 2.0}
    assert len(entry_ours["inbound_nodes"]) == len(entry_ref["inbound_nodes"]) == 2
    path = str(tmp_path / "m.keras")
    (ref if writer == "keras" else ours).save(path)
    for lib, objects in ((keras_ref, ref_objects), (kerasish, our_objects)):
        loaded = lib.saving.load_model(path, custom_objects=objects)
        np.testing.assert_allclose(lib.ops.convert_to_numpy(loaded(x)), want, rtol=1e-6, err_msg=lib.__name__)


def test_operation_auto_config_refuses_what_it_cannot_write():
    class Shift(kerasish.Operation):
        def __init__(self, table):
            super().__init__()
            self.table = table

        def call(self, x):
            return x + self.table

    assert Shift(1.5).get_config() == {"table": 1.5}  # no `name`: this __init__ cannot take it back
    with pytest.raises(NotImplementedError, match="must override `get_config\\(\\)`"):
        Shift(np.ones(3)).get_config()
