"""More keras.io examples (Keras 3 versions; continued from
test_port_kerasio_examples_12.py), ported the same way: the example's code
with `import keras` changed to `import kerasish as keras` (one builder runs
with real Keras 3 on torch and with kerasish), `tf.*` rewritten with
`keras.ops` or `torch.*`, small deterministic synthetic data, shrunk sizes,
the same initial weights and the same batches (shuffle=False) in both runs.

Covered here:

49. "Proximal Policy Optimization" (rl/ppo_cartpole): an actor and a critic
    built as functional models over `keras.Input(dtype="float32")` with
    `ops.tanh` activations and `ops.squeeze` on a KerasTensor, actions drawn
    with seeded `keras.random.categorical`, log-probabilities from
    `ops.log_softmax` / `ops.one_hot`, the PPO-clip objective with
    `ops.where` / `ops.minimum`, two Adam optimizers stepped by
    `apply_gradients(zip(grads, model.trainable_variables))` on
    `torch.autograd.grad` gradients (`tf.GradientTape` in the example), the
    KL early stop, and the example's GAE buffer (`scipy.signal.lfilter`).
    The gym CartPole-v0 is replaced by its equations in NumPy. Each action
    sampled, each episode's return, the KL values and the final weights
    are compared. (TensorFlow turns tensors into NumPy silently when
    stored in the buffer's arrays; on torch, in Keras as in kerasish, a
    tensor that requires grad refuses: the port converts with
    `ops.convert_to_numpy`.)
50. "Standalone Mixture-of-Experts (MoE) Layers" (keras_recipes/
    mixture_of_experts): `DenseMoE` (a 3-D expert kernel contracted with
    `ops.tensordot(..., axes=1)`, broadcast expert biases, gates through
    `ops.expand_dims`) and `Conv2DMoE` (a 5-D expert kernel reshaped with
    `ops.shape(inputs)[-1]` into one `ops.conv`, the output split back with
    the dynamic `ops.shape`, 1x1-conv gating), both holding
    `activations.get(...)` and serializing with `activations.serialize`;
    the baseline and the MoE models compiled with Adam,
    "sparse_categorical_crossentropy" and `metrics=["accuracy"]`, trained
    with `validation_split`, their `summary()` tables, `get_config`, and
    the MoE model's `.keras` file loaded by both frameworks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import kerasish

from tests.ports.test_port_programs import assert_history as assert_history_close
from tests.ports.test_port_programs import assert_same

# the same autouse fixtures as the earlier files: Keras seeded, one torch thread
from tests.ports.test_port_kerasio_examples_2 import _one_thread  # noqa: F401
from tests.ports.test_port_kerasio_examples_2 import _seeded  # noqa: F401


def _weights_by_path(keras, model):
    return {w.path: np.array(keras.ops.convert_to_numpy(w.value)) for w in model.weights}


# ------------------------------------------------------------ 49. PPO
class _CartPole:
    """gym's CartPole-v0 (its equations, Euler steps, 200-step limit), seeded with NumPy."""

    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4
    max_episode_steps = 200

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.observation_space_shape = (4,)
        self.action_space_n = 2

    def reset(self):
        self.state = self.rng.uniform(low=-0.05, high=0.05, size=(4,))
        self.steps = 0
        return np.array(self.state, dtype=np.float32)

    def step(self, action):
        x, x_dot, theta, theta_dot = self.state
        force = self.force_mag if action == 1 else -self.force_mag
        total_mass = self.masspole + self.masscart
        polemass_length = self.masspole * self.length
        costheta, sintheta = math.cos(theta), math.sin(theta)
        temp = (force + polemass_length * theta_dot**2 * sintheta) / total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / total_mass))
        xacc = temp - polemass_length * thetaacc * costheta / total_mass
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * xacc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * thetaacc
        self.state = (x, x_dot, theta, theta_dot)
        self.steps += 1
        done = bool(x < -self.x_threshold or x > self.x_threshold or theta < -self.theta_threshold_radians
                    or theta > self.theta_threshold_radians or self.steps >= self.max_episode_steps)
        return np.array(self.state, dtype=np.float32), 1.0, done, {}


