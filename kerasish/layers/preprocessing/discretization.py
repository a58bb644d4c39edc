"""`Discretization`."""

from __future__ import annotations

import numpy as np
import torch

from kerasish.layers.layer import Layer
from kerasish.layers.preprocessing.encoding import check_output_mode
from kerasish.layers.preprocessing.encoding import encode
from kerasish.layers.preprocessing.encoding import encoded_shape


# ---------------------------------------------------------------- adapt()
# Keras's approximate-quantile summary: a (2, n) array of sorted values and
# their weights, compressed to about 1/epsilon points; the bin boundaries are
# the summary's num_bins-quantiles (the last one dropped).
def _summarize(values: np.ndarray, epsilon: float) -> np.ndarray:
    values = np.sort(values.reshape(-1))
    step = max(values.size * epsilon, 1)
    picked = values[int(step - 1)::int(step)]
    return np.stack([picked, np.full_like(picked, step)])


def _compress(summary: np.ndarray, epsilon: float) -> np.ndarray:
    if summary.shape[1] * epsilon < 1:
        return summary
    targets = np.arange(0.0, 1.0, epsilon) + epsilon
    cumulative = np.cumsum(summary[1])
    fractions = cumulative / cumulative[-1]
    new_values = np.interp(targets, fractions, summary[0])
    new_cumulative = np.interp(targets, fractions, cumulative)
    new_weights = np.diff(new_cumulative, prepend=0.0)
    return np.stack([new_values, new_weights]).astype("float32")


def _merge(a: np.ndarray, b: np.ndarray, epsilon: float) -> np.ndarray:
    merged = np.concatenate([a, b], axis=1)
    return _compress(merged[:, np.argsort(merged[0])], epsilon)


