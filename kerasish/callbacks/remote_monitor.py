"""`keras.callbacks.RemoteMonitor`: posts each epoch's logs to an HTTP server."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import warnings

import numpy as np
import torch

from kerasish.callbacks.callback import Callback


def _plain(value):
    """A log value as a JSON-ready Python scalar (arrays and tensors unwrapped)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


class RemoteMonitor(Callback):
    """Streams the logs of every epoch end to a server.

    Each event is an HTTP POST to `root + path` of the dict
    `{"epoch": epoch, **logs}`: as a JSON body (`Content-Type:
    application/json`) when `send_as_json=True`, otherwise as a form
    (`application/x-www-form-urlencoded`) whose field `field` holds the JSON
    text. The payload is the one Keras sends; kerasish posts it with the
    standard library's `urllib.request`, where Keras needs `requests`.

    As in Keras, a server that cannot be reached gives a warning (training
    goes on), and the server's reply, error statuses included, is ignored.
    Like Keras's JSON mode, NaN or infinite values are refused (a warning)
    rather than sent as invalid JSON.

    Args:
        root: Root URL of the server. Defaults to "http://localhost:9000".
        path: Path appended to `root`. Defaults to "/publish/epoch/end/".
        field: Form field of the JSON text when `send_as_json=False`.
            Defaults to "data".
        headers: Optional dict of extra HTTP headers. Defaults to None.
        send_as_json: Send the dict as the JSON body. Defaults to False.
    """

    def __init__(self, root="http://localhost:9000", path="/publish/epoch/end/", field="data", headers=None,
                 send_as_json=False):
        super().__init__()
        self.root = root
        self.path = path
        self.field = field
        self.headers = headers
        self.send_as_json = send_as_json

    def on_epoch_end(self, epoch, logs=None):
        send = {"epoch": epoch}
        for key, value in (logs or {}).items():
            send[key] = _plain(value)
        headers = {str(k): str(v) for k, v in (self.headers or {}).items()}
        try:
            if self.send_as_json:
                # requests' `json=` encoding: compact separators are not used,
                # NaN is refused
                body = json.dumps(send, allow_nan=False).encode("utf-8")
                headers.setdefault("Content-Type", "application/json")
            else:
                body = urllib.parse.urlencode({self.field: json.dumps(send)}).encode("ascii")
                headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        except ValueError:
            warnings.warn(f"Could not reach RemoteMonitor root server at {self.root}", stacklevel=2)
            return
        request = urllib.request.Request(self.root + self.path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request) as response:
                response.read()
        except urllib.error.HTTPError:
            pass  # the server answered; Keras ignores the status
        except (urllib.error.URLError, OSError, ValueError):
            warnings.warn(f"Could not reach RemoteMonitor root server at {self.root}", stacklevel=2)
