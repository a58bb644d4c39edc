"""The module paths of multi-backend Keras 2.0-2.4 and `keras` 2.6-2.12
(kerasish/utils/keras2_modules.py): `from keras.layers.core import Dropout`,
`from keras.utils.np_utils import to_categorical`, `from keras.engine.topology
import Layer`, ...

The name lists are those modules' public names at keras-team/keras tag 2.3.1
(the last multi-backend release: `git show 2.3.1:keras/layers/core.py` ...),
plus the few the 2.6-2.12 `keras` package added to the same modules. Each
name is the kerasish object of the same name, or raises an ImportError that
says what to use instead.
"""

import importlib

import numpy as np
import pytest
import torch

import kerasish as keras

LAYER_MODULES = {  # keras.layers.<module> -> its layer names (2.3.1; 2.6+ additions at the end)
    "core": ["Masking", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "Activation",
             "Reshape", "Permute", "Flatten", "RepeatVector", "Lambda", "Dense", "ActivityRegularization",
             "Embedding", "EinsumDense"],
    "convolutional": ["Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D",
                      "SeparableConv2D", "DepthwiseConv2D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
                      "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
                      "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
                      "AveragePooling3D", "Convolution1D", "Convolution2D", "Convolution3D",
                      "SeparableConvolution1D", "SeparableConvolution2D", "Convolution2DTranspose",
                      "Conv1DTranspose", "DepthwiseConv1D"],
    "recurrent": ["RNN", "SimpleRNN", "SimpleRNNCell", "GRU", "GRUCell", "LSTM", "LSTMCell", "StackedRNNCells"],
    "embeddings": ["Embedding"],
    "normalization": ["BatchNormalization", "LayerNormalization"],
    "merge": ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot", "add",
              "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot"],
    "pooling": ["MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
                "AveragePooling3D", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling2D",
                "GlobalMaxPooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling3D", "AvgPool1D", "MaxPool1D",
                "AvgPool2D", "MaxPool2D", "AvgPool3D", "MaxPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D",
                "GlobalMaxPool3D", "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D"],
    "advanced_activations": ["LeakyReLU", "PReLU", "ELU", "Softmax", "ReLU"],
    "noise": ["GaussianNoise", "GaussianDropout", "AlphaDropout"],
    "wrappers": ["Wrapper", "TimeDistributed", "Bidirectional"],
    "convolutional_recurrent": ["ConvLSTM2D", "ConvLSTM1D", "ConvLSTM3D"],
}
LAYER_ALIASES = {("convolutional", "Deconvolution2D"): "Conv2DTranspose",
                 ("convolutional", "Deconv2D"): "Conv2DTranspose",
                 ("convolutional", "Deconvolution3D"): "Conv3DTranspose",
                 ("convolutional", "Deconv3D"): "Conv3DTranspose"}

