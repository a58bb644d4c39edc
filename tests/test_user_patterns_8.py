"""Habits PyTorch users bring to kerasish layers (round 8): seeded random
preprocessing layers (and a fitted TextVectorization) inside a torch
`Dataset` read by spawned `DataLoader` workers (the workers shared the main
process's seed counter and raced on it; now each worker draws its own
stream, as torch's own random ops do); nanoGPT-style weight tying both ways
(a torch `lm_head` taking a kerasish Embedding's matrix, a kerasish layer
taking a torch `nn.Parameter`: it stayed a plain Parameter without the
layer's regularizer, now it becomes the Keras weight; `dec.kernel =
enc.kernel`, whose re-registration reordered the layer's weights in files);
safetensors `save_file` / `save_model` / `load_model`; `FlopCounterMode`;
TensorBoard's `add_graph` and `add_histogram`; gradient penalties (double
backward) through Conv / LayerNormalization / BatchNormalization / Dense,
LSTM / GRU and MultiHeadAttention; foreach and fused torch optimizers; the
torch resume recipe with SequentialLR into a never-called model; Keras
optimizers in a torch loop (an unbuilt one's `step()` silently did nothing;
`build(model.parameters())` before the first call failed); a dict
`collate_fn` into a multi-input model's `fit` (against real Keras 3);
moving statistics under `inference_mode`; weight hooks, foreach clipping,
saliency maps; `vector_to_parameters`; `fit` under anomaly detection and
the profiler.
References: the same pattern with torch's own random ops or `torch.nn`
modules holding the same weights (Keras kernels are (in, out), torch's
(out, in)), real Keras 3, the maths (Keras's Adam, L2, moving statistics,
flop counts), or the same calls made without the tool around them.
"""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import kerasish

L = kerasish.layers


# ------------------------------------------------ seeded augmentation in DataLoader workers
_TEXTS = ["the cat sat", "a dog ran far", "the dog sat down", "cat ran", "a cat", "dogs sat", "the end", "far"]


class _Augmented(torch.utils.data.Dataset):
    """Per item: a seeded kerasish Dropout and RandomFlip, torch's own `torch.rand` (the reference habit),
    a fitted TextVectorization (a string layer pickled to the workers) and the worker's seed."""

    def __init__(self, dropout, flip, vectorize):
        self.dropout, self.flip, self.vectorize = dropout, flip, vectorize

    def __len__(self):
        return len(_TEXTS)

    def __getitem__(self, i):
        return (self.dropout(torch.ones(64), training=True), self.flip(_IMAGE, training=True), torch.rand(8),
                torch.as_tensor(self.vectorize(np.array([_TEXTS[i]]))[0]),
                str(torch.utils.data.get_worker_info().seed))


_IMAGE = torch.arange(12.0).reshape(3, 4, 1)


def test_seeded_augmentation_in_spawned_dataloader_workers_draws_per_worker_streams_like_torch_rand(monkeypatch):
    """A seeded Dropout / RandomFlip inside `Dataset.__getitem__` with `num_workers=2`: "spawn" pickles the
    dataset, which moves the layers' seed-state tensors into shared memory, so both workers advanced the main
    process's counter in whatever order they ran (samples changed run to run; the main process's layer
    moved on too). Now, like torch's `torch.rand` in a worker (seeded from the worker's seed, which the
    loader draws from torch's RNG): every sample is a function of the layer's seed, the worker's seed and
    the worker's call count (recomputed here in the main process from the seeds the workers report), items
    differ across workers and epochs, and the main process's layers are untouched. The TextVectorization
    output equals the main process's call. (One spawn: persistent workers over two epochs.)"""
    dropout, flip = L.Dropout(0.5, seed=3), L.RandomFlip("horizontal", seed=4)
    vectorize = L.TextVectorization(output_sequence_length=4)
    vectorize.adapt(np.array(_TEXTS))
    states = [dropout.seed_generator.state.clone(), flip.seed_generator.state.clone()]
    # spawned workers, bounded waits: forking pytest-xdist's threaded worker can hang
    loader = torch.utils.data.DataLoader(_Augmented(dropout, flip, vectorize), batch_size=2, num_workers=2,
                                         multiprocessing_context="spawn", timeout=120, persistent_workers=True)
    torch.manual_seed(0)
    epochs = [list(loader) for _ in range(2)]
    # the main process's layers did not move (spawn shared their state's storage with the workers)
    torch.testing.assert_close(dropout.seed_generator.state, states[0], rtol=0, atol=0)
    torch.testing.assert_close(flip.seed_generator.state, states[1], rtol=0, atol=0)
    items = [(m, f, r, t, seed) for batches in epochs for batch in batches for m, f, r, t, seed in zip(*batch)]
    assert len({seed for *_, seed in items}) == 2
    for rows in ([m for m, *_ in items], [r for _, _, r, _, _ in items]):  # torch.rand: its own numbers too
        assert len({tuple(row.tolist()) for row in rows}) == len(items)
    # each worker's copies from the main process's layers, called in the worker's order
    from kerasish.random import seed_generator

    copies = {seed: copy.deepcopy((dropout, flip)) for *_, seed in items}
    for mask, flipped, _, tokens, seed in items:
        monkeypatch.setattr(seed_generator, "_worker_info", lambda seed=seed: SimpleNamespace(seed=int(seed)))
        worker_dropout, worker_flip = copies[seed]
        torch.testing.assert_close(mask, worker_dropout(torch.ones(64), training=True), rtol=0, atol=0)
        torch.testing.assert_close(flipped, worker_flip(_IMAGE, training=True), rtol=0, atol=0)
        assert torch.equal(flipped, _IMAGE) or torch.equal(flipped, _IMAGE.flip(1))
    assert {tuple(m.unique().tolist()) for m, *_ in items} == {(0.0, 2.0)}
    tokens = torch.stack([t for _, _, _, t, _ in items[:len(_TEXTS)]])
    torch.testing.assert_close(tokens, torch.as_tensor(vectorize(np.array(_TEXTS))))


# ------------------------------------------------ weight tying, nanoGPT style
_V, _D = 11, 6


