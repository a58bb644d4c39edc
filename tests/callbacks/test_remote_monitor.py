"""RemoteMonitor posts what Keras's RemoteMonitor posts, to a local HTTP server."""

import http.server
import json
import threading
import urllib.parse
import warnings

import numpy as np
import pytest

import kerasish


class _Recorder(http.server.BaseHTTPRequestHandler):
    received = []
    status = 200

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers.get("Content-Type"), self.headers.get("X-Run"), body))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Recorder.received = []
    _Recorder.status = 200
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Recorder
    httpd.shutdown()
    httpd.server_close()


LOGS = {"loss": np.float32(0.25), "accuracy": np.array(0.5), "lr": 0.01, "val_loss": 1.5}


def _decode(content_type, body, field="data"):
    if content_type == "application/json":
        return json.loads(body)
    return json.loads(urllib.parse.parse_qs(body.decode())[field][0])


@pytest.mark.parametrize("send_as_json", [False, True])
def test_payload_matches_keras(keras_ref, server, send_as_json):
    pytest.importorskip("requests", reason="Keras's RemoteMonitor needs requests to post")
    url, rec = server
    for lib in (keras_ref, kerasish):
        cb = lib.callbacks.RemoteMonitor(root=url, path="/ep/", field="payload", headers={"X-Run": "7"},
                                         send_as_json=send_as_json)
        cb.on_epoch_end(3, dict(LOGS))
    (ref_path, ref_type, ref_hdr, ref_body), (path, ctype, hdr, body) = rec.received
    assert (path, ctype, hdr) == (ref_path, ref_type, ref_hdr) == ("/ep/", ref_type, "7")
    assert ctype == ("application/json" if send_as_json else "application/x-www-form-urlencoded")
    assert _decode(ctype, body, "payload") == _decode(ref_type, ref_body, "payload") == {
        "epoch": 3, "loss": 0.25, "accuracy": 0.5, "lr": 0.01, "val_loss": 1.5}
    assert body == ref_body


def test_fit_posts_every_epoch(server):
    url, rec = server
    model = kerasish.Sequential([kerasish.Input((2,)), kerasish.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    history = model.fit(x, y, epochs=3, verbose=0, validation_data=(x, y),
                        callbacks=[kerasish.callbacks.RemoteMonitor(root=url, send_as_json=True)])
    posted = [json.loads(b) for _, _, _, b in rec.received]
    assert [p["epoch"] for p in posted] == [0, 1, 2]
    assert [p["loss"] for p in posted] == pytest.approx(history.history["loss"], rel=1e-6)
    assert set(posted[0]) == {"epoch", "loss", "mae", "val_loss", "val_mae"}


def test_unreachable_server_warns_and_error_status_is_ignored(keras_ref, server):
    url, rec = server
    with pytest.warns(UserWarning, match="Could not reach RemoteMonitor root server"):
        kerasish.callbacks.RemoteMonitor(root="http://127.0.0.1:1").on_epoch_end(0, {"loss": 1.0})
    rec.status = 500
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kerasish.callbacks.RemoteMonitor(root=url).on_epoch_end(0, {"loss": 1.0})
    assert len(rec.received) == 1
    with pytest.warns(UserWarning, match="Could not reach"):  # JSON refuses NaN, as requests' json= does
        kerasish.callbacks.RemoteMonitor(root=url, send_as_json=True).on_epoch_end(0, {"loss": float("nan")})
