"""Nadam's running momentum-schedule product (`u_product`) as Keras 3 shows it:
the last entry of `optimizer.variables`, a float32 variable that Keras makes
unnamed in `build`, so named from the process-wide counter of unnamed
variables ("variable", then "variable_1", ...), and that shares the
optimizer's state (it was a detached copy with no `path`: `for v in
optimizer.variables: v.path` raised, and writes to it were lost). `.keras`
files carry it both ways between kerasish and Keras.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish


def _fitted(keras, weights=None):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.Nadam(learning_rate=0.01), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    return model, x, y


def test_u_product_is_keras_last_optimizer_variable(keras_ref):
    init = keras_ref.Sequential([keras_ref.Input((3,)), keras_ref.layers.Dense(2)]).get_weights()
    ref, _, _ = _fitted(keras_ref, init)
    ours, _, _ = _fitted(kerasish, init)
    rv, ov = ref.optimizer.variables, ours.optimizer.variables
    # Keras's name is its unnamed-variable default, uniquified per process ("variable", "variable_28")
    assert len(ov) == len(rv) and rv[-1].path.split("_")[0] == "variable"
    for a, b in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    last = ov[-1]
    assert isinstance(last, kerasish.Variable) and last.name == last.path and last.name.split("_")[0] == "variable"
    assert last.dtype == torch.float32 and str(rv[-1].dtype) == "float32"
    # same schedule product after the same number of steps (4), bit for bit
    assert np.asarray(last).tobytes() == np.asarray(rv[-1]).tobytes()


def test_u_product_variable_writes_the_optimizer_state():
    init = kerasish.Sequential([kerasish.Input((3,)), kerasish.layers.Dense(2)]).get_weights()
    (model, x, y), (twin, _, _), (tampered, _, _) = (_fitted(kerasish, init) for _ in range(3))
    before = float(model.optimizer._u_product)
    model.optimizer.variables[-1].assign(0.5)
    assert float(model.optimizer._u_product) == 0.5
    model.optimizer.variables[-1].assign(before)
    tampered.optimizer.variables[-1].assign(0.5)
    for m in (model, twin, tampered):
        m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    # the restored state continues exactly as the untouched optimizer; the changed one does not
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(tampered.get_weights()[0], twin.get_weights()[0])


def test_nadam_stateless_apply_leaves_u_product_and_equals_keras(keras_ref):
    results = {}
    for keras in (keras_ref, kerasish):
        var = keras.Variable(np.arange(4, dtype="float32").reshape(2, 2))
        opt = keras.optimizers.Nadam(learning_rate=0.1)
        opt.build([var])
        grads = [keras.ops.convert_to_tensor(np.full((2, 2), 0.5, "float32"))]
        opt.apply(grads, [var])  # one real step: u_product != 1
        state = [keras.ops.convert_to_tensor(np.asarray(v)) for v in opt.variables]
        before = float(np.asarray(opt.variables[-1]))
        new_vars, new_opt = opt.stateless_apply(state, grads, [keras.ops.convert_to_tensor(np.asarray(var))])
        assert float(np.asarray(opt.variables[-1])) == before  # stateless: own state unchanged
        results[keras.__name__] = ([np.asarray(v) for v in new_vars], [np.asarray(v) for v in new_opt])
    (rv, ro), (kv, ko) = results["keras"], results["kerasish"]
    np.testing.assert_allclose(kv[0], rv[0], rtol=1e-6, atol=1e-7)
    assert len(ko) == len(ro)
    for a, b in zip(ko, ro):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert ko[-1] != 1.0 and ko[-1] < ro[-1] + 1e-6


def test_u_product_named_from_the_unnamed_variable_counter_as_keras(keras_ref):
    """After `clear_session()`, the first Nadam built names it "variable", the next "variable_1"; an
    unnamed `keras.Variable` made in between takes its number from the same counter."""
    names = {}
    for keras in (keras_ref, kerasish):
        keras.backend.clear_session()
        made = []
        for _ in range(2):
            opt = keras.optimizers.Nadam()
            opt.build([keras.Variable(np.ones((2,), "float32"), name="w")])
            made.append(opt.variables[-1])
        keras.Variable(np.zeros((1,), "float32"))  # unnamed: draws "variable_<n>" too
        opt = keras.optimizers.Nadam()
        opt.build([keras.Variable(np.ones((2,), "float32"), name="w")])
        made.append(opt.variables[-1])
        names[keras.__name__] = [(v.name, v.path) for v in made]
    assert names["kerasish"] == names["keras"]
    assert [n for n, _ in names["kerasish"]] == ["variable", "variable_1", "variable_3"]


@pytest.mark.parametrize("saver", ["kerasish", "keras"])
def test_keras_files_carry_u_product_both_ways(keras_ref, tmp_path, saver):
    """A Nadam model fitted 2 epochs, saved by one and loaded by the other: `u_product` and the
    moments come back, and one more epoch equals the saver's own continuation."""
    init = keras_ref.Sequential([keras_ref.Input((3,)), keras_ref.layers.Dense(2)]).get_weights()
    source, loader = (kerasish, keras_ref) if saver == "kerasish" else (keras_ref, kerasish)
    model, x, y = _fitted(source, init)
    path = str(tmp_path / "nadam.keras")
    model.save(path)
    loaded = loader.saving.load_model(path)
    saved_u = float(np.asarray(model.optimizer.variables[-1]))
    assert saved_u < 1.0
    assert float(np.asarray(loaded.optimizer.variables[-1])) == saved_u
    assert int(np.asarray(loaded.optimizer.iterations)) == int(np.asarray(model.optimizer.iterations)) == 4
    for m in (model, loaded):
        m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(float(np.asarray(loaded.optimizer.variables[-1])),
                               float(np.asarray(model.optimizer.variables[-1])), rtol=1e-7)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
