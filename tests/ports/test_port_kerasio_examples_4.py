"""More keras.io examples (Keras 3 versions; continued from
test_port_kerasio_examples_3.py), ported as a user would: the example's
model/layer/training code with `import keras` changed to `import kerasish
as keras` (here one builder runs with real Keras 3 on torch and with
kerasish), `tf.*` code rewritten with `keras.ops` (or `torch.*`), small
deterministic synthetic data, shrunk sizes, the same initial weights
(get_weights/set_weights) and the same batches (shuffle=False) in both runs.
Dropout rates are 0 (random draws are not compared here).

Covered here:

10. "Text classification with Switch Transformer" (nlp/
    text_classification_with_switch_transformer): a mixture-of-experts layer
    written with `ops.top_k`, `ops.one_hot`, `ops.cumsum`, `ops.einsum`,
    `ops.unstack`/`ops.stack`, a list of Sequential experts, an `add_loss`
    from a layer two levels down, a router whose `training` comes from the
    outer call (seeded `keras.random.uniform` noise), `Input(batch_size=...)`.
11. "Node Classification with Graph Neural Networks" (graph/gnn_citations):
    a subclassed `keras.Model` holding the graph as tensors, called on node
    indices; `GraphConvLayer` aggregating with `ops.segment_sum` /
    `ops.segment_max`; the printed `summary()`; EarlyStopping on a
    validation split. Its `call` takes no `training`: Keras 3's `fit` then
    runs the BatchNormalization layers in inference mode, and so must
    kerasish's (it did not: fixed).
12. "Deep Q-Learning for Atari Breakout" (rl/deep_q_network_breakout): the
    hand-written loop (epsilon-greedy with NumPy's seeded global RNG, a
    replay buffer, `model_target.predict`, `ops.amax`, `ops.one_hot` masks,
    Huber loss, `tf.GradientTape` -> `backward()`, `apply_gradients` with
    Adam(clipnorm=1.0), `model_target.set_weights(model.get_weights())`)
    and the example's Sequential with a channels-first `Lambda(...,
    output_shape=..., input_shape=...)` transpose, against a small
    deterministic catch game in place of gym's Breakout.
13. "Vector-Quantized Variational Autoencoders" (generative/vq_vae): a
    codebook made as a `keras.Variable` in a layer's `__init__`, a
    straight-through estimator with `ops.stop_gradient`, `ops.argmin`
    code look-up, `add_loss` read back as `self.vqvae.losses` in a custom
    torch `train_step` with `metrics` trackers, `get_layer(...)` and the
    quantizer's `get_code_indices` called on NumPy encoder outputs. (Keras 3
    cannot `fit` the example's trainer, a Model with no `call`: "Unable to
    automatically build the model"; the port gives it a `call`. kerasish
    fits it either way.)
14. "Semi-supervised image classification using contrastive pretraining
    with SimCLR" (vision/semisupervised_simclr): a Model overriding
    `compile(contrastive_optimizer, probe_optimizer, **kwargs)`, metrics
    updated by hand (`Mean`, `SparseCategoricalAccuracy`) and listed by a
    `metrics` property, an NT-Xent loss over `ops.normalize` and
    `keras.losses.sparse_categorical_crossentropy(from_logits=True)`, two
    optimizers in one `train_step`, a `test_step` reporting
    `self.metrics[2:]`, summaries printed in `__init__`, and a
    `keras.utils.PyDataset` yielding `((unlabeled, _), (labeled, labels))`
    in place of `tf.data.Dataset.zip`. (Found: `ops.normalize` differed from
    Keras's by ~1 ulp, fixed.)

Programs 15-17 are in test_port_kerasio_examples_5.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish

from tests.ports.test_port_programs import assert_history
from tests.ports.test_port_programs import assert_same
from tests.ports.test_port_programs import assert_weights
from tests.ports.test_port_programs import copy_weights

# the same autouse fixtures as the earlier files: Keras seeded, one torch thread
from tests.ports.test_port_kerasio_examples_2 import _one_thread  # noqa: F401
from tests.ports.test_port_kerasio_examples_2 import _seeded  # noqa: F401


# ---------------------------------------------- 10. Switch Transformer
def _switch_transformer(keras, vocab_size=50, num_tokens_per_example=8, embed_dim=8, num_heads=2, ff_dim=8,
                        num_experts=4, batch_size=10):
    layers, ops = keras.layers, keras.ops
    num_tokens_per_batch = batch_size * num_tokens_per_example

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim):
            super().__init__()
            self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x):
            maxlen = ops.shape(x)[-1]
            positions = ops.arange(start=0, stop=maxlen, step=1)
            positions = self.pos_emb(positions)
            x = self.token_emb(x)
            return x + positions

    def create_feedforward_network(ff_dim, name=None):
        return keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(ff_dim)], name=name)

    def load_balanced_loss(router_probs, expert_mask):
        num_experts = ops.shape(expert_mask)[-1]
        density = ops.mean(expert_mask, axis=0)
        density_proxy = ops.mean(router_probs, axis=0)
        loss = ops.mean(density_proxy * density) * ops.cast((num_experts**2), "float32")
        return loss

    class Router(layers.Layer):
        def __init__(self, num_experts, expert_capacity):
            # (the example sets attributes before `super().__init__()`: a torch
            # Module, Keras's layers on torch included, needs it first)
            super().__init__()
            self.num_experts = num_experts
            self.route = layers.Dense(units=num_experts)
            self.expert_capacity = expert_capacity
            # (the example's noise is unseeded; seeded here so that both runs draw the same)
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, inputs, training=False):
            router_logits = self.route(inputs)
            if training:
                router_logits += keras.random.uniform(
                    shape=router_logits.shape, minval=0.9, maxval=1.1, seed=self.seed_generator)
            router_probs = keras.activations.softmax(router_logits, axis=-1)
            expert_gate, expert_index = ops.top_k(router_probs, k=1)
            expert_mask = ops.one_hot(expert_index, self.num_experts)
            aux_loss = load_balanced_loss(router_probs, expert_mask)
            self.add_loss(aux_loss)
            position_in_expert = ops.cast(ops.cumsum(expert_mask, axis=0) * expert_mask, "int32")
            expert_mask *= ops.cast(ops.less(ops.cast(position_in_expert, "int32"), self.expert_capacity), "float32")
            expert_mask_flat = ops.sum(expert_mask, axis=-1)
            expert_gate *= expert_mask_flat
            # (tf.one_hot gives zeros for an index past `depth`; Keras's torch
            # `ops.one_hot` raises: overflowed positions are zeroed first, their
            # rows are masked out by `expert_mask_flat` anyway)
            kept_position = position_in_expert * ops.cast(ops.less(position_in_expert, self.expert_capacity), "int32")
            combined_tensor = ops.expand_dims(
                expert_gate * expert_mask_flat * ops.squeeze(ops.one_hot(expert_index, self.num_experts), 1),
                -1,
            ) * ops.squeeze(ops.one_hot(kept_position, self.expert_capacity), 1)
            dispatch_tensor = ops.cast(combined_tensor, "float32")
            return dispatch_tensor, combined_tensor

    class Switch(layers.Layer):
        def __init__(self, num_experts, embed_dim, num_tokens_per_batch, capacity_factor=1):
            super().__init__()
            self.num_experts = num_experts
            self.embed_dim = embed_dim
            self.experts = [create_feedforward_network(embed_dim) for _ in range(num_experts)]
            self.expert_capacity = num_tokens_per_batch // self.num_experts
            self.router = Router(self.num_experts, self.expert_capacity)

        def call(self, inputs):
            batch_size = ops.shape(inputs)[0]
            num_tokens_per_example = ops.shape(inputs)[1]
            inputs = ops.reshape(inputs, [num_tokens_per_batch, self.embed_dim])
            dispatch_tensor, combine_tensor = self.router(inputs)
            expert_inputs = ops.einsum("ab,acd->cdb", inputs, dispatch_tensor)
            expert_inputs = ops.reshape(expert_inputs, [self.num_experts, self.expert_capacity, self.embed_dim])
            expert_input_list = ops.unstack(expert_inputs, axis=0)
            expert_output_list = [self.experts[idx](expert_input) for idx, expert_input in enumerate(expert_input_list)]
            expert_outputs = ops.stack(expert_output_list, axis=1)
            expert_outputs_combined = ops.einsum("abc,xba->xc", expert_outputs, combine_tensor)
            return ops.reshape(expert_outputs_combined, [batch_size, num_tokens_per_example, self.embed_dim])

    class TransformerBlock(layers.Layer):
        def __init__(self, embed_dim, num_heads, ffn, dropout_rate=0.1):
            super().__init__()
            self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = ffn
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = layers.Dropout(dropout_rate)
            self.dropout2 = layers.Dropout(dropout_rate)

        def call(self, inputs, training=False):
            attn_output = self.att(inputs, inputs)
            attn_output = self.dropout1(attn_output, training=training)
            out1 = self.layernorm1(inputs + attn_output)
            ffn_output = self.ffn(out1)
            ffn_output = self.dropout2(ffn_output, training=training)
            return self.layernorm2(out1 + ffn_output)

    switch = Switch(num_experts, embed_dim, num_tokens_per_batch)
    transformer_block = TransformerBlock(ff_dim, num_heads, switch, dropout_rate=0.0)
    # (the Switch reshapes to a fixed number of tokens per batch: Keras 3 needs
    # the batch size in the Input to trace the functional model)
    inputs = layers.Input(shape=(num_tokens_per_example,), batch_size=batch_size)
    x = TokenAndPositionEmbedding(num_tokens_per_example, vocab_size, embed_dim)(inputs)
    x = transformer_block(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.0)(x)
    x = layers.Dense(ff_dim, activation="relu")(x)
    x = layers.Dropout(0.0)(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    classifier = keras.Model(inputs=inputs, outputs=outputs)
    classifier.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"])
    return classifier


def test_switch_transformer(keras_ref):
    rng = np.random.default_rng(10)
    x = rng.integers(0, 50, (60, 8))
    y = (x[:, 0] > 25).astype("int64")
    x_val = rng.integers(0, 50, (20, 8))
    y_val = (x_val[:, 0] > 25).astype("int64")
    ref, ours = _switch_transformer(keras_ref), _switch_transformer(kerasish)
    copy_weights(ours, ref)
    assert_same(ours.predict(x_val, batch_size=10, verbose=0), ref.predict(x_val, batch_size=10, verbose=0),
                rtol=1e-5, atol=1e-6)
    h_ref = ref.fit(x, y, batch_size=10, epochs=2, validation_data=(x_val, y_val), shuffle=False, verbose=0)
    h_ours = ours.fit(x, y, batch_size=10, epochs=2, validation_data=(x_val, y_val), shuffle=False, verbose=0)
    # the loss includes the router's load-balancing loss (> 1: at least
    # num_experts**2 * mean(...) = 1 for a perfectly balanced router)
    assert h_ref.history["loss"][0] > 1
    assert_history(h_ours, h_ref)
    assert_weights(ours, ref)
    assert_same(ours.predict(x_val, batch_size=10, verbose=0), ref.predict(x_val, batch_size=10, verbose=0))
    assert len(ours.losses) == len(ref.losses) == 1
    assert_same(ours.losses[0], ref.losses[0])


# ---------------------------------------------------- 11. GNN (citations)
def _gnn_node_classifier(keras, graph_info, num_classes=3, hidden_units=(8, 8), aggregation_type="sum"):
    layers, ops = keras.layers, keras.ops

    def create_ffn(hidden_units, dropout_rate, name=None):
        fnn_layers = []
        for units in hidden_units:
            fnn_layers.append(layers.BatchNormalization())
            fnn_layers.append(layers.Dropout(dropout_rate))
            fnn_layers.append(layers.Dense(units, activation=keras.activations.gelu))
        return keras.Sequential(fnn_layers, name=name)

    class GraphConvLayer(layers.Layer):
        def __init__(self, hidden_units, dropout_rate=0.2, aggregation_type="mean", combination_type="concat",
                     normalize=False, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.aggregation_type = aggregation_type
            self.combination_type = combination_type
            self.normalize = normalize
            self.ffn_prepare = create_ffn(hidden_units, dropout_rate)
            self.update_fn = create_ffn(hidden_units, dropout_rate)

        def prepare(self, node_repesentations, weights=None):
            messages = self.ffn_prepare(node_repesentations)
            if weights is not None:
                messages = messages * ops.expand_dims(weights, -1)
            return messages

        def aggregate(self, node_indices, neighbour_messages):
            num_nodes = int(ops.max(node_indices)) + 1
            # (tf.math.unsorted_segment_* -> ops.segment_*; the mean as sum / count)
            if self.aggregation_type == "sum":
                aggregated_message = ops.segment_sum(neighbour_messages, node_indices, num_segments=num_nodes)
            elif self.aggregation_type == "mean":
                sums = ops.segment_sum(neighbour_messages, node_indices, num_segments=num_nodes)
                counts = ops.segment_sum(ops.ones_like(neighbour_messages[:, :1]), node_indices,
                                         num_segments=num_nodes)
                aggregated_message = sums / ops.maximum(counts, 1.0)
            elif self.aggregation_type == "max":
                aggregated_message = ops.segment_max(neighbour_messages, node_indices, num_segments=num_nodes)
            else:
                raise ValueError(f"Invalid aggregation type: {self.aggregation_type}.")
            return aggregated_message

        def update(self, node_repesentations, aggregated_messages):
            if self.combination_type == "concat":
                h = ops.concatenate([node_repesentations, aggregated_messages], axis=1)
            elif self.combination_type == "add":
                h = node_repesentations + aggregated_messages
            else:
                raise ValueError(f"Invalid combination type: {self.combination_type}.")
            node_embeddings = self.update_fn(h)
            if self.normalize:  # (tf.nn.l2_normalize)
                node_embeddings = node_embeddings / ops.sqrt(
                    ops.maximum(ops.sum(ops.square(node_embeddings), axis=-1, keepdims=True), 1e-12))
            return node_embeddings

        def call(self, inputs):
            node_repesentations, edges, edge_weights = inputs
            node_indices, neighbour_indices = edges[0], edges[1]
            neighbour_repesentations = ops.take(node_repesentations, neighbour_indices, axis=0)
            neighbour_messages = self.prepare(neighbour_repesentations, edge_weights)
            aggregated_messages = self.aggregate(node_indices, neighbour_messages)
            return self.update(node_repesentations, aggregated_messages)

    class GNNNodeClassifier(keras.Model):
        def __init__(self, graph_info, num_classes, hidden_units, aggregation_type="sum", combination_type="concat",
                     dropout_rate=0.2, normalize=True, *args, **kwargs):
            super().__init__(*args, **kwargs)
            node_features, edges, edge_weights = graph_info
            self.node_features = node_features
            self.edges = edges
            self.edge_weights = edge_weights
            if self.edge_weights is None:
                self.edge_weights = ops.ones(shape=edges.shape[1])
            self.edge_weights = self.edge_weights / ops.sum(self.edge_weights)
            self.preprocess = create_ffn(hidden_units, dropout_rate, name="preprocess")
            self.conv1 = GraphConvLayer(hidden_units, dropout_rate, aggregation_type, combination_type, normalize,
                                        name="graph_conv1")
            self.conv2 = GraphConvLayer(hidden_units, dropout_rate, aggregation_type, combination_type, normalize,
                                        name="graph_conv2")
            self.postprocess = create_ffn(hidden_units, dropout_rate, name="postprocess")
            self.compute_logits = layers.Dense(units=num_classes, name="logits")

        def call(self, input_node_indices):
            x = self.preprocess(self.node_features)
            x1 = self.conv1((x, self.edges, self.edge_weights))
            x = x1 + x
            x2 = self.conv2((x, self.edges, self.edge_weights))
            x = x2 + x
            x = self.postprocess(x)
            node_embeddings = ops.take(x, input_node_indices, axis=0)
            return self.compute_logits(node_embeddings)

    return GNNNodeClassifier(graph_info=graph_info, num_classes=num_classes, hidden_units=hidden_units,
                             dropout_rate=0.0, aggregation_type=aggregation_type, name="gnn_model")


@pytest.mark.parametrize("aggregation_type", ["sum", "max"])
def test_gnn_citations(keras_ref, aggregation_type, capsys):
    rng = np.random.default_rng(11)
    num_nodes, num_features = 40, 12
    node_features = (rng.random((num_nodes, num_features)) < 0.3).astype("float32")
    edges = rng.integers(0, num_nodes, (2, 120))
    edges[0, :num_nodes] = np.arange(num_nodes)  # (every node cites at least one paper)
    labels = rng.integers(0, 3, num_nodes)

    def graph_info(keras):
        return (keras.ops.convert_to_tensor(node_features), edges, keras.ops.ones(shape=edges.shape[1]))

    ref = _gnn_node_classifier(keras_ref, graph_info(keras_ref), aggregation_type=aggregation_type)
    ours = _gnn_node_classifier(kerasish, graph_info(kerasish), aggregation_type=aggregation_type)
    # "GNN output shape:" (the example calls it on a list; Keras 3 takes tensors only)
    probe = np.array([1, 10, 20])
    assert tuple(ours(probe).shape) == tuple(ref(probe).shape) == (3, 3)
    capsys.readouterr()
    ref.summary()
    summary_ref = capsys.readouterr().out
    ours.summary()
    assert capsys.readouterr().out == summary_ref
    copy_weights(ours, ref)

    def run_experiment(model, keras):
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])
        early_stopping = keras.callbacks.EarlyStopping(monitor="val_acc", patience=2, restore_best_weights=True)
        return model.fit(x=np.arange(30), y=labels[:30], epochs=4, batch_size=8, validation_split=0.15,
                         callbacks=[early_stopping], shuffle=False, verbose=0)

    h_ref, h_ours = run_experiment(ref, keras_ref), run_experiment(ours, kerasish)
    assert_history(h_ours, h_ref)
    assert_weights(ours, ref)
    x_test = np.arange(30, 40)
    assert_same(ours.evaluate(x=x_test, y=labels[30:], verbose=0), ref.evaluate(x=x_test, y=labels[30:], verbose=0))

    # the example then grows the graph: new nodes and citations, set as attributes
    new_features = (rng.random((3, num_features)) < 0.3).astype("float32")
    new_edges = np.concatenate([edges, [[40, 40, 41, 42], [1, 2, 3, 4]]], axis=1)
    for model, keras in ((ref, keras_ref), (ours, kerasish)):
        model.node_features = keras.ops.convert_to_tensor(np.concatenate([node_features, new_features]))
        model.edges = new_edges
        model.edge_weights = keras.ops.ones(shape=new_edges.shape[1]) / new_edges.shape[1]
    new_nodes = np.array([40, 41, 42])
    assert_same(ours.predict(new_nodes, verbose=0), ref.predict(new_nodes, verbose=0))


# ----------------------------------------- 12. Deep Q-Learning (Breakout)
class _Catch:
    """Tiny deterministic stand-in for Atari Breakout: a ball falls down a 12x12
    board, a 3-wide paddle on the bottom row moves (0 noop, 1 fire=noop, 2 right, 3 left);
    observation: the last 4 frames (4, 12, 12), as AtariPreprocessing+FrameStack give."""
    size = 12
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
    def _frame(self):
        f = np.zeros((self.size, self.size), "float32")
        f[self.ball_y, self.ball_x] = 1.0
        f[-1, max(self.paddle - 1, 0): self.paddle + 2] = 1.0
        return f
    def reset(self):
        self.ball_x, self.ball_y = int(self.rng.integers(0, self.size)), 0
        self.paddle = self.size // 2
        self.frames = [self._frame()] * 4
        return np.stack(self.frames), {}
    def step(self, action):
        self.paddle = int(np.clip(self.paddle + {0: 0, 1: 0, 2: 1, 3: -1}[int(action)], 1, self.size - 2))
        self.ball_y += 1
        done = self.ball_y == self.size - 1
        reward = (1.0 if abs(self.ball_x - self.paddle) <= 1 else -1.0) if done else 0.0
        self.frames = self.frames[1:] + [self._frame()]
        return np.stack(self.frames), reward, done, False, {}

def _dqn_breakout(keras, weights=None, max_frames=120):
    layers = keras.layers
    seed = 42
    gamma = 0.99
    epsilon = 1.0
    epsilon_min = 0.1
    epsilon_max = 1.0
    epsilon_interval = epsilon_max - epsilon_min
    batch_size = 8
    max_steps_per_episode = 100
    max_episodes = 0
    num_actions = 4
    np.random.seed(seed)
    env = _Catch(seed)

    def create_q_model():
        return keras.Sequential([
            layers.Lambda(lambda tensor: keras.ops.transpose(tensor, [0, 2, 3, 1]), output_shape=(12, 12, 4),
                          input_shape=(4, 12, 12)),
            layers.Conv2D(8, 4, strides=2, activation="relu"),
            layers.Conv2D(8, 3, strides=1, activation="relu"),
            layers.Conv2D(8, 3, strides=1, activation="relu"),
            layers.Flatten(),
            layers.Dense(16, activation="relu"),
            layers.Dense(num_actions, activation="linear"),
        ])

    model = create_q_model()
    model_target = create_q_model()
    if weights is not None:
        model.set_weights(weights[0])
        model_target.set_weights(weights[1])
    initial = (model.get_weights(), model_target.get_weights())
    optimizer = keras.optimizers.Adam(learning_rate=0.001, clipnorm=1.0)

    action_history, state_history, state_next_history = [], [], []
    rewards_history, done_history, episode_reward_history = [], [], []
    running_reward = 0
    episode_count = 0
    frame_count = 0
    epsilon_random_frames = 20
    epsilon_greedy_frames = 100.0
    max_memory_length = 100
    update_after_actions = 4
    update_target_network = 40
    loss_function = keras.losses.Huber()
    losses, greedy = [], []
    while True:
        observation, _ = env.reset()
        state = np.array(observation)
        episode_reward = 0
        for timestep in range(1, max_steps_per_episode):
            frame_count += 1
            if frame_count < epsilon_random_frames or epsilon > np.random.rand(1)[0]:
                action = np.random.choice(num_actions)
            else:
                state_tensor = keras.ops.convert_to_tensor(state)
                state_tensor = keras.ops.expand_dims(state_tensor, 0)
                action_probs = model(state_tensor, training=False)
                # (`.numpy()` of a tensor that requires grad fails on torch: `int(...)`)
                action = int(keras.ops.argmax(action_probs[0]))
                greedy.append(action)
            epsilon -= epsilon_interval / epsilon_greedy_frames
            epsilon = max(epsilon, epsilon_min)
            state_next, reward, done, _, _ = env.step(action)
            state_next = np.array(state_next)
            episode_reward += reward
            action_history.append(action)
            state_history.append(state)
            state_next_history.append(state_next)
            done_history.append(done)
            rewards_history.append(reward)
            state = state_next
            if frame_count % update_after_actions == 0 and len(done_history) > batch_size:
                indices = np.random.choice(range(len(done_history)), size=batch_size)
                state_sample = np.array([state_history[i] for i in indices])
                state_next_sample = np.array([state_next_history[i] for i in indices])
                # (a list + a tensor is a TypeError on torch: converted first)
                rewards_sample = keras.ops.convert_to_tensor([rewards_history[i] for i in indices])
                action_sample = [action_history[i] for i in indices]
                done_sample = keras.ops.convert_to_tensor([float(done_history[i]) for i in indices])
                future_rewards = model_target.predict(state_next_sample, verbose=0)
                updated_q_values = rewards_sample + gamma * keras.ops.amax(future_rewards, axis=1)
                updated_q_values = updated_q_values * (1 - done_sample) - done_sample
                masks = keras.ops.one_hot(action_sample, num_actions)
                # (tf.GradientTape -> torch autograd)
                q_values = model(state_sample)
                q_action = keras.ops.sum(keras.ops.multiply(q_values, masks), axis=1)
                loss = loss_function(updated_q_values, q_action)
                model.zero_grad()
                loss.backward()
                grads = [v.value.grad for v in model.trainable_variables]
                optimizer.apply_gradients(zip(grads, model.trainable_variables))
                losses.append(float(loss.detach()))
            if frame_count % update_target_network == 0:
                model_target.set_weights(model.get_weights())
            if len(rewards_history) > max_memory_length:
                del rewards_history[:1]
                del state_history[:1]
                del state_next_history[:1]
                del action_history[:1]
                del done_history[:1]
            if done:
                break
        episode_reward_history.append(episode_reward)
        if len(episode_reward_history) > 100:
            del episode_reward_history[:1]
        running_reward = np.mean(episode_reward_history)
        episode_count += 1
        if frame_count >= max_frames:
            break
    return initial, model, model_target, losses, greedy, episode_reward_history


def test_dqn_breakout_hand_written_loop(keras_ref):
    initial, model_ref, target_ref, losses_ref, greedy_ref, rewards_ref = _dqn_breakout(keras_ref)
    _, model_ours, target_ours, losses_ours, greedy_ours, rewards_ours = _dqn_breakout(kerasish, initial)
    assert len(losses_ref) > 20 and len(greedy_ref) > 20  # the replay updates and the greedy branch ran
    assert greedy_ours == greedy_ref
    assert rewards_ours == rewards_ref
    np.testing.assert_allclose(losses_ours, losses_ref, rtol=1e-4, atol=1e-7)
    assert_weights(model_ours, model_ref)
    assert_weights(target_ours, target_ref)
    assert model_ours.input_shape == model_ref.input_shape == (None, 4, 12, 12)


# ------------------------------------------------------------ 13. VQ-VAE
def _vq_vae(keras, data_variance, latent_dim=4, num_embeddings=8):
    layers, ops = keras.layers, keras.ops

    class VectorQuantizer(layers.Layer):
        def __init__(self, num_embeddings, embedding_dim, beta=0.25, **kwargs):
            super().__init__(**kwargs)
            self.embedding_dim = embedding_dim
            self.num_embeddings = num_embeddings
            self.beta = beta
            w_init = keras.initializers.RandomUniform()
            self.embeddings = keras.Variable(
                initializer=w_init(shape=(self.embedding_dim, self.num_embeddings), dtype="float32"),
                trainable=True, name="embeddings_vqvae")

        def call(self, x):
            input_shape = ops.shape(x)
            flattened = ops.reshape(x, [-1, self.embedding_dim])
            encoding_indices = self.get_code_indices(flattened)
            encodings = ops.one_hot(encoding_indices, self.num_embeddings)
            quantized = ops.matmul(encodings, ops.transpose(self.embeddings))
            quantized = ops.reshape(quantized, input_shape)
            commitment_loss = ops.mean((ops.stop_gradient(quantized) - x) ** 2)
            codebook_loss = ops.mean((quantized - ops.stop_gradient(x)) ** 2)
            self.add_loss(self.beta * commitment_loss + codebook_loss)
            quantized = x + ops.stop_gradient(quantized - x)
            return quantized

        def get_code_indices(self, flattened_inputs):
            similarity = ops.matmul(flattened_inputs, self.embeddings)
            distances = (ops.sum(flattened_inputs**2, axis=1, keepdims=True) + ops.sum(self.embeddings**2, axis=0)
                         - 2 * similarity)
            encoding_indices = ops.argmin(distances, axis=1)
            return encoding_indices

    def get_encoder(latent_dim=16):
        encoder_inputs = keras.Input(shape=(8, 8, 1))
        x = layers.Conv2D(4, 3, activation="relu", strides=2, padding="same")(encoder_inputs)
        x = layers.Conv2D(8, 3, activation="relu", strides=2, padding="same")(x)
        encoder_outputs = layers.Conv2D(latent_dim, 1, padding="same")(x)
        return keras.Model(encoder_inputs, encoder_outputs, name="encoder")

    def get_decoder(latent_dim=16):
        latent_inputs = keras.Input(shape=get_encoder(latent_dim).output.shape[1:])
        x = layers.Conv2DTranspose(8, 3, activation="relu", strides=2, padding="same")(latent_inputs)
        x = layers.Conv2DTranspose(4, 3, activation="relu", strides=2, padding="same")(x)
        decoder_outputs = layers.Conv2DTranspose(1, 3, padding="same")(x)
        return keras.Model(latent_inputs, decoder_outputs, name="decoder")

    def get_vqvae(latent_dim=16, num_embeddings=64):
        vq_layer = VectorQuantizer(num_embeddings, latent_dim, name="vector_quantizer")
        encoder = get_encoder(latent_dim)
        decoder = get_decoder(latent_dim)
        inputs = keras.Input(shape=(8, 8, 1))
        encoder_outputs = encoder(inputs)
        quantized_latents = vq_layer(encoder_outputs)
        reconstructions = decoder(quantized_latents)
        return keras.Model(inputs, reconstructions, name="vq_vae")

    class VQVAETrainer(keras.models.Model):
        def __init__(self, train_variance, latent_dim=32, num_embeddings=128, **kwargs):
            super().__init__(**kwargs)
            self.train_variance = train_variance
            self.latent_dim = latent_dim
            self.num_embeddings = num_embeddings
            self.vqvae = get_vqvae(self.latent_dim, self.num_embeddings)
            self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
            self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
            self.vq_loss_tracker = keras.metrics.Mean(name="vq_loss")

        def call(self, x):
            # (not in the example: Keras 3's fit builds a model through its `call`,
            # and raises "Unable to automatically build the model" without one)
            return self.vqvae(x)

        @property
        def metrics(self):
            return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.vq_loss_tracker]

        def train_step(self, x):
            # (tf.GradientTape -> the Keras 3 torch idiom)
            self.zero_grad()
            reconstructions = self.vqvae(x)
            reconstruction_loss = ops.mean((x - reconstructions) ** 2) / self.train_variance
            total_loss = reconstruction_loss + sum(self.vqvae.losses)
            total_loss.backward()
            trainable_weights = self.vqvae.trainable_weights
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
            self.total_loss_tracker.update_state(total_loss)
            self.reconstruction_loss_tracker.update_state(reconstruction_loss)
            self.vq_loss_tracker.update_state(sum(self.vqvae.losses))
            return {
                "loss": self.total_loss_tracker.result(),
                "reconstruction_loss": self.reconstruction_loss_tracker.result(),
                "vqvae_loss": self.vq_loss_tracker.result(),
            }

    return VQVAETrainer(data_variance, latent_dim=latent_dim, num_embeddings=num_embeddings)


def test_vq_vae_custom_train_step(keras_ref):
    keras_ref.utils.clear_session()  # (weight paths are compared: Keras's layer-name counters restart)
    rng = np.random.default_rng(13)
    x_train = rng.random((48, 8, 8, 1)).astype("float32")
    x_test = rng.random((8, 8, 8, 1)).astype("float32")
    x_train_scaled, x_test_scaled = x_train - 0.5, x_test - 0.5
    data_variance = float(np.var(x_train))
    ref, ours = _vq_vae(keras_ref, data_variance), _vq_vae(kerasish, data_variance)
    # the codebook (a `keras.Variable` set in `__init__`) sits where the layer is called
    assert [v.path for v in ours.vqvae.weights] == [v.path for v in ref.vqvae.weights]
    assert "embeddings_vqvae" in [v.path for v in ours.vqvae.weights]
    copy_weights(ours.vqvae, ref.vqvae)
    for model, keras in ((ref, keras_ref), (ours, kerasish)):
        model.compile(optimizer=keras.optimizers.Adam(0.01))
    h_ref = ref.fit(x_train_scaled, epochs=2, batch_size=16, shuffle=False, verbose=0)
    h_ours = ours.fit(x_train_scaled, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert sorted(h_ref.history) == ["loss", "reconstruction_loss", "vqvae_loss"]
    assert_history(h_ours, h_ref)
    assert_weights(ours.vqvae, ref.vqvae)
    assert [m.name for m in ours.metrics] == [m.name for m in ref.metrics]

    # the example's codebook look-up on the encoder's outputs
    def codes(trainer):
        encoder = trainer.vqvae.get_layer("encoder")
        quantizer = trainer.vqvae.get_layer("vector_quantizer")
        encoded_outputs = encoder.predict(x_test_scaled, verbose=0)
        flat_enc_outputs = encoded_outputs.reshape(-1, encoded_outputs.shape[-1])
        codebook_indices = quantizer.get_code_indices(flat_enc_outputs)
        # (`.numpy()`: a torch tensor in both)
        codebook_indices = codebook_indices.numpy().reshape(encoded_outputs.shape[:-1])
        return trainer.vqvae.predict(x_test_scaled, verbose=0), codebook_indices

    (rec_ref, codes_ref), (rec_ours, codes_ours) = codes(ref), codes(ours)
    assert_same(rec_ours, rec_ref)
    np.testing.assert_array_equal(codes_ours, codes_ref)


# -------------------------------------------- 14. Semi-supervised SimCLR
def _simclr(keras, image_size=12, image_channels=3, width=8, temperature=0.1):
    layers, ops = keras.layers, keras.ops

    def get_augmenter():
        # (the example's random flips/translations/zooms/colour jitter draw random
        # numbers, which are not compared here: only its Rescaling is kept)
        return keras.Sequential([keras.Input(shape=(image_size, image_size, image_channels)),
                                 layers.Rescaling(1 / 255)])

    def get_encoder():
        return keras.Sequential([
            layers.Conv2D(width, kernel_size=3, strides=2, activation="relu"),
            layers.Conv2D(width, kernel_size=3, strides=2, activation="relu"),
            layers.Flatten(),
            layers.Dense(width, activation="relu"),
        ], name="encoder")

    class ContrastiveModel(keras.Model):
        def __init__(self):
            super().__init__()
            self.temperature = temperature
            self.contrastive_augmenter = get_augmenter()
            self.classification_augmenter = get_augmenter()
            self.encoder = get_encoder()
            self.projection_head = keras.Sequential(
                [keras.Input(shape=(width,)), layers.Dense(width, activation="relu"), layers.Dense(width)],
                name="projection_head")
            self.linear_probe = keras.Sequential([layers.Input(shape=(width,)), layers.Dense(10)], name="linear_probe")
            self.encoder.summary()
            self.projection_head.summary()
            self.linear_probe.summary()

        def compile(self, contrastive_optimizer, probe_optimizer, **kwargs):
            super().compile(**kwargs)
            self.contrastive_optimizer = contrastive_optimizer
            self.probe_optimizer = probe_optimizer
            self.probe_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            self.contrastive_loss_tracker = keras.metrics.Mean(name="c_loss")
            self.contrastive_accuracy = keras.metrics.SparseCategoricalAccuracy(name="c_acc")
            self.probe_loss_tracker = keras.metrics.Mean(name="p_loss")
            self.probe_accuracy = keras.metrics.SparseCategoricalAccuracy(name="p_acc")

        @property
        def metrics(self):
            return [self.contrastive_loss_tracker, self.contrastive_accuracy, self.probe_loss_tracker,
                    self.probe_accuracy]

        def contrastive_loss(self, projections_1, projections_2):
            projections_1 = ops.normalize(projections_1, axis=1)
            projections_2 = ops.normalize(projections_2, axis=1)
            similarities = ops.matmul(projections_1, ops.transpose(projections_2)) / self.temperature
            batch_size = ops.shape(projections_1)[0]
            contrastive_labels = ops.arange(batch_size)
            self.contrastive_accuracy.update_state(contrastive_labels, similarities)
            self.contrastive_accuracy.update_state(contrastive_labels, ops.transpose(similarities))
            loss_1_2 = keras.losses.sparse_categorical_crossentropy(contrastive_labels, similarities, from_logits=True)
            loss_2_1 = keras.losses.sparse_categorical_crossentropy(contrastive_labels, ops.transpose(similarities),
                                                                     from_logits=True)
            return (loss_1_2 + loss_2_1) / 2

        def train_step(self, data):
            (unlabeled_images, _), (labeled_images, labels) = data
            images = ops.concatenate((unlabeled_images, labeled_images), axis=0)
            augmented_images_1 = self.contrastive_augmenter(images, training=True)
            augmented_images_2 = self.contrastive_augmenter(images, training=True)
            # (tf.GradientTape -> torch autograd; the tape's gradient of a vector is that of its sum)
            features_1 = self.encoder(augmented_images_1, training=True)
            # (the augmenters are deterministic here: the second view is scaled
            # so that the two views differ)
            features_2 = self.encoder(augmented_images_2 * 0.9, training=True)
            projections_1 = self.projection_head(features_1, training=True)
            projections_2 = self.projection_head(features_2, training=True)
            contrastive_loss = self.contrastive_loss(projections_1, projections_2)
            weights = self.encoder.trainable_weights + self.projection_head.trainable_weights
            self.zero_grad()
            ops.sum(contrastive_loss).backward()
            gradients = [w.value.grad for w in weights]
            self.contrastive_optimizer.apply_gradients(zip(gradients, weights))
            self.contrastive_loss_tracker.update_state(contrastive_loss)

            preprocessed_images = self.classification_augmenter(labeled_images, training=True)
            features = self.encoder(preprocessed_images, training=False)
            class_logits = self.linear_probe(features, training=True)
            probe_loss = self.probe_loss(labels, class_logits)
            self.zero_grad()
            probe_loss.backward()
            gradients = [w.value.grad for w in self.linear_probe.trainable_weights]
            self.probe_optimizer.apply_gradients(zip(gradients, self.linear_probe.trainable_weights))
            self.probe_loss_tracker.update_state(probe_loss)
            self.probe_accuracy.update_state(labels, class_logits)
            return {m.name: m.result() for m in self.metrics}

        def test_step(self, data):
            labeled_images, labels = data
            preprocessed_images = self.classification_augmenter(labeled_images, training=False)
            features = self.encoder(preprocessed_images, training=False)
            class_logits = self.linear_probe(features, training=False)
            probe_loss = self.probe_loss(labels, class_logits)
            self.probe_loss_tracker.update_state(probe_loss)
            self.probe_accuracy.update_state(labels, class_logits)
            return {m.name: m.result() for m in self.metrics[2:]}

    return ContrastiveModel

def _zipped_dataset(keras, unlabeled, labeled, batch_size):
    class ZippedDataset(keras.utils.PyDataset):
        """tf.data.Dataset.zip((unlabeled, labeled)) as a PyDataset."""
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
        def __len__(self):
            return len(labeled[0]) // batch_size
        def __getitem__(self, idx):
            s = slice(idx * batch_size, (idx + 1) * batch_size)
            return (unlabeled[0][s], unlabeled[1][s]), (labeled[0][s], labeled[1][s])
    return ZippedDataset()


def test_semisupervised_simclr(keras_ref, capsys):
    keras_ref.utils.clear_session()  # (summaries are compared: Keras's layer-name counters restart)
    rng = np.random.default_rng(14)
    unlabeled = ((rng.random((32, 12, 12, 3)) * 255).astype("float32"), -np.ones(32, "int64"))
    labeled = ((rng.random((32, 12, 12, 3)) * 255).astype("float32"), rng.integers(0, 10, 32))
    validation = ((rng.random((16, 12, 12, 3)) * 255).astype("float32"), rng.integers(0, 10, 16))
    capsys.readouterr()
    ref = _simclr(keras_ref)()
    summaries_ref = capsys.readouterr().out
    ours = _simclr(kerasish)()
    # the three summaries printed in `__init__` (the encoder's unbuilt)
    assert capsys.readouterr().out == summaries_ref
    assert "0 (unbuilt)" in summaries_ref
    for model in (ref, ours):
        model.encoder(np.zeros((1, 12, 12, 3), "float32"))
        # (Keras 3's fit builds a model through its `call`; this one has none and
        # raises "Unable to automatically build the model": its parts are built)
        model.built = True
    for part in ("encoder", "projection_head", "linear_probe"):
        copy_weights(getattr(ours, part), getattr(ref, part))
    for model, keras in ((ref, keras_ref), (ours, kerasish)):
        model.compile(contrastive_optimizer=keras.optimizers.Adam(), probe_optimizer=keras.optimizers.Adam())
    h_ref = ref.fit(_zipped_dataset(keras_ref, unlabeled, labeled, 8), epochs=2, validation_data=validation,
                    shuffle=False, verbose=0)
    h_ours = ours.fit(_zipped_dataset(kerasish, unlabeled, labeled, 8), epochs=2, validation_data=validation,
                      shuffle=False, verbose=0)
    assert sorted(h_ref.history) == ["c_acc", "c_loss", "p_acc", "p_loss", "val_p_acc", "val_p_loss"]
    # (Adam's default learning rate, as the example: with 0.01 the ~2e-7
    # relative gap of the conv bias gradients, bias added inside the conv in
    # kerasish and after it in Keras, was amplified to ~1e-3 in 8 steps by the
    # temperature 0.1; here 2e-6 on the History, 5e-7 on the weights)
    assert_history(h_ours, h_ref)
    for part in ("encoder", "projection_head", "linear_probe"):
        assert_weights(getattr(ours, part), getattr(ref, part))
    assert_same(ours.evaluate(*validation, verbose=0), ref.evaluate(*validation, verbose=0))
