"""The call pipeline's hot-path decision (`Layer._plain`) is derived from the
attributes that matter and invalidated by setting any of them: a change
made after calls already took the hot path is honoured by the next call."""

import numpy as np
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
    # Dense.call reads `training` only when quantized: the keyword changes nothing here
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
    assert _hot(layer) and layer.__dict__["_plain"][3][3] is True  # (pos, default, unset, uses)
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
    # the one global: `torch.compiler.is_compiling`, which spares the compiled call the ~10 guards of
    # the eager check for weights of another dtype (`weight_substitution`)
    assert _global_roots(guards) <= {"_is_compiling"}, guards


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


# -- compiled hot calls of layers whose `call` takes `training` (Dense, EinsumDense, Dropout) ----


def _guards(module, x, **kwargs) -> str:
    """The guards of `module`'s one compiled entry (torch.compile, fullgraph, eager backend), one
    per line, without the source lines dynamo appends as comments (as `tools/count_guards.py`)."""
    import re

    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    compiled(x, **kwargs)
    compiled(x, **kwargs)
    entries = _debug_get_cache_entry_list(type(module).forward.__code__)
    assert len(entries) == 1
    lines = str(entries[0].guard_manager).splitlines()
    return "\n".join(line.split("#")[0].rstrip() for line in lines
                     if re.search(r"\+- (?!GuardManager|RootGuardManager)", line))


def _global_roots(guards: str) -> set:
    """The global names the guards read (`G['name']`), builtins as `builtins.<name>`."""
    import re

    roots = set()
    for name, builtin in re.findall(r"G\['([^']+)'\](?:\['([^']+)'\])?", guards):
        roots.add(f"builtins.{builtin}" if name.startswith("__builtins_dict__") else name)
    return roots


@pytest.mark.parametrize("make", [
    lambda: keras.layers.Dense(8),
    lambda: keras.layers.EinsumDense("ab,bc->ac", output_shape=8, bias_axes="c"),
], ids=["Dense", "EinsumDense"])
def test_compiled_hot_dense_reads_no_call_state_and_no_global_of_the_pipeline(make):
    """Dense's `call` takes `training` but reads it only when quantized: its compiled hot call
    resolves no mode, so it guards neither the thread's call state nor the module mode nor any
    global name of the call pipeline (layer.py's globals are the frame's own: `G['name']`); what
    remains are the globals its `call` reads in its own modules (the op, as `F.linear` is one of
    nn.Linear's) and the builtin `getattr` of the mask check."""
    layer = make()
    x = torch.randn(4, 16)
    layer(x)
    guards = _guards(layer, x)
    assert "_plain" in guards  # (the guards are readable)
    roots = _global_roots(guards) - {"builtins.getattr", "_is_compiling"}
    assert all(root.startswith("__import_kerasish_dot_layers_dot_core_dot_") for root in roots), roots
    for needle in ("_LOCAL", "['training']", "_training_set", "type(L['self'])._call", "LAMBDA_GUARD: G["):
        assert needle not in guards, needle


