"""Small backend helpers shared by the whole package (dtypes, floatx, devices)."""

from kerasish.backend.config import epsilon
from kerasish.backend.config import image_data_format
from kerasish.backend.config import set_epsilon
from kerasish.backend.config import set_image_data_format
from kerasish.backend.dtypes import floatx
from kerasish.backend.dtypes import is_float_dtype
from kerasish.backend.dtypes import set_floatx
from kerasish.backend.dtypes import standardize_dtype
from kerasish.backend.dtypes import to_torch_dtype
from kerasish.backend.promotion import result_type

__all__ = ["epsilon", "image_data_format", "set_epsilon", "set_image_data_format", "floatx", "is_float_dtype", "set_floatx", "standardize_dtype", "to_torch_dtype", "result_type"]
