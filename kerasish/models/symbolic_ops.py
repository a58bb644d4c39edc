"""Layer calls and torch ops on KerasTensors: they build the functional graph.

Placeholder until the functional API lands: every entry point raises a clear
error instead of silently computing nothing.
"""

from __future__ import annotations


def _not_yet(*args, **kwargs):
    raise NotImplementedError(
        "Calling layers or torch ops on symbolic KerasTensors needs kerasish's functional API, "
        "which this build does not include yet."
    )


symbolic_layer_call = _not_yet
torch_function_call = _not_yet
add_symbolic_loss = _not_yet
add_symbolic_metric = _not_yet
