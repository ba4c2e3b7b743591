"""`snc lm longctx` and `snc lm footprint`: the same numbers as the Python API, JSON and plot
written, an unknown preset one line with exit code 2 (the real console script)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from snc.cli import main
from snc.lm import footprint, longctx

from .test_cli import run_snc


def test_longctx_prints_the_tables_and_writes_json_and_plot(tmp_path):
    out = CliRunner().invoke(main, ["lm", "longctx", "--preset", "hybrid-370m", "--json", str(tmp_path / "r.json"),
                                    "--plot", str(tmp_path / "p.png")])
    assert out.exit_code == 0, out.output
    assert "## hybrid-370m" in out.output and "| 1M |" in out.output and "spikingbrain-7b" not in out.output
    rows = json.loads((tmp_path / "r.json").read_text())["hybrid-370m"]
    assert rows == json.loads(json.dumps(longctx.compare(longctx.PRESETS["hybrid-370m"])))
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_footprint_json_is_the_apis():
    out = CliRunner().invoke(main, ["lm", "footprint", "--preset", "spikingbrain-7b", "--no-head", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == [footprint.footprint(longctx.PRESETS["spikingbrain-7b"], "loihi2", 8, head=False)]


def test_an_unknown_preset_is_one_line_and_exit_code_2():
    r = run_snc(["lm", "footprint", "--preset", "gpt-5"])
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["snc: error: unknown preset 'gpt-5' (use one of spikingbrain-7b, hybrid-370m)"]


# --- a traced decoder through snc compile / simulate / estimate --per-token -----------------------

def _lm_files(tmp_path):
    import numpy as np
    import torch

    from examples.spiking_lm.model import ByteLM, Config

    cfg = Config(hidden=32, layers=2, heads=2, mlp=64, window=6, context=16)
    torch.manual_seed(0)
    model = ByteLM(cfg).eval()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (6, 16)), rng.integers(0, 256, (6, 16))
    torch.export.save(torch.export.export(model, (torch.from_numpy(x[:1]),)), tmp_path / "lm.pt2")
    np.save(tmp_path / "calib.npy", x[:3])
    np.save(tmp_path / "data.npy", x)
    np.save(tmp_path / "next.npy", y)
    return model, x, y


def test_a_traced_lm_compiles_simulates_and_estimates_per_token(tmp_path):
    import math

    import torch

    model, x, y = _lm_files(tmp_path)
    p = str(tmp_path)
    out = CliRunner().invoke(main, ["compile", f"{p}/lm.pt2", "-o", f"{p}/lm.snir", "--coding", "ternary", "--k", "3",
                                    "--calib", f"{p}/calib.npy", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output[out.output.index("{"):])
    assert doc["spike_code"]["coding"] == "ternary" and len(doc["coders"]) == 9 and all(c["steps"] for c in doc["coders"])
    sim = CliRunner().invoke(main, ["simulate", f"{p}/lm.snir", "--data", f"{p}/data.npy", "--labels", f"{p}/next.npy", "--json"])
    assert sim.exit_code == 0, sim.output
    s = json.loads(sim.output[sim.output.index("{"):])
    # the uncoded model's perplexity from PyTorch: the coded one is near it, and not equal
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    ppl = math.exp(float(torch.nn.functional.cross_entropy(logits.reshape(-1, 256), torch.from_numpy(y).reshape(-1))))
    assert s["perplexity"] != ppl and abs(s["perplexity"] / ppl - 1) < 0.05
    assert 0 <= s["accuracy"] <= 1
    assert s["tokens"] == 96 and s["coding"] == "ternary" and s["spikes_per_channel"] > 0
    est = CliRunner().invoke(main, ["estimate", f"{p}/lm.snir", "--data", f"{p}/data.npy", "--per-token", "--json"])
    assert est.exit_code == 0, est.output
    e = json.loads(est.output[est.output.index("{"):])
    keys = {"spikes_per_channel", "silent_share", "share_counts_le_7", "sparsity", "sparsity_step3", "effective_acs",
            "effective_macs", "energy_j", "coding", "k", "steps"}
    assert keys <= set(e["totals"]) and all(keys <= set(r) for r in e["layers"])
    assert e["hw"] == ["loihi2", "horowitz45"] and e["baseline"]["name"].startswith("fp16")
    table = CliRunner().invoke(main, ["estimate", f"{p}/lm.snir", "--data", f"{p}/data.npy", "--per-token", "--plot", f"{p}/plots"])
    assert table.exit_code == 0 and "TOTAL (projections)" in table.output and "energy per token on loihi2" in table.output
    assert (tmp_path / "plots" / "per_token.png").stat().st_size > 1000
    # the uncoded .pt2 simulates as the ANN baseline, with PyTorch's perplexity
    base = CliRunner().invoke(main, ["simulate", f"{p}/lm.pt2", "--data", f"{p}/data.npy", "--labels", f"{p}/next.npy", "--json"])
    b = json.loads(base.output[base.output.index("{"):])
    assert b["coding"] is None and b["perplexity"] == pytest.approx(ppl, rel=1e-5)


def test_lm_input_errors_are_one_line(tmp_path):
    import numpy as np

    _lm_files(tmp_path)
    np.save(tmp_path / "floats.npy", np.zeros((2, 16), np.float32))
    np.save(tmp_path / "short.npy", np.zeros((2, 8), np.int64))
    np.save(tmp_path / "big.npy", np.full((2, 16), 300, np.int64))
    for data, want in (("floats", "token ids must be integers"), ("short", "must be (N, 16)"), ("big", "must lie in [0, 256)")):
        r = run_snc(["simulate", tmp_path / "lm.pt2", "--data", tmp_path / f"{data}.npy"])
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert want in r.stderr and f"{data}.npy" in r.stderr
    r = run_snc(["compile", tmp_path / "lm.pt2", "-o", tmp_path / "x.snir", "--coding", "binary",
                 "--calib", tmp_path / "calib.npy"])
    assert r.returncode == 2 and "binary coding needs non-negative" in r.stderr and not (tmp_path / "x.snir").exists()
    r = run_snc(["estimate", tmp_path / "calib.npy", "--data", tmp_path / "data.npy", "--per-token"])
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
