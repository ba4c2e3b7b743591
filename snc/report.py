"""Plain-text tables for the CLI (inspect, simulate, compile reports)."""
from __future__ import annotations

from typing import Any, Iterable, Sequence


def fmt_num(value: Any, digits: int = 3) -> str:
    """Compact human formatting: 12,345 for integers, 3 significant digits (or %) for floats."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        a = abs(value)
        if a >= 1e6 or a < 1e-3:
            return f"{value:.{digits - 1}e}"
        if a >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], align: str | None = None) -> str:
    """Fixed-width table. ``align`` is a string of 'l'/'r' per column (default: text left, numbers right)."""
    cells = [[fmt_num(c) if not isinstance(c, str) else c for c in row] for row in rows]
    if align is None:
        align = "".join("r" if rows and not isinstance(rows[0][i], str) else "l" for i in range(len(headers)))
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))

    def line(items: Iterable[str]) -> str:
        out = []
        for i, c in enumerate(items):
            out.append(c.rjust(widths[i]) if align[i] == "r" else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep] + [line(r) for r in cells])


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100.0 * x:.2f}%"


def format_simulation(result) -> str:
    """The table ``snc simulate`` prints: per layer, then totals. A layer's synops are the
    effective synaptic operations of its incoming connection layers (NeuroBench's count, per
    sample summed over steps; docs/json_schema.md, section "synops")."""
    doc = result.to_json()
    rows = []
    for layer in doc["layers"]:
        rows.append([
            layer["name"], layer["kind"], layer["neurons"], layer["spikes_per_sample"], layer["rate"],
            pct(layer["sparsity"]) if layer["spiking"] else "-",
            layer["synops_per_sample"], layer["synop_kind"] or "-",
        ])
    out = [table(rows, ["layer", "kind", "neurons", "spikes/sample", "rate", "sparsity", "synops/sample", "op"], align="llrrrrrl")]
    tot = doc["totals"]
    out.append("")
    out.append(
        f"samples {doc['samples']}, timesteps {doc['timesteps']}, arithmetic {doc['arithmetic']}, timing {doc['timing']}"
    )
    out.append(f"spikes/sample {fmt_num(tot['spikes_per_sample'])}, activation sparsity {pct(tot['activation_sparsity'])}")
    if tot["synops_per_sample"] is None:
        out.append("synops: not counted by this backend; synaptic operations caused by spikes/sample "
                   f"{fmt_num(tot['synops_caused_per_sample'])}, host analog MACs/sample {fmt_num(tot['analog_macs_per_sample'])}")
    else:
        out.append(
            f"synops/sample {fmt_num(tot['synops_per_sample'])} = {fmt_num(tot['effective_acs_per_sample'])} AC + "
            f"{fmt_num(tot['effective_macs_per_sample'])} MAC (NeuroBench effective ops at each layer's incoming connections; "
            f"dense {fmt_num(tot['dense_ops_per_sample'])})"
        )
    if doc["accuracy"] is not None:
        out.append(f"accuracy {pct(doc['accuracy'])}")
    if doc.get("overflow"):
        out.append(f"fixed-point overflow: {doc['overflow']}")
    return "\n".join(out)


def format_neuron_models() -> str:
    """``snc neurons``: one line per registered model (built-ins, then plug-ins), with its state,
    the consumers that run it and whether snc emits it to Lava."""
    from snc.ir.models import models

    lines = []
    width = max((len(",".join(m.state)) for m in models().values()), default=8)
    for kind, m in models().items():
        runs = [c for c in ("float", "fixed", "quantize", "rate") if m.supports(c)]
        origin = "built-in" if m.builtin else "in-tree" if m.node_class.__module__.startswith("snc.") else "plug-in"
        lava = ("emitted to Lava" if m.builtin else f"emitted to Lava as {m.lava}" if m.supports("lava")
                else f"Lava: {m.lava or 'none'} (not emitted)")
        lines.append(f"{kind.ljust(12)} {origin.ljust(9)} state {','.join(m.state).ljust(width)} runs: {', '.join(runs)}; {lava}")
    return "\n".join(lines)


def format_passes() -> str:
    """``snc passes``: each pass with its contract and options, the common options, the default pipeline."""
    from snc.passes import COMMON_OPTIONS, DEFAULT_PIPELINE, REGISTRY
    from snc.passes.options import describe

    out = []
    width = max(len(n) for n in REGISTRY)
    for name, p in REGISTRY.items():
        mark = "*" if name in DEFAULT_PIPELINE else " "
        out.append(f"{mark} {name.ljust(width)}  {p.description}")
        contract = []
        if p.requires:
            contract.append(f"requires: {', '.join(p.requires)}" + (" (+ fixed-point when a chip is named)" if name == "map" else ""))
        if p.guarantees:
            contract.append(f"guarantees: {', '.join(p.guarantees)}")
        if contract:
            out.append(f"  {' ' * width}  {'; '.join(contract)}")
        cls = p.options_class
        for opt, typ, default, help_ in describe(cls) if cls is not None else []:
            out.append(f"  {' ' * width}    {opt} ({typ}, default {default}): {help_}")
    out.append("\ncommon options: " + "; ".join(f"{k}: {v}" for k, v in COMMON_OPTIONS.items()))
    out.append(f"* default pipeline: {','.join(DEFAULT_PIPELINE)}")
    return "\n".join(out)