class _TiedLM(torch.nn.Module):
    """nanoGPT's tying on a kerasish Embedding: a torch `lm_head` whose weight *is* the embedding matrix
    (`(vocab, dim)` is `nn.Linear(dim, vocab)`'s `(out, in)`), a kerasish LayerNormalization between."""

    def __init__(self):
        super().__init__()
        self.wte = L.Embedding(_V, _D)
        self.ln = L.LayerNormalization()
        self.wte.build((None, 1))
        self.ln.build((None, 1, _D))
        self.lm_head = torch.nn.Linear(_D, _V, bias=False)
        self.lm_head.weight = self.wte.embeddings

    def forward(self, ids):
        return self.lm_head(self.ln(self.wte(ids)))


class _TiedLMTwin(torch.nn.Module):
    def __init__(self, ours):
        super().__init__()
        self.wte = torch.nn.Embedding(_V, _D)
        self.ln = torch.nn.LayerNorm(_D, eps=1e-3)  # Keras's epsilon
        self.lm_head = torch.nn.Linear(_D, _V, bias=False)
        self.lm_head.weight = self.wte.weight
        with torch.no_grad():
            self.wte.weight.copy_(ours.wte.embeddings)
            self.ln.weight.copy_(ours.ln.gamma)
            self.ln.bias.copy_(ours.ln.beta)

    def forward(self, ids):
        return self.lm_head(self.ln(self.wte(ids)))


