"""More keras.io examples (Keras 3 versions; continued from
test_port_kerasio_examples_5.py), ported the same way: the example's code
with `import keras` changed to `import kerasish as keras` (one builder runs
with real Keras 3 on torch and with kerasish), `tf.*` rewritten with
`keras.ops` or `torch.*`, small deterministic synthetic data, shrunk sizes,
the same initial weights and the same batches (shuffle=False) in both runs.

Covered here:

19. "Traffic forecasting using graph neural networks and LSTM" (timeseries/
    timeseries_traffic_forecasting): a GraphConv layer with an unnamed
    `add_weight` in `__init__`, neighbour gathering with `ops.take` and
    aggregation with `ops.segment_sum` / `ops.segment_max` over 4-D
    (node, batch, time, feature) tensors, an LSTMGC layer reshaping by the
    dynamic `ops.shape` before an LSTM, RMSprop and EarlyStopping; the
    windows of the example's tf.data pipeline come from NumPy.
20. "Zero-DCE for low-light image enhancement" (vision/zero_dce): a
    `keras.losses.Loss` subclass fixing `reduction="none"` whose `call` runs
    `ops.average_pool` and `ops.conv` with constant kernels, three loss
    functions over `ops` (slices, `ops.shape` arithmetic, sqrt/square), a
    Model overriding `compile(learning_rate, **kwargs)` that sets
    `self.optimizer` after `super().compile()`, five `Mean` trackers, x-only
    data with `validation_data=(x_val,)`, and `save_weights` /
    `load_weights` overrides saving the inner DCE-Net (`.weights.h5` files
    read by both frameworks). (The overrides drop the `save_format` /
    `options` arguments Keras 3's methods no longer take.)
21. "Classification using Attention-based Deep Multiple Instance Learning"
    (vision/attention_mil_classification): a layer with regularized
    `add_weight`s made in `build` from a list input shape, taking a list of
    tensors and returning a list (`ops.tensordot`, `ops.softmax` across the
    bag), shared Dense layers over several Inputs, `layers.multiply` /
    `layers.concatenate` on the list's items, `class_weight` with
    `batch_size=1`, a best-only weights checkpoint reloaded after `fit`, and
    the intermediate model on `get_layer("alpha").output` (a list).
"""

from __future__ import annotations

import typing

import numpy as np
import pytest

import kerasish

from tests.ports.test_port_programs import assert_history
from tests.ports.test_port_programs import assert_same
from tests.ports.test_port_programs import assert_weights
from tests.ports.test_port_programs import copy_weights

# the same autouse fixtures as the earlier files: Keras seeded, one torch thread
from tests.ports.test_port_kerasio_examples_2 import _one_thread  # noqa: F401
from tests.ports.test_port_kerasio_examples_2 import _seeded  # noqa: F401


# -------------------------------------------------- 19. Traffic forecasting
class _GraphInfo:
    def __init__(self, edges: typing.Tuple[list, list], num_nodes: int):
        self.edges = edges
        self.num_nodes = num_nodes


