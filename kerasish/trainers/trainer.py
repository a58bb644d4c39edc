"""`Trainer`: compile / fit / evaluate / predict for `keras.Model`.

Placeholder base so `Model` can be defined; filled in by the training work.
"""


class Trainer:
    """Mixin holding the Keras training API."""
