"""Plug-ins through entry points: a separate package (tests/plugin_pkg/snc_testplugin.py, placed in
a temporary site directory with its .dist-info, as pip would install it) adds a model format, a
backend (exporter and simulator) and a chip profile, and the CLI compiles, simulates, estimates
and exports with them without any change to snc."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import snc
from snc import registry
from snc.cli import main
from snc.errors import PluginError

PLUGIN = Path(__file__).parent / "plugin_pkg" / "snc_testplugin.py"


def _install(site: Path, entries: str) -> None:
    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(PLUGIN, site / PLUGIN.name)
    info = site / "snc_testplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: snc-testplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entries)


ENTRIES = """[snc.frontends]
npzmlp = snc_testplugin:FRONTEND
[snc.backends]
jsondump = snc_testplugin:BACKEND
broken = snc_testplugin:BROKEN
missing = snc_testplugin_absent:BACKEND
[snc.hw]
testchip = snc_testplugin:profile
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _install(site, ENTRIES)
    monkeypatch.syspath_prepend(str(site))
    yield site


def _mlp(path: Path, rng) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, w1=rng.normal(0, 0.5, (16, 8)).astype(np.float32), b1=rng.normal(0, 0.1, 16).astype(np.float32),
                 w2=rng.normal(0, 0.5, (3, 16)).astype(np.float32), b2=np.zeros(3, np.float32))


def test_registries_list_plugins_by_name_without_importing_them(plugin):
    assert {"onnx", "torch", "snir", "npzmlp"} <= set(registry.frontend_names())
    assert {"snc", "lava", "jsondump", "broken", "missing"} <= set(registry.backend_names())
    assert "testchip" in registry.hw_plugin_names()
    res = CliRunner().invoke(main, ["hw", "list"])
    assert res.exit_code == 0 and "testchip" in res.output and "(plug-in)" in res.output


def test_compile_simulate_estimate_export_through_plugins(plugin, tmp_path):
    rng = np.random.default_rng(0)
    model = tmp_path / "m.npzmlp"
    _mlp(model, rng)
    x = rng.random((40, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run = CliRunner().invoke
    art = tmp_path / "m.snir"
    res = run(main, ["compile", str(model), "--calib", str(tmp_path / "x.npy"), "-o", str(art), "--hw", "testchip",
                     "--timesteps", "16"])
    assert res.exit_code == 0, res.output
    snn = snc.load(art)
    assert snn.meta["mapping"]["hw"] == "testchip"
    # 16 hidden neurons on 64-neuron cores: one block each for hidden and readout.
    assert snn.meta["mapping"]["cores_used"] == 2
    for arithmetic in ("float", "fixed"):
        ours = run(main, ["simulate", str(art), "--data", str(tmp_path / "x.npy"), "--json", "--arithmetic", arithmetic,
                          "--timing", "delay"])
        theirs = run(main, ["simulate", str(art), "--data", str(tmp_path / "x.npy"), "--json", "--arithmetic", arithmetic,
                            "--backend", "jsondump"])
        assert ours.exit_code == 0 and theirs.exit_code == 0, theirs.output
        a, b = json.loads(ours.output), json.loads(theirs.output)
        assert a["arithmetic"] == b["arithmetic"] and a["timing"] == b["timing"] == "delay"
        assert a["totals"] == b["totals"]
    res = run(main, ["estimate", str(art), "--data", str(tmp_path / "x.npy"), "--hw", "testchip", "--json"])
    assert res.exit_code == 0, res.output
    est = json.loads(res.output)
    assert est["hw"]["name"] == "testchip" and est["totals"]["energy_j"] > 0
    res = run(main, ["export", str(art), "--to", "jsondump", "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "out" / "network.json").read_text())
    assert [p["neurons"] for p in doc["populations"]] == [16, 3]


def test_a_broken_plugin_is_one_clear_error(plugin, tmp_path):
    for name, match in (("broken", "gives int, not a Backend"), ("missing", "failed to load: ModuleNotFoundError")):
        with pytest.raises(PluginError, match=match):
            registry.backend(name)
        art = tmp_path / "a.snir"
        res = CliRunner().invoke(main, ["export", str(art), "--to", name, "-o", str(tmp_path / "o")])
        assert res.exit_code == 2 and match.split(":")[0] in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["export", str(tmp_path / "a.snir"), "--to", "nonesuch", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not one of" in res.output


def test_without_the_plugin_nothing_changes(tmp_path):
    assert "jsondump" not in registry.backend_names() and "testchip" not in registry.hw_plugin_names()
    p = tmp_path / "m.npzmlp"
    _mlp(p, np.random.default_rng(0))
    with pytest.raises(snc.InvalidModel, match="unknown model format '.npzmlp'"):
        snc.load_model(p)
