"""Habits PyTorch users bring to kerasish layers (round 11): `gradcheck`
in float64, by reverse and by forward mode (`torch.func.jvp`/`jacfwd`'s
engine) and `gradgradcheck`, over the whole layer catalogue, some argument
variants and masked padded batches (a functional model moved by
`.double()` cast its float64 inputs to its float32 `Input` dtype first: every
number carried float32 rounding, silently; now the inputs follow the move as
a floating buffer would); `torch.use_deterministic_algorithms(True)` with
torch's NaN fill of uninitialized memory over the catalogue, and seeded
`fit`s repeating bit for bit under torch's reproducibility flags; torch's in-place
`nn.Module.compile()` on a kerasish layer; optimizer steps inside the backward
pass (`register_post_accumulate_grad_hook`); snapshots of a model taken in a
callback in the middle of `fit` (`copy.deepcopy`, pickle, `torch.save`, a
deep-copied `state_dict`); `clip_grad_norm_` in a custom `train_step`
(against Keras's `global_clipnorm`); `fit` on kernels under torch's
parametrizations and pruning.
References: the same pattern on `torch.nn` modules holding the same weights
(Keras kernels are (in, out), torch Linear weights (out, in)), finite
differences (gradcheck), real Keras 3, or the same run without the tool
around it.
"""

import copy
import io
import pickle
import warnings

import numpy as np
import pytest
import torch

import kerasish
from kerasish import layers as L
from test_torch_citizen_catalogue import CASES
from test_torch_citizen_catalogue import _flat


def _data(n=24, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), (scale * rng.normal(size=(n, 2))).astype("float32")


def _mlp_and_twin(functional=False):
    torch.manual_seed(0)
    if functional:
        inputs = kerasish.Input((4,))
        x = L.Dense(6, activation="tanh")(inputs)
        ours = kerasish.Model(inputs, L.Dense(2)(x))
    else:
        ours = kerasish.Sequential([kerasish.Input((4,)), L.Dense(6, activation="tanh"), L.Dense(2)])
    twin = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    dense = [layer for layer in ours.layers if isinstance(layer, L.Dense)]
    with torch.no_grad():
        for lin, d in zip((twin[0], twin[2]), dense):
            lin.weight.copy_(d.kernel.T)
            lin.bias.copy_(d.bias)
    return ours, twin


def _twin_fit(twin, x, y, batch_size, epochs, lr):
    opt = torch.optim.SGD(twin.parameters(), lr=lr)
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            opt.zero_grad()
            xb, yb = torch.from_numpy(x[start:start + batch_size]), torch.from_numpy(y[start:start + batch_size])
            torch.nn.functional.mse_loss(twin(xb), yb).backward()
            opt.step()


# ------------------------------------------------------- gradcheck over the catalogue
def _gradcheck_function(layer, args):
    """(f, leaves): f(*leaves) runs `layer` through `functional_call` with the leaves as its parameters
    and its floating inputs, and returns its floating outputs."""
    params = {k: v.detach().clone().requires_grad_(True) for k, v in layer.named_parameters()}
    inputs = [t.detach().clone().requires_grad_(True) for t in _flat(args) if t.is_floating_point()]

    def f(*leaves):
        named = dict(zip(params, leaves[:len(params)]))
        given = list(leaves[len(params):])

        def rebuild(a):
            if isinstance(a, (list, tuple)):
                return type(a)(rebuild(v) for v in a)
            if isinstance(a, torch.Tensor) and a.is_floating_point():
                return given.pop(0)
            return a

        out = torch.func.functional_call(layer, named, rebuild(args))
        return tuple(t for t in _flat(out) if t.is_floating_point())

    return f, tuple(params.values()) + tuple(inputs)


