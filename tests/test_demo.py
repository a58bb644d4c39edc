"""The README's first command: `python tools/demo.py` builds, trains,
evaluates, saves and reloads a functional model."""

from __future__ import annotations

import importlib.util
import pathlib

DEMO = pathlib.Path(__file__).resolve().parents[1] / "tools" / "demo.py"


def _load_demo():
    spec = importlib.util.spec_from_file_location("kerasish_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_trains_and_reloads(tmp_path, capsys):
    demo = _load_demo()
    result = demo.main(epochs=4, verbose=1, workdir=str(tmp_path))
    losses = result["history"]["loss"]
    assert losses[-1] < losses[0]
    assert result["history"]["val_accuracy"][-1] > 0.7
    assert result["reload_identical"] and pathlib.Path(result["weights_path"]).exists()
    out = capsys.readouterr().out
    assert "Epoch 4/4" in out and "test accuracy" in out and "identical predictions: True" in out
    # h5py is a test dependency: the Keras archive round trip ran too
    assert pathlib.Path(result["keras_path"]).exists()
    assert out.count("identical predictions: True") == 2
