"""A `LossScaleOptimizer` around a `keras.optimizers.legacy` optimizer in Keras 2 files, against what tf.keras 2.21
writes (tests/fixtures/keras2_optimizers/lso_legacy.json and lso_legacy_nadam.h5, recorded by
tools/fixtures/make_keras2_legacy_loss_scale_h5.py).

tf.keras 2 has two loss-scale optimizers: `LossScaleOptimizerV3` around its new optimizers and `LossScaleOptimizer`
(V1) around a legacy `OptimizerV2`. kerasish wrote V3 around legacy ones too, which tf.keras 2 refuses at load
("You passed a `tf.keras.optimizers.Optimizer` instance to LossScaleOptimizerV3", a TypeError): it now writes
tf.keras 2's V1 layout, with the legacy optimizer's state (iter, Nadam's momentum_cache, the slots).

`.keras` archives are not matched, by design: kerasish writes Keras 3's archive (which tf.keras 2 cannot read at
all; its InputLayer config already fails there), keeping Keras 3's LossScaleOptimizer config and its state;
tf.keras 2's own archive names `tf_keras.src.mixed_precision.loss_scale_optimizer` and saves no optimizer state for
this case (the fixture records that), and kerasish reads it too (fresh state, as written).
"""

import json
import pathlib

import numpy as np
import pytest

import kerasish as keras

h5py = pytest.importorskip("h5py")
FIXTURES = pathlib.Path(__file__).parents[2] / "fixtures" / "keras2_optimizers"
META = json.loads((FIXTURES / "lso_legacy.json").read_text())


def _fitted(name):
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    model.compile(optimizer=keras.mixed_precision.LossScaleOptimizer(getattr(keras.optimizers.legacy, name)(0.01)),
                  loss="mse")
    model.fit(np.asarray(META["x"], "float32"), np.asarray(META["y"], "float32"), batch_size=4, epochs=2,
              verbose=0, shuffle=False)
    return model


def _without_values(config):
    """The config's structure: class names, modules, keys; hyperparameter numbers left out (tf.keras 2 writes
    its float32 hyperparameters, 0.009999999776482582 for 0.01)."""
    if isinstance(config, dict):
        return {k: (_without_values(v) if isinstance(v, (dict, list)) else type(v).__name__) for k, v in config.items()}
    return config


@pytest.mark.parametrize("name", ["Adam", "Nadam"])
def test_h5_optimizer_config_and_state_layout_equal_tf_keras(name, tmp_path):
    case = META["cases"][name]
    model = _fitted(name)
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        written = json.loads(f.attrs["training_config"])["optimizer_config"]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["optimizer_weights"].attrs["weight_names"]]
        values = [f["optimizer_weights"][n][()] for n in names]
    expected = case["h5_optimizer_config"]
    assert written["class_name"] == expected["class_name"] == "LossScaleOptimizer"
    assert _without_values(written) == _without_values(expected)
    inner = written["config"]["inner_optimizer"]
    assert (inner["module"], inner["class_name"]) == ("keras.optimizers.legacy", name)
    assert {k: v for k, v in written["config"].items() if k != "inner_optimizer"} == {
        k: v for k, v in expected["config"].items() if k != "inner_optimizer"}
    # the state tf.keras 2's LossScaleOptimizer.set_weights takes, in its order: iter, (momentum_cache), all m, all v
    suffixes = [n.split("/", 2)[-1] if n.split("/")[1] == name else n for n in case["h5_optimizer_weight_names"]]
    assert [n.split(":")[0].rsplit("/", 1)[-1] for n in names] == [
        n.split(":")[0].rsplit("/", 1)[-1] for n in suffixes]
    assert [np.shape(v) for v in values] == [np.shape(v) for v in case["optimizer_weights"]]
    # two steps, so the same step count and (Nadam) the same schedule product; the slots depend on the random
    # initial kernels
    assert int(values[0]) == case["optimizer_weights"][0] == 2
    if name == "Nadam":
        np.testing.assert_allclose(values[1], case["optimizer_weights"][1], rtol=1e-7)


def test_reads_tf_keras_file_with_its_legacy_state():
    case = META["cases"]["Nadam"]
    model = keras.saving.load_model(FIXTURES / "lso_legacy_nadam.h5")
    opt = model.optimizer
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
    assert type(opt.inner_optimizer) is keras.optimizers.legacy.Nadam
    iterations, cache, *slots = case["optimizer_weights"]
    assert int(opt.inner_optimizer.iterations) == iterations == 2
    assert float(opt.inner_optimizer._u_product) == pytest.approx(cache, rel=1e-7)
    for got, want in zip(model.get_weights(), case["weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_keras_archive_of_tf_keras_holds_no_optimizer_state():
    """What the module docstring says of tf.keras 2's own `.keras` archive for this case."""
    for name in ("Adam", "Nadam"):
        case = META["cases"][name]
        assert case["keras_optimizer_config"]["module"] == "tf_keras.src.mixed_precision.loss_scale_optimizer"
        assert case["keras_optimizer_variables"] == []
