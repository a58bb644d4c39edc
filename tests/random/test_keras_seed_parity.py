"""Seeded randomness equals real Keras 3 (torch backend) on the CPU.

A Keras user porting a program keeps `keras.utils.set_random_seed(s)` and
expects the same initial weights, dropout masks and `fit` results. Each test
runs the same program twice, once with `keras` (the reference) and once with
`kerasish`, and nothing is copied between them: equality comes from both
drawing the same seeds in the same order. Exact equality is asserted for
draws; trained numbers get 1e-6 (the forward/backward maths is the same but
kerasish's fused kernels sum in another order: ~6e-8 observed).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish


def _np(t):
    return np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t)


def _weights(k, seed, make):
    k.utils.set_random_seed(seed)
    return [_np(w) for w in make(k)]


def _dense_seq(k):
    m = k.Sequential([k.Input((4,)), k.layers.Dense(3), k.layers.Dense(2, kernel_initializer="he_normal")])
    return m.get_weights()


def _conv_bn(k):
    m = k.Sequential([k.Input((6, 6, 2)), k.layers.Conv2D(3, 3), k.layers.BatchNormalization(),
                      k.layers.Flatten(), k.layers.Dense(2, kernel_initializer="lecun_normal")])
    return m.get_weights()


def _embedding_rnn(k):
    i = k.Input((5,), dtype="int32")
    h = k.layers.Embedding(10, 4)(i)
    h = k.layers.LSTM(3, return_sequences=True)(h)
    h = k.layers.GRU(2, return_sequences=True)(h)
    h = k.layers.SimpleRNN(2)(h)
    return k.Model(i, k.layers.Dense(1)(h)).get_weights()


def _attention(k):
    # MHA's projections are EinsumDense in Keras: fans from the einsum axes, and
    # its Dropout (rate > 0) takes a default seed between the value and output projections
    i = k.Input((3, 4))
    a = k.layers.MultiHeadAttention(2, 4, dropout=0.1)(i, i)
    a = k.layers.Dropout(0.3)(a)
    return k.Model(i, k.layers.Dense(2)(a)).get_weights()


def _subclassed(k):
    class Net(k.Model):
        def __init__(self):
            super().__init__()
            self.a = k.layers.Dense(5)
            self.drop = k.layers.Dropout(0.5)
            self.b = k.layers.Dense(1, kernel_initializer="orthogonal")

        def call(self, x, training=False):
            return self.b(self.drop(self.a(x), training=training))

    m = Net()
    m(np.ones((2, 3), "float32"))  # built lazily: the seeds were drawn at construction
    return m.get_weights()


def _after_augmentation(k):
    # the augmentation layers' own draws are not Keras's, but their constructors
    # consume Python's random as Keras's do, so the Dense after them matches
    m = k.Sequential([k.Input((8, 8, 3)), k.layers.RandomFlip(), k.layers.RandomRotation(0.1),
                      k.layers.RandomCrop(4, 4), k.layers.RandomContrast(0.2), k.layers.Flatten(), k.layers.Dense(2)])
    return m.get_weights()


def _initializers(k):
    gen = k.random.SeedGenerator(5)
    init = k.initializers.RandomNormal(seed=gen)
    return [k.initializers.GlorotUniform()((3, 4)), k.initializers.Orthogonal()((4, 4)),
            k.initializers.HeNormal(seed=3)((2, 5)), k.initializers.TruncatedNormal()((50,)),
            init((3,)), init((3,)), k.initializers.VarianceScaling(2.0, "fan_out", "uniform")((3, 3, 2, 4))]


@pytest.mark.parametrize("make", [_dense_seq, _conv_bn, _embedding_rnn, _attention, _subclassed, _after_augmentation,
                                  _initializers],
                         ids=lambda f: f.__name__.strip("_"))
def test_initial_weights_equal_keras(keras_ref, make):
    ref, got = _weights(keras_ref, 42, make), _weights(kerasish, 42, make)
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        assert r.shape == g.shape
        np.testing.assert_array_equal(g, r)


def _noise_outputs(k):
    k.utils.set_random_seed(3)
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6) / 10 + 1
    layers = [
        k.layers.Dropout(0.5, seed=1), k.layers.Dropout(0.5), k.layers.Dropout(0.3, noise_shape=(None, 1, 6)),
        k.layers.Dropout(0.4, seed=2, noise_shape=(None, 1, 6)), k.layers.SpatialDropout1D(0.5),
        k.layers.SpatialDropout1D(0.5, seed=4), k.layers.GaussianNoise(0.3), k.layers.GaussianNoise(0.3, seed=5),
        k.layers.GaussianDropout(0.3), k.layers.GaussianDropout(0.2, seed=9), k.layers.AlphaDropout(0.3),
        k.layers.AlphaDropout(0.3, seed=6),
    ]
    x4 = torch.ones(2, 3, 3, 4)
    spatial = [k.layers.SpatialDropout2D(0.5), k.layers.SpatialDropout2D(0.5, seed=8)]
    out = []
    for _ in range(3):  # the SeedGenerator counters advance call after call
        out += [_np(layer(x, training=True)) for layer in layers]
        out += [_np(layer(x4, training=True)) for layer in spatial]
        out.append(_np(k.random.normal((4,))))  # the global generator, recreated by set_random_seed
        out.append(_np(layers[0](x, training=False)))
    return out


def test_noise_layers_equal_keras_for_three_calls(keras_ref):
    ref, got = _noise_outputs(keras_ref), _noise_outputs(kerasish)
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        np.testing.assert_array_equal(g, r)


def _recurrent_and_attention_outputs(k, seed):
    k.utils.set_random_seed(11)
    x = np.linspace(-1, 1, 2 * 5 * 3).reshape(2, 5, 3).astype("float32")
    q = np.linspace(0, 1, 2 * 3 * 4).reshape(2, 3, 4).astype("float32")
    layers = [cls(4, dropout=0.2, recurrent_dropout=0.3, seed=seed)
              for cls in (k.layers.SimpleRNN, k.layers.GRU, k.layers.LSTM)]
    mha = k.layers.MultiHeadAttention(2, 4, dropout=0.5, seed=seed)
    out = []
    for _ in range(2):  # masks are drawn anew on every call
        out += [_np(layer(x, training=True)) for layer in layers]
        out.append(_np(mha(q, q, training=True)))
    return out


@pytest.mark.parametrize("seed", [None, 5])
def test_recurrent_and_attention_dropout_equal_keras(keras_ref, seed):
    # 1e-7: the same masks, but the recurrent maths is fused differently (~1e-7 observed)
    ref, got = _recurrent_and_attention_outputs(keras_ref, seed), _recurrent_and_attention_outputs(kerasish, seed)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=0, atol=5e-7)


def _fit(k):
    k.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype("float32")
    y = rng.normal(size=(40, 1)).astype("float32")
    m = k.Sequential([
        k.Input((5,)), k.layers.Dense(8, activation="relu"), k.layers.Dropout(0.3),
        k.layers.Dense(8, activation="relu"), k.layers.Dropout(0.2, seed=3), k.layers.Dense(1),
    ])
    m.compile(optimizer=k.optimizers.SGD(0.05), loss="mse")
    first = m.fit(x, y, batch_size=8, epochs=2, shuffle=True, validation_split=0.25, verbose=0).history
    second = m.fit(torch.from_numpy(x), torch.from_numpy(y), batch_size=8, epochs=1, shuffle="batch",
                   verbose=0).history
    weights = [_np(w) for w in m.get_weights()]
    m.evaluate(x, y, batch_size=16, verbose=0)
    m.predict(x, batch_size=16, verbose=0)
    m.fit(x, y, batch_size=8, epochs=1, steps_per_epoch=3, verbose=0)
    # every global-RNG draw of the loops happened as in Keras: the next draws agree
    return first, second, weights, torch.rand(4).numpy()


def test_fit_with_dropout_and_shuffle_equals_keras(keras_ref):
    (ref1, ref2, ref_w, ref_next), (got1, got2, got_w, got_next) = _fit(keras_ref), _fit(kerasish)
    np.testing.assert_array_equal(got_next, ref_next)
    for ref, got in ((ref1, got1), (ref2, got2)):
        assert ref.keys() == got.keys()
        for key in ref:
            np.testing.assert_allclose(got[key], ref[key], rtol=1e-6, atol=1e-6)
    for r, g in zip(ref_w, got_w):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-6)


def test_dropout_variables_match_keras(keras_ref):
    keras_ref.utils.clear_session()  # (kerasish's names are reset by conftest)
    ref, got = (
        k.Sequential([k.Input((4,)), k.layers.Dense(3), k.layers.Dropout(0.5, seed=3)]) for k in (keras_ref, kerasish)
    )
    for attr in ("variables", "non_trainable_variables", "weights", "non_trainable_weights", "trainable_variables"):
        assert [v.path for v in getattr(got, attr)] == [v.path for v in getattr(ref, attr)], attr
    drop_ref, drop = ref.layers[1], got.layers[1]
    assert [v.name for v in drop.variables] == [v.name for v in drop_ref.variables] == ["seed_generator_state"]
    assert drop.get_config()["seed"] == drop_ref.get_config()["seed"] == 3
    assert drop.seed_generator.get_config() == drop_ref.seed_generator.get_config()
    # the seed state is not saved: state_dict keys are those of the weights (old checkpoints load)
    assert list(got.state_dict()) == ["dense.kernel", "dense.bias"]


def test_unseeded_program_still_follows_torch_manual_seed():
    """Without set_random_seed, kerasish keeps torch's global RNG: torch.manual_seed alone reproduces."""
    def run():
        torch.manual_seed(0)
        layer = kerasish.layers.Dense(3)
        layer.build((None, 4))
        drop = kerasish.layers.GaussianNoise(0.5)
        return _np(layer.kernel), _np(drop(torch.ones(2, 3), training=True))

    (k1, n1), (k2, n2) = run(), run()
    np.testing.assert_array_equal(k1, k2)
    np.testing.assert_array_equal(n1, n2)


