"""The graph IR as a specification: every node kind infers the shape torch computes, validation
refuses each broken invariant with a typed one-line error naming the node, the order of nodes
and of a node's inputs is deterministic, and copies are independent."""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import snc.ir as ir
from snc.backends import analog
from snc.errors import InvalidGraph, ShapeError, SncError
from snc.ir.node import LINEAR, Node


def raises_naming(exc_type: type[SncError], node: str, fn, *args, **kwargs) -> SncError:
    """Call fn, expect exc_type, check it names ``node`` on a single line."""
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    exc = info.value
    assert type(exc) is exc_type, f"expected exactly {exc_type.__name__}, got {type(exc).__name__}"
    text = str(exc)
    assert "\n" not in text
    assert exc.node == node
    assert repr(node) in text, text
    return exc


def one_node(node: ir.Node, in_shapes: list[tuple[int, ...]], name: str = "op") -> ir.Graph:
    """Inputs x0, x1, ... of the given shapes feeding ``node``, which is the output."""
    g = ir.Graph()
    ins = [g.add(f"x{i}", ir.Input(shape=s)) for i, s in enumerate(in_shapes)]
    g.add(name, node, ins)
    g.outputs = [name]
    return g


def torch_pad(x: torch.Tensor, padding: tuple[int, int, int, int], value: float = 0.0) -> torch.Tensor:
    top, left, bottom, right = padding
    return F.pad(x, (left, right, top, bottom), value=value)


# ---------------------------------------------------------------------------------------------
# Shape inference against torch.

pads = st.tuples(*[st.integers(0, 3)] * 4)


