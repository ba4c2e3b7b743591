"""``map``: split every spiking population into core-sized blocks and place the blocks on a mesh
of neuromorphic cores (several chips when one is not enough).

Model (all counts per core, limits from the hardware profile):

* a *block* is a run of contiguous neurons of one population (row-major flat index order).
  Several blocks, of one or several populations, share a core when the core's limits hold for
  all of them together (``pack``, on by default; ``snc.passes.mapping.packing``: neurons and
  memory add up, input axons are the union of the blocks' sources, output axons add up).
  Input nodes are the host: not mapped;
  neither are the synapses of a projection through a host operator (``HostMaxPool2d``): the
  host computes that current and programs it as the population's per-sample bias.
* neurons:   stop - start                                   <= neurons_per_core
* memory:    sum over the block's neurons of their incoming non-zero synapses (all projections)
             x (weight_bits + synapse_overhead_bits)        <= synaptic_memory_bits
* fan-in:    distinct source neurons (of every source population, host inputs included) with at
             least one synapse onto the block; one input axon each   <= max_fan_in
* fan-out:   one output axon per (source core, destination core) pair: the number of distinct
             destination blocks its neurons have a synapse onto      <= max_fan_out

A *projection* is the composed linear map from one source population to one target population
through the synaptic operators between them (pooling, reshapes, concatenations, residual joins;
the same walk as ``snc.backends.plan``: ``snc.ir.projections``); its non-zeros are the synapses. Weights are read from
the float ``weight`` arrays: a float zero stays zero when quantised, so this is never smaller than
the fixed-point pattern. Weight bits: ``options["weight_bits"]``, else the largest
``fixed.weight_bits`` on the projection's operators, else the profile's ``weight_bits``.

Splitting: all four quantities only grow when a block grows, so greedy maximal blocks (start at
the first unplaced neuron, extend while every limit holds) use the fewest blocks of any
contiguous split of that population, given how its destinations are split. Fan-out depends on
the destinations' blocks, so populations are split in reverse topological order: destinations
are final before their sources. A neuron that cannot fit an empty core (more input axons or
synaptic memory than a core has, or synapses onto more destination cores than it has output
axons), or a network that needs more chips than ``max_chips``, raises ``MappingError``. (Spreading
one neuron's inputs over several cores, as multi-compartment neurons allow on Loihi, is not
modelled.)

Placement: traffic(u -> v) = sum of the spike rates (spikes per step) of the neurons of block u
with at least one synapse onto block v (one message per spike and destination core). The cost is
sum over block pairs of traffic x (hops + (chip_weight - 1) x chip crossings), hops = east-west +
north-south tile hops on the global mesh (``snc.hw.mesh``: chips side by side along x; cores of
one tile are 0 hops apart); a chip crossing counts as ``chip_weight`` hops (inter-chip links are
~30x slower: the profile's crossing / hop time), so placement keeps traffic on a chip; host
traffic is left out. Blocks start in the graph's topological order along ``Mesh.snake_order``
(the reported "snake" objective), or, where cheaper, in a depth-first topological order (chains
kept together) and/or along a column-wise snake over all chips (which also crosses from chip to
chip in one hop). Rounds of pairwise swaps (with a block or an empty core: towards the
traffic-weighted centroid of a block's partners, or one tile in each direction) then apply every
improving swap that is independent of the better ones. Deterministic: no randomness and no
clock; big block graphs get fewer rounds (a fixed budget of edge evaluations).

Options (``ctx.options``): ``hw`` (profile name, path or HardwareProfile; "loihi"), ``max_chips``,
``weight_bits``, ``rates`` ({population: (n,) spikes per step}, or "uniform"), ``default_rate``
(0.1 spikes per neuron and step, used without rates and calibration), ``placement_rounds`` (24).
Without ``rates`` but with ``ctx.calibration`` the rates come from the shared calibration analysis
(``ctx.analysis``: each neuron's rate limit clip(a / theta, 0, 1), averaged over the calibration set).

Packing: blocks in topological order go to the first of the recently opened cores where every
limit still holds (a chain of small layers shares a core and its traffic stays there); placement
then places cores, not blocks, with the traffic between blocks of different cores.

Result: ``graph.meta["mapping"]`` (hardware, chips, cores_used, blocks, per-block rows ``cores``
with population, start, stop, core, the block's own resources and ``split_by`` (the limit that
ended it), per-core rows ``core_use`` with the core's totals and ``bound`` (the limit that kept
it from taking the next block), objective); ``snc.ir.annotations.blocks`` reads a population's
blocks from it, ``utilisation`` the per-core rows with each resource's use and
``binding_limits`` how many cores each limit binds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from snc.errors import InvalidGraph, MappingError
from snc.hw import HardwareProfile, load_profile
from snc.hw.mesh import Mesh
from snc.ir import Graph
from snc.ir.annotations import all_blocks, orders as mapping_orders, spatial_order

from . import PassContext
from .mapping.connectivity import _Population, all_projections, projections
from .mapping.packing import pack
from .mapping.partition import _Limits, _split
from .mapping.placement import _block_stats, _depth_first_rank, _Placer
from .options import option

NAME = "map"

DEFAULT_RATE = 0.1  # spikes per neuron and step when nothing better is known
PLACEMENT_ROUNDS = 24


@dataclass
class Options:
    """Options of ``map`` (and ``hw``, the chip; ``map_strict``, whether not fitting is an error)."""

    max_chips: int | None = option(None, "most chips the network may use (default: the profile's)", check=lambda v: v >= 1,
                                   expect="an integer >= 1 or None")
    weight_bits: int | None = option(None, "weight bits per synapse in memory (default: the quantised ones, else the chip's)",
                                     check=lambda v: 1 <= v <= 64, expect="an integer 1..64 or None")
    rates: Any = option(None, "{population: per-neuron spikes per step} or 'uniform' (default: from calibration)")
    default_rate: float = option(DEFAULT_RATE, "spikes per neuron and step where nothing better is known",
                                 check=lambda v: v >= 0 and math.isfinite(v), expect="a finite rate >= 0")
    placement_rounds: int = option(PLACEMENT_ROUNDS, "rounds of pairwise swaps in placement", check=lambda v: v >= 0,
                                   expect="an integer >= 0")
    pack: bool = option(True, "let several small blocks (of one or more layers) share a core when its limits allow")
    chip_weight: int | None = option(None, "tile hops one chip crossing counts as in placement (default: the profile's "
                                     "crossing / hop time, e.g. 37 on Loihi)", check=lambda v: v >= 1,
                                     expect="an integer >= 1 or None")
    conv_order: str = option("spatial", "order in which feature maps (C, H, W) are cut into blocks: 'spatial' (bands of "
                             "pixels with all their channels: a block's inputs are a local window) or 'flat' (C, H, W)",
                             choices=("spatial", "flat"))


RESOURCES = (
    ("neurons", "neurons_per_core", "neurons"),
    ("memory_bits", "synaptic_memory_bits", "synaptic memory"),
    ("fan_in", "max_fan_in", "input axons"),
    ("fan_out", "max_fan_out", "output axons"),
)


# ---------------------------------------------------------------------------------------------
# Rates.


def _rates(graph: Graph, ctx: PassContext, pops: dict[str, _Population]) -> tuple[dict[str, np.ndarray], str]:
    given = ctx.options.get("rates")
    if not (given is None or given == "uniform" or isinstance(given, dict)):
        raise MappingError(f"option rates must be a dict of per-neuron rates or 'uniform', got {given!r}")
    default = float(ctx.options.get("default_rate", DEFAULT_RATE))
    if not (np.isfinite(default) and default >= 0):
        raise MappingError(f"option default_rate must be a finite rate >= 0, got {default}")
    rates = {name: np.full(pop.size, default) for name, pop in pops.items()}
    if isinstance(given, dict):
        for name, value in given.items():
            if name not in pops:
                continue
            r = np.asarray(value, dtype=np.float64).ravel()
            if r.size == 1:
                r = np.full(pops[name].size, float(r[0]))
            if r.size != pops[name].size or not np.all(np.isfinite(r)) or np.any(r < 0):
                raise MappingError(f"rates must be {pops[name].size} finite non-negative values (spikes per step)", node=name)
            rates[name] = r
        return rates, "given"
    if given is None:
        # The shared calibration analysis: rate-limit rates, from balance's thresholds (no simulation).
        measured = ctx.analysis.rates(graph) if ctx.calibration is not None and len(ctx.calibration) else None
        if measured is not None:
            for name in pops:
                r = measured.get(name)
                if r is not None and r.size == pops[name].size:
                    rates[name] = np.asarray(r, dtype=np.float64)
            return rates, f"rate limit of {len(ctx.calibration)} calibration samples (calibration analysis)"
    return rates, f"uniform {default:g}"


# ---------------------------------------------------------------------------------------------
# The pass.


CHIP_WEIGHT = 30  # inter-chip links ~30x slower than on-chip ones (Davies et al. 2021)


def _chip_weight(profile: HardwareProfile) -> int:
    """Hops one chip crossing is worth in placement: the profile's crossing / tile-hop time
    ratio, else CHIP_WEIGHT."""
    hop = 0.5 * (float(profile["time_hop_ew"]) + float(profile["time_hop_ns"]))
    crossing = float(profile["time_chip_hop"])
    return max(1, round(crossing / hop)) if hop > 0 and crossing > 0 else CHIP_WEIGHT


def _profile(ctx: PassContext) -> HardwareProfile:
    profile = load_profile(ctx.options.get("hw", "loihi"))
    if profile.kind != "neuromorphic":
        raise MappingError(f"hardware profile {profile.name!r} is not a neuromorphic chip (kind {profile.kind!r})")
    return profile


def map_to_cores(graph: Graph, ctx: PassContext) -> Graph:
    """Map onto ``ctx.options["hw"]``. With ``options["map_strict"] = False`` (the default pipeline
    when no target was asked for) a network that does not fit is reported, not refused."""
    if ctx.options.get("map_strict", True):
        return _map(graph, ctx)
    try:
        return _map(graph, ctx)
    except MappingError as exc:
        ctx.note(NAME, f"not mapped: {exc.message} (node {exc.node!r}); choose another --hw to map it", node=exc.node)
        return graph.copy()


def _map(graph: Graph, ctx: PassContext) -> Graph:
    profile = _profile(ctx)
    if not graph.is_spiking:
        raise InvalidGraph("map needs a spiking graph (run convert first)")
    lim = _Limits(profile.name, int(profile["neurons_per_core"]), int(profile["synaptic_memory_bits"]),
                  int(profile["synapse_overhead_bits"]), int(profile["max_fan_in"]), int(profile["max_fan_out"]))
    max_chips = ctx.options.get("max_chips")
    if max_chips is None:
        max_chips = profile.get("max_chips")
    if max_chips is not None and int(max_chips) < 1:
        raise MappingError(f"max_chips must be >= 1, got {max_chips}")
    mesh = Mesh.from_profile(profile)
    cpc = mesh.cores_per_chip

    weight_bits = ctx.options.get("weight_bits")
    if weight_bits is not None and (isinstance(weight_bits, bool) or int(weight_bits) != weight_bits or weight_bits < 1):
        raise MappingError(f"option weight_bits must be a positive integer, got {weight_bits!r}")
    conv_order = ctx.options.get("conv_order", "spatial")
    if conv_order not in ("spatial", "flat"):
        raise MappingError(f"option conv_order must be 'spatial' or 'flat', got {conv_order!r}")
    shapes = graph.infer_shapes()
    orders = {} if conv_order == "flat" else {
        name: spatial_order(shapes[name]) for name, node in graph.nodes.items()
        if node.role in ("neuron", "readout") and len(shapes[name]) == 3
        and shapes[name][0] > 1 and shapes[name][1] * shapes[name][2] > 1}
    split = []
    for pop in projections(graph, int(profile["weight_bits"]), weight_bits, orders):
        pop.starts = _split(pop, lim)
        for conn in pop.incoming:  # the same objects are its sources' outgoing projections
            conn.starts = pop.starts
        split.append(pop)
    pops = {p.name: p for p in reversed(split)}  # topological order

    rates, rate_source = _rates(graph, ctx, pops)
    for name, perm in orders.items():  # rates in mapping order
        if name in rates:
            rates[name] = rates[name][perm]
    rows, u, v, t = _block_stats(pops, rates)
    n_blocks = len(rows)
    sources: list[dict[str, np.ndarray]] = [{} for _ in range(n_blocks)]
    first = 0
    for pop in pops.values():
        for k, why in enumerate(pop.split_by or [None] * len(pop.starts)):
            rows[first + k]["split_by"] = why
        for conn in pop.incoming:
            ptr, cols = conn.block_sources()
            for k in range(len(ptr) - 1):
                if ptr[k + 1] > ptr[k]:
                    sources[first + k][conn.source] = cols[ptr[k]:ptr[k + 1]]
        first += len(pop.starts)
    where, bins = pack(rows, sources, lim, enabled=bool(ctx.options.get("pack", True)))
    n_cores = len(bins)
    chips = max(1, math.ceil(n_cores / cpc))
    if max_chips is not None and chips > int(max_chips):
        budget = int(max_chips) * cpc
        first = 0
        for name, pop in pops.items():
            k = first + len(pop.starts)
            if int(where[first:k].max()) >= budget:
                left = budget - int(where[first])
                raise MappingError(
                    f"the layer needs {int(where[k - 1] - where[first]) + 1} cores but only {max(0, left)} of the {budget} "
                    f"cores of {int(max_chips)} {profile.name} chip(s) are left (the network needs {n_cores} cores, "
                    f"{chips} chips)", node=name)
            first = k

    # Placement of the cores (bins): traffic between blocks of one core never leaves it.
    bu, bv = where[u], where[v]
    cross = bu != bv
    chip_weight = ctx.options.get("chip_weight")
    if chip_weight is None:
        chip_weight = _chip_weight(profile)
    if isinstance(chip_weight, bool) or int(chip_weight) != chip_weight or chip_weight < 1:
        raise MappingError(f"option chip_weight must be an integer >= 1, got {chip_weight!r}")
    placer = _Placer(mesh, chips, n_cores, bu[cross], bv[cross], t[cross], int(chip_weight))
    before = placer.cost()
    best = (before, placer.pos)
    block_rank = _depth_first_rank(pops)
    first_block = np.full(n_cores, n_blocks, dtype=np.int64)
    np.minimum.at(first_block, where, block_rank)
    depth_first = np.empty(n_cores, dtype=np.int64)
    depth_first[np.argsort(first_block, kind="stable")] = np.arange(n_cores)
    for cores, rank in ((placer.pos, depth_first), (placer.column_snake(), None), (placer.column_snake(), depth_first)):
        placer.start(cores, rank)
        if placer.cost() < best[0]:
            best = (placer.cost(), placer.pos)
    placer.start(best[1])
    start = best[0]
    rounds = placer.improve(int(ctx.options.get("placement_rounds", PLACEMENT_ROUNDS)))
    after = placer.cost()
    cores = placer.pos[:n_cores]
    ca, cb = mesh.coordinates(cores[bu[cross]])[0], mesh.coordinates(cores[bv[cross]])[0]
    chip_traffic = float(t[cross][ca != cb].sum())

    g = graph.copy()
    for k in range(n_blocks):
        rows[k] = {"core": int(cores[where[k]]), **rows[k]}
    for k, b in enumerate(bins):
        b["core"] = int(cores[k])
        b["bound"] = b["bound"] or (rows[int(np.flatnonzero(where == k)[0])]["split_by"] if b["blocks"] == 1 else None)
    bins = [{"core": b.pop("core"), **b} for b in sorted(bins, key=lambda b: b["core"])]
    for name in pops:  # the mapping lives once, in the graph's rows (snc.ir.annotations.blocks)
        if "mapping" in g.nodes[name].meta:  # a per-node copy from an earlier snc
            g.replace(name, g.nodes[name].replace(meta={k: v for k, v in g.nodes[name].meta.items() if k != "mapping"}))
    rows.sort(key=lambda r: r["core"])  # stable: topological order within a core
    limits = {"neurons_per_core": lim.neurons, "synaptic_memory_bits": lim.memory, "max_fan_in": lim.fan_in,
              "max_fan_out": lim.fan_out, "synapse_overhead_bits": lim.overhead}
    g.meta["mapping"] = {
        "hw": profile.name,
        "chips": chips,
        "cores_used": n_cores,
        "blocks": n_blocks,
        "packed": bool(ctx.options.get("pack", True)),
        "cores_per_chip": cpc,
        "mesh_tiles": [mesh.tiles_x, mesh.tiles_y],
        "cores_per_tile": mesh.cores_per_tile,
        "max_chips": None if max_chips is None else int(max_chips),
        "limits": limits,
        "rates": rate_source,
        "chip_weight": int(chip_weight),
        "chip_traffic": chip_traffic,
        "objective": after,
        "objective_snake": before,
        "objective_start": start,
        "placement_rounds": rounds,
        "cores": rows,
        "core_use": bins,
        # Feature maps split over several cores in spatial order (snc.ir.annotations.Block.indices)
        "orders": {name: {"order": "spatial", "shape": [int(v) for v in shapes[name]]}
                   for name in orders if len(pops[name].starts) > 1},
    }
    _notes(ctx, g, pops, (before, start, after), rounds, rate_source)
    return g


def _notes(ctx: PassContext, g: Graph, pops: dict[str, _Population], objectives: tuple[float, float, float],
           rounds: int, rate_source: str) -> None:
    before, start, after = objectives
    m = g.meta["mapping"]
    ctx.note(NAME, f"{m['cores_used']} cores on {m['chips']} {m['hw']} chip(s) of {m['cores_per_chip']} cores",
             cores_used=m["cores_used"], chips=m["chips"])
    per_layer = {name: len(p.starts) for name, p in pops.items()}
    shown = ", ".join(f"{k} {n}" for k, n in list(per_layer.items())[:20])
    more = f", ... ({len(per_layer) - 20} more layers)" if len(per_layer) > 20 else ""
    ctx.note(NAME, f"blocks per layer: {shown}{more}", layers=per_layer)
    rows = utilisation(g)
    bound = binding_limits(g)
    said = ", ".join(f"{LABELS.get(k, k)} on {n}" for k, n in bound.items() if k != "none")
    ctx.note(NAME, f"{m['blocks']} blocks on {m['cores_used']} cores ({'packed' if m['packed'] else 'one block per core'}); "
                   f"limits that bind: {said or 'none'}" + (f"; {bound['none']} core(s) not full" if bound.get("none") else ""),
             blocks=m["blocks"], binding=bound)
    worst = max(RESOURCES, key=lambda r: max(row[f"{r[0]}_use"] for row in rows))
    top = max(rows, key=lambda row: row[f"{worst[0]}_use"])
    mean = {key: float(np.mean([row[f"{key}_use"] for row in rows])) for key, _, _ in RESOURCES}
    least = min(RESOURCES, key=lambda r: mean[r[0]])
    means = ", ".join(f"{label} {mean[key]:.0%}" for key, _, label in RESOURCES)
    ctx.note(NAME, f"tightest resource: {worst[2]}, {top[f'{worst[0]}_use']:.0%} of a core at most "
                   f"(core {top['core']}, layer {top['population']!r}); least used: {least[2]}; mean use: {means}",
             resource=worst[1], peak_use=top[f"{worst[0]}_use"], least_used=least[1],
             mean_use={limit: mean[key] for key, limit, _ in RESOURCES})
    ctx.note(NAME, f"placement: traffic x hops {before:.6g} in snake order, {start:.6g} from the best starting "
                   f"order, {after:.6g} after {rounds} swap round(s) (rates: {rate_source})",
             objective_snake=before, objective_start=start, objective=after)


# ---------------------------------------------------------------------------------------------
# Helpers for backends and cost models.

LABELS = {limit: label for _, limit, label in RESOURCES}


def binding_limits(graph: Graph) -> dict[str, int]:
    """How many cores each limit keeps from taking more (``bound`` of ``utilisation``; "none":
    cores nothing stopped, e.g. the last one)."""
    out: dict[str, int] = {}
    for row in utilisation(graph):
        key = row["bound"] or "none"
        out[key] = out.get(key, 0) + 1
    return out



def utilisation(graph: Graph) -> list[dict[str, Any]]:
    """Per-core rows of a mapped graph, ordered by core: core, population (the layers on it,
    comma-separated), populations, blocks, neurons, synapses, memory_bits, fan_in (distinct
    source neurons over its blocks), fan_out (output axons, summed over its blocks), bound (the
    limit that stopped the core from taking more, None if none did), plus each resource's
    fraction of the core's limit: neurons_use, memory_bits_use, fan_in_use, fan_out_use.
    The per-block rows are ``graph.meta["mapping"]["cores"]``."""
    mapping = graph.meta.get("mapping")
    if not isinstance(mapping, dict) or "cores" not in mapping:
        raise MappingError("the graph is not mapped (run the map pass first)")
    limits = mapping["limits"]
    per_core = mapping.get("core_use")
    if per_core is None:  # an artifact from before packing: one block per core
        per_core = [{"core": r["core"], "blocks": 1, "populations": [r["population"]],
                     **{k: r[k] for k in ("neurons", "synapses", "memory_bits", "fan_in", "fan_out")},
                     "bound": r.get("split_by")} for r in mapping["cores"]]
    out = []
    for row in per_core:
        row = dict(row)
        row["population"] = ", ".join(row["populations"])
        for key, limit, _ in RESOURCES:
            row[f"{key}_use"] = row[key] / limits[limit]
        out.append(row)
    return out


def block_traffic(graph: Graph, rates: dict[str, np.ndarray] | None = None,
                  default_rate: float = DEFAULT_RATE) -> tuple[list[dict[str, Any]], sp.csr_matrix]:
    """The blocks of a mapped graph and the spike traffic between them.

    Returns (blocks, traffic): blocks[k] = {"population", "start", "stop", "core"} in topological
    order; traffic[u, v] = messages per time step from block u to block v: the sum over the
    neurons of u with at least one synapse onto v of their rate (``rates[population]``, spikes per
    neuron and step, else ``default_rate``). Hops of a message: ``Mesh.hops`` between the cores.
    Host inputs are not blocks; their traffic is left out.
    """
    mapping = graph.meta.get("mapping")
    if not isinstance(mapping, dict):
        raise MappingError("the graph is not mapped (run the map pass first)")
    perms = {name: spatial_order(shape) for name, (order, shape) in mapping_orders(graph).items() if order == "spatial"}
    pops = all_projections(graph, 0, orders=perms)  # bits do not matter for traffic
    blocks = []
    placed = all_blocks(graph)
    for name, pop in pops.items():
        if not placed.get(name):
            raise MappingError("population has no mapping (run the map pass first)", node=name)
        pop.starts = np.asarray([b.start for b in placed[name]], dtype=np.int64)
        pop.synapses = np.zeros(pop.size, np.int64)
        pop.bits = np.zeros(pop.size, np.int64)
        blocks += [{"population": name, "start": b.start, "stop": b.stop, "core": b.core} for b in placed[name]]
    for pop in pops.values():
        for conn in pop.incoming:
            conn.starts = pop.starts
    ctx = PassContext(options={"rates": rates if rates is not None else "uniform", "default_rate": default_rate})
    r, _ = _rates(graph, ctx, pops)
    for name, perm in perms.items():
        r[name] = r[name][perm]
    _, u, v, t = _block_stats(pops, r)
    n = len(blocks)
    return blocks, sp.csr_matrix((t, (u, v)), shape=(n, n))
