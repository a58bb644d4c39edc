"""Habits PyTorch users bring to kerasish layers (round 7): the global dtype
policy and the `keras.distribution` scope set in one thread while another
builds or runs layers (per thread, as Keras 3 keeps them); threads calling
one model built in another thread with their own `training=` flags, grad
modes and name scopes, and thread pools of `predict` and `fit` calls; `.double()` /
`.bfloat16()` after building and `.to(torch.bfloat16)` before the first
call, then fit / evaluate / predict, configs and `.keras` files both ways
with Keras (Adam's bfloat16 moments could not be loaded back);
`functional_call` with BatchNormalization buffers in training mode; a seeded
Dropout and seeded LSTM dropout inside `vmap(grad(...))` (they failed
inside torch.func); per-layer
learning rates and weight-decay exclusions chosen from `named_parameters()`
names, and `add_param_group` for a layer built later (other per-group torch
keys were silently ignored, now refused); torch lr schedulers on
an optimizer with a Keras schedule (silently ignored, now refused) and
ReduceLROnPlateau on a float rate; `torch.compiler.disable` on one kerasish
layer's `call` under `torch.compile(dynamic=True)`; DDP with an unused
branch (`find_unused_parameters=True`), `no_sync()` accumulation and
`static_graph=True` on two gloo ranks.
References: real Keras 3, the same pattern on `torch.nn` modules holding the
same weights (Keras kernels are (in, out), torch's (out, in)), the same calls
made one after the other, or NumPy from the maths."""

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch.func import functional_call

import kerasish

L = kerasish.layers
HERE = os.path.dirname(os.path.abspath(__file__))


# ----------------------------------------------------------------- threads
def test_the_global_dtype_policy_is_per_thread_as_in_keras(keras_ref):
    """Before, kerasish kept one process-wide policy: a thread that set "mixed_bfloat16" changed the
    dtype of the layers every other thread created. Keras 3 keeps it per thread (and `floatx` per
    process)."""

    def probe(lib):
        seen = {}
        both_set = threading.Barrier(2)

        def worker(policy):
            seen[f"{policy} thread starts with"] = lib.mixed_precision.global_policy().name
            lib.mixed_precision.set_global_policy(policy)
            both_set.wait(timeout=30)
            seen[f"{policy} thread builds"] = lib.layers.Dense(2).dtype_policy.name

        lib.mixed_precision.set_global_policy("float16")
        try:
            threads = [threading.Thread(target=worker, args=(p,)) for p in ("mixed_bfloat16", "float64")]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            seen["main keeps"] = lib.mixed_precision.global_policy().name
            seen["main builds"] = lib.layers.Dense(2).dtype_policy.name
        finally:
            lib.mixed_precision.set_global_policy("float32")
        return seen

    ours, theirs = probe(kerasish), probe(keras_ref)
    assert ours == theirs
    assert ours == {
        "mixed_bfloat16 thread starts with": "float32", "float64 thread starts with": "float32",
        "mixed_bfloat16 thread builds": "mixed_bfloat16", "float64 thread builds": "float64",
        "main keeps": "float16", "main builds": "float16",
    }


def test_a_distribution_scope_stays_in_its_thread_as_keras_global_state_keeps_it():
    """Before, `set_distribution` / `scope()` were process-wide: a thread serving predictions saw the
    DataParallel another thread had entered (Keras 3 keeps the distribution in its per-thread
    `global_state`; its torch backend has no distribution to compare with)."""
    dp = kerasish.distribution.DataParallel(devices=kerasish.distribution.list_devices()[:1])
    seen = {}

    def worker():
        seen["thread starts with"] = kerasish.distribution.distribution()
        kerasish.distribution.set_distribution(dp)
        seen["thread set"] = kerasish.distribution.distribution()

    try:
        with dp.scope():
            t = threading.Thread(target=worker)
            t.start()
            t.join(timeout=60)
            seen["main inside its scope"] = kerasish.distribution.distribution()
        seen["main after its scope"] = kerasish.distribution.distribution()
    finally:
        kerasish.distribution.set_distribution(None)
    assert seen == {"thread starts with": None, "thread set": dp, "main inside its scope": dp,
                    "main after its scope": None}


