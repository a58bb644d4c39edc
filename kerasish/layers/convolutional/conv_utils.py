"""Argument checks, output-size formulas and layout views shared by the
convolution and pooling layers.

Every Keras<->torch convention of these families lives here:

- Keras's "same" padding (TF's definition): the total padding is split with
  the extra pixel at the END when it is odd; torch's own `padding=` argument
  is symmetric, so an asymmetric split is applied with `F.pad`.
- channels_last data reaches torch as a *view* (`x.permute(0, C, 1, 2)`) that
  is in torch's channels_last memory format, so torch runs its channels-last
  kernels with no copy; outputs are permuted back as views.
- Rank-1 layers run through the 2-D kernels with a unit height (the same
  thing `F.conv1d` does inside, minus the copy a permuted 1-D view costs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.utils.argument_validation import standardize_data_format  # noqa: F401  (re-exported)
from kerasish.utils.argument_validation import standardize_tuple  # noqa: F401  (re-exported)


def standardize_padding(value, allow_causal: bool = False) -> str:
    """"valid" / "same" (/ "causal"), case-insensitive; ValueError otherwise."""
    allowed = {"valid", "same", "causal"} if allow_causal else {"valid", "same"}
    padding = value.lower() if isinstance(value, str) else value
    if padding not in allowed:
        raise ValueError(
            f"The `padding` argument must be a list/tuple or one of {allowed}. Received: {value}"
        )
    return padding


def same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF/Keras "same" padding of one dimension: (before, after), with the
    extra pixel after when the total is odd. `kernel` is the dilated size."""
    if stride == 1:
        total = kernel - 1
    else:
        total = max(0, (-(-length // stride) - 1) * stride + kernel - length)
    return total // 2, total - total // 2


def conv_output_length(length, kernel: int, stride: int, padding: str, dilation: int = 1):
    """Output length of a convolution (None stays None)."""
    if length is None:
        return None
    if padding == "valid":
        return (length - dilation * (kernel - 1) - 1) // stride + 1
    return (length - 1) // stride + 1


def check_output_shape(layer, input_shape, output_spatial, kernel_shape) -> None:
    """Keras's "Computed output size would be zero or negative" ValueError."""
    if any(s is not None and s <= 0 for s in output_spatial):
        raise ValueError(
            f"Layer '{layer.name}': computed output size would be zero or negative. Received "
            f"`inputs shape={tuple(input_shape)}`, `kernel shape={tuple(kernel_shape)}`, "
            f"`dilation_rate={getattr(layer, 'dilation_rate', None)}`, `strides={layer.strides}`, "
            f"`padding={layer.padding}`."
        )


class SpatialLayout:
    """Precomputed views between a Keras tensor and the N-C-spatial tensor torch
    wants. Rank 1 is lifted to 2-D with a unit height (see module docstring).

    All decisions are made once here; `to_torch` / `from_torch` are a view or two.
    """

    __slots__ = ("rank", "channels_last", "lift", "to_perm", "from_perm")

    def __init__(self, rank: int, data_format: str):
        self.rank = rank
        self.channels_last = data_format == "channels_last"
        self.lift = rank == 1
        op_rank = 2 if self.lift else rank
        # (N, *S, C) -> (N, C, *S) and back
        self.to_perm = (0, op_rank + 1, *range(1, op_rank + 1))
        self.from_perm = (0, *range(2, op_rank + 2), 1)

    def to_torch(self, x: torch.Tensor) -> torch.Tensor:
        if self.lift:
            if self.channels_last:
                return x.unsqueeze(1).permute(self.to_perm)
            return x.unsqueeze(2)
        if self.channels_last:
            return x.permute(self.to_perm)
        return x

    def from_torch(self, y: torch.Tensor) -> torch.Tensor:
        if self.lift:
            if self.channels_last:
                return y.permute(self.from_perm).squeeze(1)
            return y.squeeze(2)
        if self.channels_last:
            return y.permute(self.from_perm)
        return y

    def op_tuple(self, values: tuple, fill: int = 1) -> tuple:
        """Per-dimension argument for the torch op (a unit height first when lifted)."""
        return (fill, *values) if self.lift else tuple(values)


def pad_same_dynamic(x: torch.Tensor, kernels: tuple, strides: tuple):
    """Strided "same": the split depends on the input size. Returns the input
    (padded with `F.pad` only when a split is asymmetric) and torch's padding."""
    if torch.jit.is_tracing():
        return F.pad(x, traced_same_pads(x, kernels, strides)), 0
    pads = [same_padding(int(n), k, s) for n, k, s in zip(x.shape[2:], kernels, strides)]
    if all(a == b for a, b in pads):
        return x, tuple(a for a, _ in pads)
    flat = []
    for a, b in reversed(pads):
        flat.extend((a, b))
    return F.pad(x, flat), 0


def traced_same_pads(x: torch.Tensor, kernels: tuple, strides: tuple) -> list:
    """TF's "same" split as `F.pad` amounts (last spatial dim first) under
    `torch.jit.trace` (conv `pad_same_dynamic`, "same" pooling): computed from
    the traced sizes (tensors there), so the traced graph pads each input by its
    own size. With Python ints the trace kept the example's split, and an input
    of the other parity came out one step short."""
    flat = []
    for n, k, s in reversed(list(zip(x.shape[2:], kernels, strides))):
        n = torch.as_tensor(n)
        total = torch.clamp(((n + s - 1) // s - 1) * s + k - n, min=0)
        flat.extend((total // 2, total - total // 2))
    return flat


def static_padding(padding: str, kernels: tuple, strides: tuple, causal_dim: int | None = None):
    """Padding decided at construction: (F.pad amounts or None, torch padding,
    needs_dynamic). Stride-1 "same" and "causal" do not depend on the input size."""
    n = len(kernels)
    if padding == "valid":
        return None, (0,) * n, False
    if padding == "causal":
        flat = [0, 0] * n
        flat[2 * (n - 1 - causal_dim)] = kernels[causal_dim] - 1  # left of the time axis
        return flat, (0,) * n, False
    if any(s != 1 for s in strides):
        return None, None, True
    pads = [same_padding(1, k, 1) for k in kernels]
    if all(a == b for a, b in pads):
        return None, tuple(a for a, _ in pads), False
    flat = []
    for a, b in reversed(pads):
        flat.extend((a, b))
    return flat, (0,) * n, False