def test_lm_head_tied_to_a_kerasish_embedding_trains_and_checkpoints_like_the_torch_twin(tmp_path):
    """`lm_head.weight = wte.embeddings`: named_parameters lists the tied matrix once (so AdamW steps it
    once per step, with the gradients of both uses summed), state_dict holds both names on one storage,
    `torch.save`/`load_state_dict` into a fresh tied model and safetensors' `save_model`/`load_model` keep
    it, and `safetensors.torch.save_file(state_dict)` refuses the shared tensors as it does for the twin."""
    st = pytest.importorskip("safetensors.torch", reason="safetensors (a test extra) checks the ecosystem files")
    torch.manual_seed(0)
    ours = _TiedLM()
    twin = _TiedLMTwin(ours)
    assert [n for n, _ in ours.named_parameters()] == ["wte.embeddings", "ln.gamma", "ln.beta"]
    assert len(list(twin.parameters())) == len(list(ours.parameters())) == 3
    g = torch.Generator().manual_seed(1)
    ids, targets = torch.randint(0, _V, (4, 5), generator=g), torch.randint(0, _V, (4, 5), generator=g)
    for model in (ours, twin):
        opt = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), targets.flatten()).backward()
            opt.step()
    tol = {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(ours.wte.embeddings.detach(), twin.wte.weight.detach(), **tol)
    assert ours.lm_head.weight is ours.wte.embeddings
    state = ours.state_dict()
    assert list(state) == ["wte.embeddings", "ln.gamma", "ln.beta", "lm_head.weight"]
    assert state["wte.embeddings"].data_ptr() == state["lm_head.weight"].data_ptr()
    torch.save(state, tmp_path / "lm.pt")
    fresh = _TiedLM()
    fresh.load_state_dict(torch.load(tmp_path / "lm.pt", weights_only=True))
    assert fresh.lm_head.weight is fresh.wte.embeddings
    torch.testing.assert_close(fresh(ids), ours(ids), rtol=0, atol=0)
    for model in (ours, twin):
        with pytest.raises(RuntimeError, match="share memory"):
            st.save_file(model.state_dict(), tmp_path / "shared.safetensors")
    st.save_model(ours, tmp_path / "lm.safetensors")
    fresh = _TiedLM()
    missing, unexpected = st.load_model(fresh, tmp_path / "lm.safetensors")
    assert (set(missing), unexpected) == (set(), [])
    assert fresh.lm_head.weight is fresh.wte.embeddings
    torch.testing.assert_close(fresh(ids), twin(ids), **tol)


class _Autoencoder(kerasish.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.enc = L.Dense(_D, use_bias=False)
        self.dec = L.Dense(_D, use_bias=False)

    def call(self, x):
        return self.dec(self.enc(x))


def test_a_kernel_tied_by_attribute_assignment_after_build_fits_saves_and_loads_like_the_torch_twin(tmp_path):
    """The torch way on kerasish layers: `model.dec.kernel = model.enc.kernel` after the first call. The
    model then has one weight (`weights`, `parameters()`, the kerasish optimizer's variables), `fit` with SGD
    steps it once with the summed gradient, as torch SGD steps the twin's tied `nn.Linear` weights; the
    state_dict round trip and the `.keras` file give the same predictions."""
    torch.manual_seed(0)
    model = _Autoencoder()
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(16, _D, generator=g), torch.randn(16, _D, generator=g)
    model(x[:1])
    model.dec.kernel = model.enc.kernel
    assert len(model.weights) == len(list(model.parameters())) == 1
    enc, dec = torch.nn.Linear(_D, _D, bias=False), torch.nn.Linear(_D, _D, bias=False)
    with torch.no_grad():
        enc.weight.copy_(model.enc.kernel.T)
    dec.weight = enc.weight
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    for i in range(0, 16, 8):
        opt.zero_grad()
        torch.nn.functional.mse_loss(dec(enc(x[i:i + 8])), y[i:i + 8]).backward()
        opt.step()
    model.compile(optimizer=kerasish.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert model.dec.kernel is model.enc.kernel
    torch.testing.assert_close(model.enc.kernel.detach(), enc.weight.detach().T, rtol=1e-5, atol=1e-6)
    want = model.predict(x, verbose=0)
    clone = _Autoencoder()
    clone.load_state_dict(model.state_dict())
    np.testing.assert_allclose(clone.predict(x, verbose=0), want, rtol=0, atol=0)
    model.save(tmp_path / "tied.keras")
    loaded = kerasish.saving.load_model(tmp_path / "tied.keras", custom_objects={"_Autoencoder": _Autoencoder})
    np.testing.assert_allclose(loaded.predict(x, verbose=0), want, rtol=0, atol=0)


class _TiedByTheEmbedding(torch.nn.Module):
    """The other direction: the kerasish Embedding takes a torch Linear's weight
    (`wte.embeddings = lm_head.weight`), with an `embeddings_regularizer`."""

    def __init__(self):
        super().__init__()
        self.wte = L.Embedding(_V, _D, embeddings_regularizer="l2")
        self.wte.build((None, 1))
        self.lm_head = torch.nn.Linear(_D, _V, bias=False)
        self.wte.embeddings = self.lm_head.weight

    def forward(self, ids):
        return self.lm_head(self.wte(ids))


def test_a_torch_parameter_assigned_in_place_of_a_keras_weight_becomes_that_weight():
    """`wte.embeddings = lm_head.weight` put a plain `nn.Parameter` among the layer's Keras weights: no
    `path` / `assign`, and the layer's `embeddings_regularizer` silently stopped counting. Now the Parameter
    itself (still tied: the same object in both modules) becomes the Keras weight, with the replaced one's
    path and regularizer, and trains like the torch twin (nn.Embedding tied the same way) plus the L2 term."""
    torch.manual_seed(0)
    ours = _TiedByTheEmbedding()
    twin = torch.nn.Module()
    twin.wte, twin.lm_head = torch.nn.Embedding(_V, _D), torch.nn.Linear(_D, _V, bias=False)
    twin.wte.weight = twin.lm_head.weight
    with torch.no_grad():
        twin.lm_head.weight.copy_(ours.lm_head.weight)
    assert ours.wte.embeddings is ours.lm_head.weight
    assert [w.path for w in ours.wte.weights] == [ours.wte.name + "/embeddings"]
    ids = torch.randint(0, _V, (4, 5), generator=torch.Generator().manual_seed(16))
    for model in (ours, twin):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        assert len(opt.param_groups[0]["params"]) == 1
        for _ in range(2):
            opt.zero_grad()
            logits = model.lm_head(model.wte(ids))
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten())
            weight = model.lm_head.weight
            if model is ours:
                assert len(ours.wte.losses) == 1
                torch.testing.assert_close(ours.wte.losses[0], 0.01 * (weight ** 2).sum())  # Keras's L2 (0.01)
                loss = loss + ours.wte.losses[0]
            else:
                loss = loss + 0.01 * (weight ** 2).sum()
            loss.backward()
            opt.step()
    torch.testing.assert_close(ours.wte.embeddings.detach(), twin.wte.weight.detach(), rtol=1e-5, atol=1e-6)


def test_tying_a_layer_normalization_gamma_keeps_keras_weight_order_in_files(tmp_path):
    """`ln2.gamma = ln1.gamma` re-registered the tied gamma after `beta`: `get_weights()` and `.weights.h5`
    files of the tying layer listed beta first, so a fresh model loaded them swapped, silently (both have
    shape (units,)). Now the tied weight takes the replaced one's place, in Keras's order [gamma, beta]."""
    inputs = kerasish.Input((4,))
    first, second = L.LayerNormalization(), L.LayerNormalization()
    model = kerasish.Model(inputs, second(first(inputs)))
    with torch.no_grad():
        first.gamma.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        first.beta.fill_(0.5)
        second.beta.fill_(-0.5)
    second.gamma = first.gamma
    assert second.gamma is first.gamma
    assert [w.path.rsplit("/", 1)[1] for w in second.weights] == ["gamma", "beta"]
    np.testing.assert_array_equal(second.get_weights()[0], [1.0, 2.0, 3.0, 4.0])
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(17))
    model.save_weights(tmp_path / "tied.weights.h5")
    fresh_first, fresh_second = L.LayerNormalization(), L.LayerNormalization()
    fresh_inputs = kerasish.Input((4,))
    fresh = kerasish.Model(fresh_inputs, fresh_second(fresh_first(fresh_inputs)))
    fresh.load_weights(tmp_path / "tied.weights.h5")
    np.testing.assert_array_equal(fresh_second.beta.detach().numpy(), np.full(4, -0.5, "float32"))
    torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


def test_torch_pruning_keeps_keras_weight_order_so_files_load_unswapped(tmp_path):
    """`torch.nn.utils.prune` re-registers the weight as `<name>_orig` and `prune.remove` puts it back: the
    weight came back last, so a pruned Dense listed `[bias, kernel]` and a pruned LayerNormalization `gamma`
    `[beta, gamma]`, and the `.weights.h5` file of the latter loaded back swapped, silently. Now the weight
    keeps its place during pruning and after `remove`; the saved values are the pruned ones (torch's mask)."""
    from torch.nn.utils import prune

    inputs = kerasish.Input((4,))
    dense, norm = L.Dense(4), L.LayerNormalization()
    model = kerasish.Model(inputs, norm(dense(inputs)))
    with torch.no_grad():
        norm.gamma.copy_(torch.tensor([0.1, 2.0, 0.2, 3.0]))
        norm.beta.fill_(0.5)
    prune.l1_unstructured(dense, "kernel", amount=0.5)
    prune.l1_unstructured(norm, "gamma", amount=0.5)
    assert [w.path.rsplit("/", 1)[1] for w in dense.weights[:2]] == ["kernel", "bias"]
    prune.remove(dense, "kernel")
    prune.remove(norm, "gamma")
    assert [w.path.rsplit("/", 1)[1] for w in dense.weights] == ["kernel", "bias"]
    assert [w.path.rsplit("/", 1)[1] for w in norm.weights] == ["gamma", "beta"]
    np.testing.assert_array_equal(norm.get_weights()[0], [0.0, 2.0, 0.0, 3.0])
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(20))
    model.save_weights(tmp_path / "pruned.weights.h5")
    fresh_inputs = kerasish.Input((4,))
    fresh = kerasish.Model(fresh_inputs, L.LayerNormalization()(L.Dense(4)(fresh_inputs)))
    fresh.load_weights(tmp_path / "pruned.weights.h5")
    torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


# ------------------------------------------------ ecosystem files and tools
def _seq_model():
    return kerasish.Sequential([L.Embedding(10, 4), L.LSTM(5, return_sequences=True), L.BatchNormalization(),
                                L.GRU(3), L.Dense(2)])


