"""LSTM kernels stored in torch's layout behind the Keras API.

`LSTMCell.kernel` is `(in, 4 * units)` with Keras's values, but its storage is
torch's contiguous `(4 * units, in)` (strides `(1, in)`), so the fused kernel
reads `kernel.t()` without a copy and gradients accumulate contiguously. These
tests check that nothing Keras-facing changed (values, gradients, weights,
saving, state_dict in both directions, optimizers, regularizers, constraints)
and that the layout survives the ways weights get written or moved.
"""

import copy
import io
import pickle

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.layers.rnn import fused_rnn


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _torch_layout(w) -> bool:
    """`w` is `(in, G * units)` whose transpose is contiguous."""
    return w.dim() == 2 and w.t().is_contiguous() and w.stride() == (1, w.shape[0])


def _kernels(layer):
    return layer.cell.kernel, layer.cell.recurrent_kernel


def _built(units=4, features=3, **kwargs):
    layer = keras.layers.LSTM(units, return_sequences=True, **kwargs)
    layer(_x(2, 5, features))
    return layer


def _nn_lstm(layer):
    """nn.LSTM with `layer`'s weights: Keras's one bias is `b_ih`, `b_hh` zeros."""
    cell = layer.cell
    ref = torch.nn.LSTM(cell.kernel.shape[0], cell.units, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(cell.kernel.t())
        ref.weight_hh_l0.copy_(cell.recurrent_kernel.t())
        ref.bias_ih_l0.copy_(cell.bias)
        ref.bias_hh_l0.zero_()
    return ref


def test_kernels_keep_keras_shapes_in_torch_storage():
    layer = _built(units=4, features=3)
    kernel, recurrent = _kernels(layer)
    assert tuple(kernel.shape) == (3, 16) and tuple(recurrent.shape) == (4, 16)
    assert _torch_layout(kernel) and _torch_layout(recurrent)
    paths = ["lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel", "lstm/lstm_cell/bias"]
    assert [w.path for w in layer.weights] == paths
    assert list(layer.state_dict()) == ["cell.kernel", "cell.recurrent_kernel", "cell.bias"]
    assert [tuple(v.shape) for v in layer.state_dict().values()] == [(3, 16), (4, 16), (16,)]
    # get_weights: C-ordered copies, as Keras returns them
    for array, w in zip(layer.get_weights(), layer.weights):
        assert array.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(array, w.detach().numpy())


def test_fused_kernel_reads_the_storage_without_a_copy():
    layer = _built()
    cell = layer.cell
    weights = fused_rnn.flat_weights("lstm", cell, _x(2, 5, 3))
    assert weights[0].data_ptr() == cell.kernel.data_ptr() and weights[0].is_contiguous()
    assert weights[1].data_ptr() == cell.recurrent_kernel.data_ptr() and weights[1].is_contiguous()


def test_placeholders_materialize_in_torch_layout():
    """An optimizer made before the first call holds the re-laid weights."""
    layer = keras.layers.LSTM(4)
    params = list(layer.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1)
    layer(_x(2, 5, 3))
    assert params[0] is layer.cell.kernel and params[1] is layer.cell.recurrent_kernel
    assert _torch_layout(params[0]) and _torch_layout(params[1])
    before = layer.cell.kernel.detach().clone()
    layer(_x(2, 5, 3), training=True).sum().backward()
    optimizer.step()
    assert not torch.equal(layer.cell.kernel.detach(), before)


def test_values_and_gradients_equal_keras(keras_ref):
    x = _x(3, 6, 5).numpy()
    theirs = keras_ref.layers.LSTM(4, return_sequences=True)
    theirs(x)
    ours = keras.layers.LSTM(4, return_sequences=True)
    ours(torch.from_numpy(x))
    ours.set_weights(theirs.get_weights())
    assert _torch_layout(ours.cell.kernel)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)

    out = ours(torch.from_numpy(x), training=True)
    out.pow(2).sum().backward()
    ref_out = theirs(torch.from_numpy(x), training=True)
    ref_out.pow(2).sum().backward()
    torch.testing.assert_close(out, ref_out.detach().cpu(), rtol=1e-5, atol=1e-6)
    for w, v in zip(ours.trainable_weights, theirs.trainable_weights):
        torch.testing.assert_close(w.grad, v.value.grad.cpu(), rtol=1e-4, atol=1e-6)


