"""The loss and metric half of `Layer`: `add_loss` / `losses` (tensors from
the latest call, zero-argument callables, weight regularization computed on
access), activity regularization, `add_metric` / `metrics`."""

from __future__ import annotations

import warnings

import torch

from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers import call_context as ctx
from kerasish.utils import tree


class LayerLossesMixin:
    """Losses and metrics for `Layer` (see module docstring)."""

    def _add_activity_loss(self, outputs):
        reg = self.__dict__["activity_regularizer"]
        for out in tree.flatten(outputs):
            if isinstance(out, torch.Tensor):
                loss = reg(out)
                if out.ndim > 0 and out.shape[0] > 0:
                    loss = loss / out.shape[0]
                self.add_loss(loss)

    # -------------------------------------------------------- losses/metrics
    def add_loss(self, losses, **kwargs):
        """Adds loss tensor(s) or zero-argument callables to `layer.losses`.

        Tensors added during a call belong to that call (and to the calling
        thread): they are dropped when the next outermost call of this layer,
        or of a layer containing it, starts; calling an unrelated layer keeps
        them (Keras 3 behaviour). Zero-argument callables stay and are
        evaluated each time `losses` is read.
        """
        if ctx.state().symbolic:
            return
        d = self.__dict__
        for loss in losses if isinstance(losses, (list, tuple)) else [losses]:
            if loss is None:
                continue
            if isinstance(loss, KerasTensor):
                from kerasish.models import symbolic_ops

                symbolic_ops.add_symbolic_loss(self, loss)
                continue
            if callable(loss) and not isinstance(loss, torch.Tensor):
                d["_callable_losses"].append(loss)
                continue
            if not isinstance(loss, torch.Tensor):
                loss = torch.as_tensor(loss, dtype=torch.float32)
            elif not torch.is_grad_enabled() and not torch.compiler.is_compiling() and ctx.in_reentrant_checkpoint():
                warnings.warn(
                    f"Layer '{self.name}': `add_loss` inside `torch.utils.checkpoint.checkpoint(..., "
                    "use_reentrant=True)`. Reentrant checkpointing runs the forward pass under `no_grad`, so "
                    "this loss (and every loss in `layer.losses` from this call) carries no gradient: adding "
                    "it to the training loss would not train anything. Use `use_reentrant=False`.",
                    stacklevel=2,
                )
            scope = ctx.state().stateless
            if scope is not None:
                # as Keras: inside a `StatelessScope` the layer's own losses stay as they were (stateless);
                # the loss goes to the scope when it collects them (`stateless_call(return_losses=True)`)
                if scope.collect_losses:
                    scope.add_loss(loss)
                continue
            ctx.record_loss(self, loss)

    def _own_call_losses(self):
        out = ctx.call_losses(self)
        for fn in self.__dict__["_callable_losses"]:
            loss = fn()
            if not isinstance(loss, torch.Tensor):
                loss = torch.as_tensor(loss, dtype=torch.float32)
            out.append(loss)
        return out

    @property
    def losses(self) -> list:
        """Losses from `add_loss` (the tensors of this thread's latest call,
        sublayers included, then the callables), then the weight-regularization losses of
        trainable weights, computed now so gradients flow."""
        out = []
        for layer in self._flatten_layers(include_self=True):
            for loss in layer._own_call_losses():
                # an activity regularizer of a sharded layer's output (ModelParallel) is a DTensor: its whole value
                out.append(loss.full_tensor() if hasattr(loss, "full_tensor") else loss)
        for weight in self.trainable_weights:
            reg = weight.__dict__.get("regularizer")
            if reg is not None:
                loss = reg(weight)
                # a sharded weight (ModelParallel) gives a DTensor: its whole value joins the plain losses
                out.append(loss.full_tensor() if hasattr(loss, "full_tensor") else loss)
        return out

    def add_metric(self, value, name=None, **kwargs):
        """Tracks the mean of `value` (or a `Metric` result) under `name`."""
        from kerasish.metrics import Mean
        from kerasish.metrics import Metric

        if ctx.state().symbolic or ctx.in_backward():
            return  # (in the backward pass: a checkpoint's recomputation of a call already counted)
        if isinstance(value, KerasTensor):
            from kerasish.models import symbolic_ops

            return symbolic_ops.add_symbolic_metric(self, value, name, **kwargs)
        metric = getattr(value, "_metric_obj", None)
        if isinstance(metric, Metric):
            if metric not in self._metrics:
                self._metrics.append(metric)
            return
        if name is None:
            raise ValueError(
                "Please provide a name for your metric like `self.add_metric(tf.reduce_sum(inputs), "
                f"name='mean_activation')`. Received: name={name}"
            )
        for existing in self._metrics:
            if existing.name == name:
                existing.update_state(value)
                return
        metric = Mean(name=name)
        metric.update_state(value)
        self._metrics.append(metric)

    @property
    def metrics_variables(self) -> list:
        """The variables of `metrics` (Keras 3), in their order."""
        return [v for metric in self.metrics for v in metric.variables]

    @property
    def metrics(self) -> list:
        """Metrics added with `add_metric` and Metric attributes, sublayers included."""
        from kerasish.metrics import Metric

        out = []
        for layer in self._flatten_layers(include_self=True):
            out.extend(layer._metrics)
            out.extend(m for m in layer._modules.values() if isinstance(m, Metric) and m not in out)
        return out
