"""Learning-rate schedules vs real Keras 3 at several steps."""

import numpy as np
import pytest
import torch

from kerasish.optimizers import schedules

CASES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.7}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.7, "staircase": True}),
    ("PiecewiseConstantDecay", {"boundaries": [2, 5, 9], "values": [1.0, 0.5, 0.1, 0.01]}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 8, "end_learning_rate": 0.01, "power": 2.0}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 4, "power": 0.5, "cycle": True}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5, "staircase": True}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "alpha": 0.1}),
    ("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 6, "warmup_target": 0.2, "warmup_steps": 4}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 3}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 3, "t_mul": 1.0, "m_mul": 0.5,
                             "alpha": 0.1}),
]
STEPS = [0, 1, 2, 3, 4, 5, 6, 7, 9, 12, 20, 50]


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=lambda v: str(v))
def test_schedule_matches_keras(keras_ref, name, kwargs):
    ours = getattr(schedules, name)(**kwargs)
    ref = getattr(keras_ref.optimizers.schedules, name)(**kwargs)
    for step in STEPS:
        got = ours(step)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
        want = keras_ref.ops.convert_to_numpy(ref(step))
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-7, err_msg=f"step {step}")
        np.testing.assert_allclose(ours(torch.tensor(step)).numpy(), want, rtol=1e-5, atol=1e-7)
    assert ours.get_config() == ref.get_config()
    cfg = schedules.serialize(ours)
    assert cfg["module"] == "keras.optimizers.schedules" and cfg["class_name"] == name
    clone = schedules.deserialize(cfg)
    assert type(clone) is type(ours) and clone.get_config() == ours.get_config()


def test_errors_and_custom_schedule():
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="boundaries"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        schedules.deserialize({"class_name": "Nope", "config": {}})

    class Halve(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.1 * 0.5 ** (int(step) // 2)

        def get_config(self):
            return {}

    from kerasish.optimizers import SGD

    p = torch.nn.Parameter(torch.zeros(1))
    opt = SGD(learning_rate=Halve())
    for _ in range(4):
        opt.apply_gradients([(torch.ones(1), p)])
    assert float(p) == pytest.approx(-(0.1 + 0.1 + 0.05 + 0.05))
