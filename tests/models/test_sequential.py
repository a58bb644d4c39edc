"""`keras.Sequential`: construction, add/pop, deferred build, configs, cloning."""

import warnings
import copy
import json

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.models import Sequential
from kerasish.models import clone_model

L = keras.layers


def _close(a, b, atol=1e-6):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=atol, rtol=1e-5)


def test_sequential_with_input_is_built_and_computes_the_stack(keras_ref):
    d1, d2 = L.Dense(16, activation="relu"), L.Dense(3)
    model = Sequential([L.Input((8,)), d1, d2])
    keras_ref.utils.clear_session()  # (Keras's name counters: fresh, as kerasish's are per test)
    ref = keras_ref.Sequential([keras_ref.Input((8,)), keras_ref.layers.Dense(16, activation="relu"),
                                keras_ref.layers.Dense(3)])
    assert model.built and ref.built and model.name == ref.name == "sequential"
    assert model.layers == [d1, d2]
    assert (model.input_shape, model.output_shape) == (ref.input_shape, ref.output_shape)
    assert d2.output_shape == tuple(ref.layers[1].output.shape)
    assert [tuple(w.shape) for w in model.weights] == [tuple(w.shape) for w in ref.weights]
    assert [w.path for w in model.weights] == [w.path for w in ref.weights]
    assert list(model.state_dict()) == ["dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"]
    ref.set_weights(model.get_weights())
    x = torch.randn(4, 8)
    np.testing.assert_allclose(model(x).detach().numpy(), keras_ref.ops.convert_to_numpy(ref(x)), rtol=1e-5,
                               atol=1e-6)
    _close(model(x), d2(d1(x)))
    assert model.count_params() == ref.count_params()


def test_keras2_input_shape_on_first_layer(keras_ref):
    got = {}
    for lib in (keras_ref, keras):  # Keras 3 still accepts the Keras 2 spelling (with a warning)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model = lib.Sequential([lib.layers.Dense(4, input_shape=(8,)), lib.layers.Dense(2)])
        got[lib] = (model.built, model.input_shape, model.output_shape, [tuple(w.shape) for w in model.weights],
                    [c["class_name"] for c in model.get_config()["layers"]])
    assert got[keras] == got[keras_ref]
    assert got[keras][:2] == (True, (None, 8)) and got[keras][4] == ["InputLayer", "Dense", "Dense"]


def test_deferred_build_on_first_call_and_explicit_build():
    model = Sequential([L.Dense(4), L.Dense(2)])
    assert not model.built and model.weights == []
    with pytest.raises(AttributeError, match="no defined input shape yet"):
        _ = model.input_shape
    x = torch.randn(3, 5)
    out = model(x)
    assert model.built and out.shape == (3, 2)
    assert model.layers[0].kernel.shape == (5, 4)
    _close(out, model.layers[1](model.layers[0](x)))
    other = Sequential([L.Dense(4), L.Dense(2)])
    other.build((None, 5))
    assert other.built and other.output_shape == (None, 2)
    other.set_weights(model.get_weights())
    _close(other(x), out)


def test_deferred_build_with_integer_inputs(keras_ref):
    model = Sequential([L.Embedding(10, 4), L.GlobalAveragePooling1D(), L.Dense(1)])
    ref = keras_ref.Sequential([keras_ref.layers.Embedding(10, 4), keras_ref.layers.GlobalAveragePooling1D(),
                                keras_ref.layers.Dense(1)])
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out = model(ids)
    ref(ids)
    ref.set_weights(model.get_weights())
    assert out.shape == (2, 1)
    np.testing.assert_allclose(out.detach().numpy(), keras_ref.ops.convert_to_numpy(ref(ids)), rtol=1e-5, atol=1e-6)


