"""`keras.distribution` on `torch.distributed` (see `distribution_lib`)."""

from kerasish.distribution.distribution_lib import DataParallel
from kerasish.distribution.distribution_lib import DeviceMesh
from kerasish.distribution.distribution_lib import Distribution
from kerasish.distribution.distribution_lib import LayoutMap
from kerasish.distribution.distribution_lib import ModelParallel
from kerasish.distribution.distribution_lib import TensorLayout
from kerasish.distribution.distribution_lib import distribute_tensor
from kerasish.distribution.distribution_lib import distribution
from kerasish.distribution.distribution_lib import get_device_count
from kerasish.distribution.distribution_lib import initialize
from kerasish.distribution.distribution_lib import list_devices
from kerasish.distribution.distribution_lib import set_distribution

__all__ = [
    "DataParallel",
    "DeviceMesh",
    "Distribution",
    "LayoutMap",
    "ModelParallel",
    "TensorLayout",
    "distribute_tensor",
    "distribution",
    "get_device_count",
    "initialize",
    "list_devices",
    "set_distribution",
]
