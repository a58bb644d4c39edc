"""Seeded randomness equals real Keras 3 (torch backend), continued:
`stateless_call` with seed-generator states.

As in test_keras_seed_parity.py, each program runs once in `keras` (the
reference) and once in `kerasish`; the same values are given to both.
Draws must be equal exactly; trained/normalized numbers get 1e-6.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import kerasish


def _np(t):
    return np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t)


def _stateless_run(k, make, x, states, trainable=None, training=True, repeat=2):
    """Builds `make(k)`, then threads the given non-trainable values through
    `repeat` stateless calls (a JAX-style loop). Returns the outputs, the
    returned non-trainable values after each call, the paths, and the
    layer's own non-trainable values afterwards (must be unchanged)."""
    k.utils.set_random_seed(5)
    layer = make(k)
    layer(torch.as_tensor(x))  # build (inference: draws nothing)
    own_before = [_np(v).astype(np.int64) for v in layer.non_trainable_variables]
    if trainable is None:
        trainable = [_np(v) for v in layer.trainable_variables]
    tv = [torch.as_tensor(w) for w in trainable]
    nt = [torch.as_tensor(s) for s in states(layer)]
    outs, returned = [], []
    for _ in range(repeat):
        y, nt = layer.stateless_call(tv, nt, torch.as_tensor(x), training=training)
        outs.append(_np(y))
        returned.append([_np(v).astype(np.float64) for v in nt])
    own_after = [_np(v).astype(np.int64) for v in layer.non_trainable_variables]
    # (Keras's name counters run on across tests: compare names without their numbers)
    paths = [re.sub(r"_\d+", "", v.path) for v in layer.non_trainable_variables]
    return outs, returned, paths, own_before, own_after, [_np(v) for v in layer.trainable_variables]


def _assert_same(ref, got, atol=0.0):
    r_outs, r_ret, r_paths, r_before, r_after, _ = ref
    g_outs, g_ret, g_paths, g_before, g_after, _ = got
    assert g_paths == r_paths
    for a, b in zip(r_outs, g_outs):
        np.testing.assert_allclose(b, a, rtol=0, atol=atol)
    for ra, ga in zip(r_ret, g_ret):
        assert len(ra) == len(ga)
        for a, b in zip(ra, ga):
            assert a.shape == b.shape
            np.testing.assert_allclose(b, a, rtol=0, atol=atol)
    # stateless: the layer's own states do not move, in Keras and here
    for a, b in zip(r_before, r_after):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(g_before, g_after):
        np.testing.assert_array_equal(a, b)


X = np.linspace(-1.0, 2.0, 48, dtype="float32").reshape(4, 12)


def _given_states(layer):
    # a state unlike the layer's own: the draws must come from it
    return [np.array([1000 + 7 * i, 3 + i], dtype="int32") for i, _ in enumerate(layer.non_trainable_variables)]


@pytest.mark.parametrize("make", [
    lambda k: k.layers.Dropout(0.4, seed=3),
    lambda k: k.layers.Dropout(0.4, noise_shape=(1, 12), seed=3),
    lambda k: k.layers.GaussianNoise(0.5, seed=4),
    lambda k: k.layers.GaussianDropout(0.3, seed=4),
    lambda k: k.layers.AlphaDropout(0.3, seed=4),
], ids=["dropout", "dropout_noise_shape", "gaussian_noise", "gaussian_dropout", "alpha_dropout"])
def test_stateless_call_noise_layer_draws_from_given_state(keras_ref, make):
    ref = _stateless_run(keras_ref, make, X, _given_states)
    got = _stateless_run(kerasish, make, X, _given_states)
    _assert_same(ref, got)
    # the returned state is the given one advanced once per call
    assert got[1][0][0].tolist() == [1000.0, 4.0] and got[1][1][0].tolist() == [1000.0, 5.0]


def test_stateless_call_inference_returns_given_state(keras_ref):
    make = lambda k: k.layers.Dropout(0.4, seed=3)  # noqa: E731
    ref = _stateless_run(keras_ref, make, X, _given_states, training=False)
    got = _stateless_run(kerasish, make, X, _given_states, training=False)
    _assert_same(ref, got)
    assert got[1][1][0].tolist() == [1000.0, 3.0]
    np.testing.assert_array_equal(got[0][0], X)


