"""Training API (compile / fit / evaluate / predict) mixed into `keras.Model`."""
