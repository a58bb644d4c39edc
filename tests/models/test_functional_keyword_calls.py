"""Functional graphs of layers called with keyword tensors, as Deep Learning
with Python's Transformer is (`TransformerDecoder(target=x, source=encoder_output,
source_mask=source != 0)`): Keras records the call as given (the first argument
too stays a keyword) and walks a node's input tensors in `tree.flatten` order
(keywords sorted), which decides the order of `model.layers`, of
`model.weights` and of `get_weights()`."""

import numpy as np

import kerasish as keras


def _translation_graph(lib):
    lib.utils.clear_session()  # (the weight paths hold auto-named sublayers: counters from zero)
    layers, ops = lib.layers, lib.ops

    class Encoder(lib.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(4)

        def call(self, source, source_mask):
            return self.dense(source) * ops.cast(source_mask[:, :, None], "float32")

    class Decoder(lib.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(4)

        def call(self, target, source, source_mask):
            pooled = ops.sum(source, axis=1, keepdims=True) / ops.sum(
                ops.cast(source_mask, "float32"), axis=1, keepdims=True)[:, :, None]
            return self.dense(target) + pooled

    source = lib.Input(shape=(None,), dtype="int32", name="english")
    x = layers.Embedding(10, 4, name="source_embedding")(source)
    encoder_output = Encoder(name="encoder")(source=x, source_mask=source != 0)
    target = lib.Input(shape=(None,), dtype="int32", name="spanish")
    y = layers.Embedding(10, 4, name="target_embedding")(target)
    y = Decoder(name="decoder")(target=y, source=encoder_output, source_mask=source != 0)
    return lib.Model([source, target], y)


def test_layer_and_weight_order_of_keyword_calls_equal_keras(keras_ref):
    ref, ours = _translation_graph(keras_ref), _translation_graph(keras)
    # (kerasish had the inputs first and the decoder's `target` branch before its `source` one)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in ref.layers] == [
        "english", "source_embedding", "spanish", "encoder", "target_embedding", "decoder"]
    assert [w.path for w in ours.weights] == [w.path for w in ref.weights]
    decoder_inputs = [t.shape for t in ours.get_layer("decoder").input]
    assert decoder_inputs == [tuple(t.shape) for t in ref.get_layer("decoder").input]

    # Keras's weights, in Keras's order, land where they belong; the outputs agree
    ours.set_weights(ref.get_weights())
    data = [np.array([[1, 2, 3, 0], [4, 0, 0, 0]]), np.array([[5, 6, 0], [7, 8, 9]])]
    np.testing.assert_allclose(ours.predict(data, verbose=0), ref.predict(data, verbose=0), rtol=1e-5, atol=1e-6)

    # the config records the keyword call as Keras does, and rebuilds the same graph
    node = ours.get_config()["layers"][-1]["inbound_nodes"][0]
    assert len(node["args"]) == 0 and sorted(node["kwargs"]) == ["source", "source_mask", "target"]
    clone = keras.Model.from_config(ours.get_config(), custom_objects={
        "Encoder": type(ours.get_layer("encoder")), "Decoder": type(ours.get_layer("decoder"))})
    assert [layer.name for layer in clone.layers] == [layer.name for layer in ours.layers]
