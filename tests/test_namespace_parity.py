"""Every public name of Keras 3.15's namespaces exists in kerasish, or is on
an explicit allow-list with a reason.

The test fails when Keras has a name kerasish lacks that is not allowed,
and when an allowed name exists in kerasish (so the list only shrinks).
`keras.layers` is checked by tests/layers/test_layers_namespace.py.
Run this file with `-s` to print the counts.
"""

import importlib
from collections import Counter

import pytest

import kerasish

# Reasons, as categories (the report counts by category)
DOWNLOADS = "downloads data or pretrained weights from the internet"
OTHER_BACKEND = "belongs to another backend (TensorFlow / JAX / Orbax)"
TORCH_ONLY = "kerasish is torch-only by design"
NEEDS_DEPS = "needs third-party packages kerasish does not depend on"
PRIVATE = "Keras's private implementation package"
NOT_YET = "not implemented yet"

# namespaces compared name by name (relative to `keras`)
NAMESPACES = [
    "", "ops", "ops.nn", "ops.image", "ops.linalg", "ops.numpy", "random", "utils", "callbacks", "losses",
    "metrics", "optimizers", "optimizers.schedules", "backend", "activations", "initializers", "regularizers",
    "constraints", "models", "saving", "mixed_precision", "distribution", "config", "dtype_policies",
    "preprocessing", "preprocessing.image", "preprocessing.sequence", "utils.bounding_boxes", "distillation",
    "tree", "utils.legacy", "quantizers", "wrappers", "visualization", "applications",
    "applications.imagenet_utils", "applications.resnet", "applications.resnet50", "applications.resnet_v2",
    "applications.vgg16", "applications.vgg19", "applications.mobilenet", "applications.mobilenet_v2",
    "applications.mobilenet_v3", "applications.xception", "applications.inception_v3",
    "applications.convnext", "applications.densenet", "applications.efficientnet", "applications.efficientnet_v2",
    "applications.inception_resnet_v2", "applications.nasnet",
]

# whole Keras submodules kerasish does not provide (each of their names counts as allowed)
MODULES_ALLOWED = {
    "export": (OTHER_BACKEND, "ExportArchive writes TensorFlow SavedModels"),
    "legacy": (OTHER_BACKEND, "keras.legacy.saving is tf.keras's SavedModel-era serialization"),
}

ALLOWED = {
    "": {
        "src": (PRIVATE, "keras.src"),
        **{m: MODULES_ALLOWED[m] for m in MODULES_ALLOWED if "." not in m},
    },
    "callbacks": {
        "OrbaxCheckpoint": (OTHER_BACKEND, "Orbax (JAX) checkpoints"),
    },
    "config": {
        "is_nnx_enabled": (OTHER_BACKEND, "Flax NNX (JAX)"),
        "set_backend": (TORCH_ONLY, "there is no other backend to switch to"),
    },
}


# keras.datasets, module by module (tests/datasets/ checks their behaviour)
NAMESPACES += ["datasets", *(f"datasets.{m}" for m in (
    "mnist", "fashion_mnist", "cifar10", "cifar100", "imdb", "reuters", "boston_housing", "california_housing"))]


def _public(module):
    return sorted(n for n in dir(module) if not n.startswith("_"))


def _import(prefix, ns):
    return importlib.import_module(prefix + ("." + ns if ns else ""))


@pytest.fixture(scope="module")
def keras_mod(keras_ref):
    return keras_ref


@pytest.mark.parametrize("ns", NAMESPACES, ids=lambda n: n or "keras")
def test_namespace_has_every_keras_name(keras_mod, ns):
    ref = _import("keras", ns)
    ours = _import("kerasish", ns)
    allowed = ALLOWED.get(ns, {})
    missing = [n for n in _public(ref) if not hasattr(ours, n) and n not in allowed]
    assert not missing, f"keras{'.' + ns if ns else ''} names kerasish lacks (implement or allow-list): {missing}"
    present = [n for n in allowed if hasattr(ours, n)]
    assert not present, f"allow-listed names that kerasish now has (remove them from ALLOWED): {present}"
    stale = [n for n in allowed if not hasattr(ref, n)]
    assert not stale, f"allow-listed names Keras does not have: {stale}"


@pytest.mark.parametrize("module", sorted(MODULES_ALLOWED))
def test_allowed_modules_are_still_missing(keras_mod, module):
    _import("keras", module)  # Keras has it
    with pytest.raises(ImportError):
        _import("kerasish", module)


def test_report_counts(keras_mod, capsys):
    checked = missing = 0
    by_reason = Counter()
    for ns in NAMESPACES:
        ref, ours = _import("keras", ns), _import("kerasish", ns)
        names = _public(ref)
        checked += len(names)
        for n in names:
            if not hasattr(ours, n):
                missing += 1
                by_reason[ALLOWED[ns][n][0]] += 1
    for module, (reason, _) in MODULES_ALLOWED.items():
        names = _public(_import("keras", module))
        checked += len(names)
        missing += len(names)
        by_reason[reason] += len(names)
    with capsys.disabled():
        print(f"\nnamespace parity: {checked} Keras names checked, {missing} missing, all allow-listed: "
              + ", ".join(f"{r}: {c}" for r, c in by_reason.most_common()))
    assert missing == sum(by_reason.values())
    assert checked > 1000


