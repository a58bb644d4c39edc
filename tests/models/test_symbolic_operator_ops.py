"""Python operators on KerasTensors (`x * 2`, `a != b`, `x[:, 1:]`, `~m`,
`round(x)`, ...) record the operations Keras 3 records: the same op classes,
node names (made unique the same way), configs, summaries and `.keras` files,
checked against real Keras 3 (torch backend), with the same weights in both.
"""

import json
import os

import numpy as np
import pytest
import torch

import kerasish

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "kerasish_torch_op_names")


def _binary_tensors(k):
    a, b = k.Input((3,), name="a"), k.Input((3,), name="b")
    return [a, b], [a + b, a - b, a * b, a / b, a // b, a % b, a**b, a * b]


def _scalars(k):
    a = k.Input((3,), name="a")
    return [a], [a + 2, 2 + a, a - 2, 2 - a, a * 2, 2 * a, a / 2, 2 / a, a // 2, 2 // a, a % 2, 2 % a, a**2,
                 2**a, a * 0.5, 1.5 - a]


def _unary(k):
    a = k.Input((3,), name="a")
    return [a], [-a, abs(a), round(a), round(a, 1), abs(-a)]


def _comparisons(k):
    a, b = k.Input((3,), name="a"), k.Input((3,), name="b")
    return [a, b], [a < b, a <= b, a > b, a >= b, a != b, a < 1.0, 1.0 < a, 1.0 >= a, a != 1.0]


def _logical(k):
    a, b = k.Input((3,), name="a", dtype="bool"), k.Input((3,), name="b", dtype="bool")
    return [a, b], [a & b, a | b, a ^ b, ~a, ~(a & b)]


def _integers(k):
    a, b = k.Input((3,), name="a", dtype="int32"), k.Input((3,), name="b", dtype="int32")
    return [a, b], [a + b, a * 2, a / b, a // 2, 7 // a, a % 3, -a, abs(a), a**2, 2.5 * a, a / 2, round(a),
                    a & b, ~a, a | 3, a != b, a < 2]


def _float16(k):
    a = k.Input((3,), name="a", dtype="float16")
    return [a], [a * 2, a / 3, 1.5 - a, a**0.5, a * np.float32(2.0)]


def _getitem(k):
    a = k.Input((4, 5), name="a")
    return [a], [a[:, 1:], a[:, 0], a[..., 2], a[:, None, 1:3], a[:, ::2, -1], a[0], a[..., None]]


def _matmul(k):
    a, w = k.Input((4, 5), name="a"), k.Input((5, 3), name="w")
    return [a, w], [a @ w, (a @ w) @ k.ops.transpose(w, (0, 2, 1))]


def _methods(k):
    a = k.Input((4, 1, 6), name="a")
    return [a], [a.reshape((-1, 6)), a.reshape((-1, 4, 6)), a.squeeze(2), a.squeeze(), round(a, 2)]


def _constants(k):
    a = k.Input((3,), name="a")
    t = torch.tensor([1.0, 2.0, 3.0])
    c = np.array([0.5, -1.0, 2.0], "float32")
    # a torch tensor on the left: torch's operator gives up and the
    # KerasTensor's reflected operator records the op (`t < a` is `a > t`)
    return [a], [a * c, a - c, t + a, t * a, t < a, t != a, t - a, t / a, a * np.float32(3)]


def _with_layers(k):
    a = k.Input((3,), name="a")
    x = k.layers.Dense(4, name="d1")(a)
    y = (x * 2 + 1) * k.layers.Dense(4, name="d2")(a) - x
    z = k.layers.Dense(2, name="d3")(y[:, 1:] / (abs(x[:, :3]) + 1))
    return [a], [z, x > y]


CASES = {
    "binary_tensors": _binary_tensors, "scalars": _scalars, "unary": _unary, "comparisons": _comparisons,
    "logical": _logical, "integers": _integers, "float16": _float16, "getitem": _getitem, "matmul": _matmul,
    "methods": _methods, "constants": _constants, "with_layers": _with_layers,
}


def _build(k, case):
    k.backend.clear_session(free_memory=False)  # names start again at `multiply` (no slow gc pass)
    inputs, outputs = CASES[case](k)
    return k.Model(inputs, outputs, name=case)


def _inputs(model, seed=0):
    rng = np.random.default_rng(seed)
    xs = []
    for t in model.inputs:
        shape, dtype = (2,) + tuple(t.shape[1:]), str(t.dtype)
        if dtype == "bool":
            xs.append(rng.integers(0, 2, shape).astype(bool))
        elif "int" in dtype:
            xs.append(rng.integers(1, 6, shape).astype(dtype))
        else:  # away from 0 and mixed signs, so / // % ** and comparisons all matter
            xs.append((rng.random(shape) * 3 - 1).astype(dtype) + np.where(rng.random(shape) > 0.5, 0.5, -0.25))
    return xs


def _predict(model, xs):
    out = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    return [np.asarray(o) for o in (out if isinstance(out, list) else [out])]


def _assert_same_outputs(got, want, what):
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, (what, i, g.dtype, w.dtype, g.shape, w.shape)
        # the same torch kernels on both sides; float16 (x ** 0.5) may round differently
        tol = 1e-3 if g.dtype == np.float16 else 1e-6
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=tol, atol=tol,
                                   err_msg=f"{what}: output {i}")


