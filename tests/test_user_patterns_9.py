"""Habits PyTorch users bring to kerasish layers (round 9): torch-style
module surgery on Keras models (torchvision's `model.fc = nn.Linear(...)`,
timm's `reset_classifier`, PEFT's `setattr(parent, name, new)`): replacing
or deleting a child of a Sequential by attribute now replaces it in the
stack it runs (before, the new layer was registered but never called, and
the old one was called but gone from `parameters()` and `state_dict()`),
and on a functional model's graph layer it is refused, naming the Keras way;
`pop()` on a deep-copied or unpickled Sequential (it left the popped layer
registered); torchtune's `apply_activation_checkpointing` on a subclassed
model (and refused by a Sequential); `DDP(broadcast_buffers=True/False)`
with BatchNormalization on two gloo ranks; the global SeedGenerator per
thread (against Keras); `fit` after a layer swap or an unfreeze without
recompiling (it silently trained the old weights; now Keras's error);
`torch.compile(model)` before the first call (it failed inside dynamo).
References: the same pattern on `torch.nn` modules holding the same weights
(Keras kernels are (in, out), torch's (out, in)), or the documented error."""

import numpy as np
import pytest
import torch
from torch import nn

import kerasish

L = kerasish.layers


def _copy_dense(lin, dense):
    with torch.no_grad():
        lin.weight.copy_(dense.kernel.T)
        lin.bias.copy_(dense.bias)


