"""`ops.ctc_decode(strategy="beam_search")` (it raised NotImplementedError):
against real Keras 3 (torch backend) on random scores, lengths, beam widths,
path counts and blank indices, and against a brute-force reference from the
maths (every alignment enumerated, collapsed and summed), which a beam wide
enough to keep every prefix must reproduce exactly."""

import itertools

import numpy as np
import pytest
import torch

import kerasish as keras

RNG = np.random.default_rng(0)


def _case(i):
    rng = np.random.default_rng(100 + i)
    batch, steps, classes = 3, int(rng.integers(1, 14)), int(rng.integers(2, 8))
    x = (rng.normal(size=(batch, steps, classes)) * 2).astype("float32")
    lengths = rng.integers(0, steps + 1, batch).astype("int32")
    return x, lengths, int(rng.integers(1, 9)), int(rng.integers(1, 4)), int(rng.integers(0, classes))


@pytest.mark.parametrize("i", range(40))
def test_beam_search_matches_keras(keras_ref, i):
    x, lengths, beam_width, top_paths, mask_index = _case(i)
    kwargs = dict(strategy="beam_search", beam_width=beam_width, top_paths=top_paths, mask_index=mask_index)
    want_paths, want_scores = (np.asarray(v) for v in keras_ref.ops.ctc_decode(x, lengths, **kwargs))
    paths, scores = keras.ops.ctc_decode(x, lengths, **kwargs)
    assert paths.dtype == torch.int32 and scores.dtype == torch.float32
    np.testing.assert_array_equal(paths.numpy(), want_paths)
    np.testing.assert_allclose(scores.numpy(), want_scores, rtol=1e-5, atol=1e-5)


def _brute_force(logp, length, blank):
    """Every label sequence's total probability: the sum over all alignments
    of `length` steps that collapse to it (repeats merged, blanks dropped)."""
    totals = {}
    for alignment in itertools.product(range(logp.shape[1]), repeat=length):
        labels, prev = [], None
        for c in alignment:
            if c != prev and c != blank:
                labels.append(c)
            prev = c
        p = np.exp(sum(logp[t, c] for t, c in enumerate(alignment)))
        totals[tuple(labels)] = totals.get(tuple(labels), 0.0) + p
    return sorted(totals.items(), key=lambda kv: -kv[1])


@pytest.mark.parametrize("blank", [0, 2])
def test_a_beam_keeping_every_prefix_is_exact(blank):
    x = RNG.normal(size=(2, 5, 3)).astype("float64")
    lengths = np.array([5, 4])
    paths, scores = keras.ops.ctc_decode(x, lengths, strategy="beam_search", beam_width=200, top_paths=4,
                                         mask_index=blank)
    logp = torch.log_softmax(torch.tensor(x), dim=-1).numpy()
    for b in range(2):
        want = _brute_force(logp[b], int(lengths[b]), blank)[:4]
        for k, (labels, p) in enumerate(want):
            got = [int(v) for v in paths[k, b] if v >= 0]
            assert got == list(labels)
            np.testing.assert_allclose(float(scores[b, k]), np.log(p), rtol=1e-9)


def test_bad_arguments():
    x = np.zeros((1, 3, 4), "float32")
    with pytest.raises(ValueError, match="Invalid strategy"):
        keras.ops.ctc_decode(x, np.array([3]), strategy="prefix")
    with pytest.raises(ValueError, match="mask_index"):
        keras.ops.ctc_decode(x, np.array([3]), strategy="beam_search", mask_index=4)
    with pytest.raises(ValueError, match="beam_width"):
        keras.ops.ctc_decode(x, np.array([3]), strategy="beam_search", beam_width=0)