OTHER_MODULES = {  # module -> {name: the kerasish object it must be}
    "kerasish.utils.np_utils": {"normalize": "kerasish.utils:normalize"},
    "kerasish.utils.generic_utils": {
        "Progbar": "kerasish.utils:Progbar", "CustomObjectScope": "kerasish.utils:CustomObjectScope",
        "custom_object_scope": "kerasish.utils:custom_object_scope",
        "get_custom_objects": "kerasish.utils:get_custom_objects",
        "serialize_keras_object": "kerasish.utils.legacy:serialize_keras_object",
        "deserialize_keras_object": "kerasish.utils.legacy:deserialize_keras_object"},
    "kerasish.utils.data_utils": {"Sequence": "kerasish.utils:Sequence", "get_file": "kerasish.utils:get_file"},
    "kerasish.utils.layer_utils": {"count_params": "kerasish.models.summary_utils:count_params",
                                   "print_summary": "kerasish.models.summary_utils:print_summary",
                                   "get_source_inputs": "kerasish.utils:get_source_inputs"},
    "kerasish.utils.vis_utils": {"plot_model": "kerasish.utils:plot_model",
                                 "model_to_dot": "kerasish.utils:model_to_dot"},
    "kerasish.engine": {"Layer": "kerasish:Layer", "InputSpec": "kerasish:InputSpec", "Input": "kerasish:Input",
                        "InputLayer": "kerasish.layers:InputLayer", "Model": "kerasish:Model",
                        "get_source_inputs": "kerasish.utils:get_source_inputs"},
    "kerasish.engine.topology": {"Layer": "kerasish:Layer", "InputSpec": "kerasish:InputSpec",
                                 "Input": "kerasish:Input", "InputLayer": "kerasish.layers:InputLayer",
                                 "get_source_inputs": "kerasish.utils:get_source_inputs"},
    "kerasish.engine.base_layer": {"Layer": "kerasish:Layer", "InputSpec": "kerasish:InputSpec"},
    "kerasish.engine.input_layer": {"Input": "kerasish:Input", "InputLayer": "kerasish.layers:InputLayer"},
    "kerasish.engine.training": {"Model": "kerasish:Model"},
    "kerasish.engine.sequential": {"Sequential": "kerasish:Sequential"},
    "kerasish.engine.functional": {"Functional": "kerasish.models.functional:Functional"},
    "kerasish.engine.network": {"get_source_inputs": "kerasish.utils:get_source_inputs"},
    "kerasish.engine.saving": {n: f"kerasish.models:{n}" for n in ("save_model", "load_model", "model_from_config",
                                                                   "model_from_json", "model_from_yaml")},
    "kerasish.objectives": {"mse": "kerasish.losses:mse", "categorical_crossentropy":
                            "kerasish.losses:categorical_crossentropy", "Loss": "kerasish.losses:Loss"},
    "kerasish.backend.tensorflow_backend": {"mean": "kerasish.backend:mean", "int_shape": "kerasish.backend:int_shape",
                                            "epsilon": "kerasish.backend:epsilon"},
}

REMOVED = {  # (module, name) -> a word the error must say (where to go instead)
    ("kerasish.layers.recurrent", "Recurrent"): "keras.layers.RNN",
    ("kerasish.layers.merge", "Merge"): "Concatenate",
    ("kerasish.layers.merge", "merge"): "concatenate",
    ("kerasish.layers.advanced_activations", "ThresholdedReLU"): "ReLU(threshold=theta)",
    ("kerasish.layers.local", "LocallyConnected1D"): "Conv1D",
    ("kerasish.layers.local", "LocallyConnected2D"): "Conv2D",
    ("kerasish.layers.cudnn_recurrent", "CuDNNLSTM"): "keras.layers.LSTM",
    ("kerasish.layers.cudnn_recurrent", "CuDNNGRU"): "keras.layers.GRU",
    ("kerasish.layers.convolutional", "AtrousConvolution2D"): "Conv2D(dilation_rate=",
    ("kerasish.layers.convolutional", "AtrousConv1D"): "Conv1D(dilation_rate=",
    ("kerasish.layers.convolutional_recurrent", "ConvLSTM2DCell"): "keras.layers.ConvLSTM2D",
    ("kerasish.utils.generic_utils", "has_arg"): "inspect.signature",
    ("kerasish.utils.generic_utils", "to_list"): "isinstance(x, list)",
    ("kerasish.utils.generic_utils", "func_dump"): "Lambda",
    ("kerasish.utils.data_utils", "GeneratorEnqueuer"): "PyDataset",
    ("kerasish.utils.data_utils", "OrderedEnqueuer"): "PyDataset",
    ("kerasish.utils.io_utils", "HDF5Matrix"): "h5py",
    ("kerasish.utils.layer_utils", "convert_all_kernels_in_model"): "no conversion",
    ("kerasish.utils.conv_utils", "convert_kernel"): "np.flip",
    ("kerasish.engine.topology", "Network"): "keras.Model",
    ("kerasish.engine.topology", "Container"): "keras.Model",
    ("kerasish.engine.topology", "Node"): "_inbound_nodes",
    ("kerasish.engine.topology", "load_weights_from_hdf5_group"): "model.load_weights",
    ("kerasish.engine.network", "Network"): "keras.Model",
    ("kerasish.engine.saving", "preprocess_weights_for_loading"): "model.load_weights",
    ("kerasish.backend", "get_session"): "set_per_process_memory_fraction",
    ("kerasish.backend", "set_session"): "set_per_process_memory_fraction",
    ("kerasish.backend.tensorflow_backend", "set_session"): "set_per_process_memory_fraction",
}


