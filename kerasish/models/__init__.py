"""`keras.models`: functional, Sequential and subclassed models."""