def _summary(model):
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    return lines


def _dump(config):
    return json.dumps(config, sort_keys=True, default=str)


@pytest.fixture(scope="module")
def built(keras_ref):
    """`built(case)`: the (Keras, kerasish) models of a case, built once."""
    cache = {}

    def get(case):
        if case not in cache:
            cache[case] = (_build(keras_ref, case), _build(kerasish, case))
        return cache[case]

    return get


@pytest.mark.parametrize("case", sorted(CASES))
def test_recorded_ops_and_config_equal_keras(built, case):
    ref, model = built(case)
    ref_ops = [(type(op).__name__, op.name) for op in ref.operations if not type(op).__name__ == "InputLayer"]
    config = model.get_config()
    ours = [(layer["class_name"], layer["name"]) for layer in config["layers"] if layer["class_name"] != "InputLayer"]
    assert [op for op in ours if op[0] not in ("Dense",)] == [op for op in ref_ops if op[0] != "Dense"]
    assert ours == ref_ops
    ref_config = ref.get_config()
    for ours_layer, ref_layer in zip(config["layers"], ref_config["layers"]):
        assert _dump(ours_layer) == _dump(ref_layer)
    assert _dump(config) == _dump(ref_config)
    assert [op.name for op in model.operations] == [op.name for op in ref.operations]


@pytest.mark.parametrize("case", sorted(CASES))
def test_summary_and_predictions_equal_keras(built, case):
    ref, model = built(case)
    assert _summary(model) == _summary(ref)
    model.set_weights(ref.get_weights())
    xs = _inputs(ref)
    _assert_same_outputs(_predict(model, xs), _predict(ref, xs), case)


def test_operator_names_are_uniquified_like_keras(keras_ref):
    names = {}
    for k in (keras_ref, kerasish):
        k.backend.clear_session(free_memory=False)
        a = k.Input((3,), name="a")
        y = k.ops.multiply(a * 2, 3 * a)  # an ops call and operators share the counter
        names[k.__name__] = [y._keras_history[0].name, abs(a)._keras_history[0].name,
                             k.ops.abs(a)._keras_history[0].name, (a / a)._keras_history[0].name]
    assert names["kerasish"] == names["keras"] == ["multiply_2", "absolute", "absolute_1", "true_divide"]


@pytest.mark.parametrize("case", ["scalars", "integers", "getitem", "methods", "with_layers", "logical"])
def test_keras_files_move_both_ways(built, keras_ref, case, tmp_path):
    ref, model = built(case)
    model.set_weights(ref.get_weights())
    xs = _inputs(ref, seed=1)
    want = _predict(ref, xs)
    model.save(tmp_path / "ours.keras")
    ref.save(tmp_path / "keras.keras")
    in_keras = keras_ref.saving.load_model(tmp_path / "ours.keras")
    in_ours = kerasish.saving.load_model(tmp_path / "keras.keras")
    _assert_same_outputs(_predict(in_keras, xs), want, "kerasish file in Keras")
    _assert_same_outputs(_predict(in_ours, xs), want, "Keras file in kerasish")
    assert [op.name for op in in_keras.operations] == [op.name for op in ref.operations]
    assert _dump(in_ours.get_config()) == _dump(ref.get_config())
    # and the loaded model writes Keras's config again
    assert _dump(kerasish.saving.load_model(tmp_path / "ours.keras").get_config()) == _dump(ref.get_config())


