"""One meaning of "synops" (docs/json_schema.md, section synops): a layer's synops are the
effective synaptic operations (NeuroBench) of its incoming connection layers, per sample
summed over steps; their total is NeuroBench's Effective_ACs + Effective_MACs.

Hand counts on small networks whose spikes follow from the inputs alone (reset to zero,
weights that reach the threshold in one step), then the same numbers from snc.metrics, from
``snc estimate`` and through networks with pooling, residual joins and delays."""
from __future__ import annotations

import numpy as np
import pytest

import snc.ir as ir
from snc import metrics
from snc.backends.sim import simulate
from snc.backends.sim.recorders import NeuroBenchCounter
from snc.estimate import estimate

from .recurrent_graphs import recurrent
from .test_sim import net_conv, net_mlp, net_residual

T = 4
# x: (samples, steps, 3) spikes
PATTERN = np.array([
    [[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 1]],
    [[0, 0, 1], [0, 0, 0], [1, 0, 1], [0, 1, 0]],
], dtype=bool)


def two_layer_spiking() -> ir.Graph:
    """x (3 spike inputs) -d1-> h (2 IF) -d2-> out (3).

    d1 = [[2, 2, 0], [0, 2, 2]]: non-zero fan-out of x0, x1, x2 = 1, 2, 1. A weight of 2 crosses
    the threshold 1 in one step and h resets to zero, so h0 fires at t iff x0 or x1 spiked at t
    and h1 iff x1 or x2 did. d2 = [[1, 0], [1, 1], [0, 0]]: fan-out of h0, h1 = 2, 1."""
    g = ir.Graph("two_layer")
    g.add("x", ir.Input(shape=(3,), encoding="spikes"))
    g.add("d1", ir.Dense(weight=np.array([[2, 2, 0], [0, 2, 2]], np.float32)), ["x"])
    g.add("h", ir.IF(shape=(2,), threshold=1.0, reset="zero"), ["d1"])
    g.add("d2", ir.Dense(weight=np.array([[1, 0], [1, 1], [0, 0]], np.float32)), ["h"])
    g.add("out", ir.Readout(shape=(3,)), ["d2"])
    g.outputs = ["out"]
    return g


# Hand counts (layer-synchronous timing).
# d1 (fan-out 1, 2, 1) on x:   sample 0 per step 1, 2, 0, 4 = 7;  sample 1: 1, 0, 2, 2 = 5
# h spikes (h0 = x0|x1, h1 = x1|x2): sample 0: (1,0) (1,1) (0,0) (1,1); sample 1: (0,1) (0,0) (1,1) (1,1)
# d2 (fan-out 2, 1) on h:      sample 0: 2, 3, 0, 3 = 8;          sample 1: 1, 0, 3, 3 = 7
HAND_SYNC = {"x": 0.0, "h": (7 + 5) / 2, "out": (8 + 7) / 2}
# One-step synaptic delay: a layer receives at t the spikes of t - 1, so the last step's spikes
# never arrive. d1 sees x of steps 0..2: sample 0: 1 + 2 + 0 = 3, sample 1: 1 + 0 + 2 = 3.
# h fires one step later (sample 0: h0 at 1, h0 h1 at 2; sample 1: h1 at 1, h0 h1 at 3);
# d2 sees h of steps 0..2: sample 0: 2 + 3 = 5, sample 1: 1.
HAND_DELAY = {"x": 0.0, "h": 3.0, "out": 3.0}


@pytest.mark.parametrize("timing,hand", [("sync", HAND_SYNC), ("delay", HAND_DELAY)])
def test_per_layer_synops_are_the_incoming_effective_operations(timing, hand):
    g = two_layer_spiking()
    r = simulate(g, PATTERN, timesteps=T, timing=timing, recorders=[NeuroBenchCounter()])
    doc = r.to_json()
    layers = {layer["name"]: layer for layer in doc["layers"]}
    for name, expected in hand.items():
        assert layers[name]["synops_per_sample"] == expected, name
        assert layers[name]["effective_acs_per_sample"] == expected, name  # binary input: ACs
        assert layers[name]["effective_macs_per_sample"] == 0.0, name
        assert layers[name]["synop_kind"] == ("AC" if expected else None), name
    # Dense ops: 6 connections per step in each of d1 and d2.
    assert layers["h"]["dense_ops_per_sample"] == 6 * T and layers["out"]["dense_ops_per_sample"] == 6 * T
    assert {c["name"]: c["destination"] for c in doc["connections"]} == {"d1": "h", "d2": "out"}
    nb = metrics.neurobench(g, r)["SynapticOperations"]
    assert doc["totals"]["synops_per_sample"] == sum(hand.values())
    assert doc["totals"]["synops_per_sample"] == nb["Effective_ACs"] + nb["Effective_MACs"]
    assert doc["totals"]["effective_acs_per_sample"] == nb["Effective_ACs"]
    assert doc["totals"]["dense_ops_per_sample"] == nb["Dense"] == 12 * T


def test_the_old_source_side_count_is_kept_under_synops_caused():
    """Before issue 13 a layer's ``synops_per_sample`` was what its spikes cause downstream:
    the same operations, one layer earlier in this network."""
    r = simulate(two_layer_spiking(), PATTERN, timesteps=T)
    layers = {layer["name"]: layer for layer in r.to_json()["layers"]}
    assert layers["x"]["synops_caused_per_sample"] == HAND_SYNC["h"]
    assert layers["h"]["synops_caused_per_sample"] == HAND_SYNC["out"]
    assert layers["out"]["synops_caused_per_sample"] == 0.0
    assert r.totals()["synops_caused_per_sample"] == r.totals()["synops_per_sample"]


