"""The Layer base class beyond the spec's examples: Keras semantics of the
call pipeline, weights, config and dtype policies, and Layer as a PyTorch
citizen (state_dict, functional_call, deepcopy, pickle, compile)."""

import copy
import pickle

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.layers import Layer


class Linear(Layer):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel", regularizer="l2")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias", constraint="non_neg")

    def call(self, x, training=None):
        y = x @ self.kernel + self.bias
        return y * 2 if training else y


class Block(Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = Linear(4)
        self.out = Linear(2)

    def call(self, x):
        self.add_loss(x.abs().mean())
        return self.out(self.dense(x))


def _classes(K):
    """`Linear` and `Block` above, written on `K.layers.Layer`: the same
    user code run by real Keras 3 (the reference) and by kerasish."""
    if K is keras:
        return Linear, Block

    class KLinear(K.layers.Layer):
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel", regularizer="l2")
            self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias", constraint="non_neg")

        def call(self, x, training=None):
            y = x @ self.kernel + self.bias
            return y * 2 if training else y

    class KBlock(K.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = KLinear(4)
            self.out = KLinear(2)

        def call(self, x):
            self.add_loss(x.abs().mean())
            return self.out(self.dense(x))

    KLinear.__name__ = KLinear.__qualname__ = "Linear"  # the same auto names as kerasish's
    KBlock.__name__ = KBlock.__qualname__ = "Block"
    return KLinear, KBlock


def _np(x):
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ------------------------------------------------------------ construction
def test_unknown_kwarg_is_type_error_naming_it():
    with pytest.raises(TypeError, match="foo"):
        Layer(foo=1)
    with pytest.raises(ValueError, match="foo"):  # Keras 3 raises ValueError: both work
        Layer(foo=1)


def test_keras_extra_kwargs_are_accepted_and_kept():
    layer = Linear(3, input_shape=(5,), batch_size=8)
    assert layer._batch_input_shape == (8, 5)
    assert Linear(3, input_dim=7)._batch_input_shape == (None, 7)
    assert Layer(batch_input_shape=(None, 2), autocast=False).autocast is False


def test_names_are_snake_case_and_uniquified_until_clear_session(keras_ref):
    names = {}
    for K in (keras_ref, keras):
        K.utils.clear_session()
        Lin, _ = _classes(K)

        class HTTPLayer2D(K.layers.Layer):
            pass

        seen = [Lin().name for _ in range(3)] + [Lin(name="mine").name, Lin().name, HTTPLayer2D().name]
        K.utils.clear_session()
        names[K] = seen + [Lin().name]
    assert names[keras] == names[keras_ref]
    assert names[keras] == ["linear", "linear_1", "linear_2", "mine", "linear_3", "http_layer2d", "linear"]


# ---------------------------------------------------------------- the call
def test_numpy_and_scalar_inputs_are_converted(keras_ref):
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    ref = _classes(keras_ref)[0](2)
    ref_out = ref(x)
    layer = Linear(2)
    layer.build((None, 4))
    layer.set_weights(ref.get_weights())
    out = layer(x)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 2)
    np.testing.assert_allclose(_np(out), _np(ref_out), rtol=1e-6, atol=1e-6)
    # kerasish extension (DESIGN.md: Python scalars are converted); Keras 3
    # raises "Only input tensors may be passed as positional arguments"
    assert Layer()(3.0).item() == 3.0


def test_float64_inputs_are_cast_to_compute_dtype(keras_ref):
    dtypes = {}
    for K in (keras_ref, keras):

        class Identity(K.layers.Layer):
            def call(self, x):
                return x

        dtypes[K] = [
            _classes(K)[0](2)(np.ones((1, 4))).dtype,  # float64 NumPy
            Identity(autocast=False)(torch.ones(2, dtype=torch.float64)).dtype,
            Identity()(torch.ones(2, dtype=torch.float64)).dtype,
            Identity()(torch.ones(2, dtype=torch.int64)).dtype,  # integer inputs are not cast
        ]
    assert dtypes[keras] == dtypes[keras_ref] == [torch.float32, torch.float64, torch.float32, torch.int64]


def test_build_receives_the_structure_of_shapes(keras_ref):
    seen = {}
    for K in (keras_ref, keras):

        class Multi(K.layers.Layer):
            def build(self, input_shape):
                seen[K] = input_shape

            def call(self, inputs):
                return inputs["a"] + inputs["b"][0]

        Multi()({"a": torch.ones(2, 3), "b": [torch.ones(2, 3)]})
    assert seen[keras] == seen[keras_ref] == {"a": (2, 3), "b": [(2, 3)]}
    assert type(seen[keras]["b"]) is type(seen[keras_ref]["b"])


def test_explicit_build_with_unknown_dims_and_weights_in_init(keras_ref):
    got = {}
    for K in (keras_ref, keras):
        K.utils.clear_session()

        class InInit(K.layers.Layer):
            def __init__(self):
                super().__init__()
                self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

        layer = InInit()
        layer2 = _classes(K)[0](3)
        layer2.build((None, 5))
        got[K] = (len(layer.weights), layer.built, layer2.built, tuple(layer2.kernel.shape), layer2.kernel.path)
    assert got[keras] == got[keras_ref] == (1, False, True, (5, 3), "linear/kernel")


def test_input_spec_errors_name_layer_and_shapes():
    layer = Linear(2, name="lin")
    layer.input_spec = keras.InputSpec(ndim=2, axes={-1: 4})
    with pytest.raises(ValueError, match=r"Input 0 of layer 'lin' is incompatible.*expected ndim=2, found ndim=3"):
        layer(torch.ones(1, 2, 4))
    with pytest.raises(ValueError, match=r"expected axis -1 of input shape to have value 4"):
        layer(torch.ones(1, 5))
    with pytest.raises(TypeError, match="InputSpec"):
        layer.input_spec = "not a spec"


def test_layers_start_in_inference_mode_and_follow_train_eval():
    layer = Linear(2)
    x = torch.ones(1, 4)
    base = layer(x)
    assert not layer.training
    layer.train()
    torch.testing.assert_close(layer(x), 2 * base)
    layer.eval()
    torch.testing.assert_close(layer(x), base)


def test_explicit_training_wins_and_propagates_to_inner_layers(keras_ref):
    x = np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)
    outs = {}
    for K in (keras_ref, keras):
        Lin, _ = _classes(K)

        class Outer(K.layers.Layer):
            def __init__(self):
                super().__init__()
                self.inner = Lin(2)

            def call(self, x):
                return self.inner(x)

        outer = Outer()
        outer(x)
        if K is keras_ref:
            weights = outer.inner.get_weights()
        else:
            outer.inner.set_weights(weights)
        outs[K] = [_np(outer(x)), _np(outer(x, training=True)), _np(outer(x, training=False))]
    for a, b in zip(outs[keras], outs[keras_ref]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(outs[keras][1], 2 * outs[keras][0], rtol=1e-6)
    # torch's mode (kerasish only: a Keras layer has no train()/eval() meaning)
    outer.train()
    np.testing.assert_allclose(_np(outer(x)), outs[keras][1], rtol=1e-6)  # outer's mode reaches inner
    np.testing.assert_allclose(_np(outer(x, training=False)), outs[keras][0], rtol=1e-6)  # explicit wins


def test_mask_is_filled_from_inputs_and_attached_to_outputs(keras_ref):
    x = torch.tensor([[1.0, 0.0, 2.0]])
    for K in (keras_ref, keras):

        class MakeMask(K.layers.Layer):
            def compute_mask(self, inputs, mask=None):
                return inputs != 0

            def call(self, inputs):
                return inputs

        class UseMask(K.layers.Layer):
            def __init__(self):
                super().__init__()
                self.supports_masking = True

            def call(self, inputs, mask=None):
                return inputs * mask

        y = MakeMask()(x)
        torch.testing.assert_close(y._keras_mask, torch.tensor([[True, False, True]]), msg=K.__name__)
        z = UseMask()(y)
        torch.testing.assert_close(z, x, msg=K.__name__)
        torch.testing.assert_close(z._keras_mask, y._keras_mask, msg=K.__name__)  # passed through


def test_activity_regularizer_adds_loss_divided_by_batch(keras_ref):
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.5, -1.0]])
    losses = {}
    for K in (keras_ref, keras):

        class Identity(K.layers.Layer):
            def call(self, inputs):
                return inputs

        layer = Identity(activity_regularizer=K.regularizers.L2(0.5))
        layer(x)
        losses[K] = [_np(v) for v in layer.losses]
    assert len(losses[keras]) == len(losses[keras_ref]) == 1
    np.testing.assert_allclose(losses[keras][0], losses[keras_ref][0], rtol=1e-6)
    np.testing.assert_allclose(losses[keras][0], 0.5 * float((x**2).sum()) / 3, rtol=1e-6)  # / batch size


