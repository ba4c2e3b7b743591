"""The mapping of a compiled network onto cores, for people: ``snc inspect --mapping``.

Reads what the ``map`` pass wrote (``graph.meta["mapping"]``): one row per core with the layers
and neuron ranges it holds, each resource against the core's limit, the limit that bound the
core, and a summary (cores, chips, the placement objective and which limits bind).
"""
from __future__ import annotations

from typing import Any

from snc.errors import MappingError
from snc.hw import load_profile
from snc.hw.mesh import Mesh
from snc.ir import Graph

from .passes.map_to_cores import LABELS, RESOURCES, binding_limits, utilisation
from .report import fmt_num, table


def mapping_doc(graph: Graph) -> dict[str, Any]:
    """The mapping as a JSON document: summary keys, ``cores`` (per core, with use fractions and
    tile coordinates) and ``blocks`` (per block)."""
    m = graph.meta.get("mapping")
    if not isinstance(m, dict) or "cores" not in m:
        raise MappingError("the network carries no core mapping; compile it with --hw NAME "
                           "or pass --hw NAME to map it now")
    x, y = (int(v) for v in m["mesh_tiles"])
    mesh = Mesh(int(m["cores_per_chip"]), int(m["cores_per_tile"]), x, y)
    per_core = utilisation(graph)
    for row in per_core:
        chip, x, y = (int(v) for v in mesh.coordinates(row["core"]))
        row.update(chip=chip, tile_x=x, tile_y=y)
    summary = {k: m[k] for k in ("hw", "chips", "cores_used", "cores_per_chip", "limits", "rates", "objective",
                                 "objective_snake", "objective_start", "placement_rounds") if k in m}
    summary["blocks"] = m.get("blocks", len(m["cores"]))
    summary["packed"] = m.get("packed", False)
    summary["binding"] = binding_limits(graph)
    summary["objective_meaning"] = "sum over core pairs of spike messages per step x tile hops (lower is better)"
    return {**summary, "cores": per_core, "block_rows": m["cores"]}


def format_mapping(graph: Graph) -> str:
    doc = mapping_doc(graph)
    rows = []
    blocks_on: dict[int, list[str]] = {}
    for b in doc["block_rows"]:
        blocks_on.setdefault(b["core"], []).append(f"{b['population']}[{b['start']}:{b['stop']}]")
    for r in doc["cores"]:
        held = blocks_on.get(r["core"], [])
        shown = ", ".join(held[:3]) + (f", +{len(held) - 3}" if len(held) > 3 else "")
        rows.append([r["core"], r["chip"], f"({r['tile_x']},{r['tile_y']})", shown, r["neurons"],
                     f"{r['neurons_use']:.0%}", f"{r['memory_bits_use']:.0%}", f"{r['fan_in_use']:.0%}",
                     f"{r['fan_out_use']:.0%}", LABELS.get(r["bound"], "-") if r["bound"] else "-"])
    out = [table(rows, ["core", "chip", "tile", "blocks", "neurons", "neurons %", "memory %", "fan-in %", "fan-out %",
                        "bound by"], align="rrllrrrrrl")]
    lim = doc["limits"]
    binding = ", ".join(f"{LABELS.get(k, k)} on {n}" for k, n in doc["binding"].items() if k != "none") or "none"
    out.append("")
    out.append(f"{doc['hw']}: {doc['blocks']} blocks on {doc['cores_used']} cores of {doc['chips']} chip(s) "
               f"({'packed' if doc['packed'] else 'one block per core'}); limits per core: "
               + ", ".join(f"{label} {lim[limit]}" for _, limit, label in RESOURCES))
    out.append(f"limits that bind: {binding}" + (f"; {doc['binding']['none']} core(s) not full" if doc["binding"].get("none") else ""))
    if "objective" in doc:
        out.append(f"placement objective ({doc['objective_meaning']}): {fmt_num(doc['objective'])} "
                   f"(snake order {fmt_num(doc['objective_snake'])}; rates: {doc.get('rates', '?')})")
    return "\n".join(out)


def map_now(graph: Graph, hw: str, calibration=None) -> Graph:
    """``graph`` mapped onto profile ``hw`` (strict: a network that does not fit is an error)."""
    from .passes import PassContext, get

    return get("map")(graph, PassContext(calibration=calibration, options={"hw": load_profile(hw)}))
