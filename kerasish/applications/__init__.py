"""`keras.applications`: Keras 3's image classification models, built from
kerasish layers (every model is a functional `Model` and a `torch.nn.Module`).

Layer names, weights, configs and outputs equal Keras's. `weights="imagenet"`
reads Keras's own weight files from Keras's cache directory
(`$KERAS_HOME/models`, else `~/.keras/models`); kerasish never downloads them
itself (see `kerasish.applications._weights`).
"""

from kerasish.applications import imagenet_utils
from kerasish.applications import inception_v3
from kerasish.applications import mobilenet
from kerasish.applications import mobilenet_v2
from kerasish.applications import mobilenet_v3
from kerasish.applications import resnet
from kerasish.applications import resnet50
from kerasish.applications import resnet_v2
from kerasish.applications import vgg16
from kerasish.applications import vgg19
from kerasish.applications import xception
from kerasish.applications.inception_v3 import InceptionV3
from kerasish.applications.mobilenet import MobileNet
from kerasish.applications.mobilenet_v2 import MobileNetV2
from kerasish.applications.mobilenet_v3 import MobileNetV3Large
from kerasish.applications.mobilenet_v3 import MobileNetV3Small
from kerasish.applications.resnet import ResNet50
from kerasish.applications.resnet import ResNet101
from kerasish.applications.resnet import ResNet152
from kerasish.applications.resnet_v2 import ResNet50V2
from kerasish.applications.resnet_v2 import ResNet101V2
from kerasish.applications.resnet_v2 import ResNet152V2
from kerasish.applications.vgg16 import VGG16
from kerasish.applications.vgg19 import VGG19
from kerasish.applications.xception import Xception

__all__ = [
    "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small", "ResNet50", "ResNet101",
    "ResNet152", "ResNet50V2", "ResNet101V2", "ResNet152V2", "VGG16", "VGG19", "Xception",
    "imagenet_utils", "inception_v3", "mobilenet", "mobilenet_v2", "mobilenet_v3", "resnet", "resnet50",
    "resnet_v2", "vgg16", "vgg19", "xception",
]

# --- apps2 ---
from kerasish.applications import convnext  # noqa: E402
from kerasish.applications import densenet  # noqa: E402
from kerasish.applications import efficientnet  # noqa: E402
from kerasish.applications import efficientnet_v2  # noqa: E402
from kerasish.applications import inception_resnet_v2  # noqa: E402
from kerasish.applications.convnext import (  # noqa: E402
    ConvNeXtBase, ConvNeXtLarge, ConvNeXtSmall, ConvNeXtTiny, ConvNeXtXLarge,
)
from kerasish.applications.densenet import DenseNet121, DenseNet169, DenseNet201  # noqa: E402
from kerasish.applications.efficientnet import (  # noqa: E402
    EfficientNetB0, EfficientNetB1, EfficientNetB2, EfficientNetB3,
    EfficientNetB4, EfficientNetB5, EfficientNetB6, EfficientNetB7,
)
from kerasish.applications.efficientnet_v2 import (  # noqa: E402
    EfficientNetV2B0, EfficientNetV2B1, EfficientNetV2B2, EfficientNetV2B3,
    EfficientNetV2L, EfficientNetV2M, EfficientNetV2S,
)
from kerasish.applications.inception_resnet_v2 import InceptionResNetV2  # noqa: E402

__all__ += [
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge",
    "DenseNet121", "DenseNet169", "DenseNet201",
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5",
    "EfficientNetB6", "EfficientNetB7",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2L",
    "EfficientNetV2M", "EfficientNetV2S", "InceptionResNetV2",
    "convnext", "densenet", "efficientnet", "efficientnet_v2", "inception_resnet_v2",
]

# --- nasnet ---
from kerasish.applications import nasnet  # noqa: E402
from kerasish.applications.nasnet import NASNetLarge, NASNetMobile  # noqa: E402

__all__ += ["NASNetLarge", "NASNetMobile", "nasnet"]
