"""`keras.wrappers.scikit_learn` (Keras 2.0-2.12): `KerasClassifier` /
`KerasRegressor(build_fn=...)`, which Keras 2.12 removed. Importing this module
raises."""

raise ImportError(
    "`keras.wrappers.scikit_learn` (`KerasClassifier` / `KerasRegressor`) was removed in Keras 2.12 and has no "
    "kerasish (Keras 3) counterpart with its `build_fn=` API: use `keras.wrappers.SKLearnClassifier` / "
    "`SKLearnRegressor(model=build_fn, model_kwargs={...}, fit_kwargs={...})` (Keras 3's scikit-learn wrappers).",
    name=__name__,
)