def _bn_model():
    # momentum=1.0 keeps the moving statistics (Keras: moving = moving * momentum + batch * (1 - momentum)),
    # so every call's output is fixed whatever the order the threads run in
    return kerasish.Sequential([kerasish.Input((4,)), L.Dense(6, activation="relu"),
                                L.BatchNormalization(momentum=1.0), L.Dense(3)])


def test_threads_with_their_own_training_flags_grad_modes_and_name_scopes_equal_serial_calls():
    built = {}

    def build():
        model = _bn_model()
        bn = model.layers[1]
        bn.moving_mean.assign(torch.linspace(-0.5, 0.5, 6))
        bn.moving_variance.assign(torch.linspace(0.5, 2.0, 6))
        built["model"] = model

    t = threading.Thread(target=build)
    t.start()
    t.join(timeout=60)
    model = built["model"]  # built in another thread, used here and in 8 more
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(5, 4, generator=g) for _ in range(8)]
    serial = {(i, training): model(x, training=training).detach() for i, x in enumerate(xs)
              for training in (True, False)}
    assert not torch.allclose(serial[0, True], serial[0, False])  # the flag matters

    start = threading.Barrier(8)
    results, errors = {}, []

    def worker(i):
        try:
            training = i % 2 == 0
            start.wait(timeout=30)
            with kerasish.name_scope(f"thread{i}"):
                for rep in range(10):
                    if i % 4 == 1:
                        with torch.no_grad():
                            out = model(xs[i], training=training)
                        assert not out.requires_grad
                    else:
                        out = model(xs[i], training=training)
                        assert out.requires_grad
                    results[i, rep] = out.detach()
                extra = L.Dense(2)
                extra(xs[i])
                results[i, "path"] = extra.kernel.path
        except Exception as e:  # noqa: BLE001  (reported below, with the thread)
            errors.append((i, e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for i in range(8):
        for rep in range(10):
            torch.testing.assert_close(results[i, rep], serial[i, i % 2 == 0], rtol=1e-6, atol=1e-6)
        assert results[i, "path"].startswith(f"thread{i}/dense")
    assert not model.training and torch.is_grad_enabled()


def test_a_thread_pool_of_predict_calls_equals_predicting_one_after_the_other():
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(8, activation="relu"), L.BatchNormalization(),
                                 L.Dropout(0.5), L.Dense(2)])
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(int(n), 4)).astype("float32") for n in rng.integers(1, 40, size=12)]
    serial = [model.predict(x, batch_size=8, verbose=0) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        pooled = list(pool.map(lambda x: model.predict(x, batch_size=8, verbose=0), xs))
    for a, b in zip(serial, pooled):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)


def test_models_fitted_in_a_thread_pool_equal_the_same_fits_one_after_the_other():
    import copy

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(48, 4)).astype("float32"), rng.normal(size=(48, 1)).astype("float32")
    models = [kerasish.Sequential([kerasish.Input((4,)), L.Dense(8, activation="relu"), L.BatchNormalization(),
                                   L.Dense(1)]) for _ in range(4)]
    copies = [copy.deepcopy(m) for m in models]

    def train(model):
        model.compile(kerasish.optimizers.Adam(0.01), "mse", metrics=["mae"])
        history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
        return history, model.evaluate(x, y, verbose=0), model.predict(x, verbose=0)

    serial = [train(m) for m in copies]
    with ThreadPoolExecutor(4) as pool:
        pooled = list(pool.map(train, models))
    for (h1, e1, p1), (h2, e2, p2) in zip(serial, pooled):
        assert h1.keys() == h2.keys()
        for key in h1:
            np.testing.assert_allclose(h2[key], h1[key], rtol=1e-6)
        np.testing.assert_allclose(e2, e1, rtol=1e-6)
        np.testing.assert_allclose(p2, p1, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------- dtype moves after building
class _MlpTwin(torch.nn.Module):
    def __init__(self, model, dtype):
        super().__init__()
        self.l1, self.l2 = torch.nn.Linear(4, 5, dtype=dtype), torch.nn.Linear(5, 2, dtype=dtype)
        with torch.no_grad():
            for lin, layer in ((self.l1, model.layers[0]), (self.l2, model.layers[1])):
                lin.weight.copy_(layer.kernel.T)
                lin.bias.copy_(layer.bias)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))


