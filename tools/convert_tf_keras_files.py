"""Converts tf.keras 2 files that need TensorFlow into files kerasish reads.

Run it in the environment that wrote the files (TensorFlow + tf-keras, or a
TensorFlow 2.x with its built-in tf.keras), never with kerasish:

    # a SavedModel directory (`model.save("dir")`, `save_format="tf"`)
    python tools/convert_tf_keras_files.py path/to/saved_model_dir model.h5

    # a TF-format weights checkpoint (`model.save_weights("ckpt")`, giving
    # ckpt.index + ckpt.data-00000-of-00001): the architecture is not in the
    # checkpoint, so name a function that builds the model, as `module:function`
    python tools/convert_tf_keras_files.py path/to/ckpt model.weights.h5 --build my_model:build

The output is Keras 2's HDF5 format (`.h5`: the whole model for a
SavedModel, weights only for a checkpoint), which kerasish loads with
`keras.models.load_model("model.h5")` / `model.load_weights("model.weights.h5")`
(a name ending in `.h5` that is not `.weights.h5` for the whole model).
"""

import argparse
import importlib
import os
import sys


def _tf_keras():
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    try:
        import tf_keras as keras
    except ImportError:
        from tensorflow import keras
    return keras


def convert_saved_model(src, dest):
    keras = _tf_keras()
    model = keras.models.load_model(src)
    model.save(dest, save_format="h5")
    return model


def convert_checkpoint(src, dest, build):
    _tf_keras()  # TF_USE_LEGACY_KERAS set before the user's module imports tf.keras
    module, _, function = build.partition(":")
    if not function:
        raise SystemExit(f"--build must be `module:function`. Received: {build!r}")
    sys.path.insert(0, os.getcwd())
    model = getattr(importlib.import_module(module), function)()
    model.load_weights(src).expect_partial()
    model.save_weights(dest, save_format="h5")
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="a SavedModel directory or a TF checkpoint prefix (`ckpt`, not `ckpt.index`)")
    parser.add_argument("dest", help="the `.h5` file to write")
    parser.add_argument("--build", help="`module:function` returning the (uncompiled) model, for a checkpoint")
    args = parser.parse_args(argv)
    if not args.dest.endswith((".h5", ".hdf5")):
        raise SystemExit(f"The output must be an `.h5` file. Received: {args.dest!r}")
    src = args.src[: -len(".index")] if args.src.endswith(".index") else args.src
    if os.path.isfile(os.path.join(src, "saved_model.pb")):
        convert_saved_model(src, args.dest)
        print(f"wrote the whole model from SavedModel {src} to {args.dest}")
    elif os.path.isfile(src + ".index"):
        if not args.build:
            raise SystemExit("A TF checkpoint holds weights only: pass --build module:function that builds the model.")
        convert_checkpoint(src, args.dest, args.build)
        print(f"wrote the weights of checkpoint {src} to {args.dest}")
    else:
        raise SystemExit(f"{src} is neither a SavedModel directory nor a TF checkpoint prefix.")


if __name__ == "__main__":
    main()
