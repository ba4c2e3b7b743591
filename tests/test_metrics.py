"""NeuroBench's own test oracles (NeuroBench/neurobench @ e521c28, tests/test_metrics.py and
tests/models/model_list.py, as transcribed in ../shared/reference/ENERGY_AND_METRICS.md 3.3-3.4)
reproduced with snc's counting, plus SpikingBrain's energy arithmetic."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from snc.passes import CONVERSION
import snc
import snc.ir as ir
from snc import metrics
from snc.backends import linear_maps
from snc.backends.sim import simulate
from snc.backends.sim.recorders import NeuroBenchCounter


def _fanout(node, in_shape):
    out = node.infer_shape("n", [in_shape])
    m = linear_maps.matrix(node, [in_shape], out, 0)
    return np.diff(m.tocsc().indptr)


def _dense_count(node, in_shape):
    ones = node.replace(weight=np.ones_like(node.weight))
    out = node.infer_shape("n", [in_shape])
    return linear_maps.matrix(ones, [in_shape], out, 0).nnz


def _linear(n_in, n_out, seed):
    torch.manual_seed(seed)
    w = torch.nn.Linear(n_in, n_out, bias=False).weight.detach().numpy()
    return ir.Dense(weight=w)


def test_oracle_linear_sigmoid_linear_relu_counts_1125_macs():
    # Linear(20,25,nobias) -> Sigmoid -> Linear(25,25) -> ReLU; input (1,20): ten 5s then ten 1s.
    x = np.array([[5.0] * 10 + [1.0] * 10], np.float32)
    l1, l2 = _linear(20, 25, 0), _linear(25, 25, 1)
    h = 1 / (1 + np.exp(-(x @ l1.weight.T)))  # sigmoid output: non-binary, non-zero
    assert not metrics.is_spiking_input(x) and not metrics.is_spiking_input(h)
    macs = metrics.effective_ops(x, _fanout(l1, (20,))).sum() + metrics.effective_ops(h, _fanout(l2, (25,))).sum()
    assert macs == 1125


def test_oracle_four_linear_layers_count_2150_macs():
    x = np.array([[5.0] * 10 + [1.0] * 10], np.float32)
    sizes = [20, 20, 25, 25, 25]
    total = 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = _linear(a, b, i)
        total += metrics.effective_ops(x, _fanout(layer, (a,))).sum()
        x = 1 / (1 + np.exp(-(x @ layer.weight.T)))
    assert total == 2150  # 400 + 500 + 625 + 625


@pytest.mark.parametrize("size, expected", [(3, 9), (12, 900)])
def test_oracle_conv2d_counts(size, expected):
    torch.manual_seed(0)
    conv = ir.Conv2d(weight=torch.nn.Conv2d(1, 1, 3, bias=False).weight.detach().numpy())
    x = np.ones((1, 1, size, size), np.float32)
    x[0, 0, 0, 0] = 4
    assert metrics.effective_ops(x, _fanout(conv, (1, size, size))).sum() == expected


def test_oracle_conv1d_counts_150_macs():
    # Conv1d(5,1,5,nobias) on 1x5x10 ones (one entry 4): a Conv2d over a height of 1.
    torch.manual_seed(0)
    w = torch.nn.Conv1d(5, 1, 5, bias=False).weight.detach().numpy()[:, :, None, :]
    conv = ir.Conv2d(weight=w)
    x = np.ones((1, 5, 1, 10), np.float32)
    x[0, 0, 0, 0] = 4
    assert metrics.effective_ops(x, _fanout(conv, (5, 1, 10))).sum() == 150


def test_padded_convolution_dense_ops_exclude_the_padding():
    # 3x3 kernel, padding 1, on 3x3: corners see 4 inputs, edges 6, the centre 9 -> 49 < 81.
    conv = ir.Conv2d(weight=np.ones((1, 1, 3, 3), np.float32), padding=1)
    assert _dense_count(conv, (1, 3, 3)) == 4 * 4 + 4 * 6 + 9
    x = np.ones((1, 1, 3, 3), np.float32)
    assert metrics.effective_ops(x, _fanout(conv, (1, 3, 3))).sum() == 49
    # A zero weight is skipped by effective ops but still counted by dense ops.
    w = np.ones((1, 1, 3, 3), np.float32)
    w[0, 0, 1, 1] = 0
    conv0 = ir.Conv2d(weight=w, padding=1)
    assert _dense_count(conv0, (1, 3, 3)) == 49
    assert metrics.effective_ops(x, _fanout(conv0, (1, 3, 3))).sum() == 49 - 9


def _leaky_net(n_in=20, n_out=5, beta=0.9):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(n_in,), encoding="spikes"))
    torch.manual_seed(0)
    w = torch.nn.Linear(n_in, n_out, bias=False).weight.detach().numpy()
    g.add("fc", ir.Dense(weight=w), ["x"])
    g.add("lif", ir.LIF(shape=(n_out,), threshold=1.0, decay_voltage=1 - beta, decay_current=1.0), ["fc"])
    g.add("read", ir.Dense(weight=np.eye(n_out, dtype=np.float32)), ["lif"])
    g.add("out", ir.Readout(shape=(n_out,)), ["read"])
    g.outputs = ["out"]
    return g


def test_oracle_linear_leaky_counts_1000_acs_and_50_membrane_updates():
    # Linear(20,5,nobias) -> snn.Leaky(beta=0.9), ones, batch 5, T=10.
    g = _leaky_net()
    x = np.ones((5, 10, 20), np.float32)
    r = simulate(g, x, timesteps=10, recorders=[NeuroBenchCounter()])
    nb = metrics.neurobench(g, r)
    # fc: 20 x 5 = 100 ACs per step; the identity readout layer adds lif's spikes, so compare fc alone:
    fc_acs = 20 * 5 * 10
    lif_spikes = r.populations["lif"].spikes.sum(axis=1).mean()
    assert nb["SynapticOperations"]["Effective_ACs"] == pytest.approx(fc_acs + lif_spikes)
    assert nb["SynapticOperations"]["Effective_MACs"] == 0
    lif_only = metrics.membrane_updates(r)
    assert lif_only == 50  # 5 neurons updated at each of 10 steps
    # Zero input: only the first call counts (NeuroBench: NeuronOps 20 = 5 updates x 4 ops).
    r0 = simulate(g, np.zeros((5, 10, 20), np.float32), timesteps=10)
    assert metrics.membrane_updates(r0) == 5


def test_analog_input_counts_macs_and_dense_gsc_mlp():
    # GSC SNN MLP 20-256-256-256-35: Dense = (20*256 + 256*256 + 256*256 + 256*35) x 200 = 29,030,400.
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(20,)))
    prev, sizes = "x", [20, 256, 256, 256, 35]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        g.add(f"fc{i}", ir.Dense(weight=rng.normal(0, 0.2, (b, a)).astype(np.float32)), [prev])
        if i < 3:
            g.add(f"h{i}", ir.IF(shape=(b,), threshold=1.0), [f"fc{i}"])
            prev = f"h{i}"
    g.add("out", ir.Readout(shape=(35,)), ["fc3"])
    g.outputs = ["out"]
    x = rng.random((3, 20)).astype(np.float32)
    x[:, 0] = 0.0  # a zero analog input costs nothing
    r = simulate(g, x, timesteps=200, recorders=[NeuroBenchCounter()])
    nb = metrics.neurobench(g, r)
    assert nb["SynapticOperations"]["Dense"] == 29_030_400
    # The first layer is fed analog values: MACs = non-zero inputs x 256 per step.
    assert nb["SynapticOperations"]["Effective_MACs"] == 19 * 256 * 200
    spikes = sum(r.populations[f"h{i}"].spikes.sum(axis=1).mean() * n for i, n in enumerate([256, 256, 35]))
    assert nb["SynapticOperations"]["Effective_ACs"] == pytest.approx(spikes)


def test_dense_ops_of_the_m5_cnn_are_1_880_256():
    # NeuroBench's GSC ANN (M5, 8 kHz input): conv1 k80 s16, conv2-4 k3, pooling 4, fc 64->35.
    g = ir.Graph()
    g.add("x", ir.Input(shape=(1, 1, 8000)))
    specs = [(1, 32, 80, 16), (32, 32, 3, 1), (32, 64, 3, 1), (64, 64, 3, 1)]
    prev = "x"
    rng = np.random.default_rng(0)
    for i, (cin, cout, k, s) in enumerate(specs):
        g.add(f"conv{i}", ir.Conv2d(weight=rng.normal(0, 0.1, (cout, cin, 1, k)).astype(np.float32), stride=(1, s)), [prev])
        g.add(f"relu{i}", ir.ReLU(), [f"conv{i}"])
        prev = f"relu{i}"
        if i < 3:
            g.add(f"pool{i}", ir.AvgPool2d(kernel=(1, 4), stride=(1, 4)), [prev])
            prev = f"pool{i}"
    g.add("gap", ir.AvgPool2d(kernel=(1, 5), stride=(1, 5)), [prev])
    g.add("flat", ir.Flatten(), ["gap"])
    g.add("fc", ir.Dense(weight=rng.normal(0, 0.1, (35, 64)).astype(np.float32)), ["flat"])
    g.outputs = ["fc"]
    snn = snc.compile(g, calib=rng.random((4, 1, 1, 8000)).astype(np.float32), passes=CONVERSION)
    r = simulate(snn, rng.random((2, 1, 1, 8000)).astype(np.float32), timesteps=1, recorders=[NeuroBenchCounter()])
    assert metrics.neurobench(snn, r)["SynapticOperations"]["Dense"] == 1_880_256


def test_connection_sparsity_and_footprint():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(4,)))
    w = np.array([[1, 0, 2, 0], [0, 0, 1, 1]], np.float32)
    g.add("d", ir.Dense(weight=w), ["x"])
    g.add("h", ir.IF(shape=(2,), threshold=1.0, bias=np.ones(2, np.float32)), ["d"])
    g.add("d2", ir.Dense(weight=np.ones((3, 2), np.float32)), ["h"])
    g.add("out", ir.Readout(shape=(3,)), ["d2"])
    g.outputs = ["out"]
    assert metrics.connection_sparsity(g) == round(4 / 14, 4)
    assert metrics.footprint(g) == (8 + 6) * 4 + 2 * 4 + 4  # weights, bias, threshold


def test_spikingbrain_energy_arithmetic():
    # 1.13 spikes per channel x INT8 add 0.03 pJ = 0.034 pJ per operation (report Eq. 24).
    e = metrics.spikingbrain_energy(1.13)
    assert e["energy_per_op_pj"] == pytest.approx(0.034)
    assert round(100 * e["saving_vs_fp16"], 1) == 97.7
    assert round(100 * e["saving_vs_int8"], 1) == 85.2
    assert e["ratio_vs_int8"] == pytest.approx(0.23 / 0.034)  # 6.76x
    # The same from the shipped profile's constants, not literals.
    from snc.hw import load_profile

    h = load_profile("horowitz45")
    e2 = metrics.spikingbrain_energy(1.13, h["energy_add_int8"] * 1e12,
                                     {"fp16": h["energy_mac_fp16"] * 1e12, "int8": h["energy_mac_int8"] * 1e12})
    assert e2 == pytest.approx(e)