def test_add_and_pop(keras_ref):
    x = torch.randn(2, 6)
    seen = {}
    for lib in (keras_ref, keras):  # the same steps in real Keras 3
        model = lib.Sequential()
        steps = [(len(model.layers), model.built)]
        model.add(lib.Input((6,)))
        first = lib.layers.Dense(4)
        model.add(first)
        steps.append((model.built, model.output_shape))
        model.add(lib.layers.Dense(2, name="head"))
        steps.append(model.output_shape)
        popped = model.pop()
        steps.append((popped.name, model.output_shape, len(model.weights)))
        seen[lib] = steps
        if lib is keras_ref:
            ref, ref_first = model, first
    assert seen[keras] == seen[keras_ref]
    assert seen[keras][-1] == ("head", (None, 4), 2)
    assert "head.kernel" not in model.state_dict()
    ref_first.set_weights(first.get_weights())
    _close(model(x), first(x))
    np.testing.assert_allclose(model(x).detach().numpy(), keras_ref.ops.convert_to_numpy(ref(x)), rtol=1e-5, atol=1e-6)


def test_add_errors():
    model = Sequential([L.Input((3,)), L.Dense(2, name="same")])
    with pytest.raises(ValueError, match="Only instances of `keras.Layer`"):
        model.add(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="should have unique names. Name 'same'"):
        model.add(L.Dense(2, name="same"))
    with pytest.raises(ValueError, match="already been configured to use input shape"):
        model.add(L.Input((3,)))
    with pytest.raises(TypeError, match="no layers in the model"):
        Sequential().pop()
    with pytest.raises(ValueError, match="cannot be built because it has no layers"):
        Sequential().build((None, 3))
    built = Sequential([L.Input((3,)), L.Dense(1)])
    with pytest.raises(ValueError, match="You cannot build it with input_shape"):
        built.build((None, 4))
    with pytest.raises(AttributeError, match="reserved"):
        built.layers = []


def test_wrong_input_shape_names_model_and_input():
    model = Sequential([L.Input((4,), name="feats"), L.Dense(2)], name="clf")
    with pytest.warns(UserWarning, match=r"'clf' was constructed with shape \(None, 4\) for input .*feats.*"
                                         r"incompatible shape \(2, 5\)"):
        with pytest.raises(ValueError, match=r"layer 'dense'.*value 4.*\(2, 5\)"):
            model(torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"'clf' is incompatible.*expected shape=\(None, 4\), found shape=\(2, 5, 3\)"):
        model(torch.ones(2, 5, 3))  # another rank: still refused
    # one rank more through a last axis of 1 is squeezed first, as Keras 3's functional graph does
    # (`_adjust_input_rank`): (2, 5) then meets Dense's refusal, as above (the width warning was given once)
    with pytest.raises(ValueError, match=r"layer 'dense'.*value 4.*\(2, 5\)"):
        model(torch.ones(2, 5, 1))
    np.testing.assert_allclose(model(torch.ones(3, 4, 1)).detach(), model(torch.ones(3, 4)).detach())


