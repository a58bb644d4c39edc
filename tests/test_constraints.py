"""kerasish.constraints against Keras 3 (and Keras 2's RadialConstraint)."""

import numpy as np
import pytest
import torch

from kerasish import constraints
from kerasish.saving.object_registration import CustomObjectScope

CASES = [
    ("MaxNorm", {}),
    ("MaxNorm", {"max_value": 0.5, "axis": 1}),
    ("MaxNorm", {"max_value": 1.0, "axis": [0, 1, 2]}),
    ("MinMaxNorm", {}),
    ("MinMaxNorm", {"min_value": 1.0, "max_value": 2.0, "rate": 0.5, "axis": 1}),
    ("MinMaxNorm", {"min_value": 2.0, "max_value": 3.0, "axis": [0, 1, 2]}),
    ("NonNeg", {}),
    ("UnitNorm", {}),
    ("UnitNorm", {"axis": -1}),
    ("UnitNorm", {"axis": [0, 1, 2]}),
]


def test_projection_matches_keras(keras_ref, rng):
    for name, kwargs in CASES:
        shape = (3, 3, 4, 5) if isinstance(kwargs.get("axis"), list) else (6, 5)
        w = (rng.normal(size=shape) * 2).astype("float32")
        w[..., 0] = 0.0  # an all-zero slice exercises the epsilon
        w[..., 1] *= 1e-4  # tiny norms
        ours = getattr(constraints, name)(**kwargs)(torch.from_numpy(w))
        ref = keras_ref.ops.convert_to_numpy(getattr(keras_ref.constraints, name)(**kwargs)(w))
        assert ours.shape == w.shape and ours.dtype == torch.float32
        assert torch.isfinite(ours).all()
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-6, err_msg=f"{name} {kwargs}")


def test_norm_bounds_hold_and_match_keras(keras_ref):
    """The bounds each constraint promises, on weights far outside them, and
    the projected values equal Keras's on the same weights."""
    w = torch.randn(20, 8, generator=torch.Generator().manual_seed(0)) * 5
    cases = [
        (constraints.MaxNorm(1.5), keras_ref.constraints.MaxNorm(1.5), w),
        (constraints.MinMaxNorm(2.0, 3.0), keras_ref.constraints.MinMaxNorm(2.0, 3.0), w * 1e-2),
        (constraints.UnitNorm(axis=1), keras_ref.constraints.UnitNorm(axis=1), w),
        (constraints.NonNeg(), keras_ref.constraints.NonNeg(), w),
    ]
    outs = []
    for ours, theirs, value in cases:
        out = ours(value)
        ref = keras_ref.ops.convert_to_numpy(theirs(value.numpy()))
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6, err_msg=type(ours).__name__)
        outs.append(out)
    assert (outs[0].norm(dim=0) <= 1.5 + 1e-5).all()
    assert (outs[1].norm(dim=0) >= 2.0 - 1e-4).all()
    torch.testing.assert_close(outs[2].norm(dim=1), torch.ones(20))
    assert (outs[3] >= 0).all()
    assert constraints.Constraint()(w) is w
    assert keras_ref.constraints.Constraint()(w) is w  # Keras's base is the identity too


def _radial_reference(kernel):
    """Keras 2's RadialConstraint._kernel_constraint, step by step, on one (n, n) slice."""
    n = kernel.shape[0]
    start = n // 2
    centre = kernel[start - 1, start - 1]
    out = np.full((1, 1) if n % 2 else (2, 2), centre)
    for i in range(0 if n % 2 else 1, start):
        out = np.pad(out, 1, constant_values=kernel[start + i, start + i])
    return out


def test_radial_constraint_matches_keras2_definition():
    for n in [2, 3, 4, 5, 6, 7]:
        w = torch.randn(n, n, 3, 2)
        out = constraints.RadialConstraint()(w)
        assert out.shape == w.shape
        for c in range(3):
            for k in range(2):
                np.testing.assert_array_equal(out[:, :, c, k].numpy(), _radial_reference(w[:, :, c, k].numpy()))


def test_radial_constraint_worked_examples():
    w = torch.arange(16.0).reshape(4, 4, 1, 1)
    expected = torch.tensor([[15.0] * 4, [15.0, 5.0, 5.0, 15.0], [15.0, 5.0, 5.0, 15.0], [15.0] * 4])
    torch.testing.assert_close(constraints.RadialConstraint()(w)[..., 0, 0], expected)
    w = torch.arange(25.0).reshape(5, 5, 1, 1)
    out = constraints.RadialConstraint()(w)[..., 0, 0]
    assert out[2, 2] == 6.0 and out[1, 1] == 12.0 and out[0, 0] == 18.0
    w1 = torch.randn(1, 1, 2, 2)
    assert torch.equal(constraints.RadialConstraint()(w1), w1)
    with pytest.raises(ValueError, match="must have rank 4"):
        constraints.RadialConstraint()(torch.ones(3, 3, 2))
    with pytest.raises(ValueError, match="square"):
        constraints.RadialConstraint()(torch.ones(3, 4, 1, 1))


def test_get_accepts_every_name_keras_accepts(keras_ref):
    from keras.src.constraints import ALL_OBJECTS_DICT as REF

    for name, ref_cls in REF.items():
        assert type(constraints.get(name)).__name__ == ref_cls.__name__, name
        assert type(keras_ref.constraints.get(name)).__name__ == ref_cls.__name__
    for name in ("RadialConstraint", "radial_constraint"):
        assert isinstance(constraints.get(name), constraints.RadialConstraint)
    assert constraints.max_norm is constraints.MaxNorm and constraints.non_neg is constraints.NonNeg
    assert constraints.unit_norm is constraints.UnitNorm and constraints.min_max_norm is constraints.MinMaxNorm


def test_get_forms_and_errors(keras_ref):
    assert constraints.get(None) is None
    inst = constraints.MaxNorm(3)
    assert constraints.get(inst) is inst
    assert isinstance(constraints.get(constraints.NonNeg), constraints.NonNeg)
    fn = torch.abs
    assert constraints.get(fn) is fn
    for bad in ("nope", 3, "MAXNORM"):
        with pytest.raises(ValueError) as ref_err:
            keras_ref.constraints.get(bad)
        with pytest.raises(ValueError) as our_err:
            constraints.get(bad)
        assert str(our_err.value) == str(ref_err.value)


def test_serialize_matches_keras_and_round_trips(keras_ref):
    for name, kwargs in CASES:
        ours = getattr(constraints, name)(**kwargs)
        config = constraints.serialize(ours)
        assert config == keras_ref.constraints.serialize(getattr(keras_ref.constraints, name)(**kwargs))
        for cfg in (config, {"class_name": name, "config": ours.get_config()}):
            rebuilt = constraints.get(cfg)
            assert type(rebuilt) is type(ours) and rebuilt.get_config() == ours.get_config()
        assert keras_ref.constraints.deserialize(config).get_config() == ours.get_config()
        radial = constraints.serialize(constraints.RadialConstraint())
        assert radial == {"module": "keras.constraints", "class_name": "RadialConstraint", "config": {}, "registered_name": None}
        assert isinstance(constraints.deserialize(radial), constraints.RadialConstraint)


def test_custom_constraint_through_scope():
    class Clip(constraints.Constraint):
        def __call__(self, w):
            return w.clamp(-1, 1)

    config = constraints.serialize(Clip())
    with CustomObjectScope({"Clip": Clip}):
        assert isinstance(constraints.get(config), Clip)
    with pytest.raises(ValueError):
        constraints.get(config)