def _resolve(target):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("module", sorted(LAYER_MODULES))
def test_keras2_layer_modules_hold_the_keras_layers(module):
    mod = importlib.import_module(f"kerasish.layers.{module}")
    for name in LAYER_MODULES[module]:
        assert getattr(mod, name) is getattr(keras.layers, name), (module, name)
        exec(f"from kerasish.layers.{module} import {name}", {})  # the spelling programs use
        assert name in dir(mod)
    for (alias_module, alias), target in LAYER_ALIASES.items():
        if alias_module == module:
            assert getattr(mod, alias) is getattr(keras.layers, target)
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchLayer'"):
        mod.NoSuchLayer  # noqa: B018
    # `import keras` then `keras.layers.<module>.X`, without importing the module first
    assert getattr(getattr(keras.layers, module), LAYER_MODULES[module][0]) is getattr(keras.layers,
                                                                                      LAYER_MODULES[module][0])


@pytest.mark.parametrize("module", sorted(OTHER_MODULES))
def test_keras2_modules_hold_the_kerasish_objects(module):
    mod = importlib.import_module(module)
    for name, target in OTHER_MODULES[module].items():
        assert getattr(mod, name) is _resolve(target), (module, name)
        exec(f"from {module} import {name}", {})


@pytest.mark.parametrize("module,name", sorted(REMOVED), ids=lambda v: v)
def test_removed_names_say_what_to_use_instead(module, name):
    keras2_path = "keras" + module[len("kerasish"):]
    with pytest.raises(ImportError, match=f"`{keras2_path}.{name}` is a Keras 2 name") as info:
        exec(f"from {module} import {name}", {})  # the message survives `from ... import`
    assert REMOVED[module, name] in str(info.value)
    mod = importlib.import_module(module)
    with pytest.raises(AttributeError, match="no kerasish"):  # attribute access: the same words
        getattr(mod, name)
    assert not hasattr(mod, name) and name not in dir(mod)


@pytest.mark.parametrize("module,name", [("kerasish.layers.experimental", "SyncBatchNormalization"),
                                         ("kerasish.layers.experimental.preprocessing", "PreprocessingLayer")])
def test_tf_keras_experimental_removed_names_keep_their_message_in_from_imports(module, name):
    """`from tensorflow.keras.layers.experimental import SyncBatchNormalization`: the message saying what to
    use survives the `from ... import` (Python used to replace it with "cannot import name")."""
    with pytest.raises(ImportError, match="is a tf.keras 2"):
        exec(f"from {module} import {name}", {})
    with pytest.raises(AttributeError, match="is a tf.keras 2"):
        getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("module,word", [("kerasish.utils.multi_gpu_utils", "DistributedDataParallel"),
                                         ("kerasish.wrappers.scikit_learn", "SKLearnClassifier")])
def test_removed_modules_raise_on_import(module, word):
    with pytest.raises(ImportError, match=word):
        importlib.import_module(module)


