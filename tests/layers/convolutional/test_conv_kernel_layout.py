"""Conv kernels stored in torch's memory order behind Keras's shape
(`kerasish/layers/weight_layout.py`).

`Conv2D.kernel` is `(kh, kw, in, filters)` with Keras's values, but its storage
is the one torch's conv reads: `(filters, kh, kw, in)` (torch's channels_last
weight) on channels_last data, `(filters, in, kh, kw)` on channels_first. The
permuted view handed to `F.conv*d` is then contiguous, so no call copies the
kernel. These tests check that no call copies it, that nothing Keras-facing
changed (values, initializer draws, `get_weights`, files old and new,
state_dict both ways, optimizers, constraints, compile) and that the layout
survives the ways weights get written or moved.
"""

import copy
import io
import os
import pickle

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import kerasish as keras

L = keras.layers
FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "conv_layout", "conv_state_dict_pre_layout.pt")

# (layer class, rank, data_format, groups)
CASES = [
    (L.Conv1D, 1, "channels_last", 1),
    (L.Conv1D, 1, "channels_first", 1),
    (L.Conv2D, 2, "channels_last", 1),
    (L.Conv2D, 2, "channels_last", 2),
    (L.Conv2D, 2, "channels_first", 2),
    (L.Conv3D, 3, "channels_last", 1),
    (L.Conv3D, 3, "channels_first", 1),
]
IDS = [f"{c.__name__}-{f}-g{g}" for c, _, f, g in CASES]


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _input(rank, data_format, channels=4, size=5, batch=2, seed=0):
    spatial = (size,) * rank
    shape = (batch, *spatial, channels) if data_format == "channels_last" else (batch, channels, *spatial)
    return _x(*shape, seed=seed)


def _built(cls, rank, data_format, groups, filters=6, **kwargs):
    layer = cls(filters, 3, data_format=data_format, groups=groups, padding="same", **kwargs)
    layer(_input(rank, data_format))
    return layer


def _torch_order(layer) -> bool:
    """The kernel's storage is the memory order torch's conv reads for the layer's data format."""
    k = layer.kernel
    rank = k.dim() - 2
    if layer.data_format == "channels_last":
        order = (rank + 1, *range(rank), rank)  # (filters, *kernel_size, in)
    else:
        order = (rank + 1, rank, *range(rank))  # (filters, in, *kernel_size)
    return k.permute(order).is_contiguous() and not k.is_contiguous()