def test_double_after_building_computes_in_float64_trains_like_keras_float64_and_reports_its_config(keras_ref):
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(5, activation="relu"), L.Dense(2)])
    model.double()
    ref = keras_ref.Sequential([keras_ref.Input((4,)), keras_ref.layers.Dense(5, activation="relu", dtype="float64"),
                                keras_ref.layers.Dense(2, dtype="float64")])
    ref.set_weights(model.get_weights())
    # the config says float64, as that of a Keras model made with dtype="float64"; its Input too (the
    # Sequential converts its data to the Input's dtype, as Keras's does: the moved model's float64, as
    # round 11 made functional models report, so that the model a saved file gives back keeps float64 data)
    ours, theirs = ([c["config"]["dtype"] for c in m.get_config()["layers"]] for m in (model, ref))
    assert ours[0] == "float64" and theirs[0] == "float32"
    assert ours[1:] == theirs[1:]
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 2))  # float64 data
    for m, lib in ((model, kerasish), (ref, keras_ref)):
        m.compile(lib.optimizers.SGD(0.1), "mse")
        m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    # Keras computes the loss in floatx (float32) and keeps the learning rate in float32: training agrees
    # to float32 rounding only, in Keras as in kerasish
    for ours, theirs in zip(model.get_weights(), ref.get_weights()):
        assert ours.dtype == np.float64
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    # a direct call is float64 through and through (the torch twin holding the trained weights); fit /
    # evaluate / predict cast float64 NumPy arrays to floatx() first, as Keras's data adapters do, unless
    # floatx is float64
    twin = _MlpTwin(model, torch.float64)
    x32 = x.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(model(torch.from_numpy(x)).detach().numpy(), twin(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-13, atol=1e-13)
    pred = model.predict(x, verbose=0)
    assert pred.dtype == np.float64
    np.testing.assert_allclose(pred, twin(torch.from_numpy(x32)).detach().numpy(), rtol=1e-13, atol=1e-13)
    kerasish.backend.set_floatx("float64")
    try:
        pred = model.predict(x, verbose=0)
    finally:
        kerasish.backend.set_floatx("float32")
    np.testing.assert_allclose(pred, twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0), rtol=1e-6)


def test_a_bfloat16_model_trained_with_adam_saves_and_loads_both_ways_with_keras(keras_ref, tmp_path):
    """Adam's bfloat16 moments were written as untagged 2-byte blobs (Keras refused the file) and Keras's
    tagged ones failed to load ("can't convert np.ndarray of type numpy.void")."""
    ours = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3, activation="relu"), L.Dense(2)])
    ours.bfloat16()
    theirs = keras_ref.Sequential([keras_ref.Input((4,)),
                                   keras_ref.layers.Dense(3, activation="relu", dtype="bfloat16"),
                                   keras_ref.layers.Dense(2, dtype="bfloat16")])
    theirs.set_weights(ours.get_weights())
    # (the Input entry says the dtype the moved Sequential converts its data to, see the test above)
    ours_dtypes, theirs_dtypes = ([c["config"]["dtype"] for c in m.get_config()["layers"]] for m in (ours, theirs))
    assert ours_dtypes[0] == "bfloat16" and theirs_dtypes[0] == "float32"
    assert ours_dtypes[1:] == theirs_dtypes[1:]
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 2)).astype("float32")
    for model, lib in ((ours, kerasish), (theirs, keras_ref)):
        model.compile(lib.optimizers.Adam(0.01), "mse")
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    ours.save(tmp_path / "ours.keras")
    theirs.save(tmp_path / "theirs.keras")

    def as_f32(values):
        return [np.asarray(keras_ref.ops.convert_to_numpy(v), dtype=np.float32) for v in values]

    for saved, source, loader in ((tmp_path / "ours.keras", ours, keras_ref.saving.load_model),
                                  (tmp_path / "theirs.keras", theirs, kerasish.saving.load_model)):
        loaded = loader(saved)
        src_opt, new_opt = source.optimizer.variables, loaded.optimizer.variables
        assert len(src_opt) == len(new_opt) == 2 + 2 * 4
        assert [str(v.dtype).replace("torch.", "") for v in new_opt[2:]] == ["bfloat16"] * 8
        for a, b in zip(as_f32(src_opt), as_f32(new_opt)):
            np.testing.assert_array_equal(b, a)  # bit for bit
        for a, b in zip(as_f32(source.weights), as_f32(loaded.weights)):
            np.testing.assert_array_equal(b, a)


