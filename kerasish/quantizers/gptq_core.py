"""GPTQ calibration over a model, as Keras 3.15's `gptq_core`: calibration
windows are cut from the dataset's tokens, passed through the
`pre_block_layers`, then each of the `sequential_blocks` in turn: its GPTQ
layers' Hessians are accumulated from their inputs (by wrapping their
`call`), the layers are quantized, and the block's outputs become the next
block's inputs."""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch

from kerasish.quantizers.gptq import GPTQ


@contextmanager
def stream_inputs(layers_map, objects):
    """Wraps each layer's `call` so that `objects[name].observe(inputs)`
    sees every input (as 2D rows) while the block runs."""
    originals = {}

    def make_hook(name, original):
        def hook(*args, **kwargs):
            inputs = args[0] if args else kwargs["inputs"]
            objects[name].observe(inputs.reshape(-1, objects[name].rows))
            return original(*args, **kwargs)

        return hook

    try:
        for name, layer in layers_map.items():
            originals[name] = layer.__dict__.get("call")
            layer.call = make_hook(name, layer.call)
        yield
    finally:
        for name, layer in layers_map.items():
            if originals[name] is None:
                del layer.__dict__["call"]
            else:
                layer.call = originals[name]


def get_dataloader(tokenizer, sequence_length, dataset, num_samples=128, *, strategy="strided", seed=42, stride=None,
                   eos_id=None):
    """`(num_samples, 1, sequence_length)` int32 calibration windows."""
    if not hasattr(dataset, "__iter__") or isinstance(dataset, (str, bytes)):
        raise TypeError(
            "The `dataset` argument must be an iterable (e.g., a list of strings, a generator, or a NumPy array). "
            f"Got type: {type(dataset).__name__}. Please pass the loaded dataset directly."
        )
    items = list(dataset)
    if not items:
        raise ValueError("Provided dataset is empty.")
    pieces = []
    if isinstance(items[0], str):
        for i, text in enumerate(items):
            tokens = tokenizer.tokenize(text)
            tokens = tokens.detach().cpu().numpy() if isinstance(tokens, torch.Tensor) else np.asarray(tokens)
            pieces.append(tokens.reshape(-1))
            if eos_id is not None and i < len(items) - 1:
                pieces.append(np.array([eos_id], dtype=np.int32))
    else:
        for item in items:
            item = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
            pieces.append(item.reshape(-1).astype(np.int32, copy=False))
    tokens = pieces[0].astype(np.int32, copy=False) if len(pieces) == 1 else np.concatenate(pieces).astype(np.int32)
    required = num_samples * sequence_length
    if tokens.size < required:
        tokens = np.tile(tokens, math.ceil(required / max(1, tokens.size)))
    max_start = tokens.size - sequence_length
    if max_start < 0:
        raise ValueError(f"Not enough tokens to form one sample of length {sequence_length} (have {tokens.size}).")
    if strategy == "random":
        starts = np.random.default_rng(seed).integers(0, max_start + 1, size=num_samples, dtype=np.int64)
    elif strategy == "linspace":
        starts = np.linspace(0, max_start, num_samples, dtype=np.int64)
    elif strategy == "strided":
        if stride is None:
            stride = max(1, (max_start + 1) // num_samples)
        # (Keras's offset: Python's hash of a str tuple, so it varies per
        # process unless PYTHONHASHSEED is set; reproduced as is)
        offset = (abs(hash(("gptq-calib", seed))) % (max_start + 1)) if max_start > 0 else 0
        starts = (offset + np.arange(num_samples, dtype=np.int64) * stride) % (max_start + 1)
    else:
        raise ValueError(f"Unknown strategy: {strategy}")
    windows = np.lib.stride_tricks.sliding_window_view(tokens, sequence_length)
    return windows[starts].astype(np.int32)[:, None, :]


def find_layers_in_block(block):
    """The block's leaf layers waiting for calibration (`Dense` quantized
    with mode "gptq" or "awq"), by name."""
    found = {}
    for layer in block._flatten_layers():
        if len(list(layer._flatten_layers())) == 1 and getattr(layer, "_calibration_pending", False):
            found[layer.name] = layer
    return found


def apply_gptq_layerwise(dataloader, config, structure, filters=None):
    apply_layerwise(dataloader, config, structure, filters, lambda layer: GPTQ(layer, config),
                    lambda obj: obj.quantize_and_correct_layer())


def apply_layerwise(dataloader, config, structure, filters, make, finish):
    """Keras's block-by-block calibration loop (GPTQ and AWQ)."""
    from kerasish.models.model_quantization import should_quantize_layer

    num_samples = config.num_samples
    pre_layers = structure.get("pre_block_layers", [])
    blocks = structure.get("sequential_blocks", [])
    if not blocks:
        raise ValueError("No sequential blocks found in the provided structure to quantize.")
    inputs = []
    with torch.no_grad():
        for batch in dataloader:
            batch = torch.as_tensor(np.asarray(batch), dtype=torch.int32)
            for layer in pre_layers:
                batch = layer(batch)
            inputs.append(batch)
        num_samples = min(num_samples, len(inputs))
        for index, block in enumerate(blocks):
            layers = {n: l for n, l in find_layers_in_block(block).items() if should_quantize_layer(l, filters)}
            if layers:
                objects = {name: make(layer) for name, layer in layers.items()}
                with stream_inputs(layers, objects):
                    for i in range(num_samples):
                        x = inputs[i]
                        block(x[None] if x.dim() == 2 else x)
                for obj in objects.values():
                    finish(obj)
            if index < len(blocks) - 1:
                outputs = []
                for i in range(num_samples):
                    x = inputs[i]
                    outputs.append(block(x[None] if x.dim() == 2 else x)[0])
                inputs = outputs


def gptq_quantize(config, structure, filters=None):
    if config.dataset is None or config.tokenizer is None:
        raise ValueError("GPTQ quantization requires a dataset and a tokenizer. Please provide them in the `GPTQConfig`.")
    if structure is None:
        raise ValueError(
            "For 'gptq' mode, a valid quantization structure must be provided either via "
            "`config.quantization_layer_structure` or by overriding `model.get_quantization_layer_structure(mode)`. "
            "The structure should be a dictionary with keys 'pre_block_layers' and 'sequential_blocks'."
        )
    loader = get_dataloader(config.tokenizer, config.sequence_length, config.dataset, num_samples=config.num_samples)
    apply_gptq_layerwise(loader[: config.num_samples], config, structure, filters=filters)


def _gptq_policy(layer, mode="gptq"):
    from kerasish.dtype_policies import AWQDTypePolicy
    from kerasish.dtype_policies import DTypePolicyMap
    from kerasish.dtype_policies import GPTQDTypePolicy

    policy = layer.dtype_policy
    if isinstance(policy, DTypePolicyMap):
        policy = policy[layer.name]
    return policy if isinstance(policy, GPTQDTypePolicy if mode == "gptq" else AWQDTypePolicy) else None


def get_group_size_for_layer(layer, config, mode="gptq"):
    """The group size from a `GPTQConfig`/`AWQConfig`, else from the layer's policy."""
    if getattr(config, "mode", None) == mode and hasattr(config, "group_size"):
        return config.group_size
    policy = _gptq_policy(layer, mode)
    if policy is None:
        raise ValueError(f"For {mode.upper()} quantization, the group_size must be specified either through a "
                         f"`dtype_policy` of type `{mode.upper()}DTypePolicy` or the `config` argument.")
    return policy.group_size


def awq_quantize(config, structure, filters=None):
    from kerasish.quantizers.awq import AWQ

    if config.dataset is None or config.tokenizer is None:
        raise ValueError("AWQ quantization requires a dataset and tokenizer. Please provide them in the AWQConfig.")
    if structure is None:
        raise ValueError(
            "For 'awq' mode, a valid quantization structure must be provided either via "
            "`config.quantization_layer_structure` or by overriding `model.get_quantization_layer_structure(mode)`. "
            "The structure should be a dictionary with keys 'pre_block_layers' and 'sequential_blocks'."
        )
    loader = get_dataloader(config.tokenizer, config.sequence_length, config.dataset, num_samples=config.num_samples)
    apply_layerwise(loader[: config.num_samples], config, structure, filters, lambda layer: AWQ(layer, config),
                    lambda obj: obj.quantize_layer())


def get_weight_bits_for_layer(layer, config):
    from kerasish.quantizers.gptq_config import GPTQConfig

    if isinstance(config, GPTQConfig):
        return config.weight_bits
    policy = _gptq_policy(layer)
    if policy is None:
        raise ValueError("For GPTQ quantization, the weight_bits must be specified either through a `dtype_policy` of "
                         "type `GPTQDTypePolicy` or the `config` argument.")
    return policy.weight_bits
