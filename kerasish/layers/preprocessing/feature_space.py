"""`keras.utils.FeatureSpace`: one object that preprocesses, crosses and
encodes the columns of structured data (Keras 3's class, without tf.data).

Keras runs FeatureSpace on TensorFlow whatever the backend; kerasish runs it
on its own preprocessing layers: strings stay NumPy object arrays on the
Python side, numbers become torch tensors. `adapt` takes what a torch user
has instead of a `tf.data.Dataset`: a dict of arrays/lists (Keras also takes
this), a list of dict rows, or a torch `Dataset`/`DataLoader` (or any
iterable) yielding dicts of rows or of batches.

The `.keras` layout (config, `preprocessors/...` vocabularies and
Normalization statistics) and the helper class names (`Feature`, `Cross`,
`TFDIdentity`, `TFDConcat`) are Keras's, so files move both ways.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers.layer import Layer
from kerasish.layers.preprocessing.host_inputs import to_host_array
from kerasish.saving.serialization_lib import serialize_keras_object
from kerasish.utils import naming
from kerasish.utils import tree

_MODULE = "keras.src.layers.preprocessing.feature_space"  # where Keras defines the helper classes
FEATURE_TYPES = ("float", "float_normalized", "float_rescaled", "float_discretized", "integer_categorical",
                 "string_categorical", "integer_hashed", "string_hashed")


def _layers():
    import kerasish.layers as layers

    return layers


def _deserialize(config):
    """A Feature, Cross or preprocessor layer (built from its
    `build_config`) from its Keras 3 config."""
    from kerasish.models.functional_config import deserialize_layer

    return deserialize_layer(config)


class Cross:
    """A feature cross: `feature_names` hashed together into `crossing_dim`
    bins, output "one_hot" (default) or "int"."""

    _keras_module = _MODULE

    def __init__(self, feature_names, crossing_dim, output_mode="one_hot"):
        if output_mode not in {"int", "one_hot"}:
            raise ValueError(
                "Invalid value for argument `output_mode`. Expected one of {'int', 'one_hot'}. "
                f"Received: output_mode={output_mode}"
            )
        self.feature_names = tuple(feature_names)
        self.crossing_dim = crossing_dim
        self.output_mode = output_mode

    @property
    def name(self) -> str:
        return "_X_".join(self.feature_names)

    def get_config(self) -> dict:
        return {"feature_names": self.feature_names, "crossing_dim": self.crossing_dim,
                "output_mode": self.output_mode}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Feature:
    """One input column: its input `dtype`, the `preprocessor` layer and the
    `output_mode` ("int", "one_hot" or "float")."""

    _keras_module = _MODULE

    def __init__(self, dtype, preprocessor, output_mode):
        if output_mode not in {"int", "one_hot", "float"}:
            raise ValueError(
                "Invalid value for argument `output_mode`. Expected one of {'int', 'one_hot', 'float'}. "
                f"Received: output_mode={output_mode}"
            )
        self.dtype = dtype
        if isinstance(preprocessor, dict):
            preprocessor = _deserialize(preprocessor)
        self.preprocessor = preprocessor
        self.output_mode = output_mode

    def get_config(self) -> dict:
        from kerasish.saving.saving_lib import serialize_model

        return {"dtype": self.dtype, "preprocessor": serialize_model(self.preprocessor),
                "output_mode": self.output_mode}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _data_layer_config(layer) -> dict:
    """The config Keras's `DataLayer`s write (no `dynamic`/`autocast`/
    `activity_regularizer`: Keras's TFDIdentity/TFDConcat refuse them)."""
    config = Layer.get_config(layer)
    return {k: config[k] for k in ("name", "trainable", "dtype") if k in config}


class TFDIdentity(Layer):
    """The preprocessor of a "float" feature: the input, cast to float32."""

    _keras_module = _MODULE

    def call(self, x):
        return x

    def get_config(self):
        return _data_layer_config(self)


class TFDConcat(Layer):
    """Concatenates the encoded features along `axis`."""

    _keras_module = _MODULE

    def __init__(self, axis, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, xs):
        dtype = functools.reduce(torch.promote_types, [x.dtype for x in xs])
        return torch.cat([x.to(dtype) for x in xs], dim=self.axis)

    def get_config(self):
        return {**_data_layer_config(self), "axis": self.axis}