def test_to_bfloat16_before_the_first_call_builds_in_bfloat16_and_reports_keras_bfloat16_configs(keras_ref):
    # (no recurrent layer: Keras 3.15's bfloat16 LSTM on torch fails to build, "'LSTMCell' object has no
    # attribute 'recurrent_kernel'"; kerasish's is checked on its own below)
    def layers(lib, **kw):
        return [lib.layers.Embedding(10, 4, **kw), lib.layers.LayerNormalization(**kw),
                lib.layers.Conv1D(2, 2, **kw), lib.layers.Dense(2, **kw)]

    ours = kerasish.Sequential(layers(kerasish))
    ours.to(torch.bfloat16)  # unbuilt: nothing to convert yet
    tokens = torch.randint(0, 10, (3, 5), generator=torch.Generator().manual_seed(9))
    out = ours(tokens)
    assert out.dtype == torch.bfloat16
    assert {v.dtype for v in ours.weights} == {torch.bfloat16}
    ref = keras_ref.Sequential([keras_ref.Input((5,), dtype="int32"), *layers(keras_ref, dtype="bfloat16")])
    assert [c["config"]["dtype"] for c in ours.get_config()["layers"][1:]] == \
        [c["config"]["dtype"] for c in ref.get_config()["layers"][1:]]
    ref.set_weights(ours.get_weights())
    torch.testing.assert_close(out.float(), ref(tokens).float(), rtol=2e-2, atol=2e-2)  # bfloat16 arithmetic
    again = kerasish.Sequential(layers(kerasish))
    again.bfloat16()
    again.load_state_dict(ours.state_dict())  # builds from the weights, in bfloat16
    assert torch.equal(again(tokens), out)
    rnn = kerasish.Sequential([L.Embedding(10, 4), L.LSTM(3), L.Dense(2)])
    rnn.to(torch.bfloat16)
    assert rnn(tokens).dtype == torch.bfloat16
    assert {v.dtype for v in rnn.weights} == {torch.bfloat16}
    assert {layer.dtype_policy.name for layer in rnn.layers} == {"bfloat16"}


# ------------------------------------------------------------------ torch.func
def test_functional_call_with_batchnorm_buffers_in_training_updates_the_passed_buffers_like_torch():
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3), L.BatchNormalization(), L.Dense(2)])
    dense, bn, head = model.layers
    # Keras's BatchNormalization(momentum=0.99, epsilon=1e-3) is torch's (momentum=0.01, eps=1e-3)
    twin = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3, eps=1e-3, momentum=0.01),
                               torch.nn.Linear(3, 2))
    with torch.no_grad():
        twin[0].weight.copy_(dense.kernel.T), twin[0].bias.copy_(dense.bias)
        twin[2].weight.copy_(head.kernel.T), twin[2].bias.copy_(head.bias)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(3))
    ours_state = {k: v.detach().clone() for k, v in (*model.named_parameters(), *model.named_buffers())}
    twin_state = {k: v.detach().clone() for k, v in (*twin.named_parameters(), *twin.named_buffers())}
    own_before = {k: v.detach().clone() for k, v in model.named_buffers()}
    model.train(), twin.train()

    out = functional_call(model, ours_state, (x,))
    ref = functional_call(twin, twin_state, (x,))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for k, v in model.named_buffers():  # the module's own buffers stay as they were
        assert torch.equal(v, own_before[k])
    torch.testing.assert_close(ours_state["batch_normalization.moving_mean"], twin_state["1.running_mean"])
    # the variance: Keras's moving average takes the biased batch variance (torch's takes the unbiased one)
    h = (x @ dense.kernel + dense.bias).detach().double().numpy()
    np.testing.assert_allclose(ours_state["batch_normalization.moving_variance"].numpy(),
                               0.99 * 1.0 + 0.01 * h.var(axis=0), rtol=1e-6)
    # an explicit training=False reads the passed (updated) statistics, not the module's
    out = functional_call(model, ours_state, (x,), {"training": False})
    twin.eval()
    torch.testing.assert_close(out, functional_call(twin, {**twin_state, "1.running_var": ours_state[
        "batch_normalization.moving_variance"]}, (x,)), rtol=1e-5, atol=1e-5)


