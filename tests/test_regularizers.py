"""kerasish.regularizers against Keras 3: penalties, configs, `get`, errors."""

import math

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish import regularizers
from kerasish.saving.object_registration import CustomObjectScope


@pytest.fixture
def weights(rng):
    return rng.normal(size=(12, 7)).astype("float32") * 3


CASES = [
    ("L1", {}),
    ("L1", {"l1": 0.3}),
    ("L2", {}),
    ("L2", {"l2": 1.5}),
    ("L1L2", {}),
    ("L1L2", {"l1": 0.1, "l2": 0.2}),
    ("L1L2", {"l2": 0.05}),
    ("OrthogonalRegularizer", {}),
    ("OrthogonalRegularizer", {"factor": 0.5, "mode": "columns"}),
    ("OrthogonalRegularizer", {"factor": 2.0, "mode": "rows"}),
]


def test_penalty_matches_keras(keras_ref, weights):
    for name, kwargs in CASES:
        ours = getattr(regularizers, name)(**kwargs)(torch.from_numpy(weights))
        # a torch tensor: Keras's NumPy path of `normalize` mishandles axis=0
        ref = getattr(keras_ref.regularizers, name)(**kwargs)(torch.from_numpy(weights))
        assert ours.shape == () and ours.dtype == torch.float32
        np.testing.assert_allclose(
            ours.numpy(), keras_ref.ops.convert_to_numpy(ref), rtol=1e-5, atol=1e-6, err_msg=f"{name} {kwargs}"
        )


def test_orthogonal_regularizer_zero_rows_and_orthogonal_input(keras_ref):
    w = np.zeros((4, 3), dtype="float32")
    w[0] = [1.0, 2.0, 3.0]  # other rows are all zero: Keras's epsilon-capped rsqrt keeps them 0
    for mode in ("rows", "columns"):
        ours = regularizers.OrthogonalRegularizer(mode=mode)(torch.from_numpy(w))
        ref = keras_ref.regularizers.OrthogonalRegularizer(mode=mode)(torch.from_numpy(w))
        assert torch.isfinite(ours)
        np.testing.assert_allclose(ours.numpy(), keras_ref.ops.convert_to_numpy(ref), rtol=1e-5, atol=1e-6)
    q = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))[0]
    assert regularizers.OrthogonalRegularizer(factor=1.0)(q).item() < 1e-12


def test_formulas_and_gradients():
    w = torch.tensor([[1.0, -2.0], [3.0, -4.0]], requires_grad=True)
    assert regularizers.L1(0.5)(w).item() == pytest.approx(5.0)
    assert regularizers.L2(0.5)(w).item() == pytest.approx(15.0)
    penalty = regularizers.L1L2(l1=0.5, l2=0.5)(w)
    assert penalty.item() == pytest.approx(20.0)
    penalty.backward()
    torch.testing.assert_close(w.grad, 0.5 * torch.sign(w.detach()) + w.detach())
    assert regularizers.L2()(torch.ones(3, dtype=torch.float64)).dtype == torch.float64
    assert regularizers.L1L2()(torch.ones(3)).item() == 0.0
    assert regularizers.Regularizer()(torch.ones(3)).item() == 0.0
    with pytest.raises(NotImplementedError):
        regularizers.Regularizer().get_config()


@pytest.mark.parametrize(
    "name, args",
    [("L1", ()), ("L1", (None,)), ("L2", ()), ("L2", (None,)), ("L1L2", ()), ("L1L2", (None, None)),
     ("OrthogonalRegularizer", ())],
)
def test_defaults_and_none_arguments_match_keras(keras_ref, name, args):
    ours = getattr(regularizers, name)(*args)
    theirs = getattr(keras_ref.regularizers, name)(*args)
    ours_config, their_config = ours.get_config(), theirs.get_config()
    assert ours_config.keys() == their_config.keys()
    for key, value in their_config.items():
        # (Keras keeps l1/l2 float32-rounded: 0.009999999776482582 for 0.01)
        assert ours_config[key] == (pytest.approx(value, rel=1e-7) if isinstance(value, float) else value), key
    w = np.linspace(-2, 2, 12, dtype="float32").reshape(4, 3)
    np.testing.assert_allclose(
        ours(torch.from_numpy(w)).numpy(), keras_ref.ops.convert_to_numpy(theirs(torch.from_numpy(w))), rtol=1e-6
    )


