"""The cycle-approximate model against a from-scratch recomputation: counts rebuilt from the
spike rasters and the weight matrices with plain numpy, times the profile's constants."""
from __future__ import annotations

import numpy as np
import pytest

import snc.ir as ir
from snc.backends.sim import build_plan, simulate
from snc.backends.sim.cycle_model import CycleModel
from snc.hw import load_profile, parse_profile
from snc.ir.annotations import set_blocks


def _profile(**over):
    doc = {"name": "toy", "kind": "neuromorphic", "quantities": {}}
    values = dict(
        cores_per_chip=8, cores_per_tile=2, mesh_tiles=[2, 2], neurons_per_core=16, synaptic_memory_bits=10**6,
        synapse_overhead_bits=0, weight_bits=8, weight_bits_max=9, max_fan_in=1000, max_fan_out=1000,
        energy_synop=2e-12, energy_neuron_active=7e-12, energy_neuron_inactive=3e-12, energy_spike_local=1e-12,
        energy_hop_ew=5e-12, energy_hop_ns=11e-12, energy_chip_hop=101e-12, static_power=0.05,
        time_synop=1e-9, time_neuron_active=3e-9, time_neuron_inactive=2e-9, time_spike_local=0.5e-9,
        time_hop_ew=4e-9, time_hop_ns=6e-9, time_chip_hop=50e-9, barrier_min=100e-9, barrier_max=400e-9, barrier_tiles=4,
    )
    values.update(over)
    for k, v in values.items():
        doc["quantities"][k] = {"value": v, "unit": "-", "status": "estimated", "source": "test"}
    return parse_profile(doc, "<test>")


def _network(rng):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(10,), encoding="spikes"))
    w1 = (rng.integers(-2, 3, (20, 10)) * (rng.random((20, 10)) < 0.6)).astype(np.float32)
    g.add("d1", ir.Dense(weight=w1), ["x"])
    g.add("h1", ir.IF(shape=(20,), threshold=1.0, bias=(rng.integers(0, 2, 20) * 0.25).astype(np.float32)), ["d1"])
    w2 = (rng.integers(-2, 3, (12, 20)) * (rng.random((12, 20)) < 0.5)).astype(np.float32)
    g.add("d2", ir.Dense(weight=w2), ["h1"])
    g.add("h2", ir.IF(shape=(12,), threshold=1.0), ["d2"])
    w3 = rng.integers(-2, 3, (4, 12)).astype(np.float32)
    g.add("d3", ir.Dense(weight=w3), ["h2"])
    g.add("out", ir.Readout(shape=(4,)), ["d3"])
    g.outputs = ["out"]
    # Hand-made mapping: h1 in two blocks on cores 0 and 5 (other chip? no: 8 cores per chip);
    # h2 split over core 3 and core 9 (second chip); readout on core 14.
    set_blocks(g, {"h1": [(0, 12, 0), (12, 20, 5)], "h2": [(0, 6, 3), (6, 12, 9)], "out": [(0, 4, 14)]})
    return g, {"d1": w1, "d2": w2, "d3": w3}


def _coords(core, prof):
    chip = core // prof["cores_per_chip"]
    tile = (core % prof["cores_per_chip"]) // prof["cores_per_tile"]
    tx, ty = tile % prof["mesh_tiles"][0], tile // prof["mesh_tiles"][0]
    return chip, chip * prof["mesh_tiles"][0] + tx, ty


SHARED = {"h1": [(0, 12, 0), (12, 20, 0)], "h2": [(0, 6, 3), (6, 12, 3)], "out": [(0, 4, 9)]}


