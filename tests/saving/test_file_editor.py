"""KerasFileEditor: edit a saved file, then load the result in real Keras and
in kerasish; the editor reads files as Keras's own editor does."""

import numpy as np
import pytest

import kerasish

pytest.importorskip("h5py", reason="the weights files are HDF5")


def _source_model(lib):
    return lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, name="a"), lib.layers.Dense(2, name="b")])


def _target_model(lib):
    # a new layer in the middle; the old second layer lost its bias. (Keras
    # files name a list's layers by class: layers/dense, layers/dense_1, ...)
    return lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, name="a"), lib.layers.Dense(3, name="mid"),
                           lib.layers.Dense(2, use_bias=False, name="b")])


def _same_tree(a, b):
    assert list(a) == list(b)
    for key in a:
        if isinstance(a[key], dict):
            _same_tree(a[key], b[key])
        else:
            np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))


@pytest.mark.parametrize("writer", ["keras", "kerasish"])
def test_edit_and_load_in_keras_and_kerasish(keras_ref, tmp_path, writer, capsys):
    rng = np.random.default_rng(0)
    lib = keras_ref if writer == "keras" else kerasish
    source = _source_model(lib)
    source.set_weights([rng.standard_normal(np.shape(w)).astype("float32") for w in source.get_weights()])
    path = str(tmp_path / "source.keras")
    source.save(path)
    ka, ba, kb, _ = [np.asarray(w) for w in source.get_weights()]

    editor = kerasish.saving.KerasFileEditor(path)
    reference_editor = keras_ref.saving.KerasFileEditor(path)
    _same_tree(editor.weights_dict, reference_editor.weights_dict)
    assert editor.config == reference_editor.config and editor.metadata == reference_editor.metadata

    kc, bc = rng.standard_normal((3, 3)).astype("float32"), rng.standard_normal(3).astype("float32")
    before = editor.compare(_target_model(kerasish))
    assert before["status"] == reference_editor.compare(_target_model(keras_ref))["status"] == "error"
    for ed in (editor, reference_editor):
        ed.rename_object("dense_1", "dense_2")
        ed.delete_weight("dense_2", "1")
        ed.add_object("layers/dense_1", {"0": kc, "1": bc})
    _same_tree(editor.weights_dict, reference_editor.weights_dict)
    after = editor.compare(_target_model(kerasish))
    # (Keras 3.15 reports the same status; its counts add nested counts
    # twice, kerasish counts each weight once)
    assert reference_editor.compare(_target_model(keras_ref))["status"] == "success"
    assert before["status"] == "error" and after == {"status": "success", "error_count": 0, "match_count": 5}
    out = str(tmp_path / "edited.weights.h5")
    editor.save(out)

    x = rng.standard_normal((3, 4)).astype("float32")
    expected = ((x @ ka + ba) @ kc + bc) @ kb
    for target_lib in (keras_ref, kerasish):
        target = _target_model(target_lib)
        target.load_weights(out)
        got = [np.asarray(w) for w in target.get_weights()]
        for g, e in zip(got, [ka, ba, kc, bc, kb]):
            np.testing.assert_array_equal(g, e)
        np.testing.assert_allclose(np.asarray(target.predict(x, verbose=0)), expected, rtol=1e-5, atol=1e-5)
    # and the file Keras's editor writes from the same edits loads in kerasish
    ref_out = str(tmp_path / "edited_by_keras.weights.h5")
    reference_editor.save(ref_out)
    target = _target_model(kerasish)
    target.load_weights(ref_out)
    np.testing.assert_allclose(target.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)

    editor.summary()
    text = capsys.readouterr().out
    assert "dense_2" in text and "shape=(4, 3)" in text


def test_weights_file_and_errors(tmp_path):
    model = _source_model(kerasish)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    editor = kerasish.saving.KerasFileEditor(path)
    assert editor.config is None and set(editor.weights_dict["layers"]) == {"dense", "dense_1"}
    editor.add_weights("layers/dense", {"2": np.zeros(3, "float32")})
    assert set(editor.weights_dict["layers"]["dense"]) == {"0", "1", "2"}
    with pytest.raises(ValueError, match="occurs more than once"):
        editor.delete_weight("1", "x")  # weight names are object names too: ambiguous
    with pytest.raises(ValueError, match="does not appear in the model"):
        editor.rename_object("zzz", "y")
    with pytest.raises(ValueError, match="not found in model"):
        editor.delete_object("layers/zzz")
    with pytest.raises(ValueError, match="should be a leaf name"):
        editor.rename_object("dense", "x/y")
    with pytest.raises(ValueError, match="Weight 9 not found in object dense"):
        editor.delete_weight("dense", "9")
    with pytest.raises(ValueError, match="should be a dict"):
        editor.add_object("layers/d", [np.zeros(2)])
    with pytest.raises(ValueError, match="expected a `.weights.h5` extension"):
        editor.save(str(tmp_path / "x.h5"))
    with pytest.raises(ValueError, match="expected a `.keras` `.weights.h5` extension"):
        kerasish.saving.KerasFileEditor(str(tmp_path / "x.h5"))
    editor.delete_object("dense_1")
    editor.save(str(tmp_path / "only_a.weights.h5"))
    again = kerasish.saving.KerasFileEditor(str(tmp_path / "only_a.weights.h5"))
    _same_tree(again.weights_dict, editor.weights_dict)