def test_gradients_accumulate_in_the_storage_layout():
    """Two backward passes: the gradient keeps the weight's layout (no strided
    adds) and equals nn.LSTM's, transposed to Keras's layout."""
    layer = _built(units=5, features=3)
    ref = _nn_lstm(layer)
    for seed in (1, 2):
        x = _x(2, 7, 3, seed=seed)
        layer(x, training=True).pow(2).sum().backward()
        ref(x)[0].pow(2).sum().backward()
    kernel, recurrent = _kernels(layer)
    assert kernel.grad.stride() == kernel.stride() and recurrent.grad.stride() == recurrent.stride()
    torch.testing.assert_close(kernel.grad, ref.weight_ih_l0.grad.t())
    torch.testing.assert_close(recurrent.grad, ref.weight_hh_l0.grad.t())
    torch.testing.assert_close(layer.cell.bias.grad, ref.bias_ih_l0.grad)


def test_layout_survives_writes_and_moves():
    layer = _built()
    values = [w.detach().clone() for w in layer.weights]
    layer.cell.kernel.assign(values[0] * 2)
    assert _torch_layout(layer.cell.kernel)
    torch.testing.assert_close(layer.cell.kernel.detach(), values[0] * 2)
    layer.set_weights([v.numpy() for v in values])
    assert _torch_layout(layer.cell.kernel)
    torch.testing.assert_close(layer.cell.kernel.detach(), values[0])
    for moved in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer).double()):
        for w, v in zip(_kernels(moved), values):
            assert _torch_layout(w)
            torch.testing.assert_close(w.detach(), v.to(w.dtype))
    x = _x(2, 5, 3)
    torch.testing.assert_close(pickle.loads(pickle.dumps(layer))(x), layer(x))


def _contiguous_copy(layer):
    """The layer as the previous release stored it: the same values in
    Keras's contiguous `(in, G * units)` layout."""
    old = copy.deepcopy(layer)
    for w in _kernels(old):
        w.data = w.data.contiguous()
    assert not _torch_layout(old.cell.kernel)
    return old


def test_state_dicts_load_in_both_directions():
    layer = _built()
    old = _contiguous_copy(layer)
    x = _x(2, 5, 3)
    expected = layer(x)

    # a checkpoint with contiguous (in, 4u) kernels (what the previous
    # release wrote) into a new layer, built lazily by the load and built already
    buffer = io.BytesIO()
    torch.save(old.state_dict(), buffer)
    for fresh in (keras.layers.LSTM(4, return_sequences=True), _built()):
        buffer.seek(0)
        fresh.load_state_dict(torch.load(buffer, weights_only=True))
        assert _torch_layout(fresh.cell.kernel) and _torch_layout(fresh.cell.recurrent_kernel)
        torch.testing.assert_close(fresh(x), expected)

    # this layout's checkpoint into a layer with contiguous kernels
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    target = _contiguous_copy(_built())
    target.load_state_dict(torch.load(buffer, weights_only=True))
    for w, v in zip(_kernels(target), _kernels(layer)):
        assert w.is_contiguous()
        torch.testing.assert_close(w.detach(), v.detach())
    torch.testing.assert_close(target(x), expected)


def test_keras_weight_files_round_trip(tmp_path):
    pytest.importorskip("h5py", reason="Keras weight files need h5py")
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4)])
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    other = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4)])
    other.load_weights(path)
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert _torch_layout(other.layers[0].cell.kernel)


def test_adam_slots_follow_the_variables_and_match_keras(keras_ref):
    """One `fit` step with Adam, L2 regularizers and a NonNeg constraint on
    the kernels equals Keras's; the Adam moments have the variables' shapes."""
    x = _x(8, 5, 3).numpy()
    y = _x(8, 4, seed=1).numpy()

    def make(lib):
        model = lib.Sequential(
            [
                lib.Input((5, 3)),
                lib.layers.LSTM(
                    4,
                    kernel_regularizer=lib.regularizers.L2(0.01),
                    recurrent_regularizer=lib.regularizers.L2(0.02),
                    kernel_constraint=lib.constraints.NonNeg(),
                ),
            ]
        )
        model.compile(optimizer=lib.optimizers.Adam(0.01), loss="mse")
        return model

    theirs, ours = make(keras_ref), make(keras)
    ours.set_weights(theirs.get_weights())
    kernel = ours.layers[0].cell.kernel
    assert _torch_layout(kernel)
    torch.testing.assert_close(sum(ours.losses), torch.as_tensor(sum(float(v) for v in theirs.losses)))
    ours.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    theirs.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    assert _torch_layout(kernel) and (kernel.detach() >= 0).all()
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    moments = [v for v in ours.optimizer.variables if tuple(v.shape) == tuple(kernel.shape)]
    assert len(moments) == 2, [tuple(v.shape) for v in ours.optimizer.variables]  # m and v