def _traffic_forecasting(keras, graph_info, in_feat=1, out_feat=4, lstm_units=8, input_sequence_length=6,
                         forecast_horizon=2, aggregation_type="mean"):
    layers, ops = keras.layers, keras.ops

    class GraphConv(layers.Layer):
        def __init__(self, in_feat, out_feat, graph_info, aggregation_type="mean", combination_type="concat",
                     activation=None, **kwargs):
            super().__init__(**kwargs)
            self.in_feat = in_feat
            self.out_feat = out_feat
            self.graph_info = graph_info
            self.aggregation_type = aggregation_type
            self.combination_type = combination_type
            self.weight = self.add_weight(initializer=keras.initializers.GlorotUniform(), shape=(in_feat, out_feat),
                                          dtype="float32", trainable=True)
            self.activation = layers.Activation(activation)

        def aggregate(self, neighbour_representations):
            # (tf.math.unsorted_segment_* -> ops.segment_*; the mean as sum / count)
            segment_ids = ops.convert_to_tensor(self.graph_info.edges[0])
            sums = ops.segment_sum(neighbour_representations, segment_ids, num_segments=self.graph_info.num_nodes)
            if self.aggregation_type == "sum":
                return sums
            if self.aggregation_type == "max":
                return ops.segment_max(neighbour_representations, segment_ids, num_segments=self.graph_info.num_nodes)
            counts = np.bincount(self.graph_info.edges[0], minlength=self.graph_info.num_nodes).astype("float32")
            counts = ops.reshape(ops.convert_to_tensor(np.maximum(counts, 1.0)), (-1, 1, 1, 1))
            return sums / counts

        def compute_nodes_representation(self, features):
            return ops.matmul(features, self.weight)

        def compute_aggregated_messages(self, features):
            neighbour_representations = ops.take(features, ops.convert_to_tensor(self.graph_info.edges[1]), axis=0)
            aggregated_messages = self.aggregate(neighbour_representations)
            return ops.matmul(aggregated_messages, self.weight)

        def update(self, nodes_representation, aggregated_messages):
            if self.combination_type == "concat":
                h = ops.concatenate([nodes_representation, aggregated_messages], axis=-1)
            elif self.combination_type == "add":
                h = nodes_representation + aggregated_messages
            else:
                raise ValueError(f"Invalid combination_type: {self.combination_type}.")
            return self.activation(h)

        def call(self, features):
            nodes_representation = self.compute_nodes_representation(features)
            aggregated_messages = self.compute_aggregated_messages(features)
            return self.update(nodes_representation, aggregated_messages)

    class LSTMGC(layers.Layer):
        def __init__(self, in_feat, out_feat, lstm_units, input_seq_len, output_seq_len, graph_info,
                     graph_conv_params=None, **kwargs):
            super().__init__(**kwargs)
            if graph_conv_params is None:
                graph_conv_params = {"aggregation_type": "mean", "combination_type": "concat", "activation": None}
            self.graph_conv = GraphConv(in_feat, out_feat, graph_info, **graph_conv_params)
            self.lstm = layers.LSTM(lstm_units, activation="relu")
            self.dense = layers.Dense(output_seq_len)
            self.input_seq_len, self.output_seq_len = input_seq_len, output_seq_len

        def call(self, inputs):
            inputs = ops.transpose(inputs, [2, 0, 1, 3])
            gcn_out = self.graph_conv(inputs)
            shape = ops.shape(gcn_out)
            num_nodes, batch_size, input_seq_len, out_feat = shape[0], shape[1], shape[2], shape[3]
            gcn_out = ops.reshape(gcn_out, (batch_size * num_nodes, input_seq_len, out_feat))
            lstm_out = self.lstm(gcn_out)
            dense_output = self.dense(lstm_out)
            output = ops.reshape(dense_output, (num_nodes, batch_size, self.output_seq_len))
            return ops.transpose(output, [1, 2, 0])

    graph_conv_params = {"aggregation_type": aggregation_type, "combination_type": "concat", "activation": None}
    st_gcn = LSTMGC(in_feat, out_feat, lstm_units, input_sequence_length, forecast_horizon, graph_info,
                    graph_conv_params)
    inputs = layers.Input((input_sequence_length, graph_info.num_nodes, in_feat))
    outputs = st_gcn(inputs)
    model = keras.models.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.002), loss=keras.losses.MeanSquaredError())
    return model


def _traffic_windows(data, input_sequence_length=6, forecast_horizon=2):
    """The example's `create_tf_dataset` windows (timeseries_dataset_from_array,
    TensorFlow-only in Keras), in NumPy: `input_sequence_length` steps in,
    the next `forecast_horizon` steps out, every offset."""
    xs, ys = [], []
    for i in range(len(data) - input_sequence_length - forecast_horizon + 1):
        xs.append(data[i:i + input_sequence_length])
        ys.append(data[i + input_sequence_length:i + input_sequence_length + forecast_horizon])
    return np.stack(xs)[..., None], np.stack(ys)


