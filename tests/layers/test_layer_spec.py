"""Every example and every Raises entry of the `tf.keras.layers.Layer` page
(../shared/spec/keras-layer-api.md), translated from `tf.*` to `torch.*`."""

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish.layers import Layer


class SimpleDenseVariables(Layer):
    """The spec's first example: weights as `keras.Variable` attributes."""

    def __init__(self, units=32):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        w_init = keras.initializers.RandomNormal()
        self.w = keras.Variable(initial_value=w_init(shape=(input_shape[-1], self.units), dtype="float32"), trainable=True)
        b_init = keras.initializers.Zeros()
        self.b = keras.Variable(initial_value=b_init(shape=(self.units,), dtype="float32"), trainable=True)

    def call(self, inputs):
        return torch.matmul(inputs, self.w) + self.b


class SimpleDense(Layer):
    """The spec's second example: `add_weight`."""

    def __init__(self, units=32):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal", trainable=True)

    def call(self, inputs):
        return torch.matmul(inputs, self.w) + self.b


class ComputeSum(Layer):
    def __init__(self, input_dim):
        super().__init__()
        self.total = keras.Variable(initial_value=torch.zeros((input_dim,)), trainable=False)

    def call(self, inputs):
        self.total.assign_add(torch.sum(inputs, dim=0))
        return self.total


@pytest.mark.parametrize("cls", [SimpleDenseVariables, SimpleDense])
def test_simple_dense_examples(cls):
    linear_layer = cls(4)
    y = linear_layer(torch.ones((2, 2)))
    assert len(linear_layer.weights) == 2
    assert len(linear_layer.trainable_weights) == 2
    assert y.shape == (2, 4)
    w, b = linear_layer.get_weights()
    np.testing.assert_allclose(y.detach().numpy(), np.ones((2, 2)) @ w + b, rtol=1e-6)
    assert isinstance(linear_layer.w, torch.nn.Parameter)
    assert list(linear_layer.state_dict()) == ["w", "b"]


def test_compute_sum_example(keras_ref):
    class RefComputeSum(keras_ref.layers.Layer):  # the same example in real Keras 3
        def __init__(self, input_dim):
            super().__init__()
            self.total = keras_ref.Variable(np.zeros((input_dim,), "float32"), trainable=False)

        def call(self, inputs):
            self.total.assign_add(torch.sum(inputs, dim=0))
            return self.total

    x = torch.tensor([[1.0, 2.0], [3.0, -0.5], [0.25, 4.0]])
    ref, my_sum = RefComputeSum(2), ComputeSum(2)
    for _ in range(2):
        y, y_ref = my_sum(x), ref(x)
        np.testing.assert_allclose(np.asarray(y.numpy()), np.asarray(keras_ref.ops.convert_to_numpy(y_ref)), rtol=1e-6)
    np.testing.assert_allclose(y.numpy(), 2 * x.sum(0).numpy(), rtol=1e-6)
    assert (len(ref.weights), len(ref.non_trainable_weights), len(ref.trainable_weights)) == (1, 1, 0)
    my_sum = ComputeSum(2)
    x = torch.ones((2, 2))
    y = my_sum(x)
    np.testing.assert_array_equal(y.numpy(), [2.0, 2.0])  # the spec's printed values
    y = my_sum(x)
    np.testing.assert_array_equal(y.numpy(), [4.0, 4.0])
    assert my_sum.weights == [my_sum.total]
    assert my_sum.non_trainable_weights == [my_sum.total]
    assert my_sum.trainable_weights == []
    # a non-trainable weight is a registered buffer
    assert "total" in dict(my_sum.named_buffers())


def test_losses_example_add_loss_in_call(keras_ref):
    seen = {}
    for K in (keras_ref, keras):  # the spec's example, in real Keras 3 and kerasish

        class MyLayer(K.layers.Layer):
            def call(self, inputs):
                self.add_loss(torch.abs(torch.mean(inputs)))
                return inputs

        layer = MyLayer()
        layer(np.ones((10, 1)))
        first = [float(v) for v in layer.losses]
        # losses are reset at each outermost call
        layer(-3 * np.ones((10, 1)))
        seen[K] = (first, [float(v) for v in layer.losses])
    assert seen[keras] == seen[keras_ref] == ([1.0], [3.0])


