"""What `keras.engine`'s submodules share."""

NETWORK = ("Keras 2.0-2.4's graph-network base class (a Model without compile/fit); tf.keras 2.4 made it "
           "`keras.Model` (the functional API), which is what to subclass or build now")
NODE = "Keras's internal graph node; a layer's calls are in `layer._inbound_nodes` (not a public API)"
WEIGHTS_IO = ("a Keras 2 internal of `.h5` reading and writing; use `model.load_weights(path)` / "
              "`model.save_weights(path)` (they read and write Keras 2's `.h5` layout, `by_name=`, `skip_mismatch=`)")
