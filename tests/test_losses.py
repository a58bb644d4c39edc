"""Losses vs real Keras 3 (torch backend) on the same random inputs."""

import numpy as np
import pytest
import torch

import kerasish.losses as losses

RTOL, ATOL = 1e-5, 1e-6
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None]


def _inputs(kind, rng, shape=(6, 5)):
    if kind == "reg":
        return rng.standard_normal(shape).astype("float32"), rng.standard_normal(shape).astype("float32")
    if kind == "pos":
        return rng.uniform(0.1, 3, shape).astype("float32"), rng.uniform(0.1, 3, shape).astype("float32")
    if kind == "binary_prob":
        return rng.integers(0, 2, shape).astype("float32"), rng.uniform(0, 1, shape).astype("float32")
    if kind == "binary_logit":
        return rng.integers(0, 2, shape).astype("float32"), (3 * rng.standard_normal(shape)).astype("float32")
    if kind == "onehot_prob":
        y = np.eye(shape[-1], dtype="float32")[rng.integers(0, shape[-1], shape[:-1])]
        p = rng.uniform(0, 1, shape).astype("float32")
        return y, p / p.sum(-1, keepdims=True)
    if kind == "onehot_logit":
        y = np.eye(shape[-1], dtype="float32")[rng.integers(0, shape[-1], shape[:-1])]
        return y, (3 * rng.standard_normal(shape)).astype("float32")
    if kind == "sparse_prob":
        p = rng.uniform(0, 1, shape).astype("float32")
        return rng.integers(0, shape[-1], shape[:-1]), p / p.sum(-1, keepdims=True)
    if kind == "sparse_logit":
        return rng.integers(0, shape[-1], shape[:-1]), (3 * rng.standard_normal(shape)).astype("float32")
    if kind == "hinge":
        return rng.choice([-1.0, 1.0], shape).astype("float32"), rng.standard_normal(shape).astype("float32")
    raise AssertionError(kind)


