"""kerasish.random: Keras's seeding rules, bit-equal draws against real
Keras 3 (torch backend, CPU), moments/ranges against the distributions'
formulas, SeedGenerator state as a buffer, and torch.compile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish
from kerasish import random as krandom

DRAWS = [
    ("normal", ((3, 4),), {}),
    ("normal", ((5,),), {"mean": 2.0, "stddev": 0.5}),
    ("uniform", ((3, 4),), {"minval": -1.0, "maxval": 3.0}),
    ("uniform", ((),), {}),
    ("truncated_normal", ((4, 4),), {"stddev": 2.0}),
    ("randint", ((3, 4), 0, 10), {}),
    ("randint", ((6,), -5, 5), {"dtype": "int64"}),
    ("categorical", (torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, -1.0]]), 6), {}),
    ("shuffle", (torch.arange(12).reshape(4, 3),), {}),
    ("shuffle", (torch.arange(12).reshape(4, 3),), {"axis": 1}),
    ("gamma", ((5,), 2.0), {}),
    ("beta", ((5,), 2.0, 3.0), {}),
    ("binomial", ((5,), 10, 0.3), {}),
    ("dropout", (torch.ones(3, 4), 0.5), {}),
    ("dropout", (torch.ones(3, 4), 0.3), {"noise_shape": (None, 1)}),
]


@pytest.mark.parametrize("name,args,kwargs", DRAWS)
@pytest.mark.parametrize("seed", [42, 2**31 + 5])
def test_seeded_draws_equal_keras(keras_ref, name, args, kwargs, seed):
    theirs = getattr(keras_ref.random, name)(*args, seed=seed, **kwargs)
    ours = getattr(krandom, name)(*args, seed=seed, **kwargs)
    assert ours.dtype == theirs.dtype
    assert torch.equal(ours, theirs.cpu())
    # an int seed is stateless: the same draw every time
    assert torch.equal(getattr(krandom, name)(*args, seed=seed, **kwargs), ours)


def test_seed_generator_sequence_equals_keras(keras_ref):
    theirs, ours = keras_ref.random.SeedGenerator(7), krandom.SeedGenerator(7)
    draws = []
    for _ in range(3):
        a = keras_ref.random.uniform((4,), seed=theirs)
        b = krandom.uniform((4,), seed=ours)
        assert torch.equal(a.cpu(), b)
        draws.append(b)
    assert not torch.equal(draws[0], draws[1])
    assert ours.state.tolist() == [7, 3]


def test_unseeded_draws_differ_and_bad_seed_raises():
    assert not torch.equal(krandom.normal((8,)), krandom.normal((8,)))
    with pytest.raises(ValueError, match="seed"):
        krandom.normal((2,), seed="abc")
    with pytest.raises(ValueError, match="seed"):
        krandom.SeedGenerator(seed=1.5)
    with pytest.raises(ValueError, match="floating point"):
        krandom.uniform((2,), dtype="int32")
    with pytest.raises(ValueError, match="rate"):
        krandom.dropout(torch.ones(2), 1.5)


N = 200_000


@pytest.mark.parametrize("name,args,kwargs,mean,var", [
    ("normal", ((N,),), {"mean": 1.5, "stddev": 2.0}, 1.5, 4.0),
    ("uniform", ((N,),), {"minval": -1.0, "maxval": 3.0}, 1.0, 16 / 12),
    ("gamma", ((N,), 3.0), {}, 3.0, 3.0),
    ("beta", ((N,), 2.0, 3.0), {}, 0.4, 6 / (25 * 6)),
    ("binomial", ((N,), 10, 0.3), {}, 3.0, 2.1),
])
def test_moments_match_the_distribution(name, args, kwargs, mean, var):
    x = getattr(krandom, name)(*args, seed=3, **kwargs).double()
    se = np.sqrt(var / N)
    assert abs(x.mean().item() - mean) < 5 * se
    assert abs(x.var().item() - var) < 0.03 * var


def test_ranges():
    t = krandom.truncated_normal((N,), mean=1.0, stddev=0.5, seed=1)
    assert t.min() > 0.0 and t.max() < 2.0  # within 2 stddevs
    i = krandom.randint((N,), 3, 7, seed=1)
    assert set(i.unique().tolist()) == {3, 4, 5, 6}
    d = krandom.dropout(torch.ones(N), 0.25, seed=1)
    np.testing.assert_allclose(d.unique().numpy(), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs((d == 0).double().mean().item() - 0.25) < 0.01
    s = krandom.shuffle(torch.arange(100), seed=1)
    assert sorted(s.tolist()) == list(range(100))


class Noisy(kerasish.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = krandom.SeedGenerator(1337)

    def call(self, x):
        return x + krandom.normal(tuple(x.shape), seed=self.seed_generator)


def test_seed_generator_state_is_a_buffer_not_a_weight():
    layer = Noisy()
    x = torch.zeros(2, 3)
    first = layer(x)
    sd = {k: v.clone() for k, v in layer.state_dict().items()}
    assert sd["seed_generator.state"].tolist() == [1337, 1]
    assert layer.weights == [] and layer.get_weights() == []
    second = layer(x)
    assert not torch.equal(first, second)
    # restoring the state replays the same draw
    layer.load_state_dict(sd)
    assert torch.equal(layer(x), second)


def test_seed_generator_compiles_without_graph_break():
    gen = krandom.SeedGenerator(5)

    def f(x):
        return x + krandom.normal((4,), seed=gen) + krandom.uniform((4,), seed=gen)

    torch._dynamo.reset()
    out = torch.compile(f, fullgraph=True, backend="aot_eager")(torch.zeros(4))
    assert out.shape == (4,) and torch.isfinite(out).all()
    assert gen.state.tolist() == [5, 2]  # the state advanced inside the graph
