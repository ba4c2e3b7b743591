"""ANN baselines at matching levels of inclusion (snc.baselines, ``snc estimate``'s
``baseline.levels``): the compute-only ANN against a hand count of its MACs, the memory-inclusive
ANN and SNN against Lemaire et al. 2022's formulas written out here term by term, and the
command line's JSON and text."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import snc
from snc import baselines
from snc.backends.sim import simulate
from snc.cli import main
from snc.passes import CONVERSION

T = 8
PJ = 1e-12


def small_cnn() -> nn.Module:
    """Conv 1->2 k3 pad 1 on 6x6 -> ReLU -> avg pool 2 -> Conv 2->3 k2 -> ReLU -> Dense 12 -> 3."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(2, 3, 2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(12, 3)).eval()


# MACs by hand: C_out H_out W_out C_in k k per convolution, N_in N_out per dense layer.
HAND_MACS = 2 * 6 * 6 * 1 * 3 * 3 + 3 * 2 * 2 * 2 * 2 * 2 + 12 * 3  # 648 + 96 + 36 = 780
HAND_BIAS_ADDS = 2 * 6 * 6 + 3 * 2 * 2 + 3  # one per output of each (biased) layer: 87
HAND_NEURONS = 2 * 6 * 6 + 3 * 2 * 2 + 3  # two IF populations and the readout


@pytest.fixture(scope="module")
def compiled():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    calib = rng.random((40, 1, 6, 6), dtype=np.float32)
    # The float conversion alone: prune would remove neurons that can never fire, and the SNN counts
    # only the neurons that exist.
    snn = snc.compile(snc.from_torch(small_cnn(), torch.zeros(1, 1, 6, 6)), calib=calib, timesteps=T, passes=CONVERSION)
    x = rng.random((10, 1, 6, 6), dtype=np.float32)
    return snn, x, simulate(snn, x, timesteps=T)


# --- level "compute" ---------------------------------------------------------------------------------
def test_compute_level_ann_is_the_hand_count_of_macs_and_bias_adds(compiled):
    snn, _, result = compiled
    layers, pops = baselines.network(snn, result)
    level = baselines.compute_level(layers, pops, T, acs=0.0, host_macs=0.0, e_mac=4.6 * PJ, e_add=0.9 * PJ)
    assert level["ann"]["macs"] == HAND_MACS
    assert snn.meta["source_macs"] == HAND_MACS  # the legacy baseline counts the same MACs
    assert level["ann"]["bias_adds"] == HAND_BIAS_ADDS
    assert level["ann_energy_j"] == pytest.approx(HAND_MACS * 4.6 * PJ + HAND_BIAS_ADDS * 0.9 * PJ, rel=1e-12)


def test_compute_level_snn_counts_synapses_neuron_updates_resets_and_host_macs(compiled):
    snn, x, result = compiled
    layers, pops = baselines.network(snn, result)
    spikes = sum(p.spikes_per_sample for p in result.populations.values() if p.spiking)
    assert spikes > 0
    level = baselines.compute_level(layers, pops, T, acs=100.0, host_macs=324.0, e_mac=4.6 * PJ, e_add=0.9 * PJ)
    # Every neuron updates every step (one add), every spike resets (one add); IF has no leak.
    expected = (100.0 + T * HAND_NEURONS + spikes) * 0.9 * PJ + 324.0 * 4.6 * PJ
    assert level["snn"]["neuron_updates"] == T * HAND_NEURONS
    assert level["snn"]["leak_macs"] == 0
    assert level["snn_energy_j"] == pytest.approx(expected, rel=1e-12)
    assert level["ratio"] == pytest.approx(level["ann_energy_j"] / level["snn_energy_j"])


def test_network_reads_layer_shapes_and_spikes_off_the_graph(compiled):
    snn, x, result = compiled
    layers, pops = baselines.network(snn, result)
    conv1, conv2, fc = layers
    assert (conv1.kind, conv1.in_shape, conv1.out_shape, conv1.kernel, conv1.stride) == ("conv", (1, 6, 6), (2, 6, 6), (3, 3), (1, 1))
    assert conv1.analog_input and conv1.theta_in == 0  # a direct input: the host computes it
    assert (conv2.in_shape, conv2.out_shape, conv2.kernel) == ((2, 3, 3), (3, 2, 2), (2, 2))
    (first, second, readout) = [result.populations[p.name] for p in pops]
    # Average pooling is folded into conv2's synapses: its input spikes are the first population's.
    assert conv2.theta_in == pytest.approx(first.spikes_per_sample)
    assert fc.kind == "fc" and fc.inputs == 12 and fc.outputs == 3 and fc.theta_in == pytest.approx(second.spikes_per_sample)
    assert [p.neurons for p in pops] == [72, 12, 3]
    assert pops[-1].theta_out == 0  # the readout does not spike
    assert [p.bias_size for p in pops] == [2, 3, 3]  # one bias per output channel


