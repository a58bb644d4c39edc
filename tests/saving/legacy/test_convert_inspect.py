"""`python -m kerasish.convert` and `python -m kerasish.inspect`."""

import os
import subprocess
import sys

import numpy as np
import pytest

import kerasish as keras
from kerasish import convert
from kerasish import inspect as kinspect
from legacy_fixtures import arrays, inputs, metadata, path

META = metadata()
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".pt"])
def test_convert_legacy_h5_keeps_predictions_and_training_state(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    convert.convert(path("multi_io.h5"), out)
    model = convert.load_any(out)
    entry = META["fixtures"]["multi_io"]
    preds = model.predict(inputs("multi_io", entry), verbose=0)
    for i, p in enumerate(preds):
        np.testing.assert_allclose(np.asarray(p), arrays("multi_io")[f"pred{i}"], rtol=1e-5, atol=1e-5)
    assert model.compiled


def test_convert_to_keras3_weights(tmp_path):
    out = tmp_path / "w.weights.h5"
    convert.convert(path("gru.h5"), out)
    model = keras.models.load_model(path("gru.h5"))
    fresh = keras.models.clone_model(model)
    fresh.load_weights(out)
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_torch_checkpoint_is_plain_tensors(tmp_path):
    import torch

    out = tmp_path / "m.pt"
    convert.convert(path("cnn_bn.h5"), out)
    payload = torch.load(out, weights_only=True)
    assert payload["format"] == convert.TORCH_FORMAT
    assert "conv2d.kernel" in payload["state_dict"]


@pytest.mark.parametrize("src,dst,message", [
    ("mlp_weights.h5", "x.keras", "weights only"),
    ("mlp.h5", "x.onnx", "Unsupported output"),
    ("nope.h5", "x.keras", "File not found"),
])
def test_convert_errors(tmp_path, src, dst, message):
    with pytest.raises(ValueError, match=message):
        convert.convert(path(src) if src != "nope.h5" else tmp_path / src, tmp_path / dst)


def test_convert_cli_exit_codes(tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO}
    ok = subprocess.run([sys.executable, "-m", "kerasish.convert", path("mlp.h5"), str(tmp_path / "m.keras")],
                        capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "m.keras").exists()



def test_convert_main_refuses_lambda_code_with_exit_code_2(tmp_path, capsys):
    # (the command line's own process is checked above; its exit code is `main`'s return value)
    assert convert.main([path("lambda.h5"), str(tmp_path / "l.keras")]) == 2
    assert "safe_mode" in capsys.readouterr().err
    assert not (tmp_path / "l.keras").exists()


def test_inspect_legacy_full_model():
    info = kinspect.describe(path("nested.h5"))
    assert info["format"] == "Keras 2 legacy HDF5 full model"
    assert info["keras_version"] == META["tf_keras"]
    rows = {name: (cls, weights) for name, cls, weights in info["layers"]}
    assert rows["inner"][0] == "Sequential"
    assert [w[1] for w in rows["inner"][1]][:2] == [(4, 6), (6,)]
    assert info["compile"]["loss"] == "mse"
    text = kinspect.format_summary(info)
    assert "dense_12" in text and "float32" in text


@pytest.mark.parametrize("suffix,fmt", [(".keras", "Keras 3 .keras archive"), (".weights.h5", "Keras 3 .weights.h5"),
                                        (".pt", "torch state_dict + kerasish model config")])
def test_inspect_other_formats(tmp_path, suffix, fmt):
    out = tmp_path / f"m{suffix}"
    convert.convert(path("cnn_bn.h5"), out)
    info = kinspect.describe(out)
    assert info["format"] == fmt
    shapes = sorted(w[1] for _, _, ws in info["layers"] for w in ws)
    assert (3, 3, 3, 4) in shapes


def test_inspect_rejects_unknown_file(tmp_path, capsys):
    junk = tmp_path / "x.bin"
    junk.write_bytes(b"hello")
    assert kinspect.main([str(junk)]) == 2
    assert "not a Keras file" in capsys.readouterr().err