@settings(max_examples=80, deadline=None)
@given(
    c_in_g=st.integers(1, 3),
    groups=st.integers(1, 3),
    out_per_group=st.integers(1, 2),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=pads,
    hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
)
def test_conv2d_shape_matches_torch(c_in_g, groups, out_per_group, kernel, stride, dilation, padding, hw):
    c_in, c_out = c_in_g * groups, out_per_group * groups
    weight = np.zeros((c_out, c_in_g) + kernel, np.float32)
    node = ir.Conv2d(weight=weight, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = torch.zeros((1, c_in) + hw)
    try:
        want = tuple(
            F.conv2d(torch_pad(x, padding), torch.from_numpy(weight), stride=stride, dilation=dilation, groups=groups).shape[1:]
        )
    except RuntimeError:
        want = None
    g = one_node(node, [(c_in,) + hw], "conv")
    if want is None or 0 in want:
        raises_naming(ShapeError, "conv", g.infer_shapes)
    else:
        assert g.infer_shapes()["conv"] == want


@settings(max_examples=80, deadline=None)
@given(
    kind=st.sampled_from(["SumPool2d", "AvgPool2d", "MaxPool2d"]),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    padding=pads,
    hw=st.tuples(st.integers(1, 8), st.integers(1, 8)),
)
def test_pool_shapes_match_torch(kind, kernel, stride, dilation, padding, hw):
    x = torch.zeros((1, 2) + hw)
    try:
        if kind == "MaxPool2d":
            node = ir.MaxPool2d(kernel=kernel, stride=stride, padding=padding, dilation=dilation)
            want = F.max_pool2d(torch_pad(x, padding, float("-inf")), kernel, stride, dilation=dilation)
        else:
            node = ir.KINDS[kind](kernel=kernel, stride=stride, padding=padding)
            want = F.avg_pool2d(torch_pad(x, padding), kernel, stride)
        want = tuple(want.shape[1:])
    except RuntimeError:
        want = None
    g = one_node(node, [(2,) + hw], "pool")
    if want is None or 0 in want:
        raises_naming(ShapeError, "pool", g.infer_shapes)
    else:
        assert g.infer_shapes()["pool"] == want


@pytest.mark.parametrize(
    "shapes, axis",
    [([(2, 3, 4), (5, 3, 4)], 0), ([(2, 3, 4), (2, 1, 4), (2, 6, 4)], 1), ([(7,), (1,)], 0), ([(2, 3, 4), (2, 3, 1)], 2)],
)
def test_concat_shape_matches_numpy(shapes, axis):
    want = np.concatenate([np.zeros(s) for s in shapes], axis=axis).shape
    assert one_node(ir.Concat(axis=axis), shapes, "cat").infer_shapes()["cat"] == want


@pytest.mark.parametrize("shapes, axis", [([(2, 3), (2, 4)], 0), ([(2, 3), (2, 3, 1)], 0), ([(2, 3)], 2), ([(2, 3)], -1)])
def test_concat_refuses_mismatched_shapes(shapes, axis):
    raises_naming(ShapeError, "cat", one_node(ir.Concat(axis=axis), shapes, "cat").infer_shapes)


@pytest.mark.parametrize("perm", [(0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0)])
def test_transpose_shape_matches_numpy(perm):
    shape = (2, 3, 5)
    assert one_node(ir.Transpose(perm=perm), [shape], "t").infer_shapes()["t"] == np.zeros(shape).transpose(perm).shape


@pytest.mark.parametrize("perm", [(0, 1), (0, 0, 1), (0, 1, 3), (1, 2, 0, 3)])
def test_transpose_refuses_non_permutations(perm):
    raises_naming(ShapeError, "t", one_node(ir.Transpose(perm=perm), [(2, 3, 5)], "t").infer_shapes)


def test_reshape_flatten_dense_and_elementwise_shapes():
    assert one_node(ir.Reshape(shape=(5, 6)), [(2, 3, 5)], "r").infer_shapes()["r"] == (5, 6)
    raises_naming(ShapeError, "r", one_node(ir.Reshape(shape=(4, 7)), [(2, 3, 5)], "r").infer_shapes)
    assert one_node(ir.Flatten(), [(2, 3, 5)], "f").infer_shapes()["f"] == (30,)
    dense = ir.Dense(weight=np.zeros((4, 30), np.float32))
    assert one_node(dense, [(30,)], "d").infer_shapes()["d"] == (4,)
    raises_naming(ShapeError, "d", one_node(dense, [(2, 15)], "d").infer_shapes)
    raises_naming(ShapeError, "d", one_node(dense, [(31,)], "d").infer_shapes)
    assert one_node(ir.Add(), [(3, 2), (3, 2), (3, 2)], "a").infer_shapes()["a"] == (3, 2)
    raises_naming(ShapeError, "a", one_node(ir.Add(), [(3, 2), (2, 3)], "a").infer_shapes)
    # Elementwise constants broadcast to the input but never change its shape.
    assert one_node(ir.Scale(scale=np.ones((3, 1, 1))), [(3, 4, 4)], "s").infer_shapes()["s"] == (3, 4, 4)
    raises_naming(ShapeError, "s", one_node(ir.Scale(scale=np.ones((2, 1, 1))), [(3, 4, 4)], "s").infer_shapes)
    raises_naming(ShapeError, "s", one_node(ir.Scale(scale=np.ones((2, 3, 4, 4))), [(3, 4, 4)], "s").infer_shapes)
    ss = ir.ScaleShift(scale=np.ones((3, 1, 1)), shift=np.zeros((1, 4, 1)))
    assert one_node(ss, [(3, 4, 4)], "ss").infer_shapes()["ss"] == (3, 4, 4)
    bad = ir.ScaleShift(scale=np.ones((3, 1, 1)), shift=np.zeros((5, 1, 1)))
    raises_naming(ShapeError, "ss", one_node(bad, [(3, 4, 4)], "ss").infer_shapes)
    assert one_node(ir.ReLU(), [(3, 4)], "relu").infer_shapes()["relu"] == (3, 4)
    bn = ir.BatchNorm(mean=np.zeros(3), var=np.ones(3), gamma=np.ones(3), beta=np.zeros(3))
    assert one_node(bn, [(3, 4, 4)], "bn").infer_shapes()["bn"] == (3, 4, 4)
    assert one_node(bn, [(3,)], "bn").infer_shapes()["bn"] == (3,)
    raises_naming(ShapeError, "bn", one_node(bn, [(4, 3, 3)], "bn").infer_shapes)
    # Populations and readouts take exactly their own shape.
    assert one_node(ir.IF(shape=(3, 2)), [(3, 2), (3, 2)], "h").infer_shapes()["h"] == (3, 2)
    raises_naming(ShapeError, "h", one_node(ir.LIF(shape=(3, 2)), [(6,)], "h").infer_shapes)
    raises_naming(ShapeError, "out", one_node(ir.Readout(shape=(4,)), [(5,)], "out").infer_shapes)


def test_inferred_shapes_are_the_shapes_the_evaluator_produces():
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2, 7, 6)))
    g.add("bn", ir.BatchNorm(mean=rng.random(2), var=rng.random(2) + 1, gamma=rng.random(2), beta=rng.random(2)), ["x"])
    g.add("c", ir.Conv2d(weight=rng.normal(size=(4, 1, 3, 2)), padding=(1, 0, 2, 1), stride=(2, 1), dilation=(1, 2), groups=2), ["bn"])
    g.add("r", ir.ReLU(ceiling=3.0), ["c"])
    g.add("m", ir.MaxPool2d(kernel=(2, 3), stride=1, padding=(0, 1, 1, 1)), ["r"])
    g.add("sp", ir.SumPool2d(kernel=2, stride=1), ["m"])
    g.add("ap", ir.AvgPool2d(kernel=(1, 2), stride=(1, 2), padding=(0, 1, 0, 0), count_include_pad=False), ["sp"])
    g.add("t", ir.Transpose(perm=(1, 2, 0)), ["ap"])
    g.add("ss", ir.ScaleShift(scale=rng.random(4), shift=rng.random(4)), ["t"])
    g.add("sc", ir.Scale(scale=np.float32(2.0)), ["t"])
    g.add("add", ir.Add(), ["ss", "sc"])
    g.add("cat", ir.Concat(axis=1), ["add", "t"])
    g.add("f", ir.Flatten(), ["cat"])
    g.add("rs", ir.Reshape(shape=(6, 7, 2)), ["x"])
    g.add("rr", ir.ReLU(), ["rs"])
    n = int(np.prod(g.infer_shapes()["f"]))
    g.add("d", ir.Dense(weight=rng.normal(size=(3, n)), bias=rng.normal(size=3)), ["f"])
    g.outputs = ["d"]
    shapes = g.validate()
    values = analog.evaluate(g, rng.normal(size=(2, 2, 7, 6)), keep=list(g.nodes))
    for name, shape in shapes.items():
        assert values[name].shape == (2,) + shape, name


