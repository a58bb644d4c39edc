"""`keras.utils.multi_gpu_utils` (multi-backend Keras 2.0.9-2.4, tf.keras to 2.3):
`multi_gpu_model`, which TensorFlow 2.4 removed. Importing this module raises."""

raise ImportError(
    "`keras.utils.multi_gpu_utils.multi_gpu_model` was removed in TensorFlow 2.4 and has no kerasish (Keras 3) "
    "counterpart: train on several GPUs with PyTorch's DistributedDataParallel (`keras.distribution.DataParallel` "
    "under `torchrun`; README, 'Distributed training').",
    name=__name__,
)