def test_old_files_with_torch_style_names_still_load():
    # written by kerasish before this change (tools/fixtures/make_kerasish_torch_op_names.py):
    # `mul`, `sub`, `truediv` (as Keras's Divide), TorchOpLambda `floordiv`, `getitem`, ...
    model = kerasish.saving.load_model(os.path.join(FIXTURES, "old_ops.keras"))
    io = np.load(os.path.join(FIXTURES, "old_ops_io.npz"))
    names = [op.name for op in model.operations]
    assert names == ["a", "d", "mul", "b", "mul_1", "add", "sub", "truediv", "floordiv", "mod", "pow", "neg",
                     "abs", "getitem", "lt"]
    got = _predict(model, [io["a"], io["b"]])
    want = [io[f"out_{i}"] for i in range(len(got))]
    _assert_same_outputs(got, want, "old kerasish file")
    # the same maths as today's recording of the same operators
    a, b = io["a"].astype(np.float64), io["b"].astype(np.float64)
    kernel, bias = (np.asarray(w, np.float64) for w in model.get_layer("d").get_weights())
    d = a @ kernel + bias
    reference = [d * 2 + b, 2 * a - b, a / b, np.floor(a / b), np.mod(a, 2.0), a**2, -a, np.abs(b), d[:, 1:], a < b]
    for i, (g, r) in enumerate(zip(got, reference)):
        np.testing.assert_allclose(g.astype(np.float64), r, rtol=1e-5, atol=1e-6, err_msg=f"output {i}")


def test_eq_ne_and_hash_follow_keras(keras_ref):
    for k in (keras_ref, kerasish):
        a, b = k.Input((3,)), k.Input((3,))
        # Keras defines `__ne__` (an op) but not `__eq__`: `==` is identity and KerasTensors stay hashable
        assert (a == a) is True and (a == b) is False
        assert len({a, b, a}) == 2 and a in {a: 1}
        assert a in [b, a] and [a, b].index(b) == 1
        ne = a != b
        assert isinstance(ne, k.KerasTensor) and ne.dtype == "bool"
        assert ne._keras_history[0].name == "not_equal" or ne._keras_history[0].name.startswith("not_equal_")
        with pytest.raises(TypeError, match="cannot be used as a"):
            bool(ne)


def test_ne_model_runs_as_not_equal():
    a, b = kerasish.Input((3,)), kerasish.Input((3,))
    model = kerasish.Model([a, b], a != b)
    x = np.array([[1.0, 2.0, 3.0]], "float32")
    y = np.array([[1.0, 0.0, 3.0]], "float32")
    np.testing.assert_array_equal(np.asarray(model.predict([x, y], verbose=0)), x != y)


def test_integer_and_or_not_are_logical_as_in_keras():
    # Keras records `&`, `|`, `^`, `~` as LogicalAnd/Or/Xor/Not: on integers
    # they are logical (bool results), not torch's bitwise operators
    a, b = kerasish.Input((3,), dtype="int32"), kerasish.Input((3,), dtype="int32")
    model = kerasish.Model([a, b], [a & b, a | b, a ^ b, ~a])
    x = np.array([[0, 1, 6]], "int32")
    y = np.array([[3, 0, 5]], "int32")
    got = model.predict([x, y], verbose=0)
    want = [np.logical_and(x, y), np.logical_or(x, y), np.logical_xor(x, y), np.logical_not(x)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), w)