def test_safetensors_files_of_an_lstm_model_load_into_a_never_called_model(tmp_path):
    """`safetensors.torch.save_file(model.state_dict())` refuses the LSTM kernels (transposed views of
    torch's layout, README) naming the tensor; `contiguous_kernels(model)` (the README's remedy) makes it
    work, `save_model` works as it is, and both files load into a model that was never called (with
    `load_state_dict` / `load_model`) to the same outputs, BatchNormalization statistics included."""
    st = pytest.importorskip("safetensors.torch", reason="safetensors (a test extra) checks the ecosystem files")
    torch.manual_seed(0)
    model = _seq_model()
    ids = torch.randint(0, 10, (3, 7), generator=torch.Generator().manual_seed(3))
    model(ids, training=True)  # moves the BatchNormalization statistics
    want = model(ids)
    st.save_model(model, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"non contiguous tensor: `layers\.1\.cell\.kernel`|non contiguous"):
        st.save_file(model.state_dict(), tmp_path / "state.safetensors")
    kerasish.layers.rnn.contiguous_kernels(model)
    st.save_file(model.state_dict(), tmp_path / "state.safetensors")
    fresh = _seq_model()
    assert fresh.load_state_dict(st.load_file(tmp_path / "state.safetensors")) is not None
    torch.testing.assert_close(fresh(ids), want, rtol=0, atol=0)
    fresh = _seq_model()
    missing, unexpected = st.load_model(fresh, tmp_path / "model.safetensors")
    assert (set(missing), unexpected) == (set(), [])
    torch.testing.assert_close(fresh(ids), want, rtol=0, atol=0)


