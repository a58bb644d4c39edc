"""The call pipeline's hot-path decision (`Layer._plain`) is derived from the
attributes that matter and invalidated by setting any of them: a change
made after calls already took the hot path is honoured by the next call."""

import pytest
import torch

import kerasish as keras


def _hot_dense():
    layer = keras.layers.Dense(3)
    x = torch.ones(2, 4)
    layer(x)
    layer(x)
    assert _hot(layer)  # calls take the hot path
    return layer, x


def _hot(layer) -> bool:
    """Whether calls take the hot path: `_plain` holds the path's plan (a tuple), not None/False."""
    return isinstance(layer.__dict__["_plain"], tuple)


def test_activity_regularizer_set_after_hot_calls_adds_its_loss():
    layer, x = _hot_dense()
    layer.activity_regularizer = keras.regularizers.L2(0.1)
    assert layer.__dict__["_plain"] is None
    y = layer(x)
    assert len(layer.losses) == 1
    torch.testing.assert_close(layer.losses[0], 0.1 * y.pow(2).sum() / 2)
    assert layer.__dict__["_plain"] is False


def test_input_spec_set_after_hot_calls_is_checked():
    layer, x = _hot_dense()
    layer.input_spec = keras.InputSpec(ndim=3)
    with pytest.raises(ValueError, match="expected ndim=3"):
        layer(x)


def test_mixed_policy_set_after_hot_calls_casts():
    layer, x = _hot_dense()
    layer.dtype_policy = "mixed_bfloat16"
    assert layer(x).dtype == torch.bfloat16


def test_supports_masking_set_after_hot_calls_passes_the_mask():
    layer, x = _hot_dense()
    layer.supports_masking = True
    x = x.clone()
    x._keras_mask = torch.tensor([True, False])
    assert torch.equal(layer(x)._keras_mask, x._keras_mask)


def test_unbuilt_again_rebuilds_on_the_next_call():
    layer, x = _hot_dense()
    layer.built = False
    assert layer.__dict__["_plain"] is None
    layer(torch.ones(2, 4))
    assert layer.built and _hot(layer)


class _Outer(keras.layers.Layer):
    """A hot-path container whose own `call` takes no `training`."""

    def __init__(self, rate):
        super().__init__()
        self.drop = keras.layers.Dropout(rate)

    def call(self, x):
        return self.drop(x)


def test_hot_container_without_training_argument_passes_the_mode_to_sublayers():
    outer = _Outer(0.5)
    x = torch.ones(64, 32)
    outer(x)
    outer(x)
    assert _hot(outer)
    # the explicit mode reaches Dropout through the call stack (Keras rule), on the hot path too
    torch.manual_seed(0)
    y = outer(x, training=True)
    assert (y == 0).any() and torch.allclose(y[y != 0], torch.full_like(y[y != 0], 2.0))
    torch.testing.assert_close(outer(x, training=False), x)
    outer.train()  # then the torch mode, when no explicit value is given
    assert (outer(x) == 0).any()
    outer.eval()
    torch.testing.assert_close(outer(x), x)


