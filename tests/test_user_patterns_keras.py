"""Programs Keras users port to kerasish, run side by side with real Keras 3
(same weights, shuffle=False)."""

import numpy as np

import kerasish


def _gan_style_model(K, seen):
    class Probe(K.layers.Layer):
        def call(self, x, training=None):
            seen.append(training)
            return x

    class Trainer(K.Model):
        def __init__(self):
            super().__init__()
            self.aux = K.Sequential([K.layers.Dense(4), K.layers.BatchNormalization(), K.layers.Dropout(0.5)])
            self.probe = Probe()
            self.head = K.layers.Dense(1)

        def call(self, x, training=None):
            return self.head(x)

        def train_step(self, data):
            x, y = data
            aux_out = self.aux(x)  # called directly, no training= (a GAN's generator in keras.io examples)
            self.probe(x)
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            self.zero_grad()
            loss.backward()
            self.optimizer.apply([v.value.grad for v in self.trainable_weights], self.trainable_weights)
            return {"loss": loss, "aux_sum": K.ops.sum(aux_out)}

    return Trainer()


def test_layers_called_directly_in_train_step_get_their_call_default(keras_ref, rng):
    # fit's own train() made every layer "set" to training: a sub-model called
    # in train_step without training= ran BatchNormalization on batch
    # statistics (updating its moving mean) and Dropout, where Keras 3 runs
    # them in inference mode.
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    seen = {"ours": [], "theirs": []}
    results = {}
    for K, tag in ((kerasish, "ours"), (keras_ref, "theirs")):
        model = _gan_style_model(K, seen[tag])
        model(x[:2])
        model.aux(x[:2])
        results[tag] = model
    results["ours"].set_weights(results["theirs"].get_weights())
    hists = {}
    for K, tag in ((kerasish, "ours"), (keras_ref, "theirs")):
        model = results[tag]
        model.compile(K.optimizers.SGD(0.1), "mse")
        seen[tag].clear()
        hists[tag] = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    assert seen["ours"] == seen["theirs"] == [None] * 4
    np.testing.assert_allclose(hists["ours"]["aux_sum"], hists["theirs"]["aux_sum"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(hists["ours"]["loss"], hists["theirs"]["loss"], rtol=1e-5)
    ours_bn, theirs_bn = results["ours"].aux.layers[1], results["theirs"].aux.layers[1]
    np.testing.assert_array_equal(ours_bn.moving_mean.numpy(), theirs_bn.moving_mean.numpy())
    np.testing.assert_array_equal(ours_bn.moving_mean.numpy(), np.zeros(4, "float32"))


def test_callback_calling_a_layer_during_fit_gets_its_call_default(keras_ref, rng):
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 4)).astype("float32")
    probe = rng.normal(size=(8, 4)).astype("float32")
    outputs = {}
    for K, tag in ((kerasish, "ours"), (keras_ref, "theirs")):
        model = K.Sequential([K.Input((4,)), K.layers.Dropout(0.5, seed=1), K.layers.Dense(4)])
        got = outputs.setdefault(tag, [])

        class Peek(K.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                out = self.model.layers[0](probe)
                got.append(K.ops.convert_to_numpy(out))

        model.compile("sgd", "mse")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[Peek()])
    assert len(outputs["ours"]) == len(outputs["theirs"]) == 2
    for ours, theirs in zip(outputs["ours"], outputs["theirs"]):
        np.testing.assert_array_equal(theirs, probe)  # Keras: Dropout's default is inference
        np.testing.assert_array_equal(ours, theirs)


def test_bfloat16_weights_and_predictions_move_both_ways(keras_ref, rng):
    # kerasish's get_weights()/predict()/variable.numpy() raised torch's
    # "unsupported ScalarType BFloat16" on a bfloat16 model, and set_weights
    # refused the ml_dtypes.bfloat16 arrays Keras's get_weights() returns
    x = rng.normal(size=(6, 3)).astype("float32")

    def build(K):
        return K.Sequential([K.Input((3,)), K.layers.Dense(4, activation="relu", dtype="bfloat16"),
                             K.layers.Dense(2, dtype="bfloat16")])

    ref, ours = build(keras_ref), build(kerasish)
    theirs_w = ref.get_weights()
    ours.set_weights(theirs_w)
    ours_w = ours.get_weights()
    assert [w.dtype for w in ours_w] == [w.dtype for w in theirs_w]
    for a, b in zip(ours_w, theirs_w):
        np.testing.assert_array_equal(a.view(np.uint16), b.view(np.uint16))  # bit-exact
    want, got = ref.predict(x, verbose=0), ours.predict(x, verbose=0)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got.astype("float32"), want.astype("float32"), rtol=1e-2, atol=1e-2)
    back = build(keras_ref)
    back.set_weights(ours_w)
    np.testing.assert_array_equal(back.predict(x, verbose=0).view(np.uint16), want.view(np.uint16))
    kernel = ours.layers[0].kernel
    kernel.assign(theirs_w[0] * 2)
    np.testing.assert_array_equal(kernel.numpy().astype("float32"), theirs_w[0].astype("float32") * 2)
    np.testing.assert_array_equal(kerasish.ops.convert_to_numpy(kernel).view(np.uint16),
                                  keras_ref.ops.convert_to_numpy(ref.layers[0].kernel * 2).view(np.uint16))


def test_weights_made_in_init_carry_the_layer_path(keras_ref):
    # add_weight in __init__ gave the path "early" where Keras 3 gives
    # "blk/early" (paths are what var_names in exclude_from_weight_decay match)
    def build(K):
        class Block(K.layers.Layer):
            def __init__(self, **kw):
                super().__init__(**kw)
                self.early = self.add_weight(shape=(2,), initializer="ones", name="early")
                self.inner = K.layers.Dense(2, name="proj")

            def build(self, shape):
                self.inner.build(shape)
                self.late = self.add_weight(shape=(2,), initializer="ones", name="late")

            def call(self, x):
                return self.inner(x) * self.early * self.late

        layer = Block(name="blk")
        layer(np.ones((1, 2), "float32"))
        return sorted(w.path for w in layer.weights)

    assert build(kerasish) == build(keras_ref) == ["blk/early", "blk/late", "blk/proj/bias", "blk/proj/kernel"]