# ------------------------------------------------------------ module surgery
@pytest.mark.parametrize("declared", [True, False], ids=["input", "built_on_first_call"])
def test_replacing_a_sequential_child_by_attribute_trains_the_new_head_like_torch_sequential(declared):
    """torchvision's fine-tuning recipe: a trained body, the head replaced by attribute, then a torch
    optimizer over `parameters()`. Before, kerasish kept calling the old head (outputs of width 3, not
    5) while `parameters()` held only the new one's weights."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 4), torch.randn(16, 5)
    first = [kerasish.Input((4,))] if declared else []
    model = kerasish.Sequential(first + [L.Dense(6, activation="relu", name="body"), L.Dense(3, name="head")])
    model(x)
    keys = list(model.state_dict())

    model.head = L.Dense(5, name="new_head")
    assert model(x).shape == (16, 5)
    assert [layer.name for layer in model.layers] == ["body", "new_head"]
    assert list(model.state_dict()) == keys  # the same key, in the same place
    assert [n for n, _ in model.named_parameters()] == ["body.kernel", "body.bias", "head.kernel", "head.bias"]

    twin = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    twin[2] = nn.Linear(6, 5)
    _copy_dense(twin[0], model.body), _copy_dense(twin[2], model.head)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_t = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        for m, o in ((model, opt), (twin, opt_t)):
            o.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
            o.step()
    torch.testing.assert_close(model(x), twin(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.head.kernel.T, twin[2].weight, rtol=1e-5, atol=1e-6)

    # `fit` trains the new head too, and the model saves what it runs
    model.compile(optimizer="sgd", loss="mse")
    before = model.head.kernel.detach().clone()
    model.fit(x.numpy(), y.numpy(), epochs=1, batch_size=8, verbose=0)
    assert not torch.equal(before, model.head.kernel.detach())
    copy = kerasish.Sequential(first + [L.Dense(6, activation="relu", name="b"), L.Dense(5, name="h")])
    copy(x)
    copy.set_weights(model.get_weights())
    torch.testing.assert_close(copy(x), model(x))


def test_deleting_a_sequential_child_removes_it_and_other_values_are_refused():
    x = torch.randn(3, 4)
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(6, name="a"), L.Dropout(0.5, name="drop"),
                                 L.Dense(2, name="b")])
    twin = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 2))
    _copy_dense(twin[0], model.a), _copy_dense(twin[1], model.b)
    del model.drop  # torch's `del seq[1]`
    assert [layer.name for layer in model.layers] == ["a", "b"] and "drop" not in dict(model.named_children())
    torch.testing.assert_close(model(x, training=True), twin(x))

    with pytest.raises(ValueError, match=r"`b` is layer 'b' of Sequential model .*TorchModuleWrapper.*"
                                         r"Received: b=Linear"):
        model.b = nn.Linear(6, 2)
    with pytest.raises(ValueError, match="should have unique names"):
        model.b = L.Dense(2, name="a")
    assert model.b in model.layers and model(x).shape == (3, 2)  # nothing changed
    with pytest.raises(ValueError, match=r"keras.layers.Identity\(\)"):
        model.b = nn.Identity()  # torchvision's feature-extraction recipe
    model.b = L.Identity()  # its Keras spelling
    torch.testing.assert_close(model(x), twin[0](x))
    wrapped = L.TorchModuleWrapper(nn.Linear(6, 7), name="torch_head")
    model.b = wrapped  # the torch head, wrapped, is run
    torch.testing.assert_close(model(x), wrapped.module(twin[0](x)))


def test_replacing_a_functional_models_graph_layer_is_refused_naming_the_keras_way():
    x = torch.randn(3, 4)
    inputs = kerasish.Input((4,))
    outputs = L.Dense(2, name="head")(L.Dense(6, name="body")(inputs))
    model = kerasish.Model(inputs, outputs)
    expected = model(x)
    new_head = L.Dense(5, name="new_head")
    with pytest.raises(ValueError, match=r"`head` is layer 'head' of the graph of functional model .*"
                                         r"keras.Model\(model.inputs, .*Received: head=Dense"):
        model.head = new_head
    with pytest.raises(ValueError, match="cannot be replaced or removed.*Received: del model.head"):
        del model.head
    with pytest.raises(ValueError, match="Received: add_module"):
        model.add_module("head", new_head)
    torch.testing.assert_close(model(x), expected)  # untouched
    model.head = model.head  # assigning the same layer is fine
    model.extra = L.Dense(1)  # and new attributes are ordinary torch children
    # the recipe the message names
    rebuilt = kerasish.Model(model.inputs, new_head(model.layers[-2].output))
    assert rebuilt(x).shape == (3, 5)
    torch.testing.assert_close(rebuilt.body(x), model.body(x))
    assert np.allclose(rebuilt.layers[1].get_weights()[0], model.body.get_weights()[0])


def _fit_then_swap_head(lib, how):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 5)).astype("float32")
    model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(6, name="body"), lib.layers.Dense(5, name="head")])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    if how == "setattr":
        model.head = lib.layers.Dense(5, name="new_head")
    else:
        model.pop()
        model.add(lib.layers.Dense(5, name="new_head"))
    return model, x, y


@pytest.mark.parametrize("how", ["setattr", "pop_add"])
def test_fit_after_swapping_a_layer_refuses_the_old_optimizer_like_keras_and_trains_after_recompiling(keras_ref, how):
    """Before, the trainer's cached weight list survived the swap: `fit` silently went on updating the
    removed head (with a "Gradients do not exist" warning) and never trained the new one. Keras 3 raises
    "Unknown variable" (the optimizer was built for the old variables); so does kerasish now, and after
    `compile` with a new optimizer the new head trains."""
    # (Keras's Sequential runs its stack whatever its attributes say: its reference is `pop()` + `add()`)
    for lib in (keras_ref, kerasish) if how == "pop_add" else (kerasish,):
        model, x, y = _fit_then_swap_head(lib, how)
        with pytest.raises(ValueError, match="Unknown variable"):
            model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model, x, y = _fit_then_swap_head(kerasish, how)
    with pytest.raises(ValueError, match="Unknown variable.*recreate a new optimizer instance"):
        model.train_on_batch(x[:8], y[:8])
    model.compile(optimizer="adam", loss="mse")
    before = model.layers[-1].kernel.detach().clone()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not torch.equal(before, model.layers[-1].kernel.detach())


def test_unfreezing_without_recompiling_raises_like_keras_instead_of_silently_not_training(keras_ref):
    """The fine-tuning recipe says "recompile after changing `trainable`". Without it, Keras 3 raises
    "Unknown variable" for the unfrozen weights; kerasish silently kept training the head only."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 2)).astype("float32")
    for lib in (keras_ref, kerasish):
        body = lib.layers.Dense(6, name="body")
        model = lib.Sequential([lib.Input((4,)), body, lib.layers.Dense(2, name="head")])
        body.trainable = False
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        body.trainable = True
        with pytest.raises(ValueError, match="Unknown variable"):
            model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.compile(optimizer="adam", loss="mse")  # the recipe
    before = body.kernel.detach().clone()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not torch.equal(before, body.kernel.detach())


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_pop_and_child_replacement_on_a_copied_sequential_change_what_it_runs_and_saves(how):
    """`copy.deepcopy` / pickle then surgery (a common fine-tuning start: copy the pretrained model,
    cut its head). Before, the copy kept its layers' torch keys by the original's `id()`s: `pop()`
    left the removed layer in `parameters()` and `state_dict()`, and a replaced head was not run."""
    import copy
    import pickle

    x = torch.randn(2, 4)
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3, name="a"), L.Dense(2, name="b")])
    model(x)
    clone = (lambda: copy.deepcopy(model)) if how == "deepcopy" else (lambda: pickle.loads(pickle.dumps(model)))

    cut = clone()
    cut.pop()
    assert list(cut.state_dict()) == ["a.kernel", "a.bias"] and len(list(cut.parameters())) == 2
    torch.testing.assert_close(cut(x), model.a(x))
    cut.add(L.Dense(4, name="c"))
    assert list(cut.state_dict()) == ["a.kernel", "a.bias", "c.kernel", "c.bias"]

    swapped = clone()
    swapped.b = L.Dense(5, name="c")
    assert swapped(x).shape == (2, 5) and [layer.name for layer in swapped.layers] == ["a", "c"]
    assert model(x).shape == (2, 2) and [layer.name for layer in model.layers] == ["a", "b"]  # untouched


