"""`keras.wrappers`: scikit-learn estimators around kerasish models, against
Keras 3's own wrappers (torch backend) with the same model builder, the same
initial weights and the same data: labels, scores, raw outputs and
transforms; scikit-learn's `clone`, `Pipeline`, `cross_val_score` and
`GridSearchCV`; Keras's errors. Where Keras's wrappers have defects
(`warm_start` ignored, `fit` writing into `fit_kwargs`, `clone` dropping
`fit_kwargs`) kerasish does what Keras documents; those tests say so."""

import numpy as np
import pytest

import kerasish as keras

pytest.importorskip("sklearn", reason="scikit-learn is a test extra: these tests drive the wrappers through it")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

N, F = 48, 5
FIT = {"epochs": 3, "batch_size": 8, "shuffle": False, "verbose": 0}
TOL = {"rtol": 1e-5, "atol": 1e-6}


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, F))
    score = X[:, 0] - 0.5 * X[:, 1]
    labels = np.array(["cat", "dog", "emu"])[np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))]
    return X, labels, score


def _builder(lib, kind):
    """A model builder taking `X`, `y` (and `hidden`, as model_kwargs), whose
    initial weights are drawn from a NumPy generator fixed by the shapes, so
    every framework and every call starts from the same weights."""

    def build(X, y, hidden=4):
        n_out = y.shape[1] if np.ndim(y) > 1 else 1
        out_act = "softmax" if kind == "classifier" else None
        model = lib.Sequential([lib.Input((X.shape[1],)), lib.layers.Dense(hidden, activation="tanh"),
                                lib.layers.Dense(n_out, activation=out_act)])
        rng = np.random.default_rng(hidden * 100 + n_out)
        model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.get_weights()])
        loss = "categorical_crossentropy" if kind == "classifier" else "mse"
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss=loss)
        return model

    return build


def _wrappers(keras_ref):
    from keras.wrappers import SKLearnClassifier as RefClassifier
    from keras.wrappers import SKLearnRegressor as RefRegressor
    from keras.wrappers import SKLearnTransformer as RefTransformer

    def keeps_fit_kwargs(cls):
        """Keras's wrapper with one defect fixed: its `__sklearn_clone__`
        drops `fit_kwargs`, so every clone (cross-validation, grid search)
        would train with `fit`'s defaults and a shuffle."""

        class Fixed(cls):
            def __sklearn_clone__(self):
                return type(self)(model=self.model, warm_start=self.warm_start, model_kwargs=self.model_kwargs,
                                  fit_kwargs=dict(self.fit_kwargs or {}))

        Fixed.__name__ = cls.__name__
        return Fixed

    return {"ours": (keras.wrappers.SKLearnClassifier, keras.wrappers.SKLearnRegressor,
                     keras.wrappers.SKLearnTransformer, keras),
            "ref": (keeps_fit_kwargs(RefClassifier), RefRegressor, RefTransformer, keras_ref)}


def test_classifier_matches_keras(keras_ref):
    X, labels, _ = _data()
    got = {}
    for key, (Classifier, _, _, lib) in _wrappers(keras_ref).items():
        est = Classifier(model=_builder(lib, "classifier"), model_kwargs={"hidden": 6}, fit_kwargs=FIT)
        assert est.fit(X, labels) is est
        got[key] = (est.classes_, est.predict(X), est.decision_function(X), est.score(X, labels),
                    est.history_.history["loss"])
    (c1, p1, d1, s1, h1), (c2, p2, d2, s2, h2) = got["ours"], got["ref"]
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(c1, ["cat", "dog", "emu"])
    np.testing.assert_allclose(d1, d2, **TOL)
    np.testing.assert_allclose(h1, h2, **TOL)
    np.testing.assert_array_equal(p1, p2)
    assert p1.dtype == p2.dtype
    assert s1 == s2


def test_binary_integer_labels_match_keras(keras_ref):
    X, _, score = _data(1)
    y = (score > 0).astype("int64")
    got = {}
    for key, (Classifier, _, _, lib) in _wrappers(keras_ref).items():
        est = Classifier(model=_builder(lib, "classifier"), fit_kwargs=FIT).fit(X, y)
        got[key] = (est.decision_function(X), est.predict(X))
    np.testing.assert_allclose(got["ours"][0], got["ref"][0], **TOL)
    np.testing.assert_array_equal(got["ours"][1], got["ref"][1])
    assert got["ours"][0].shape == (N, 2)  # one-hot over the two classes


def test_regressor_and_transformer_match_keras(keras_ref):
    X, _, score = _data(2)
    got = {}
    for key, (_, Regressor, Transformer, lib) in _wrappers(keras_ref).items():
        reg = Regressor(model=_builder(lib, "regressor"), fit_kwargs=FIT).fit(X, score)
        trans = Transformer(model=_builder(lib, "regressor"), fit_kwargs=FIT).fit(X, score)
        got[key] = (reg.predict(X), reg.score(X, score), trans.transform(X))
    (p1, s1, t1), (p2, s2, t2) = got["ours"], got["ref"]
    assert p1.shape == p2.shape == (N,)  # 1-D targets give 1-D predictions
    np.testing.assert_allclose(p1, p2, **TOL)
    np.testing.assert_allclose(s1, s2, rtol=1e-5)
    np.testing.assert_allclose(t1, t2, **TOL)


