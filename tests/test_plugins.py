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
[snc.neurons]
adaptive = snc_testplugin:NEURON
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
    # 16 hidden neurons on 64-neuron cores: one block each for hidden and readout, packed on one core.
    assert snn.meta["mapping"]["blocks"] == 2 and snn.meta["mapping"]["cores_used"] == 1
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


# --- a neuron model from a plug-in ----------------------------------------------------------
def _adaptive_graph(rng):
    """Spikes -> Dense -> AdaptiveIF (the plug-in's model) -> Dense -> Readout; weights and
    parameters on a 1/8 grid, so float32 sums are exact in any order."""
    from snc_testplugin import AdaptiveIF

    g = snc.ir.Graph("adaptive")
    g.add("x", snc.ir.Input(shape=(10,), encoding="spikes"))
    g.add("d1", snc.ir.Dense(weight=(rng.integers(-2, 6, (12, 10)) / 8).astype(np.float32)), ["x"])
    g.add("h", AdaptiveIF(shape=(12,), threshold=1.0, reset="subtract", adapt=0.5, adapt_decay=0.25), ["d1"])
    g.add("d2", snc.ir.Dense(weight=(rng.integers(-4, 5, (3, 12)) / 8).astype(np.float32)), ["h"])
    g.add("out", snc.ir.Readout(shape=(3,)), ["d2"])
    g.outputs = ["out"]
    return g


def _reference_float(node, w, spikes):
    """The model's equations, written out here (one sample): (T, n) spikes of the population."""
    th, beta, keep = np.float32(node.threshold), np.float32(node.adapt), np.float32(1.0 - node.adapt_decay)
    v = np.zeros(w.shape[0], np.float32)
    a = np.zeros(w.shape[0], np.float32)
    out = []
    for t in range(spikes.shape[0]):
        v = v + (w @ spikes[t]).astype(np.float32)
        s = v > th + a
        v = np.where(s, v - th, v).astype(np.float32)
        a = (a * keep + beta * s).astype(np.float32)
        out.append(s)
    return np.array(out)


def _reference_fixed(node, w_int, spikes):
    """The fixed-point equations (v units, 64 per unit of input), written out here."""
    vth6 = int(node.fixed.vth) << 6
    v = np.zeros(w_int.shape[0], np.int64)
    a = np.zeros(w_int.shape[0], np.int64)
    out = []
    for t in range(spikes.shape[0]):
        v = v + ((w_int @ spikes[t].astype(np.int64)) << 6)
        s = v > vth6 + a
        v = np.where(s, v - vth6, v)
        prod = a * (4096 - node.decay_fixed)
        a = np.sign(prod) * (np.abs(prod) >> 12) + s * node.adapt_fixed.reshape(-1)
        out.append(s)
    return np.array(out)


