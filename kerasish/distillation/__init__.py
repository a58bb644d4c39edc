"""`keras.distillation`: knowledge distillation from a teacher model to a student model."""

from kerasish.distillation.distillation_loss import DistillationLoss
from kerasish.distillation.distillation_loss import FeatureDistillation
from kerasish.distillation.distillation_loss import LogitsDistillation
from kerasish.distillation.distiller import Distiller

__all__ = ["DistillationLoss", "Distiller", "FeatureDistillation", "LogitsDistillation"]
