"""Keras pooling layers."""

__all__: list[str] = []