# ---------------------------------------------------------------------------------------------
# Validation: every invariant gives a typed error naming the node.


def small_ann(rng=None) -> ir.Graph:
    rng = rng or np.random.default_rng(0)
    g = ir.Graph("ann")
    g.add("x", ir.Input(shape=(4,)))
    g.add("d1", ir.Dense(weight=rng.normal(size=(5, 4)), bias=rng.normal(size=5)), ["x"])
    g.add("r1", ir.ReLU(), ["d1"])
    g.add("d2", ir.Dense(weight=rng.normal(size=(3, 5)), bias=rng.normal(size=3)), ["r1"])
    g.outputs = ["d2"]
    return g


def small_snn(rng=None) -> ir.Graph:
    rng = rng or np.random.default_rng(0)
    g = ir.Graph("snn")
    g.add("x", ir.Input(shape=(4,)))
    g.add("d1", ir.Dense(weight=rng.normal(size=(5, 4))), ["x"])
    g.add("h", ir.IF(shape=(5,), threshold=0.5, bias=rng.normal(size=5)), ["d1"])
    g.add("d2", ir.Dense(weight=rng.normal(size=(3, 5))), ["h"])
    g.add("out", ir.Readout(shape=(3,)), ["d2"])
    g.outputs = ["out"]
    return g


def test_valid_graphs_validate():
    assert small_ann().validate()["d2"] == (3,)
    assert small_snn().validate()["out"] == (3,)


def test_cycle_is_an_invalid_graph_naming_a_node_on_it():
    g = small_ann()
    g.set_inputs("d1", ["r1"])  # d1 -> r1 -> d1
    for call in (g.validate, g.topological_order, g.infer_shapes):
        with pytest.raises(InvalidGraph) as info:
            call()
        assert info.value.node in ("d1", "r1")
        assert repr(info.value.node) in str(info.value) and "\n" not in str(info.value)
        assert "cycle" in str(info.value)