def test_hot_leaf_layer_accepts_and_drops_an_explicit_training_argument():
    layer, x = _hot_dense()
    expected = layer(x)
    # Dense.call takes no `training`: the keyword is consumed, as in Keras, not passed on
    torch.testing.assert_close(layer(x, training=True), expected)
    torch.testing.assert_close(layer(x, training=False), expected)
    inner = keras.layers.Dropout(0.5)

    class Wrap(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense, self.drop = layer, inner

        def call(self, x, training=None):
            return self.drop(self.dense(x))

    wrap = Wrap()
    wrap(x)
    torch.manual_seed(0)
    out = wrap(torch.ones(64, 4), training=True)  # the hot leaf inside a training call leaves the stack intact
    assert (out == 0).any()


# -- compiled hot-path calls: every attribute the plan depends on is guarded ---------------------


def _compiled_hot_dense(fullgraph=True):
    torch._dynamo.reset()
    layer, x = _hot_dense()
    compiled = torch.compile(layer, fullgraph=fullgraph, backend="eager")
    torch.testing.assert_close(compiled(x), layer(x))
    assert _hot(layer)
    return layer, compiled, x


def test_compiled_hot_call_follows_a_later_supports_masking():
    layer, compiled, x = _compiled_hot_dense()
    layer.supports_masking = True
    x = x.clone()
    x._keras_mask = torch.tensor([True, False])
    out = compiled(x)
    assert torch.equal(out._keras_mask, x._keras_mask)


def test_compiled_hot_call_follows_a_later_dtype_policy():
    layer, compiled, x = _compiled_hot_dense()
    layer.dtype_policy = "mixed_bfloat16"
    out = compiled(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, layer(x))


def test_compiled_hot_call_follows_a_cast_of_the_layer():
    """`.double()` changes the policy without `__setattr__` (layer_moves): the plan holds the
    compute dtype, so it is derived again and the compiled call computes in float64."""
    layer, compiled, x = _compiled_hot_dense()
    layer.double()
    out = compiled(x.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, x.double() @ layer.kernel.detach() + layer.bias.detach())
    assert _hot(layer) and layer.__dict__["_plain"][0] is torch.float64


def test_compiled_hot_call_follows_a_later_input_spec():
    layer, compiled, x = _compiled_hot_dense(fullgraph=False)  # (a raise inside is a graph break)
    layer.input_spec = keras.InputSpec(ndim=3)
    with pytest.raises(ValueError, match="expected ndim=3"):
        compiled(x)
    layer.input_spec = keras.InputSpec(axes={-1: 4})
    torch.testing.assert_close(compiled(x), layer(x))
    assert _hot(layer)  # a simple spec keeps the hot path; its check is part of the plan
    with pytest.raises(ValueError, match="expected axis -1"):
        compiled(torch.ones(2, 5))


def test_compiled_hot_call_follows_a_later_activity_regularizer():
    layer, compiled, x = _compiled_hot_dense()
    layer.activity_regularizer = keras.regularizers.L2(0.1)
    y = compiled(x)
    assert len(layer.losses) == 1
    torch.testing.assert_close(layer.losses[0], 0.1 * y.pow(2).sum() / 2)


def test_compiled_hot_call_follows_a_later_trainable_flag():
    layer, compiled, x = _compiled_hot_dense()
    assert compiled(x).requires_grad
    layer.trainable = False
    assert not compiled(x).requires_grad
    layer.trainable = True
    assert compiled(x).requires_grad


def test_compiled_hot_call_follows_an_instance_call_override():
    layer, compiled, x = _compiled_hot_dense()
    layer.call = lambda inputs, **kwargs: inputs * 2.0
    torch.testing.assert_close(compiled(x), x * 2.0)


def test_compiled_hot_call_sends_tensor_subclasses_to_the_full_path():
    """The plain-tensor check (`x.__class__ is torch.Tensor`) under compile: a subclass input
    (a Keras Variable) takes the full path, as eager, with the same result."""
    layer, compiled, x = _compiled_hot_dense()
    v = keras.Variable(x, trainable=False)
    torch.testing.assert_close(compiled(v), layer(x))


def test_unpickled_layer_derives_its_plan_again():
    """The plan is derived again after unpickling (a pickle from an older version held
    `_plain=True`, a form the hot path no longer reads)."""
    import pickle

    layer, x = _hot_dense()
    state = layer.__getstate__()
    state["_plain"] = True  # an older pickle's form
    state["_fast_spec"] = None
    old = pickle.loads(pickle.dumps(layer))
    old.__setstate__(state)
    assert old.__dict__["_plain"] is None and "_fast_spec" not in old.__dict__
    torch.testing.assert_close(old(x), layer(x))
    assert _hot(old)


class _Scaled(keras.layers.Layer):
    """A leaf layer whose `call` takes `training` (doubles in training)."""

    def call(self, inputs, training=None):
        return inputs * 2.0 if training else inputs


def test_compiled_hot_call_of_a_layer_taking_training_resolves_it():
    """The plan carries the class's `call takes training` flag: a compiled hot call still
    passes an explicit `training=`, the module mode and the default, as eager does."""
    torch._dynamo.reset()
    layer = _Scaled()
    x = torch.ones(2, 3)
    layer(x)
    assert _hot(layer) and layer.__dict__["_plain"][3] is True
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), x)  # Keras's default: inference
    torch.testing.assert_close(compiled(x, training=True), x * 2.0)
    layer.train()
    torch.testing.assert_close(compiled(x), x * 2.0)
    torch.testing.assert_close(compiled(x, training=False), x)
    assert not keras.layers.Dense(2).__dict__.get("_plain")  # (unbuilt: no plan yet)


