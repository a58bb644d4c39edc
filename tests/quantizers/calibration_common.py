"""What test_gptq.py and test_awq.py share: the calibration data, its
tokenizer, and the comparison of a calibrated kerasish model with Keras's."""

import numpy as np

import kerasish


class Tokenizer:
    def tokenize(self, text):
        return np.array([ord(c) % 50 for c in text], dtype="int32")


DATA = ["the quick brown fox jumps over the lazy dog " * 3, "lorem ipsum dolor sit amet " * 4]


def assert_calibrated_model_matches_keras(ours, ref, keras_ref):
    """Policies, weight names/dtypes/shapes and values, each Dense's computed
    `kernel` and predictions of a calibrated model equal Keras's `ref`."""
    assert [layer.dtype_policy.name for layer in ours.layers] == [layer.dtype_policy.name for layer in ref.layers]
    expected = [(w.path.split("/")[-1], w.dtype, tuple(w.shape)) for w in ref.weights]
    assert [(w.name, str(w.dtype).replace("torch.", ""), tuple(w.shape)) for w in ours.weights] == expected
    for r, o in zip(ref.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(np.asarray(o), r)
    # `Dense.kernel` reads as Keras's: the uint8 quantized kernel (unpacked when 4-bit) once calibrated
    theirs = {layer.name: layer for layer in ref._flatten_layers() if isinstance(layer, keras_ref.layers.Dense)}
    dtypes = set()
    for layer in ours._flatten_layers():
        if isinstance(layer, kerasish.layers.Dense):
            want = keras_ref.ops.convert_to_numpy(theirs.pop(layer.name).kernel)
            dtypes.add(str(want.dtype))
            assert str(layer.kernel.dtype).replace("torch.", "") == str(want.dtype)
            np.testing.assert_array_equal(np.asarray(layer.kernel.detach()), want)
    assert not theirs and "uint8" in dtypes  # (calibrated layers among them)
    ids = np.random.default_rng(1).integers(0, 50, (2, 7))
    np.testing.assert_allclose(np.asarray(ours.predict(ids, verbose=0)),
                               keras_ref.ops.convert_to_numpy(ref.predict(ids, verbose=0)), rtol=1e-5, atol=1e-5)
