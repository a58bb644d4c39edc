"""Keras 3's stateless and step-function trainer API (the `StatelessTrainerAPI`
half of `Trainer`): `stateless_compute_loss`, `make_train_function` /
`make_test_function` / `make_predict_function` and the `train_function` /
`test_function` / `predict_function` attributes.

A JAX-style training step on torch, written with these (gradients by
`torch.autograd.grad` on the given values, which `stateless_call` and
`stateless_compute_loss` compute with)::

    tv = [v.detach().clone().requires_grad_() for v in model.trainable_variables]
    ntv = [v.detach().clone() for v in model.non_trainable_variables]
    mv = [v.detach().clone() for v in model.metrics_variables]
    ov = [v.detach().clone() for v in model.optimizer.variables]
    y_pred, ntv = model.stateless_call(tv, ntv, x, training=True)
    loss, (tv, ntv, mv) = model.stateless_compute_loss(tv, ntv, mv, x, y, y_pred)
    grads = torch.autograd.grad(loss, tv)
    tv, ov = model.optimizer.stateless_apply(ov, grads, [t.detach() for t in tv])

(`torch.func.grad` works as well, over a function of the trainable values.)
No variable of the model, its optimizer or its metrics changes; write the
final values back with `model.set_state_tree(...)` or `variable.assign(...)`.
"""

from __future__ import annotations

from kerasish.trainers.data_adapters import unpack_x_y_sample_weight

_KINDS = {"train_function": "train", "test_function": "test", "predict_function": "predict"}


def _check_values(model, kind, given, own):
    if len(given) != len(own):
        raise ValueError(
            f"Argument `{kind}` must be a list of tensors corresponding 1:1 to {type(model).__name__}().{kind}. "
            f"Received list with length {len(given)}, but expected {len(own)} variables."
        )


