"""`keras.ops.numpy`: the NumPy-style ops, gathered from the files that
implement them (element-wise, reductions, arrays, products, einops)."""

from kerasish.ops import einops as _einops  # noqa: F401
from kerasish.ops import numpy_array as _numpy_array  # noqa: F401
from kerasish.ops import numpy_elementwise as _numpy_elementwise  # noqa: F401
from kerasish.ops import numpy_misc as _numpy_misc  # noqa: F401
from kerasish.ops import numpy_reduce as _numpy_reduce  # noqa: F401
from kerasish.ops.operation import PUBLIC as _PUBLIC

_MODULES = {"kerasish.ops.numpy_array", "kerasish.ops.numpy_elementwise", "kerasish.ops.numpy_misc",
            "kerasish.ops.numpy_reduce"}

__all__ = sorted(name for name, op in _PUBLIC.items() if op.__wrapped_op__.__module__ in _MODULES)
globals().update({name: _PUBLIC[name] for name in __all__})

# Keras lists these under `ops.numpy` as well
from kerasish.ops.core import vectorize  # noqa: E402
from kerasish.ops.linalg import slogdet  # noqa: E402

__all__ += ["slogdet", "vectorize"]