class _CountingDense(L.Dense):
    def call(self, inputs):
        self.calls = getattr(self, "calls", 0) + 1
        return super().call(inputs)


class _Block(kerasish.Model):
    def __init__(self):
        super().__init__()
        self.a = _CountingDense(6, activation="tanh")
        self.norm = L.LayerNormalization()
        self.b = L.Dense(2)

    def call(self, x):
        return self.b(self.norm(self.a(x)))


def test_apply_activation_checkpointing_wraps_a_subclassed_models_layers_and_a_sequential_refuses_it():
    """torchtune's recipe: `apply_activation_checkpointing(model, check_fn=...)` replaces the chosen children
    by `CheckpointWrapper`s (`setattr`). On a subclassed model the wrapped layers are recomputed in
    backward and give the torch twin's gradients, with the same state_dict keys; a Sequential refuses
    the non-Layer child with the ways that work (before, the wrappers were silently never called)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

    torch.manual_seed(0)
    x = torch.randn(5, 4)
    model = _Block()
    model(x)
    twin = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.LayerNorm(6, eps=1e-3), nn.Linear(6, 2))
    _copy_dense(twin[0], model.a), _copy_dense(twin[3], model.b)
    keys = list(model.state_dict())
    model.a.calls = 0
    apply_activation_checkpointing(model, check_fn=lambda m: isinstance(m, L.Dense))
    assert type(model.a).__name__ == "CheckpointWrapper" and list(model.state_dict()) == keys
    nn.functional.mse_loss(model(x), x[:, :2]).backward()
    nn.functional.mse_loss(twin(x), x[:, :2]).backward()
    assert model.a._checkpoint_wrapped_module.calls == 2  # the forward, then its recomputation in backward
    torch.testing.assert_close(model.b.kernel.grad.T, twin[3].weight.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.a._checkpoint_wrapped_module.kernel.grad.T, twin[0].weight.grad,
                               rtol=1e-5, atol=1e-6)
    assert len(model.trainable_weights) == 6

    seq = kerasish.Sequential([kerasish.Input((4,)), L.Dense(6), L.Dense(2)])
    with pytest.raises(ValueError, match=r"apply_activation_checkpointing.*checkpoint_sequential.*"
                                         r"Received: dense=CheckpointWrapper"):
        apply_activation_checkpointing(seq, check_fn=lambda m: isinstance(m, L.Dense))


# ----------------------------------------------------------------- threads
def _seeded_draws_with_a_thread(lib, reseed_in_thread):
    """Main thread: seed, draw; a worker thread draws (optionally after its own `set_random_seed`); the main
    thread draws again and makes an unseeded Dropout, whose seed comes from Python's `random`."""
    import threading

    to_numpy = lib.ops.convert_to_numpy
    lib.utils.set_random_seed(1)
    out = {"main_1": to_numpy(lib.random.normal((3,)))}

    def worker():
        if reseed_in_thread:
            lib.utils.set_random_seed(2)
        out["thread"] = [to_numpy(lib.random.normal((3,))) for _ in range(4)]

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=60)
    out["main_2"] = to_numpy(lib.random.normal((3,)))
    out["main_3"] = to_numpy(lib.random.uniform((2,)))
    return out


@pytest.mark.parametrize("reseed_in_thread", [False, True], ids=["thread_draws", "thread_reseeds"])
def test_the_global_seed_generator_is_per_thread_as_in_keras(keras_ref, reseed_in_thread):
    """`keras.random.*(seed=None)` draws from a global SeedGenerator that Keras 3 keeps per thread: a worker
    thread's draws (or its `set_random_seed`) never move the main thread's stream. kerasish kept one
    process-wide generator, so the main thread's next draws changed when another thread drew."""
    ours, ref = _seeded_draws_with_a_thread(kerasish, reseed_in_thread), _seeded_draws_with_a_thread(
        keras_ref, reseed_in_thread)
    for key in ("main_1", "main_2", "main_3"):
        np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)
    for a, b in zip(ours["thread"], ref["thread"]):
        np.testing.assert_array_equal(a, b)
    # the main thread's stream is the one it draws with no other thread at all
    kerasish.utils.set_random_seed(1)
    alone = [kerasish.random.normal((3,)).numpy() for _ in range(2)]
    np.testing.assert_array_equal(ours["main_2"], alone[1])


