"""Keras 3 losses beyond the classic set: `CTC`, `Circle`,
`CategoricalGeneralizedCrossEntropy`, and their functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.losses.loss import Loss, to_tensor
from kerasish.losses.losses import LossFunctionWrapper
from kerasish.losses.losses import keras_power


def ctc(y_true, y_pred):
    """CTC loss per sample: `y_true` `(batch, max_label_length)` int labels
    padded with 0 (the blank), `y_pred` `(batch, time, classes)` logits."""
    y_true, y_pred = to_tensor(y_true), to_tensor(y_pred)
    if y_true.ndim != 2:
        raise ValueError(
            "Targets `y_true` are expected to be a tensor of shape `(batch_size, max_length)` in integer format. "
            f"Received: y_true.shape={tuple(y_true.shape)}"
        )
    if y_pred.ndim != 3:
        raise ValueError(
            "Logits `y_pred` are expected to be a tensor of shape `(batch_size, max_length, num_classes)`. "
            f"Received: y_pred.shape={tuple(y_pred.shape)}"
        )
    from kerasish.ops.nn_conv import ctc_loss

    mask_index = 0
    batch, time = y_pred.shape[0], y_pred.shape[1]
    input_length = torch.full((batch,), time, dtype=torch.int32, device=y_pred.device)
    label_length = (y_true != mask_index).sum(dim=-1).to(torch.int32)
    return ctc_loss(y_true, y_pred, label_length, input_length, mask_index=mask_index)


def _pos_neg_masks(query_labels, key_labels, remove_diagonal=True):
    query_labels = query_labels.reshape(-1, 1) if query_labels.ndim == 1 else query_labels
    key_labels = key_labels.reshape(-1, 1) if key_labels.ndim == 1 else key_labels
    positive = query_labels == key_labels.T
    negative = ~positive
    if remove_diagonal:
        eye = torch.eye(query_labels.numel(), key_labels.numel(), dtype=torch.bool, device=positive.device)
        positive = positive & ~eye
    return positive, negative


def circle(y_true, y_pred, ref_labels=None, ref_embeddings=None, remove_diagonal=True, gamma=80, margin=0.4):
    """Circle loss (Sun et al. 2020) of L2-normalised embeddings `y_pred`
    with integer labels `y_true`; pairs are formed with `ref_embeddings` /
    `ref_labels` (default: the batch itself). The result carries a Keras mask
    of its positive entries, so the default reduction averages over those."""
    y_pred = to_tensor(y_pred)
    y_true = to_tensor(y_true).to(torch.int32)
    ref_embeddings = y_pred if ref_embeddings is None else to_tensor(ref_embeddings, device=y_pred.device)
    ref_labels = y_true if ref_labels is None else to_tensor(ref_labels).to(torch.int32)
    optim_pos, optim_neg = margin, 1 + margin
    delta_pos, delta_neg = margin, 1 - margin
    distances = torch.clamp(1 - y_pred @ ref_embeddings.T, min=0.0)
    positive, negative = _pos_neg_masks(y_true, ref_labels, remove_diagonal=remove_diagonal)
    pos_weights = torch.clamp((optim_pos + distances) * positive.to(distances.dtype), min=0.0)
    neg_weights = torch.clamp((optim_neg - distances) * negative.to(distances.dtype), min=0.0)
    pos_wdists = -1 * gamma * pos_weights * (delta_pos - distances)
    neg_wdists = gamma * neg_weights * (delta_neg - distances)
    neg_inf = torch.tensor(float("-inf"), dtype=distances.dtype, device=distances.device)
    p_loss = torch.logsumexp(torch.where(positive, pos_wdists, neg_inf), dim=1)
    n_loss = torch.logsumexp(torch.where(negative, neg_wdists, neg_inf), dim=1)
    loss = F.softplus(p_loss + n_loss)
    loss._keras_mask = loss > 0
    return loss


def categorical_generalized_cross_entropy(y_true, y_pred, q):
    """Generalized cross-entropy `(1 - p_true ** q) / q` of integer labels
    `y_true` against probabilities `y_pred` (Zhang & Sabuncu 2018)."""
    y_pred = to_tensor(y_pred)
    labels = to_tensor(y_true, device=y_pred.device).to(torch.int64)
    one_hot = F.one_hot(labels, num_classes=y_pred.shape[-1]).to(y_pred.dtype)
    p = torch.sum(y_pred * one_hot, dim=-1)
    return (1 - keras_power(p, q)) / q


class CTC(LossFunctionWrapper):
    """Connectionist temporal classification loss (see `ctc`).

    Args:
        reduction: Defaults to "sum_over_batch_size".
        name: Defaults to "ctc".
        dtype: Loss computation dtype.
    """

    def __init__(self, reduction="sum_over_batch_size", name="ctc", dtype=None):
        super().__init__(ctc, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


class Circle(LossFunctionWrapper):
    """Circle loss for metric learning (see `circle`).

    Args:
        gamma: Scale factor. Defaults to 80.0.
        margin: Relaxation margin. Defaults to 0.4.
        remove_diagonal: Drop self-pairs from the positives. Defaults to True.
        reduction: Defaults to "sum_over_batch_size".
        name: Defaults to "circle".
        dtype: Loss computation dtype.
    """

    def __init__(self, gamma=80.0, margin=0.4, remove_diagonal=True, reduction="sum_over_batch_size",
                 name="circle", dtype=None):
        super().__init__(circle, name=name, reduction=reduction, dtype=dtype, gamma=gamma, margin=margin,
                         remove_diagonal=remove_diagonal)
        self.gamma, self.margin, self.remove_diagonal = gamma, margin, remove_diagonal

    def get_config(self):
        return {**Loss.get_config(self), "gamma": self.gamma, "margin": self.margin,
                "remove_diagonal": self.remove_diagonal}


class CategoricalGeneralizedCrossEntropy(LossFunctionWrapper):
    """Generalized cross-entropy for noisy labels (see `categorical_generalized_cross_entropy`).

    Args:
        q: In (0, 1); q -> 0 approaches cross-entropy, q = 1 is MAE. Defaults to 0.5.
        reduction: Defaults to "sum_over_batch_size".
        name: Defaults to "categorical_generalized_cross_entropy".
        dtype: Loss computation dtype.
    """

    def __init__(self, q=0.5, reduction="sum_over_batch_size", name="categorical_generalized_cross_entropy",
                 dtype=None):
        if not 0 < q < 1:
            raise ValueError(f"q must be in the interval (0, 1). Received: q={q}")
        super().__init__(categorical_generalized_cross_entropy, name=name, reduction=reduction, dtype=dtype, q=q)
        self.q = q

    def get_config(self):
        return {**Loss.get_config(self), "q": self.q}
