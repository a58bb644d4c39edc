"""`keras.callbacks.BackupAndRestore`: resume a fit that was interrupted."""

from __future__ import annotations

import json
import os
import shutil

from kerasish.callbacks.callback import Callback


class BackupAndRestore(Callback):
    """Backs up the model (weights and optimizer state) and the training
    position to `backup_dir`, and resumes from them when `fit` starts again.

    Files as Keras 3 writes them: `latest.weights.h5` and
    `training_metadata.json` (`{"epoch": ..., "batch": ...}`), with `.bkp`
    copies of the previous backup when `double_checkpoint=True`.

    Resume point: with `save_freq="epoch"`, the start of the first
    unfinished epoch (as Keras). With an integer `save_freq`, kerasish
    resumes at the batch after the last backed-up one, so the weights equal
    those of an uninterrupted run when the data order is deterministic
    (e.g. `shuffle=False`); Keras 3 restarts that epoch from its first batch
    instead. The logged metrics of the resumed epoch cover only the batches
    run after resuming.

    Args:
        backup_dir: Directory of the backup (removed at the end of a
            successful fit when `delete_checkpoint`).
        save_freq: "epoch" or an integer number of batches.
        double_checkpoint: Keep the previous backup too, used when the
            latest one cannot be read.
        delete_checkpoint: Remove `backup_dir` when training finishes.
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        if save_freq != "epoch" and (not isinstance(save_freq, int) or isinstance(save_freq, bool)):
            raise ValueError(
                f"Invalid value for argument `save_freq`. Received: save_freq={save_freq}. "
                "Expected either 'epoch' or an integer value."
            )
        self.backup_dir = str(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._weights_path = os.path.join(self.backup_dir, "latest.weights.h5")
        self._training_metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self._prev_weights_path = self._weights_path + ".bkp"
        self._prev_training_metadata_path = self._training_metadata_path + ".bkp"
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._current_epoch = 0
        if save_freq == "epoch":
            self.on_train_batch_end = Callback.on_train_batch_end.__get__(self)  # keep fit's fast path

    def on_train_begin(self, logs=None):
        try:
            self._load_model()
        except OSError:
            if not os.path.exists(self._prev_weights_path):
                raise
            shutil.copy(self._prev_weights_path, self._weights_path)
            if os.path.exists(self._prev_training_metadata_path):
                shutil.copy(self._prev_training_metadata_path, self._training_metadata_path)
            elif os.path.exists(self._training_metadata_path):
                os.remove(self._training_metadata_path)
            self._load_model()

    def _load_model(self):
        model = self.model
        if not model.built:
            raise ValueError(
                "To use the BackupAndRestore callback, you model must be built before you call `fit()`. "
                f"Model {model} is unbuilt. You can build it beforehand by calling it on a batch of data."
            )
        if os.path.exists(self._weights_path):
            optimizer = getattr(model, "optimizer", None)
            if optimizer is not None and not getattr(optimizer, "built", True):
                optimizer.build(model.trainable_variables)
            model.load_weights(self._weights_path)
        if os.path.exists(self._training_metadata_path):
            with open(self._training_metadata_path) as f:
                meta = json.load(f)
            self._current_epoch = int(meta["epoch"])
            # read by the fit loop after `on_train_begin` (Keras's `_initial_epoch`)
            model.__dict__["_initial_epoch"] = self._current_epoch
            if self.save_freq != "epoch":
                model.__dict__["_initial_step"] = int(meta.get("batch", -1)) + 1
                self._last_batch_seen = int(meta.get("batch", -1))

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        if self.save_freq == "epoch":
            self._save_model()

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model()

    def _should_save_on_batch(self, batch) -> bool:
        if self.save_freq == "epoch":
            return False
        if batch <= self._last_batch_seen:  # a new epoch (batches are 0-based)
            add = batch + 1
        else:
            add = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _save_model(self):
        from kerasish.distribution.model_parallel import is_sharded
        from kerasish.distribution.model_parallel import whole_weights_if_sharded
        from kerasish.trainers.distributed import barrier
        from kerasish.trainers.distributed import is_rank_zero

        with whole_weights_if_sharded(self.model):  # ModelParallel: every rank gathers, rank 0 writes
            if is_rank_zero():
                self._write_backup()
        if is_sharded(self.model):
            barrier()

    def _write_backup(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._weights_path):
            shutil.copy(self._weights_path, self._prev_weights_path)
        if self.double_checkpoint and os.path.exists(self._training_metadata_path):
            shutil.copy(self._training_metadata_path, self._prev_training_metadata_path)
        self.model.save_weights(self._weights_path, overwrite=True)
        # (moved into place whole: a process killed while writing, e.g. by torchrun's agent when
        # another rank died, leaves the previous position, never a truncated file)
        from kerasish.saving.saving_lib import atomic_path

        with atomic_path(self._training_metadata_path) as tmp, open(tmp, "w") as f:
            json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)

    def on_train_end(self, logs=None):
        from kerasish.trainers.distributed import is_rank_zero

        # under a distribution rank 0 wrote the backup and alone removes it (every rank removing the
        # same files at once fails on the ranks that find them gone)
        if self.delete_checkpoint and is_rank_zero() and os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)