# ----------------------------------------------------- DDP details
def test_ddp_broadcast_buffers_gives_every_rank_rank_zeros_batchnorm_statistics_like_the_torch_twin(tmp_path):
    """Two gloo ranks run tests/user_patterns_9_ddp_worker.py (subprocesses started by `run_ranks`, never a
    fork of this process, bounded by a timeout). DDP broadcasts rank 0's buffers before each forward: the
    kerasish BatchNormalization's moving statistics are those buffers (updated in place), so each rank
    ends where the twin with Keras's BatchNormalization maths ends; without broadcasting they differ."""
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "distribution"))
    from test_data_parallel import run_ranks

    g = torch.Generator().manual_seed(9)
    weights = [torch.randn(4, 6, generator=g) * 0.5, torch.randn(6, generator=g) * 0.1,
               1 + 0.1 * torch.randn(6, generator=g), 0.1 * torch.randn(6, generator=g),
               torch.zeros(6), torch.ones(6), torch.randn(6, 2, generator=g) * 0.5, torch.randn(2, generator=g) * 0.1]
    x = torch.randn(30, 4, generator=g)
    x[1::2] = 2 * x[1::2] + 1  # rank 1's rows have other statistics
    torch.save({"weights": weights, "x": x, "y": torch.randn(30, 2, generator=g)}, tmp_path / "init.pt")
    run_ranks(os.path.join(here, "user_patterns_9_ddp_worker.py"), tmp_path, world=2, timeout=120)
    finals = [torch.load(tmp_path / f"final_{rank}.pt") for rank in range(2)]
    for broadcast in (True, False):
        for rank in range(2):
            (ours, ours_out), (ref, ref_out) = finals[rank][broadcast]["kerasish"], finals[rank][broadcast]["torch"]
            for a, b in zip(ours, ref):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(ours_out, ref_out, rtol=1e-5, atol=1e-5)
            for i in (0, 1, 2, 3, 6, 7):  # the gradients were averaged: the ranks' weights agree
                torch.testing.assert_close(ours[i], finals[0][broadcast]["kerasish"][0][i], rtol=0, atol=0)
    moving = lambda rank, broadcast: finals[rank][broadcast]["kerasish"][0][4]  # noqa: E731
    assert not torch.allclose(moving(1, True), moving(1, False))  # rank 1 started from rank 0's statistics
    torch.testing.assert_close(moving(0, True), moving(0, False), rtol=1e-5, atol=1e-6)


# ------------------------------------------------ compiled before the first call
def _fresh_models():
    return {
        "sequential": kerasish.Sequential([L.Dense(6, activation="tanh"), L.BatchNormalization(), L.Dense(2)]),
        "subclassed": _Block(),
    }


@pytest.mark.parametrize("kind", ["sequential", "subclassed"])
def test_torch_compile_before_the_first_call_builds_eagerly_then_trains_like_the_eager_model(kind):
    """torch's habit `model = torch.compile(model)` right after construction. Before, dynamo traced the
    model's build and failed with an unrelated error (a Sequential: "you forgot to call
    `super().__init__()`" about its InputLayer; a subclassed model: a fake-tensor error). Now the build
    runs eagerly at a graph break, as dynamo initializes torch's own lazy modules, and the compiled
    model computes and trains as the same model uncompiled; under `fullgraph=True` the graph break is
    refused with the reason (call the model once first)."""
    torch.manual_seed(0)
    torch._dynamo.reset()
    x, y = torch.randn(8, 4), torch.randn(8, 2)
    model = _fresh_models()[kind]
    compiled = torch.compile(model, backend="eager")
    model.train()
    out = compiled(x)
    assert model.built
    twin = _fresh_models()[kind]
    twin(x)
    twin.load_state_dict(model.state_dict())
    twin.train()
    torch.testing.assert_close(out, twin(x))  # (the first call ran with the weights it built)
    twin.load_state_dict(model.state_dict())  # (before that call's update of the moving statistics)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt_t = torch.optim.SGD(twin.parameters(), lr=0.1)
    for _ in range(2):
        for m, o in ((compiled, opt), (twin, opt_t)):
            o.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
            o.step()
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)

    torch._dynamo.reset()
    with pytest.raises(Exception, match=r"(?s)torch.compiler.disable.*(fullgraph=True\) call it once|$)"):
        torch.compile(_fresh_models()[kind], fullgraph=True, backend="eager")(x)
