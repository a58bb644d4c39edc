"""`keras.Sequential`: a plain stack of single-input, single-output layers."""

from __future__ import annotations

import numpy as np
import torch

from kerasish.backend import dtypes
from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers.input_layer import InputLayer
from kerasish.layers.input_layer import standardize_shape
from kerasish.layers import layer_moves
from kerasish.layers import tracking
from kerasish.layers import weight_substitution
from kerasish.layers.layer import Layer
from kerasish.models.model import Model
from kerasish.models.shape_mismatch import warn_incompatible_shape
from kerasish.utils import naming


class Sequential(Model):
    """A stack of layers, each feeding the next (`keras.Sequential`).

    Args:
        layers: Optional list of layers (a `keras.Input(...)` tensor or an
            `InputLayer` may come first).
        trainable: Whether the model's weights are trainable. Defaults to True.
        name: Model name. Defaults to "sequential" (made unique).

    With an input shape (`keras.Input` first, or `input_shape=` on the first
    layer, Keras 2 style) the model is built at once: weights exist, and
    `output_shape`, `summary()` and `layer.output` are known. Without one the
    build is deferred to the first call or to `model.build(input_shape)`.
    A call runs the layers in a plain loop (masks travel with the tensors).
    Each layer is a submodule under its name (`state_dict` keys like
    `dense.kernel`).

    Example:
        >>> model = keras.Sequential([keras.Input(shape=(8,)), keras.layers.Dense(4)])
        >>> model.add(keras.layers.Dense(1))
        >>> model(torch.ones(2, 8)).shape
        torch.Size([2, 1])
    """

    _keras_module = "keras"  # as Keras 3 serializes it

    def __init__(self, layers=None, trainable=True, name=None, **kwargs):
        Model.__init__(self, trainable=trainable, name=name, autocast=False, **kwargs)
        d = self.__dict__
        d["_seq_layers"] = []
        d["_call_layers"] = ()
        self._reset_graph()
        if layers:
            for layer in layers:
                self.add(layer, rebuild=False)
            self._maybe_rebuild()

    def _reset_graph(self):
        d = self.__dict__
        d["_graph_inputs"] = None
        d["_graph_outputs"] = None
        d["_input_check"] = None
        d["_input_cast"] = None

    # ------------------------------------------------------------ editing
    def add(self, layer, rebuild=True):
        """Adds a layer (or a `keras.Input` tensor) on top of the stack."""
        d = self.__dict__
        if not d["_seq_layers"] and isinstance(layer, Layer) and not isinstance(layer, InputLayer):
            batch_shape = layer.__dict__.get("_batch_input_shape")
            if batch_shape is not None:
                self.add(InputLayer(batch_shape=batch_shape), rebuild=False)
        if isinstance(layer, KerasTensor) and layer._keras_history is not None:
            origin = layer._keras_history.operation
            if isinstance(origin, InputLayer):
                layer = origin
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Only instances of `keras.Layer` can be added to a Sequential model. Received: {layer} "
                f"(of type {type(layer)})"
            )
        for ref in d["_seq_layers"]:
            if ref.name == layer.name and ref is not layer:
                raise ValueError(
                    "All layers added to a Sequential model should have unique names. Name "
                    f"'{layer.name}' is already the name of a layer in this model. Update the `name` "
                    "argument to pass a unique name."
                )
        if isinstance(layer, InputLayer) and d["_seq_layers"] and isinstance(d["_seq_layers"][0], InputLayer):
            raise ValueError(
                f"Sequential model '{self.name}' has already been configured to use input shape "
                f"{d['_seq_layers'][0].batch_shape}. You cannot add a different Input layer to it."
            )
        d["_seq_layers"].append(layer)
        if not isinstance(layer, InputLayer):
            from kerasish.models.functional import _module_key

            self.add_module(_module_key(self, layer), layer)
            tracking.structure_changed()
        self._refresh_call_layers()
        if rebuild:
            self._maybe_rebuild()
        else:
            self.built = False
            self._reset_graph()

    def pop(self, rebuild=True):
        """Removes the last layer and returns it."""
        d = self.__dict__
        if not self.layers:
            raise TypeError("There are no layers in the model.")
        layer = d["_seq_layers"].pop()
        key = self._key_of(layer)
        if key is not None:
            del self._modules[key]
            tracking.structure_changed()
        self._refresh_call_layers()
        self.built = False
        self._reset_graph()
        if rebuild:
            self._maybe_rebuild()
        return layer

    # ------------------------------------------- torch-style child surgery
    # `model.head = Dense(10)` (torchvision's `model.fc = ...`, timm's
    # `reset_classifier`, PEFT's `setattr(parent, name, new)`) replaces the
    # child a torch `nn.Sequential` runs. The stack is what this model runs,
    # so the layer under that key is replaced in it too; before, the new
    # layer was registered but never called, and the old one was called but
    # no longer in `parameters()` / `state_dict()`.
    def _set_attribute(self, name, value):
        old = self._stack_layer_under(name)
        if old is None or value is old:
            return super()._set_attribute(name, value)
        if not isinstance(value, Layer) or isinstance(value, InputLayer):
            raise ValueError(
                f"`{name}` is layer '{old.name}' of Sequential model '{self.name}': it can only be "
                "replaced by another `keras.Layer` (wrap a torch module in "
                "`keras.layers.TorchModuleWrapper`; for torch's `nn.Identity()` recipe use "
                f"`keras.layers.Identity()`, or remove the layer with `del model.{name}`). torch's module wrappers (`apply_activation_checkpointing`, "
                "FSDP's `auto_wrap_policy`) cannot take a Sequential's layers: apply them to a subclassed "
                "model, or use `torch.utils.checkpoint.checkpoint_sequential(model.layers, ...)`. "
                f"Received: {name}={value!r} (of type {type(value)})"
            )
        d = self.__dict__
        for ref in d["_seq_layers"]:
            if ref.name == value.name and ref is not old and ref is not value:
                raise ValueError(
                    "All layers added to a Sequential model should have unique names. Name "
                    f"'{value.name}' is already the name of a layer in this model. Update the `name` "
                    "argument to pass a unique name."
                )
        layers = d["_seq_layers"]
        layers[next(i for i, ref in enumerate(layers) if ref is old)] = value
        super()._set_attribute(name, value)  # the same key, in the same place of the state_dict
        self._refresh_call_layers()
        self._maybe_rebuild()

    def __delattr__(self, name):
        old = self._stack_layer_under(name)
        if old is None:
            return super().__delattr__(name)
        d = self.__dict__
        layers = d["_seq_layers"]
        del layers[next(i for i, ref in enumerate(layers) if ref is old)]
        del self._modules[name]
        tracking.structure_changed()
        self._refresh_call_layers()
        self._maybe_rebuild()

    def add_module(self, name, module):
        old = self._stack_layer_under(name)
        if old is not None and module is not old:
            return self._set_attribute(name, module)
        return super().add_module(name, module)

    def _stack_layer_under(self, name):
        """The layer of the stack registered under the torch key `name`, or None."""
        d = self.__dict__
        old = d["_modules"].get(name) if "_seq_layers" in d else None
        if old is None or not any(ref is old for ref in d["_seq_layers"]):
            return None
        return old if self._key_of(old) == name else None  # (not a second name the user gave it)

    def _key_of(self, layer):
        """The torch key a layer of the stack is registered under: found by identity, never kept by
        `id()`, which a deep copy or an unpickled model does not share."""
        return next((key for key, module in self._modules.items() if module is layer), None)

    def _refresh_call_layers(self):
        d = self.__dict__
        d["_call_layers"] = tuple(layer for layer in d["_seq_layers"] if not isinstance(layer, InputLayer))
        # string values (NumPy str/object arrays) pass the input checks when the
        # stack starts with a `dtype="string"` Input or a string-taking layer
        from kerasish.layers.preprocessing.host_inputs import HostInputLayer

        first = d["_seq_layers"][0] if d["_seq_layers"] else None
        d["_string_inputs"] = (isinstance(first, InputLayer) and first.dtype == dtypes.STRING) or (
            bool(d["_call_layers"]) and isinstance(d["_call_layers"][0], HostInputLayer))

    def _maybe_rebuild(self):
        self.built = False
        self._reset_graph()
        layers = self.__dict__["_seq_layers"]
        if not layers or len(layers) < 2:
            return
        first = layers[0]
        if isinstance(first, InputLayer):
            self.build(first.batch_shape)
        elif (first.__dict__.get("_inbound_nodes") or isinstance(first, Model)) and _has_attr(first, "input_shape"):
            # a called layer, or a model with its own inputs (Keras 2's transfer-learning
            # `Sequential([base_model, Dense(...)])`): built at once, as in Keras 2 and 3
            shape = first.input_shape
            if isinstance(shape, tuple):  # (one input only: a multi-input model is a list of shapes)
                self.build(shape)

    # ----------------------------------------------------------- building
    def build(self, input_shape=None):
        """Builds the stack for `input_shape` (batch dimension included):
        creates the weights and the symbolic graph."""
        try:
            input_shape = standardize_shape(input_shape)
        except (ValueError, TypeError):
            return  # not a single input shape: built on the first call instead
        d = self.__dict__
        if not d["_seq_layers"]:
            raise ValueError(
                f"Sequential model {self.name} cannot be built because it has no layers. Call `model.add(layer)`."
            )
        first = d["_seq_layers"][0]
        declared = isinstance(first, InputLayer)
        if declared:
            if first.batch_shape != input_shape:
                raise ValueError(
                    f"Sequential model '{self.name}' has already been configured to use input shape "
                    f"{first.batch_shape}. You cannot build it with input_shape {input_shape}"
                )
        else:
            dtype = d.get("_first_call_dtype") or first.compute_dtype
            first = InputLayer(batch_shape=input_shape, dtype=dtype)
            d["_seq_layers"].insert(0, first)
        inputs = first.output
        x = inputs
        for layer in d["_call_layers"]:
            try:
                x = layer(x)
            except (NotImplementedError, RuntimeError):
                # no shape inference for this layer (or not for this input
                # dtype): the remaining layers build on the first call
                return
        d["_graph_inputs"] = inputs
        d["_graph_outputs"] = x
        # Keras builds an inner Functional model here, which takes a name:
        # take it too, so later models get the same auto names as in Keras
        naming.auto_name("Functional")
        fixed = () if not declared else tuple(
            (axis, size) for axis, size in enumerate(inputs.shape) if axis > 0 and size is not None
        )
        d["_input_check"] = (len(inputs.shape), fixed)
        # a declared `Input`'s dtype: Keras's Sequential runs its functional graph, which converts the
        # inputs to it (a float64 `Input` keeps float64 data, a float16 one rounds, an int32 one truncates)
        d["_input_cast"] = dtypes.to_torch_dtype(inputs.dtype) if declared and inputs.dtype != dtypes.STRING else None

    def _build_on_first_call(self, inputs, call=None):
        d = self.__dict__
        if isinstance(inputs, torch.Tensor):
            d["_first_call_dtype"] = inputs.dtype
        elif isinstance(inputs, np.ndarray) and inputs.dtype.kind in "USO":
            d["_first_call_dtype"] = dtypes.STRING  # strings: the built graph gets a "string" Input
        else:
            d["_first_call_dtype"] = None
        try:
            Layer._build_on_first_call(self, inputs, call)
        finally:
            d["_first_call_dtype"] = None

    # --------------------------------------------------------------- call
    def call(self, inputs, training=None, **kwargs):
        """Runs the layers one after the other."""
        d = self.__dict__
        check = d["_input_check"]
        # A rank other than the build rank is an error. Other sizes run: the
        # layers reject the sizes they cannot take. Keras 3 runs them
        # silently; for a declared input (`Input`, `input_shape=`) kerasish
        # warns as tf.keras 2 did, while a stack built on its first call
        # (inside a custom layer, on probing sizes, as keras.io's
        # Transformer examples do) stays silent like Keras 3.
        if check is not None and isinstance(inputs, torch.Tensor):
            ndim, fixed = check
            if inputs.ndim != ndim:
                inputs = self._adjust_rank(inputs, ndim)
            for axis, size in fixed:
                if inputs.shape[axis] != size:
                    warn_incompatible_shape(self, d["_graph_inputs"], inputs)
                    break
        cast = d.get("_input_cast")
        if cast is not None and isinstance(inputs, torch.Tensor) and inputs.dtype is not cast:
            inputs = self._cast_input(inputs, cast)
        mask = kwargs.get("mask")
        if mask is not None:
            inputs._keras_mask = mask
        for layer in d["_call_layers"]:
            inputs = layer(inputs)
        return inputs

    def _cast_input(self, x, dtype):
        """`x` converted to the declared `Input` dtype as Keras's functional graph does (floating
        inputs of a model given weights of another dtype: to theirs, see `weight_substitution`)."""
        dtype = weight_substitution.input_dtype(self.__dict__, dtype)
        if x.dtype is dtype or x.dtype == torch.bool or dtype == torch.bool:
            return x
        if not (x.is_floating_point() or dtype.is_floating_point):
            return x  # (integer to integer: the layers take any integer dtype, as Keras's ids)
        mask = x.__dict__.get("_keras_mask") if x.__dict__ else None
        x = x.to(dtype)
        if mask is not None:
            x._keras_mask = mask
        return x

    def _apply(self, fn, recurse=True):
        """`.double()`, `.half()`, `.to(dtype)`: a floating declared `Input`
        casts to the dtype the move gives (as a floating buffer of the model
        would be), as `Functional._apply` does; the config reports it."""
        out = super()._apply(fn, recurse)
        d = self.__dict__
        cast = d.get("_input_cast")
        if cast is not None and cast.is_floating_point:
            moved = layer_moves.dtype_after(fn, cast)
            if moved.is_floating_point:
                d["_input_cast"] = moved
        return out

    def _adjust_rank(self, x, ndim):
        """A rank one off the declared input's, through a last axis of size 1, is squeezed or expanded, as
        Keras 3's functional graph does under its Sequential (`_adjust_input_rank`): `predict(x[:, 2])` into
        `Normalization(input_shape=[1])` runs (tensorflow.org's regression tutorial). Any other rank raises."""
        ref = self.__dict__["_graph_inputs"].shape
        if x.ndim == ndim + 1 and x.shape[-1] == 1:
            return x.squeeze(-1)
        if x.ndim == ndim - 1 and ref and ref[-1] == 1:
            return x.unsqueeze(-1)
        self._raise_shape(x)

    def _raise_shape(self, x):
        ref = self.__dict__["_graph_inputs"]
        expected = (None, *ref.shape[1:])
        raise ValueError(
            f"Input 0 with name '{self._seq_layers[0].name}' of layer '{self.name}' is incompatible with the "
            f"layer: expected shape={expected}, found shape={tuple(x.shape)}"
        )

    def compute_output_spec(self, inputs, training=None, mask=None, **kwargs):
        d = self.__dict__
        ref = d["_graph_inputs"]
        if ref is not None and isinstance(inputs, KerasTensor) and inputs.shape[1:] == ref.shape[1:]:
            out = d["_graph_outputs"]
            return KerasTensor((inputs.shape[0], *out.shape[1:]), dtype=out.dtype, sparse=out.sparse)
        for layer in d["_call_layers"]:
            inputs = layer.compute_output_spec(inputs)
        return inputs

    def compute_output_shape(self, input_shape):
        for layer in self.__dict__["_call_layers"]:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    # ---------------------------------------------------------- structure
    @property
    def layers(self) -> list:
        """The layers added, without the InputLayer (Keras behaviour)."""
        layers = self.__dict__["_seq_layers"]
        if layers and isinstance(layers[0], InputLayer):
            return layers[1:]
        return list(layers)

    @layers.setter
    def layers(self, _):
        raise AttributeError(
            "`Sequential.layers` attribute is reserved and should not be used. Use `add()` and `pop()` to "
            "change the layers in this model."
        )

    def _graph_attr(self, key, what):
        value = self.__dict__[key]
        if value is None:
            raise AttributeError(f"Sequential model '{self.name}' has no defined {what} yet.")
        return value

    @property
    def inputs(self) -> list:
        return [self._graph_attr("_graph_inputs", "inputs")]

    @property
    def outputs(self) -> list:
        return [self._graph_attr("_graph_outputs", "outputs")]

    @property
    def input(self):
        return self._graph_attr("_graph_inputs", "input")

    @property
    def output(self):
        return self._graph_attr("_graph_outputs", "output")

    @property
    def input_shape(self):
        return self._graph_attr("_graph_inputs", "input shape").shape

    @property
    def output_shape(self):
        return self._graph_attr("_graph_outputs", "output shape").shape

    @property
    def input_dtype(self):
        layers = self.__dict__["_seq_layers"]
        if layers and isinstance(layers[0], InputLayer):
            return layers[0].dtype
        return self.compute_dtype

    def extra_repr(self) -> str:
        ref = self.__dict__["_graph_inputs"]
        return f"name={self.name!r}, input_shape={ref.shape if ref is not None else '?'}"

    # ------------------------------------------------------------- config
    def get_config(self) -> dict:
        """Keras 3's Sequential config: `name`, `trainable`, `dtype`,
        `layers` (InputLayer included) and `build_input_shape`."""
        from kerasish.saving import serialize_keras_object

        layer_configs = []
        for layer in self.__dict__["_seq_layers"]:
            layer_config = serialize_keras_object(layer)
            cast = self.__dict__.get("_input_cast")
            if isinstance(layer, InputLayer) and cast is not None and cast.is_floating_point:
                # moved by `.double()`...: the loaded model casts as this one (see `_apply`)
                layer_config["config"]["dtype"] = dtypes.standardize_dtype(cast)
            if not isinstance(layer, InputLayer):
                build_config = layer.get_build_config()
                if build_config is not None:
                    layer_config["build_config"] = build_config
            layer_configs.append(layer_config)
        config = Layer.get_config(self)
        config["name"] = self.name
        config["layers"] = layer_configs
        if self.__dict__["_graph_inputs"] is not None:
            config["build_input_shape"] = self._seq_layers[0].batch_shape
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from kerasish.models.functional_config import deserialize_layer

        if "name" not in config or "layers" not in config:
            raise ValueError(
                "A Sequential model configuration must be a dictionary containing the 'name' and 'layers' "
                f"keys. Received: config={config}"
            )
        model = cls(name=config["name"])
        for layer_config in config["layers"]:
            model.add(deserialize_layer(layer_config, custom_objects=custom_objects))
        build_input_shape = config.get("build_input_shape")
        if model.__dict__["_graph_inputs"] is None and isinstance(build_input_shape, (tuple, list)) and build_input_shape:
            model.build(build_input_shape)
        if config.get("trainable") is False:
            model.trainable = False
        return model


def _has_attr(obj, name) -> bool:
    try:
        getattr(obj, name)
        return True
    except (AttributeError, ValueError):
        return False