@pytest.mark.parametrize("cls,rank,data_format,groups", CASES, ids=IDS)
def test_the_kernel_torch_reads_is_the_stored_kernel_no_copy(cls, rank, data_format, groups):
    """The view `call` hands torch is contiguous in the memory format torch's conv wants and shares the
    parameter's storage (before, it was a permuted view that torch, or the layer, copied every call)."""
    layer = _built(cls, rank, data_format, groups)
    kernel = layer.kernel
    view = layer._torch_kernel(kernel)
    assert view.data_ptr() == kernel.data_ptr()
    if data_format == "channels_last" and rank < 3:
        assert view.is_contiguous(memory_format=torch.channels_last)
    elif data_format == "channels_last":
        assert view.is_contiguous(memory_format=torch.channels_last_3d)
    else:
        assert view.is_contiguous()
    assert tuple(kernel.shape) == (3,) * rank + (4 // groups, 6)  # Keras's shape
    assert _torch_order(layer)


class _Copies(TorchDispatchMode):
    """Records copies (clone, copy_, _to_copy) whose source shares `storage`."""

    COPIES = {"clone", "copy_", "_to_copy", "contiguous"}

    def __init__(self, storage):
        super().__init__()
        self.storage, self.seen = storage, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in self.COPIES:
            src = args[1] if name == "copy_" else args[0]
            if isinstance(src, torch.Tensor) and src.untyped_storage().data_ptr() == self.storage:
                self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
def test_a_conv2d_call_makes_no_copy_of_its_kernel(training):
    """Forward (and backward) of a channels_last Conv2D with a 3x3x64x64 kernel: no op copies the kernel
    (before: `.contiguous(memory_format=channels_last)` of the permuted view, every call)."""
    layer = L.Conv2D(64, 3, padding="same")
    x = _x(2, 6, 6, 64)
    layer(x)
    with _Copies(layer.kernel.untyped_storage().data_ptr()) as mode:
        if training:
            layer(x, training=True).sum().backward()
        else:
            with torch.no_grad():
                layer(x)
    assert mode.seen == []


def _other_conv(kind, rank, data_format):
    """(layer, {weight name: torch view of it}) for the transposed, depthwise and separable convs."""
    name = {1: "1D", 2: "2D", 3: "3D"}[rank]
    if kind == "transpose":
        layer = getattr(L, f"Conv{name}Transpose")(5, 3, strides=2, data_format=data_format)
    elif kind == "depthwise":
        layer = getattr(L, f"DepthwiseConv{name}")(3, depth_multiplier=2, data_format=data_format)
    else:
        layer = getattr(L, f"SeparableConv{name}")(5, 3, depth_multiplier=2, data_format=data_format)
    layer(_input(rank, data_format))
    if kind == "transpose":
        views = {"kernel": layer._torch_kernel(layer.kernel)}
    elif kind == "depthwise":
        views = {"kernel": layer._torch_depthwise_kernel(layer.kernel)}
    else:
        views = {"depthwise_kernel": layer._torch_depthwise_kernel(layer.depthwise_kernel),
                 "pointwise_kernel": layer._torch_kernel(layer.pointwise_kernel)}
    return layer, views


OTHER = [(kind, rank, f) for kind, ranks in (("transpose", (1, 2, 3)), ("depthwise", (1, 2)), ("separable", (1, 2)))
         for rank in ranks for f in ("channels_last", "channels_first")]


@pytest.mark.parametrize("kind,rank,data_format", OTHER, ids=[f"{k}{r}d-{f}" for k, r, f in OTHER])
def test_transposed_depthwise_separable_kernels_are_read_without_a_copy(kind, rank, data_format):
    """The view each layer hands torch shares the stored kernel and is contiguous (channels_last for a
    transposed conv on channels_last data); outputs and gradients equal the same layer with Keras's
    contiguous storage (`contiguous_kernels`)."""
    layer, views = _other_conv(kind, rank, data_format)
    for name, view in views.items():
        weight = layer._parameters[name]
        assert view.data_ptr() == weight.data_ptr(), name
        if kind == "transpose" and data_format == "channels_last":
            fmt = torch.channels_last if view.dim() == 4 else torch.channels_last_3d
            assert view.is_contiguous(memory_format=fmt)
        else:
            assert view.is_contiguous(), name
    twin, _ = _other_conv(kind, rank, data_format)
    keras.layers.rnn.contiguous_kernels(twin)
    twin.set_weights(layer.get_weights())
    assert all(p.is_contiguous() for p in twin.parameters())
    x = _input(rank, data_format, seed=5)
    y, y_twin = layer(x, training=True), twin(x, training=True)
    torch.testing.assert_close(y, y_twin, rtol=1e-5, atol=1e-6)
    g = _x(*y.shape, seed=6)
    (y * g).sum().backward()
    (y_twin * g).sum().backward()
    for (name, p), q in zip(layer.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-5, msg=name)
        assert p.grad.stride() == p.stride(), name


@pytest.mark.parametrize("cls,rank,data_format,groups", CASES, ids=IDS)
def test_outputs_and_gradients_equal_a_contiguous_kernel_and_numpy(cls, rank, data_format, groups):
    """Same outputs and kernel gradients as the same layer with Keras's contiguous storage
    (`contiguous_kernels`), and outputs equal to a NumPy cross-correlation from the maths."""
    layer = _built(cls, rank, data_format, groups)
    twin = cls(6, 3, data_format=data_format, groups=groups, padding="same")
    keras.layers.rnn.contiguous_kernels(twin)
    twin(_input(rank, data_format))
    twin.set_weights(layer.get_weights())
    assert twin.kernel.is_contiguous() and _torch_order(layer)
    x = _input(rank, data_format, seed=1)
    y, y_twin = layer(x, training=True), twin(x, training=True)
    torch.testing.assert_close(y, y_twin, rtol=1e-6, atol=1e-6)
    g = _x(*y.shape, seed=2)
    (y * g).sum().backward()
    (y_twin * g).sum().backward()
    torch.testing.assert_close(layer.kernel.grad, twin.kernel.grad, rtol=1e-5, atol=1e-5)
    assert layer.kernel.grad.stride() == layer.kernel.stride()  # the gradient lands in the parameter's layout

    # NumPy reference: "same" padding with stride 1 and an odd kernel is symmetric
    xn = x.numpy() if data_format == "channels_last" else np.moveaxis(x.numpy(), 1, -1)
    k = layer.kernel.detach().numpy()
    b = layer.bias.detach().numpy()
    xp = np.pad(xn, [(0, 0)] + [(1, 1)] * rank + [(0, 0)])
    cin = k.shape[-2]
    cout_g = k.shape[-1] // groups
    out = np.zeros(xn.shape[:-1] + (k.shape[-1],))
    for offset in np.ndindex(*(3,) * rank):
        window = xp[(slice(None),) + tuple(slice(o, o + 5) for o in offset)]
        for gi in range(groups):
            out[..., gi * cout_g:(gi + 1) * cout_g] += (
                window[..., gi * cin:(gi + 1) * cin] @ k[offset][:, gi * cout_g:(gi + 1) * cout_g]
            )
    out += b
    want = out if data_format == "channels_last" else np.moveaxis(out, -1, 1)
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-4, atol=1e-5)