def test_compiled_hot_dense_does_not_recompile_on_train_and_eval():
    """A mode switch cannot change a non-quantized Dense's output: its compiled call is not
    specialised on the module mode (one graph through train()/eval()), and gives the eager
    numbers in every mode and with an explicit `training=` (a call with keywords is another
    entry, as for any compiled function)."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    layer = keras.layers.Dense(8, activation="relu")
    x = torch.randn(4, 16)
    expected = layer(x)
    counter = CompileCounter()
    compiled = torch.compile(layer, fullgraph=True, backend=counter)
    for step in (lambda: None, layer.train, layer.eval, layer.train):
        step()
        torch.testing.assert_close(compiled(x), expected)
    assert counter.frame_count == 1
    for step in (layer.eval, layer.train):
        step()
        torch.testing.assert_close(compiled(x, training=True), expected)
        torch.testing.assert_close(compiled(x, training=False), expected)


def test_compiled_hot_dropout_guards_only_the_call_stack():
    """Dropout reads `training`: its compiled hot call reads the thread's call stack (the mode of
    a call in progress) and its module mode, but no other global of the call pipeline and no class
    attribute (`training`'s position, default: they are in the plan)."""
    layer = keras.layers.Dropout(0.5)
    x = torch.randn(4, 16)
    layer(x)
    guards = _guards(layer, x)
    assert "_LOCAL" in guards
    roots = _global_roots(guards) - {"_LOCAL", "builtins.getattr", "_is_compiling"}
    assert all(root.startswith("__import_kerasish_dot_layers_dot_regularization_dot_") for root in roots), roots
    assert "type(L['self'])" not in guards and "G['torch']" not in guards


@pytest.mark.parametrize("layer_name", ["Dropout", "Dense"])
def test_compiled_hot_leaf_follows_every_training_source_like_eager(layer_name):
    """Explicit `training=` > module mode (train()/eval()) > Keras's default, for a compiled hot
    leaf call, switched back and forth: the compiled layer equals its eager twin at every step."""
    import copy

    torch._dynamo.reset()
    layer = keras.layers.Dropout(0.5) if layer_name == "Dropout" else keras.layers.Dense(16)
    x = torch.randn(8, 16)
    layer(x)
    twin = copy.deepcopy(layer)
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    steps = [({}, None), ({"training": True}, None), ({"training": False}, None), ({}, "train"),
             ({"training": False}, None), ({}, "eval"), ({"training": True}, None), ({}, None), ({}, "train")]
    dropped = set()
    for kwargs, mode in steps:
        if mode is not None:
            getattr(layer, mode)()
            getattr(twin, mode)()
        torch.manual_seed(1)
        out = compiled(x, **kwargs)
        torch.manual_seed(1)
        torch.testing.assert_close(out, twin(x, **kwargs), rtol=0, atol=0)
        dropped.add(bool((out == 0).any()))
    if layer_name == "Dropout":
        assert dropped == {True, False}  # (both modes were exercised)


def _mode_model():
    torch.manual_seed(0)
    return keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(12), keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.3), keras.layers.Dense(3),
    ])


def test_compiled_model_switched_between_train_and_eval_equals_eager():
    """A compiled model called with training=True, then False, then through model.train() /
    model.eval(), then an explicit mode against the module mode: outputs and the BatchNorm
    moving statistics equal the eager twin's at every step (no stale specialisation)."""
    import copy

    torch._dynamo.reset()
    model = _mode_model()
    twin = copy.deepcopy(model)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(2))
    steps = [({"training": True}, None), ({"training": False}, None), ({}, "train"), ({}, "eval"),
             ({"training": True}, None), ({}, "train"), ({"training": False}, None), ({}, None)]
    for kwargs, mode in steps:
        if mode is not None:
            getattr(model, mode)()
            getattr(twin, mode)()
        torch.manual_seed(3)
        out = compiled(x, **kwargs)
        torch.manual_seed(3)
        torch.testing.assert_close(out, twin(x, **kwargs), rtol=1e-6, atol=1e-6)
        for a, b in zip(model.layers[1].non_trainable_weights, twin.layers[1].non_trainable_weights):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_fit_jit_compile_equals_eager_fit_with_dropout_and_batchnorm(monkeypatch):
    """`fit(jit_compile=True)` (the steps compiled; eager backend, so that Dropout draws the same
    masks) trains, evaluates and predicts like the eager fit of the same model."""
    import copy

    import numpy as np
    from torch._dynamo.testing import CompileCounter

    from kerasish.trainers import trainer as trainer_mod

    counter = CompileCounter()
    monkeypatch.setattr(trainer_mod, "_compile_backend", lambda: counter)
    torch._dynamo.reset()
    model = _mode_model()
    twin = copy.deepcopy(model)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.normal(size=(32, 3)).astype("float32")
    results = []
    for m, jit in ((model, True), (twin, False)):
        m.compile(optimizer="adam", loss="mse", jit_compile=jit)
        torch.manual_seed(5)
        history = m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # (3 compiled steps)
        results.append((history.history["loss"], m.evaluate(x, y, verbose=0), m.predict(x, verbose=0)))
    assert counter.frame_count >= 1  # (the jit fit compiled its steps)
    (loss_a, eval_a, pred_a), (loss_b, eval_b, pred_b) = results
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-5)
    np.testing.assert_allclose(eval_a, eval_b, rtol=1e-5)
    np.testing.assert_allclose(pred_a, pred_b, rtol=1e-5, atol=1e-6)
    for a, b in zip(model.weights, twin.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_hot_dense_still_refuses_a_positional_training_argument():
    """Dense's hot call resolves no mode, yet `layer(x, True)` is still Keras's ValueError, not
    a silently ignored flag."""
    layer, x = _hot_dense()
    with pytest.raises(ValueError, match="should be passed as a keyword argument"):
        layer(x, True)


def test_hot_dense_passes_training_once_it_needs_it():
    """A float8-quantized Dense reads `training` (its scale histories update in training only), an
    instance's own `call` always gets it: the plan is derived again and the mode reaches `call`."""
    layer, x = _hot_dense()
    assert layer.__dict__["_plain"][3][3] is False  # (pos, default, unset, uses): not read
    layer.quantize("float8")
    layer(x)
    assert _hot(layer) and layer.__dict__["_plain"][3][3] is True
    history = layer.inputs_amax_history.detach().clone()
    layer(x, training=False).sum().backward()  # (the backward pass writes the updates)
    torch.testing.assert_close(layer.inputs_amax_history, history)
    layer(x * 3.0, training=True).sum().backward()
    assert not torch.equal(layer.inputs_amax_history, history)

    other, x = _hot_dense()
    seen = []
    other.call = lambda inputs, training=None: seen.append(training) or inputs
    other(x)
    other(x, training=True)
    other.train()
    other(x)
    assert seen == [False, True, True]


# -- BatchNormalization, Embedding and the merge layers on the hot path (perfcompile4) -----------
# Their calls took the full pipeline: BatchNormalization's `call` takes `mask=`, Embedding
# overrides `compute_mask`, a merge layer takes a list. An unmasked call now takes the hot path
# (`Layer._hot_mask_mode`); a masked one still takes the full path, which passes the mask.


def _bn(shape=(4, 16), **kwargs):
    layer = keras.layers.BatchNormalization(**kwargs)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) * 2.0 + 1.0
    layer(x)
    with torch.no_grad():  # non-trivial statistics and weights
        g = torch.Generator().manual_seed(1)
        for w in layer.weights:
            w.copy_(torch.rand(w.shape, generator=g) + 0.5)
    return layer, x


