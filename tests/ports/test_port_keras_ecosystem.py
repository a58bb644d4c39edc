"""Keras ecosystem code on kerasish: KerasHub layers and backbones, KerasTuner,
tensorflow_docs' training helpers.

(a) KerasHub 0.32.0's modeling layers and its GPT-2 / BERT backbones, vendored
unedited under tests/fixtures/thirdparty/keras_hub/ (README there), are loaded
twice in this process by keras_hub_loader.py: once over real Keras 3 (torch
backend) and once with `keras` renamed to `kerasish` -- the port a user makes.
Each model is built in both from the same weights (Keras's `get_weights()`
into kerasish's `set_weights()`) and compared: outputs, Keras masks,
gradients of every trainable weight, a few `fit` steps, configs, and `.keras`
files saved by one and loaded by the other.

(b) KerasTuner and tensorflow_docs import real Keras; they are exercised with
kerasish models when installed and skip with the reason otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import zipfile

import numpy as np
import pytest
import torch

import kerasish

HERE = os.path.dirname(os.path.abspath(__file__))
_LOADER_PATH = os.path.join(HERE, "..", "fixtures", "thirdparty", "keras_hub_loader.py")

# Forward outputs in float32 through a few attention blocks; gradients and fit
# sum over batches (reduction order differs between the two code paths).
FWD = dict(rtol=1e-5, atol=2e-6)
GRAD = dict(rtol=1e-4, atol=1e-5)
FIT = dict(rtol=2e-4, atol=2e-5)

_MODULES = {
    "TransformerEncoder": "layers.modeling.transformer_encoder",
    "TransformerDecoder": "layers.modeling.transformer_decoder",
    "PositionEmbedding": "layers.modeling.position_embedding",
    "SinePositionEncoding": "layers.modeling.sine_position_encoding",
    "RotaryEmbedding": "layers.modeling.rotary_embedding",
    "ReversibleEmbedding": "layers.modeling.reversible_embedding",
    "TokenAndPositionEmbedding": "layers.modeling.token_and_position_embedding",
    "CachedMultiHeadAttention": "layers.modeling.cached_multi_head_attention",
    "MaskedLMHead": "layers.modeling.masked_lm_head",
    "AlibiBias": "layers.modeling.alibi_bias",
    "FNetEncoder": "layers.modeling.f_net_encoder",
    "GPT2Backbone": "models.gpt2.gpt2_backbone",
    "BertBackbone": "models.bert.bert_backbone",
}


def _loader():
    spec = importlib.util.spec_from_file_location("keras_hub_loader", _LOADER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Hub:
    """The vendored KerasHub classes over one Keras (`flavor`)."""

    def __init__(self, flavor):
        loader = _loader()
        for name, module in _MODULES.items():
            setattr(self, name, getattr(loader.load(flavor, "src." + module), name))


@pytest.fixture(scope="module")
def hubs(keras_ref):
    return {"keras": (keras_ref, _Hub("keras")), "kerasish": (kerasish, _Hub("kerasish"))}


# ---------------------------------------------------------------- the models

B, T, V, D = 4, 6, 20, 8
_rng = np.random.default_rng(7)
_IDS = _rng.integers(1, V, size=(B, T)).astype("int32")
_IDS[0, 4:] = 0  # padding: TokenAndPositionEmbedding(mask_zero=True) masks it
_IDS[2, 3:] = 0
_FLOATS = _rng.normal(size=(B, T, D)).astype("float32")
_ENC = _rng.normal(size=(B, 5, D)).astype("float32")


def _encoder(keras, hub):
    ids = keras.Input((T,), dtype="int32")
    x = hub.TokenAndPositionEmbedding(V, T, D, mask_zero=True)(ids)
    x = hub.TransformerEncoder(16, 2)(x)
    x = hub.TransformerEncoder(16, 2, normalize_first=True, activation="gelu")(x)
    return keras.Model(ids, keras.layers.Dense(3)(x)), [_IDS], _rng.normal(size=(B, T, 3)).astype("float32"), "mse"


def _decoder(keras, hub):
    ids = keras.Input((T,), dtype="int32")
    enc = keras.Input((5, D))
    x = hub.TokenAndPositionEmbedding(V, T, D, mask_zero=True)(ids)
    x = hub.TransformerDecoder(16, 2)(x, enc)
    x = hub.TransformerDecoder(16, 2, normalize_first=True)(x)
    y = _rng.integers(0, V, size=(B, T))
    return keras.Model([ids, enc], keras.layers.Dense(V)(x)), [_IDS, _ENC], y, "sparse_categorical_crossentropy"


def _positional(keras, hub):
    inp = keras.Input((T, D))
    x = inp + hub.PositionEmbedding(T)(inp) + hub.SinePositionEncoding()(inp)
    x = hub.RotaryEmbedding(max_wavelength=100, scaling_factor=2.0)(x)
    x = hub.FNetEncoder(16)(x)
    heads = keras.layers.Reshape((T, 2, 4))(x)
    scores = keras.ops.einsum("bqhd,bkhd->bhqk", heads, heads)
    scores = hub.AlibiBias()(scores)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(scores))
    return keras.Model(inp, out), [_FLOATS], _rng.normal(size=(B, 2)).astype("float32"), "mse"


def _mlm(keras, hub):
    ids = keras.Input((T,), dtype="int32")
    positions = keras.Input((2,), dtype="int32")
    emb = hub.ReversibleEmbedding(V, D)
    x = emb(ids)
    x = hub.CachedMultiHeadAttention(num_heads=2, key_dim=4)(x, x)
    out = hub.MaskedLMHead(token_embedding=emb, activation="softmax")(x, mask_positions=positions)
    pos = np.array([[0, 3], [1, 2], [5, 0], [4, 4]], dtype="int32")
    y = _rng.integers(0, V, size=(B, 2))
    return keras.Model([ids, positions], out), [_IDS, pos], y, "sparse_categorical_crossentropy"


_BACKBONE = dict(vocabulary_size=V, num_layers=2, num_heads=2, hidden_dim=D, intermediate_dim=16,
                 max_sequence_length=T, dropout=0.0)
_PADDING = (_IDS != 0).astype("int32")


def _gpt2(keras, hub):
    model = hub.GPT2Backbone(**_BACKBONE)
    x = {"token_ids": _IDS, "padding_mask": _PADDING}
    return model, [x], _rng.normal(size=(B, T, D)).astype("float32"), "mse"


def _bert(keras, hub):
    model = hub.BertBackbone(num_segments=2, **_BACKBONE)
    segments = np.zeros_like(_IDS)
    segments[:, 3:] = 1
    x = {"token_ids": _IDS, "segment_ids": segments, "padding_mask": _PADDING}
    y = {"sequence_output": _rng.normal(size=(B, T, D)).astype("float32"),
         "pooled_output": _rng.normal(size=(B, D)).astype("float32")}
    return model, [x], y, "mse"


CASES = {"encoder": _encoder, "decoder": _decoder, "positional": _positional, "mlm": _mlm,
         "gpt2": _gpt2, "bert": _bert}


def _pair(hubs, case):
    """The case's model in Keras and in kerasish, kerasish holding Keras's weights."""
    keras, hub = hubs["keras"]
    keras.utils.set_random_seed(1)
    ref, inputs, y, loss = CASES[case](keras, hub)
    ours, _, _, _ = CASES[case](*hubs["kerasish"])
    ref_shapes = [tuple(w.shape) for w in ref.weights]
    assert [tuple(w.shape) for w in ours.weights] == ref_shapes
    assert [w.name for w in ours.weights] == [w.name for w in ref.weights]
    ours.set_weights(ref.get_weights())
    return ref, ours, inputs, y, loss


def _np(x):
    if isinstance(x, dict):
        return {k: _np(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_np(v) for v in x]
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _flat(x):
    if isinstance(x, dict):
        return [v for k in sorted(x) for v in _flat(x[k])]
    if isinstance(x, (list, tuple)):
        return [v for item in x for v in _flat(item)]
    return [x]


def _call(model, inputs, keras):
    tensors = [{k: keras.ops.convert_to_tensor(v) for k, v in x.items()} if isinstance(x, dict)
               else keras.ops.convert_to_tensor(x) for x in inputs]
    return model(tensors[0] if len(tensors) == 1 else tensors)


def _grad(weight):
    return getattr(weight, "value", weight).grad


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_masks_gradients(hubs, case):
    ref, ours, inputs, _, _ = _pair(hubs, case)
    out_ref, out_ours = _call(ref, inputs, hubs["keras"][0]), _call(ours, inputs, kerasish)
    flat_ref, flat_ours = _flat(out_ref), _flat(out_ours)
    assert len(flat_ref) == len(flat_ours)
    weights = np.random.default_rng(3)
    loss_ref, loss_ours = 0.0, 0.0
    for a, b in zip(flat_ref, flat_ours):
        np.testing.assert_allclose(_np(b), _np(a), **FWD)
        mask_ref, mask_ours = getattr(a, "_keras_mask", None), getattr(b, "_keras_mask", None)
        assert (mask_ref is None) == (mask_ours is None), case
        if mask_ref is not None:
            np.testing.assert_array_equal(_np(mask_ours), _np(mask_ref))
        c = torch.as_tensor(weights.normal(size=tuple(a.shape)).astype("float32"))
        loss_ref = loss_ref + (a * c).sum()
        loss_ours = loss_ours + (b * c).sum()
    loss_ref.backward()
    loss_ours.backward()
    for w_ref, w_ours in zip(ref.trainable_weights, ours.trainable_weights):
        g_ref, g_ours = _grad(w_ref), _grad(w_ours)
        assert (g_ref is None) == (g_ours is None), w_ref.path
        if g_ref is not None:
            np.testing.assert_allclose(_np(g_ours), _np(g_ref), err_msg=w_ref.path, **GRAD)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_steps(hubs, case):
    ref, ours, inputs, y, loss = _pair(hubs, case)
    keras = hubs["keras"][0]
    x = inputs[0] if len(inputs) == 1 else inputs
    # SGD, not Adam: an attention key bias has a zero gradient in exact arithmetic (softmax is
    # shift-invariant), and Adam scales float32 round-off there up to learning-rate-sized steps
    ref.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    ours.compile(optimizer=kerasish.optimizers.SGD(0.1), loss=loss)
    h_ref = ref.fit(x, y, batch_size=2, epochs=2, shuffle=False, verbose=0).history
    h_ours = ours.fit(x, y, batch_size=2, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h_ours["loss"], h_ref["loss"], **FIT)
    for w_ref, w_ours in zip(ref.weights, ours.weights):
        np.testing.assert_allclose(_np(w_ours.value), _np(w_ref.value), err_msg=w_ref.path, **FIT)


def _hub_layers(model):
    return [layer for layer in model._flatten_layers(include_self=False) if "_kh_" in type(layer).__module__]


def _as_keras_hub(config):
    """A config with the loader's package names (`_kh_keras.src...`, `_kh_kerasish.src...`) read as
    `keras_hub.src...`, the module both copies have in a real install; tuples as JSON lists."""
    text = json.dumps(config, default=str).replace('"_kh_kerasish.', '"keras_hub.').replace('"_kh_keras.', '"keras_hub.')
    return _without_layer_names(json.loads(text))


def _without_layer_names(config):
    """Nested layer configs without their automatic names (`reversible_embedding_3`: a counter of
    the layers made so far, which differs between the two libraries within one test session)."""
    if isinstance(config, list):
        return [_without_layer_names(v) for v in config]
    if not isinstance(config, dict):
        return config
    return {k: _without_layer_names(v) for k, v in config.items() if not (k == "name" and "trainable" in config)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_configs_match_and_round_trip(hubs, case):
    ref, ours, inputs, _, _ = _pair(hubs, case)
    hub_ref, hub_ours = _hub_layers(ref), _hub_layers(ours)
    assert [type(la).__name__ for la in hub_ours] == [type(la).__name__ for la in hub_ref]
    for a, b in zip(hub_ref, hub_ours):
        config_ref, config_ours = _as_keras_hub(a.get_config()), _as_keras_hub(b.get_config())
        assert config_ours == config_ref, type(a).__name__
    from kerasish.saving.serialization_lib import ObjectSharingScope

    # (in an object-sharing scope, as `.keras` saving and loading do: MaskedLMHead's config holds the
    # model's own ReversibleEmbedding, one object again after the round trip; Keras needs the same)
    with ObjectSharingScope():
        config = kerasish.saving.serialize_keras_object(ours)
    with ObjectSharingScope():
        clone = kerasish.saving.deserialize_keras_object(config)
    clone.set_weights(ours.get_weights())
    for a, b in zip(_flat(_call(clone, inputs, kerasish)), _flat(_call(ours, inputs, kerasish))):
        np.testing.assert_array_equal(_np(a), _np(b))


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_files_both_ways(hubs, case, tmp_path):
    keras = hubs["keras"][0]
    ref, ours, inputs, _, _ = _pair(hubs, case)
    expected = _flat(_call(ref, inputs, keras))
    ref.save(tmp_path / "keras.keras")
    loaded = kerasish.saving.load_model(tmp_path / "keras.keras")
    assert type(loaded).__name__ == type(ref).__name__
    for a, b in zip(expected, _flat(_call(loaded, inputs, kerasish))):
        np.testing.assert_allclose(_np(b), _np(a), **FWD)
    ours.save(tmp_path / "kerasish.keras")
    back = keras.saving.load_model(tmp_path / "kerasish.keras")
    for a, b in zip(expected, _flat(_call(back, inputs, keras))):
        np.testing.assert_allclose(_np(b), _np(a), **FWD)


def test_decoder_cached_generation(hubs):
    """TransformerDecoder's KV cache (CachedMultiHeadAttention): token-by-token
    decoding matches Keras step by step and the uncached full sequence."""
    keras, hub_k = hubs["keras"]
    _, hub_o = hubs["kerasish"]
    ref, ours = hub_k.TransformerDecoder(16, 2), hub_o.TransformerDecoder(16, 2)
    x = _FLOATS
    ref(keras.ops.convert_to_tensor(x))
    ours(torch.as_tensor(x))
    ours.set_weights(ref.get_weights())
    full = _np(ours(torch.as_tensor(x)))
    np.testing.assert_allclose(full, _np(ref(keras.ops.convert_to_tensor(x))), **FWD)
    head_dim = D // 2
    cache_ref = keras.ops.zeros((B, 2, T, 2, head_dim))
    cache_ours = torch.zeros((B, 2, T, 2, head_dim))
    for i in range(T):
        step = x[:, i:i + 1]
        out_ref, cache_ref = ref(keras.ops.convert_to_tensor(step), self_attention_cache=cache_ref,
                                 self_attention_cache_update_index=i)
        out_ours, cache_ours = ours(torch.as_tensor(step), self_attention_cache=cache_ours,
                                    self_attention_cache_update_index=i)
        np.testing.assert_allclose(_np(out_ours), _np(out_ref), **FWD)
        np.testing.assert_allclose(_np(cache_ours), _np(cache_ref), **FWD)
        np.testing.assert_allclose(_np(out_ours)[:, 0], full[:, i], **FWD)


# ------------------------------------------- kerasish fixes the port needed
# (each compared with real Keras on a small user-written layer, no KerasHub needed)


def _block_class(keras):
    class Block(keras.layers.Layer):
        """keras.io's Transformer block habit: a residual around MultiHeadAttention(x, x)."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True
            self.attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)

        def call(self, x):
            return x + self.attention(x, x)

    return Block


