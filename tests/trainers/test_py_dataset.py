"""`keras.utils.PyDataset` / `Sequence` in `fit`, `evaluate` and `predict`."""

import os
import pickle
import threading

import numpy as np
import pytest

import kerasish as keras
from kerasish.trainers.py_dataset_adapter import PyDatasetAdapter


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_ended = 0
        self.threads = set()

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, i):
        self.threads.add(threading.get_ident())
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return (self.x[s], self.y[s]) if self.y is not None else self.x[s]

    def on_epoch_end(self):
        self.epochs_ended += 1


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype("float32")
    return x, (x @ rng.normal(size=(3, 1))).astype("float32")


def _pair():
    a = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    b = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return a, b


@pytest.mark.parametrize("workers", [1, 3])
def test_fit_on_a_py_dataset_equals_fit_on_arrays(workers):
    x, y = _data()
    ref, model = _pair()
    h_ref = ref.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0)
    ds = Batches(x, y, 6, workers=workers, use_multiprocessing=False)
    h = model.fit(ds, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ref.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h.history["loss"], h_ref.history["loss"], rtol=1e-6)
    assert ds.epochs_ended == 3  # (as Keras: one more before the first epoch, see the test below)
    if workers > 1:
        assert threading.get_ident() not in ds.threads  # fetched by the worker threads
    np.testing.assert_allclose(model.evaluate(ds, verbose=0), ref.evaluate(x, y, batch_size=6, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(model.predict(Batches(x, None, 6), verbose=0), ref.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forked workers inherit the dataset only where processes fork")
def test_multiprocessing_workers_inherit_a_dataset_defined_in_a_function():
    """As Keras's worker pool (fork, the dataset passed to its initializer):
    a PyDataset class defined in a function, which cannot pickle, works
    with `use_multiprocessing=True`, and its batches come from the workers."""
    x, y = _data()
    ref, model = _pair()
    h_ref = ref.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0)

    class Local(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return x[6 * i:6 * i + 6], y[6 * i:6 * i + 6], np.full(len(x[6 * i:6 * i + 6]), os.getpid(), "float32")

    with pytest.raises(Exception, match="pickle"):
        pickle.dumps(Local())
    # the third element of each batch is the pid of the process that made it
    batches = list(PyDatasetAdapter(Local(workers=2, use_multiprocessing=True)))
    pids = {int(b[2][0]) for b in batches}
    assert os.getpid() not in pids and len(batches) == 4
    for i, b in enumerate(batches):
        np.testing.assert_array_equal(b[0].numpy(), x[6 * i:6 * i + 6])

    class Pairs(Local):
        def __getitem__(self, i):
            return x[6 * i:6 * i + 6], y[6 * i:6 * i + 6]

    h = model.fit(Pairs(workers=2, use_multiprocessing=True), epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ref.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h.history["loss"], h_ref.history["loss"], rtol=1e-6)


def test_shuffled_py_dataset_visits_every_batch_once_per_epoch():
    x, y = _data()
    seen = []

    class Recording(Batches):
        def __getitem__(self, i):
            seen.append(i)
            return super().__getitem__(i)

    model, _ = _pair()
    model.fit(Recording(x, y, 6), epochs=1, shuffle=True, verbose=0)
    # (the first read is the peek before the first pass, as Keras's)
    assert len(seen) == 5 and sorted(seen[1:]) == [0, 1, 2, 3]


def test_sequence_is_the_keras2_name_and_targets_are_refused():
    assert keras.utils.Sequence is keras.utils.PyDataset
    x, y = _data()
    model, _ = _pair()
    with pytest.raises(ValueError, match="`y` should not be passed"):
        model.fit(Batches(x, y, 6), y, verbose=0)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_bare_x_batches_reach_train_step_as_a_one_element_sequence(keras_ref, as_tensor):
    """Keras standardizes a bare `x` batch of a PyDataset to `(x,)` (its torch
    backend hands train_step the DataLoader's `[x]`): `data[0]` is the batch,
    as in Keras, never its first row (keras.io's metric_learning example
    indexes it so). kerasish gives the tuple, as Keras on TensorFlow/JAX."""
    import torch

    seen = {}
    for lib in (keras_ref, keras):

        class XOnly(lib.utils.PyDataset):
            def __len__(self):
                return 2

            def __getitem__(self, i):
                x = np.full((4, 3), float(i), "float32")
                return torch.from_numpy(x) if as_tensor and lib is keras else x

        class Probe(lib.Model):
            def __init__(self):
                super().__init__()
                self.dense = lib.layers.Dense(1)

            def call(self, x):
                return self.dense(x)

            def train_step(self, data):
                seen.setdefault(lib.__name__, []).append((type(data).__name__, len(data), tuple(data[0].shape)))
                return {}

        model = Probe()
        model(np.zeros((1, 3), "float32"))
        model.compile(optimizer="sgd")
        model.fit(XOnly(), epochs=1, verbose=0)
        assert model.predict(XOnly(), verbose=0).shape == (8, 1)
    assert [s[1:] for s in seen["kerasish"]] == [s[1:] for s in seen["keras"]] == [(1, (4, 3))] * 2
    assert [s[0] for s in seen["kerasish"]] == ["tuple", "tuple"]


def test_fit_and_evaluate_end_a_pass_before_their_first_as_keras_does(keras_ref):
    """Keras's fit and evaluate call the dataset's `on_epoch_end()` once before their first pass
    (`epoch_iterator.reset()`), before every validation pass too: a dataset that reshuffles there
    (the keras.io MPNN example's) trains its first epoch on the reshuffled order. kerasish did not,
    so its batches came in another order and the whole History differed."""

    def events(lib):
        lib.utils.set_random_seed(3)

        class Logged(lib.utils.PyDataset):
            def __init__(self, tag, log):
                super().__init__()
                self.tag, self.log = tag, log
                self.x = np.arange(12, dtype="float32").reshape(6, 2)

            def __len__(self):
                return 3

            def __getitem__(self, i):
                self.log.append((self.tag, "get"))
                s = slice(2 * i, 2 * i + 2)
                return self.x[s], self.x[s, :1]

            def on_epoch_begin(self):
                self.log.append((self.tag, "begin"))

            def on_epoch_end(self):
                self.log.append((self.tag, "end"))

        log = []
        model = lib.Sequential([lib.Input((2,)), lib.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(Logged("train", log), validation_data=Logged("val", log), epochs=2, verbose=0, shuffle=False)
        log.append(("-", "evaluate"))
        model.evaluate(Logged("eval", log), verbose=0)
        # (the peek at a first batch that builds the metrics comes before the extra end, in Keras a
        # `get` from a torch DataLoader's prefetch: only the begin/end calls are compared)
        return [e for e in log if e[1] != "get"]

    theirs = events(keras_ref)
    assert theirs[:3] == [("train", "begin"), ("train", "end"), ("train", "begin")]
    assert events(keras) == theirs


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_peek_before_a_first_fit_reads_a_batch_as_keras_does(keras_ref, shuffle):
    """Keras's first fit/evaluate after `compile` reads the first batch of a (shuffled) pass to
    build the compiled metrics: `__getitem__` runs once more, before the epochs. kerasish made the
    peek's RNG draws but did not read the batch, so a dataset augmenting in `__getitem__` (Deep
    Learning with Python's ch08 `RandomFlip` / `RandomRotation` / `RandomZoom` pipeline) drew
    other augmentations in every epoch than Keras: the whole History differed."""

    def run(lib):
        lib.utils.set_random_seed(3)
        log = []
        flip = lib.layers.RandomFlip("horizontal")
        images = np.random.default_rng(0).random((6, 4, 4, 1)).astype("float32")

        class Augmented(lib.utils.PyDataset):
            def __len__(self):
                return 3

            def __getitem__(self, i):
                log.append(i)
                s = slice(2 * i, 2 * i + 2)
                return flip(images[s]), images[s, 0, 0]

        model = lib.Sequential([lib.Input((4, 4, 1)), lib.layers.Flatten(), lib.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(Augmented(), epochs=2, verbose=0, shuffle=shuffle)
        log.append("evaluate")
        model.evaluate(Augmented(), verbose=0)
        model.compile(optimizer="sgd", loss="mse")
        log.append("evaluate after compile")
        model.evaluate(Augmented(), verbose=0)
        return log, history.history["loss"]

    (their_log, their_loss), (our_log, our_loss) = run(keras_ref), run(keras)
    assert len(their_log) == 1 + 6 + 1 + 3 + 1 + 4  # Keras reads a batch before fit's first pass
    assert our_log == their_log
    np.testing.assert_allclose(our_loss, their_loss, rtol=1e-6)