def test_seeded_dropout_inside_vmap_of_grad_follows_vmaps_randomness_like_torch_dropout():
    """Per-sample gradients (the Opacus recipe) through a `Dropout(seed=...)`: its seed counter was
    advanced through `.numpy()` and an in-place write, which torch.func refuses ("Cannot access data
    pointer of Tensor that doesn't have storage"). Now the draw follows vmap's `randomness` as
    `nn.Dropout` does: "error" raises torch's error, "same" gives every sample the mask one call
    with that seed state draws, "different" gives each sample its own."""
    dropout = L.Dropout(0.5, seed=7)
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(6), dropout, L.Dense(1)])
    model(torch.zeros(1, 4))
    model.train()
    twin = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Dropout(0.5), torch.nn.Linear(6, 1)).train()
    params = {k: v.detach() for k, v in model.named_parameters()}
    twin_params = {k: v.detach() for k, v in twin.named_parameters()}

    def loss(module):
        return lambda p, x, y: ((functional_call(module, p, (x[None],)) - y) ** 2).sum()

    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(5, 4, generator=g), torch.randn(5, 1, generator=g)
    for module, p in ((model, params), (twin, twin_params)):
        with pytest.raises(RuntimeError, match="randomness error mode"):
            torch.func.vmap(torch.func.grad(loss(module)), in_dims=(None, 0, 0), randomness="error")(p, x, y)

    state = dropout.seed_generator.state
    start = state.clone()
    same = torch.func.vmap(torch.func.grad(loss(model)), in_dims=(None, 0, 0), randomness="same")(params, x, y)
    assert state[1] == start[1] + 1  # one draw for the whole vmapped call
    for i in range(5):  # one sample at a time, each from the same seed state
        state.copy_(start)
        one = torch.func.grad(loss(model))(params, x[i], y[i])
        for k in params:
            torch.testing.assert_close(same[k][i], one[k], rtol=1e-5, atol=1e-6)

    rows = x[:1].repeat(4, 1), y[:1].repeat(4, 1)
    different = torch.func.vmap(torch.func.grad(loss(model)), in_dims=(None, 0, 0), randomness="different")(
        params, *rows)
    kernels = different["dense.kernel"]
    assert torch.isfinite(kernels).all()
    assert any(not torch.equal(kernels[0], kernels[i]) for i in range(1, 4))  # identical rows, own masks


def test_seeded_lstm_dropout_inside_vmap_of_grad_gives_each_sample_the_masks_of_a_call_on_its_own():
    """An LSTM(dropout=..., recurrent_dropout=..., seed=...) writes its seed state in place per call;
    inside torch.func that write was refused ("mutate a captured Tensor")."""
    import copy

    model = kerasish.Sequential([kerasish.Input((5, 2)), L.LSTM(3, dropout=0.3, recurrent_dropout=0.3, seed=4),
                                 L.Dense(1)])
    model(torch.zeros(1, 5, 2))
    model.train()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(10))
    fresh = [copy.deepcopy(model) for _ in range(3)]  # the seed state before the vmapped call

    def loss(module):
        return lambda p, xi: functional_call(module, p, (xi[None],)).sum()

    same = torch.func.vmap(torch.func.grad(loss(model)), in_dims=(None, 0), randomness="same")(params, x)
    for i in range(3):
        one = torch.func.grad(loss(fresh[i]))(params, x[i])
        for k in params:
            torch.testing.assert_close(same[k][i], one[k], rtol=1e-5, atol=1e-6)
    rows = x[:1].repeat(3, 1, 1)
    different = torch.func.vmap(torch.func.grad(loss(model)), in_dims=(None, 0), randomness="different")(params, rows)
    kernels = different["lstm.cell.kernel"]
    assert torch.isfinite(kernels).all()
    assert any(not torch.equal(kernels[0], kernels[i]) for i in (1, 2))