def test_initializer_draws_are_keras_shaped_and_weights_are_c_ordered_arrays():
    """A seeded initializer draws the same numbers as before (drawn in Keras's shape, then laid out);
    `get_weights()` / `numpy()` are C-contiguous arrays, as Keras's are."""
    init = keras.initializers.GlorotUniform(seed=7)
    layer = L.Conv2D(8, (3, 2), kernel_initializer=init)
    layer(_x(1, 5, 5, 4))
    want = keras.initializers.GlorotUniform(seed=7)((3, 2, 4, 8))
    np.testing.assert_array_equal(layer.kernel.detach().numpy(), np.asarray(want))
    assert _torch_order(layer)
    for array in (layer.get_weights()[0], layer.kernel.numpy(), np.asarray(layer.kernel)):
        assert array.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(array, np.asarray(want))


def test_initializer_draws_equal_keras(keras_ref):
    """Same seed, same shape: the kernel equals real Keras's draw."""
    ours = L.Conv2D(8, 3, kernel_initializer=keras.initializers.HeNormal(seed=3))
    ours(_x(1, 5, 5, 4))
    theirs = keras_ref.layers.Conv2D(8, 3, kernel_initializer=keras_ref.initializers.HeNormal(seed=3))
    theirs(np.zeros((1, 5, 5, 4), "float32"))
    np.testing.assert_array_equal(ours.get_weights()[0], np.asarray(theirs.get_weights()[0]))


