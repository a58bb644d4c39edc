"""`keras.callbacks.TensorBoard`: TensorBoard event files through
`torch.utils.tensorboard.SummaryWriter` (needs the optional `tensorboard`
package, imported when the first file is written)."""

from __future__ import annotations

import os
import time

from kerasish.callbacks.callback import Callback


class TensorBoard(Callback):
    """Writes TensorBoard logs the way Keras 3 lays them out.

    `log_dir/train` receives `epoch_<metric>` scalars (plus
    `epoch_learning_rate` and, with `write_steps_per_second`,
    `epoch_steps_per_second`) at step `epoch`, and with `update_freq` set to
    `"batch"` or N, `batch_<metric>` scalars every N global training batches
    (step = global batch count, 1-based). `log_dir/validation` receives the
    `val_` metrics as `epoch_<metric>` and, after each evaluation,
    `evaluation_<metric>_vs_iterations` at step `optimizer.iterations`.
    `histogram_freq=N` writes `<weight.path>/histogram` for every layer
    weight every N epochs.

    Differences from Keras (which writes through `tf.summary`): the
    Keras model-JSON graph summary (`write_graph`) and weight images
    (`write_images`) are not written; profiling (`profile_batch`, also
    refused by Keras on the torch backend) and `embeddings_freq` raise.

    Args:
        log_dir: Directory of the event files. Defaults to "logs".
        histogram_freq: Epoch frequency of weight histograms (0: none).
        write_graph: Accepted for compatibility (see above).
        write_images: Accepted for compatibility (see above).
        write_steps_per_second: Also log training steps per second.
        update_freq: "epoch", "batch" or an integer number of batches.
        profile_batch: Must be 0 (profiling is not available on torch).
        embeddings_freq: Must be 0 (not written yet).
        embeddings_metadata: Must be None.

    Example:
        >>> model.fit(x, y, callbacks=[keras.callbacks.TensorBoard("logs", update_freq=10)])
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        self.log_dir = str(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_images = write_images
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = 1 if update_freq == "batch" else update_freq
        if self.update_freq != "epoch" and (not isinstance(self.update_freq, int) or self.update_freq < 1):
            raise ValueError(
                f"`update_freq` must be 'epoch', 'batch' or a positive integer. Received: update_freq={update_freq}"
            )
        if profile_batch:
            raise ValueError(
                "Profiling is not yet available with the torch backend (as in Keras 3). "
                f"Received: profile_batch={profile_batch}"
            )
        if embeddings_freq or embeddings_metadata:
            raise NotImplementedError(
                "kerasish's TensorBoard callback does not write embedding projector data yet. "
                f"Received: embeddings_freq={embeddings_freq}"
            )
        self.embeddings_freq = embeddings_freq
        self.embeddings_metadata = embeddings_metadata
        self._writers = {}
        self._global_train_batch = 0
        self._epoch_start_time = 0.0
        self._epoch_start_iterations = 0
        if self.update_freq == "epoch":
            # no batch hooks: fit keeps its fast path (no per-batch log syncs)
            self.on_train_batch_begin = Callback.on_train_batch_begin.__get__(self)
            self.on_train_batch_end = Callback.on_train_batch_end.__get__(self)

    def set_model(self, model):
        super().set_model(model)
        self._close_writers()

    # ----------------------------------------------------------- writers
    def _writer(self, name: str):
        if name not in self._writers:
            from kerasish.trainers.distributed import is_rank_zero

            if not is_rank_zero():
                return None
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:  # tensorboard is an optional dependency
                raise ImportError(
                    "keras.callbacks.TensorBoard needs the `tensorboard` package: pip install tensorboard"
                ) from e
            self._writers[name] = SummaryWriter(log_dir=os.path.join(self.log_dir, name))
        return self._writers[name]

    def _scalars(self, name, values: dict, prefix: str, step: int) -> None:
        writer = self._writer(name)
        if writer is None:
            return
        for key, value in values.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue  # e.g. a per-class vector metric: TensorBoard scalars are scalars
            writer.add_scalar(f"{prefix}{key}", value, global_step=step)

    def _close_writers(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # ------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        self._global_train_batch = 0

    def on_train_end(self, logs=None):
        self._close_writers()

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        if self.write_steps_per_second:
            self._batch_start_time = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if self._global_train_batch % self.update_freq != 0:
            return
        values = dict(logs or {})
        if self.write_steps_per_second:
            values = {"steps_per_second": 1.0 / max(time.time() - self._batch_start_time, 1e-12), **values}
        self._scalars("train", values, "batch_", self._global_train_batch)

    def on_epoch_begin(self, epoch, logs=None):
        if self.write_steps_per_second:
            self._epoch_start_time = time.time()
            self._epoch_start_iterations = int(self.model.optimizer.iterations)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if train and optimizer is not None and hasattr(optimizer, "learning_rate"):
            train["learning_rate"] = float(optimizer.learning_rate)
        if train and self.write_steps_per_second:
            steps = int(optimizer.iterations) - self._epoch_start_iterations
            train["steps_per_second"] = steps / max(time.time() - self._epoch_start_time, 1e-12)
        if train:
            self._scalars("train", train, "epoch_", epoch)
        if val:
            self._scalars("validation", val, "epoch_", epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if logs and optimizer is not None and hasattr(optimizer, "iterations"):
            values = {f"evaluation_{k}_vs_iterations": v for k, v in logs.items()}
            self._scalars("validation", values, "", int(optimizer.iterations))

    def _log_weights(self, epoch):
        from kerasish.distribution.model_parallel import whole_weights_if_sharded

        with whole_weights_if_sharded(self.model):  # ModelParallel: every rank gathers, rank 0 writes
            writer = self._writer("train")
            if writer is None:
                return
            for layer in getattr(self.model, "layers", []):
                for weight in layer.weights:
                    name = str(getattr(weight, "path", None) or getattr(weight, "name", "weight")).replace(":", "_")
                    writer.add_histogram(f"{name}/histogram", weight.detach().float().cpu().numpy(),
                                         global_step=epoch)