def test_get_set_weights_example(keras_ref):
    def dense1(K):
        class Dense1(K.layers.Layer):
            def __init__(self, value):
                super().__init__()
                self.value = value

            def build(self, input_shape):
                self.kernel = self.add_weight(
                    shape=(input_shape[-1], 1), initializer=K.initializers.Constant(self.value), name="kernel"
                )
                self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

            def call(self, x):
                return x @ self.kernel + self.bias

        return Dense1

    ref_a = dense1(keras_ref)(1.0)
    ref_a(torch.tensor([[1.0, 2.0, 3.0]]))
    layer_a = dense1(keras)(1.0)
    layer_a(torch.tensor([[1.0, 2.0, 3.0]]))
    got = layer_a.get_weights()
    expected = ref_a.get_weights()  # real Keras 3's arrays for the same example
    assert [(w.dtype, w.shape) for w in got] == [(w.dtype, w.shape) for w in expected]
    for ours, theirs in zip(got, expected):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(got[0], np.ones((3, 1), np.float32))  # the spec's printed values
    np.testing.assert_array_equal(got[1], np.zeros((1,), np.float32))
    layer_b = dense1(keras)(2.0)
    layer_b(torch.tensor([[10.0, 20.0, 30.0]]))
    np.testing.assert_array_equal(layer_b.get_weights()[0], 2 * np.ones((3, 1), np.float32))
    layer_b.set_weights(ref_a.get_weights())  # weights straight from real Keras
    np.testing.assert_array_equal(layer_b.get_weights()[0], np.ones((3, 1), np.float32))
    x = torch.tensor([[10.0, 20.0, 30.0]])
    np.testing.assert_allclose(layer_b(x).detach().numpy(), keras_ref.ops.convert_to_numpy(ref_a(x)), rtol=1e-6)


