"""Seeded randomness equals real Keras 3 (torch backend), continued: `fit`,
`evaluate` and `predict` on a user's torch `DataLoader` after
`keras.utils.set_random_seed`.

Keras's torch backend iterates the DataLoader itself and opens iterators over
it that a training loop does not need: one to peek at a batch before the first
fit/evaluate/predict after `compile`, and one at once whenever a pass ends.
Each iterator draws its base seed (from torch's global RNG, or from the
loader's `generator=`), and a shuffling `RandomSampler` draws its permutation
when its first batch is read. Keras also never reads past `len(loader)`
batches, which matters to a loader with its own generator: a RandomSampler
that is read to its end draws one more permutation from it.

Each program runs once in `keras` (the reference) and once in `kerasish`, with
no weights copied (set_random_seed makes them equal). Losses, weights and the
next draws of torch's global RNG, Python's random and the loader's generator
must equal Keras's; trained numbers get 1e-6.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import kerasish

_X = np.random.default_rng(0).normal(size=(40, 5)).astype("float32")
_Y = np.random.default_rng(1).normal(size=(40, 1)).astype("float32")


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _run(k, *, dropout_seed=None, loader_generator=False, validation=False, steps_per_epoch=None,
         before_fit=None):
    k.utils.set_random_seed(7)
    generator = torch.Generator().manual_seed(5) if loader_generator else None
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(_X), torch.from_numpy(_Y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=True, generator=generator)
    model = k.Sequential([k.Input((5,)), k.layers.Dense(8, activation="relu"),
                          k.layers.Dropout(0.5, seed=dropout_seed), k.layers.Dense(1)])
    model.compile("sgd", "mse")
    before = []
    if before_fit == "evaluate":
        before.append(model.evaluate(loader, verbose=0))
    elif before_fit == "predict":
        before.append(_np(model.predict(loader, verbose=0)))
    history = model.fit(loader, epochs=2 if steps_per_epoch is None else 3, steps_per_epoch=steps_per_epoch,
                        validation_data=loader if validation else None, verbose=0)
    after = model.evaluate(loader, verbose=0)
    return {
        "history": history.history,
        "before": before,
        "after": after,
        "weights": [_np(w) for w in model.get_weights()],
        "torch_rng": _np(torch.rand(3)),
        "python_rng": random.random(),
        "loader_rng": _np(torch.rand(3, generator=generator)) if generator is not None else None,
    }


def _assert_same(ref, got):
    assert got["history"].keys() == ref["history"].keys()
    for key, values in ref["history"].items():
        np.testing.assert_allclose(got["history"][key], values, rtol=0, atol=1e-6, err_msg=key)
    for a, b in zip(ref["before"], got["before"]):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["after"], ref["after"], rtol=0, atol=1e-6)
    for a, b in zip(ref["weights"], got["weights"]):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got["torch_rng"], ref["torch_rng"])
    assert got["python_rng"] == ref["python_rng"]
    if ref["loader_rng"] is not None:
        np.testing.assert_array_equal(got["loader_rng"], ref["loader_rng"])


@pytest.mark.parametrize("dropout_seed", [None, 3])
@pytest.mark.parametrize("validation", [False, True])
def test_fit_on_a_shuffled_data_loader_equals_keras(keras_ref, dropout_seed, validation):
    # the loader's base seeds and sampler seeds come from torch's global RNG, between the
    # unseeded dropout masks (also from it after set_random_seed)
    _assert_same(_run(keras_ref, dropout_seed=dropout_seed, validation=validation),
                 _run(kerasish, dropout_seed=dropout_seed, validation=validation))


def test_fit_on_a_data_loader_with_its_own_generator_equals_keras(keras_ref):
    # every iterator Keras opens draws from the loader's generator, and the sampler's
    # permutations too; a pass read to its end would draw one permutation more
    ref = _run(keras_ref, loader_generator=True, validation=True)
    got = _run(kerasish, loader_generator=True, validation=True)
    _assert_same(ref, got)


def test_fit_on_a_data_loader_with_steps_per_epoch_equals_keras(keras_ref):
    # 3 steps of a 5-batch loader per epoch: an iterator is continued across epochs
    # and a new one opens when a pass ends mid-epoch
    with pytest.warns(UserWarning):
        ref = _run(keras_ref, steps_per_epoch=3, validation=True)
    with pytest.warns(UserWarning):
        got = _run(kerasish, steps_per_epoch=3, validation=True)
    _assert_same(ref, got)


@pytest.mark.parametrize("first", ["evaluate", "predict"])
def test_evaluate_or_predict_before_fit_on_a_data_loader_equals_keras(keras_ref, first):
    _assert_same(_run(keras_ref, before_fit=first, loader_generator=first == "predict"),
                 _run(kerasish, before_fit=first, loader_generator=first == "predict"))


def test_a_data_loader_pass_stops_at_its_length():
    """Without set_random_seed too, fit reads len(loader) batches per pass and
    no more: a RandomSampler with the loader's generator draws one permutation
    per pass (and its iterator one base seed), never the extra one that
    reading the sampler to its end draws."""
    generator = torch.Generator().manual_seed(11)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(_X), torch.from_numpy(_Y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=True, generator=generator)
    model = kerasish.Sequential([kerasish.Input((5,)), kerasish.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(loader, epochs=2, verbose=0)
    # the same draws by hand: per pass an iterator's base seed, then one permutation
    expected = torch.Generator().manual_seed(11)
    for _ in range(2):
        torch.empty((), dtype=torch.int64).random_(generator=expected)
        torch.randperm(len(dataset), generator=expected)
    np.testing.assert_array_equal(_np(torch.rand(4, generator=generator)), _np(torch.rand(4, generator=expected)))


def _custom_step_run(k, *, built):
    """The book's ch07 torch `train_step` (no compiled loss or metrics): Keras
    peeks at a batch only while something is unbuilt, here the model when
    `built` is False."""
    k.utils.set_random_seed(7)
    loss_fn = k.losses.MeanSquaredError()
    returned = []  # the loss each step returns

    class CustomModel(k.Model):
        def __init__(self):
            super().__init__()
            self.hidden = k.layers.Dense(8, activation="relu")
            self.dropout = k.layers.Dropout(0.5)
            self.out = k.layers.Dense(1)

        def call(self, inputs, training=False):
            return self.out(self.dropout(self.hidden(inputs), training=training))

        def train_step(self, data):
            inputs, targets = data
            self.zero_grad()
            loss = loss_fn(targets, self(inputs, training=True))
            loss.backward()
            with torch.no_grad():
                self.optimizer.apply([v.value.grad for v in self.trainable_weights], self.trainable_weights)
            returned.append(float(loss))
            return {"loss": loss.detach()}

    model = CustomModel()
    if built:
        model(_X[:2])
    model.compile(optimizer=k.optimizers.SGD(0.1))
    history = model.fit(_X, _Y, batch_size=8, epochs=2, verbose=0)
    steps = len(returned) // 2
    return {"history": history.history, "last_step_losses": returned[steps - 1::steps], "before": [], "after": model.predict(_X, verbose=0),
            "weights": [_np(w) for w in model.get_weights()], "torch_rng": _np(torch.rand(3)),
            "python_rng": random.random(), "loader_rng": None}


@pytest.mark.parametrize("built", [True, False], ids=["built", "unbuilt"])
def test_fit_of_a_custom_train_step_compiled_without_loss_equals_keras(keras_ref, built):
    # kerasish peeked after every compile: a built model compiled with an optimizer only got
    # other Dropout masks (and shuffles) than Keras's
    ref, got = _custom_step_run(keras_ref, built=built), _custom_step_run(kerasish, built=built)
    # The step returns {"loss": loss} without updating the loss tracker: Keras 3.15 logs the empty tracker's
    # 0.0, kerasish the step's own loss as tf.keras 2 did (a deliberate difference, see CHANGELOG); the
    # returned losses themselves must be Keras's.
    np.testing.assert_array_equal(ref["history"]["loss"], [0.0, 0.0])
    np.testing.assert_allclose(got["last_step_losses"], ref["last_step_losses"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["history"]["loss"], ref["last_step_losses"], rtol=0, atol=1e-6)
    ref["history"] = got["history"]
    _assert_same(ref, got)


@pytest.mark.parametrize("rnn", ["GRU", "LSTM", "SimpleRNN"])
@pytest.mark.parametrize("case", ["masked", "recurrent_dropout"])
def test_dropout_after_a_sequence_rnn_draws_keras_masks(keras_ref, rnn, case):
    """Keras's RNN outputs are time-major in memory (its loop stacks the steps, then transposes), and
    `Dropout` fills its random mask in memory order: kerasish's masked and recurrent-dropout paths
    returned batch-major outputs, so after set_random_seed the Dropout masks after them (Deep
    Learning with Python's seq2seq decoder) fell on other elements than Keras's."""
    ids = np.random.default_rng(0).integers(1, 20, (8, 6))
    ids[:, 4:] = 0

    def run(k):
        k.utils.set_random_seed(3)
        inputs = k.Input(shape=(None,), dtype="int32")
        x = k.layers.Embedding(20, 4, mask_zero=case == "masked")(inputs)
        kwargs = {"recurrent_dropout": 0.3} if case == "recurrent_dropout" else {}
        x = getattr(k.layers, rnn)(5, return_sequences=True, **kwargs)(x)
        model = k.Model(inputs, k.layers.Dropout(0.5)(x))
        return _np(model(ids, training=True)), _np(torch.rand(3))

    (theirs, their_rng), (ours, our_rng) = run(keras_ref), run(kerasish)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(our_rng, their_rng)
