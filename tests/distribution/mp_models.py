"""Models and layouts shared by `mp_worker.py` (each rank) and
`test_model_parallel.py` (the single-process reference)."""

import torch

import kerasish as keras


def mlp():
    inp = keras.Input((5,))
    h = keras.layers.Dense(16, activation="relu", name="col")(inp)
    h = keras.layers.Dense(8, activation="tanh", name="row", kernel_regularizer=keras.regularizers.L2(0.01))(h)
    return keras.Model(inp, keras.layers.Dense(3, name="out")(h), name="mlp")


def mlp_layout(mesh):
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*col/kernel"] = (None, "model")  # Keras (in, out): output units sharded, column parallel
    layout_map[".*row/kernel"] = ("model", None)  # input units sharded, row parallel
    return layout_map  # "col/bias" and "out" match nothing: replicated


def fsdp_layout(mesh):
    """Kernels sharded along the batch axis (FSDP / ZeRO-3, as Keras lays
    weights out on "batch" of a `(n, 1)` ["batch", "model"] mesh)."""
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*col/kernel"] = (None, "batch")
    layout_map[".*row/kernel"] = ("batch", None)
    return layout_map


def compile_mlp(model):
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])


def cnn(synchronized=False):
    inp = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv2d")(inp)
    h = keras.layers.BatchNormalization(name="bn", synchronized=synchronized)(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(inp, keras.layers.Dense(2, name="head")(h), name="cnn")


def emb():
    inp = keras.Input((5,), dtype="int32")
    h = keras.layers.Embedding(12, 6, mask_zero=True, name="embedding")(inp)
    h = keras.layers.LSTM(4, name="lstm")(h)  # skips the masked steps; its cell's weights run fused
    return keras.Model(inp, keras.layers.Dense(2, name="head")(h), name="emb")


def other_distribution(mesh):
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*conv2d/kernel"] = (None, None, None, "model")  # (kh, kw, in, out): output channels
    layout_map[".*conv2d/bias"] = ("model",)
    layout_map[".*bn/.*"] = ("model",)  # gamma, beta and the moving statistics, per channel
    layout_map[".*embedding/embeddings"] = ("model", None)  # vocabulary rows
    layout_map[".*lstm.*/kernel"] = (None, "model")  # the 4 gates' columns
    return keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")


class MeanPenalty(keras.layers.Layer):
    """Identity adding `rate * mean(x ** 2)` with `add_loss` (a mean over
    the rows, as Keras's activity regularizer divided by the batch size)."""

    def __init__(self, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, inputs):
        self.add_loss(self.rate * torch.mean(torch.square(inputs)))
        return inputs


def act_mlp():
    """`mlp` (same weights, same LayoutMap keys) with activity regularizers
    on every Dense and an `add_loss` layer between them."""
    inp = keras.Input((5,))
    h = keras.layers.Dense(16, activation="relu", name="col", activity_regularizer=keras.regularizers.L2(0.05))(inp)
    h = MeanPenalty()(h)
    h = keras.layers.Dense(8, activation="tanh", name="row", kernel_regularizer=keras.regularizers.L2(0.01),
                           activity_regularizer=keras.regularizers.L1(0.02))(h)
    out = keras.layers.Dense(3, name="out", activity_regularizer=keras.regularizers.L2(0.01))(h)
    return keras.Model(inp, out, name="act_mlp")


class GuideStep(keras.Model):
    """The custom `train_step` of Keras 3's "customizing fit() with
    PyTorch" guide (`zero_grad`, `compute_loss`, `backward`,
    `optimizer.apply` on the weights' `.value.grad`)."""

    def train_step(self, data):
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        loss.backward()
        trainable_weights = list(self.trainable_weights)
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            self.optimizer.apply(gradients, trainable_weights)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def guide_step_mlp():
    """`mlp` (same weights and layer names) with `GuideStep`'s custom step."""
    ref = mlp()
    return GuideStep(ref.inputs, ref.outputs, name="guide_step_mlp")


def mha():
    """Self-attention (EinsumDense projections), LayerNormalization and a head."""
    inp = keras.Input((6, 8))
    h = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(inp, inp)
    h = keras.layers.LayerNormalization(name="ln")(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inp, keras.layers.Dense(3, name="head")(h), name="attn")


def mha_layout(mesh):
    """A keras_hub-style LayoutMap (as Gemma's `get_layout_map`): regex keys
    over the attention projections, heads on "model", the batch axis named
    on a dimension (one device here, so nothing is sharded along it)."""
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*mha/(query|key|value)/kernel"] = ("batch", "model", None)  # (in, heads, head_dim)
    layout_map[".*mha/(query|key|value)/bias"] = ("model", None)
    layout_map[".*mha/attention_output/kernel"] = ("model", None, "batch")  # (heads, head_dim, out)
    return keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
