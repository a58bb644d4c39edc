"""`keras.distillation.Distiller`: a Model that trains a student on labels and on a frozen teacher."""

from __future__ import annotations

import numbers

import torch

from kerasish.distillation.distillation_loss import _convert_loss
from kerasish.distillation.distillation_loss import _structure
from kerasish.models.model import Model


def _loss_structure(loss):
    if isinstance(loss, (list, tuple)):
        return [_loss_structure(v) for v in loss]
    if isinstance(loss, dict):
        return {k: _loss_structure(v) for k, v in loss.items()}
    return _convert_loss(loss)


def _map_student_loss(loss, y, y_pred, out):
    """Applies the (nested) student loss to matching `y`/`y_pred`, appending each value to `out`."""
    if isinstance(loss, (list, tuple)):
        if not isinstance(y, (list, tuple)) or len(y) != len(loss) or len(y_pred) != len(loss):
            raise ValueError(
                f"Distiller: the student `loss` has {len(loss)} entries but the targets/predictions have structure "
                f"{_structure(y)} / {_structure(y_pred)}."
            )
        for l_, t, p in zip(loss, y, y_pred):
            _map_student_loss(l_, t, p, out)
    elif isinstance(loss, dict):
        for k in loss:
            _map_student_loss(loss[k], y[k], y_pred[k], out)
    else:
        out.append(loss(y, y_pred))


