"""Embedding.quantize / LoRA vs real Keras 3 (torch backend)."""

import warnings

import numpy as np
import pytest
import torch

import kerasish

CASES = {
    "int8": lambda lib: None,
    "int4": lambda lib: None,
    "int4_per_channel": lambda lib: lib.quantizers.Int4QuantizationConfig(block_size=-1),
    "int4_block_3": lambda lib: lib.quantizers.Int4QuantizationConfig(block_size=3),
}


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _table(seed=0):
    return np.random.default_rng(seed).standard_normal((10, 7)).astype("float32")


@pytest.mark.parametrize("case", sorted(CASES))
def test_quantized_embedding_matches_keras(keras_ref, case):
    ids = np.random.default_rng(1).integers(0, 10, (4, 5))
    results = []
    for lib in (keras_ref, kerasish):
        layer = lib.layers.Embedding(10, 7)
        layer.build()
        layer.set_weights([_table()])
        layer.quantize(case.split("_")[0], config=CASES[case](lib))
        y = layer(ids if lib is keras_ref else torch.tensor(ids))
        results.append((layer.dtype_policy.name, [(w.name, str(w.dtype).replace("torch.", ""), tuple(w.shape))
                                                  for w in layer.weights],
                        [_np(w) for w in layer.get_weights()], keras_ref.ops.convert_to_numpy(y)
                        if lib is keras_ref else _np(y), layer.get_config()))
    (rn, rw, rv, ry, rc), (on, ow, ov, oy, oc) = results
    assert (on, ow) == (rn, rw)
    for r, o in zip(rv, ov):
        np.testing.assert_array_equal(o, r)
    np.testing.assert_array_equal(oy, ry)
    assert oc["dtype"] == rc["dtype"] and oc["quantization_config"] == rc["quantization_config"]


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantized_embedding_files_move_both_ways(keras_ref, tmp_path, mode):
    ids = np.random.default_rng(2).integers(0, 10, (3, 4))
    ref = keras_ref.Sequential([keras_ref.Input((4,), dtype="int32"), keras_ref.layers.Embedding(10, 7),
                                keras_ref.layers.Dense(2)])
    ref.layers[0].set_weights([_table()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.quantize(mode)
    expected = keras_ref.ops.convert_to_numpy(ref.predict(ids, verbose=0))
    ref.save(tmp_path / "ref.keras")
    ours = kerasish.saving.load_model(tmp_path / "ref.keras")
    np.testing.assert_array_equal(np.asarray(ours.predict(ids, verbose=0)), expected)
    ours.save(tmp_path / "ours.keras")
    back = keras_ref.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_array_equal(keras_ref.ops.convert_to_numpy(back.predict(ids, verbose=0)), expected)


@pytest.mark.parametrize("mode", [None, "int8", "int4"])
def test_embedding_lora_training_and_saving_match_keras(keras_ref, tmp_path, mode):
    import h5py

    rng = np.random.default_rng(3)
    ids, y = rng.integers(0, 10, (16, 3)), rng.standard_normal((16, 3, 7)).astype("float32")
    out = []
    for lib in (keras_ref, kerasish):
        layer = lib.layers.Embedding(10, 7)
        model = lib.Sequential([lib.Input((3,), dtype="int32"), layer])
        layer.set_weights([_table()])
        if mode:
            layer.quantize(mode)
        layer.enable_lora(2)
        r = np.random.default_rng(4)
        layer.lora_embeddings_a.assign(r.standard_normal((10, 2)).astype("float32") * 0.1)
        layer.lora_embeddings_b.assign(r.standard_normal((2, 7)).astype("float32") * 0.1)
        assert [w.name for w in layer.trainable_weights] == ["lora_embeddings_a", "lora_embeddings_b"]
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
        history = model.fit(ids, y, batch_size=4, epochs=2, verbose=0, shuffle=False).history["loss"]
        path = tmp_path / f"{lib.__name__}.weights.h5"
        model.save_weights(path)
        with h5py.File(path) as f:
            stored = {}
            f.visititems(lambda n, o: stored.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        out.append((history, [_np(w) for w in model.get_weights()], stored))
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=1e-6)
    for r, o in zip(out[0][1], out[1][1]):
        np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-6)
    assert sorted(out[1][2]) == sorted(out[0][2])
    for key in out[0][2]:
        np.testing.assert_allclose(out[1][2][key], out[0][2][key], rtol=1e-6, atol=1e-6, err_msg=key)


def test_embedding_has_no_float8(keras_ref):
    for lib in (keras_ref, kerasish):
        layer = lib.layers.Embedding(10, 7)
        layer.build()
        with pytest.raises(NotImplementedError, match=r"Expected one of \('int8', 'int4'\)"):
            layer.quantize("float8")