def test_pipeline_cross_validation_and_grid_search_match_keras(keras_ref):
    X, labels, _ = _data(3)
    got = {}
    for key, (Classifier, _, _, lib) in _wrappers(keras_ref).items():
        pipe = make_pipeline(StandardScaler(), Classifier(model=_builder(lib, "classifier"), fit_kwargs=FIT))
        scores = cross_val_score(pipe, X, labels, cv=KFold(3))
        grid = GridSearchCV(Classifier(model=_builder(lib, "classifier"), fit_kwargs=FIT),
                            {"model_kwargs": [{"hidden": 3}, {"hidden": 8}]}, cv=KFold(2)).fit(X, labels)
        got[key] = (scores, grid.cv_results_["mean_test_score"], grid.best_params_, grid.predict(X))
    np.testing.assert_allclose(got["ours"][0], got["ref"][0])
    np.testing.assert_allclose(got["ours"][1], got["ref"][1])
    assert got["ours"][2] == got["ref"][2]
    np.testing.assert_array_equal(got["ours"][3], got["ref"][3])


def test_a_compiled_model_instance_is_cloned_with_fresh_weights():
    X, labels, _ = _data(4)
    model = _builder(keras, "classifier")(X, np.zeros((1, 3)))
    before = [w.copy() for w in model.get_weights()]
    est = keras.wrappers.SKLearnClassifier(model=model, fit_kwargs=FIT).fit(X, labels)
    assert est.model_ is not model and est.model_.compiled
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)  # the given model is left alone
    assert est.predict(X).shape == (N,)
    assert est.epoch_ == FIT["epochs"]


def test_warm_start_reuses_the_fitted_model_and_fit_leaves_fit_kwargs_alone():
    """As Keras documents (Keras 3.15's wrapper clones on every fit whatever
    `warm_start` says, and writes `fit`'s keyword arguments into `fit_kwargs`)."""
    X, labels, _ = _data(5)
    kwargs = dict(FIT)
    est = keras.wrappers.SKLearnClassifier(model=_builder(keras, "classifier"), warm_start=True, fit_kwargs=kwargs)
    est.fit(X, labels, epochs=1)
    first, weights = est.model_, [w.copy() for w in est.model_.get_weights()]
    assert est.epoch_ == 1 and kwargs == FIT and est.fit_kwargs == FIT
    est.fit(X, labels)
    assert est.model_ is first and est.epoch_ == FIT["epochs"]
    assert any(not np.array_equal(a, b) for a, b in zip(est.model_.get_weights(), weights))  # trained on
    cold = keras.wrappers.SKLearnClassifier(model=_builder(keras, "classifier"), fit_kwargs=FIT).fit(X, labels)
    model = cold.model_
    cold.fit(X, labels)
    assert cold.model_ is not model


def test_sklearn_clone_keeps_the_settings_and_drops_the_fit():
    X, labels, _ = _data(6)
    builder = _builder(keras, "classifier")
    est = keras.wrappers.SKLearnClassifier(model=builder, model_kwargs={"hidden": 5}, fit_kwargs=FIT).fit(X, labels)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "model_")
    np.testing.assert_array_equal(twin.fit(X, labels).predict(X), est.predict(X))


def test_errors_match_keras(keras_ref):
    X, labels, score = _data(7)
    for key, (Classifier, _, _, lib) in _wrappers(keras_ref).items():
        with pytest.raises(ValueError, match="Only binary and multiclass target types are supported"):
            Classifier(model=_builder(lib, "classifier"), fit_kwargs=FIT).fit(X, score)
        with pytest.raises(NotFittedError):
            Classifier(model=_builder(lib, "classifier")).predict(X)
        with pytest.raises(ValueError, match="only one class"):
            Classifier(model=_builder(lib, "classifier"), fit_kwargs=FIT).fit(X, np.zeros(N, "int64"))

        def uncompiled(X, y, _lib=lib):
            return _lib.Sequential([_lib.Input((F,)), _lib.layers.Dense(3, activation="softmax")])

        with pytest.raises(RuntimeError, match="needs to be compiled"):
            Classifier(model=uncompiled).fit(X, labels)
        est = Classifier(model=_builder(lib, "classifier"), fit_kwargs=FIT).fit(X, labels)
        with pytest.raises(ValueError, match="X has 3 features, but SKLearnClassifier is expecting 5 features"):
            est.predict(X[:, :3])


def test_without_scikit_learn_the_wrappers_say_so(monkeypatch):
    import kerasish.wrappers as wrappers

    monkeypatch.setattr(wrappers, "sklearn", None)
    with pytest.raises(ImportError, match="SKLearnRegressor requires `scikit-learn`"):
        wrappers.SKLearnRegressor(model=_builder(keras, "regressor"))


def test_only_the_wrappers_module_imports_scikit_learn():
    """`import kerasish` must not need scikit-learn: no other kerasish module
    imports it, and `kerasish.wrappers` is loaded on first attribute access."""
    import ast
    import pathlib

    root = pathlib.Path(keras.__file__).parent
    importers = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "sklearn" or n.startswith("sklearn.") for n in names):
                importers.add(path.relative_to(root).as_posix())
    assert importers == {"wrappers/__init__.py"}
    assert "wrappers" not in vars(keras) or keras.wrappers.__name__ == "kerasish.wrappers"
    import kerasish.wrappers as wrappers

    assert keras.wrappers is wrappers