@pytest.mark.parametrize("placed", [None, SHARED], ids=["one-block-per-core", "blocks-share-cores"])
def test_energy_and_latency_equal_a_recomputation_from_scratch(placed):
    rng = np.random.default_rng(0)
    g, w = _network(rng)
    if placed is not None:  # packed: h1 on core 0, h2 on core 3 (two blocks each), the readout on core 9
        set_blocks(g, placed)
    prof = _profile()
    plan = build_plan(g)
    model = CycleModel(g, plan, prof)
    n, steps = 5, 15
    x = (rng.random((n, steps, 10)) < 0.4).astype(np.float32)
    r = simulate(g, x, timesteps=steps, rasters=range(n), recorders=[model.recorder])
    got = model.evaluate(r.extra["projected"], n, steps)

    blocks = placed or {"h1": [(0, 12, 0), (12, 20, 5)], "h2": [(0, 6, 3), (6, 12, 9)], "out": [(0, 4, 14)]}
    src_of = {"h1": ("x", "d1"), "h2": ("h1", "d2"), "out": ("h2", "d3")}
    bias = {"h1": g.nodes["h1"].bias, "h2": np.zeros(12, np.float32), "out": np.zeros(4, np.float32)}
    raster = {"x": [x[i].astype(bool) for i in range(n)]}
    for pop in ("h1", "h2"):
        raster[pop] = [r.populations[pop].rasters[i] for i in range(n)]
    energy = {pop: 0.0 for pop in blocks}
    parts = {"synaptic_ops": 0.0, "neuron_updates": 0.0, "spikes_on_chip": 0.0, "spikes_between_chips": 0.0}
    busy = np.zeros((steps, 5))  # per block in order h1a h1b h2a h2b out
    sent = np.zeros((steps, 5), bool)
    route = np.zeros(5)
    order = [(p, b) for p in blocks for b in blocks[p]]
    host_msgs = 0.0
    for k, (pop, (start, stop, core)) in enumerate(order):
        src, op = src_of[pop]
        wm = w[op][start:stop]  # synapses into this block
        size = stop - start
        for i in range(n):
            s_src = raster[src][i].astype(float)  # (T, n_src)
            synops = s_src @ (wm != 0).sum(axis=0)  # per step
            current = s_src @ wm.T + bias[pop][start:stop]
            active = (current != 0).sum(axis=1)
            e = synops * prof["energy_synop"] + active * prof["energy_neuron_active"] + (size - active) * prof["energy_neuron_inactive"]
            parts["synaptic_ops"] += (synops * prof["energy_synop"]).sum() / n
            parts["neuron_updates"] += (active * prof["energy_neuron_active"] + (size - active) * prof["energy_neuron_inactive"]).sum() / n
            busy[:, k] += (synops * prof["time_synop"] + active * prof["time_neuron_active"] + (size - active) * prof["time_neuron_inactive"]) / n
            energy[pop] += e.sum() / n
    # Messages: each spike of a source neuron goes once to every core holding a block it has a
    # synapse in (blocks of one core share the message).
    for k, (pop, (start, stop, core)) in enumerate(order):
        if pop == "out":
            continue
        consumer = {"h1": "h2", "h2": "out"}[pop]
        op = src_of[consumer][1]
        _, sx, sy = _coords(core, prof)
        schip = core // prof["cores_per_chip"]
        for dcore in sorted({c for _, _, c in blocks[consumer]}):
            reach = np.zeros(stop - start, bool)
            for dstart, dstop, c in blocks[consumer]:
                if c == dcore:
                    reach |= (w[op][dstart:dstop, start:stop] != 0).any(axis=0)  # (size,)
            dchip, dx, dy = _coords(dcore, prof)
            ew, ns, ch = abs(sx - dx), abs(sy - dy), abs(schip - dchip)
            per_msg = prof["energy_spike_local"] + ew * prof["energy_hop_ew"] + ns * prof["energy_hop_ns"] + ch * prof["energy_chip_hop"]
            if reach.any():
                route[k] = max(route[k], ew * prof["time_hop_ew"] + ns * prof["time_hop_ns"] + ch * prof["time_chip_hop"])
            for i in range(n):
                msgs = raster[pop][i][:, start:stop].astype(float) @ reach
                energy[pop] += msgs.sum() * per_msg / n
                parts["spikes_between_chips"] += msgs.sum() * ch * prof["energy_chip_hop"] / n
                parts["spikes_on_chip"] += msgs.sum() * (per_msg - ch * prof["energy_chip_hop"]) / n
                busy[:, k] += msgs * prof["time_spike_local"] / n
                sent[:, k] |= raster[pop][i][:, start:stop].any(axis=1)
    for dcore in sorted({c for _, _, c in blocks["h1"]}):  # host input spikes: one local delivery per reached core
        reach = np.zeros(10, bool)
        for start, stop, c in blocks["h1"]:
            if c == dcore:
                reach |= (w["d1"][start:stop] != 0).any(axis=0)
        for i in range(n):
            host_msgs += (raster["x"][i].astype(float) @ reach).sum() / n
    tiles = set()
    for _, (_, _, core) in order:
        _, gx, gy = _coords(core, prof)
        tiles.add((gx, gy))
    xs, ys = [t[0] for t in tiles], [t[1] for t in tiles]
    span = (max(xs) - min(xs) + 1) * (max(ys) - min(ys) + 1)
    barrier = prof["barrier_min"] + (prof["barrier_max"] - prof["barrier_min"]) * (span - 1) / (prof["barrier_tiles"] - 1)
    cores = sorted({core for _, (_, _, core) in order})
    per_core = np.stack([busy[:, [k for k, (_, (_, _, c)) in enumerate(order) if c == core]].sum(axis=1) for core in cores], axis=1)
    step = per_core.max(axis=1) + np.where(sent, route[None, :], 0).max(axis=1) + barrier  # a core serves its blocks in turn
    latency = step.sum()
    chips = len({core // prof["cores_per_chip"] for _, (_, _, core) in order})
    used = len({core for _, (_, _, core) in order})
    static = prof["static_power"] * used / prof["cores_per_chip"] * latency  # the cores used, not whole chips
    total = sum(energy.values()) + host_msgs * prof["energy_spike_local"] + static

    parts["spikes_on_chip"] += host_msgs * prof["energy_spike_local"]
    for key, value in parts.items():  # dynamic energy by component
        assert got["energy_components_j"][key] == pytest.approx(value, rel=1e-9, abs=1e-30), key
    assert got["energy_components_j"]["static"] == pytest.approx(static, rel=1e-9)
    assert got["latency_s"] == pytest.approx(latency, rel=1e-9)
    assert got["chips"] == chips == 2
    assert got["energy_j"] == pytest.approx(total, rel=1e-9)
    assert got["static_energy_whole_chips_j"] == pytest.approx(prof["static_power"] * chips * latency, rel=1e-9)
    assert got["static_energy_j"] < got["static_energy_whole_chips_j"] and got["cores_used"] == used
    for pop, cores in blocks.items():
        expect = energy[pop] + static * len(cores) / 5
        assert got["layers"][pop]["energy_j"] == pytest.approx(expect, rel=1e-9), pop
        layer_busy = busy[:, [k for k, (p, _) in enumerate(order) if p == pop]].max(axis=1).sum()
        assert got["layers"][pop]["latency_s"] == pytest.approx(layer_busy, rel=1e-9), pop


def test_all_inclusive_profile_counts_synaptic_events_only():
    rng = np.random.default_rng(1)
    g, w = _network(rng)
    tn = load_profile("truenorth")
    set_blocks(g, {"h1": [(0, 20, 0)], "h2": [(0, 12, 1)], "out": [(0, 4, 2)]})
    model = CycleModel(g, build_plan(g), tn)
    x = (rng.random((3, 10, 10)) < 0.5).astype(np.float32)
    r = simulate(g, x, timesteps=10, recorders=[model.recorder])
    got = model.evaluate(r.extra["projected"], 3, 10)
    synops = sum(v["synops"] for v in got["layers"].values())
    assert got["energy_j"] == pytest.approx(synops * 26e-12, rel=1e-12)
    assert got["latency_s"] == pytest.approx(10 * 1e-3)  # the 1 ms tick
