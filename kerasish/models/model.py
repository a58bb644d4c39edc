"""`keras.Model`: a `Layer` with training (`Trainer`), summaries and configs.

`Model(inputs, outputs)` returns a `Functional` model (as in Keras, `__new__`
dispatches on the arguments); subclassing `Model` with `__init__` / `call`
gives a subclassed model; a subclass whose `__init__` calls
`super().__init__(inputs, outputs)` becomes a functional subclass.
"""

from __future__ import annotations

import json

import torch

from kerasish.layers import call_context as ctx
from kerasish.layers.layer import Layer
from kerasish.trainers.trainer import Trainer
from kerasish.utils import tree


def functional_init_arguments(args, kwargs) -> bool:
    return (
        len(args) == 2
        or (len(args) == 1 and "outputs" in kwargs)
        or ("inputs" in kwargs and "outputs" in kwargs)
    )


def inject_functional_model_class(cls):
    """Puts `Functional` in place of `Model` among the bases of `cls` (a
    `Model` subclass whose `__init__` builds a graph), as Keras does."""
    from kerasish.models.functional import Functional

    if cls is Model:
        return Functional
    if cls is Functional or not issubclass(cls, Model) or issubclass(cls, Functional):
        return cls
    cls.__bases__ = tuple(inject_functional_model_class(base) for base in cls.__bases__)
    # per-class call flags now come from the new bases
    Layer.__dict__["__init_subclass__"].__func__(cls)
    return cls


