"""kerasish demo: a Keras model, trained on PyTorch.

    python tools/demo.py [--epochs 20] [--quiet]

Builds a functional model (`keras.Input` -> the custom `SimpleDense` layer of
the Layer spec -> Dense layers), compiles it, trains it with the Keras
progress bar on a small classification problem it makes (points inside or
outside a circle), evaluates and predicts, then saves it twice and checks that
each reload predicts identically:

- `model.save("circle_classifier.keras")`: Keras 3's `.keras` archive (config +
  weights), reloaded with `keras.saving.load_model` (needs h5py);
- `torch.save(model.state_dict())`: a plain PyTorch checkpoint, loaded into a
  freshly built model.
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


@keras.saving.register_keras_serializable(package="demo")
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
    inputs = keras.Input(shape=(2,), name="point")
    # explicit names: state_dict keys are layer names, so a fresh model matches
    x = SimpleDense(32, name="features")(inputs)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="inside")(x)
    return keras.Model(inputs, outputs, name="circle_classifier")


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
    if verbose:
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
    expected = model.predict(x_test, verbose=0)
    results = {"history": history.history, "test_loss": loss, "test_accuracy": accuracy}

    # 1. the Keras way: a .keras archive (architecture + weights + optimizer)
    try:
        import h5py  # noqa: F401
    except ImportError:
        say("h5py is not installed: skipping the .keras archive (pip install h5py)")
    else:
        keras_path = os.path.join(workdir, "circle_classifier.keras")
        model.save(keras_path)
        restored = keras.saving.load_model(keras_path)
        same = np.array_equal(restored.predict(x_test, verbose=0), expected)
        say(f"saved {keras_path}; keras.saving.load_model -> identical predictions: {same}")
        if not same:
            raise SystemExit("the reloaded .keras model predicts differently")
        results["keras_path"] = keras_path

    # 2. the PyTorch way: a state_dict checkpoint into a freshly built model
    path = os.path.join(workdir, "circle_classifier.pt")
    torch.save(model.state_dict(), path)
    fresh = build_model()
    fresh.load_state_dict(torch.load(path, weights_only=True))
    same = np.array_equal(fresh.predict(x_test, verbose=0), expected)
    say(f"saved {path}; load_state_dict into a fresh model -> identical predictions: {same}")
    if not same:
        raise SystemExit("reloaded model predicts differently")
    results.update(weights_path=path, reload_identical=same)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="kerasish demo")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.time()
    result = main(epochs=args.epochs, verbose=0 if args.quiet else 1)
    print(f"done in {time.time() - start:.1f}s", file=sys.stderr)
