"""The loops of the training API: `fit`, `evaluate`, `predict` and the
`*_on_batch` methods (the `TrainerLoops` half of `Trainer`).

Each loop turns its data into an `EpochIterator` of device batches, builds
a `CallbackList`, and calls the step function of `Trainer._step_function`
per batch. With the default steps, metric values are not even computed per
batch unless a callback or the progress bar asks for them (lazy logs).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from kerasish.backend import config as backend_config
from kerasish.backend import dtypes

from kerasish.callbacks.progbar_logger import materialize_logs
from kerasish.trainers import data_adapters
from kerasish.trainers import distributed
from kerasish.trainers.data_adapters import unpack_x_y_sample_weight
from kerasish.trainers.device_feed import DeviceToHost
from kerasish.trainers.modes import ModeSnapshot
from kerasish.trainers.modes import switch_mode
from kerasish.layers import no_mode_warning


def _chunks(iterator, size):
    """`(first_step, last_step, [batches])` groups of `steps_per_execution`."""
    if size == 1:
        for step, batch in iterator:
            yield step, step, (batch,)
        return
    group, first = [], None
    for step, batch in iterator:
        if first is None:
            first = step
        group.append(batch)
        if len(group) == size:
            yield first, step, group
            group, first = [], None
    if group:
        yield first, first + len(group) - 1, group


def trainer_batch_size(batch) -> int:
    """Rows in a batch `x` / `(x, y[, sw])` (0 for an empty share)."""
    x = unpack_x_y_sample_weight(batch)[0]
    for leaf in data_adapters._flatten(x):
        if hasattr(leaf, "shape") and len(leaf.shape):
            return int(leaf.shape[0])
    return 1


def _deprecated(old, new):
    warnings.warn(
        f"`Model.{old}` is deprecated and will be removed in a future version. Please use `Model.{new}`, which "
        "supports generators.",
        DeprecationWarning,
        stacklevel=3,
    )


def _to_numpy(t):
    return dtypes.tensor_to_numpy(t) if isinstance(t, torch.Tensor) else np.asarray(t)


def _keras_loop(method):
    """fit / evaluate / predict and the `*_on_batch` methods: Keras's own loops, which never give the
    "no mode" warning (`no_mode_warning`: a layer their `train_step` calls directly gets its call
    default, as in Keras)."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with no_mode_warning.keras_loop():
            return method(self, *args, **kwargs)

    return run