def _bn_reference(layer, x, axis=-1):
    """Keras's inference formula from the maths: (x - mean) / sqrt(var + eps) * gamma + beta."""
    shape = [1] * x.dim()
    shape[axis] = -1
    mean, var = (w.detach().view(shape) for w in (layer.moving_mean, layer.moving_variance))
    out = (x - mean) / torch.sqrt(var + layer.epsilon)
    if layer.gamma is not None:
        out = out * layer.gamma.detach().view(shape)
    if layer.beta is not None:
        out = out + layer.beta.detach().view(shape)
    return out


@pytest.mark.parametrize("shape, kwargs, axis", [
    ((4, 16), {}, -1), ((2, 3, 4, 5), {}, -1), ((2, 5, 3), {}, -1), ((2, 5, 3, 4), {"axis": 1}, 1),
    ((2, 3, 5, 4), {"axis": 2, "center": False}, 2), ((3, 6), {"scale": False}, -1),
])
def test_batch_norm_takes_the_hot_path_with_keras_inference_numbers(shape, kwargs, axis):
    """An unmasked BatchNormalization call takes the hot path (it took the full pipeline: its
    `call` takes `mask=`), and its inference output follows Keras's formula (NumPy-free reference
    from the maths, eager and compiled)."""
    torch._dynamo.reset()
    layer, x = _bn(shape, **kwargs)
    assert _hot(layer) and layer.__dict__["_plain"][1] == 2
    expected = _bn_reference(layer, x, axis)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), expected, rtol=1e-5, atol=1e-5)


def test_batch_norm_half_inputs_on_the_hot_path_compute_in_float32():
    """A float16 layer (`.half()`) gets float16 inputs on the hot path: the statistics are still
    applied in float32 (`as_float32`, Keras's rule) and the output is float16."""
    layer, x = _bn((4, 16))
    layer.half()
    xh = x.half()
    layer(xh)
    assert _hot(layer)
    out = layer(xh)
    assert out.dtype == torch.float16
    shape = (1, -1)
    mean, var, g, b = (w.detach().float().view(shape) for w in
                       (layer.moving_mean, layer.moving_variance, layer.gamma, layer.beta))
    ref = ((xh.float() - mean) / torch.sqrt(var + layer.epsilon) * g + b).half()
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)


