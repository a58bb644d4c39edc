"""`Model.get_state_tree` / `Model.set_state_tree` (Keras 3): the model's
variables as nested dicts keyed by the parts of their paths."""

from __future__ import annotations

import torch

_VALUE_FORMATS = ("backend_tensor", "numpy_array")
_KINDS = ("trainable_variables", "non_trainable_variables", "optimizer_variables", "metrics_variables")


def _variables_of(model, kind) -> list:
    if kind == "optimizer_variables":
        optimizer = getattr(model, "optimizer", None)
        return list(getattr(optimizer, "variables", None) or [])
    return list(getattr(model, kind))


def _nested(variables, value_format, model=None) -> dict:
    flat = {}
    for v in variables:
        if getattr(v, "path", None) is None:
            raise ValueError(_no_path_message(model, v))
        if v.path in flat:
            raise ValueError(
                f"The following variable path is found twice in the model: '{v.path}'. `get_state_tree()` can "
                "only be called when all variable paths are unique. Make sure to give unique names to your "
                "layers (and other objects)."
            )
        # the live value (storage shared with the variable, as `v.value` on Keras's torch backend), as a
        # plain tensor; "numpy_array" gives copies
        flat[v.path] = torch.Tensor.detach(v) if value_format == "backend_tensor" else v.numpy()
    nested = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def get_state_tree(model, value_format="backend_tensor") -> dict:
    """See `Model.get_state_tree`."""
    if value_format not in _VALUE_FORMATS:
        raise ValueError(
            "Invalid `value_format` argument. Expected one of {'numpy_array', 'backend_tensor'}. Received: "
            f"value_format={value_format}"
        )
    return {kind: _nested(_variables_of(model, kind), value_format, model) for kind in _KINDS}


def _no_path_message(model, variable) -> str:
    """A weight without a Keras path: a parameter of a plain torch module inside a layer."""
    name = next((n for n, p in model.named_parameters(remove_duplicate=False) if p is variable), None) if (
        model is not None) else None
    return (
        f"`get_state_tree()` keys variables by their Keras path, and the weight '{name or tuple(variable.shape)}' "
        f"(shape {tuple(variable.shape)}) has none: it is a parameter of a plain torch module inside a layer. "
        "Wrap that module in `keras.layers.TorchModuleWrapper(module)` to give its parameters Keras paths. "
        f"Received: a {type(variable).__name__} without a `path`."
    )


def _flatten(tree, prefix="", out=None) -> dict:
    out = {} if out is None else out
    for key, value in tree.items():
        if isinstance(value, dict):
            _flatten(value, f"{prefix}{key}/", out)
        else:
            out[f"{prefix}{key}"] = value
    return out


def set_state_tree(model, state_tree) -> None:
    """See `Model.set_state_tree`."""
    if not isinstance(state_tree, dict):
        raise TypeError(f"`set_state_tree` expects a dict (as `get_state_tree` returns). Received: {type(state_tree)}")
    plan = []
    for kind, subtree in state_tree.items():
        if kind not in _KINDS:
            raise ValueError(f"Unknown variable name: {kind}")
        if not isinstance(subtree, dict):
            raise TypeError(f"`state_tree['{kind}']` must be a nested dict of values. Received: {type(subtree)}")
        values = _flatten(subtree)
        variables = _variables_of(model, kind)
        optimizer = getattr(model, "optimizer", None)
        if (kind == "optimizer_variables" and values and optimizer is not None
                and not hasattr(optimizer, "variables")):
            raise ValueError(
                f"`set_state_tree`: the model's optimizer ({type(optimizer).__name__}) is a torch optimizer with "
                "no Keras variables to assign `optimizer_variables` to; restore it with its `load_state_dict`."
            )
        if not variables and kind in ("optimizer_variables", "metrics_variables"):
            continue  # as Keras: no optimizer (not compiled) or no metric variables yet, nothing to restore
        by_path = {}
        for v in variables:
            by_path.setdefault(v.path, []).append(v)
        unknown = sorted(p for p in values if p not in by_path)
        if unknown:
            hint = {
                "optimizer_variables": " Build the optimizer first (`model.optimizer.build(model.trainable_variables)`, "
                                       "or train one step) so that its slot variables exist.",
                "metrics_variables": " Compiled metrics make their variables at their first update: train or "
                                     "evaluate one batch first.",
            }.get(kind, "")
            raise ValueError(
                f"`set_state_tree`: no variable of the model's `{kind}` has the path {unknown[0]!r} "
                f"({len(unknown)} unmatched path(s): {unknown[:5]}). Keras 3 skips such values silently; "
                f"kerasish refuses them so that nothing is left unrestored unnoticed.{hint} Known paths: "
                f"{sorted(by_path)[:10]}"
            )
        plan += [(v, value) for path, value in values.items() for v in by_path[path]]
    for variable, value in plan:  # every path checked before the first write
        variable.assign(value)