@pytest.mark.parametrize("kwargs", [{"foreach": False}, {"foreach": True}, {"fused": True}])
def test_torch_adam_steps_equal_nn_lstm(kwargs):
    """torch's Adam implementations (per-tensor, foreach, fused) on the
    re-laid weights: the same steps as on nn.LSTM, moments in the weights'
    layout."""
    layer = keras.layers.LSTM(4)
    x = _x(2, 5, 3)
    layer(x)
    ref = _nn_lstm(layer)
    ref.bias_hh_l0.requires_grad_(False)  # Keras has one bias: torch's b_hh stays zero
    ours_opt = torch.optim.Adam(layer.parameters(), lr=0.1, **kwargs)
    ref_opt = torch.optim.Adam([p for p in ref.parameters() if p.requires_grad], lr=0.1, **kwargs)
    for _ in range(3):
        ours_opt.zero_grad()
        ref_opt.zero_grad()
        layer(x, training=True).pow(2).sum().backward()
        ref(x)[0][:, -1].pow(2).sum().backward()
        ours_opt.step()
        ref_opt.step()
    kernel, recurrent = _kernels(layer)
    torch.testing.assert_close(kernel.detach(), ref.weight_ih_l0.detach().t())
    torch.testing.assert_close(recurrent.detach(), ref.weight_hh_l0.detach().t())
    torch.testing.assert_close(layer.cell.bias.detach(), ref.bias_ih_l0.detach())
    assert _torch_layout(kernel) and ours_opt.state[kernel]["exp_avg"].stride() == kernel.stride()


def test_contiguous_kernels_restores_keras_storage():
    """The way back for torch tools that need contiguous parameters: same
    values and outputs, contiguous storage, kept by a rebuild; gradients
    still equal nn.LSTM's."""
    from kerasish.layers.rnn.base_rnn_cell import contiguous_kernels

    layer = _built(units=4, features=3)
    x = _x(2, 5, 3)
    expected = layer(x)
    values = [w.detach().clone() for w in _kernels(layer)]
    assert contiguous_kernels(layer) is layer
    for w, v in zip(_kernels(layer), values):
        assert w.is_contiguous()
        torch.testing.assert_close(w.detach(), v)
    torch.testing.assert_close(layer(x), expected)
    torch.nn.utils.parameters_to_vector(layer.parameters())  # views need contiguous parameters
    ref = _nn_lstm(layer)
    layer(x, training=True).pow(2).sum().backward()
    ref(x)[0].pow(2).sum().backward()
    torch.testing.assert_close(layer.cell.kernel.grad, ref.weight_ih_l0.grad.t())

    lazy = keras.layers.LSTM(4)
    contiguous_kernels(lazy)  # before the build: the build keeps Keras's storage
    lazy(x)
    assert lazy.cell.kernel.is_contiguous() and lazy.cell.recurrent_kernel.is_contiguous()

    # every recurrent cell of a model, also kernels that were not contiguous
    # for another reason (the orthogonal initializer's square matrices)
    model = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)),
            keras.layers.SimpleRNN(4),
        ]
    )
    values = model.get_weights()
    expected = model(x)
    assert not all(p.is_contiguous() for p in model.parameters())
    contiguous_kernels(model)
    assert all(p.is_contiguous() for p in model.parameters())
    for a, b in zip(model.get_weights(), values):
        np.testing.assert_array_equal(a, b)
    torch.testing.assert_close(model(x), expected)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed")
def test_ddp_and_fully_shard_train_as_one_process(tmp_path):
    """One gloo rank: DDP trains the torch-layout kernels (its buckets follow
    the parameters' strides); FSDP2 refuses non-contiguous parameters, and
    after `contiguous_kernels` a sharded LSTM trains as the plain model."""
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    from kerasish.layers.rnn.base_rnn_cell import contiguous_kernels

    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")

    def make():
        return keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)])

    def train(pairs):
        optimizers = [torch.optim.SGD(m.parameters(), lr=0.1) for m, _ in pairs]
        for _ in range(2):
            for (model, call), optimizer in zip(pairs, optimizers):
                optimizer.zero_grad()
                call(x, training=True).pow(2).sum().backward()
                optimizer.step()

    x = _x(4, 5, 3)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        wrapped, plain = make(), make()
        plain.set_weights(wrapped.get_weights())
        ddp = torch.nn.parallel.DistributedDataParallel(wrapped)
        train([(wrapped, ddp), (plain, plain)])
        assert _torch_layout(wrapped.layers[0].cell.kernel)
        torch.testing.assert_close(wrapped(x), plain(x))

        sharded, plain = make(), make()
        plain.set_weights(sharded.get_weights())
        fully_shard(contiguous_kernels(sharded))
        train([(sharded, sharded), (plain, plain)])
        torch.testing.assert_close(sharded(x), plain(x))
    finally:
        dist.destroy_process_group()