def test_batch_norm_masked_input_takes_the_full_path_eager_and_compiled():
    """A mask (the input's `_keras_mask` or `mask=`) sends the hot layer's call to the full path,
    which passes it: the training statistics are the masked ones (NumPy-free reference: the
    moments of the unmasked rows), compiled as eager."""
    for compiled_call in (False, True):
        torch._dynamo.reset()
        layer = keras.layers.BatchNormalization(momentum=0.0)
        x = torch.randn(6, 4, generator=torch.Generator().manual_seed(3))
        layer(x)
        assert _hot(layer)
        fn = torch.compile(layer, fullgraph=True, backend="eager") if compiled_call else layer
        mask = torch.tensor([True, True, False, True, False, True])
        rows = x[mask]
        xm = x.clone()
        xm._keras_mask = mask
        fn(xm, training=True)
        torch.testing.assert_close(layer.moving_mean, rows.mean(0), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(layer.moving_variance, rows.var(0, unbiased=False), rtol=1e-4, atol=1e-5)
        fn(x, training=True, mask=~mask)
        torch.testing.assert_close(layer.moving_mean, x[~mask].mean(0), rtol=1e-4, atol=1e-5)
        fn(x, training=True)  # unmasked again: the whole batch
        torch.testing.assert_close(layer.moving_mean, x.mean(0), rtol=1e-4, atol=1e-5)


def test_compiled_hot_batch_norm_guards_no_global_of_the_pipeline():
    """BatchNormalization reads `training`: like Dropout, its compiled hot call guards the thread's
    call stack and its module mode, but no other global of the call pipeline (`tree`,
    `torch_autocast_on`, input checks...), no class attribute, and no `nn.Module.__getattr__`
    (the weights are read from the registries). It had 168 guards with torch 2.13 (nn.BatchNorm1d
    55); the full path read all of these."""
    layer, x = _bn((4, 16))
    layer.eval()
    guards = _guards(layer, x)
    assert "_plain" in guards
    roots = _global_roots(guards) - {"_LOCAL", "builtins.getattr", "_is_compiling"}
    assert all(root.startswith("__import_kerasish_dot_layers_dot_normalization_dot_batch_normalization")
               for root in roots), roots
    for needle in ("type(L['self'])._call", "G['tree']", "G['torch']", "Module.__getattr__", "state.scope"):
        assert needle not in guards, needle


@pytest.mark.parametrize("channels_first", [False, True])
def test_compiled_hot_batch_norm_follows_every_training_source_like_eager(channels_first):
    """A compiled BatchNormalization switched between training=True / False, model.train() /
    eval() and the default: outputs and moving statistics equal the eager twin's at every step,
    and a frozen layer (trainable=False) runs inference in every mode, as in Keras."""
    import copy

    torch._dynamo.reset()
    layer, x = _bn((4, 3, 5, 6), axis=1 if channels_first else -1)
    twin = copy.deepcopy(layer)
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    steps = [({}, None), ({"training": True}, None), ({"training": False}, None), ({}, "train"),
             ({"training": False}, None), ({}, "eval"), ({"training": True}, None), ({}, None),
             ({}, "train"), ({}, "freeze"), ({"training": True}, None), ({}, "unfreeze")]
    for kwargs, mode in steps:
        for m in (layer, twin):
            if mode in ("train", "eval"):
                getattr(m, mode)()
            elif mode is not None:
                m.trainable = mode == "unfreeze"
        out = compiled(x * 1.5, **kwargs)
        torch.testing.assert_close(out, twin(x * 1.5, **kwargs), rtol=1e-6, atol=1e-6)
        for a, b in zip(layer.non_trainable_weights, twin.non_trainable_weights):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    fresh = _bn((4, 3, 5, 6), axis=1 if channels_first else -1)[0]
    assert not torch.allclose(layer.moving_mean, fresh.moving_mean)  # (it trained)


def test_hot_batch_norm_in_two_threads_keeps_each_threads_mode():
    """The mode of a call in progress belongs to its thread: a container calling BN with
    training=True in one thread never makes another thread's inference call of the same BN
    train (nor the reverse), on the hot path."""
    import threading

    class Outer(keras.layers.Layer):
        def __init__(self, bn):
            super().__init__()
            self.bn = bn

        def call(self, x, training=None):
            return self.bn(x)

    layer, x = _bn((8, 16))
    layer.momentum = 1.0  # training calls leave the statistics: only the outputs tell the mode
    outer = Outer(layer)
    outer(x)
    inference = layer(x)
    training = layer(x, training=True)
    assert not torch.allclose(inference, training)
    errors = []

    def run(mode):
        try:
            for _ in range(200):
                out = outer(x, training=True) if mode else layer(x)
                torch.testing.assert_close(out, training if mode else inference)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=run, args=(m,)) for m in (True, False, True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


@pytest.mark.parametrize("mask_zero", [False, True])
def test_embedding_takes_the_hot_path_with_its_mask(mask_zero):
    """Embedding (its class overrides `compute_mask`) takes the hot path: the rows of its table,
    and with mask_zero the `ids != 0` mask on the output (computed on the hot path), eager and
    compiled; without mask_zero no mask, even when the ids carry one (as the full path)."""
    torch._dynamo.reset()
    layer = keras.layers.Embedding(10, 4, mask_zero=mask_zero)
    ids = torch.tensor([[1, 0, 3], [0, 9, 2]])
    layer(ids)
    assert _hot(layer) and layer.__dict__["_plain"][1] == (3 if mask_zero else 0)
    table = layer.embeddings.detach()
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    for fn in (layer, compiled):
        out = fn(ids)
        torch.testing.assert_close(out, table[ids])
        mask = getattr(out, "_keras_mask", None)
        if mask_zero:
            assert torch.equal(mask, ids != 0)
        else:
            assert mask is None
    masked = ids.clone()
    masked._keras_mask = torch.ones(2, 3, dtype=torch.bool)
    out = layer(masked)
    if mask_zero:
        assert torch.equal(out._keras_mask, ids != 0)  # Keras: compute_mask ignores the incoming mask
    else:
        assert getattr(out, "_keras_mask", None) is None


def test_embedding_mask_zero_set_after_hot_calls_masks():
    """`mask_zero` decides the hot call's mask: setting it later is honoured by the next call."""
    layer = keras.layers.Embedding(10, 4)
    ids = torch.tensor([[1, 0, 3]])
    layer(ids)
    layer(ids)
    assert _hot(layer) and getattr(layer(ids), "_keras_mask", None) is None
    layer.mask_zero = True
    assert torch.equal(layer(ids)._keras_mask, ids != 0)


def test_compiled_hot_embedding_guards_no_global_of_the_pipeline():
    """Embedding's call takes no `training`: its compiled hot call guards no call state and no
    global of the call pipeline (104 guards with torch 2.13 on the full path; nn.Embedding 36)."""
    layer = keras.layers.Embedding(100, 16)
    ids = torch.randint(0, 100, (4, 8), generator=torch.Generator().manual_seed(0))
    layer(ids)
    guards = _guards(layer, ids)
    assert "_plain" in guards and "_LOCAL" not in guards
    # (torch: the integer-input check and the compiled bounds check)
    roots = _global_roots(guards) - {"builtins.getattr", "builtins.isinstance", "torch", "_is_compiling"}
    assert all(root.startswith("__import_kerasish_dot_layers_dot_core_dot_embedding") for root in roots), roots
    assert "G['tree']" not in guards and "type(L['self'])._call" not in guards


@pytest.mark.parametrize("name", ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"])
def test_merge_layers_take_the_hot_path_and_masked_lists_the_full_one(name):
    """A merge layer called on a list of unmasked tensors of its compute dtype takes the hot path
    (it took the full pipeline for every list); masked inputs, other dtypes and arrays still take
    the full path: the output mask is the OR of the masks (Keras), float64 inputs are cast."""
    torch._dynamo.reset()
    layer = getattr(keras.layers, name)()
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    op = {"Add": torch.add, "Subtract": torch.sub, "Multiply": torch.mul, "Average": lambda u, v: (u + v) / 2,
          "Maximum": torch.maximum, "Minimum": torch.minimum}[name]
    layer([a, b])
    assert _hot(layer) and layer.__dict__["_plain"][1] == 4
    torch.testing.assert_close(layer([a, b]), op(a, b))
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled([a, b]), op(a, b))
    out = layer((a.double(), b))  # (a tuple; float64 cast to the compute dtype by the full path)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, op(a, b))
    am, bm = a.clone(), b.clone()
    am._keras_mask = torch.tensor([True, False, False])
    bm._keras_mask = torch.tensor([False, False, True])
    out = layer([am, bm])
    assert torch.equal(out._keras_mask, torch.tensor([True, False, True]))
    assert getattr(layer([a, b]), "_keras_mask", None) is None


def _numpy_dot(a, b, axes):
    """Keras's batch dot over (non-batch) `axes` from the maths: per sample, `tensordot` of the two axes."""
    out = np.stack([np.tensordot(x, y, axes=(axes[0] - 1, axes[1] - 1)) for x, y in zip(a, b)])
    return out.reshape(len(a), 1) if out.ndim == 1 else out


@pytest.mark.parametrize("name, kwargs, shape", [
    ("Concatenate", {}, (3, 5, 4)), ("Concatenate", {"axis": 1}, (3, 5, 4)), ("Dot", {"axes": 2}, (3, 5, 4)),
    ("Dot", {"axes": 1}, (3, 4)), ("Dot", {"axes": (1, 2)}, (3, 4, 4)),
])
def test_concatenate_and_dot_take_the_hot_path_and_masked_lists_the_full_one(name, kwargs, shape):
    """Concatenate and Dot (their own `compute_mask` gives no mask for unmasked inputs) take the hot
    path on a list of unmasked tensors, like the elementwise merge layers (perfeager5; they took the
    full pipeline on every call); masked inputs still take the full one, which makes Keras's output
    mask (Concatenate: the masks concatenated and reduced with `any`; Dot: none). Numbers against
    NumPy."""
    torch._dynamo.reset()
    layer = getattr(keras.layers, name)(**kwargs)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    if name == "Concatenate":
        expected = np.concatenate([a.numpy(), b.numpy()], axis=kwargs.get("axis", -1))
    else:
        axes = kwargs["axes"] if isinstance(kwargs["axes"], tuple) else (kwargs["axes"],) * 2
        expected = _numpy_dot(a.numpy().astype(np.float64), b.numpy().astype(np.float64), axes)
    layer([a, b])
    assert _hot(layer) and layer.__dict__["_plain"][1] == 4
    out = layer([a, b])
    assert getattr(out, "_keras_mask", None) is None
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    np.testing.assert_allclose(compiled([a, b]).numpy(), expected, rtol=1e-5, atol=1e-6)
    if len(shape) == 3:
        am, bm = a.clone(), b.clone()
        ma = torch.tensor([[True] * 5, [True, True, False, False, False], [False] * 5])
        mb = torch.tensor([[False] * 5, [True, False, False, False, True], [True] * 5])
        am._keras_mask, bm._keras_mask = ma, mb
        out = layer([am, bm])
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
        if name == "Dot":
            assert getattr(out, "_keras_mask", None) is None
        elif kwargs.get("axis", -1) == -1:
            assert torch.equal(out._keras_mask, ma | mb)
        else:  # along the time axis: the masks, broadcast to the inputs, joined along it, then `any`
            # over the (feature) last axis (Keras): the time masks joined
            assert torch.equal(out._keras_mask, torch.cat([ma, mb], dim=1))


def test_merge_subclass_with_its_own_compute_mask_stays_on_the_full_path():
    """A subclass of Concatenate overriding `compute_mask` (here: a mask on every output) is not
    assumed to give None for unmasked inputs: its calls take the full path, which sets its mask."""

    class AlwaysMasked(keras.layers.Concatenate):
        def compute_mask(self, inputs, mask=None):
            return torch.ones(inputs[0].shape[0], dtype=torch.bool)

    layer = AlwaysMasked()
    x = torch.randn(2, 3)
    layer([x, x])
    assert not _hot(layer)
    assert torch.equal(layer([x, x])._keras_mask, torch.ones(2, dtype=torch.bool))


def _torch_rnn_twin(layer):
    """torch's nn.LSTM / nn.GRU holding a Keras LSTM / GRU's weights (Keras's LSTM gates i, f, c, o are
    torch's i, f, g, o; Keras's GRU gates z, r, h (reset_after) are torch's r, z, n)."""
    cell = layer.cell
    units = cell.units
    kernel, recurrent, bias = (w.detach() for w in (cell.kernel, cell.recurrent_kernel, cell.bias))
    if isinstance(layer, keras.layers.LSTM):
        twin = torch.nn.LSTM(kernel.shape[0], units, batch_first=True)
        b_ih, b_hh = bias, torch.zeros_like(bias)
        order = lambda t: t  # noqa: E731
    else:
        twin = torch.nn.GRU(kernel.shape[0], units, batch_first=True)
        b_ih, b_hh = bias[0], bias[1]
        order = lambda t: torch.cat([t[..., units:2 * units], t[..., :units], t[..., 2 * units:]], dim=-1)  # noqa: E731
    with torch.no_grad():
        twin.weight_ih_l0.copy_(order(kernel).T)
        twin.weight_hh_l0.copy_(order(recurrent).T)
        twin.bias_ih_l0.copy_(order(b_ih))
        twin.bias_hh_l0.copy_(order(b_hh))
    return twin


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_rnn_unmasked_call_takes_the_hot_path_and_masked_calls_the_full_one(name):
    """An LSTM / GRU called on an unmasked tensor takes the hot path (perfeager5; it took the full
    pipeline on every call: its `call` takes `mask=`, it overrides `compute_mask`); a mask on the
    input or an explicit `mask=` still takes the full path, which passes it. Numbers against torch's
    nn.LSTM / nn.GRU with the same weights: the whole sequence unmasked, each sample's valid prefix
    masked."""
    torch.manual_seed(0)
    layer = getattr(keras.layers, name)(5)
    x = torch.randn(3, 6, 4)
    layer(x)
    assert _hot(layer) and layer.__dict__["_plain"][1] == 2
    twin = _torch_rnn_twin(layer)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), twin(x)[0][:, -1], rtol=1e-5, atol=1e-6)
        lengths = [6, 3, 1]
        mask = torch.arange(6)[None, :] < torch.tensor(lengths)[:, None]
        expected = torch.cat([twin(x[i:i + 1, :n])[0][:, -1] for i, n in enumerate(lengths)])
        torch.testing.assert_close(layer(x, mask=mask), expected, rtol=1e-5, atol=1e-6)
        xm = x.clone()
        xm._keras_mask = mask
        torch.testing.assert_close(layer(xm), expected, rtol=1e-5, atol=1e-6)
        sequences = getattr(keras.layers, name)(5, return_sequences=True)
        sequences(x)
        sequences.set_weights(layer.get_weights())
        assert getattr(sequences(x), "_keras_mask", None) is None
        assert torch.equal(sequences(xm)._keras_mask, mask)  # the full path's `compute_mask`