def _variant_rows():
    """Argument variants the catalogue's default rows do not take: channels_first, strides, causal and
    dilated convolutions, transposed RNN directions, merge modes, unrolling."""
    from test_torch_citizen_catalogue import Case
    from test_torch_citizen_catalogue import one

    cf = {"data_format": "channels_first"}
    return [
        Case("Conv2D cf strides", lambda: L.Conv2D(2, 3, strides=2, padding="same", **cf), one(2, 3, 5, 6)),
        Case("Conv2DTranspose cf", lambda: L.Conv2DTranspose(2, 3, strides=2, padding="same", **cf), one(2, 3, 5, 6)),
        Case("DepthwiseConv2D cf", lambda: L.DepthwiseConv2D(3, **cf), one(2, 3, 5, 6)),
        Case("SeparableConv2D cf", lambda: L.SeparableConv2D(2, 3, **cf), one(2, 3, 5, 6)),
        Case("Conv1D causal dilated", lambda: L.Conv1D(2, 3, padding="causal", dilation_rate=2), one(2, 7, 3)),
        Case("Conv1D cf", lambda: L.Conv1D(2, 3, padding="same", **cf), one(2, 3, 7)),
        Case("BatchNormalization axis=1", lambda: L.BatchNormalization(axis=1), one(2, 3, 5, 6)),
        Case("AveragePooling2D cf same", lambda: L.AveragePooling2D(3, strides=2, padding="same", **cf),
             one(2, 3, 5, 6)),
        Case("UpSampling2D cf bilinear", lambda: L.UpSampling2D(2, interpolation="bilinear", **cf), one(2, 3, 5, 6)),
        Case("ConvLSTM2D cf sequences", lambda: L.ConvLSTM2D(2, 3, return_sequences=True, **cf), one(1, 2, 3, 5, 5)),
        Case("GroupNormalization axis=1", lambda: L.GroupNormalization(groups=1, axis=1), one(2, 3, 5, 6)),
        Case("LSTM go_backwards", lambda: L.LSTM(3, go_backwards=True, return_sequences=True), one(2, 7, 3)),
        Case("GRU reset_after=False", lambda: L.GRU(3, reset_after=False), one(2, 7, 3)),
        Case("Bidirectional LSTM concat", lambda: L.Bidirectional(L.LSTM(2, return_sequences=True)), one(2, 7, 3)),
        Case("SimpleRNN unroll", lambda: L.SimpleRNN(2, unroll=True), one(2, 7, 3)),
    ]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES + _variant_rows()])
def test_gradcheck_in_float64_by_reverse_and_forward_mode_over_the_catalogue(case):
    """A torch user checks gradients with `gradcheck` in float64 after `.double()`: finite differences
    against the backward pass, against forward-mode AD (the engine of `jvp` / `jacfwd` / `hessian`) and,
    by `gradgradcheck`, against the double backward, with respect to every parameter and every floating
    input, in inference mode (fast mode: random projections of the Jacobians); the catalogue's rows and
    some argument variants. The functional model
    failed: `.double()` left it casting its inputs to its float32 `Input` first."""
    torch.manual_seed(0)
    layer = case.make().eval()
    layer(*case.inputs(torch.float32))
    layer = layer.double()
    f, leaves = _gradcheck_function(layer, case.inputs(torch.float64))
    if not leaves:
        pytest.skip(f"{case.name} has neither weights nor floating inputs: nothing to differentiate")
    tol = {"atol": 1e-5, "rtol": 1e-3, "fast_mode": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # (gradcheck: "Input #k requires gradient and is not a double")
        assert torch.autograd.gradcheck(f, leaves, **tol)
        # torch's CPU flash attention has no forward derivative (torch's own scaled_dot_product_attention
        # raises there): the math backend has one, as for double backward (round 8)
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            assert torch.autograd.gradcheck(f, leaves, check_forward_ad=True, check_backward_ad=False,
                                            check_undefined_grad=False, check_batched_grad=False, **tol)
            # double backward (gradient penalties, hessian-vector products), where an output is differentiable
            if any(out.requires_grad for out in f(*leaves)):
                assert torch.autograd.gradgradcheck(f, leaves, **tol)


_MASKED = {
    "LSTM": lambda: L.LSTM(3, return_sequences=True),
    "GRU": lambda: L.GRU(3),
    "Bidirectional": lambda: L.Bidirectional(L.LSTM(2)),
    "SimpleRNN go_backwards": lambda: L.SimpleRNN(3, go_backwards=True),
    "Dense + GlobalAveragePooling1D": lambda: (L.Dense(3), L.GlobalAveragePooling1D()),
}


@pytest.mark.parametrize("name", list(_MASKED))
def test_gradcheck_of_the_weights_through_masked_padded_batches(name):
    """The same three checks on padded batches behind `Masking` (the mask is carried between layers and
    skips the padded steps), with respect to the weights (a finite difference of a padded zero would move
    the mask itself)."""
    x = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(0))
    x[0, 4:] = 0.0
    x[1, 2:] = 0.0
    made = _MASKED[name]()
    torch.manual_seed(0)
    model = kerasish.Sequential([L.Masking(0.0), *(made if isinstance(made, tuple) else (made,))]).eval()
    model(x)
    model.double()
    x = x.double()
    params = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}

    def f(*leaves):
        return torch.func.functional_call(model, dict(zip(params, leaves)), (x,))

    leaves = tuple(params.values())
    tol = {"atol": 1e-5, "rtol": 1e-3, "fast_mode": True}
    assert torch.autograd.gradcheck(f, leaves, **tol)
    assert torch.autograd.gradcheck(f, leaves, check_forward_ad=True, check_backward_ad=False,
                                    check_undefined_grad=False, check_batched_grad=False, **tol)
    assert torch.autograd.gradgradcheck(f, leaves, **tol)


