"""Cores and chips for a decoder's weights held as synapses (snc/lm/footprint.py), by hand."""
from __future__ import annotations

from snc.hw import load_profile
from snc.lm import footprint
from snc.lm.longctx import PRESETS, LMConfig


def test_a_projection_by_hand():
    p = load_profile("loihi2")  # 4096 inputs per neuron, 8192 neurons and 1,572,864 synapse bits per core
    # 5000 inputs: two partial sums of 2500; 1,572,864 // (2500 x 8) = 78 outputs per core;
    # 2 x ceil(10000 / 78) = 258 cores, plus ceil(10000 / 8192) = 2 for the merging neurons
    assert footprint.projection_cores(10000, 5000, p, 8) == 260
    assert footprint.projection_cores(100, 64, p, 8) == 1
    # sparse storage adds 6 bits per synapse: 1,572,864 // (64 x 14) = 1755 outputs per core
    assert footprint.projection_cores(3511, 64, p, 8, sparse=True) == 3


def test_a_small_decoder_by_hand():
    cfg = LMConfig("small", layers=1, hidden=64, mlp=128, heads=4, kv_heads=2, vocab=100, mixers=("linear",))
    names = [n for n, _, _ in footprint.projections(cfg)]
    assert names == ["0.q", "0.k", "0.v", "0.o", "0.g", "0.gate", "0.up", "0.down", "head"]
    f = footprint.footprint(cfg)
    assert f["projection_weights"] == 3 * 64 * 64 + 2 * 32 * 64 + 2 * 128 * 64 + 64 * 128 + 100 * 64
    assert (f["cores"], f["chips"], f["chips_by_synapse_count"]) == (9, 1, 1)


def test_presets_need_many_chips_and_the_head_counts():
    with_head = footprint.footprint(PRESETS["spikingbrain-7b"])
    without = footprint.footprint(PRESETS["spikingbrain-7b"], head=False)
    assert with_head["projection_weights"] - without["projection_weights"] == 3584 * 152064
    assert without["chips_by_synapse_count"] < without["chips"]  # the brief's figure assumes compression
