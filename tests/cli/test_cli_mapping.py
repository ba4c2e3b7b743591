"""``snc inspect --mapping``: the core mapping of a compiled network, checked against a hand
count on a network small enough to place by hand."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

import snc.ir as ir
from snc.cli import main
from snc.hw import load_profile
from snc.ir import artifact


def _mlp(path: Path) -> Path:
    g = ir.Graph("hand")
    g.add("x", ir.Input(shape=(16,)))
    g.add("d1", ir.Dense(weight=np.ones((12, 16), np.float32)), ["x"])
    g.add("h", ir.IF(shape=(12,)), ["d1"])
    g.add("d2", ir.Dense(weight=np.ones((3, 12), np.float32)), ["h"])
    g.add("out", ir.Readout(shape=(3,)), ["d2"])
    g.outputs = ["out"]
    artifact.save(g, path)
    return path


def _profile(path: Path, neurons: int) -> Path:
    base = load_profile("loihi")
    lines = ['name = "eight"', 'kind = "neuromorphic"']
    for key, q in base.quantities.items():
        value = neurons if key == "neurons_per_core" else q.value
        lines += [f"[quantities.{key}]", f"value = {json.dumps(value)}", f"unit = {json.dumps(q.unit)}",
                  f"status = {json.dumps(q.status)}", f"source = {json.dumps(q.source)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_inspect_mapping_matches_a_hand_placement(tmp_path):
    art = _mlp(tmp_path / "hand.snir")
    chip = _profile(tmp_path / "eight.toml", 8)
    run = CliRunner().invoke(main, ["inspect", str(art), "--mapping", "--hw", str(chip), "--json"])
    assert run.exit_code == 0, run.output
    doc = json.loads(run.stdout)
    # By hand, 8 neurons per core: h splits 8 + 4 (the neuron limit ends the first block); the
    # 3 readout neurons join h[8:12] (4 + 3 <= 8): 3 blocks on 2 cores. That core's input axons
    # are h[8:12]'s 16 inputs plus the readout's 12 sources: 28.
    assert (doc["blocks"], doc["cores_used"], doc["chips"]) == (3, 2, 1)
    cores = sorted(doc["cores"], key=lambda r: r["neurons"], reverse=True)
    assert [(c["populations"], c["neurons"], c["fan_in"], c["bound"]) for c in cores] == [
        (["h"], 8, 16, "neurons_per_core"), (["h", "out"], 7, 28, None)]
    assert cores[1]["neurons_use"] == 7 / 8
    assert cores[1]["memory_bits"] == (4 * 16 + 3 * 12) * (8 + 6)  # synapses x (8-bit weights + 6 overhead bits)
    assert doc["binding"] == {"neurons_per_core": 1, "none": 1}
    text = CliRunner().invoke(main, ["inspect", str(art), "--mapping", "--hw", str(chip), "--plot", str(tmp_path / "p")])
    assert text.exit_code == 0, text.output
    assert "limits that bind: neurons on 1; 1 core(s) not full" in text.stdout
    assert "h[8:12], out[0:3]" in text.stdout and "3 blocks on 2 cores of 1 chip(s) (packed)" in text.stdout
    assert (tmp_path / "p" / "core_utilisation_eight.png").stat().st_size > 0


def test_inspect_mapping_of_an_unmapped_network_is_one_line(tmp_path):
    art = _mlp(tmp_path / "hand.snir")
    run = CliRunner().invoke(main, ["inspect", str(art), "--mapping"])
    assert run.exit_code == 2
    assert "no core mapping" in run.output and "Traceback" not in run.output
    run = CliRunner().invoke(main, ["inspect", str(art), "--hw", "loihi"])
    assert run.exit_code == 2 and "--hw and --plot apply to --mapping" in run.output