def test_writes_and_moves_keep_the_layout():
    """assign / set_weights / load_state_dict / constraints write in place; deepcopy, pickle,
    torch.save, `.double()`, `.bfloat16()` keep the strides; values are Keras's throughout."""
    layer = _built(L.Conv2D, 2, "channels_last", 1, kernel_constraint=keras.constraints.MaxNorm(0.5))
    kernel = layer.kernel
    value = _x(3, 3, 4, 6, seed=4)

    kernel.assign(value)
    assert _torch_order(layer) and layer.kernel is kernel
    np.testing.assert_array_equal(kernel.numpy(), value.numpy())
    kernel.assign_add(torch.ones(3, 3, 4, 6))
    np.testing.assert_allclose(kernel.numpy(), value.numpy() + 1, rtol=1e-6)
    layer.set_weights([value.numpy(), np.zeros(6, "float32")])
    np.testing.assert_array_equal(kernel.numpy(), value.numpy())
    layer.load_state_dict({"kernel": value.contiguous() * 2, "bias": torch.zeros(6)})
    np.testing.assert_array_equal(kernel.numpy(), value.numpy() * 2)
    assert _torch_order(layer) and layer.kernel is kernel

    layer.apply_constraints()  # MaxNorm returns a contiguous tensor: written in place
    want = value.numpy() * 2
    norms = np.sqrt((want**2).sum(axis=0, keepdims=True))  # (Keras's MaxNorm: axis=0 by default)
    np.testing.assert_allclose(kernel.numpy(), want * np.clip(norms, 0, 0.5) / (1e-7 + norms), rtol=1e-5, atol=1e-6)
    assert _torch_order(layer) and layer.kernel is kernel

    for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert _torch_order(other)
        np.testing.assert_array_equal(other.get_weights()[0], layer.get_weights()[0])
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert loaded["kernel"].stride() == kernel.stride()
    torch.testing.assert_close(loaded["kernel"], kernel.detach(), rtol=0, atol=0)

    for convert, dtype in ((lambda m: m.double(), torch.float64), (lambda m: m.bfloat16(), torch.bfloat16)):
        moved = convert(copy.deepcopy(layer))
        assert moved.kernel.dtype == dtype and _torch_order(moved)
        x = _input(2, "channels_last").to(dtype)
        torch.testing.assert_close(moved(x), layer(x.float()).to(dtype), rtol=2e-2, atol=2e-2)


def test_channels_last_conversion_and_swapped_conversions_keep_the_layout():
    """`.to(memory_format=torch.channels_last)` treats a 4-D Keras kernel as a batch of images (its
    channels_last is not torch's conv weight order): the layer puts its own order back. Same under
    `swap_module_params_on_conversion`, where torch swaps the parameter objects' contents."""
    layer = _built(L.Conv2D, 2, "channels_last", 1)
    x = _input(2, "channels_last")
    with torch.no_grad():  # (no graph holding the kernel: torch refuses to swap a parameter it holds)
        want = layer(x)
    kernel = layer.kernel
    layer.to(memory_format=torch.channels_last)
    assert layer.kernel is kernel and _torch_order(layer)
    torch.testing.assert_close(layer(x), want, rtol=0, atol=0)

    old = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        layer.to(torch.float64)
        assert layer.kernel is kernel and layer.kernel.dtype == torch.float64 and _torch_order(layer)
        assert layer.kernel.path == kernel.path
        layer.to(memory_format=torch.channels_last)
        assert _torch_order(layer)
    finally:
        torch.__future__.set_swap_module_params_on_conversion(old)
    torch.testing.assert_close(layer(x.double()), want.double(), rtol=1e-6, atol=1e-6)