@pytest.mark.parametrize("aggregation_type", ["mean", "max"])
def test_traffic_forecasting_graph_lstm(keras_ref, aggregation_type):
    keras_ref.utils.clear_session()  # (weight paths are compared: Keras's layer-name counters restart)
    rng = np.random.default_rng(19)
    num_nodes = 5
    edges = (np.array([0, 0, 1, 2, 3, 4, 4, 1]), np.array([1, 2, 0, 3, 4, 0, 3, 2]))
    graph = _GraphInfo(edges=edges, num_nodes=num_nodes)
    t = np.arange(120)
    speeds = np.sin(t[:, None] / 6.0 + np.arange(num_nodes)[None, :]) + 0.1 * rng.normal(size=(120, num_nodes))
    (x_train, y_train), (x_val, y_val) = _traffic_windows(speeds[:80].astype("float32")), _traffic_windows(
        speeds[80:].astype("float32"))
    ref = _traffic_forecasting(keras_ref, graph, aggregation_type=aggregation_type)
    ours = _traffic_forecasting(kerasish, graph, aggregation_type=aggregation_type)
    # (the unnamed weight made in GraphConv's `__init__` is "graph_conv/variable" in both)
    assert [w.path for w in ours.weights] == [w.path for w in ref.weights]
    copy_weights(ours, ref)
    histories = []
    for model, keras in ((ref, keras_ref), (ours, kerasish)):
        histories.append(model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=2, batch_size=16,
                                   callbacks=[keras.callbacks.EarlyStopping(patience=10)], shuffle=False, verbose=0))
    assert_history(histories[1], histories[0])
    assert_weights(ours, ref)
    y_pred = ours.predict(x_val, verbose=0)
    assert y_pred.shape == (len(x_val), 2, num_nodes)
    assert_same(y_pred, ref.predict(x_val, verbose=0))