def test_stateless_call_unseeded_dropout_after_set_random_seed(keras_ref):
    # Keras's torch backend: unseeded Dropout is F.dropout on torch's global RNG;
    # its seed state is returned as given
    make = lambda k: k.layers.Dropout(0.4)  # noqa: E731
    ref = _stateless_run(keras_ref, make, X, _given_states)
    got = _stateless_run(kerasish, make, X, _given_states)
    _assert_same(ref, got)
    assert got[1][1][0].tolist() == [1000.0, 3.0]


def _model(k):
    return k.Sequential([
        k.Input((12,)), k.layers.Dense(6), k.layers.Dropout(0.5, seed=1),
        k.layers.BatchNormalization(), k.layers.GaussianNoise(0.2, seed=2), k.layers.Dense(3),
    ])


def test_stateless_call_model_with_dropout_bn_and_noise(keras_ref):
    keras_ref.utils.set_random_seed(5)
    ref_model = _model(keras_ref)
    weights = [_np(v) for v in ref_model.trainable_variables]

    def states(layer):
        out = []
        for v in layer.non_trainable_variables:
            if v.path.endswith("seed_generator_state"):
                out.append(np.array([40 + len(out), 2], dtype="int32"))
            else:
                out.append(np.full(tuple(v.shape), 0.5 if "variance" in v.path else 0.1, dtype="float32"))
        return out

    ref = _stateless_run(keras_ref, _model, X, states, trainable=weights)
    got = _stateless_run(kerasish, _model, X, states, trainable=weights)
    _assert_same(ref, got, atol=1e-6)
    # seed states advanced from the given ones, in Keras's order of non-trainable variables
    assert got[2][0].endswith("seed_generator_state") and got[2][3].endswith("seed_generator_state")
    assert got[1][1][0].tolist() == [40.0, 4.0] and got[1][1][3].tolist() == [43.0, 4.0]