# ------------------------------------------------------- a functional model moved by .double()
@pytest.mark.parametrize("nested", [False, True])
def test_a_functional_model_moved_to_float64_computes_float64_inputs_like_the_torch_twin(nested, tmp_path):
    """`.double()` on a functional model then float64 inputs: the model cast them to its float32 `Input`
    first (Keras's rule for an unmoved model), so the outputs carried float32 rounding (1e-8 off the
    float64 twin, gradcheck failing), silently. The inputs now follow the move as a floating buffer of the
    model would (also of a functional model nested in another, and through pickling and deep copies);
    the model's config reports the moved `Input` dtype, so a saved `.keras` file loads back computing the
    same, and `clone_model` gives a clone that does (its float64 layers had a float32 `Input`);
    `.float()` moves them back."""
    ours, twin = _mlp_and_twin(functional=True)
    if nested:
        inputs = kerasish.Input((4,))
        ours = kerasish.Model(inputs, ours(inputs))
    ours.double()
    twin.double()
    x = torch.randn(5, 4, dtype=torch.float64)
    want = twin(x).detach()
    ours.save(str(tmp_path / "m.keras"))
    loaded = kerasish.saving.load_model(str(tmp_path / "m.keras"))
    clone = kerasish.models.clone_model(ours)
    clone.set_weights(ours.get_weights())
    for model in (ours, pickle.loads(pickle.dumps(ours)), copy.deepcopy(ours), loaded, clone):
        out = model(x)
        assert out.dtype == torch.float64
        torch.testing.assert_close(out.detach(), want, rtol=1e-13, atol=1e-13)
    assert ours.get_config()["layers"][0]["config"]["dtype"] == "float64"
    assert ours.inputs[0].dtype == "float32"  # (the Input object other models may share is left alone)
    if not nested:  # `model.export(format="torch")` takes float64 inputs (it took float32 ones)
        ours.export(str(tmp_path / "m.pt2"), format="torch", verbose=False)
        exported = torch.export.load(str(tmp_path / "m.pt2")).module()
        torch.testing.assert_close(exported(x), want, rtol=1e-13, atol=1e-13)
    ours.float()
    twin.float()
    out = ours(x)  # back in float32: the float64 input is cast to float32 first, as Keras casts it
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ours(x.float()), rtol=0, atol=0)
    torch.testing.assert_close(out.detach(), twin(x.float()).detach(), rtol=1e-5, atol=1e-6)
    assert ours.get_config()["layers"][0]["config"]["dtype"] == "float32"