def neurobench_example() -> ir.Graph:
    """NeuroBench's worked example as a first layer: W (3x3, three zeros) . x = [0, 1.3, -1]
    -> 4 effective operations (x1 and x2 each reach two non-zero weights), 9 dense. W x =
    [2.6, -0.1, -6]: with threshold 1 and reset to zero h0 fires every step, h1 and h2 never.
    d2's fan-out of h0 is 2."""
    g = ir.Graph("neurobench_example")
    g.add("x", ir.Input(shape=(3,), encoding="direct"))
    w = np.array([[1, 2, 0], [0, 3, 4], [5, 0, 6]], np.float32)
    g.add("d1", ir.Dense(weight=w), ["x"])
    g.add("h", ir.IF(shape=(3,), threshold=1.0, reset="zero"), ["d1"])
    g.add("d2", ir.Dense(weight=np.array([[1, 0, 1], [1, 0, 0]], np.float32)), ["h"])
    g.add("out", ir.Readout(shape=(2,)), ["d2"])
    g.outputs = ["out"]
    return g


EXAMPLE_X = np.array([[0.0, 1.3, -1.0]], np.float32)


def test_analog_first_layer_counts_macs_every_step():
    g = neurobench_example()
    r = simulate(g, EXAMPLE_X, timesteps=T, recorders=[NeuroBenchCounter()])
    layers = {layer["name"]: layer for layer in r.to_json()["layers"]}
    assert layers["h"]["synops_per_sample"] == 4 * T
    assert layers["h"]["effective_macs_per_sample"] == 4 * T and layers["h"]["synop_kind"] == "MAC"
    assert layers["h"]["dense_ops_per_sample"] == 9 * T
    assert layers["out"]["synops_per_sample"] == 2 * T and layers["out"]["synop_kind"] == "AC"
    nb = metrics.neurobench(g, r)["SynapticOperations"]
    assert (nb["Effective_MACs"], nb["Effective_ACs"]) == (4 * T, 2 * T)
    tot = r.totals()
    assert tot["synops_per_sample"] == nb["Effective_ACs"] + nb["Effective_MACs"] == 6 * T
    # The host computes the direct input's current: the same MACs, counted at the source.
    assert tot["analog_macs_per_sample"] == 4 * T


def net_recurrent(rng):
    w_in = (rng.integers(-3, 4, (6, 4)) / 2).astype(np.float32)
    w_rec = (rng.integers(-3, 4, (6, 6)) / 4).astype(np.float32)
    readout = rng.integers(-2, 3, (3, 6)).astype(np.float32)
    return recurrent(ir.IF(shape=(6,), threshold=1.0, reset="subtract"), w_in, w_rec, 2, readout), "spikes", (4,)


@pytest.mark.parametrize("make", [net_mlp, net_conv, net_residual, net_recurrent])
@pytest.mark.parametrize("timing", ["sync", "delay"])
def test_layers_add_up_to_neurobench_through_pooling_and_residual_joins(make, timing):
    """Several batches and chunks; sum pooling, average pooling, a residual Add, an analog input,
    a recurrent population (its own spikes through a Delay)."""
    rng = np.random.default_rng(0)
    g, encoding, shape = make(rng)
    x = rng.random((7, 9) + shape) < 0.3 if encoding == "spikes" else rng.random((7,) + shape).astype(np.float32)
    r = simulate(g, x, timesteps=9, timing=timing, batch_size=3, chunk_elements=200, recorders=[NeuroBenchCounter()])
    nb = metrics.neurobench(g, r)["SynapticOperations"]
    doc = r.to_json()
    tot = doc["totals"]
    assert tot["effective_acs_per_sample"] == pytest.approx(nb["Effective_ACs"], rel=1e-12)
    assert tot["effective_macs_per_sample"] == pytest.approx(nb["Effective_MACs"], rel=1e-12)
    assert tot["synops_per_sample"] == pytest.approx(sum(layer["synops_per_sample"] for layer in doc["layers"]), rel=1e-12)
    assert tot["dense_ops_per_sample"] == pytest.approx(nb["Dense"], rel=1e-12)
    dense_layers = [n for n in g.topological_order() if g.nodes[n].kind in ("Dense", "Conv2d")]
    assert [c["name"] for c in doc["connections"]] == dense_layers


def test_estimate_per_layer_synops_equal_simulate():
    g = two_layer_spiking()
    est = estimate(g, PATTERN, hw=["loihi"], timesteps=T)
    r = simulate(g, PATTERN, timesteps=T)
    sim_layers = {layer["name"]: layer["synops_per_sample"] for layer in r.to_json()["layers"]}
    est_layers = {layer["name"]: layer["synops"] for layer in est.doc["layers"]}
    assert est_layers == {"h": HAND_SYNC["h"], "out": HAND_SYNC["out"]}
    assert all(est_layers[n] == pytest.approx(sim_layers[n], rel=1e-12) for n in est_layers)
    t = est.doc["totals"]
    assert t["synops"] == pytest.approx(t["effective_acs"] + t["effective_macs"], rel=1e-12)


def test_estimate_per_layer_synops_equal_simulate_with_an_analog_input():
    g = neurobench_example()
    est = estimate(g, EXAMPLE_X, hw=["loihi"], timesteps=T)
    est_layers = {layer["name"]: layer["synops"] for layer in est.doc["layers"]}
    assert est_layers["h"] == 4 * T and est_layers["out"] == 2 * T
    assert est.doc["totals"]["synops"] == 6 * T
    # The chip's own count: the analog-fed layer's current is the host's (once per sample).
    host = next(layer for layer in est.doc["layers"] if layer["kind"] == "host")
    assert host["synops"] == 0 and host["host_macs"] == est.doc["totals"]["host_macs"] == 4
    assert next(layer for layer in est.doc["layers"] if layer["name"] == "h")["chip_synops"] == 0
