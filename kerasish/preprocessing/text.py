"""Keras 2's text preprocessing (`keras.preprocessing.text`): `Tokenizer`,
`text_to_word_sequence`, `one_hot`, `hashing_trick`, `tokenizer_from_json`.

These are plain Python/NumPy utilities (Keras 3 replaced them with the
`TextVectorization` layer but programs written for Keras 2 still call them);
their outputs follow tf.keras 2.x exactly: word indices by descending
frequency (ties in first-seen order), index 0 reserved, the OOV token at
index 1 when given, and the same four `texts_to_matrix` modes.
"""

from __future__ import annotations

import collections
import hashlib
import json

import numpy as np

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def text_to_word_sequence(input_text, filters=DEFAULT_FILTERS, lower=True, split=" "):
    """Splits a text into words: lower-cased, every `filters` character treated as a separator."""
    if lower:
        input_text = input_text.lower()
    table = str.maketrans({c: split for c in filters})
    return [w for w in input_text.translate(table).split(split) if w]


def hashing_trick(text, n, hash_function=None, filters=DEFAULT_FILTERS, lower=True, split=" ", analyzer=None):
    """Words -> indices in [1, n - 1] by hashing. `hash_function`: None (Python's
    `hash`, which varies between processes unless PYTHONHASHSEED is set, as in
    Keras), "md5" (stable), or a callable."""
    if hash_function is None:
        hash_function = hash
    elif hash_function == "md5":
        def hash_function(w):
            return int(hashlib.md5(w.encode()).hexdigest(), 16)
    words = text_to_word_sequence(text, filters, lower, split) if analyzer is None else analyzer(text)
    return [(hash_function(w) % (n - 1) + 1) for w in words]


def one_hot(input_text, n, filters=DEFAULT_FILTERS, lower=True, split=" ", analyzer=None):
    """`hashing_trick` with Python's `hash` (Keras 2's name for it)."""
    return hashing_trick(input_text, n, hash_function=hash, filters=filters, lower=lower, split=split,
                         analyzer=analyzer)


