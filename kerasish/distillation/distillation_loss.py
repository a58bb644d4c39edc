"""`keras.distillation.DistillationLoss` and its two built-ins: logits and feature distillation."""

from __future__ import annotations

import torch

from kerasish.utils import tree


def _convert_loss(loss_item):
    """A loss name to its function (`keras.losses.get`); a `Loss`/callable/None as is."""
    if loss_item is None:
        return None
    if isinstance(loss_item, str):
        from kerasish import losses

        fn = losses.get(loss_item)
        if fn is None:
            raise ValueError(f"Unknown loss function: '{loss_item}'.")
        return fn
    if not callable(loss_item):
        raise TypeError(
            "A distillation loss must be a loss name, a `keras.losses.Loss`, a callable or None. "
            f"Received: {loss_item!r}"
        )
    return loss_item


def _loss_structure(loss):
    """`loss` with every leaf (string, Loss, function, None) converted; lists/tuples/dicts kept."""
    if isinstance(loss, (list, tuple)):
        return type(loss)(_loss_structure(v) for v in loss)
    if isinstance(loss, dict):
        return {k: _loss_structure(v) for k, v in loss.items()}
    return _convert_loss(loss)


def _structure(x):
    """The nesting of `x` with leaves replaced by None (for comparisons and messages)."""
    if isinstance(x, (list, tuple)):
        return [_structure(v) for v in x]
    if isinstance(x, dict):
        return {k: _structure(v) for k, v in sorted(x.items())}
    return None


def _map2(fn, structure, a, b):
    """`fn(leaf, a_leaf, b_leaf)` over the nesting of `structure`."""
    if isinstance(structure, (list, tuple)):
        return [_map2(fn, s, x, y) for s, x, y in zip(structure, a, b)]
    if isinstance(structure, dict):
        return {k: _map2(fn, structure[k], a[k], b[k]) for k in structure}
    if isinstance(a, (list, tuple, dict)):
        raise ValueError(
            f"The distillation `loss` is a single loss but the outputs are nested ({_structure(a)}): pass one loss "
            "per output (a list or dict of losses, None to skip an output)."
        )
    return fn(structure, a, b)


def _deserialize_loss(config):
    """Inverse of serializing a loss structure (Keras writes a function as
    `{"class_name": "function", "config": name}`)."""
    from kerasish import losses

    if isinstance(config, list):
        return [_deserialize_loss(v) for v in config]
    if isinstance(config, dict) and "class_name" not in config:
        return {k: _deserialize_loss(v) for k, v in config.items()}
    if isinstance(config, dict) and config.get("class_name") == "function":
        return losses.get(config["config"])
    if config is None:
        return None
    return losses.deserialize(config)


def _serialize_loss(loss):
    from kerasish.saving.serialization_lib import serialize_keras_object

    if isinstance(loss, (list, tuple)):
        return [_serialize_loss(v) for v in loss]
    if isinstance(loss, dict):
        return {k: _serialize_loss(v) for k, v in loss.items()}
    if loss is None or hasattr(loss, "get_config"):
        return serialize_keras_object(loss)
    name = getattr(loss, "__name__", None)
    # Keras's layout of a function, readable by `keras.losses.deserialize`
    return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}


def _is_kl_divergence(loss_fn) -> bool:
    from kerasish import losses

    return isinstance(loss_fn, losses.KLDivergence) or loss_fn is losses.kl_divergence


def _sum_scalars(values) -> torch.Tensor:
    flat = [v if isinstance(v, torch.Tensor) else torch.tensor(float(v)) for v in tree.flatten(values)]
    device = next((v.device for v in flat if v.device.type != "cpu"), flat[0].device)
    return torch.stack([v.to(device=device, dtype=torch.float32) for v in flat]).sum()


class DistillationLoss:
    """Base class of distillation losses: how teacher and student outputs are compared.

    Subclasses implement `compute_loss(teacher_outputs, student_outputs)`
    (a scalar tensor) and may override `validate_outputs` and
    `validate_model_compatibility`.
    """

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        """The distillation loss (a scalar tensor) between teacher and student outputs."""
        raise NotImplementedError("Subclasses must implement compute_loss")

    def validate_outputs(self, teacher_outputs, student_outputs):
        """Raises `ValueError` when teacher and student outputs are not nested alike."""
        if _structure(teacher_outputs) != _structure(student_outputs):
            raise ValueError(
                f"{type(self).__name__}: the teacher and student outputs must have the same structure. Received: "
                f"teacher structure {_structure(teacher_outputs)}, student structure {_structure(student_outputs)}."
            )

    def validate_model_compatibility(self, teacher, student):
        """Raises `ValueError` when the models cannot be used with this loss (the base accepts any)."""


