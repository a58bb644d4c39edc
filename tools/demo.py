"""kerasish demo: a Keras model, trained on PyTorch.

    python tools/demo.py [--epochs 20] [--quiet]

Builds a functional model (`keras.Input` -> the custom `SimpleDense` layer of
the Layer spec -> Dense layers), compiles it, trains it with the Keras
progress bar on a small classification problem it makes (points inside or
outside a circle), evaluates and predicts, saves the weights
(`torch.save(model.state_dict())`, a plain PyTorch file), reloads them into a
freshly built model and checks that the predictions are identical.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

import kerasish as keras
import kerasish.callbacks  # noqa: F401  (keras.callbacks)
import kerasish.models


class SimpleDense(keras.layers.Layer):
    """The custom layer of the Keras Layer API page: `inputs @ w + b`."""

    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        return inputs @ self.w + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def build_model():
    """Input(2) -> SimpleDense(32) -> Dense(32, relu) -> Dense(1, sigmoid), functional."""
    Input = getattr(keras, "Input", None) or keras.layers.Input
    Model = getattr(keras, "Model", None) or kerasish.models.Model
    inputs = Input(shape=(2,), name="point")
    # explicit names: state_dict keys are layer names, so a fresh model matches
    x = SimpleDense(32, name="features")(inputs)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="inside")(x)
    return Model(inputs, outputs, name="circle_classifier")


def make_data(n=2000, seed=0):
    """Points in [-1, 1]^2; label 1 when inside the circle of radius 0.6."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2)).astype("float32")
    y = (np.linalg.norm(x, axis=1, keepdims=True) < 0.6).astype("float32")
    return x, y


def main(epochs: int = 20, verbose: int = 1, workdir: str | None = None) -> dict:
    torch.manual_seed(0)
    x, y = make_data()
    x_train, y_train, x_test, y_test = x[:1600], y[:1600], x[1600:], y[1600:]
    say = print if verbose else (lambda *a, **k: None)

    model = build_model()
    if verbose and hasattr(model, "summary"):
        model.summary()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_split=0.2,
                        verbose=1 if verbose else 0)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=1 if verbose else 0)
    say(f"test loss {loss:.4f}, test accuracy {accuracy:.3f}")

    probs = model.predict(x_test[:5], verbose=0)
    for point, p, label in zip(x_test[:5], probs[:, 0], y_test[:5, 0]):
        say(f"  point ({point[0]:+.2f}, {point[1]:+.2f}): p(inside)={p:.3f}  label={int(label)}")

    workdir = workdir or tempfile.mkdtemp(prefix="kerasish-demo-")
    path = os.path.join(workdir, "circle_classifier.pt")
    torch.save(model.state_dict(), path)
    fresh = build_model()
    fresh.load_state_dict(torch.load(path))
    same = np.array_equal(fresh.predict(x_test, verbose=0), model.predict(x_test, verbose=0))
    say(f"weights saved to {path} and reloaded into a fresh model: identical predictions: {same}")
    if not same:
        raise SystemExit("reloaded model predicts differently")
    return {"history": history.history, "test_loss": loss, "test_accuracy": accuracy, "weights_path": path,
            "reload_identical": same}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="kerasish demo")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.time()
    result = main(epochs=args.epochs, verbose=0 if args.quiet else 1)
    print(f"done in {time.time() - start:.1f}s", file=sys.stderr)