def test_unknown_input_and_duplicate_names_are_refused_when_added():
    g = small_ann()
    raises_naming(InvalidGraph, "d3", g.add, "d3", ir.Dense(weight=np.ones((1, 3))), ["nope"])
    raises_naming(InvalidGraph, "d1", g.add, "d1", ir.ReLU(), ["x"])
    raises_naming(InvalidGraph, "r2", g.add, "r2", "not a node", ["x"])
    raises_naming(InvalidGraph, "r1", g.set_inputs, "r1", ["ghost"])
    g2 = small_ann()
    g2.set_inputs("r1", ["d1", "d1"])  # a source may feed a node twice (Add(x, x)) ...
    raises_naming(InvalidGraph, "r1", g2.validate)  # ... but a ReLU takes one input
    raises_naming(InvalidGraph, "ghost", g.set_inputs, "ghost", ["d1"])
    raises_naming(InvalidGraph, "ghost", g.__getitem__, "ghost")
    assert g.inputs_of("r1") == ["d1"]  # refused set_inputs changed nothing


@pytest.mark.parametrize("bad_inputs", [["nope"], ["d1", "ghost"]])
def test_refused_add_leaves_the_graph_unchanged(bad_inputs):
    g = small_ann()
    with pytest.raises(InvalidGraph):
        g.add("d3", ir.Dense(weight=np.ones((2, 3))), bad_inputs)
    assert "d3" not in g and len(g) == 4
    g.add("d3", ir.Dense(weight=np.ones((2, 3))), ["d2"])  # the corrected call succeeds


def test_unknown_input_is_refused_on_the_node_that_names_it():
    # A node added before its input exists cannot be wired to it.
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2,)))
    with pytest.raises(InvalidGraph) as info:
        g.add("r", ir.ReLU(), ["later"])
    assert info.value.node == "r" and "'later'" in str(info.value)


def test_declared_output_must_exist():
    g = small_ann()
    g.outputs = ["d2", "logits"]
    raises_naming(InvalidGraph, "logits", g.validate)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda g: g.add("two", ir.Dense(weight=np.ones((2, 5))), ["r1", "d1"]), "two"),
        (lambda g: g.add("zero", ir.ReLU()), "zero"),
        (lambda g: g.add("bad_input", ir.Input(shape=(5,)), ["r1"]), "bad_input"),
        (lambda g: g.add("cat", ir.Concat(), []), "cat"),
    ],
)
def test_wrong_arity(make, name):
    g = small_ann()
    make(g)
    exc = raises_naming(InvalidGraph, name, g.validate)
    assert "input" in exc.message


def test_node_without_inputs_is_refused():
    g = small_ann()
    g.add("orphan", ir.Dense(weight=np.ones((3, 3))))
    g.outputs.append("orphan")
    raises_naming(InvalidGraph, "orphan", g.validate)


@dataclass(eq=False)
class _Constant(Node):
    """A test-only source that is not an Input: y = 0 of shape (3,)."""

    kind = "Constant"
    role = LINEAR
    arity = (0, 0)

    def infer_shape(self, name, inputs):
        return (3,)


def test_node_not_reachable_from_an_input_is_refused():
    g = small_ann()
    g.add("const", _Constant())
    g.add("sum", ir.Add(), ["d2", "const"])
    g.outputs = ["sum"]
    raises_naming(InvalidGraph, "const", g.validate)