class FeatureDistillation(DistillationLoss):
    """Matches intermediate (or final) features of the student to the teacher's.

    The loss is `mean(loss(teacher_features, student_features))`, summed
    over the outputs of a nested `loss` (a None entry skips that output).

    Args:
        loss: Loss name, `keras.losses.Loss`, callable, or a nested structure
            of them matching the features. At least one must be non-None.
            Defaults to "mse".
        teacher_layer_name: Teacher layer whose output is compared, or None
            for the final output. Defaults to None.
        student_layer_name: Student layer whose output is compared, or None
            for the final output. Defaults to None.
    """

    def __init__(self, loss="mse", teacher_layer_name=None, student_layer_name=None):
        self.teacher_layer_name = teacher_layer_name
        self.student_layer_name = student_layer_name
        self.loss = _loss_structure(loss)
        if all(v is None for v in tree.flatten(self.loss)):
            raise ValueError("The `loss` argument in `FeatureDistillation` must contain at least one non-`None` value.")

    def validate_model_compatibility(self, teacher, student):
        if self.teacher_layer_name is not None or self.student_layer_name is not None:
            subclassed = [role for role, m in (("teacher", teacher), ("student", student))
                          if getattr(m, "inputs", None) is None]
            if subclassed:
                raise ValueError(
                    "FeatureDistillation with specific layer names requires Functional or Sequential models. The "
                    f"{' and '.join(subclassed)} model(s) appear to be subclassed (no symbolic inputs/outputs). Either "
                    "use Functional/Sequential models, or use FeatureDistillation without layer names (to distill "
                    "final outputs only), or use LogitsDistillation instead."
                )
        for role, model, name in (("teacher", teacher, self.teacher_layer_name),
                                  ("student", student, self.student_layer_name)):
            if name is not None:
                try:
                    model.get_layer(name=name)
                except ValueError as e:
                    raise ValueError(f"In {role} model: {e}") from None

    def validate_outputs(self, teacher_outputs, student_outputs):
        super().validate_outputs(teacher_outputs, student_outputs)
        if _structure(self.loss) != _structure(teacher_outputs):
            raise ValueError(
                f"Loss structure mismatch. Loss structure: {_structure(self.loss)}, "
                f"Output structure: {_structure(teacher_outputs)}."
            )

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        def apply(loss_fn, teacher, student):
            if loss_fn is None:
                return 0.0
            return torch.mean(loss_fn(teacher, student))

        return _sum_scalars(_map2(apply, self.loss, teacher_outputs, student_outputs))

    def get_config(self) -> dict:
        return {
            "loss": _serialize_loss(self.loss),
            "teacher_layer_name": self.teacher_layer_name,
            "student_layer_name": self.student_layer_name,
        }

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config["loss"] = _deserialize_loss(config["loss"])
        return cls(**config)


class LogitsDistillation(DistillationLoss):
    """Matches the student's temperature-softened logits to the teacher's.

    Both outputs are divided by `temperature`. For KL divergence (the
    default, given as "kl_divergence" / `keras.losses.kl_divergence` or as
    a `keras.losses.KLDivergence()`) the scaled logits go through a softmax
    and the mean KL is multiplied by `temperature**2` (Hinton et al.); any
    other loss gets the scaled logits directly.

    Differs from Keras 3.15.1, which applies the softmax and `temperature**2`
    only for a `KLDivergence()` *instance*: with the default string it
    computes `kl_divergence` on the raw scaled logits (clipped to [1e-7, 1]),
    a number with no meaning. kerasish treats both spellings as KL; with
    `loss=keras.losses.KLDivergence()` both libraries give the same numbers.

    Args:
        temperature: Positive softening temperature. Defaults to 3.0.
        loss: Loss name, `keras.losses.Loss`, callable, or a nested structure
            matching the outputs (None skips an output). Defaults to "kl_divergence".
    """

    def __init__(self, temperature=3.0, loss="kl_divergence"):
        self.temperature = temperature
        self.loss = _loss_structure(loss)
        if all(v is None for v in tree.flatten(self.loss)):
            raise ValueError("At least one loss must be non-`None`.")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ValueError(f"temperature must be a number, got {type(temperature)}")
        if temperature <= 0.0:
            raise ValueError(f"temperature must be positive. Received: temperature={temperature}")

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        t = self.temperature
        teacher_scaled = tree.map_structure(lambda x: x / t, teacher_outputs)
        student_scaled = tree.map_structure(lambda x: x / t, student_outputs)

        def apply(loss_fn, teacher_logits, student_logits):
            if loss_fn is None:
                return 0.0
            if _is_kl_divergence(loss_fn):
                kl = loss_fn(torch.softmax(teacher_logits, dim=-1), torch.softmax(student_logits, dim=-1))
                return torch.mean(kl) * (t**2)
            return torch.mean(loss_fn(teacher_logits, student_logits))

        return _sum_scalars(_map2(apply, self.loss, teacher_scaled, student_scaled))

    def get_config(self) -> dict:
        return {"temperature": self.temperature, "loss": _serialize_loss(self.loss)}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config["loss"] = _deserialize_loss(config["loss"])
        return cls(**config)
