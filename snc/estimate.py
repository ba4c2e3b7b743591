"""``snc estimate``: what a network costs on given chips, per layer and per core.

One simulation (float32, layer-synchronous) gathers the activity; for every hardware profile
the network is mapped onto cores (the ``map`` pass) and the cycle-approximate model
(backends/sim/cycle_model.py) turns the per-step, per-core counts into energy and latency.
The ANN baseline is the source network's dense MACs times the energy of one MAC in the chosen
number format (profile ``horowitz45``: fp32, fp16, int8, int32; compute only): ``baseline.energy_j``.
Its ``baseline.ratio`` divides it by the SNN's energy on the chip (dynamic, static of the cores
used, host): mixed levels, kept for compatibility. ``baseline.levels`` (snc.baselines) compares the
ANN and the SNN at the same level of inclusion: ``compute``, ``compute+memory`` (Lemaire et al.
2022) and, when a published reference network is named, ``device``.

All energies are per inference (one sample, all time steps) in joules; latencies in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from snc.backends.sim import build_plan, simulate
from snc.backends.sim.cycle_model import CycleModel
from snc.errors import HardwareProfileError, SncError
from snc.hw import HardwareProfile, load_profile, unpublished, unpublished_note
from snc.ir import Graph

from . import baselines, metrics
from .passes import PassContext, get

BASELINE_PROFILE = "horowitz45"
DEFAULT_BASELINE = "fp32"


@dataclass
class Estimate:
    doc: dict[str, Any]  # the JSON document
    result: Any  # the SimResult
    mapped: dict[str, Graph] = field(default_factory=dict)  # hw name -> mapped graph
    costs: dict[str, dict] = field(default_factory=dict)  # hw name -> cycle model output


def source_macs(graph: Graph) -> int:
    if "source_macs" in graph.meta:
        return int(graph.meta["source_macs"])
    from .passes.convert import source_macs as count

    return count(graph)


def resolve_baseline(name: str) -> tuple[str, float]:
    """``fp32`` / ``fp16`` / ``int8`` / ``int32`` (of horowitz45) or ``PROFILE:FORMAT``."""
    profile_name, _, fmt = name.rpartition(":")
    profile = load_profile(profile_name or BASELINE_PROFILE)
    if profile.kind != "ann":
        raise HardwareProfileError(f"baseline profile {profile.name!r} is not an ANN profile")
    key = f"energy_mac_{fmt}"
    if key not in profile:
        raise HardwareProfileError(f"unknown baseline {name!r}; {profile.name} offers {', '.join(profile.baselines())}")
    return f"{profile.name}:{fmt}", float(profile[key])


def resolve_add(name: str) -> float:
    """Energy of one addition in the number format of baseline ``name``: an SNN's accumulate (AC)
    at the ``compute`` level, and the ANN's bias add."""
    profile_name, _, fmt = name.rpartition(":")
    profile = load_profile(profile_name or BASELINE_PROFILE)
    key = f"energy_add_{fmt}"
    if key not in profile:
        raise HardwareProfileError(f"baseline {name!r}: profile {profile.name} has no {key}, the energy of an addition "
                                   f"in that format, which the compute-level comparison needs (an SNN accumulate)")
    return float(profile[key])


# Energy terms of the cycle model and the counts they multiply (per_core keys of CycleModel.evaluate).
_ENERGY_COUNTS = {
    "energy_synop": ("synops",), "energy_neuron_active": ("active",), "energy_neuron_inactive": ("inactive",),
    "energy_spike_local": ("msgs",), "energy_message_out": ("msgs",), "energy_spike_out": ("spikes",),
    "energy_hop_ew": ("ew",), "energy_hop_ns": ("ns",), "energy_chip_hop": ("chip",),
}


