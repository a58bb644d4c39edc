"""`keras.random` on torch: seeded draws that match Keras 3's torch backend
in eager mode, and a `SeedGenerator` whose state is a module buffer."""

from kerasish.random.random import beta
from kerasish.random.random import binomial
from kerasish.random.random import categorical
from kerasish.random.random import dropout
from kerasish.random.random import gamma
from kerasish.random.random import normal
from kerasish.random.random import randint
from kerasish.random.random import shuffle
from kerasish.random.random import truncated_normal
from kerasish.random.random import uniform
from kerasish.random.seed_generator import SeedGenerator

__all__ = ["SeedGenerator", "beta", "binomial", "categorical", "dropout", "gamma", "normal", "randint", "shuffle",
           "truncated_normal", "uniform"]
