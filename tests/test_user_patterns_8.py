"""Habits PyTorch users bring to kerasish layers (round 8): seeded random
preprocessing layers (and a fitted TextVectorization) inside a torch
`Dataset` read by spawned `DataLoader` workers (the workers shared the main
process's seed counter and raced on it: not reproducible, and the main
process's layer advanced too; now each worker has its own stream, as torch's
own random ops do).
References: the same pattern with torch's own random ops or `torch.nn`
modules holding the same weights (Keras kernels are (in, out), torch's
(out, in)), or the layer called in the main process.
"""

import numpy as np
import torch

import kerasish

L = kerasish.layers


# ------------------------------------------------ seeded augmentation in DataLoader workers
_TEXTS = ["the cat sat", "a dog ran far", "the dog sat down", "cat ran", "a cat", "dogs sat", "the end", "far"]


class _Augmented(torch.utils.data.Dataset):
    """Per item: a seeded kerasish Dropout and RandomFlip, torch's own `torch.rand` (the reference habit),
    and a fitted TextVectorization (a string layer pickled to the workers)."""

    def __init__(self, dropout, flip, vectorize):
        self.dropout, self.flip, self.vectorize = dropout, flip, vectorize

    def __len__(self):
        return len(_TEXTS)

    def __getitem__(self, i):
        ones = torch.ones(64)
        image = torch.arange(12.0).reshape(3, 4, 1)
        return (self.dropout(ones, training=True), self.flip(image, training=True), torch.rand(8),
                torch.as_tensor(self.vectorize(np.array([_TEXTS[i]]))[0]))


def _epochs(loader, n):
    out = []
    for _ in range(n):
        out.append([torch.cat(parts) for parts in zip(*loader)])
    return out


def test_seeded_augmentation_in_spawned_dataloader_workers_is_reproducible_and_per_worker_like_torch_rand():
    """A seeded Dropout / RandomFlip inside `Dataset.__getitem__` with `num_workers=2`: "spawn" pickles the
    dataset, which moves the layers' seed-state tensors into shared memory, so both workers advanced the main
    process's counter in whatever order they ran (outputs changed run to run; the main process's layer moved
    on too). Now, like torch's `torch.rand` in a worker (seeded per worker from the loader's base seed): the
    same `torch.manual_seed` gives the same samples, items differ across workers and across epochs, and the
    main process's layer is untouched. The TextVectorization output equals the main process's call."""
    dropout, flip = L.Dropout(0.5, seed=3), L.RandomFlip("horizontal", seed=4)
    vectorize = L.TextVectorization(output_sequence_length=4)
    vectorize.adapt(np.array(_TEXTS))
    states = [dropout.seed_generator.state.clone(), flip.seed_generator.state.clone()]
    dataset = _Augmented(dropout, flip, vectorize)

    def loader(**kwargs):
        # spawned workers, bounded waits: forking pytest-xdist's threaded worker can hang
        return torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, multiprocessing_context="spawn",
                                           timeout=120, **kwargs)

    torch.manual_seed(0)
    first, second = _epochs(loader(persistent_workers=True), 2)
    torch.manual_seed(0)
    (again,) = _epochs(loader(), 1)
    for ours, repeat in zip(first, again):  # reproducible under torch.manual_seed, like torch.rand
        torch.testing.assert_close(ours, repeat, rtol=0, atol=0)
    masks, flips, rands, tokens = first
    assert len({tuple(r.tolist()) for r in rands}) == len(_TEXTS)  # (torch.rand: every item its own numbers)
    assert len({tuple(m.tolist()) for m in masks}) == len(_TEXTS)  # batches 0 and 1 come from different workers
    assert set(torch.unique(masks).tolist()) == {0.0, 2.0}
    assert not torch.equal(first[0], second[0]) and not torch.equal(first[2], second[2])  # epochs differ
    image = torch.arange(12.0).reshape(3, 4, 1)
    flips = flips.reshape(len(_TEXTS), 3, 4, 1)
    assert all(torch.equal(f, image) or torch.equal(f, image.flip(1)) for f in flips)
    torch.testing.assert_close(tokens.reshape(len(_TEXTS), 4), torch.as_tensor(vectorize(np.array(_TEXTS))))
    # the main process's layers did not move (spawn shared their state's storage with the workers)
    torch.testing.assert_close(dropout.seed_generator.state, states[0], rtol=0, atol=0)
    torch.testing.assert_close(flip.seed_generator.state, states[1], rtol=0, atol=0)