class Tokenizer:
    """Turns texts into sequences of word indices or into vectors (Keras 2's `Tokenizer`).

    Args:
        num_words: Keep only the `num_words - 1` most frequent words when
            converting (the vocabulary itself keeps every word). Defaults to None.
        filters: Characters removed from texts. Defaults to punctuation, tabs
            and newlines (not `'`).
        lower: Lower-case texts. Defaults to True.
        split: Word separator. Defaults to " ".
        char_level: Every character is a token. Defaults to False.
        oov_token: If given, it gets index 1 and replaces out-of-vocabulary
            words in `texts_to_sequences`. Defaults to None.
        analyzer: Optional callable text -> list of tokens, replacing the split.
        document_count: Starting document count (for `tokenizer_from_json`).
    """

    def __init__(self, num_words=None, filters=DEFAULT_FILTERS, lower=True, split=" ", char_level=False,
                 oov_token=None, analyzer=None, document_count=0, **kwargs):
        if "nb_words" in kwargs:  # Keras 1 spelling, still accepted by Keras 2
            num_words = kwargs.pop("nb_words")
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments: {kwargs}")
        if num_words is not None and (not isinstance(num_words, int) or num_words < 1):
            raise ValueError(f"`num_words` must be a positive integer or None. Received: num_words={num_words!r}")
        self.word_counts = collections.OrderedDict()
        self.word_docs = collections.defaultdict(int)
        self.filters = filters
        self.split = split
        self.lower = lower
        self.num_words = num_words
        self.document_count = document_count
        self.char_level = char_level
        self.oov_token = oov_token
        self.index_docs = collections.defaultdict(int)
        self.word_index = {}
        self.index_word = {}
        self.analyzer = analyzer

    def _tokens(self, text):
        if self.char_level or isinstance(text, list):
            if self.lower:
                text = [t.lower() for t in text] if isinstance(text, list) else text.lower()
            return text
        if self.analyzer is None:
            return text_to_word_sequence(text, filters=self.filters, lower=self.lower, split=self.split)
        return self.analyzer(text)

    def fit_on_texts(self, texts):
        """Updates the vocabulary from a list of texts (or of token lists)."""
        if isinstance(texts, str):
            raise TypeError("`fit_on_texts` expects a list of texts, not a single string.")
        for text in texts:
            self.document_count += 1
            seq = self._tokens(text)
            for w in seq:
                self.word_counts[w] = self.word_counts.get(w, 0) + 1
            for w in set(seq):
                self.word_docs[w] += 1
        # most frequent first; sorted() is stable, so ties keep first-seen order
        ranked = [w for w, _ in sorted(self.word_counts.items(), key=lambda kv: kv[1], reverse=True)]
        vocab = ([self.oov_token] if self.oov_token is not None else []) + ranked
        self.word_index = {w: i for i, w in enumerate(vocab, start=1)}
        self.index_word = {i: w for w, i in self.word_index.items()}
        for w, c in self.word_docs.items():
            self.index_docs[self.word_index[w]] = c

    def fit_on_sequences(self, sequences):
        """Updates document frequencies from sequences of indices (needed for
        `sequences_to_matrix(mode="tfidf")` without `fit_on_texts`)."""
        self.document_count += len(sequences)
        for seq in sequences:
            for i in set(seq):
                self.index_docs[i] += 1

    def texts_to_sequences(self, texts):
        return list(self.texts_to_sequences_generator(texts))

    def texts_to_sequences_generator(self, texts):
        oov = self.word_index.get(self.oov_token)
        for text in texts:
            out = []
            for w in self._tokens(text):
                i = self.word_index.get(w)
                if i is not None:
                    if self.num_words and i >= self.num_words:
                        if oov is not None:
                            out.append(oov)
                    else:
                        out.append(i)
                elif self.oov_token is not None:
                    out.append(oov)
            yield out

    def sequences_to_texts(self, sequences):
        return list(self.sequences_to_texts_generator(sequences))

    def sequences_to_texts_generator(self, sequences):
        oov = self.word_index.get(self.oov_token)
        for seq in sequences:
            words = []
            for num in seq:
                word = self.index_word.get(num)
                if word is not None:
                    if self.num_words and num >= self.num_words:
                        if oov is not None:
                            words.append(self.index_word[oov])
                    else:
                        words.append(word)
                elif self.oov_token is not None:
                    words.append(self.index_word[oov])
            yield " ".join(words)

    def texts_to_matrix(self, texts, mode="binary"):
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def sequences_to_matrix(self, sequences, mode="binary"):
        """(len(sequences), num_words) matrix; mode "binary", "count", "freq" or "tfidf"."""
        if mode not in ("binary", "count", "freq", "tfidf"):
            raise ValueError(f"Unknown vectorization mode: {mode!r}. Expected one of binary, count, freq, tfidf.")
        num_words = self.num_words
        if not num_words:
            if not self.word_index:
                raise ValueError("Specify a dimension (`num_words` argument), or fit on some text data first.")
            num_words = len(self.word_index) + 1
        if mode == "tfidf" and not self.document_count:
            raise ValueError("Fit the Tokenizer on some data before using tfidf mode.")
        x = np.zeros((len(sequences), num_words))
        for i, seq in enumerate(sequences):
            if not seq:
                continue
            counts = collections.Counter(j for j in seq if j < num_words)
            for j, c in counts.items():
                if mode == "count":
                    x[i][j] = c
                elif mode == "freq":
                    x[i][j] = c / len(seq)
                elif mode == "binary":
                    x[i][j] = 1
                else:
                    tf = 1 + np.log(c)
                    idf = np.log(1 + self.document_count / (1 + self.index_docs.get(j, 0)))
                    x[i][j] = tf * idf
        return x

    def get_config(self) -> dict:
        return {
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "char_level": self.char_level,
            "oov_token": self.oov_token,
            "document_count": self.document_count,
            "word_counts": json.dumps(self.word_counts),
            "word_docs": json.dumps(self.word_docs),
            "index_docs": json.dumps(self.index_docs),
            "index_word": json.dumps(self.index_word),
            "word_index": json.dumps(self.word_index),
        }

    def to_json(self, **kwargs) -> str:
        """JSON that `tokenizer_from_json` (kerasish or tf.keras) turns back into a Tokenizer."""
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()}, **kwargs)


def tokenizer_from_json(json_string) -> Tokenizer:
    """Rebuilds a `Tokenizer` from `Tokenizer.to_json()` (also tf.keras's JSON)."""
    try:
        payload = json.loads(json_string)
        config = dict(payload["config"])
        word_counts = json.loads(config.pop("word_counts"))
        word_docs = json.loads(config.pop("word_docs"))
        index_docs = {int(k): v for k, v in json.loads(config.pop("index_docs")).items()}
        index_word = {int(k): v for k, v in json.loads(config.pop("index_word")).items()}
        word_index = json.loads(config.pop("word_index"))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"Not a Tokenizer JSON string (from `Tokenizer.to_json()`): {e}") from None
    tokenizer = Tokenizer(**config)
    tokenizer.word_counts = collections.OrderedDict(word_counts)
    tokenizer.word_docs = collections.defaultdict(int, word_docs)
    tokenizer.index_docs = collections.defaultdict(int, index_docs)
    tokenizer.word_index = word_index
    tokenizer.index_word = index_word
    return tokenizer