@pytest.mark.parametrize("field", ["weight", "bias"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights(field, bad):
    g = small_ann()
    node = g["d2"]
    value = getattr(node, field).copy()
    value.flat[1] = bad
    g.replace("d2", node.replace(**{field: value}))
    exc = raises_naming(InvalidGraph, "d2", g.validate)
    assert field in exc.message


def test_non_finite_batchnorm_and_scale_constants():
    g = one_node(ir.BatchNorm(mean=[0, np.nan], var=[1, 1], gamma=[1, 1], beta=[0, 0]), [(2, 3, 3)], "bn")
    raises_naming(InvalidGraph, "bn", g.validate)
    g = one_node(ir.Scale(scale=np.array([1.0, np.inf])), [(2,)], "s")
    raises_naming(InvalidGraph, "s", g.validate)


@pytest.mark.parametrize(
    "threshold",
    [0.0, -1.0, np.nan, np.inf, np.array([1.0, 0.5, 0.0, 1.0, 2.0]), np.array([1.0, -0.5, 1.0, 1.0, 2.0])],
    ids=["zero", "negative", "nan", "inf", "one-zero", "one-negative"],
)
@pytest.mark.parametrize("kind", ["IF", "LIF"])
def test_non_positive_or_non_finite_threshold(threshold, kind):
    g = small_snn()
    node = g["h"]
    g.replace("h", ir.KINDS[kind](shape=(5,), threshold=threshold, bias=node.bias))
    raises_naming(InvalidGraph, "h", g.validate)


def test_threshold_must_broadcast_to_the_population():
    g = small_snn()
    g.replace("h", g["h"].replace(threshold=np.ones(4, np.float32)))
    raises_naming(InvalidGraph, "h", g.validate)
    g.replace("h", g["h"].replace(threshold=np.full((1,), 0.25, np.float32)))
    g.validate()


@pytest.mark.parametrize(
    "name, change",
    [
        ("d1", lambda n: n.replace(bias=np.zeros(4, np.float32))),
        ("d1", lambda n: n.replace(bias=np.zeros((5, 1), np.float32))),
        ("h", lambda n: n.replace(bias=np.zeros(4, np.float32))),
        ("out", lambda n: n.replace(bias=np.zeros((3, 1), np.float32))),
    ],
)
def test_bias_of_wrong_shape(name, change):
    g = small_snn()
    if name == "d1":  # an ANN, where Dense may carry a bias at all
        g = small_ann()
    g.replace(name, change(g[name]))
    exc = raises_naming(InvalidGraph, name, g.validate)
    assert "bias" in exc.message


def test_conv_bias_and_groups_checked():
    w = np.ones((4, 1, 3, 3), np.float32)
    g = one_node(ir.Conv2d(weight=w, groups=2, bias=np.zeros(3)), [(2, 5, 5)], "c")
    raises_naming(InvalidGraph, "c", g.validate)
    g = one_node(ir.Conv2d(weight=np.ones((3, 1, 3, 3)), groups=2), [(2, 5, 5)], "c")
    raises_naming(InvalidGraph, "c", g.validate)
    g = one_node(ir.Conv2d(weight=w, groups=2, stride=(0, 1)), [(2, 5, 5)], "c")
    raises_naming(InvalidGraph, "c", g.validate)
    g = one_node(ir.Conv2d(weight=w, groups=2, bias=np.zeros(4)), [(2, 5, 5)], "c")
    assert g.validate()["c"] == (4, 3, 3)


@pytest.mark.parametrize(
    "name, change",
    [
        ("x", lambda n: n.replace(encoding="analog")),
        ("x", lambda n: n.replace(shape=(0,))),
        ("h", lambda n: n.replace(reset="soft")),
        ("h", lambda n: n.replace(refractory=-1)),
        ("out", lambda n: n.replace(mode="max")),
        ("h", lambda n: ir.LIF(shape=(5,), decay_voltage=1.5)),
        ("h", lambda n: ir.LIF(shape=(5,), decay_current=-0.1)),
    ],
    ids=["encoding", "input-shape", "reset", "refractory", "readout-mode", "decay-v", "decay-u"],
)
def test_bad_enumerations_and_ranges(name, change):
    g = small_snn()
    g.replace(name, change(g[name]))
    raises_naming(InvalidGraph, name, g.validate)


@pytest.mark.parametrize("ceiling", [0.0, -6.0, np.inf, np.nan])
def test_bad_relu_ceiling(ceiling):
    g = small_ann()
    g.replace("r1", ir.ReLU(ceiling=ceiling))
    raises_naming(InvalidGraph, "r1", g.validate)


def test_spiking_graph_refuses_synaptic_bias():
    g = small_snn()
    g.replace("d2", g["d2"].replace(bias=np.ones(3, np.float32)))
    exc = raises_naming(InvalidGraph, "d2", g.validate)
    assert "bias" in exc.message
    # The same bias is fine in an ANN graph.
    ann = small_ann()
    assert ann["d2"].bias is not None and ann.validate()


def test_graph_without_input_or_output():
    g = ir.Graph()
    with pytest.raises(InvalidGraph):
        g.validate()
    g.add("x", ir.Input(shape=(2,)))
    with pytest.raises(InvalidGraph) as info:
        g.validate()
    assert "output" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Order.


def reference_order(insertion: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """Kahn's algorithm, always taking the ready node inserted earliest."""
    index = {n: i for i, n in enumerate(insertion)}
    indeg = {n: 0 for n in insertion}
    succ: dict[str, list[str]] = {n: [] for n in insertion}
    for a, b in edges:
        indeg[b] += 1
        succ[a].append(b)
    ready = [(index[n], n) for n in insertion if indeg[n] == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        _, n = heapq.heappop(ready)
        out.append(n)
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                heapq.heappush(ready, (index[m], m))
    return out


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 12))
def test_topological_order_breaks_ties_by_insertion_order(data, n):
    # Hidden true order `rank`; nodes are inserted in another order; edges go rank-forward.
    rank = data.draw(st.permutations(range(n)))
    names = [f"n{i}" for i in range(n)]
    edges = []
    for i in range(n):
        for j in range(n):
            if rank[i] < rank[j] and data.draw(st.booleans()):
                edges.append((names[i], names[j]))
    g = ir.Graph()
    for name in names:
        g.add(name, ir.Add())
    for name in names:
        g.set_inputs(name, [a for a, b in edges if b == name])
    order = g.topological_order()
    assert order == reference_order(names, edges)
    assert order == g.topological_order() == g.copy().topological_order() == list(g)
    pos = {name: i for i, name in enumerate(order)}
    assert all(pos[a] < pos[b] for a, b in edges)


def test_topological_order_hand_computed():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2,)))
    g.add("b", ir.ReLU(), ["x"])
    g.add("a", ir.ReLU(), ["x"])
    g.add("c", ir.Add(), ["a", "b"])
    g.add("y", ir.Input(shape=(2,)))
    g.add("d", ir.Add(), ["y", "c"])
    assert g.topological_order() == ["x", "b", "a", "c", "y", "d"]
    # Wiring a later node in front of an earlier one still yields a topological order.
    g.set_inputs("b", ["y"])
    assert g.topological_order() == ["x", "a", "y", "b", "c", "d"]