def test_flop_counter_counts_what_it_counts_for_the_torch_twin():
    """`torch.utils.flop_counter.FlopCounterMode` over a Conv2D / Dense / MultiHeadAttention model counts the
    flops of the equivalent torch modules (`nn.MultiheadAttention(need_weights=False)`: SDPA, as kerasish)."""
    conv, dense, mha = L.Conv2D(4, 3, padding="same"), L.Dense(8), L.MultiHeadAttention(2, 4)
    image, seq = torch.randn(2, 6, 6, 3), torch.randn(2, 5, 8)
    t_conv, t_dense = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Linear(4, 8)
    t_mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)

    def ours():
        h = dense(conv(image))
        return mha(seq, seq), h

    def theirs():
        h = t_dense(t_conv(image.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
        return t_mha(seq, seq, seq, need_weights=False), h

    counts = []
    for run in (ours, theirs):
        run()
        with FlopCounterMode(display=False) as counter:
            run()
        counts.append(counter.get_total_flops())
    # 2 * multiply-adds: the convolution, the Dense, MHA's four projections; torch's counter registers
    # the attention product itself (2 * 2 * batch * heads * 5 * 5 * 4) for some SDPA kernels only
    base = 2 * (2 * 6 * 6 * 4 * 3 * 3 * 3 + 2 * 6 * 6 * 4 * 8 + 4 * 2 * 5 * 8 * 8)
    assert counts[0] == counts[1]
    assert counts[0] in (base, base + 2 * 2 * 2 * 2 * 5 * 5 * 4)


def test_tensorboard_add_graph_and_parameter_histograms_like_torch_modules(tmp_path):
    """`SummaryWriter.add_graph(model, x)` (a `torch.jit.trace`) and `add_histogram` over
    `named_parameters()` write the graph and one histogram per weight, named like the state_dict keys; each
    histogram holds the weight's values as the twin `nn.Linear` weight's histogram holds them."""
    pytest.importorskip("tensorboard", reason="tensorboard (a test extra) reads the event files back")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    inputs = kerasish.Input((4,))
    outputs = L.Dense(2)(L.BatchNormalization()(L.Dense(8, activation="relu")(inputs)))
    model = kerasish.Model(inputs, outputs)
    x = torch.randn(5, 4)
    model(x)
    twin = torch.nn.Linear(4, 8)
    with torch.no_grad():
        twin.weight.copy_(model.layers[1].kernel.T)
    writer = SummaryWriter(str(tmp_path / "ours"))
    writer.add_graph(model, x)
    for name, p in model.named_parameters():
        writer.add_histogram(name, p, 0)
    writer.close()
    twin_writer = SummaryWriter(str(tmp_path / "twin"))
    twin_writer.add_histogram("weight", twin.weight, 0)
    twin_writer.close()
    ours = EventAccumulator(str(tmp_path / "ours")).Reload()
    assert sorted(ours.Tags()["histograms"]) == sorted(n for n, _ in model.named_parameters())
    assert ours.Tags()["graph"]
    ref = EventAccumulator(str(tmp_path / "twin")).Reload().Histograms("weight")[0].histogram_value
    got = ours.Histograms("dense.kernel")[0].histogram_value
    assert (got.num, got.min, got.max) == (ref.num, ref.min, ref.max)
    np.testing.assert_allclose([got.sum, got.sum_squares], [ref.sum, ref.sum_squares], rtol=1e-6)


# ------------------------------------------------ autograd habits: gradient penalties (double backward)
def _penalty(forward, x):
    """WGAN-GP's penalty: (||d critic / d x|| - 1)^2 with `create_graph=True`, then backward."""
    x = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(forward(x).sum(), x, create_graph=True)
    penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    penalty.backward()
    return penalty.detach()


class _CriticTwin(torch.nn.Module):
    """Conv2D -> LayerNormalization -> LeakyReLU -> BatchNormalization -> Flatten -> Dense in NHWC torch."""

    def __init__(self, critic):
        super().__init__()
        conv, norm, _, bn, _, dense = critic.layers
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.norm = torch.nn.LayerNorm(4, eps=1e-3)
        self.bn = torch.nn.BatchNorm2d(4, eps=1e-3)
        self.dense = torch.nn.Linear(4 * 5 * 5, 1)
        with torch.no_grad():
            self.conv.weight.copy_(conv.kernel.permute(3, 2, 0, 1))
            self.conv.bias.copy_(conv.bias)
            self.norm.weight.copy_(norm.gamma)
            self.norm.bias.copy_(norm.beta)
            self.bn.weight.copy_(bn.gamma)
            self.bn.bias.copy_(bn.beta)
            self.dense.weight.copy_(dense.kernel.T)
            self.dense.bias.copy_(dense.bias)

    def forward(self, x):
        h = self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        h = torch.nn.functional.leaky_relu(self.norm(h), 0.2)
        h = self.bn(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.dense(h.flatten(1))


@pytest.mark.parametrize("training", [True, False])
def test_wgan_gp_penalty_through_conv_layernorm_batchnorm_dense_gives_the_twins_gradients(training):
    torch.manual_seed(0)
    critic = kerasish.Sequential([L.Conv2D(4, 3, padding="same"), L.LayerNormalization(), L.LeakyReLU(0.2),
                                  L.BatchNormalization(), L.Flatten(), L.Dense(1)])
    x = torch.randn(3, 5, 5, 2, generator=torch.Generator().manual_seed(4))
    critic(x)
    twin = _CriticTwin(critic)
    twin.train(training)
    ours = _penalty(lambda t: critic(t, training=training), x)
    ref = _penalty(twin, x)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    conv, norm, _, bn, _, dense = critic.layers
    pairs = [(conv.kernel.grad, twin.conv.weight.grad.permute(2, 3, 1, 0)), (norm.gamma.grad, twin.norm.weight.grad),
             (bn.gamma.grad, twin.bn.weight.grad), (bn.beta.grad, twin.bn.bias.grad),
             (dense.kernel.grad, twin.dense.weight.grad.T)]
    for got, want in pairs:
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def _rnn_pair(kind):
    ours = (L.LSTM if kind == "lstm" else L.GRU)(4)
    ours.build((None, 5, 3))
    cell, u = ours.cell, 4
    ref = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(3, 4, batch_first=True)
    with torch.no_grad():
        if kind == "lstm":  # Keras gates i, f, c, o = torch's i, f, g, o; one bias
            ref.weight_ih_l0.copy_(cell.kernel.T)
            ref.weight_hh_l0.copy_(cell.recurrent_kernel.T)
            ref.bias_ih_l0.copy_(cell.bias)
            ref.bias_hh_l0.zero_()
        else:  # Keras z, r, h -> torch r, z, n; reset_after=True: bias rows are (input, recurrent)
            def order(w):
                return torch.cat((w[..., u:2 * u], w[..., :u], w[..., 2 * u:]), dim=-1)

            ref.weight_ih_l0.copy_(order(cell.kernel).T)
            ref.weight_hh_l0.copy_(order(cell.recurrent_kernel).T)
            ref.bias_ih_l0.copy_(order(cell.bias[0]))
            ref.bias_hh_l0.copy_(order(cell.bias[1]))
    return ours, ref


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_double_backward_through_lstm_and_gru_gives_the_torch_rnns_gradients(kind):
    """A gradient penalty over a recurrent critic: double backward through kerasish LSTM / GRU gives the
    penalty and kernel gradients of `nn.LSTM` / `nn.GRU` holding the same weights."""
    torch.manual_seed(0)
    ours, ref = _rnn_pair(kind)
    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(5))
    got = _penalty(ours, x)
    want = _penalty(lambda t: ref(t)[0][:, -1], x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    if kind == "lstm":
        torch.testing.assert_close(ours.cell.kernel.grad, ref.weight_ih_l0.grad.T, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(ours.cell.recurrent_kernel.grad, ref.weight_hh_l0.grad.T, rtol=1e-4, atol=1e-6)
    else:
        u = 4
        grad = ref.weight_ih_l0.grad.T  # torch r, z, n -> Keras z, r, h
        keras_order = torch.cat((grad[:, u:2 * u], grad[:, :u], grad[:, 2 * u:]), 1)
        torch.testing.assert_close(ours.cell.kernel.grad, keras_order, rtol=1e-4, atol=1e-6)


def _attention_reference(mha, x):
    """Multi-head self-attention from the maths on MultiHeadAttention's Keras-layout weights."""
    q = torch.einsum("btd,dhk->bthk", x, mha.query_dense.kernel) + mha.query_dense.bias
    k = torch.einsum("btd,dhk->bthk", x, mha.key_dense.kernel) + mha.key_dense.bias
    v = torch.einsum("btd,dhk->bthk", x, mha.value_dense.kernel) + mha.value_dense.bias
    scores = torch.einsum("bqhk,bshk->bhqs", q, k) / q.shape[-1] ** 0.5
    out = torch.einsum("bhqs,bshk->bqhk", scores.softmax(-1), v)
    return torch.einsum("bqhk,hkd->bqd", out, mha.output_dense.kernel) + mha.output_dense.bias


def test_double_backward_through_multi_head_attention_needs_flash_attention_off_then_matches_the_maths():
    """torch's CPU flash kernel (which SDPA picks, for Keras 3 on torch too) has no double backward; with
    `flash_attention=False` (README) a gradient penalty through MultiHeadAttention gives the penalty and
    the weight gradients of attention written from the maths."""
    torch.manual_seed(0)
    mha = L.MultiHeadAttention(2, 4, flash_attention=False)
    x = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(6))
    mha(x, x)
    got = _penalty(lambda t: mha(t, t), x)
    grads = [mha.query_dense.kernel.grad.clone(), mha.output_dense.kernel.grad.clone()]
    mha.zero_grad()
    want = _penalty(lambda t: _attention_reference(mha, t), x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], mha.query_dense.kernel.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grads[1], mha.output_dense.kernel.grad, rtol=1e-4, atol=1e-6)


# ------------------------------------------------ optimizer flavours
def _conv_model():
    return kerasish.Sequential([L.Conv2D(3, 3), L.BatchNormalization(), L.Flatten(), L.Dense(4),
                                L.LayerNormalization(), L.Dense(2)])


_FLAVOURS = [(torch.optim.Adam, {"foreach": True}), (torch.optim.Adam, {"foreach": False}),
             (torch.optim.Adam, {"fused": True}), (torch.optim.AdamW, {"foreach": True}),
             (torch.optim.AdamW, {"fused": True}), (torch.optim.SGD, {"momentum": 0.9, "foreach": True}),
             (torch.optim.SGD, {"momentum": 0.9, "fused": True})]


@pytest.mark.parametrize("opt_cls,flavour", _FLAVOURS, ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_foreach_and_fused_torch_optimizers_step_kerasish_weights_like_plain_parameters(opt_cls, flavour):
    """kerasish weights are Parameter subclasses; torch's foreach (multi-tensor) and fused kernels step them
    bit for bit as they step plain Parameters holding the same values (the model run through
    `functional_call` with those Parameters)."""
    torch.manual_seed(0)
    model = _conv_model()
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(8, 6, 6, 2, generator=g), torch.randn(8, 2, generator=g)
    model(x)
    model.train()
    plain = {n: torch.nn.Parameter(p.detach().clone()) for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}

    def train(params, forward):
        opt = opt_cls(params, lr=0.01, **flavour)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.mse_loss(forward(x), y).backward()
            opt.step()

    twin = _conv_model()
    twin(x)
    twin.train()
    train(list(plain.values()), lambda t: torch.func.functional_call(twin, {**plain, **buffers}, (t,)))
    train(model.parameters(), model)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), plain[name].detach(), rtol=0, atol=0)
    assert all(type(p) is not torch.nn.Parameter for p in model.parameters())


class _Tagger(kerasish.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.emb = L.Embedding(10, 4)
        self.lstm = L.LSTM(5, return_sequences=True)
        self.mha = L.MultiHeadAttention(2, 3)
        self.norm = L.LayerNormalization()
        self.out = L.Dense(3)

    def call(self, ids):
        h = self.lstm(self.emb(ids))
        return self.out(self.norm(h + self.mha(h, h))[:, -1])


def test_torch_optimizer_and_sequential_lr_checkpoint_resume_into_a_never_called_model(tmp_path):
    """The torch resume recipe: `torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched":
    sched.state_dict()})`, then a fresh model (never called), `load_state_dict`, a fresh AdamW over its
    `parameters()` and SequentialLR(LinearLR, LambdaLR) loading theirs: the optimizer's parameter ids follow
    kerasish's parameter order, so the resumed run equals the uninterrupted one bit for bit."""
    g = torch.Generator().manual_seed(8)
    ids, y = torch.randint(0, 10, (4, 6), generator=g), torch.randn(4, 3, generator=g)

    def make(model):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        warmup = torch.optim.lr_scheduler.LinearLR(opt, 0.1, 1.0, total_iters=2)
        decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.9 ** epoch)
        return opt, torch.optim.lr_scheduler.SequentialLR(opt, [warmup, decay], milestones=[2])

    def step(model, opt, sched):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(ids), y).backward()
        opt.step()
        sched.step()

    torch.manual_seed(0)
    model = _Tagger()
    model(ids)
    model.train()
    opt, sched = make(model)
    for _ in range(3):
        step(model, opt, sched)
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()},
               tmp_path / "ckpt.pt")
    for _ in range(2):
        step(model, opt, sched)
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    resumed = _Tagger()
    resumed.load_state_dict(ckpt["model"])
    resumed.train()
    r_opt, r_sched = make(resumed)
    r_opt.load_state_dict(ckpt["opt"])
    r_sched.load_state_dict(ckpt["sched"])
    for _ in range(2):
        step(resumed, r_opt, r_sched)
    assert [n for n, _ in resumed.named_parameters()] == [n for n, _ in model.named_parameters()]
    for p, q in zip(model.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert r_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def _keras_adam(reference, x, y, steps, lr=0.01):
    """Keras's Adam from the maths (epsilon outside the bias correction, unlike torch.optim.Adam) on plain
    tensors fed through `functional_call(reference, ...)` (a copy of the model holding the start weights)."""
    names = [n for n, _ in reference.named_parameters()]
    params = [p.detach().clone() for p in reference.parameters()]
    moments = [[torch.zeros_like(p), torch.zeros_like(p)] for p in params]
    for t in range(1, steps + 1):
        leaves = [q.clone().requires_grad_() for q in params]
        loss = torch.nn.functional.mse_loss(torch.func.functional_call(reference, dict(zip(names, leaves)), (x,)), y)
        for q, (m, v), grad in zip(params, moments, torch.autograd.grad(loss, leaves)):
            m.mul_(0.9).add_(0.1 * grad)
            v.mul_(0.999).add_(0.001 * grad * grad)
            q.sub_(lr * (1 - 0.999 ** t) ** 0.5 / (1 - 0.9 ** t) * m / (v.sqrt() + 1e-7))
    return params


def test_an_unbuilt_keras_optimizer_refuses_a_torch_step_and_a_state_dict_instead_of_doing_nothing():
    """`opt = keras.optimizers.Adam(); loss.backward(); opt.step()`: a Keras optimizer is bound to its
    variables by `build` (or `apply_gradients`); unbuilt, or built on the empty `trainable_variables` of a
    model not built yet, `step()` updated nothing, silently, and `load_state_dict` failed with torch's
    "different number of parameter groups". Both now raise a ValueError naming `build`; built, the same loop
    trains as Keras's Adam does and a fresh optimizer resumes from its state dict."""
    torch.manual_seed(0)
    model = kerasish.Sequential([L.Dense(4, activation="relu"), L.Dense(2)])
    g = torch.Generator().manual_seed(9)
    x, y = torch.randn(8, 5, generator=g), torch.randn(8, 2, generator=g)
    early = kerasish.optimizers.Adam(0.01).build(model.trainable_variables)  # [] before the first call
    model(x)
    start = [p.detach().clone() for p in model.parameters()]
    want = _keras_adam(copy.deepcopy(model), x, y, steps=3)
    opt = kerasish.optimizers.Adam(0.01)
    torch.nn.functional.mse_loss(model(x), y).backward()
    for unbound in (opt, early):
        with pytest.raises(ValueError, match=r"Adam 'adam.*' has no variables to update.*optimizer\.build\(model"):
            unbound.step()
    assert all(torch.equal(p, s) for p, s in zip(model.parameters(), start))
    opt.build(model.trainable_variables)
    for t in range(3):
        if t:
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    for p, q in zip(model.parameters(), want):
        torch.testing.assert_close(p.detach(), q, rtol=1e-5, atol=1e-6)
    fresh = kerasish.optimizers.Adam(0.01)
    with pytest.raises(ValueError, match=r"has no variables: .*optimizer\.build\(model\.parameters\(\)\)"):
        fresh.load_state_dict(opt.state_dict())
    fresh.build(model.trainable_variables)
    fresh.load_state_dict(opt.state_dict())
    assert int(fresh.iterations) == 3


def test_a_keras_optimizer_built_on_parameters_before_the_first_call_trains_every_weight_like_keras_adam():
    """`keras.optimizers.Adam(...).build(model.parameters())` before the model ever ran (the torch habit
    that works for torch optimizers, README) failed with torch's "uninitialized parameter" error: it made
    the moments of the placeholders. Now the placeholders' moments are made at their first update, and the
    loop whose first call builds the model trains every weight as Keras's Adam does."""
    torch.manual_seed(0)
    model = kerasish.Sequential([L.Dense(4, activation="relu"), L.LayerNormalization(), L.Dense(2)])
    g = torch.Generator().manual_seed(10)
    x, y = torch.randn(8, 5, generator=g), torch.randn(8, 2, generator=g)
    opt = kerasish.optimizers.Adam(0.01).build(model.parameters())
    want = None
    for _ in range(3):
        out = model(x)
        if want is None:  # the weights the first call built
            want = _keras_adam(copy.deepcopy(model), x, y, steps=3)
        opt.zero_grad()
        torch.nn.functional.mse_loss(out, y).backward()
        opt.step()
    assert len(opt.variables) == 2 + 2 * 6  # iterations, learning rate, two moments per weight
    for p, q in zip(model.parameters(), want):
        torch.testing.assert_close(p.detach(), q, rtol=1e-5, atol=1e-6)


# ------------------------------------------------ data habits: a dict collate_fn into a multi-input model
class _Rows(torch.utils.data.Dataset):
    def __init__(self, a, b, y):
        self.a, self.b, self.y = a, b, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"a": self.a[i], "b": self.b[i]}, self.y[i]


