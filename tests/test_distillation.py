"""keras.distillation vs real Keras 3.15 (torch backend) with copied weights:
loss values, fit histories, trained student weights; a NumPy reference for
the temperature-scaled KL; errors and configs."""

import numpy as np
import pytest
import torch

import kerasish
from kerasish.distillation import DistillationLoss
from kerasish.distillation import Distiller
from kerasish.distillation import FeatureDistillation
from kerasish.distillation import LogitsDistillation

RNG = np.random.default_rng(0)
X = RNG.random((16, 4)).astype("float32")
Y = RNG.integers(0, 3, 16)


def _pair(k, name, hidden=8, **dense_kwargs):
    return k.Sequential([k.Input((4,)), k.layers.Dense(hidden, activation="relu", name="h", **dense_kwargs),
                         k.layers.Dense(3, name="logits")], name=name)


def _models(keras_ref, student_hidden=8):
    torch.manual_seed(0)
    tq, sq = _pair(kerasish, "teacher"), _pair(kerasish, "student", student_hidden)
    tk, sk = _pair(keras_ref, "teacher"), _pair(keras_ref, "student", student_hidden)
    tk.set_weights(tq.get_weights())
    sk.set_weights(sq.get_weights())
    return tq, sq, tk, sk


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _kl_reference(teacher, student, temperature):
    """Hinton et al.: T^2 * mean_batch(KL(softmax(t/T) || softmax(s/T))), Keras's clipping to [1e-7, 1]."""
    p = np.clip(_softmax(teacher / temperature), 1e-7, 1)
    q = np.clip(_softmax(student / temperature), 1e-7, 1)
    return temperature**2 * np.mean(np.sum(p * np.log(p / q), -1))