def test_other_non_batch_dims_run_as_keras_sequential_does(keras_ref):
    """Keras 3 runs a Sequential on inputs of another length or image size
    (silently); kerasish runs it too and warns as tf.keras 2 did."""
    x = np.random.default_rng(4).normal(size=(3, 10, 12, 1)).astype("float32")
    ours = Sequential([L.Input((8, 8, 1)), L.Conv2D(2, 3), L.GlobalAveragePooling2D()])
    theirs = keras_ref.Sequential([keras_ref.Input((8, 8, 1)), keras_ref.layers.Conv2D(2, 3),
                                   keras_ref.layers.GlobalAveragePooling2D()])
    theirs.set_weights(ours.get_weights())
    with pytest.warns(UserWarning, match=r"constructed with shape \(None, 8, 8, 1\).*\(3, 10, 12, 1\)"):
        y = ours.predict(x, verbose=0)
    np.testing.assert_allclose(y, theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_other_sizes_than_the_build_shape_run_as_in_keras(keras_ref):
    """Keras 3's Sequential checks only the rank: one built on its first
    call (here inside a custom layer, on probing sizes) runs on other
    sequence lengths (keras.io's Transformer examples rely on it)."""
    for K in (keras_ref, keras):
        seq = K.Sequential([K.layers.Dense(3)])
        seq.build((None, 5, 4))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # built on a call or build(): silent, as in Keras 3
            assert tuple(seq(np.ones((2, 7, 4), "float32")).shape) == (2, 7, 3)
        declared = K.Sequential([K.Input((3, 8)), K.layers.Activation("relu")])
        assert tuple(declared(np.ones((2, 5, 8), "float32")).shape) == (2, 5, 8)


def test_masks_and_training_flow(keras_ref):
    model = Sequential([L.Input((4,), dtype="int64"), L.Embedding(8, 3, mask_zero=True), L.LSTM(2)])
    ref = keras_ref.Sequential([keras_ref.Input((4,), dtype="int64"), keras_ref.layers.Embedding(8, 3, mask_zero=True),
                                keras_ref.layers.LSTM(2)])
    ref.set_weights(model.get_weights())
    x = torch.tensor([[1, 2, 0, 0], [3, 0, 0, 0]])
    _close(model(x[:1]), model.layers[1](model.layers[0](x[:1, :2])))
    np.testing.assert_allclose(model(x).detach().numpy(), keras_ref.ops.convert_to_numpy(ref(x)), rtol=1e-5, atol=1e-6)
    ones = torch.ones(2, 50)
    for lib in (keras_ref, keras):
        drop = lib.Sequential([lib.Input((50,)), lib.layers.Dropout(0.5)])
        assert torch.equal(drop(ones), ones), lib.__name__
        assert (drop(ones, training=True) == 0).any(), lib.__name__


def test_config_round_trip_and_keras_parity(keras_ref):
    model = Sequential([L.Input((8,)), L.Dense(4, activation="relu"), L.Dense(2)], name="stack")
    config = model.get_config()
    assert set(config) == {"name", "trainable", "dtype", "layers", "build_input_shape"}
    assert config["build_input_shape"] == (None, 8)
    assert [c["class_name"] for c in config["layers"]] == ["InputLayer", "Dense", "Dense"]
    rebuilt = Sequential.from_config(json.loads(json.dumps(config)))
    assert rebuilt.built and rebuilt.name == "stack"
    rebuilt.set_weights(model.get_weights())
    x = torch.randn(3, 8)
    _close(rebuilt(x), model(x))
    # a config written by Keras loads and computes the same
    keras_ref.utils.clear_session()
    ref = keras_ref.Sequential([keras_ref.Input((8,)), keras_ref.layers.Dense(4, activation="relu"),
                                keras_ref.layers.Dense(2)])
    loaded = Sequential.from_config(json.loads(json.dumps(ref.get_config())))
    loaded.set_weights(ref.get_weights())
    xn = x.numpy()
    np.testing.assert_allclose(loaded(xn).detach().numpy(), keras_ref.ops.convert_to_numpy(ref(xn)),
                               atol=1e-5, rtol=1e-4)
    keras.utils.clear_session()
    keras_ref.utils.clear_session()
    ours = Sequential([L.Input((8,)), L.Dense(4), L.Dense(2)]).get_config()
    theirs = keras_ref.Sequential([keras_ref.Input((8,)), keras_ref.layers.Dense(4), keras_ref.layers.Dense(2)])
    theirs = json.loads(json.dumps(theirs.get_config()))
    ours = json.loads(json.dumps(ours))
    assert ours["name"] == theirs["name"] and ours["build_input_shape"] == theirs["build_input_shape"]
    assert [c["config"]["name"] for c in ours["layers"]] == [c["config"]["name"] for c in theirs["layers"]]
    assert ours["layers"][0]["config"] == theirs["layers"][0]["config"]


def test_names_follow_keras_counters(keras_ref):
    def names(lib):
        lib.utils.clear_session()
        seq = lib.models.Sequential([lib.layers.Input((3,)), lib.layers.Dense(2)])
        inp = lib.layers.Input((3,))
        fun = lib.models.Model(inp, lib.layers.Dense(2)(inp))
        return [seq.name, fun.name, inp._keras_history[0].name, seq.layers[0].name]

    assert names(keras) == names(keras_ref)


def test_nested_sequential_and_clone():
    inner = Sequential([L.Dense(4), L.Dense(3)], name="inner")
    model = Sequential([L.Input((5,)), inner, L.Dense(1)])
    assert list(model.state_dict())[:2] == ["inner.dense.kernel", "inner.dense.bias"]
    x = torch.randn(2, 5)
    _close(model(x), model.layers[1](inner(x)))
    clone = clone_model(model)
    assert isinstance(clone, Sequential) and clone.layers[0] is not inner
    clone.set_weights(model.get_weights())
    _close(clone(x), model(x))
    deep = clone_model(model, recursive=True)
    assert isinstance(deep.layers[0], Sequential) and deep.layers[0] is not inner
    with pytest.raises(ValueError, match="`call_function` argument is not supported"):
        clone_model(model, call_function=lambda layer, *a: layer(*a))


def test_model_with_inputs_as_first_layer_builds_at_once(keras_ref):
    """Keras 2's transfer-learning idiom `Sequential([base_model, Dense(...)])` (base truncated with
    `Model(base.input, base.layers[-2].output)`): built at once, as Keras 2 and 3 do, so the head's
    weights exist for `set_weights` before any call; same outputs as Keras with the same weights."""

    def make(lib):
        inp = lib.Input((6,))
        base = lib.Model(inp, lib.layers.Dense(2)(lib.layers.Dense(4, activation="relu")(inp)))
        feature = lib.Model(base.input, base.layers[-2].output)
        return base, lib.Sequential([feature, lib.layers.Dense(3, activation="softmax")])

    (base, model), (ref_base, ref) = make(keras), make(keras_ref)
    assert model.built and ref.built
    assert model.output_shape == tuple(ref.output_shape) == (None, 3)
    assert [w.shape for w in model.layers[-1].get_weights()] == [(4, 3), (3,)]
    ref_base.set_weights(base.get_weights())
    ref.layers[-1].set_weights(model.layers[-1].get_weights())
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), ref.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # a multi-input model first (a list of input shapes) still waits for a call
    a, b = keras.Input((2,)), keras.Input((3,))
    two = keras.Model([a, b], keras.layers.Concatenate()([a, b]))
    assert not Sequential([two, L.Dense(1)]).built