def _dict_collate(items):
    """What a torch user's collate_fn builds: a dict of stacked tensors, and the stacked targets."""
    features = {key: torch.stack([torch.as_tensor(f[key]) for f, _ in items]) for key in ("a", "b")}
    return features, torch.stack([torch.as_tensor(t) for _, t in items])


def test_a_dict_collate_fn_feeds_a_multi_input_functional_model_in_fit_like_keras(keras_ref):
    """A DataLoader whose collate_fn yields `({"a": ..., "b": ...}, y)` feeds a functional model with named
    inputs `a`, `b` (given in the other order) in `fit` / `evaluate`: history and weights equal Keras 3 fed
    the same DataLoader, from the same weights."""

    def build(k):
        b = k.Input((2,), name="b")
        a = k.Input((3,), name="a")
        h = k.layers.Concatenate()([k.layers.Dense(4, activation="tanh")(a), b])
        return k.Model({"b": b, "a": a}, k.layers.Dense(1)(h))

    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(10, 3)).astype("float32"), rng.normal(size=(10, 2)).astype("float32")
    y = rng.normal(size=(10, 1)).astype("float32")
    models = [build(kerasish), build(keras_ref)]
    models[1].set_weights(models[0].get_weights())
    results = []
    for model in models:
        loader = torch.utils.data.DataLoader(_Rows(a, b, y), batch_size=4, collate_fn=_dict_collate)
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(loader, epochs=2, verbose=0)
        results.append((history.history["loss"], model.evaluate(loader, verbose=0), model.get_weights()))
    (ours_loss, ours_eval, ours_w), (ref_loss, ref_eval, ref_w) = results
    np.testing.assert_allclose(ours_loss, ref_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours_eval, ref_eval, rtol=1e-5, atol=1e-6)
    for w, r in zip(ours_w, ref_w):
        np.testing.assert_allclose(w, np.asarray(r), rtol=1e-5, atol=1e-6)