CASES = [
    ("MeanSquaredError", {}, "reg"),
    ("MeanAbsoluteError", {}, "reg"),
    ("MeanAbsolutePercentageError", {}, "reg"),
    ("MeanSquaredLogarithmicError", {}, "pos"),
    ("Huber", {"delta": 0.7}, "reg"),
    ("LogCosh", {}, "reg"),
    ("CosineSimilarity", {}, "reg"),
    ("CosineSimilarity", {"axis": 0}, "reg"),
    ("KLDivergence", {}, "onehot_prob"),
    ("Poisson", {}, "pos"),
    ("Hinge", {}, "hinge"),
    ("Hinge", {}, "binary_logit"),
    ("SquaredHinge", {}, "binary_logit"),
    ("CategoricalHinge", {}, "onehot_logit"),
    ("BinaryCrossentropy", {}, "binary_prob"),
    ("BinaryCrossentropy", {"from_logits": True}, "binary_logit"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, "binary_logit"),
    ("BinaryCrossentropy", {"label_smoothing": 0.1, "axis": 0}, "binary_prob"),
    ("CategoricalCrossentropy", {}, "onehot_prob"),
    ("CategoricalCrossentropy", {"from_logits": True}, "onehot_logit"),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.3}, "onehot_logit"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "onehot_prob"),
    ("SparseCategoricalCrossentropy", {}, "sparse_prob"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logit"),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 2}, "sparse_logit"),
    ("BinaryFocalCrossentropy", {}, "binary_prob"),
    ("BinaryFocalCrossentropy", {"from_logits": True, "apply_class_balancing": True, "alpha": 0.3}, "binary_logit"),
    ("BinaryFocalCrossentropy", {"gamma": 1.5, "label_smoothing": 0.1}, "binary_prob"),
    ("CategoricalFocalCrossentropy", {}, "onehot_prob"),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "label_smoothing": 0.1, "gamma": 3.0}, "onehot_logit"),
    ("Dice", {}, "binary_prob"),
    ("Tversky", {"alpha": 0.3, "beta": 0.7}, "binary_prob"),
]


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@pytest.mark.parametrize(("cls_name", "kwargs", "kind"), CASES, ids=lambda v: str(v))
def test_loss_matches_keras(keras_ref, rng, cls_name, kwargs, kind):
    y_true, y_pred = _inputs(kind, rng)
    sw_vec = rng.uniform(0, 2, (y_pred.shape[0],)).astype("float32")
    for reduction in REDUCTIONS:
        ours = getattr(losses, cls_name)(reduction=reduction, **kwargs)
        ref = getattr(keras_ref.losses, cls_name)(reduction=reduction, **kwargs)
        for sw in (None,) if kwargs.get("axis") == 0 else (None, sw_vec):
            got = ours(torch.as_tensor(y_true), torch.as_tensor(y_pred), sample_weight=sw)
            want = ref(y_true, y_pred, sample_weight=sw)
            np.testing.assert_allclose(
                _np(got), keras_ref.ops.convert_to_numpy(want), rtol=RTOL, atol=ATOL, err_msg=f"{reduction} sw={sw is not None}"
            )
            assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    # config round trip gives the same config and the same numbers
    cfg = ours.get_config()
    # equal to Keras's config; Huber/CosineSimilarity also keep delta/axis, which Keras 3.15 drops
    assert ref.get_config().items() <= cfg.items()
    clone = type(ours).from_config(cfg)
    np.testing.assert_allclose(_np(clone(y_true, y_pred)), _np(ours(y_true, y_pred)), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("fn", "kind", "kwargs"),
    [
        ("mean_squared_error", "reg", {}), ("mse", "reg", {}), ("mae", "reg", {}), ("mape", "reg", {}),
        ("msle", "pos", {}), ("kl_divergence", "onehot_prob", {}), ("kld", "onehot_prob", {}),
        ("huber", "reg", {"delta": 2.0}), ("log_cosh", "reg", {}), ("poisson", "pos", {}),
        ("hinge", "binary_logit", {}), ("squared_hinge", "hinge", {}), ("categorical_hinge", "onehot_logit", {}),
        ("cosine_similarity", "reg", {"axis": -1}),
        ("binary_crossentropy", "binary_prob", {}), ("binary_crossentropy", "binary_logit", {"from_logits": True}),
        ("categorical_crossentropy", "onehot_prob", {"label_smoothing": 0.2}),
        ("categorical_crossentropy", "onehot_logit", {"from_logits": True}),
        ("sparse_categorical_crossentropy", "sparse_prob", {}),
        ("sparse_categorical_crossentropy", "sparse_logit", {"from_logits": True}),
        ("binary_focal_crossentropy", "binary_logit", {"from_logits": True}),
        ("categorical_focal_crossentropy", "onehot_prob", {}),
    ],
)
def test_function_forms_match_keras(keras_ref, rng, fn, kind, kwargs):
    y_true, y_pred = _inputs(kind, rng, shape=(4, 3, 5))
    got = getattr(losses, fn)(torch.as_tensor(y_true), torch.as_tensor(y_pred), **kwargs)
    ref_fn = getattr(keras_ref.losses, fn, None) or keras_ref.losses.get(fn)
    want = keras_ref.ops.convert_to_numpy(ref_fn(y_true, y_pred, **kwargs))
    assert tuple(got.shape) == want.shape
    np.testing.assert_allclose(_np(got), want, rtol=RTOL, atol=ATOL)


def test_sample_weight_shapes_and_masks(keras_ref, rng):
    y_true, y_pred = _inputs("reg", rng, shape=(4, 3, 2))
    for sw in [rng.uniform(0, 1, (4, 1)), rng.uniform(0, 1, (4, 3)), rng.uniform(0, 1, (4, 3, 1)), 0.5]:
        for reduction in ["sum_over_batch_size", "sum", "mean_with_sample_weight", "none"]:
            got = losses.MeanSquaredError(reduction=reduction)(y_true, y_pred, sample_weight=sw)
            want = keras_ref.losses.MeanSquaredError(reduction=reduction)(y_true, y_pred, sample_weight=sw)
            np.testing.assert_allclose(_np(got), keras_ref.ops.convert_to_numpy(want), rtol=RTOL, atol=ATOL)
    # y_pred mask: masked entries excluded from the mean (Keras semantics)
    mask = rng.integers(0, 2, (4, 3)).astype(bool)
    yp = torch.as_tensor(y_pred)
    yp._keras_mask = torch.as_tensor(mask)
    ref_pred = keras_ref.ops.convert_to_tensor(y_pred)
    ref_pred._keras_mask = keras_ref.ops.convert_to_tensor(mask)
    for reduction in ["sum_over_batch_size", "sum"]:
        got = losses.MeanSquaredError(reduction=reduction)(torch.as_tensor(y_true), yp)
        want = keras_ref.losses.MeanSquaredError(reduction=reduction)(y_true, ref_pred)
        np.testing.assert_allclose(_np(got), keras_ref.ops.convert_to_numpy(want), rtol=RTOL, atol=ATOL)


