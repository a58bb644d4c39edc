"""`keras.ops` on torch: NumPy-style ops, `ops.nn`, `ops.image`,
`ops.linalg`, `ops.math` and core ops, with Keras 3 semantics (dtype
promotion, axis conventions, error types).

Every op takes torch tensors (or arrays / Python scalars) and returns torch
tensors; on KerasTensors it records a functional-graph node that saves the
way Keras saves its operations (see `operation.py`).
"""

from kerasish.ops import core as _core
from kerasish.ops import image
from kerasish.ops import linalg
from kerasish.ops import math as _math  # noqa: F401
from kerasish.ops import nn
from kerasish.ops import numpy
from kerasish.ops.operation import PUBLIC as _PUBLIC

# ops that take no tensors to record (control flow, conversions to Python)
_PLAIN = ("convert_to_numpy", "is_tensor", "shape", "dtype", "cond", "while_loop", "fori_loop", "scan",
          "associative_scan", "map", "vectorized_map", "switch", "custom_gradient", "vectorize")

globals().update({name: op for name, op in _PUBLIC.items() if "." not in name})
globals().update({name: getattr(_core, name) for name in _PLAIN})
jvp = linalg.jvp

__all__ = sorted({*(n for n in _PUBLIC if "." not in n), *_PLAIN, "jvp", "image", "linalg", "nn",
                  "numpy"})