class Model(Trainer, Layer):
    """A model: layers grouped into an object with training and inference
    features (`keras.Model`).

    Three ways to make one:

    - Functional: `keras.Model(inputs, outputs, name=None)` from
      `keras.Input` tensors (returns a `Functional` model).
    - Subclassing: define layers in `__init__` and the forward pass in
      `call(self, inputs, training=None)`.
    - `keras.Sequential([...])`.

    Models are `torch.nn.Module`s; they start in inference mode like every
    layer (`model.train()` or `fit()` switches to training).

    Example:
        >>> class MyModel(keras.Model):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.dense1 = keras.layers.Dense(32, activation="relu")
        ...         self.dense2 = keras.layers.Dense(5, activation="softmax")
        ...     def call(self, inputs):
        ...         return self.dense2(self.dense1(inputs))
        >>> model = MyModel()
    """

    _builds_outside_compile = True  # its build makes layers: eagerly, under torch.compile too

    def __new__(cls, *args, **kwargs):
        if cls is Model and functional_init_arguments(args, kwargs):
            from kerasish.models.functional import Functional

            return Functional.__new__(Functional, *args, **kwargs)
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args, **kwargs):
        if functional_init_arguments(args, kwargs):
            from kerasish.models.functional import Functional

            if not isinstance(self, Functional):
                inject_functional_model_class(type(self))
            Functional.__init__(self, *args, **kwargs)
        else:
            if args and args[0] is self:
                # `super().__init__(self)` (tensorflow.org's text_generation tutorial): tf.keras 2 ignored
                # positional arguments of a subclassed Model; Keras 3 raises. The model itself is no
                # `trainable` flag: dropped, as tf.keras 2 did (bool(model) could even be False).
                args = args[1:]
            Layer.__init__(self, *args, **kwargs)

    def call(self, *args, **kwargs):
        raise NotImplementedError(f"Model {type(self).__name__} does not have a `call()` method implemented.")

    # ------------------------------------------------------------- building
    def build(self, input_shape=None):
        """Creates the weights of a subclassed model for `input_shape` by
        running `call` once on zeros (unknown dimensions taken as 1)."""
        if input_shape is None:
            return
        dtype = self._compute_torch_dtype

        def zeros(shape):
            return torch.zeros(tuple(1 if s is None else s for s in shape), dtype=dtype, device=self._device_hint)

        def is_shape(s):
            return isinstance(s, tuple) and all(v is None or isinstance(v, int) for v in s)

        def make(s):
            if is_shape(s):
                return zeros(s)
            if isinstance(s, dict):
                return {k: make(v) for k, v in s.items()}
            return [make(v) for v in s]

        x = make(input_shape)
        kwargs = {"training": False} if self._call_has_training else {}
        previous_symbolic = ctx.state().symbolic
        ctx.state().symbolic = True  # no losses or metrics from this dry run
        try:
            with torch.no_grad():
                self.call(x, **kwargs)
        finally:
            ctx.state().symbolic = previous_symbolic

    def _build_on_first_call(self, inputs, call=None):
        if type(self).build is Model.build:
            # the real call is about to create the weights: no dry run
            d = self.__dict__
            self.built = True
            if d["_build_input_shape"] is None:
                d["_build_input_shape"] = tree.map_shapes(inputs)
            return
        Layer._build_on_first_call(self, inputs, call)

    # ----------------------------------------------------------- structure
    @property
    def layers(self) -> list:
        """The model's direct sublayers, in the order they were set."""
        return list(self._flatten_layers(include_self=False, recursive=False))

    @layers.setter
    def layers(self, _):
        raise AttributeError(
            "`Model.layers` attribute is reserved and should not be used. Please use another name."
        )

    def get_layer(self, name=None, index=None):
        """Retrieves a layer by its (unique) `name` or its `index` in `layers`."""
        if index is not None and name is not None:
            raise ValueError(
                f"Provide only a layer name or a layer index. Received: index={index}, name={name}."
            )
        layers = self.layers
        if index is not None:
            if len(layers) <= index:
                raise ValueError(
                    f"Was asked to retrieve layer at index {index} but model only has {len(layers)} layers."
                )
            return layers[index]
        if name is not None:
            for layer in layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in layers]}.")
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    def summary(
        self,
        line_length=None,
        positions=None,
        print_fn=None,
        expand_nested=False,
        show_trainable=False,
        layer_range=None,
    ):
        """Prints Keras's summary table: layers, output shapes, parameter
        counts (and "Connected to" for non-sequential graphs), then the
        total / trainable / non-trainable parameter counts and sizes.

        Args:
            line_length: Total width of the table. Defaults to Keras's width
                (88, or 108 with the "Connected to" column), capped by the
                terminal width.
            positions: Relative or absolute column ends.
            print_fn: Called with the whole summary text. Defaults to `print`.
            expand_nested: Whether to list the layers of nested models.
            show_trainable: Whether to add a "Trainable" column.
            layer_range: `[first_name, last_name]` (regexes) to print a slice.
        """
        from kerasish.models.summary_utils import print_summary

        print_summary(
            self,
            line_length=line_length,
            positions=positions,
            print_fn=print_fn,
            expand_nested=expand_nested,
            show_trainable=show_trainable,
            layer_range=layer_range,
        )

    # ------------------------------------------------------------- losses
    @property
    def losses(self) -> list:
        """Losses of the latest call (sublayers included), the callables
        added with `add_loss`, then weight regularization. Before its first
        call, a functional model lists its symbolic losses as KerasTensors
        (they get values once the model runs)."""
        out = Layer.losses.fget(self)
        d = self.__dict__
        if d.get("_aux") and not d.get("_aux_called"):
            out = [t for kind, t, _ in d["_aux"] if kind == "loss"] + out
        return out

    # ------------------------------------------------------------- config
    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Revives a functional config (`layers`, `input_layers`,
        `output_layers`) as a functional model, anything else as
        `cls(**config)`."""
        from kerasish.models.functional import functional_like_constructor

        is_functional = all(k in config for k in ("name", "layers", "input_layers", "output_layers"))
        if is_functional and (cls is Model or functional_like_constructor(cls) or _is_functional_class(cls)):
            from kerasish.models.functional_config import functional_from_config

            target = cls
            if cls is Model:
                from kerasish.models.functional import Functional

                target = Functional
            return functional_from_config(target, config, custom_objects=custom_objects)
        try:
            return cls(**config)
        except TypeError as e:
            raise TypeError(
                "Unable to revive model from config. When overriding the `get_config()` method, make sure "
                "that the returned config contains all items used as arguments in the constructor to "
                f"{cls}, which is the default behavior. You can override this default behavior by defining "
                "a `from_config(cls, config)` class method to specify how to create an instance of "
                f"{cls.__name__} from its config.\n\nReceived config={config}\n\nError encountered during "
                f"deserialization: {e}"
            ) from e

    def to_json(self, **kwargs) -> str:
        """The model's serialized config as a JSON string."""
        from kerasish.saving import serialize_keras_object

        return json.dumps(serialize_keras_object(self), default=_json_default, **kwargs)

    def to_yaml(self, **kwargs):
        """Removed, as in tf.keras 2.6+ (Keras 3 has no such method): raises tf.keras's RuntimeError,
        which points at `to_json()`."""
        raise RuntimeError(_TO_YAML_REMOVED)

    # ----------------------------------------------------------- state tree
    def get_state_tree(self, value_format="backend_tensor") -> dict:
        """The model's variables as nested dicts keyed by the parts of their
        paths (Keras 3): `{"trainable_variables": {"dense": {"kernel": ...}},
        "non_trainable_variables": ..., "optimizer_variables": {"adam":
        {"iteration": ..., ...}}, "metrics_variables": {"loss": {"total":
        ..., "count": ...}}}`.

        Args:
            value_format: "backend_tensor" (default): torch tensors that share
                the variables' storage (as `variable.value` on Keras's torch
                backend), so later training shows in them; "numpy_array":
                NumPy copies.

        Without an optimizer (not compiled) `"optimizer_variables"` is `{}`
        (Keras 3.15 raises AttributeError).

        Raises:
            ValueError: an unknown `value_format`, or two variables with one
                path.
        """
        from kerasish.models.state_tree import get_state_tree

        return get_state_tree(self, value_format)

    def set_state_tree(self, state_tree) -> None:
        """Assigns the values of a `get_state_tree()`-shaped dict (or part of
        one) to the variables with those paths (Keras 3). As Keras, an
        `"optimizer_variables"` / `"metrics_variables"` entry is skipped when
        the model has no such variables (not compiled).

        Raises:
            ValueError: an unknown top-level key, or (unlike Keras, which skips
                it silently) a path no variable of that kind has; nothing is
                assigned then.
        """
        from kerasish.models.state_tree import set_state_tree

        set_state_tree(self, state_tree)

    # -------------------------------------------------------- quantization
    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """Quantizes every layer that supports it (`Dense`, `EinsumDense`,
        `Embedding`), as Keras's `Model.quantize`.

        Args:
            mode: "int8", "int4" or "float8" (optional when `config` is
                given). GPTQ and AWQ are not implemented in kerasish.
            config: A `keras.quantizers.QuantizationConfig`.
            filters: A regex (or list of them) searched in layer names, or a
                callable `layer -> bool`: only matching layers are quantized.

        Layers without a `quantize` method are skipped with a warning, as
        in Keras. The model must be built.
        """
        from kerasish.models.model_quantization import quantize_model

        quantize_model(self, mode, config, filters, **kwargs)

    def get_quantization_layer_structure(self, mode=None):
        """The topology structure-aware quantization ("gptq") walks:
        `{"pre_block_layers": [...], "sequential_blocks": [...]}`, or None
        (the default; override it, or pass the structure in the config)."""
        del mode
        return None

    # -------------------------------------------------------------- saving
    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Saves the model as a Keras 3 `.keras` archive (see `keras.saving.save_model`)."""
        from kerasish.saving import saving_api

        if _model_parallel(self):  # sharded weights: gathered on every rank, rank 0 writes
            from kerasish.distribution import model_parallel

            return model_parallel.save_on_rank_zero(
                self, lambda: saving_api.save_model(self, filepath, overwrite=overwrite, zipped=zipped, **kwargs))
        return saving_api.save_model(self, filepath, overwrite=overwrite, zipped=zipped, **kwargs)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Exports the model for inference (Keras 3's `Model.export` signature).

        Args:
            filepath: Path of the artifact (`.pt2` for "torch", e.g. `.onnx` for "onnx").
            format: "torch" (a `torch.export` program, `torch.export.load(path).module()`)
                or "onnx" (`torch.onnx.export(dynamo=True)`; needs onnx and onnxscript).
                "tf_saved_model" (Keras's default), "openvino" and "litert" raise a
                ValueError: they need TensorFlow or other toolchains.
            verbose: Print where the artifact went. Defaults to True.
            input_signature: `keras.InputSpec`s or tensors (a list for several inputs);
                defaults to the model's inputs. `None` dims are exported as dynamic.
            **kwargs: "torch": arguments of `torch.export.export` (`strict`,
                `dynamic_shapes`, ...; non-strict by default). "onnx": `opset_version`.

        Example:
            >>> model.export("model.pt2", format="torch")
            >>> program = torch.export.load("model.pt2")
            >>> y = program.module()(x)
        """
        from kerasish.models.model_export import export_model

        return export_model(self, filepath, format=format, verbose=verbose, input_signature=input_signature,
                            **kwargs)

    def save_weights(self, filepath, overwrite=True, max_shard_size=None, **kwargs):
        """Saves the weights: `.weights.h5` (Keras 3 layout), `.h5` (Keras 2) or `.pt`/`.pth` (torch
        state_dict); Keras 2's `save_format=` / `options=` are accepted (see `keras.saving.save_weights`)."""
        from kerasish.saving import saving_api

        if _model_parallel(self):
            from kerasish.distribution import model_parallel

            return model_parallel.save_on_rank_zero(
                self, lambda: saving_api.save_weights(self, filepath, overwrite=overwrite,
                                                      max_shard_size=max_shard_size, **kwargs))
        return saving_api.save_weights(self, filepath, overwrite=overwrite, max_shard_size=max_shard_size, **kwargs)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Loads weights from `.weights.h5`, `.keras` or `.pt`/`.pth` (see `keras.saving.load_weights`)."""
        from kerasish.saving import saving_api

        if _model_parallel(self):  # every rank reads the file; each keeps its shards
            from kerasish.distribution import model_parallel

            with model_parallel.whole_weights(self, write_back=True):
                return saving_api.load_weights(self, filepath, skip_mismatch=skip_mismatch, **kwargs)
        return saving_api.load_weights(self, filepath, skip_mismatch=skip_mismatch, **kwargs)


def _model_parallel(model) -> bool:
    """Whether `keras.distribution.ModelParallel` laid out this model's weights."""
    return bool(model.__dict__.get("_mp_hooks"))


