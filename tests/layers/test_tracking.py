"""Attribute tracking: every layer and variable Keras tracks in a layer's
attributes (private names, nested lists, tuples, dicts with any keys,
namedtuples, later mutation) is registered with torch, in Keras's order.

The corpus is run against real Keras 3 (`keras_ref`): the same container
shapes must give the same weights (shapes, trainable flags, order)."""

from __future__ import annotations

import collections
import copy
import io
import pickle

import numpy as np
import pytest
import torch

import kerasish as keras

NT = collections.namedtuple("NT", "a b")


def _corpus(k):
    """name -> function filling a fresh layer's attributes with `k`'s (Keras
    or kerasish) layers and variables. Unit sizes differ so that the weight
    shapes identify the order."""
    L = k.layers

    def var(n, trainable=True):
        return k.Variable(np.zeros((n,), "float32"), trainable=trainable)

    def steps(*fns):
        return lambda s: [fn(s) for fn in fns]

    return {
        "private_list": lambda s: setattr(s, "_blocks", [L.Dense(2), L.Dense(3)]),
        "private_layer_tuple": lambda s: setattr(s, "_pair", (L.Dense(2), L.Dense(3))),
        "nested_list": lambda s: setattr(s, "blocks", [[L.Dense(2), L.Dense(3)], [L.Dense(4)]]),
        "list_of_pairs": lambda s: setattr(s, "pairs", [(L.Dense(2), True), (L.Dense(3), False)]),
        "tuple_with_flag": lambda s: setattr(s, "pair", (L.Dense(2), "relu")),
        "int_key_dict": lambda s: setattr(s, "heads", {0: L.Dense(2), 1: L.Dense(3)}),
        "mixed_dict": lambda s: setattr(s, "cfg", {"proj": L.Dense(2), "act": "relu", "n": 3}),
        "dict_of_containers": lambda s: setattr(s, "_groups", {"a": [L.Dense(2), L.Dense(3)], "b": (L.Dense(4),)}),
        "private_variables": lambda s: setattr(s, "_vars", [var(2), var(3, False), var(4)]),
        "variables_and_layers": lambda s: setattr(s, "items", [L.Dense(2), var(5), "x", None]),
        "namedtuple": lambda s: setattr(s, "nt", NT(L.Dense(2), L.Dense(3))),
        "ordered_dict": lambda s: setattr(s, "od", collections.OrderedDict([("z", L.Dense(2)), ("a", L.Dense(3))])),
        "variables_in_tuple": lambda s: setattr(s, "_t", (var(2), var(3, False))),
        "dotted_dict_keys": lambda s: setattr(s, "by_name", {"a.b": L.Dense(2), "a_b": L.Dense(3)}),
        "later_nested_append": steps(lambda s: setattr(s, "blocks", [[]]), lambda s: s.blocks[0].append(L.Dense(2))),
        "later_dict_items": steps(
            lambda s: setattr(s, "heads", {}),
            lambda s: s.heads.__setitem__(0, L.Dense(2)),
            lambda s: s.heads.__setitem__("x", var(3)),
        ),
        "later_extend_insert": steps(
            lambda s: setattr(s, "_blocks", []),
            lambda s: s._blocks.extend([L.Dense(2), L.Dense(3)]),
            lambda s: s._blocks.append(L.Dense(4)),
        ),
        "shared_twice": steps(lambda s: setattr(s, "a", L.Dense(2)), lambda s: setattr(s, "_all", [s.a, L.Dense(3)])),
        "list_pop": steps(lambda s: setattr(s, "blocks", [L.Dense(2), L.Dense(3)]), lambda s: s.blocks.pop(0)),
        "list_del": steps(lambda s: setattr(s, "_b", [L.Dense(2), "x", L.Dense(3)]), lambda s: s._b.__delitem__(0)),
        "dict_pop": steps(lambda s: setattr(s, "heads", {0: L.Dense(2), 1: L.Dense(3)}), lambda s: s.heads.pop(0)),
        "delete_variable": steps(
            lambda s: setattr(s, "v", var(2)), lambda s: setattr(s, "w", var(3)), lambda s: delattr(s, "v")
        ),
    }


def _holder(k, fill):
    class Holder(k.layers.Layer):
        def __init__(self):
            super().__init__()
            fill(self)

        def build(self, input_shape):
            pass

    layer = Holder()
    for sub in layer._flatten_layers(include_self=False):
        if not sub.built:
            sub.build((None, 3))
    layer.build((None, 3))  # (creates nothing; marks the holder built)
    return layer


def _signature(layer):
    return [(tuple(w.shape), bool(w.trainable)) for w in layer.weights]


def _assert_torch_and_keras_agree(layer):
    """parameters() are the trainable weights, persistent buffers the others;
    state_dict holds each weight (keys resolve to it)."""
    weights = layer.weights
    params = list(layer.parameters())
    buffers = list(layer.buffers())
    assert {id(p) for p in params} == {id(w) for w in weights if isinstance(w, torch.nn.Parameter)}
    assert {id(b) for b in buffers} == {id(w) for w in weights if not isinstance(w, torch.nn.Parameter)}
    state = layer.state_dict(keep_vars=True)
    assert {id(v) for v in state.values()} == {id(w) for w in weights}
    named = dict(layer.named_parameters(remove_duplicate=False))
    named.update(layer.named_buffers(remove_duplicate=False))
    assert {k: id(v) for k, v in state.items()} == {k: id(v) for k, v in named.items()}