def test_integer_labels_and_rank_handling(keras_ref, rng):
    y = rng.integers(0, 4, (5, 1)).astype("int64")
    logits = rng.standard_normal((5, 4)).astype("float32")
    got = losses.SparseCategoricalCrossentropy(from_logits=True)(torch.as_tensor(y), torch.as_tensor(logits))
    want = keras_ref.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    np.testing.assert_allclose(_np(got), keras_ref.ops.convert_to_numpy(want), rtol=RTOL, atol=ATOL)
    # class axis 1 on (N, C, L) and BCE with (N,) labels vs (N, 1) predictions
    yl = rng.integers(0, 4, (3, 6))
    lg = rng.standard_normal((3, 4, 6)).astype("float32")
    got = losses.sparse_categorical_crossentropy(torch.as_tensor(yl), torch.as_tensor(lg), from_logits=True, axis=1)
    want = keras_ref.losses.sparse_categorical_crossentropy(yl, lg, from_logits=True, axis=1)
    np.testing.assert_allclose(_np(got), keras_ref.ops.convert_to_numpy(want), rtol=RTOL, atol=ATOL)
    yb = rng.integers(0, 2, (7,)).astype("float32")
    pb = rng.uniform(0, 1, (7, 1)).astype("float32")
    got = losses.BinaryCrossentropy()(yb, pb)
    want = keras_ref.losses.BinaryCrossentropy()(yb, pb)
    np.testing.assert_allclose(_np(got), keras_ref.ops.convert_to_numpy(want), rtol=RTOL, atol=ATOL)


def _loss_and_grad(loss_obj, y, p):
    p = p.detach().clone().requires_grad_(True)
    loss = loss_obj(y, p)
    loss.backward()
    return loss.detach().numpy(), p.grad.numpy()


def test_gradients_at_extreme_probs_match_keras(keras_ref):
    """Probabilities at exactly 0 and 1 (clipped to [eps, 1 - eps]) and
    logits: the loss and its gradient equal Keras's (its torch backend
    runs on the same autograd)."""
    y = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    p = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 2, 1])
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)) * 4
    onehot = torch.eye(3)[labels]
    probs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    cases = [
        ("BinaryCrossentropy", {}, y, p),
        ("BinaryCrossentropy", {"from_logits": True}, y, p * 40 - 20),
        ("BinaryFocalCrossentropy", {}, y, p),
        ("CategoricalCrossentropy", {}, onehot, probs),
        ("CategoricalCrossentropy", {"label_smoothing": 0.1}, onehot, probs),
        ("SparseCategoricalCrossentropy", {"from_logits": True}, labels, logits),
        ("SparseCategoricalCrossentropy", {}, labels, probs),
        ("KLDivergence", {}, onehot, probs),
        ("Poisson", {}, onehot, probs),
    ]
    for name, kwargs, target, pred in cases:
        ours_loss, ours_grad = _loss_and_grad(getattr(losses, name)(**kwargs), target, pred)
        ref_loss, ref_grad = _loss_and_grad(getattr(keras_ref.losses, name)(**kwargs), target, pred)
        assert np.isfinite(ours_loss).all() and np.isfinite(ours_grad).all(), name
        np.testing.assert_allclose(ours_loss, ref_loss, rtol=RTOL, atol=ATOL, err_msg=f"{name} {kwargs}")
        np.testing.assert_allclose(ours_grad, ref_grad, rtol=1e-4, atol=1e-6, err_msg=f"{name} {kwargs} grad")