class Distiller(Model):
    """Knowledge distillation: trains `student` on a weighted sum of its
    supervised loss and distillation losses against a frozen `teacher`.

    `total = student_loss_weight * student_loss
           + (1 - student_loss_weight) * sum_i(weight_i * distillation_loss_i)`

    The model's output is the student's. `fit` logs `loss` (the total),
    `student_loss`, `distillation_loss`, `total_loss` and the compiled
    metrics, as Keras does. The teacher is set `trainable = False` and runs
    in inference mode without gradients. `FeatureDistillation` with layer
    names reads intermediate outputs through feature-extractor models built
    on the teacher's and student's symbolic graphs (Functional or
    Sequential models with inputs).

    Differences from Keras 3.15 (deliberate, each a silent wrong number there):
    the student's own `losses` (weight regularizers, `add_loss`) are added to
    the total (Keras's Distiller drops them), and the student feature
    extractor runs with the step's `training` flag (Keras always passes
    `training=True`, so `evaluate` updates the student's BatchNormalization
    statistics). See `LogitsDistillation` for its KL-divergence spelling.
    A list or dict of student losses in `compile` applies per output and
    sums the outputs' mean losses (Keras 3.15 fails on a list there).

    Args:
        teacher: The trained `keras.Model` providing knowledge.
        student: The `keras.Model` to train.
        distillation_losses: A `DistillationLoss` or a list of them.
        distillation_loss_weights: One weight per distillation loss (list
            only). Defaults to 1.0 each.
        student_loss_weight: Weight of the supervised loss, in [0, 1]. Defaults to 0.5.
        name: Model name. Defaults to "distiller".
        **kwargs: Other `Model` arguments.
    """

    def __init__(self, teacher, student, distillation_losses, distillation_loss_weights=None,
                 student_loss_weight=0.5, name="distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        self._validate_models(teacher, student)
        self.teacher = teacher
        self.student = student
        if isinstance(student_loss_weight, bool) or not isinstance(student_loss_weight, numbers.Real):
            raise ValueError(f"student_loss_weight must be a number, got {type(student_loss_weight)}")
        if not 0.0 <= student_loss_weight <= 1.0:
            raise ValueError(f"student_loss_weight must be between 0.0 and 1.0, got {student_loss_weight}")
        self.student_loss_weight = student_loss_weight
        if distillation_losses is None:
            raise ValueError(
                "'distillation_losses' cannot be `None`. Provide a distillation loss (e.g., LogitsDistillation or "
                "FeatureDistillation) or a list of distillation losses."
            )
        from kerasish.distillation.distillation_loss import DistillationLoss

        if not isinstance(distillation_losses, (list, tuple)):
            losses, weights = [distillation_losses], [1.0]
        else:
            losses = list(distillation_losses)
            if distillation_loss_weights is None:
                weights = [1.0] * len(losses)
            else:
                weights = list(distillation_loss_weights)
                if len(weights) != len(losses):
                    raise ValueError(
                        f"Number of distillation_loss_weights ({len(weights)}) must match number of "
                        f"distillation_losses ({len(losses)})"
                    )
        for loss in losses:
            if not isinstance(loss, DistillationLoss):
                raise TypeError(
                    "Each entry of `distillation_losses` must be a `keras.distillation.DistillationLoss`. "
                    f"Received: {loss!r}"
                )
            loss.validate_model_compatibility(teacher, student)
        self._set_untracked("distillation_losses", losses)
        self.distillation_loss_weights = weights
        self._create_feature_extractors()
        self.teacher.trainable = False

        from kerasish.metrics import Mean

        self.student_loss_tracker = Mean(name="student_loss")
        self.distillation_loss_tracker = Mean(name="distillation_loss")
        self.total_loss_tracker = Mean(name="total_loss")

    # ---------------------------------------------------------- validation

    def _validate_models(self, teacher, student):
        from kerasish.models.model import Model as KerasModel

        for role, m in (("Teacher", teacher), ("Student", student)):
            if not isinstance(m, KerasModel):
                raise ValueError(f"{role} must be a keras.Model, got {type(m)}")
        t_in, s_in = getattr(teacher, "inputs", None), getattr(student, "inputs", None)
        if t_in is not None and s_in is not None:
            self._compare_tensors(t_in, s_in, "input")
        t_out, s_out = getattr(teacher, "outputs", None), getattr(student, "outputs", None)
        if t_in is not None and s_in is not None and t_out is not None and s_out is not None:
            self._compare_tensors(t_out, s_out, "output")

    @staticmethod
    def _compare_tensors(teacher_tensors, student_tensors, context):
        if _structure(teacher_tensors) != _structure(student_tensors):
            raise ValueError(
                f"Teacher and student {context} structures differ. Teacher: {_structure(teacher_tensors)}, "
                f"Student: {_structure(student_tensors)}."
            )
        from kerasish.utils import tree

        for t, s in zip(tree.flatten(teacher_tensors), tree.flatten(student_tensors)):
            ts, ss = tuple(t.shape), tuple(s.shape)
            if len(ts) != len(ss):
                raise ValueError(
                    f"Teacher and student {context} shapes have different dimensions. Teacher: {ts}, Student: {ss}."
                )
            if any(a is not None and b is not None and a != b for a, b in zip(ts, ss)):
                raise ValueError(
                    f"Teacher and student {context} shapes are incompatible. Teacher: {ts}, Student: {ss}. "
                    "All dimensions must match."
                )
            if t.dtype != s.dtype:
                raise ValueError(
                    f"Teacher and student {context} dtypes must match. Teacher: {t.dtype}, Student: {s.dtype}."
                )

    # --------------------------------------------------- feature extraction

    def _create_feature_extractors(self):
        teacher_names, student_names = [], []
        for loss in self.distillation_losses:
            t, s = getattr(loss, "teacher_layer_name", None), getattr(loss, "student_layer_name", None)
            if t and t not in teacher_names:
                teacher_names.append(t)
            if s and s not in student_names:
                student_names.append(s)
        # untracked by torch: the extractors share the teacher's/student's weights, which must not
        # appear twice in `state_dict()` or the saved files
        self._set_untracked("_teacher_feature_extractor", self._feature_extractor(self.teacher, teacher_names))
        self._set_untracked("_student_feature_extractor", self._feature_extractor(self.student, student_names))

    @staticmethod
    def _feature_extractor(model, layer_names):
        if not layer_names:
            return None
        if getattr(model, "inputs", None) is None:
            raise ValueError(
                f"Cannot create feature extractor for {model.name}. The model has no symbolic inputs attribute."
            )
        from kerasish.models.graph import build_map

        # a layer's output *in this model's graph* (a layer called elsewhere too, or a Sequential rebuilt
        # from its config, has several nodes; `layer.output` would refuse)
        nodes, _ = build_map(model.inputs, model.outputs)
        outputs = {"final_output": model.outputs[0] if len(model.outputs) == 1 else list(model.outputs)}
        for name in layer_names:
            layer = model.get_layer(name=name)
            mine = [n for n in nodes if n.operation is layer]
            if not mine:
                raise ValueError(f"Layer '{name}' is not connected to the graph of model '{model.name}'.")
            outputs[name] = mine[-1].outputs_structure
        return Model(inputs=model.inputs, outputs=outputs, name=f"{model.name}_multi_feature_extractor")

    def _teacher_features(self, x):
        with torch.no_grad():
            if self._teacher_feature_extractor is not None:
                return self._teacher_feature_extractor(x, training=False)
            return {"final_output": self.teacher(x, training=False)}

    def _student_features(self, x, y_pred, training):
        if self._student_feature_extractor is not None:
            return self._student_feature_extractor(x, training=training)
        return {"final_output": y_pred}

    # ------------------------------------------------------------ training

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Compiles for training the student.

        Args:
            optimizer: Optimizer for the student's weights. Defaults to "adam".
            loss: The student's supervised loss (name, `Loss`, callable, or a
                structure matching the outputs). Required.
            metrics: A list or tuple of metrics on the student's predictions.
            **kwargs: Other `Model.compile` arguments.
        """
        if loss is None:
            raise ValueError("'loss' cannot be `None`.")
        self._set_untracked("_student_loss", _loss_structure(loss))
        self._set_untracked("_student_loss_for_serialization", loss)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise ValueError(f"metrics must be a list or tuple, got {type(metrics)}")
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)
        # saved files record the student's loss, so that kerasish's loader recompiles the Distiller (Keras
        # 3.15 writes loss=None, and its loader never recompiles a model whose `compile` is overridden)
        self._compile_config["loss"] = loss

    def call(self, inputs, training=None, **kwargs):
        """The student's predictions."""
        return self.student(inputs, training=training, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The weighted student + distillation loss (sample weights are not used, as in Keras)."""
        if y_pred is None:
            y_pred = self(x, training=training)
        student_loss = torch.zeros(())
        if self.student_loss_weight > 0.0 and y is not None:
            values = []
            _map_student_loss(self._student_loss, y, y_pred, values)
            # each output's loss reduced to its mean, then summed: Keras sums the per-sample values first,
            # the same number when every entry has the same shape (the mean is linear), and this also
            # accepts a mix of reduced (`Loss` instances) and per-sample (functions) entries
            student_loss = torch.stack([v.float().mean() for v in values]).sum()
        distillation_loss = torch.zeros(())
        if self.student_loss_weight < 1.0:
            teacher_features = self._teacher_features(x)
            student_features = self._student_features(x, y_pred, training)
            for loss_fn, weight in zip(self.distillation_losses, self.distillation_loss_weights):
                if getattr(loss_fn, "teacher_layer_name", None) is not None:
                    teacher_out = self._feature(loss_fn, teacher_features, "teacher")
                    student_out = self._feature(loss_fn, student_features, "student")
                else:
                    teacher_out, student_out = teacher_features["final_output"], y_pred
                loss_fn.validate_outputs(teacher_out, student_out)
                value = loss_fn.compute_loss(teacher_out, student_out)
                if getattr(value, "ndim", 0) > 0:
                    raise ValueError(
                        f"Distillation loss {type(loss_fn).__name__} returned a non-scalar loss with shape "
                        f"{tuple(value.shape)}. The compute_loss method must return a scalar tensor."
                    )
                distillation_loss = distillation_loss.to(value.device) + weight * value
        device = next((t.device for t in (student_loss, distillation_loss) if t.device.type != "cpu"), None)
        if device is not None:
            student_loss, distillation_loss = student_loss.to(device), distillation_loss.to(device)
        total = self.student_loss_weight * student_loss + (1.0 - self.student_loss_weight) * distillation_loss
        for extra in self.student.losses:  # regularization / add_loss of the student (see the class docstring)
            total = total + extra.float().sum()
        self.student_loss_tracker.update_state(student_loss.detach())
        self.distillation_loss_tracker.update_state(distillation_loss.detach())
        self.total_loss_tracker.update_state(total.detach())
        return total

    @staticmethod
    def _feature(loss_fn, features, role):
        name = getattr(loss_fn, f"{role}_layer_name", None) or "final_output"
        if name not in features:
            raise RuntimeError(
                f"Failed to extract features for {type(loss_fn).__name__} targeting teacher layer "
                f"'{loss_fn.teacher_layer_name}' and student layer '{loss_fn.student_layer_name}'. "
                f"Layer '{name}' not found in extracted features. Available: {list(features)}"
            )
        return features[name]

    def reset_metrics(self):
        super().reset_metrics()
        for m in (self.student_loss_tracker, self.distillation_loss_tracker, self.total_loss_tracker):
            m.reset_state()

    # -------------------------------------------------------------- config

    def get_config(self) -> dict:
        from kerasish.saving.serialization_lib import serialize_keras_object

        return {
            "name": self.name,
            "trainable": self.trainable,
            "teacher": serialize_keras_object(self.teacher),
            "student": serialize_keras_object(self.student),
            "distillation_losses": [serialize_keras_object(loss) for loss in self.distillation_losses],
            "distillation_loss_weights": list(self.distillation_loss_weights),
            "student_loss_weight": self.student_loss_weight,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from kerasish.saving.serialization_lib import deserialize_keras_object

        from kerasish import distillation
        from kerasish import models

        config = dict(config)
        config.pop("dtype", None)
        module_objects = {**vars(models), **vars(distillation)}
        for key in ("teacher", "student"):
            if isinstance(config[key], dict):
                config[key] = deserialize_keras_object(config[key], module_objects=module_objects,
                                                       custom_objects=custom_objects)
        config["distillation_losses"] = [
            deserialize_keras_object(c, module_objects=module_objects, custom_objects=custom_objects)
            if isinstance(c, dict) else c
            for c in config["distillation_losses"]
        ]
        return cls(**config)