CASES = sorted(_corpus(keras))


@pytest.mark.parametrize("case", CASES)
def test_container_shapes_track_like_keras(keras_ref, case):
    ours = _holder(keras, _corpus(keras)[case])
    theirs = _holder(keras_ref, _corpus(keras_ref)[case])
    assert _signature(ours) == _signature(theirs)
    assert len(ours.weights) > 0
    _assert_torch_and_keras_agree(ours)


def test_private_list_trains_and_round_trips_state_dict():
    class Tower(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self._blocks = [(keras.layers.Dense(4), True), (keras.layers.Dense(2), False)]
            self._scale = {0: keras.Variable(np.ones((2,), "float32"), name="scale")}

        def call(self, x):
            for block, _ in self._blocks:
                x = block(x)
            return x * self._scale[0]

    torch.manual_seed(0)
    tower = Tower()
    x = torch.randn(3, 5)
    tower(x)
    assert len(list(tower.parameters())) == 5
    keys = list(tower.state_dict())
    assert keys == ["_blocks.0.0.kernel", "_blocks.0.0.bias", "_blocks.1.0.kernel", "_blocks.1.0.bias", "_scale.0"]
    before = [w.detach().clone() for w in tower.weights]
    opt = torch.optim.SGD(tower.parameters(), lr=0.1)
    tower(x).square().sum().backward()
    opt.step()
    assert all(not torch.equal(b, w.detach()) for b, w in zip(before, tower.weights))
    twin = Tower()
    twin(x)
    buf = io.BytesIO()
    torch.save(tower.state_dict(), buf)
    buf.seek(0)
    twin.load_state_dict(torch.load(buf, weights_only=True))
    torch.testing.assert_close(twin(x), tower(x))
    # .to() keeps the Keras class of variables held in containers
    twin.double()
    assert isinstance(twin._scale[0], keras.Variable) and twin._scale[0].dtype == torch.float64


def test_replacing_a_container_drops_the_old_layers():
    class Net(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self._blocks = [keras.layers.Dense(2), keras.layers.Dense(3)]

    net = Net()
    for block in net._blocks:
        block.build((None, 4))
    old = list(net._blocks)
    net._blocks = {0: keras.layers.Dense(5)}
    net._blocks[0].build((None, 4))
    assert _signature(net) == [((4, 5), True), ((5,), True)]
    _assert_torch_and_keras_agree(net)
    old_list = old  # a reference kept by the user: its mutations no longer register anything
    assert not any(p is q for p in net.parameters() for b in old_list for q in b.weights)
    net._blocks = keras.layers.Dense(6)  # a container replaced by a layer
    assert list(net._modules) == ["_blocks"] and isinstance(net._blocks, keras.layers.Dense)
    net._blocks = None
    assert net._blocks is None and net.weights == [] and list(net.parameters()) == []


def test_deleting_a_container_attribute_unregisters_it():
    class Net(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self._blocks = [keras.layers.Dense(2), "flag"]
            self.out = keras.layers.Dense(3)

    net = Net()
    net._blocks[0].build((None, 4))
    net.out.build((None, 2))
    held = net._blocks
    del net._blocks
    assert not hasattr(net, "_blocks")
    assert _signature(net) == [((2, 3), True), ((3,), True)]
    _assert_torch_and_keras_agree(net)
    held.append(keras.layers.Dense(7))  # detached from the layer: tracks nothing
    assert "_blocks" not in net._modules


def test_freezing_reaches_variables_in_containers():
    class Net(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self._gains = {1: keras.Variable(np.ones((2,), "float32"))}

    net = Net()
    net.trainable = False
    assert net.trainable_weights == [] and len(net.non_trainable_weights) == 1
    assert not net._gains[1].requires_grad


class _Nested(keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self._blocks = [[keras.layers.Dense(2)], {"k": 1}]

    def call(self, x):
        return self._blocks[0][0](x)


def test_deepcopy_and_pickle_keep_container_tracking():
    net = _Nested()
    x = torch.ones(1, 3)
    net(x)
    for twin in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        torch.testing.assert_close(twin(x), net(x))
        assert len(twin.weights) == 2 and twin.weights[0] is not net.weights[0]
        twin._blocks[0].append(keras.layers.Dense(3))  # the copy tracks on the copy
        twin._blocks[0][1].build((None, 2))
        assert len(twin.weights) == 4 and len(net.weights) == 2
        _assert_torch_and_keras_agree(twin)


def test_weights_follow_list_position_after_insert():
    # Documented divergence: Keras orders layers by when they were first
    # tracked (an inserted layer comes last); kerasish follows the list, as
    # torch's state_dict keys do ("_blocks.0" is the first element).
    class Net(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self._blocks = [keras.layers.Dense(2)]
            self._blocks.insert(0, keras.layers.Dense(3))

    net = Net()
    for block in net._blocks:
        block.build((None, 4))
    assert _signature(net) == [((4, 3), True), ((3,), True), ((4, 2), True), ((2,), True)]
    assert list(net.state_dict())[:1] == ["_blocks.0.kernel"]
    _assert_torch_and_keras_agree(net)


def test_plain_value_containers_stay_plain():
    # nothing to track: a plain list/dict (torch.compile traces those without breaks)
    class Net(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self._pads = [1, 2]
            self._options = {"mode": "nearest"}
            self.later = []

    net = Net()
    assert type(net._pads) is list and type(net._options) is dict
    assert isinstance(net.later, list) and type(net.later) is not list  # tracked: it may be filled later
