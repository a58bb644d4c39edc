"""`StringLookup`."""

from __future__ import annotations

from kerasish.layers.preprocessing.index_lookup import IndexLookup


class StringLookup(IndexLookup):
    """Maps strings to integer indices (`keras.layers.StringLookup`).

    Strings stay on the Python side: pass a `str`, a (nested) list of them or
    a NumPy string/bytes array; the result is a torch `int64` tensor (or a
    float encoding). Indices follow Keras's layout `[mask] [OOV...]
    [vocabulary...]`; see `IndexLookup`'s module doc.

    Args:
        max_tokens: Maximum vocabulary size (special tokens included), or
            None. Defaults to None.
        num_oov_indices: Number of out-of-vocabulary indices; with more than
            one, an OOV string goes to `Fingerprint64(s) % num_oov_indices`
            (TensorFlow's `to_hash_bucket_fast`). Defaults to 1.
        mask_token: Token mapped to index 0 (int mode), or None. Defaults to None.
        oov_token: Token returned for OOV indices by `invert=True`.
            Defaults to "[UNK]".
        vocabulary: A list / array of strings, or a text file path (one token
            per line). Defaults to None (call `adapt`).
        idf_weights: IDF weights, with `vocabulary` in "tf_idf" mode.
        invert: Map indices back to strings (a NumPy object array).
            Defaults to False.
        output_mode: "int", "one_hot", "multi_hot", "count" or "tf_idf".
            Defaults to "int".
        pad_to_max_tokens: Pad encodings to `max_tokens`. Defaults to False.
        sparse: Only False (torch). Defaults to False.
        encoding: Encoding of bytes inputs. Defaults to "utf-8".
        salt: One or two ints: OOV hashing by keyed SipHash-2-4 instead.

    Example:
        >>> layer = keras.layers.StringLookup(vocabulary=["a", "b", "c", "d"])
        >>> layer([["a", "c", "d"], ["d", "z", "b"]])
        tensor([[1, 3, 4],
                [4, 0, 2]])

    Saving: a constructor vocabulary is part of the config; an adapted one is
    written by `save_assets` as Keras's `vocabulary.txt` asset.
    """

    _string = True

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token="[UNK]", vocabulary=None,
                 idf_weights=None, invert=False, output_mode="int", pad_to_max_tokens=False, sparse=False,
                 encoding="utf-8", name=None, salt=None, **kwargs):
        kwargs.pop("vocabulary_dtype", None)
        self.encoding = encoding
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices, mask_token=mask_token,
                         oov_token=oov_token, vocabulary_dtype="string", vocabulary=vocabulary,
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode,
                         pad_to_max_tokens=pad_to_max_tokens, sparse=sparse, name=name, salt=salt, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["vocabulary_dtype"]
        config["encoding"] = self.encoding
        return config