def test_a_functional_model_saved_after_double_loads_in_keras_computing_in_float64(keras_ref, tmp_path):
    """The `.keras` file of a functional model moved by `.double()` says float64 for its `Input` and its
    layers: real Keras loads it with a float64 `Input` and float64 outputs, and computes what the float64
    twin computes to float32 rounding (Keras's promotion lattice runs a matmul of two float64 tensors in
    float32 on backends other than TensorFlow: `BIT64_TO_BIT32_DTYPE`)."""
    ours, twin = _mlp_and_twin(functional=True)
    ours.double()
    twin.double()
    ours.save(str(tmp_path / "m.keras"))
    ref = keras_ref.saving.load_model(str(tmp_path / "m.keras"))
    assert [keras_ref.backend.standardize_dtype(t.dtype) for t in ref.inputs] == ["float64"]
    x = torch.randn(5, 4, dtype=torch.float64)
    out = keras_ref.ops.convert_to_numpy(ref(x))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, twin(x).detach().numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------- deterministic flags
def test_deterministic_algorithms_with_the_nan_fill_of_uninitialized_memory_change_no_catalogue_output():
    """`torch.use_deterministic_algorithms(True)` also fills every `torch.empty` with NaN
    (`torch.utils.deterministic.fill_uninitialized_memory`): a layer reading memory it never wrote would
    show NaNs, and a layer using an op without a deterministic CPU kernel would raise. Every catalogue row
    in inference mode (and in training mode where it computes otherwise, BatchNormalization-like), two
    calls each: outputs bit for bit those of the same calls without the flags."""
    fill = torch.utils.deterministic.fill_uninitialized_memory

    def run(case, training):
        torch.manual_seed(0)
        layer = case.make().train(training)
        return [layer(*case.inputs(torch.float32)) for _ in range(2)]

    checked = 0
    for case in CASES:
        for training in (False, True):
            if training and not case.train_differs:
                continue  # (the same computation as inference; random layers draw anew)
            want = run(case, training)
            torch.use_deterministic_algorithms(True)
            torch.utils.deterministic.fill_uninitialized_memory = True
            try:
                got = run(case, training)
            finally:
                torch.use_deterministic_algorithms(False)
                torch.utils.deterministic.fill_uninitialized_memory = fill
            where = f"{case.name} (training={training})"
            for w, g in zip(_flat(want), _flat(got)):
                assert torch.equal(w.isnan(), g.isnan()), where
                torch.testing.assert_close(g, w, rtol=0, atol=0, equal_nan=True, msg=lambda m, where=where: f"{where}: {m}")
            checked += 1
    assert checked > 130


@pytest.mark.parametrize("seed", ["torch.manual_seed", "keras.utils.set_random_seed"])
def test_seeded_fits_with_dropout_noise_and_shuffling_repeat_bit_for_bit_under_the_deterministic_flags(seed):
    """The torch reproducibility recipe (a seed, `use_deterministic_algorithms(True)`,
    `cudnn.deterministic = True`, `cudnn.benchmark = False`) around `fit` with Dropout, GaussianNoise,
    shuffling and a validation split: the weights equal bit for bit those of the same seeded fit without
    the flags, and of that fit again; another seed gives other weights."""
    x, y = _data(40)

    def run(value, flags):
        (torch.manual_seed if seed == "torch.manual_seed" else kerasish.utils.set_random_seed)(value)
        cudnn = torch.backends.cudnn
        saved = (cudnn.deterministic, cudnn.benchmark)
        if flags:
            torch.use_deterministic_algorithms(True)
            cudnn.deterministic, cudnn.benchmark = True, False
        try:
            model = kerasish.Sequential([kerasish.Input((4,)), L.Dense(16, activation="relu"), L.Dropout(0.3),
                                         L.GaussianNoise(0.1), L.Dense(2)])
            model.compile(kerasish.optimizers.Adam(0.01), "mse")
            model.fit(x, y, batch_size=8, epochs=2, shuffle=True, validation_split=0.2, verbose=0)
            return model.get_weights()
        finally:
            torch.use_deterministic_algorithms(False)
            cudnn.deterministic, cudnn.benchmark = saved

    first = run(3, flags=True)
    for again in (run(3, flags=False), run(3, flags=True)):
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, run(4, flags=True)))


