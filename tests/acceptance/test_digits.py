"""Issue 2 acceptance on the digits examples: SNN accuracy against the ANN, the accuracy-vs-T
behaviour, and agreement of the PyTorch and ONNX paths."""
from __future__ import annotations

import numpy as np
import pytest

from snc.passes import CONVERSION
import snc
from examples import digits
from snc.backends import analog
from snc.backends.sim import simulate
from snc.ir.annotations import maxpool_part


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    summary = digits.prepare(out, retrain=True, log=lambda m: None)
    return out, summary, digits.load_data()


def _structure(graph):
    rows = []
    shapes = graph.infer_shapes()
    for name in graph.topological_order():
        node = graph.nodes[name]
        rows.append((node.kind, shapes[name]))
    return rows


def _arrays(graph):
    out = []
    for name in graph.topological_order():
        node = graph.nodes[name]
        for field, value in node.array_fields():
            out.append((node.kind, field, value))
        if node.kind in ("IF", "LIF"):
            out.append((node.kind, "threshold", np.asarray(node.threshold)))
    return out


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_snn_accuracy_stays_within_one_point_and_does_not_fall_with_t(trained, name):
    out, summary, data = trained
    graph = snc.load_model(out / f"digits_{name}.pt2")
    ann = float(np.mean(analog.predict(graph, data["x_test"]) == data["y_test"]))
    assert ann == pytest.approx(summary["models"][name]["ann_accuracy"], abs=1e-9)  # the IR is the trained model
    snn = snc.compile(graph, calib=data["x_train"], passes=CONVERSION)
    if name == "cnn":  # max pooling became the spiking construction, not average pooling
        kinds = {n.kind for n in snn.nodes.values()}
        assert "AvgPool2d" not in kinds and any(maxpool_part(n) is not None and maxpool_part(n).unit for n in snn.nodes.values())
    acc = {t: simulate(snn, data["x_test"], labels=data["y_test"], timesteps=t, batch_size=150).accuracy for t in (64, 256)}
    print(f"{name}: ANN {ann:.4f}, SNN T=64 {acc[64]:.4f}, T=256 {acc[256]:.4f}")
    assert abs(acc[64] - ann) <= 0.010
    # Longer runs converge to the ANN and do not fall away from it (spike max-pooling would):
    # T=256 is not below both the T=64 result and the ANN. (On some CPUs the trained CNN scores
    # 98.67% and T=64 happens to get two images more than the ANN, T=256 exactly the ANN.)
    assert acc[256] >= min(acc[64], ann) - 0.003


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_pytorch_and_onnx_paths_give_the_same_network(trained, name):
    out, _, data = trained
    from_torch = snc.compile(snc.load_model(out / f"digits_{name}.pt2"), calib=data["x_train"], passes=CONVERSION)
    from_onnx = snc.compile(snc.load_model(out / f"digits_{name}.onnx"), calib=data["x_train"], passes=CONVERSION)
    assert _structure(from_torch) == _structure(from_onnx)
    a, b = _arrays(from_torch), _arrays(from_onnx)
    assert [(k, f) for k, f, _ in a] == [(k, f) for k, f, _ in b]
    for (kind, field, x), (_, _, y) in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5, err_msg=f"{kind}.{field}")
    r_torch = simulate(from_torch, data["x_test"], timesteps=64, batch_size=150)
    r_onnx = simulate(from_onnx, data["x_test"], timesteps=64, batch_size=150)
    np.testing.assert_array_equal(r_torch.predictions, r_onnx.predictions)