def test_output_mask_is_the_input_mask_before_the_call(keras_ref):
    """Keras reads a layer's input mask before `call`; MultiHeadAttention
    takes the masks off its query / value tensors, so kerasish, reading it
    after, lost the mask of any layer wrapping one: the next block attended
    to the padding (every padded row differed from Keras)."""
    outs, masks, weights = [], [], None
    for keras in (keras_ref, kerasish):
        block = _block_class(keras)
        ids = keras.Input((T,), dtype="int32")
        x = keras.layers.Embedding(V, D, mask_zero=True)(ids)
        model = keras.Model(ids, block()(block()(x)))
        if weights is None:
            weights = model.get_weights()
        else:
            model.set_weights(weights)
        out = model(keras.ops.convert_to_tensor(_IDS))
        outs.append(_np(out))
        masks.append(getattr(out, "_keras_mask", None))
    assert masks[0] is not None and masks[1] is not None
    np.testing.assert_array_equal(_np(masks[1]), _IDS != 0)
    np.testing.assert_array_equal(_np(masks[1]), _np(masks[0]))
    np.testing.assert_allclose(outs[1], outs[0], **FWD)


def test_a_mask_the_call_put_on_its_output_stays(keras_ref):
    """Keras's `_set_mask_metadata` leaves alone an output the layer's `call`
    gave a mask (KerasHub's TokenAndPositionEmbedding sets its own); kerasish
    overwrote it with the input mask (or `compute_mask`'s), silently."""
    ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0]], dtype="int32")
    masks = []
    for keras in (keras_ref, kerasish):
        class AllVisible(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.supports_masking = True

            def call(self, inputs):
                out = inputs * 2.0
                # (what Keras's `set_keras_mask` does on the torch backend)
                out._keras_mask = keras.ops.ones(keras.ops.shape(inputs)[:2], dtype="bool")
                return out

        class OwnComputeMask(AllVisible):
            def compute_mask(self, inputs, mask=None):
                return None if mask is None else keras.ops.logical_not(mask)

        got = []
        for cls in (AllVisible, OwnComputeMask):
            x = keras.layers.Embedding(5, 2, mask_zero=True)(keras.ops.convert_to_tensor(ids))
            got.append(_np(cls()(x)._keras_mask))
            inp = keras.Input((4,), dtype="int32")
            model = keras.Model(inp, cls()(keras.layers.Embedding(5, 2, mask_zero=True)(inp)))
            got.append(_np(model(keras.ops.convert_to_tensor(ids))._keras_mask))
        masks.append(got)
    for a, b in zip(masks[0], masks[1]):
        np.testing.assert_array_equal(b, a)
        assert b.all()


def _two_input_class(keras, seen):
    class TwoShapes(keras.layers.Layer):
        def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
            seen.append((tuple(decoder_sequence_shape),
                         None if encoder_sequence_shape is None else tuple(encoder_sequence_shape)))
            self.w = self.add_weight(shape=(decoder_sequence_shape[-1], 2))
            self.v = None if encoder_sequence_shape is None else self.add_weight(
                shape=(encoder_sequence_shape[-1], 2))

        def call(self, decoder_sequence, encoder_sequence=None):
            y = keras.ops.matmul(decoder_sequence, self.w)
            if encoder_sequence is not None:
                y = y + keras.ops.mean(keras.ops.matmul(encoder_sequence, self.v), axis=1, keepdims=True)
            return y

    return TwoShapes


@pytest.mark.parametrize("symbolic", [False, True])
def test_build_gets_the_shape_of_every_call_tensor(keras_ref, symbolic):
    """Keras 3 builds `build(self, decoder_sequence_shape,
    encoder_sequence_shape=None)` with each call argument's shape, by name;
    kerasish passed the first shape only (KerasHub's TransformerDecoder then
    had no cross-attention and refused its encoder input)."""
    results = []
    for keras in (keras_ref, kerasish):
        seen = []
        layer = _two_input_class(keras, seen)()
        if symbolic:
            layer(keras.Input((T, D)), keras.Input((5, 3)))
        else:
            layer(keras.ops.convert_to_tensor(_FLOATS), encoder_sequence=keras.ops.convert_to_tensor(_ENC[..., :3]))
        results.append((seen, len(layer.weights), layer.get_build_config()))
    assert results[1] == results[0]
    assert results[1][1] == 2


def test_multi_head_attention_subclass_override_points(keras_ref):
    """`_compute_attention` is Keras's override point of MultiHeadAttention
    ("users can override this function for customized attention"), as are
    `_masked_softmax` and `_compute_attention_mask`: kerasish never called a
    subclass's own (silently ordinary attention), and a subclass with its own
    `call` found no `_compute_attention` at all."""
    outs, weights = [], {}
    for keras in (keras_ref, kerasish):
        class Temperature(keras.layers.MultiHeadAttention):
            def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                                   return_attention_scores=False, use_causal_mask=False):
                return super()._compute_attention(query * 3.0, key, value, attention_mask, training,
                                                  return_attention_scores, use_causal_mask)

        class OwnCall(keras.layers.MultiHeadAttention):
            def call(self, query, value, key=None, attention_mask=None):
                out, scores = self._compute_attention(
                    self._query_dense(query), self._key_dense(value), self._value_dense(value),
                    attention_mask=attention_mask, return_attention_scores=True)
                return self._output_dense(out), scores

        class HalfScores(keras.layers.MultiHeadAttention):
            def _masked_softmax(self, attention_scores, attention_mask=None):
                return super()._masked_softmax(attention_scores * 0.5, attention_mask)

        class Banded(keras.layers.MultiHeadAttention):
            convert = staticmethod(keras.ops.convert_to_tensor)

            def _compute_attention_mask(self, query, value, query_mask=None, value_mask=None, key_mask=None,
                                        attention_mask=None, use_causal_mask=False):
                band = np.abs(np.arange(T)[:, None] - np.arange(T)[None, :]) <= 1
                return self.convert(np.broadcast_to(band, (B, T, T)))

        q = keras.ops.convert_to_tensor(_FLOATS)
        mask = keras.ops.convert_to_tensor(np.tril(np.ones((B, T, T), dtype=bool)))
        results = []
        for cls, kwargs in ((Temperature, {"attention_mask": mask}), (Temperature, {"use_causal_mask": True}),
                            (OwnCall, {"attention_mask": mask}),
                            (HalfScores, {"attention_mask": mask, "return_attention_scores": True}),
                            (Banded, {})):
            layer = cls(num_heads=2, key_dim=4)
            layer(q, q)
            if cls.__name__ in weights:
                layer.set_weights(weights[cls.__name__])
            else:
                weights[cls.__name__] = layer.get_weights()
            results.append(layer(q, q, **kwargs))
        outs.append(_np(_flat(results)))
    for a, b in zip(outs[0], outs[1]):
        np.testing.assert_allclose(b, a, **FWD)