def test_submodules_reachable_as_attributes_after_import_keras():
    """Keras 2's `keras/__init__.py` imported these, so `keras.utils.np_utils.to_categorical(y)` and
    `keras.engine.Layer` worked after a bare `import keras`."""
    assert keras.utils.np_utils.to_categorical is importlib.import_module("kerasish.utils.np_utils").to_categorical
    assert keras.utils.generic_utils.Progbar is keras.utils.Progbar
    assert keras.engine.Layer is keras.Layer
    assert keras.engine.topology.Layer is keras.Layer
    assert keras.objectives.mean_squared_error is keras.losses.mean_squared_error
    assert keras.layers.merge.concatenate is keras.layers.concatenate
    with pytest.raises(AttributeError, match="has no attribute 'no_such_utils'"):
        keras.utils.no_such_utils  # noqa: B018


def test_np_utils_to_categorical_is_keras2s_float32():
    """Keras 2's `np_utils.to_categorical(y, num_classes, dtype="float32")` against `np.eye` (Keras 3's
    `keras.utils.to_categorical` has no dtype and gives float64 for arrays)."""
    from kerasish.utils.np_utils import to_categorical

    y = np.array([[2], [0], [1], [2]])
    got = to_categorical(y, 4)
    assert got.dtype == np.float32 and got.shape == (4, 4)
    np.testing.assert_array_equal(got, np.eye(4, dtype=np.float32)[y[:, 0]])
    got = to_categorical(np.array([[0, 1], [2, 0]]), dtype="int32")  # 2-D labels keep their shape
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.eye(3, dtype=np.int32)[np.array([[0, 1], [2, 0]])])
    t = to_categorical(torch.tensor([1, 0]), 2, dtype="float16")
    assert t.dtype == torch.float16
    torch.testing.assert_close(t, torch.eye(2, dtype=torch.float16)[[1, 0]])


def test_conv_utils_match_the_convolutions_they_describe():
    """`conv_utils.conv_output_length` against the lengths kerasish's Conv1D / MaxPooling1D actually give,
    and `conv_input_length` inverting it; `normalize_*` as Keras 2 custom layers call them."""
    from kerasish.utils import conv_utils

    x = torch.zeros(1, 17, 2)
    for padding in ("valid", "same", "causal"):
        for kernel, stride, dilation in [(3, 1, 1), (4, 2, 1), (3, 1, 2), (5, 3, 1)]:
            if stride > 1 and dilation > 1:
                continue
            conv = keras.layers.Conv1D(1, kernel, strides=stride, padding=padding, dilation_rate=dilation)
            want = conv(x).shape[1]
            assert conv_utils.conv_output_length(17, kernel, padding, stride, dilation) == want, (padding, kernel)
    for padding in ("valid", "same"):
        want = keras.layers.MaxPooling1D(3, strides=2, padding=padding)(x).shape[1]
        assert conv_utils.conv_output_length(17, 3, padding, 2) == want
    assert conv_utils.conv_output_length(None, 3, "valid", 1) is None
    assert conv_utils.conv_output_length(5, 3, "full", 1) == 7
    for padding in ("valid", "same", "full"):
        out = conv_utils.conv_output_length(9, 3, padding, 1)
        assert conv_utils.conv_input_length(out, 3, padding, 1) == 9
    assert conv_utils.normalize_tuple(3, 2, "kernel_size") == (3, 3)
    assert conv_utils.normalize_tuple([1, 2], 2, "strides") == (1, 2)
    with pytest.raises(ValueError, match="`kernel_size` argument must be a tuple of 2 integers. Received: 3.5"):
        conv_utils.normalize_tuple(3.5, 2, "kernel_size")
    with pytest.raises(ValueError, match="Received: \\(1, 2, 3\\)"):
        conv_utils.normalize_tuple((1, 2, 3), 2, "strides")
    assert conv_utils.normalize_padding("SAME") == "same"
    with pytest.raises(ValueError, match="`padding` argument must be one of"):
        conv_utils.normalize_padding("reflect")
    assert conv_utils.normalize_data_format(None) == keras.backend.image_data_format()
    assert conv_utils.normalize_data_format("Channels_First") == "channels_first"
    with pytest.raises(ValueError, match="`data_format` argument"):
        conv_utils.normalize_data_format("NHWC")