def test_torch_hooks_fire():
    layer = Linear(2)
    seen = []
    layer.register_forward_pre_hook(lambda m, args: seen.append("pre"))
    layer.register_forward_hook(lambda m, args, out: seen.append(tuple(out.shape)))
    layer(torch.ones(3, 4))
    assert seen == ["pre", (3, 2)]


# ----------------------------------------------------------------- weights
def test_add_weight_keras2_and_keras3_signatures(keras_ref):
    layer = Layer()
    w2 = layer.add_weight("k2", (2, 3), "float32", "ones")  # Keras 2: name, shape, dtype, initializer
    assert w2.name == "k2" and tuple(w2.shape) == (2, 3) and float(w2.detach().sum()) == 6
    got = {}
    for K in (keras_ref, keras):  # Keras 3's signature: real Keras is the reference
        lay = K.layers.Layer()
        w3 = lay.add_weight((4,), "zeros", "float32", name="k3")  # shape, initializer, dtype
        scalar = lay.add_weight(name="s")
        ints = lay.add_weight(name="i", shape=(2,), dtype="int32", trainable=False)
        got[K] = [
            (w3.name, tuple(w3.shape), _np(w3).tolist()),
            (tuple(scalar.shape), str(scalar.dtype).removeprefix("torch.")),
            (str(ints.dtype).removeprefix("torch."), ints.trainable, np.asarray(ints.numpy()).tolist()),
        ]
        with pytest.raises(TypeError, match="bogus"):
            lay.add_weight(name="bad", shape=(1,), bogus=True)
    assert got[keras] == got[keras_ref]
    # Keras 3 on torch fails on a trainable int weight (torch cannot grad an int
    # tensor); kerasish makes it non-trainable, as Keras 2 did
    ints = layer.add_weight(name="i", shape=(2,), dtype="int32")
    assert ints.dtype == torch.int32 and not ints.trainable and int(ints.sum()) == 0
    with pytest.raises(TypeError, match="Unknown keyword"):
        layer.add_weight(name="bad", shape=(1,), bogus=True)


