"""Keras activations layers."""

__all__: list[str] = []
