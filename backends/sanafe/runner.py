"""Run a network description (``snc.backends.sanafe.network.describe``) in SANA-FE.

This file is a script for the oracle interpreter ($SNC_ORACLE_PYTHON, which has ``sanafe``
installed); snc never imports it. It reads only JSON, imports nothing of snc, and writes JSON:

    $SNC_ORACLE_PYTHON runner.py DESCRIPTION.json RESULT.json

Each sample gets a fresh network and chip (``chip.reset()`` does not rewind input spike trains)
on SANA-FE's calibrated Loihi architecture (``sanafe.load_loihi()``), every neuron on the tile and
core the description names, and is simulated with
``chip.sim(timesteps, spike_trace=True, perf_trace=True, processing_threads=1)``. SANA-FE's C++
core prints progress on stdout, so the result goes to a file.
"""
from __future__ import annotations

import json
import sys


def _build(sanafe, arch, desc: dict, sample: int):
    net = sanafe.Network()
    groups = {}
    for g in desc["groups"]:
        n = int(g["size"])
        if g["kind"] == "input":
            grp = net.create_neuron_group(g["name"], n, log_spikes=True)
            trains = g["spikes"][sample]
            steps = int(desc["timesteps"])
            for i, neuron in enumerate(grp.neurons):
                train = [False] * steps
                for t in trains[i]:
                    train[int(t)] = True
                # One input soma unit per input neuron: SANA-FE's spike train belongs to the unit.
                neuron.set_attributes(soma_hw_name=f"loihi_inputs[{int(g['soma_units'][i])}]",
                                      model_attributes={"spikes": train})
        else:
            grp = net.create_neuron_group(g["name"], n, soma_hw_name="loihi_lif", log_spikes=True,
                                          model_attributes={"leak_decay": 1.0, "reset": 0.0,
                                                            "reset_mode": g["reset_mode"]})
            thr, bias = g["threshold"], g["bias"]
            for i, neuron in enumerate(grp.neurons):
                neuron.set_attributes(model_attributes={"threshold": float(thr[i]), "bias": float(bias[i])})
        for i, neuron in enumerate(grp.neurons):
            tile, core = g["tiles"][i], g["core_offsets"][i]
            neuron.map_to_core(arch.tiles[int(tile)].cores[int(core)])
        groups[g["name"]] = grp
    for c in desc["connections"]:
        pairs = [(int(s), int(d)) for s, d in zip(c["src"], c["dst"])]
        groups[c["source"]].connect_neurons_sparse(groups[c["target"]], {"weight": [float(w) for w in c["weight"]]}, pairs)
    return net


def run(desc: dict) -> dict:
    import sanafe

    steps = int(desc["timesteps"])
    sizes = {g["name"]: int(g["size"]) for g in desc["groups"]}
    counts = {name: [0] * n for name, n in sizes.items()}
    samples = []
    arch = sanafe.load_loihi()
    for sample in range(int(desc["samples"])):
        net = _build(sanafe, arch, desc, sample)
        chip = sanafe.SpikingChip(arch)
        chip.load(net)
        # One processing thread: the results do not depend on it, and the machine is shared.
        r = chip.sim(steps, spike_trace=True, perf_trace=True, processing_threads=1)
        for step in r["spike_trace"]:
            for a in step:
                counts[a.group_name][int(a.neuron_offset)] += 1
        perf = r.get("perf_trace") or {}
        samples.append({
            "energy": {k: float(v) for k, v in r["energy"].items()},
            "sim_time": float(r["sim_time"]),
            "spikes": int(r["spikes"]),
            "neurons_fired": int(r["neurons_fired"]),
            "neurons_updated": int(r["neurons_updated"]),
            "packets_sent": int(r["packets_sent"]),
            "step_sim_time": [float(v) for v in perf.get("sim_time", [])],
        })
    return {"sanafe_version": getattr(sanafe, "__version__", "unknown"), "timesteps": steps,
            "samples": samples, "neuron_spikes": counts}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: runner.py DESCRIPTION.json RESULT.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        desc = json.load(f)
    result = run(desc)
    with open(argv[2], "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