def test_variable_api_survives_to_half_load_deepcopy_pickle(keras_ref):
    block = Block()
    x = torch.ones(2, 3)
    block(x)
    kernel = block.dense.kernel
    assert kernel.path == "block/linear/kernel" and kernel.name == "kernel"
    ref_block = _classes(keras_ref)[1]()
    ref_block(x)
    values = np.random.default_rng(2).normal(size=(3, 3, 4)).astype(np.float32)
    for var in (ref_block.dense.kernel, kernel):  # the same updates in real Keras and kerasish
        var.assign(values[0])
        var.assign_add(values[1])
        var.assign_sub(values[2])
        with pytest.raises(ValueError, match="shape"):
            var.assign(torch.ones(5))
    np.testing.assert_allclose(kernel.numpy(), _np(ref_block.dense.kernel), rtol=0, atol=0)
    np.testing.assert_allclose(kernel.numpy(), values[0] + values[1] - values[2], rtol=1e-6)
    assert (kernel.name, tuple(kernel.shape), kernel.trainable) == (
        ref_block.dense.kernel.name, tuple(ref_block.dense.kernel.shape), ref_block.dense.kernel.trainable)
    assert kernel.value is kernel

    for twin in (copy.deepcopy(block), pickle.loads(pickle.dumps(block))):
        assert isinstance(twin.dense.kernel, keras.Variable) and twin.dense.kernel.path == kernel.path
        torch.testing.assert_close(twin(x), block(x))
    block.half()
    assert isinstance(block.dense.kernel, keras.Variable) and block.dense.kernel.dtype == torch.float16
    assert block(x).dtype == torch.float16  # .half() becomes the layer's dtype policy
    block.float()
    fresh = Block()
    fresh(x)
    fresh.load_state_dict(block.state_dict())
    assert isinstance(fresh.dense.kernel, keras.Variable)
    torch.testing.assert_close(fresh(x), block(x))


