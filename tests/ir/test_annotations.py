"""Typed annotations (ir/annotations.py): one reader and writer each, carried by artifacts,
and artifacts of earlier snc versions (ad-hoc meta keys, per-node mapping copies) still read."""
from __future__ import annotations

import numpy as np

import snc.ir as ir
from snc.ir import artifact
from snc.ir.annotations import Block, MaxPoolPart, all_blocks, blocks, is_maxpool_construct, maxpool_part, set_blocks, with_maxpool_part


def _graph_with_parts() -> ir.Graph:
    g = ir.Graph("ann")
    g.add("x", ir.Input(shape=(2, 4, 4), encoding="spikes"))
    sel = with_maxpool_part({"other": 1}, MaxPoolPart(pool="mp", select=True))
    g.add("c", ir.Conv2d(weight=np.ones((2, 1, 2, 2), np.float32), groups=2, meta=sel), ["x"])
    unit = with_maxpool_part({}, MaxPoolPart(pool="mp", unit=True, source="x", level=2))
    g.add("u", ir.IF(shape=(2, 3, 3), meta=unit), ["c"])
    g.outputs = ["u"]
    return g


def test_parts_survive_an_artifact_round_trip():
    back = artifact.from_bytes(artifact.to_bytes(_graph_with_parts()))
    assert maxpool_part(back.nodes["c"]) == MaxPoolPart(pool="mp", select=True)
    assert back.nodes["c"].meta["other"] == 1  # other meta untouched
    assert maxpool_part(back.nodes["u"]) == MaxPoolPart(pool="mp", unit=True, source="x", level=2)
    assert maxpool_part(back.nodes["x"]) is None and not is_maxpool_construct(back.nodes["x"])


def test_earlier_keys_still_read():
    conv = ir.Conv2d(weight=np.ones((1, 1, 1, 1), np.float32), meta={"maxpool_construct": "mp", "maxpool_select": True})
    assert maxpool_part(conv) == MaxPoolPart(pool="mp", select=True)
    unit = ir.IF(shape=(3,), meta={"maxpool_unit_of": "mp", "maxpool_source": "h", "level": 1})
    assert maxpool_part(unit) == MaxPoolPart(pool="mp", unit=True, source="h", level=1)


def test_blocks_come_from_the_one_mapping():
    g = _graph_with_parts()
    assert blocks(g, "u") == [] and all_blocks(g) == {}
    g.meta["mapping"] = {"cores": [  # rows as the map pass writes them, ordered by core
        {"core": 0, "population": "u", "start": 9, "stop": 18},
        {"core": 1, "population": "out", "start": 0, "stop": 4},
        {"core": 5, "population": "u", "start": 0, "stop": 9}]}
    assert blocks(g, "u") == [Block("u", 0, 9, 5), Block("u", 9, 18, 0)]
    assert list(all_blocks(g)) == ["u", "out"] and all_blocks(g)["out"] == [Block("out", 0, 4, 1)]


def test_a_hand_made_placement_reads_back():
    g = _graph_with_parts()
    g.meta["mapping"] = {"hw": "loihi"}
    set_blocks(g, {"u": [(0, 9, 3), (9, 18, 1)]})
    assert g.meta["mapping"]["hw"] == "loihi"
    assert blocks(g, "u") == [Block("u", 0, 9, 3), Block("u", 9, 18, 1)]