def test_float64_inputs_are_computed_in_the_loss_dtype_like_keras(keras_ref):
    zeros, ones = torch.zeros(2, 2, dtype=torch.float64), torch.ones(2, 2, dtype=torch.float64)
    for kwargs in ({}, {"dtype": "float64", "reduction": "sum"}, {"dtype": "float64"}):
        ours = losses.MeanSquaredError(**kwargs)(zeros, ones)
        theirs = keras_ref.losses.MeanSquaredError(**kwargs)(zeros, ones)
        assert float(ours) == pytest.approx(float(theirs))
        if kwargs.get("reduction") is None and "dtype" in kwargs:
            # Keras 3.15's torch `ops.divide_no_nan` (the mean) returns float32
            # for float64 operands, against its own `dtype=` (the "sum" row
            # above stays float64 there): kerasish keeps the loss dtype
            assert ours.dtype == torch.float64 and theirs.dtype == torch.float32
        else:
            assert ours.dtype == theirs.dtype, kwargs


def test_get_serialize_deserialize():
    assert losses.get("mse") is losses.mean_squared_error
    assert losses.get("MSE") is losses.mean_squared_error
    assert losses.get("categorical_crossentropy") is losses.categorical_crossentropy
    assert isinstance(losses.get("MeanSquaredError"), losses.MeanSquaredError)
    obj = losses.get({"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}})
    assert isinstance(obj, losses.CategoricalCrossentropy) and obj.from_logits
    fn = lambda a, b: (a - b).abs().sum()  # noqa: E731
    assert losses.get(fn) is fn
    assert losses.get(None) is None
    with pytest.raises(ValueError, match="nope"):
        losses.get("nope")
    cfg = losses.serialize(losses.Huber(delta=2.0, reduction="sum"))
    assert cfg["module"] == "keras.losses" and cfg["class_name"] == "Huber"
    restored = losses.deserialize(cfg)
    assert isinstance(restored, losses.Huber) and restored.reduction == "sum" and restored.delta == 2.0
    assert losses.deserialize("mse") is losses.mean_squared_error
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="avg")
    wrapper = losses.LossFunctionWrapper(losses.huber, delta=0.5, name="h")
    clone = losses.LossFunctionWrapper.from_config(wrapper.get_config())
    assert clone.fn is losses.huber and clone._fn_kwargs == {"delta": 0.5}


def test_custom_loss_subclass(keras_ref):
    def make(L):
        class MyLoss(L.Loss):
            def call(self, y_true, y_pred):
                return (y_pred - y_true).abs().mean(-1)

        return MyLoss

    loss = make(losses)()
    assert loss.name == "my_loss" and loss.dtype == "float32"
    assert float(loss(torch.zeros(2, 3), torch.ones(2, 3), sample_weight=[1.0, 0.0])) == pytest.approx(0.5)
    assert losses.serialize(loss)["module"] == __name__
    # the same subclass in real Keras 3: name, dtype and every reduction agree
    rng = np.random.default_rng(5)
    y_true, y_pred = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")
    weights = np.array([1.0, 0.0, 0.5, 2.0], "float32")
    ref_cls, our_cls = make(keras_ref.losses), make(losses)
    assert (ref_cls().name, ref_cls().dtype) == (loss.name, loss.dtype)
    for reduction in ("sum_over_batch_size", "sum", "mean", "none"):
        ours = our_cls(reduction=reduction)(torch.tensor(y_true), torch.tensor(y_pred), sample_weight=weights)
        theirs = ref_cls(reduction=reduction)(y_true, y_pred, sample_weight=weights)
        np.testing.assert_allclose(np.asarray(ours.detach()), keras_ref.ops.convert_to_numpy(theirs), rtol=1e-6,
                                   err_msg=reduction)


def test_sparse_cce_fused_mean_matches_keras_and_the_general_path(keras_ref, rng):
    """Logits (batch, classes) with int labels take one fused op; the value
    and the gradient equal the per-sample path's and Keras's."""
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    logits = torch.tensor(rng.normal(size=(16, 5)).astype("float32"))
    y = torch.tensor(rng.integers(0, 5, 16))
    want = keras_ref.losses.SparseCategoricalCrossentropy(from_logits=True)(y.numpy(), logits.numpy())
    for labels in (y, y.int()):
        a = logits.clone().requires_grad_()
        b = logits.clone().requires_grad_()
        loss(labels, a)
        fused = loss(labels, a)
        assert type(fused.grad_fn).__name__.startswith("NllLoss")  # one op, no sum/div
        general = loss(labels, b, sample_weight=torch.ones(16))  # the per-sample path
        np.testing.assert_allclose(_np(fused), keras_ref.ops.convert_to_numpy(want), rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(fused, general)
        fused.backward()
        general.backward()
        torch.testing.assert_close(a.grad, b.grad)


def test_sparse_cce_per_pixel_probabilities_backward(keras_ref, rng):
    """Per-pixel softmax probabilities (batch, h, w, classes) with uint8 (batch, h, w, 1) masks, as
    a segmentation model trains: torch's nll_loss on the class-moved (permuted) view failed in
    backward ("grad_input must be contiguous", torch 2.13; Keras 3.15 on torch still does). The
    values equal Keras's, and the gradient equals the one of the same losses on flat rows."""
    p = rng.uniform(0.05, 1, (2, 5, 4, 3)).astype("float32")
    p /= p.sum(axis=-1, keepdims=True)
    y_true = rng.integers(0, 3, (2, 5, 4, 1)).astype("uint8")
    want = keras_ref.losses.sparse_categorical_crossentropy(y_true, p)
    pred = torch.tensor(p, requires_grad=True)
    got = losses.sparse_categorical_crossentropy(torch.as_tensor(y_true), pred)
    np.testing.assert_allclose(got.detach().numpy(), keras_ref.ops.convert_to_numpy(want), rtol=RTOL, atol=ATOL)
    loss = losses.SparseCategoricalCrossentropy()(torch.as_tensor(y_true), pred)
    loss.backward()
    # the reference gradient: the same losses computed row by row on a contiguous (n, classes) copy
    flat = torch.tensor(p.reshape(-1, 3), requires_grad=True)
    probs = flat / flat.sum(-1, keepdim=True)
    picked = probs[torch.arange(flat.shape[0]), torch.as_tensor(y_true.reshape(-1).astype("int64"))]
    (-torch.log(picked.clamp(1e-7, 1 - 1e-7))).mean().backward()
    np.testing.assert_allclose(pred.grad.numpy(), flat.grad.numpy().reshape(p.shape), rtol=1e-5, atol=1e-7)


class _AbsErrorLoss(losses.Loss):
    """A user loss written the book's way (`y_true - y_pred`, no reshaping)."""

    def call(self, y_true, y_pred):
        return torch.abs(y_true - y_pred)


def test_custom_loss_subclass_gets_a_vector_target_as_a_column():
    """A (batch,) target for a (batch, 1) prediction reaches a Loss subclass's `call` as (batch, 1), as tf.keras 2
    passes it: `y_true - y_pred` is element by element, not a (batch, batch) broadcast (which Keras 3.15 computes,
    silently: Hands-On ML 3rd ed.'s HuberLoss on 1-D regression targets). Direct call and `fit` alike."""
    y_true = np.array([1.0, 2.0, 4.0], "float32")
    y_pred = np.array([[0.5], [2.5], [1.0]], "float32")
    expected = np.mean(np.abs(y_true - y_pred[:, 0]))  # 0.5, 0.5, 3.0 -> 4/3
    assert not np.isclose(expected, np.mean(np.abs(y_true - y_pred)))  # the (3, 3) broadcast differs
    loss = _AbsErrorLoss()
    np.testing.assert_allclose(float(loss(torch.tensor(y_true), torch.tensor(y_pred))), expected, rtol=1e-6)
    np.testing.assert_allclose(float(loss(torch.tensor(y_true), torch.tensor(y_pred), sample_weight=[1.0, 0.0, 1.0])),
                               (0.5 + 3.0) / 3, rtol=1e-6)

    import kerasish as keras

    x = np.array([[1.0], [2.0], [3.0], [4.0]], "float32")
    y = np.array([1.0, 3.0, 2.0, 6.0], "float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="ones",
                                                                     bias_initializer="zeros")])
    model.compile(optimizer="sgd", loss=_AbsErrorLoss())
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), np.mean(np.abs(y - x[:, 0])), rtol=1e-6)
