"""`keras.models.clone_model`: the same architecture with new weights."""

from __future__ import annotations

from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers.input_layer import Input
from kerasish.layers.input_layer import InputLayer
from kerasish.models import graph
from kerasish.models.functional import Functional
from kerasish.models.functional import functional_like_constructor
from kerasish.models.sequential import Sequential
from kerasish.models.torch_op_layer import TorchOpLambda
from kerasish.utils import tree


def clone_model(model, input_tensors=None, clone_function=None, call_function=None, recursive=False, **kwargs):
    """Clones a Functional, Sequential or subclassed model.

    The clone computes the same function as `model` once weights are copied
    (`clone.set_weights(model.get_weights())`), but has freshly initialized
    weights of its own. Shared layers stay shared inside the clone.

    Args:
        model: The model to clone.
        input_tensors: Optional KerasTensor(s) to build the clone on
            (Functional and Sequential models only).
        clone_function: Callable `layer -> new layer`. Defaults to
            `lambda layer: layer.__class__.from_config(layer.get_config())`.
        call_function: Callable `(layer, *args, **kwargs) -> outputs` used to
            call each cloned layer (Functional models only).
        recursive: Whether nested Sequential/Functional models are cloned
            with `clone_model` too (else with `clone_function`).

    Returns:
        The cloned model.

    Example:
        >>> clone = keras.models.clone_model(model)
        >>> clone.set_weights(model.get_weights())
    """
    cache = kwargs.pop("cache", None)
    if kwargs:
        raise ValueError(f"Unexpected keyword argument(s): {tuple(kwargs.keys())}")
    if isinstance(model, Sequential):
        if call_function is not None:
            raise ValueError(
                "`call_function` argument is not supported with Sequential models.  In a Sequential model, "
                "layers aren't called at model-construction time (they're merely listed). Use "
                "`call_function` with Functional models only. Received model of type "
                f"'{type(model).__name__}', with call_function={call_function}"
            )
        fn = _wrap_clone_function(clone_function, None, recursive, cache)
        return _clone_sequential(model, fn, input_tensors)
    if isinstance(model, Functional) and (
        type(model).get_config is Functional.get_config or clone_function or input_tensors
    ):
        fn = _wrap_clone_function(clone_function, call_function, recursive, cache)
        return _clone_functional(model, fn, input_tensors, call_function)
    if clone_function or input_tensors:
        raise ValueError(
            "Arguments `clone_function` and `input_tensors` are only supported for Sequential models or "
            f"Functional models. Received model of type '{type(model).__name__}', with "
            f"clone_function={clone_function} and input_tensors={input_tensors}"
        )
    if call_function is not None:
        raise ValueError(
            "Argument `call_function` is only supported for Functional models. Received model of type "
            f"'{type(model).__name__}', with call_function={call_function}"
        )
    return type(model).from_config(model.get_config())


def _default_clone(layer):
    if isinstance(layer, TorchOpLambda):
        return TorchOpLambda(layer.function, name=layer.name)
    return type(layer).from_config(layer.get_config())


def _wrap_clone_function(clone_function, call_function, recursive, cache):
    clone_function = clone_function or _default_clone
    cache = {} if cache is None else cache

    def wrapped(layer):
        if id(layer) in cache:
            return cache[id(layer)]
        if recursive and isinstance(layer, Sequential):
            clone = clone_model(layer, clone_function=clone_function, recursive=True, cache=cache)
        elif recursive and isinstance(layer, Functional):
            clone = clone_model(
                layer, clone_function=clone_function, call_function=call_function, recursive=True, cache=cache
            )
        elif isinstance(layer, TorchOpLambda):
            clone = _default_clone(layer)
        else:
            clone = clone_function(layer)
        cache[id(layer)] = clone
        return clone

    return wrapped


def _clone_sequential(model, clone_function, input_tensors):
    new_layers = [clone_function(layer) for layer in model.layers]
    first = model._seq_layers[0] if model._seq_layers else None
    if input_tensors is not None:
        if isinstance(input_tensors, (list, tuple)):
            if len(input_tensors) != 1:
                raise ValueError("Argument `input_tensors` must contain a single tensor.")
            input_tensors = input_tensors[0]
        if not isinstance(input_tensors, KerasTensor):
            raise ValueError(
                f"Argument `input_tensors` must be a KerasTensor. Received invalid value: input_tensors={input_tensors}"
            )
        name = first.name if isinstance(first, InputLayer) else None
        new_layers = [Input(tensor=input_tensors, name=name)] + new_layers
    elif isinstance(first, InputLayer):
        new_layers = [
            Input(batch_shape=first.batch_shape, dtype=first.dtype, name=first.name, optional=first.optional)
        ] + new_layers
    clone = Sequential(new_layers, name=model.name, trainable=model.trainable)
    _copy_compile(model, clone)
    return clone


def _clone_functional(model, clone_function, input_tensors, call_function):
    if input_tensors is not None:
        if not all(isinstance(x, KerasTensor) for x in tree.flatten(input_tensors)):
            raise ValueError(
                "All entries in `input_tensors` must be KerasTensors. Received invalid values: "
                f"inputs_tensors={input_tensors}"
            )
        if len(tree.flatten(input_tensors)) != len(model.inputs):
            raise ValueError(
                "`input_tensors` must have the same structure as model.input\n"
                f"Reference structure: {model.input}\nReceived structure: {input_tensors}"
            )
    else:
        input_tensors = tree.map_structure(
            lambda x: Input(batch_shape=x.shape, dtype=model._input_cast_dtype(x), name=x.name), model.input
        )
    mapping = {id(ref): new for ref, new in zip(model.inputs, tree.flatten(input_tensors))}

    def swap(x):
        return mapping[id(x)] if isinstance(x, KerasTensor) else x

    for node in graph.execution_order(model._nodes_by_depth):
        if any(id(x) not in mapping for x in node.input_tensors):
            continue
        layer = clone_function(node.operation)
        args = tree.map_structure(swap, list(node.call_args))
        kwargs = tree.map_structure(swap, dict(node.call_kwargs))
        if call_function is not None:
            outputs = call_function(layer, *args, **kwargs)
        elif isinstance(layer, TorchOpLambda):
            from kerasish.models import symbolic_ops

            outputs = symbolic_ops.symbolic_layer_call(layer, args, kwargs)
        else:
            outputs = layer(*args, **kwargs)
        for ref, new in zip(node.outputs, tree.flatten(outputs)):
            mapping[id(ref)] = new
    outputs = tree.map_structure(lambda x: mapping[id(x)], model.output)
    if functional_like_constructor(type(model)):
        clone = type(model)(input_tensors, outputs, name=model.name)
    else:
        clone = Functional(input_tensors, outputs, name=model.name)
    _copy_compile(model, clone)
    return clone


def _copy_compile(model, clone):
    if getattr(model, "compiled", False) and hasattr(model, "get_compile_config"):
        config = model.get_compile_config()
        if config is not None and hasattr(clone, "compile_from_config"):
            clone.compile_from_config(config)