def test_a_neuron_model_from_a_plugin_runs_end_to_end(plugin, tmp_path):
    from snc.ir.models import model_of

    assert "AdaptiveIF" in registry.neuron_models()
    rng = np.random.default_rng(3)
    graph = _adaptive_graph(rng)
    x = (rng.random((24, 20, 10)) < 0.4).astype(np.float32)
    snn = snc.compile(graph, x, passes=("quantize", "map"), hw="testchip", timesteps=20, verify=True)
    h = snn.nodes["h"]
    assert h.kind == "AdaptiveIF" and h.adapt_fixed is not None and h.decay_fixed == 1024
    # Artifacts carry the plug-in's kind.
    snc.save(snn, tmp_path / "a.snir")
    snn = snc.load(tmp_path / "a.snir")
    assert type(snn.nodes["h"]).__name__ == "AdaptiveIF"
    # Float: spike for spike against the equations written out above.
    res = snc.simulate(snn, x, timesteps=20, rasters=range(len(x)))
    w1 = snn.nodes["d1"].weight
    spiked = 0
    for i in range(len(x)):
        ref = _reference_float(snn.nodes["h"], w1, x[i])
        np.testing.assert_array_equal(res.populations["h"].rasters[i], ref, err_msg=f"sample {i}")
        spiked += int(ref.sum())
    assert spiked > 0
    # Adaptation matters here: an IF population with the same weights spikes more.
    plain = snc.ir.IF(shape=(12,), threshold=1.0, reset="subtract")
    g_if = snn.copy()
    g_if.replace("h", plain)
    assert snc.simulate(g_if, x, timesteps=20).populations["h"].spikes.sum() > res.populations["h"].spikes.sum()
    # Fixed point: spike for spike against the integer equations.
    res_q = snc.simulate(snn, x, timesteps=20, arithmetic="fixed", rasters=range(len(x)))
    w_int = snn.nodes["d1"].fixed.weight.astype(np.int64) << int(snn.nodes["d1"].fixed.weight_exp)
    for i in range(len(x)):
        np.testing.assert_array_equal(res_q.populations["h"].rasters[i], _reference_fixed(snn.nodes["h"], w_int, x[i]))
    # Estimate on the plug-in chip: the model's update cost (2x IF) is in the energy.
    from snc.backends.sim import cycle_model
    from snc.estimate import estimate
    from snc.hw import load_profile

    full = estimate(snn, x, hw=["testchip"], timesteps=20)
    est = full.doc
    assert est["hw"]["name"] == "testchip"
    layer = full.costs["testchip"]["layers"]["h"]  # per inference
    original = cycle_model._update_cost
    try:
        cycle_model._update_cost = lambda node: 1.0  # as if it cost what an IF update costs
        as_if = estimate(snn, x, hw=["testchip"], timesteps=20)
    finally:
        cycle_model._update_cost = original
    chip = load_profile("testchip")
    # One more IF update's energy per update of h (dynamic energy; the longer steps also add static energy).
    extra = layer["active_updates"] * chip["energy_neuron_active"] + layer["inactive_updates"] * chip["energy_neuron_inactive"]
    assert extra > 0
    dynamic = full.costs["testchip"]["dynamic_energy_j"] - as_if.costs["testchip"]["dynamic_energy_j"]
    assert dynamic == pytest.approx(extra, rel=1e-6)
    assert est["totals"]["energy_j"] > as_if.doc["totals"]["energy_j"] + extra * 0.999
    # Export through the plug-in exporter.
    out = registry.backend("jsondump").export(snn, tmp_path / "out", timesteps=20)
    doc = json.loads((out / "network.json").read_text())
    assert {"name": "h", "kind": "AdaptiveIF", "neurons": 12} in doc["populations"]
    assert model_of("AdaptiveIF").update_cost == 2.0


def test_consumers_without_a_trait_refuse_the_plugin_model_by_node_and_kind(plugin, tmp_path):
    from snc.backends import analog
    from snc.backends.lava.emitter import build_export

    rng = np.random.default_rng(4)
    graph = _adaptive_graph(rng)
    x = (rng.random((8, 10, 10)) < 0.4).astype(np.float32)
    snn = snc.compile(graph, x, passes=("quantize",), timesteps=10)
    for fn in (lambda: build_export(snn), lambda: analog.evaluate(snn, x)):
        with pytest.raises(snc.UnsupportedOperator) as info:
            fn()
        msg = str(info.value)
        assert "'h'" in msg and "AdaptiveIF" in msg, msg
    from snc.passes import PassContext, get

    with pytest.raises(snc.UnsupportedOperator, match="'h'.*AdaptiveIF|AdaptiveIF.*'h'"):
        get("balance")(snn, PassContext(calibration=x))
    pruned = get("prune")(snn, PassContext(calibration=x))  # proves nothing dead in a declared model
    assert pruned.nodes["h"].present == 12
    res = CliRunner().invoke(main, ["neurons"])
    assert res.exit_code == 0 and "AdaptiveIF" in res.output and "plug-in" in res.output
    # Those with the traits run it: float and fixed simulation, quantize (above), relu view.
    snc.simulate(snn, x, timesteps=10, arithmetic="fixed")
    assert analog.evaluate(snn, x, mode="relu", keep=["h"])["h"].shape == (8, 12)