def test_state_dict_saved_before_the_layout_change_loads(tmp_path):
    """A `torch.save`d state_dict from kerasish before this change (contiguous Keras-order kernels,
    tests/fixtures/conv_layout, made by tools/fixtures/make_conv_state_dict_pre_layout.py) loads with
    `load_state_dict` and with `assign=True` into never-called layers, which give that code's outputs
    and keep the torch memory order."""
    data = torch.load(FIXTURE, weights_only=True)
    makers = {
        "conv1d_last": lambda: L.Conv1D(5, 3),
        "conv1d_first": lambda: L.Conv1D(5, 3, data_format="channels_first"),
        "conv2d_last": lambda: L.Conv2D(6, (3, 2), groups=2),
        "conv2d_first": lambda: L.Conv2D(6, 3, data_format="channels_first"),
        "conv3d_last": lambda: L.Conv3D(3, 2),
    }
    assert set(makers) == set(data["state"])
    for name, make in makers.items():
        state = data["state"][name]
        assert state["kernel"].is_contiguous()  # the old layout
        for assign in (False, True):
            layer = make()
            layer.load_state_dict(state, assign=assign)
            assert _torch_order(layer), (name, assign)
            np.testing.assert_array_equal(layer.get_weights()[0], state["kernel"].numpy())
            torch.testing.assert_close(layer(data["inputs"][name]), data["outputs"][name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make_optimizer", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: torch.optim.Adam(p, lr=0.01, foreach=True),
    lambda p: torch.optim.Adam(p, lr=0.01, foreach=False),
    lambda p: torch.optim.AdamW(p, lr=0.01, fused=True),
], ids=["sgd-momentum", "adam-foreach", "adam-for-loop", "adamw-fused"])
def test_torch_optimizers_train_the_strided_kernels_as_nn_conv2d(make_optimizer):
    """torch's optimizers (foreach, per-parameter and fused kernels) train the strided kernel exactly as
    they train an `nn.Conv2d` twin with the same weights; their slots follow the parameter's layout."""
    layer = _built(L.Conv2D, 2, "channels_last", 2)
    twin = torch.nn.Conv2d(4, 6, 3, padding=1, groups=2)
    with torch.no_grad():
        twin.weight.copy_(layer.kernel.permute(3, 2, 0, 1))
        twin.bias.copy_(layer.bias)
    opts = [make_optimizer(list(layer.parameters())), make_optimizer(list(twin.parameters()))]
    for step in range(3):
        x = _input(2, "channels_last", seed=10 + step)
        losses = [layer(x, training=True).square().mean(), twin(x.permute(0, 3, 1, 2)).square().mean()]
        for opt, loss in zip(opts, losses):
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert _torch_order(layer)
    torch.testing.assert_close(layer.kernel.detach().permute(3, 2, 0, 1), twin.weight.detach(), rtol=1e-5, atol=1e-6)
    for value in opts[0].state[layer.kernel].values():
        if value.dim() == 4:
            assert value.stride() == layer.kernel.stride()


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_keras_optimizers_and_fit_train_as_with_contiguous_kernels(name):
    """`fit` with Keras's Adam / SGD(momentum) and a kernel constraint: the same weights as the same
    model with Keras's contiguous kernel storage; slots follow the parameter's layout."""
    def make():
        torch.manual_seed(0)
        return keras.Sequential([
            keras.Input((6, 6, 3)),
            L.Conv2D(4, 3, kernel_constraint=keras.constraints.MaxNorm(1.0)),
            L.Conv2D(2, 1),
            L.GlobalAveragePooling2D(),
        ])

    def optimizer():
        return keras.optimizers.Adam(0.01) if name == "adam" else keras.optimizers.SGD(0.05, momentum=0.9)

    x, y = _x(8, 6, 6, 3, seed=1).numpy(), _x(8, 2, seed=2).numpy()
    model, twin = make(), make()
    keras.layers.rnn.contiguous_kernels(twin)
    twin.set_weights(model.get_weights())
    assert _torch_order(model.layers[0]) and twin.layers[0].kernel.is_contiguous()
    for m in (model, twin):
        m.compile(optimizer(), "mse")
        m.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    assert _torch_order(model.layers[0]) and twin.layers[0].kernel.is_contiguous()
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    kernel = model.layers[0].kernel
    slots = [v for v in model.optimizer.variables if tuple(v.shape) == tuple(kernel.shape)]
    assert slots and all(s.stride() == kernel.stride() for s in slots)


def test_torch_compile_fullgraph_matches_eager():
    layer = _built(L.Conv2D, 2, "channels_last", 1)
    x = _input(2, "channels_last", seed=3)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    y = compiled(x, training=True)
    y.sum().backward()
    grad = layer.kernel.grad.clone()
    layer.kernel.grad = None
    want = layer(x, training=True)
    want.sum().backward()
    torch.testing.assert_close(y, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, layer.kernel.grad, rtol=1e-6, atol=1e-6)