class FeatureSpace(Layer):
    """Preprocesses, crosses and encodes structured data in one object
    (`keras.utils.FeatureSpace`).

    Args:
        features: Dict `{name: feature}`; a feature is one of the strings
            "float", "float_normalized", "float_rescaled",
            "float_discretized", "integer_categorical",
            "string_categorical", "integer_hashed", "string_hashed", or a
            `Feature` made by the class methods (`FeatureSpace.float_rescaled(
            scale=...)`, `FeatureSpace.string_categorical(max_tokens=...)`,
            ...).
        output_mode: "concat" (one float tensor, features in sorted name
            order, crosses last) or "dict" (one entry per feature and
            cross). Defaults to "concat".
        crosses: List of tuples of feature names (or `FeatureSpace.cross`
            objects) to cross with `HashedCrossing`.
        crossing_dim: Bins of the crosses given as tuples. Defaults to 32.
        hashing_dim: Bins of "*_hashed" features given by name. Defaults to 32.
        num_discretization_bins: Bins of "float_discretized" features given
            by name. Defaults to 32.
        name: Layer name.

    `adapt(data)` learns vocabularies, statistics and bin boundaries;
    calling the space on a dict of columns (NumPy arrays, lists, torch
    tensors, scalars) returns the encoded torch tensor(s). String columns
    stay NumPy arrays on the host; Keras's needs TensorFlow, kerasish's does
    not take `tf.data` datasets.

    Example:
        >>> fs = keras.utils.FeatureSpace(
        ...     {"age": "float_normalized", "city": "string_categorical"})
        >>> fs.adapt({"age": np.array([20., 40.]), "city": np.array(["a", "b"])})
        >>> fs({"age": np.array([30.]), "city": np.array(["b"])}).shape
        torch.Size([1, 4])
    """

    _keras_module = "keras.utils"

    # ------------------------------------------------- feature builders
    @classmethod
    def cross(cls, feature_names, crossing_dim, output_mode="one_hot"):
        return Cross(feature_names, crossing_dim, output_mode=output_mode)

    @classmethod
    def feature(cls, dtype, preprocessor, output_mode):
        return Feature(dtype, preprocessor, output_mode)

    @classmethod
    def float(cls, name=None):
        name = name or naming.auto_name("float")
        return Feature("float32", TFDIdentity(dtype="float32", name=f"{name}_preprocessor"), "float")

    @classmethod
    def float_rescaled(cls, scale=1.0, offset=0.0, name=None):
        name = name or naming.auto_name("float_rescaled")
        layer = _layers().Rescaling(scale=scale, offset=offset, name=f"{name}_preprocessor")
        return Feature("float32", layer, "float")

    @classmethod
    def float_normalized(cls, name=None):
        name = name or naming.auto_name("float_normalized")
        return Feature("float32", _layers().Normalization(axis=-1, name=f"{name}_preprocessor"), "float")

    @classmethod
    def float_discretized(cls, num_bins, bin_boundaries=None, output_mode="one_hot", name=None):
        name = name or naming.auto_name("float_discretized")
        layer = _layers().Discretization(num_bins=num_bins, bin_boundaries=bin_boundaries,
                                         name=f"{name}_preprocessor")
        return Feature("float32", layer, output_mode)

    @classmethod
    def integer_categorical(cls, max_tokens=None, num_oov_indices=1, output_mode="one_hot", name=None):
        name = name or naming.auto_name("integer_categorical")
        layer = _layers().IntegerLookup(name=f"{name}_preprocessor", max_tokens=max_tokens,
                                        num_oov_indices=num_oov_indices)
        return Feature("int32", layer, output_mode)

    @classmethod
    def string_categorical(cls, max_tokens=None, num_oov_indices=1, output_mode="one_hot", name=None):
        name = name or naming.auto_name("string_categorical")
        layer = _layers().StringLookup(name=f"{name}_preprocessor", max_tokens=max_tokens,
                                       num_oov_indices=num_oov_indices)
        return Feature("string", layer, output_mode)

    @classmethod
    def string_hashed(cls, num_bins, output_mode="one_hot", name=None):
        name = name or naming.auto_name("string_hashed")
        return Feature("string", _layers().Hashing(name=f"{name}_preprocessor", num_bins=num_bins), output_mode)

    @classmethod
    def integer_hashed(cls, num_bins, output_mode="one_hot", name=None):
        name = name or naming.auto_name("integer_hashed")
        return Feature("int32", _layers().Hashing(name=f"{name}_preprocessor", num_bins=num_bins), output_mode)

    # ------------------------------------------------------------- init
    def __init__(self, features, output_mode="concat", crosses=None, crossing_dim=32, hashing_dim=32,
                 num_discretization_bins=32, name=None):
        super().__init__(name=name)
        if not features:
            raise ValueError("The `features` argument cannot be None or empty.")
        if not isinstance(features, dict):
            raise TypeError(
                f"FeatureSpace: `features` must be a dict {{name: feature}}. Received: features={features!r}"
            )
        self.crossing_dim = crossing_dim
        self.hashing_dim = hashing_dim
        self.num_discretization_bins = num_discretization_bins
        self.features = {key: self._standardize_feature(key, value) for key, value in features.items()}
        self.crosses = []
        for cross in crosses or ():
            if isinstance(cross, dict):
                cross = _deserialize(cross)
            if not isinstance(cross, Cross):
                if not crossing_dim:
                    raise ValueError(
                        "When specifying `crosses`, the argument `crossing_dim` (dimensionality of the crossing "
                        "space) should be specified as well."
                    )
                unknown = [key for key in cross if key not in features]
                if unknown:
                    raise ValueError(
                        "All features referenced in the `crosses` argument should be present in the `features` "
                        f"dict. Received unknown features: {cross}"
                    )
                cross = Cross(cross, crossing_dim=crossing_dim)
            self.crosses.append(cross)
        self.crosses_by_name = {cross.name: cross for cross in self.crosses}
        if output_mode not in {"dict", "concat"}:
            raise ValueError(
                f"Invalid value for argument `output_mode`. Expected one of {{'dict', 'concat'}}. "
                f"Received: output_mode={output_mode}"
            )
        self.output_mode = output_mode
        layers = _layers()
        self.inputs = {key: layers.Input(shape=(1,), dtype=f.dtype, name=key) for key, f in self.features.items()}
        self.preprocessors = {key: f.preprocessor for key, f in self.features.items()}
        self.encoded_features = None
        self.crossers = {c.name: layers.HashedCrossing(c.crossing_dim, name=c.name) for c in self.crosses}
        self.one_hot_encoders = {}
        self._is_adapted = False
        self.concat = None
        self._preprocessed_names = None
        self._crossed_names = None
        self._sublayers_built = False

    def _standardize_feature(self, key, feature):
        if isinstance(feature, Feature):
            return feature
        if isinstance(feature, dict):
            return _deserialize(feature)
        makers = {
            "float": lambda: self.float(name=key),
            "float_normalized": lambda: self.float_normalized(name=key),
            "float_rescaled": lambda: self.float_rescaled(name=key),
            "float_discretized": lambda: self.float_discretized(name=key, num_bins=self.num_discretization_bins),
            "integer_categorical": lambda: self.integer_categorical(name=key),
            "string_categorical": lambda: self.string_categorical(name=key),
            "integer_hashed": lambda: self.integer_hashed(self.hashing_dim, name=key),
            "string_hashed": lambda: self.string_hashed(self.hashing_dim, name=key),
        }
        if not isinstance(feature, str) or feature not in makers:
            raise ValueError(f"Invalid feature type: {feature}")
        return makers[feature]()

    # ------------------------------------------------------------ adapt
    def _adaptable(self) -> list:
        layers = _layers()
        out = []
        for key in self.features:
            pre = self.preprocessors[key]
            if isinstance(pre, layers.Normalization) and pre.input_mean is not None:
                continue  # preset mean/variance
            if isinstance(pre, layers.TextVectorization) and pre._lookup_layer._has_input_vocabulary:
                continue
            if hasattr(pre, "adapt"):
                out.append(key)
        return out

    def adapt(self, dataset):
        """Adapts every adaptable preprocessor (lookups, Normalization,
        Discretization) to its column of `dataset`.

        Args:
            dataset: A dict `{name: array or list}` (one row per element), a
                list of dict rows, or a torch `Dataset` / `DataLoader` (any
                iterable) yielding dicts of single rows or of batches.
        """
        columns = _collect_columns(dataset, self._adaptable())
        for key in self._adaptable():
            if key not in columns:
                raise ValueError(f"FeatureSpace.adapt(): the data has no column '{key}'. Received columns: "
                                 f"{sorted(columns)}")
            values = columns[key]
            if values.ndim in (0, 1):
                values = values.reshape(-1, 1)  # as Keras: reduce on axis -1 of (rows, 1)
            self.preprocessors[key].adapt(values)
        self._is_adapted = True
        self.get_encoded_features()  # finishes building
        self.built = True
        self._sublayers_built = True

    # --------------------------------------------------- symbolic graph
    def get_inputs(self):
        """The `keras.Input` of each feature, `{name: KerasTensor}`."""
        self._check_if_built()
        return self.inputs

    def get_encoded_features(self):
        """The encoded features as KerasTensors (a tensor in "concat" mode,
        a dict in "dict" mode), to build a model on."""
        self._check_if_adapted()
        if self.encoded_features is None:
            pre = self._preprocess_features(self.inputs)
            self.encoded_features = self._merge_features(pre, self._cross_features(pre))
        return self.encoded_features

    def _preprocess_features(self, features):
        return {key: self.preprocessors[key](features[key]) for key in features}

    def _cross_features(self, features):
        return {c.name: self.crossers[c.name]([features[n] for n in c.feature_names]) for c in self.crosses}

    def _merge_features(self, preprocessed, crossed):
        if not self._preprocessed_names:
            self._preprocessed_names = sorted(preprocessed)
            self._crossed_names = sorted(crossed)
        names = self._preprocessed_names + self._crossed_names
        values = [preprocessed[k] for k in self._preprocessed_names] + [crossed[k] for k in self._crossed_names]
        if self._sublayers_built:
            encoded = {}
            for key, value in zip(names, values):
                encoded[key] = self.one_hot_encoders[key](value) if key in self.one_hot_encoders else value
            return encoded if self.output_mode == "dict" else self.concat(list(encoded.values()))
        specs = [self.features[k] for k in self._preprocessed_names] + [
            self.crosses_by_name[k] for k in self._crossed_names]
        encoded = {}
        for key, value, spec in zip(names, values, specs):
            dtype = tree.flatten(value)[0].dtype if isinstance(value, (list, tuple, dict)) else value.dtype
            dtype = str(dtype).replace("torch.", "")
            if spec.output_mode == "one_hot":
                value = self._one_hot(key, value, dtype)
            if self.output_mode == "concat":
                dtype = str(value.dtype).replace("torch.", "")
                if dtype.startswith(("int", "uint")) or dtype == "string":
                    raise ValueError(
                        f"Cannot concatenate features because feature '{key}' has not been encoded (it has dtype "
                        f"{dtype}). Consider using `output_mode='dict'`."
                    )
            encoded[key] = value
        if self.output_mode == "dict":
            return encoded
        self.concat = TFDConcat(axis=-1)
        return self.concat(list(encoded.values()))

    def _one_hot(self, key, value, dtype):
        layers = _layers()
        pre = self.preprocessors[key] if key in self.preprocessors else self.crossers[key]
        if not dtype.startswith(("int", "uint")):
            raise ValueError(
                f"Feature '{key}' has `output_mode='one_hot'`. Thus its preprocessor should return an integer "
                f"dtype. Instead it returns a {dtype} dtype."
            )
        if isinstance(pre, (layers.IntegerLookup, layers.StringLookup)):
            cardinality = pre.vocabulary_size()
        elif isinstance(pre, (layers.CategoryEncoding,)):
            cardinality = pre.num_tokens
        elif isinstance(pre, (layers.Discretization, layers.HashedCrossing, layers.Hashing)):
            cardinality = pre.num_bins
        else:
            raise ValueError(
                f"Feature '{key}' has `output_mode='one_hot'`. However it isn't a standard feature and the "
                "dimensionality of its output space is not known, thus it cannot be one-hot encoded. Try using "
                "`output_mode='int'`."
            )
        encoder = layers.CategoryEncoding(num_tokens=cardinality, output_mode="multi_hot")
        self.one_hot_encoders[key] = encoder
        return encoder(value)

    def _check_if_adapted(self):
        if not self._is_adapted:
            if self._adaptable():
                raise ValueError(
                    "You need to call `.adapt(dataset)` on the FeatureSpace before you can start using it."
                )
            self._is_adapted = True

    def _check_if_built(self):
        if not self._sublayers_built:
            self._check_if_adapted()
            self.get_encoded_features()
            self._sublayers_built = True

    # ------------------------------------------------------------- call
    def __call__(self, data):
        self._check_if_built()
        if not isinstance(data, dict):
            raise ValueError(f"A FeatureSpace can only be called with a dict. Received: data={data} "
                             f"(of type {type(data)}")
        unknown = [k for k in data if k not in self.features]
        if unknown:
            raise ValueError(f"FeatureSpace '{self.name}' has no feature(s) {unknown}. Expected the keys "
                             f"{sorted(self.features)}.")
        missing = [k for k in self.features if k not in data]
        if missing:
            raise ValueError(f"FeatureSpace '{self.name}' was called without the feature(s) {missing}. Expected "
                             f"the keys {sorted(self.features)}.")
        device = self.__dict__.get("_device_hint")  # numeric columns go where the space was moved
        data = {key: _column(value, self.features[key].dtype, device) for key, value in data.items()}
        rebatched = False
        for key, x in data.items():
            if x.ndim == 0:
                data[key] = x.reshape(1, 1)
                rebatched = True
            elif x.ndim == 1:
                data[key] = x.reshape(-1, 1)
        pre = self._preprocess_features(data)
        merged = self._merge_features(pre, self._cross_features(pre))
        if rebatched:
            if self.output_mode == "concat":
                merged = merged.squeeze(0)
            else:
                merged = {k: v.squeeze(0) if v.ndim == 2 and v.shape[0] == 1 else v for k, v in merged.items()}
        return merged

    def forward(self, data):
        return self(data)

    # ----------------------------------------------------------- saving
    def get_config(self):
        return {
            "features": serialize_keras_object(self.features),
            "output_mode": self.output_mode,
            "crosses": serialize_keras_object(self.crosses),
            "crossing_dim": self.crossing_dim,
            "hashing_dim": self.hashing_dim,
            "num_discretization_bins": self.num_discretization_bins,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        return {key: f.preprocessor.get_build_config() for key, f in self.features.items()}

    def build_from_config(self, config):
        for key in config:
            pre = self.features[key].preprocessor
            if not pre.built and config[key]:
                pre.build_from_config(config[key])
        self._is_adapted = True

    def save(self, filepath):
        """Saves the FeatureSpace to a `.keras` file; reload it with
        `keras.models.load_model()`."""
        from kerasish.saving.saving_lib import save_model

        save_model(self, filepath)

    def save_own_variables(self, store):
        return

    def load_own_variables(self, store):
        return


def _column(value, dtype, device=None):
    """One column for a call: strings as a NumPy object array, numbers as a
    torch tensor (float features as float32; NumPy data on `device`)."""
    if isinstance(value, KerasTensor):
        return value
    if isinstance(value, torch.Tensor):
        return value.float() if dtype == "float32" and not value.is_floating_point() else value
    arr = to_host_array(value)
    if arr.dtype == object:
        return arr
    if dtype == "float32" and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t if device is None else t.to(device)


def _collect_columns(dataset, keys) -> dict:
    """`{name: NumPy array of all rows}` for `keys`, from a dict of columns,
    a list of dict rows or an iterable of dict rows/batches."""
    if isinstance(dataset, dict):
        return {k: _as_array(dataset[k]) for k in keys if k in dataset}
    if isinstance(dataset, (str, bytes)) or not hasattr(dataset, "__iter__") and not hasattr(dataset, "__getitem__"):
        raise ValueError(
            "`adapt()` can only be called on a dict of arrays/lists, a list of dict rows, or a torch "
            f"Dataset/DataLoader (an iterable) yielding dicts. Received instead: {dataset} (of type {type(dataset)})"
        )
    parts = {k: [] for k in keys}
    if (isinstance(dataset, torch.utils.data.Dataset) and not isinstance(dataset, torch.utils.data.IterableDataset)
            and hasattr(dataset, "__len__")):
        dataset = [dataset[i] for i in range(len(dataset))]  # a map-style Dataset: its rows by index
    for element in dataset:
        if isinstance(element, (tuple, list)) and element and isinstance(element[0], dict):
            element = element[0]  # (features, label) pairs
        if not isinstance(element, dict):
            raise ValueError(
                "`adapt()` expects the dataset to yield dicts {feature name: value(s)}. Received an element of "
                f"type {type(element).__name__}: {element!r}"
            )
        for k in keys:
            if k in element:
                parts[k].append(_as_array(element[k]))
    out = {}
    for k, chunks in parts.items():
        if not chunks:
            continue
        if all(c.ndim == 0 for c in chunks):
            out[k] = np.stack(chunks)
        else:
            out[k] = np.concatenate([c.reshape(-1, *c.shape[1:]) if c.ndim else c.reshape(1) for c in chunks])
    return out


def _as_array(value) -> np.ndarray:
    return to_host_array(value)
