"""Keras 2 `.h5` files of the GPU-only `CuDNNLSTM` / `CuDNNGRU` layers
(tests/fixtures/keras2_programs_3/cudnn_lstm_gru.h5, written by tf-keras 2.21
with `tf.compat.v1.keras.layers`, see tools/fixtures/make_keras2_programs_3.py).
tf.keras 2 cannot run them on a CPU; its documented CPU path, the same model
with `LSTM` / `GRU(reset_after=True)` and `load_weights`, converts the weights:
the recorded converted weights and predictions are the reference."""

import os
import shutil
import warnings

import h5py
import numpy as np
import pytest

import kerasish as keras

L = keras.layers
HERE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "keras2_programs_3")
TOL = {"rtol": 1e-5, "atol": 1e-6}  # TensorFlow's LSTM/GRU kernels against torch's, one forward pass


@pytest.fixture
def record(tmp_path):
    shutil.copy(os.path.join(HERE, "cudnn_lstm_gru.h5"), tmp_path / "cudnn.h5")
    with np.load(os.path.join(HERE, "cudnn_lstm_gru.npz"), allow_pickle=False) as f:
        arrays = dict(f)
    converted = [arrays[f"converted.{i}"] for i in range(len([k for k in arrays if k.startswith("converted.")]))]
    return str(tmp_path / "cudnn.h5"), arrays["x"], arrays["predict"], converted


def _cpu_model(reset_after=True):
    return keras.Sequential([keras.Input((5, 3)), L.Bidirectional(L.LSTM(4, return_sequences=True)),
                             L.GRU(3, reset_after=reset_after), L.Dense(2)])


def test_the_file_really_holds_cudnn_layers(record):
    path = record[0]
    with h5py.File(path, "r") as f:
        config = f.attrs["model_config"]
        config = config.decode() if isinstance(config, bytes) else config
        assert '"CuDNNLSTM"' in config and '"CuDNNGRU"' in config
        assert f["model_weights/cu_dnngru/cu_dnngru/bias:0"].shape == (18,)  # 2 * 3 gates * 3 units


def test_load_model_runs_them_as_lstm_and_gru(record):
    path, x, predict, converted = record
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (compiled, never trained: the file's Adam holds `iteration` = 0 only)
        model = keras.models.load_model(path)
    lstm, gru = model.layers[0].forward_layer, model.layers[1]
    assert type(lstm).__name__ == "LSTM" and type(gru).__name__ == "GRU"
    assert lstm.recurrent_activation.__name__ == gru.recurrent_activation.__name__ == "sigmoid"
    assert gru.reset_after and lstm.use_bias and gru.use_bias
    for got, want in zip(model.get_weights(), converted, strict=True):
        np.testing.assert_array_equal(got, want)  # the conversion is exact (reshapes, transposes, a sum)
    np.testing.assert_allclose(model.predict(x, verbose=0), predict, **TOL)
    assert model.optimizer is not None and int(model.optimizer.iterations) == 0  # compiled as saved (Adam)


def test_load_weights_into_lstm_and_gru_as_keras2_documents(record):
    path, x, predict, converted = record
    model = _cpu_model()
    model.load_weights(path)
    for got, want in zip(model.get_weights(), converted, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(model.predict(x, verbose=0), predict, **TOL)
    other = _cpu_model()
    other.load_weights(path, by_name=True)  # by name too (names differ here: nothing is loaded)
    assert not np.array_equal(other.get_weights()[0], converted[0])


def test_cudnn_gru_weights_need_reset_after(record):
    path = record[0]
    with pytest.raises(ValueError, match=r"CuDNNGRU.*reset_after=False"):
        _cpu_model(reset_after=False).load_weights(path)


def test_kerasish_writes_them_back_as_lstm_and_gru(record, tmp_path):
    path, x, predict, _ = record
    model = keras.models.load_model(path)
    out = str(tmp_path / "cpu.h5")
    model.save(out)
    with h5py.File(out, "r") as f:
        config = f.attrs["model_config"]
        config = config.decode() if isinstance(config, bytes) else config
        assert "CuDNN" not in config
        names = []
        f["model_weights/cu_dnngru"].visit(names.append)
        (bias,) = [n for n in names if n.endswith("bias:0")]
        assert f["model_weights/cu_dnngru"][bias].shape == (2, 9)  # GRU(reset_after=True)'s layout
    np.testing.assert_allclose(keras.models.load_model(out).predict(x, verbose=0), predict, **TOL)