# -------------------------------------------------- optimizers and parameter names
class _Tagger(kerasish.Model):
    def __init__(self):
        super().__init__()
        self.embed = L.Embedding(20, 8)
        self.encoder = L.LSTM(8, return_sequences=True)
        self.attention = L.MultiHeadAttention(2, 4)
        self.norm = L.LayerNormalization()
        self.head = L.Dense(3)

    def call(self, tokens):
        h = self.encoder(self.embed(tokens))
        return self.head(self.norm(h + self.attention(h, h)))


def _no_decay(name):
    return name.endswith("bias") or name.split(".")[-1] in ("gamma", "beta")


def test_per_layer_learning_rates_and_decay_exclusions_by_name_then_add_param_group_match_torch_adamw():
    """Groups chosen by `named_parameters()` prefixes and suffixes ("encoder.", "bias", the norm's
    "gamma"/"beta") select the same tensors a torch user expects; `p.ndim < 2` does not single out
    biases here: MultiHeadAttention's query/key/value biases are (heads, key_dim), as in Keras."""
    torch.manual_seed(0)
    model = _Tagger()
    tokens = torch.randint(0, 20, (4, 6))
    model(tokens)
    names = dict(model.named_parameters())
    assert sorted(n for n, p in names.items() if _no_decay(n) and p.ndim >= 2) == \
        ["attention.key.bias", "attention.query.bias", "attention.value.bias"]
    extra = L.Dense(3)  # a head built after the optimizer exists
    extra(torch.zeros(1, 3))

    def groups(params):
        out = []
        for prefix, lr in (("encoder.", 1e-2), ("attention.", 5e-3), ("", 2e-3)):
            chosen = [(n, p) for n, p in params if n.startswith(prefix) and all(
                not n.startswith(g) for g in ("encoder.", "attention.") if g != prefix)]
            out.append({"params": [p for n, p in chosen if not _no_decay(n)], "lr": lr, "weight_decay": 0.1})
            out.append({"params": [p for n, p in chosen if _no_decay(n)], "lr": lr, "weight_decay": 0.0})
        return out

    # the twin: plain tensors holding the same values, the same computation through torch.func
    twin_params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    twin_extra = {n: p.detach().clone().requires_grad_() for n, p in extra.named_parameters()}
    opt = torch.optim.AdamW(groups(list(model.named_parameters())))
    twin_opt = torch.optim.AdamW(groups(list(twin_params.items())))
    assert [len(g["params"]) for g in opt.param_groups] == [len(g["params"]) for g in twin_opt.param_groups]
    y = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(1))

    def step(i):
        opt.zero_grad(), twin_opt.zero_grad()
        loss = torch.nn.functional.mse_loss(extra(model(tokens)) if i >= 2 else model(tokens), y)
        twin_out = functional_call(model, twin_params, (tokens,))
        if i >= 2:
            twin_out = functional_call(extra, twin_extra, (twin_out,))
        twin_loss = torch.nn.functional.mse_loss(twin_out, y)
        loss.backward(), twin_loss.backward()
        opt.step(), twin_opt.step()

    for i in range(4):
        if i == 2:
            opt.add_param_group({"params": list(extra.parameters()), "lr": 1e-2, "weight_decay": 0.0})
            twin_opt.add_param_group({"params": list(twin_extra.values()), "lr": 1e-2, "weight_decay": 0.0})
        step(i)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), twin_params[n].detach(), rtol=1e-5, atol=1e-6)
    for n, p in extra.named_parameters():
        torch.testing.assert_close(p.detach(), twin_extra[n].detach(), rtol=1e-5, atol=1e-6)