# ------------------------------------------------ modes: moving statistics under inference_mode
def test_batchnorm_moving_statistics_update_inside_inference_mode_and_training_goes_on():
    """`with torch.inference_mode(): model(x, training=True)` (statistics re-estimation without autograd):
    BatchNormalization's moving mean and variance move by Keras's rule (momentum 0.99, the biased batch
    variance), its buffers stay normal tensors, and `fit` trains afterwards."""
    torch.manual_seed(0)
    model = kerasish.Sequential([L.Dense(3), L.BatchNormalization()])
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(12))
    model(x)
    bn = model.layers[1]
    mean0, var0 = bn.moving_mean.clone().numpy(), bn.moving_variance.clone().numpy()
    h = model.layers[0](x).detach().numpy().astype(np.float64)
    with torch.inference_mode():
        model(x, training=True)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.99 * mean0 + 0.01 * h.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.99 * var0 + 0.01 * h.var(0), rtol=1e-5, atol=1e-7)
    assert not any(t.is_inference() for t in model.state_dict().values())
    kernel = model.layers[0].kernel.detach().clone()
    model.compile(optimizer=kerasish.optimizers.SGD(0.1), loss="mse")
    model.fit(x.numpy(), np.ones((16, 3), "float32"), batch_size=8, verbose=0)
    assert not torch.equal(kernel, model.layers[0].kernel)


