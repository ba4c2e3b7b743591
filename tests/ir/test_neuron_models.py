"""A neuron model that a consumer does not implement is refused by that consumer with a typed
error naming the node and the kind (issue 10, acceptance 2); consumers that only read the
graph's structure handle it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import snc
import snc.ir as ir
from snc.backends import analog
from snc.backends.lava.emitter import build_export
from snc.errors import UnsupportedOperator
from snc.ir import kinds
from snc.passes import PassContext, get
from snc.ir.annotations import blocks


@dataclass(eq=False)
class AdaptiveIF(ir.IF):
    """A test-only model: an IF population whose threshold would rise with each spike."""

    kind = "TestAdaptiveIF"
    adaptation: float = 0.1


@pytest.fixture
def graph(monkeypatch):
    monkeypatch.setitem(kinds.KINDS, AdaptiveIF.kind, AdaptiveIF)
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(6,)))
    g.add("d1", ir.Dense(weight=rng.normal(size=(5, 6)).astype(np.float32)), ["x"])
    g.add("ada", AdaptiveIF(shape=(5,)), ["d1"])
    g.add("d2", ir.Dense(weight=rng.normal(size=(3, 5)).astype(np.float32)), ["ada"])
    g.add("out", ir.Readout(shape=(3,)), ["d2"])
    g.outputs = ["out"]
    g.validate()
    return g


def _names_node_and_kind(fn):
    with pytest.raises(UnsupportedOperator) as info:
        fn()
    msg = str(info.value)
    assert "'ada'" in msg and "TestAdaptiveIF" in msg, msg


def test_consumers_that_implement_dynamics_refuse_it_by_node_and_kind(graph, tmp_path):
    x = np.random.default_rng(1).random((4, 6)).astype(np.float32)
    _names_node_and_kind(lambda: snc.simulate(graph, x, timesteps=4))
    _names_node_and_kind(lambda: snc.simulate(graph, x, timesteps=4, arithmetic="fixed"))
    _names_node_and_kind(lambda: get("quantize")(graph, PassContext(calibration=x)))
    _names_node_and_kind(lambda: build_export(graph))
    _names_node_and_kind(lambda: analog.evaluate(graph, x))
    from snc.estimate import estimate

    _names_node_and_kind(lambda: estimate(graph, x, timesteps=4))


def test_consumers_that_read_structure_handle_it(graph, tmp_path):
    x = np.random.default_rng(1).random((4, 6)).astype(np.float32)
    snc.save(graph, tmp_path / "g.snir")  # artifact I/O through the kind registry
    back = snc.load(tmp_path / "g.snir")
    assert back["ada"].kind == "TestAdaptiveIF" and back["ada"].adaptation == pytest.approx(0.1)
    rows = {r["name"]: r for r in graph.table()}  # snc inspect
    assert rows["ada"]["kind"] == "TestAdaptiveIF"
    relu = analog.evaluate(graph, x, mode="relu", keep=["ada"])  # the ANN view needs no dynamics
    assert relu["ada"].shape == (4, 5)
    mapped = get("map")(graph, PassContext())  # structure only: blocks and placement
    assert blocks(mapped, "ada")