def test_new_aliases_behave_like_keras(keras_mod):
    import numpy as np

    assert kerasish.config.backend() == keras_mod.config.backend() == "torch"
    assert isinstance(kerasish.version(), str)
    policy = kerasish.dtype_policies.deserialize(keras_mod.dtype_policies.serialize(
        keras_mod.dtype_policies.DTypePolicy("mixed_bfloat16")))
    assert (policy.compute_dtype, policy.variable_dtype) == ("bfloat16", "float32")
    assert isinstance(kerasish.FloatDTypePolicy("float16"), kerasish.DTypePolicy)
    kerasish.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        assert kerasish.config.dtype_policy().name == "mixed_float16"
    finally:
        kerasish.mixed_precision.set_dtype_policy("float32")
    x, y = np.ones(2), np.zeros(2)
    assert kerasish.utils.pack_x_y_sample_weight(x, y)[1] is y
    assert kerasish.utils.unpack_x_y_sample_weight((x, y))[2] is None
    assert kerasish.utils.standardize_dtype("float64") == keras_mod.utils.standardize_dtype("float64")
    assert kerasish.utils.is_keras_tensor(kerasish.Input((2,)))
    assert kerasish.Optimizer is kerasish.optimizers.Optimizer and kerasish.Metric is kerasish.metrics.Metric
    with kerasish.utils.CustomObjectScope({"foo": len}):
        assert kerasish.utils.get_registered_object("foo") is len


@pytest.mark.parametrize(("shape", "size", "data_format"), [
    ((37, 50, 3), (20, 20), "channels_last"),
    ((2, 30, 17, 1), (16, 24), "channels_last"),
    ((3, 41, 29), (10, 31), "channels_first"),
    ((2, 3, 9, 40), (12, 8), "channels_first"),
])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_smart_resize_matches_keras(keras_mod, shape, size, data_format, interpolation):
    import numpy as np

    x = np.random.default_rng(0).random(shape).astype("float32")
    ref = keras_mod.preprocessing.image.smart_resize(x, size, interpolation=interpolation, data_format=data_format)
    got = kerasish.preprocessing.image.smart_resize(x, size, interpolation=interpolation, data_format=data_format)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, np.asarray(ref), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="incorrect rank"):
        kerasish.preprocessing.image.smart_resize(x[0, 0], size)


def test_interactive_logging_switch_routes_progress_to_logging(keras_mod, capsys, caplog):
    import logging

    import numpy as np

    assert kerasish.config.is_interactive_logging_enabled() is keras_mod.config.is_interactive_logging_enabled()
    model = kerasish.Sequential([kerasish.Input((2,)), kerasish.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 2), "float32"), np.ones((4, 1), "float32")
    kerasish.config.disable_interactive_logging()
    try:
        assert not kerasish.utils.is_interactive_logging_enabled()
        with caplog.at_level(logging.INFO, logger="kerasish"):
            model.fit(x, y, epochs=2, verbose=1)
        assert capsys.readouterr().out == ""
        assert any("Epoch 2/2" in r.getMessage() for r in caplog.records)
    finally:
        kerasish.config.enable_interactive_logging()
    model.fit(x, y, epochs=2, verbose=1)
    assert "Epoch 2/2" in capsys.readouterr().out


def test_get_source_inputs_matches_keras(keras_mod):
    names = []
    for lib in (keras_mod, kerasish):
        a, b, c = lib.Input((3,), name="a"), lib.Input((3,), name="b"), lib.Input((3,), name="c")
        shared = lib.layers.Dense(3, name="shared")
        ab = lib.layers.Add(name="add")([shared(b), shared(a)])
        out = lib.layers.Concatenate(name="cat")([ab, lib.layers.Dense(2, name="d")(b)])
        names.append([[t.name for t in lib.utils.get_source_inputs(x)] for x in (out, ab, a, shared(c))])
    assert names[1] == names[0] == [["b", "a"], ["b", "a"], ["a"], ["c"]]


def test_utils_config_behaves_like_keras(keras_mod):
    outcomes = []
    for lib in (keras_mod, kerasish):
        config = lib.utils.Config(learning_rate=0.1, layers=[2, 3])
        config.batch_size = 32
        config["momentum"] = 0.9
        record = [config.as_dict(), config.to_json(), list(config), len(config), "momentum" in config,
                  config.get("nope", 5), repr(config), config.frozen]
        config.freeze()
        for mutate in (lambda c: setattr(c, "x", 1), lambda c: c.__setitem__("x", 1), lambda c: c.pop("momentum"),
                       lambda c: c.update(x=1), lambda c: c.__delitem__("batch_size")):
            with pytest.raises(ValueError, match="frozen"):
                mutate(config)
        with pytest.raises(AttributeError, match="Did you mean 'batch_size'"):
            config.batch_sise  # noqa: B018
        config.unfreeze()
        del config["layers"]
        record += [config.frozen, config.learning_rate, sorted(config.items())]
        outcomes.append(record)
    assert outcomes[1] == outcomes[0]
