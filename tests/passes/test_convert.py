"""``convert``: an ANN graph becomes a spiking graph that computes the same logits.

Before threshold balancing (threshold 1, ``mode="relu"``) every population outputs relu(I + b)
and the readout integrates I + b, so the converted graph must reproduce the ANN exactly: biases
turned into per-neuron currents (also through padded convolutions and pooling), residual joins,
concatenations, the spiking max-pool construction and ReLU ceilings."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import snc.backends.sim as sim
import snc.ir as ir
from snc.backends import analog
from snc.errors import UnsupportedOperator
from snc.passes import PassContext, get
from snc.passes.maxpool import tournament
from snc.ir.annotations import maxpool_part


def _unit_of(node):
    part = maxpool_part(node)
    return part.pool if part is not None and part.unit else None


RTOL = 1e-5


def close(got, want, what=""):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def rand(rng, *shape, scale=0.5):
    return (rng.normal(size=shape) * scale).astype(np.float32)


def compile_no_balance(ann: ir.Graph, **options) -> tuple[ir.Graph, PassContext]:
    ctx = PassContext(options=options)
    g = ann
    for name in ("fold-bn", "fold-affine", "convert"):
        g = get(name)(g, ctx)
    return g, ctx


def ann_out(ann: ir.Graph, x: np.ndarray) -> np.ndarray:
    (name,) = ann.outputs
    return analog.evaluate(ann, x)[name]


def snn_out(snn: ir.Graph, x: np.ndarray) -> np.ndarray:
    (name,) = snn.outputs
    return analog.evaluate(snn, x, mode="relu")[name]


def raises_naming(exc_type, node, fn, *args):
    with pytest.raises(exc_type) as info:
        fn(*args)
    exc = info.value
    assert type(exc) is exc_type
    assert exc.node == node and repr(node) in str(exc) and "\n" not in str(exc)
    return exc


def assert_spiking(snn: ir.Graph) -> None:
    snn.validate()
    assert snn.is_spiking
    for name, node in snn.nodes.items():
        assert node.role != ir.ANN, name
        if node.kind in ("Dense", "Conv2d"):
            assert node.bias is None, name
        if node.kind == "IF":
            assert node.reset == "subtract" and np.all(np.asarray(node.threshold) == 1.0), name


# ---------------------------------------------------------------------------------------------
# Networks.


def padded_conv_avgpool(rng, include_pad=False):
    """Biases reach populations through padded convs and padded average pooling."""
    g = ir.Graph("padded")
    g.add("x", ir.Input(shape=(2, 7, 7)))
    g.add("c1", ir.Conv2d(weight=rand(rng, 4, 2, 3, 3), bias=rand(rng, 4), padding=(1, 2, 0, 1), stride=(1, 2)), ["x"])
    g.add("ap1", ir.AvgPool2d(kernel=3, stride=1, padding=1, count_include_pad=include_pad), ["c1"])  # before the ReLU
    g.add("r1", ir.ReLU(), ["ap1"])
    g.add("c2", ir.Conv2d(weight=rand(rng, 3, 4, 3, 3), bias=rand(rng, 3), padding=2, dilation=2), ["r1"])
    g.add("r2", ir.ReLU(), ["c2"])
    g.add("ap2", ir.AvgPool2d(kernel=2, stride=2, padding=(0, 1, 1, 0), count_include_pad=include_pad), ["r2"])
    g.add("sp", ir.SumPool2d(kernel=(1, 2), stride=1), ["ap2"])
    g.add("f", ir.Flatten(), ["sp"])
    n = int(np.prod(g.infer_shapes()["f"]))
    g.add("d", ir.Dense(weight=rand(rng, 5, n), bias=rand(rng, 5)), ["f"])
    g.outputs = ["d"]
    return g, (2, 7, 7)


def padded_conv_avgpool_include_pad(rng):
    return padded_conv_avgpool(rng, include_pad=True)


def residual(rng):
    g = ir.Graph("residual")
    g.add("x", ir.Input(shape=(3, 6, 6)))
    g.add("c0", ir.Conv2d(weight=rand(rng, 4, 3, 3, 3), bias=rand(rng, 4), padding=1), ["x"])
    g.add("r0", ir.ReLU(), ["c0"])
    g.add("c1", ir.Conv2d(weight=rand(rng, 4, 4, 3, 3), bias=rand(rng, 4), padding=1), ["r0"])
    g.add("r1", ir.ReLU(), ["c1"])
    g.add("c2", ir.Conv2d(weight=rand(rng, 4, 4, 3, 3), bias=rand(rng, 4), padding=1), ["r1"])
    g.add("sum", ir.Add(), ["c2", "r0"])
    g.add("r2", ir.ReLU(), ["sum"])
    g.add("proj", ir.Conv2d(weight=rand(rng, 4, 3, 1, 1), bias=rand(rng, 4), stride=1), ["x"])  # biased skip
    g.add("sum2", ir.Add(), ["r2", "proj"])
    g.add("r3", ir.ReLU(), ["sum2"])
    g.add("f", ir.Flatten(), ["r3"])
    g.add("d", ir.Dense(weight=rand(rng, 3, 144), bias=rand(rng, 3)), ["f"])
    g.outputs = ["d"]
    return g, (3, 6, 6)


def concat_branches(rng):
    g = ir.Graph("concat")
    g.add("x", ir.Input(shape=(6,)))
    g.add("d1", ir.Dense(weight=rand(rng, 4, 6), bias=rand(rng, 4)), ["x"])
    g.add("r1", ir.ReLU(), ["d1"])
    g.add("d2", ir.Dense(weight=rand(rng, 3, 6), bias=rand(rng, 3)), ["x"])  # linear branch, biased
    g.add("cat", ir.Concat(axis=0), ["d2", "r1"])
    g.add("d3", ir.Dense(weight=rand(rng, 5, 7), bias=rand(rng, 5)), ["cat"])
    g.add("r3", ir.ReLU(), ["d3"])
    g.add("cat2", ir.Concat(axis=0), ["r3", "r1", "x"])
    g.add("d4", ir.Dense(weight=rand(rng, 2, 15), bias=rand(rng, 2)), ["cat2"])
    g.outputs = ["d4"]
    return g, (6,)


def conv_concat_transpose(rng):
    g = ir.Graph("conv_concat")
    g.add("x", ir.Input(shape=(2, 5, 5)))
    g.add("a", ir.Conv2d(weight=rand(rng, 2, 2, 3, 3), bias=rand(rng, 2), padding=1), ["x"])
    g.add("b", ir.Conv2d(weight=rand(rng, 3, 2, 1, 1), bias=rand(rng, 3)), ["x"])
    g.add("rb", ir.ReLU(), ["b"])
    g.add("cat", ir.Concat(axis=0), ["rb", "a"])
    g.add("t", ir.Transpose(perm=(2, 1, 0)), ["cat"])
    g.add("rs", ir.Reshape(shape=(25, 5)), ["t"])
    g.add("r", ir.ReLU(), ["rs"])
    g.add("f", ir.Flatten(), ["r"])
    g.add("d", ir.Dense(weight=rand(rng, 3, 125), bias=rand(rng, 3)), ["f"])
    g.outputs = ["d"]
    return g, (2, 5, 5)


def maxpool_before_relu(rng):
    g = ir.Graph("mp_before")
    g.add("x", ir.Input(shape=(2, 7, 7)))
    g.add("c", ir.Conv2d(weight=rand(rng, 3, 2, 3, 3), bias=rand(rng, 3), padding=1), ["x"])
    g.add("mp", ir.MaxPool2d(kernel=3, stride=2, padding=1), ["c"])
    g.add("r", ir.ReLU(), ["mp"])
    g.add("f", ir.Flatten(), ["r"])
    g.add("d", ir.Dense(weight=rand(rng, 4, 48), bias=rand(rng, 4)), ["f"])
    g.outputs = ["d"]
    return g, (2, 7, 7)


def maxpool_after_relu(rng):
    g = ir.Graph("mp_after")
    g.add("x", ir.Input(shape=(2, 6, 6)))
    g.add("c", ir.Conv2d(weight=rand(rng, 3, 2, 3, 3), bias=rand(rng, 3), padding=1), ["x"])
    g.add("r", ir.ReLU(), ["c"])
    g.add("mp", ir.MaxPool2d(kernel=2, stride=2), ["r"])
    g.add("mp2", ir.MaxPool2d(kernel=(2, 3), stride=1, padding=(0, 1, 1, 1)), ["mp"])  # stacked
    g.add("c2", ir.Conv2d(weight=rand(rng, 2, 3, 2, 2), bias=rand(rng, 2)), ["mp2"])
    g.add("r2", ir.ReLU(), ["c2"])
    g.add("f", ir.Flatten(), ["r2"])
    n = int(np.prod(g.infer_shapes()["f"]))
    g.add("d", ir.Dense(weight=rand(rng, 4, n), bias=rand(rng, 4)), ["f"])
    g.outputs = ["d"]
    return g, (2, 6, 6)


def clipped(rng):
    g = ir.Graph("clip")
    g.add("x", ir.Input(shape=(8,)))
    g.add("d1", ir.Dense(weight=rand(rng, 10, 8, scale=2.0), bias=rand(rng, 10)), ["x"])
    g.add("r1", ir.ReLU(ceiling=1.0), ["d1"])
    g.add("d2", ir.Dense(weight=rand(rng, 3, 10), bias=rand(rng, 3)), ["r1"])
    g.outputs = ["d2"]
    return g, (8,)


def leftover_scaleshift(rng):
    """A BatchNorm after a ReLU that feeds an Add cannot fold anywhere: convert keeps its scale
    and turns its shift into currents."""
    g = ir.Graph("leftover")
    g.add("x", ir.Input(shape=(2, 4, 4)))
    g.add("c", ir.Conv2d(weight=rand(rng, 2, 2, 3, 3), bias=rand(rng, 2), padding=1), ["x"])
    g.add("r", ir.ReLU(), ["c"])
    g.add("bn", ir.BatchNorm(mean=rand(rng, 2), var=np.array([0.5, 2.0], np.float32), gamma=np.array([1.5, -0.7], np.float32),
                             beta=rand(rng, 2)), ["r"])
    g.add("c3", ir.Conv2d(weight=rand(rng, 2, 2, 1, 1)), ["x"])
    g.add("sum", ir.Add(), ["bn", "c3"])
    g.add("r2", ir.ReLU(), ["sum"])
    g.add("f", ir.Flatten(), ["r2"])
    g.add("d", ir.Dense(weight=rand(rng, 3, 32)), ["f"])
    g.outputs = ["d"]
    return g, (2, 4, 4)


NETS = [padded_conv_avgpool, padded_conv_avgpool_include_pad, residual, concat_branches, conv_concat_transpose,
        maxpool_before_relu, maxpool_after_relu, clipped, leftover_scaleshift]


@pytest.mark.parametrize("make", NETS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("host_maxpool", [True, False], ids=["host-maxpool", "spiking-maxpool"])
def test_converted_readout_equals_ann_logits(make, seed, host_maxpool):
    rng = np.random.default_rng(seed)
    ann, shape = make(rng)
    ann.validate()
    x = rng.normal(size=(24,) + shape).astype(np.float32)
    want = ann_out(ann, x)
    snn, ctx = compile_no_balance(ann, host_maxpool=host_maxpool)
    assert_spiking(snn)
    (readout,) = snn.outputs
    assert snn[readout].kind == "Readout" and snn[readout].mode == "membrane"
    close(snn_out(snn, x), want)
    # Every ReLU became an IF population of the same name.
    for name, node in ann.nodes.items():
        if node.kind == "ReLU":
            assert snn[name].kind == "IF", name


def test_padded_avgpool_ann_matches_torch():
    # Anchors the ANN semantics that convert must reproduce (count_include_pad False, padded conv).
    rng = np.random.default_rng(0)
    ann, shape = padded_conv_avgpool(rng)
    x = rng.normal(size=(5,) + shape).astype(np.float32)
    t = torch.from_numpy(x)
    c1 = F.conv2d(F.pad(t, (2, 1, 1, 0)), torch.from_numpy(ann["c1"].weight), torch.from_numpy(ann["c1"].bias), stride=(1, 2))
    a1 = torch.relu(F.avg_pool2d(c1, 3, 1, padding=1, count_include_pad=False))
    c2 = torch.relu(F.conv2d(a1, torch.from_numpy(ann["c2"].weight), torch.from_numpy(ann["c2"].bias), padding=2, dilation=2))
    a2 = F.avg_pool2d(F.pad(c2, (1, 0, 0, 1)), 2, 2)  # pad entries count as real zeros here ...
    ones = F.avg_pool2d(F.pad(torch.ones_like(c2[:1, :1]), (1, 0, 0, 1)), 2, 2)
    a2 = a2 / ones  # ... so divide by the share of real positions: count_include_pad=False
    sp = F.avg_pool2d(a2, (1, 2), 1) * 2
    d = F.linear(sp.flatten(1), torch.from_numpy(ann["d"].weight), torch.from_numpy(ann["d"].bias))
    close(ann_out(ann, x), d.numpy())


def test_bias_currents_through_padding_are_per_neuron():
    """x + t (per channel) before a padded conv: the border neurons see fewer shifted inputs."""
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2, 5, 5)))
    shift = np.array([0.5, -1.0], np.float32).reshape(2, 1, 1)
    g.add("norm", ir.ScaleShift(scale=np.ones((), np.float32), shift=shift), ["x"])
    w, b = rand(rng, 3, 2, 3, 3), rand(rng, 3)
    g.add("c", ir.Conv2d(weight=w, bias=b, padding=(1, 0, 2, 1)), ["norm"])
    g.add("r", ir.ReLU(), ["c"])
    g.add("ap", ir.AvgPool2d(kernel=2, stride=1, padding=1, count_include_pad=True), ["r"])
    g.add("f", ir.Flatten(), ["ap"])
    assert g.infer_shapes()["f"] == (3 * 7 * 5,)  # conv: (3, 6, 4); pool: (3, 7, 5)
    g.add("d", ir.Dense(weight=rand(rng, 2, 105), bias=rand(rng, 2)), ["f"])
    g.outputs = ["d"]
    snn, _ = compile_no_balance(g)
    assert "norm" not in snn
    const = torch.from_numpy(np.broadcast_to(shift, (2, 5, 5)).copy())[None]
    want = F.conv2d(F.pad(const, (0, 1, 1, 2)), torch.from_numpy(w), torch.from_numpy(b))[0].numpy()
    assert not np.allclose(want, want[:, 2:3, 1:2])  # the border really differs
    close(snn["r"].bias, want)
    close(snn["readout"].bias, g["d"].bias)  # nothing but d's own bias reaches the readout
    x = rng.normal(size=(8, 2, 5, 5)).astype(np.float32)
    close(snn_out(snn, x), ann_out(g, x))


def test_bias_through_average_pooling_hand_computed():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(1, 2, 2)))
    g.add("c", ir.Conv2d(weight=np.ones((1, 1, 1, 1), np.float32), bias=np.array([6.0], np.float32)), ["x"])
    g.add("ap", ir.AvgPool2d(kernel=2, stride=1, padding=1, count_include_pad=True), ["c"])
    g.add("r", ir.ReLU(), ["ap"])
    g.add("ap2", ir.AvgPool2d(kernel=2, stride=1, padding=1, count_include_pad=False), ["c"])
    g.add("r2", ir.ReLU(), ["ap2"])
    g.add("cat", ir.Concat(axis=0), ["r", "r2"])
    g.outputs = ["cat"]
    snn, _ = compile_no_balance(g)
    # Windows of a 2x2 image padded by 1 hold 1 real pixel at the corners, 2 at the edges, 4 in the centre.
    np.testing.assert_allclose(snn["r"].bias[0], [[1.5, 3, 1.5], [3, 6, 3], [1.5, 3, 1.5]])
    np.testing.assert_allclose(snn["r2"].bias[0], np.full((3, 3), 6.0))


def test_relu_output_becomes_a_spike_count_readout():
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(5,)))
    g.add("d", ir.Dense(weight=rand(rng, 3, 5), bias=rand(rng, 3)), ["x"])
    g.add("probs", ir.ReLU(), ["d"])
    g.outputs = ["probs"]
    snn, ctx = compile_no_balance(g)
    assert_spiking(snn)
    (r,) = snn.outputs
    assert snn[r].kind == "Readout" and snn[r].mode == "spike_count" and snn[r].bias is None
    assert snn.inputs_of(r) == ["probs"] and snn["probs"].kind == "IF"
    assert any(e.get("node") == r and "'probs'" in e["message"] for e in ctx.report)
    x = rng.normal(size=(10, 5)).astype(np.float32)
    close(snn_out(snn, x), ann_out(g, x))


def test_logit_output_becomes_a_membrane_readout_with_the_bias():
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(5,)))
    g.add("d", ir.Dense(weight=rand(rng, 3, 5), bias=np.array([1.0, -2.0, 0.5], np.float32)), ["x"])
    g.outputs = ["d"]
    snn, ctx = compile_no_balance(g)
    assert snn.outputs == ["readout"] and snn.inputs_of("readout") == ["d"]
    np.testing.assert_array_equal(snn["readout"].bias, [1.0, -2.0, 0.5])
    assert snn["d"].bias is None
    assert any(e.get("node") == "readout" and "'d'" in e["message"] for e in ctx.report)


def test_clip_ceiling_kept_in_meta():
    rng = np.random.default_rng(0)
    ann, shape = clipped(rng)
    snn, _ = compile_no_balance(ann)
    assert snn["r1"].meta["ceiling"] == 1.0
    x = rng.normal(size=(30,) + shape).astype(np.float32)
    acts = analog.evaluate(snn, x, keep=["r1"], mode="relu")["r1"]
    assert acts.max() == 1.0 and np.mean(acts == 1.0) > 0.1  # the ceiling is reached and applied
    pre = x @ ann["d1"].weight.T + ann["d1"].bias
    close(acts, np.clip(pre, 0, 1))


def test_multiple_outputs_get_named_readouts():
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(4,)))
    g.add("a", ir.Dense(weight=rand(rng, 2, 4), bias=rand(rng, 2)), ["x"])
    g.add("b", ir.Dense(weight=rand(rng, 3, 4)), ["x"])
    g.outputs = ["a", "b"]
    snn, _ = compile_no_balance(g)
    assert snn.outputs == ["readout_a", "readout_b"]
    x = rng.normal(size=(6, 4)).astype(np.float32)
    got = analog.evaluate(snn, x, mode="relu")
    want = analog.evaluate(g, x)
    close(got["readout_a"], want["a"])
    close(got["readout_b"], want["b"])


def test_convert_leaves_its_argument_alone_and_is_idempotent():
    rng = np.random.default_rng(0)
    ann, shape = residual(rng)
    before = [(n, node.kind) for n, node in ann.nodes.items()]
    snn, _ = compile_no_balance(ann)
    assert [(n, node.kind) for n, node in ann.nodes.items()] == before and ann["c0"].bias is not None
    ctx = PassContext()
    again = get("convert")(snn, ctx)
    assert list(again.nodes) == list(snn.nodes) and "already spiking" in ctx.report[-1]["message"]


def test_mixed_graph_is_refused_naming_the_population():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(3,)))
    g.add("d", ir.Dense(weight=np.ones((3, 3), np.float32)), ["x"])
    g.add("h", ir.IF(shape=(3,)), ["d"])
    g.add("r", ir.ReLU(), ["h"])
    g.outputs = ["r"]
    raises_naming(UnsupportedOperator, "h", get("convert"), g, PassContext())


def test_shift_beside_its_source_in_an_add():
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(3,)))
    g.add("d", ir.Dense(weight=rand(rng, 3, 3), bias=rand(rng, 3)), ["x"])
    g.add("r", ir.ReLU(), ["d"])
    g.add("ss", ir.ScaleShift(scale=np.ones((), np.float32), shift=np.full((), 0.5, np.float32)), ["r"])
    g.add("add", ir.Add(), ["ss", "r"])
    g.add("d2", ir.Dense(weight=rand(rng, 2, 3)), ["add"])
    g.outputs = ["d2"]
    x = rng.normal(size=(5, 3)).astype(np.float32)
    snn, _ = compile_no_balance(g)
    close(snn_out(snn, x), ann_out(g, x))


# ---------------------------------------------------------------------------------------------
# Max pooling.


def evaluate_tournament(n: int, x: np.ndarray) -> tuple[float, int]:
    """Evaluate the expression tournament(n) returns, by its documented meaning: unit u of level l
    is relu(sum of coef * term), a term being window element ("x", k) or an earlier unit (l', u');
    the result is the final sum. Returns (value, number of units)."""
    levels, final = tournament(n)
    units: dict[tuple[int, int], float] = {}

    def term(t):
        if t[0] == "x":
            return float(x[t[1]])
        assert t in units, f"unit {t} used before it is computed"
        return units[t]

    for li, level in enumerate(levels, start=1):
        for u, coefs in enumerate(level):
            units[(li, u)] = max(0.0, sum(c * term(t) for t, c in coefs.items()))
    return sum(c * term(t) for t, c in final.items()), len(units)


@pytest.mark.parametrize("n", range(1, 10))
def test_tournament_is_the_maximum(n):
    rng = np.random.default_rng(n)
    for trial in range(200):
        if trial % 2:
            x = rng.integers(0, 5, n).astype(np.float64)  # ties
        else:
            x = rng.random(n) * 10.0
        got, n_units = evaluate_tournament(n, x)
        if trial % 2:
            assert got == x.max()
        else:
            assert abs(got - x.max()) <= 1e-12 * max(1.0, x.max())
    assert n_units == n - 1  # one relu unit per comparison
    levels, _ = tournament(n)
    assert len(levels) == int(np.ceil(np.log2(n))) if n > 1 else levels == []
    # The maximum is a sum of spike trains: every coefficient of the final expression is +1.
    _, final = tournament(n)
    assert set(final.values()) == {1.0}


def _mp_graph(c, hw, kernel, stride, padding, dilation, ceiling=None):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(c,) + hw))
    g.add("r", ir.ReLU(ceiling=ceiling), ["x"])
    g.add("mp", ir.MaxPool2d(kernel=kernel, stride=stride, padding=padding, dilation=dilation), ["r"])
    g.outputs = ["mp"]
    return g


@pytest.mark.parametrize(
    "kernel, stride, padding, dilation",
    [((2, 2), (2, 2), 0, 1), ((3, 3), (2, 2), 1, 1), ((2, 3), (1, 2), 0, 1), ((2, 2), (1, 1), 0, 2),
     ((3, 2), (2, 1), (1, 0, 1, 1), (2, 1)), ((1, 1), (2, 2), 0, 1)],
    ids=["2x2", "3x3-s2-p1", "2x3", "dilation2", "3x2-asym", "1x1"],
)
def test_expanded_maxpool_equals_torch(kernel, stride, padding, dilation):
    rng = np.random.default_rng(0)
    c, hw = 3, (7, 8)
    ann = _mp_graph(c, hw, kernel, stride, padding, dilation)
    snn, ctx = compile_no_balance(ann, host_maxpool=False)  # the spiking construction
    assert_spiking(snn)
    assert "MaxPool2d" not in [n.kind for n in snn.nodes.values()]
    units = [n for n, node in snn.nodes.items() if _unit_of(node) == "mp"]
    k = kernel[0] * kernel[1]
    assert sum(int(np.prod(snn[u].shape)) for u in units) == (k - 1) * int(np.prod(ann.infer_shapes()["mp"]))
    assert snn["mp"].kind == "Add" and snn["mp"].meta["converted_from"] == "MaxPool2d"
    assert any(e.get("node") == "mp" for e in ctx.report)
    x = rng.normal(size=(6, c) + hw).astype(np.float32)
    p = ir.MaxPool2d(padding=padding).padding
    t = F.pad(torch.relu(torch.from_numpy(x)), (p[1], p[3], p[0], p[2]), value=float("-inf"))
    want = F.max_pool2d(t, kernel, stride, dilation=dilation).numpy()
    got = snn_out(snn, x)
    close(got, want)
    close(ann_out(ann, x), want)
    # Integer inputs: the relu(a - b) arithmetic is exact.
    xi = rng.integers(-4, 9, size=(4, c) + hw).astype(np.float32)
    ti = F.pad(torch.relu(torch.from_numpy(xi)), (p[1], p[3], p[0], p[2]), value=float("-inf"))
    np.testing.assert_array_equal(snn_out(snn, xi), F.max_pool2d(ti, kernel, stride, dilation=dilation).numpy())


def test_maxpool_over_rate_encoded_input_is_allowed():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(1, 4, 4), encoding="rate"))
    g.add("mp", ir.MaxPool2d(kernel=2, stride=2), ["x"])
    g.add("f", ir.Flatten(), ["mp"])
    g.add("d", ir.Dense(weight=np.eye(4, dtype=np.float32)), ["f"])
    g.outputs = ["d"]
    snn, _ = compile_no_balance(g)
    x = np.random.default_rng(0).random((3, 1, 4, 4)).astype(np.float32)
    want = x.reshape(3, 2, 2, 2, 2).max(axis=(2, 4)).reshape(3, 4)
    close(snn_out(snn, x), want)


@pytest.mark.parametrize("where", ["before-flatten", "output", "two-users", "direct-input"])
def test_maxpool_over_possibly_negative_values_is_refused(where):
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2, 4, 4)))
    if where == "direct-input":
        g.add("pool", ir.MaxPool2d(kernel=2, stride=2), ["x"])
        g.outputs = ["pool"]
    else:
        g.add("c", ir.Conv2d(weight=rand(rng, 2, 2, 3, 3), bias=rand(rng, 2), padding=1), ["x"])
        g.add("pool", ir.MaxPool2d(kernel=2, stride=2), ["c"])
        if where == "output":
            g.outputs = ["pool"]
        else:
            g.add("f", ir.Flatten(), ["pool"])
            g.add("d", ir.Dense(weight=rand(rng, 2, 8)), ["f"])
            g.outputs = ["d"]
            if where == "two-users":
                g.add("r", ir.ReLU(), ["pool"])  # a ReLU, but not the only user: no swap
                g.add("f2", ir.Flatten(), ["r"])
                g.add("cat", ir.Concat(), ["f", "f2"])
                g.replace("d", ir.Dense(weight=rand(rng, 2, 16)))
                g.set_inputs("d", ["cat"])
    g.validate()
    for run in (lambda: compile_no_balance(g), lambda: get("convert")(g, PassContext())):
        raises_naming(UnsupportedOperator, "pool", run)


def test_maxpool_swapped_with_following_relu_is_reported():
    rng = np.random.default_rng(0)
    ann, _ = maxpool_before_relu(rng)
    snn, ctx = compile_no_balance(ann, host_maxpool=False)
    notes = [e for e in ctx.report if "swapped" in e["message"]]
    assert len(notes) == 1 and notes[0]["node"] == "mp" and "'r'" in notes[0]["message"]
    assert snn.inputs_of("r") == ["c"]  # the population now reads the conv directly


def _pool_net(rng, kernel, stride, padding, dilation, shift=None):
    g = ir.Graph("host_pool")
    g.add("x", ir.Input(shape=(2, 9, 9)))
    src = "x"
    if shift is not None:
        g.add("ss", ir.ScaleShift(scale=np.ones((2, 1, 1), np.float32), shift=np.full((2, 1, 1), shift, np.float32)), ["x"])
        src = "ss"
    g.add("c", ir.Conv2d(weight=rand(rng, 4, 2, 3, 3), bias=rand(rng, 4), padding=1), [src])
    g.add("r", ir.ReLU(), ["c"])
    g.add("mp", ir.MaxPool2d(kernel=kernel, stride=stride, padding=padding, dilation=dilation), ["r"])
    g.add("f", ir.Flatten(), ["mp"])
    n = int(np.prod(g.infer_shapes()["f"]))
    g.add("d", ir.Dense(weight=rand(rng, 3, n)), ["f"])
    g.outputs = ["d"]
    return g


@pytest.mark.parametrize("kernel, stride, padding, dilation", [(2, 2, 0, 1), (3, 2, 1, 1), ((2, 3), (1, 2), 0, (2, 1))],
                         ids=["2x2", "3x3-s2-p1", "2x3-dilated"])
@pytest.mark.parametrize("timing", ["sync", "delay"])
def test_host_maxpool_fires_exactly_as_the_most_active_neuron_of_its_window(kernel, stride, padding, dilation, timing):
    """After an analog-input layer the max pool runs on the host before the neurons: each pooled
    neuron's spike count equals, at every T, the largest count in its window of the layer
    without pooling (constant input, and an IF neuron's count is monotone in it)."""
    rng = np.random.default_rng(3)
    ann = _pool_net(rng, kernel, stride, padding, dilation)
    host, ctx = compile_no_balance(ann)
    assert host["mp"].kind == "HostMaxPool2d" and host.inputs_of("r") == ["mp"] and host.inputs_of("mp") == ["c"]
    assert any("runs on the host" in e["message"] for e in ctx.report)
    plain = _pool_net(np.random.default_rng(3), kernel, stride, padding, dilation)
    plain.set_inputs("f", ["r"])
    plain.remove("mp")
    plain.replace("d", ir.Dense(weight=np.zeros((3, 4 * 9 * 9), np.float32)))
    unpooled, _ = compile_no_balance(plain)
    x = rng.random((12, 2, 9, 9)).astype(np.float32) * 2
    for steps in (5, 40):
        a = sim.simulate(host, x, timesteps=steps, timing=timing, rasters=range(len(x)))
        b = sim.simulate(unpooled, x, timesteps=steps, timing=timing, rasters=range(len(x)))
        got = np.stack([a.populations["r"].rasters[i].sum(axis=0) for i in range(len(x))]).reshape((len(x),) + host["r"].shape)
        counts = np.stack([b.populations["r"].rasters[i].sum(axis=0) for i in range(len(x))]).astype(np.float64)
        want = ir_maxpool(ann["mp"], counts.reshape((len(x),) + unpooled["r"].shape))
        np.testing.assert_array_equal(got, want)
        assert got.sum() > 0
    # and the readout still matches the ANN in the rate limit
    close(snn_out(host, x), ann_out(ann, x))


def ir_maxpool(node, counts):
    p = node.padding
    t = F.pad(torch.from_numpy(counts), (p[1], p[3], p[0], p[2]), value=float("-inf"))
    return F.max_pool2d(t, node.kernel, node.stride, dilation=node.dilation).numpy()


def test_host_maxpool_only_where_the_constant_currents_are_equal_in_every_window():
    """A shift before a padded convolution gives border neurons other constant currents than
    inner ones: max(z + c) is not max(z) + c there, so the pool stays spiking (with a note)."""
    ann = _pool_net(np.random.default_rng(0), 2, 2, 0, 1, shift=0.7)
    snn, ctx = compile_no_balance(ann)
    assert "HostMaxPool2d" not in [n.kind for n in snn.nodes.values()]
    assert any("stays spiking" in e["message"] and e["node"] == "mp" for e in ctx.report)
    x = np.random.default_rng(1).normal(size=(8, 2, 9, 9)).astype(np.float32)
    close(snn_out(snn, x), ann_out(ann, x))


def test_a_second_max_pool_after_a_host_pool_stays_spiking():
    rng = np.random.default_rng(0)
    ann, shape = maxpool_after_relu(rng)
    snn, _ = compile_no_balance(ann)
    assert snn["mp"].kind == "HostMaxPool2d" and snn["mp2"].kind == "Add"  # the spiking construction
    x = rng.normal(size=(8,) + shape).astype(np.float32)
    close(snn_out(snn, x), ann_out(ann, x))
    sim.simulate(snn, x, timesteps=4)  # the simulator's plan accepts it