def test_inputs_keep_their_order_and_concat_uses_it():
    g = ir.Graph()
    g.add("a", ir.Input(shape=(2,)))
    g.add("b", ir.Input(shape=(3,)))
    g.add("c", ir.Input(shape=(1,)))
    g.add("cat", ir.Concat(axis=0), ["c", "a", "b"])
    g.outputs = ["cat"]
    assert g.inputs_of("cat") == ["c", "a", "b"]
    assert g.edges() == [("c", "cat"), ("a", "cat"), ("b", "cat")]
    xs = {"a": np.array([[1.0, 2.0]]), "b": np.array([[3.0, 4.0, 5.0]]), "c": np.array([[6.0]])}
    np.testing.assert_array_equal(analog.evaluate(g, xs)["cat"], [[6, 1, 2, 3, 4, 5]])
    g.set_inputs("cat", ["b", "c", "a"])
    assert g.inputs_of("cat") == ["b", "c", "a"]
    np.testing.assert_array_equal(analog.evaluate(g, xs)["cat"], [[3, 4, 5, 6, 1, 2]])
    assert g.infer_shapes()["cat"] == (6,)
    g.set_inputs("cat", ["a"])
    assert g.inputs_of("cat") == ["a"] and g.users_of("b") == [] and g.users_of("a") == ["cat"]


def test_users_in_insertion_order():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2,)))
    g.add("z", ir.ReLU(), ["x"])
    g.add("a", ir.ReLU(), ["x"])
    g.add("m", ir.ReLU(), ["x"])
    assert g.users_of("x") == ["z", "a", "m"]


# ---------------------------------------------------------------------------------------------
# Editing.


def test_bypass_rewires_users_in_place_and_outputs():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2,)))
    g.add("y", ir.Input(shape=(2,)))
    g.add("s", ir.Scale(scale=np.float32(3.0)), ["x"])
    g.add("cat", ir.Concat(axis=0), ["y", "s"])
    g.add("r", ir.ReLU(), ["s"])
    g.outputs = ["cat", "s"]
    g.bypass("s")
    assert "s" not in g and len(g) == 4
    assert g.inputs_of("cat") == ["y", "x"]  # position kept
    assert g.inputs_of("r") == ["x"]
    assert g.outputs == ["cat", "x"]
    assert g.users_of("x") == ["cat", "r"]
    out = analog.evaluate(g, {"x": np.array([[1.0, 2.0]]), "y": np.array([[3.0, 4.0]])})
    np.testing.assert_array_equal(out["cat"], [[3, 4, 1, 2]])


def test_remove_drops_edges_and_outputs():
    g = small_ann()
    g.remove("d2")
    assert g.outputs == [] and g.users_of("r1") == [] and "d2" not in g