def _tied_model(keras):
    @keras.saving.register_keras_serializable(package="kerasish_tests")
    class TiedHead(keras.layers.Layer):
        """Projects back onto the vocabulary with an Embedding layer it holds (KerasHub's
        MaskedLMHead(token_embedding=...) pattern): its config carries that layer's config."""

        def __init__(self, token_embedding, **kwargs):
            super().__init__(**kwargs)
            self.token_embedding = token_embedding

        def call(self, x):
            return keras.ops.matmul(x, keras.ops.transpose(self.token_embedding.embeddings))

        def get_config(self):
            return {**super().get_config(), "token_embedding": keras.layers.serialize(self.token_embedding)}

        @classmethod
        def from_config(cls, config):
            config = dict(config, token_embedding=keras.layers.deserialize(config["token_embedding"]))
            return cls(**config)

    ids = keras.Input((T,), dtype="int32")
    embedding = keras.layers.Embedding(V, D)
    return keras.Model(ids, TiedHead(embedding)(embedding(ids)))


def test_shared_object_ids_tie_layers_across_keras_files(keras_ref, tmp_path):
    """Keras writes a layer met twice in a model's config (the model's
    Embedding, and the config of a head that holds it) with one
    `shared_object_id`, and loading gives both places one object. kerasish
    wrote no ids, so its files loaded in Keras with a second, untied
    Embedding, and Keras's files did not load in kerasish."""
    keras = keras_ref
    ref, ours = _tied_model(keras), _tied_model(kerasish)
    ours.set_weights(ref.get_weights())
    expected = _np(ref(keras.ops.convert_to_tensor(_IDS)))
    ref.save(tmp_path / "keras.keras")
    ours.save(tmp_path / "kerasish.keras")
    with zipfile.ZipFile(tmp_path / "kerasish.keras") as zf:
        assert zf.read("config.json").decode().count('"shared_object_id"') >= 2
    for loaded, lib in ((kerasish.saving.load_model(tmp_path / "keras.keras"), kerasish),
                        (kerasish.saving.load_model(tmp_path / "kerasish.keras"), kerasish),
                        (keras.saving.load_model(tmp_path / "kerasish.keras"), keras)):
        assert loaded.layers[-1].token_embedding is loaded.layers[1]
        np.testing.assert_allclose(_np(loaded(lib.ops.convert_to_tensor(_IDS))), expected, **FWD)