def test_a_torch_lr_scheduler_on_an_optimizer_with_a_keras_schedule_is_refused_and_drives_a_float_rate():
    """With a Keras `LearningRateSchedule` the optimizer's rate is the schedule's and `param_groups`' "lr"
    (0.0) is never read: a torch StepLR multiplied 0.0 and training silently followed the Keras
    schedule. Now the step raises and names the fix; with a float rate, torch's schedulers (also
    ReduceLROnPlateau) drive the kerasish optimizer as they drive torch's."""
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(2)])
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(8))
    schedule = kerasish.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    opt = kerasish.optimizers.SGD(schedule)
    opt.build(model.trainable_variables)
    torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    model(x).sum().backward()
    before = [v.detach().clone() for v in model.trainable_variables]
    with pytest.raises(ValueError, match=r"SGD 'sgd.*' takes its learning rate from its Keras schedule "
                                         r"\(ExponentialDecay\).*float `learning_rate`.*initial_lr"):
        opt.step()
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, model.trainable_variables))
    opt = kerasish.optimizers.SGD(schedule)
    opt.build([{"params": [model.layers[0].kernel], "lr": 0.5}, {"params": [model.layers[0].bias]}])
    with pytest.raises(ValueError, match=r"Received: param_groups lr=0.5"):
        opt.step()
    opt = kerasish.optimizers.SGD(0.1)  # a float rate swapped for a schedule after building: still steps
    opt.build(model.trainable_variables)
    opt.learning_rate = schedule
    opt.step()
    torch.testing.assert_close(model.layers[0].bias.detach(), before[1] - 0.1 * model.layers[0].bias.grad)

    # a float rate: the kerasish and torch optimizers follow one plateau scheduler's decisions alike
    ours = kerasish.optimizers.SGD(0.1)
    ours.build(model.trainable_variables)
    theirs = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    plateaus = [torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0, factor=0.5) for o in (ours, theirs)]
    for loss in (1.0, 0.9, 0.95, 0.97, 0.5, 0.6):
        for plateau in plateaus:
            plateau.step(loss)
        assert ours.param_groups[0]["lr"] == theirs.param_groups[0]["lr"]
        np.testing.assert_allclose(float(ours.learning_rate), theirs.param_groups[0]["lr"], rtol=1e-7)
    assert theirs.param_groups[0]["lr"] == pytest.approx(0.1 / 8)


def test_param_groups_of_a_keras_optimizer_take_lr_and_weight_decay_and_refuse_other_torch_keys():
    """torch users set "momentum", "betas", "eps" per group; a Keras optimizer's other settings are
    optimizer-wide, and those keys were silently ignored (SGD moved a bias 0.8 instead of torch's 0.71)."""
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(2)])
    dense = model.layers[0]
    dense.bias.assign(torch.ones(2))
    opt = kerasish.optimizers.AdamW(0.1, weight_decay=0.5)
    opt.build([{"params": [dense.kernel]}, {"params": [dense.bias], "weight_decay": 0.0, "lr": 0.05}])
    kernel = dense.kernel.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # zero gradients: only the decoupled decay moves a weight (Keras: w -= lr * wd * w)
    torch.testing.assert_close(dense.kernel.detach(), kernel * (1 - 0.1 * 0.5))
    torch.testing.assert_close(dense.bias.detach(), torch.ones(2))
    for cls, key, value in ((kerasish.optimizers.SGD, "momentum", 0.9), (kerasish.optimizers.Adam, "betas", (0.5, 0.5)),
                            (kerasish.optimizers.Adam, "eps", 1e-3)):
        opt = cls(0.1)
        with pytest.raises(ValueError, match=rf"reads only 'lr' and 'weight_decay'.*\['{key}'\].*"
                                             rf"Received: param_group keys=\['{key}', 'params'\]"):
            opt.build([{"params": [dense.kernel]}, {"params": [dense.bias], key: value}])
        opt = cls(0.1)
        opt.build([dense.kernel])
        with pytest.raises(ValueError, match=rf"\['{key}'\]"):
            opt.add_param_group({"params": [dense.bias], key: value})


