"""One test harness for every layer (the `run_layer_test` idea from Keras,
plus the torch-side checks kerasish promises).

    run_layer_test(keras.layers.Dense, {"units": 3}, input_shape=(2, 4),
                   expected_output_shape=(2, 3), expected_num_trainable_weights=2)

checks, in order: build on first call and output shape; weight counts;
`compute_output_shape` agrees with the real output (None batch too);
get_config/from_config round trip gives a layer that computes the same
function once weights are copied; state_dict round trip into a separately
built copy; a backward pass reaching every trainable weight; deepcopy and
pickle; `torch.compile(fullgraph=True)` with zero graph breaks; float16 /
bfloat16 policies; and, where real Keras 3 (torch backend) is installed
and has the class, the same layer built in Keras from the same arguments,
given kerasish's weights with `set_weights`, must give the same output
shapes, weight counts and (in inference) the same outputs (`keras_parity`).
The CUDA check is `run_cuda_check`, run by
tests/layers/test_cuda_layers.py under `requires_cuda` (an explicit skip
with a reason on machines without a GPU, never a silent no-op).
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

import kerasish as keras


def _make_input(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype in ("int32", "int64"):
        return torch.randint(0, 10, shape, generator=g, dtype=getattr(torch, dtype))
    if dtype == "bool":
        return torch.randint(0, 2, shape, generator=g).bool()
    return torch.randn(shape, generator=g, dtype=getattr(torch, dtype))


def _flat(x):
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _flat(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _flat(v)]
    return [x]


def _shapes(x):
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    if isinstance(x, (list, tuple)):
        return type(x)(_shapes(v) for v in x)
    if isinstance(x, dict):
        return {k: _shapes(v) for k, v in x.items()}
    return x


def _close(a, b, atol=1e-5, rtol=1e-4):
    for x, y in zip(_flat(a), _flat(b)):
        np.testing.assert_allclose(
            x.detach().float().cpu().numpy(), y.detach().float().cpu().numpy(), atol=atol, rtol=rtol
        )


def run_layer_test(
    layer_cls,
    init_kwargs=None,
    input_shape=None,
    input_dtype="float32",
    input_data=None,
    call_kwargs=None,
    expected_output_shape=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    check_output_shape_inference=True,
    check_config=True,
    check_state_dict=True,
    check_backward=True,
    check_copy=True,
    check_compile=True,
    check_mixed_precision=True,
    training=False,
    atol=1e-5,
    rtol=1e-4,
    keras_parity=True,
):
    """Runs the shared checks on `layer_cls(**init_kwargs)`; returns the layer.

    `keras_parity`: True compares with the Keras 3 class of the same name
    (skipped, for this step only, when Keras is not installed or has no such
    class); False (say why at the call) leaves it out."""
    init_kwargs = init_kwargs or {}
    call_kwargs = dict(call_kwargs or {})
    if input_data is None:
        if isinstance(input_shape, list):
            input_data = [_make_input(s, input_dtype, i) for i, s in enumerate(input_shape)]
        else:
            input_data = _make_input(input_shape, input_dtype)
    if training:
        call_kwargs["training"] = True
    elif getattr(layer_cls, "_call_training_default", None) is True:
        # a call of its own defaults to training=True (augmentation layers, as
        # in Keras): the inference checks below pass training=False explicitly
        call_kwargs.setdefault("training", False)

    # build on first call, output shape, weight counts
    layer = layer_cls(**init_kwargs)
    assert isinstance(layer, torch.nn.Module)
    assert not layer.training, "Keras layers start in inference mode"
    out = layer(input_data, **call_kwargs)
    assert layer.built
    if expected_output_shape is not None:
        assert _shapes(out) == expected_output_shape, (_shapes(out), expected_output_shape)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    for w in layer.weights:
        assert isinstance(w, keras.Variable), f"{w!r} is not a keras.Variable"
        assert w.path.endswith(w.name)

    if keras_parity:
        _check_keras_parity(layer, layer_cls, init_kwargs, input_data, call_kwargs, out, training, atol, rtol)

    # compute_output_shape agrees with the real output (also with None batch)
    if check_output_shape_inference and isinstance(out, torch.Tensor) and not isinstance(input_data, (list, dict)):
        shape = tuple(input_data.shape)
        assert tuple(layer.compute_output_shape(shape)) == tuple(out.shape)
        inferred = layer.compute_output_shape((None, *shape[1:]))
        assert inferred[0] is None and tuple(inferred[1:]) == tuple(out.shape[1:])

    # config round trip: a new layer computing the same function
    if check_config:
        config = layer.get_config()
        for key in init_kwargs:
            assert key in config or key in ("alpha",), f"config lacks {key}"
        clone = layer_cls.from_config(config)
        assert clone.get_config() == config
        clone(input_data, **call_kwargs)
        clone.set_weights(layer.get_weights())
        if not training:
            _close(clone(input_data, **call_kwargs), out, atol, rtol)

    # state_dict round trip into a separately built copy
    if check_state_dict and layer.weights:
        other = layer_cls(**init_kwargs)
        other(input_data, **call_kwargs)
        other.load_state_dict(layer.state_dict())
        for a, b in zip(layer.get_weights(), other.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert list(layer.state_dict()) == list(other.state_dict())

    # backward pass reaches every trainable weight
    if check_backward and layer.trainable_weights:
        inputs = input_data
        if isinstance(inputs, torch.Tensor) and inputs.is_floating_point():
            inputs = inputs.clone().requires_grad_(True)
        layer.zero_grad()
        result = layer(inputs, **call_kwargs)
        sum(t.float().sum() for t in _flat(result) if isinstance(t, torch.Tensor) and t.is_floating_point()).backward()
        for w in layer.trainable_weights:
            assert w.grad is not None, f"no gradient reached {w.path}"

    # deepcopy and pickle keep the weights, their class and the outputs
    if check_copy:
        for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
            for w, v in zip(layer.weights, twin.weights):
                assert type(w) is type(v) and w.path == v.path
            if not training:
                _close(twin(input_data, **call_kwargs), layer(input_data, **call_kwargs), atol, rtol)

    # torch.compile(fullgraph=True): zero graph breaks, same numbers
    if check_compile:
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(layer)(input_data, **call_kwargs)
        # a layer that returns its input unchanged records no graph at all
        # (explain then reports -1 breaks); fullgraph compile below still runs it
        if explanation.graph_count > 0:
            assert explanation.graph_break_count == 0, explanation.break_reasons
        if not training:
            compiled = torch.compile(layer, fullgraph=True, backend="eager")
            _close(compiled(input_data, **call_kwargs), layer(input_data, **call_kwargs), atol, rtol)
            compiled(input_data, **call_kwargs)
            with torch._dynamo.config.patch(error_on_recompile=True):  # no recompiling per call
                for _ in range(3):
                    compiled(input_data, **call_kwargs)

    # float16 / bfloat16 policies: weights in the variable dtype, outputs in the compute dtype
    if check_mixed_precision and input_dtype == "float32":
        for policy in ("mixed_bfloat16", "bfloat16"):
            kwargs = dict(init_kwargs, dtype=policy)
            half = layer_cls(**kwargs)
            result = half(input_data, **call_kwargs)
            want = torch.bfloat16
            for t in _flat(result):
                if isinstance(t, torch.Tensor) and t.is_floating_point():
                    assert t.dtype == want, (policy, t.dtype)
            for w in half.weights:
                if w.is_floating_point():
                    assert w.dtype == (torch.float32 if policy.startswith("mixed") else torch.bfloat16)

    return layer


def _real_keras():
    try:
        import keras as real
    except ImportError:
        return None
    return real if real.backend.backend() == "torch" else None


def _to_keras_arg(real, value):
    """A kerasish object in the constructor arguments (a wrapped layer, an
    initializer...) becomes the Keras object of the same config."""
    if isinstance(value, (list, tuple)):
        return type(value)(_to_keras_arg(real, v) for v in value)
    if isinstance(value, keras.layers.Layer):
        return real.layers.deserialize(keras.layers.serialize(value))
    if type(value).__module__.startswith("kerasish."):
        return real.saving.deserialize_keras_object(keras.saving.serialize_keras_object(value))
    return value


def _check_keras_parity(layer, layer_cls, init_kwargs, input_data, call_kwargs, out, training, atol, rtol):
    real = _real_keras()
    ref_cls = getattr(real.layers, layer_cls.__name__, None) if real is not None else None
    if ref_cls is None:
        return  # no oracle here: the other checks still run
    try:
        ref = ref_cls(**{k: _to_keras_arg(real, v) for k, v in init_kwargs.items()})
    except ImportError:
        return  # Keras needs TensorFlow for this layer (its lookup layers): no oracle here
    # explicit `training` for both (augmentation layers default to True)
    call_kwargs = {"training": bool(training), **call_kwargs}
    ref_out = ref(input_data, **call_kwargs)
    assert _shapes(ref_out) == _shapes(out), ("Keras output shapes", _shapes(ref_out), _shapes(out))
    assert len(ref.trainable_weights) == len(layer.trainable_weights), "trainable weight count differs from Keras"
    assert len(ref.non_trainable_weights) == len(layer.non_trainable_weights), "weight count differs from Keras"
    if training:
        return  # (random or batch-dependent: outputs are compared in inference only)
    ref.set_weights(layer.get_weights())
    ref_out = ref(input_data, **call_kwargs)
    for x, y in zip(_flat(out), _flat(ref_out)):
        if isinstance(x, torch.Tensor):
            y = real.ops.convert_to_numpy(y)
            np.testing.assert_allclose(x.detach().float().cpu().numpy(), np.asarray(y, dtype="float32"),
                                       atol=atol, rtol=rtol, err_msg=f"{layer_cls.__name__} vs Keras")


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _to_cuda(x):
    if isinstance(x, torch.Tensor):
        return x.to("cuda")
    if isinstance(x, (list, tuple)):
        return type(x)(_to_cuda(v) for v in x)
    if isinstance(x, dict):
        return {k: _to_cuda(v) for k, v in x.items()}
    return x


def run_cuda_check(layer_cls, init_kwargs=None, input_shape=None, input_dtype="float32", input_data=None,
                   call_kwargs=None, atol=1e-3, rtol=1e-3):
    """Builds the layer on CPU, moves a copy to CUDA and checks that every
    output lives on the GPU and equals the CPU numbers (TF32-level tolerance).
    Skips with a reason when there is no GPU."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    call_kwargs = dict(call_kwargs or {})
    if input_data is None:
        if isinstance(input_shape, list):
            input_data = [_make_input(s, input_dtype, i) for i, s in enumerate(input_shape)]
        else:
            input_data = _make_input(input_shape, input_dtype)
    layer = layer_cls(**(init_kwargs or {}))
    expected = layer(input_data, **call_kwargs)
    gpu = copy.deepcopy(layer).to("cuda")
    result = gpu(_to_cuda(input_data), **call_kwargs)
    for t in _flat(result):
        assert t.device.type == "cuda", t.device
    for w in gpu.weights:
        assert w.device.type == "cuda", w.path
    _close(result, expected, atol, rtol)
    return gpu