# ------------------------------------------------------------------ (b)
_X = np.random.default_rng(11).normal(size=(64, 4)).astype("float32")
_Y = (_X.sum(axis=1, keepdims=True) > 0).astype("float32")


def _classifier(units=4, lr=0.05):
    model = kerasish.Sequential([kerasish.Input((4,)), kerasish.layers.Dense(units, activation="relu"),
                                 kerasish.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=kerasish.optimizers.SGD(lr), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def test_callbacks_written_for_real_keras_run_in_kerasish_fit(keras_ref, tmp_path):
    """Keras calls whatever callbacks it is given (duck typing); kerasish
    refused any that was not a kerasish Callback, so callbacks of the keras
    package (KerasTuner's, EarlyStopping, CSVLogger, users' own) could not be
    passed to kerasish's fit."""
    keras = keras_ref
    seen = []

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, dict(logs), self.model, dict(self.params)))

    model = _classifier()
    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1)  # stops after epoch 1
    csv = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    history = model.fit(_X, _Y, epochs=5, batch_size=32, verbose=0, validation_data=(_X, _Y),
                        callbacks=[Recorder(), stop, csv])
    assert history.epoch == [0, 1] and stop.stopped_epoch == 1
    assert [s[0] for s in seen] == [0, 1] and all(s[2] is model for s in seen)
    assert seen[0][3] == {"verbose": 0, "epochs": 5, "steps": 2}
    for epoch, logs, _, _ in seen:
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert logs[key] == pytest.approx(history.history[key][epoch], rel=1e-6)
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "epoch,accuracy,loss,val_accuracy,val_loss" and len(rows) == 3
    with pytest.raises(TypeError, match="no set_model"):
        model.fit(_X, _Y, epochs=1, verbose=0, callbacks=[object()])