class Discretization(Layer):
    """Buckets continuous features into integer bins (`keras.layers.Discretization`).

    Input value `x` gets the index `i` with `boundaries[i-1] <= x <
    boundaries[i]` (NumPy's `digitize`; torch's `bucketize(right=True)`), so
    `len(bin_boundaries) + 1` bins in all; then optionally one-hot /
    multi-hot / count encoded.

    Args:
        bin_boundaries: Sorted list of boundaries. Exclusive with `num_bins`.
        num_bins: Number of bins to learn with `adapt()` (approximate
            quantiles, Keras's algorithm).
        epsilon: Error tolerance of the quantile summary used by `adapt()`.
            Defaults to 0.01.
        output_mode: "int", "one_hot", "multi_hot" or "count". Defaults to
            "int".
        sparse: Only False (torch tensors are dense; Keras's torch backend
            rejects True too). Defaults to False.

    Output: int32 indices of the input's shape for "int" (Keras's output
    dtype); otherwise float encodings in the compute dtype.

    Example:
        >>> layer = keras.layers.Discretization(bin_boundaries=[0.0, 1.0, 2.0])
        >>> layer(torch.tensor([[-1.5, 1.0, 3.4, 0.5]]))
        tensor([[0, 2, 3, 1]], dtype=torch.int32)
    """

    def __init__(self, bin_boundaries=None, num_bins=None, epsilon=0.01, output_mode="int", sparse=False,
                 dtype=None, name=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if sparse:
            raise ValueError("`sparse=True` cannot be used with backend torch")
        check_output_mode(output_mode, "Discretization")
        if num_bins is not None and (isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 0):
            raise ValueError(f"`num_bins` must be greater than or equal to 0. Received: `num_bins={num_bins}`")
        if num_bins is not None and bin_boundaries is not None:
            raise ValueError(
                "Both `num_bins` and `bin_boundaries` should not be set. "
                f"Received: `num_bins={num_bins}` and `bin_boundaries={bin_boundaries}`"
            )
        if num_bins is None and bin_boundaries is None:
            raise ValueError("You need to set either `num_bins` or `bin_boundaries`.")
        if bin_boundaries is not None:
            bin_boundaries = [float(b) for b in bin_boundaries]
            if any(a > b for a, b in zip(bin_boundaries, bin_boundaries[1:])):
                raise ValueError(f"`bin_boundaries` must be sorted. Received: bin_boundaries={bin_boundaries}")
        self.num_bins = num_bins
        self.epsilon = epsilon
        self.output_mode = output_mode
        self.sparse = sparse
        self.summary = None if bin_boundaries else np.array([[], []], dtype="float32")
        self._set_boundaries(bin_boundaries)
        self.built = True

    def _set_boundaries(self, boundaries):
        self.bin_boundaries = boundaries
        values = boundaries if boundaries is not None else []
        # a buffer, so `.to(device)` moves it; not a weight (Keras saves none either)
        self.register_buffer("_boundaries", torch.tensor(values, dtype=torch.float64), persistent=False)

    def _constant_buffer_value(self, name):
        return torch.tensor(self.bin_boundaries or [], dtype=torch.float64) if name == "_boundaries" else None

    def adapt(self, data, steps=None):
        """Learns `num_bins` quantile boundaries from `data` (an array, a
        tensor, or an iterable of batches)."""
        if self.num_bins is None:
            raise ValueError(
                "Cannot adapt a Discretization layer that has been initialized with `bin_boundaries`, "
                "use `num_bins` instead."
            )
        self.reset_state()
        if isinstance(data, (np.ndarray, torch.Tensor)) or not hasattr(data, "__iter__"):
            batches = [data]
        else:
            batches = data
        for i, batch in enumerate(batches):
            if steps is not None and i >= steps:
                break
            self.update_state(batch)
        self.finalize_state()

    def update_state(self, data):
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu().numpy()
        values = np.asarray(data).astype("float32")
        self.summary = _merge(_summarize(values, self.epsilon), self.summary, self.epsilon)

    def finalize_state(self):
        if self.num_bins is None:
            return
        self._set_boundaries(_compress(self.summary, 1.0 / self.num_bins)[0, :-1].tolist())

    def reset_state(self):
        if self.num_bins is not None:
            self.summary = np.array([[], []], dtype="float32")

    def call(self, inputs):
        if self.bin_boundaries is None:
            raise ValueError(
                "You need to either pass the `bin_boundaries` argument at construction time or call "
                "`adapt(dataset)` before you can start using the `Discretization` layer."
            )
        boundaries = self._boundaries
        if inputs.dtype != boundaries.dtype:
            boundaries = boundaries.to(inputs.dtype if inputs.is_floating_point() else torch.float64)
        values = inputs if inputs.is_floating_point() else inputs.to(torch.float64)
        indices = torch.bucketize(values, boundaries, right=True)
        if self.output_mode == "int":
            return indices.to(torch.int32)
        return encode(indices, self.output_mode, len(self.bin_boundaries) + 1, self._compute_torch_dtype)

    def compute_output_shape(self, input_shape):
        depth = len(self.bin_boundaries) + 1 if self.bin_boundaries is not None else self.num_bins
        return encoded_shape(input_shape, self.output_mode, depth)

    @property
    def input_dtype(self) -> str:
        """Keras 3: inputs are read as floatx (the bins are float boundaries)."""
        from kerasish.backend import floatx

        return floatx()

    def get_config(self):
        config = super().get_config()
        config.pop("trainable", None)  # Keras 3's Discretization config has none and its __init__ refuses it
        config.update({"bin_boundaries": self.bin_boundaries, "num_bins": self.num_bins, "epsilon": self.epsilon,
                       "output_mode": self.output_mode, "sparse": self.sparse})
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if config.get("bin_boundaries") is not None and config.get("num_bins") is not None:
            boundaries = config.pop("bin_boundaries")  # an adapted layer: keep num_bins and its boundaries
            layer = cls(**config)
            layer._set_boundaries(boundaries)
            return layer
        return cls(**config)
