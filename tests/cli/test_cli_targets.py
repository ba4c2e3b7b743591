"""CLI contract of the hardware, quantisation and Lava commands (issues 3-5)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

from snc.cli import main


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    d = tmp_path_factory.mktemp("targets")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 12), nn.ReLU(), nn.Linear(12, 4)).eval()
    x = torch.rand(1, 1, 4, 4)
    torch.onnx.export(model, (x,), str(d / "mlp.onnx"), dynamo=False)
    rng = np.random.default_rng(0)
    np.save(d / "x.npy", rng.random((40, 1, 4, 4)).astype(np.float32))
    np.save(d / "y.npy", rng.integers(0, 4, 40))
    return d


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_passes_lists_the_default_pipeline():
    res = invoke("passes")
    assert res.exit_code == 0
    listed = [line.split()[1] for line in res.output.splitlines() if line.startswith("* ") and "default pipeline" not in line]
    assert listed == ["fold-bn", "fold-affine", "convert", "balance", "quantize", "prune", "map"]
    assert "default pipeline: fold-bn,fold-affine,convert,balance,quantize,prune,map" in res.output


def test_hw_list_and_show():
    res = invoke("hw", "list")
    assert res.exit_code == 0
    for name in ("loihi", "loihi2", "truenorth", "sanafe_loihi", "horowitz45"):
        assert name in res.output
    res = invoke("hw", "show", "loihi")
    assert res.exit_code == 0 and "2.36e-11" in res.output
    assert "Davies" in res.output and "simulated" in res.output
    bad = invoke("hw", "show", "nope")
    assert bad.exit_code == 2 and "unknown hardware profile" in bad.output


def test_compile_reports_each_pass_and_quantises(ws, tmp_path):
    out = tmp_path / "q.snir"
    res = invoke("compile", ws / "mlp.onnx", "--calib", ws / "x.npy", "--calib-labels", ws / "y.npy", "-o", out,
                 "--timesteps", "16", "--weight-bits", "6", "--hw", "loihi")
    assert res.exit_code == 0, res.output
    for tag in ("[convert]", "[balance]", "[quantize]", "[prune]", "[map]"):
        assert tag in res.output
    from snc.ir import load

    g = load(out)
    assert g.meta["quantized"]["weight_bits"] == 6
    assert all(abs(n.fixed.weight).max() <= 31 for n in g.nodes.values() if n.kind == "Dense" and n.fixed is not None)
    assert g.meta["mapping"]["hw"] == "loihi"


def test_compile_without_quantisation_or_pruning(ws, tmp_path):
    out = tmp_path / "f.snir"
    res = invoke("compile", ws / "mlp.onnx", "--calib", ws / "x.npy", "-o", out, "--quantize", "none", "--no-prune")
    assert res.exit_code == 0, res.output
    from snc.ir import load

    g = load(out)
    assert g.meta["passes"] == ["fold-bn", "fold-affine", "convert", "balance", "map"]
    assert all(getattr(n, "fixed", None) is None for n in g.nodes.values())


def test_compile_for_a_chip_it_does_not_fit_fails_at_compile_time(ws, tmp_path):
    tiny = tmp_path / "tiny.toml"
    text = (Path(__file__).resolve().parents[2] / "snc" / "hw" / "profiles" / "loihi.toml").read_text()
    text = text.replace('name = "loihi"', 'name = "tiny"').replace("value = 4096\nunit = \"input axons per core\"",
                                                                    "value = 8\nunit = \"input axons per core\"")
    tiny.write_text(text)
    out = tmp_path / "never.snir"
    res = invoke("compile", ws / "mlp.onnx", "--calib", ws / "x.npy", "-o", out, "--hw", tiny)
    assert res.exit_code == 2
    assert "input axons" in res.output and "offers 8" in res.output
    assert not out.exists()


def test_compile_target_lava_and_export(ws, tmp_path):
    folder = tmp_path / "lava_prog"
    res = invoke("compile", ws / "mlp.onnx", "--calib", ws / "x.npy", "-o", folder, "--target", "lava", "--timesteps", "12")
    assert res.exit_code == 0, res.output
    assert {p.name for p in folder.iterdir()} >= {"network.json", "params.npz", "network.py", "run.py", "README.md"}
    art = tmp_path / "m.snir"
    assert invoke("compile", ws / "mlp.onnx", "--calib", ws / "x.npy", "-o", art, "--timesteps", "12").exit_code == 0
    folder2 = tmp_path / "exported"
    res = invoke("export", art, "--to", "lava", "-o", folder2)
    assert res.exit_code == 0, res.output
    assert json.loads((folder2 / "network.json").read_text())["fixed_point"] is True


def test_simulate_backend_lava_check_json(ws, tmp_path):
    art = tmp_path / "m.snir"
    assert invoke("compile", ws / "mlp.onnx", "--calib", ws / "x.npy", "-o", art, "--timesteps", "12").exit_code == 0
    res = invoke("simulate", art, "--data", ws / "x.npy", "--labels", ws / "y.npy", "--limit", "3", "--backend", "lava",
                 "--fixed-point", "--check", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["check"] == {"mismatches": 0, "first": None}
    assert doc["timing"] == "delay" and doc["samples"] == 3


def test_check_exits_1_on_a_mismatch(ws, tmp_path, monkeypatch):
    art = tmp_path / "m.snir"
    assert invoke("compile", ws / "mlp.onnx", "--calib", ws / "x.npy", "-o", art, "--timesteps", "12").exit_code == 0
    import snc.backends.lava.runner as runner

    real = runner.compare

    def broken(ours, lava):  # as if one spike had differed
        name = next(n for n, p in ours.populations.items() if p.kind == "IF")
        ours.populations[name].rasters[0][0, 0] ^= True
        return real(ours, lava)

    monkeypatch.setattr(runner, "compare", broken)
    res = invoke("simulate", art, "--data", ws / "x.npy", "--limit", "1", "--backend", "lava", "--fixed-point", "--check", "--json")
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["check"]["mismatches"] == 1
    assert doc["check"]["first"]["step"] == 0 and doc["check"]["first"]["neuron"] == 0


def test_option_errors_are_one_line(ws, tmp_path):
    res = invoke("simulate", ws / "mlp.onnx", "--calib", ws / "x.npy", "--data", ws / "x.npy", "--check")
    assert res.exit_code == 2 and "--backend lava" in res.output
    res = invoke("simulate", ws / "mlp.onnx", "--calib", ws / "x.npy", "--data", ws / "x.npy", "--backend", "lava", "--timing", "sync")
    assert res.exit_code == 2 and "delay" in res.output