def test_keras_tuner_search_with_kerasish_models(tmp_path):
    """KerasTuner imports real Keras. Its `Tuner.run_trial` checks
    `isinstance(model, keras.Model)` (keras_tuner/src/engine/tuner.py,
    `_try_build`), against the keras package, and `get_best_models` /
    `load_model` go through the same check: a build function returning a
    kerasish model fails there with FatalTypeError, and kerasish cannot pass
    that check. KerasTuner's own extension point, a `run_trial` override
    returning the objective (its "tune any function" guide), works: the
    oracle, trials and best hyperparameters are KerasTuner's; the model and
    fit are kerasish's."""
    keras_tuner = pytest.importorskip("keras_tuner", reason="needs keras-tuner (pip install keras-tuner)")

    def build(hp):
        return _classifier(units=hp.Int("units", 2, 8, step=2), lr=hp.Choice("lr", [0.05, 0.5]))

    tuner = keras_tuner.RandomSearch(build, objective="val_accuracy", max_trials=1, directory=str(tmp_path),
                                     project_name="plain", seed=3)
    with pytest.raises(keras_tuner.errors.FatalTypeError, match="valid Keras Model"):
        tuner.search(_X, _Y, epochs=1, validation_data=(_X, _Y), verbose=0)

    class KerasishSearch(keras_tuner.RandomSearch):
        def run_trial(self, trial, x, y, validation_data, **kwargs):
            kerasish.utils.set_random_seed(0)
            model = self.hypermodel.build(trial.hyperparameters)
            history = model.fit(x, y, validation_data=validation_data, verbose=0, **kwargs)
            return {"val_accuracy": history.history["val_accuracy"][-1]}

    tuner = KerasishSearch(build, objective="val_accuracy", max_trials=3, directory=str(tmp_path),
                           project_name="run_trial", seed=3)
    tuner.search(_X, _Y, epochs=2, batch_size=16, validation_data=(_X, _Y))
    trials = tuner.oracle.get_best_trials(3)
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    best = tuner.get_best_hyperparameters(1)[0]
    assert trials[0].hyperparameters.values == best.values
    scores = [t.score for t in trials]
    assert scores == sorted(scores, reverse=True)
    # the best trial's score is what kerasish's fit gives for those hyperparameters
    kerasish.utils.set_random_seed(0)
    history = build(best).fit(_X, _Y, epochs=2, batch_size=16, validation_data=(_X, _Y), verbose=0)
    assert history.history["val_accuracy"][-1] == pytest.approx(scores[0], rel=1e-6)


