"""The pass pipeline as a user meets it (issue 9): contracts checked before any work, typed
options, at most two simulations in a default compile, provable pruning, and a deep MLP with
its input normalisation inside the ONNX graph compiling with the default pipeline."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import snc
import snc.backends.sim as sim
from examples import digits, zoo
from snc.cli import main
from snc.errors import InvalidOption, MappingError
from snc.passes import CONVERSION, DEFAULT_PIPELINE


@pytest.fixture(scope="module")
def data():
    return digits.load_data()


@pytest.fixture(scope="module")
def cnn_onnx(tmp_path_factory, data):
    """The digits CNN (trained briefly) as ONNX."""
    model = zoo.train(digits.build_cnn(), data["x_train"], data["y_train"], epochs=8)
    return zoo.export_onnx(model, data["x_train"], tmp_path_factory.mktemp("cnn") / "cnn.onnx")


class Counter:
    def __init__(self, monkeypatch):
        self.calls = []
        real = sim.simulate

        def counting(graph, data, **kw):
            self.calls.append(kw.get("arithmetic", "float32"))
            return real(graph, data, **kw)

        monkeypatch.setattr(sim, "simulate", counting)


def test_a_default_compile_simulates_at_most_twice(cnn_onnx, data, monkeypatch):
    counter = Counter(monkeypatch)
    snn = snc.compile(cnn_onnx, data["x_train"][:200], verify=False, labels=data["y_train"][:200])
    assert len(counter.calls) <= 2
    assert snn.meta["compile"]["simulations"] == [] and len(counter.calls) == 0
    # One analog pass of the calibration data serves balance and map; quantize checks in the
    # rate limit.
    assert snn.meta["compile"]["analysis_passes"] == 1
    assert [t["name"] for t in snn.meta["pass_times"]] == list(DEFAULT_PIPELINE)
    messages = [e["message"] for e in snn.meta["report"]]
    assert any("rate limit; --verify simulates" in m for m in messages)
    assert snn.meta["mapping"]["rates"].startswith("rate limit of 200 calibration samples")


def test_verify_still_proves_quantize_and_prune_by_simulation(cnn_onnx, data, monkeypatch):
    counter = Counter(monkeypatch)
    x = data["x_train"][:40]
    snn = snc.compile(cnn_onnx, x, verify=True, timesteps=32)
    purposes = [s["purpose"] for s in snn.meta["compile"]["simulations"]]
    assert "quantize check (float)" in purposes and "quantize check (fixed point)" in purposes
    q = [e for e in snn.meta["report"] if e["pass"] == "quantize" and "agreement" in e][0]
    assert "simulated, T=32" in q["message"]
    if snn.meta["pruned"]["neurons_removed"]:
        assert sum(p.startswith("prune proof") for p in purposes) >= 2  # both timings
    # Every simulation the passes asked for went through snc's simulator (estimate() runs its own).
    assert len(counter.calls) == len([p for p in purposes if p != "estimate"])


def test_verify_catches_a_pruning_that_changes_outputs(cnn_onnx, data, monkeypatch):
    """--verify's proof is live: a simulator that reports one changed readout value on the pruned
    graph makes the compile fail."""
    from snc.errors import SncError

    real = sim.simulate

    def tampered(graph, x, **kw):
        r = real(graph, x, **kw)
        if any(getattr(n, "keep", None) is not None for n in graph.nodes.values()):
            r.outputs["readout"][0, 0] += 1.0
        return r

    monkeypatch.setattr(sim, "simulate", tampered)
    x = data["x_train"][:60]
    g = snc.compile(cnn_onnx, x, passes=[*CONVERSION, "quantize"], verify=False)
    # Make something provably dead: one hidden neuron's incoming weights all negative, no bias.
    name = [n for n in g.topological_order() if g.nodes[n].kind == "Dense"][0]
    node = g.nodes[name]
    w = node.weight.copy()
    w[0] = -np.abs(w[0])
    fx = node.fixed
    fw = fx.weight.copy()
    fw[0] = -np.abs(fw[0])
    g.replace(name, node.replace(weight=w, fixed=type(fx)(weight=fw, weight_exp=fx.weight_exp, weight_bits=fx.weight_bits)))
    target = g.users_of(name)[0]
    tn = g.nodes[target]
    if tn.bias is not None:
        b = tn.bias.copy()
        b.reshape(-1)[0] = 0.0
        bm = tn.fixed.bias_mant.copy()
        bm.reshape(-1)[0] = 0
        g.replace(target, tn.replace(bias=b, fixed=type(tn.fixed)(**{**tn.fixed.__dict__, "bias_mant": bm})))
    with pytest.raises(SncError, match="refusing"):
        snc.compile(g, x, passes=["prune"], verify=True)


@pytest.mark.parametrize("passes, needle", [
    (["map", "convert"], "pass 'map' requires a graph that is converted"),
    (["fold-bn", "balance"], "pass 'balance' requires a graph that is converted"),
    (["convert", "balance", "map"], None),
])
def test_passes_in_a_wrong_order_fail_before_any_work(cnn_onnx, data, passes, needle):
    started = []
    if needle is None:
        snc.compile(cnn_onnx, data["x_train"][:50], passes=passes, progress=started.append)
        assert started == passes
        return
    with pytest.raises(InvalidOption, match=needle):
        snc.compile(cnn_onnx, data["x_train"][:50], passes=passes, progress=started.append)
    assert started == []  # nothing ran


def test_a_named_chip_needs_fixed_point_before_map(cnn_onnx, data):
    with pytest.raises(InvalidOption, match="pass 'map' requires a graph that is fixed-point.*'quantize'"):
        snc.compile(cnn_onnx, data["x_train"][:50], passes=[*CONVERSION, "map"], hw="loihi")


@pytest.mark.parametrize("options, needle", [
    ({"prune_sparsity": 1.5}, "option 'prune_sparsity' must be a number in \\[0, 1\\)"),
    ({"weight_bits": "eight"}, "option 'weight_bits' must be an integer 2..9"),
    ({"scaling": "tensor"}, "option 'scaling' must be one of 'layer', 'channel'"),
    ({"input_range": (1.0, 0.0)}, "option 'input_range'"),
    ({"prune_sparsty": 0.5}, "unknown option 'prune_sparsty'"),
    ({"hw": "loihi7"}, "loihi7"),
])
def test_a_bad_option_fails_before_any_work(cnn_onnx, data, options, needle):
    started = []
    with pytest.raises(snc.SncError, match=needle):
        snc.compile(cnn_onnx, data["x_train"][:50], progress=started.append, **options)
    assert started == []


def test_the_cli_names_the_pass_and_the_requirement_in_one_line(cnn_onnx, data, tmp_path):
    np.save(tmp_path / "x.npy", data["x_train"][:50])
    runner = CliRunner()
    res = runner.invoke(main, ["compile", str(cnn_onnx), "--calib", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o.snir"),
                               "--passes", "map,convert"])
    assert res.exit_code == 2
    lines = [l for l in res.output.splitlines() if l.strip()]
    assert len(lines) == 1 and "pass 'map' requires a graph that is converted" in lines[0]
    assert not (tmp_path / "o.snir").exists()
    res = runner.invoke(main, ["compile", str(cnn_onnx), "--calib", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o.snir"),
                               "--input-range", "1,0"])
    assert res.exit_code == 2 and "--input-range" in res.output


def test_compile_prints_one_line_per_pass_and_json_lists_the_passes(cnn_onnx, data, tmp_path):
    np.save(tmp_path / "x.npy", data["x_train"][:80])
    runner = CliRunner()
    out = tmp_path / "o.snir"
    res = runner.invoke(main, ["compile", str(cnn_onnx), "--calib", str(tmp_path / "x.npy"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    lines = [l for l in res.output.splitlines() if l.startswith("pass ")]
    assert [l.split()[1] for l in lines] == list(DEFAULT_PIPELINE)
    assert all(" s  " in l for l in lines)
    res = runner.invoke(main, ["compile", str(cnn_onnx), "--calib", str(tmp_path / "x.npy"), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert [p["name"] for p in doc["passes"]] == list(DEFAULT_PIPELINE)
    for p in doc["passes"]:
        assert set(p) >= {"name", "seconds", "changes"} and p["seconds"] >= 0 and isinstance(p["changes"], list)
    assert any("provably dead" in c for p in doc["passes"] if p["name"] == "prune" for c in p["changes"])
    # A quantised artifact simulates in fixed point unless asked otherwise.
    np.save(tmp_path / "xt.npy", data["x_test"][:20])
    res = runner.invoke(main, ["simulate", str(out), "--data", str(tmp_path / "xt.npy"), "--json"])
    assert json.loads(res.output)["arithmetic"] == "fixed"
    res = runner.invoke(main, ["simulate", str(out), "--data", str(tmp_path / "xt.npy"), "--json", "--arithmetic", "float"])
    assert json.loads(res.output)["arithmetic"] == "float32"


@pytest.fixture(scope="module")
def wide_onnx(tmp_path_factory):
    """Conv 1->16 k2 then a Linear over all 11,664 spiking neurons: the readout needs more input
    axons than a Loihi core has (4,096), whatever pruning does."""
    from torch import nn

    x = np.random.default_rng(0).random((8, 1, 28, 28)).astype(np.float32)
    model = nn.Sequential(nn.Conv2d(1, 16, 2), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 27 * 27, 10))
    return zoo.export_onnx(model, x, tmp_path_factory.mktemp("wide") / "wide.onnx"), x


@pytest.mark.parametrize("flags", [[], ["--no-prune"]])
def test_the_default_chip_never_fails_a_compile_and_no_prune_does_not_change_that(wide_onnx, tmp_path, flags):
    path, x = wide_onnx
    np.save(tmp_path / "x.npy", x)
    res = CliRunner().invoke(main, ["compile", str(path), "--calib", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o.snir"),
                                    "--timesteps", "8", *flags])
    assert res.exit_code == 0, res.output
    assert "not mapped" in res.output and "input axons" in res.output


def test_a_named_chip_that_the_network_does_not_fit_fails(wide_onnx):
    path, x = wide_onnx
    with pytest.raises(MappingError, match="input axons"):
        snc.compile(path, x, hw="loihi", timesteps=8, verify=False)


def test_a_max_pool_after_the_analog_input_layer_runs_on_the_host(tmp_path):
    """The one-conv MNIST shape (Conv 1->32 k2, ReLU, MaxPool 4, Linear 1152->10): the pool runs
    on the host before the neurons, so the layer has 32x6x6 neurons (not 32x27x27 plus 17,280
    of the spiking max construction) and the readout's 1,152 input axons fit a Loihi core, with
    and without pruning."""
    x = np.random.default_rng(0).random((8, 1, 28, 28)).astype(np.float32)
    path = zoo.export_onnx(zoo.mnist_conv1(), x, tmp_path / "conv1.onnx")
    for prune in (True, False):
        passes = [p for p in DEFAULT_PIPELINE if prune or p != "prune"]
        snn = snc.compile(path, x, hw="loihi", timesteps=8, passes=passes, verify=False)
        kinds = [node.kind for node in snn.nodes.values()]
        assert kinds.count("HostMaxPool2d") == 1 and kinds.count("IF") == 1
        (pop,) = [n for n, node in snn.nodes.items() if node.kind == "IF"]
        assert snn[pop].shape == (32, 6, 6)
        assert snn.meta["mapping"]["hw"] == "loihi" and snn.meta["mapping"]["cores_used"] >= 1
    spiking = snc.compile(path, x, passes=CONVERSION, host_maxpool=False)
    assert sum(int(np.prod(n.shape)) for n in spiking.nodes.values() if n.kind == "IF") == 32 * 27 * 27 + 17280


def test_a_deep_mlp_with_normalisation_inside_the_graph_compiles_and_keeps_accuracy(data, tmp_path):
    """9 hidden Gemm+Relu layers of 200 after a constant Sub then Div (as torch.onnx exports
    (x - mean) / std), default pipeline and --quantize int8: SNN within 1 point of the ANN on
    held-back data."""
    x, y = data["x_train"] * 16, data["y_train"]  # raw 0..16 pixels: the graph normalises
    xt, yt = data["x_test"] * 16, data["y_test"]
    model = zoo.train(zoo.normalised_mlp(64, float(x.mean()), float(x.std())), x, y, epochs=30)
    path = zoo.export_onnx(model, x, tmp_path / "mlp.onnx")
    import onnx

    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert ops[:3] == ["Sub", "Div", "Flatten"] and ops.count("Gemm") == 10 and ops.count("Relu") == 9
    ann = zoo.accuracy(model, xt, yt)
    snn = snc.compile(path, x, timesteps=128, verify=False)
    assert snn.meta["quantized"]["weight_bits"] == 8
    acc = snc.simulate(snn, xt, labels=yt, timesteps=128, arithmetic="fixed").accuracy
    print(f"normalised 9x200 MLP: ANN {ann:.4f}, SNN default pipeline (fixed point, T=128) {acc:.4f}")
    assert acc >= ann - 0.01
    np.save(tmp_path / "x.npy", x)
    res = CliRunner().invoke(main, ["compile", str(path), "--calib", str(tmp_path / "x.npy"), "-o", str(tmp_path / "m.snir"),
                                    "--quantize", "int8", "--timesteps", "128"])
    assert res.exit_code == 0, res.output
    acc8 = snc.simulate(snc.load(tmp_path / "m.snir"), xt, labels=yt, arithmetic="fixed").accuracy
    assert acc8 >= ann - 0.01