def test_estimate_on_the_digits_cnn_prints_the_table_and_writes_the_plots(trained, tmp_path):
    """Issue 3 acceptance 6: `snc estimate` on the digits CNN; the PNGs are real images."""
    import json

    from click.testing import CliRunner
    from matplotlib import image

    from snc.cli import main

    out, _, data = trained
    np.save(tmp_path / "x.npy", data["x_test"][:60])
    np.save(tmp_path / "y.npy", data["y_test"][:60])
    np.save(tmp_path / "cal.npy", data["x_train"][:300])
    plots = tmp_path / "plots"
    args = ["estimate", str(out / "digits_cnn.pt2"), "--calib", str(tmp_path / "cal.npy"), "--data", str(tmp_path / "x.npy"),
            "--labels", str(tmp_path / "y.npy"), "--hw", "loihi", "--hw", "loihi2", "--timesteps", "32", "--plot", str(plots)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    for words in ("loihi cores", "loihi2 energy (J)", "lat. share", "ANN baseline horowitz45:fp32", "inferences/s", "accuracy"):
        assert words in res.output
    expected = ["layer_energy.png", "layer_sparsity.png", "core_utilisation_loihi.png", "core_utilisation_loihi2.png", "raster.png"]
    for name in expected:
        img = image.imread(plots / name)
        assert img.shape[:2] == (450, 800), name  # 8 x 4.5 inches at 100 dpi
        assert img[..., :3].std() > 0.01, name  # not a blank canvas
    res = CliRunner().invoke(main, args[:-2] + ["--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    for key in ("name", "neurons", "cores", "spikes_per_sample", "synops", "energy_j", "latency_s"):
        assert all(key in layer for layer in doc["layers"])
    for key in ("energy_j", "latency_s", "synops", "effective_acs", "effective_macs", "activation_sparsity", "accuracy"):
        assert key in doc["totals"]
    assert set(doc["baseline"]) >= {"name", "energy_j", "ratio"}
    assert doc["baseline"]["ratio"] == pytest.approx(doc["baseline"]["energy_j"] / doc["totals"]["energy_j"])
    assert set(doc["per_hw"]) == {"loihi", "loihi2"}
    # Energies are per inference: the layers (host row included) plus input deliveries add up to the total.
    t = doc["totals"]
    assert sum(l["energy_j"] for l in doc["layers"]) + t["host_delivery_energy_j"] == pytest.approx(t["energy_j"], rel=1e-9)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_quantised_and_pruned_digits_networks(trained, name):
    """Issue 4: 8-bit fixed point within 0.5 point of the float SNN (4 bits reported); activity
    pruning keeps every calibration prediction bit-identical and test accuracy within 0.3 point."""
    out, _, data = trained
    x_cal, x_test, y_test = data["x_train"], data["x_test"], data["y_test"]
    snn = snc.compile(snc.load_model(out / f"digits_{name}.pt2"), calib=x_cal, passes=CONVERSION)
    float_acc = simulate(snn, x_test, labels=y_test, timesteps=64).accuracy
    acc = {}
    graphs = {}
    for bits in (8, 4):
        graphs[bits] = snc.compile(snn, calib=x_cal, passes=["quantize"], weight_bits=bits)
        acc[bits] = simulate(graphs[bits], x_test, labels=y_test, timesteps=64, arithmetic="fixed").accuracy
    print(f"{name}: float SNN {float_acc:.4f}, 8-bit {acc[8]:.4f}, 4-bit {acc[4]:.4f}")
    assert abs(acc[8] - float_acc) <= 0.005
    # Activity pruning is opt-in since issue 9; this test checks the result itself (every
    # calibration readout below), so the pass's own --verify simulations are not needed.
    pruned = snc.compile(graphs[8], calib=x_cal, passes=["prune"], prune_activity=True, verify=False)
    removed = pruned.meta["pruned"]["neurons_removed"]
    assert removed > 0 and any(e["pass"] == "prune" and "removed" in e["message"] for e in pruned.meta["report"])
    before = simulate(graphs[8], x_cal, timesteps=64, arithmetic="fixed")  # every calibration sample
    after = simulate(pruned, x_cal, timesteps=64, arithmetic="fixed")
    np.testing.assert_array_equal(before.predictions, after.predictions)
    for k in before.outputs:
        np.testing.assert_array_equal(before.outputs[k], after.outputs[k])  # bit-identical readouts
    test_after = simulate(pruned, x_test, labels=y_test, timesteps=64, arithmetic="fixed").accuracy
    print(f"{name}: pruned {removed} neurons; test accuracy {acc[8]:.4f} -> {test_after:.4f}")
    assert abs(test_after - acc[8]) <= 0.003


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_quantised_digits_networks_are_spike_identical_in_lava(trained, name):
    """Issue 5 acceptance 1: the quantised (and pruned) digits MLP and CNN on 20 test samples give
    the same spikes in every population at every step in Lava (fixed_pt) and in snc's simulator."""
    from snc.backends.lava import check

    out, _, data = trained
    snn = snc.compile(snc.load_model(out / f"digits_{name}.pt2"), calib=data["x_train"],
                      passes=list(CONVERSION) + ["quantize", "prune"], timesteps=32, verify=False)
    lava, ours, report = check(snn, data["x_test"][:20], timesteps=32, labels=data["y_test"][:20])
    assert report["mismatches"] == 0, report
    assert sum(len(p.rasters) for p in lava.populations.values() if p.kind == "IF") >= 20
    np.testing.assert_array_equal(lava.predictions, ours.predictions)
    for k, v in ours.outputs.items():
        np.testing.assert_array_equal(lava.outputs[k], v)
    print(f"{name}: Lava and snc agree on all spikes of 20 samples x 32 steps; accuracy {lava.accuracy:.2f}")


def test_digits_cnn_packs_onto_at_most_three_loihi_cores_and_pays_static_power_for_them(trained):
    """Issue 13 acceptance 2. The digits CNN's populations hold 1,226 neurons and about 1.07 M
    bits of synapses (8-bit weights + 6 overhead bits): more than one Loihi core (1,024 neurons,
    1,048,576 bits) and, packed, no more than 3. Static energy is charged for the cores used,
    the whole-chip figure is reported beside it, and dynamic + static = the chip's energy."""
    from snc.estimate import estimate
    from snc.hw import load_profile

    out, _, data = trained
    x_cal, x = data["x_train"][:300], data["x_test"][:40]
    snn = snc.compile(snc.load_model(out / "digits_cnn.pt2"), calib=x_cal, timesteps=32)
    m = snn.meta["mapping"]
    neurons = sum(r["neurons"] for r in m["cores"])
    bits = sum(r["memory_bits"] for r in m["cores"])
    floor = max(-(-neurons // 1024), -(-bits // 1048576))  # a lower bound on any packing
    assert m["hw"] == "loihi" and m["packed"] and floor <= m["cores_used"] <= 3 and m["cores_used"] < m["blocks"]
    est = estimate(snn, x, hw=["loihi"], timesteps=32)
    t = est.doc["totals"]
    p = load_profile("loihi")
    assert t["cores_used"] == m["cores_used"]
    assert t["static_energy_j"] == pytest.approx(p["static_power"] * m["cores_used"] / 128 * t["latency_s"], rel=1e-9)
    assert t["static_energy_whole_chips_j"] == pytest.approx(p["static_power"] * t["chips"] * t["latency_s"], rel=1e-9)
    assert t["dynamic_energy_j"] + t["static_energy_j"] == pytest.approx(t["chip_energy_j"], rel=1e-12)
    assert t["static_energy_j"] < t["static_energy_whole_chips_j"]
    # Energy by component adds up: dynamic (synaptic ops, neuron updates, spikes on / between
    # chips) + static of the cores used + host; and so do the layers' components.
    comp = t["energy_components_j"]
    assert set(comp) == {"synaptic_ops", "neuron_updates", "spikes_on_chip", "spikes_between_chips", "static", "host"}
    assert sum(comp.values()) == pytest.approx(t["energy_j"], rel=1e-9) and comp["static"] == t["static_energy_j"]
    assert comp["spikes_between_chips"] == 0.0 and t["chips"] == 1
    layer_sum = sum(sum(l["energy_components_j"].values()) for l in est.doc["layers"])
    assert layer_sum + t["host_delivery_energy_j"] == pytest.approx(t["energy_j"], rel=1e-9)