def _is_functional_class(cls) -> bool:
    from kerasish.models.functional import Functional

    return cls is Functional


def _json_default(obj):
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# tf.keras 2.6+'s messages, word for word (YAML configs could run arbitrary code when loaded)
_TO_YAML_REMOVED = ("Method `model.to_yaml()` has been removed due to security risk of arbitrary code execution. "
                    "Please use `model.to_json()` instead.")
_FROM_YAML_REMOVED = ("Method `model_from_yaml()` has been removed due to security risk of arbitrary code "
                      "execution. Please use `Model.to_json()` and `model_from_json()` instead.")


def model_from_yaml(yaml_string, custom_objects=None):
    """Removed, as in tf.keras 2.6+ (Keras 3 has no such function): raises tf.keras's RuntimeError,
    which points at `model_from_json()`."""
    raise RuntimeError(_FROM_YAML_REMOVED)


def model_from_config(config: dict, custom_objects=None):
    """Rebuilds a model from a serialized config dict (`{"class_name": ..., "config": ...}`, Keras 2's or
    Keras 3's), as tf.keras 2's `keras.models.model_from_config` (Keras 3 dropped it); only kerasish
    classes and registered custom objects are instantiated.

    Raises:
        TypeError: `config` is a list (tf.keras's message: a Sequential's old layer list needs
            `Sequential.from_config(config)`).
    """
    if isinstance(config, list):
        raise TypeError("`model_from_config` expects a dictionary, not a list. Received: config="
                        f"{config}. Did you meant to use `Sequential.from_config(config)`?")
    from kerasish.models.functional_config import deserialize_layer

    return deserialize_layer(config, custom_objects=custom_objects)


def model_from_json(json_string: str, custom_objects=None):
    """Rebuilds a model from `model.to_json()` (only kerasish classes and
    registered custom objects are instantiated)."""
    from kerasish.models.functional_config import deserialize_layer

    return deserialize_layer(json.loads(json_string), custom_objects=custom_objects)