def zero_placeholders(profile: HardwareProfile, cost: dict[str, Any]) -> list[str]:
    """The profile's unpublished energy terms that are 0-valued placeholders while what they
    multiply is not zero (counts of the run, or the latency for static power): the estimate
    leaves them out, so it is a lower bound."""
    per_core = cost.get("per_core", {})
    out = []
    for key in unpublished(profile):
        if key not in _ENERGY_COUNTS and key != "static_power" or float(profile[key]) != 0.0:
            continue
        if key == "static_power":
            used = cost.get("latency_s", 0.0) > 0
        else:
            used = any(float(np.sum(per_core.get(c, 0.0))) > 0 for c in _ENERGY_COUNTS[key])
        if used:
            out.append(key)
    return out


def map_for(graph: Graph, profile: HardwareProfile, calibration: np.ndarray | None, timesteps: int) -> Graph:
    """The graph mapped onto ``profile`` (reusing a stored mapping for the same profile)."""
    stored = graph.meta.get("mapping")
    if stored and stored.get("hw") == profile.name:
        return graph
    ctx = PassContext(calibration=calibration, timesteps=timesteps, options={"hw": profile})
    return get("map")(graph, ctx)


@dataclass
class Setup:
    """What an estimate fixes before it simulates: the profiles, each one's mapped graph and cycle
    model, the recorders the simulation must carry (``ProjectedCounts``, one per profile, named
    ``projected:HW``) and the baseline energies. ``estimate`` = ``prepare``, ``simulate`` with
    ``setup.recorders``, ``summarize``; snc.distributed runs the middle step in sample shards."""

    timesteps: int
    profiles: list[HardwareProfile]
    base_name: str
    e_mac: float
    e_add: float
    mapped: dict[str, Graph]
    models: dict[str, CycleModel]
    recorders: list[Any]


def prepare(
    graph: Graph,
    data: np.ndarray,
    *,
    hw: Sequence[str | HardwareProfile] = ("loihi",),
    baseline: str = DEFAULT_BASELINE,
    device_baseline: str | None = None,
    timesteps: int | None = None,
    calibration: np.ndarray | None = None,
    stage: Callable[[str], None] | None = None,
) -> Setup:
    """Check the request, map the graph onto every profile and build the recorders."""
    if not graph.is_spiking:
        raise SncError("estimate needs a compiled (spiking) graph; compile the model first")
    timesteps = int(timesteps if timesteps is not None else graph.meta.get("timesteps", 64))
    profiles = [load_profile(h) for h in hw] or [load_profile("loihi")]
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        raise HardwareProfileError(f"the same hardware profile is given twice: {names}")
    base_name, e_mac = resolve_baseline(baseline)
    e_add = resolve_add(base_name)
    if device_baseline is not None:
        baselines.device_reference(device_baseline)  # an unknown name fails before any work
    plan = build_plan(graph)
    mapped: dict[str, Graph] = {}
    models: dict[str, CycleModel] = {}
    for prof in profiles:
        if stage:
            stage(f"snc: mapping onto {prof.name}")
        mapped[prof.name] = map_for(graph, prof, calibration if calibration is not None else data[:64], timesteps)
        models[prof.name] = CycleModel(mapped[prof.name], plan, prof)
    # NeuroBench's synaptic operations come from the connection layers every snc simulation
    # counts (result.connections; metrics.neurobench): no second counter.
    recorders = [m.recorder for m in models.values()]
    for m, name in zip(recorders, models):
        m.name = f"projected:{name}"
    return Setup(timesteps, profiles, base_name, e_mac, e_add, mapped, models, recorders)


def estimate(
    graph: Graph,
    data: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    hw: Sequence[str | HardwareProfile] = ("loihi",),
    baseline: str = DEFAULT_BASELINE,
    device_baseline: str | None = None,
    timesteps: int | None = None,
    batch_size: int | None = None,
    calibration: np.ndarray | None = None,
    raster_sample: int = 0,
    progress: Callable[[int, int], None] | None = None,
    stage: Callable[[str], None] | None = None,
) -> Estimate:
    setup = prepare(graph, data, hw=hw, baseline=baseline, device_baseline=device_baseline, timesteps=timesteps,
                    calibration=calibration, stage=stage)
    if stage:
        stage("snc: simulating")
    result = simulate(graph, data, labels=labels, timesteps=setup.timesteps, batch_size=batch_size,
                      rasters=[raster_sample] if len(data) else [], progress=progress, recorders=setup.recorders)
    return summarize(graph, setup, result, labels=labels, device_baseline=device_baseline)


