"""`keras.callbacks.TerminateOnNaN`."""

from __future__ import annotations

import math

from kerasish.callbacks.callback import Callback
from kerasish.utils.io_utils import print_msg


class TerminateOnNaN(Callback):
    """Stops training when the loss becomes NaN or infinite.

    Args:
        raise_error: Raise a `RuntimeError` instead of stopping quietly.
            Defaults to False.

    It reads the loss after every batch, which makes each step wait for the
    device (the other callbacks only read values once per epoch).
    """

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (math.isnan(loss) or math.isinf(loss)):
            if self.raise_error:
                raise RuntimeError(
                    f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                    "Terminating training immediately."
                )
            print_msg(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