def test_add_metric_in_call_example():
    class MyMetricLayer(Layer):
        def __init__(self):
            super().__init__(name="my_metric_layer")
            self.mean = keras.metrics.Mean(name="metric_1")

        def call(self, inputs):
            self.add_metric(self.mean(inputs))
            self.add_metric(torch.sum(inputs), name="metric_2")
            return inputs

    layer = MyMetricLayer()
    layer(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    layer(torch.tensor([[5.0, 6.0], [7.0, 8.0]]))
    names = [m.name for m in layer.metrics]
    assert names == ["metric_1", "metric_2"]
    metrics = {m.name: float(m.result()) for m in layer.metrics}
    assert metrics["metric_1"] == pytest.approx(4.5)  # mean of 1..8
    assert metrics["metric_2"] == pytest.approx((10.0 + 26.0) / 2)  # mean of the two sums


# ----------------------------------------------------------- Raises entries
def test_add_weight_unsupported_dtype_without_initializer():
    layer = Layer()
    with pytest.raises(ValueError, match="initializer"):
        layer.add_weight(shape=(2,), dtype="complex64")
    with pytest.raises(ValueError):
        layer.add_weight(shape=(2,), dtype="string")


def test_add_weight_trainable_on_read():
    layer = Layer()
    with pytest.raises(ValueError, match="ON_READ"):
        layer.add_weight(
            name="x", shape=(2,), trainable=True, synchronization=keras.variables.VariableSynchronization.ON_READ
        )
    # without trainable=True, ON_READ makes a non-trainable weight
    w = layer.add_weight(name="y", shape=(2,), synchronization="on_read")
    assert not w.trainable and w in layer.non_trainable_weights


def test_call_returning_none_raises():
    class Bad(Layer):
        def call(self, inputs):
            return None

    with pytest.raises(ValueError, match="returned None"):
        Bad()(torch.ones(2))


def test_forgot_super_init_raises_runtime_error():
    class NoSuper(Layer):
        def __init__(self):
            self.units = 3

        def call(self, inputs):
            return inputs

    layer = NoSuper()
    with pytest.raises(RuntimeError, match="forgot to call `super\\(\\).__init__\\(\\)`"):
        layer(torch.ones(2))

    class NoSuperWeights(Layer):
        def __init__(self):
            self.w = keras.Variable(torch.ones(2))

    with pytest.raises(RuntimeError, match="forgot to call"):
        NoSuperWeights()


def test_count_params_unbuilt_raises():
    with pytest.raises(ValueError, match="isn't built"):
        SimpleDense(3).count_params()
    layer = SimpleDense(3)
    layer.build((None, 5))
    assert layer.count_params() == 5 * 3 + 3


def test_set_weights_mismatch_lists_shapes():
    layer = SimpleDense(3)
    layer(torch.ones(1, 2))
    with pytest.raises(ValueError, match=r"expecting 2 weights.*\(2, 3\).*\(3,\)"):
        layer.set_weights([np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 3\)"):
        layer.set_weights([np.zeros((4, 3)), np.zeros(3)])


def test_compute_output_signature_rejects_non_specs():
    from kerasish.backend.tensor_spec import TensorSpec

    layer = SimpleDense(3)
    with pytest.raises(TypeError, match="TensorSpec"):
        layer.compute_output_signature([(None, 2)])
    spec = layer.compute_output_signature(TensorSpec((None, 2), "float32"))
    assert spec.shape == (None, 3) and spec.dtype == "float32"


def test_input_output_attributes_before_connection():
    layer = SimpleDense(3)
    with pytest.raises(AttributeError, match="has never been called"):
        _ = layer.input
    with pytest.raises(AttributeError, match="has never been called"):
        _ = layer.output


def test_add_variable_is_keras_3s_alias_of_add_weight(keras_ref):
    """`Layer.add_variable(shape, initializer, dtype, trainable, ...)` (Keras 3;
    kerasish lacked it): the same variables as Keras makes."""
    import numpy as np

    import kerasish

    made = {}
    for lib in (kerasish, keras_ref):
        class WithVariables(lib.layers.Layer):
            def build(self, shape):
                self.w = self.add_variable((shape[-1], 2), "ones", name="w")
                self.s = self.add_variable((), "zeros", "int32", False, name="s")

            def call(self, x):
                return lib.ops.matmul(x, self.w)

        layer = WithVariables(name="with_variables")
        out = lib.ops.convert_to_numpy(layer(np.ones((1, 3), "float32")))
        made[lib.__name__] = ([(v.path, tuple(v.shape), lib.backend.standardize_dtype(v.dtype), v.trainable)
                               for v in layer.weights], out)
    assert made["kerasish"][0] == made["keras"][0]
    np.testing.assert_array_equal(made["kerasish"][1], made["keras"][1])


def test_layer_path_is_keras_3s(keras_ref):
    """`layer.path` (Keras 3; kerasish lacked it): None until built, then the
    layer's name under the scopes it was built in, for standalone, scoped,
    nested, functional and Sequential layers."""
    import numpy as np

    import kerasish

    def paths(k):
        out = []
        e = k.layers.Dense(2, name="ee")
        out.append(e.path)
        e(np.ones((1, 3), "float32"))
        out.append(e.path)
        with k.name_scope("outer"):
            g = k.layers.Dense(2, name="gg")
            g.build((None, 3))
        out.append(g.path)

        class Block(k.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.inner = k.layers.Dense(2, name="inner")

            def call(self, x):
                return self.inner(x)

        b = Block(name="blk")
        b(np.ones((1, 3), "float32"))
        out += [b.path, b.inner.path]
        inputs = k.Input((3,))
        model = k.Model(inputs, k.layers.Dense(2, name="hd")(inputs), name="fm")
        out += [model.layers[1].path, model.path]
        seq = k.Sequential([k.layers.Dense(2, name="lazy")], name="sq")
        out.append(seq.layers[0].path)
        seq(np.ones((1, 3), "float32"))
        out += [seq.layers[0].path, seq.path]
        return out

    assert paths(kerasish) == paths(keras_ref)


def test_input_dtype_and_metrics_variables_as_keras_3(keras_ref):
    """`layer.input_dtype` (the compute dtype; floatx for Discretization; a
    Sequential's Input dtype) and `metrics_variables` with Keras's paths
    (Keras 3; kerasish lacked both on layers)."""
    import numpy as np

    import kerasish

    def dtypes(k):
        layers = [k.layers.Dense(2), k.layers.Dense(2, dtype="mixed_float16"),
                  k.layers.Discretization(bin_boundaries=[0.0, 1.0]), k.layers.Embedding(5, 2),
                  k.layers.Dense(2, dtype="float64")]
        seq = k.Sequential([k.Input((3,), dtype="int32"), k.layers.Dense(2)])
        inputs = k.Input((3,))
        functional = k.Model(inputs, k.layers.Dense(2)(inputs))
        return [layer.input_dtype for layer in layers] + [seq.input_dtype, functional.input_dtype]

    assert dtypes(kerasish) == dtypes(keras_ref)
    counts = []
    for k in (kerasish, keras_ref):
        model = k.Sequential([k.Input((3,)), k.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
        model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), verbose=0)
        variables = model.metrics_variables
        assert [id(v) for v in variables] == [id(v) for m in model.metrics for v in m.variables]
        counts.append([(v.path, tuple(v.shape)) for v in variables])
    # ("mean_absolute_error/total": kerasish put the compiled metrics' variables under "compile_metrics/")
    assert counts[0] == counts[1]


def test_add_weight_invalid_dimension_raises_keras_value_error(keras_ref):
    """A dimension that is not an int (a list, as a custom layer's `kernel_size` tuple comes back
    from a `.keras` config; a string; a float) raises Keras's ValueError naming the shape and the
    dimension (kerasish raised a TypeError from `int()`); NumPy ints are taken."""
    for shape in (([3, 3], [3, 3], 2, 4), (2, "3"), (2, 3.0)):
        with pytest.raises(ValueError) as theirs:
            keras_ref.layers.Layer().add_weight(shape=shape)
        with pytest.raises(ValueError) as ours:
            Layer().add_weight(shape=shape)
        assert str(ours.value).startswith(f"Cannot convert '{shape}' to a shape. Found invalid dimension")
        assert str(ours.value).split(" of type")[0] == str(theirs.value).split(" of type")[0]
    w = Layer().add_weight(shape=(np.int64(2), torch.tensor(3)))
    assert tuple(w.shape) == (2, 3)