def test_rnn_keras2_list_call_still_takes_the_full_path():
    """`lstm([x, h, c])` (Keras 2's initial states in a list) is no tensor: the full path splits it."""
    torch.manual_seed(0)
    layer = keras.layers.LSTM(3)
    x = torch.randn(2, 4, 5)
    layer(x)
    h, c = torch.randn(2, 3), torch.randn(2, 3)
    with torch.no_grad():
        torch.testing.assert_close(layer([x, h, c]), layer(x, initial_state=[h, c]))
        assert not torch.allclose(layer([x, h, c]), layer(x))


def test_compiled_hot_add_guards_no_global_of_the_pipeline():
    """Add on a list: no call state, no pipeline global (116 guards with torch 2.13 on the full
    path)."""
    layer = keras.layers.Add()
    x = torch.randn(4, 16)
    layer([x, x])
    guards = _guards(layer, [x, x])
    assert "_plain" in guards and "_LOCAL" not in guards and "G['tree']" not in guards
    roots = _global_roots(guards) - {"builtins.getattr", "builtins.isinstance", "builtins.list", "builtins.tuple",
                                     "torch", "_is_compiling"}
    assert all(root.startswith("__import_kerasish_dot_layers_dot_merging_dot_") for root in roots), roots


def test_compiled_functional_call_with_float64_weights_computes_in_float64():
    """Under torch.compile the hot path tells weights of another dtype by the anchor weight's dtype
    (a constant of the graph) instead of the eager identity check (~10 guards): a compiled
    `functional_call` with float64 weights computes in float64, as eager does (`weight_substitution`),
    and the plain compiled call keeps its float32 graph."""
    torch._dynamo.reset()
    layer = keras.layers.Dense(3)
    x = torch.randn(2, 4)
    layer(x)
    params = {k: v.detach().double() for k, v in layer.named_parameters()}
    f = torch.compile(lambda p, x: torch.func.functional_call(layer, p, (x,)))
    out = f(params, x.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, x.double() @ params["kernel"] + params["bias"], rtol=1e-12, atol=1e-12)
    assert f({k: v.float() for k, v in params.items()}, x).dtype == torch.float32
    compiled = torch.compile(layer, fullgraph=True)
    torch.testing.assert_close(compiled(x), layer(x))