def test_numpy_array_on_the_left_records_the_reflected_op():
    # Keras 3 raises here (NumPy calls `__array__`); kerasish lets NumPy defer
    # to the KerasTensor's reflected operator instead of building an object array
    a = kerasish.Input((3,), name="a")
    c = np.array([0.5, -1.0, 2.0], "float32")
    y = c - a
    node = y._keras_history[0]
    assert node.name == "subtract"
    model = kerasish.Model(a, [y, c * a, c < a])
    x = np.array([[1.0, 2.0, -3.0]], "float32")
    got = model.predict(x, verbose=0)
    for g, w in zip(got, [c - x, c * x, c < x]):
        np.testing.assert_array_equal(np.asarray(g), w)
    with pytest.raises(ValueError, match="cannot convert it to a NumPy array"):
        np.asarray(a)


def test_symbolic_conversions_raise_as_keras():
    a = kerasish.Input((3,))
    with pytest.raises(ValueError, match="to an int"):
        int(a)
    with pytest.raises(ValueError, match="to a float"):
        float(a)


def test_trainable_torch_tensor_next_to_a_keras_tensor_is_refused():
    a = kerasish.Input((3,))
    weight = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(TypeError, match="TorchModuleWrapper"):
        a * weight
    with pytest.raises(TypeError, match="TorchModuleWrapper"):
        weight + a


def test_unary_plus_stays_a_torch_op():
    # not an operator of Keras's KerasTensor (Keras raises TypeError); kerasish keeps torch's `+x`
    a = kerasish.Input((3,))
    model = kerasish.Model(a, +a)
    x = np.array([[1.0, -2.0, 3.0]], "float32")
    np.testing.assert_array_equal(np.asarray(model.predict(x, verbose=0)), x)


def test_squeeze_of_a_non_unit_axis_raises_as_keras():
    a = kerasish.Input((4, 1, 6))
    with pytest.raises(ValueError, match="Cannot squeeze axis 1"):
        a.squeeze(1)
    assert a.squeeze(dim=2).shape == (None, 4, 6)


SCALAR_OPS = ["add", "subtract", "multiply", "divide", "true_divide", "equal", "not_equal", "greater",
              "greater_equal", "less", "less_equal", "mod", "floor_divide"]


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64", "float16", "uint8", "bool"])
def test_ops_with_a_python_scalar_equal_keras(keras_ref, dtype):
    # `x * 2` in a graph runs `ops.multiply(x, 2)`; where torch's own scalar rule gives Keras's
    # dtype and values, kerasish hands the 2 to torch as is (no tensor per call): bit for bit Keras's
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 5)) * 5).astype(dtype)
    x.reshape(-1)[0] = 0
    scalars = [2, -3, 0, 7, 2**31 - 1, 0.1, -2.5, 1e-8, 3.0, float("inf"), float("nan"), -0.0, True]
    for name in SCALAR_OPS:
        for s in scalars:
            try:
                want = keras_ref.ops.convert_to_numpy(getattr(keras_ref.ops, name)(torch.tensor(x), s))
            except Exception as e:  # noqa: BLE001 - the same error type is asserted below
                with pytest.raises(type(e)):
                    getattr(kerasish.ops, name)(torch.tensor(x), s)
                continue
            got = getattr(kerasish.ops, name)(torch.tensor(x), s).numpy()
            assert got.dtype == want.dtype, (name, s, got.dtype, want.dtype)
            np.testing.assert_array_equal(got, want, err_msg=f"{name}(x, {s!r}) {dtype}")
            if got.dtype.kind == "f":
                np.testing.assert_array_equal(np.signbit(got), np.signbit(want), err_msg=f"{name} sign")


def test_operator_models_pickle_and_deepcopy():
    import copy
    import pickle

    a, b = kerasish.Input((3,)), kerasish.Input((3,))
    model = kerasish.Model([a, b], [(a * 2 + 1) / b, a[:, 1:] != 0, round(a, 1), kerasish.ops.sum(a, axis=-1)])
    x = [torch.tensor([[1.0, -2.0, 0.25]]), torch.tensor([[0.5, 4.0, -1.0]])]
    want = [t.numpy() for t in model(x)]
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        _assert_same_outputs([t.numpy() for t in clone(x)], want, "copy")
        assert [op.name for op in clone.operations] == [op.name for op in model.operations]