class TrainerLoops:
    """fit / evaluate / predict; mixed into `Trainer` (no `__init__`)."""

    def _epoch_iterator(self, x, y=None, sample_weight=None, batch_size=None, steps=None, shuffle=False,
                        class_weight=None, device=None, run=None):
        # `keras.config.set_max_steps_per_epoch`: Keras's epoch iterator
        # replaces `steps` by the cap before building the adapter (fit,
        # validation, evaluate and predict alike)
        cap = backend_config.max_steps_per_epoch()
        if cap and (not steps or cap < steps):
            warnings.warn(f"Limiting steps_per_epoch to {cap}", stacklevel=3)
            steps = cap
        # a DataLoader over a `DistributedSampler` already yields this rank's share: read as per-rank data
        # (slicing its batches again would train on 1/world of the data), its sampler's epoch set by `fit`
        # (also in one process, e.g. `torchrun --nproc_per_node=1`: else every epoch repeats one order)
        sampler = distributed.distributed_sampler(x)
        if sampler is not None and run is not None:
            run.check_sampler(sampler)
        shard = run if run is not None and run.auto_shard and sampler is None else None
        adapter = data_adapters.get_data_adapter(
            x, y, sample_weight=sample_weight, batch_size=batch_size, steps_per_epoch=steps, shuffle=shuffle,
            class_weight=class_weight, device=device, shard=shard,
        )
        iterator = data_adapters.EpochIterator(adapter, steps)
        iterator.per_rank = run is not None and shard is None
        iterator.sampler = sampler
        return iterator

    def _keras_peek_draws(self, iterator) -> None:
        """Keras's first fit/evaluate after `compile` peeks at a batch to build
        its compiled loss and metrics (`_symbolic_build`), and so does every
        fit/evaluate while a layer of the model is unbuilt; after
        set_random_seed its RNG draws are repeated here so that the global
        torch RNG stays in step with Keras's. A model compiled with no loss
        and no metrics (a custom `train_step`) whose layers are all built is
        not peeked at."""
        pending = self.__dict__.pop("_keras_peek_pending", False)
        if pending or not all(layer.built for layer in self._flatten_layers()):
            peek = getattr(iterator.adapter, "keras_peek_draws", None)
            if peek is not None:
                peek()

    @staticmethod
    def _batches(iterator, run):
        """The `(step, batch)` pairs of one epoch; with per-rank data
        (`auto_shard_dataset=False`, a `DistributedSampler`) they stop when
        any rank runs out; from a split source of unknown length they stop
        when all do, and raise when only some do."""
        if run is not None and iterator.per_rank:
            return run.steps_in_lockstep(iterator)
        if run is not None and iterator.adapter.num_batches is None:
            # a generator of unknown length, split per global batch: a rank running out alone would
            # leave the others in a collective
            return run.steps_in_lockstep(iterator, same_data=True)
        return iterator

    @staticmethod
    def _synced_step(step_fn, run):
        """`step_fn`, broadcasting rank 0's weights before the first batch."""
        if run is None:
            return step_fn

        def step(batch):
            if run.pending_sync:
                run.sync_model(unpack_x_y_sample_weight(batch)[0], batch)
            return step_fn(batch)

        return step

    def _reduced_logs(self, logs, lazy, run):
        """The materialized logs; under a distribution, the metric states
        are summed over ranks first (and other float entries averaged), so
        every rank gets the same numbers."""
        if run is None:
            return materialize_logs(self._get_metrics_result_or_logs(None if lazy else logs))
        with run.reduced_metrics(self.metrics):
            metric_logs = materialize_logs(self.get_metrics_result())
            out = metric_logs if lazy else materialize_logs(self._get_metrics_result_or_logs(logs))
        return run.mean_of(out, sorted(k for k in out if k not in metric_logs))

    @staticmethod
    def _should_eval(epoch, validation_freq) -> bool:
        epoch += 1
        if isinstance(validation_freq, int):
            return epoch % validation_freq == 0
        if isinstance(validation_freq, list):
            return epoch in validation_freq
        raise ValueError(
            "Expected `validation_freq` to be a list or int. "
            f"Received: validation_freq={validation_freq} of the type {type(validation_freq)}."
        )

    def _callback_list(self, callbacks, verbose, epochs, steps, add_history=False):
        from kerasish.callbacks import CallbackList

        if isinstance(callbacks, CallbackList):
            return callbacks
        if not distributed.is_rank_zero():
            verbose = 0  # one progress bar per job, on rank 0
        return CallbackList(callbacks, add_history=add_history, add_progbar=verbose != 0, verbose=verbose,
                            epochs=epochs, steps=steps, model=self)

    # ---------------------------------------------------------------- loops
    @_keras_loop
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Trains the model for `epochs` epochs; returns a `History`.

        Args:
            x: Arrays/tensors (or lists/dicts of them), a torch `Dataset` or
                `DataLoader`, or a generator yielding `(x, y[, sample_weight])`.
            y: Targets (arrays/tensors) when `x` is arrays.
            batch_size: Defaults to 32 for arrays.
            epochs: Index of the last epoch (with `initial_epoch`).
            verbose: "auto" (=1), 0 silent, 1 progress bar, 2 one line per epoch.
            callbacks: List of `keras.callbacks.Callback`.
            validation_split: Fraction of the (array) data, taken from the
                end before shuffling, used for validation.
            validation_data: `(x_val, y_val[, sw_val])` or a DataLoader/generator.
            shuffle: True, False or "batch" (array data only).
            class_weight: `{class: weight}` turned into sample weights.
            sample_weight: Per-sample (or per-timestep) weights.
            initial_epoch: Epoch to start from.
            steps_per_epoch: Batches per epoch (required for infinite generators).
            validation_steps: Batches per validation run.
            validation_batch_size: Defaults to `batch_size`.
            validation_freq: Validate every N epochs (int) or at listed epochs.

        Batches go to the model's device; `model.train()` is set for the
        training steps and `model.eval()` for validation; when `fit` ends
        every submodule has its mode from before `fit` again.
        """
        self._assert_compile_called("fit")
        self._assert_grad_enabled("fit")
        cap = backend_config.max_epochs()
        if cap and cap < epochs:  # `keras.config.set_max_epochs`, as Keras's trainer
            warnings.warn(f"Limiting epochs to {cap}", stacklevel=2)
            epochs = cap
        if validation_split and validation_data is None:
            (x, y, sample_weight), validation_data = data_adapters.train_validation_split(
                (x, y, sample_weight), validation_split
            )
        val_x = val_y = val_sw = None
        if validation_data is not None:
            if isinstance(validation_data, (list, tuple)):
                val_x, val_y, val_sw = unpack_x_y_sample_weight(validation_data)
            else:
                val_x = validation_data
        device = self._model_device()
        run = distributed.current_run(self)
        iterator = self._epoch_iterator(x, y, sample_weight, batch_size, steps_per_epoch, shuffle, class_weight,
                                        device, run)
        self._keras_peek_draws(iterator)
        iterator.adapter.keras_reset()
        cbs = self._callback_list(callbacks, verbose, epochs, iterator.num_batches, add_history=True)
        self._metrics_to(device)
        self.stop_training = False
        self._eval_epoch_iterator = None
        step_fn, lazy = self._keras_step_function("train")
        if run is not None:
            run.hook_grads = self._custom_train_step()
            run.trains = True
            self._dist_run = run
            if run.hook_grads:
                step_fn = run.guard_custom_step(step_fn)
            step_fn = self._synced_step(step_fn, run)
            # a callback reading batch logs may stop training on one rank: agree on it every batch (decided
            # by all ranks together: callbacks given to rank 0 only must not leave it alone in a collective)
            sync_stop = run.any(bool(cbs._targets("on_train_batch_end")[0]) if hasattr(cbs, "_targets") else True)
        modes = ModeSnapshot(self)
        self._in_fit = True
        try:
            return self._fit_epochs(batch_size, epochs, validation_freq, validation_steps, validation_batch_size,
                                    initial_epoch, val_x, val_y, val_sw, device, run, iterator, cbs, step_fn, lazy,
                                    run is not None and sync_stop)
        finally:
            modes.restore()
            self._in_fit = self._no_fp16_layers = False
            if run is not None:
                run.close()
            self._dist_run = None
            self._eval_epoch_iterator = None

    def _fit_epochs(self, batch_size, epochs, validation_freq, validation_steps, validation_batch_size,
                    initial_epoch, val_x, val_y, val_sw, device, run, iterator, cbs, step_fn, lazy, sync_stop):
        lazy_logs = self.get_metrics_result
        spe = self.steps_per_execution
        cbs.on_train_begin()
        # BackupAndRestore sets where a resumed fit starts (Keras's `_initial_epoch`; the step is kerasish's)
        initial_epoch = self.__dict__.pop("_initial_epoch", None) or initial_epoch
        skip_steps = self.__dict__.pop("_initial_step", 0)
        if run is not None:
            run.check_same_start(initial_epoch, skip_steps)
        training_logs = {}
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            if iterator.sampler is not None:  # (before the callbacks: a user's `set_epoch` there wins)
                iterator.sampler.set_epoch(epoch)
            elif run is not None and iterator.steps_per_epoch is None:
                # a pass per epoch over data split across ranks: shuffled as epoch `epoch` of the run,
                # so a resumed fit replays the uninterrupted order
                iterator.adapter.set_epoch(epoch)
            cbs.on_epoch_begin(epoch)
            switch_mode(self, True)
            logs, steps_run, steps_skipped = None, 0, 0
            for begin, end, batches in _chunks(self._batches(iterator, run), spe):
                if end < skip_steps:  # trained before the interruption
                    steps_run += len(batches)
                    steps_skipped += len(batches)
                    continue
                cbs.on_train_batch_begin(begin)
                for batch in batches:
                    logs = step_fn(batch)
                steps_run += len(batches)
                if sync_stop:  # a callback reads batch logs: the global batch's values, as in one process
                    cbs.on_train_batch_end(end, self._reduced_logs(logs, lazy, run))
                else:
                    cbs.on_train_batch_end(end, lazy_logs if lazy else logs)
                if sync_stop:
                    self.stop_training = run.any(self.stop_training)
                if self.stop_training:
                    break
            skip_steps = 0
            switch_mode(self, False)
            if steps_run == 0 and iterator.exhausted:
                if iterator.steps_per_epoch is None:
                    iterator._warn_ran_out()
                self.stop_training = True
                break
            if steps_skipped and steps_skipped == steps_run:
                # a resumed epoch all of whose batches ran before the interruption: its training
                # metrics are unknown (their states were not backed up); log none rather than
                # the zeros of freshly reset metrics
                epoch_logs = {}
            else:
                epoch_logs = self._reduced_logs(logs, lazy, run)
            if val_x is not None and self._should_eval(epoch, validation_freq):
                if self._eval_epoch_iterator is None:
                    self._eval_epoch_iterator = self._epoch_iterator(
                        val_x, val_y, val_sw, validation_batch_size or batch_size, validation_steps, False, None,
                        device, run,
                    )
                val_logs = self.evaluate(callbacks=cbs, return_dict=True, _use_cached_eval_dataset=True)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, epoch_logs)
            training_logs = epoch_logs
            if run is not None:
                self.stop_training = run.any(self.stop_training)
            if self.stop_training:
                break
        from kerasish.optimizers import Optimizer as KerasOptimizer

        if isinstance(self.optimizer, KerasOptimizer) and epochs > 0 and self.optimizer.built:
            self.optimizer.finalize_variable_values(self._trainable_variables_cached())
        cbs.on_train_end(logs=training_logs)
        return self.history

    @_keras_loop
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, **kwargs):
        """Returns the loss and metric values on the data (in eval mode, no
        gradients): a scalar, a list in `metrics_names` order, or a dict
        with `return_dict=True`."""
        use_cached = kwargs.pop("_use_cached_eval_dataset", False)
        if kwargs:
            raise ValueError(f"Arguments not recognized: {kwargs}")
        self._assert_compile_called("evaluate")
        device = self._model_device()
        if use_cached:
            run = self._dist_run
            iterator = self._eval_epoch_iterator
            iterator.reset()
        else:
            run = distributed.current_run(self)
            iterator = self._epoch_iterator(x, y, sample_weight, batch_size, steps, False, None, device, run)
            self._keras_peek_draws(iterator)
        iterator.adapter.keras_reset()
        cbs = self._callback_list(callbacks, verbose, 1, iterator.num_batches)
        self._metrics_to(device)
        modes = ModeSnapshot(self)
        switch_mode(self, False)
        step_fn, lazy = self._keras_step_function("test")
        if run is not None:
            step_fn = self._synced_step(self._skip_empty(step_fn, lazy, run), run)
        self._stop_evaluating = False
        # a callback reading batch logs gets the global batch's values (decided by all ranks together)
        batch_logs_synced = run is not None and run.any(
            not hasattr(cbs, "_targets") or bool(cbs._targets("on_test_batch_end")[0]))
        cbs.on_test_begin()
        self.reset_metrics()
        logs = None
        for begin, end, batches in _chunks(self._batches(iterator, run), self.steps_per_execution):
            cbs.on_test_batch_begin(begin)
            for batch in batches:
                logs = step_fn(batch)
            if batch_logs_synced:
                cbs.on_test_batch_end(end, self._reduced_logs(logs, lazy, run))  # global values, every rank
            else:
                cbs.on_test_batch_end(end, self.get_metrics_result if lazy else logs)
            stop = self._stop_evaluating
            if run is not None:
                stop = run.any(stop)
            if stop:
                break
        logs = self._reduced_logs(logs, lazy, run)
        cbs.on_test_end(logs)
        if run is not None:
            run.after_inference()
        if not use_cached:  # (inside fit, fit sets the modes)
            modes.restore()
        if return_dict:
            return logs
        return self._flatten_metrics_in_order(logs)

    @_keras_loop
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Predictions for the input samples, batched, in eval mode, as NumPy
        arrays (the model's output structure for multi-output models)."""
        device = self._model_device()
        run = distributed.current_run(self)
        iterator = self._epoch_iterator(x, None, None, batch_size, steps, False, None, device, run)
        cbs = self._callback_list(callbacks, verbose, 1, iterator.num_batches)
        modes = ModeSnapshot(self)
        switch_mode(self, False)
        step_fn, _ = self._keras_step_function("predict")
        if run is not None:
            return self._predict_distributed(iterator, cbs, self._synced_step(step_fn, run), run, modes)
        self._stop_predicting = False
        cbs.on_predict_begin()
        outputs, structure = None, None
        to_host = DeviceToHost()  # each batch's outputs leave the device as it ends: memory stays flat
        for begin, end, batches in _chunks(iterator, self.steps_per_execution):
            cbs.on_predict_batch_begin(begin)
            for batch in batches:
                out = step_fn(batch)
                flat = [to_host(t) for t in data_adapters._flatten(out)]
                if outputs is None:
                    structure, outputs = out, [[t] for t in flat]
                else:
                    for acc, t in zip(outputs, flat):
                        acc.append(t)
            cbs.on_predict_batch_end(end, {"outputs": out})
            if self._stop_predicting:
                break
        cbs.on_predict_end()
        modes.restore()
        if outputs is None:
            raise ValueError("Unexpected result of `predict_function` (Empty batch_outputs). Please use "
                             "`Model.compile(..., run_eagerly=True)`, or `tf.config.run_functions_eagerly(True)` "
                             "for more information of where went wrong, or file a issue/bug to `keras`.")
        to_host.wait()
        arrays = [DeviceToHost.concatenate(parts) for parts in outputs]
        return data_adapters._pack(structure, arrays)

    # ------------------------------------------------- Keras 2 aliases
    # Keras 2's signatures (positional order and defaults: `verbose=0` for
    # evaluate/predict), not `fit`'s: `fit_generator(gen, 10, 2)` means
    # steps_per_epoch=10, epochs=2. `max_queue_size`, `workers` and
    # `use_multiprocessing` are accepted and the batches are read in order in
    # this process, which gives the same batches Keras 2's ordered enqueuer does.
    def fit_generator(self, generator, steps_per_epoch=None, epochs=1, verbose=1, callbacks=None,
                      validation_data=None, validation_steps=None, validation_freq=1, class_weight=None,
                      max_queue_size=10, workers=1, use_multiprocessing=False, shuffle=True, initial_epoch=0):
        """Deprecated Keras 2 alias of `fit` (which accepts generators)."""
        _deprecated("fit_generator", "fit")
        with data_adapters.keras2_generators():
            return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=verbose,
                            callbacks=callbacks, validation_data=validation_data, validation_steps=validation_steps,
                            validation_freq=validation_freq, class_weight=class_weight, shuffle=shuffle,
                            initial_epoch=initial_epoch)

    def evaluate_generator(self, generator, steps=None, callbacks=None, max_queue_size=10, workers=1,
                           use_multiprocessing=False, verbose=0):
        """Deprecated Keras 2 alias of `evaluate`."""
        _deprecated("evaluate_generator", "evaluate")
        with data_adapters.keras2_generators():
            return self.evaluate(generator, steps=steps, callbacks=callbacks, verbose=verbose)

    def predict_generator(self, generator, steps=None, callbacks=None, max_queue_size=10, workers=1,
                          use_multiprocessing=False, verbose=0):
        """Deprecated Keras 2 alias of `predict`."""
        _deprecated("predict_generator", "predict")
        with data_adapters.keras2_generators():
            return self.predict(generator, steps=steps, callbacks=callbacks, verbose=verbose)

    # ---------------------------------------------------------- distributed
    def _custom_train_step(self) -> bool:
        """Whether `train_step` is overridden: under `DataParallel` its
        gradients are then averaged (unweighted, as DDP does) by hooks run
        as each gradient is accumulated, since the step calls the
        optimizer itself."""
        from kerasish.trainers.trainer import _overridden

        return _overridden(self, "train_step")

    def _skip_empty(self, step_fn, lazy, run=None):
        """`step_fn`, doing nothing on a rank whose share of the (last,
        small) global batch is empty (but the forward pass, when FSDP2's
        collectives live in it)."""

        def step(batch):
            if trainer_batch_size(batch) == 0:
                self._empty_forward(batch, run)
                return None if lazy else self.get_metrics_result()
            return step_fn(batch)

        return step

    def _empty_forward(self, batch, run) -> None:
        """The forward pass of an empty share, outputs dropped, when the
        model is `fully_shard`ed by a `ModelParallel` LayoutMap: each
        layer's all-gather must run on every rank of the batch axis."""
        if run is not None and run.managed and run.auto_shard:
            with torch.no_grad():
                self(unpack_x_y_sample_weight(batch)[0], training=False)

    def _predict_distributed(self, iterator, cbs, step_fn, run, modes):
        """`predict` on this rank's share of every batch; the outputs of all
        ranks are gathered back into the global order (with per-rank data,
        `auto_shard_dataset=False` or a `fully_shard`ed model, each rank
        returns its own predictions)."""
        self._stop_predicting = False
        cbs.on_predict_begin()
        parts, sizes, structure = None, [], None
        for begin, end, batches in _chunks(self._batches(iterator, run), self.steps_per_execution):
            cbs.on_predict_batch_begin(begin)
            out = None
            for batch in batches:
                n = trainer_batch_size(batch)
                sizes.append(n)
                if n == 0:
                    self._empty_forward(batch, run)
                    continue
                out = step_fn(batch)
                flat = [_to_numpy(t) for t in data_adapters._flatten(out)]
                if parts is None:
                    structure, parts = out, [[t] for t in flat]
                else:
                    for acc, t in zip(parts, flat):
                        acc.append(t)
            cbs.on_predict_batch_end(end, {"outputs": out})
            if run.any(self._stop_predicting):
                break
        cbs.on_predict_end()
        run.after_inference()
        modes.restore()
        local = [np.concatenate(p) for p in parts] if parts is not None else []
        if iterator.per_rank:  # each rank fed its own data: it gets its own predictions
            if parts is None:
                raise ValueError("Unexpected result of `predict_function` (Empty batch_outputs).")
            return data_adapters._pack(structure, local)
        arrays = run.gather_predictions(local, sizes)
        if structure is None:  # this rank had no rows; rebuild the structure from rank 0's leaves
            structure = arrays if len(arrays) != 1 else arrays[0]
        if not arrays:
            raise ValueError("Unexpected result of `predict_function` (Empty batch_outputs).")
        return data_adapters._pack(structure, arrays)

    # ------------------------------------------------------ single batches
    def _single_batch(self, x, y=None, sample_weight=None):
        device = self._model_device()

        def conv(t):
            return data_adapters.to_tensor(t) if isinstance(t, np.ndarray) or hasattr(t, "__array__") else t

        data = (data_adapters.map_structure(conv, x), data_adapters.map_structure(conv, y),
                data_adapters.map_structure(conv, sample_weight))
        return data_adapters.move_to_device(data, device), device

    @_keras_loop
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False, *,
                       reset_metrics=True):
        """One gradient update on one batch (metrics are reset first, as in
        Keras 3); returns the loss/metrics like `evaluate`.

        `reset_metrics=False` (Keras 2's argument; Keras 3 dropped it) keeps
        the metrics' state, so the values returned accumulate over the
        batches since the last `reset_metrics()`, as in tf.keras 2."""
        self._assert_compile_called("train_on_batch")
        self._assert_grad_enabled("train_on_batch")
        if class_weight is not None:
            if sample_weight is not None:
                raise ValueError(
                    "Arguments `sample_weight` and `class_weight` cannot be specified at the same time. "
                    f"Received: sample_weight={sample_weight}, class_weight={class_weight}"
                )
            sample_weight = data_adapters.class_weight_to_sample_weights(y, class_weight)
        data, device = self._single_batch(x, y, sample_weight)
        self._metrics_to(device)
        if reset_metrics:
            self.reset_metrics()
        modes = ModeSnapshot(self)
        switch_mode(self, True)
        try:
            step_fn, lazy = self._keras_step_function("train")
            logs = step_fn(data)
        finally:
            modes.restore()
        return self._single_batch_logs(None if lazy else logs, return_dict)

    @_keras_loop
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False, *, reset_metrics=True):
        """Evaluates one batch (metrics reset first); returns like `evaluate`.
        `reset_metrics=False` (Keras 2's) accumulates, as in `train_on_batch`."""
        self._assert_compile_called("test_on_batch")
        data, device = self._single_batch(x, y, sample_weight)
        self._metrics_to(device)
        if reset_metrics:
            self.reset_metrics()
        modes = ModeSnapshot(self)
        switch_mode(self, False)
        try:
            step_fn, lazy = self._keras_step_function("test")
            logs = step_fn(data)
        finally:
            modes.restore()
        return self._single_batch_logs(None if lazy else logs, return_dict)

    def _single_batch_logs(self, logs, return_dict):
        logs = materialize_logs(self._get_metrics_result_or_logs(logs))
        return logs if return_dict else self._flatten_metrics_in_order(logs)

    @_keras_loop
    def predict_on_batch(self, x):
        """Predictions for one batch, as NumPy arrays."""
        data, _ = self._single_batch(x)
        modes = ModeSnapshot(self)
        switch_mode(self, False)
        try:
            step_fn, _ = self._keras_step_function("predict")
            out = step_fn((data[0],))
        finally:
            modes.restore()
        return data_adapters.map_structure(_to_numpy, out)
