"""`keras.callbacks.ModelCheckpoint`."""

from __future__ import annotations

import os
import uuid
import warnings

import numpy as np
import torch

from kerasish.callbacks.callback import _default
from kerasish.callbacks.monitor_callback import MonitorCallback
from kerasish.utils.io_utils import print_msg


def atomic_save(write, filepath: str) -> None:
    """Calls `write(tmp_path)` then renames the temporary file over
    `filepath` (`os.replace`), so a crash never leaves a half-written file."""
    dirname, basename = os.path.split(filepath)
    tmp = os.path.join(dirname, f".tmp-{uuid.uuid4().hex[:8]}-{basename}")
    try:
        write(tmp)
        os.replace(tmp, filepath)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class ModelCheckpoint(MonitorCallback):
    """Saves the model or its weights at some frequency.

    Args:
        filepath: Path, formatted with `epoch` (1-based), `batch` and the
            log values: `"ckpt/{epoch:02d}-{val_loss:.2f}.pt"`.
        monitor: Metric for `save_best_only`. Defaults to "val_loss".
        verbose: 1 prints a message per save. Defaults to 0.
        save_best_only: Save only when the monitored value improves.
        save_weights_only: Save only the weights.
        mode: "auto", "min" or "max". Defaults to "auto".
        save_freq: "epoch" or an integer number of batches.
        initial_value_threshold: Initial best value for `save_best_only`.
        sharded: kerasish only. True writes each checkpoint with
            `kerasish.distribution.model_parallel.save_sharded_checkpoint`:
            a `torch.distributed.checkpoint` directory where every process
            writes its own shards of a model laid out by
            `keras.distribution.ModelParallel` (tensor parallel or FSDP2)
            or `fully_shard`ed, with the optimizer's moments and step count
            (resume with `load_sharded_checkpoint`); nothing is gathered,
            so a model too large for one device checkpoints too. Needs
            `save_weights_only=True` (there is no architecture in it).
            False (default): rank 0 writes the file `filepath` names, with
            whole weights (under tensor parallelism every process gathers
            each weight for it; a `fully_shard`ed model writes its
            `state_dict` shards to a directory, as before).

    Format: weights are written with `torch.save(model.state_dict())`
    (load them with `model.load_state_dict(torch.load(path))`), or with
    `model.save_weights(path)` when the model has it and the path ends in
    ".weights.h5" (Keras 3's layout) or ".h5" / ".hdf5" (Keras 2's HDF5
    weights, which Keras 3 refuses here); the full model with `model.save(path)` when the model has
    a `save` method, otherwise its `state_dict` too. Unlike Keras, any file
    extension is accepted. Every write goes to a temporary file renamed over
    the target (`os.replace`), so the checkpoint is never half-written.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None, sharded=False):
        super().__init__(monitor, mode, initial_value_threshold)
        if sharded and not save_weights_only:
            raise ValueError(
                "`ModelCheckpoint(sharded=True)` writes the weights and optimizer state as a sharded "
                "torch.distributed.checkpoint, with no model architecture: pass `save_weights_only=True`. "
                f"Received: sharded={sharded}, save_weights_only={save_weights_only}"
            )
        self.sharded = bool(sharded)
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = None
        self._current_epoch = 0
        if save_freq != "epoch" and not isinstance(save_freq, int):
            raise ValueError(f"Unrecognized save_freq: {save_freq}. Expected save_freq are 'epoch' or integer values")
        if save_freq == "epoch":
            # no batch hook: batch logs are then never synced to Python for us
            self.on_train_batch_end = self._no_batch_hook

    @_default
    def _no_batch_hook(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(epoch=self._current_epoch, batch=batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save_model(epoch=epoch, batch=None, logs=logs)

    def _should_save_on_batch(self, batch) -> bool:
        if self.save_freq == "epoch":
            return False
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            add = batch + 1
        else:
            add = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _should_save_model(self, epoch, logs, filepath) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
            return True
        if isinstance(current, (np.ndarray, torch.Tensor)) and np.ndim(current) > 0:
            warnings.warn(
                f"Can save best model only when `monitor` is a scalar value. Received: {current}. "
                "Falling back to `save_best_only=False`.",
                stacklevel=2,
            )
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to {current:.5f}, "
                          f"saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _write(self, filepath):
        """Writes on rank 0 only (every rank reaches the same decision, the
        logs being all-reduced); the others wait for the file at a barrier."""
        from kerasish.trainers.distributed import _is_fully_sharded, barrier, is_rank_zero

        if self.sharded:
            from kerasish.distribution import model_parallel

            with warnings.catch_warnings():  # overwriting the same path each epoch is the intent, as for files
                warnings.filterwarnings("ignore", message="Detected an existing checkpoint")
                model_parallel.save_sharded_checkpoint(self.model, filepath)  # every rank writes its shards
            return
        if _is_fully_sharded(self.model) and torch.distributed.is_initialized():
            # FSDP2 weights: every rank writes its own shards (torch.distributed.checkpoint, a directory);
            # read back with `torch.distributed.checkpoint.load({"model": model.state_dict()}, checkpoint_id=...)`
            import torch.distributed.checkpoint as dcp

            dcp.save({"model": self.model.state_dict()}, checkpoint_id=filepath)
            return
        if self.model.__dict__.get("_mp_hooks"):
            # ModelParallel: every rank gathers the sharded weights, rank 0 writes them whole
            from kerasish.distribution import model_parallel

            with model_parallel.whole_weights(self.model):
                if is_rank_zero():
                    self._write_file(filepath)
            barrier()
            return
        if is_rank_zero():
            self._write_file(filepath)
        barrier()

    def _sharded(self) -> bool:
        from kerasish.trainers.distributed import _is_fully_sharded

        return self.sharded or (_is_fully_sharded(self.model) and torch.distributed.is_initialized())

    def _write_file(self, filepath):
        model = self.model
        if self.save_weights_only:
            # ".h5"/".hdf5" other than ".weights.h5": Keras 2's HDF5 weights, as its ModelCheckpoint wrote
            # them (Keras 3 refuses the name), so that `load_weights` reads the file back
            if filepath.endswith((".h5", ".hdf5")) and callable(getattr(model, "save_weights", None)):
                atomic_save(lambda p: model.save_weights(p, overwrite=True), filepath)
            else:
                atomic_save(lambda p: torch.save(model.state_dict(), p), filepath)
        elif callable(getattr(model, "save", None)):
            atomic_save(lambda p: model.save(p, overwrite=True), filepath)
        else:
            atomic_save(lambda p: torch.save(model.state_dict(), p), filepath)

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._get_file_path(epoch, batch, logs)
        if os.path.isdir(filepath) and not self._sharded():
            raise OSError(
                f"Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an existing "
                f"directory: {filepath}"
            )
        if self._should_save_model(epoch, logs, filepath):
            dirname = os.path.dirname(filepath)
            if dirname:
                os.makedirs(dirname, exist_ok=True)
            self._write(filepath)
            if self.verbose > 0:  # Keras 3.15 confirms each write
                print_msg(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _get_file_path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e}') from e
