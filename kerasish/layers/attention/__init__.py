"""Keras attention layers."""

__all__: list[str] = []