# ------------------------------------------------------- torch's in-place compile
def test_torch_in_place_compile_on_a_kerasish_layer_runs_compiled_and_a_models_compile_stays_keras():
    """torch >= 2.2's `module.compile()` compiles a module in place. On a kerasish layer (not a Model) it is
    torch's: the next calls run the compiled graph (one frame, no recompilation) with the eager numbers.
    On a Model, `compile` is Keras's (training configuration); torch's stays reachable as
    `torch.nn.Module.compile(model)`."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    layer = L.Dense(3, activation="tanh")
    x = torch.randn(4, 5)
    eager = layer(x)
    counter = CompileCounter()
    layer.compile(backend=counter)
    for _ in range(3):
        torch.testing.assert_close(layer(x), eager, rtol=0, atol=0)
    assert counter.frame_count == 1
    model = kerasish.Sequential([kerasish.Input((5,)), L.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    assert model.loss == "mse" and counter.frame_count == 1
    counter2 = CompileCounter()
    torch.nn.Module.compile(model, backend=counter2)
    eager = model.layers[0](x)
    torch.testing.assert_close(model(x), eager, rtol=0, atol=0)
    assert counter2.frame_count == 1


# ------------------------------------------------------- optimizer steps inside backward
def test_optimizer_steps_in_post_accumulate_grad_hooks_train_like_the_torch_twin():
    """torch's "optimizer step in backward" recipe: one optimizer per parameter, stepped by a
    `register_post_accumulate_grad_hook` as soon as its gradient is ready, the gradient freed there."""
    ours, twin = _mlp_and_twin()

    def step_in_backward(module):
        optimizers = {p: torch.optim.Adam([p], lr=0.01) for p in module.parameters()}

        def hook(p):
            optimizers[p].step()
            optimizers[p].zero_grad()

        for p in module.parameters():
            p.register_post_accumulate_grad_hook(hook)

    step_in_backward(ours)
    step_in_backward(twin)
    x, y = (torch.from_numpy(a) for a in _data())
    for start in range(0, 24, 6):
        xb, yb = x[start:start + 6], y[start:start + 6]
        torch.nn.functional.mse_loss(ours(xb), yb).backward()
        torch.nn.functional.mse_loss(twin(xb), yb).backward()
    assert all(p.grad is None for p in ours.parameters())
    dense = ours.layers
    for lin, d in ((twin[0], dense[0]), (twin[2], dense[1])):
        torch.testing.assert_close(d.kernel.detach(), lin.weight.detach().T, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(d.bias.detach(), lin.bias.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours(x).detach(), twin(x).detach(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------- snapshots in the middle of fit
def test_snapshots_taken_in_a_callback_mid_fit_go_on_training_like_the_original():
    """The "keep the best model" habits, in a callback at the end of the first epoch: `copy.deepcopy(model)`,
    pickle, `torch.save(model)` / `torch.load(weights_only=False)`, and `copy.deepcopy(model.state_dict())`.
    Each copy, fitted one more epoch, gives the original's second epoch (loss, metric and weights: the
    optimizer's moments and iteration count came along); the state_dict snapshot loads into a fresh model
    and predicts like the copy; the original was left alone by the copies' training."""
    x, y = _data(32)

    def make():
        torch.manual_seed(0)
        return kerasish.Sequential([kerasish.Input((4,)), L.Dense(5, activation="tanh"), L.BatchNormalization(),
                                    L.Dense(2)])

    snaps = {}

    class Snapshot(kerasish.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                snaps["deepcopy"] = copy.deepcopy(self.model)
                snaps["pickle"] = pickle.loads(pickle.dumps(self.model))
                buf = io.BytesIO()
                torch.save(self.model, buf)
                buf.seek(0)
                snaps["torch.save"] = torch.load(buf, weights_only=False)
                snaps["state_dict"] = copy.deepcopy(self.model.state_dict())

    model = make()
    model.compile(kerasish.optimizers.Adam(0.05), "mse", metrics=["mae"])
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[Snapshot()]).history
    final = [w.copy() for w in model.get_weights()]
    fresh = make()
    fresh.load_state_dict(snaps["state_dict"])
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), snaps["deepcopy"].predict(x, verbose=0))
    for how in ("deepcopy", "pickle", "torch.save"):
        copied = snaps[how]
        assert int(copied.optimizer.iterations) == 4, how
        got = copied.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
        for key in ("loss", "mae"):
            np.testing.assert_allclose(got[key][0], history[key][1], rtol=1e-6, err_msg=f"{how} {key}")
        for a, b in zip(copied.get_weights(), final):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=how)
    for a, b in zip(model.get_weights(), final):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------- clip_grad_norm_ in a custom train_step