def test_stateless_call_gradient_reaches_given_weights(keras_ref):
    # the mask from the given state multiplies the gradient, as in Keras
    def run(k):
        k.utils.set_random_seed(5)
        m = k.Sequential([k.Input((12,)), k.layers.Dense(4, use_bias=False), k.layers.Dropout(0.5, seed=9)])
        m(torch.as_tensor(X))
        w = torch.tensor(np.arange(48, dtype="float32").reshape(12, 4) / 48, requires_grad=True)
        y, _ = m.stateless_call([w], [torch.tensor([77, 1], dtype=torch.int32)], torch.as_tensor(X), training=True)
        y.sum().backward()
        return _np(y), _np(w.grad)

    (ry, rg), (gy, gg) = run(keras_ref), run(kerasish)
    np.testing.assert_allclose(gy, ry, rtol=0, atol=1e-6)
    np.testing.assert_allclose(gg, rg, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- AugMix, RandAugment, RandomElasticTransform

IMAGES = np.linspace(0, 255, 2 * 8 * 8 * 3, dtype="float32").reshape(2, 8, 8, 3)


def _augment_twice(k, make, seed):
    k.utils.set_random_seed(11)
    layer = make(k, seed)
    x = torch.as_tensor(IMAGES)
    return [_np(layer(x, training=True)) for _ in range(2)]


@pytest.mark.parametrize("seed", [None, 3])
def test_aug_mix_equals_keras(keras_ref, seed):
    # Python's random picks the operations; the layer's seed generator draws their parameters
    make = lambda k, s: k.layers.AugMix(value_range=(0, 255), seed=s)  # noqa: E731
    for a, b in zip(_augment_twice(keras_ref, make, seed), _augment_twice(kerasish, make, seed)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-4)  # (0..255 pixels, float32 maths)


@pytest.mark.parametrize("seed", [None, 3])
def test_random_elastic_transform_equals_keras(keras_ref, seed):
    # parameters from the seed generator, displacement noise from torch's global RNG (as Keras)
    make = lambda k, s: k.layers.RandomElasticTransform(factor=(0.5, 1.0), scale=0.5, seed=s)  # noqa: E731
    for a, b in zip(_augment_twice(keras_ref, make, seed), _augment_twice(kerasish, make, seed)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-4)


def test_auto_contrast_and_equalization_draw_no_default_seed(keras_ref):
    # Keras's AutoContrast/Equalization have no SeedGenerator: constructing them
    # consumes nothing from Python's random, so the layers after them get Keras's seeds
    import random

    def next_after(k, name):
        k.utils.set_random_seed(11)
        getattr(k.layers, name)(value_range=(0, 255))
        return random.random()

    for name in ("AutoContrast", "Equalization"):
        assert next_after(kerasish, name) == next_after(keras_ref, name)


@pytest.mark.parametrize("seed", [None, 3])
def test_rand_augment_draws_equal_keras(keras_ref, seed):
    # the picks and every operation's transformation equal Keras's; the output equals
    # Keras's operations applied in the picked order. (Keras 3.15's own
    # RandAugment.transform_images on torch adds RandomBrightness's delta in place to
    # the images whether or not it was picked; kerasish applies only the picked ones.)
    x = torch.as_tensor(IMAGES)
    keras_ref.utils.set_random_seed(11)
    ref = keras_ref.layers.RandAugment(value_range=(0, 255), num_ops=2, seed=seed)
    kerasish.utils.set_random_seed(11)
    got = kerasish.layers.RandAugment(value_range=(0, 255), num_ops=2, seed=seed)
    for _ in range(2):
        rt = ref.get_random_transformation(x)
        names = [ref._AUGMENT_LAYERS[i] for i in _np(rt["layer_idxes"]).tolist()]
        gt = got.get_random_transformation(x)
        assert gt["layer_names"] == names
        expected = x
        for name in names:
            expected = getattr(ref, name).transform_images(expected.clone(), rt["transforms"][name])
        np.testing.assert_allclose(_np(got.transform_images(x, gt)), _np(expected), rtol=0, atol=1e-4)
    # the parameters of every operation, picked or not
    for name, value in rt["transforms"].items():
        mine = gt["transforms"][name]
        if name == "random_brightness":  # kerasish keeps the fraction of the value range
            np.testing.assert_allclose(_np(mine).ravel() * 255, _np(value["rgb_delta"]).ravel(), rtol=1e-6)
        elif name == "random_contrast":
            np.testing.assert_array_equal(_np(mine).ravel(), _np(value["contrast_factor"]).ravel())
        elif name == "random_rotation":
            np.testing.assert_allclose(_np(mine)[:, :6], _np(value["rotation_matrix"])[:, :6], atol=1e-5)
        elif isinstance(value, dict) and isinstance(mine, dict):
            for key, v in value.items():
                if isinstance(v, torch.Tensor) and v.is_floating_point() and key in mine:
                    np.testing.assert_array_equal(_np(mine[key]), _np(v))


# ---------------------------------------------------------------- fit on a PyDataset / generator

_FX = np.random.default_rng(0).normal(size=(40, 5)).astype("float32")
_FY = np.random.default_rng(1).normal(size=(40, 1)).astype("float32")


def _fit_run(k, kind, dropout_seed, validation=False):
    """An MLP with Dropout trained 2 epochs on a shuffled PyDataset or a
    generator, after set_random_seed: History, weights, and the next draws of
    torch's global RNG and Python's random (both must be left as Keras leaves them)."""
    import random

    k.utils.set_random_seed(7)

    class Batches(k.utils.PyDataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return _FX[i * 8:(i + 1) * 8], _FY[i * 8:(i + 1) * 8]

    def batches():
        while True:
            for i in range(5):
                yield _FX[i * 8:(i + 1) * 8], _FY[i * 8:(i + 1) * 8]

    model = k.Sequential([k.Input((5,)), k.layers.Dense(8, activation="relu"),
                          k.layers.Dropout(0.5, seed=dropout_seed), k.layers.Dense(1)])
    model.compile("sgd", "mse")
    if kind == "py_dataset":
        history = model.fit(Batches(), epochs=2, shuffle=True, verbose=0,
                            validation_data=Batches() if validation else None)
    else:
        history = model.fit(batches(), steps_per_epoch=5, epochs=2, shuffle=True, verbose=0)
    losses = history.history["loss"] + history.history.get("val_loss", [])
    return losses, [_np(w) for w in model.get_weights()], _np(torch.rand(3)), random.random()


@pytest.mark.parametrize("kind", ["py_dataset", "generator"])
@pytest.mark.parametrize("dropout_seed", [None, 3])
def test_fit_py_dataset_and_generator_equal_keras(keras_ref, kind, dropout_seed):
    # Keras reads both through a torch DataLoader: each new loader iterator draws a
    # base seed from torch's global RNG (between unseeded dropout masks), and a
    # shuffled PyDataset shuffles its batch order with Python's random, also for
    # the batch fit peeks at before training
    ref = _fit_run(keras_ref, kind, dropout_seed)
    got = _fit_run(kerasish, kind, dropout_seed)
    np.testing.assert_allclose(got[0], ref[0], rtol=0, atol=1e-6)
    for a, b in zip(ref[1], got[1]):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got[2], ref[2])
    assert got[3] == ref[3]


@pytest.mark.parametrize("make", [
    lambda k: k.layers.SimpleRNN(3, dropout=0.5, seed=5),
    lambda k: k.layers.LSTM(3, dropout=0.3, recurrent_dropout=0.4, seed=5),
    lambda k: k.layers.GRU(3, dropout=0.3, recurrent_dropout=0.4, seed=5),
], ids=["simple_rnn", "lstm", "gru"])
def test_stateless_call_rnn_dropout_draws_from_given_state(keras_ref, make):
    # the cell's (recurrent) dropout masks come from the given seed state, advanced
    # once per mask in the returned state; the layer's own state does not move
    x = np.linspace(-1, 1, 2 * 3 * 4, dtype="float32").reshape(2, 3, 4)

    def run(k):
        k.utils.set_random_seed(1)
        layer = make(k)
        layer(torch.as_tensor(x))
        own = [_np(v).astype(np.int64) for v in layer.non_trainable_variables]
        tv = [torch.as_tensor(_np(v)) for v in layer.trainable_variables]
        nt = [torch.tensor([100, 4], dtype=torch.int32) for _ in layer.non_trainable_variables]
        outs = []
        for _ in range(2):
            y, nt = layer.stateless_call(tv, nt, torch.as_tensor(x), training=True)
            outs.append((_np(y), [_np(v).astype(np.int64) for v in nt]))
        assert all(np.array_equal(a, _np(b)) for a, b in zip(own, layer.non_trainable_variables))
        return outs

    for (ry, rs), (gy, gs) in zip(run(keras_ref), run(kerasish)):
        np.testing.assert_allclose(gy, ry, rtol=0, atol=1e-6)
        for a, b in zip(rs, gs):
            np.testing.assert_array_equal(b, a)


def test_fit_py_dataset_with_py_dataset_validation_equals_keras(keras_ref):
    # the validation pass opens its own loader iterators between the epochs' masks
    ref = _fit_run(keras_ref, "py_dataset", None, validation=True)
    got = _fit_run(kerasish, "py_dataset", None, validation=True)
    assert len(got[0]) == 4
    np.testing.assert_allclose(got[0], ref[0], rtol=0, atol=1e-6)
    for a, b in zip(ref[1], got[1]):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got[2], ref[2])
    assert got[3] == ref[3]


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("seed", [7, None])
def test_rnn_seed_state_in_variables_advances_as_keras(keras_ref, cls, seed):
    """A seeded RNN's listed seed state (`variables`) advances by one per dropout mask, as Keras's does; an
    unseeded one after set_random_seed (global-RNG masks) stays at its initial counter in both."""
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype("float32")
    states = []
    for lib in (keras_ref, kerasish):
        lib.utils.set_random_seed(3)
        layer = getattr(lib.layers, cls)(5, dropout=0.3, recurrent_dropout=0.2, seed=seed)
        layer(x if lib is keras_ref else torch.tensor(x), training=True)
        layer(x if lib is keras_ref else torch.tensor(x), training=True)
        states.append([np.array(v.numpy()).tolist() for v in layer.variables if "seed" in v.path])
    assert states[1] == states[0]
    if seed is not None:
        assert states[1][0][1] > 0