class StatelessTrainerAPI:
    """Mixed into `Trainer`; see the module docstring."""

    # ------------------------------------------------------------ stateless
    def stateless_compute_loss(self, trainable_variables, non_trainable_variables, metrics_variables, x=None,
                               y=None, y_pred=None, sample_weight=None, training=True):
        """`compute_loss(x, y, y_pred, sample_weight, training)` with the
        model's variables reading the given values (Keras 3).

        Args:
            trainable_variables: Tensors, one per `self.trainable_variables`.
                Gradients of the loss (regularization terms included) flow to
                them.
            non_trainable_variables: Tensors, one per
                `self.non_trainable_variables`.
            metrics_variables: Tensors, one per `self.metrics_variables`.
            x, y, y_pred, sample_weight, training: As for `compute_loss`.

        Returns:
            `(loss, (trainable_variables, non_trainable_variables,
            metrics_variables))`: the loss and the variable values after it
            (a loss may update non-trainable or metric variables). No variable
            of the model changes.

        Raises:
            ValueError: a list whose length does not match the model's.
        """
        from kerasish.backend.stateless_scope import StatelessScope

        own_tv, own_ntv, own_mv = self.trainable_variables, self.non_trainable_variables, self.metrics_variables
        trainable_variables = list(trainable_variables)
        non_trainable_variables = list(non_trainable_variables)
        metrics_variables = list(metrics_variables)
        for kind, given, own in (("trainable_variables", trainable_variables, own_tv),
                                 ("non_trainable_variables", non_trainable_variables, own_ntv),
                                 ("metrics_variables", metrics_variables, own_mv)):
            _check_values(self, kind, given, own)
        mapping = [*zip(own_tv, trainable_variables), *zip(own_ntv, non_trainable_variables),
                   *zip(own_mv, metrics_variables)]
        with StatelessScope(state_mapping=mapping) as scope:
            loss = self._compute_loss_compat(x, y, y_pred, sample_weight, training)
        non_trainable_variables = [scope.get_current_value(v) for v in own_ntv]
        metrics_variables = [scope.get_current_value(v) for v in own_mv]
        return loss, (trainable_variables, non_trainable_variables, metrics_variables)

    # ------------------------------------------------------ step functions
    def _get_made_function(self, attr):
        fns = self.__dict__.get("_step_fns")
        return None if fns is None else fns.get(attr)

    def _set_made_function(self, attr, fn):
        # kept with the per-batch step functions: `compile` (and a new
        # `jit_compile`) drop them all, as Keras resets `train_function`;
        # pickling and deepcopy leave them out (closures over the model)
        fns = self.__dict__.get("_step_fns")
        if fns is None:
            fns = self._step_fns = {}
        if fn is None:
            fns.pop(attr, None)
        else:
            fns[attr] = fn

    @property
    def train_function(self):
        """The function `make_train_function()` made (None before, and after
        `compile`): it runs `train_step` on a list of batches, or on the next
        batch of an iterator; see `make_train_function`."""
        return self._get_made_function("train_function")

    @train_function.setter
    def train_function(self, fn):
        self._set_made_function("train_function", fn)

    @property
    def test_function(self):
        """The function `make_test_function()` made (None before)."""
        return self._get_made_function("test_function")

    @test_function.setter
    def test_function(self, fn):
        self._set_made_function("test_function", fn)

    @property
    def predict_function(self):
        """The function `make_predict_function()` made (None before)."""
        return self._get_made_function("predict_function")

    @predict_function.setter
    def predict_function(self, fn):
        self._set_made_function("predict_function", fn)

    def make_train_function(self, force=False):
        """Makes (once, or again with `force=True`) and returns
        `self.train_function`: `train_function(data)` runs one training step
        (`train_step`, `torch.compile`d when `jit_compile=True`) per batch and
        returns the logs of the last one, a dict of metric results.

        `data` is a list of batches, as Keras's torch backend passes them
        (`model.train_function([(x, y)])`), or an iterator of batches, as its
        TensorFlow and JAX backends do (`steps_per_execution` batches are
        taken from it). A batch is `x`, `(x,)`, `(x, y)` or
        `(x, y, sample_weight)`; NumPy arrays are converted and moved to the
        model's device. Metrics accumulate across calls until
        `reset_metrics()`.

        As in Keras, `fit` and `train_on_batch` call `make_train_function()`
        and, when it (overridden) or the user made `train_function` another
        function, run that one per batch (`train_function([batch])`); with
        kerasish's own function they run the same step directly.

        Keras 3.15 on torch returns None from the call that makes the
        function (and the function afterwards); kerasish always returns it.
        """
        return self._make_function("train_function", force)

    def make_test_function(self, force=False):
        """As `make_train_function`, for `test_step` (no gradients)."""
        return self._make_function("test_function", force)

    def make_predict_function(self, force=False):
        """As `make_train_function`, for `predict_step` (no gradients); returns
        the predictions of the last batch, as tensors."""
        return self._make_function("predict_function", force)

    def _make_function(self, attr, force):
        made = self._get_made_function(attr)
        if made is not None and not force:
            return made
        kind = _KINDS[attr]
        model = self

        def function(data):
            if kind != "predict":
                model._assert_compile_called(attr)
            logs = None
            for batch in _batches(model, data, attr):
                logs = _run_step(model, kind, batch)
            return logs

        function.__name__ = function.__qualname__ = f"one_step_on_data_{kind}"
        function._kerasish_made = True
        self._set_made_function(attr, function)
        return function

    def _keras_step_function(self, kind):
        """The per-batch function of `fit` / `evaluate` / `predict` (and the
        `*_on_batch` methods), as `_step_function(kind)`: `(fn, lazy)`. Like
        Keras's torch trainer they call `make_<kind>_function()` first; when
        that (overridden) method or the user made `<kind>_function` something
        else than kerasish's own, that function runs each batch, given as
        Keras gives it (`[batch]`)."""
        attr = f"{kind}_function"
        getattr(self, f"make_{attr}")()
        made = self._get_made_function(attr)
        if made is None or getattr(made, "_kerasish_made", False):
            return self._step_function(kind)

        def step(data):
            return made([data])

        return step, False


def _batches(model, data, attr):
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError(f"`{attr}` received an empty list of batches. Received: data={data!r}")
        return list(data)
    if hasattr(data, "__next__"):
        out = []
        for _ in range(max(1, model.steps_per_execution)):
            try:
                out.append(next(data))
            except StopIteration:
                if not out:
                    raise
                break
        return out
    raise TypeError(
        f"`{attr}` takes a list of batches (as Keras's torch backend: `[(x, y)]`) or an iterator of batches. "
        f"Received: data of type {type(data).__name__}"
    )


def _run_step(model, kind, batch):
    x, y, sample_weight = unpack_x_y_sample_weight(batch)
    data, device = model._single_batch(x, y, sample_weight)
    if kind == "predict":
        data = (data[0],)
    else:
        model._metrics_to(device)
    step_fn, lazy = model._step_function(kind)
    logs = step_fn(data)
    return model.get_metrics_result() if lazy else logs
