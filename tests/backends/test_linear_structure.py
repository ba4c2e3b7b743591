"""Projection structure computed from kernels (linear_maps.structure) equals what the composed
matrix says: fan-out per source neuron, synapse count and largest absolute row sum."""
from __future__ import annotations

import numpy as np
import pytest

import snc.ir as ir
from snc.backends import linear_maps as lm
from snc.backends.sim import build_plan


def _case(rng):
    groups = int(rng.choice([1, 2]))
    cin = groups * int(rng.integers(1, 3))
    cout = groups * int(rng.integers(1, 3))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    pad = tuple(int(p) for p in rng.integers(0, 3, size=4))
    stride = tuple(int(s) for s in rng.integers(1, 3, size=2))
    dil = tuple(int(s) for s in rng.integers(1, 3, size=2))
    h, w = int(rng.integers(3, 8)), int(rng.integers(3, 8))
    kind = int(rng.integers(0, 4))
    if kind == 3:
        node = ir.SumPool2d(kernel=(kh, kw), stride=stride, padding=pad)
    elif kind == 2:
        node = ir.Scale(scale=(rng.integers(-1, 2, size=(cin, 1, 1)) * 0.5).astype(np.float32))
    else:  # integer weights with zeros, some of them negative
        weight = (rng.integers(-2, 3, size=(cout, cin // groups, kh, kw)) * 1.5).astype(np.float32)
        node = ir.Conv2d(weight=weight, stride=stride, padding=pad, dilation=dil, groups=groups)
    return node, kind, (cin, h, w)


@pytest.mark.parametrize("seed", range(4))
def test_structure_matches_composed_matrix(seed):
    rng = np.random.default_rng(seed)
    checked = 0
    while checked < 40:
        node, kind, in_shape = _case(rng)
        try:
            out = node.infer_shape("c", [in_shape])
            node.check("c")
        except Exception:
            continue
        g = ir.Graph("t")
        g.add("x", ir.Input(shape=in_shape, encoding="spikes"))
        g.add("c", node, ["x"])
        last, shape = "c", out
        if kind == 1:  # behind a Flatten
            shape = (int(np.prod(out)),)
            g.add("f", ir.Flatten(), ["c"])
            last = "f"
        g.add("h", ir.IF(shape=shape, threshold=1.0), [last])
        shapes = {"x": in_shape, "c": out, "f": shape, "h": shape}
        nodes = ["c", "f"] if kind == 1 else ["c"]
        m = lm.compose(g, shapes, "x", "h", nodes)
        s = lm.structure(g, shapes, "x", "h", nodes)
        assert s is not None
        np.testing.assert_array_equal(s.fanout, np.diff(m.tocsc().indptr))
        assert s.nnz == m.nnz
        assert s.row_abs_max == (float(abs(m).sum(axis=1).max()) if m.nnz else 0.0)
        checked += 1


def test_plan_builds_matrices_only_on_demand():
    rng = np.random.default_rng(0)
    g = ir.Graph("res")
    g.add("x", ir.Input(shape=(3, 6, 6), encoding="spikes"))
    g.add("c1", ir.Conv2d(weight=rng.integers(-2, 3, size=(3, 3, 3, 3)).astype(np.float32), padding=1), ["x"])
    g.add("a", ir.IF(shape=(3, 6, 6), threshold=1.0), ["c1"])
    g.add("c2", ir.Conv2d(weight=rng.integers(-2, 3, size=(3, 3, 3, 3)).astype(np.float32), padding=1), ["a"])
    g.add("skip", ir.Scale(scale=np.float32(0.5)), ["x"])  # a residual join of two sources
    g.add("sum", ir.Add(), ["c2", "skip"])
    g.add("b", ir.IF(shape=(3, 6, 6), threshold=1.0), ["sum"])
    g.add("f", ir.Flatten(), ["b"])
    g.add("d", ir.Dense(weight=rng.standard_normal((4, 108)).astype(np.float32)), ["f"])
    g.add("out", ir.Readout(shape=(4,)), ["d"])
    g.outputs = ["out"]
    plan = build_plan(g)
    lazy = [p for pop in plan.populations for p in pop.projections if p._matrix is None]
    assert {(p.source, p.target) for p in lazy} == {("x", "a"), ("x", "b"), ("a", "b")}
    for pop in plan.populations:
        for p in pop.projections:
            fan, nnz = p.fanout.copy(), p.synapses
            p._structure = None  # recompute from the (now built) matrix
            np.testing.assert_array_equal(p.fanout, fan)
            assert p.synapses == nnz