def test_non_trainable_buffers_keep_their_class_after_to():
    layer = Layer()
    v = layer.add_weight(name="count", shape=(2,), initializer="zeros", trainable=False)
    layer.to(torch.float64)
    buf = layer._buffers["count"]
    assert isinstance(buf, keras.Variable) and buf.path == v.path and buf.dtype == torch.float64
    buf.assign_add(np.ones(2))
    np.testing.assert_array_equal(buf.numpy(), [1.0, 1.0])


def test_lists_and_dicts_of_layers_and_variables_are_tracked(keras_ref):
    paths = {}
    for K in (keras_ref, keras):
        K.utils.clear_session()
        Lin, _ = _classes(K)

        class Stack(K.layers.Layer):
            def __init__(self):
                super().__init__()
                self.blocks = [Lin(2), Lin(2)]
                self.heads = {"a": Lin(1)}
                self.scales = [K.Variable(np.ones(()), name="s0"), K.Variable(np.ones(()), name="s1")]

            def call(self, x):
                for b in self.blocks:
                    x = b(x)
                return self.heads["a"](x) * self.scales[0] * self.scales[1]

        s = Stack()
        s(torch.ones(1, 2))
        paths[K] = [w.path for w in s.weights]
    assert paths[keras] == paths[keras_ref]  # the same weights in the same order as Keras
    assert len(paths[keras]) == 2 + 2 + 2 + 2
    keys = list(s.state_dict())  # torch's view (kerasish only)
    assert keys[:2] == ["blocks.0.kernel", "blocks.0.bias"]
    assert "heads.a.kernel" in keys and "scales.0" in keys and "scales.1" in keys


def test_freezing_a_layer_freezes_sublayers(keras_ref):
    counts = {}
    for K in (keras_ref, keras):
        block = _classes(K)[1]()
        block(torch.ones(1, 3))
        seen = [(len(block.trainable_weights), len(block.non_trainable_weights))]
        block.trainable = False
        seen.append((len(block.trainable_weights), len(block.non_trainable_weights)))
        if K is keras:
            assert not any(p.requires_grad for p in block.parameters())
        block.trainable = True
        if K is keras:
            assert all(p.requires_grad for p in block.parameters())
        block.dense.trainable = False
        seen.append((len(block.trainable_weights), len(block.non_trainable_weights)))
        counts[K] = seen
    assert counts[keras] == counts[keras_ref] == [(4, 0), (0, 4), (2, 2)]