class _ClippedModel(kerasish.Model):
    """Keras 3's torch-backend custom `train_step`, with torch's `clip_grad_norm_` before the update."""

    max_norm = 0.1

    def train_step(self, data):
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
        loss.backward()
        if self.max_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.max_norm)
        weights = self.trainable_weights
        with torch.no_grad():
            self.optimizer.apply([v.grad for v in weights], weights)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return self.get_metrics_result()


def test_clip_grad_norm_in_a_custom_train_step_trains_like_keras_global_clipnorm(keras_ref):
    x, y = _data(32, scale=3.0)

    def build(lib, cls):
        inputs = lib.Input((4,))
        return cls(inputs, lib.layers.Dense(2)(lib.layers.Dense(8, activation="tanh")(inputs)))

    ours, unclipped = build(kerasish, _ClippedModel), build(kerasish, _ClippedModel)
    unclipped.max_norm = None
    ref = build(keras_ref, keras_ref.Model)
    ref.set_weights(ours.get_weights())
    unclipped.set_weights(ours.get_weights())
    for model in (ours, unclipped):
        model.compile(kerasish.optimizers.Adam(0.01), "mse", metrics=["mae"])
    ref.compile(keras_ref.optimizers.Adam(0.01, global_clipnorm=0.1), "mse", metrics=["mae"])
    fit = {"batch_size": 8, "epochs": 2, "shuffle": False, "verbose": 0}
    got, want = ours.fit(x, y, **fit).history, ref.fit(x, y, **fit).history
    for key in ("loss", "mae"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5)
    for a, b in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    unclipped.fit(x, y, **fit)  # (the clipping was in play: without it, other weights)
    assert max(np.abs(a - b).max() for a, b in zip(unclipped.get_weights(), ours.get_weights())) > 1e-3


# ------------------------------------------------------- fit on parametrized and pruned kernels
@pytest.mark.parametrize("kind", ["weight_norm", "orthogonal", "custom", "l1_unstructured"])
def test_fit_trains_parametrized_and_pruned_kernels_like_a_torch_loop_trains_the_twin(kind):
    """torch's parametrizations (weight_norm along the Keras kernel's output axis, orthogonal, a custom
    one) and pruning on a Dense kernel, then Keras's `fit` with SGD: it trains the parametrization's
    originals (or `kernel_orig` under its mask) as torch's SGD loop trains the twin's."""
    from torch.nn.utils import parametrizations
    from torch.nn.utils import parametrize
    from torch.nn.utils import prune

    class Half(torch.nn.Module):
        def forward(self, w):
            return 0.5 * w

    ours, twin = _mlp_and_twin()
    for module, name, dim in ((ours.layers[0], "kernel", 1), (twin[0], "weight", 0)):
        if kind == "weight_norm":
            parametrizations.weight_norm(module, name, dim=dim)
        elif kind == "orthogonal":
            parametrizations.orthogonal(module, name)
        elif kind == "custom":
            parametrize.register_parametrization(module, name, Half())
        else:
            prune.l1_unstructured(module, name, amount=0.5)
    x, y = _data()
    torch.testing.assert_close(ours(torch.from_numpy(x)), twin(torch.from_numpy(x)), rtol=1e-5, atol=1e-6)
    ours.compile(kerasish.optimizers.SGD(0.1), "mse")
    before = ours.layers[0].kernel.detach().clone()
    ours.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0)
    _twin_fit(twin, x, y, batch_size=6, epochs=2, lr=0.1)
    kernel = ours.layers[0].kernel.detach()
    assert (kernel - before).abs().max() > 1e-3  # it trained
    torch.testing.assert_close(kernel, twin[0].weight.detach().T, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(ours.layers[1].kernel.detach(), twin[2].weight.detach().T, rtol=1e-5, atol=2e-6)
    if kind == "l1_unstructured":
        assert torch.equal(kernel == 0, twin[0].weight.detach().T == 0)
