"""`keras.metrics`."""

from kerasish.metrics.metric import Metric
from kerasish.metrics.reduction_metrics import Mean
from kerasish.metrics.reduction_metrics import Sum

__all__ = ["Mean", "Metric", "Sum"]