# ------------------------------------------------ autograd habits: hooks, clipping, saliency
def test_weight_hook_foreach_clipping_and_input_saliency_match_the_torch_twin():
    """`kernel.register_hook` (gradient masking), `clip_grad_norm_(..., foreach=True)` and saliency maps
    from `x.requires_grad_()` give the gradients, the total norm and the input gradients of the same
    Conv/Dense model in torch modules."""
    torch.manual_seed(0)
    model = kerasish.Sequential([L.Conv2D(3, 3, activation="relu"), L.GlobalAveragePooling2D(), L.Dense(4)])
    x = torch.randn(2, 6, 6, 1, generator=torch.Generator().manual_seed(13))
    model(x)
    conv, _, dense = model.layers
    t_conv, t_dense = torch.nn.Conv2d(1, 3, 3), torch.nn.Linear(3, 4)
    with torch.no_grad():
        t_conv.weight.copy_(conv.kernel.permute(3, 2, 0, 1))
        t_conv.bias.copy_(conv.bias)
        t_dense.weight.copy_(dense.kernel.T)
        t_dense.bias.copy_(dense.bias)

    def twin(t):
        return t_dense(torch.relu(t_conv(t.permute(0, 3, 1, 2))).mean((2, 3)))

    mask = torch.zeros(4)
    mask[::2] = 1.0
    dense.kernel.register_hook(lambda grad: grad * mask)
    t_dense.weight.register_hook(lambda grad: grad * mask[:, None])
    saliency = []
    for forward in (model, twin):
        inputs = x.clone().requires_grad_()
        out = forward(inputs)
        out[torch.arange(2), out.argmax(1)].sum().backward()
        saliency.append(inputs.grad)
    torch.testing.assert_close(saliency[0], saliency[1], rtol=1e-5, atol=1e-6)
    assert torch.all(dense.kernel.grad[:, 1::2] == 0)
    norms = [torch.nn.utils.clip_grad_norm_(params, 0.05, foreach=True)
             for params in (model.parameters(), [t_conv.weight, t_conv.bias, t_dense.weight, t_dense.bias])]
    torch.testing.assert_close(norms[0], norms[1], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(dense.kernel.grad, t_dense.weight.grad.T, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(conv.kernel.grad, t_conv.weight.grad.permute(2, 3, 1, 0), rtol=1e-5, atol=1e-7)


def test_vector_to_parameters_round_trip_after_contiguous_kernels_is_seen_by_the_keras_views():
    """`parameters_to_vector` / `vector_to_parameters` (evolution strategies, flat-weight tools) over an
    LSTM/GRU/Conv/BatchNormalization model: after `contiguous_kernels(model)` (README), writing a vector
    rebinds every weight; calls, `get_weights()` and a state_dict-loaded copy all see the new values."""
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    torch.manual_seed(0)

    def make():
        return kerasish.Sequential([L.Conv1D(4, 2), L.BatchNormalization(), L.LSTM(3, return_sequences=True),
                                    L.GRU(2)])

    model = make()
    x = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(14))
    model(x)
    kerasish.layers.rnn.contiguous_kernels(model)
    vector = parameters_to_vector(model.parameters())
    new = torch.randn(vector.shape, generator=torch.Generator().manual_seed(15)) * 0.3
    vector_to_parameters(new, model.parameters())
    torch.testing.assert_close(parameters_to_vector(model.parameters()), new, rtol=0, atol=0)
    clone = make()
    clone.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    torch.testing.assert_close(model(x), clone(x), rtol=0, atol=0)
    flat = np.concatenate([w.ravel() for w, v in zip(model.get_weights(), model.weights) if v.trainable])
    assert flat.size == new.numel() and set(np.round(flat, 6)) == set(np.round(new.numpy(), 6))


# ------------------------------------------------ tools around fit: anomaly detection and the profiler
def test_fit_under_detect_anomaly_and_the_profiler_trains_as_without_them():
    """`torch.autograd.set_detect_anomaly(True)` and `torch.profiler.profile` with a user
    `record_function` around `fit` change nothing in the numbers (the same history and weights as a plain
    fit from the same weights); the profile holds the user's range and one forward `aten::addmm` per Dense
    per step, as for torch modules."""

    def make():
        torch.manual_seed(0)
        model = kerasish.Sequential([L.Dense(8, activation="relu"), L.BatchNormalization(), L.Dense(2)])
        model.build((None, 3))  # (fit's build of an unbuilt model runs two more forwards, once, off the record)
        model.compile(optimizer=kerasish.optimizers.SGD(0.1), loss="mse")
        return model

    rng = np.random.default_rng(18)
    x, y = rng.normal(size=(12, 3)).astype("float32"), rng.normal(size=(12, 2)).astype("float32")
    plain = make()
    want = plain.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    model = make()
    with torch.autograd.set_detect_anomaly(True), torch.profiler.profile() as prof:
        with torch.profiler.record_function("user_fit"):
            got = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=0, atol=0)
    for w, r in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(w, r)
    counts = {e.key: e.count for e in prof.key_averages()}
    assert counts.get("user_fit") == 1
    assert counts.get("aten::addmm") == 3 * 2  # 3 steps, 2 Dense


# ------------------------------------------------ modes and building: meta default device, seeded layers
def _seeded_noise_model():
    inputs = kerasish.Input((4, 6))
    h = L.GaussianNoise(0.1, seed=5)(L.Dropout(0.5, seed=7)(L.Dense(6)(inputs)))
    h = L.LSTM(4, dropout=0.3, recurrent_dropout=0.3, seed=2, return_sequences=True)(h)
    h = L.MultiHeadAttention(2, 2, dropout=0.5, seed=4)(h, h)
    return kerasish.Model(inputs, L.Dense(3)(h))


def test_seeded_noise_layers_built_under_a_meta_default_device_draw_their_seeds_after_to_empty():
    """`torch.set_default_device("meta")` while building (torch's meta-init recipe), then `to_empty` and
    `load_state_dict`: the seeded Dropout / GaussianNoise / LSTM dropout / attention dropout kept their
    seed state on the meta device, out of `to_empty`'s reach, and the first training call failed ("Cannot
    copy out of meta tensor"). Their state now stays on the CPU, as the layers' docs say, and the model
    draws the masks of the same model built normally, call after call."""
    x = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(19))
    torch.manual_seed(0)
    ref = _seeded_noise_model()
    torch.set_default_device("meta")
    try:
        model = _seeded_noise_model()
    finally:
        torch.set_default_device(None)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    model.to_empty(device="cpu")
    model.load_state_dict(ref.state_dict())
    for _ in range(2):
        torch.testing.assert_close(model(x, training=True), ref(x, training=True), rtol=0, atol=0)