def test_losses_callables_sublayers_and_regularizer_gradients(keras_ref):
    block = Block()
    x = torch.ones(2, 3)
    block(x)
    block.add_loss(lambda: block.dense.kernel.sum())
    losses = block.losses
    # call loss + callable + 2 L2 kernel regularizers (trainable weights only)
    assert len(losses) == 4
    total = sum(losses)
    total.backward()
    assert block.dense.kernel.grad is not None
    # the values against real Keras's own L2 regularizer and call loss
    ref = _classes(keras_ref)[1]()
    ref(x)
    ref.dense.set_weights(block.dense.get_weights())
    ref.out.set_weights(block.out.get_weights())
    ref(x)
    ref_losses = [_np(v) for v in ref.losses]  # Keras 3 has no callable losses
    assert len(ref_losses) == 3
    np.testing.assert_allclose([_np(v) for v in (losses[0], *losses[2:])], ref_losses, rtol=1e-6)
    np.testing.assert_allclose(_np(losses[-1]), _np(keras_ref.regularizers.L2(0.01)(ref.out.kernel)), rtol=1e-6)
    block(2 * x)
    ref(2 * x)
    assert float(block.losses[0]) == pytest.approx(float(ref.losses[0])) == pytest.approx(2.0)


def test_constraints_applied_by_apply_constraints(keras_ref):
    layer = Linear(2)
    layer(torch.ones(1, 2))
    value = torch.tensor([-1.0, 2.0])
    layer.bias.assign(value)
    layer.apply_constraints()
    np.testing.assert_array_equal(layer.bias.numpy(), _np(keras_ref.constraints.NonNeg()(value)))
    assert layer.bias.constraint is not None


def test_compute_output_shape_without_real_compute(keras_ref):
    # Keras 3's `compute_output_shape` raises NotImplementedError for a layer
    # that defines none; its symbolic call infers the shape: kerasish answers
    # the same shape through compute_output_shape
    ref = _classes(keras_ref)[0](3)
    ref_shape = tuple(ref(keras_ref.KerasTensor((None, 7))).shape)
    layer = Linear(3)
    assert layer.compute_output_shape((None, 7)) == ref_shape == (None, 3)
    assert layer.built and layer.kernel.shape == (7, 3) == tuple(ref.kernel.shape)
    assert Layer().compute_output_shape((2, None, 5)) == (2, None, 5)


# ------------------------------------------------------------------ config
def test_get_config_auto_and_round_trip(keras_ref):
    layer = Linear(5, name="lin", trainable=False)
    config = layer.get_config()
    ref_config = _classes(keras_ref)[0](5, name="lin", trainable=False).get_config()
    assert {k: v for k, v in config.items() if k != "dtype"} == {k: v for k, v in ref_config.items() if k != "dtype"}
    assert config["dtype"]["class_name"] == ref_config["dtype"]["class_name"]
    assert config["dtype"]["config"] == ref_config["dtype"]["config"]
    assert config["units"] == 5 and config["name"] == "lin" and config["trainable"] is False
    assert config["dtype"]["config"]["name"] == "float32"
    clone = Linear.from_config(config)
    assert clone.units == 5 and clone.name == "lin" and not clone.trainable


def test_get_config_not_implemented_for_non_serializable_args():
    class Holder(Layer):
        def __init__(self, thing):
            super().__init__()
            self.thing = thing

    with pytest.raises(NotImplementedError, match="must override `get_config\\(\\)`"):
        Holder(object()).get_config()


def test_register_keras_serializable():
    @keras.saving.register_keras_serializable(package="Tests")
    class Registered(Linear):
        pass

    config = keras.layers.serialize(Registered(2))
    assert config["registered_name"] == "Tests>Registered"
    restored = keras.layers.deserialize(config)
    assert type(restored) is Registered and restored.units == 2
    with pytest.raises(ValueError, match="Unknown layer"):
        keras.layers.deserialize({"class_name": "NotAThing", "config": {}})