def test_compiled_hot_call_of_a_leaf_layer_guards_no_class_attribute():
    """Every guard is checked on every compiled call: the hot call of a leaf layer whose `call`
    takes no `training` guards its plan, not its class's flags (`tools/count_guards.py`)."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    class Affine(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 3), initializer="ones")

        def call(self, inputs):
            return inputs @ self.w

    torch._dynamo.reset()
    layer = Affine()
    x = torch.ones(2, 4)
    layer(x)
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), torch.full((2, 3), 4.0))
    entries = _debug_get_cache_entry_list(type(layer).forward.__code__)
    assert len(entries) == 1
    guards = str(entries[0].guard_manager)
    assert "_plain" in guards  # (the guards are readable: the plan is among them)
    assert "type(L['self'])" not in guards


def test_layer_that_builds_inside_its_call_has_its_plan_after_the_first_call():
    """MultiHeadAttention sets its input_spec while its first call runs (after the call's own
    plan was derived): the plan is derived again when that call ends, so a model compiled after
    one warm-up call does not recompile on its second compiled call (the plan used to appear
    one eager call later, changing under the compiled code)."""
    torch._dynamo.reset()
    mha = keras.layers.MultiHeadAttention(2, 4)
    x = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(0))
    expected = mha(x, x)
    assert mha.__dict__["_plain"]  # derived by the first call
    counts = []

    def backend(gm, example_inputs):
        counts.append(1)
        return gm.forward

    compiled = torch.compile(mha, backend=backend)
    for _ in range(3):
        torch.testing.assert_close(compiled(x, x), expected)
    assert len(counts) == 1


def test_compiled_hot_call_of_a_leaf_layer_guards_no_global():
    """A hot call of a leaf layer whose `call` takes no `training` reads no global name (no
    `isinstance`, `torch`, thread-local call state): each would be a guard checked on every
    compiled call, the thread-local one among the dearest."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    class Affine(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 3), initializer="ones")

        def call(self, inputs):
            return inputs @ self.w

    torch._dynamo.reset()
    layer = Affine()
    x = torch.ones(2, 4)
    layer(x)
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), torch.full((2, 3), 4.0))
    entries = _debug_get_cache_entry_list(type(layer).forward.__code__)
    assert len(entries) == 1
    guards = str(entries[0].guard_manager)
    assert "_plain" in guards
    assert "G[" not in guards, guards


class _SelfRegularized(keras.layers.Layer):
    """A leaf layer adding a loss in its `call` (takes the hot path)."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 2), initializer="ones")

    def call(self, inputs):
        out = inputs @ self.w
        self.add_loss(out.abs().mean())
        return out


@pytest.mark.parametrize("compiled", [False, True])
def test_hot_leaf_layer_adding_losses_replaces_them_on_each_outermost_call(compiled):
    """A hot leaf layer skips the call state unless it ever added a loss: one that adds a loss in
    its `call` still has exactly this call's loss after each call, eager and compiled (the
    compiled call compiles once more after its first loss, then stays)."""
    torch._dynamo.reset()
    layer = _SelfRegularized()
    x = torch.ones(2, 3)
    layer(x)
    assert _hot(layer)
    fn = torch.compile(layer, fullgraph=True, backend="eager") if compiled else layer
    for scale in (1.0, 2.0, 3.0):
        fn(x * scale)
        assert len(layer.losses) == 1
        torch.testing.assert_close(layer.losses[0], torch.tensor(3.0 * scale))


def test_hot_layer_takes_symbolic_and_integer_inputs_by_the_full_path():
    """The hot path recognises a tensor of the compute dtype by its dtype: a KerasTensor (string
    dtype), a NumPy array and an integer tensor still take the full path, as before."""
    import numpy as np

    layer, x = _hot_dense()
    symbolic = layer(keras.Input((4,)))
    assert isinstance(symbolic, keras.KerasTensor) and tuple(symbolic.shape) == (None, 3)
    torch.testing.assert_close(layer(x.numpy()), layer(x))
    torch.testing.assert_close(layer(torch.ones(2, 4, dtype=torch.int64)), layer(x))
    torch.testing.assert_close(layer(np.ones((2, 4), dtype=np.float64)), layer(x))
    assert _hot(layer)