def test_initializer_seeded_by_a_seed_generator_round_trips_through_keras_config(keras_ref):
    ref = keras_ref.initializers.RandomNormal(seed=keras_ref.random.SeedGenerator(5))
    config = ref.get_config()  # the seed is a serialized SeedGenerator
    assert isinstance(config["seed"], dict)
    got = kerasish.initializers.RandomNormal.from_config(config)
    again = keras_ref.initializers.RandomNormal.from_config(config)
    for _ in range(2):  # the generator advances: a new draw per call, as in Keras
        np.testing.assert_array_equal(_np(got((3,))), _np(again((3,))))
    assert kerasish.initializers.RandomNormal.from_config(got.get_config()).get_config()["seed"]["config"]["seed"] == 5


def test_compiled_noise_layers_after_set_random_seed_have_no_graph_breaks():
    """Under torch.compile the noise layers use torch's global RNG (documented):
    seeded or not, Keras seeding mode adds no graph break and no recompile."""
    from torch._dynamo.testing import CompileCounter

    kerasish.utils.set_random_seed(1)
    model = kerasish.Sequential([
        kerasish.layers.Dense(4), kerasish.layers.Dropout(0.5), kerasish.layers.Dropout(0.5, seed=3),
        kerasish.layers.SpatialDropout1D(0.2, seed=1), kerasish.layers.GaussianNoise(0.2),
        kerasish.layers.AlphaDropout(0.1, seed=2),
    ])
    x = torch.ones(2, 3, 3)
    model(x)
    model.train()
    counter = CompileCounter()
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    first, second = compiled(x), compiled(x)
    assert counter.frame_count == 1
    assert not torch.equal(first, second)  # still random call after call
    assert model.layers[2].seed_generator.state.tolist() == [3, 0]  # (the counter does not advance when compiled)