# ----------------------------------------------------------- dtype policies
@pytest.mark.parametrize(
    "policy,compute,variable",
    [
        ("float32", torch.float32, torch.float32),
        ("float64", torch.float64, torch.float64),
        ("bfloat16", torch.bfloat16, torch.bfloat16),
        ("float16", torch.float16, torch.float16),
        ("mixed_float16", torch.float16, torch.float32),
        ("mixed_bfloat16", torch.bfloat16, torch.float32),
    ],
)
def test_policies(policy, compute, variable, keras_ref):
    x = torch.randn(2, 4)
    ref = _classes(keras_ref)[0](3, dtype=policy)
    ref_out = ref(x)
    layer = Linear(3, dtype=policy)
    layer.build((None, 4))
    layer.set_weights(ref.get_weights())
    out = layer(x)
    assert out.dtype == ref_out.dtype == compute and layer.kernel.dtype == variable
    assert layer.compute_dtype == ref.compute_dtype == str(compute).split(".")[1]
    assert layer.variable_dtype == layer.dtype == ref.variable_dtype == ref.dtype == str(variable).split(".")[1]
    tol = {torch.float64: 1e-12, torch.float32: 1e-6}.get(compute, 1e-2)
    np.testing.assert_allclose(_np(out), _np(ref_out), rtol=tol, atol=tol)
    out.float().sum().backward()
    assert layer.kernel.grad is not None and layer.kernel.grad.dtype == variable


def test_global_policy(keras_ref):
    got = {}
    for K in (keras_ref, keras):
        Lin = _classes(K)[0]
        K.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            layer = Lin(2)
            seen = [K.mixed_precision.global_policy().name, layer.compute_dtype, layer.variable_dtype]
        finally:
            K.mixed_precision.set_global_policy("float32")
        got[K] = seen + [Lin(2).compute_dtype]
        with pytest.raises(ValueError, match="int8x"):
            K.mixed_precision.Policy("int8x")
    assert got[keras] == got[keras_ref] == ["mixed_bfloat16", "bfloat16", "float32", "float32"]


def test_works_under_torch_autocast():
    layer = Linear(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(torch.randn(2, 4))
    assert out.dtype in (torch.bfloat16, torch.float32)
    assert layer.kernel.dtype == torch.float32


# --------------------------------------------------------- torch citizen
def test_state_dict_keys_are_independent_of_creation_order():
    for _ in range(3):
        Linear()
    a, b = Block(), Block()
    x = torch.randn(2, 3)
    a(x), b(x)
    assert list(a.state_dict()) == list(b.state_dict()) == [
        "dense.kernel", "dense.bias", "out.kernel", "out.bias",
    ]
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x), b(x))


def test_load_state_dict_into_unbuilt_custom_layer_explains_build():
    a = Block()
    a(torch.ones(1, 3))
    with pytest.raises(ValueError, match="build"):
        Block().load_state_dict(a.state_dict())


def test_functional_call_uses_registered_parameters():
    layer = Linear(2)
    x = torch.ones(1, 3)
    layer(x)
    params = {"kernel": torch.zeros(3, 2), "bias": torch.tensor([1.0, 2.0])}
    torch.testing.assert_close(torch.func.functional_call(layer, params, (x,)), torch.tensor([[1.0, 2.0]]))


def test_dynamic_layer_runs_eagerly_under_compile():
    calls = []

    class Eager(Layer):
        def call(self, x):
            calls.append(type(x))
            return x + 1

    layer = Eager(dynamic=True)
    compiled = torch.compile(layer, backend="eager")
    compiled(torch.ones(2))
    compiled(torch.ones(2))
    assert len(calls) == 2  # ran in Python each time: not traced away


def test_compile_fullgraph_zero_graph_breaks():
    block = Block()
    x = torch.randn(2, 3)
    block(x)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(block)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(block, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), block(x))
    assert len(block.losses) == 3  # the add_loss from the compiled call is recorded


