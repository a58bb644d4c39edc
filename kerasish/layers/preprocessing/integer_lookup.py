"""`IntegerLookup`."""

from __future__ import annotations

from kerasish.layers.preprocessing.index_lookup import IndexLookup


class IntegerLookup(IndexLookup):
    """Maps integers to contiguous indices (`keras.layers.IntegerLookup`).

    Integer tensors are looked up on torch (on their device, with
    `searchsorted` over the vocabulary); lists and NumPy arrays work too. The
    result is an `int64` tensor (or a float encoding). Indices follow Keras's
    layout `[mask] [OOV...] [vocabulary...]`; see `IndexLookup`'s module doc.

    Args:
        max_tokens: Maximum vocabulary size (special tokens included), or
            None. Defaults to None.
        num_oov_indices: Number of OOV indices; with more than one, an OOV
            value `v` goes to `v % num_oov_indices` ("floormod") or to the
            FarmHash of its decimal string ("farmhash"). Defaults to 1.
        mask_token: Integer mapped to index 0 (int mode), or None. Defaults to None.
        oov_token: Value returned for OOV indices by `invert=True`. Defaults to -1.
        vocabulary: A list / array / tensor of ints, or a text file path.
        vocabulary_dtype: Only "int64" (as Keras). Defaults to "int64".
        idf_weights: IDF weights, with `vocabulary` in "tf_idf" mode.
        invert: Map indices back to values. Defaults to False.
        output_mode: "int", "one_hot", "multi_hot", "count" or "tf_idf".
            Defaults to "int".
        sparse: Only False (torch). Defaults to False.
        pad_to_max_tokens: Pad encodings to `max_tokens`. Defaults to False.
        oov_method: "floormod" or "farmhash". Defaults to "floormod".
        salt: With "farmhash", one or two ints for keyed SipHash-2-4.

    Example:
        >>> layer = keras.layers.IntegerLookup(vocabulary=[12, 36, 1138, 42])
        >>> layer(torch.tensor([[12, 1138, 42], [42, 1000, 36]]))
        tensor([[1, 3, 4],
                [4, 0, 2]])
    """

    _string = False

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=-1, vocabulary=None,
                 vocabulary_dtype="int64", idf_weights=None, invert=False, output_mode="int", sparse=False,
                 pad_to_max_tokens=False, oov_method="floormod", salt=None, name=None, **kwargs):
        if max_tokens is not None and max_tokens <= 1:
            raise ValueError(
                "If `max_tokens` is set for `IntegerLookup`, it must be greater than 1. "
                f"Received: max_tokens={max_tokens}"
            )
        if num_oov_indices < 0:
            raise ValueError(
                "The value of `num_oov_indices` argument for `IntegerLookup` must >= 0. "
                f"Received: num_oov_indices={num_oov_indices}"
            )
        if vocabulary_dtype != "int64":
            raise ValueError(
                f"Only `vocabulary_dtype='int64'` is supported at this time. Received: vocabulary_dtype={vocabulary_dtype}"
            )
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices, mask_token=mask_token,
                         oov_token=oov_token, vocabulary_dtype=vocabulary_dtype, vocabulary=vocabulary,
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode, sparse=sparse,
                         pad_to_max_tokens=pad_to_max_tokens, oov_method=oov_method, salt=salt, name=name, **kwargs)

    def get_config(self):
        config = super().get_config()
        for key in ("oov_token", "mask_token"):
            if config[key] is not None:
                config[key] = int(config[key])
        if config["vocabulary"] is not None:
            config["vocabulary"] = [int(v) for v in config["vocabulary"]]
        return config
