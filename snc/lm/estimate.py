"""Per-token sparsity, operations and energy of a compiled language model (a sequence graph),
from an event simulation on token data: what ``snc estimate --per-token`` prints.

Per projection (one row each) over the simulated tokens, with snc.ir.spike_coding's definitions:
``spikes_per_channel``, ``silent_share``, ``share_counts_le_7``, ``sparsity`` (zeros /
(channels x steps) of the expanded trains), ``sparsity_step3`` (the report's 3-step window),
``clipped_share``, and per token ``effective_acs`` (events x n_out) and ``effective_macs`` (the
dense projection's n_in x n_out), ``energy_j``. A projection left analog performs MACs.

Energy per token, per hardware column:

* neuromorphic profile (loihi2): a synaptic operation per event and output plus one update of
  each output neuron (snc.lm.energy.on_chip; graded payloads at the same cost);
* ``horowitz45`` (the report's 45 nm model): an INT8 add per event and output (an INT8 MAC for
  a graded event, its payload multiplies);
* in both, analog projections as MACs and all **dense compute** at the baseline format's 45 nm
  MAC: the nodes' ``ops_per_token`` (norms, activations, products, residual adds, attention,
  the linear-attention state, the coders' thresholds) plus one V_th rescale per coded output.
  A neuromorphic chip does not run these on its synaptic cores; they are charged, not hidden.

The ANN baseline is the same graph with every projection dense: MACs in the baseline format
plus the same dense compute (without the coders' thresholds and rescales).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from snc.hw import HardwareProfile, load_profile
from snc.ir import Graph
from snc.ir.sequence import Projection

from . import energy as lm_energy
from .footprint import projection_cores

DEFAULT_HW = ("loihi2", "horowitz45")
KEYS = ("spikes_per_channel", "silent_share", "share_counts_le_7", "sparsity", "sparsity_step3", "effective_acs",
        "effective_macs", "energy_j")


def _mac(baseline: str) -> float:
    return float(load_profile("horowitz45")[f"energy_mac_{baseline}"])


def estimate_sequence(graph: Graph, tokens: np.ndarray, *, labels: np.ndarray | None = None,
                      hw: tuple[str | HardwareProfile, ...] = DEFAULT_HW, baseline: str = "fp16", batch_size: int = 16,
                      progress: Callable[[int, int], None] | None = None, result=None) -> dict:
    """Simulate (events) and cost the model per token. Returns a JSON-ready document:
    ``layers`` (projections), ``compute`` (dense-compute nodes), ``totals``, ``baseline``,
    ``footprint`` (cores and chips of the projection weights on each neuromorphic column),
    ``quality`` (loss, perplexity, accuracy with labels)."""
    from snc.backends.sim.sequence import simulate_sequence
    from snc.errors import InvalidOption

    if baseline not in ("fp16", "fp32", "int8"):
        raise InvalidOption(f"LM baseline must be fp16, fp32 or int8, got {baseline!r}")
    profiles = [load_profile(h) if isinstance(h, str) else h for h in hw]
    ops45 = lm_energy.OpEnergy.from_profile("horowitz45")
    e_mac = _mac(baseline)
    if result is None:
        result = simulate_sequence(graph, tokens, labels=labels, batch_size=batch_size, progress=progress)
    n_tok = max(1, result.tokens)
    layers, compute = [], []
    dense_ops = 0.0  # per token, charged in every column
    for name, c in result.compute.items():
        compute.append({"name": name, "kind": c["kind"], "ops_per_token": c["ops_per_token"],
                        "energy_j": c["ops_per_token"] * e_mac})
        dense_ops += c["ops_per_token"]
    coder_ops = sum(c["ops_per_token"] for c in result.compute.values() if c["kind"] == "SpikeCode")
    rescale = 0.0
    per_hw_total = {p.name: 0.0 for p in profiles}
    for name, p in result.projections.items():
        d = p.as_dict()
        events_tok = p.events / n_tok
        row = {k: v for k, v in d.items() if k not in ("effective_acs", "effective_macs")}
        row["effective_acs"] = d["effective_acs"] / n_tok
        row["effective_macs"] = d["effective_macs"] / n_tok
        by_hw = {}
        for prof in profiles:
            if p.coder is None:
                e = row["effective_macs"] * e_mac
            elif prof.kind == "neuromorphic":
                e = lm_energy.on_chip(events_tok, p.n_out, prof)["energy_j"]
            else:
                e = row["effective_acs"] * lm_energy.per_event(p.coding, ops45)
            by_hw[prof.name] = e
            per_hw_total[prof.name] += e
        if p.coder is not None:
            rescale += p.n_out
        row["energy_by_hw"] = by_hw
        row["energy_j"] = by_hw[profiles[0].name]
        row["baseline_energy_j"] = row["effective_macs"] * e_mac
        layers.append(row)
    dense_j = (dense_ops + rescale) * e_mac
    for k in per_hw_total:
        per_hw_total[k] += dense_j
    coded = [p for p in result.projections.values() if p.coder is not None]
    entries = sum(p.entries for p in coded)
    events = sum(p.events for p in coded)
    cells = sum(p.entries * max(1, p.steps) for p in coded)
    proj_macs = sum(p.entries * p.n_out for p in result.projections.values()) / n_tok
    ann_j = proj_macs * e_mac + (dense_ops - coder_ops) * e_mac
    first = coded[0] if coded else None
    totals = {
        "coding": first.coding if first else None, "k": first.k if first else None,
        "steps": max((p.steps for p in coded), default=0),
        "spikes_per_channel": events / max(1, entries),
        "silent_share": sum(p.silent for p in coded) / max(1, entries),
        "share_counts_le_7": sum(p.le7 for p in coded) / max(1, entries),
        "sparsity": 1.0 - events / max(1, cells),
        "sparsity_step3": 1.0 - sum(p.win3 for p in coded) / max(1, 3 * entries),
        "clipped_share": sum(p.clipped for p in coded) / max(1, entries),
        "effective_acs": sum(p.events * p.n_out for p in coded) / n_tok,
        "effective_macs": proj_macs + dense_ops + rescale,
        "projection_macs": proj_macs,
        "dense_compute_macs": dense_ops + rescale,
        "dense_compute_energy_j": dense_j,
        "energy_j": per_hw_total[profiles[0].name],
        "energy_by_hw": per_hw_total,
        "tokens": result.tokens,
    }
    footprint = {}
    for prof in profiles:
        if prof.kind == "neuromorphic":
            projs = [n for n in graph.topological_order() if isinstance(graph.nodes[n], Projection)]
            bits = 8 if graph.meta.get("w8") else int(prof["weight_bits"])
            cores = sum(projection_cores(*graph.nodes[n].weight.shape, prof, bits) for n in projs)
            footprint[prof.name] = {"cores": cores, "chips": -(-cores // int(prof["cores_per_chip"])), "weight_bits": bits}
    return {
        "model": graph.name, "per_token": True, "hw": [p.name for p in profiles], "layers": layers, "compute": compute,
        "totals": totals,
        "baseline": {"name": f"{baseline} ANN (45 nm)", "energy_j": ann_j,
                     "ratio": {k: ann_j / v if v else None for k, v in per_hw_total.items()}},
        "footprint": footprint,
        "quality": {"loss": result.loss, "perplexity": result.perplexity, "accuracy": result.accuracy},
        "notes": list(result.notes) + [
            f"dense compute (norms, attention, activations, products, residuals, coders, V_th rescales) charged at the "
            f"45 nm {baseline} MAC in every column: {dense_ops + rescale:,.0f} ops per token"],
    }


def format_per_token(doc: dict) -> str:
    """The per-token table: one row per projection, then the totals and the baseline."""
    from snc.report import table

    hw = doc["hw"]
    rows = []
    for r in doc["layers"]:
        f = (lambda v, spec: "-" if v is None else format(v, spec))
        rows.append([r["name"], r["coding"] or "analog", r["steps"], f(r["spikes_per_channel"], ".3f"), f(r["silent_share"], ".1%"),
                     f(r["share_counts_le_7"], ".1%"), f(r["sparsity"], ".1%"), f(r["sparsity_step3"], ".1%"),
                     f"{r['effective_acs']:,.0f}", f"{r['effective_macs']:,.0f}",
                     *[f"{r['energy_by_hw'][h] * 1e12:,.1f}" for h in hw]])
    t = doc["totals"]
    rows.append(["TOTAL (projections)", t["coding"] or "analog", t["steps"], f"{t['spikes_per_channel']:.3f}", f"{t['silent_share']:.1%}",
                 f"{t['share_counts_le_7']:.1%}", f"{t['sparsity']:.1%}", f"{t['sparsity_step3']:.1%}",
                 f"{t['effective_acs']:,.0f}", f"{t['projection_macs']:,.0f}",
                 *[f"{(t['energy_by_hw'][h] - t['dense_compute_energy_j']) * 1e12:,.1f}" for h in hw]])
    head = ["projection", "coding", "steps", "spikes/ch", "silent", "|c|<=7", "sparsity", "sparsity(3)", "ACs/token",
            "MACs/token", *[f"pJ/token {h}" for h in hw]]
    lines = [table(rows, head), ""]
    lines.append(f"dense compute: {t['dense_compute_macs']:,.0f} ops per token, {t['dense_compute_energy_j'] * 1e12:,.1f} pJ "
                 "(charged in every column)")
    kinds: dict[str, int] = {}
    for c in doc["compute"]:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + c["ops_per_token"]
    kinds["V_th rescale"] = t["dense_compute_macs"] - sum(kinds.values())
    lines.append("  by kind (ops per token): " + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])))
    for h in hw:
        ratio = doc["baseline"]["ratio"][h]
        lines.append(f"energy per token on {h}: {t['energy_by_hw'][h] * 1e9:.3f} nJ; {doc['baseline']['name']}: "
                     f"{doc['baseline']['energy_j'] * 1e9:.3f} nJ (ANN / {h} = {ratio:.2f})")
    for h, fp in doc["footprint"].items():
        lines.append(f"{h}: projection weights ({fp['weight_bits']} bits) on {fp['cores']} cores, {fp['chips']} chip(s)")
    q = doc["quality"]
    if q["perplexity"] is not None:
        lines.append(f"perplexity {q['perplexity']:.3f}, next-token accuracy {q['accuracy']:.2%} on {t['tokens']} tokens")
    lines += [f"note: {n}" for n in doc["notes"]]
    return "\n".join(lines)