def test_compiled_layer_does_not_recompile_on_each_call():
    block = Block()
    x = torch.randn(2, 3)
    block(x)
    torch._dynamo.reset()
    compiled = torch.compile(block, fullgraph=True, backend="eager")
    compiled(x)
    compiled(x)  # second call may specialise once (losses recorded)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(5):
            compiled(x)
    assert len(block.losses) == 3


def test_mixed_policy_layer_compiles_without_graph_breaks():
    layer = Linear(3, dtype="mixed_bfloat16")
    x = torch.randn(2, 4)
    eager = layer(x)
    torch._dynamo.reset()
    assert torch._dynamo.explain(layer)(x).graph_break_count == 0
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    out = compiled(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, eager)


def test_masks_flow_under_compile():
    class MakeMask(Layer):
        def compute_mask(self, inputs, mask=None):
            return inputs != 0

    class UseMask(Layer):
        def __init__(self):
            super().__init__()
            self.supports_masking = True

        def call(self, inputs, mask=None):
            return inputs * mask

    class Both(Layer):
        def __init__(self):
            super().__init__()
            self.make, self.use = MakeMask(), UseMask()

        def call(self, x):
            return self.use(self.make(x))

    model = Both()
    x = torch.tensor([[1.0, 0.0, 2.0]])
    torch._dynamo.reset()
    assert torch._dynamo.explain(model)(x).graph_break_count == 0
    out = torch.compile(model, fullgraph=True, backend="eager")(x)
    torch.testing.assert_close(out, x)
    torch.testing.assert_close(out._keras_mask, torch.tensor([[True, False, True]]))


def test_layers_appended_to_a_list_attribute_later_are_tracked():
    class Tower(Layer):
        def __init__(self, depth=3):
            super().__init__()
            self.blocks = []  # filled later, as Keras code often does
            for _ in range(depth):
                self.blocks.append(Linear(2))
            self.extras = [Linear(2), "not a layer"]

        def call(self, x):
            for block in self.blocks:
                x = block(x)
            return self.extras[0](x)

    tower = Tower()
    x = torch.ones(1, 2)
    tower(x)
    assert isinstance(tower.blocks, list) and len(tower.blocks) == 3
    keys = list(tower.state_dict())
    assert keys[:2] == ["blocks.0.kernel", "blocks.0.bias"] and "extras.0.kernel" in keys
    assert len(tower.weights) == 8 and len(list(tower.parameters())) == 8
    tower.blocks.pop()
    assert len(tower.weights) == 6
    copy_ = copy.deepcopy(tower)
    torch.testing.assert_close(copy_(x), tower(x))
    copy_.blocks.append(Linear(2))
    assert len(copy_.weights) == 6  # the new block is unbuilt: no weights yet
    copy_(x)
    assert len(copy_.weights) == 8 and len(tower.weights) == 6
    tower.blocks = None  # replacing the attribute drops its registration
    assert "blocks.0.kernel" not in tower.state_dict()


def test_each_layer_class_has_its_own_forward_code_for_torch_compile():
    classes = [type(f"Scale{i}", (Layer,), {"call": lambda self, x, i=i: x * (i + 1)}) for i in range(10)]
    codes = {cls.forward.__code__ for cls in classes}
    assert len(codes) == 10  # one compile cache per class, as for hand-written modules
    torch._dynamo.reset()
    x = torch.ones(3)
    with torch._dynamo.config.patch(recompile_limit=2):
        for i, cls in enumerate(classes):  # 10 classes > the recompile limit: no failure
            out = torch.compile(cls(), fullgraph=True, backend="eager")(x)
            torch.testing.assert_close(out, x * (i + 1))


