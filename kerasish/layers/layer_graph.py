"""Shape inference and functional-graph connectivity for `Layer`:
`compute_output_shape` / `compute_output_spec` / `compute_output_signature`
(meta-device runs, see `shape_inference`), and `input` / `output` /
`input_shape` / `output_shape` once a layer is connected by the functional API."""

from __future__ import annotations

from kerasish.utils import tree


class LayerGraphMixin:
    """Shape inference and connectivity for `Layer` (see module docstring)."""

    # ---------------------------------------------------- shape inference
    def compute_output_shape(self, input_shape):
        """Output shape(s) for `input_shape` (tuples, None for unknown dims),
        inferred by running `call` on the meta device (no real compute)."""
        from kerasish.layers import shape_inference

        return shape_inference.compute_output_shape(self, input_shape)

    def compute_output_spec(self, *args, **kwargs):
        from kerasish.layers import shape_inference

        return shape_inference.compute_output_spec(self, *args, **kwargs)

    def symbolic_call(self, *args, **kwargs):
        """Output KerasTensor(s) of a call on KerasTensor `args` (Keras 3):
        `compute_output_spec(*args, **kwargs)`. As in Keras, no graph node
        is recorded (`layer(keras_tensor)` records one)."""
        return self.compute_output_spec(*args, **kwargs)

    @property
    def call_signature_parameters(self) -> list:
        """The parameter names of `call` (Keras 3), e.g.
        `["inputs", "training"]`."""
        import inspect

        return [p.name for p in inspect.signature(self.call).parameters.values()]

    @property
    def supports_jit(self) -> bool:
        """Whether the layer may run under `jit_compile=True` (Keras 3).
        Defaults to True; a model with a layer set to False compiles with
        `jit_compile=False` (with Keras's warning)."""
        return self.__dict__.get("_supports_jit", True)

    @supports_jit.setter
    def supports_jit(self, value):
        self.__dict__["_supports_jit"] = bool(value)

    def compute_output_signature(self, input_signature):
        """Output TensorSpec(s) (shape and dtype) for TensorSpec-like inputs."""
        from kerasish.layers import shape_inference

        return shape_inference.compute_output_signature(self, input_signature)

    # ---------------------------------------------------------------- path
    @property
    def path(self):
        """Keras 3's path of the layer: its name under the name scopes it was
        built in (`"outer/dense"`, `"sequential/dense"` for a layer a
        Sequential builds); None until it is built (a built layer that never
        went through `build`, a functional model, has its name)."""
        d = self.__dict__
        recorded = d.get("_layer_path")
        if recorded is None and d.get("built"):
            return d.get("name")
        return recorded

    @path.setter
    def path(self, value):
        # Keras's property is read-only; a torch module of a user's may keep its own `path`
        self.__dict__["_layer_path"] = value

    # -------------------------------------------------------- connectivity
    def _single_node_attr(self, attr, what):
        nodes = self.__dict__["_inbound_nodes"]
        if not nodes:
            raise AttributeError(
                f"The layer {self.name} has never been called and thus has no defined {what}."
            )
        if len(nodes) > 1:
            raise AttributeError(
                f"The layer {self.name} has multiple inbound nodes, hence the notion of \"layer {what}\" "
                f"is ill-defined. Use `get_{what}_at(node_index)` instead."
            )
        return getattr(nodes[0], attr)

    @property
    def input(self):
        """The input KerasTensor(s) of a layer connected to exactly one node."""
        return self._single_node_attr("input_tensors_structure", "input")

    @property
    def output(self):
        """The output KerasTensor(s) of a layer connected to exactly one node."""
        return self._single_node_attr("output_tensors_structure", "output")

    @property
    def input_shape(self):
        return tree.map_structure(lambda t: t.shape, self.input)

    @property
    def output_shape(self):
        return tree.map_structure(lambda t: t.shape, self.output)

    def get_input_at(self, node_index):
        return self.__dict__["_inbound_nodes"][node_index].input_tensors_structure

    def get_output_at(self, node_index):
        return self.__dict__["_inbound_nodes"][node_index].output_tensors_structure