def test_model_variables_list_every_seed_state_where_keras_does(keras_ref):
    def paths(k):
        k.utils.clear_session()
        i = k.Input((3, 4))
        h = k.layers.Dropout(0.2)(k.layers.LSTM(2, return_sequences=True)(i))
        a = k.layers.MultiHeadAttention(1, 2, dropout=0.1)(h, h)  # its Dropout is made in build, under its scope
        m = k.Model(i, k.layers.GaussianNoise(0.1)(a))
        return [v.path for v in m.variables], [v.path for v in m.non_trainable_variables], len(m.weights)

    assert paths(kerasish) == paths(keras_ref)


def test_weight_files_hold_no_seed_state_as_in_keras(keras_ref, tmp_path):
    h5py = pytest.importorskip("h5py", reason="weight files need h5py")

    def entries(k, path):
        k.utils.clear_session()
        m = k.Sequential([k.Input((4,)), k.layers.Dense(3), k.layers.Dropout(0.5, seed=3), k.layers.GaussianNoise(0.1)])
        m(np.ones((2, 4), "float32"), training=True)  # (advances the seed counters)
        m.save_weights(path)
        names = []
        with h5py.File(path) as f:
            f.visit(names.append)
        return names

    assert entries(kerasish, tmp_path / "j.weights.h5") == entries(keras_ref, tmp_path / "k.weights.h5")


_AUGMENTATIONS = {  # layer -> constructor args
    "RandomFlip": (), "RandomCrop": (4, 5), "MixUp": (), "CutMix": (), "RandomRotation": (0.2,),
    "RandomZoom": (0.2,), "RandomTranslation": (0.2, 0.2),
    "RandomContrast": (0.5,), "RandomBrightness": (0.3,), "RandomHue": (0.3,), "RandomSaturation": (0.3,),
    "RandomShear": (0.2,), "RandomErasing": (), "RandomGaussianBlur": (), "RandomColorJitter": (),
    "RandomInvert": (), "RandomGrayscale": (), "Solarization": (), "RandomPerspective": (),
}


def _augmented(k, seed):
    k.utils.set_random_seed(2)
    x = np.linspace(0, 1, 2 * 8 * 8 * 3).reshape(2, 8, 8, 3).astype("float32")
    layers = {name: getattr(k.layers, name)(*args, seed=seed) for name, args in _AUGMENTATIONS.items()}
    return {name: [_np(layer(x, training=True)) for _ in range(3)] for name, layer in layers.items()}


@pytest.mark.parametrize("seed", [None, 1])
def test_augmentation_layers_equal_keras_for_three_calls(keras_ref, seed):
    ref, got = _augmented(keras_ref, seed), _augmented(kerasish, seed)
    for name in _AUGMENTATIONS:
        for r, g in zip(ref[name], got[name]):
            if name == "RandomPerspective":  # same draws; its resampling arithmetic rounds differently (1e-7)
                np.testing.assert_allclose(g, r, rtol=0, atol=1e-6, err_msg=name)
            else:
                np.testing.assert_array_equal(g, r, err_msg=name)
