"""`Metric`: a stateful measurement. Here a Metric is a Layer whose state is
non-trainable buffers, so it moves with `.to()` and appears in `state_dict`
where it is an attribute; it is never part of a layer's `weights` (Keras 3)."""

from __future__ import annotations

import functools

import torch

from kerasish.utils import tree

from kerasish.layers import call_context
from kerasish.layers.layer import Layer


def _not_in_recomputation(update_state):
    """`update_state` that does nothing while `torch.utils.checkpoint` recomputes a layer call in the
    backward pass (a layer call in progress inside the backward): the forward it repeats counted the
    batch already. An update from a gradient hook (no layer call in progress) still counts."""

    @functools.wraps(update_state)
    def wrapper(self, *args, **kwargs):
        if call_context.in_call() and call_context.in_backward():
            return None
        return update_state(self, *args, **kwargs)

    wrapper._skips_recomputation = True
    return wrapper


class Metric(Layer):
    """Base class of metrics: `update_state`, `result`, `reset_state`.

    Calling a metric updates it and returns the current result.

    Args:
        name: Defaults to the snake_case class name.
        dtype: Dtype of the state and result. Defaults to "float32".
    """

    _is_metric = True
    _keras_module = "keras.metrics"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # built-ins serialize as module "keras.metrics"; user subclasses keep theirs
        cls._keras_module = "keras.metrics" if cls.__module__.startswith("kerasish.metrics") else None
        own = cls.__dict__.get("update_state")
        if callable(own) and not getattr(own, "_skips_recomputation", False):
            cls.update_state = _not_in_recomputation(own)

    def __init__(self, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.built = True
        self.__dict__["_state_names"] = []

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum", name=None):
        """Adds a state variable (a buffer) and remembers its initializer for
        `reset_state`."""
        var = Layer.add_weight(
            self, shape=shape, initializer=initializer, dtype=dtype or self.dtype, trainable=False,
            name=name, aggregation=aggregation, synchronization="on_read",
        )
        var.__dict__["_initializer"] = initializer
        self.__dict__["_state_names"].append(var)
        return var

    def add_weight(self, shape=(), initializer=None, dtype=None, name=None, aggregation="sum", synchronization=None):
        """A state variable: Keras's alias of `add_variable` for metrics.

        A metric's weights are non-trainable, summed state that `reset_state`
        sets back to the initializer (Keras 3's `Metric.add_weight`, and
        tf.keras 2's, whose first positional argument is the name:
        `add_weight("total", initializer="zeros")` is taken too). Without it
        the Layer's `add_weight` made a trainable Parameter that
        `variables` and `reset_state` missed. `initializer` defaults to
        "zeros"; `synchronization` (tf.distribute's) is accepted and ignored.
        """
        if isinstance(shape, str) and name is None:  # tf.keras 2: add_weight(name, shape=(), ...)
            name, shape = shape, ()
        return self.add_variable(
            shape=shape, initializer="zeros" if initializer is None else initializer, dtype=dtype,
            aggregation=aggregation, name=name,
        )

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"Metric {type(self).__name__} must implement `update_state()`.")

    def result(self):
        raise NotImplementedError(f"Metric {type(self).__name__} must implement `result()`.")

    def reset_state(self):
        """Sets every state variable back to its initial value."""
        from kerasish import initializers

        for var in self.variables:
            init = initializers.get(var.__dict__.get("_initializer", "zeros"))
            var.assign(init(tuple(var.shape), dtype=var.dtype).to(var.device))

    def reset_states(self):  # Keras 2 name
        self.reset_state()

    # ------------------------------------------------- stateless API (Keras 3)
    def _check_metric_variables(self, metric_variables) -> list:
        metric_variables = list(metric_variables)
        if len(metric_variables) != len(self.variables):
            raise ValueError(
                "Argument `metric_variables` must be a list of tensors corresponding 1:1 to "
                f"{type(self).__name__}().variables. Received list with length {len(metric_variables)}, but "
                f"expected {len(self.variables)} variables."
            )
        return metric_variables

    def _stateless(self, mapping, fn, *args, **kwargs):
        from kerasish.backend.stateless_scope import StatelessScope

        with StatelessScope(state_mapping=mapping) as scope:
            out = fn(*args, **kwargs)
        return out, [scope.get_current_value(v) for v in self.variables]

    def stateless_update_state(self, metric_variables, *args, **kwargs):
        """`update_state(*args, **kwargs)` from the state `metric_variables`
        (tensors, one per `self.variables`, in order); returns the new state
        as a list of tensors. The metric's own variables do not change, and
        neither do the given tensors (Keras 3.15 on torch writes into some of
        them).

        Example:
            >>> state = [v.detach().clone() for v in metric.variables]
            >>> state = metric.stateless_update_state(state, y_true, y_pred)
            >>> metric.stateless_result(state)
        """
        mapping = list(zip(self.variables, self._check_metric_variables(metric_variables)))
        _, new = self._stateless(mapping, self.update_state, *args, **kwargs)
        return new

    def stateless_result(self, metric_variables):
        """`result()` computed from the state `metric_variables` (one tensor per
        `self.variables`), without reading or changing the metric's own."""
        mapping = list(zip(self.variables, self._check_metric_variables(metric_variables)))
        out, _ = self._stateless(mapping, self.result)
        return out

    def stateless_reset_state(self):
        """The state `reset_state()` would set, as a list of tensors (one per
        `self.variables`); the metric's own variables do not change."""
        _, new = self._stateless(None, self.reset_state)
        return new

    @property
    def variables(self):
        return list(self._buffers.values())

    def forward(self, *args, **kwargs):
        if tree.any_symbolic(args) or tree.any_symbolic(list(kwargs.values())):
            raise ValueError(
                f"Metric '{self.name}' ({type(self).__name__}) was called on a KerasTensor: metrics compute on "
                "real data, a KerasTensor is a symbolic placeholder with no values. Pass the metric to "
                "`model.compile(metrics=[...])`, or call it on tensors. Received: "
                f"{[getattr(a, 'shape', a) for a in args]}"
            )
        self.update_state(*args, **kwargs)
        result = self.result()
        if isinstance(result, torch.Tensor):
            result._metric_obj = self
        return result

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"