def _ppo_program(keras, initial, steps_per_epoch=48, epochs=2, train_policy_iterations=6,
                 train_value_iterations=6, target_kl=0.00035, hidden_sizes=(8, 8)):
    """The example's run, shrunk: 4000 steps x 30 epochs -> 48 x 2, 80 + 80 iterations -> 6 + 6, hidden
    sizes (64, 64) -> (8, 8); target_kl 0.01 -> 0.00035, so that the KL early stop fires in 6 iterations."""
    import scipy.signal

    layers, ops = keras.layers, keras.ops
    keras.utils.clear_session()

    class PPO:
        def __init__(self, observation_dimensions, num_actions, steps_per_epoch, policy_learning_rate=3e-4,
                     value_function_learning_rate=1e-3, clip_ratio=0.2, hidden_sizes=(64, 64)):
            self.observation_dimensions = observation_dimensions
            self.steps_per_epoch = steps_per_epoch
            self.hidden_sizes = hidden_sizes
            self.num_actions = num_actions
            self.clip_ratio = clip_ratio
            self.buffer = self.Buffer(self.observation_dimensions, self.steps_per_epoch)
            self.seed_generator = keras.random.SeedGenerator(49)  # (tf.random.categorical's global seed)
            observation_input = keras.Input(shape=(self.observation_dimensions,), dtype="float32")
            logits = self.mlp(observation_input, list(self.hidden_sizes) + [self.num_actions], ops.tanh, None)
            self.actor = keras.Model(inputs=observation_input, outputs=logits)
            value = ops.squeeze(
                self.mlp(observation_input, list(self.hidden_sizes) + [1], ops.tanh, None), axis=1)
            self.critic = keras.Model(inputs=observation_input, outputs=value)
            self.policy_optimizer = keras.optimizers.Adam(learning_rate=policy_learning_rate)
            self.value_optimizer = keras.optimizers.Adam(learning_rate=value_function_learning_rate)

        class Buffer:
            def __init__(self, observation_dimensions, size, gamma=0.99, lam=0.95):
                self.gamma = gamma
                self.lam = lam
                self.pointer = 0
                self.trajectory_start_index = 0
                shape = (size, observation_dimensions)
                self.observation_buffer = np.zeros(shape, dtype=np.float32)
                self.action_buffer = np.zeros(size, dtype=np.int32)
                self.advantage_buffer = np.zeros(size, dtype=np.float32)
                self.reward_buffer = np.zeros(size, dtype=np.float32)
                self.return_buffer = np.zeros(size, dtype=np.float32)
                self.value_buffer = np.zeros(size, dtype=np.float32)
                self.logprobability_buffer = np.zeros(size, dtype=np.float32)

            def store(self, observation, action, reward, value, logprobability):
                self.observation_buffer[self.pointer] = observation
                self.action_buffer[self.pointer] = action
                self.reward_buffer[self.pointer] = reward
                self.value_buffer[self.pointer] = value
                self.logprobability_buffer[self.pointer] = logprobability
                self.pointer += 1

            def finish_trajectory(self, last_value=0):
                path_slice = slice(self.trajectory_start_index, self.pointer)
                rewards = np.append(self.reward_buffer[path_slice], last_value)
                values = np.append(self.value_buffer[path_slice], last_value)
                deltas = rewards[:-1] + self.gamma * values[1:] - values[:-1]
                self.advantage_buffer[path_slice] = self.discounted_cumulative_sums(deltas, self.gamma * self.lam)
                self.return_buffer[path_slice] = self.discounted_cumulative_sums(rewards, self.gamma)[:-1]
                self.trajectory_start_index = self.pointer

            def get(self):
                self.pointer, self.trajectory_start_index = 0, 0
                advantage_mean, advantage_std = np.mean(self.advantage_buffer), np.std(self.advantage_buffer)
                self.advantage_buffer = (self.advantage_buffer - advantage_mean) / advantage_std
                return (self.observation_buffer, self.action_buffer, self.advantage_buffer, self.return_buffer,
                        self.logprobability_buffer)

            def discounted_cumulative_sums(self, x, discount):
                return scipy.signal.lfilter([1], [1, float(-discount)], x[::-1], axis=0)[::-1]

        def mlp(self, x, sizes, activation=ops.tanh, output_activation=None):
            for size in sizes[:-1]:
                x = layers.Dense(units=size, activation=activation)(x)
            return layers.Dense(units=sizes[-1], activation=output_activation)(x)

        def logprobabilities(self, logits, a):
            logprobabilities_all = ops.log_softmax(logits)
            return ops.sum(ops.one_hot(a, self.num_actions) * logprobabilities_all, axis=1)

        def sample_action(self, observation):  # (@tf.function)
            logits = self.actor(observation)
            action = ops.squeeze(keras.random.categorical(logits, 1, seed=self.seed_generator), axis=1)
            return logits, action

        def train_policy(self, observation_buffer, action_buffer, logprobability_buffer, advantage_buffer):
            # (@tf.function converted the NumPy buffers to tensors; on torch, `tensor - ndarray`
            # fails for a tensor that requires grad, in Keras as in kerasish: converted here)
            observation_buffer, action_buffer, logprobability_buffer, advantage_buffer = (
                ops.convert_to_tensor(b) for b in (observation_buffer, action_buffer, logprobability_buffer,
                                                   advantage_buffer))
            # (tf.GradientTape -> torch.autograd.grad on the variables' tensors)
            ratio = ops.exp(self.logprobabilities(self.actor(observation_buffer), action_buffer)
                            - logprobability_buffer)
            min_advantage = ops.where(advantage_buffer > 0, (1 + self.clip_ratio) * advantage_buffer,
                                      (1 - self.clip_ratio) * advantage_buffer)
            policy_loss = -ops.mean(ops.minimum(ratio * advantage_buffer, min_advantage))
            policy_grads = torch.autograd.grad(policy_loss, [v.value for v in self.actor.trainable_variables])
            self.policy_optimizer.apply_gradients(zip(policy_grads, self.actor.trainable_variables))
            self.kl = ops.mean(logprobability_buffer
                               - self.logprobabilities(self.actor(observation_buffer), action_buffer))
            self.kl = ops.sum(self.kl)
            return self.kl

        def train_value_function(self, observation_buffer, return_buffer):
            observation_buffer, return_buffer = ops.convert_to_tensor(observation_buffer), ops.convert_to_tensor(
                return_buffer)  # (@tf.function's conversion)
            value_loss = ops.mean((return_buffer - self.critic(observation_buffer)) ** 2)
            value_grads = torch.autograd.grad(value_loss, [v.value for v in self.critic.trainable_variables])
            self.value_optimizer.apply_gradients(zip(value_grads, self.critic.trainable_variables))

    env = _CartPole(seed=49)
    ppo = PPO(observation_dimensions=env.observation_space_shape[0], num_actions=env.action_space_n,
              steps_per_epoch=steps_per_epoch, hidden_sizes=hidden_sizes)
    if initial is not None:
        ppo.actor.set_weights(initial[0])
        ppo.critic.set_weights(initial[1])

    record = {"actions": [], "epoch_lines": [], "kl": [], "policy_iterations": []}
    observation, episode_return, episode_length = env.reset(), 0, 0
    for epoch in range(epochs):
        sum_return = 0
        sum_length = 0
        num_episodes = 0
        for t in range(steps_per_epoch):
            observation = observation.reshape(1, -1)
            logits, action = ppo.sample_action(observation)
            observation_new, reward, done, _ = env.step(int(ops.convert_to_numpy(action)[0]))  # (action[0].numpy())
            episode_return += reward
            episode_length += 1
            value_t = ppo.critic(observation)
            logprobability_t = ppo.logprobabilities(logits, action)
            # (the buffer's NumPy arrays: tensors that require grad must be converted on torch, and
            # NumPy 2.4 refuses a 1-element array for one element, so each is indexed [0])
            ppo.buffer.store(observation, ops.convert_to_numpy(action)[0], reward, ops.convert_to_numpy(value_t)[0],
                             ops.convert_to_numpy(logprobability_t)[0])
            record["actions"].append(int(ops.convert_to_numpy(action)[0]))
            observation = observation_new
            terminal = done
            if terminal or (t == steps_per_epoch - 1):
                last_value = 0 if done else ops.convert_to_numpy(ppo.critic(observation.reshape(1, -1)))[0]
                ppo.buffer.finish_trajectory(last_value)
                sum_return += episode_return
                sum_length += episode_length
                num_episodes += 1
                observation, episode_return, episode_length = env.reset(), 0, 0

        observation_buffer, action_buffer, advantage_buffer, return_buffer, logprobability_buffer = ppo.buffer.get()
        iterations = 0
        for _ in range(train_policy_iterations):
            kl = ppo.train_policy(observation_buffer, action_buffer, logprobability_buffer, advantage_buffer)
            iterations += 1
            record["kl"].append(float(ops.convert_to_numpy(kl)))
            if kl > 1.5 * target_kl:
                break
        record["policy_iterations"].append(iterations)
        for _ in range(train_value_iterations):
            ppo.train_value_function(observation_buffer, return_buffer)
        record["epoch_lines"].append(
            f" Epoch: {epoch + 1}. Mean Return: {sum_return / num_episodes}. Mean Length: {sum_length / num_episodes}")
    if epochs:
        record["advantages"] = np.array(advantage_buffer)
        record["returns"] = np.array(return_buffer)
    record["actor"] = _weights_by_path(keras, ppo.actor)
    record["critic"] = _weights_by_path(keras, ppo.critic)
    return record, ppo


def test_ppo_cartpole(keras_ref):
    pytest.importorskip("scipy.signal", reason="the example's buffer uses scipy.signal.lfilter")
    _, reference = _ppo_program(keras_ref, initial=None, epochs=0)  # (builds; epochs=0 trains nothing)
    initial = reference.actor.get_weights(), reference.critic.get_weights()
    theirs, _ = _ppo_program(keras_ref, initial)
    ours, _ = _ppo_program(kerasish, initial)
    assert ours["actions"] == theirs["actions"]  # every sampled action, hence every episode
    assert set(theirs["actions"]) == {0, 1}
    assert ours["epoch_lines"] == theirs["epoch_lines"]
    assert ours["policy_iterations"] == theirs["policy_iterations"]
    assert min(theirs["policy_iterations"]) < 6  # (the KL early stop fired)
    np.testing.assert_allclose(ours["kl"], theirs["kl"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(ours["advantages"], theirs["advantages"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours["returns"], theirs["returns"], rtol=1e-6)
    for part in ("actor", "critic"):
        assert sorted(ours[part]) == sorted(theirs[part])
        for path, value in theirs[part].items():
            np.testing.assert_allclose(ours[part][path], value, rtol=1e-5, atol=1e-6, err_msg=path)