def test_compile_fullgraph_and_copy():
    import torch._dynamo as dynamo

    model = Sequential([L.Input((8,)), L.Dense(16, activation="relu"), L.Dense(16), L.Dense(2)])
    x = torch.randn(4, 8)
    dynamo.reset()
    explained = dynamo.explain(model)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    _close(torch.compile(model, fullgraph=True)(x), model(x), atol=1e-5)
    _close(copy.deepcopy(model)(x), model(x))


def test_load_state_dict_into_unbuilt_sequential():
    source = Sequential([L.Input((5,)), L.Dense(4), L.Dense(2)])
    keras.utils.clear_session()  # same layer names, so the same state_dict keys
    target = Sequential([L.Dense(4), L.Dense(2)])
    target.load_state_dict(source.state_dict())
    x = torch.randn(2, 5)
    _close(target(x), source(x))


def test_layer_shapes_as_tf_keras_reports_them():
    """`layer.input_shape` / `output_shape` in Sequential models, as
    recorded from tf-keras 2.21: a model built by its first call reports
    that call's batch size; a declared input reports None."""
    model = Sequential([L.Dense(3), L.Dense(2)])
    model(torch.ones(4, 5))
    first, second = model.layers
    assert (first.input_shape, first.output_shape, second.output_shape) == ((4, 5), (4, 3), (4, 2))
    assert (model.input_shape, model.output_shape) == ((4, 5), (4, 2))
    declared = Sequential([L.Dense(3, input_dim=5), L.Dense(2)])
    assert (declared.layers[0].input_shape, declared.layers[0].output_shape) == ((None, 5), (None, 3))