def test_unique_name():
    g = small_ann()
    assert g.unique_name("new") == "new"
    assert g.unique_name("d1") == "d1_1"
    g.add("d1_1", ir.ReLU(), ["d1"])
    assert g.unique_name("d1") == "d1_2"


def test_replace_keeps_edges():
    g = small_ann()
    g.replace("r1", ir.ReLU(ceiling=6.0))
    assert g.inputs_of("r1") == ["d1"] and g.users_of("r1") == ["d2"] and g["r1"].ceiling == 6.0


# ---------------------------------------------------------------------------------------------
# Queries and printing.


def test_is_spiking():
    ann = small_ann()
    assert not ann.is_spiking
    g = ir.Graph()  # no ReLU, no readout: still an ANN
    g.add("x", ir.Input(shape=(3,)))
    g.add("d", ir.Dense(weight=np.ones((2, 3))), ["x"])
    g.outputs = ["d"]
    assert not g.is_spiking
    assert small_snn().is_spiking
    no_readout = small_snn()
    no_readout.remove("out")
    no_readout.outputs = ["d2"]
    assert not no_readout.is_spiking  # populations but no readout
    mixed = small_snn()
    mixed.add("relu", ir.ReLU(), ["d1"])
    assert not mixed.is_spiking
    from snc.passes import PassContext, get

    converted = get("convert")(small_ann(), PassContext())
    assert converted.is_spiking


def test_table_rows_hand_computed():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(1, 4, 4)))
    w = np.zeros((2, 1, 3, 3), np.float32)
    w[0, 0, 1, 1] = 1.0
    w[1, 0, 0, :] = [1.0, 0.0, -2.0]
    g.add("c", ir.Conv2d(weight=w, padding=1), ["x"])
    g.add("h", ir.IF(shape=(2, 4, 4), threshold=0.5), ["c"])
    g.add("f", ir.Flatten(), ["h"])
    g.add("d", ir.Dense(weight=np.eye(5, 32, dtype=np.float32)), ["f"])
    g.add("out", ir.Readout(shape=(5,)), ["d"])
    g.outputs = ["out"]
    rows = g.table()
    assert [r["name"] for r in rows] == ["x", "c", "h", "f", "d", "out"]
    assert [r["kind"] for r in rows] == ["Input", "Conv2d", "IF", "Flatten", "Dense", "Readout"]
    assert [r["inputs"] for r in rows] == [[], ["x"], ["c"], ["h"], ["f"], ["d"]]
    assert [r["shape"] for r in rows] == [[1, 4, 4], [2, 4, 4], [2, 4, 4], [32], [5], [5]]
    assert [r["neurons"] for r in rows] == [0, 0, 32, 0, 0, 5]
    assert [r["synapses"] for r in rows] == [0, 3, 0, 0, 5, 0]
    conv = rows[1]["params"]
    assert conv["weight"] == "array(2, 1, 3, 3)"
    assert conv["padding"] == [1, 1, 1, 1] and conv["stride"] == [1, 1] and conv["groups"] == 1
    assert "bias" not in conv  # None is not printed
    assert rows[2]["params"]["threshold"] == 0.5 and rows[2]["params"]["reset"] == "subtract"
    assert rows[0]["params"] == {"shape": [1, 4, 4], "encoding": "direct"}


def test_copy_is_independent():
    g = small_ann()
    g.meta["notes"] = ["a"]
    g["d1"].meta["calibration"] = {"lambda": 1.0}
    c = g.copy()
    before = g["d1"].weight.copy()
    c["d1"].weight[0, 0] += 100.0
    c["d1"].meta["calibration"]["lambda"] = 2.0
    c.meta["notes"].append("b")
    c.add("r2", ir.ReLU(), ["d2"])
    c.set_inputs("d2", ["d1"])
    c.outputs.append("r2")
    c.replace("r1", ir.ReLU(ceiling=1.0))
    np.testing.assert_array_equal(g["d1"].weight, before)
    assert g["d1"].meta["calibration"]["lambda"] == 1.0
    assert g.meta["notes"] == ["a"]
    assert "r2" not in g and g.outputs == ["d2"] and g.inputs_of("d2") == ["r1"] and g["r1"].ceiling is None
    g.validate()


def test_node_replace_copies_meta():
    node = ir.ReLU(meta={"k": 1})
    other = node.replace(ceiling=2.0)
    other.meta["k"] = 2
    assert node.meta == {"k": 1} and node.ceiling is None