def test_leak_macs_for_each_decaying_state():
    from snc.ir import IF, LIF

    assert baselines._decays(IF(shape=(2,))) == 0
    assert baselines._decays(LIF(shape=(2,))) == 0  # du = 1, dv = 0: an IF
    assert baselines._decays(LIF(shape=(2,), decay_voltage=0.1)) == 1
    assert baselines._decays(LIF(shape=(2,), decay_voltage=0.1, decay_current=0.5)) == 2


# --- level "compute+memory": Lemaire et al. 2022, written out independently ---------------------------
def e_ram(n: float) -> float:
    """Lemaire: one access to a 32-bit memory of n elements, in pJ."""
    return 1.09e-5 * n * 32 + 13.2


ADD, MUL = 0.1, 3.1  # pJ, 32-bit integer
MAC = ADD + MUL


def lemaire_small_net(theta_conv_in: float, theta_conv_out: float, leak: int = 0):
    """Conv 1->2 k3 on 6x6 (4x4 out, spike-encoded input), avg pool 2 (2x2), Dense 8 -> 3, T steps."""
    layers = [
        baselines.Layer("conv", "conv", (1, 6, 6), (2, 4, 4), kernel=(3, 3), bias=True, theta_in=theta_conv_in),
        baselines.Layer("fc", "fc", (8,), (3,), bias=True, theta_in=theta_conv_out),  # pooling folded in
    ]
    pops = [baselines.Population("conv_pop", 32, theta_out=theta_conv_out, leak=leak, bias_size=2),
            baselines.Population("readout", 3, theta_out=0.0, bias_size=3)]
    return layers, pops


def test_memory_inclusive_ann_against_lemaire_written_out():
    layers, pops = lemaire_small_net(50.0, 20.0)
    conv = (288 * MAC + 32 * ADD  # MACs C_out H_out W_out C_in k k, then one add per output
            + 288 * e_ram(36) + 288 * e_ram(18)  # input reads (input tensor), weight reads (18 weights)
            + 32 * e_ram(2) + 32 * e_ram(32)  # bias reads (2 biases), output writes (32 outputs)
            + (36 + 32 + 2 * 9) * ADD)  # addressing: C_in H_in W_in + C_out H_out W_out + C_out k k
    fc = (24 * MAC + 3 * ADD + 8 * e_ram(8) + 24 * e_ram(24) + 3 * e_ram(3) + 3 * e_ram(3) + 24 * ADD)
    level = baselines.compute_memory_level(layers, pops, T)
    assert level["ann_energy_j"] == pytest.approx((conv + fc) * PJ, rel=1e-12)


@pytest.mark.parametrize("leak", [0, 1])
def test_memory_inclusive_snn_against_lemaire_written_out(leak):
    theta_in, theta_mid = 50.0, 20.0
    layers, pops = lemaire_small_net(theta_in, theta_mid, leak=leak)
    # conv layer, per input spike: ceil(3/1)^2 x 2 accumulations, 2 x 3 x 3 weight reads and
    # potential reads and writes, one FIFO read, 2 addressing MACs and 3 x 3 addressing adds.
    conv = (theta_in * 9 * 2 * ADD + theta_in * 18 * e_ram(18) + 2 * theta_in * 18 * e_ram(32)
            + theta_in * e_ram(36) + 2 * theta_in * MAC + theta_in * 9 * ADD)
    # its neurons: T N accumulations, theta_out resets, potentials read and written and the bias read
    # every step, one output-FIFO write per spike, leak MACs T N for a LIF.
    conv_pop = (T * 32 * ADD + theta_mid * ADD + 2 * T * 32 * e_ram(32) + T * 32 * e_ram(2) + theta_mid * e_ram(32)
                + leak * T * 32 * MAC)
    # dense layer, per input spike: N_out accumulations, weight reads, potential reads, writes, addressing adds.
    fc = (theta_mid * 3 * ADD + theta_mid * 3 * e_ram(24) + 2 * theta_mid * 3 * e_ram(3) + theta_mid * e_ram(8)
          + theta_mid * 3 * ADD)
    readout = T * 3 * ADD + 2 * T * 3 * e_ram(3) + T * 3 * e_ram(3)  # no spikes: no reset, no FIFO write
    level = baselines.compute_memory_level(layers, pops, T)
    assert level["snn_energy_j"] == pytest.approx((conv + conv_pop + fc + readout) * PJ, rel=1e-12)
    assert level["ratio"] == pytest.approx(level["ann_energy_j"] / level["snn_energy_j"])
    parts = level["snn"]
    assert parts["ops_j"] + parts["addressing_j"] + parts["memory_j"] == pytest.approx(level["snn_energy_j"])


