"""`keras.src` names that Keras ecosystem code imports (`kerasish.src`).

Keras's `keras.src` is its private implementation tree; kerasish does not
mirror it. Libraries written against Keras 3 nevertheless import a handful of
its helpers (KerasHub: `from keras.src.backend import get_keras_mask`), so a
port that renames `keras` to `kerasish` finds those few here, with Keras's
behaviour. Anything else under `keras.src` raises `ImportError`: use the public
`kerasish` name instead.
"""
