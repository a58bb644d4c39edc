"""`Subtract`: the difference of exactly two inputs."""

from __future__ import annotations

from kerasish.layers.merging.base_merge import Merge


class Subtract(Merge):
    """Performs elementwise subtraction: `inputs[0] - inputs[1]`.

    Takes a list of exactly two tensors of the same shape (or broadcastable
    after the batch axis). Masks are combined with a logical OR, as in Keras.

    Example:
        >>> x1, x2 = torch.ones(2, 3), torch.full((2, 3), 3.0)
        >>> keras.layers.Subtract()([x1, x2])[0]
        tensor([-2., -2., -2.])
    """

    def build(self, input_shape):
        super().build(input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. Received: input_shape={input_shape}")

    def _merge_function(self, inputs, masks=None):
        if len(inputs) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. Received: inputs={inputs}")
        return inputs[0] - inputs[1]


def subtract(inputs, **kwargs):
    """Functional interface to the `Subtract` layer: `Subtract(**kwargs)(inputs)`.

    Args:
        inputs: A list of exactly two input tensors.
        **kwargs: Standard layer keyword arguments.
    """
    return Subtract(**kwargs)(inputs)
