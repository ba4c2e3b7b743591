"""The spiking-LM example at a reduced size (CI): it trains, evaluates the float model and every
coding and k, and writes its results, tables and plot; the report's JSON keys are present."""
from __future__ import annotations

import json
import math

import pytest

from examples.spiking_lm import run

KEYS = {"spikes_per_channel", "silent_share", "share_counts_le_7", "sparsity", "sparsity_step3", "effective_acs",
        "effective_macs", "energy_j", "coding", "k", "steps"}


def test_reduced_example_runs_and_reports(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    assert run.main(["--steps", "30", "--text-bytes", "60000", "--eval-windows", "4", "--hidden", "32",
                     "--layers", "2", "--out", str(tmp_path / "out"), "--docs", str(docs)]) == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    results = doc["results"]
    base = results["float"]["perplexity"]
    assert 1.0 < base < 256.0  # better than uniform over bytes after 30 steps
    for coding in run.CODINGS:
        for k in run.KS:
            r = results[f"{coding}@{k}"]
            assert KEYS <= set(r["totals"]), coding
            assert math.isfinite(r["perplexity"])
            assert all(KEYS <= set(row) for row in r["layers"].values())
            assert len(r["layers"]) == 8 + 7  # q, k, v, o, gate, up, down per block; g in the linear block
    assert math.isfinite(results["w8aspike@3.0"]["perplexity"])
    # through the compiler: the traced IR's uncoded perplexity is PyTorch's; coded, it is near the
    # pseudo-spiking hooks' (same coding and k, the head analog in both; steps calibrated there)
    snc = results["snc"]
    assert snc["uncoded_perplexity"] == pytest.approx(base, rel=1e-5)
    assert snc["head_analog"]["perplexity"] == pytest.approx(results["ternary@3.0"]["perplexity"], rel=0.02)
    assert snc["head_analog"]["perplexity"] != snc["uncoded_perplexity"]
    assert KEYS <= set(snc["head_coded"]["totals"]) and len(snc["head_coded"]["layers"]) == 8 + 7 + 1
    assert (tmp_path / "out" / "lm.pt2").exists() and (tmp_path / "out" / "tokens.npy").exists()
    assert (docs / "spiking_lm_results.md").exists() and (docs / "spiking_lm_k_sweep.png").stat().st_size > 1000
