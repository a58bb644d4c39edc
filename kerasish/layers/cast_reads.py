"""The Keras variable API on a mixed-precision weight read.

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
read. Under `torch.compile` the read is a traced cast with nothing attached:
`assign` on it in a compiled mixed call still raises `AttributeError`.
"""

from __future__ import annotations

import weakref

from kerasish.layers.call_context import LOCAL as _LOCAL

# {(id(layer), name): (weak reference to the variable, the writers)}: made once per weight, not per cast.
# The writers hold the variable weakly (the cache never keeps a model alive); an entry whose variable
# died (its ids may be reused) or was replaced is made again
_WRITERS: dict = {}
_MAX_ENTRIES = 4096


def attach(cast, layer, name: str, variable) -> None:
    """Gives `cast` (the compute-dtype copy of `layer`'s weight `name`) the writers of `variable`."""
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

    def assign(value):
        variable = ref()
        variable.assign(value)
        forget()
        return variable

    def assign_add(delta):
        variable = ref()
        variable.assign_add(delta)
        forget()
        return variable

    def assign_sub(delta):
        variable = ref()
        variable.assign_sub(delta)
        forget()
        return variable

    return {"assign": assign, "assign_add": assign_add, "assign_sub": assign_sub}
