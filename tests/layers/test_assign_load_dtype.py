"""`load_state_dict(sd, assign=True)` with a state dict in another float dtype.

torch puts the state dict's tensors in place, in their dtype (an `nn.Linear` given float64 tensors this way
computes in float64). A kerasish layer then computes in that dtype too; its dtype policy must say so, as
`.double()` makes it say, or `dtype`, `get_config()` and saved files describe a float32 layer that is not.
"""
import numpy as np
import torch

import kerasish as keras


def _model():
    keras.utils.set_random_seed(3)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])


def test_float64_state_dict_assigned_into_a_float32_model_becomes_its_policy(tmp_path):
    model = _model()
    sd = {k: v.double() for k, v in model.state_dict().items()}
    model.load_state_dict(sd, assign=True)
    for layer in model.layers:
        assert layer.dtype == "float64" and layer.compute_dtype == "float64", layer.name
        assert layer.get_config()["dtype"]["config"]["name"] == "float64"

    x = np.random.default_rng(0).standard_normal((5, 3))
    out = model(torch.tensor(x, dtype=torch.float32))
    assert out.dtype == torch.float64
    # NumPy reference in float64 from the assigned tensors (BN in inference mode)
    k, b = sd["dense.kernel"].numpy(), sd["dense.bias"].numpy()
    g, be = sd["batch_normalization.gamma"].numpy(), sd["batch_normalization.beta"].numpy()
    mm, mv = sd["batch_normalization.moving_mean"].numpy(), sd["batch_normalization.moving_variance"].numpy()
    h = x.astype(np.float32).astype(np.float64) @ k + b
    ref = (h - mm) / np.sqrt(mv + 1e-3) * g + be
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12, atol=1e-12)

    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path)
    assert all(w.dtype == torch.float64 for w in again.weights)
    np.testing.assert_array_equal(again(torch.tensor(x)).detach().numpy(), out.detach().numpy())


def test_same_dtype_assign_and_weights_made_in_their_own_dtype_keep_the_policy():
    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.s = self.add_weight(shape=(input_shape[-1],), initializer="ones", dtype="float64")

        def call(self, x):
            return x * self.s.to(x.dtype)

    layer = Scale()
    layer(torch.ones(2, 3))
    layer.load_state_dict(layer.state_dict(), assign=True)  # float64 weight, unchanged: not a policy change
    assert layer.dtype == "float32"

    model = _model()
    model.load_state_dict(model.state_dict(), assign=True)
    assert all(layer.dtype == "float32" for layer in model.layers)

    # a state dict of mixed dtypes leaves the policy alone (no single dtype to follow)
    model = _model()
    sd = dict(model.state_dict())
    sd["dense.kernel"] = sd["dense.kernel"].double()
    model.load_state_dict(sd, assign=True)
    assert model.layers[0].dtype == "float32"