# ----------------------------------------------------------------- torch.compile
class _EagerOnly(kerasish.layers.Layer):
    """A layer whose `call` reads a value back to Python, kept out of the graph."""

    calls = 0

    @torch.compiler.disable
    def call(self, x):
        type(self).calls += 1
        return x * (2.0 if float(x.sum()) > 0 else 3.0)


class _EagerOnlyTwin(torch.nn.Module):
    @torch.compiler.disable
    def forward(self, x):
        return x * (2.0 if float(x.sum()) > 0 else 3.0)


def test_compiler_disable_on_one_layers_call_runs_it_eagerly_every_call_under_dynamic_compile():
    import torch._dynamo.testing

    torch._dynamo.reset()
    model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(3), _EagerOnly(), L.Dense(2)])
    twin = torch.nn.Sequential(torch.nn.Linear(4, 3), _EagerOnlyTwin(), torch.nn.Linear(3, 2))
    with torch.no_grad():
        twin[0].weight.copy_(model.layers[0].kernel.T), twin[0].bias.copy_(model.layers[0].bias)
        twin[2].weight.copy_(model.layers[2].kernel.T), twin[2].bias.copy_(model.layers[2].bias)
    counter = torch._dynamo.testing.CompileCounter()
    compiled = torch.compile(model, backend=counter, dynamic=True)
    g = torch.Generator().manual_seed(4)
    _EagerOnly.calls = 0
    frames = []
    for batch in (2, 3, 5, 7, 11, 13):
        x = torch.randn(batch, 4, generator=g) * (1 if batch % 2 else -1)
        out = compiled(x)
        torch.testing.assert_close(out, twin(x), rtol=1e-5, atol=1e-5)
        out.sum().backward()
        frames.append(counter.frame_count)
    assert _EagerOnly.calls == 6  # the Python body ran on every call
    assert frames[1] == frames[-1]  # no recompiles once the batch size is symbolic
    assert all(p.grad is not None for p in model.parameters())
    torch._dynamo.reset()


# ----------------------------------------------------------------------- DDP
@pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed")
def test_ddp_unused_branch_no_sync_accumulation_and_static_graph_train_like_the_torch_twin(tmp_path):
    """Two gloo ranks run tests/user_patterns_7_ddp_worker.py (subprocesses, never a fork of this
    process); each trains the kerasish model and its `torch.nn` twin the same way."""
    sys.path.insert(0, os.path.join(HERE, "distribution"))
    from test_data_parallel import run_ranks

    g = torch.Generator().manual_seed(5)
    weights = [torch.randn(4, 6, generator=g) * 0.5, torch.randn(6, generator=g) * 0.1,
               torch.randn(6, 2, generator=g) * 0.5, torch.randn(2, generator=g) * 0.1,
               torch.randn(6, 3, generator=g) * 0.5, torch.randn(3, generator=g) * 0.1]
    torch.save({"weights": weights, "x": torch.randn(36, 4, generator=g), "y": torch.randn(36, 2, generator=g)},
               tmp_path / "init.pt")
    run_ranks(os.path.join(HERE, "user_patterns_7_ddp_worker.py"), tmp_path, world=2, timeout=90)
    finals = [torch.load(tmp_path / f"final_{rank}.pt") for rank in range(2)]
    for how in ("find_unused", "static_graph"):
        for rank in range(2):
            ours, ours_unused_untouched = finals[rank][how]["kerasish"]
            ref, ref_unused_untouched = finals[rank][how]["torch"]
            assert ours_unused_untouched and ref_unused_untouched
            for a, b in zip(ours, ref):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
            for a, b in zip(ours, finals[0][how]["kerasish"][0]):  # the ranks agree
                torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert not torch.allclose(ours[0], weights[0])  # the trunk trained
        torch.testing.assert_close(ours[4], weights[4], rtol=0, atol=0)  # the unused branch did not move