def test_contiguous_kernels_lays_conv_kernels_back_for_flat_parameter_tools():
    """Flat-parameter tools that `.view(-1)` (`parameters_to_vector`, `torch.optim.LBFGS`) refuse the
    strided kernels with torch's own error (`.reshape` and matmuls are fine); `contiguous_kernels`
    (README) lays them back in Keras's contiguous order, for a later build too, and `.to()` keeps it."""
    model = keras.Sequential([keras.Input((5, 5, 2)), L.Conv2D(3, 3), L.Flatten(), L.Dense(1)])
    conv = model.layers[0]
    assert _torch_order(conv)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        torch.nn.utils.parameters_to_vector(model.parameters())
    assert conv.kernel.reshape(-1).shape == (54,)
    torch.testing.assert_close(conv.kernel @ torch.ones(3), conv.kernel.detach().sum(-1))
    values = model.get_weights()
    keras.layers.rnn.contiguous_kernels(model)
    assert conv.kernel.is_contiguous()
    for a, b in zip(model.get_weights(), values):
        np.testing.assert_array_equal(a, b)
    model.double()
    model.to(memory_format=torch.contiguous_format)
    assert conv.kernel.is_contiguous()
    flat = torch.nn.utils.parameters_to_vector(model.parameters())
    assert flat.numel() == sum(p.numel() for p in model.parameters())

    lazy = L.Conv2D(3, 3)
    keras.layers.rnn.contiguous_kernels(lazy)
    lazy(_x(1, 5, 5, 2))
    assert lazy.kernel.is_contiguous()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed")
def test_ddp_and_fully_shard_train_as_one_process(tmp_path):
    """One gloo rank: DDP trains the strided kernels (its gradient buckets follow the parameters'
    strides: no "grad strides do not match bucket view strides" warning) to the plain model's weights;
    FSDP2 refuses non-contiguous parameters, and after `contiguous_kernels` a sharded conv model trains
    as the plain model."""
    import warnings

    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")

    def make():
        return keras.Sequential([keras.Input((5, 5, 3)), L.Conv2D(4, 3), L.Conv2D(2, 1), L.Flatten()])

    x = _x(4, 5, 5, 3)

    def train(pairs):
        optimizers = [torch.optim.SGD(m.parameters(), lr=0.1) for m, _ in pairs]
        for _ in range(2):
            for (_model, call), optimizer in zip(pairs, optimizers):
                optimizer.zero_grad()
                call(x, training=True).pow(2).sum().backward()
                optimizer.step()

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        wrapped, plain = make(), make()
        plain.set_weights(wrapped.get_weights())
        ddp = torch.nn.parallel.DistributedDataParallel(wrapped)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*[Gg]rad strides do not match.*")
            train([(wrapped, ddp), (plain, plain)])
        assert _torch_order(wrapped.layers[0])
        torch.testing.assert_close(wrapped(x), plain(x))

        sharded, plain = make(), make()
        plain.set_weights(sharded.get_weights())
        with pytest.raises(NotImplementedError, match="non-contiguous"):
            fully_shard(make())
        fully_shard(keras.layers.rnn.contiguous_kernels(sharded))
        train([(sharded, sharded), (plain, plain)])
        torch.testing.assert_close(sharded(x), plain(x))
    finally:
        dist.destroy_process_group()


def test_contiguous_weights_is_the_neutral_name_of_contiguous_kernels():
    """`keras.utils.contiguous_weights` (conv and recurrent kernels alike) is the function the old name
    `keras.layers.rnn.contiguous_kernels` still reaches; after it every parameter of a conv + LSTM model is
    contiguous and `parameters_to_vector` (which refuses strided parameters) works, values unchanged."""
    assert keras.utils.contiguous_weights is keras.layers.rnn.contiguous_kernels
    torch.manual_seed(0)
    model = keras.Sequential([keras.Input((5, 6, 3)), L.Conv2D(4, 3, padding="same"), L.Reshape((5, 24)),
                              L.LSTM(3)])
    assert not all(p.is_contiguous() for p in model.parameters())
    before = [w.copy() for w in model.get_weights()]
    x = _x(2, 5, 6, 3, seed=7)
    y = model(x)
    assert keras.utils.contiguous_weights(model) is model
    assert all(p.is_contiguous() for p in model.parameters())
    flat = torch.nn.utils.parameters_to_vector(model.parameters())
    assert flat.numel() == model.count_params()
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    torch.testing.assert_close(model(x), y, rtol=1e-6, atol=1e-6)
