"""Weight reads inside a mixed-precision call, as Keras's `AutocastScope` makes them.

1. The Keras variable API on a cast read.

Inside the call of a mixed-precision layer (`mixed_bfloat16`, `mixed_float16`)
a float trainable weight reads as a copy in the compute dtype
(`Layer._cast_weight`), as Keras's `AutocastScope` reads it. A custom layer
that keeps a weight it writes itself (an EMA, a scale) writes it from `call`:

    def call(self, x):
        self.ema.assign(0.9 * self.ema + 0.1 * ops.mean(x, axis=0))
        self.scale.assign_sub(...)

The copy was a plain tensor, so this raised `AttributeError: 'Tensor' object
has no attribute 'assign'`. The copy now carries `assign`, `assign_add` and
`assign_sub`, which write the variable itself (in its own dtype) and drop the
call's cast copy, so that a later read in the same call sees the new value,
and `variable` (the variable itself: `read.variable.path`, `.trainable`).
(Non-trainable weights, registered buffers, read as the variable itself.)

Keras 3.15 on the torch backend runs the same code without an error and
without an effect: its `assign` copies into the cast value `variable.value`
hands back inside the scope, so the variable never changes under mixed
precision (float32 updates it). Keras on TensorFlow and JAX update the
variable; kerasish follows them, not that torch-backend accident.

The writers are made once per weight and attached when the copy is made
(once per weight and outermost call: a dict update), never on a float32
read, and only to the reads of layers of the user's own classes (a
subclass of a built-in layer included): kerasish's built-in layers never
write what they read, so `self.dense.kernel.assign(...)` on a built-in
sublayer's cast read in a mixed call still raises `AttributeError`; write
it through `self.dense.weights`, which lists the variables themselves.
Under `torch.compile` the read is a traced cast with nothing attached:
`assign` on it in a compiled mixed call still raises `AttributeError`.

2. A float32 layer's weight read by a mixed call (`read_in_mixed_call`).

Keras's scope belongs to the innermost layer call, whoever owns the
variable: a mixed layer reading a float32-policy layer's weight (a tied
output projection over a float32 `Embedding`) gets it in its compute dtype,
and the float32 layer's own call (a float32 scope) gets the variable. kerasish
does this for the computed weights a layer hands to others, `Dense` /
`EinsumDense` `kernel` and `Embedding` `embeddings` (`stored_weights.
computed_variable`; the layers' own calls read the registry). Other weights
of a float32 layer (`conv.kernel`, `dense.bias`, a custom layer's) read by a
mixed call stay float32: every layer's hot call reads its own weights
through `Layer.__getattr__`, where any check would cost each call (and be a
guard on each compiled call). The innermost layer `call` on the Python stack
tells whose read it is, looked for only while a mixed call runs in the
reading thread. Eager only: under `torch.compile` the weight stays float32.
"""

from __future__ import annotations

import sys
import weakref

import torch

from kerasish.layers.call_context import LOCAL as _LOCAL

# the methods a layer call runs its maths in (`Layer.__call__` calls one of them)
_CALL_NAMES = frozenset({"call", "quantized_call"})
_MAX_FRAMES = 64

# {(id(layer), name): (weak reference to the variable, the writers)}: made once per weight, not per cast.
# The writers hold the variable weakly (the cache never keeps a model alive); an entry whose variable
# died (its ids may be reused) or was replaced is made again
_WRITERS: dict = {}
_MAX_ENTRIES = 4096


class _WritersFor(dict):
    """{layer class: whether its cast reads get writers}: a class of kerasish's own (its calls never write
    what they read) gets none, which spares the mixed-precision calls of the built-in layers the attach
    (about 6,000 instructions per weight and call, callgrind); user classes, and their subclasses of
    built-in layers, get them."""

    def __missing__(self, cls):
        own = cls.__module__.startswith("kerasish.")
        self[cls] = not own
        return not own


WRITERS_FOR = _WritersFor()


def attach(cast, layer, name: str, variable) -> None:
    """Gives `cast` (the compute-dtype copy of `layer`'s weight `name`) the writers of `variable`."""
    if not WRITERS_FOR[type(layer)]:
        return
    key = (id(layer), name)
    entry = _WRITERS.get(key)
    if entry is None or entry[0]() is not variable:
        if len(_WRITERS) >= _MAX_ENTRIES:
            _WRITERS.clear()
        entry = _WRITERS[key] = (weakref.ref(variable), _writers(key, weakref.ref(variable)))
    d = cast.__dict__
    d.update(entry[1])
    d["variable"] = variable


def _writers(key, ref) -> dict:
    layer_id, name = key

    def forget():
        cache = _LOCAL.state.cast_cache
        cache.pop((layer_id, name, True), None)
        cache.pop((layer_id, name, False), None)

    def writer(method):
        def write(value):
            variable = ref()
            getattr(variable, method)(value)
            forget()
            return variable

        write.__name__ = method
        return write

    return {method: writer(method) for method in ("assign", "assign_add", "assign_sub")}


def read_in_mixed_call(layer, name: str, value):
    """A float weight of a layer that is not mixed (a float32-policy layer), read while a mixed-precision
    call runs in this thread, as Keras's `AutocastScope` reads it: the scope is the innermost layer call's,
    whoever owns the variable. The innermost layer `call` on the stack decides: a mixed layer's (a parent
    reading its float32 sublayer's kernel, a tied embedding) gets the copy in its compute dtype; the
    owner's own call, or another float32 layer's, the variable itself. Not under `torch.compile`."""
    if torch.compiler.is_compiling():
        return value
    casts = _LOCAL.state.casts
    if not casts or not value.is_floating_point():  # (a method of a Variable, a tensor subclass: dear, last)
        return value
    frame = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            break
        code = frame.f_code
        if code.co_name in _CALL_NAMES and code.co_argcount and code.co_varnames[0] == "self":
            reader = frame.f_locals.get("self")
            if isinstance(reader, torch.nn.Module) and "_mixed" in reader.__dict__:
                cast = casts.get(id(reader))
                if cast is None or reader is layer:
                    return value
                return layer._cast_weight(name, value, cast)
        frame = frame.f_back
    return value
