"""scikit-learn estimators around kerasish models (`keras.wrappers`, Keras 3's
`SKLearnClassifier`, `SKLearnRegressor` and `SKLearnTransformer`).

scikit-learn is optional: it is imported when this module is, never by
`import kerasish`; without it the classes raise ImportError when made.

Behaviour follows Keras 3, with three of its defects left out (each noted
where it is handled): `warm_start=True` reuses the fitted model (Keras
clones a given model on every `fit` whatever `warm_start` says), `fit`
does not write its keyword arguments into `fit_kwargs`, and
`sklearn.base.clone` keeps `fit_kwargs` (Keras's `__sklearn_clone__` drops
them)."""

from __future__ import annotations

import copy

import numpy as np

try:
    import sklearn
    from sklearn.base import BaseEstimator
    from sklearn.base import ClassifierMixin
    from sklearn.base import RegressorMixin
    from sklearn.base import TransformerMixin
except ImportError:  # the classes refuse to be made without it
    sklearn = None

    class BaseEstimator:  # noqa: D101 - stand-ins so the module imports
        pass

    class ClassifierMixin:  # noqa: D101
        pass

    class RegressorMixin:  # noqa: D101
        pass

    class TransformerMixin:  # noqa: D101
        pass


__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]


def _require_sklearn(name: str) -> None:
    if sklearn is None:
        raise ImportError(f"{name} requires `scikit-learn` to be installed. Run `pip install scikit-learn` to install it.")


def _validate(estimator, *args, **kwargs):
    """scikit-learn's input validation (`n_features_in_`, 2-D float X,
    consistent lengths) under its >=1.6 name or the older method."""
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # scikit-learn < 1.6
        return estimator._validate_data(*args, **kwargs)
    return validate_data(estimator, *args, **kwargs)


def _target_type(y) -> str:
    from sklearn.utils.multiclass import type_of_target

    kind = type_of_target(y)
    if kind == "unknown":
        raise ValueError(f"Unknown label type for data: {y!r}")
    return kind


def _ensure_compiled(model) -> None:
    if not getattr(model, "compiled", False) or not getattr(model, "loss", None) or not getattr(model, "optimizer", None):
        raise RuntimeError("Given model needs to be compiled, and have a loss and an optimizer.")


class _Column(TransformerMixin, BaseEstimator):
    """1-D targets as one column and back (for the one-hot encoder)."""

    def fit(self, y):
        self.ndim_ = np.ndim(y)
        return self

    def transform(self, y):
        y = np.asarray(y)
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def inverse_transform(self, y):
        y = np.asarray(y)
        return np.squeeze(y, axis=1) if self.ndim_ == 1 and y.ndim == 2 and y.shape[1] == 1 else y


class SKLBase(BaseEstimator):
    """Base of the scikit-learn wrappers.

    Args:
        model: a compiled `Model` (cloned with `keras.models.clone_model`,
            fresh weights, before each `fit` unless `warm_start=True`), or a
            callable `model(X=..., y=..., **model_kwargs)` returning a
            compiled `Model` (called before each `fit`, with the processed
            targets: one-hot for classifiers).
        warm_start: reuse the fitted model and its weights on the next `fit`.
        model_kwargs: keyword arguments of a callable `model`.
        fit_kwargs: keyword arguments of `model.fit`; those given to `fit`
            itself take precedence.

    Attributes:
        model_: the fitted `Model`.
        history_: the `History` returned by `model.fit`.
    """

    def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None):
        _require_sklearn(type(self).__name__)
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs

    def _more_tags(self):  # scikit-learn < 1.6
        return {"non_deterministic": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True
        return tags

    def __sklearn_clone__(self):
        """`sklearn.base.clone`: the same settings and the same `model`
        object (a Model instance is cloned by `fit` anyway), nothing fitted.
        (Keras drops `fit_kwargs` here.)"""
        return type(self)(model=self.model, warm_start=self.warm_start, model_kwargs=copy.deepcopy(self.model_kwargs),
                          fit_kwargs=copy.deepcopy(self.fit_kwargs))

    @property
    def epoch_(self) -> int:
        """How many epochs the last `fit` ran (0 before any)."""
        history = getattr(self, "history_", None)
        return len(getattr(history, "epoch", []) or [])

    def _new_model(self, X, y):
        from kerasish.models import Model
        from kerasish.models import clone_model

        if self.warm_start and hasattr(self, "model_"):
            return self.model_
        if isinstance(self.model, Model):
            return clone_model(self.model)
        if not callable(self.model):
            raise TypeError(
                f"{type(self).__name__}: `model` must be a compiled Model or a callable returning one. "
                f"Received: model={self.model!r} (of type {type(self.model).__name__})"
            )
        return self.model(X=X, y=y, **(self.model_kwargs or {}))

    def fit(self, X, y, **kwargs):
        """Fits a fresh model (see `model`, `warm_start`) on `X`, `y`;
        `kwargs` go to `model.fit`. Returns the estimator."""
        X, y = _validate(self, X, y)
        y = self._encode_target(y, reset=True)
        model = self._new_model(X, y)
        _ensure_compiled(model)
        fit_kwargs = dict(self.fit_kwargs or {})
        fit_kwargs.update(kwargs)
        self.history_ = model.fit(X, y, **fit_kwargs)
        self.model_ = model
        return self

    def _raw_predict(self, X):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        X = _validate(self, X, reset=False)
        return self.model_.predict(X)  # (Keras's default verbosity: a progress bar)

    def predict(self, X):
        """The fitted model's predictions, decoded as the targets were given."""
        return self._decode_target(self._raw_predict(X))

    def _encode_target(self, y, reset=False):
        _target_type(y)
        if reset:
            self._target_encoder = _Column().fit(y)
        return self._target_encoder.transform(y)

    def _decode_target(self, y):
        return self._target_encoder.inverse_transform(y)


class SKLearnClassifier(ClassifierMixin, SKLBase):
    """A scikit-learn classifier around a kerasish model: binary and
    multiclass targets of any labels are one-hot encoded for the model
    (`y.shape[1]` classes), and `predict` returns the labels of the
    highest-scoring columns. `classes_` holds the sorted labels and
    `decision_function` the raw model outputs. See `SKLBase` for the
    arguments."""

    def decision_function(self, X):
        """The model's raw outputs."""
        return self._raw_predict(X)

    def _encode_target(self, y, reset=False):
        kind = _target_type(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"Only binary and multiclass target types are supported. Target type: {kind}")
        if reset:
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import OneHotEncoder

            self._target_encoder = make_pipeline(_Column(), OneHotEncoder(sparse_output=False)).fit(y)
            self.classes_ = np.unique(y)
            if len(self.classes_) == 1:
                raise ValueError("Classifier can't train when only one class is present.")
        return self._target_encoder.transform(y)

    def _more_tags(self):  # scikit-learn < 1.6
        return {"poor_score": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


class SKLearnRegressor(RegressorMixin, SKLBase):
    """A scikit-learn regressor around a kerasish model (1-D targets are fed
    as one column and predictions squeezed back). See `SKLBase`."""

    def _more_tags(self):  # scikit-learn < 1.6
        return {"poor_score": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags


class SKLearnTransformer(TransformerMixin, SKLBase):
    """A scikit-learn transformer around a kerasish model: `transform`
    returns the fitted model's outputs (embeddings for a pipeline's next
    step). See `SKLBase`."""

    def transform(self, X):
        """The fitted model's outputs for `X`."""
        return self._raw_predict(X)

    def _more_tags(self):  # scikit-learn < 1.6
        return {"preserves_dtype": []}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        return tags
