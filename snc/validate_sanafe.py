"""snc's ``sanafe_loihi`` estimate against SANA-FE on the same network and the same spikes.

Both simulate T + pad steps: the input spikes, then ``pad`` silent steps (``pad`` = the longest
chain of projections), because every SANA-FE connection delays a spike by one step while snc's
estimate runs layer-synchronously; after the pad every input spike has reached the last
population in SANA-FE too. Spike counts then agree when no neuron keeps firing on its leftover
membrane after its input stops (zero reset; or subtractive reset with at most one threshold of
input per step) and the arithmetic is exact (weights, thresholds in multiples of 1/64).
Energies are dynamic (SANA-FE has no static power); latency is snc's against SANA-FE's
``sim_time`` (detailed timing model).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from snc.backends.sanafe import compare, network, oracle
from snc.hw import load_profile
from snc.ir import Graph

from .estimate import estimate

PROFILE = "sanafe_loihi"


@dataclass
class Comparison:
    name: str
    snc: dict[str, float]  # synapse, soma, network, total (J per inference); latency, processing (s)
    sanafe: dict[str, float]  # the same keys, from SANA-FE
    spikes: dict[str, dict[str, Any]]  # population -> neurons, equal, snc, sanafe (spike counts)
    counts: dict[str, float]  # snc and SANA-FE event counts per inference (synops, messages, spikes)
    cores: int  # cores used by the mapping
    tiles: int  # tiles those cores are on
    steps: int  # T + pad

    def ratio(self, key: str) -> float:
        return self.snc[key] / self.sanafe[key]


def validate(name: str, graph: Graph, spikes: np.ndarray, *, python: str | None = None) -> Comparison:
    """Estimate ``graph`` (compiled; mapped for sanafe_loihi, or mapped here by the ``map`` pass)
    on ``spikes`` (N, T, *input shape) of 0/1 and run the same network in SANA-FE."""
    profile = load_profile(PROFILE)
    spikes = np.asarray(spikes, dtype=np.float32)
    pad = network.depth(graph)
    steps = spikes.shape[1] + pad
    est = estimate(graph, compare.pad_spikes(spikes, pad), hw=[profile], timesteps=steps)
    mapped = est.mapped[PROFILE]
    cost = est.costs[PROFILE]
    desc = network.describe(mapped, spikes, pad=pad)
    result = oracle.run(desc, python=python)
    ours = compare.snc_components(cost, profile)
    theirs = compare.sanafe_components(result)
    agree = compare.spike_agreement(desc, result, {k: v.neuron_spikes for k, v in est.result.populations.items()})
    n = len(result["samples"])
    pc = cost["per_core"]
    per_message = profile["energy_spike_local"] + profile.get("energy_message_out", 0.0)  # 111 pJ here
    counts = {
        "snc_synops": float(pc["synops"].sum()),
        "sanafe_synaptic_events": float(np.mean([s["spikes"] for s in result["samples"]])),
        # messages of the chip's neurons plus the host's input deliveries (known through their energy)
        "snc_messages": float(pc["msgs"].sum() + cost["host_delivery_energy_j"] / per_message),
        "sanafe_packets": float(np.mean([s["packets_sent"] for s in result["samples"]])),
        "snc_active_updates": float(pc["active"].sum()),
        "sanafe_neurons_updated": float(np.mean([s["neurons_updated"] for s in result["samples"]])),
        "samples": float(n),
    }
    cores = sorted({int(c) for c in np.asarray(cost["core_ids"]).ravel()})
    tiles = len({c // network.CORES_PER_TILE for c in cores})  # input neurons sit on these tiles too
    # Processing time: latency less the fixed per-step cost (snc's barrier, SANA-FE's sync table).
    ours["processing"] = ours["latency"] - steps * float(cost["barrier_s"])
    theirs["processing"] = theirs["latency"] - steps * compare.sanafe_sync(tiles)
    return Comparison(name, ours, theirs, agree, counts, len(cores), tiles, steps)