BAD = [
    lambda m: m.L1(-1.0),
    lambda m: m.L2(math.inf),
    lambda m: m.L1L2(l1=math.nan),
    lambda m: m.L1L2(l2=-0.5),
    lambda m: m.L2("0.1"),
    lambda m: m.OrthogonalRegularizer(factor=-1.0),
    lambda m: m.OrthogonalRegularizer(mode="diagonal"),
    lambda m: m.get("not_a_regularizer"),
    lambda m: m.get(3),
]


def test_errors_match_keras(keras_ref):
    for case in BAD:
        with pytest.raises(ValueError) as ref_err:
            case(keras_ref.regularizers)
        with pytest.raises(ValueError) as our_err:
            case(regularizers)
        assert str(our_err.value) == str(ref_err.value)
    with pytest.raises(ValueError, match="must have rank 2"):
        regularizers.OrthogonalRegularizer()(torch.ones(2, 2, 2))


def test_error_messages():
    with pytest.raises(ValueError, match=r"Invalid value for argument l1: expected a non-negative float.Received: l1=-1"):
        regularizers.L1(-1)
    with pytest.raises(ValueError, match="Could not interpret regularizer identifier: nope"):
        regularizers.get("nope")


def test_get_accepts_every_name_keras_accepts(keras_ref):
    from keras.src.regularizers import ALL_OBJECTS_DICT as REF

    for name, ref_cls in REF.items():
        assert type(regularizers.get(name)).__name__ == ref_cls.__name__, name
        assert type(keras_ref.regularizers.get(name)).__name__ == ref_cls.__name__
    assert isinstance(regularizers.get("l1_l2"), regularizers.L1L2)
    assert regularizers.l1 is regularizers.L1 and regularizers.l1_l2 is regularizers.L1L2
    assert regularizers.orthogonal_regularizer is regularizers.OrthogonalRegularizer


def test_get_forms(keras_ref):
    def fn(w):
        return w.sum()

    for lib in (keras_ref, keras):  # the same forms resolve the same way in real Keras 3
        R = lib.regularizers
        assert R.get(None) is None
        inst = R.L2(0.3)
        assert R.get(inst) is inst
        assert isinstance(R.get(R.L1), R.L1), lib.__name__
        assert R.get(fn) is fn
        assert type(R.get("L1L2")).__name__ == "L1L2" and type(R.get({"class_name": "L2", "config": {"l2": 0.5}})) is R.L2


def test_serialize_matches_keras_and_round_trips(keras_ref):
    for name, kwargs in CASES:
        ours = getattr(regularizers, name)(**kwargs)
        config = regularizers.serialize(ours)
        ref_config = keras_ref.regularizers.serialize(getattr(keras_ref.regularizers, name)(**kwargs))
        # Keras keeps L1's `l1` and the orthogonal `factor` as float32 tensors, so its
        # configs carry float32 rounding (0.30000001192092896); ours keep the float.
        for key, value in config["config"].items():
            if isinstance(value, float):
                assert ref_config["config"][key] == pytest.approx(value, rel=1e-7)
                ref_config["config"][key] = value
        assert config == ref_config
        for cfg in (config, {"class_name": name, "config": ours.get_config()}):
            rebuilt = regularizers.get(cfg)
            assert type(rebuilt) is type(ours) and rebuilt.get_config() == ours.get_config()
        assert keras_ref.regularizers.deserialize(config).get_config() == pytest.approx(ours.get_config())


def test_custom_regularizer_through_scope():
    class Sum(regularizers.Regularizer):
        def __call__(self, x):
            return x.sum()

        def get_config(self):
            return {}

    config = regularizers.serialize(Sum())
    with CustomObjectScope({"Sum": Sum}):
        assert isinstance(regularizers.get(config), Sum)
        assert isinstance(regularizers.get("Sum"), Sum)
    with pytest.raises(ValueError):
        regularizers.get(config)


def test_repr_of_a_subclass_whose_get_config_calls_the_base():
    """keras.io's PointNet `OrthogonalRegularizer.get_config` calls
    `super().get_config()`, which raises (as in Keras); printing the model
    (or the regularizer) must not recurse through `__repr__`."""

    class Orthogonal(regularizers.Regularizer):
        def __call__(self, x):
            return x.sum()

        def get_config(self):
            config = super().get_config()
            config.update({"l2reg": 0.001})
            return config

    reg = Orthogonal()
    assert repr(reg) == "<Orthogonal>"
    with pytest.raises(NotImplementedError, match="does not implement get_config"):
        reg.get_config()