@pytest.mark.parametrize("student_loss_weight", [0.3, 0.0, 1.0])
def test_fit_matches_keras(keras_ref, student_loss_weight):
    tq, sq, tk, sk = _models(keras_ref, student_hidden=8)

    def losses(k):
        return [k.distillation.LogitsDistillation(temperature=2.0, loss=k.losses.KLDivergence()),
                k.distillation.FeatureDistillation(loss="mse", teacher_layer_name="h", student_layer_name="h")]

    dq = Distiller(tq, sq, losses(kerasish), distillation_loss_weights=[1.0, 0.5],
                   student_loss_weight=student_loss_weight)
    dk = keras_ref.distillation.Distiller(tk, sk, losses(keras_ref), distillation_loss_weights=[1.0, 0.5],
                                          student_loss_weight=student_loss_weight)
    # the student outputs logits: a from_logits loss (with probabilities' clipping on raw logits, gradients
    # jump where a value crosses the clip, and float32 noise between the libraries is amplified)
    dq.compile(optimizer="sgd", loss=kerasish.losses.SparseCategoricalCrossentropy(from_logits=True),
               metrics=["accuracy"])
    dk.compile(optimizer="sgd", loss=keras_ref.losses.SparseCategoricalCrossentropy(from_logits=True),
               metrics=["accuracy"])
    hq = dq.fit(X, Y, batch_size=8, epochs=3, verbose=0, shuffle=False).history
    hk = dk.fit(X, Y, batch_size=8, epochs=3, verbose=0, shuffle=False).history
    assert set(hq) == set(hk) == {"loss", "accuracy", "student_loss", "distillation_loss", "total_loss"}
    for key in hk:
        np.testing.assert_allclose(hq[key], hk[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert dq.metrics_names == dk.metrics_names
    for a, b in zip(sq.get_weights(), sk.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(tq.get_weights(), tk.get_weights()):  # the teacher is frozen in both
        np.testing.assert_array_equal(a, b)
    eq, ek = dq.evaluate(X, Y, verbose=0, return_dict=True), dk.evaluate(X, Y, verbose=0, return_dict=True)
    for key in ek:
        np.testing.assert_allclose(eq[key], ek[key], rtol=1e-5, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(dq.predict(X, verbose=0), sq.predict(X, verbose=0), rtol=0, atol=0)
    assert len(dq.trainable_weights) == 4 and len(dq.weights) == 8


@pytest.mark.parametrize("make", [
    lambda k: k.distillation.LogitsDistillation(temperature=4.0, loss=k.losses.KLDivergence()),
    lambda k: k.distillation.LogitsDistillation(temperature=1.5, loss="mse"),
    lambda k: k.distillation.LogitsDistillation(temperature=3.0,
                                                loss=k.losses.CategoricalCrossentropy(from_logits=True)),
    lambda k: k.distillation.LogitsDistillation(temperature=2.0, loss=[k.losses.KLDivergence(), None, "mae"]),
    lambda k: k.distillation.FeatureDistillation(),
    lambda k: k.distillation.FeatureDistillation(loss="cosine_similarity"),
    lambda k: k.distillation.FeatureDistillation(loss={"a": "mse", "b": None, "c": k.losses.MeanAbsoluteError()}),
], ids=["kl_instance", "mse", "cce_logits", "list_with_none", "feature_mse", "feature_cosine", "feature_dict"])
def test_loss_values_match_keras(keras_ref, make):
    rng = np.random.default_rng(1)
    t, s = rng.standard_normal((2, 5, 6)).astype("float32") * 3
    ours, ref = make(kerasish), make(keras_ref)
    if isinstance(ours.loss, list):
        t, s = [t, t + 1, t * 0.5], [s, s - 1, s * 2]
    elif isinstance(ours.loss, dict):
        t, s = {"a": t, "b": t + 1, "c": t * 0.5}, {"a": s, "b": s - 1, "c": s * 2}
    conv_q = kerasish.utils.tree.map_structure(torch.tensor, t), kerasish.utils.tree.map_structure(torch.tensor, s)
    conv_k = (keras_ref.tree.map_structure(keras_ref.ops.convert_to_tensor, t),
              keras_ref.tree.map_structure(keras_ref.ops.convert_to_tensor, s))
    ours.validate_outputs(*conv_q)
    value = ours.compute_loss(*conv_q)
    assert value.ndim == 0
    np.testing.assert_allclose(float(value), float(keras_ref.ops.convert_to_numpy(ref.compute_loss(*conv_k))),
                               rtol=1e-5, atol=1e-6)


def test_default_kl_is_the_softened_kl_times_t_squared():
    """The default `loss="kl_divergence"` is the KL of the softened distributions times T^2 (Hinton et al.);
    Keras 3.15.1 computes its string form on the raw logits instead (see LogitsDistillation's docstring)."""
    rng = np.random.default_rng(2)
    t, s = rng.standard_normal((2, 6, 5)).astype("float32") * 2
    for temperature in (1.0, 3.0, 7.5):
        loss = LogitsDistillation(temperature=temperature)
        got = float(loss.compute_loss(torch.tensor(t), torch.tensor(s)))
        np.testing.assert_allclose(got, _kl_reference(t, s, temperature), rtol=1e-5)
        same = LogitsDistillation(temperature=temperature, loss=kerasish.losses.KLDivergence())
        np.testing.assert_allclose(got, float(same.compute_loss(torch.tensor(t), torch.tensor(s))), rtol=1e-6)
    assert float(LogitsDistillation().compute_loss(torch.tensor(t), torch.tensor(t))) == pytest.approx(0, abs=1e-6)


def test_student_regularization_is_added():
    tq, sq = _pair(kerasish, "teacher"), _pair(kerasish, "student", kernel_regularizer=kerasish.regularizers.L2(0.1))
    d = Distiller(tq, sq, LogitsDistillation(), student_loss_weight=0.5)
    d.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = torch.tensor(X), torch.tensor(Y)
    y_pred = d(x)
    total = d.compute_loss(x, y, y_pred)
    student = float(kerasish.losses.sparse_categorical_crossentropy(y, y_pred).mean())
    distill = _kl_reference(tq(x).detach().numpy(), y_pred.detach().numpy(), 3.0)
    l2 = 0.1 * float((sq.get_layer("h").kernel ** 2).sum())
    np.testing.assert_allclose(float(total), 0.5 * student + 0.5 * distill + l2, rtol=1e-5)


def test_teacher_is_frozen_and_gets_no_gradients():
    tq, sq = _pair(kerasish, "teacher"), _pair(kerasish, "student")
    d = Distiller(tq, sq, FeatureDistillation(teacher_layer_name="h", student_layer_name="h"))
    assert not tq.trainable and all(not p.requires_grad for p in tq.parameters())
    d.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in tq.get_weights()]
    d.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    assert all(p.grad is None for p in tq.parameters())
    for a, b in zip(before, tq.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the feature extractors share weights, they do not duplicate them in the state dict
    assert not any("extractor" in k for k in d.state_dict())


def test_custom_distillation_loss():
    class MeanGap(DistillationLoss):
        def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
            return (teacher_outputs.mean() - student_outputs.mean()).abs()

    tq, sq = _pair(kerasish, "teacher"), _pair(kerasish, "student")
    d = Distiller(tq, sq, MeanGap(), student_loss_weight=0.0)
    d.compile(loss="sparse_categorical_crossentropy")
    x = torch.tensor(X)
    expected = float((tq(x).mean() - sq(x).mean()).abs())
    np.testing.assert_allclose(float(d.compute_loss(x, torch.tensor(Y), sq(x))), expected, rtol=1e-6)


def test_errors():
    tq, sq = _pair(kerasish, "teacher"), _pair(kerasish, "student")
    with pytest.raises(ValueError, match="between 0.0 and 1.0"):
        Distiller(tq, sq, LogitsDistillation(), student_loss_weight=1.5)
    with pytest.raises(ValueError, match="cannot be `None`"):
        Distiller(tq, sq, None)
    with pytest.raises(ValueError, match=r"distillation_loss_weights \(1\) must match"):
        Distiller(tq, sq, [LogitsDistillation(), FeatureDistillation()], distillation_loss_weights=[1.0])
    with pytest.raises(ValueError, match="In teacher model"):
        Distiller(tq, sq, FeatureDistillation(teacher_layer_name="nope", student_layer_name="h"))
    with pytest.raises(TypeError, match="DistillationLoss"):
        Distiller(tq, sq, "kl_divergence")
    with pytest.raises(ValueError, match="Teacher must be a keras.Model"):
        Distiller(torch.nn.Linear(4, 3), sq, LogitsDistillation())
    wide = kerasish.Sequential([kerasish.Input((4,)), kerasish.layers.Dense(5)])
    with pytest.raises(ValueError, match="output shapes are incompatible"):
        Distiller(tq, wide, LogitsDistillation())

    class Sub(kerasish.Model):
        def __init__(self):
            super().__init__()
            self.d = kerasish.layers.Dense(3)

        def call(self, x):
            return self.d(x)

    with pytest.raises(ValueError, match="Functional or Sequential"):
        Distiller(tq, Sub(), FeatureDistillation(teacher_layer_name="h", student_layer_name="h"))
    d = Distiller(tq, Sub(), LogitsDistillation())  # final outputs only: fine with a subclassed student
    with pytest.raises(ValueError, match="'loss' cannot be `None`"):
        d.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="metrics must be a list"):
        d.compile(loss="mse", metrics="accuracy")
    with pytest.raises(ValueError, match="temperature must be positive"):
        LogitsDistillation(temperature=0)
    with pytest.raises(ValueError, match="non-`None`"):
        FeatureDistillation(loss=[None, None])
    with pytest.raises(ValueError, match="Loss structure mismatch"):
        FeatureDistillation(loss=["mse", "mse"]).validate_outputs(torch.ones(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="one loss per output"):
        LogitsDistillation().compute_loss([torch.ones(2, 3)], [torch.ones(2, 3)])


def test_loss_configs_both_ways(keras_ref):
    for ours in (LogitsDistillation(temperature=2.5), LogitsDistillation(loss=[kerasish.losses.KLDivergence(), None]),
                 FeatureDistillation(loss="cosine_similarity", teacher_layer_name="a", student_layer_name="b")):
        cfg = ours.get_config()
        again = type(ours).from_config(cfg)
        assert again.get_config() == cfg
        ref = getattr(keras_ref.distillation, type(ours).__name__).from_config(cfg)
        back = type(ours).from_config(ref.get_config())
        assert back.get_config() == cfg


def test_distiller_config_round_trip():
    tq, sq = _pair(kerasish, "teacher"), _pair(kerasish, "student")
    d = Distiller(tq, sq, [LogitsDistillation(temperature=2.0), FeatureDistillation(teacher_layer_name="h",
                                                                                   student_layer_name="h")],
                  distillation_loss_weights=[1.0, 0.25], student_loss_weight=0.4)
    cfg = d.get_config()
    d2 = Distiller.from_config(cfg)
    assert d2.student_loss_weight == 0.4 and d2.distillation_loss_weights == [1.0, 0.25]
    assert [type(x).__name__ for x in d2.distillation_losses] == ["LogitsDistillation", "FeatureDistillation"]
    assert d2.get_config()["distillation_losses"] == cfg["distillation_losses"]
    assert kerasish.distillation.Distiller is Distiller


def test_keras_files_both_ways(keras_ref, tmp_path):
    """A kerasish Distiller file loads in kerasish (recompiled, optimizer state included) and in Keras;
    a Keras one loads in kerasish with the same predictions (Keras records no student loss: not recompiled)."""
    pytest.importorskip("h5py")
    import warnings

    tq, sq, tk, sk = _models(keras_ref)

    def losses(k):
        return [k.distillation.LogitsDistillation(loss=k.losses.KLDivergence()),
                k.distillation.FeatureDistillation(teacher_layer_name="h", student_layer_name="h")]

    dq = Distiller(tq, sq, losses(kerasish))
    dq.compile(optimizer="adam", loss=kerasish.losses.SparseCategoricalCrossentropy(from_logits=True))
    dq.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    dk = keras_ref.distillation.Distiller(tk, sk, losses(keras_ref))
    dk.compile(optimizer="adam", loss=keras_ref.losses.SparseCategoricalCrossentropy(from_logits=True))
    dk.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kerasish.saving.save_model(dq, str(tmp_path / "q.keras"))
        dk.save(str(tmp_path / "k.keras"))
        q_in_q = kerasish.saving.load_model(str(tmp_path / "q.keras"))
        q_in_k = keras_ref.saving.load_model(str(tmp_path / "q.keras"))
        k_in_q = kerasish.saving.load_model(str(tmp_path / "k.keras"))
    expected = dq.predict(X, verbose=0)
    for loaded in (q_in_q, q_in_k):
        assert type(loaded).__name__ == "Distiller"
        np.testing.assert_allclose(np.asarray(loaded.predict(X, verbose=0)), expected, rtol=1e-6, atol=1e-6)
    # Keras never recompiles a model with an overridden `compile` (it warns); kerasish does, state included
    assert int(q_in_q.optimizer.iterations) == 2
    for a, b in zip(dq.optimizer.variables, q_in_q.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a.detach()), np.asarray(b.detach()))
    assert [type(x).__name__ for x in q_in_k.distillation_losses] == ["LogitsDistillation", "FeatureDistillation"]
    assert q_in_q.compiled and q_in_q.student_loss_weight == 0.5
    q_in_q.fit(X, Y, batch_size=8, epochs=1, verbose=0)  # recompiled: trains on
    assert isinstance(k_in_q, Distiller)
    np.testing.assert_allclose(k_in_q.predict(X, verbose=0), np.asarray(dk.predict(X, verbose=0)), rtol=1e-6, atol=1e-6)


def _two_outputs(k, name):
    i = k.Input((4,), name="x")
    h = k.layers.Dense(8, activation="relu", name="h")(i)
    return k.Model(i, [k.layers.Dense(3, name="cls")(h), k.layers.Dense(2, name="reg")(h)], name=name)


def test_multi_output_distillation_matches_keras(keras_ref):
    """Per-output distillation losses (Keras 3.15 cannot apply a list of *student* losses, its TrackedList
    does not match the list of outputs: student_loss_weight=0 there; kerasish's is checked by hand below)."""
    torch.manual_seed(0)
    tq, sq = _two_outputs(kerasish, "teacher"), _two_outputs(kerasish, "student")
    tk, sk = _two_outputs(keras_ref, "teacher"), _two_outputs(keras_ref, "student")
    tk.set_weights(tq.get_weights())
    sk.set_weights(sq.get_weights())

    def losses(k):
        return [k.distillation.LogitsDistillation(temperature=2.0, loss=[k.losses.KLDivergence(), "mse"]),
                k.distillation.FeatureDistillation(loss="mse", teacher_layer_name="h", student_layer_name="h")]

    dq = Distiller(tq, sq, losses(kerasish), distillation_loss_weights=[1.0, 0.3], student_loss_weight=0.0)
    dk = keras_ref.distillation.Distiller(tk, sk, losses(keras_ref), distillation_loss_weights=[1.0, 0.3],
                                          student_loss_weight=0.0)
    dq.compile(optimizer="sgd", loss=[kerasish.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"])
    dk.compile(optimizer="sgd", loss=[keras_ref.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"])
    rng = np.random.default_rng(3)
    y = [rng.integers(0, 3, 16), rng.random((16, 2)).astype("float32")]
    hq = dq.fit(X, y, batch_size=8, epochs=2, verbose=0, shuffle=False).history
    hk = dk.fit(X, y, batch_size=8, epochs=2, verbose=0, shuffle=False).history
    for key in hk:
        np.testing.assert_allclose(hq[key], hk[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(sq.get_weights(), sk.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # the student's per-output losses: the sum of each output's mean loss
    d = Distiller(tq, sq, losses(kerasish)[0], student_loss_weight=0.5)
    d.compile(loss=[kerasish.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"])
    x, yq = torch.tensor(X), [torch.tensor(y[0]), torch.tensor(y[1])]
    cls, reg = sq(x)
    t_cls, t_reg = tq(x)
    student = float(torch.nn.functional.cross_entropy(cls, yq[0]) + ((reg - yq[1]) ** 2).mean())
    distill = _kl_reference(t_cls.detach().numpy(), cls.detach().numpy(), 2.0) + float(
        (((t_reg - reg) / 2.0) ** 2).mean())
    np.testing.assert_allclose(float(d.compute_loss(x, yq, [cls, reg])), 0.5 * student + 0.5 * distill, rtol=1e-5)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"))]


@pytest.mark.parametrize("device", DEVICES)
def test_fit_on_device_equals_cpu(device):
    histories = []
    for dev in ("cpu", device):
        torch.manual_seed(0)
        tq, sq = _pair(kerasish, "teacher"), _pair(kerasish, "student")
        d = Distiller(tq, sq, [LogitsDistillation(temperature=2.0),
                               FeatureDistillation(teacher_layer_name="h", student_layer_name="h")],
                      student_loss_weight=0.3)
        d.to(dev)
        d.compile(optimizer="adam", loss=kerasish.losses.SparseCategoricalCrossentropy(from_logits=True))
        histories.append(d.fit(X, Y, batch_size=8, epochs=2, verbose=0, shuffle=False).history)
        assert sq.get_layer("h").kernel.device.type == dev
    for key in histories[0]:
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-4, atol=1e-6, err_msg=key)
