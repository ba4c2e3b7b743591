"""SpikingBrain's energy arithmetic (report §5.5, Eq. 24) reproduced from counts: 1.13 spikes
per channel x 0.03 pJ = 0.034 pJ per replaced MAC, 97.7 % below an FP16 MAC (1.5 pJ) and 85.2 %
below an INT8 MAC (0.23 pJ), with the 45 nm energies read from the horowitz45 profile."""
from __future__ import annotations

import numpy as np
import pytest

from snc.ir import spike_coding as sc
from snc.lm import energy


def _report_like_counts() -> np.ndarray:
    """1,000 channels: 184 silent (the report's 18.4 %), 659 with |c| = 1, 157 with |c| = 3:
    1,130 ternary events, 1.13 per channel."""
    c = np.zeros(1000, np.int64)
    c[184:184 + 659] = np.where(np.arange(659) % 2, 1, -1)
    c[184 + 659:] = 3
    return np.random.default_rng(0).permutation(c)


def test_the_reports_arithmetic_from_counts():
    st = sc.stats(_report_like_counts(), "ternary")
    assert st["spikes_per_channel"] == pytest.approx(1.13, abs=1e-12)
    assert st["silent_share"] == pytest.approx(0.184) and st["share_counts_le_7"] == 1.0
    ops = energy.OpEnergy.from_profile("horowitz45")
    assert (ops.add, ops.mac["fp16"], ops.mac["int8"]) == (3e-14, 1.5e-12, 2.3e-13)
    e = energy.per_replaced_mac(st["spikes_per_channel"], ops)
    assert e == pytest.approx(0.0339e-12, rel=1e-12)
    assert round(e * 1e12, 3) == 0.034  # the report's 0.034 pJ
    # The report rounds to 0.034 pJ first, then states the savings:
    assert round(100 * energy.saving(0.034e-12, ops.mac["fp16"]), 1) == 97.7
    assert round(100 * energy.saving(0.034e-12, ops.mac["int8"]), 1) == 85.2
    # Unrounded: 97.74 % and 85.26 %; ratios 44.2x and 6.78x (the report prints 43.48x, 6.76x).
    assert round(100 * energy.saving(e, ops.mac["fp16"]), 2) == 97.74
    assert round(100 * energy.saving(e, ops.mac["int8"]), 2) == 85.26
    assert round(ops.mac["fp16"] / e, 1) == 44.2 and round(ops.mac["int8"] / e, 2) == 6.78


def test_projection_counts_one_addition_per_event_and_output():
    c = _report_like_counts().reshape(10, 100)  # 10 tokens x 100 input channels
    st = sc.stats(c, "ternary")
    ops = energy.OpEnergy.from_profile("horowitz45")
    out = energy.projection(st["events"], c.size, 64, ops)
    assert out["effective_acs"] == 1130 * 64 and out["effective_macs"] == 1000 * 64
    assert out["energy_j"] / out["baseline_energy_j"] == pytest.approx(1.13 * 0.03 / 1.5)


def test_sparsity_definitions_by_hand():
    c = np.array([0, 1, -2, 5])  # ternary: events 0, 1, 2, 5 over T = 5 steps
    st = sc.stats(c, "ternary")
    assert st["steps"] == 5 and st["events"] == 8
    assert st["sparsity"] == pytest.approx(1 - 8 / 20)  # zeros / (channels x steps)
    assert st["sparsity_step3"] == pytest.approx(1 - (0 + 1 + 2 + 3) / 12)
    bw = sc.stats(c, "bitwise")  # 4 bits: 0000, 0001, 1110, 0101 -> 0 + 1 + 3 + 2 events
    assert bw["steps"] == 4 and bw["events"] == 6
    assert bw["events"] == int(np.count_nonzero(sc.expand(c, "bitwise")))
    assert sc.stats(c, "graded")["events"] == 3


def test_graded_events_cost_a_mac_and_chip_energy_counts_synops_and_updates():
    from snc.hw import load_profile

    ops = energy.OpEnergy.from_profile("horowitz45")
    assert energy.per_event("graded", ops) == ops.mac["int8"] and energy.per_event("ternary", ops) == ops.add
    p = load_profile("loihi2")
    got = energy.on_chip(2.5, 64, p)  # 2.5 events per token into 64 outputs
    assert got["synops"] == 160.0
    assert got["energy_j"] == pytest.approx(160 * p["energy_synop"] + 64 * p["energy_neuron_active"])