def summarize(graph: Graph, setup: Setup, result: Any, *, labels: np.ndarray | None = None,
              device_baseline: str | None = None) -> Estimate:
    """The estimate document of a simulation ``result`` that carried ``setup.recorders``."""
    timesteps, profiles, models = setup.timesteps, setup.profiles, setup.models
    base_name, e_mac, e_add, mapped = setup.base_name, setup.e_mac, setup.e_add, setup.mapped
    n = result.samples
    nb = metrics.neurobench(graph, result)
    # Host work of a direct (analog) input: the first layer's current, once per sample.
    host_macs = float(sum(p.synops[:, 0].mean() for p in result.populations.values() if p.analog)) if n else 0.0
    host_energy = host_macs * e_mac
    ann_macs = source_macs(graph)
    base_energy = ann_macs * e_mac
    # Baselines at matching levels: the same layers and the same run's counts on both sides.
    layers_, pops_ = baselines.network(graph, result)
    acs = float(sum(p.synops.sum() / max(1, p.samples) for p in result.populations.values() if not p.analog)) if n else 0.0
    shared_levels = {
        "compute": baselines.compute_level(layers_, pops_, timesteps, acs=acs, host_macs=host_macs, e_mac=e_mac,
                                           e_add=e_add, fmt=base_name),
        "compute+memory": baselines.compute_memory_level(layers_, pops_, timesteps),
    }
    per_hw: dict[str, Any] = {}
    costs: dict[str, dict] = {}
    for prof in profiles:
        cost = models[prof.name].evaluate(result.extra[f"projected:{prof.name}"], n, timesteps)
        costs[prof.name] = cost
        energy = cost["energy_j"] + host_energy
        layers = []
        for name, st in result.populations.items():
            if st.kind == "Input":
                continue
            lc = cost["layers"].get(name, {})
            layers.append({
                "name": name,
                "kind": st.kind,
                "neurons": st.neurons,
                "cores": lc.get("cores", 0),
                "spikes_per_sample": st.spikes_per_sample,
                "rate": st.rate,
                "sparsity": 1.0 - st.rate if st.spiking else None,
                # NeuroBench effective synaptic operations of the layer's incoming connections
                # (docs/json_schema.md#synops); chip_synops: what the cycle model charges (the
                # composed synapses the chip executes, host-computed analog input excluded).
                "synops": float(st.synops_per_sample or 0.0),
                "chip_synops": lc.get("synops", 0.0),
                "energy_j": lc.get("energy_j", 0.0),
                "energy_components_j": lc.get("energy_components_j", {}),
                "latency_s": lc.get("latency_s", 0.0),
            })
        if host_macs:
            layers.append({"name": "(host: analog input)", "kind": "host", "neurons": 0, "cores": 0,
                           "spikes_per_sample": 0.0, "rate": 0.0, "sparsity": None, "synops": 0.0,
                           "chip_synops": 0.0, "host_macs": host_macs, "energy_j": host_energy,
                           "energy_components_j": {"host": host_energy}, "latency_s": 0.0})
        total_layer_energy = sum(l["energy_j"] for l in layers) + cost["host_delivery_energy_j"]
        total_layer_latency = sum(l["latency_s"] for l in layers)
        for l in layers:
            l["energy_share"] = l["energy_j"] / total_layer_energy if total_layer_energy else 0.0
            l["latency_share"] = l["latency_s"] / total_layer_latency if total_layer_latency else 0.0
        totals = {
            "energy_j": energy,
            "chip_energy_j": cost["energy_j"],
            "dynamic_energy_j": cost["dynamic_energy_j"],
            "static_energy_j": cost["static_energy_j"],
            "static_energy_whole_chips_j": cost["static_energy_whole_chips_j"],
            # dynamic by component (synaptic ops, neuron updates, spikes routed on chip and
            # between chips) + static of the cores used + the host's MACs: they add up to energy_j
            "energy_components_j": {**cost["energy_components_j"], "host": host_energy},
            "cores_used": cost["cores_used"],
            "host_energy_j": host_energy,
            "host_delivery_energy_j": cost["host_delivery_energy_j"],
            "latency_s": cost["latency_s"],
            "throughput_per_s": cost["throughput_per_s"],
            "barrier_s": cost["barrier_s"],
            "synops": nb["SynapticOperations"]["Effective_ACs"] + nb["SynapticOperations"]["Effective_MACs"],
            "chip_synops": float(sum(l["chip_synops"] for l in layers if l["kind"] != "host")),
            "host_macs": host_macs,
            "effective_acs": nb["SynapticOperations"]["Effective_ACs"],
            "effective_macs": nb["SynapticOperations"]["Effective_MACs"],
            "dense_ops": nb["SynapticOperations"]["Dense"],
            "activation_sparsity": nb["ActivationSparsity"],
            "membrane_updates": nb["MembraneUpdates"],
            "connection_sparsity": nb["ConnectionSparsity"],
            "footprint_bytes": nb["Footprint"],
            "chips": cost["chips"],
            "cores": cost["cores"],
            "timesteps": timesteps,
            "samples": n,
        }
        if labels is not None:
            totals["accuracy"] = result.accuracy
        levels = dict(shared_levels)
        if device_baseline is not None:
            device_snn = cost["dynamic_energy_j"] + cost["static_energy_whole_chips_j"] + host_energy
            levels["device"] = baselines.device_level(device_baseline, device_snn, prof.name)
        placeholders = zero_placeholders(prof, cost)
        per_hw[prof.name] = {
            "hw": {"name": prof.name, "title": prof.title, "all_inclusive": prof.all_inclusive,
                   "unpublished": unpublished(prof), "unpublished_note": unpublished_note(prof),
                   "zero_placeholders": placeholders, "energy_is_lower_bound": bool(placeholders)},
            "layers": layers,
            "totals": totals,
            "baseline": {"name": base_name, "macs": ann_macs, "energy_j": base_energy,
                         "ratio": base_energy / energy if energy > 0 else float("inf"),
                         "ratio_level": "mixed: ANN compute only / SNN on the chip (not like for like; see levels)",
                         "levels": levels},
        }
    first = per_hw[profiles[0].name]
    doc = {
        "layers": first["layers"],
        "totals": first["totals"],
        "baseline": first["baseline"],
        "hw": first["hw"],
        "per_hw": per_hw,
        "accuracy": result.accuracy,
        "samples": n,
        "timesteps": timesteps,
        "units": {"energy": "J per inference", "latency": "s per inference",
                  "baseline.ratio": ("mixed levels, kept for compatibility: ANN compute only (MACs x E_MAC) / SNN "
                                     "energy on the chip (dynamic + static of the cores used + host); > 1: the SNN "
                                     "needs less"),
                  "baseline.levels.*.ratio": ("ANN / SNN energy at the same level of inclusion (compute, "
                                              "compute+memory, device); > 1: the SNN needs less")},
    }
    return Estimate(doc=doc, result=result, mapped=mapped, costs=costs)


