"""Keras merging layers."""

__all__: list[str] = []
