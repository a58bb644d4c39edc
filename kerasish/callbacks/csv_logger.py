"""`keras.callbacks.CSVLogger`."""

from __future__ import annotations

import collections
import csv
import os

import numpy as np

from kerasish.callbacks.callback import Callback


# Keras 2 logged the learning rate as "lr", Keras 3 (and kerasish) as "learning_rate"
_LR_SPELLINGS = {"lr": "learning_rate", "learning_rate": "lr", "val_lr": "val_learning_rate",
                 "val_learning_rate": "val_lr"}


def _logged(logs, key):
    """`logs[key]`, reading the other spelling of the learning rate's key, or "NA"."""
    if key in logs:
        return logs[key]
    other = _LR_SPELLINGS.get(key)
    return logs[other] if other is not None and other in logs else "NA"


class CSVLogger(Callback):
    """Streams the epoch results to a CSV file (`epoch` then the sorted keys).

    The learning rate that LearningRateScheduler / ReduceLROnPlateau log is
    written as Keras 3's `learning_rate` column (tf.keras 2 wrote `lr`).
    With `append=True` and a file that already has a header, the rows follow
    that header's columns (a key the header lacks is not written, a column
    the logs lack gets "NA"), and a tf.keras 2 `lr` column receives the
    learning rate: resuming a run that tf.keras 2 (or another kerasish run
    with other metrics) started keeps every value under its own column.
    Keras 3 writes its own sorted keys under the old header instead.

    Args:
        filename: Path of the CSV file.
        separator: Column separator. Defaults to ",".
        append: Append to an existing file (without repeating the header).
            Defaults to False.

    Example:
        >>> model.fit(x, y, callbacks=[keras.callbacks.CSVLogger("training.log")])
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        from kerasish.trainers.distributed import is_rank_zero

        self._writes = is_rank_zero()  # under a distribution, rank 0 alone writes the (identical) logs
        if not self._writes:
            return
        self._header_keys = None
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, newline="") as f:
                    first = f.readline()
                self.append_header = not bool(len(first))
                header = next(csv.reader([first], delimiter=self.sep)) if first.strip() else []
                if header and header[0] == "epoch":
                    self._header_keys = header[1:]
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")  # noqa: SIM115 (closed in on_train_end)
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        if not getattr(self, "_writes", True):
            return
        logs = logs or {}

        def handle_value(k):
            if isinstance(k, str):
                return k
            if isinstance(k, collections.abc.Iterable) and not (isinstance(k, np.ndarray) and k.ndim == 0):
                return f'"[{", ".join(map(str, k))}]"'
            return k

        if self.keys is None and getattr(self, "_header_keys", None) is not None:
            self.keys = list(self._header_keys)  # appending: the existing file's columns
        if self.keys is None:
            self.keys = sorted(logs.keys())
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys.extend([f"val_{k}" for k in self.keys])
        if not self.writer:
            sep = self.sep

            class CustomDialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch", *self.keys], dialect=CustomDialect)
            if self.append_header:
                self.writer.writeheader()
        row = collections.OrderedDict({"epoch": epoch})
        row.update((key, handle_value(_logged(logs, key))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None