def _level_label(level: str, v: dict[str, Any], fmt: str, hw: str) -> str:
    if level == "compute":
        return f"{fmt} arithmetic: ANN MACs + bias adds; SNN ACs + neuron updates"
    if level == "compute+memory":
        return "Lemaire et al. 2022: int32 ops + SRAM accesses + addressing"
    if level == "device":
        return (f"published {v['reference']} on {v['ann_device']} vs snc's {hw} estimate incl. static power of whole chips "
                f"and host; like for like only for that network")
    return v.get("what", "")


def format_table(doc: dict[str, Any]) -> str:
    """Per-layer table with one column group per hardware profile, then totals."""
    from .report import fmt_num, pct, table

    hws = list(doc["per_hw"])
    first = doc["per_hw"][hws[0]]
    headers = ["layer", "neurons", "spikes/sample", "rate", "sparsity", "synops"]
    for h in hws:
        headers += [f"{h} cores", f"{h} energy (J)", "share", "lat. share"]
    rows = []
    by_hw = {h: {l["name"]: l for l in doc["per_hw"][h]["layers"]} for h in hws}
    for layer in first["layers"]:
        row = [layer["name"], layer["neurons"], layer["spikes_per_sample"], layer["rate"],
               pct(layer["sparsity"]) if layer["sparsity"] is not None else "-", layer["synops"]]
        for h in hws:
            l = by_hw[h][layer["name"]]
            row += [l["cores"], l["energy_j"], pct(l["energy_share"]), pct(l["latency_share"])]
        rows.append(row)
    out = [table(rows, headers, align="l" + "r" * (len(headers) - 1))]
    out.append("")
    for h in hws:
        t = doc["per_hw"][h]["totals"]
        b = doc["per_hw"][h]["baseline"]
        hw = doc["per_hw"][h]["hw"]
        out.append(f"{h}: {hw['title']}")
        if hw.get("unpublished_note"):
            out.append(f"  {hw['unpublished_note']}")
        lower = hw.get("zero_placeholders") or []
        if lower:
            out.append(f"  lower bound: unpublished energy terms counted as 0 although used: {', '.join(lower)}")
        out.append(
            f"  energy/inference {'>= ' if lower else ''}{fmt_num(t['energy_j'])} J (chip dynamic {fmt_num(t['dynamic_energy_j'])}, static of the "
            f"{t['cores_used']} cores used {fmt_num(t['static_energy_j'])} [whole chips: {fmt_num(t['static_energy_whole_chips_j'])}, "
            f"not added], host {fmt_num(t['host_energy_j'])}); latency {fmt_num(t['latency_s'])} s "
            f"({fmt_num(t['throughput_per_s'])} inferences/s); {t['chips']} chip(s), {t['cores']} core(s)"
        )
        comp = t.get("energy_components_j") or {}
        if comp:
            labels = {"synaptic_ops": "synaptic ops", "neuron_updates": "neuron updates", "spikes_on_chip": "spikes on chip",
                      "spikes_between_chips": "spikes between chips", "static": "static (cores used)", "host": "host"}
            out.append("  by component: " + ", ".join(f"{labels.get(k, k)} {fmt_num(v)} J" for k, v in comp.items()))
        out.append(f"  ANN baseline {b['name']}: {fmt_num(b['macs'])} MACs, {fmt_num(b['energy_j'])} J (compute only); "
                   f"ANN and SNN at matching levels (ANN / SNN > 1: the SNN needs less):")
        for level, v in b.get("levels", {}).items():
            out.append(f"    {level:<15} ANN {fmt_num(v['ann_energy_j'])} J, SNN {fmt_num(v['snn_energy_j'])} J, "
                       f"ANN / SNN = {fmt_num(v['ratio'])}  [{_level_label(level, v, b['name'], h)}]")
    t = first["totals"]
    out.append(
        f"activity: {t['samples']} samples x {t['timesteps']} steps; activation sparsity {pct(t['activation_sparsity'])}; "
        f"NeuroBench effective ACs {fmt_num(t['effective_acs'])}, MACs {fmt_num(t['effective_macs'])}, dense {fmt_num(t['dense_ops'])} per sample"
        + (f"; accuracy {pct(t['accuracy'])}" if "accuracy" in t else "")
    )
    return "\n".join(out)
