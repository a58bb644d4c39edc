"""`TorchModuleWrapper` against real Keras 3 (torch backend): the wrapped
module's parameters are the layer's weights, training reaches them, outputs
equal Keras's, weight files and `.keras` archives move both ways."""

import copy

import numpy as np
import pytest
import torch

import kerasish as keras

L = keras.layers
RNG = np.random.default_rng(0)
X = RNG.normal(size=(8, 3)).astype("float32")
Y = RNG.normal(size=(8, 2)).astype("float32")
TOL = {"rtol": 1e-5, "atol": 1e-6}


def _module(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Tanh())


def _model(lib, module, output_shape=(None, 4)):
    inp = lib.Input((3,))
    wrapper = lib.layers.TorchModuleWrapper(module, output_shape=output_shape)
    return lib.Model(inp, lib.layers.Dense(2)(wrapper(inp))), wrapper


def _np(lib, y):
    return y.detach().numpy() if isinstance(y, torch.Tensor) and lib is keras else lib.ops.convert_to_numpy(y)


def test_parameters_are_the_weights():
    module = _module()
    layer = L.TorchModuleWrapper(module)
    assert layer.built
    params = list(module.parameters())
    assert len(layer.weights) == 4 and all(a is b for a, b in zip(layer.weights, params))
    assert [w.name for w in layer.weights] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert layer.weights[0].path == "torch_module_wrapper/0.weight"
    assert isinstance(layer.weights[0], keras.Variable) and layer.weights[0].trainable
    layer.weights[1].assign(np.full((4,), 0.5, "float32"))
    torch.testing.assert_close(module[0].bias.detach(), torch.full((4,), 0.5))
    # buffers are saved state, not weights (as Keras); state_dict keeps them
    assert "torch_module_wrapper.module.1.running_mean" not in [w.path for w in layer.weights]
    assert {"module.1.running_mean", "module.1.num_batches_tracked"} <= set(layer.state_dict())
    frozen = torch.nn.Linear(2, 2)
    frozen.weight.requires_grad_(False)
    wrapped = L.TorchModuleWrapper(frozen)
    assert [w.name for w in wrapped.trainable_weights] == ["bias"]
    assert [w.name for w in wrapped.non_trainable_weights] == ["weight"]


def test_outputs_and_training_match_keras(keras_ref):
    ours, our_wrapper = _model(keras, _module())
    theirs, their_wrapper = _model(keras_ref, _module())
    theirs.set_weights(ours.get_weights())
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.weights]
    np.testing.assert_allclose(_np(keras, ours(X)), _np(keras_ref, theirs(X, training=False)), **TOL)
    # a training step uses batch statistics and moves the same weights the same way
    for lib, model in ((keras, ours), (keras_ref, theirs)):
        model.compile(lib.optimizers.SGD(0.1), "mse")
        model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        our_wrapper.module[1].running_mean.numpy(), their_wrapper.module[1].running_mean.detach().cpu().numpy(),
        rtol=1e-4, atol=1e-5,
    )
    np.testing.assert_allclose(_np(keras, ours(X)), _np(keras_ref, theirs(X, training=False)), rtol=1e-4, atol=1e-5)


def test_training_flag_sets_the_module_mode():
    layer = L.TorchModuleWrapper(_module())
    layer(torch.as_tensor(X), training=True)
    assert layer.module.training
    layer(torch.as_tensor(X), training=False)
    assert not layer.module.training
    layer(torch.as_tensor(X), training=True)
    layer(torch.as_tensor(X))  # the resolved flag: inference (layers start in eval mode)
    assert not layer.module.training


def test_output_shape_inferred_when_not_given():
    model, wrapper = _model(keras, _module(), output_shape=None)
    assert wrapper.output_shape == (None, 4) and model.output_shape == (None, 2)
    assert L.TorchModuleWrapper(torch.nn.Linear(3, 5), output_shape=[None, 5]).compute_output_shape((None, 3)) == (None, 5)


