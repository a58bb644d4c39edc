"""Which masks a user layer's `call` with two or three tensor arguments gets.

kerasish follows tf.keras 2 for `mask=` (the first tensor argument's mask) and
Keras 3 for `<name>_mask=` (each argument's own mask); an explicit `mask=`
wins in all three. Keras 3.15 passes no `mask=` at all when a call has several
tensor arguments. The choice and its reasons are in the README ("Design and
conventions"): keras.io examples and tf.keras programs (FNet text generation)
rely on tf.keras's `mask=`, and a Keras 3 layer never gets that argument
implicitly, so its code for it only runs for an explicit mask, which kerasish
passes as Keras 3 does.

tf.keras 2.21's masks are a fixture (tools/fixtures/make_tfkeras_call_masks.py);
Keras 3.15 runs live.
"""

import json
import os

import numpy as np
import pytest
import torch

import kerasish

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "tfkeras_call_masks", "masks.json")


def _layer_classes(k, seen):
    def record(name, **masks):
        seen[name] = dict(masks)

    class Pair(k.layers.Layer):
        def call(self, a, b, mask=None):
            record(self.name, mask=mask)
            return a + b

    class PairKw(k.layers.Layer):
        def call(self, a, b=None, mask=None):
            record(self.name, mask=mask)
            return a + b

    class PairBoth(k.layers.Layer):
        def call(self, a, b, mask=None, b_mask=None):
            record(self.name, mask=mask, b_mask=b_mask)
            return a + b

    class Three(k.layers.Layer):
        def call(self, a, b, c, mask=None):
            record(self.name, mask=mask)
            return a + b + c

    return {"positional": Pair, "keyword": PairKw, "first_unmasked": Pair, "both_args": PairBoth, "three": Three,
            "explicit": Pair}


def _run(k, to_numpy, not_equal, mode, xa, xb):
    seen = {}
    classes = _layer_classes(k, seen)

    def apply(ea, eb, pa, explicit):
        layers = {name: cls(name=name) for name, cls in classes.items()}
        return [layers["positional"](ea, eb), layers["keyword"](ea, b=eb), layers["first_unmasked"](pa, eb),
                layers["both_args"](ea, eb), layers["three"](pa, ea, eb), layers["explicit"](ea, eb, mask=explicit)]

    emb = k.layers.Embedding(10, 2, mask_zero=True)
    plain = k.layers.Embedding(10, 2)
    if mode == "functional":
        tok_a, tok_b = k.Input((4,), dtype="int32"), k.Input((4,), dtype="int32")
        model = k.Model([tok_a, tok_b], apply(emb(tok_a), emb(tok_b), plain(tok_a), not_equal(tok_b, 3)))
        seen.clear()
        model([xa, xb])
    else:
        apply(emb(xa), emb(xb), plain(xa), not_equal(xb, 3))
    return {name: {arg: None if m is None else to_numpy(m).astype(int).tolist() for arg, m in masks.items()}
            for name, masks in seen.items()}


def _ours(mode, xa, xb):
    xa, xb = torch.as_tensor(xa), torch.as_tensor(xb)
    return _run(kerasish, lambda t: t.detach().cpu().numpy(), lambda t, v: t != v, mode, xa, xb)


@pytest.fixture(scope="module")
def tf_keras_masks():
    with open(FIXTURE) as f:
        return json.load(f)


@pytest.mark.parametrize("mode", ["functional", "eager"])
def test_mask_argument_follows_tf_keras_2(tf_keras_masks, mode):
    xa, xb = (np.array(tf_keras_masks[k], "int32") for k in ("xa", "xb"))
    ours = _ours(mode, xa, xb)
    theirs = tf_keras_masks[mode]
    for name in ("positional", "keyword", "first_unmasked", "three", "explicit"):
        assert ours[name]["mask"] == theirs[name]["mask"], name
    assert ours["both_args"]["mask"] == theirs["both_args"]["mask"]


@pytest.mark.parametrize("mode", ["functional", "eager"])
def test_name_mask_arguments_and_explicit_masks_follow_keras_3(keras_ref, mode):
    xa = np.array([[1, 2, 0, 0], [4, 0, 0, 0]], "int32")
    xb = np.array([[3, 0, 0, 0], [5, 6, 7, 0]], "int32")
    ours = _ours(mode, xa, xb)
    theirs = _run(keras_ref, keras_ref.ops.convert_to_numpy, keras_ref.ops.not_equal, mode, xa, xb)
    assert ours["both_args"]["b_mask"] == theirs["both_args"]["b_mask"] == (xb != 0).astype(int).tolist()
    assert ours["explicit"]["mask"] == theirs["explicit"]["mask"] == (xb != 3).astype(int).tolist()
    # the documented difference: Keras 3 passes no implicit `mask=` to a call of several tensors
    for name in ("positional", "keyword", "both_args"):
        assert theirs[name]["mask"] is None
        assert ours[name]["mask"] == (xa != 0).astype(int).tolist()