KERAS2_PROGRAM = '''
import numpy as np
import kerasish as keras
from kerasish.models import Sequential, Model, load_model
from kerasish.layers.core import Dense, Dropout, Activation, Flatten
from kerasish.layers.convolutional import Conv2D, MaxPooling2D
from kerasish.layers.recurrent import LSTM
from kerasish.layers.embeddings import Embedding
from kerasish.layers.normalization import BatchNormalization
from kerasish.layers.merge import concatenate
from kerasish.layers import Input
from kerasish.utils.np_utils import to_categorical
from kerasish.engine.topology import Layer
from kerasish import backend as K


class Scale(Layer):  # the Keras 2.0 custom-layer tutorial's shape
    def __init__(self, **kwargs):
        super(Scale, self).__init__(**kwargs)

    def build(self, input_shape):
        self.w = self.add_weight(name="w", shape=(int(input_shape[-1]),), initializer="ones", trainable=True)
        super(Scale, self).build(input_shape)

    def call(self, x):
        return x * self.w - K.mean(x, axis=-1, keepdims=True) * K.epsilon()

    def compute_output_shape(self, input_shape):
        return input_shape


K.clear_session()
K.set_image_data_format("channels_last")
image = Input(shape=(6, 6, 1))
h = Conv2D(2, (3, 3), padding="same")(image)
h = BatchNormalization()(h)
h = Activation("relu")(MaxPooling2D((2, 2))(h))
h = Dropout(0.0)(Flatten()(h))
words = Input(shape=(4,))
s = LSTM(3)(Embedding(10, 2)(words))
out = Dense(3, activation="softmax")(Scale()(concatenate([h, s])))
model = Model([image, words], out)
model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
rng = np.random.RandomState(0)
x = [rng.rand(8, 6, 6, 1).astype("float32"), rng.randint(0, 10, (8, 4))]
y = to_categorical(rng.randint(0, 3, 8), 3)
history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
assert K.int_shape(model.output) == (None, 3)
model.save(PATH)
reloaded = load_model(PATH, custom_objects={"Scale": Scale})
'''


def test_a_multibackend_keras2_program_runs_with_its_import_lines(tmp_path):
    """A Keras 2.0-2.3 style program using only the old module paths: builds, trains, saves to `.h5`, and
    reloads to the same predictions."""
    scope = {"PATH": str(tmp_path / "m.h5")}
    exec(compile(KERAS2_PROGRAM, "keras2_program", "exec"), scope)
    x = scope["x"]
    np.testing.assert_allclose(np.asarray(scope["reloaded"].predict(x, verbose=0)),
                               np.asarray(scope["model"].predict(x, verbose=0)), rtol=1e-6, atol=1e-7)
    assert np.isfinite(scope["history"].history["loss"][0])


def test_model_from_config_reads_tf_keras_configs():
    """tf.keras 2's `keras.models.model_from_config` (also `keras.engine.saving`'s): the config dict of a
    tf.keras 2.21 `to_json()` (round 5's fixture) builds the model `model_from_json` builds; a list is
    refused with tf-keras 2.21's TypeError word for word."""
    import json
    import os

    from kerasish.models import model_from_config, model_from_json

    path = os.path.join(os.path.dirname(__file__), "fixtures", "keras2_programs_5", "json_configs_seq.json")
    with open(path) as f:
        text = f.read()
    a, b = model_from_config(json.loads(text)), model_from_json(text)
    assert a.get_config() == b.get_config()
    b.set_weights(a.get_weights())
    x = np.random.RandomState(0).randn(3, 8, 3).astype("float32")
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))
    with pytest.raises(TypeError) as err:
        model_from_config([1])
    assert str(err.value) == ("`model_from_config` expects a dictionary, not a list. Received: config=[1]. "
                              "Did you meant to use `Sequential.from_config(config)`?")