def test_an_analog_input_layer_is_the_ann_layer_once_on_the_snn_side():
    layer = baselines.Layer("conv", "conv", (1, 6, 6), (2, 4, 4), kernel=(3, 3), bias=True, analog_input=True)
    host = sum(t.energy_j for t in baselines.snn_layer_terms(layer))
    assert host == pytest.approx(sum(t.energy_j for t in baselines.fnn_terms(layer)), rel=1e-12)
    strided = dataclasses.replace(layer, analog_input=False, theta_in=10.0, stride=(2, 2))
    acc = [t for t in baselines.snn_layer_terms(strided) if t.what == "synaptic accumulations"][0]
    assert acc.count == 10 * math.ceil(3 / 2) ** 2 * 2


# --- the command line -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def artifact(tmp_path_factory, compiled):
    snn, x, _ = compiled
    root = tmp_path_factory.mktemp("baselines")
    snc.save(snn, root / "cnn.snir")
    np.save(root / "x.npy", x)
    return root


def _estimate(artifact, *extra):
    args = ["estimate", str(artifact / "cnn.snir"), "--data", str(artifact / "x.npy"), "--timesteps", str(T), *extra]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return res


def test_estimate_json_has_both_levels_with_like_for_like_ratios(artifact):
    doc = json.loads(_estimate(artifact, "--hw", "loihi", "--hw", "speck", "--json").stdout)
    base = doc["baseline"]
    assert {"name", "macs", "energy_j", "ratio"} <= set(base)  # the old contract stays
    assert base["macs"] == HAND_MACS and base["energy_j"] == pytest.approx(HAND_MACS * 4.6 * PJ)
    assert "mixed" in doc["units"]["baseline.ratio"]
    assert set(base["levels"]) == {"compute", "compute+memory"}  # no device level unless asked
    for level in base["levels"].values():
        assert level["ratio"] == pytest.approx(level["ann_energy_j"] / level["snn_energy_j"])
        assert level["what"]
    compute = base["levels"]["compute"]
    assert compute["ann_energy_j"] == pytest.approx(HAND_MACS * 4.6 * PJ + HAND_BIAS_ADDS * 0.9 * PJ)
    assert compute["snn"]["neuron_updates"] == T * HAND_NEURONS
    # The ANN and SNN of the levels do not depend on the chip; the hw entry names unpublished values.
    assert doc["per_hw"]["speck"]["baseline"]["levels"] == doc["per_hw"]["loihi"]["baseline"]["levels"]
    assert doc["per_hw"]["loihi"]["hw"]["unpublished"] == []
    speck = doc["per_hw"]["speck"]["hw"]
    assert "energy_synop" in speck["unpublished"] and "energy_synop" in speck["zero_placeholders"]
    assert speck["energy_is_lower_bound"]


def test_estimate_text_prints_one_line_per_level_and_the_unpublished_note(artifact):
    out = _estimate(artifact, "--hw", "loihi", "--hw", "speck").output
    for level in ("compute ", "compute+memory "):
        lines = [line for line in out.splitlines() if line.strip().startswith(level)]
        assert len(lines) == 2, out  # one per chip
        assert all("ANN " in line and "SNN " in line and "ANN / SNN = " in line for line in lines)
    assert "ANN baseline horowitz45:fp32" in out
    assert "unpublished: " in out and "lower bound" in out and "energy/inference >= " in out


def test_device_baseline_compares_with_the_published_measurement(artifact):
    doc = json.loads(_estimate(artifact, "--hw", "loihi", "--device-baseline", "nxtf-mnist-cnn", "--json").stdout)
    device = doc["baseline"]["levels"]["device"]
    assert device["ann_energy_j"] == pytest.approx(19e-3) and device["ann_device"] == "cpu"  # NxTF: CPU 19 mJ, GPU 111 mJ
    assert device["published_ann_j"] == {"cpu": pytest.approx(19e-3), "gpu": pytest.approx(111e-3)}
    assert device["published_snn_j"] == {"loihi": pytest.approx(0.66e-3)}
    t = doc["totals"]
    assert device["snn_energy_j"] == pytest.approx(t["dynamic_energy_j"] + t["static_energy_whole_chips_j"] + t["host_energy_j"])


def test_an_unknown_device_baseline_is_one_line_and_exit_code_2(artifact):
    script = Path(sys.executable).with_name("snc")
    proc = subprocess.run([str(script), "estimate", str(artifact / "cnn.snir"), "--data", str(artifact / "x.npy"),
                           "--device-baseline", "no-such-network"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("snc: error: "), proc.stderr
    assert "no-such-network" in lines[0] and "nxtf-mnist-cnn" in lines[0] and "nxtf-cifar10-mobilenet" in lines[0]
    assert proc.stdout == ""