def test_explicit_mask_to_a_call_without_mask_raises_as_in_keras(keras_ref):
    x = torch.ones(2, 3)
    mask = torch.ones(2, dtype=torch.bool)
    with pytest.raises(TypeError, match="mask"):
        _classes(keras_ref)[0](2)(x, mask=mask)  # the reference behaviour
    for m in (mask, None):
        with pytest.raises(TypeError, match="mask"):
            _classes(keras_ref)[0](2)(x, mask=m)
        with pytest.raises(TypeError, match="mask"):
            Linear(2)(x, mask=m)
    # built-in layers and symbolic calls too
    for K in (keras_ref, keras):
        with pytest.raises(TypeError, match="mask"):
            K.layers.Dense(2)(K.Input((3,)), mask=None)
        with pytest.raises(TypeError, match="mask"):
            K.layers.Dense(2)(np.ones((2, 3), "float32"), mask=np.ones((2,), bool))


def test_print_shows_config_and_question_marks_until_built():
    layer = Linear(3, name="lin")
    text = repr(layer)
    assert "name='lin'" in text and "units=3" in text and "input_shape=?" in text
    layer(torch.ones(2, 5))
    text = repr(layer)
    assert "input_shape=(2, 5)" in text and "kernel=(5, 3)" in text and "bias=(3,)" in text


def test_masking_layer_called_on_a_list_passes_the_first_mask_on(keras_ref):
    """Keras zips a layer's flat outputs with its flat input masks: a
    `supports_masking` layer called on `[x, y]` gives its one output `x`'s
    mask (keras.io's TransformerDecoder relies on it for masked metrics)."""
    x = np.ones((2, 4, 3), "float32")
    mask = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)
    for K in (keras_ref, keras):

        class Pair(K.layers.Layer):
            def __init__(self):
                super().__init__()
                self.supports_masking = True

            def call(self, inputs, mask=None):
                return inputs[0] + inputs[1]

        a, b = torch.tensor(x), torch.tensor(x)
        a._keras_mask = torch.tensor(mask)
        out = Pair()([a, b])
        np.testing.assert_array_equal(np.asarray(out._keras_mask), mask)
        a2, b2 = torch.tensor(x), torch.tensor(x)
        b2._keras_mask = torch.tensor(mask)
        assert getattr(Pair()([a2, b2]), "_keras_mask", None) is None  # first mask None: none


def test_argument_masks_filled_for_calls_taking_several_tensors(keras_ref):
    """Keras 3 gives a `call` with more than one tensor argument each tensor's mask as
    `<argument>_mask=` when the signature has it (kerasish left those None); eagerly and inside a
    functional model. An explicit `<argument>_mask=` wins, and a call taking one tensor gets none."""

    def run(keras):
        seen = []

        class Pair(keras.layers.Layer):
            def call(self, a, b, a_mask=None, b_mask=None):
                if keras.backend.is_keras_tensor(a) or str(getattr(a, "device", "")) == "meta":
                    return a + b  # (the functional model's symbolic pass)
                seen.append(tuple(None if m is None else np.asarray(keras.ops.convert_to_numpy(m)).tolist()
                                  for m in (a_mask, b_mask)))
                return a + b

        class One(keras.layers.Layer):
            def call(self, a, a_mask=None):
                seen.append(("one", a_mask is None))
                return a

        ids = np.array([[1, 2, 0]])
        embedded = keras.layers.Embedding(10, 4, mask_zero=True)(ids)
        other = keras.ops.ones((1, 3, 4))
        Pair()(embedded, other)
        Pair()(other, b=embedded)
        Pair()(embedded, other, a_mask=keras.ops.convert_to_tensor([[True, False, False]]))
        One()(embedded)
        i = keras.Input((None,), dtype="int32")
        j = keras.Input((None, 4))
        model = keras.Model([i, j], Pair()(keras.layers.Embedding(10, 4, mask_zero=True)(i), j))
        model([ids, np.ones((1, 3, 4), "float32")])
        return seen

    ours, theirs = run(keras), run(keras_ref)
    assert ours == theirs
    assert ours[0] == ([[True, True, False]], None)
    assert ours[1] == (None, [[True, True, False]])
    assert ours[2] == ([[True, False, False]], None)
    assert ours[3] == ("one", True)
    assert ours[-1] == ([[True, True, False]], None)