# ------------------------------------------------------------ 20. Zero-DCE
def _zero_dce(keras, filters=4):
    layers, ops = keras.layers, keras.ops

    def build_dce_net():
        input_img = keras.Input(shape=[None, None, 3])
        conv1 = layers.Conv2D(filters, (3, 3), strides=(1, 1), activation="relu", padding="same")(input_img)
        conv2 = layers.Conv2D(filters, (3, 3), strides=(1, 1), activation="relu", padding="same")(conv1)
        conv3 = layers.Conv2D(filters, (3, 3), strides=(1, 1), activation="relu", padding="same")(conv2)
        conv4 = layers.Conv2D(filters, (3, 3), strides=(1, 1), activation="relu", padding="same")(conv3)
        int_con1 = layers.Concatenate(axis=-1)([conv4, conv3])
        conv5 = layers.Conv2D(filters, (3, 3), strides=(1, 1), activation="relu", padding="same")(int_con1)
        int_con2 = layers.Concatenate(axis=-1)([conv5, conv2])
        conv6 = layers.Conv2D(filters, (3, 3), strides=(1, 1), activation="relu", padding="same")(int_con2)
        int_con3 = layers.Concatenate(axis=-1)([conv6, conv1])
        x_r = layers.Conv2D(24, (3, 3), strides=(1, 1), activation="tanh", padding="same")(int_con3)
        return keras.Model(inputs=input_img, outputs=x_r)

    def color_constancy_loss(x):
        mean_rgb = ops.mean(x, axis=(1, 2), keepdims=True)
        mr, mg, mb = mean_rgb[:, :, :, 0], mean_rgb[:, :, :, 1], mean_rgb[:, :, :, 2]
        d_rg = ops.square(mr - mg)
        d_rb = ops.square(mr - mb)
        d_gb = ops.square(mb - mg)
        return ops.sqrt(ops.square(d_rg) + ops.square(d_rb) + ops.square(d_gb))

    def exposure_loss(x, mean_val=0.6):
        x = ops.mean(x, axis=3, keepdims=True)
        mean = ops.average_pool(x, pool_size=4, strides=4, padding="valid")  # (ksize 16 on 256x256 images)
        return ops.mean(ops.square(mean - mean_val))

    def illumination_smoothness_loss(x):
        batch_size = ops.shape(x)[0]
        h_x = ops.shape(x)[1]
        w_x = ops.shape(x)[2]
        count_h = (ops.shape(x)[2] - 1) * ops.shape(x)[3]
        count_w = ops.shape(x)[2] * (ops.shape(x)[3] - 1)
        h_tv = ops.sum(ops.square((x[:, 1:, :, :] - x[:, : h_x - 1, :, :])))
        w_tv = ops.sum(ops.square((x[:, :, 1:, :] - x[:, :, : w_x - 1, :])))
        batch_size = ops.cast(batch_size, dtype="float32")
        count_h = ops.cast(count_h, dtype="float32")
        count_w = ops.cast(count_w, dtype="float32")
        return 2 * (h_tv / count_h + w_tv / count_w) / batch_size

    class SpatialConsistencyLoss(keras.losses.Loss):
        def __init__(self, **kwargs):
            super().__init__(reduction="none")
            self.left_kernel = ops.convert_to_tensor([[[[0, 0, 0]], [[-1, 1, 0]], [[0, 0, 0]]]], dtype="float32")
            self.right_kernel = ops.convert_to_tensor([[[[0, 0, 0]], [[0, 1, -1]], [[0, 0, 0]]]], dtype="float32")
            self.up_kernel = ops.convert_to_tensor([[[[0, -1, 0]], [[0, 1, 0]], [[0, 0, 0]]]], dtype="float32")
            self.down_kernel = ops.convert_to_tensor([[[[0, 0, 0]], [[0, 1, 0]], [[0, -1, 0]]]], dtype="float32")

        def call(self, y_true, y_pred):
            original_mean = ops.mean(y_true, 3, keepdims=True)
            enhanced_mean = ops.mean(y_pred, 3, keepdims=True)
            original_pool = ops.average_pool(original_mean, pool_size=4, strides=4, padding="valid")
            enhanced_pool = ops.average_pool(enhanced_mean, pool_size=4, strides=4, padding="valid")
            # (tf.nn.conv2d(..., strides=[1, 1, 1, 1], padding="SAME") -> ops.conv)
            d_original_left = ops.conv(original_pool, self.left_kernel, strides=1, padding="same")
            d_original_right = ops.conv(original_pool, self.right_kernel, strides=1, padding="same")
            d_original_up = ops.conv(original_pool, self.up_kernel, strides=1, padding="same")
            d_original_down = ops.conv(original_pool, self.down_kernel, strides=1, padding="same")
            d_enhanced_left = ops.conv(enhanced_pool, self.left_kernel, strides=1, padding="same")
            d_enhanced_right = ops.conv(enhanced_pool, self.right_kernel, strides=1, padding="same")
            d_enhanced_up = ops.conv(enhanced_pool, self.up_kernel, strides=1, padding="same")
            d_enhanced_down = ops.conv(enhanced_pool, self.down_kernel, strides=1, padding="same")
            d_left = ops.square(d_original_left - d_enhanced_left)
            d_right = ops.square(d_original_right - d_enhanced_right)
            d_up = ops.square(d_original_up - d_enhanced_up)
            d_down = ops.square(d_original_down - d_enhanced_down)
            return d_left + d_right + d_up + d_down

    class ZeroDCE(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dce_model = build_dce_net()

        def compile(self, learning_rate, **kwargs):
            super().compile(**kwargs)
            self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
            self.spatial_constancy_loss = SpatialConsistencyLoss(reduction="none")
            self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
            self.illumination_smoothness_loss_tracker = keras.metrics.Mean(name="illumination_smoothness_loss")
            self.spatial_constancy_loss_tracker = keras.metrics.Mean(name="spatial_constancy_loss")
            self.color_constancy_loss_tracker = keras.metrics.Mean(name="color_constancy_loss")
            self.exposure_loss_tracker = keras.metrics.Mean(name="exposure_loss")

        @property
        def metrics(self):
            return [self.total_loss_tracker, self.illumination_smoothness_loss_tracker,
                    self.spatial_constancy_loss_tracker, self.color_constancy_loss_tracker,
                    self.exposure_loss_tracker]

        def get_enhanced_image(self, data, output):
            r1 = output[:, :, :, :3]
            r2 = output[:, :, :, 3:6]
            r3 = output[:, :, :, 6:9]
            r4 = output[:, :, :, 9:12]
            r5 = output[:, :, :, 12:15]
            r6 = output[:, :, :, 15:18]
            r7 = output[:, :, :, 18:21]
            r8 = output[:, :, :, 21:24]
            x = data + r1 * (ops.square(data) - data)
            x = x + r2 * (ops.square(x) - x)
            x = x + r3 * (ops.square(x) - x)
            enhanced_image = x + r4 * (ops.square(x) - x)
            x = enhanced_image + r5 * (ops.square(enhanced_image) - enhanced_image)
            x = x + r6 * (ops.square(x) - x)
            x = x + r7 * (ops.square(x) - x)
            enhanced_image = x + r8 * (ops.square(x) - x)
            return enhanced_image

        def call(self, data):
            dce_net_output = self.dce_model(data)
            return self.get_enhanced_image(data, dce_net_output)

        def compute_losses(self, data, output):
            enhanced_image = self.get_enhanced_image(data, output)
            loss_illumination = 200 * illumination_smoothness_loss(output)
            loss_spatial_constancy = ops.mean(self.spatial_constancy_loss(enhanced_image, data))
            loss_color_constancy = 5 * ops.mean(color_constancy_loss(enhanced_image))
            loss_exposure = 10 * ops.mean(exposure_loss(enhanced_image))
            total_loss = loss_illumination + loss_spatial_constancy + loss_color_constancy + loss_exposure
            return {"total_loss": total_loss, "illumination_smoothness_loss": loss_illumination,
                    "spatial_constancy_loss": loss_spatial_constancy, "color_constancy_loss": loss_color_constancy,
                    "exposure_loss": loss_exposure}

        def train_step(self, data):
            # (tf.GradientTape -> torch autograd)
            self.zero_grad()
            output = self.dce_model(data)
            losses = self.compute_losses(data, output)
            losses["total_loss"].backward()
            gradients = [v.value.grad for v in self.dce_model.trainable_weights]
            self.optimizer.apply_gradients(zip(gradients, self.dce_model.trainable_weights))
            self.total_loss_tracker.update_state(losses["total_loss"])
            self.illumination_smoothness_loss_tracker.update_state(losses["illumination_smoothness_loss"])
            self.spatial_constancy_loss_tracker.update_state(losses["spatial_constancy_loss"])
            self.color_constancy_loss_tracker.update_state(losses["color_constancy_loss"])
            self.exposure_loss_tracker.update_state(losses["exposure_loss"])
            return {metric.name: metric.result() for metric in self.metrics}

        def test_step(self, data):
            output = self.dce_model(data)
            losses = self.compute_losses(data, output)
            self.total_loss_tracker.update_state(losses["total_loss"])
            self.illumination_smoothness_loss_tracker.update_state(losses["illumination_smoothness_loss"])
            self.spatial_constancy_loss_tracker.update_state(losses["spatial_constancy_loss"])
            self.color_constancy_loss_tracker.update_state(losses["color_constancy_loss"])
            self.exposure_loss_tracker.update_state(losses["exposure_loss"])
            return {metric.name: metric.result() for metric in self.metrics}

        # (Keras 3's `save_weights(filepath, overwrite=True, max_shard_size=None)` has no
        # `save_format` / `options`: the overrides keep what Keras 3 takes)
        def save_weights(self, filepath, overwrite=True):
            self.dce_model.save_weights(filepath, overwrite=overwrite)

        def load_weights(self, filepath, skip_mismatch=False):
            self.dce_model.load_weights(filepath=filepath, skip_mismatch=skip_mismatch)

    return ZeroDCE


def test_zero_dce_custom_losses(keras_ref, tmp_path):
    rng = np.random.default_rng(20)
    # (low-light images: 16x16 instead of 256x256, the exposure pool 4 instead of 16)
    x_train = (rng.random((16, 16, 16, 3)) * 0.4).astype("float32")
    x_val = (rng.random((8, 16, 16, 3)) * 0.4).astype("float32")
    ZeroDCERef, ZeroDCE = _zero_dce(keras_ref), _zero_dce(kerasish)
    ref, ours = ZeroDCERef(), ZeroDCE()
    copy_weights(ours.dce_model, ref.dce_model)
    histories = []
    for model in (ref, ours):
        model.compile(learning_rate=1e-3)
        # (`self.optimizer = ...` after `super().compile()` replaces the default optimizer)
        assert type(model.optimizer).__name__ == "Adam"
        histories.append(model.fit(x_train, validation_data=(x_val,), epochs=2, batch_size=8, shuffle=False,
                                   verbose=0))
    assert len(histories[0].history) == 10  # five trackers, with and without `val_`
    assert_history(histories[1], histories[0])
    assert_weights(ours.dce_model, ref.dce_model)
    expected = ref.predict(x_val, verbose=0)
    assert_same(ours.predict(x_val, verbose=0), expected)
    # the unreduced spatial consistency loss (a Loss subclass with reduction="none")
    enhanced = ref.predict(x_val, verbose=0)
    loss_ref = ref.spatial_constancy_loss(enhanced, x_val)
    loss_ours = ours.spatial_constancy_loss(enhanced, x_val)
    assert tuple(loss_ours.shape) == tuple(loss_ref.shape) == (8, 4, 4, 3)
    assert_same(loss_ours, loss_ref, rtol=1e-5, atol=1e-9)
    # the example's `save_weights` / `load_weights` overrides (the DCE-Net only), files read both ways
    for writer, name in ((ref, "ref"), (ours, "ours")):
        path = str(tmp_path / f"{name}.weights.h5")
        writer.save_weights(path)
        for cls in (ZeroDCERef, ZeroDCE):
            fresh = cls()
            fresh.load_weights(path)
            assert_same(fresh.predict(x_val, verbose=0), expected)


# ------------------------------------------- 21. Attention-based deep MIL
def _mil_attention(keras, instance_shape=(4, 4), bag_size=3):
    layers, ops = keras.layers, keras.ops

    class MILAttentionLayer(layers.Layer):
        def __init__(self, weight_params_dim, kernel_initializer="glorot_uniform", kernel_regularizer=None,
                     use_gated=False, **kwargs):
            super().__init__(**kwargs)
            self.weight_params_dim = weight_params_dim
            self.use_gated = use_gated
            self.kernel_initializer = keras.initializers.get(kernel_initializer)
            self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
            self.v_init = self.kernel_initializer
            self.w_init = self.kernel_initializer
            self.u_init = self.kernel_initializer
            self.v_regularizer = self.kernel_regularizer
            self.w_regularizer = self.kernel_regularizer
            self.u_regularizer = self.kernel_regularizer

        def build(self, input_shape):
            input_dim = input_shape[0][1]
            self.v_weight_params = self.add_weight(shape=(input_dim, self.weight_params_dim), initializer=self.v_init,
                                                   name="v", regularizer=self.v_regularizer, trainable=True)
            self.w_weight_params = self.add_weight(shape=(self.weight_params_dim, 1), initializer=self.w_init,
                                                   name="w", regularizer=self.w_regularizer, trainable=True)
            if self.use_gated:
                self.u_weight_params = self.add_weight(shape=(input_dim, self.weight_params_dim),
                                                       initializer=self.u_init, name="u",
                                                       regularizer=self.u_regularizer, trainable=True)
            else:
                self.u_weight_params = None
            self.input_built = True

        def call(self, inputs):
            instances = [self.compute_attention_scores(instance) for instance in inputs]
            instances = ops.stack(instances)
            alpha = ops.softmax(instances, axis=0)
            return [alpha[i] for i in range(alpha.shape[0])]

        def compute_attention_scores(self, instance):
            original_instance = instance
            instance = ops.tanh(ops.tensordot(instance, self.v_weight_params, axes=1))
            if self.use_gated:
                instance = instance * ops.sigmoid(ops.tensordot(original_instance, self.u_weight_params, axes=1))
            return ops.tensordot(instance, self.w_weight_params, axes=1)

    inputs, embeddings = [], []
    shared_dense_layer_1 = layers.Dense(16, activation="relu")
    shared_dense_layer_2 = layers.Dense(8, activation="relu")
    for _ in range(bag_size):
        inp = layers.Input(instance_shape)
        flatten = layers.Flatten()(inp)
        dense_1 = shared_dense_layer_1(flatten)
        dense_2 = shared_dense_layer_2(dense_1)
        inputs.append(inp)
        embeddings.append(dense_2)
    alpha = MILAttentionLayer(weight_params_dim=8, kernel_regularizer=keras.regularizers.L2(0.01), use_gated=True,
                              name="alpha")(embeddings)
    multiply_layers = [layers.multiply([alpha[i], embeddings[i]]) for i in range(len(alpha))]
    concat = layers.concatenate(multiply_layers, axis=1)
    output = layers.Dense(2, activation="softmax")(concat)
    return keras.Model(inputs, output)

def _compute_class_weights(labels):
    negative_count = len(np.where(labels == 0)[0])
    positive_count = len(np.where(labels == 1)[0])
    total_count = negative_count + positive_count
    return {0: (1 / negative_count) * (total_count / 2), 1: (1 / positive_count) * (total_count / 2)}


def test_attention_mil_classification(keras_ref, tmp_path):
    keras_ref.utils.clear_session()  # (weight paths are compared: Keras's layer-name counters restart)
    rng = np.random.default_rng(21)

    def bags(n, bag_size=3):
        """Bags of 3 instances; a positive bag has one brightened instance."""
        data = [rng.random((n, 4, 4)).astype("float32") for _ in range(bag_size)]
        labels = (rng.random(n) < 0.3).astype("int64")
        for i in np.where(labels == 1)[0]:
            data[rng.integers(0, bag_size)][i] += 0.8
        return data, labels

    (train_data, train_labels), (val_data, val_labels) = bags(24), bags(8)
    ref, ours = _mil_attention(keras_ref), _mil_attention(kerasish)
    assert [w.path for w in ours.weights] == [w.path for w in ref.weights]
    copy_weights(ours, ref)
    histories = []
    for model, keras, name in ((ref, keras_ref, "ref"), (ours, kerasish, "ours")):
        file_path = str(tmp_path / f"{name}_best_model.weights.h5")
        model_checkpoint = keras.callbacks.ModelCheckpoint(file_path, monitor="val_loss", verbose=0, mode="min",
                                                           save_best_only=True, save_weights_only=True)
        early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10, mode="min")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        histories.append(model.fit(train_data, train_labels, validation_data=(val_data, val_labels), epochs=3,
                                   class_weight=_compute_class_weights(train_labels), batch_size=1,
                                   callbacks=[early_stopping, model_checkpoint], shuffle=False, verbose=0))
        model.load_weights(file_path)
    assert_history(histories[1], histories[0])
    assert_weights(ours, ref)
    # the L2 regularizers of the attention weights
    assert len(ours.losses) == len(ref.losses) == 3
    assert_same(sum(ours.losses), sum(ref.losses))

    # the example's predictions and attention weights (a list output of the "alpha" layer)
    results = []
    for model, keras in ((ref, keras_ref), (ours, kerasish)):
        predictions = model.predict(val_data, verbose=0)
        intermediate_model = keras.Model(model.input, model.get_layer("alpha").output)
        intermediate_predictions = intermediate_model.predict(val_data, verbose=0)
        assert isinstance(intermediate_predictions, list) and len(intermediate_predictions) == 3
        attention_weights = np.squeeze(np.swapaxes(intermediate_predictions, 1, 0))
        results.append((predictions, attention_weights, model.evaluate(val_data, val_labels, verbose=0)))
    assert results[0][1].shape == (8, 3)
    np.testing.assert_allclose(results[0][1].sum(axis=1), 1.0, rtol=1e-5)
    assert_same(results[1], results[0])