def test_weights_file_both_ways(keras_ref, tmp_path):
    ours, our_wrapper = _model(keras, _module(1))
    ours.compile("sgd", "mse")
    ours.fit(X, Y, verbose=0)  # moves the BatchNorm statistics too
    ours.save_weights(tmp_path / "q.weights.h5")
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "q.weights.h5") as f:
        assert sorted(f["layers/torch_module_wrapper/vars"]) == sorted(our_wrapper.module.state_dict())
        assert "module" not in f["layers/torch_module_wrapper"]
    theirs, _ = _model(keras_ref, _module(2))
    theirs.load_weights(tmp_path / "q.weights.h5")
    np.testing.assert_allclose(_np(keras_ref, theirs(X, training=False)), _np(keras, ours(X)), **TOL)
    twin, twin_wrapper = _model(keras, _module(3))
    twin.load_weights(tmp_path / "q.weights.h5")
    np.testing.assert_allclose(_np(keras, twin(X)), _np(keras, ours(X)), **TOL)
    assert int(twin_wrapper.module[1].num_batches_tracked) == 1
    theirs.save_weights(tmp_path / "k.weights.h5")
    again, _ = _model(keras, _module(4))
    again.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(_np(keras, again(X)), _np(keras_ref, theirs(X, training=False)), **TOL)


def test_keras_archive_both_ways_needs_unsafe_mode(keras_ref, tmp_path):
    ours, _ = _model(keras, _module(5))
    ours.save(tmp_path / "q.keras")
    with pytest.raises(ValueError, match=r"deserialization of a `torch.nn.Module`.*safe_mode=False"):
        keras.saving.load_model(tmp_path / "q.keras")
    again = keras.saving.load_model(tmp_path / "q.keras", safe_mode=False)
    np.testing.assert_allclose(_np(keras, again(X)), _np(keras, ours(X)), **TOL)
    theirs = keras_ref.saving.load_model(tmp_path / "q.keras", safe_mode=False)
    np.testing.assert_allclose(_np(keras_ref, theirs(X, training=False)), _np(keras, ours(X)), **TOL)
    k, _ = _model(keras_ref, _module(6))
    k.save(tmp_path / "k.keras")
    q = keras.saving.load_model(tmp_path / "k.keras", safe_mode=False)
    np.testing.assert_allclose(_np(keras, q(X)), _np(keras_ref, k(X, training=False)), **TOL)


def test_config_round_trip():
    layer = L.TorchModuleWrapper(_module(7), name="wrapped", output_shape=(None, 4))
    config = layer.get_config()
    assert set(config) == {"name", "trainable", "dtype", "module", "output_shape"}
    with pytest.raises(ValueError, match="disallowed by default"):
        L.TorchModuleWrapper.from_config(config)
    clone = L.TorchModuleWrapper.from_config(config, safe_mode=False)
    assert clone.name == "wrapped" and clone.module is not layer.module
    assert type(clone.module[0].weight) is type(layer.module[0].weight)  # Keras variables again
    for a, b in zip(clone.get_weights(), layer.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the pickled module holds only torch classes (loadable without kerasish)
    assert b"kerasish" not in __import__("base64").b64decode(config["module"])


def test_torch_citizenship():
    layer = L.TorchModuleWrapper(_module(8))
    twin = copy.deepcopy(layer)
    torch.testing.assert_close(twin(torch.as_tensor(X)), layer(torch.as_tensor(X)))
    other = L.TorchModuleWrapper(_module(9))
    other.load_state_dict(layer.state_dict())
    torch.testing.assert_close(other(torch.as_tensor(X)), layer(torch.as_tensor(X)))
    assert len(list(layer.parameters())) == 4


def test_errors():
    with pytest.raises(ValueError, match=r"LazyModules are not supported.*LazyLinear"):
        L.TorchModuleWrapper(torch.nn.LazyLinear(3))
    with pytest.raises(TypeError, match=r"`module` must be a `torch.nn.Module`. Received: module=3"):
        L.TorchModuleWrapper(3)
