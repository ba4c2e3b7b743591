"""snc's cycle-model estimate beside SANA-FE's report, component by component.

SANA-FE reports dynamic energy only, in four components (J): ``synapse`` (35.5 pJ per synaptic
event on Loihi), ``dendrite`` (0 on Loihi), ``soma`` (every LIF neuron 51.2 pJ per step, +21.6 pJ
when updated, +69.3 pJ when it fires) and ``network`` (111 pJ per spike message, plus hops).
snc's cycle model is split the same way from its per-core counts:

    synapse = synops E_synop
    soma    = active E_active + inactive E_inactive + spikes E_fire
    network = messages (E_spike + E_msg) + host deliveries (E_spike + E_msg) + hops

Static power, which SANA-FE does not model, is left out of the comparison.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from snc.errors import BackendError
from snc.hw import HardwareProfile

COMPONENTS = ("synapse", "soma", "network", "total")
# SANA-FE's synchronisation delay per step, by the number of tiles holding neurons (loihi.yaml in
# the sanafe 2.2.9 wheel: sync_model "table", latency_sync {1: 0.6 us, 2: 1.0 us, 4: 1.4 us,
# 29: 1.8 us}; the entry of the largest key <= tiles applies). snc's sanafe_loihi barrier: 299 ns.
SANAFE_SYNC_S = {1: 0.6e-6, 2: 1.0e-6, 4: 1.4e-6, 29: 1.8e-6}


def sanafe_sync(tiles: int) -> float:
    """SANA-FE's per-step synchronisation delay (s) on Loihi with ``tiles`` tiles in use."""
    return SANAFE_SYNC_S[max(k for k in SANAFE_SYNC_S if k <= max(1, int(tiles)))]


def pad_spikes(spikes: np.ndarray, pad: int) -> np.ndarray:
    """(N, T, ...) spikes followed by ``pad`` silent steps: the input of snc's run over the same
    T + pad steps as SANA-FE's (``network.describe``)."""
    spikes = np.asarray(spikes)
    tail = np.zeros((spikes.shape[0], pad) + spikes.shape[2:], dtype=spikes.dtype)
    return np.concatenate([spikes, tail], axis=1)


def snc_components(cost: dict[str, Any], profile: HardwareProfile) -> dict[str, float]:
    """Energy per inference (J) by component from a cycle-model result (``CycleModel.evaluate``),
    and ``latency`` (s). Checks that the components add up to its dynamic energy."""
    p, c = profile, cost["per_core"]
    e_fire, e_msg = float(p.get("energy_spike_out", 0.0)), float(p.get("energy_message_out", 0.0))
    synapse = float((c["synops"] * p["energy_synop"]).sum())
    # IF and membrane readouts (what ``network.describe`` accepts) update at cost 1 (ir/models.py)
    soma = float((c["active"] * p["energy_neuron_active"] + c["inactive"] * p["energy_neuron_inactive"]).sum()
                 + (c["spikes"] * e_fire).sum())
    network = float((c["msgs"] * (p["energy_spike_local"] + e_msg) + c["ew"] * p["energy_hop_ew"]
                     + c["ns"] * p["energy_hop_ns"] + c["chip"] * p["energy_chip_hop"]).sum()
                    + cost["host_delivery_energy_j"])
    total = synapse + soma + network
    if not np.isclose(total, cost["dynamic_energy_j"], rtol=1e-9, atol=0.0):
        raise BackendError(f"snc's components add up to {total:.6g} J, its cycle model to {cost['dynamic_energy_j']:.6g} J: "
                           "the split no longer follows backends/sim/cycle_model.py")
    return {"synapse": synapse, "soma": soma, "network": network, "total": total, "latency": float(cost["latency_s"])}


def sanafe_components(result: dict[str, Any]) -> dict[str, float]:
    """SANA-FE's energy by component (J) and ``latency`` (its ``sim_time``, s), averaged over the
    samples of a run (``oracle.run``); ``dendrite`` is folded into ``soma`` (0 on Loihi)."""
    samples = result["samples"]
    if not samples:
        raise BackendError("the SANA-FE run holds no samples")
    mean = lambda f: float(np.mean([f(s) for s in samples]))  # noqa: E731
    return {
        "synapse": mean(lambda s: s["energy"]["synapse"]),
        "soma": mean(lambda s: s["energy"]["soma"] + s["energy"].get("dendrite", 0.0)),
        "network": mean(lambda s: s["energy"]["network"]),
        "total": mean(lambda s: s["energy"]["total"]),
        "latency": mean(lambda s: s["sim_time"]),
    }


def spike_agreement(description: dict[str, Any], result: dict[str, Any], neuron_spikes: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per population: neurons whose spike counts (summed over samples) are equal in snc
    (``neuron_spikes[name]``, flat snc order, e.g. ``SimResult.populations[name].neuron_spikes``)
    and in SANA-FE, the neurons compared, and both totals."""
    out = {}
    for name, counts in result["neuron_spikes"].items():
        if name not in neuron_spikes:
            continue
        idx = np.asarray(description["neuron_index"][name])
        ours = np.zeros(len(counts))
        present = idx >= 0
        ours[idx[present]] = np.asarray(neuron_spikes[name], dtype=np.float64).reshape(-1)[present]
        theirs = np.asarray(counts, dtype=np.float64)
        out[name] = {"neurons": int(len(theirs)), "equal": int(np.sum(np.isclose(ours, theirs))),
                     "snc": float(ours.sum()), "sanafe": float(theirs.sum())}
    return out


def table(rows: list[tuple[str, dict[str, float], dict[str, float]]]) -> str:
    """Markdown: network, component, snc, SANA-FE, ratio (snc / SANA-FE); energies in nJ and
    latencies in us per inference (``processing``: latency less the per-step barrier or sync)."""
    lines = ["| network | component | snc | SANA-FE | ratio snc/SANA-FE |", "|---|---|---:|---:|---:|"]
    labels = {k: f"{k} energy (nJ)" for k in COMPONENTS}
    labels.update(latency="latency (us)", processing="latency less barrier/sync (us)")
    for name, ours, theirs in rows:
        for key, label in labels.items():
            if key not in ours or key not in theirs:
                continue
            scale = 1e6 if key in ("latency", "processing") else 1e9
            a, b = ours[key], theirs[key]
            ratio = f"{a / b:.3f}" if b else "-"
            lines.append(f"| {name} | {label} | {a * scale:.2f} | {b * scale:.2f} | {ratio} |")
    return "\n".join(lines)
