"""snc.ir.projections: the one walk from a population to the populations feeding it."""
from __future__ import annotations

import numpy as np
import pytest

import snc.ir as ir
from snc.errors import InvalidGraph
from snc.ir.projections import fan_in, walk


def _graph() -> ir.Graph:
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2, 4, 4)))
    g.add("c0", ir.Conv2d(weight=np.ones((2, 2, 1, 1), np.float32)), ["x"])
    g.add("a", ir.IF(shape=(2, 4, 4)), ["c0"])
    g.add("c1", ir.Conv2d(weight=np.ones((2, 2, 3, 3), np.float32), padding=1), ["a"])
    g.add("b", ir.IF(shape=(2, 4, 4)), ["c1"])
    g.add("c2", ir.Conv2d(weight=np.ones((2, 2, 1, 1), np.float32)), ["b"])
    g.add("sum", ir.Add(), ["c2", "a"])  # residual join: b through c2, a directly
    g.add("f", ir.Flatten(), ["sum"])
    g.add("d", ir.Dense(weight=np.ones((3, 32), np.float32)), ["f"])
    g.add("out", ir.Readout(shape=(3,)), ["d"])
    g.outputs = ["out"]
    return g


def test_each_source_gets_the_operators_on_its_own_paths():
    g = _graph()
    fan = fan_in(g, "out")
    assert fan.ops == ("c2", "sum", "f", "d")
    assert fan.sources == ("a", "b")
    chains = {i.source: i.ops for i in fan.incoming}
    assert chains == {"a": ("sum", "f", "d"), "b": ("c2", "sum", "f", "d")}
    assert fan_in(g, "a").incoming[0].ops == ("c0",) and fan_in(g, "a").sources == ("x",)
    assert [f.target for f in walk(g)] == ["a", "b", "out"]


def test_a_readout_feeding_a_population_is_refused_by_name():
    g = _graph()
    g.add("d2", ir.Dense(weight=np.ones((3, 3), np.float32)), ["out"])
    g.add("late", ir.IF(shape=(3,)), ["d2"])
    with pytest.raises(InvalidGraph, match="'out'.*Readout cannot feed"):
        fan_in(g, "late")