def test_tensorflow_docs_history_plotter_reads_kerasish_history():
    """tensorflow_docs.plots.HistoryPlotter reads `history.history` and
    `history.epoch` (matplotlib only). tensorflow_docs.modeling's EpochDots
    subclasses `tf.keras.callbacks.Callback`: importing it needs TensorFlow,
    which kerasish never installs; where TensorFlow is present it is an
    ordinary Keras-interface callback, which kerasish's fit accepts."""
    pytest.importorskip("matplotlib", reason="HistoryPlotter draws with matplotlib")
    plots = pytest.importorskip("tensorflow_docs.plots", reason="needs tensorflow-docs (pip install tensorflow-docs)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    histories = {}
    for name, units in (("small", 2), ("large", 8)):
        kerasish.utils.set_random_seed(1)
        histories[name] = _classifier(units).fit(_X, _Y, epochs=3, verbose=0, validation_data=(_X, _Y))
    plt.figure()
    plots.HistoryPlotter(metric="loss").plot(histories)
    lines = plt.gca().get_lines()
    assert [line.get_label() for line in lines] == ["Small Train", "Small Val", "Large Train", "Large Val"]
    np.testing.assert_array_equal(lines[0].get_xdata(), [0, 1, 2])
    np.testing.assert_allclose(lines[1].get_ydata(), histories["small"].history["val_loss"])
    plt.close("all")


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_gpt2_backbone_under_mixed_precision(hubs, policy):
    """The GPT-2 backbone under a global mixed policy: the same output dtype
    as Keras and the same numbers within the low-precision rounding (bf16 has
    8 mantissa bits: rtol 1e-2; equal in practice on CPU)."""
    keras = hubs["keras"][0]
    keras.config.set_dtype_policy(policy)
    kerasish.config.set_dtype_policy(policy)
    try:
        ref, ours, inputs, _, _ = _pair(hubs, "gpt2")
        a, b = _call(ref, inputs, keras), _call(ours, inputs, kerasish)
    finally:
        keras.config.set_dtype_policy("float32")
        kerasish.config.set_dtype_policy("float32")
    assert b.dtype == a.dtype == getattr(torch, policy.split("_")[1])
    np.testing.assert_allclose(b.detach().float().numpy(), a.detach().float().numpy(), rtol=1e-2, atol=1e-2)
