"""`keras.applications`: Keras's image models, built from kerasish layers.

`weights="imagenet"` reads Keras's pretrained files from the Keras cache
(`~/.keras/models`, or `$KERAS_HOME/models`); kerasish never downloads.
"""

from kerasish.applications import imagenet_utils  # noqa: F401

# --- apps2 ---
from kerasish.applications import efficientnet  # noqa: F401
from kerasish.applications.efficientnet import (  # noqa: F401
    EfficientNetB0, EfficientNetB1, EfficientNetB2, EfficientNetB3,
    EfficientNetB4, EfficientNetB5, EfficientNetB6, EfficientNetB7,
)
from kerasish.applications import densenet  # noqa: F401
from kerasish.applications.densenet import DenseNet121, DenseNet169, DenseNet201  # noqa: F401
from kerasish.applications import efficientnet_v2  # noqa: F401
from kerasish.applications.efficientnet_v2 import (  # noqa: F401
    EfficientNetV2B0, EfficientNetV2B1, EfficientNetV2B2, EfficientNetV2B3,
    EfficientNetV2L, EfficientNetV2M, EfficientNetV2S,
)
from kerasish.applications import convnext  # noqa: F401
from kerasish.applications.convnext import (  # noqa: F401
    ConvNeXtBase, ConvNeXtLarge, ConvNeXtSmall, ConvNeXtTiny, ConvNeXtXLarge,
)
from kerasish.applications import inception_resnet_v2  # noqa: F401
from kerasish.applications.inception_resnet_v2 import InceptionResNetV2  # noqa: F401
